//! The secrets area's tables: projects, environments, variables, history and data keys. Keys and values are described on each line; record tables hold
//! `Versioned<T>` bytes (see `store::codec`).

use crate::store::schema::TableInfo;
use crate::store::{decode, encode, ReadableTable as _, StoreError, WriteTx};
#[allow(unused_imports)] // each area uses a different subset of the three shapes
use crate::store::{IndexTable, LookupTable, RecordTable};

/// `project id → Project`.
pub const PROJECTS: RecordTable<crate::domain::secrets::records::Project> =
    RecordTable::new("projects");
/// `(organization id, project id)`: the projects of an organization.
pub const PROJECTS_BY_ORG: IndexTable = IndexTable::new("projects_by_org");
/// `"<organization id>/<lower-cased name>" → project id`: names are unique per organization.
pub const PROJECT_NAMES: LookupTable = LookupTable::new("project_names");
/// `environment id → Environment`.
pub const ENVIRONMENTS: RecordTable<crate::domain::secrets::records::Environment> =
    RecordTable::new("environments");
/// `(project id, environment id)`: the environments of a project.
pub const ENVIRONMENTS_BY_PROJECT: IndexTable = IndexTable::new("environments_by_project");
/// `(organization id, environment id)`: the environments of an organization.
pub const ENVIRONMENTS_BY_ORG: IndexTable = IndexTable::new("environments_by_org");
/// `"<project id>/<name>" → environment id`: names are unique per project.
pub const ENVIRONMENT_NAMES: LookupTable = LookupTable::new("environment_names");
/// `variable id → Variable` (live and deleted-but-retained).
pub const VARIABLES: RecordTable<crate::domain::secrets::records::Variable> =
    RecordTable::new("variables");
/// `(environment id, variable id)`: the live variables of an environment.
pub const VARIABLES_BY_ENV: IndexTable = IndexTable::new("variables_by_env");
/// `(organization id, variable id)`: the live variables of an organization.
pub const VARIABLES_BY_ORG: IndexTable = IndexTable::new("variables_by_org");
/// `"<environment id>/<KEY>" → variable id`: live keys are unique per environment.
pub const VARIABLE_KEYS: LookupTable = LookupTable::new("variable_keys");
/// `version row id → VariableVersion`: superseded values.
pub const VARIABLE_VERSIONS: RecordTable<crate::domain::secrets::records::VariableVersion> =
    RecordTable::new("variable_versions");
/// `(variable id, version row id)`: a variable's superseded values, oldest first.
pub const VERSIONS_BY_VARIABLE: IndexTable = IndexTable::new("versions_by_variable");
/// `(environment id, variable id)`: deleted variables whose history is still retained.
pub const DELETED_VARIABLES_BY_ENV: IndexTable = IndexTable::new("deleted_variables_by_env");
/// `(0, variable id)`: every retained deleted variable, for the retention sweeper.
pub const DELETED_VARIABLES: IndexTable = IndexTable::new("deleted_variables");
/// `organization id → OrgDataKey`: the organization's value-sealing key, sealed by the master key.
pub const ORG_DATA_KEYS: RecordTable<crate::domain::secrets::records::OrgDataKey> =
    RecordTable::new("org_data_keys");

/// This area's tables, for the schema registry (backup, check, dumps).
pub const TABLES: &[TableInfo] = &[
    PROJECTS.info(),
    PROJECTS_BY_ORG.info(),
    PROJECT_NAMES.info(),
    ENVIRONMENTS.info(),
    ENVIRONMENTS_BY_PROJECT.info(),
    ENVIRONMENTS_BY_ORG.info(),
    ENVIRONMENT_NAMES.info(),
    VARIABLES.info(),
    VARIABLES_BY_ENV.info(),
    VARIABLES_BY_ORG.info(),
    VARIABLE_KEYS.info(),
    VARIABLE_VERSIONS.info(),
    VERSIONS_BY_VARIABLE.info(),
    DELETED_VARIABLES_BY_ENV.info(),
    DELETED_VARIABLES.info(),
    ORG_DATA_KEYS.info(),
];

/// 2: variables move from JSON bodies (record version 1) to the compact binary body (record
/// version 2). Records decode through `Record::upgrade`, so this only makes the file uniform
/// and lets an older binary refuse the file (schema too new) instead of failing per record.
pub fn variables_to_binary(tx: &WriteTx) -> Result<(), StoreError> {
    let mut table = tx.open_table(VARIABLES.def)?;
    let mut old = Vec::new();
    for entry in table.iter()? {
        let (k, v) = entry?;
        if v.value().first() == Some(&1) {
            old.push((k.value(), v.value().to_vec()));
        }
    }
    for (id, bytes) in old {
        let var: crate::domain::secrets::records::Variable = decode(&bytes)?;
        table.insert(id, encode(&var)?.as_slice())?;
    }
    Ok(())
}
