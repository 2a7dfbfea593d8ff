//! `gatehouse reindex` (server stopped): deletes the search index and rebuilds it from the data
//! file with a progress bar, instead of leaving the rebuild to the next start (where the
//! request-log search answers from a partial index until it is done).

use std::collections::BTreeMap;
use std::time::Duration;

use super::progress::{Progress, Unit};
use super::CommonArgs;
use crate::config::Config;
use crate::domain::audit::tables::AUDIT;
use crate::logs::tables::REQUEST_LOGS;
use crate::logs::LogService;
use crate::store::{RangeReader as _, Reader as _, StoreError};

/// A rebuild that indexes nothing for this long has failed.
const STALL: Duration = Duration::from_secs(60);

pub fn reindex(
    config: &Config,
    common: &CommonArgs,
    env: &BTreeMap<String, String>,
) -> Result<(), String> {
    let (store, _) = super::open_offline(config, common, env)?;
    let result = rebuild(config, &store);
    store.close();
    result
}

fn rebuild(config: &Config, store: &crate::store::Store) -> Result<(), String> {
    let data_dir = &config.server.data_dir;
    let (last_req, last_audit, total) = store
        .read(|tx| {
            Ok::<_, StoreError>((
                tx.last_key(REQUEST_LOGS)?.unwrap_or(0),
                tx.last_key(AUDIT)?.unwrap_or(0),
                tx.count(REQUEST_LOGS)? + tx.count(AUDIT)?,
            ))
        })
        .map_err(|e| format!("data file: {e}"))?;
    let index = data_dir.join("index");
    if index.exists() {
        std::fs::remove_dir_all(&index)
            .map_err(|e| format!("cannot remove {}: {e}", index.display()))?;
    }
    let started = std::time::Instant::now();
    let rt = super::runtime()?;
    let logs = rt.block_on(async {
        LogService::start(store, data_dir, &config.logs).map_err(|e| format!("index: {e}"))
    })?;
    let mut progress = Progress::new("reindex", Unit::Rows);
    let (mut seen, mut moved) = (u64::MAX, std::time::Instant::now());
    let outcome = loop {
        let indexed = logs.counters.indexed.load(std::sync::atomic::Ordering::Relaxed);
        progress.update(indexed, total);
        let (req, audit) = logs.indexed_through();
        if req >= last_req && audit >= last_audit {
            break Ok(());
        }
        if indexed != seen {
            (seen, moved) = (indexed, std::time::Instant::now());
        } else if moved.elapsed() > STALL {
            break Err(format!(
                "the rebuild stopped at {indexed} of {total} records (see the log above); the \
                 next start rebuilds the index again"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    progress.finish();
    // Shutting down commits the index with its watermark.
    logs.shutdown();
    drop(rt);
    outcome?;
    println!(
        "search index rebuilt: {total} request and audit records in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
