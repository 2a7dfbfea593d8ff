//! `/unstract/{org_id}/api/v2/…`: the management routes of Unstract's api_v2 (workflows and
//! API deployments). `{org_id}` is an organization's integer id or its UUID; an unknown one and
//! one the caller is not a member of are both 404 "Organization not found".

pub mod deployments;
pub mod workflows;

use poem_openapi::ApiResponse;

use crate::domain::{orgs, Error};
use crate::store::Reader;

/// The organization `{org_id}` names (an integer id or a UUID), 404 when there is none. The
/// caller's membership is checked by the domain function that runs next.
pub fn resolve_org(tx: &impl Reader, reference: &str) -> Result<u64, Error> {
    orgs::resolve_ref(tx, reference)?.ok_or_else(|| Error::not_found("Organization"))
}

#[derive(ApiResponse)]
pub enum Deleted {
    /// Deleted.
    #[oai(status = 204)]
    NoContent,
}
