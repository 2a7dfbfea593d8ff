//! django-cfg's staff views of every API key: `GET /api/grpc/api-keys/`, `…/{id}/`,
//! `…/stats/` (also served under `/cfg/grpc/api-keys/…`, outside the document), and the key
//! administration django-cfg does in its admin: create a key for any user (`POST`), rename,
//! retype, deactivate/reactivate, re-expire or allow to report calls (`PATCH …/{id}/`), delete
//! (`DELETE …/{id}/`). Lists answer 100 a page by default, as django-cfg.

use std::collections::BTreeMap;
use std::sync::Arc;

use poem::web::Data;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::api::api_keys::{fresh_key, parse_time, with_pending};
use crate::api::auth::client_ip;
use crate::api::error::ApiResult;
use crate::api::monitor::params::CFG_PAGE_SIZE;
use crate::api::organizations::Deleted;
use crate::api::paging::{Page, PageRequest};
use crate::api::security::Authenticated;
use crate::api::tags::ApiTags;
use crate::clock::{rfc3339_from_unix, unix_now};
use crate::domain::accounts;
use crate::domain::api_keys::{self, NewApiKey, StaffChange, StaffFilter};
use crate::domain::audit::Actor;
use crate::domain::credentials::ApiKey;
use crate::domain::{Error, Principal};
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

/// `POST /api/grpc/api-keys/`: a key for a user, named by exactly one of `user` (django-cfg's
/// field), `user_id`, `username` or `email`.
#[derive(Debug, Object)]
#[oai(rename = "GrpcApiKeyCreate")]
pub struct StaffApiKeyCreate {
    pub name: String,
    /// `service` (default), `cli`, `webhook`, `internal` or `development`.
    pub key_type: Option<String>,
    /// RFC 3339; null never expires.
    pub expires_at: Option<String>,
    /// The owner's id.
    pub user: Option<u64>,
    pub user_id: Option<u64>,
    pub username: Option<String>,
    pub email: Option<String>,
}

/// The created key: its secret this once, and the staff view.
#[derive(Debug, Object)]
#[oai(rename = "GrpcApiKeyWithSecret")]
pub struct StaffApiKeyWithSecret {
    /// Shown this once: `Authorization: Api-Key <key>` or `Bearer <key>`.
    pub key: String,
    #[oai(flatten)]
    pub api_key: StaffApiKey,
}

#[derive(ApiResponse)]
pub enum StaffApiKeyCreated {
    #[oai(status = 201)]
    Created(Json<StaffApiKeyWithSecret>),
}

/// `PATCH /api/grpc/api-keys/{id}/`: the fields to change; absent ones stay.
#[derive(Debug, Object)]
#[oai(rename = "GrpcApiKeyUpdate")]
pub struct StaffApiKeyUpdate {
    pub name: Option<String>,
    pub key_type: Option<String>,
    /// False deactivates the key (it stops authenticating), true reactivates it. A key its
    /// owner revoked cannot be reactivated (409).
    pub is_active: Option<bool>,
    /// RFC 3339 in the future; null: never expires.
    pub expires_at: MaybeUndefined<String>,
    /// May this key report calls (`POST /api/grpc/monitor/requests/`)?
    pub ingest: Option<bool>,
}

/// The key after staff's change: the staff view and its ingest setting.
#[derive(Debug, Object)]
#[oai(rename = "GrpcApiKeyIngest")]
pub struct StaffApiKeyIngest {
    #[oai(flatten)]
    pub api_key: StaffApiKey,
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
        let pr = PageRequest::new(page.0, Some(page_size.0.unwrap_or(CFG_PAGE_SIZE)))?;
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

    /// Create a key for any user (staff with a full session, audited); the key is in the
    /// response this once.
    #[oai(path = "/api/grpc/api-keys/", method = "post", operation_id = "grpc_api_keys_create")]
    async fn create(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        body: Json<StaffApiKeyCreate>,
    ) -> ApiResult<StaffApiKeyCreated> {
        let p = auth.into_principal();
        require_admin(&p)?;
        let b = body.0;
        let owner = state.store.read(|tx| owner_of(tx, &b))?;
        let expires_at =
            b.expires_at.as_deref().map(|s| parse_time("expires_at", s)).transpose()?;
        let (digest, masked, key) = fresh_key()?;
        let new = NewApiKey {
            name: b.name,
            key_type: b.key_type.unwrap_or_else(|| "service".into()),
            organization: None,
            read_only: false,
            ip_allowlist: Vec::new(),
            expires_at,
            digest,
            masked,
        };
        let actor = Actor::from_principal(&p, client_ip(req));
        let k =
            state.store.write(move |tx| api_keys::create_for(tx, &p, &actor, owner, &new)).await?;
        let api_key = state.store.read(|tx| staff_view(tx, &state, k))?;
        Ok(StaffApiKeyCreated::Created(Json(StaffApiKeyWithSecret { key, api_key })))
    }

    /// Rename, retype, deactivate or reactivate a key, change its expiry, or allow it to
    /// report calls to the monitor (staff with a full session, audited).
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
        require_admin(&p)?;
        let b = body.0;
        let expires_at = match b.expires_at {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(s) => Some(Some(parse_time("expires_at", &s)?)),
        };
        let change = StaffChange {
            name: b.name,
            key_type: b.key_type,
            is_active: b.is_active,
            expires_at,
            ingest: b.ingest,
        };
        let actor = Actor::from_principal(&p, client_ip(req));
        let id = id.0;
        let k = state
            .store
            .write(move |tx| api_keys::staff_update(tx, &p, &actor, id, &change))
            .await?;
        let ingest = k.ingest;
        let api_key = state.store.read(|tx| staff_view(tx, &state, k))?;
        Ok(Json(StaffApiKeyIngest { api_key, ingest }))
    }

    /// Delete a key for good (staff with a full session, audited).
    #[oai(
        path = "/api/grpc/api-keys/:id/",
        method = "delete",
        operation_id = "grpc_api_keys_destroy"
    )]
    async fn destroy(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
    ) -> ApiResult<Deleted> {
        let p = auth.into_principal();
        require_admin(&p)?;
        let actor = Actor::from_principal(&p, client_ip(req));
        let id = id.0;
        state.store.write(move |tx| api_keys::staff_delete(tx, &p, &actor, id)).await?;
        Ok(Deleted::NoContent)
    }
}

/// Key administration: staff through an unscoped full session (not an API key or PAT, which
/// must not mint or change credentials).
fn require_admin(p: &Principal) -> Result<(), Error> {
    p.require_staff()?;
    p.require_full_session("manage other users' API keys")
}

/// The owner a create body names: exactly one of `user`, `user_id`, `username`, `email`
/// (400 on none, several, or an unknown account).
fn owner_of(tx: &ReadTx, b: &StaffApiKeyCreate) -> Result<u64, Error> {
    let named = [b.user.is_some(), b.user_id.is_some(), b.username.is_some(), b.email.is_some()];
    if named.iter().filter(|n| **n).count() != 1 {
        return Err(Error::invalid(
            "user",
            "Name the owner with exactly one of user, user_id, username or email.",
        ));
    }
    if let Some(id) = b.user.or(b.user_id) {
        return match accounts::get(tx, id)? {
            Some(u) => Ok(u.id),
            None => {
                Err(Error::invalid("user", format!("Invalid pk \"{id}\" - object does not exist.")))
            }
        };
    }
    let (field, ident) = match (&b.username, &b.email) {
        (Some(u), _) => ("username", u),
        (None, Some(e)) => ("email", e),
        (None, None) => return Err(Error::invalid("user", "Name the owner.")),
    };
    // `find_by_login` matches either; the field named must be the one that matched.
    match accounts::find_by_login(tx, ident)? {
        Some(u) if field == "email" && u.email.eq_ignore_ascii_case(ident.trim()) => Ok(u.id),
        Some(u) if field == "username" && u.username.eq_ignore_ascii_case(ident.trim()) => Ok(u.id),
        _ => Err(Error::invalid(field, "No account has this value.")),
    }
}
