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

// ---- logs, audit and monitoring ---------------------------------------------------------

/// `audit id → AuditRecord`; ids are sequential (sequence `audit`), so id order is time order.
pub const AUDIT: RecordTable<crate::domain::audit::AuditRecord> = RecordTable::new("audit");
/// `(organization id, audit id)`: the records of an organization.
pub const AUDIT_BY_ORG: IndexTable = IndexTable::new("audit_by_org");
/// `(user id, audit id)`: the records of one actor.
pub const AUDIT_BY_USER: IndexTable = IndexTable::new("audit_by_user");

// ---- end of tables ------------------------------------------------------------------------
