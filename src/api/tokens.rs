//! SimpleJWT's routes: `/api/auth/token/` (obtain a pair), `/api/auth/token/refresh/`
//! (rotate: the old refresh token dies), `/api/auth/token/verify/`; and
//! `/api/auth/password/change/`.

use std::collections::BTreeMap;
use std::sync::Arc;

use poem::web::Data;
use poem::Request;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use crate::api::auth::client_ip;
use crate::api::error::{ApiError, ApiResult};
use crate::api::security::Authenticated;
use crate::api::tags::ApiTags;
use crate::auth::digest_of;
use crate::auth::issue::choose_company;
use crate::clock::unix_now;
use crate::crypto::Secret;
use crate::domain::accounts;
use crate::domain::sessions::{self, Refresh};
use crate::domain::Error;
use crate::services::password_change::PasswordChange;
use crate::services::Services;

#[derive(Default)]
pub struct TokenApi;

#[derive(Debug, Object)]
pub struct TokenObtainRequest {
    pub email: Option<String>,
    pub username: Option<String>,
    pub password: String,
    /// The organization the tokens speak for (default: the user's first).
    pub company_id: Option<u64>,
}

#[derive(Debug, Object)]
pub struct TokenPair {
    pub access: String,
    pub refresh: String,
}

#[derive(Debug, Object)]
pub struct TokenRefreshRequest {
    pub refresh: String,
}

#[derive(Debug, Object)]
pub struct TokenVerifyRequest {
    pub token: String,
}

#[derive(Debug, Object)]
pub struct PasswordChangeRequest {
    pub old_password: String,
    /// The new password (or `new_password1`, dj-rest-auth's name).
    pub new_password: Option<String>,
    pub new_password1: Option<String>,
    /// Confirmation (or `confirm_password`), must match when given.
    pub new_password2: Option<String>,
    pub confirm_password: Option<String>,
}

#[derive(Debug, Object)]
pub struct DetailResponse {
    pub detail: String,
}

fn token_invalid() -> ApiError {
    ApiError(
        Error::unauthenticated("Token is invalid or expired")
            .with_details(serde_json::Value::String("token_not_valid".into())),
    )
}

/// Verifies a refresh token, issues a new pair for the same organization and retires the old
/// refresh token (a reused one revokes its whole family). Returns the pair and the access
/// token's lifetime in seconds.
async fn rotate_refresh(
    state: &Arc<Services>,
    req: &Request,
    refresh: &str,
) -> Result<(crate::auth::issue::IssuedPair, i64), ApiError> {
    let now = unix_now();
    let claims = state.credentials.jwt.verify(refresh, now).map_err(|_| token_invalid())?;
    if claims.token_type != "refresh" {
        return Err(token_invalid());
    }
    let user = state
        .store
        .read(|tx| accounts::get(tx, claims.user_id))?
        .filter(|u| u.is_active && u.credentials_epoch == claims.cev)
        .ok_or_else(token_invalid)?;
    let memberships = state.store.read(|tx| accounts::memberships_of(tx, user.id))?;
    // The organization stays the same while the user still belongs to it.
    let company = choose_company(&memberships, claims.company_id)
        .or_else(|_| choose_company(&memberships, None))?;
    let pair = state.credentials.issue_pair(&user, company, now)?;
    let (old_digest, grant) = (digest_of(&claims.jti), pair.refresh_grant.clone());
    let actor = accounts::actor_for(&user, client_ip(req));
    let outcome = state
        .store
        .write(move |tx| sessions::exchange_refresh(tx, &user, &old_digest, &grant, now, &actor))
        .await?;
    match outcome {
        Refresh::Rotated(_) => {
            let minutes = state.config.auth.access_token_minutes;
            let access_secs = i64::try_from(minutes.saturating_mul(60)).unwrap_or(900);
            Ok((pair, access_secs))
        }
        Refresh::Reused(revoked) => {
            tracing::warn!(revoked, "refresh token reused; its family is revoked");
            Err(token_invalid())
        }
        Refresh::Invalid => Err(token_invalid()),
    }
}

/// ShellUI's refresh fields, in a JSON or form body (or none: the query may carry them).
#[derive(Debug, Default, serde::Deserialize)]
pub struct ShellUiRefreshBody {
    pub grant_type: Option<String>,
    pub refresh_token: Option<String>,
}

impl ShellUiRefreshBody {
    /// An empty body is no fields; JSON or `application/x-www-form-urlencoded` otherwise.
    fn parse(content_type: &str, bytes: &[u8]) -> Result<Self, Error> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        if content_type.starts_with("application/x-www-form-urlencoded") {
            let mut out = Self::default();
            for (k, v) in form_urlencoded::parse(bytes) {
                match k.as_ref() {
                    "grant_type" => out.grant_type = Some(v.into_owned()),
                    "refresh_token" => out.refresh_token = Some(v.into_owned()),
                    _ => {}
                }
            }
            return Ok(out);
        }
        serde_json::from_slice(bytes)
            .map_err(|_| Error::invalid("body", "Expected a JSON object or a form body."))
    }
}

/// ShellUI's token answer.
#[derive(Debug, Object)]
pub struct ShellUiTokens {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds the access token lives.
    pub expires_in: i64,
    /// When it expires, Unix seconds.
    pub expires_at: i64,
}

#[OpenApi(tag = "ApiTags::Auth")]
impl TokenApi {
    /// Obtain a JWT access/refresh pair with email (or username) and password.
    #[oai(path = "/api/auth/token/", method = "post", operation_id = "auth_token_create")]
    async fn obtain(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        body: Json<TokenObtainRequest>,
    ) -> ApiResult<Json<TokenPair>> {
        let b = body.0;
        let ident = b.email.or(b.username).unwrap_or_default();
        let user = state.password_login(&ident, b.password, client_ip(req), "token").await?;
        let memberships = state.store.read(|tx| accounts::memberships_of(tx, user.id))?;
        let company = choose_company(&memberships, b.company_id)?;
        let pair = state.credentials.issue_pair(&user, company, unix_now())?;
        let grant = pair.refresh_grant.clone();
        state
            .store
            .write(move |tx| -> Result<u64, Error> {
                let user = accounts::get(tx, user.id)?.ok_or_else(|| Error::not_found("User"))?;
                accounts::issue_token(tx, &user, &grant)
            })
            .await?;
        Ok(Json(TokenPair { access: pair.access.into_inner(), refresh: pair.refresh.into_inner() }))
    }

    /// Exchange a refresh token for a new pair; the old refresh token stops working.
    #[oai(
        path = "/api/auth/token/refresh/",
        method = "post",
        operation_id = "auth_token_refresh_create"
    )]
    async fn refresh(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        body: Json<TokenRefreshRequest>,
    ) -> ApiResult<Json<TokenPair>> {
        let (pair, _) = rotate_refresh(&state, req, &body.0.refresh).await?;
        Ok(Json(TokenPair { access: pair.access.into_inner(), refresh: pair.refresh.into_inner() }))
    }

    /// ShellUI's token refresh: `grant_type=refresh_token` and `refresh_token`, in the query or
    /// the body (JSON or form). Rotates like `/api/auth/token/refresh/` (the old refresh token
    /// dies) and answers ShellUI's shape.
    #[oai(path = "/api/v1/token", method = "post", operation_id = "shellui_token_create")]
    async fn shellui_token(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        grant_type: Query<Option<String>>,
        refresh_token: Query<Option<String>>,
        body: poem::Body,
    ) -> ApiResult<Json<ShellUiTokens>> {
        let content_type = req.content_type().unwrap_or_default().to_ascii_lowercase();
        let bytes =
            body.into_vec().await.map_err(|_| Error::invalid("body", "Unreadable body."))?;
        let from_body = ShellUiRefreshBody::parse(&content_type, &bytes)?;
        let grant = grant_type.0.or(from_body.grant_type).unwrap_or_default();
        if grant != "refresh_token" {
            return Err(Error::invalid(
                "grant_type",
                "Unsupported grant_type: only refresh_token is supported.",
            )
            .into());
        }
        let token = refresh_token.0.or(from_body.refresh_token).unwrap_or_default();
        if token.trim().is_empty() {
            return Err(Error::invalid("refresh_token", "This field is required.").into());
        }
        let now = unix_now();
        let (pair, access_secs) = rotate_refresh(&state, req, token.trim()).await?;
        Ok(Json(ShellUiTokens {
            access_token: pair.access.into_inner(),
            refresh_token: pair.refresh.into_inner(),
            token_type: "bearer".into(),
            expires_in: access_secs,
            expires_at: now + access_secs,
        }))
    }

    /// Check a token: `{}` when valid, 401 otherwise.
    #[oai(
        path = "/api/auth/token/verify/",
        method = "post",
        operation_id = "auth_token_verify_create"
    )]
    async fn verify(
        &self,
        state: Data<&Arc<Services>>,
        body: Json<TokenVerifyRequest>,
    ) -> ApiResult<Json<BTreeMap<String, String>>> {
        let token = body.0.token;
        let claims =
            state.credentials.jwt.verify(&token, unix_now()).map_err(|_| token_invalid())?;
        let valid = match claims.token_type.as_str() {
            "refresh" => {
                state.store.read(|tx| sessions::refresh_is_live(tx, &digest_of(&claims.jti)))?
            }
            _ => state
                .credentials
                .authenticate(
                    &state.store,
                    crate::auth::Presented::Bearer(Secret::new(token)),
                    None,
                )
                .await
                .is_ok(),
        };
        if !valid {
            return Err(token_invalid());
        }
        Ok(Json(BTreeMap::new()))
    }

    /// Change the caller's password; every other token, session and refresh token of the
    /// account stops working.
    #[oai(
        path = "/api/auth/password/change/",
        method = "post",
        operation_id = "auth_password_change_create"
    )]
    async fn password_change(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        body: Json<PasswordChangeRequest>,
    ) -> ApiResult<Json<DetailResponse>> {
        let p = auth.into_principal();
        let b = body.0;
        let change = PasswordChange {
            old: b.old_password,
            new: b.new_password.or(b.new_password1).unwrap_or_default(),
            confirm: b.new_password2.or(b.confirm_password),
            new_field: "new_password",
            confirm_field: "new_password2",
        };
        state.change_password(&p, change, client_ip(req)).await?;
        Ok(Json(DetailResponse { detail: "New password has been saved.".into() }))
    }
}
