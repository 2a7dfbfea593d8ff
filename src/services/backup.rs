//! Snapshots of the running server's data file: on demand (`POST /api/admin/backup/`,
//! `gatehouse backup`) and every `backup.interval` into `DATA_DIR/backups/`, keeping the newest
//! `backup.keep`. One snapshot is written at a time; each is whole or absent (see
//! `store::snapshot`), so copying the newest `gatehouse-*.redb` at any moment is a good backup.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::crypto::SecretKey;
use crate::domain::{ErrorCode, ServiceError};
use crate::store::snapshot::{SnapshotError, SnapshotReport};
use crate::store::{Store, TableInfo};

/// Snapshot files are `gatehouse-<UTC time>.redb`; nothing else in the folder is touched.
const PREFIX: &str = "gatehouse-";
const SUFFIX: &str = ".redb";
/// Without an earlier snapshot the first one comes this long after start.
const FIRST_WITHOUT_ANY: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("snapshot: {0}")]
    Snapshot(#[from] SnapshotError),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("the snapshot task ended abnormally")]
    Task,
}

impl ServiceError for BackupError {
    fn error_code(&self) -> ErrorCode {
        ErrorCode::Internal
    }
}

impl From<BackupError> for crate::domain::Error {
    fn from(e: BackupError) -> Self {
        Self::from_service("backup", e)
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io { path: path.display().to_string(), source }
}

/// What the metrics show of snapshots: shared with the metrics probe, which must not hold the
/// store (see `probe`).
#[derive(Debug, Default)]
pub struct BackupFigures {
    /// Unix seconds of the last snapshot written (0: none since start).
    pub last_success: AtomicI64,
    pub last_bytes: AtomicU64,
    /// Snapshots that failed since start.
    pub failures: AtomicU64,
}

pub struct BackupService {
    store: Store,
    master: SecretKey,
    dir: PathBuf,
    keep: usize,
    interval: Option<Duration>,
    /// One snapshot at a time: a second caller waits for the first.
    busy: tokio::sync::Mutex<()>,
    figures: Arc<BackupFigures>,
}

impl BackupService {
    pub fn new(
        store: Store,
        master: SecretKey,
        data_dir: &Path,
        keep: u64,
        interval: Option<Duration>,
        figures: Arc<BackupFigures>,
    ) -> Self {
        Self {
            store,
            master,
            dir: data_dir.join("backups"),
            keep: usize::try_from(keep).unwrap_or(usize::MAX).max(1),
            interval,
            busy: tokio::sync::Mutex::new(()),
            figures,
        }
    }

    /// The folder of the rotating snapshots.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }

    pub fn figures(&self) -> &BackupFigures {
        &self.figures
    }

    /// Removes what an interrupted snapshot or download left behind (hidden files only).
    pub fn clean_leftovers(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".partial") || name.starts_with(".download-")
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// How long until the next scheduled snapshot: one interval after the newest snapshot in
    /// the folder (so restarts do not postpone it), or [`FIRST_WITHOUT_ANY`] without one.
    pub fn first_delay(&self) -> Option<Duration> {
        let interval = self.interval?;
        let newest = list_snapshots(&self.dir).into_iter().filter_map(|(_, t)| t).max();
        Some(match newest {
            Some(t) => {
                let age = SystemTime::now().duration_since(t).unwrap_or(Duration::ZERO);
                interval.saturating_sub(age).max(Duration::from_secs(1))
            }
            None => FIRST_WITHOUT_ANY.min(interval),
        })
    }

    /// Writes `backups/gatehouse-<UTC time>.redb` and deletes the oldest beyond `keep`.
    pub async fn scheduled(self: &Arc<Self>) -> Result<SnapshotReport, BackupError> {
        let _turn = self.busy.lock().await;
        let this = Arc::clone(self);
        let report = tokio::task::spawn_blocking(move || {
            private_dir(&this.dir)?;
            let dest = this.dir.join(snapshot_name(SystemTime::now()));
            let report = this.write(&dest)?;
            this.prune();
            Ok::<_, BackupError>(report)
        })
        .await
        .map_err(|_| BackupError::Task)?;
        self.note(&report);
        report
    }

    /// A snapshot for a download: written like the others under a hidden name, then opened and
    /// unlinked, so the caller streams a file nobody else can see and nothing is left behind.
    pub async fn for_download(
        self: &Arc<Self>,
    ) -> Result<(std::fs::File, SnapshotReport), BackupError> {
        let _turn = self.busy.lock().await;
        let this = Arc::clone(self);
        let result = tokio::task::spawn_blocking(move || {
            private_dir(&this.dir)?;
            let dest = this.dir.join(format!(".download-{}{SUFFIX}", uuid::Uuid::new_v4()));
            let report = this.write(&dest)?;
            let file = std::fs::File::open(&dest).map_err(io(&dest));
            let _ = std::fs::remove_file(&dest);
            Ok::<_, BackupError>((file?, report))
        })
        .await
        .map_err(|_| BackupError::Task)?;
        self.note(&result.as_ref().map(|(_, r)| r.clone()).map_err(|_| ()));
        result
    }

    fn note<E>(&self, result: &Result<SnapshotReport, E>) {
        match result {
            Ok(r) => {
                self.figures.last_success.store(crate::clock::unix_now(), Ordering::Relaxed);
                self.figures.last_bytes.store(r.bytes, Ordering::Relaxed);
            }
            Err(_) => {
                self.figures.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn write(&self, dest: &Path) -> Result<SnapshotReport, BackupError> {
        let tables: Vec<&TableInfo> = crate::services::schema::all_tables().collect();
        Ok(self.store.snapshot(dest, &tables, &self.master, &mut |_| {})?)
    }

    /// Deletes the oldest snapshots beyond `keep` (by the time in their names).
    fn prune(&self) {
        let mut all = list_snapshots(&self.dir);
        all.sort_by(|a, b| b.0.cmp(&a.0));
        for (path, _) in all.into_iter().skip(self.keep) {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot delete an old snapshot");
            }
        }
    }
}

/// `gatehouse-20261201T013000Z.redb`: sortable by name, readable by people.
pub fn snapshot_name(at: SystemTime) -> String {
    let secs = at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let stamp = crate::clock::compact_utc(i64::try_from(secs).unwrap_or(0));
    format!("{PREFIX}{stamp}{SUFFIX}")
}

/// The rotating snapshots in `dir` with their modification times, in no order.
pub fn list_snapshots(dir: &Path) -> Vec<(PathBuf, Option<SystemTime>)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(PREFIX) && name.ends_with(SUFFIX)
        })
        .map(|e| (e.path(), e.metadata().and_then(|m| m.modified()).ok()))
        .collect()
}

/// Creates the snapshot folder owner-only (it holds copies of the data file).
fn private_dir(dir: &Path) -> Result<(), BackupError> {
    use std::os::unix::fs::DirBuilderExt as _;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io(dir))
}
