//! The API deployments area's tables. Record tables hold `Versioned<T>` bytes (see
//! `store::codec`).

use crate::store::schema::TableInfo;
#[allow(unused_imports)] // each area uses a different subset of the three shapes
use crate::store::{IndexTable, LookupTable, RecordTable};

/// `workflow id → Workflow`.
pub const WORKFLOWS: RecordTable<super::records::Workflow> = RecordTable::new("workflows");
/// `(organization id, workflow id)`.
pub const WORKFLOWS_BY_ORG: IndexTable = IndexTable::new("workflows_by_org");
/// `"<organization id>/<lower-cased name>" → workflow id`: names are unique per organization.
pub const WORKFLOW_NAMES: LookupTable = LookupTable::new("workflow_names");
/// `deployment id → Deployment`.
pub const DEPLOYMENTS: RecordTable<super::records::Deployment> =
    RecordTable::new("api_deployments");
/// `(organization id, deployment id)`.
pub const DEPLOYMENTS_BY_ORG: IndexTable = IndexTable::new("api_deployments_by_org");
/// `(workflow id, deployment id)`: what goes when a workflow goes.
pub const DEPLOYMENTS_BY_WORKFLOW: IndexTable = IndexTable::new("api_deployments_by_workflow");
/// `"<organization id>/<api_name>" → deployment id`.
pub const DEPLOYMENT_NAMES: LookupTable = LookupTable::new("api_deployment_names");
/// `"<SHA-256 hex of a key>" → deployment id`: the current key and, during a rotation's
/// grace, the previous one.
pub const DEPLOYMENT_KEYS: LookupTable = LookupTable::new("api_deployment_keys");
/// `execution id → Execution`. Ids grow with time, so retention sweeps from the front.
pub const EXECUTIONS: RecordTable<super::records::Execution> = RecordTable::new("executions");
/// `"<uuid>" → execution id`.
pub const EXECUTION_IDS: LookupTable = LookupTable::new("execution_ids");
/// `(deployment id, execution id)`.
pub const EXECUTIONS_BY_DEPLOYMENT: IndexTable = IndexTable::new("executions_by_deployment");
/// `(0, execution id)`: executions not yet final, which a restart must end.
pub const EXECUTIONS_ACTIVE: IndexTable = IndexTable::new("executions_active");
/// `"<deployment id>/<Idempotency-Key>" → execution id`.
pub const IDEMPOTENCY_KEYS: LookupTable = LookupTable::new("execution_idempotency_keys");

/// This area's tables, for the schema registry (backup, check, dumps).
pub const TABLES: &[TableInfo] = &[
    WORKFLOWS.info(),
    WORKFLOWS_BY_ORG.info(),
    WORKFLOW_NAMES.info(),
    DEPLOYMENTS.info(),
    DEPLOYMENTS_BY_ORG.info(),
    DEPLOYMENTS_BY_WORKFLOW.info(),
    DEPLOYMENT_NAMES.info(),
    DEPLOYMENT_KEYS.info(),
    EXECUTIONS.info(),
    EXECUTION_IDS.info(),
    EXECUTIONS_BY_DEPLOYMENT.info(),
    EXECUTIONS_ACTIVE.info(),
    IDEMPOTENCY_KEYS.info(),
];
