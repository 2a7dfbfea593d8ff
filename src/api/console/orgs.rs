//! Organizations: the user's list (the console's first page), creating one, and an
//! organization's members — invite, change role, remove, leave — with the API's rules (admins
//! manage members; anyone may leave, unless they are its last admin).

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{handler, Body, Request, Response};
use serde_json::{json, Value};

use super::form::Form;
use super::page::{field_errors, is_form_error, redirect, Ctx};
use crate::domain::audit::Actor;
use crate::domain::{accounts, orgs, Error, Principal, Role};
use crate::services::Services;

#[handler]
pub fn home(req: &Request, state: Data<&Arc<Services>>) -> Response {
    let ctx = Ctx::of(req);
    let p = page!(ctx.signed_in(req));
    home_page(&ctx, &state, &p, json!({}), None)
}

fn home_page(
    ctx: &Ctx,
    state: &Services,
    p: &Principal,
    extra: Value,
    e: Option<&Error>,
) -> Response {
    match state.store.read(|tx| accounts::organizations_of(tx, p.user_id)) {
        Ok(orgs) => {
            let orgs: Vec<_> = orgs
                .into_iter()
                .map(|(o, r)| json!({"id": o.id, "name": o.name, "role": r.as_str()}))
                .collect();
            let status = e.map_or(StatusCode::OK, |e| crate::api::error::status_of(e.code));
            let data = json!({"title": "Organizations", "orgs": orgs, "form": extra,
                "errs": e.map(field_errors)});
            ctx.render(status, "home.html", "home", data)
        }
        Err(e) => ctx.error_page(&e.into()),
    }
}

#[handler]
pub async fn create(req: &Request, body: Body, state: Data<&Arc<Services>>) -> Response {
    let ctx = Ctx::of(req);
    let p = page!(ctx.signed_in(req));
    let f = page!(Form::read(&ctx, body, state.config.server.max_body_bytes).await);
    let name = f.get("name").to_string();
    let actor = Actor::from_principal(&p, ctx.ip);
    let owner = p.clone();
    let n = name.clone();
    match state.store.write(move |tx| orgs::create(tx, &owner, &actor, &n, None)).await {
        Ok(o) => redirect(&format!("/admin/orgs/{}/", o.org.id)),
        Err(e) if is_form_error(&e) => home_page(&ctx, &state, &p, json!({"name": name}), Some(&e)),
        Err(e) => ctx.error_page(&e),
    }
}

#[handler]
pub fn detail(req: &Request, state: Data<&Arc<Services>>, Path(id): Path<String>) -> Response {
    let ctx = Ctx::of(req);
    let p = page!(ctx.signed_in(req));
    let id = page!(ctx.path_id(&id));
    org_page(&ctx, &state, &p, id, json!({"role": "viewer"}), None)
}

fn org_page(
    ctx: &Ctx,
    state: &Services,
    p: &Principal,
    id: u64,
    form: Value,
    e: Option<&Error>,
) -> Response {
    // Only admins list the members (the API's rule); others see themselves, to leave.
    let loaded = state.store.read(|tx| {
        let view = orgs::get(tx, p, id)?;
        let members = match view.user_role {
            Some(Role::Admin) => Some(orgs::members(tx, p, id)?),
            _ => None,
        };
        Ok::<_, Error>((view, members))
    });
    let (view, members) = match loaded {
        Ok(v) => v,
        Err(e) => return ctx.error_page(&e),
    };
    let members: Vec<Value> = match members {
        Some(all) => all
            .iter()
            .map(|m| {
                json!({"id": m.user.id, "name": m.user.full_name(), "email": m.user.email,
                    "role": m.role.as_str(), "me": m.user.id == p.user_id})
            })
            .collect(),
        None => vec![json!({"id": p.user_id, "name": p.full_name, "email": p.email,
            "role": view.user_role.map(|r| r.as_str()), "me": true})],
    };
    let is_admin = !p.read_only && view.user_role == Some(Role::Admin);
    let status = e.map_or(StatusCode::OK, |e| crate::api::error::status_of(e.code));
    let data = json!({"title": view.org.name,
        "org": {"id": view.org.id, "name": view.org.name, "description": view.org.description,
            "role": view.user_role.map(|r| r.as_str())},
        "members": members, "is_admin": is_admin, "form": form, "errs": e.map(field_errors)});
    ctx.render(status, "org.html", "home", data)
}

/// Runs a member change of organization `org` and shows the organization again (a refusal
/// such as removing its last admin is shown on the page).
async fn member_change<F>(
    ctx: &Ctx,
    state: &Arc<Services>,
    p: Principal,
    org: u64,
    sent: Value,
    f: F,
) -> Response
where
    F: Fn(&crate::store::WriteTx, &Principal, &Actor) -> Result<orgs::MemberView, Error>
        + Send
        + 'static,
{
    let actor = Actor::from_principal(&p, ctx.ip);
    let who = p.clone();
    match state.store.write(move |tx| f(tx, &who, &actor)).await {
        Ok(_) => redirect(&format!("/admin/orgs/{org}/")),
        Err(e) if is_form_error(&e) || e.code == crate::domain::ErrorCode::Forbidden => {
            org_page(ctx, state, &p, org, sent, Some(&e))
        }
        Err(e) => ctx.error_page(&e),
    }
}

#[handler]
pub async fn invite(
    req: &Request,
    body: Body,
    state: Data<&Arc<Services>>,
    Path(id): Path<String>,
) -> Response {
    let ctx = Ctx::of(req);
    let p = page!(ctx.signed_in(req));
    let org = page!(ctx.path_id(&id));
    let f = page!(Form::read(&ctx, body, state.config.server.max_body_bytes).await);
    let (email, role) = (f.get("email").trim().to_string(), f.get("role").to_string());
    let sent = json!({"email": email, "role": role});
    let role = match orgs::parse_role("role", &role) {
        Ok(r) => r,
        Err(e) => return org_page(&ctx, &state, &p, org, sent, Some(&e)),
    };
    member_change(&ctx, &state, p, org, sent, move |tx, p, a| {
        orgs::add_member(tx, p, a, org, &email, role)
    })
    .await
}

#[handler]
pub async fn set_role(
    req: &Request,
    body: Body,
    state: Data<&Arc<Services>>,
    Path((id, user)): Path<(String, String)>,
) -> Response {
    let ctx = Ctx::of(req);
    let p = page!(ctx.signed_in(req));
    let (org, user) = (page!(ctx.path_id(&id)), page!(ctx.path_id(&user)));
    let f = page!(Form::read(&ctx, body, state.config.server.max_body_bytes).await);
    let role = match orgs::parse_role("role", f.get("role")) {
        Ok(r) => r,
        Err(e) => return org_page(&ctx, &state, &p, org, json!({}), Some(&e)),
    };
    member_change(&ctx, &state, p, org, json!({}), move |tx, p, a| {
        orgs::update_member_role(tx, p, a, org, user, role).map(|(m, _)| m)
    })
    .await
}

#[handler]
pub async fn remove(
    req: &Request,
    body: Body,
    state: Data<&Arc<Services>>,
    Path((id, user)): Path<(String, String)>,
) -> Response {
    let ctx = Ctx::of(req);
    let p = page!(ctx.signed_in(req));
    let (org, user) = (page!(ctx.path_id(&id)), page!(ctx.path_id(&user)));
    page!(Form::read(&ctx, body, state.config.server.max_body_bytes).await);
    let leaving = user == p.user_id;
    let resp = member_change(&ctx, &state, p, org, json!({}), move |tx, p, a| {
        orgs::remove_member(tx, p, a, org, user)
    })
    .await;
    // Whoever left can no longer see the organization: back to their list.
    if leaving && resp.status() == StatusCode::SEE_OTHER {
        return redirect("/admin/");
    }
    resp
}
