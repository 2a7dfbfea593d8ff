//! `/unstract/{org_id}/api/v2/api-deployment/`: API deployments (a workflow published under an
//! `api_name` with its own key, limits and usage), managed by editors and admins. The key is
//! shown once: in the create and rotate-key responses; everywhere else only `masked_key`.

use std::sync::Arc;

use poem::web::Data;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::{resolve_org, Deleted};
use crate::api::body::OptionalJson;
use crate::api::error::ApiResult;
use crate::api::paging::{Page, PageRequest};
use crate::api::secrets_support::{caller, read, ts, write};
use crate::api::security::Authenticated;
use crate::api::tags::ApiTags;
use crate::domain::deployments::api_deployments::{self, DeploymentInput, DeploymentView};
use crate::domain::deployments::records::Usage;
use crate::domain::secrets::Caller;
use crate::services::Services;

/// What a deployment has served.
#[derive(Debug, Object)]
#[oai(rename = "ApiDeploymentUsage")]
pub struct UsageOut {
    pub request_count: u64,
    pub execution_count: u64,
    pub error_count: u64,
    /// Mean run time of finished executions, in milliseconds.
    pub avg_execution_ms: f64,
    /// RFC 3339, or null when never called.
    pub last_used_at: Option<String>,
}

impl From<Usage> for UsageOut {
    fn from(u: Usage) -> Self {
        Self {
            request_count: u.request_count,
            execution_count: u.execution_count,
            error_count: u.error_count,
            avg_execution_ms: u.avg_execution_ms(),
            last_used_at: u.last_used_at.map(ts),
        }
    }
}

/// An API deployment.
#[derive(Debug, Object)]
#[oai(rename = "ApiDeployment")]
pub struct DeploymentOut {
    pub id: u64,
    /// The deployment's name in its organization: `^[a-z0-9][a-z0-9-]{1,62}$`.
    pub api_name: String,
    pub display_name: String,
    pub description: String,
    /// The workflow's id.
    pub workflow: u64,
    pub workflow_name: String,
    /// `TASK` or `ETL`, from the workflow's type.
    pub deployment_type: String,
    pub is_active: bool,
    pub rate_limit_per_minute: u64,
    /// CIDRs callers may come from; empty: anywhere.
    pub ip_allowlist: Vec<String>,
    pub max_input_bytes: u64,
    pub timeout_seconds: u64,
    /// The key's prefix and a few of its characters, enough to tell keys apart.
    pub masked_key: String,
    pub usage: UsageOut,
    pub created_at: String,
    pub updated_at: String,
    /// The key itself (`unst_…`): only in the create and rotate-key responses, null in every
    /// other. It is never shown again; only its digest is kept.
    pub api_key: Option<String>,
    /// `/deployment/{api_key}/`, the path callers execute: only in the create and rotate-key
    /// responses (it holds the key), null in every other.
    pub api_endpoint: Option<String>,
}

fn out(state: &Services, v: DeploymentView, key: Option<&str>) -> DeploymentOut {
    let d = v.deployment;
    let usage = state.deployments.usage_of(&d.usage, d.id);
    DeploymentOut {
        id: d.id,
        api_name: d.api_name,
        display_name: d.display_name,
        description: d.description,
        workflow: d.workflow_id,
        workflow_name: v.workflow_name,
        deployment_type: v.deployment_type.to_string(),
        is_active: d.is_active,
        rate_limit_per_minute: d.rate_limit_per_minute,
        ip_allowlist: d.ip_allowlist,
        max_input_bytes: d.max_input_bytes,
        timeout_seconds: d.timeout_seconds,
        masked_key: d.masked_key,
        usage: usage.into(),
        created_at: ts(d.created_at),
        updated_at: ts(d.updated_at),
        api_key: key.map(str::to_string),
        api_endpoint: key.map(|k| format!("/deployment/{k}/")),
    }
}

/// A new deployment or changes to one. Create and PUT require `api_name` and `workflow`; PATCH
/// takes any subset. Limits left out take the server's defaults (rate: 100 a minute).
#[derive(Debug, Object)]
#[oai(rename = "ApiDeploymentRequest")]
pub struct DeploymentIn {
    /// `^[a-z0-9][a-z0-9-]{1,62}$`, unique in the organization.
    pub api_name: Option<String>,
    /// Defaults to `api_name`.
    pub display_name: Option<String>,
    pub description: Option<String>,
    /// A workflow of the same organization.
    pub workflow: Option<u64>,
    /// Defaults to true.
    pub is_active: Option<bool>,
    pub rate_limit_per_minute: Option<u64>,
    /// CIDRs or bare addresses callers may come from; empty: anywhere.
    pub ip_allowlist: Option<Vec<String>>,
    pub max_input_bytes: Option<u64>,
    pub timeout_seconds: Option<u64>,
}

impl From<DeploymentIn> for DeploymentInput {
    fn from(b: DeploymentIn) -> Self {
        Self {
            api_name: b.api_name,
            display_name: b.display_name,
            description: b.description,
            workflow: b.workflow,
            is_active: b.is_active,
            rate_limit_per_minute: b.rate_limit_per_minute,
            ip_allowlist: b.ip_allowlist,
            max_input_bytes: b.max_input_bytes,
            timeout_seconds: b.timeout_seconds,
        }
    }
}

/// A key rotation (the body may be left out).
#[derive(Debug, Object)]
#[oai(rename = "ApiDeploymentRotateKeyRequest")]
pub struct RotateIn {
    /// How long the old key keeps working, in seconds (0, the default: it stops at once; at
    /// most a week).
    pub grace_seconds: Option<u64>,
}

#[derive(ApiResponse)]
pub enum DeploymentCreated {
    /// The deployment was created; `api_key` is shown this once.
    #[oai(status = 201)]
    Created(Json<DeploymentOut>),
}

async fn do_update(
    state: &Arc<Services>,
    c: Caller,
    org_ref: String,
    id: u64,
    body: DeploymentIn,
    full: bool,
) -> ApiResult<Json<DeploymentOut>> {
    let input = DeploymentInput::from(body);
    let limits = state.deployments.limits();
    let v = write(state, c, move |tx, c, _| {
        let org = resolve_org(tx, &org_ref)?;
        api_deployments::update(tx, c, org, id, &input, limits, full)
    })
    .await?;
    Ok(Json(out(state, v, None)))
}

#[derive(Default)]
pub struct ApiDeploymentsApi;

#[OpenApi(tag = "ApiTags::ApiDeployments")]
impl ApiDeploymentsApi {
    /// The organization's API deployments, in id order (editors and admins). Filters:
    /// `workflow` (id), `api_name` (exact), `search` (display name contains,
    /// case-insensitive).
    #[oai(
        path = "/unstract/:org_id/api/v2/api-deployment/",
        method = "get",
        operation_id = "unstract_api_deployment_list"
    )]
    #[allow(clippy::too_many_arguments)] // one parameter per documented query field
    async fn list(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        org_id: Path<String>,
        workflow: Query<Option<u64>>,
        api_name: Query<Option<String>>,
        search: Query<Option<String>>,
        page: Query<Option<u64>>,
        page_size: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<DeploymentOut>>> {
        let pr = PageRequest::new(page.0, page_size.0)?;
        let c = caller(req, auth);
        let all = read(&state, |tx, _| {
            let org = resolve_org(tx, &org_id.0)?;
            api_deployments::list(tx, &c, org)
        })?;
        let needle = search.0.as_deref().map(str::to_lowercase).filter(|s| !s.is_empty());
        let matching: Vec<DeploymentView> = all
            .into_iter()
            .filter(|v| workflow.0.is_none_or(|w| v.deployment.workflow_id == w))
            .filter(|v| api_name.0.as_deref().is_none_or(|n| v.deployment.api_name == n))
            .filter(|v| {
                needle
                    .as_deref()
                    .is_none_or(|s| v.deployment.display_name.to_lowercase().contains(s))
            })
            .collect();
        let total = matching.len() as u64;
        let rows = pr.slice(matching).into_iter().map(|v| out(&state, v, None)).collect();
        Ok(Json(pr.build(req, total, rows)?))
    }

    /// Creates a deployment with a new key (editors and admins); `api_name` and `workflow` are
    /// required. The response carries the key, shown this once.
    #[oai(
        path = "/unstract/:org_id/api/v2/api-deployment/",
        method = "post",
        operation_id = "unstract_api_deployment_create"
    )]
    async fn create(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        org_id: Path<String>,
        body: Json<DeploymentIn>,
    ) -> ApiResult<DeploymentCreated> {
        let input = DeploymentInput::from(body.0);
        let limits = state.deployments.limits();
        let org_ref = org_id.0;
        // Made outside the closure, which may run more than once.
        let key = Arc::new(api_deployments::new_key()?);
        let k = Arc::clone(&key);
        let v = write(&state, caller(req, auth), move |tx, c, _| {
            let org = resolve_org(tx, &org_ref)?;
            api_deployments::create(tx, c, org, &input, limits, &k)
        })
        .await?;
        Ok(DeploymentCreated::Created(Json(out(&state, v, Some(&key.key)))))
    }

    /// One deployment (without its key).
    #[oai(
        path = "/unstract/:org_id/api/v2/api-deployment/:id/",
        method = "get",
        operation_id = "unstract_api_deployment_retrieve"
    )]
    async fn retrieve(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        org_id: Path<String>,
        id: Path<u64>,
    ) -> ApiResult<Json<DeploymentOut>> {
        let c = caller(req, auth);
        let v = read(&state, |tx, _| {
            let org = resolve_org(tx, &org_id.0)?;
            api_deployments::get(tx, &c, org, id.0)
        })?;
        Ok(Json(out(&state, v, None)))
    }

    /// Replaces a deployment's settings (`api_name` and `workflow` required); the key stays.
    #[oai(
        path = "/unstract/:org_id/api/v2/api-deployment/:id/",
        method = "put",
        operation_id = "unstract_api_deployment_update"
    )]
    async fn update(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        org_id: Path<String>,
        id: Path<u64>,
        body: Json<DeploymentIn>,
    ) -> ApiResult<Json<DeploymentOut>> {
        do_update(&state, caller(req, auth), org_id.0, id.0, body.0, true).await
    }

    /// Changes some of a deployment's settings.
    #[oai(
        path = "/unstract/:org_id/api/v2/api-deployment/:id/",
        method = "patch",
        operation_id = "unstract_api_deployment_partial_update"
    )]
    async fn partial_update(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        org_id: Path<String>,
        id: Path<u64>,
        body: Json<DeploymentIn>,
    ) -> ApiResult<Json<DeploymentOut>> {
        do_update(&state, caller(req, auth), org_id.0, id.0, body.0, false).await
    }

    /// Deletes a deployment with its executions; its key stops working at once.
    #[oai(
        path = "/unstract/:org_id/api/v2/api-deployment/:id/",
        method = "delete",
        operation_id = "unstract_api_deployment_destroy"
    )]
    async fn destroy(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        org_id: Path<String>,
        id: Path<u64>,
    ) -> ApiResult<Deleted> {
        let (org_ref, id) = (org_id.0, id.0);
        write(&state, caller(req, auth), move |tx, c, _| {
            let org = resolve_org(tx, &org_ref)?;
            api_deployments::delete(tx, c, org, id)
        })
        .await?;
        Ok(Deleted::NoContent)
    }

    /// Replaces the key; the old one keeps working for `grace_seconds` (0, the default: stops
    /// at once). The response carries the new key, shown this once.
    #[oai(
        path = "/unstract/:org_id/api/v2/api-deployment/:id/rotate-key/",
        method = "post",
        operation_id = "unstract_api_deployment_rotate_key"
    )]
    async fn rotate_key(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        org_id: Path<String>,
        id: Path<u64>,
        body: OptionalJson<RotateIn>,
    ) -> ApiResult<Json<DeploymentOut>> {
        let grace = body.0.and_then(|b| b.grace_seconds).unwrap_or(0);
        let (org_ref, id) = (org_id.0, id.0);
        // Made outside the closure, which may run more than once.
        let key = Arc::new(api_deployments::new_key()?);
        let k = Arc::clone(&key);
        let v = write(&state, caller(req, auth), move |tx, c, _| {
            let org = resolve_org(tx, &org_ref)?;
            api_deployments::rotate_key(tx, c, org, id, grace, &k)
        })
        .await?;
        Ok(Json(out(&state, v, Some(&key.key))))
    }
}
