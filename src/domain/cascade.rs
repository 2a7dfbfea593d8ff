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
    let removed = serde_json::Map::new();
    let _ = (tx, org_id); // Areas add their deletions here as they gain per-organization data.
    Ok(removed)
}

/// How many projects organization `org_id` has (its `project_count`). The secrets area counts
/// its projects here once it has them.
pub fn organization_project_count(
    tx: &impl crate::store::Reader,
    org_id: u64,
) -> Result<u64, crate::store::StoreError> {
    let _ = (tx, org_id);
    Ok(0)
}
