//! The web console at `/admin/`: server-rendered pages over the same domain functions as the
//! API (never the HTTP API itself). It sits beside the API's authentication layer rather than
//! inside it: a stale session cookie here is a sign-in page, not a JSON 401, and every refusal
//! is a page. Its own layer ([`ConsoleLayer`]) does what the API's does for cookies — rate
//! limits, same-origin checks on unsafe methods — and adds a CSRF token per browser and the
//! headers every page carries (CSP without inline code, no framing, no caching).

// The `Err` of a console helper is the page to answer instead, made at most once per request:
// its size does not matter, and boxing it would only add noise to every handler.
#![allow(clippy::result_large_err)]

/// The value of a helper's `Ok`, or its `Err` (the answer already made: a redirect to sign in,
/// a refusal page) returned from the handler.
macro_rules! page {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(resp) => return resp,
        }
    };
}

mod audit;
mod chart;
mod deployments;
mod form;
mod keys;
mod orgs;
mod page;
mod profile;
mod secrets;
mod signin;
mod tokens;
mod traffic;

use std::net::IpAddr;
use std::sync::Arc;

use poem::http::{header, HeaderValue, Method, StatusCode};
use poem::{get, post, Endpoint, EndpointExt, IntoResponse, Request, Response, Route};

use crate::api::middleware::{is_safe_method, RequestContext};
use crate::auth::ratelimit::Bucket;
use crate::auth::{Presented, SESSION_COOKIE};
use crate::clock::unix_now;
use crate::crypto::{random_hex, Secret};
use crate::domain::Principal;
use crate::services::Services;

pub use page::Ctx;

/// Where the console lives.
pub const PREFIX: &str = "/admin";
/// The per-browser CSRF token (double-submit: the form's hidden field must equal it).
const CSRF_COOKIE: &str = "gatehouse_csrf";

/// `path` is the console's (it is not an API route).
pub fn owns(path: &str) -> bool {
    path == PREFIX || path.starts_with("/admin/")
}

/// Every console route, behind [`ConsoleLayer`].
pub fn endpoint(state: Arc<Services>) -> impl Endpoint<Output = Response> {
    let routes = Route::new()
        .at("/admin", get(orgs::home))
        .at("/admin/", get(orgs::home))
        .at("/admin/orgs/", post(orgs::create))
        .at("/admin/orgs/:id/", get(orgs::detail))
        .at("/admin/orgs/:id/members/", post(orgs::invite))
        .at("/admin/orgs/:id/members/:user/role/", post(orgs::set_role))
        .at("/admin/orgs/:id/members/:user/remove/", post(orgs::remove))
        .at("/admin/profile/", get(profile::show).post(profile::update))
        .at("/admin/profile/password/", post(profile::password))
        .at("/admin/profile/2fa/", post(profile::totp_enrol))
        .at("/admin/profile/2fa/activate/", post(profile::totp_activate))
        .at("/admin/profile/2fa/disable/", post(profile::totp_disable))
        .at("/admin/login/", get(signin::form).post(signin::submit))
        .at("/admin/login/otp/", post(signin::submit_otp))
        .at("/admin/logout/", post(signin::logout))
        .at("/admin/static/:name", get(page::asset))
        .at("/admin/projects/", get(secrets::project_list).post(secrets::create_project))
        .at("/admin/projects/:id/", get(secrets::project_detail))
        .at("/admin/projects/:id/environments/", post(secrets::create_environment))
        .at("/admin/environments/:id/", get(secrets::environment_detail))
        .at("/admin/environments/:id/variables/", post(secrets::create_variable))
        .at("/admin/environments/:id/export/", get(secrets::export))
        .at("/admin/environments/:id/import/", post(secrets::import))
        .at("/admin/variables/:id/", get(secrets::variable_detail).post(secrets::update_variable))
        .at("/admin/variables/:id/delete/", post(secrets::delete_variable))
        .at("/admin/variables/:id/rollback/", post(secrets::rollback))
        .at("/admin/keys/", get(keys::list).post(keys::create))
        .at("/admin/keys/:id/revoke/", post(keys::revoke))
        .at("/admin/keys/:id/rotate/", post(keys::rotate))
        .at("/admin/keys/:id/active/", post(keys::set_active))
        .at("/admin/tokens/", get(tokens::list).post(tokens::create))
        .at("/admin/tokens/:id/revoke/", post(tokens::revoke))
        .at("/admin/tokens/:id/scope/", post(tokens::scope))
        .at("/admin/tokens/:id/reissue/", post(tokens::reissue))
        .at("/admin/orgs/:org/deployments/", get(deployments::list).post(deployments::create))
        .at("/admin/orgs/:org/workflows/", post(deployments::create_workflow))
        .at("/admin/orgs/:org/deployments/:id/", get(deployments::detail))
        .at("/admin/orgs/:org/deployments/:id/rotate/", post(deployments::rotate))
        .at("/admin/audit/", get(audit::list))
        .at("/admin/traffic/", get(traffic::overview))
        .data(Arc::clone(&state));
    ConsoleLayer { inner: routes, state }
}

/// Rate limits, the session, the CSRF cookie, the origin check and the page headers.
pub struct ConsoleLayer<E> {
    inner: E,
    state: Arc<Services>,
}

impl<E: Endpoint> Endpoint for ConsoleLayer<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let ip = req.extensions().get::<RequestContext>().and_then(|c| c.client_ip);
        let principal = self.session(&req, ip).await;
        let limiter = &self.state.credentials.limiter;
        if limiter.enabled() {
            let bucket = match &principal {
                Some(p) => Bucket::User(p.user_id),
                None => Bucket::Anon(ip),
            };
            if let Some(secs) = limiter.check(bucket, unix_now()).retry_after {
                let mut resp = page::message(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many requests",
                    &format!("Slow down: try again in {secs} seconds."),
                );
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    resp.headers_mut().insert(header::RETRY_AFTER, v);
                }
                return Ok(finish(resp));
            }
        }
        let tls = !self.state.config.server.insecure_http;
        if !is_safe_method(req.method()) && !crate::api::authn::same_origin(&req, tls) {
            let resp = page::message(
                StatusCode::FORBIDDEN,
                "Refused",
                "Forms may only be sent from this console's own pages.",
            );
            return Ok(finish(resp));
        }
        let existing = crate::api::authn::cookie_value(&req, CSRF_COOKIE)
            .filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()));
        let (csrf, new_cookie) = match existing {
            Some(t) => (t, None),
            None => match random_hex(16) {
                Ok(t) => (t.clone(), Some(t)),
                Err(_) => {
                    let resp = page::message(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Unavailable",
                        "The server could not make a form token. Try again.",
                    );
                    return Ok(finish(resp));
                }
            },
        };
        let stale_session =
            principal.is_none() && crate::api::authn::cookie_value(&req, SESSION_COOKIE).is_some();
        req.extensions_mut().insert(Ctx { principal: principal.clone(), csrf, ip, tls });
        let is_head = req.method() == Method::HEAD;
        let mut resp = match self.inner.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => page::from_poem_error(&e),
        };
        if is_head {
            resp.set_body(());
        }
        if let Some(t) = new_cookie {
            append_cookie(&mut resp, &format!("{CSRF_COOKIE}={t}; Path=/admin; {}", flags(tls)));
        }
        if stale_session {
            append_cookie(
                &mut resp,
                &format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; {}", flags(tls)),
            );
        }
        if let Some(p) = principal {
            // The request log reads who called from here, as for API routes.
            resp.set_data(p);
        }
        Ok(finish(resp))
    }
}

impl<E> ConsoleLayer<E> {
    /// The signed-in user behind the session cookie; anything else (no cookie, an expired or
    /// revoked one) is a signed-out visitor. Only the session cookie counts: the console is a
    /// browser's, and an `Authorization` header is not how a browser signs in here.
    async fn session(&self, req: &Request, ip: Option<IpAddr>) -> Option<Principal> {
        let cookie = crate::api::authn::cookie_value(req, SESSION_COOKIE)?;
        let presented = Presented::Session(Secret::new(cookie));
        self.state.credentials.authenticate(&self.state.store, presented, ip).await.ok()
    }
}

fn flags(tls: bool) -> &'static str {
    if tls {
        "HttpOnly; Secure; SameSite=Strict"
    } else {
        "HttpOnly; SameSite=Strict"
    }
}

fn append_cookie(resp: &mut Response, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The headers of every console answer. Pages may show secret values, so nothing is cached
/// (the static assets set their own `Cache-Control` first and keep it).
fn finish(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    let set = |h: &mut poem::http::HeaderMap, name: header::HeaderName, value: &'static str| {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, header::CACHE_CONTROL, "no-store");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "same-origin");
    resp
}
