//! The user's API keys: list, create and rotate (the key shown once, with a copy button),
//! revoke. Staff also see every user's keys and can deactivate or reactivate any of them.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{handler, Body, Request, Response};
use serde_json::{json, Value};

use super::form::Form;
use super::page::{field_errors, is_form_error, redirect, Ctx};
use crate::clock::rfc3339_from_unix;
use crate::domain::api_keys::{self, NewApiKey, StaffChange, StaffFilter};
use crate::domain::audit::Actor;
use crate::domain::{accounts, Error, Principal};
use crate::services::Services;

#[handler]
pub fn list(req: &Request, state: Data<&Arc<Services>>) -> Response {
    let ctx = Ctx::of(req);
    match ctx.signed_in(req) {
        Ok(p) => keys_page(&ctx, &state, &p, json!({}), None),
        Err(resp) => resp,
    }
}

/// The page; `extra` carries a created key or the form sent back with its errors.
fn keys_page(
    ctx: &Ctx,
    state: &Services,
    p: &Principal,
    extra: Value,
    status: Option<StatusCode>,
) -> Response {
    let loaded = state.store.read(|tx| {
        let keys = api_keys::list_visible(tx, p)?;
        let orgs = accounts::organizations_of(tx, p.user_id)?;
        let all = if p.is_staff { staff_rows(tx, p)? } else { Vec::new() };
        Ok::<_, Error>((keys, orgs, all))
    });
    let (keys, orgs, all) = match loaded {
        Ok(v) => v,
        Err(e) => return ctx.error_page(&e),
    };
    let org_name = |id: u64| {
        orgs.iter().find(|(o, _)| o.id == id).map(|(o, _)| o.name.clone()).unwrap_or_default()
    };
    let rows: Vec<Value> = keys
        .iter()
        .map(|k| {
            let scope = match k.organization {
                Some(o) => org_name(o),
                None => "all my organizations".into(),
            };
            let scope = if k.read_only { format!("{scope}, read-only") } else { scope };
            json!({"id": k.id, "name": k.name, "masked": k.masked_key(), "scope": scope,
                "active": k.is_active, "status": if k.is_active { "active" } else { "revoked" },
                "last_used": k.last_used_at().map(rfc3339_from_unix)})
        })
        .collect();
    let orgs: Vec<Value> = orgs.iter().map(|(o, _)| json!({"id": o.id, "name": o.name})).collect();
    let mut data =
        json!({"title": "API keys", "keys": rows, "orgs": orgs, "form": {}, "all_keys": all});
    if let (Value::Object(d), Value::Object(x)) = (&mut data, extra) {
        d.extend(x);
    }
    ctx.render(status.unwrap_or(StatusCode::OK), "keys.html", "keys", data)
}

#[handler]
pub async fn create(req: &Request, body: Body, state: Data<&Arc<Services>>) -> Response {
    let ctx = Ctx::of(req);
    let p = match ctx.signed_in(req) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let f = match Form::read(&ctx, body, state.config.server.max_body_bytes).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let name = f.get("name").trim().to_string();
    let organization = f.opt("organization");
    let sent = json!({"name": name, "read_only": f.checked("read_only"),
        "organization": organization.as_deref().and_then(|o| o.parse::<u64>().ok())});
    let created = async {
        let organization = organization
            .map(|o| o.parse::<u64>())
            .transpose()
            .map_err(|_| Error::invalid("organization", "Choose an organization."))?;
        let (digest, masked, key) = crate::api::api_keys::fresh_key()?;
        let new = NewApiKey {
            name: name.clone(),
            key_type: "service".into(),
            organization,
            read_only: f.checked("read_only"),
            ip_allowlist: Vec::new(),
            expires_at: None,
            digest,
            masked,
        };
        let actor = Actor::from_principal(&p, ctx.ip);
        let owner = p.clone();
        let k = state.store.write(move |tx| api_keys::create(tx, &owner, &actor, &new)).await?;
        Ok::<_, Error>((k, key))
    }
    .await;
    match created {
        // The key is on this page only: no redirect, so a reload does not show it again.
        Ok((k, key)) => {
            let extra = json!({"created": {"name": k.name, "key": key}});
            keys_page(&ctx, &state, &p, extra, Some(StatusCode::CREATED))
        }
        Err(e) if is_form_error(&e) => {
            let extra = json!({"form": sent, "errs": field_errors(&e)});
            keys_page(&ctx, &state, &p, extra, Some(crate::api::error::status_of(e.code)))
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
    let p = match ctx.signed_in(req) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let id = page!(ctx.path_id(&id));
    if let Err(resp) = Form::read(&ctx, body, state.config.server.max_body_bytes).await {
        return resp;
    }
    let actor = Actor::from_principal(&p, ctx.ip);
    match state.store.write(move |tx| api_keys::revoke(tx, &p, &actor, id)).await {
        Ok(_) => redirect("/admin/keys/"),
        Err(e) => ctx.error_page(&e),
    }
}

/// How many keys the staff table shows (newest first).
const STAFF_ROWS: usize = 500;

/// Every user's keys for the staff table, with their owners' emails.
fn staff_rows(tx: &impl crate::store::Reader, p: &Principal) -> Result<Vec<Value>, Error> {
    let keys = api_keys::list_all(tx, p, &StaffFilter::default())?;
    let mut owners = std::collections::BTreeMap::new();
    let mut rows = Vec::new();
    for k in keys.iter().take(STAFF_ROWS) {
        if let std::collections::btree_map::Entry::Vacant(v) = owners.entry(k.user_id) {
            v.insert(accounts::get(tx, k.user_id)?.map(|u| u.email).unwrap_or_default());
        }
        rows.push(json!({"id": k.id, "name": k.name, "owner": owners.get(&k.user_id),
            "masked": k.masked_key(), "type": k.key_type, "org": k.organization,
            "active": k.is_active, "last_used": k.last_used_at().map(rfc3339_from_unix)}));
    }
    Ok(rows)
}

/// A new secret for one of the user's keys, shown once; the old one keeps working for the
/// chosen grace period.
#[handler]
pub async fn rotate(
    req: &Request,
    body: Body,
    state: Data<&Arc<Services>>,
    Path(id): Path<String>,
) -> Response {
    let ctx = Ctx::of(req);
    let p = page!(ctx.signed_in(req));
    let id = page!(ctx.path_id(&id));
    let f = page!(Form::read(&ctx, body, state.config.server.max_body_bytes).await);
    let rotated = async {
        let grace = match f.opt("grace_seconds") {
            None => 0,
            Some(g) => g
                .parse::<u64>()
                .map_err(|_| Error::invalid("grace_seconds", "A whole number of seconds."))?,
        };
        let (digest, masked, key) = crate::api::api_keys::fresh_key()?;
        let actor = Actor::from_principal(&p, ctx.ip);
        let who = p.clone();
        let k = state
            .store
            .write(move |tx| api_keys::rotate(tx, &who, &actor, id, &digest, &masked, grace))
            .await?;
        Ok::<_, Error>((k, key))
    }
    .await;
    match rotated {
        Ok((k, key)) => {
            let extra = json!({"created": {"name": k.name, "key": key, "rotated": true}});
            keys_page(&ctx, &state, &p, extra, None)
        }
        Err(e) => ctx.error_page(&e),
    }
}

/// Staff turn any key off (or back on, unless its owner revoked it).
#[handler]
pub async fn set_active(
    req: &Request,
    body: Body,
    state: Data<&Arc<Services>>,
    Path(id): Path<String>,
) -> Response {
    let ctx = Ctx::of(req);
    let p = page!(ctx.signed_in(req));
    let id = page!(ctx.path_id(&id));
    let f = page!(Form::read(&ctx, body, state.config.server.max_body_bytes).await);
    let change =
        StaffChange { is_active: Some(f.get("is_active") == "true"), ..StaffChange::default() };
    let actor = Actor::from_principal(&p, ctx.ip);
    match state.store.write(move |tx| api_keys::staff_update(tx, &p, &actor, id, &change)).await {
        Ok(_) => redirect("/admin/keys/#all-keys"),
        Err(e) => ctx.error_page(&e),
    }
}
