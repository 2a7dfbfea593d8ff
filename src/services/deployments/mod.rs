//! Running API deployments: the limits a call passes (per-deployment rate, per-organization
//! and global concurrency), the bounded worker pool that renders executions, waiting for a
//! result, batched usage counters, restart recovery and result retention.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::DeploymentsConfig;
use crate::domain::deployments::api_deployments::Limits;
use crate::domain::deployments::records::Usage;
use crate::domain::secrets::Vault;
use crate::store::Store;

/// The deployments runtime, one per process.
#[allow(dead_code)] // WIP: the runtime lands in the next commit
pub struct DeploymentService {
    config: DeploymentsConfig,
    store: Store,
    vault: Arc<Vault>,
    /// Usage increments not yet written (flushed every few seconds).
    usage: Mutex<HashMap<u64, Usage>>,
}

impl DeploymentService {
    pub fn new(config: DeploymentsConfig, store: Store, vault: Arc<Vault>) -> Self {
        Self { config, store, vault, usage: Mutex::new(HashMap::new()) }
    }

    /// The server-wide limits a deployment's own settings default to.
    pub fn limits(&self) -> Limits {
        Limits {
            rate_limit_per_minute: self.config.rate_limit_per_minute,
            max_input_bytes: self.config.max_input_bytes,
            max_run_seconds: self.config.max_run_seconds,
        }
    }

    /// A deployment's usage as stored plus what is not yet flushed.
    pub fn usage_of(&self, stored: &Usage, id: u64) -> Usage {
        let mut u = stored.clone();
        if let Some(pending) = self.usage.lock().get(&id) {
            u.add(pending);
        }
        u
    }
}
