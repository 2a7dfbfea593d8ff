//! Signing in and out, and the first page: the user's organizations.

use std::sync::Arc;

use poem::http::{header, StatusCode};
use poem::web::{Data, Query};
use poem::{handler, Body, Request, Response};
use serde_json::json;

use super::form::Form;
use super::page::{field_errors, redirect, Ctx};
use crate::auth::ratelimit::Bucket;
use crate::auth::SESSION_COOKIE;
use crate::clock::unix_now;
use crate::domain::audit::Actor;
use crate::domain::{accounts, CredentialKind, Error, ErrorCode};
use crate::services::accounts::{LoginOutcome, LoginProof};
use crate::services::Services;

#[derive(serde::Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// Only a console path: never another site (an open redirect) or the API.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/admin/") && !n.contains("//") && !n.contains('\\') => n,
        _ => "/admin/",
    }
}

#[handler]
pub fn form(req: &Request, Query(q): Query<Next>) -> Response {
    let ctx = Ctx::of(req);
    let next = safe_next(q.next.as_deref());
    if ctx.principal.is_some() {
        return redirect(next);
    }
    ctx.render(
        StatusCode::OK,
        "login.html",
        "",
        json!({"title": "Sign in", "next": next, "ident": ""}),
    )
}

#[handler]
pub async fn submit(req: &Request, body: Body, state: Data<&Arc<Services>>) -> Response {
    let ctx = Ctx::of(req);
    let f = match Form::read(&ctx, body, state.config.server.max_body_bytes).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let next = safe_next(Some(f.get("next"))).to_string();
    let ident = f.get("username").trim().to_string();
    let again = |e: &Error| {
        let status = crate::api::error::status_of(e.code);
        let data =
            json!({"title": "Sign in", "next": next, "ident": ident, "errs": field_errors(e)});
        ctx.render(status, "login.html", "", data)
    };
    if let Some(e) = over_auth_budget(&ctx, &state) {
        return again(&e);
    }
    let proof =
        LoginProof::Password { ident: ident.clone(), password: f.get("password").to_string() };
    match state.login(proof, None, ctx.ip).await {
        Ok(LoginOutcome::OtpRequired { temp_otp_token }) => {
            otp_page(&ctx, StatusCode::OK, temp_otp_token.expose(), &next, None)
        }
        Ok(LoginOutcome::Done(done)) => {
            session_started(&ctx, &next, done.session.expose(), done.session_max_age)
        }
        Err(e) => again(&e),
    }
}

/// Sign-in attempts (password and code) spend the address's credential budget, as the API's
/// login and verify-otp do.
fn over_auth_budget(ctx: &Ctx, state: &Services) -> Option<Error> {
    let limiter = &state.credentials.limiter;
    if !limiter.enabled() {
        return None;
    }
    limiter.check(Bucket::Auth(ctx.ip), unix_now()).retry_after.map(Error::rate_limited)
}

/// The redirect that carries the new session cookie.
fn session_started(ctx: &Ctx, next: &str, session: &str, max_age: u64) -> Response {
    let tls = if ctx.tls { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={session}; Path=/; HttpOnly{tls}; SameSite=Strict; Max-Age={max_age}"
    );
    let mut resp = redirect(next);
    if let Ok(v) = header::HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// The second step of a 2FA account's sign-in. The temporary token travels in the form: it
/// is single-use, lives 300 s and is worth nothing without the code.
fn otp_page(ctx: &Ctx, status: StatusCode, token: &str, next: &str, e: Option<&Error>) -> Response {
    // The refusal's text goes beside the code field (its details are the API's shape).
    let errs = e.map(|e| json!({"otp": [e.message]}));
    let data =
        json!({"title": "Two-factor code", "next": next, "temp_otp_token": token, "errs": errs});
    ctx.render(status, "login_otp.html", "", data)
}

#[handler]
pub async fn submit_otp(req: &Request, body: Body, state: Data<&Arc<Services>>) -> Response {
    let ctx = Ctx::of(req);
    let f = page!(Form::read(&ctx, body, state.config.server.max_body_bytes).await);
    let next = safe_next(Some(f.get("next"))).to_string();
    let token = f.get("temp_otp_token").to_string();
    if let Some(e) = over_auth_budget(&ctx, &state) {
        return otp_page(&ctx, StatusCode::TOO_MANY_REQUESTS, &token, &next, Some(&e));
    }
    match state.verify_otp(&token, f.get("otp"), ctx.ip).await {
        Ok(done) => session_started(&ctx, &next, done.session.expose(), done.session_max_age),
        // Expired, used or unknown: start again with the password.
        Err(e) if e.code == ErrorCode::Unauthenticated => {
            let data = json!({"title": "Sign in", "next": next, "ident": "",
                "errs": field_errors(&Error::invalid("non_field_errors",
                    "The sign-in took too long or was already used: enter your password again."))});
            ctx.render(StatusCode::UNAUTHORIZED, "login.html", "", data)
        }
        Err(e) => {
            let status = crate::api::error::status_of(e.code);
            otp_page(&ctx, status, &token, &next, Some(&e))
        }
    }
}

#[handler]
pub async fn logout(req: &Request, body: Body, state: Data<&Arc<Services>>) -> Response {
    let ctx = Ctx::of(req);
    if let Err(resp) = Form::read(&ctx, body, state.config.server.max_body_bytes).await {
        return resp;
    }
    if let Some(p) = &ctx.principal {
        if let CredentialKind::Session { id } = p.credential {
            let actor = Actor::from_principal(p, ctx.ip);
            let revoked =
                state.store.write(move |tx| accounts::logout(tx, &actor, &[id], None)).await;
            if let Err(e) = revoked {
                return ctx.error_page(&e);
            }
        }
    }
    let tls = if ctx.tls { "; Secure" } else { "" };
    let mut resp = redirect("/admin/login/");
    let cleared = format!("{SESSION_COOKIE}=; Path=/; HttpOnly{tls}; SameSite=Strict; Max-Age=0");
    if let Ok(v) = header::HeaderValue::from_str(&cleared) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}
