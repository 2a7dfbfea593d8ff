//! Every table of the data file, in one place. Keys and values are described on each line;
//! record tables hold `Versioned<T>` bytes (see `codec`).

use redb::TableDefinition;

#[allow(unused_imports)] // each area below uses a different subset
use super::typed::{IndexTable, LookupTable, RecordTable};

/// `name → bytes`: schema version, creation time, instance id, master key check value,
/// the sealed TLS CA and leaf, the JWT signing key.
pub const META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("meta");

/// `sequence name → last id handed out`.
pub const SEQUENCES: TableDefinition<'static, &str, u64> = TableDefinition::new("sequences");

// ---- identity and access --------------------------------------------------------------

/// `user id → User`.
pub const USERS: RecordTable<crate::domain::records::User> = RecordTable::new("users");
/// `lower-cased email → user id`.
pub const USERS_BY_EMAIL: LookupTable = LookupTable::new("users_by_email");
/// `lower-cased username → user id`.
pub const USERS_BY_USERNAME: LookupTable = LookupTable::new("users_by_username");
/// `organization id → Organization`.
pub const ORGANIZATIONS: RecordTable<crate::domain::records::Organization> =
    RecordTable::new("organizations");
/// `membership id → Membership`.
pub const MEMBERSHIPS: RecordTable<crate::domain::records::Membership> =
    RecordTable::new("memberships");
/// `(organization id, user id) → ()`: members of an organization. The membership row is found
/// through `MEMBERSHIP_IDS`.
pub const ORG_MEMBERS: IndexTable = IndexTable::new("org_members");
/// `(user id, organization id) → ()`: organizations of a user.
pub const USER_ORGS: IndexTable = IndexTable::new("user_orgs");
/// `"<organization id>/<user id>" → membership id`.
pub const MEMBERSHIP_IDS: LookupTable = LookupTable::new("membership_ids");
/// `token id → LoginToken` (login tokens and sessions; digests only).
pub const TOKENS: RecordTable<crate::domain::credentials::LoginToken> = RecordTable::new("tokens");
/// `hex SHA-256 of a token or session secret → token id`.
pub const TOKENS_BY_DIGEST: LookupTable = LookupTable::new("tokens_by_digest");
/// `(user id, token id) → ()`: a user's tokens and sessions, revoked together.
pub const USER_TOKENS: IndexTable = IndexTable::new("user_tokens");
/// `jti of a revoked access JWT → its exp` (logout of a JWT; pruned after expiry).
pub const JWT_DENYLIST: LookupTable = LookupTable::new("jwt_denylist");
/// `PAT id → PersonalAccessToken`.
pub const PATS: RecordTable<crate::domain::credentials::PersonalAccessToken> =
    RecordTable::new("personal_access_tokens");
/// `(user id, PAT id) → ()`.
pub const USER_PATS: IndexTable = IndexTable::new("user_pats");
/// `API key id → ApiKey`.
pub const API_KEYS: RecordTable<crate::domain::credentials::ApiKey> = RecordTable::new("api_keys");
/// `hex SHA-256 of an API key secret (any live version) → API key id`.
pub const API_KEYS_BY_DIGEST: LookupTable = LookupTable::new("api_keys_by_digest");
/// `(user id, API key id) → ()`.
pub const USER_API_KEYS: IndexTable = IndexTable::new("user_api_keys");
/// `(organization id, API key id) → ()`: keys scoped to an organization (deleted with it).
pub const ORG_API_KEYS: IndexTable = IndexTable::new("org_api_keys");
/// `(organization id, PAT id) → ()`: PATs speaking for an organization (revoked with it).
pub const ORG_PATS: IndexTable = IndexTable::new("org_pats");

// ---- secrets ------------------------------------------------------------------------------

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

// ---- logs, audit and monitoring ---------------------------------------------------------

/// `audit id → AuditRecord`; ids are sequential (sequence `audit`), so id order is time order.
pub const AUDIT: RecordTable<crate::domain::audit::AuditRecord> = RecordTable::new("audit");
/// `(organization id, audit id)`: the records of an organization.
pub const AUDIT_BY_ORG: IndexTable = IndexTable::new("audit_by_org");
/// `(user id, audit id)`: the records of one actor.
pub const AUDIT_BY_USER: IndexTable = IndexTable::new("audit_by_user");
/// `sequence → RequestLog`: every logged request (sequence `request_log`, the writer's order).
pub const REQUEST_LOGS: RecordTable<crate::logs::RequestLog> = RecordTable::new("request_logs");
/// `(minute of created_at, sequence)`: request records by time, for retention.
pub const REQUEST_LOGS_BY_MINUTE: IndexTable = IndexTable::new("request_logs_by_minute");
/// `series id → Series`: every (service, method) pair seen in the request log.
pub const LOG_SERIES: RecordTable<crate::logs::rollups::Series> = RecordTable::new("log_series");
/// `"service\u{1f}method" → series id`.
pub const LOG_SERIES_IDS: LookupTable = LookupTable::new("log_series_ids");
/// `minute << 20 | series id → Bucket`: per-minute roll-ups.
pub const ROLLUP_MINUTE: RecordTable<crate::logs::rollups::Bucket> =
    RecordTable::new("rollup_minute");
/// `hour << 20 | series id → Bucket`: per-hour roll-ups (the same data, coarser).
pub const ROLLUP_HOUR: RecordTable<crate::logs::rollups::Bucket> = RecordTable::new("rollup_hour");
/// `(hour, API key id)`: keys that made requests in an hour (`active_api_keys`).
pub const LOG_KEYS_BY_HOUR: IndexTable = IndexTable::new("log_keys_by_hour");

// ---- end of tables ------------------------------------------------------------------------
