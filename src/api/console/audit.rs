//! The audit log with the API's filters and paging, in the API's scope (staff see all; others
//! their own records and those of organizations they administer).

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Query};
use poem::{handler, Request, Response};
use serde_json::{json, Value};

use super::page::{field_errors, Ctx};
use crate::api::monitor::params::parse_date;
use crate::clock::rfc3339_from_unix;
use crate::logs::{AuditFilter, AuditScope};
use crate::services::Services;

const PAGE_SIZE: usize = 50;

#[derive(serde::Deserialize, serde::Serialize, Default)]
pub struct AuditQuery {
    #[serde(default)]
    action: String,
    #[serde(default)]
    target_type: String,
    #[serde(default)]
    date_from: String,
    #[serde(default)]
    date_to: String,
    #[serde(default)]
    search: String,
    page: Option<String>,
}

fn non_empty(s: &str) -> Option<String> {
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

#[handler]
pub async fn list(
    req: &Request,
    state: Data<&Arc<Services>>,
    Query(q): Query<AuditQuery>,
) -> Response {
    let ctx = Ctx::of(req);
    let p = match ctx.signed_in(req) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let page: usize =
        q.page.as_deref().and_then(|p| p.parse().ok()).filter(|p| *p >= 1).unwrap_or(1);
    let dates = parse_date(Some(&q.date_from), "date_from", false)
        .and_then(|from| Ok((from, parse_date(Some(&q.date_to), "date_to", true)?)));
    let (from, to, errs) = match dates {
        Ok((from, to)) => (from, to, None),
        Err(e) => (None, None, Some(field_errors(&e.0))),
    };
    let filter = AuditFilter {
        scope: AuditScope::of(&p),
        user: None,
        action: non_empty(&q.action),
        target_type: non_empty(&q.target_type),
        from,
        to,
        search: non_empty(&q.search),
    };
    let offset = (page - 1).saturating_mul(PAGE_SIZE);
    let (total, records) = match state.logs.list_audit(filter, offset, PAGE_SIZE).await {
        Ok(v) => v,
        Err(e) => return ctx.error_page(&e),
    };
    let rows: Vec<Value> = records
        .iter()
        .map(|r| {
            let who =
                if r.user_name.is_empty() { r.user_email.clone() } else { r.user_name.clone() };
            json!({"at": rfc3339_from_unix(r.timestamp), "who": who, "action": r.action,
                "target": format!("{} {}", r.target_type, r.target_id), "ip": r.ip_address})
        })
        .collect();
    let pages = (total as usize).div_ceil(PAGE_SIZE).max(1);
    let mut query = form_urlencoded::Serializer::new(String::from("/admin/audit/?"));
    for (k, v) in [
        ("action", &q.action),
        ("target_type", &q.target_type),
        ("date_from", &q.date_from),
        ("date_to", &q.date_to),
        ("search", &q.search),
    ] {
        if !v.is_empty() {
            query.append_pair(k, v);
        }
    }
    let mut query = query.finish();
    if !query.ends_with('?') {
        query.push('&');
    }
    let status = if errs.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let data = json!({"title": "Audit log", "records": rows, "total": total, "page": page,
        "pages": pages, "filters": q, "errs": errs, "query": query});
    ctx.render(status, "audit.html", "audit", data)
}
