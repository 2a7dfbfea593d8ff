//! `/api/variables/` and `/api/environments/{id}/variables/`: encrypted variables, their
//! version history, rollback, and the admin view of recently deleted variables.

use std::sync::Arc;

use poem::web::Data;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::api::error::ApiResult;
use crate::api::paging::{Page, PageRequest};
use crate::api::projects::Deleted;
use crate::api::secrets_support::{caller, read, ts, write, PreJson};
use crate::api::security::Authenticated;
use crate::api::tags::ApiTags;
use crate::api::variable_json::VariablePageJson;
use crate::domain::secrets::history::{self, DeletedView, VersionView};
use crate::domain::secrets::variables::{self, VariableChange, VariableView};
use crate::domain::secrets::Caller;
use crate::domain::Error;
use crate::services::Services;

/// A variable with its value (for callers who may read it: every member of its organization).
#[derive(Debug, Object, serde::Serialize)]
#[oai(rename = "Variable")]
pub struct VariableOut {
    pub id: u64,
    pub key: String,
    /// The plaintext value (`[DECRYPTION_ERROR]` if its ciphertext does not open).
    pub decrypted_value: String,
    /// Environment id.
    pub environment: u64,
    pub environment_name: String,
    pub created_at: String,
    pub updated_at: String,
    pub created_by_name: String,
    /// Version of the current value (see `/api/variables/{id}/versions/`).
    pub version: u32,
}

impl From<VariableView> for VariableOut {
    fn from(v: VariableView) -> Self {
        let var = v.variable;
        Self {
            id: var.id,
            key: var.key,
            decrypted_value: v.value,
            environment: var.environment_id,
            environment_name: v.environment_name,
            created_at: ts(var.created_at),
            updated_at: ts(var.updated_at),
            created_by_name: v.created_by_name,
            version: var.version,
        }
    }
}

/// A new variable; `value` defaults to the empty string.
#[derive(Debug, Object)]
#[oai(rename = "VariableCreateRequest")]
pub struct VariableCreateIn {
    pub key: String,
    #[oai(write_only)]
    pub value: Option<String>,
    pub environment: u64,
}

/// Changes to a variable (PATCH: any subset; PUT: `key` required). A new `value` becomes a
/// new version.
#[derive(Debug, Object)]
#[oai(rename = "VariableUpdateRequest")]
pub struct VariableUpdateIn {
    pub key: Option<String>,
    #[oai(write_only)]
    pub value: Option<String>,
    /// Variables do not move; if given it must be the variable's environment.
    pub environment: Option<u64>,
}

/// Which version to restore.
#[derive(Debug, Object)]
#[oai(rename = "VariableRollbackRequest")]
pub struct RollbackIn {
    pub version: u32,
}

/// One version of a variable's value, newest first.
#[derive(Debug, Object)]
#[oai(rename = "VariableVersion")]
pub struct VersionOut {
    pub version: u32,
    /// The key the variable had at that version.
    pub key: String,
    pub decrypted_value: String,
    /// When this value was written, and by whom.
    pub created_at: String,
    pub created_by: u64,
    pub created_by_name: String,
    pub is_current: bool,
}

impl From<VersionView> for VersionOut {
    fn from(v: VersionView) -> Self {
        Self {
            version: v.version,
            key: v.key,
            decrypted_value: v.value,
            created_at: ts(v.created_at),
            created_by: v.created_by,
            created_by_name: v.created_by_name,
            is_current: v.is_current,
        }
    }
}

/// A deleted variable whose history is still readable (by organization admins).
#[derive(Debug, Object)]
#[oai(rename = "DeletedVariable")]
pub struct DeletedOut {
    pub id: u64,
    pub key: String,
    pub environment: u64,
    pub environment_name: String,
    /// The last version before deletion.
    pub version: u32,
    pub created_at: String,
    pub deleted_at: String,
    pub deleted_by_name: String,
    /// When the history will be purged.
    pub purge_at: String,
}

impl From<DeletedView> for DeletedOut {
    fn from(v: DeletedView) -> Self {
        let var = v.variable;
        Self {
            id: var.id,
            key: var.key,
            environment: var.environment_id,
            environment_name: v.environment_name,
            version: var.version,
            created_at: ts(var.created_at),
            deleted_at: ts(var.deleted_at.unwrap_or_default()),
            deleted_by_name: v.deleted_by_name,
            purge_at: ts(v.purge_at),
        }
    }
}

#[derive(ApiResponse)]
pub enum VariableCreated {
    /// The variable was created.
    #[oai(status = 201)]
    Created(Json<VariableOut>),
}

fn change_of(body: VariableUpdateIn, full: bool) -> Result<VariableChange, Error> {
    if full && body.key.is_none() {
        return Err(Error::invalid("key", "This field is required."));
    }
    if let Some(k) = &body.key {
        variables::validate_key(k)?;
    }
    if let Some(v) = &body.value {
        variables::validate_value(v)?;
    }
    Ok(VariableChange { key: body.key, value: body.value, environment: body.environment })
}

async fn do_update(
    state: &Arc<Services>,
    c: Caller,
    id: u64,
    body: VariableUpdateIn,
    full: bool,
) -> ApiResult<Json<VariableOut>> {
    let change = change_of(body, full)?;
    let v =
        write(state, c, move |tx, c, vault| variables::update(tx, c, vault, id, &change)).await?;
    Ok(Json(v.into()))
}

#[derive(Default)]
pub struct VariablesApi;

#[OpenApi(tag = "ApiTags::Variables")]
impl VariablesApi {
    /// The variables of one environment, with values.
    #[oai(
        path = "/api/environments/:id/variables/",
        method = "get",
        operation_id = "environments_variables_list"
    )]
    async fn env_variables(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
        page: Query<Option<u64>>,
        page_size: Query<Option<u64>>,
    ) -> ApiResult<PreJson<Page<VariableOut>>> {
        let pr = PageRequest::new(page.0, page_size.0)?;
        let c = caller(req, auth);
        let mut page = VariablePageJson::new(req, pr);
        read(&state, |tx, vault| {
            variables::list_for_env(tx, &c, vault, id.0, pr.offset(), pr.limit(), &mut page)
        })?;
        Ok(PreJson::from_body(page.finish()))
    }

    /// Every variable the caller may read, optionally of one environment.
    #[oai(path = "/api/variables/", method = "get", operation_id = "variables_list")]
    async fn list(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        environment: Query<Option<u64>>,
        page: Query<Option<u64>>,
        page_size: Query<Option<u64>>,
    ) -> ApiResult<PreJson<Page<VariableOut>>> {
        let pr = PageRequest::new(page.0, page_size.0)?;
        let c = caller(req, auth);
        let mut page = VariablePageJson::new(req, pr);
        read(&state, |tx, vault| {
            variables::list(tx, &c, vault, environment.0, pr.offset(), pr.limit(), &mut page)
        })?;
        Ok(PreJson::from_body(page.finish()))
    }

    /// Creates a variable (editors and admins); 409 if the key exists in the environment.
    #[oai(path = "/api/variables/", method = "post", operation_id = "variables_create")]
    async fn create(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        body: Json<VariableCreateIn>,
    ) -> ApiResult<VariableCreated> {
        let body = body.0;
        variables::validate_key(&body.key)?;
        let value = body.value.unwrap_or_default();
        variables::validate_value(&value)?;
        let (env, key) = (body.environment, body.key);
        let v = write(&state, caller(req, auth), move |tx, c, vault| {
            variables::create(tx, c, vault, env, &key, &value)
        })
        .await?;
        Ok(VariableCreated::Created(Json(v.into())))
    }

    /// One variable with its value.
    #[oai(path = "/api/variables/:id/", method = "get", operation_id = "variables_retrieve")]
    async fn retrieve(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
    ) -> ApiResult<Json<VariableOut>> {
        let c = caller(req, auth);
        Ok(Json(read(&state, |tx, vault| variables::get(tx, &c, vault, id.0))?.into()))
    }

    /// Replaces a variable's key and value (editors and admins).
    #[oai(path = "/api/variables/:id/", method = "put", operation_id = "variables_update")]
    async fn update(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
        body: Json<VariableUpdateIn>,
    ) -> ApiResult<Json<VariableOut>> {
        do_update(&state, caller(req, auth), id.0, body.0, true).await
    }

    /// Changes a variable's key and/or value (editors and admins).
    #[oai(
        path = "/api/variables/:id/",
        method = "patch",
        operation_id = "variables_partial_update"
    )]
    async fn partial_update(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
        body: Json<VariableUpdateIn>,
    ) -> ApiResult<Json<VariableOut>> {
        do_update(&state, caller(req, auth), id.0, body.0, false).await
    }

    /// Deletes a variable (editors and admins). Admins can still read its history for
    /// `storage.deleted_retention_days`.
    #[oai(path = "/api/variables/:id/", method = "delete", operation_id = "variables_destroy")]
    async fn destroy(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
    ) -> ApiResult<Deleted> {
        let id = id.0;
        write(&state, caller(req, auth), move |tx, c, vault| variables::delete(tx, c, vault, id))
            .await?;
        Ok(Deleted::NoContent)
    }

    /// The retained versions of a variable, newest (current) first. Works for a deleted
    /// variable within retention for organization admins.
    #[oai(
        path = "/api/variables/:id/versions/",
        method = "get",
        operation_id = "variables_versions_list"
    )]
    async fn versions(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
        page: Query<Option<u64>>,
        page_size: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<VersionOut>>> {
        let pr = PageRequest::new(page.0, page_size.0)?;
        let c = caller(req, auth);
        let all = read(&state, |tx, vault| history::versions(tx, &c, vault, id.0))?;
        let total = all.len() as u64;
        let rows = pr.slice(all).into_iter().map(Into::into).collect();
        Ok(Json(pr.build(req, total, rows)?))
    }

    /// Restores an earlier version's value as a new version (editors and admins).
    #[oai(
        path = "/api/variables/:id/rollback/",
        method = "post",
        operation_id = "variables_rollback_create"
    )]
    async fn rollback(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
        body: Json<RollbackIn>,
    ) -> ApiResult<Json<VariableOut>> {
        let (id, version) = (id.0, body.0.version);
        let v = write(&state, caller(req, auth), move |tx, c, vault| {
            history::rollback(tx, c, vault, id, version)
        })
        .await?;
        Ok(Json(v.into()))
    }

    /// Variables deleted from an environment whose history is still retained (organization
    /// admins). Read their values with `/api/variables/{id}/versions/`.
    #[oai(
        path = "/api/environments/:id/deleted-variables/",
        method = "get",
        operation_id = "environments_deleted_variables_list"
    )]
    async fn deleted(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
        page: Query<Option<u64>>,
        page_size: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<DeletedOut>>> {
        let pr = PageRequest::new(page.0, page_size.0)?;
        let c = caller(req, auth);
        let all = read(&state, |tx, vault| history::deleted(tx, &c, vault, id.0))?;
        let total = all.len() as u64;
        let rows = pr.slice(all).into_iter().map(Into::into).collect();
        Ok(Json(pr.build(req, total, rows)?))
    }
}
