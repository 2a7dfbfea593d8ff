//! The persisted shapes of the secrets area: projects, environments, variables (with the
//! current sealed value), superseded versions, deleted-variable markers and organization data
//! keys. Sealed bytes are kept as base64 text inside the JSON record body.

use serde::{Deserialize, Serialize};

use crate::store::Record;

/// A project of an organization.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Project {
    pub id: u64,
    pub organization_id: u64,
    /// Stripped; unique (case-insensitively) within the organization.
    pub name: String,
    pub description: Option<String>,
    pub created_by: u64,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

impl Record for Project {
    const VERSION: u8 = 1;
    const NAME: &'static str = "projects";
}

/// An environment of a project. `organization_id` is copied from the project so that every
/// permission check needs one read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Environment {
    pub id: u64,
    pub organization_id: u64,
    pub project_id: u64,
    /// Lower-cased (as KeyNest stores it); unique within the project.
    pub name: String,
    /// `development`, `staging`, `production` or `testing`.
    pub environment_type: String,
    pub description: Option<String>,
    pub created_by: u64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Record for Environment {
    const VERSION: u8 = 1;
    const NAME: &'static str = "environments";
}

/// A variable and its current value, sealed under the organization's data key with the
/// associated data of (organization, environment, variable id, `version`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Variable {
    pub id: u64,
    pub organization_id: u64,
    pub project_id: u64,
    pub environment_id: u64,
    pub key: String,
    /// Base64 of nonce ‖ ciphertext ‖ tag.
    pub sealed: String,
    /// Version of the current value; starts at 1, +1 on every value change or rollback.
    pub version: u32,
    pub created_by: u64,
    pub created_at: i64,
    /// Who wrote the current value, and when.
    pub updated_by: u64,
    pub updated_at: i64,
    /// Set when the variable is deleted; its record and history stay for the retention period.
    #[serde(default)]
    pub deleted_at: Option<i64>,
    #[serde(default)]
    pub deleted_by: Option<u64>,
}

impl Record for Variable {
    const VERSION: u8 = 1;
    const NAME: &'static str = "variables";
}

/// A superseded value of a variable. Its sealed bytes are moved unchanged from the variable
/// record, so they open with the same associated data they were written with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VariableVersion {
    pub id: u64,
    pub variable_id: u64,
    pub version: u32,
    /// The key the variable had while this value was current.
    pub key: String,
    pub sealed: String,
    /// Who wrote this value, and when.
    pub created_by: u64,
    pub created_at: i64,
}

impl Record for VariableVersion {
    const VERSION: u8 = 1;
    const NAME: &'static str = "variable_versions";
}

/// An organization's data key, sealed by the master key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrgDataKey {
    pub organization_id: u64,
    /// Base64 of the master-key-sealed 32-byte key.
    pub sealed: String,
    pub created_at: i64,
}

impl Record for OrgDataKey {
    const VERSION: u8 = 1;
    const NAME: &'static str = "org_data_keys";
}
