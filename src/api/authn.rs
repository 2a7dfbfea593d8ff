//! The authentication layer: inside `Edge`, around every route. It resolves the
//! `Authorization` header (or the session cookie) through `auth::AuthService` and puts the
//! [`Principal`] into the request's extensions (where `security::Authenticated` finds it) and
//! onto the response (where the request log reads who called). A bad credential is a 401 here,
//! whatever the route; a read-only credential may only read.

use std::sync::Arc;

use poem::http::{header, HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response};

use crate::api::error::{convert_poem_error, ApiError};
use crate::api::middleware::{is_safe_method, RequestContext};
use crate::app::AppState;
use crate::auth::ratelimit::{Bucket, Decision};
use crate::auth::{parse_authorization, Presented, SESSION_COOKIE};
use crate::crypto::Secret;
use crate::domain::{unix_now, Error, ErrorCode, Principal};

/// Paths whose credentials are not Gatehouse accounts (API deployments carry their own keys).
const OWN_CREDENTIAL_PREFIXES: &[&str] = &["/deployment/"];

pub struct AuthLayer<E> {
    inner: E,
    state: Arc<AppState>,
}

impl<E> AuthLayer<E> {
    pub fn new(inner: E, state: Arc<AppState>) -> Self {
        Self { inner, state }
    }
}

/// What the request presented, if anything: the header wins over the cookie.
fn presented(req: &Request) -> Option<Result<Presented, Error>> {
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        return Some(match value.to_str() {
            Ok(v) => parse_authorization(v),
            Err(_) => Err(Error::unauthenticated("Invalid authorization header.")),
        });
    }
    let cookie = cookie_value(req, SESSION_COOKIE)?;
    Some(Ok(Presented::Session(Secret::new(cookie))))
}

/// The value of cookie `name` from the `Cookie` headers (poem's jar needs a middleware we
/// don't otherwise want).
pub fn cookie_value(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Register and login: limited per address by `rate_limit.auth_per_minute`.
fn is_auth_attempt(req: &Request) -> bool {
    req.method() == poem::http::Method::POST
        && matches!(
            req.uri().path().trim_end_matches('/'),
            "/api/auth/register" | "/api/auth/login" | "/api/auth/token"
        )
}

fn error_response(e: Error) -> Response {
    let unauthenticated = e.code == ErrorCode::Unauthenticated;
    let mut resp = ApiError(e).into_response();
    if unauthenticated {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
    }
    resp
}

fn put_rate_headers(resp: &mut Response, d: &Decision) {
    let headers = resp.headers_mut();
    for (name, value) in [
        ("x-ratelimit-limit", d.limit.to_string()),
        ("x-ratelimit-remaining", d.remaining.to_string()),
        ("x-ratelimit-reset", d.reset.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
}

impl<E: Endpoint> Endpoint for AuthLayer<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let path = req.uri().path();
        if OWN_CREDENTIAL_PREFIXES.iter().any(|p| path.starts_with(p)) {
            return Ok(respond(self.inner.call(req).await, None));
        }
        let ip = req.extensions().get::<RequestContext>().and_then(|c| c.client_ip);
        let auth = &self.state.auth;
        let resolved = match presented(&req) {
            None => Ok(None),
            Some(Ok(p)) => auth.authenticate(&self.state.store, p, ip).await.map(Some),
            Some(Err(e)) => Err(e),
        };
        let decision = if auth.limiter.enabled() {
            let now = unix_now();
            let bucket = match &resolved {
                Ok(Some(p)) => Bucket::User(p.user_id),
                _ => Bucket::Anon(ip),
            };
            let general = auth.limiter.check(bucket, now);
            let attempt = is_auth_attempt(&req).then(|| auth.limiter.check(Bucket::Auth(ip), now));
            match attempt {
                Some(a) if a.retry_after.is_some() || general.retry_after.is_none() => Some(a),
                _ => Some(general),
            }
        } else {
            None
        };
        let mut resp = match (&resolved, decision.and_then(|d| d.retry_after)) {
            (_, Some(secs)) => error_response(Error::rate_limited(secs)),
            (Err(e), None) => error_response(e.clone()),
            (Ok(Some(p)), None) if p.read_only && !is_safe_method(req.method()) => {
                error_response(Error::forbidden(
                    "This credential is read-only: only GET, HEAD and OPTIONS are allowed.",
                ))
            }
            (Ok(principal), None) => {
                if let Some(p) = principal {
                    req.extensions_mut().insert(p.clone());
                }
                respond(self.inner.call(req).await, None)
            }
        };
        if let Ok(Some(p)) = resolved {
            resp.set_data(p);
        }
        if let Some(d) = decision {
            put_rate_headers(&mut resp, &d);
        }
        Ok(resp)
    }
}
fn respond<R: IntoResponse>(out: poem::Result<R>, principal: Option<Principal>) -> Response {
    let mut resp = match out {
        Ok(r) => r.into_response(),
        Err(e) => convert_poem_error(e),
    };
    if resp.status() == StatusCode::UNAUTHORIZED
        && !resp.headers().contains_key(header::WWW_AUTHENTICATE)
    {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
    }
    if let Some(p) = principal {
        resp.set_data(p);
    }
    resp
}
