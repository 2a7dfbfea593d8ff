//! Authentication as a type: every protected operation takes [`Authenticated`], which can only
//! be obtained when the authentication layer resolved a [`Principal`] for the request. The
//! variants exist so the OpenAPI document declares every credential kind Gatehouse accepts.

use poem::Request;
use poem_openapi::auth::{ApiKey, Basic, Bearer};
use poem_openapi::SecurityScheme;

use crate::domain::Principal;

fn resolved(req: &Request) -> Option<Principal> {
    req.extensions().get::<Principal>().cloned()
}

/// `Authorization: Token <40 hex>` — the login token.
#[derive(SecurityScheme)]
#[oai(
    rename = "Token",
    ty = "api_key",
    key_name = "Authorization",
    key_in = "header",
    checker = "token_checker"
)]
pub struct TokenAuth(pub Principal);

async fn token_checker(req: &Request, _: ApiKey) -> Option<Principal> {
    resolved(req)
}

/// `Authorization: Bearer <JWT | personal access token | API key>`.
#[derive(SecurityScheme)]
#[oai(rename = "bearerAuth", ty = "bearer", bearer_format = "JWT", checker = "bearer_checker")]
pub struct BearerAuth(pub Principal);

async fn bearer_checker(req: &Request, _: Bearer) -> Option<Principal> {
    resolved(req)
}

/// `Authorization: Api-Key <key>` — a user API key.
#[derive(SecurityScheme)]
#[oai(
    rename = "Api-Key",
    ty = "api_key",
    key_name = "Authorization",
    key_in = "header",
    checker = "api_key_checker"
)]
pub struct ApiKeyAuth(pub Principal);

async fn api_key_checker(req: &Request, _: ApiKey) -> Option<Principal> {
    resolved(req)
}

/// HTTP Basic with email (or username) and password.
#[derive(SecurityScheme)]
#[oai(rename = "basicAuth", ty = "basic", checker = "basic_checker")]
pub struct BasicAuth(pub Principal);

async fn basic_checker(req: &Request, _: Basic) -> Option<Principal> {
    resolved(req)
}

/// The session cookie set by login.
#[derive(SecurityScheme)]
#[oai(
    rename = "cookieAuth",
    ty = "api_key",
    key_name = "gatehouse_session",
    key_in = "cookie",
    checker = "cookie_checker"
)]
pub struct CookieAuth(pub Principal);

async fn cookie_checker(req: &Request, _: ApiKey) -> Option<Principal> {
    resolved(req)
}

/// Any accepted credential.
#[derive(SecurityScheme)]
pub enum Authenticated {
    Token(TokenAuth),
    Bearer(BearerAuth),
    ApiKey(ApiKeyAuth),
    Basic(BasicAuth),
    Cookie(CookieAuth),
}

impl Authenticated {
    pub fn principal(&self) -> &Principal {
        match self {
            Authenticated::Token(TokenAuth(p))
            | Authenticated::Bearer(BearerAuth(p))
            | Authenticated::ApiKey(ApiKeyAuth(p))
            | Authenticated::Basic(BasicAuth(p))
            | Authenticated::Cookie(CookieAuth(p)) => p,
        }
    }

    pub fn into_principal(self) -> Principal {
        match self {
            Authenticated::Token(TokenAuth(p))
            | Authenticated::Bearer(BearerAuth(p))
            | Authenticated::ApiKey(ApiKeyAuth(p))
            | Authenticated::Basic(BasicAuth(p))
            | Authenticated::Cookie(CookieAuth(p)) => p,
        }
    }
}
