//! The user's own profile: names and email, the password, and TOTP two-factor sign-in
//! (enrol, activate — recovery codes shown once — and turn off).

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{handler, Body, Request, Response};
use serde_json::{json, Value};

use super::form::Form;
use super::page::{field_errors, is_form_error, redirect, Ctx};
use crate::domain::accounts::{self, ProfilePatch};
use crate::domain::two_factor;
use crate::domain::{Error, Principal};
use crate::services::password_change::PasswordChange;
use crate::services::Services;

#[handler]
pub fn show(req: &Request, state: Data<&Arc<Services>>) -> Response {
    let ctx = Ctx::of(req);
    let p = page!(ctx.signed_in(req));
    profile_page(&ctx, &state, &p, None, None, None, json!({}))
}

fn profile_page(
    ctx: &Ctx,
    state: &Services,
    p: &Principal,
    sent: Option<Value>,
    errs: Option<&Error>,
    perrs: Option<&Error>,
    extra: Value,
) -> Response {
    let form = match sent {
        Some(v) => v,
        None => match state.store.read(|tx| accounts::get(tx, p.user_id)) {
            Ok(Some(u)) => {
                json!({"first_name": u.first_name, "last_name": u.last_name, "email": u.email})
            }
            Ok(None) => return ctx.error_page(&Error::not_found("User")),
            Err(e) => return ctx.error_page(&e.into()),
        },
    };
    let two = match state.store.read(|tx| two_factor::status(tx, p.user_id)) {
        Ok(s) => json!({"enabled": s.enabled, "pending": s.pending,
            "recovery_codes_left": s.recovery_codes_left}),
        Err(e) => return ctx.error_page(&e.into()),
    };
    let status = errs.or(perrs).map_or(StatusCode::OK, |e| crate::api::error::status_of(e.code));
    let mut data = json!({"title": "Your profile", "form": form, "errs": errs.map(field_errors),
        "perrs": perrs.map(field_errors), "two": two, "full_session": p.is_full_session()});
    if let (Value::Object(d), Value::Object(x)) = (&mut data, extra) {
        d.extend(x);
    }
    ctx.render(status, "profile.html", "", data)
}

#[handler]
pub async fn update(req: &Request, body: Body, state: Data<&Arc<Services>>) -> Response {
    let ctx = Ctx::of(req);
    let p = page!(ctx.signed_in(req));
    let f = page!(Form::read(&ctx, body, state.config.server.max_body_bytes).await);
    let patch = ProfilePatch {
        first_name: Some(f.get("first_name").to_string()),
        last_name: Some(f.get("last_name").to_string()),
        email: Some(f.get("email").to_string()),
        username: None,
    };
    let sent = json!({"first_name": f.get("first_name"), "last_name": f.get("last_name"),
        "email": f.get("email")});
    let (id, ip) = (p.user_id, ctx.ip);
    match state.store.write(move |tx| accounts::update_profile(tx, id, &patch, ip)).await {
        Ok(_) => redirect("/admin/profile/"),
        Err(e) if is_form_error(&e) => {
            profile_page(&ctx, &state, &p, Some(sent), Some(&e), None, json!({}))
        }
        Err(e) => ctx.error_page(&e),
    }
}

#[handler]
pub async fn password(req: &Request, body: Body, state: Data<&Arc<Services>>) -> Response {
    let ctx = Ctx::of(req);
    let p = page!(ctx.signed_in(req));
    let f = page!(Form::read(&ctx, body, state.config.server.max_body_bytes).await);
    let change = PasswordChange {
        old: f.get("old_password").to_string(),
        new: f.get("new_password").to_string(),
        confirm: Some(f.get("new_password2").to_string()),
        new_field: "new_password",
        confirm_field: "new_password2",
    };
    match state.change_password(&p, change, ctx.ip).await {
        // This session is kept; every other credential of the account was revoked.
        Ok(()) => redirect("/admin/profile/"),
        Err(e) if is_form_error(&e) => {
            profile_page(&ctx, &state, &p, None, None, Some(&e), json!({}))
        }
        Err(e) => ctx.error_page(&e),
    }
}

/// Starts an enrolment: the secret and its `otpauth://` URI on this answer only.
#[handler]
pub async fn totp_enrol(req: &Request, body: Body, state: Data<&Arc<Services>>) -> Response {
    let ctx = Ctx::of(req);
    let p = page!(ctx.signed_in(req));
    page!(Form::read(&ctx, body, state.config.server.max_body_bytes).await);
    match state.enrol_totp(&p, ctx.ip).await {
        Ok(e) => {
            let extra = json!({"enrolment": {"secret": e.secret.expose(), "uri": e.uri.expose()}});
            profile_page(&ctx, &state, &p, None, None, None, extra)
        }
        Err(e) if is_form_error(&e) => two_factor_refused(&ctx, &state, &p, &e),
        Err(e) => ctx.error_page(&e),
    }
}

/// Turns the enrolment on with a first code; the recovery codes on this answer only.
#[handler]
pub async fn totp_activate(req: &Request, body: Body, state: Data<&Arc<Services>>) -> Response {
    let ctx = Ctx::of(req);
    let p = page!(ctx.signed_in(req));
    let f = page!(Form::read(&ctx, body, state.config.server.max_body_bytes).await);
    match state.activate_totp(&p, f.get("otp").to_string(), ctx.ip).await {
        Ok(codes) => {
            let codes: Vec<&str> = codes.iter().map(|c| c.expose().as_str()).collect();
            profile_page(&ctx, &state, &p, None, None, None, json!({"recovery_codes": codes}))
        }
        Err(e) if is_form_error(&e) => two_factor_refused(&ctx, &state, &p, &e),
        Err(e) => ctx.error_page(&e),
    }
}

#[handler]
pub async fn totp_disable(req: &Request, body: Body, state: Data<&Arc<Services>>) -> Response {
    let ctx = Ctx::of(req);
    let p = page!(ctx.signed_in(req));
    let f = page!(Form::read(&ctx, body, state.config.server.max_body_bytes).await);
    match state.disable_totp(&p, f.get("otp").to_string(), ctx.ip).await {
        Ok(()) => redirect("/admin/profile/"),
        Err(e) if is_form_error(&e) => two_factor_refused(&ctx, &state, &p, &e),
        Err(e) => ctx.error_page(&e),
    }
}

/// The profile page with a 2FA refusal (a wrong code, nothing to activate) in its section.
fn two_factor_refused(ctx: &Ctx, state: &Services, p: &Principal, e: &Error) -> Response {
    let page = profile_page(ctx, state, p, None, None, None, json!({"terr": e.message}));
    let mut resp = page;
    if resp.status() == StatusCode::OK {
        resp.set_status(crate::api::error::status_of(e.code));
    }
    resp
}
