//! The authentication layer: inside `Edge` and the request log, around the body limit and every
//! route. Rate limits come first: the address's budgets are consulted before any credential is
//! looked at. It then resolves the `Authorization` header (or the session cookie) through
//! `auth::AuthService` and puts the [`Principal`] into the request's extensions (where
//! `security::Authenticated` finds it) and onto the response (where the request log reads who
//! called). A bad credential is a 401 here, whatever the route; a read-only credential may only
//! read; a cookie may only change state from this origin. No path is exempt.

use std::sync::Arc;

use parking_lot::Mutex;
use poem::http::{header, HeaderValue, Method, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response};

use crate::api::catalog::ApiCatalog;
use crate::api::error::{convert_poem_error, ApiError};
use crate::api::middleware::{is_safe_method, RequestContext};
use crate::auth::ratelimit::{Bucket, Decision};
use crate::auth::{parse_authorization, Presented, SESSION_COOKIE};
use crate::clock::unix_now;
use crate::crypto::Secret;
use crate::domain::{Error, ErrorCode, Principal};
use crate::services::Services;

pub struct AuthLayer<E> {
    inner: E,
    state: Arc<Services>,
    /// Which operations need a credential (an operation that takes `Authenticated` declares
    /// `security`): an anonymous request to one is answered 401 at once, before its body is
    /// read or buffered, so a request that cannot succeed never makes the server hold its
    /// upload.
    catalog: &'static ApiCatalog,
}

impl<E> AuthLayer<E> {
    pub fn new(inner: E, state: Arc<Services>, catalog: &'static ApiCatalog) -> Self {
        Self { inner, state, catalog }
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

/// The path as the router sees it: runs of `/` collapsed and the trailing one trimmed (poem's
/// `NormalizePath`), so `//api/auth/login/` is the login route here too.
fn normalised_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for part in path.split('/').filter(|p| !p.is_empty()) {
        out.push('/');
        out.push_str(part);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Register, login and its second factor: limited per address by
/// `rate_limit.auth_per_minute`.
fn is_auth_attempt(req: &Request) -> bool {
    req.method() == Method::POST
        && matches!(
            normalised_path(req.uri().path()).as_str(),
            "/api/auth/register" | "/api/auth/login" | "/api/auth/token" | "/api/auth/verify-otp"
        )
}

/// A cookie-authenticated unsafe request must come from a page of this origin: its `Origin`
/// is this server (scheme and `Host`), or the browser says `Sec-Fetch-Site: same-origin` (or
/// `none`: typed by the user). `SameSite=Strict` alone lets sibling subdomains through.
pub(crate) fn same_origin(req: &Request, tls: bool) -> bool {
    let headers = req.headers();
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if site
        .is_some_and(|s| matches!(s.trim().to_ascii_lowercase().as_str(), "same-origin" | "none"))
    {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    let Some(host) = host else { return false };
    let scheme = if tls { "https" } else { "http" };
    let default_port = if tls { ":443" } else { ":80" };
    let strip = |h: &str| h.trim().to_ascii_lowercase().trim_end_matches(default_port).to_string();
    let Some(origin_host) = origin.trim().strip_prefix(scheme).and_then(|r| r.strip_prefix("://"))
    else {
        return false;
    };
    !origin_host.contains('/') && strip(origin_host) == strip(host)
}

fn error_response(e: Error) -> Response {
    let unauthenticated = e.code == ErrorCode::Unauthenticated;
    let mut resp = ApiError(e).into_response();
    if unauthenticated {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
    }
    resp
}

/// The `X-RateLimit-*` headers of a decision (also the deployment routes' own rate).
pub fn put_rate_headers(resp: &mut Response, d: &Decision) {
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

/// The headers' decision: the auth budget when it refused (or when the general one did not),
/// else the general one.
fn pick(general: Option<Decision>, attempt: Option<Decision>) -> Option<Decision> {
    match (general, attempt) {
        (Some(g), Some(a)) if a.retry_after.is_some() || g.retry_after.is_none() => Some(a),
        (None, a) => a,
        (g, _) => g,
    }
}

fn finish(mut resp: Response, decision: Option<Decision>) -> Response {
    if let Some(d) = decision {
        put_rate_headers(&mut resp, &d);
    }
    resp
}

impl<E: Endpoint> Endpoint for AuthLayer<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        match presented(&req) {
            None => Ok(self.anonymous(req).await),
            Some(presented) => Ok(self.with_credential(req, presented).await),
        }
    }
}

impl<E: Endpoint> AuthLayer<E> {
    fn client_ip(req: &Request) -> Option<std::net::IpAddr> {
        req.extensions().get::<RequestContext>().and_then(|c| c.client_ip)
    }

    /// No credential: the address's anonymous budget (and, on register and login, its auth
    /// budget) is spent before routing; a protected operation is refused before its body is
    /// read.
    async fn anonymous(&self, req: Request) -> Response {
        let ip = Self::client_ip(&req);
        let limiter = &self.state.credentials.limiter;
        let decision = limiter.enabled().then(|| {
            let now = unix_now();
            let general = limiter.check(Bucket::Anon(ip), now);
            let attempt = is_auth_attempt(&req).then(|| limiter.check(Bucket::Auth(ip), now));
            pick(Some(general), attempt)
        });
        let resp = match decision.flatten().and_then(|d| d.retry_after) {
            Some(secs) => error_response(Error::rate_limited(secs)),
            None if self.catalog.is_protected(req.method().as_str(), req.uri().path()) => respond(
                Err::<Response, _>(poem::Error::from_status(StatusCode::UNAUTHORIZED)),
                None,
            ),
            None => respond(self.inner.call(req).await, None),
        };
        finish(resp, decision.flatten())
    }

    /// A credential: refused at once while the address is over its auth budget; a password
    /// check (HTTP Basic not in the cache) spends that budget before hashing, and so does
    /// every refused credential. The user's budget applies once resolved.
    async fn with_credential(
        &self,
        mut req: Request,
        presented: Result<Presented, Error>,
    ) -> Response {
        let ip = Self::client_ip(&req);
        let auth = &self.state.credentials;
        let limiter = &auth.limiter;
        let limiting = limiter.enabled();
        let now = unix_now();
        if limiting {
            let d = limiter.peek(Bucket::Auth(ip), now);
            if let Some(secs) = d.retry_after {
                return finish(error_response(Error::rate_limited(secs)), Some(d));
            }
        }
        // The auth budget is spent at most once per request; the decision is kept for the
        // headers.
        let spent: Mutex<Option<Decision>> = Mutex::new(None);
        let spend = || -> Option<Decision> {
            if !limiting {
                return None;
            }
            let mut spent = spent.lock();
            if spent.is_none() {
                *spent = Some(limiter.check(Bucket::Auth(ip), now));
            }
            *spent
        };
        let before_hash = || match spend().and_then(|d| d.retry_after) {
            Some(secs) => Err(Error::rate_limited(secs)),
            None => Ok(()),
        };
        let resolved = match presented {
            Err(e) => Err(e),
            Ok(Presented::Session(_))
                if !is_safe_method(req.method()) && !self.same_origin(&req) =>
            {
                return error_response(Error::forbidden(
                    "Cookie-authenticated requests that change state must come from this origin.",
                ));
            }
            Ok(p) => {
                if is_auth_attempt(&req) {
                    if let Some(secs) = spend().and_then(|d| d.retry_after) {
                        return finish(error_response(Error::rate_limited(secs)), *spent.lock());
                    }
                }
                auth.authenticate_gated(&self.state.store, p, ip, &before_hash).await
            }
        };
        let principal = match resolved {
            Ok(p) => p,
            Err(e) => {
                spend();
                let general = limiting.then(|| limiter.check(Bucket::Anon(ip), now));
                let decision = pick(general, *spent.lock());
                let resp = match decision.and_then(|d| d.retry_after) {
                    Some(secs) if e.code != ErrorCode::RateLimited => {
                        error_response(Error::rate_limited(secs))
                    }
                    _ => error_response(e),
                };
                return finish(resp, decision);
            }
        };
        let general = limiting.then(|| limiter.check(Bucket::User(principal.user_id), now));
        let decision = pick(general, *spent.lock());
        let mut resp = match decision.and_then(|d| d.retry_after) {
            Some(secs) => error_response(Error::rate_limited(secs)),
            None if principal.read_only && !is_safe_method(req.method()) => {
                error_response(Error::forbidden(
                    "This credential is read-only: only GET, HEAD and OPTIONS are allowed.",
                ))
            }
            None => {
                req.extensions_mut().insert(principal.clone());
                respond(self.inner.call(req).await, None)
            }
        };
        resp.set_data(principal);
        finish(resp, decision)
    }

    fn same_origin(&self, req: &Request) -> bool {
        same_origin(req, !self.state.config.server.insecure_http)
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
