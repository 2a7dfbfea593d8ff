//! Secrets: projects → environments → variables, values sealed per organization, a numbered
//! history per variable, `.env` import/export, and the cascades that remove them.
//!
//! Every mutation is one `fn(&WriteTx, …)` run inside [`crate::store::Store::write`], with its
//! audit record in the same transaction; every read takes any [`Reader`]. Permission checks
//! happen inside those functions, against the record they load, so no caller can skip them.

pub mod cascade;
pub mod environments;
pub mod history;
pub mod projects;
pub mod records;
pub mod rekey;
pub mod sealing;
pub mod tables;
pub mod transfer;
pub mod variables;

#[cfg(test)]
mod tests;

use crate::crypto::SecretKey;
use crate::domain::audit::Actor;
use crate::domain::{Error, Principal, Role};
use crate::store::Reader;

pub use sealing::DataKeyCache;

/// What every secrets operation needs besides its input: the master key (to open data keys),
/// a cache of opened data keys, and the history settings.
pub struct Vault {
    pub master: SecretKey,
    pub keys: DataKeyCache,
    /// Superseded values kept per variable (`storage.variable_versions`).
    pub versions_kept: usize,
    /// How long a deleted variable's history stays readable (`storage.deleted_retention_days`).
    pub retention_secs: i64,
}

impl Vault {
    pub fn new(master: SecretKey, versions_kept: u64, retention_days: u64) -> Self {
        Self {
            master,
            keys: DataKeyCache::default(),
            versions_kept: usize::try_from(versions_kept).unwrap_or(usize::MAX).max(1),
            retention_secs: i64::try_from(retention_days.saturating_mul(86_400))
                .unwrap_or(i64::MAX),
        }
    }
}

/// The caller of one request: who they are and where they came from (for audit records).
#[derive(Clone)]
pub struct Caller {
    pub principal: Principal,
    pub actor: Actor,
}

impl Caller {
    pub fn new(principal: Principal, ip: Option<std::net::IpAddr>) -> Self {
        let actor = Actor::from_principal(&principal, ip);
        Self { principal, actor }
    }

    /// Requires `min` in `org`: non-members get `NotFound` (named `what`), lower roles get
    /// `Forbidden`.
    pub fn require(&self, org: u64, min: Role, what: &str) -> Result<Role, Error> {
        self.principal.require(org, min, what)
    }

    /// Requires `min` in `org` and a credential that may write.
    pub fn require_write(&self, org: u64, min: Role, what: &str) -> Result<Role, Error> {
        let role = self.require(org, min, what)?;
        if self.principal.read_only {
            return Err(Error::forbidden("This credential is read-only."));
        }
        Ok(role)
    }
}

/// Environment types KeyNest offers.
pub const ENVIRONMENT_TYPES: [&str; 4] = ["development", "staging", "production", "testing"];

/// Full names of users, looked up once per request.
#[derive(Default)]
pub struct UserNames(rustc_hash::FxHashMap<u64, String>);

impl UserNames {
    pub fn name(&mut self, tx: &impl Reader, user_id: u64) -> Result<String, Error> {
        self.load(tx, user_id)?;
        Ok(self.get(user_id).to_string())
    }

    /// Reads a user's name into the cache (once).
    pub fn load(&mut self, tx: &impl Reader, user_id: u64) -> Result<(), Error> {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.0.entry(user_id) {
            slot.insert(crate::domain::records::user_name(tx, user_id)?);
        }
        Ok(())
    }

    /// A name read by [`UserNames::load`] ("" if it was not).
    pub fn get(&self, user_id: u64) -> &str {
        self.0.get(&user_id).map_or("", String::as_str)
    }

    /// Pre-fills a name the caller already knows (the principal's own).
    pub fn seed(&mut self, user_id: u64, name: &str) {
        self.0.insert(user_id, name.to_string());
    }
}

/// Case-insensitive substring match of `needle` (already lower-cased) in any of `hay`.
pub fn matches_search(needle: &str, hay: &[Option<&str>]) -> bool {
    hay.iter().flatten().any(|h| h.to_lowercase().contains(needle))
}

/// A page of ids: `(total, ids on the page)`.
pub fn page_of(ids: &[u64], offset: usize, limit: usize) -> Vec<u64> {
    ids.iter().skip(offset).take(limit).copied().collect()
}
