//! `/api/api-keys/…`: a user's own API keys (create — shown once —, list, get, revoke,
//! rotate with a grace period).

use std::sync::Arc;

use poem::web::Data;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::api::auth::client_ip;
use crate::api::body::OptionalJson;
use crate::api::error::ApiResult;
use crate::api::organizations::Deleted;
use crate::api::paging::{Page, PageRequest};
use crate::api::security::Authenticated;
use crate::api::tags::ApiTags;
use crate::clock::{rfc3339_from_unix, unix_now};
use crate::crypto::{random_hex, sha256_hex};
use crate::domain::api_keys::{self, NewApiKey};
use crate::domain::audit::Actor;
use crate::domain::credentials::ApiKey;
use crate::domain::Error;
use crate::services::Services;

#[derive(Default)]
pub struct ApiKeysApi;

/// Usage of one secret of a key.
#[derive(Debug, Object)]
pub struct ApiKeyVersionUsage {
    pub version: u32,
    pub masked_key: String,
    pub request_count: u64,
    pub last_used_at: Option<String>,
    /// When a rotated-out secret stops working.
    pub valid_until: Option<String>,
}

#[derive(Debug, Object)]
#[oai(rename = "ApiKey")]
pub struct ApiKeyBody {
    pub id: u64,
    pub name: String,
    pub key_type: String,
    /// `52df...1660`.
    pub masked_key: String,
    pub organization: Option<u64>,
    pub read_only: bool,
    pub ip_allowlist: Vec<String>,
    pub is_active: bool,
    pub is_valid: bool,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub request_count: u64,
    pub created_at: String,
    pub versions: Vec<ApiKeyVersionUsage>,
}

/// A key with the requests counted since the last flush added (read-your-writes).
pub fn with_pending(state: &Services, mut k: ApiKey) -> ApiKey {
    for (version, (n, at)) in state.credentials.pending_api_key_usage(k.id) {
        if let Some(v) = k.versions.iter_mut().find(|v| v.version == version) {
            v.request_count += n;
            v.last_used_at = Some(v.last_used_at.map_or(at, |old| old.max(at)));
        }
    }
    k
}

impl ApiKeyBody {
    pub fn new(k: &ApiKey) -> Self {
        let now = unix_now();
        Self {
            id: k.id,
            name: k.name.clone(),
            key_type: k.key_type.clone(),
            masked_key: k.masked_key(),
            organization: k.organization,
            read_only: k.read_only,
            ip_allowlist: k.ip_allowlist.clone(),
            is_active: k.is_active,
            is_valid: k.is_valid(now),
            expires_at: k.expires_at.map(rfc3339_from_unix),
            last_used_at: k.last_used_at().map(rfc3339_from_unix),
            request_count: k.request_count(),
            created_at: rfc3339_from_unix(k.created_at),
            versions: k
                .versions
                .iter()
                .map(|v| ApiKeyVersionUsage {
                    version: v.version,
                    masked_key: v.masked.clone(),
                    request_count: v.request_count,
                    last_used_at: v.last_used_at.map(rfc3339_from_unix),
                    valid_until: v.valid_until.map(rfc3339_from_unix),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Object)]
pub struct ApiKeyCreateRequest {
    pub name: String,
    /// `service` (default), `cli`, `webhook`, `internal` or `development`.
    pub key_type: Option<String>,
    /// RFC 3339; null never expires.
    pub expires_at: Option<String>,
    pub read_only: Option<bool>,
    /// CIDRs or addresses the key may be used from; empty: anywhere.
    pub ip_allowlist: Option<Vec<String>>,
    /// Limit the key to one organization.
    pub organization: Option<u64>,
}

#[derive(Debug, Object)]
pub struct ApiKeyWithSecret {
    /// The key itself, shown this once: `Authorization: Api-Key <key>` or `Bearer <key>`.
    pub key: String,
    #[oai(flatten)]
    pub api_key: ApiKeyBody,
}

#[derive(ApiResponse)]
pub enum ApiKeyCreated {
    #[oai(status = 201)]
    Created(Json<ApiKeyWithSecret>),
}

#[derive(Debug, Object)]
pub struct ApiKeyRotateRequest {
    /// How long the previous key keeps working (default 0: it stops at once; at most 30 days).
    pub grace_seconds: Option<u64>,
}

pub(crate) fn parse_time(field: &str, s: &str) -> Result<i64, Error> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| Error::invalid(field, "Use an RFC 3339 date-time, e.g. 2030-01-01T00:00:00Z."))
}

/// A new key: its digest, its masked form and the key itself (shown once).
pub(crate) fn fresh_key() -> Result<(String, String, String), Error> {
    let key = random_hex(32)?;
    Ok((sha256_hex(key.as_bytes()), api_keys::mask(&key), key))
}

#[OpenApi(tag = "ApiTags::ApiKeys")]
impl ApiKeysApi {
    /// Create an API key; the key is in the response this once. Needs a full session (login
    /// token, session cookie or session JWT): API keys and PATs cannot mint keys.
    #[oai(path = "/api/api-keys/", method = "post", operation_id = "api_keys_create")]
    async fn create(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        body: Json<ApiKeyCreateRequest>,
    ) -> ApiResult<ApiKeyCreated> {
        let p = auth.into_principal();
        p.require_full_session("create API keys")?;
        let b = body.0;
        let expires_at =
            b.expires_at.as_deref().map(|s| parse_time("expires_at", s)).transpose()?;
        let (digest, masked, key) = fresh_key()?;
        let new = NewApiKey {
            name: b.name,
            key_type: b.key_type.unwrap_or_else(|| "service".into()),
            organization: b.organization,
            read_only: b.read_only.unwrap_or(false),
            ip_allowlist: b.ip_allowlist.unwrap_or_default(),
            expires_at,
            digest,
            masked,
        };
        let actor = Actor::from_principal(&p, client_ip(req));
        let k = state.store.write(move |tx| api_keys::create(tx, &p, &actor, &new)).await?;
        Ok(ApiKeyCreated::Created(Json(ApiKeyWithSecret { key, api_key: ApiKeyBody::new(&k) })))
    }

    /// The caller's API keys, newest first (an organization-scoped credential sees only that
    /// organization's keys).
    #[oai(path = "/api/api-keys/", method = "get", operation_id = "api_keys_list")]
    async fn list(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        page: Query<Option<u64>>,
        page_size: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<ApiKeyBody>>> {
        let pr = PageRequest::new(page.0, page_size.0)?;
        let all = state.store.read(|tx| api_keys::list_visible(tx, auth.principal()))?;
        let total = all.len() as u64;
        let results =
            pr.slice(all).into_iter().map(|k| ApiKeyBody::new(&with_pending(&state, k))).collect();
        Ok(Json(pr.build(req, total, results)?))
    }

    /// One of the caller's API keys.
    #[oai(path = "/api/api-keys/:id/", method = "get", operation_id = "api_keys_retrieve")]
    async fn retrieve(
        &self,
        state: Data<&Arc<Services>>,
        auth: Authenticated,
        id: Path<u64>,
    ) -> ApiResult<Json<ApiKeyBody>> {
        let k = state.store.read(|tx| api_keys::get_visible(tx, auth.principal(), id.0))?;
        Ok(Json(ApiKeyBody::new(&with_pending(&state, k))))
    }

    /// Revoke an API key (for good). A key may revoke itself; other keys need a full session.
    #[oai(path = "/api/api-keys/:id/", method = "delete", operation_id = "api_keys_destroy")]
    async fn destroy(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
    ) -> ApiResult<Deleted> {
        let p = auth.into_principal();
        let actor = Actor::from_principal(&p, client_ip(req));
        let id = id.0;
        state.store.write(move |tx| api_keys::revoke(tx, &p, &actor, id)).await?;
        Ok(Deleted::NoContent)
    }

    /// Replace the key's secret; the old one works for `grace_seconds` more. A key may rotate
    /// itself; other keys need a full session.
    #[oai(
        path = "/api/api-keys/:id/rotate/",
        method = "post",
        operation_id = "api_keys_rotate_create"
    )]
    async fn rotate(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
        body: OptionalJson<ApiKeyRotateRequest>,
    ) -> ApiResult<Json<ApiKeyWithSecret>> {
        let p = auth.into_principal();
        let grace = body.0.and_then(|b| b.grace_seconds).unwrap_or(0);
        let (digest, masked, key) = fresh_key()?;
        let actor = Actor::from_principal(&p, client_ip(req));
        let id = id.0;
        let k = state
            .store
            .write(move |tx| api_keys::rotate(tx, &p, &actor, id, &digest, &masked, grace))
            .await?;
        Ok(Json(ApiKeyWithSecret { key, api_key: ApiKeyBody::new(&with_pending(&state, k)) }))
    }
}
