//! `/unstract/{org_id}/api/v2/workflow/`: workflows (a template bound to at most one
//! environment of the organization), managed by editors and admins.

use std::sync::Arc;

use poem::web::Data;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::{resolve_org, Deleted};
use crate::api::error::ApiResult;
use crate::api::paging::{Page, PageRequest};
use crate::api::secrets_support::{caller, read, ts, write};
use crate::api::security::Authenticated;
use crate::api::tags::ApiTags;
use crate::domain::deployments::records::Workflow;
use crate::domain::deployments::workflows::{self, WorkflowInput};
use crate::domain::secrets::Caller;
use crate::services::Services;

/// A workflow.
#[derive(Debug, Object)]
#[oai(rename = "Workflow")]
pub struct WorkflowOut {
    pub id: u64,
    pub workflow_name: String,
    pub description: String,
    /// `task` (one input → one output) or `etl` (a list of records → a list of outputs).
    pub workflow_type: String,
    /// The environment whose variables the template reads as `env.NAME`, or null.
    pub environment: Option<u64>,
    /// The template (Jinja syntax) a call renders.
    pub template: String,
    /// `text` or `json`: what the rendered text becomes.
    pub output_format: String,
    pub created_at: String,
    pub updated_at: String,
    /// The id of the user who created it.
    pub created_by: u64,
}

impl From<Workflow> for WorkflowOut {
    fn from(w: Workflow) -> Self {
        Self {
            id: w.id,
            workflow_name: w.name,
            description: w.description,
            workflow_type: w.workflow_type.as_str().to_string(),
            environment: w.environment_id,
            template: w.template,
            output_format: w.output_format.as_str().to_string(),
            created_at: ts(w.created_at),
            updated_at: ts(w.updated_at),
            created_by: w.created_by,
        }
    }
}

/// A new workflow or changes to one. Create and PUT require `workflow_name` and `template`;
/// PATCH takes any subset. `environment: null` unbinds the environment.
#[derive(Debug, Object)]
#[oai(rename = "WorkflowRequest")]
pub struct WorkflowIn {
    pub workflow_name: Option<String>,
    pub description: Option<String>,
    /// `task` (default) or `etl`.
    pub workflow_type: Option<String>,
    /// An environment of the same organization, or null.
    pub environment: MaybeUndefined<u64>,
    /// The template (Jinja syntax); a syntax error is refused with its line.
    pub template: Option<String>,
    /// `text` (default) or `json`.
    pub output_format: Option<String>,
}

impl From<WorkflowIn> for WorkflowInput {
    fn from(b: WorkflowIn) -> Self {
        Self {
            name: b.workflow_name,
            description: b.description,
            workflow_type: b.workflow_type,
            environment: match b.environment {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(e) => Some(Some(e)),
            },
            template: b.template,
            output_format: b.output_format,
        }
    }
}

#[derive(ApiResponse)]
pub enum WorkflowCreated {
    /// The workflow was created.
    #[oai(status = 201)]
    Created(Json<WorkflowOut>),
}

async fn do_update(
    state: &Arc<Services>,
    c: Caller,
    org_ref: String,
    id: u64,
    body: WorkflowIn,
    full: bool,
) -> ApiResult<Json<WorkflowOut>> {
    let input = WorkflowInput::from(body);
    let w = write(state, c, move |tx, c, _| {
        let org = resolve_org(tx, &org_ref)?;
        workflows::update(tx, c, org, id, &input, full)
    })
    .await?;
    Ok(Json(w.into()))
}

#[derive(Default)]
pub struct WorkflowsApi;

#[OpenApi(tag = "ApiTags::ApiDeployments")]
impl WorkflowsApi {
    /// The organization's workflows, in id order (editors and admins).
    #[oai(
        path = "/unstract/:org_id/api/v2/workflow/",
        method = "get",
        operation_id = "unstract_workflow_list"
    )]
    async fn list(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        org_id: Path<String>,
        page: Query<Option<u64>>,
        page_size: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<WorkflowOut>>> {
        let pr = PageRequest::new(page.0, page_size.0)?;
        let c = caller(req, auth);
        let all = read(&state, |tx, _| {
            let org = resolve_org(tx, &org_id.0)?;
            workflows::list(tx, &c, org)
        })?;
        let total = all.len() as u64;
        Ok(Json(pr.build(req, total, pr.slice(all).into_iter().map(Into::into).collect())?))
    }

    /// Creates a workflow (editors and admins); `workflow_name` and `template` are required.
    #[oai(
        path = "/unstract/:org_id/api/v2/workflow/",
        method = "post",
        operation_id = "unstract_workflow_create"
    )]
    async fn create(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        org_id: Path<String>,
        body: Json<WorkflowIn>,
    ) -> ApiResult<WorkflowCreated> {
        let input = WorkflowInput::from(body.0);
        let org_ref = org_id.0;
        let w = write(&state, caller(req, auth), move |tx, c, _| {
            let org = resolve_org(tx, &org_ref)?;
            workflows::create(tx, c, org, &input)
        })
        .await?;
        Ok(WorkflowCreated::Created(Json(w.into())))
    }

    /// One workflow.
    #[oai(
        path = "/unstract/:org_id/api/v2/workflow/:id/",
        method = "get",
        operation_id = "unstract_workflow_retrieve"
    )]
    async fn retrieve(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        org_id: Path<String>,
        id: Path<u64>,
    ) -> ApiResult<Json<WorkflowOut>> {
        let c = caller(req, auth);
        let w = read(&state, |tx, _| {
            let org = resolve_org(tx, &org_id.0)?;
            workflows::get(tx, &c, org, id.0)
        })?;
        Ok(Json(w.into()))
    }

    /// Replaces a workflow (`workflow_name` and `template` required).
    #[oai(
        path = "/unstract/:org_id/api/v2/workflow/:id/",
        method = "put",
        operation_id = "unstract_workflow_update"
    )]
    async fn update(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        org_id: Path<String>,
        id: Path<u64>,
        body: Json<WorkflowIn>,
    ) -> ApiResult<Json<WorkflowOut>> {
        do_update(&state, caller(req, auth), org_id.0, id.0, body.0, true).await
    }

    /// Changes some of a workflow's fields.
    #[oai(
        path = "/unstract/:org_id/api/v2/workflow/:id/",
        method = "patch",
        operation_id = "unstract_workflow_partial_update"
    )]
    async fn partial_update(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        org_id: Path<String>,
        id: Path<u64>,
        body: Json<WorkflowIn>,
    ) -> ApiResult<Json<WorkflowOut>> {
        do_update(&state, caller(req, auth), org_id.0, id.0, body.0, false).await
    }

    /// Deletes a workflow with its API deployments and their executions.
    #[oai(
        path = "/unstract/:org_id/api/v2/workflow/:id/",
        method = "delete",
        operation_id = "unstract_workflow_destroy"
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
            workflows::delete(tx, c, org, id)
        })
        .await?;
        Ok(Deleted::NoContent)
    }
}
