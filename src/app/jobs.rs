//! The periodic jobs the application registers on its [`Workers`]: credential usage flushing
//! and the two hourly sweepers. Each keeps the schedule it had as a bare task (first delay and
//! period); shutdown lets a run in progress finish.

use std::sync::Arc;
use std::time::Duration;

use crate::services::Services;
use crate::workers::Workers;

const HOUR: Duration = Duration::from_secs(3600);
/// The sweepers' first run comes a minute after start, so start-up stays free of their writes.
const SWEEP_FIRST_DELAY: Duration = Duration::from_secs(60);
/// Deleted variables purged per transaction, so a sweep never holds the writer for long.
const PURGE_STEP: usize = 500;

/// Registers every application-level periodic job.
pub(super) fn register(workers: &Workers, state: &Arc<Services>) {
    register_usage_flusher(workers, Arc::clone(state));
    register_credential_sweeper(workers, Arc::clone(state));
    register_deleted_sweeper(workers, Arc::clone(state));
    state.deployments.start(workers);
    register_deployment_jobs(workers, Arc::clone(state));
    register_snapshots(workers, Arc::clone(state));
}

/// `backup.interval`: a snapshot in `DATA_DIR/backups/` one interval after the newest there.
/// A failure is logged and counted; the next interval tries again.
fn register_snapshots(workers: &Workers, state: Arc<Services>) {
    let (Some(first), Some(period)) = (state.backup.first_delay(), state.backup.interval()) else {
        return;
    };
    workers.every("scheduled snapshots", first, period, move |_| {
        let backup = Arc::clone(&state.backup);
        async move {
            match backup.scheduled().await {
                Ok(r) => tracing::info!(
                    path = %r.path.display(),
                    bytes = r.bytes,
                    elapsed_ms = u64::try_from(r.elapsed.as_millis()).unwrap_or(u64::MAX),
                    "snapshot written"
                ),
                Err(e) => tracing::error!(error = %e, "scheduled snapshot failed"),
            }
        }
    });
}

/// API deployments: usage counters written every few seconds, and executions past
/// `deployments.result_retention_hours` removed hourly.
fn register_deployment_jobs(workers: &Workers, state: Arc<Services>) {
    let flusher = Arc::clone(&state);
    workers.every(
        "deployment usage flusher",
        Duration::from_secs(5),
        Duration::from_secs(5),
        move |_| {
            let state = Arc::clone(&flusher);
            async move {
                if let Err(e) = state.deployments.flush_usage().await {
                    tracing::warn!(error = %e, "deployment usage flush failed");
                }
            }
        },
    );
    workers.every("execution retention", SWEEP_FIRST_DELAY, HOUR, move |_| {
        let state = Arc::clone(&state);
        async move {
            match state.deployments.sweep().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "expired executions removed"),
                Err(e) => tracing::warn!(error = %e, "execution retention sweep failed"),
            }
        }
    });
}

/// Writes batched credential usage (API key counters, `last_used_at`) every few seconds; the
/// first run is at start. `Running::finish` flushes once more after the requests ended.
fn register_usage_flusher(workers: &Workers, state: Arc<Services>) {
    workers.every("credential usage flusher", Duration::ZERO, Duration::from_secs(5), move |_| {
        let state = Arc::clone(&state);
        async move {
            if let Err(e) = state.credentials.flush_usage(&state.store).await {
                tracing::warn!(error = %e, "credential usage flush failed");
            }
        }
    });
}

/// Prunes expired login tokens, sessions, refresh tokens and deny-listed JWTs, hourly.
fn register_credential_sweeper(workers: &Workers, state: Arc<Services>) {
    workers.every("credential sweeper", SWEEP_FIRST_DELAY, HOUR, move |_| {
        let state = Arc::clone(&state);
        async move {
            let secs = state.credentials.token_lifetime_secs();
            if let Err(e) = crate::auth::sweep::sweep_credentials(&state.store, secs).await {
                tracing::warn!(error = %e, "credential sweep failed");
            }
        }
    });
}

/// Purges deleted variables whose retention ran out, hourly, in small transactions. A
/// shutdown stops it between transactions: the next start's sweep takes up the rest.
fn register_deleted_sweeper(workers: &Workers, state: Arc<Services>) {
    workers.every("deleted-variable sweeper", SWEEP_FIRST_DELAY, HOUR, move |token| {
        let state = Arc::clone(&state);
        async move {
            while !token.is_cancelled() {
                let vault = Arc::clone(&state.secrets);
                let now = crate::clock::unix_now();
                let r = state
                    .store
                    .write(move |tx| {
                        crate::domain::secrets::history::sweep(tx, &vault, now, PURGE_STEP)
                    })
                    .await;
                match r {
                    Ok(n) if n >= PURGE_STEP => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "deleted-variable sweep failed");
                        break;
                    }
                }
            }
        }
    });
}
