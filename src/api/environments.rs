//! `/api/environments/`: KeyNest's environment routes (list with `project` and
//! `environment_type` filters, and CRUD).

use std::sync::Arc;

use poem::web::Data;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::api::error::ApiResult;
use crate::api::paging::{Page, PageRequest};
use crate::api::projects::Deleted;
use crate::api::secrets_support::{caller, read, ts, write};
use crate::api::security::Authenticated;
use crate::api::tags::ApiTags;
use crate::domain::secrets::environments::{
    self, EnvironmentChange, EnvironmentFilter, EnvironmentView,
};
use crate::domain::secrets::projects::validate_description;
use crate::domain::secrets::Caller;
use crate::domain::{Error, Role};
use crate::services::Services;

/// An environment.
#[derive(Debug, Object)]
#[oai(rename = "Environment")]
pub struct EnvironmentOut {
    pub id: u64,
    pub name: String,
    /// Project id.
    pub project: u64,
    pub project_name: String,
    /// `development`, `staging`, `production` or `testing`.
    pub environment_type: String,
    pub description: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub created_by_name: String,
    pub variable_count: u64,
}

impl From<EnvironmentView> for EnvironmentOut {
    fn from(v: EnvironmentView) -> Self {
        let e = v.environment;
        Self {
            id: e.id,
            name: e.name,
            project: e.project_id,
            project_name: v.project_name,
            environment_type: e.environment_type,
            description: e.description,
            created_at: ts(e.created_at),
            updated_at: ts(e.updated_at),
            created_by_name: v.created_by_name,
            variable_count: v.variable_count,
        }
    }
}

/// A new environment; `environment_type` defaults to `development`.
#[derive(Debug, Object)]
#[oai(rename = "EnvironmentCreateRequest")]
pub struct EnvironmentCreateIn {
    pub name: String,
    pub project: u64,
    pub environment_type: Option<String>,
    pub description: Option<String>,
}

/// Changes to an environment (PATCH: any subset; PUT: `name` required).
#[derive(Debug, Object)]
#[oai(rename = "EnvironmentUpdateRequest")]
pub struct EnvironmentUpdateIn {
    pub name: Option<String>,
    pub environment_type: Option<String>,
    pub description: MaybeUndefined<String>,
    /// Environments do not move; if given it must be the environment's project.
    pub project: Option<u64>,
}

#[derive(ApiResponse)]
pub enum EnvironmentCreated {
    /// The environment was created.
    #[oai(status = 201)]
    Created(Json<EnvironmentOut>),
}

fn change_of(
    body: EnvironmentUpdateIn,
    full: bool,
) -> Result<(EnvironmentChange, Option<u64>), Error> {
    if full && body.name.is_none() {
        return Err(Error::invalid("name", "This field is required."));
    }
    let change = EnvironmentChange {
        name: body.name.as_deref().map(environments::validate_name).transpose()?,
        environment_type: body
            .environment_type
            .as_deref()
            .map(environments::validate_type)
            .transpose()?,
        description: match body.description {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(d) => Some(validate_description(Some(d))?),
        },
    };
    Ok((change, body.project))
}

async fn do_update(
    state: &Arc<Services>,
    c: Caller,
    id: u64,
    body: EnvironmentUpdateIn,
    full: bool,
) -> ApiResult<Json<EnvironmentOut>> {
    let (change, project) = change_of(body, full)?;
    let v = write(state, c, move |tx, c, _| {
        if let Some(p) = project {
            if environments::load(tx, c, id, Role::Viewer)?.project_id != p {
                return Err(Error::invalid(
                    "project",
                    "An environment cannot be moved to another project.",
                ));
            }
        }
        environments::update(tx, c, id, &change)
    })
    .await?;
    Ok(Json(v.into()))
}

#[derive(Default)]
pub struct EnvironmentsApi;

#[OpenApi(tag = "ApiTags::Environments")]
impl EnvironmentsApi {
    /// Environments in the caller's organizations, optionally of one project or one type.
    #[oai(path = "/api/environments/", method = "get", operation_id = "environments_list")]
    #[allow(clippy::too_many_arguments)] // one parameter per documented query field
    async fn list(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        project: Query<Option<u64>>,
        environment_type: Query<Option<String>>,
        page: Query<Option<u64>>,
        page_size: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<EnvironmentOut>>> {
        let pr = PageRequest::new(page.0, page_size.0)?;
        let kind = environment_type.0.filter(|t| !t.is_empty());
        let kind = kind.as_deref().map(environments::validate_type).transpose()?;
        let c = caller(req, auth);
        let filter = EnvironmentFilter { project: project.0, environment_type: kind };
        let (total, rows) =
            read(&state, |tx, _| environments::list(tx, &c, &filter, pr.offset(), pr.limit()))?;
        Ok(Json(pr.build(req, total, rows.into_iter().map(Into::into).collect())?))
    }

    /// Creates an environment in a project (editors and admins).
    #[oai(path = "/api/environments/", method = "post", operation_id = "environments_create")]
    async fn create(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        body: Json<EnvironmentCreateIn>,
    ) -> ApiResult<EnvironmentCreated> {
        let body = body.0;
        let name = environments::validate_name(&body.name)?;
        let kind =
            environments::validate_type(body.environment_type.as_deref().unwrap_or("development"))?;
        let description = validate_description(body.description)?;
        let project = body.project;
        let v = write(&state, caller(req, auth), move |tx, c, _| {
            environments::create(tx, c, project, &name, &kind, description.clone())
        })
        .await?;
        Ok(EnvironmentCreated::Created(Json(v.into())))
    }

    /// One environment.
    #[oai(path = "/api/environments/:id/", method = "get", operation_id = "environments_retrieve")]
    async fn retrieve(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
    ) -> ApiResult<Json<EnvironmentOut>> {
        let c = caller(req, auth);
        Ok(Json(read(&state, |tx, _| environments::get(tx, &c, id.0))?.into()))
    }

    /// Replaces an environment's fields (editors and admins).
    #[oai(path = "/api/environments/:id/", method = "put", operation_id = "environments_update")]
    async fn update(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
        body: Json<EnvironmentUpdateIn>,
    ) -> ApiResult<Json<EnvironmentOut>> {
        do_update(&state, caller(req, auth), id.0, body.0, true).await
    }

    /// Changes some of an environment's fields (editors and admins).
    #[oai(
        path = "/api/environments/:id/",
        method = "patch",
        operation_id = "environments_partial_update"
    )]
    async fn partial_update(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
        body: Json<EnvironmentUpdateIn>,
    ) -> ApiResult<Json<EnvironmentOut>> {
        do_update(&state, caller(req, auth), id.0, body.0, false).await
    }

    /// Deletes an environment with its variables and their history (editors and admins).
    #[oai(
        path = "/api/environments/:id/",
        method = "delete",
        operation_id = "environments_destroy"
    )]
    async fn destroy(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
    ) -> ApiResult<Deleted> {
        let id = id.0;
        write(&state, caller(req, auth), move |tx, c, _| environments::delete(tx, c, id)).await?;
        Ok(Deleted::NoContent)
    }
}
