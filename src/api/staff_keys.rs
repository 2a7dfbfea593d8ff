//! django-cfg's staff views of every API key: `GET /api/grpc/api-keys/`, `…/{id}/`,
//! `…/stats/` (also served under `/cfg/grpc/api-keys/…`, outside the document), plus the one
//! thing staff set on a key here: whether it may report calls to the monitor
//! (`PATCH …/{id}/ {"ingest": true}`; django-cfg does this in its admin).

use std::collections::BTreeMap;
use std::sync::Arc;

use poem::web::Data;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use crate::api::api_keys::with_pending;
use crate::api::auth::client_ip;
use crate::api::error::ApiResult;
use crate::api::paging::{Page, PageRequest};
use crate::api::security::Authenticated;
use crate::api::tags::ApiTags;
use crate::clock::{rfc3339_from_unix, unix_now};
use crate::domain::accounts;
use crate::domain::api_keys::{self, StaffFilter};
use crate::domain::audit::Actor;
use crate::domain::credentials::ApiKey;
use crate::domain::Error;
use crate::services::Services;
use crate::store::ReadTx;

#[derive(Default)]
pub struct StaffApiKeysApi;

/// django-cfg's `GrpcApiKey` as its admin view shows it (exactly these fields).
#[derive(Debug, Object)]
#[oai(rename = "GrpcApiKey")]
pub struct StaffApiKey {
    pub id: u64,
    pub name: String,
    pub key_type: String,
    pub masked_key: String,
    pub is_active: bool,
    pub is_valid: bool,
    pub user_id: u64,
    pub username: String,
    pub user_email: String,
    pub request_count: u64,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub created_at: String,
    /// The creator's username.
    pub created_by: Option<String>,
}

/// `PATCH /api/grpc/api-keys/{id}/`.
#[derive(Debug, Object)]
#[oai(rename = "GrpcApiKeyUpdate")]
pub struct StaffApiKeyUpdate {
    /// May this key report calls (`POST /api/grpc/monitor/requests/`)?
    pub ingest: bool,
}

/// A key's ingest setting, as staff set it.
#[derive(Debug, Object)]
#[oai(rename = "GrpcApiKeyIngest")]
pub struct StaffApiKeyIngest {
    pub id: u64,
    pub name: String,
    pub key_type: String,
    pub is_active: bool,
    pub ingest: bool,
}

#[derive(Debug, Object)]
pub struct ApiKeyStats {
    pub total_keys: u64,
    pub active_keys: u64,
    /// Active keys past their expiry.
    pub expired_keys: u64,
    pub total_requests: u64,
    /// Count per `key_type`, for types that have keys.
    pub keys_by_type: BTreeMap<String, u64>,
}

fn staff_view(tx: &ReadTx, state: &Services, k: ApiKey) -> Result<StaffApiKey, Error> {
    let k = with_pending(state, k);
    let user = accounts::get(tx, k.user_id)?;
    let created_by = match k.created_by {
        Some(id) => accounts::get(tx, id)?.map(|u| u.username),
        None => None,
    };
    Ok(StaffApiKey {
        id: k.id,
        name: k.name.clone(),
        key_type: k.key_type.clone(),
        masked_key: k.masked_key(),
        is_active: k.is_active,
        is_valid: k.is_valid(unix_now()),
        user_id: k.user_id,
        username: user.as_ref().map(|u| u.username.clone()).unwrap_or_default(),
        user_email: user.map(|u| u.email).unwrap_or_default(),
        request_count: k.request_count(),
        last_used_at: k.last_used_at().map(rfc3339_from_unix),
        expires_at: k.expires_at.map(rfc3339_from_unix),
        created_at: rfc3339_from_unix(k.created_at),
        created_by,
    })
}

#[OpenApi(tag = "ApiTags::ApiKeys")]
impl StaffApiKeysApi {
    /// Every API key (staff only), newest first; filters `is_active`, `key_type`, `user_id`,
    /// `ingest`.
    #[oai(path = "/api/grpc/api-keys/", method = "get", operation_id = "grpc_api_keys_list")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        is_active: Query<Option<String>>,
        key_type: Query<Option<String>>,
        user_id: Query<Option<u64>>,
        /// Only keys that may (`true`) or may not (`false`) report calls.
        ingest: Query<Option<String>>,
        page: Query<Option<u64>>,
        page_size: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<StaffApiKey>>> {
        let pr = PageRequest::new(page.0, page_size.0)?;
        let truthy = |v: String| matches!(v.to_lowercase().as_str(), "true" | "1" | "yes");
        let filter = StaffFilter {
            is_active: is_active.0.map(truthy),
            key_type: key_type.0,
            user_id: user_id.0,
        };
        let ingest = ingest.0.map(truthy);
        let p = auth.principal();
        let (total, results) = state.store.read(|tx| -> Result<_, Error> {
            let mut all = api_keys::list_all(tx, p, &filter)?;
            if let Some(want) = ingest {
                all.retain(|k| k.ingest == want);
            }
            let total = all.len() as u64;
            let page: Result<Vec<_>, Error> =
                pr.slice(all).into_iter().map(|k| staff_view(tx, &state, k)).collect();
            Ok((total, page?))
        })?;
        Ok(Json(pr.build(req, total, results)?))
    }

    /// Key statistics (staff only).
    #[oai(
        path = "/api/grpc/api-keys/stats/",
        method = "get",
        operation_id = "grpc_api_keys_stats_retrieve"
    )]
    async fn stats(
        &self,
        state: Data<&Arc<Services>>,
        auth: Authenticated,
    ) -> ApiResult<Json<ApiKeyStats>> {
        let p = auth.principal();
        let s = state.store.read(|tx| -> Result<_, Error> {
            let mut s = api_keys::stats(tx, p)?;
            // Counted but not yet flushed.
            for k in api_keys::list_all(tx, p, &StaffFilter::default())? {
                s.total_requests += state
                    .credentials
                    .pending_api_key_usage(k.id)
                    .values()
                    .map(|(n, _)| n)
                    .sum::<u64>();
            }
            Ok(s)
        })?;
        Ok(Json(ApiKeyStats {
            total_keys: s.total_keys,
            active_keys: s.active_keys,
            expired_keys: s.expired_keys,
            total_requests: s.total_requests,
            keys_by_type: s.keys_by_type,
        }))
    }

    /// One API key (staff only).
    #[oai(
        path = "/api/grpc/api-keys/:id/",
        method = "get",
        operation_id = "grpc_api_keys_retrieve"
    )]
    async fn retrieve(
        &self,
        state: Data<&Arc<Services>>,
        auth: Authenticated,
        id: Path<u64>,
    ) -> ApiResult<Json<StaffApiKey>> {
        auth.principal().require_staff()?;
        let v = state.store.read(|tx| -> Result<_, Error> {
            let k = api_keys::get(tx, id.0)?.ok_or_else(|| Error::not_found("API key"))?;
            staff_view(tx, &state, k)
        })?;
        Ok(Json(v))
    }

    /// Allow or forbid a key to report calls to the monitor (staff only, audited).
    #[oai(
        path = "/api/grpc/api-keys/:id/",
        method = "patch",
        operation_id = "grpc_api_keys_partial_update"
    )]
    async fn partial_update(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
        body: Json<StaffApiKeyUpdate>,
    ) -> ApiResult<Json<StaffApiKeyIngest>> {
        let p = auth.into_principal();
        p.require_staff()?;
        let actor = Actor::from_principal(&p, client_ip(req));
        let (id, ingest) = (id.0, body.0.ingest);
        let k =
            state.store.write(move |tx| api_keys::set_ingest(tx, &p, &actor, id, ingest)).await?;
        Ok(Json(StaffApiKeyIngest {
            id: k.id,
            name: k.name,
            key_type: k.key_type,
            is_active: k.is_active,
            ingest: k.ingest,
        }))
    }
}
