//! Credential records owned by the identity area: login tokens and browser sessions. Only
//! SHA-256 digests of the secrets are stored; the secrets themselves are shown once.

use serde::{Deserialize, Serialize};

use crate::store::Record;

/// What a [`LoginToken`] row stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// `Authorization: Token <40 hex>` (KeyNest's login token; expires after
    /// `auth.token_hours`).
    Token,
    /// The `gatehouse_session` cookie set at login (expires after `auth.session_hours`).
    Session,
    /// A JWT refresh token, by the digest of its `jti` (rotated on use).
    Refresh,
}

/// A login token or session, found by the SHA-256 digest of its secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoginToken {
    pub id: u64,
    pub user_id: u64,
    pub kind: TokenKind,
    /// Lower-case hex SHA-256 of the secret; the key of `TOKENS_BY_DIGEST`.
    pub digest: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; `None` never expires.
    pub expires_at: Option<i64>,
    /// The user's `credentials_epoch` when issued; a password change bumps the epoch.
    pub epoch: u64,
    /// Refresh tokens: the id of the first refresh token of the login they descend from
    /// (rotation keeps it). `None` on older rows: the row's own id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<u64>,
    /// Refresh tokens: when this one was exchanged. The row stays (until its expiry) so that
    /// presenting it again is recognised as reuse and ends the whole family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<i64>,
}

impl LoginToken {
    /// A login token stored before login tokens expired: the sweeper gives it one.
    pub fn lacks_expiry(&self) -> bool {
        self.kind == TokenKind::Token && self.expires_at.is_none()
    }

    /// The refresh family this row belongs to.
    pub fn family_id(&self) -> u64 {
        self.family.unwrap_or(self.id)
    }
}

impl Record for LoginToken {
    const VERSION: u8 = 1;
    const NAME: &'static str = "tokens";
}

/// A personal access token (a JWT with `pat_id`, `pat_ro`, `pat_agm`), checked against this row
/// on every use. The JWT itself is never stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PersonalAccessToken {
    pub id: u64,
    /// ShellUI names PATs by UUID (routes and the JWT's `pat_id`); `id` stays for the routes
    /// and tokens that used it. Files written before schema 4 get one in migration 4.
    #[serde(default)]
    pub uuid: String,
    pub user_id: u64,
    /// The organization the token speaks for (`company_id`).
    pub company_id: Option<u64>,
    pub jti: String,
    pub name: String,
    pub read_only: bool,
    pub access_global_metrics: bool,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

impl Record for PersonalAccessToken {
    const VERSION: u8 = 1;
    const NAME: &'static str = "personal_access_tokens";
}

/// One secret of an API key; rotation adds a version and gives the old one an end.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApiKeyVersion {
    pub version: u32,
    /// Hex SHA-256 of the key; the key of `API_KEYS_BY_DIGEST`.
    pub digest: String,
    /// `52df...1660`: the first and last four characters.
    pub masked: String,
    pub created_at: i64,
    /// Set at rotation: the old secret works until then (grace period).
    pub valid_until: Option<i64>,
    pub request_count: u64,
    pub last_used_at: Option<i64>,
}

/// A user API key (Pegasus / django-cfg), acting as its user within its limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApiKey {
    pub id: u64,
    pub user_id: u64,
    pub name: String,
    /// `service`, `cli`, `webhook`, `internal` or `development`.
    pub key_type: String,
    /// When set, the key sees only this organization.
    pub organization: Option<u64>,
    pub read_only: bool,
    /// CIDRs; empty means any address.
    pub ip_allowlist: Vec<String>,
    pub expires_at: Option<i64>,
    /// False once its owner revoked it (irreversible: its digests are released) or staff
    /// deactivated it (reversible: the digests stay).
    pub is_active: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub created_by: Option<u64>,
    pub versions: Vec<ApiKeyVersion>,
    /// Staff allowed this key to report calls to the monitor (ingest).
    #[serde(default)]
    pub ingest: bool,
}

impl ApiKey {
    /// Requests made with any version of the key.
    pub fn request_count(&self) -> u64 {
        self.versions.iter().map(|v| v.request_count).sum()
    }

    pub fn last_used_at(&self) -> Option<i64> {
        self.versions.iter().filter_map(|v| v.last_used_at).max()
    }

    /// The masked form of the current secret.
    pub fn masked_key(&self) -> String {
        self.versions.last().map(|v| v.masked.clone()).unwrap_or_default()
    }

    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }

    /// Active and not expired (django-cfg's `is_valid`).
    pub fn is_valid(&self, now: i64) -> bool {
        self.is_active && !self.is_expired(now)
    }
}

impl Record for ApiKey {
    const VERSION: u8 = 1;
    const NAME: &'static str = "api_keys";
}

/// Login tokens, sessions, PATs, API keys and the JWT deny-list. Keys and values are described on each line.
pub mod tables {
    use crate::store::schema::TableInfo;
    #[allow(unused_imports)] // each area uses a different subset of the three shapes
    use crate::store::{IndexTable, LookupTable, RecordTable};

    /// `token id → LoginToken` (login tokens and sessions; digests only).
    pub const TOKENS: RecordTable<crate::domain::credentials::LoginToken> =
        RecordTable::new("tokens");
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
    /// `"<PAT uuid>" → PAT id` (rows are never deleted, so neither are these).
    pub const PAT_UUIDS: LookupTable = LookupTable::new("pat_uuids");
    /// `API key id → ApiKey`.
    pub const API_KEYS: RecordTable<crate::domain::credentials::ApiKey> =
        RecordTable::new("api_keys");
    /// `hex SHA-256 of an API key secret (any live version) → API key id`.
    pub const API_KEYS_BY_DIGEST: LookupTable = LookupTable::new("api_keys_by_digest");
    /// `(user id, API key id) → ()`.
    pub const USER_API_KEYS: IndexTable = IndexTable::new("user_api_keys");
    /// `(organization id, API key id) → ()`: keys scoped to an organization (deleted with it).
    pub const ORG_API_KEYS: IndexTable = IndexTable::new("org_api_keys");
    /// `(organization id, PAT id) → ()`: PATs speaking for an organization (revoked with it).
    pub const ORG_PATS: IndexTable = IndexTable::new("org_pats");

    /// This area's tables, for the schema registry (backup, check, dumps).
    pub const TABLES: &[TableInfo] = &[
        TOKENS.info(),
        TOKENS_BY_DIGEST.info(),
        USER_TOKENS.info(),
        JWT_DENYLIST.info(),
        PATS.info(),
        USER_PATS.info(),
        API_KEYS.info(),
        API_KEYS_BY_DIGEST.info(),
        USER_API_KEYS.info(),
        ORG_API_KEYS.info(),
        ORG_PATS.info(),
        PAT_UUIDS.info(),
    ];

    /// Migration 4: every PAT gets a UUID (ShellUI names PATs by one) and the lookup from it.
    /// Tokens issued before keep their integer `pat_id` and still resolve by it.
    pub fn pat_uuids(tx: &crate::store::WriteTx) -> Result<(), crate::store::StoreError> {
        use crate::store::{Reader as _, Writer as _};
        for (id, mut pat) in tx.scan(PATS, 1..=u64::MAX, usize::MAX, false)? {
            if pat.uuid.is_empty() {
                pat.uuid = crate::domain::pats::new_uuid()?;
                tx.put(PATS, id, &pat)?;
            }
            tx.set_lookup(PAT_UUIDS, &pat.uuid, id)?;
        }
        Ok(())
    }
}
