//! The per-organization `api_keys` gauge counts active, unexpired keys. Commit effects move it
//! on create, revoke and delete, but a key expires without a commit, so the gauge is recounted
//! from the store before each scrape with the same definition as the monitor overview's
//! `active_api_keys` ([`crate::domain::api_keys::valid_by_org`]).

use crate::clock::unix_now;
use crate::domain::api_keys;
use crate::metrics::Kind;

use super::Services;

impl Services {
    /// Sets every organization's `api_keys` gauge from the store; a failed read leaves the
    /// gauges as the commit effects left them (logged).
    pub fn recount_api_key_gauges(&self) {
        match self.store.read(|tx| api_keys::valid_by_org(tx, unix_now())) {
            Ok(counts) => {
                for (org, n) in counts {
                    self.metrics.set_count(org, Kind::api_keys, n);
                }
            }
            Err(e) => tracing::warn!(error = %e, "API key gauge recount failed"),
        }
    }
}
