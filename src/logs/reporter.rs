//! Who may report calls to the monitor (django-cfg's ingest), and what the records they report
//! carry: an API key that staff enabled for ingest, or staff through an unscoped credential.
//! Each record is stamped with its reporter, and counts against the reporter's daily allowance.

use crate::domain::{CredentialKind, Error, Principal};
use crate::store::Store;

use super::{IngestQuota, RequestLog};

/// Who reports a batch: stamped on each of its records, and whose allowance it counts against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reporter {
    pub user_id: u64,
    /// The API key, when one reported (else a staff session).
    pub key: Option<(u64, String)>,
}

impl Reporter {
    /// The daily allowance this reporter's records count against.
    pub fn quota(&self, per_day: u64) -> IngestQuota {
        let subject = match &self.key {
            Some((id, _)) => format!("key:{id}"),
            None => format!("user:{}", self.user_id),
        };
        IngestQuota { subject, per_day }
    }

    /// Marks a record as reported by this reporter.
    pub fn stamp(&self, r: &mut RequestLog) {
        r.ingested_by_user_id = Some(self.user_id);
        if let Some((id, name)) = &self.key {
            r.ingested_by_key_id = Some(*id);
            r.ingested_by_key_name.clone_from(name);
        }
    }

    /// Who may report calls: an active API key that staff enabled for ingest, or staff (a full,
    /// unscoped credential: `require_staff` decides).
    pub fn for_principal(store: &Store, p: &Principal) -> Result<Self, Error> {
        let key = match &p.credential {
            CredentialKind::ApiKey { id, name } => Some((*id, name.clone())),
            _ => None,
        };
        if let Some((id, _)) = &key {
            let stored = store.read(|tx| crate::domain::api_keys::get(tx, *id))?;
            if stored.is_some_and(|k| k.is_active && k.ingest) {
                return Ok(Reporter { user_id: p.user_id, key });
            }
        }
        if p.require_staff().is_ok() {
            return Ok(Reporter { user_id: p.user_id, key });
        }
        Err(Error::forbidden("Staff, or an API key that staff enabled for ingest, is required."))
    }
}
