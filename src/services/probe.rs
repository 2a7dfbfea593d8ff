//! What the services report to the global metrics view: the data file's size and the
//! request-log pipeline's figures; and the start-up object count.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use super::backup::BackupFigures;
use crate::domain::effects::Counted;
use crate::logs::LogService;
use crate::metrics::{SystemProbe, SystemSample};
use crate::store::{DiskSpace, Store};

/// Holds the log service weakly: the store's effect sink holds the metrics, which hold this,
/// and the log service holds the store; a strong reference would keep the data file open
/// after shutdown.
pub(super) struct Probe {
    data_file: PathBuf,
    logs: Weak<LogService>,
    /// The store's free-space figures (not the store: see above).
    space: Arc<DiskSpace>,
    backups: Arc<BackupFigures>,
}

impl Probe {
    pub(super) fn new(
        data_file: PathBuf,
        logs: &Arc<LogService>,
        store: &Store,
        backups: Arc<BackupFigures>,
    ) -> Self {
        let space = Arc::clone(store.disk_space());
        Self { data_file, logs: Arc::downgrade(logs), space, backups }
    }
}

impl SystemProbe for Probe {
    fn sample(&self) -> SystemSample {
        let mut sample = SystemSample {
            data_file_bytes: std::fs::metadata(&self.data_file).ok().map(|m| m.len()),
            data_dir_free_bytes: self.space.free_bytes(),
            data_dir_reserve_bytes: Some(self.space.reserve()),
            writes_refused_disk_full: Some(self.space.refused()),
            backup_last_success: Some(self.backups.last_success.load(Ordering::Relaxed))
                .filter(|t| *t > 0),
            backup_last_bytes: Some(self.backups.last_bytes.load(Ordering::Relaxed))
                .filter(|b| *b > 0),
            backup_failures: Some(self.backups.failures.load(Ordering::Relaxed)),
            ..SystemSample::default()
        };
        if let Some(logs) = self.logs.upgrade() {
            let written = logs.counters.written.load(Ordering::Relaxed);
            let indexed = logs.counters.indexed.load(Ordering::Relaxed);
            sample.index_documents = Some(indexed);
            sample.index_lag_records = Some(written.saturating_sub(indexed));
            sample.log_queue_depth = Some(logs.queue_depth());
        }
        sample
    }
}

/// Every organization's live object counts, read once at start.
pub(super) fn count_objects(
    store: &Store,
) -> Result<Vec<(u64, Counted, i64)>, crate::domain::Error> {
    store.read(crate::domain::orgs::object_counts)
}
