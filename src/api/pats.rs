//! ShellUI's personal access tokens: `POST/GET /api/v1/personal-access-tokens`,
//! `DELETE`/`PATCH /api/v1/personal-access-tokens/{id}`, `POST …/{id}/revoke` and
//! `POST …/{id}/reissue`. `{id}` is the integer id or the UUID.

use std::sync::Arc;

use poem::web::Data;
use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::api::auth::client_ip;
use crate::api::error::ApiResult;
use crate::api::organizations::Deleted;
use crate::api::security::Authenticated;
use crate::api::tags::ApiTags;
use crate::clock::rfc3339_from_unix;
use crate::domain::audit::Actor;
use crate::domain::credentials::PersonalAccessToken;
use crate::domain::pats::{self, PatPatch};
use crate::services::pats::{pat_not_found, PatId, PatRequest};
use crate::services::Services;

#[derive(Default)]
pub struct PatsApi;

#[derive(Debug, Object)]
#[oai(rename = "PersonalAccessToken")]
pub struct PatBody {
    pub id: u64,
    /// ShellUI's identifier (the JWT's `pat_id`); every `{id}` route also takes it.
    pub uuid: String,
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
            uuid: t.uuid.clone(),
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
pub struct PatUpdateRequest {
    /// The owner only; up to 200 characters.
    pub name: Option<String>,
    /// Staff may set either value; the owner may only set `true`.
    pub read_only: Option<bool>,
    /// Staff may set either value; the owner may only set `false`.
    pub access_global_metrics: Option<bool>,
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
        let b = body.0;
        let request = PatRequest {
            name: b.name.unwrap_or_default(),
            read_only: b.read_only.unwrap_or(false),
            access_global_metrics: b.access_global_metrics.unwrap_or(false),
            company_id: b.company_id,
            expires_in_days: b.expires_in_days,
        };
        let (row, token) = state.create_pat(&p, request, client_ip(req)).await?;
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
        id: Path<String>,
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
        id: Path<String>,
    ) -> ApiResult<Json<PatBody>> {
        let row = self.revoke_inner(&state, req, auth, id.0).await?;
        Ok(Json(PatBody::new(&state, &row)))
    }

    /// Change a token's name or scope (`access_global_metrics`, `read_only`: staff; the owner
    /// may rename and tighten). Strings issued before then fail the scope check: reissue.
    #[oai(
        path = "/api/v1/personal-access-tokens/:id",
        method = "patch",
        operation_id = "personal_access_tokens_partial_update"
    )]
    async fn partial_update(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<String>,
        body: Json<PatUpdateRequest>,
    ) -> ApiResult<Json<PatBody>> {
        let p = auth.into_principal();
        let actor = Actor::from_principal(&p, client_ip(req));
        let b = body.0;
        let patch = PatPatch {
            name: b.name,
            read_only: b.read_only,
            access_global_metrics: b.access_global_metrics,
        };
        let segment = id.0;
        let row = state
            .store
            .write(move |tx| {
                let id = pats::resolve_segment(tx, &segment)?.ok_or_else(pat_not_found)?;
                pats::update(tx, &p, &actor, id, &patch)
            })
            .await?;
        Ok(Json(PatBody::new(&state, &row)))
    }

    /// A new string for the caller's token: the row's current flags, the same expiry, a new
    /// `jti` (the previous string stops working). Shown this once.
    #[oai(
        path = "/api/v1/personal-access-tokens/:id/reissue",
        method = "post",
        operation_id = "personal_access_tokens_reissue_create"
    )]
    async fn reissue(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<String>,
    ) -> ApiResult<Json<PatCreated>> {
        let p = auth.into_principal();
        let (row, token) = state.reissue_pat(&p, PatId::Segment(id.0), client_ip(req)).await?;
        Ok(Json(PatCreated { token: PatBody::new(&state, &row), access_token: token.into_inner() }))
    }
}

impl PatsApi {
    async fn revoke_inner(
        &self,
        state: &Services,
        req: &Request,
        auth: Authenticated,
        segment: String,
    ) -> ApiResult<PersonalAccessToken> {
        let p = auth.into_principal();
        let actor = Actor::from_principal(&p, client_ip(req));
        let row = state
            .store
            .write(move |tx| {
                let id = pats::resolve_segment(tx, &segment)?.ok_or_else(pat_not_found)?;
                pats::revoke(tx, &p, &actor, id)
            })
            .await?;
        Ok(row)
    }
}
