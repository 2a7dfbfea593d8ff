//! The authentication layer: inside `Edge`, around every route. It resolves the
//! `Authorization` header (or the session cookie) through `auth::AuthService` and puts the
//! [`Principal`] into the request's extensions (where `security::Authenticated` finds it) and
//! onto the response (where the request log reads who called). A bad credential is a 401 here,
//! whatever the route; a read-only credential may only read.

use std::sync::Arc;

use poem::http::{header, HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response};

use crate::api::error::{convert_poem_error, ApiError};
use crate::api::middleware::is_safe_method;
use crate::app::AppState;
use crate::auth::{parse_authorization, Presented, SESSION_COOKIE};
use crate::crypto::Secret;
use crate::domain::{Error, Principal};

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

fn unauthorized(e: Error) -> Response {
    let mut resp = ApiError(e).into_response();
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
    resp
}

impl<E: Endpoint> Endpoint for AuthLayer<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let path = req.uri().path();
        if OWN_CREDENTIAL_PREFIXES.iter().any(|p| path.starts_with(p)) {
            return Ok(respond(self.inner.call(req).await, None));
        }
        let Some(presented) = presented(&req) else {
            return Ok(respond(self.inner.call(req).await, None));
        };
        let principal: Principal = match presented {
            Ok(p) => match self.state.auth.authenticate(&self.state.store, p).await {
                Ok(principal) => principal,
                Err(e) => return Ok(unauthorized(e)),
            },
            Err(e) => return Ok(unauthorized(e)),
        };
        if principal.read_only && !is_safe_method(req.method()) {
            let mut resp = ApiError(Error::forbidden(
                "This credential is read-only: only GET, HEAD and OPTIONS are allowed.",
            ))
            .into_response();
            resp.set_data(principal);
            return Ok(resp);
        }
        req.extensions_mut().insert(principal.clone());
        Ok(respond(self.inner.call(req).await, Some(principal)))
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
