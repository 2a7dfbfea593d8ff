//! `/api/projects/`: KeyNest's project routes (list with `organization`/`search`, CRUD, and
//! a project's environments).

use std::sync::Arc;

use poem::web::Data;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::api::environments::EnvironmentOut;
use crate::api::error::ApiResult;
use crate::api::paging::{Page, PageRequest};
use crate::api::secrets_support::{caller, read, ts, write};
use crate::api::security::Authenticated;
use crate::api::tags::ApiTags;
use crate::domain::secrets::projects::{self, ProjectFilter, ProjectView};
use crate::domain::secrets::{environments, Caller};
use crate::domain::{Error, Principal};
use crate::services::Services;

/// A project.
#[derive(Debug, Object)]
#[oai(rename = "Project")]
pub struct ProjectOut {
    pub id: u64,
    pub name: String,
    pub description: Option<String>,
    /// Organization id.
    pub organization: u64,
    pub organization_name: String,
    pub created_at: String,
    pub updated_at: String,
    pub created_by_name: String,
    pub environment_count: u64,
}

impl From<ProjectView> for ProjectOut {
    fn from(v: ProjectView) -> Self {
        let p = v.project;
        Self {
            id: p.id,
            name: p.name,
            description: p.description,
            organization: p.organization_id,
            organization_name: v.organization_name,
            created_at: ts(p.created_at),
            updated_at: ts(p.updated_at),
            created_by_name: v.created_by_name,
            environment_count: v.environment_count,
        }
    }
}

/// A new project. `organization` may be left out when the caller belongs to one organization
/// (or the credential speaks for one).
#[derive(Debug, Object)]
#[oai(rename = "ProjectCreateRequest")]
pub struct ProjectCreateIn {
    pub name: String,
    pub description: Option<String>,
    pub organization: Option<u64>,
}

/// Changes to a project (PATCH: any subset; PUT: `name` required).
#[derive(Debug, Object)]
#[oai(rename = "ProjectUpdateRequest")]
pub struct ProjectUpdateIn {
    pub name: Option<String>,
    pub description: MaybeUndefined<String>,
    /// Projects do not move; if given it must be the project's organization.
    pub organization: Option<u64>,
}

#[derive(ApiResponse)]
pub enum ProjectCreated {
    /// The project was created.
    #[oai(status = 201)]
    Created(Json<ProjectOut>),
}

#[derive(ApiResponse)]
pub enum Deleted {
    /// Deleted.
    #[oai(status = 204)]
    NoContent,
}

/// The organization a create applies to: the one given, else the credential's scope (an
/// org-scoped key or a PAT), else the caller's only one. A session's `company_id` is never a
/// default: it is the lowest organization id when the client asked for none, and whoever
/// created an older organization and added the caller to it would receive the caller's new
/// projects (M1, M3).
pub fn default_org(p: &Principal, given: Option<u64>) -> Result<u64, Error> {
    if let Some(o) = given {
        return Ok(o);
    }
    if let Some(o) = p.org_scope {
        return Ok(o);
    }
    match p.visible_orgs().as_slice() {
        [only] => Ok(*only),
        [] => Err(Error::invalid("organization", "This field is required.")),
        _ => Err(Error::invalid(
            "organization",
            "This field is required: you belong to several organizations.",
        )),
    }
}

/// A validated update: new name, new description (`Some(None)` clears), claimed organization.
type ProjectChange = (Option<String>, Option<Option<String>>, Option<u64>);

fn update_input(body: ProjectUpdateIn, full: bool) -> Result<ProjectChange, Error> {
    if full && body.name.is_none() {
        return Err(Error::invalid("name", "This field is required."));
    }
    let name = body.name.as_deref().map(projects::validate_name).transpose()?;
    let description = match body.description {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(d) => Some(projects::validate_description(Some(d))?),
    };
    Ok((name, description, body.organization))
}

async fn do_update(
    state: &Arc<Services>,
    c: Caller,
    id: u64,
    body: ProjectUpdateIn,
    full: bool,
) -> ApiResult<Json<ProjectOut>> {
    let (name, description, org) = update_input(body, full)?;
    let v = write(state, c, move |tx, c, _| {
        if let Some(o) = org {
            let p = projects::load(tx, c, id, crate::domain::Role::Viewer)?;
            if p.organization_id != o {
                return Err(Error::invalid(
                    "organization",
                    "A project cannot be moved to another organization.",
                ));
            }
        }
        projects::update(tx, c, id, name.as_deref(), description.clone())
    })
    .await?;
    Ok(Json(v.into()))
}

#[derive(Default)]
pub struct ProjectsApi;

#[OpenApi(tag = "ApiTags::Projects")]
impl ProjectsApi {
    /// Projects in the caller's organizations; `search` matches name and description
    /// (case-insensitive).
    #[oai(path = "/api/projects/", method = "get", operation_id = "projects_list")]
    #[allow(clippy::too_many_arguments)] // one parameter per documented query field
    async fn list(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        organization: Query<Option<u64>>,
        search: Query<Option<String>>,
        page: Query<Option<u64>>,
        page_size: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<ProjectOut>>> {
        let pr = PageRequest::new(page.0, page_size.0)?;
        let c = caller(req, auth);
        let filter = ProjectFilter { organization: organization.0, search: search.0 };
        let (total, rows) =
            read(&state, |tx, _| projects::list(tx, &c, &filter, pr.offset(), pr.limit()))?;
        Ok(Json(pr.build(req, total, rows.into_iter().map(Into::into).collect())?))
    }

    /// Creates a project (organization editors and admins).
    #[oai(path = "/api/projects/", method = "post", operation_id = "projects_create")]
    async fn create(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        body: Json<ProjectCreateIn>,
    ) -> ApiResult<ProjectCreated> {
        let c = caller(req, auth);
        let org = default_org(&c.principal, body.0.organization)?;
        let name = projects::validate_name(&body.0.name)?;
        let description = projects::validate_description(body.0.description)?;
        let v = write(&state, c, move |tx, c, _| {
            projects::create(tx, c, org, &name, description.clone())
        })
        .await?;
        Ok(ProjectCreated::Created(Json(v.into())))
    }

    /// One project.
    #[oai(path = "/api/projects/:id/", method = "get", operation_id = "projects_retrieve")]
    async fn retrieve(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
    ) -> ApiResult<Json<ProjectOut>> {
        let c = caller(req, auth);
        let v = read(&state, |tx, _| projects::get(tx, &c, id.0))?;
        Ok(Json(v.into()))
    }

    /// Replaces a project's name and description (editors and admins).
    #[oai(path = "/api/projects/:id/", method = "put", operation_id = "projects_update")]
    async fn update(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
        body: Json<ProjectUpdateIn>,
    ) -> ApiResult<Json<ProjectOut>> {
        do_update(&state, caller(req, auth), id.0, body.0, true).await
    }

    /// Changes some of a project's fields (editors and admins).
    #[oai(path = "/api/projects/:id/", method = "patch", operation_id = "projects_partial_update")]
    async fn partial_update(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
        body: Json<ProjectUpdateIn>,
    ) -> ApiResult<Json<ProjectOut>> {
        do_update(&state, caller(req, auth), id.0, body.0, false).await
    }

    /// Deletes a project with its environments and variables (organization admins).
    #[oai(path = "/api/projects/:id/", method = "delete", operation_id = "projects_destroy")]
    async fn destroy(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
    ) -> ApiResult<Deleted> {
        let id = id.0;
        write(&state, caller(req, auth), move |tx, c, _| projects::delete(tx, c, id)).await?;
        Ok(Deleted::NoContent)
    }

    /// The environments of a project.
    #[oai(
        path = "/api/projects/:id/environments/",
        method = "get",
        operation_id = "projects_environments_list"
    )]
    async fn environments(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
        page: Query<Option<u64>>,
        page_size: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<EnvironmentOut>>> {
        let pr = PageRequest::new(page.0, page_size.0)?;
        let c = caller(req, auth);
        let (total, rows) = read(&state, |tx, _| {
            environments::list_for_project(tx, &c, id.0, pr.offset(), pr.limit())
        })?;
        Ok(Json(pr.build(req, total, rows.into_iter().map(Into::into).collect())?))
    }
}
