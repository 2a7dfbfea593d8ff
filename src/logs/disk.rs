//! The disk guard: when the filesystem of the data directory has less free space than
//! `logs.min_free_disk_mb`, Gatehouse stops storing records of its own requests (and refuses
//! reported ones), so that traffic — anyone's, authenticated or not — cannot fill the disk the
//! secrets live on. Free space is what the filesystem reports for unprivileged users (statvfs
//! `f_bavail`), checked at most every few seconds by the log writer.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How often the free space is looked at.
const EVERY: Duration = Duration::from_secs(5);

pub struct DiskGuard {
    dir: PathBuf,
    min_free: u64,
    low: AtomicBool,
    /// Records not stored while space was low.
    pub dropped: AtomicU64,
    last: Mutex<Option<Instant>>,
}

impl DiskGuard {
    /// `min_free_mb` 0 turns the guard off.
    pub fn new(dir: PathBuf, min_free_mb: u64) -> Self {
        Self {
            dir,
            min_free: min_free_mb.saturating_mul(1024 * 1024),
            low: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            last: Mutex::new(None),
        }
    }

    /// True while the free space is below the minimum.
    pub fn is_low(&self) -> bool {
        self.low.load(Ordering::Relaxed)
    }

    /// Counts one record not stored because space is low.
    pub fn drop_one(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Looks at the free space if the last look is older than a few seconds.
    pub fn check_due(&self) {
        let due = self.last.lock().is_none_or(|t| t.elapsed() >= EVERY);
        if due {
            self.check();
        }
    }

    /// Looks at the free space now and logs when the state changes.
    pub fn check(&self) {
        *self.last.lock() = Some(Instant::now());
        if self.min_free == 0 {
            return;
        }
        let free = match fs4::available_space(&self.dir) {
            Ok(free) => free,
            Err(e) => {
                // Unknown is not low: a filesystem that cannot say must not silence the log.
                tracing::debug!(error = %e, "cannot read the free disk space");
                return;
            }
        };
        let low = free < self.min_free;
        if self.low.swap(low, Ordering::Relaxed) != low {
            let dropped = self.dropped.load(Ordering::Relaxed);
            if low {
                tracing::warn!(
                    free_mb = free >> 20,
                    min_free_mb = self.min_free >> 20,
                    "disk space is low: request records are no longer stored"
                );
            } else {
                tracing::warn!(
                    free_mb = free >> 20,
                    dropped,
                    "disk space recovered: request records are stored again"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_when_the_minimum_is_above_the_free_space() {
        let dir = tempfile::tempdir().unwrap();
        let off = DiskGuard::new(dir.path().to_path_buf(), 0);
        off.check();
        assert!(!off.is_low());
        let plenty = DiskGuard::new(dir.path().to_path_buf(), 1);
        plenty.check();
        assert!(!plenty.is_low());
        let huge = DiskGuard::new(dir.path().to_path_buf(), u64::MAX >> 20);
        huge.check();
        assert!(huge.is_low());
    }
}
