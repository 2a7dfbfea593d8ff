//! Retention: request records older than `logs.request_retention_days` and their roll-ups go,
//! in small transactions, from redb and the index alike; audit records only when
//! `logs.audit_retention_days` is set.

use std::sync::Arc;
use std::time::Duration;

use super::{rollups, LogService};
use crate::domain::audit::tables::{AUDIT, AUDIT_BY_ORG, AUDIT_BY_USER};
use crate::domain::audit::AuditRecord;
use crate::logs::tables::{REQUEST_LOGS, REQUEST_LOGS_BY_MINUTE};
use crate::store::{RangeReader as _, Reader as _, Store, StoreError, WriteTx, Writer as _};
use crate::workers::Workers;

/// Rows removed per transaction, so pruning never holds the writer for long.
const STEP: usize = 500;
/// How often pruning runs.
const INTERVAL: Duration = Duration::from_secs(3600);

fn prune_requests(tx: &WriteTx, cutoff: i64) -> Result<usize, StoreError> {
    let end_minute = u64::try_from(cutoff.div_euclid(60)).unwrap_or(0);
    if end_minute == 0 {
        return Ok(0);
    }
    let pairs = tx.pairs(REQUEST_LOGS_BY_MINUTE, (0, 0), (end_minute - 1, u64::MAX), STEP)?;
    for (minute, id) in &pairs {
        tx.remove(REQUEST_LOGS, *id)?;
        tx.unlink(REQUEST_LOGS_BY_MINUTE, *minute, *id)?;
    }
    Ok(pairs.len())
}

fn prune_audit(tx: &WriteTx, cutoff: i64) -> Result<usize, StoreError> {
    let oldest: Vec<(u64, AuditRecord)> = tx.scan(AUDIT, 1..=u64::MAX, STEP, false)?;
    let mut n = 0;
    for (id, rec) in oldest {
        if rec.timestamp >= cutoff {
            break;
        }
        tx.remove(AUDIT, id)?;
        if let Some(org) = rec.organization_id {
            tx.unlink(AUDIT_BY_ORG, org, id)?;
        }
        if let Some(user) = rec.user_id {
            tx.unlink(AUDIT_BY_USER, user, id)?;
        }
        n += 1;
    }
    Ok(n)
}

async fn repeat(
    store: &Store,
    step: impl Fn(&WriteTx) -> Result<usize, StoreError> + Clone + Send + Sync + 'static,
) -> Result<u64, StoreError> {
    let mut total = 0u64;
    loop {
        let f = step.clone();
        let n = store.write(move |tx| f(tx)).await?;
        total += n as u64;
        if n == 0 {
            return Ok(total);
        }
    }
}

/// What one pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub requests: u64,
    pub buckets: u64,
    pub audit: u64,
}

/// One pruning pass as of `now` (unix seconds).
pub async fn run_once(logs: &LogService, store: &Store, now: i64) -> Result<Pruned, StoreError> {
    let days = i64::try_from(logs.config.request_retention_days).unwrap_or(i64::MAX / 86400 - 1);
    // Minute-aligned, so redb (by minute) and the index (by time) drop exactly the same records.
    let cutoff = (now - days.saturating_mul(86400)).div_euclid(60) * 60;
    let requests = repeat(store, move |tx| prune_requests(tx, cutoff)).await?;
    let buckets = repeat(store, move |tx| rollups::prune(tx, cutoff, STEP)).await?;
    let mut audit = 0;
    let mut audit_cutoff = None;
    if logs.config.audit_retention_days > 0 {
        let days = i64::try_from(logs.config.audit_retention_days).unwrap_or(i64::MAX / 86400 - 1);
        let cut = now - days.saturating_mul(86400);
        audit = repeat(store, move |tx| prune_audit(tx, cut)).await?;
        audit_cutoff = Some(cut);
    }
    logs.prune_index(cutoff, audit_cutoff).await;
    if requests + buckets + audit > 0 {
        tracing::info!(requests, buckets, audit, "pruned old log records");
    }
    Ok(Pruned { requests, buckets, audit })
}

/// Registers pruning at start and then every hour. A shutdown lets a pass in progress finish.
pub fn register(workers: &Workers, logs: Arc<LogService>, store: Store) {
    workers.every("log retention", Duration::ZERO, INTERVAL, move |_| {
        let (logs, store) = (Arc::clone(&logs), store.clone());
        async move {
            if let Err(e) = run_once(&logs, &store, crate::clock::unix_now()).await {
                tracing::warn!(error = %e, "log retention pass failed");
            }
        }
    });
}
