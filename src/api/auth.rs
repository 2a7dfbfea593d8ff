//! `/api/auth/…`: registration, login (JSON or HTTP Basic), logout and the profile
//! (keynest-api.md, with KeyNest's real login body).

use std::net::IpAddr;
use std::sync::Arc;

use poem::web::Data;
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Union};

use crate::api::body::OptionalJson;
use crate::api::error::{ApiError, ApiResult};
use crate::api::middleware::RequestContext;
use crate::api::security::Authenticated;
use crate::api::tags::ApiTags;
use crate::auth::{digest_of, SESSION_COOKIE};
use crate::clock::{rfc3339_from_unix, unix_now};
use crate::domain::accounts::{self, FormNames, ProfilePatch};
use crate::domain::records::{Organization, User};
use crate::domain::sessions;
use crate::domain::{CredentialKind, Error, Principal, Role};
use crate::services::accounts::{LoginOutcome, LoginProof, Registered, RegistrationForm};
use crate::services::Services;

#[derive(Default)]
pub struct AuthApi;

/// The client address the edge resolved.
pub fn client_ip(req: &Request) -> Option<IpAddr> {
    req.extensions().get::<RequestContext>().and_then(|c| c.client_ip)
}

/// A user as KeyNest's `UserSerializer` shows it.
#[derive(Debug, Object)]
#[oai(rename = "User")]
pub struct UserBody {
    pub id: u64,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// "First Last", or the username when both are blank.
    pub full_name: String,
    pub date_joined: String,
    pub last_login: Option<String>,
    pub is_active: bool,
    pub is_staff: bool,
}

impl From<&User> for UserBody {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            username: u.username.clone(),
            email: u.email.clone(),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            full_name: u.full_name(),
            date_joined: rfc3339_from_unix(u.date_joined),
            last_login: u.last_login.map(rfc3339_from_unix),
            is_active: u.is_active,
            is_staff: u.is_staff,
        }
    }
}

/// KeyNest's form (`username`, `email`, `password`, `confirm_password`) or dj-rest-auth's
/// (`email`, `password1`, `password2`, optional `username`): the second is chosen when it
/// sends `password1` or `password2` and no `password`.
#[derive(Debug, Object)]
pub struct RegisterRequest {
    /// 3–150 characters: letters, digits, `_`, `-`, `.`; unique. Required in KeyNest's form;
    /// in dj-rest-auth's, derived from the email (made unique) when absent.
    pub username: Option<String>,
    /// Unique (case-insensitive).
    pub email: String,
    /// KeyNest's form: at least `auth.password_min_length` (10) characters, not the email.
    pub password: Option<String>,
    /// KeyNest's form: the same password again.
    pub confirm_password: Option<String>,
    /// dj-rest-auth's form: the password (same rules).
    pub password1: Option<String>,
    /// dj-rest-auth's form: the same password again.
    pub password2: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

#[derive(Debug, Object)]
pub struct OrganizationRef {
    pub id: u64,
    pub name: String,
}

#[derive(Debug, Object)]
pub struct RegisterResponse {
    pub message: String,
    /// The login token (40 hex), shown once.
    pub token: String,
    pub user: UserBody,
    /// The personal organization created with the account.
    pub organization: OrganizationRef,
}

#[derive(ApiResponse)]
pub enum RegisterResult {
    /// Account, personal organization and token created.
    #[oai(status = 201)]
    Created(Json<RegisterResponse>),
}

#[derive(Debug, Object)]
pub struct LoginRequest {
    /// Email (or username) of the account.
    pub email: Option<String>,
    /// Username (or email) of the account, instead of `email`.
    pub username: Option<String>,
    pub password: String,
    /// The organization the JWTs speak for (default: the user's first).
    pub company_id: Option<u64>,
}

#[derive(Debug, Object)]
pub struct OrganizationRole {
    pub id: u64,
    pub name: String,
    /// `admin`, `editor` or `viewer`.
    pub role: String,
}

#[derive(Debug, Object)]
pub struct LoginResponse {
    pub message: String,
    /// A new login token (40 hex) for `Authorization: Token …`.
    pub token: String,
    pub user: UserBody,
    pub organizations: Vec<OrganizationRole>,
    /// A JWT access token (`Authorization: Bearer …`).
    pub access: String,
    /// A JWT refresh token for `/api/auth/token/refresh/`.
    pub refresh: String,
    /// Pegasus's login answer: `success` (its `LoginViewWith2fa`).
    pub status: String,
    /// `User logged in.`
    pub detail: String,
    /// Pegasus's `jwt` object: the same pair, with the user in dj-rest-auth's shape.
    pub jwt: LoginJwt,
}

/// The pair again, where Pegasus's SPA reads it (`res.jwt.access`).
#[derive(Debug, Object)]
pub struct LoginJwt {
    pub access: String,
    pub refresh: String,
    pub user: crate::api::auth_user::PegasusUserBody,
}

/// Pegasus's answer for an account with 2FA on: no token, no JWT, no cookie.
#[derive(Debug, Object)]
pub struct OtpRequiredResponse {
    /// `otp_required`.
    pub status: String,
    /// `OTP required for 2FA`.
    pub detail: String,
    /// A UUID4 for `POST /api/auth/verify-otp/` with the code (valid 300 s, once).
    pub temp_otp_token: String,
}

/// A login's answer: logged in, or (2FA on) a second factor required.
#[derive(Debug, Union)]
#[oai(one_of)]
pub enum LoginAnswer {
    LoggedIn(Box<LoginResponse>),
    OtpRequired(OtpRequiredResponse),
}

#[derive(ApiResponse)]
pub enum LoginResult {
    /// Logged in (and the `gatehouse_session` cookie set), or, for an account with 2FA on,
    /// `{status: "otp_required", detail, temp_otp_token}` and nothing else.
    #[oai(status = 200)]
    Ok(Json<LoginAnswer>, #[oai(header = "Set-Cookie")] Option<String>),
}

#[derive(Debug, Object)]
pub struct MessageResponse {
    pub message: String,
}

#[derive(ApiResponse)]
pub enum LogoutResult {
    /// The credential used (and the session cookie sent) no longer work.
    #[oai(status = 200)]
    Ok(Json<MessageResponse>, #[oai(header = "Set-Cookie")] String),
}

#[derive(Debug, Object)]
pub struct ProfileUpdateRequest {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub username: Option<String>,
}

pub(crate) fn session_cookie(secret: &str, max_age: u64) -> String {
    format!(
        "{SESSION_COOKIE}={secret}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={max_age}"
    )
}

fn cleared_cookie() -> String {
    session_cookie("", 0)
}

pub(crate) fn organization_roles(orgs: Vec<(Organization, Role)>) -> Vec<OrganizationRole> {
    orgs.into_iter()
        .map(|(o, r)| OrganizationRole { id: o.id, name: o.name, role: r.as_str().to_string() })
        .collect()
}

#[OpenApi(tag = "ApiTags::Auth")]
impl AuthApi {
    /// Create an account, its personal organization (with the new user as admin) and a token.
    #[oai(path = "/api/auth/register/", method = "post", operation_id = "auth_register_create")]
    async fn register(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        body: Json<RegisterRequest>,
    ) -> ApiResult<RegisterResult> {
        let b = body.0;
        let dj_rest_auth = b.password.is_none() && (b.password1.is_some() || b.password2.is_some());
        let (password, confirm_password, names) = if dj_rest_auth {
            (b.password1, b.password2, FormNames::DJ_REST_AUTH)
        } else {
            (b.password, b.confirm_password, FormNames::KEYNEST)
        };
        let form = RegistrationForm {
            username: b.username,
            email: b.email,
            password,
            confirm_password,
            first_name: b.first_name.unwrap_or_default(),
            last_name: b.last_name.unwrap_or_default(),
            names,
        };
        let Registered { user, organization: org, token } =
            state.register(form, client_ip(req)).await?;
        Ok(RegisterResult::Created(Json(RegisterResponse {
            message: "User registered successfully".into(),
            token: token.into_inner(),
            user: UserBody::from(&user),
            organization: OrganizationRef { id: org.id, name: org.name },
        })))
    }

    /// Log in with `{email or username, password}` or HTTP Basic: a new token, the user, their
    /// organizations, and a session cookie; or, for an account with TOTP 2FA on,
    /// `otp_required` and a `temp_otp_token` for `/api/auth/verify-otp/` (HTTP Basic refused).
    #[oai(path = "/api/auth/login/", method = "post", operation_id = "auth_login_create")]
    async fn login(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        body: OptionalJson<LoginRequest>,
    ) -> ApiResult<LoginResult> {
        let (proof, requested) =
            match body.0 {
                Some(b) => {
                    let ident = b.email.or(b.username).unwrap_or_default();
                    (LoginProof::Password { ident, password: b.password }, b.company_id)
                }
                None => match req.extensions().get::<Principal>() {
                    Some(p) if p.credential == CredentialKind::Basic => {
                        (LoginProof::Basic { user_id: p.user_id }, None)
                    }
                    _ => return Err(Error::invalid(
                        "non_field_errors",
                        "Send {email or username, password} as JSON, or HTTP Basic credentials.",
                    )
                    .into()),
                },
            };
        let done = match state
            .login(proof, requested, client_ip(req))
            .await
            .map_err(with_dj_rest_auth_body)?
        {
            LoginOutcome::Done(done) => *done,
            LoginOutcome::OtpRequired { temp_otp_token } => {
                return Ok(LoginResult::Ok(
                    Json(LoginAnswer::OtpRequired(OtpRequiredResponse {
                        status: "otp_required".into(),
                        detail: "OTP required for 2FA".into(),
                        temp_otp_token: temp_otp_token.into_inner(),
                    })),
                    None,
                ))
            }
        };
        let cookie = session_cookie(done.session.expose(), done.session_max_age);
        let (access, refresh) = (done.access.into_inner(), done.refresh.into_inner());
        let jwt = LoginJwt {
            access: access.clone(),
            refresh: refresh.clone(),
            user: crate::api::auth_user::PegasusUserBody::from(&done.user),
        };
        Ok(LoginResult::Ok(
            Json(LoginAnswer::LoggedIn(Box::new(LoginResponse {
                message: "Login successful".into(),
                token: done.token.into_inner(),
                user: UserBody::from(&done.user),
                organizations: organization_roles(done.organizations),
                access,
                refresh,
                status: "success".into(),
                detail: "User logged in.".into(),
                jwt,
            }))),
            Some(cookie),
        ))
    }

    /// Log out: revokes the token or session used, and the session cookie sent with it.
    #[oai(path = "/api/auth/logout/", method = "post", operation_id = "auth_logout_create")]
    async fn logout(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
    ) -> ApiResult<LogoutResult> {
        let p = auth.into_principal();
        let mut ids = Vec::new();
        let mut deny = None;
        match &p.credential {
            CredentialKind::Token { id } | CredentialKind::Session { id } => ids.push(*id),
            CredentialKind::Jwt { jti } => {
                let lifetime = state.config.auth.access_token_minutes.saturating_mul(60);
                let until = unix_now() + i64::try_from(lifetime).unwrap_or(86_400);
                deny = Some((jti.clone(), until));
            }
            _ => {}
        }
        if let Some(c) = crate::api::authn::cookie_value(req, SESSION_COOKIE) {
            let digest = digest_of(&c.to_ascii_lowercase());
            if let Some(id) = state.store.read(|tx| sessions::token_by_digest(tx, &digest))? {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        if ids.is_empty() && deny.is_none() {
            return Err(Error::invalid("non_field_errors", "No active session found").into());
        }
        let actor = crate::domain::audit::Actor::from_principal(&p, client_ip(req));
        state.store.write(move |tx| accounts::logout(tx, &actor, &ids, deny.clone())).await?;
        Ok(LogoutResult::Ok(
            Json(MessageResponse { message: "Successfully logged out".into() }),
            cleared_cookie(),
        ))
    }

    /// The caller's account.
    #[oai(path = "/api/auth/profile/", method = "get", operation_id = "auth_profile_retrieve")]
    async fn profile(
        &self,
        state: Data<&Arc<Services>>,
        auth: Authenticated,
    ) -> ApiResult<Json<UserBody>> {
        Ok(Json(UserBody::from(&current_user(&state, &auth)?)))
    }

    /// Change the caller's names, email or username.
    #[oai(
        path = "/api/auth/profile/",
        method = "patch",
        operation_id = "auth_profile_partial_update"
    )]
    async fn profile_update(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        body: Json<ProfileUpdateRequest>,
    ) -> ApiResult<Json<UserBody>> {
        let user = change_profile(&state, req, &auth, body.0).await?;
        Ok(Json(UserBody::from(&user)))
    }
}

/// A refused login carries dj-rest-auth's body in `details`; the status and `error` stay
/// KeyNest's (401 `Invalid credentials`).
fn with_dj_rest_auth_body(e: Error) -> Error {
    if e.code != crate::domain::ErrorCode::Unauthenticated || e.details.is_some() {
        return e;
    }
    e.with_details(serde_json::json!(
        {"non_field_errors": ["Unable to log in with provided credentials."]}
    ))
}

/// The caller's account.
pub(crate) fn current_user(state: &Services, auth: &Authenticated) -> Result<User, ApiError> {
    let id = auth.principal().user_id;
    state.store.read(|tx| accounts::get(tx, id))?.ok_or_else(|| ApiError(Error::not_found("User")))
}

/// Applies the caller's own profile change (through a full session: a key or PAT may not
/// rename its owner); shared by `/api/auth/profile/` and `/api/auth/user/`.
pub(crate) async fn change_profile(
    state: &Arc<Services>,
    req: &Request,
    auth: &Authenticated,
    b: ProfileUpdateRequest,
) -> Result<User, ApiError> {
    auth.principal().require_full_session("change the profile")?;
    let id = auth.principal().user_id;
    let patch = ProfilePatch {
        first_name: b.first_name,
        last_name: b.last_name,
        email: b.email,
        username: b.username.map(|u| u.trim().to_string()),
    };
    let ip = client_ip(req);
    Ok(state.store.write(move |tx| accounts::update_profile(tx, id, &patch, ip)).await?)
}
