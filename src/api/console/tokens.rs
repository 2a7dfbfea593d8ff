//! Personal access tokens: the user's own (create and reissue — shown once — and revoke), and for staff
//! every live token with its global-metrics scope to turn on or off.

use std::collections::BTreeMap;
use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{handler, Body, Request, Response};
use serde_json::{json, Value};

use super::form::Form;
use super::page::{field_errors, is_form_error, redirect, with_status, Ctx};
use crate::clock::{rfc3339_from_unix, unix_now};
use crate::domain::audit::Actor;
use crate::domain::pats::{self, PatPatch};
use crate::domain::{accounts, Error, ErrorCode, Principal};
use crate::services::pats::{PatId, PatRequest};
use crate::services::Services;

/// How many live tokens the staff table shows.
const STAFF_ROWS: usize = 500;

#[handler]
pub fn list(req: &Request, state: Data<&Arc<Services>>) -> Response {
    let ctx = Ctx::of(req);
    let p = page!(ctx.signed_in(req));
    tokens_page(&ctx, &state, &p, json!({}), None)
}

fn tokens_page(
    ctx: &Ctx,
    state: &Services,
    p: &Principal,
    extra: Value,
    e: Option<&Error>,
) -> Response {
    let now = unix_now();
    let loaded = state.store.read(|tx| {
        let own = pats::list_visible(tx, p)?;
        let orgs = accounts::organizations_of(tx, p.user_id)?;
        let all = if p.is_staff {
            let rows = pats::list_live_all(tx, p, now, STAFF_ROWS)?;
            let mut owners = BTreeMap::new();
            for t in &rows {
                if let std::collections::btree_map::Entry::Vacant(v) = owners.entry(t.user_id) {
                    v.insert(accounts::get(tx, t.user_id)?.map(|u| u.email).unwrap_or_default());
                }
            }
            Some((rows, owners))
        } else {
            None
        };
        Ok::<_, Error>((own, orgs, all))
    });
    let (own, orgs, all) = match loaded {
        Ok(v) => v,
        Err(e) => return ctx.error_page(&e),
    };
    let org_name = |id: Option<u64>| {
        orgs.iter().find(|(o, _)| Some(o.id) == id).map(|(o, _)| o.name.clone()).unwrap_or_default()
    };
    let tokens: Vec<Value> = own
        .iter()
        .map(|t| {
            let live = t.revoked_at.is_none() && t.expires_at > now;
            let mut reach = vec![if t.read_only { "read-only" } else { "read-write" }];
            if t.access_global_metrics {
                reach.push("global metrics");
            }
            let status = match (t.revoked_at, live) {
                (Some(_), _) => "revoked",
                (None, false) => "expired",
                (None, true) => "active",
            };
            json!({"id": t.id, "name": t.name, "org": org_name(t.company_id),
                "scope": reach.join(", "), "expires": rfc3339_from_unix(t.expires_at),
                "status": status, "live": live})
        })
        .collect();
    let all_tokens: Vec<Value> = all
        .map(|(rows, owners)| {
            rows.iter()
                .map(|t| {
                    json!({"id": t.id, "name": t.name, "owner": owners.get(&t.user_id),
                        "org": t.company_id, "agm": t.access_global_metrics})
                })
                .collect()
        })
        .unwrap_or_default();
    let orgs: Vec<Value> = orgs.iter().map(|(o, _)| json!({"id": o.id, "name": o.name})).collect();
    let mut data = json!({"title": "Personal access tokens", "tokens": tokens, "orgs": orgs,
        "all_tokens": all_tokens, "form": {}, "errs": e.map(field_errors)});
    if let (Value::Object(d), Value::Object(x)) = (&mut data, extra) {
        d.extend(x);
    }
    let status = e.map_or(StatusCode::OK, |e| crate::api::error::status_of(e.code));
    ctx.render(status, "tokens.html", "tokens", data)
}

#[handler]
pub async fn create(req: &Request, body: Body, state: Data<&Arc<Services>>) -> Response {
    let ctx = Ctx::of(req);
    let p = page!(ctx.signed_in(req));
    let f = page!(Form::read(&ctx, body, state.config.server.max_body_bytes).await);
    let sent = json!({"name": f.get("name"), "read_only": f.checked("read_only"),
        "access_global_metrics": f.checked("access_global_metrics"),
        "company_id": f.get("company_id").parse::<u64>().ok(),
        "expires_in_days": f.get("expires_in_days")});
    let created = async {
        let company_id = f
            .opt("company_id")
            .map(|c| c.parse::<u64>())
            .transpose()
            .map_err(|_| Error::invalid("company_id", "Choose an organization."))?;
        let expires_in_days = f
            .opt("expires_in_days")
            .map(|d| d.parse::<u64>())
            .transpose()
            .map_err(|_| Error::invalid("expires_in_days", "A whole number of days."))?;
        let request = PatRequest {
            name: f.get("name").to_string(),
            read_only: f.checked("read_only"),
            access_global_metrics: f.checked("access_global_metrics"),
            company_id,
            expires_in_days,
        };
        state.create_pat(&p, request, ctx.ip).await
    }
    .await;
    match created {
        // Shown on this answer only (no redirect): a reload does not show it again.
        Ok((row, token)) => {
            let extra = json!({"created": {"name": row.name, "token": token.expose()}});
            let resp = tokens_page(&ctx, &state, &p, extra, None);
            with_status(resp, StatusCode::CREATED)
        }
        Err(e) if is_form_error(&e) || e.code == ErrorCode::Forbidden => {
            tokens_page(&ctx, &state, &p, json!({"form": sent}), Some(&e))
        }
        Err(e) => ctx.error_page(&e),
    }
}

#[handler]
pub async fn revoke(
    req: &Request,
    body: Body,
    state: Data<&Arc<Services>>,
    Path(id): Path<String>,
) -> Response {
    let ctx = Ctx::of(req);
    let p = page!(ctx.signed_in(req));
    let id = page!(ctx.path_id(&id));
    page!(Form::read(&ctx, body, state.config.server.max_body_bytes).await);
    let actor = Actor::from_principal(&p, ctx.ip);
    let who = p.clone();
    match state.store.write(move |tx| pats::revoke(tx, &who, &actor, id)).await {
        Ok(_) => redirect("/admin/tokens/"),
        Err(e) if is_form_error(&e) => tokens_page(&ctx, &state, &p, json!({}), Some(&e)),
        Err(e) => ctx.error_page(&e),
    }
}

/// Staff turn a token's global-metrics scope on or off (the domain refuses anyone else).
#[handler]
pub async fn scope(
    req: &Request,
    body: Body,
    state: Data<&Arc<Services>>,
    Path(id): Path<String>,
) -> Response {
    let ctx = Ctx::of(req);
    let p = page!(ctx.signed_in(req));
    let id = page!(ctx.path_id(&id));
    let f = page!(Form::read(&ctx, body, state.config.server.max_body_bytes).await);
    let patch = PatPatch {
        name: None,
        read_only: None,
        access_global_metrics: Some(f.get("access_global_metrics") == "true"),
    };
    let actor = Actor::from_principal(&p, ctx.ip);
    let who = p.clone();
    match state.store.write(move |tx| pats::update(tx, &who, &actor, id, &patch)).await {
        Ok(_) => redirect("/admin/tokens/"),
        Err(e) if is_form_error(&e) => tokens_page(&ctx, &state, &p, json!({}), Some(&e)),
        Err(e) => ctx.error_page(&e),
    }
}

/// A new string for one of the user's tokens (the old one stops working), shown once.
#[handler]
pub async fn reissue(
    req: &Request,
    body: Body,
    state: Data<&Arc<Services>>,
    Path(id): Path<String>,
) -> Response {
    let ctx = Ctx::of(req);
    let p = page!(ctx.signed_in(req));
    let id = page!(ctx.path_id(&id));
    page!(Form::read(&ctx, body, state.config.server.max_body_bytes).await);
    match state.reissue_pat(&p, PatId::Row(id), ctx.ip).await {
        Ok((row, token)) => {
            let extra =
                json!({"created": {"name": row.name, "token": token.expose(), "reissued": true}});
            tokens_page(&ctx, &state, &p, extra, None)
        }
        Err(e) if is_form_error(&e) => tokens_page(&ctx, &state, &p, json!({}), Some(&e)),
        Err(e) => ctx.error_page(&e),
    }
}
