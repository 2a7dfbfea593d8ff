//! TOTP two-factor authentication (issue 18): enrolment, activation, status and disabling
//! under `/api/auth/2fa/totp/`, and Pegasus's `POST /api/auth/verify-otp/`, the second step
//! of a login that answered `otp_required`.

use std::sync::Arc;

use poem::web::Data;
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::api::auth::{client_ip, organization_roles, session_cookie, OrganizationRole};
use crate::api::auth_user::PegasusUserBody;
use crate::api::error::ApiResult;
use crate::api::security::Authenticated;
use crate::api::tags::ApiTags;
use crate::domain::two_factor::{self, code};
use crate::services::Services;

#[derive(Default)]
pub struct TwoFactorApi;

#[derive(Debug, Object)]
pub struct TotpEnrolment {
    /// The secret (base32), shown once: type it into an authenticator app, or scan `otpauth_uri`.
    pub secret: String,
    /// `otpauth://totp/Gatehouse:<email>?secret=…&issuer=Gatehouse&algorithm=SHA1&digits=6&period=30`.
    pub otpauth_uri: String,
    pub issuer: String,
    pub algorithm: String,
    pub digits: u32,
    pub period: i64,
    /// Always false here: 2FA is on once activated with a first code.
    pub enabled: bool,
    pub message: String,
}

#[derive(ApiResponse)]
pub enum EnrolResult {
    /// A new secret; 2FA is not active until `/api/auth/2fa/totp/activate/`.
    #[oai(status = 201)]
    Created(Json<TotpEnrolment>),
}

#[derive(Debug, Object)]
pub struct TotpStatus {
    pub enabled: bool,
    /// Enrolled, not activated yet.
    pub pending: bool,
    pub recovery_codes_left: u64,
}

#[derive(Debug, Object)]
pub struct OtpBody {
    /// A current 6-digit code (or, to disable, a recovery code).
    pub otp: String,
}

#[derive(Debug, Object)]
pub struct TotpActivated {
    pub enabled: bool,
    /// Ten single-use recovery codes, shown once; each may stand in for a code once.
    pub recovery_codes: Vec<String>,
    pub message: String,
}

#[derive(Debug, Object)]
pub struct TotpDisabled {
    pub enabled: bool,
    pub message: String,
}

#[derive(Debug, Object)]
pub struct VerifyOtpRequest {
    /// The `temp_otp_token` of the login's `otp_required` answer (valid 300 s, once).
    pub temp_otp_token: String,
    /// The current 6-digit code, or a recovery code.
    pub otp: String,
}

/// dj-rest-auth's `JWTSerializer` (`access`, `refresh`, `user`), plus what Gatehouse's own
/// login answers (a login token and the organizations; the session cookie is set too).
#[derive(Debug, Object)]
pub struct VerifyOtpResponse {
    pub access: String,
    pub refresh: String,
    pub user: PegasusUserBody,
    /// A login token (40 hex) for `Authorization: Token …`.
    pub token: String,
    pub organizations: Vec<OrganizationRole>,
}

#[derive(ApiResponse)]
pub enum VerifyOtpResult {
    /// Logged in; also sets the `gatehouse_session` cookie.
    #[oai(status = 200)]
    Ok(Json<VerifyOtpResponse>, #[oai(header = "Set-Cookie")] String),
}

#[OpenApi(tag = "ApiTags::Auth")]
impl TwoFactorApi {
    /// Whether TOTP 2FA is on, and how many recovery codes are left.
    #[oai(
        path = "/api/auth/2fa/totp/",
        method = "get",
        operation_id = "auth_two_factor_totp_retrieve"
    )]
    async fn status(
        &self,
        state: Data<&Arc<Services>>,
        auth: Authenticated,
    ) -> ApiResult<Json<TotpStatus>> {
        let id = auth.principal().user_id;
        let s = state.store.read(|tx| two_factor::status(tx, id))?;
        Ok(Json(TotpStatus {
            enabled: s.enabled,
            pending: s.pending,
            recovery_codes_left: u64::try_from(s.recovery_codes_left).unwrap_or(0),
        }))
    }

    /// Starts a TOTP enrolment (a full session only): a new secret and its `otpauth://` URI,
    /// shown once. Replaces an enrolment not yet activated; refused (409) while 2FA is on.
    #[oai(
        path = "/api/auth/2fa/totp/",
        method = "post",
        operation_id = "auth_two_factor_totp_create"
    )]
    async fn enrol(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
    ) -> ApiResult<EnrolResult> {
        let e = state.enrol_totp(auth.principal(), client_ip(req)).await?;
        Ok(EnrolResult::Created(Json(TotpEnrolment {
            secret: e.secret.into_inner(),
            otpauth_uri: e.uri.into_inner(),
            issuer: two_factor::ISSUER.into(),
            algorithm: "SHA1".into(),
            digits: code::DIGITS,
            period: code::PERIOD,
            enabled: false,
            message: "Scan the URI, then activate with a first code.".into(),
        })))
    }

    /// Activates the enrolment with a first valid code (a full session only); answers the ten
    /// recovery codes, once. A wrong code: 400 `invalid_otp`.
    #[oai(
        path = "/api/auth/2fa/totp/activate/",
        method = "post",
        operation_id = "auth_two_factor_totp_activate_create"
    )]
    async fn activate(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        body: Json<OtpBody>,
    ) -> ApiResult<Json<TotpActivated>> {
        let codes = state.activate_totp(auth.principal(), body.0.otp, client_ip(req)).await?;
        Ok(Json(TotpActivated {
            enabled: true,
            recovery_codes: codes.into_iter().map(|c| c.into_inner()).collect(),
            message: "Two-factor authentication is on.".into(),
        }))
    }

    /// Turns 2FA off with a current code or a recovery code (a full session only). A wrong
    /// code is a 400 `invalid_otp` and counts toward the account's lockout.
    #[oai(
        path = "/api/auth/2fa/totp/",
        method = "delete",
        operation_id = "auth_two_factor_totp_destroy"
    )]
    async fn disable(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        body: Json<OtpBody>,
    ) -> ApiResult<Json<TotpDisabled>> {
        state.disable_totp(auth.principal(), body.0.otp, client_ip(req)).await?;
        Ok(Json(TotpDisabled {
            enabled: false,
            message: "Two-factor authentication is off.".into(),
        }))
    }

    /// Pegasus's second login step: the login's `temp_otp_token` and a code (or a recovery
    /// code). Unknown, expired or used token: 401 `token_expired`; wrong code: 400
    /// `invalid_otp` (counted toward the lockout; the token stays usable until it expires).
    #[oai(path = "/api/auth/verify-otp/", method = "post", operation_id = "auth_verify_otp_create")]
    async fn verify_otp(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        body: Json<VerifyOtpRequest>,
    ) -> ApiResult<VerifyOtpResult> {
        let b = body.0;
        let done = state.verify_otp(&b.temp_otp_token, &b.otp, client_ip(req)).await?;
        let cookie = session_cookie(done.session.expose(), done.session_max_age);
        Ok(VerifyOtpResult::Ok(
            Json(VerifyOtpResponse {
                access: done.access.into_inner(),
                refresh: done.refresh.into_inner(),
                user: PegasusUserBody::from(&done.user),
                token: done.token.into_inner(),
                organizations: organization_roles(done.organizations),
            }),
            cookie,
        ))
    }
}
