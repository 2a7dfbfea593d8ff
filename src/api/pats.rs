//! ShellUI's personal access tokens: `POST/GET /api/v1/personal-access-tokens`,
//! `DELETE /api/v1/personal-access-tokens/{id}` and `POST …/{id}/revoke`.

use std::sync::Arc;

use poem::web::Data;
use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::api::auth::client_ip;
use crate::api::error::{ApiError, ApiResult};
use crate::api::organizations::Deleted;
use crate::api::security::Authenticated;
use crate::api::tags::ApiTags;
use crate::auth::issue::{choose_company, new_jti};
use crate::clock::{rfc3339_from_unix, unix_now};
use crate::domain::accounts;
use crate::domain::audit::Actor;
use crate::domain::credentials::PersonalAccessToken;
use crate::domain::pats::{self, NewPat};
use crate::domain::Error;
use crate::services::Services;

#[derive(Default)]
pub struct PatsApi;

#[derive(Debug, Object)]
#[oai(rename = "PersonalAccessToken")]
pub struct PatBody {
    pub id: u64,
    pub user_id: u64,
    pub company_id: Option<u64>,
    pub name: String,
    pub read_only: bool,
    pub access_global_metrics: bool,
    pub created_at: String,
    pub expires_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl PatBody {
    fn new(state: &Services, t: &PersonalAccessToken) -> Self {
        let last = match (t.last_used_at, state.credentials.pending_pat_use(t.id)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        Self {
            id: t.id,
            user_id: t.user_id,
            company_id: t.company_id,
            name: t.name.clone(),
            read_only: t.read_only,
            access_global_metrics: t.access_global_metrics,
            created_at: rfc3339_from_unix(t.created_at),
            expires_at: rfc3339_from_unix(t.expires_at),
            last_used_at: last.map(rfc3339_from_unix),
            revoked_at: t.revoked_at.map(rfc3339_from_unix),
        }
    }
}

#[derive(Debug, Object)]
pub struct PatCreateRequest {
    /// Up to 200 characters.
    pub name: Option<String>,
    pub read_only: Option<bool>,
    /// May read `/api/v1/metrics/all` (staff only).
    pub access_global_metrics: Option<bool>,
    /// Default `auth.pat_lifetime_days`; 1–3650.
    pub expires_in_days: Option<u64>,
    /// The organization the token is bound to (it sees only that one). Required when the
    /// caller belongs to several organizations.
    pub company_id: Option<u64>,
}

#[derive(Debug, Object)]
pub struct PatCreated {
    #[oai(flatten)]
    pub token: PatBody,
    /// The JWT, shown this once: `Authorization: Bearer <access_token>`.
    pub access_token: String,
}

#[derive(ApiResponse)]
pub enum PatCreateResult {
    #[oai(status = 201)]
    Created(Json<PatCreated>),
}

#[derive(Debug, Object)]
pub struct PatList {
    pub results: Vec<PatBody>,
}

#[OpenApi(tag = "ApiTags::PersonalAccessTokens")]
impl PatsApi {
    /// Create a personal access token; `access_token` is shown this once. Needs a full session
    /// (login token, session cookie or session JWT).
    #[oai(
        path = "/api/v1/personal-access-tokens",
        method = "post",
        operation_id = "personal_access_tokens_create"
    )]
    async fn create(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        body: Json<PatCreateRequest>,
    ) -> ApiResult<PatCreateResult> {
        let p = auth.into_principal();
        p.require_full_session("create personal access tokens")?;
        let b = body.0;
        let days = b.expires_in_days.unwrap_or(state.config.auth.pat_lifetime_days);
        if !(1..=3650).contains(&days) {
            return Err(Error::invalid("expires_in_days", "Must be between 1 and 3650.").into());
        }
        // The company is the PAT's scope: never defaulted from the session's `company_id`,
        // only from the caller's single organization (M1).
        let company = choose_company(&p.memberships, b.company_id)?.ok_or_else(|| {
            let message = if p.memberships.len() > 1 {
                "You belong to several organizations: name the one the token is for."
            } else {
                "Missing company_id parameter."
            };
            ApiError(Error::invalid("company_id", message))
        })?;
        let now = unix_now();
        let new = NewPat {
            name: b.name.unwrap_or_default().trim().to_string(),
            read_only: b.read_only.unwrap_or(false),
            access_global_metrics: b.access_global_metrics.unwrap_or(false),
            company_id: company,
            expires_at: now + i64::try_from(days * 86_400).unwrap_or(86_400),
            jti: new_jti()?,
        };
        let user = state
            .store
            .read(|tx| accounts::get(tx, p.user_id))?
            .ok_or_else(|| ApiError(Error::not_found("User")))?;
        let actor = Actor::from_principal(&p, client_ip(req));
        let row = state.store.write(move |tx| pats::create(tx, &p, &actor, &new)).await?;
        let token = state.credentials.issue_pat(
            &user,
            company,
            row.id,
            &row.jti,
            row.read_only,
            row.access_global_metrics,
            now,
            row.expires_at,
        )?;
        Ok(PatCreateResult::Created(Json(PatCreated {
            token: PatBody::new(&state, &row),
            access_token: token.into_inner(),
        })))
    }

    /// The caller's personal access tokens, newest first.
    #[oai(
        path = "/api/v1/personal-access-tokens",
        method = "get",
        operation_id = "personal_access_tokens_list"
    )]
    async fn list(
        &self,
        state: Data<&Arc<Services>>,
        auth: Authenticated,
    ) -> ApiResult<Json<PatList>> {
        let rows = state.store.read(|tx| pats::list_visible(tx, auth.principal()))?;
        Ok(Json(PatList { results: rows.iter().map(|t| PatBody::new(&state, t)).collect() }))
    }

    /// Revoke a personal access token (immediately).
    #[oai(
        path = "/api/v1/personal-access-tokens/:id",
        method = "delete",
        operation_id = "personal_access_tokens_destroy"
    )]
    async fn destroy(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
    ) -> ApiResult<Deleted> {
        self.revoke_inner(&state, req, auth, id.0).await?;
        Ok(Deleted::NoContent)
    }

    /// ShellUI's revoke action: the revoked row.
    #[oai(
        path = "/api/v1/personal-access-tokens/:id/revoke",
        method = "post",
        operation_id = "personal_access_tokens_revoke_create"
    )]
    async fn revoke(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
    ) -> ApiResult<Json<PatBody>> {
        let row = self.revoke_inner(&state, req, auth, id.0).await?;
        Ok(Json(PatBody::new(&state, &row)))
    }
}

impl PatsApi {
    async fn revoke_inner(
        &self,
        state: &Services,
        req: &Request,
        auth: Authenticated,
        id: u64,
    ) -> ApiResult<PersonalAccessToken> {
        let p = auth.into_principal();
        let actor = Actor::from_principal(&p, client_ip(req));
        let row = state.store.write(move |tx| pats::revoke(tx, &p, &actor, id)).await?;
        Ok(row)
    }
}
