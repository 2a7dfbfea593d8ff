//! Traffic, for staff: the overview numbers, requests per hour and latency charts, services
//! and methods, recent requests with the API's filters, and Gatehouse's own health — the
//! monitoring views of the API, read through the same functions.

use std::collections::HashMap;
use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Query};
use poem::{handler, Request, Response};
use poem_openapi::types::ToJSON;
use serde_json::{json, Value};

use super::chart::{self, Point};
use super::page::{field_errors, Ctx};
use crate::api::error::ApiError;
use crate::api::monitor::dto::uptime_display;
use crate::api::monitor::params::MonitorParams;
use crate::api::monitor::{server, views};
use crate::clock::{rfc3339_from_unix, unix_now};
use crate::domain::{Error, Principal};
use crate::logs::rollups::window_start;
use crate::logs::stats;
use crate::services::Services;

const RECENT: usize = 50;

#[handler]
pub async fn overview(
    req: &Request,
    state: Data<&Arc<Services>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let ctx = Ctx::of(req);
    let p = match ctx.signed_in(req) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    if !p.is_staff {
        return ctx.error_page(&Error::forbidden("The traffic pages are for staff."));
    }
    let filters = json!({"service": q.get("service"), "method": q.get("method"),
        "status": q.get("status"), "search": q.get("search"), "hours": q.get("hours")});
    let params = match MonitorParams::from_map(&q) {
        Ok(params) => params,
        Err(ApiError(e)) => {
            return page(&ctx, &state, &p, MonitorParams::default(), filters, Some(e)).await
        }
    };
    page(&ctx, &state, &p, params, filters, None).await
}

async fn page(
    ctx: &Ctx,
    state: &Arc<Services>,
    p: &Principal,
    params: MonitorParams,
    filters: Value,
    bad: Option<Error>,
) -> Response {
    match gather(state, p, &params).await {
        Ok(mut data) => {
            let status = if bad.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
            if let Value::Object(d) = &mut data {
                d.insert("filters".into(), filters);
                d.insert("errs".into(), json!(bad.as_ref().map(field_errors)));
            }
            ctx.render(status, "traffic.html", "traffic", data)
        }
        Err(e) if bad.is_none() && e.code == crate::domain::ErrorCode::Invalid => {
            // A filter the request list refuses (a bad status or date): shown on the form.
            Box::pin(page(ctx, state, p, MonitorParams::default(), filters, Some(e))).await
        }
        Err(e) => ctx.error_page(&e),
    }
}

async fn gather(
    state: &Arc<Services>,
    p: &Principal,
    params: &MonitorParams,
) -> Result<Value, Error> {
    let hours = params.hours();
    let o = views::overview(state, p, params).await.map_err(|e| e.0)?;
    let health = views::health(state, p).await.map_err(|e| e.0)?;
    let services = views::services(state, p, params).await.map_err(|e| e.0)?;
    let methods = views::methods(state, p, params).await.map_err(|e| e.0)?;
    let from = window_start(unix_now(), hours);
    let buckets = state.logs.staff_read(p, move |tx| stats::timeline(tx, from, false)).await?;
    let points: Vec<Point> = buckets
        .iter()
        .map(|(at, a)| Point {
            at: *at,
            total: a.total,
            p50: a.percentile(0.5),
            p95: a.percentile(0.95),
            p99: a.percentile(0.99),
        })
        .collect();
    let filter = params.request_filter(unix_now()).map_err(|e| e.0)?;
    let (total, recent) = state.logs.list_requests(filter, 0, RECENT).await?;
    let requests: Vec<Value> = recent
        .iter()
        .map(|r| {
            json!({"at": rfc3339_from_unix(r.created_at), "service": r.service_name,
                "method": r.method_name, "status": r.status, "ms": r.duration_ms,
                "ip": r.client_ip})
        })
        .collect();
    let (host, port) = server::address(state);
    let storage = if state.store.healthy() { "writable" } else { "refusing writes" };
    Ok(json!({"title": "Traffic", "hours": hours, "o": o.to_json(),
        "health": {"status": health.status, "uptime": uptime_display(health.server_running, health.uptime_seconds),
            "storage": storage, "address": format!("{host}:{port}")},
        "services": with_links(services.services.to_json()), "methods": methods.methods.to_json(),
        "requests_svg": chart::requests(&points), "latency_svg": chart::latency(&points),
        "requests": requests, "total": total}))
}

/// Each service row with the link that filters the page to it (names come from ingest and
/// may hold any character).
fn with_links(mut rows: Option<Value>) -> Value {
    if let Some(Value::Array(list)) = &mut rows {
        for row in list {
            let name = row["service_name"].as_str().unwrap_or_default().to_string();
            let href = form_urlencoded::Serializer::new("/admin/traffic/?".to_string())
                .append_pair("service", &name)
                .finish();
            row["href"] = Value::String(href);
        }
    }
    rows.unwrap_or(Value::Null)
}
