//! `/api/organizations/…`: organizations and their members, with KeyNest's own member action
//! routes (`invite_member`, `update_member_role`, `remove_member`) beside the REST ones.

use std::sync::Arc;

use poem::web::Data;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::api::auth::client_ip;
use crate::api::error::ApiResult;
use crate::api::paging::{Page, PageRequest};
use crate::api::security::Authenticated;
use crate::api::tags::ApiTags;
use crate::clock::rfc3339_from_unix;
use crate::domain::audit::Actor;
use crate::domain::orgs::{self, MemberView, OrgView};
use crate::domain::Principal;
use crate::services::Services;

#[derive(Default)]
pub struct OrganizationsApi;

#[derive(Debug, Object)]
#[oai(rename = "Organization")]
pub struct OrganizationBody {
    pub id: u64,
    /// A second identifier, accepted wherever a route names the organization (Unstract's
    /// `/unstract/{org_id}/…` routes use it).
    pub uuid: String,
    pub name: String,
    pub description: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub member_count: u64,
    pub project_count: u64,
    /// The caller's role: `admin`, `editor` or `viewer`.
    pub user_role: Option<String>,
}

impl From<OrgView> for OrganizationBody {
    fn from(v: OrgView) -> Self {
        Self {
            id: v.org.id,
            uuid: v.org.uuid,
            name: v.org.name,
            description: v.org.description,
            created_at: rfc3339_from_unix(v.org.created_at),
            updated_at: rfc3339_from_unix(v.org.updated_at),
            member_count: v.member_count,
            project_count: v.project_count,
            user_role: v.user_role.map(|r| r.as_str().to_string()),
        }
    }
}

#[derive(Debug, Object)]
pub struct OrganizationCreateRequest {
    /// 2–255 characters, unique among the caller's organizations.
    pub name: String,
    pub description: Option<String>,
}

#[derive(Debug, Object)]
pub struct OrganizationPatchRequest {
    pub name: Option<String>,
    pub description: MaybeUndefined<String>,
}

#[derive(ApiResponse)]
pub enum OrganizationCreated {
    #[oai(status = 201)]
    Created(Json<OrganizationBody>),
}

#[derive(ApiResponse)]
pub enum Deleted {
    /// Deleted.
    #[oai(status = 204)]
    NoContent,
}

#[derive(Debug, Object)]
#[oai(rename = "Member")]
pub struct MemberBody {
    /// The member's user id.
    pub id: u64,
    pub email: String,
    pub username: String,
    pub role: String,
    pub joined_at: String,
    pub last_login: Option<String>,
    pub is_active: bool,
}

impl From<&MemberView> for MemberBody {
    fn from(m: &MemberView) -> Self {
        Self {
            id: m.user.id,
            email: m.user.email.clone(),
            username: m.user.username.clone(),
            role: m.role.as_str().to_string(),
            joined_at: rfc3339_from_unix(m.joined_at),
            last_login: m.user.last_login.map(rfc3339_from_unix),
            is_active: m.user.is_active,
        }
    }
}

#[derive(Debug, Object)]
pub struct MembersResponse {
    pub members: Vec<MemberBody>,
    pub total_count: u64,
}

#[derive(Debug, Object)]
pub struct InviteMemberRequest {
    /// Email of an existing account.
    pub email: String,
    /// `admin`, `editor` or `viewer` (default `viewer`).
    pub role: Option<String>,
}

#[derive(Debug, Object)]
pub struct MemberMessage {
    pub message: String,
    pub member: MemberBody,
}

#[derive(ApiResponse)]
pub enum MemberAdded {
    #[oai(status = 201)]
    Created(Json<MemberMessage>),
}

#[derive(Debug, Object)]
pub struct UpdateMemberRoleRequest {
    pub user_id: u64,
    pub role: String,
}

#[derive(Debug, Object)]
pub struct MemberRoleRequest {
    pub role: String,
}

#[derive(Debug, Object)]
pub struct RemoveMemberRequest {
    pub user_id: u64,
}

#[derive(Debug, Object)]
pub struct RemovedMember {
    pub email: String,
    pub username: String,
    pub role: String,
}

#[derive(Debug, Object)]
pub struct RemoveMemberResponse {
    pub message: String,
    pub removed_member: RemovedMember,
}

fn actor(p: &Principal, req: &Request) -> Actor {
    Actor::from_principal(p, client_ip(req))
}

impl OrganizationsApi {
    async fn add(
        &self,
        state: &Services,
        req: &Request,
        p: Principal,
        org: u64,
        b: InviteMemberRequest,
    ) -> ApiResult<MemberAdded> {
        let role = orgs::parse_role("role", b.role.as_deref().unwrap_or("viewer"))?;
        let a = actor(&p, req);
        let m =
            state.store.write(move |tx| orgs::add_member(tx, &p, &a, org, &b.email, role)).await?;
        let org_name = state.store.read(|tx| crate::domain::records::organization_name(tx, org))?;
        Ok(MemberAdded::Created(Json(MemberMessage {
            message: format!("User has been added to {org_name} as {}", role.as_str()),
            member: MemberBody::from(&m),
        })))
    }

    async fn set_role(
        &self,
        state: &Services,
        req: &Request,
        p: Principal,
        org: u64,
        user_id: u64,
        role: &str,
    ) -> ApiResult<Json<MemberMessage>> {
        let role = orgs::parse_role("role", role)?;
        let a = actor(&p, req);
        let (m, old) = state
            .store
            .write(move |tx| orgs::update_member_role(tx, &p, &a, org, user_id, role))
            .await?;
        let message = if old == role {
            "Role is already set to the specified value"
        } else {
            "Role updated successfully"
        };
        Ok(Json(MemberMessage { message: message.into(), member: MemberBody::from(&m) }))
    }

    async fn remove(
        &self,
        state: &Services,
        req: &Request,
        p: Principal,
        org: u64,
        user_id: u64,
    ) -> ApiResult<RemoveMemberResponse> {
        let a = actor(&p, req);
        let org_name = state.store.read(|tx| crate::domain::records::organization_name(tx, org))?;
        let m = state.store.write(move |tx| orgs::remove_member(tx, &p, &a, org, user_id)).await?;
        Ok(RemoveMemberResponse {
            message: format!("User has been removed from {org_name}"),
            removed_member: RemovedMember {
                email: m.user.email,
                username: m.user.username,
                role: m.role.as_str().into(),
            },
        })
    }
}

#[OpenApi(tag = "ApiTags::Organizations")]
impl OrganizationsApi {
    /// Organizations the caller belongs to.
    #[oai(path = "/api/organizations/", method = "get", operation_id = "organizations_list")]
    async fn list(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        page: Query<Option<u64>>,
        page_size: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<OrganizationBody>>> {
        let pr = PageRequest::new(page.0, page_size.0)?;
        let all = state.store.read(|tx| orgs::list(tx, auth.principal()))?;
        let total = all.len() as u64;
        let results = pr.slice(all).into_iter().map(OrganizationBody::from).collect();
        Ok(Json(pr.build(req, total, results)?))
    }

    /// Create an organization; the caller becomes its admin.
    #[oai(path = "/api/organizations/", method = "post", operation_id = "organizations_create")]
    async fn create(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        body: Json<OrganizationCreateRequest>,
    ) -> ApiResult<OrganizationCreated> {
        let p = auth.into_principal();
        let a = actor(&p, req);
        let b = body.0;
        let v = state
            .store
            .write(move |tx| orgs::create(tx, &p, &a, &b.name, b.description.clone()))
            .await?;
        Ok(OrganizationCreated::Created(Json(v.into())))
    }

    /// One organization.
    #[oai(
        path = "/api/organizations/:id/",
        method = "get",
        operation_id = "organizations_retrieve"
    )]
    async fn retrieve(
        &self,
        state: Data<&Arc<Services>>,
        auth: Authenticated,
        id: Path<u64>,
    ) -> ApiResult<Json<OrganizationBody>> {
        let v = state.store.read(|tx| orgs::get(tx, auth.principal(), id.0))?;
        Ok(Json(v.into()))
    }

    /// Replace name and description (admin only).
    #[oai(path = "/api/organizations/:id/", method = "put", operation_id = "organizations_update")]
    async fn update(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
        body: Json<OrganizationCreateRequest>,
    ) -> ApiResult<Json<OrganizationBody>> {
        let p = auth.into_principal();
        let a = actor(&p, req);
        let (id, b) = (id.0, body.0);
        let v = state
            .store
            .write(move |tx| {
                orgs::update(tx, &p, &a, id, Some(&b.name), Some(b.description.clone()))
            })
            .await?;
        Ok(Json(v.into()))
    }

    /// Change name and/or description (admin only).
    #[oai(
        path = "/api/organizations/:id/",
        method = "patch",
        operation_id = "organizations_partial_update"
    )]
    async fn partial_update(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
        body: Json<OrganizationPatchRequest>,
    ) -> ApiResult<Json<OrganizationBody>> {
        let p = auth.into_principal();
        let a = actor(&p, req);
        let id = id.0;
        let b = body.0;
        let description = match b.description {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(d) => Some(Some(d)),
        };
        let v = state
            .store
            .write(move |tx| orgs::update(tx, &p, &a, id, b.name.as_deref(), description.clone()))
            .await?;
        Ok(Json(v.into()))
    }

    /// Delete an organization and everything it owns (admin only).
    #[oai(
        path = "/api/organizations/:id/",
        method = "delete",
        operation_id = "organizations_destroy"
    )]
    async fn destroy(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
    ) -> ApiResult<Deleted> {
        let p = auth.into_principal();
        let a = actor(&p, req);
        let id = id.0;
        state.store.write(move |tx| orgs::delete(tx, &p, &a, id)).await?;
        Ok(Deleted::NoContent)
    }

    /// Members of an organization (admin only).
    #[oai(
        path = "/api/organizations/:id/members/",
        method = "get",
        operation_id = "organizations_members_list"
    )]
    async fn members(
        &self,
        state: Data<&Arc<Services>>,
        auth: Authenticated,
        id: Path<u64>,
    ) -> ApiResult<Json<MembersResponse>> {
        let list = state.store.read(|tx| orgs::members(tx, auth.principal(), id.0))?;
        let members: Vec<MemberBody> = list.iter().map(MemberBody::from).collect();
        Ok(Json(MembersResponse { total_count: members.len() as u64, members }))
    }

    /// Add an existing account by email (admin only).
    #[oai(
        path = "/api/organizations/:id/members/",
        method = "post",
        operation_id = "organizations_members_create"
    )]
    async fn members_create(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
        body: Json<InviteMemberRequest>,
    ) -> ApiResult<MemberAdded> {
        self.add(&state, req, auth.into_principal(), id.0, body.0).await
    }

    /// Change a member's role (admin only; the last admin stays admin).
    #[oai(
        path = "/api/organizations/:id/members/:user_id/",
        method = "patch",
        operation_id = "organizations_members_partial_update"
    )]
    async fn members_update(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
        user_id: Path<u64>,
        body: Json<MemberRoleRequest>,
    ) -> ApiResult<Json<MemberMessage>> {
        self.set_role(&state, req, auth.into_principal(), id.0, user_id.0, &body.0.role).await
    }

    /// Remove a member (admin only), or leave: any member may remove themself (the last admin
    /// can't).
    #[oai(
        path = "/api/organizations/:id/members/:user_id/",
        method = "delete",
        operation_id = "organizations_members_destroy"
    )]
    async fn members_destroy(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
        user_id: Path<u64>,
    ) -> ApiResult<Deleted> {
        self.remove(&state, req, auth.into_principal(), id.0, user_id.0).await?;
        Ok(Deleted::NoContent)
    }

    /// KeyNest's action: add an existing account by email (admin only).
    #[oai(
        path = "/api/organizations/:id/invite_member/",
        method = "post",
        operation_id = "organizations_invite_member_create"
    )]
    async fn invite_member(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
        body: Json<InviteMemberRequest>,
    ) -> ApiResult<MemberAdded> {
        self.add(&state, req, auth.into_principal(), id.0, body.0).await
    }

    /// KeyNest's action: change a member's role, `{user_id, role}` (admin only).
    #[oai(
        path = "/api/organizations/:id/update_member_role/",
        method = "patch",
        operation_id = "organizations_update_member_role_partial_update"
    )]
    async fn update_member_role(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
        body: Json<UpdateMemberRoleRequest>,
    ) -> ApiResult<Json<MemberMessage>> {
        let b = body.0;
        self.set_role(&state, req, auth.into_principal(), id.0, b.user_id, &b.role).await
    }

    /// KeyNest's action: remove a member, `{user_id}` (admin only), or leave (any member, not
    /// the last admin).
    #[oai(
        path = "/api/organizations/:id/remove_member/",
        method = "delete",
        operation_id = "organizations_remove_member_destroy"
    )]
    async fn remove_member(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        id: Path<u64>,
        body: Json<RemoveMemberRequest>,
    ) -> ApiResult<Json<RemoveMemberResponse>> {
        Ok(Json(self.remove(&state, req, auth.into_principal(), id.0, body.0.user_id).await?))
    }
}
