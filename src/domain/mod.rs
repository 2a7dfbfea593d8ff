//! Plain-Rust business rules: who may do what, and what each mutation writes. No HTTP types;
//! storage only through `store`.

pub mod accounts;
pub mod admin_users;
pub mod api_keys;
pub mod audit;
pub mod cascade;
pub mod credentials;
pub mod dotenv;
pub mod orgs;
pub mod pats;
pub mod records;
pub mod secrets;
pub mod sessions;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::store::StoreError;

/// The short list of error kinds every layer speaks. The API maps each to one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 400: the request is malformed or a field is invalid.
    Invalid,
    /// 401: no credential, or a bad, expired or revoked one.
    Unauthenticated,
    /// 403: the caller is known but may not do this.
    Forbidden,
    /// 404: no such object, or it belongs to an organization the caller is not in.
    NotFound,
    /// 409: the object exists already, or the change breaks a rule of the current state.
    Conflict,
    /// 413: the body or upload is over its limit.
    TooLarge,
    /// 429: rate limited.
    RateLimited,
    /// 500: a bug or a storage failure; the message is logged, not shown.
    Internal,
}

/// A domain error: a code, a message for the client, and optional details
/// (`{"field": ["message"]}` for validation errors).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<serde_json::Value>,
    /// Seconds until a rate-limited caller may retry.
    pub retry_after: Option<u64>,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), details: None, retry_after: None }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 404 for `what` ("Project", "Variable", …).
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// 400 with `{"<field>": ["<message>"]}` details.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut details = BTreeMap::new();
        details.insert(field.to_string(), vec![message.clone()]);
        Self::new(ErrorCode::Invalid, "Validation failed")
            .with_details(serde_json::to_value(details).unwrap_or_default())
    }

    /// 400 with several field errors.
    pub fn invalid_fields(fields: BTreeMap<String, Vec<String>>) -> Self {
        Self::new(ErrorCode::Invalid, "Validation failed")
            .with_details(serde_json::to_value(fields).unwrap_or_default())
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        let mut e = Self::new(ErrorCode::RateLimited, "Rate limit exceeded").with_details(
            serde_json::Value::String(format!(
                "Too many requests. Try again in {retry_after} seconds."
            )),
        );
        e.retry_after = Some(retry_after);
        e
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Self::internal(e.to_string())
    }
}

/// An organization role. Ordered: a higher role can do everything a lower one can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Editor,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Role::Viewer),
            "editor" => Some(Role::Editor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// Which kind of credential authenticated a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialKind {
    /// `Authorization: Token <40 hex>` (login token), by token id.
    Token { id: u64 },
    /// The session cookie set at login, by session id.
    Session { id: u64 },
    /// `Bearer <JWT access token>`, by `jti`.
    Jwt { jti: String },
    /// `Bearer <personal access token>`, by PAT id.
    Pat { id: u64 },
    /// `Api-Key <key>` or `Bearer <key>`, by key id.
    ApiKey { id: u64, name: String },
    /// HTTP Basic with the account password.
    Basic,
}

/// The caller of a request, resolved once by the authentication layer, with the limits of the
/// credential used.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: u64,
    pub username: String,
    pub email: String,
    pub full_name: String,
    pub is_staff: bool,
    /// Live memberships: organization id → role.
    pub memberships: BTreeMap<u64, Role>,
    pub credential: CredentialKind,
    /// Only GET, HEAD and OPTIONS (read-only PAT or API key).
    pub read_only: bool,
    /// An API key bound to one organization sees only that organization.
    pub org_scope: Option<u64>,
    /// The organization a JWT or PAT speaks for (`company_id`).
    pub company_id: Option<u64>,
    /// A PAT with `pat_agm`: may read global metrics.
    pub global_metrics: bool,
    /// An API key's own allow-list and expiry (empty for every other credential).
    pub limits: CredentialLimits,
}

/// Limits of an API key that the principal must carry so that nothing it mints can exceed it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialLimits {
    /// CIDRs the key may be used from; empty: anywhere.
    pub ip_allowlist: Vec<String>,
    /// When the key stops working (epoch seconds).
    pub expires_at: Option<i64>,
}

impl CredentialLimits {
    pub fn is_empty(&self) -> bool {
        self.ip_allowlist.is_empty() && self.expires_at.is_none()
    }
}

impl Principal {
    /// The caller's role in `org`, honouring an API key's organization scope.
    pub fn role_in(&self, org: u64) -> Option<Role> {
        if self.org_scope.is_some_and(|scoped| scoped != org) {
            return None;
        }
        self.memberships.get(&org).copied()
    }

    /// Organizations the caller can see.
    pub fn visible_orgs(&self) -> Vec<u64> {
        self.memberships
            .keys()
            .copied()
            .filter(|o| self.org_scope.is_none_or(|s| s == *o))
            .collect()
    }

    /// Requires at least `min` in `org`. Not a member → `NotFound` (tenants are walls, never a
    /// hint); a member with a lower role → `Forbidden`.
    pub fn require(&self, org: u64, min: Role, what: &str) -> Result<Role, Error> {
        match self.role_in(org) {
            None => Err(Error::not_found(what)),
            Some(role) if role >= min => Ok(role),
            Some(_) => Err(Error::forbidden("You do not have permission to perform this action.")),
        }
    }

    /// Requires staff (`is_staff`) through an unscoped credential: staff views span every
    /// tenant, so a credential bound to one organization (an org-scoped API key, any PAT — PATs
    /// speak for one company) must not carry the user's staff authority there.
    pub fn require_staff(&self) -> Result<(), Error> {
        if !self.is_staff {
            return Err(Error::forbidden("Staff access required."));
        }
        if self.org_scope.is_some() || matches!(self.credential, CredentialKind::Pat { .. }) {
            return Err(Error::forbidden(
                "Staff access requires a credential that is not bound to an organization \
                 (not an organization-scoped API key or a personal access token).",
            ));
        }
        Ok(())
    }

    /// A full session: the account's own login (login token, session cookie, session JWT, or
    /// HTTP Basic with the password), unscoped and writable. Only such a credential may manage
    /// credentials, the password or the profile. API keys and PATs are delegated secrets handed
    /// to automation, so none of them counts, whatever its limits. Basic counts because it
    /// presents the password itself: whoever holds it can log in and get a session anyway.
    pub fn is_full_session(&self) -> bool {
        let own_login = matches!(
            self.credential,
            CredentialKind::Token { .. }
                | CredentialKind::Session { .. }
                | CredentialKind::Jwt { .. }
                | CredentialKind::Basic
        );
        own_login && self.org_scope.is_none() && !self.read_only && self.limits.is_empty()
    }

    /// 403 unless [`Principal::is_full_session`]; `what` completes "… can {what}".
    pub fn require_full_session(&self, what: &str) -> Result<(), Error> {
        if self.is_full_session() {
            return Ok(());
        }
        Err(Error::forbidden(format!(
            "Only a full session (login token, session cookie or session JWT) can {what}; \
             API keys, personal access tokens and scoped or read-only credentials cannot."
        )))
    }

    /// Whether `org` (a credential's organization, `None`: account-wide) lies inside what this
    /// credential may see. An org-scoped caller sees only its organization's credentials.
    pub fn scope_covers(&self, org: Option<u64>) -> bool {
        match self.org_scope {
            None => true,
            Some(scope) => org == Some(scope),
        }
    }
}

/// Current time as RFC 3339 UTC with whole seconds (`2025-08-30T10:30:00Z`).
pub fn now_rfc3339() -> String {
    format_rfc3339(time::OffsetDateTime::now_utc())
}

pub fn format_rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.format(&fmt).unwrap_or_default()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Formats epoch seconds as RFC 3339 UTC (`2025-08-30T10:30:00Z`).
///
/// Every listed object carries two timestamps, and `time`'s general formatter cost ~2 000
/// instructions each (6 % of a 100-variable list in a profile), so years 0–9999 take this
/// direct civil-calendar conversion; anything else falls back to `time`.
pub fn rfc3339_from_unix(secs: i64) -> String {
    match rfc3339_digits(secs) {
        Some(buf) => std::str::from_utf8(&buf).map(str::to_owned).unwrap_or_default(),
        None => {
            time::OffsetDateTime::from_unix_timestamp(secs).map(format_rfc3339).unwrap_or_default()
        }
    }
}

/// Appends `value` in decimal (hot paths write numbers into buffers without `format!`).
pub fn push_decimal(out: &mut Vec<u8>, value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut v = value;
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// The 20 ASCII bytes of [`rfc3339_from_unix`] for years 0–9999 (`None` outside), written
/// digit by digit: list responses carry two per object, and serialisers can copy them
/// without allocating.
pub fn rfc3339_digits(secs: i64) -> Option<[u8; 20]> {
    const MIN: i64 = -62_167_219_200; // 0000-01-01T00:00:00Z
    const MAX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    if !(MIN..=MAX).contains(&secs) {
        return None;
    }
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let mut out = *b"0000-00-00T00:00:00Z";
    let mut put = |at: usize, value: i64, width: usize| {
        let mut v = value;
        for i in (0..width).rev() {
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year, 4);
    put(5, month, 2);
    put(8, day, 2);
    put(11, rem / 3600, 2);
    put(14, (rem % 3600) / 60, 2);
    put(17, rem % 60, 2);
    Some(out)
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod time_tests {
    use super::*;

    fn reference(secs: i64) -> String {
        time::OffsetDateTime::from_unix_timestamp(secs).map(format_rfc3339).unwrap()
    }

    #[test]
    fn fast_rfc3339_matches_the_time_crate() {
        for secs in [0, 1, 59, 60, 86_399, 86_400, 951_782_400, 951_868_800, 1_756_549_800] {
            assert_eq!(rfc3339_from_unix(secs), reference(secs), "{secs}");
        }
        // Every day boundary ±1 s from 1900 to 2200 (leap years, centuries, 2000) and a
        // stride through the whole supported range.
        let mut secs = -2_208_988_800;
        while secs < 7_258_118_400 {
            for s in [secs - 1, secs, secs + 43_261] {
                assert_eq!(rfc3339_from_unix(s), reference(s), "{s}");
            }
            secs += 86_400;
        }
        let mut secs = -62_167_219_200;
        while secs <= 253_402_300_799 {
            assert_eq!(rfc3339_from_unix(secs), reference(secs), "{secs}");
            secs += 9_876_543;
        }
        assert_eq!(rfc3339_from_unix(-62_167_219_200), "0000-01-01T00:00:00Z");
        assert_eq!(rfc3339_from_unix(253_402_300_799), "9999-12-31T23:59:59Z");
    }
}
