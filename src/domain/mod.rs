//! Plain-Rust business rules: who may do what, and what each mutation writes. No HTTP types;
//! storage only through `store`.

pub mod accounts;
pub mod admin_users;
pub mod api_keys;
pub mod audit;
pub mod cascade;
pub mod credentials;
pub mod deployments;
pub mod dotenv;
pub mod effects;
mod error;
pub mod orgs;
pub mod pats;
pub mod protos;
pub mod records;
pub mod sealcheck;
pub mod secrets;
pub mod sessions;
pub mod two_factor;
pub mod usernames;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use error::{field_errors, Error, ErrorCode, InternalError, ServiceError};

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
