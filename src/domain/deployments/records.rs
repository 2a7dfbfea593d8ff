//! The records of API deployments: workflows, deployments (with their usage) and executions.

use serde::{Deserialize, Serialize};

use crate::store::Record;

/// `task`: one input → one output; `etl`: a list of records → a list of outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkflowType {
    Task,
    Etl,
}

impl WorkflowType {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowType::Task => "task",
            WorkflowType::Etl => "etl",
        }
    }

    /// The deployment type the seed shows for a deployment of this workflow.
    pub fn deployment_type(self) -> &'static str {
        match self {
            WorkflowType::Task => "TASK",
            WorkflowType::Etl => "ETL",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "task" => Some(WorkflowType::Task),
            "etl" => Some(WorkflowType::Etl),
            _ => None,
        }
    }
}

/// What a run's rendered text becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    Text,
    Json,
}

impl OutputFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Text => "text",
            OutputFormat::Json => "json",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Some(OutputFormat::Text),
            "json" => Some(OutputFormat::Json),
            _ => None,
        }
    }
}

/// A template bound to (at most) one environment of its organization.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Workflow {
    pub id: u64,
    pub organization_id: u64,
    pub name: String,
    pub description: String,
    pub workflow_type: WorkflowType,
    /// The environment whose variables the template reads as `env.NAME`.
    pub environment_id: Option<u64>,
    pub template: String,
    pub output_format: OutputFormat,
    pub created_by: u64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Record for Workflow {
    const VERSION: u8 = 1;
    const NAME: &'static str = "workflows";
}

/// What a deployment has served, kept in its record (the service batches the increments).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Usage {
    pub request_count: u64,
    pub execution_count: u64,
    pub error_count: u64,
    /// Sum over finished executions, for the average.
    pub total_execution_ms: u64,
    pub finished_count: u64,
    pub last_used_at: Option<i64>,
}

impl Usage {
    pub fn add(&mut self, d: &Usage) {
        self.request_count = self.request_count.saturating_add(d.request_count);
        self.execution_count = self.execution_count.saturating_add(d.execution_count);
        self.error_count = self.error_count.saturating_add(d.error_count);
        self.total_execution_ms = self.total_execution_ms.saturating_add(d.total_execution_ms);
        self.finished_count = self.finished_count.saturating_add(d.finished_count);
        self.last_used_at = self.last_used_at.max(d.last_used_at);
    }

    /// Mean run time of finished executions, in milliseconds.
    pub fn avg_execution_ms(&self) -> f64 {
        if self.finished_count == 0 {
            return 0.0;
        }
        // Precision loss is irrelevant for a displayed mean.
        #[allow(clippy::cast_precision_loss)]
        let avg = self.total_execution_ms as f64 / self.finished_count as f64;
        (avg * 10.0).round() / 10.0
    }
}

/// A workflow published under its own key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Deployment {
    pub id: u64,
    pub organization_id: u64,
    pub workflow_id: u64,
    pub api_name: String,
    pub display_name: String,
    pub description: String,
    pub is_active: bool,
    pub rate_limit_per_minute: u64,
    /// CIDRs callers may come from; empty: anywhere.
    pub ip_allowlist: Vec<String>,
    pub max_input_bytes: u64,
    pub timeout_seconds: u64,
    /// SHA-256 (hex) of the current key; the key itself is never stored.
    pub key_digest: String,
    /// `unst_abcd…wxyz`, for lists.
    pub masked_key: String,
    /// The key replaced by the last rotation, still accepted until `previous_key_until`.
    pub previous_key_digest: Option<String>,
    pub previous_key_until: Option<i64>,
    pub created_by: u64,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(default)]
    pub usage: Usage,
}

impl Record for Deployment {
    const VERSION: u8 = 1;
    const NAME: &'static str = "api_deployments";
}

/// Unstract's execution states; `Completed`, `Stopped` and `Error` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecStatus {
    Pending,
    Executing,
    Completed,
    Stopped,
    Error,
}

impl ExecStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecStatus::Pending => "PENDING",
            ExecStatus::Executing => "EXECUTING",
            ExecStatus::Completed => "COMPLETED",
            ExecStatus::Stopped => "STOPPED",
            ExecStatus::Error => "ERROR",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, ExecStatus::Completed | ExecStatus::Stopped | ExecStatus::Error)
    }
}

/// One call of a deployment. The result may hold secret values the template read, so it is
/// kept sealed under the organization's data key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Execution {
    pub id: u64,
    /// The `execution_id` clients see (a UUID).
    pub uuid: String,
    pub deployment_id: u64,
    pub organization_id: u64,
    pub status: ExecStatus,
    pub input: serde_json::Value,
    pub parameters: serde_json::Value,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    /// The result JSON, sealed (base64).
    pub result_sealed: Option<String>,
    /// Why the run failed; never holds a secret value (the renderer scrubs them).
    pub error: Option<String>,
    pub idempotency_key: Option<String>,
}

impl Record for Execution {
    const VERSION: u8 = 1;
    const NAME: &'static str = "executions";
}

impl Execution {
    /// Seconds from submission to the end (or to now while running).
    pub fn elapsed_seconds(&self, now_ms: i64) -> f64 {
        let end = self.finished_at_ms.unwrap_or(now_ms);
        #[allow(clippy::cast_precision_loss)]
        let secs = (end - self.created_at_ms).max(0) as f64 / 1000.0;
        secs
    }
}
