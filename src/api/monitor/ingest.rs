//! `POST /api/grpc/monitor/requests/`: a team's gRPC services report their calls in batches.
//! Each item is checked on its own; invalid items are reported by index, valid ones stored.
//!
//! Only staff, or an API key staff enabled for ingest, may report: the monitor is a staff view
//! and what is reported lands beside Gatehouse's own records. Every stored record names who
//! reported it, its time is at most a few minutes ahead, the `gatehouse.` service names stay
//! Gatehouse's own, and each reporter has a daily allowance (`logs.ingest_quota_per_day`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::dto::{IngestItemError, IngestResponse};
use crate::api::error::ApiResult;
use crate::domain::{Error, Principal};
use crate::logs::record::{known_or_owned, mask_path, STATUSES};
use crate::logs::reporter::Reporter;
use crate::logs::{LogService, RequestLog};
use crate::metrics::Metrics;
use crate::store::Store;

/// Items per batch.
pub const MAX_ITEMS: usize = 1000;
const MAX_NAME: usize = 200;
const MAX_MESSAGE: usize = 2000;
/// How far ahead of the server's clock a reported time may be (clock skew); later is clamped.
pub const MAX_SKEW_SECONDS: i64 = 300;
/// Service names Gatehouse records its own requests under.
const RESERVED_PREFIX: &str = "gatehouse.";

type FieldErrors = BTreeMap<String, Vec<String>>;

fn text(o: &Map<String, Value>, name: &str, max: usize, errs: &mut FieldErrors) -> Option<String> {
    match o.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= max => Some(s.clone()),
        Some(Value::String(_)) => {
            errs.insert(
                name.into(),
                vec![format!("Ensure this field has no more than {max} characters.")],
            );
            None
        }
        Some(_) => {
            errs.insert(name.into(), vec!["Not a valid string.".into()]);
            None
        }
    }
}

fn uint(o: &Map<String, Value>, name: &str, errs: &mut FieldErrors) -> Option<u64> {
    match o.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
        Some(_) => {
            errs.insert(name.into(), vec!["A valid non-negative integer is required.".into()]);
            None
        }
    }
}

/// The reported time, at most [`MAX_SKEW_SECONDS`] ahead of `now`: a future-dated record would
/// sort first in every list and outlive retention.
fn created_at(o: &Map<String, Value>, now: i64, errs: &mut FieldErrors) -> i64 {
    reported_time(o, now, errs).min(now.saturating_add(MAX_SKEW_SECONDS))
}

fn reported_time(o: &Map<String, Value>, now: i64, errs: &mut FieldErrors) -> i64 {
    match o.get("created_at") {
        None | Some(Value::Null) => now,
        Some(Value::Number(n)) if n.as_i64().is_some_and(|t| t >= 0) => n.as_i64().unwrap_or(now),
        Some(Value::String(s)) => {
            match time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
                Ok(t) if t.unix_timestamp() >= 0 => t.unix_timestamp(),
                _ => {
                    errs.insert("created_at".into(), vec!["Enter an RFC 3339 date-time.".into()]);
                    now
                }
            }
        }
        Some(_) => {
            errs.insert("created_at".into(), vec!["Enter an RFC 3339 date-time.".into()]);
            now
        }
    }
}

fn required(v: Option<String>, name: &str, errs: &mut FieldErrors) -> String {
    match v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) {
        Some(s) => s,
        None => {
            errs.entry(name.into()).or_insert_with(|| vec!["This field is required.".into()]);
            String::new()
        }
    }
}

/// One item, or its field errors.
pub fn parse_item(v: &Value, now: i64) -> Result<RequestLog, FieldErrors> {
    let mut errs = FieldErrors::new();
    let Some(o) = v.as_object() else {
        errs.insert("non_field_errors".into(), vec!["Expected an object.".into()]);
        return Err(errs);
    };
    let service_name = text(o, "service_name", MAX_NAME, &mut errs);
    if service_name.as_deref().is_some_and(|s| {
        s.trim()
            .get(..RESERVED_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(RESERVED_PREFIX))
    }) {
        errs.insert(
            "service_name".into(),
            vec![format!("Service names starting with \"{RESERVED_PREFIX}\" are reserved.")],
        );
    }
    let method_name = text(o, "method_name", MAX_NAME, &mut errs);
    let grpc = text(o, "grpc_status_code", 50, &mut errs).unwrap_or_default();
    let status = text(o, "status", 20, &mut errs).unwrap_or_else(|| {
        if grpc.is_empty() || grpc == "OK" { "success" } else { "error" }.to_string()
    });
    if !STATUSES.contains(&status.as_str()) {
        errs.insert("status".into(), vec![format!("Must be one of: {}.", STATUSES.join(", "))]);
    }
    let client_ip = text(o, "client_ip", 64, &mut errs).unwrap_or_default();
    if !client_ip.is_empty() && client_ip.parse::<std::net::IpAddr>().is_err() {
        errs.insert("client_ip".into(), vec!["Enter a valid IPv4 or IPv6 address.".into()]);
    }
    let is_authenticated = match o.get("is_authenticated") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            errs.insert("is_authenticated".into(), vec!["Must be a valid boolean.".into()]);
            None
        }
    };
    let http_status = uint(o, "http_status", &mut errs);
    let http_status = match http_status.map(u16::try_from) {
        Some(Ok(s)) if (100..=599).contains(&s) => Some(s),
        None => None,
        Some(_) => {
            errs.insert("http_status".into(), vec!["Must be an HTTP status code.".into()]);
            None
        }
    };
    let user_id = uint(o, "user_id", &mut errs);
    let rec = RequestLog {
        id: 0,
        request_id: text(o, "request_id", 100, &mut errs)
            .unwrap_or_else(crate::api::request_id::new_request_id),
        service_name: required(service_name, "service_name", &mut errs).into(),
        method_name: required(method_name, "method_name", &mut errs).into(),
        status: known_or_owned(&status, &STATUSES),
        duration_ms: uint(o, "duration_ms", &mut errs).unwrap_or(0),
        grpc_status_code: grpc.into(),
        error_message: text(o, "error_message", usize::MAX, &mut errs)
            .map(|m| m.chars().take(MAX_MESSAGE).collect())
            .unwrap_or_default(),
        created_at: created_at(o, now, &mut errs),
        client_ip,
        user_id,
        username: text(o, "username", 150, &mut errs).unwrap_or_default(),
        is_authenticated: is_authenticated.unwrap_or(user_id.is_some()),
        api_key_id: uint(o, "api_key_id", &mut errs),
        api_key_name: text(o, "api_key_name", 255, &mut errs).unwrap_or_default(),
        http_method: text(o, "http_method", 16, &mut errs).unwrap_or_default().into(),
        path: text(o, "path", 2048, &mut errs).map(|p| mask_path(&p)).unwrap_or_default(),
        http_status,
        ..RequestLog::default()
    };
    if errs.is_empty() {
        Ok(rec)
    } else {
        Err(errs)
    }
}

pub async fn ingest(
    logs: &LogService,
    metrics: &Metrics,
    store: &Store,
    p: &Principal,
    items: &[Value],
) -> ApiResult<IngestResponse> {
    let reporter = Reporter::for_principal(store, p)?;
    if items.is_empty() {
        return Err(Error::invalid("requests", "This list may not be empty.").into());
    }
    if items.len() > MAX_ITEMS {
        return Err(Error::invalid(
            "requests",
            format!("Ensure this list has no more than {MAX_ITEMS} items."),
        )
        .into());
    }
    let now = crate::clock::unix_now();
    let mut good = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match parse_item(item, now) {
            Ok(mut r) => {
                reporter.stamp(&mut r);
                good.push(r);
            }
            Err(e) => errors
                .push(IngestItemError { index: i as u64, errors: crate::domain::field_errors(e) }),
        }
    }
    if good.is_empty() {
        let details: Map<String, Value> =
            errors.into_iter().map(|e| (e.index.to_string(), e.errors)).collect();
        let mut err = Error::invalid("requests", "No valid items.");
        err.details = Some(serde_json::json!({ "requests": details }));
        return Err(err.into());
    }
    let quota = reporter.quota(logs.config.ingest_quota_per_day);
    // Reported names count under the reporter's organization, capped there by
    // `metrics.max_series` (they come from outside, so they are not a bounded set).
    let counted: Vec<_> = good
        .iter()
        .map(|r| {
            let status = r.http_status.unwrap_or(0);
            let elapsed = std::time::Duration::from_millis(r.duration_ms);
            (r.service_name.clone(), r.method_name.clone(), status, elapsed)
        })
        .collect();
    let ids = logs.ingest_within(good, Some(quota)).await?;
    let org = crate::api::request_log::organization_of(p);
    for (service, method, status, elapsed) in counted {
        metrics.record_request(org, service, method, status, elapsed);
    }
    Ok(IngestResponse {
        received: items.len() as u64,
        stored: ids.len() as u64,
        rejected: errors.len() as u64,
        ids,
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn items_are_checked_field_by_field() {
        let ok = parse_item(
            &json!({"service_name": "a.B", "method_name": "Get", "duration_ms": 5}),
            100,
        )
        .unwrap();
        assert_eq!((&*ok.status, ok.created_at, ok.duration_ms), ("success", 100, 5));
        assert!(!ok.request_id.is_empty());
        let e = parse_item(&json!({"method_name": 3, "duration_ms": -1, "status": "weird"}), 0)
            .unwrap_err();
        for f in ["service_name", "method_name", "duration_ms", "status"] {
            assert!(e.contains_key(f), "{f}: {e:?}");
        }
        assert!(parse_item(&json!([1]), 0).is_err());
        let e = parse_item(&json!({"service_name": "s", "method_name": "m", "client_ip": "nope", "created_at": "yesterday"}), 0).unwrap_err();
        assert!(e.contains_key("client_ip") && e.contains_key("created_at"));
        let t = parse_item(&json!({"service_name": "s", "method_name": "m", "created_at": "2025-01-01T00:00:00Z", "grpc_status_code": "NOT_FOUND"}), 2_000_000_000).unwrap();
        assert_eq!((t.created_at, &*t.status), (1_735_689_600, "error"));
    }

    #[test]
    fn future_times_are_clamped_and_gatehouse_names_reserved() {
        let now = 1_750_000_000;
        for created in [json!("2100-01-01T00:00:00Z"), json!(4_102_444_800_i64)] {
            let r = parse_item(
                &json!({"service_name": "s", "method_name": "m", "created_at": created}),
                now,
            )
            .unwrap();
            assert_eq!(r.created_at, now + MAX_SKEW_SECONDS);
        }
        let near = parse_item(
            &json!({"service_name": "s", "method_name": "m", "created_at": now + 60}),
            now,
        )
        .unwrap();
        assert_eq!(near.created_at, now + 60);
        for name in ["gatehouse.Auth", "Gatehouse.Http", " GATEHOUSE.x"] {
            let e =
                parse_item(&json!({"service_name": name, "method_name": "m"}), now).unwrap_err();
            assert!(e.contains_key("service_name"), "{name}");
        }
        assert!(
            parse_item(&json!({"service_name": "gatehousex.A", "method_name": "m"}), now).is_ok()
        );
        assert!(parse_item(&json!({"service_name": "team.gatehouse.A", "method_name": "m"}), now)
            .is_ok());
    }
}
