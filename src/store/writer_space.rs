//! The writer's view of the disk: [`DbSlot`], the redb handle it can close and open again
//! after an I/O failure, and [`DiskSpace`], the free space it looks at before each batch and
//! the reserve below which it refuses writes. See the `writer` module's doc.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use redb::{Database, ReadableDatabase as _};

use crate::store::error::Unavailable;
use crate::store::StoreError;

/// Free space that ends the "disk full" state after a real ENOSPC (when the reserve is smaller).
const ROOM_AGAIN: u64 = 1 << 20;

/// The open data file, replaceable: the writer closes and reopens it after an I/O failure
/// (redb refuses every transaction on a handle that has seen one). Readers take a clone of the
/// handle only while they begin a transaction; a read transaction does not keep the handle.
pub struct DbSlot {
    path: PathBuf,
    cache_bytes: usize,
    db: RwLock<Option<Arc<Database>>>,
    /// Bumped by every reopen: a reader that met the latched failure waits for the next one.
    generation: AtomicU64,
}

/// Longest a reader waits for the writer to reopen a file that failed under it.
const READ_WAITS_FOR_REOPEN: Duration = Duration::from_millis(500);

impl DbSlot {
    pub fn new(db: Database, path: &Path, cache_bytes: usize) -> Self {
        let db = RwLock::new(Some(Arc::new(db)));
        Self { path: path.to_path_buf(), cache_bytes, db, generation: AtomicU64::new(0) }
    }

    /// Begins a read transaction on the open file; `Reopening` while it is closed. A read that
    /// meets the latched I/O failure waits (briefly) for the writer to reopen the file, which
    /// it does right after the failed commit, and tries once more.
    pub fn begin_read(&self) -> Result<redb::ReadTransaction, StoreError> {
        let generation = self.generation.load(Ordering::Acquire);
        let first = self.current()?.begin_read().map_err(StoreError::from);
        match first {
            Err(e) if e.needs_reopen() => {
                let start = Instant::now();
                while self.generation.load(Ordering::Acquire) == generation {
                    if start.elapsed() >= READ_WAITS_FOR_REOPEN {
                        return Err(e);
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(self.current()?.begin_read()?)
            }
            other => other,
        }
    }

    pub(super) fn current(&self) -> Result<Arc<Database>, StoreError> {
        self.db.read().clone().ok_or(StoreError::Reopening)
    }

    pub(super) fn is_open(&self) -> bool {
        self.db.read().is_some()
    }

    /// Closes the file (once no reader holds the handle) and opens it again; redb's repair on
    /// open brings back the last durable commit. Readers wait for it (the slot's lock is held
    /// throughout) rather than fail. On failure the slot stays closed.
    pub(super) fn reopen(&self) -> Result<(), StoreError> {
        let mut slot = self.db.write();
        if let Some(mut old) = slot.take() {
            // Readers hold their clone for the few microseconds of `begin_read`.
            loop {
                match Arc::try_unwrap(old) {
                    Ok(db) => {
                        // Closing a handle that saw an I/O failure reports it again.
                        if let Err(e) = db.close() {
                            tracing::debug!(error = %e, "closing the failed data file");
                        }
                        break;
                    }
                    Err(still_shared) => {
                        old = still_shared;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        }
        // Readers waiting on the old handle go on (to the new one, or to `Reopening`).
        self.generation.fetch_add(1, Ordering::Release);
        let db = redb::Builder::new().set_cache_size(self.cache_bytes).create(&self.path)?;
        *slot = Some(Arc::new(db));
        Ok(())
    }
}

/// The free space of the data directory's filesystem and the reserve the writer keeps.
pub struct DiskSpace {
    dir: PathBuf,
    reserve: AtomicU64,
    /// Free bytes at the last look (statvfs `f_bavail`); `u64::MAX` until known.
    free: AtomicU64,
    /// A commit failed with ENOSPC and none has succeeded since.
    hit_enospc: AtomicBool,
    /// Writes refused or failed for lack of space since start.
    refused: AtomicU64,
}

impl DiskSpace {
    pub(super) fn new(data_file: &Path) -> Self {
        let dir = data_file.parent().unwrap_or(Path::new(".")).to_path_buf();
        Self {
            dir,
            reserve: AtomicU64::new(0),
            free: AtomicU64::new(u64::MAX),
            hit_enospc: AtomicBool::new(false),
            refused: AtomicU64::new(0),
        }
    }

    /// Sets the reserve in bytes (0: no reserve; a real ENOSPC is still answered 503).
    pub fn set_reserve(&self, bytes: u64) {
        self.reserve.store(bytes, Ordering::Relaxed);
    }

    pub fn reserve(&self) -> u64 {
        self.reserve.load(Ordering::Relaxed)
    }

    /// Looks at the free space now; `None` if the filesystem cannot say.
    pub fn free_bytes(&self) -> Option<u64> {
        match fs4::available_space(&self.dir) {
            Ok(free) => {
                self.free.store(free, Ordering::Relaxed);
                Some(free)
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the free disk space");
                None
            }
        }
    }

    /// Whether writes are refused now: free space below the reserve, or a commit met ENOSPC
    /// and none has succeeded since.
    pub fn refusing_writes(&self) -> bool {
        let low = self.free_bytes().is_some_and(|free| free < self.reserve());
        low || self.hit_enospc.load(Ordering::Relaxed)
    }

    /// Writes refused or failed for lack of space since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// The writer's look before a batch: `DiskFull` below the reserve. Unknown is not low.
    pub(super) fn admit(&self, jobs: usize) -> Result<(), StoreError> {
        let reserve = self.reserve();
        let was = self.free.load(Ordering::Relaxed);
        let Some(free) = self.free_bytes() else { return Ok(()) };
        if free >= reserve {
            if was < reserve {
                tracing::warn!(
                    free_bytes = free,
                    "disk space recovered: writes are accepted again"
                );
            }
            return Ok(());
        }
        if was >= reserve {
            tracing::warn!(
                free_bytes = free,
                reserve_bytes = reserve,
                "the data disk is full: writes are refused until space is freed"
            );
        }
        self.refused.fetch_add(jobs as u64, Ordering::Relaxed);
        Err(StoreError::DiskFull { free, reserve })
    }

    pub(super) fn note_commit(&self, result: Result<(), &StoreError>, jobs: usize) {
        match result {
            // Small commits may still fit after an ENOSPC: the disk counts as full again only
            // once a commit succeeds with room for more than that.
            Ok(()) if self.hit_enospc.load(Ordering::Relaxed) => {
                let room = self.free_bytes().is_some_and(|f| f >= self.reserve().max(ROOM_AGAIN));
                if room && self.hit_enospc.swap(false, Ordering::Relaxed) {
                    tracing::warn!("disk space recovered after running out: writes succeed again");
                }
            }
            Ok(()) => {}
            Err(e) if e.unavailable() == Some(Unavailable::DiskFull) => {
                self.hit_enospc.store(true, Ordering::Relaxed);
                self.refused.fetch_add(jobs as u64, Ordering::Relaxed);
            }
            Err(_) => {}
        }
    }
}
