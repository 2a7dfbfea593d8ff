//! What goes when an organization goes. Each area that keeps per-organization data adds its
//! deletion here, so deleting an organization removes everything it owned in one transaction.

use crate::domain::Error;
use crate::store::WriteTx;

/// Deletes every object owned by organization `org_id` (projects, environments, variables,
/// data keys, API keys scoped to it, …). Called by organization deletion inside its `tx`;
/// returns how many objects were removed, by kind, for the audit record.
pub fn delete_organization_children(
    tx: &WriteTx,
    org_id: u64,
) -> Result<serde_json::Map<String, serde_json::Value>, Error> {
    let mut removed = serde_json::Map::new();
    let secrets = crate::domain::secrets::cascade::delete_organization(tx, org_id)?;
    removed.insert("projects".into(), secrets.projects.into());
    removed.insert("environments".into(), secrets.environments.into());
    removed.insert("variables".into(), secrets.variables.into());
    removed.insert("api_keys".into(), crate::domain::api_keys::delete_for_org(tx, org_id)?.into());
    removed.insert(
        "api_deployments".into(),
        crate::domain::deployments::api_deployments::delete_for_org(tx, org_id)?.into(),
    );
    removed.insert(
        "personal_access_tokens".into(),
        crate::domain::pats::revoke_for_org(tx, org_id)?.into(),
    );
    Ok(removed)
}

/// How many projects organization `org_id` has (its `project_count`).
pub fn organization_project_count(
    tx: &impl crate::store::Reader,
    org_id: u64,
) -> Result<u64, crate::store::StoreError> {
    tx.count_children(crate::domain::secrets::tables::PROJECTS_BY_ORG, org_id)
}
