//! API deployments (Unstract api_v2): the management routes under `/unstract/{org_id}/api/v2/`
//! and the execution routes under `/deployment/{api_key}/`.

mod execution;
mod management;

use serde_json::{json, Value};

use crate::secrets::{ok, Team};

/// `/unstract/{org}/api/v2/{rest}`.
pub fn v2(org: impl std::fmt::Display, rest: &str) -> String {
    format!("/unstract/{org}/api/v2/{rest}")
}

/// Creates a workflow in the owner's organization; returns its id.
pub async fn workflow(t: &Team, name: &str, workflow_type: &str) -> u64 {
    let body = json!({
        "workflow_name": name,
        "workflow_type": workflow_type,
        "template": "Hello {{ input.name }}",
    });
    ok(t.post(&v2(t.owner.org_id, "workflow/"), &t.owner, body).await, 201).await["id"]
        .as_u64()
        .unwrap()
}

/// Creates a deployment of `workflow` in the owner's organization; returns the response body.
pub async fn deployment(t: &Team, api_name: &str, workflow: u64) -> Value {
    let body = json!({"api_name": api_name, "workflow": workflow});
    ok(t.post(&v2(t.owner.org_id, "api-deployment/"), &t.owner, body).await, 201).await
}
