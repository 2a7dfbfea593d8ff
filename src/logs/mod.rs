//! Request and audit logs. Handlers hand request records to [`LogService::log`] (a bounded
//! channel, never a disk wait); one writer thread commits them to redb in batches together with
//! their roll-ups, and feeds the tantivy index, which also follows the `AUDIT` table that other
//! areas write. Lists wait (bounded) until the index has caught up with what existed when they
//! arrived, so a client sees its own previous call.

mod agg;
pub mod consistency;
pub mod disk;
pub mod index;
pub mod quota;
pub mod record;
pub mod refusals;
pub mod reporter;
pub mod retention;
pub mod rollups;
pub mod stats;
pub mod tables;
mod writer;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch, Notify};

pub use index::{AuditFilter, AuditScope, IndexError, LogIndex, RequestFilter};
pub use record::RequestLog;

use crate::config::LogsConfig;
use crate::domain::audit::tables::AUDIT;
use crate::domain::audit::AuditRecord;
use crate::logs::tables::REQUEST_LOGS;
use crate::store::{RangeReader as _, Reader as _, Store, StoreError};

/// How long a handler waits for room in a full channel before the record is dropped (counted).
const FULL_WAIT: Duration = Duration::from_secs(2);
/// How long a list waits for the index to catch up before answering from what is indexed.
const VISIBLE_WAIT: Duration = Duration::from_secs(5);

enum Msg {
    Request(Box<RequestLog>),
    /// Records of Gatehouse's own requests written together (aggregated refusals).
    Requests(Vec<RequestLog>),
    Ingest(Vec<RequestLog>, Option<IngestQuota>, oneshot::Sender<Result<Vec<u64>, IngestFailure>>),
    Prune {
        requests_before: i64,
        audit_before: Option<i64>,
    },
}

/// Whose daily allowance a reported batch counts against, and how large it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestQuota {
    /// `key:<id>` or `user:<id>`.
    pub subject: String,
    /// Records per UTC day.
    pub per_day: u64,
}

/// Why a reported batch was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestFailure {
    /// The batch does not fit what is left of today's allowance.
    Quota { used: u64, per_day: u64 },
    /// The batch's write failed (the writer logs the cause).
    Write,
}

/// What the index shows: messages handled and sequences searchable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Progress {
    processed: u64,
    request_seq: u64,
    audit_seq: u64,
}

/// Counters of the pipeline (for metrics and the tests).
#[derive(Debug, Default)]
pub struct Counters {
    /// Records whose handler found the channel full and had to wait.
    pub full_waits: AtomicU64,
    /// Records lost: the channel stayed full past the wait, or the writer was gone.
    pub dropped: AtomicU64,
    /// Records committed to redb.
    pub written: AtomicU64,
    /// Documents added to the index.
    pub indexed: AtomicU64,
}

/// The request-log pipeline and the index searches.
pub struct LogService {
    sender: mpsc::Sender<Msg>,
    enqueued: AtomicU64,
    progress: watch::Receiver<Progress>,
    flush: Arc<Notify>,
    hurry: Arc<Notify>,
    stop: Arc<Notify>,
    stopping: Arc<AtomicBool>,
    index: Arc<LogIndex>,
    store: Store,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    pub counters: Arc<Counters>,
    pub config: LogsConfig,
    refusals: Arc<refusals::Refusals>,
    pub disk: Arc<disk::DiskGuard>,
}

impl LogService {
    /// Opens (or rebuilds) `data_dir/index` and starts the writer thread, which first catches the
    /// index up with redb.
    pub fn start(
        store: &Store,
        data_dir: &Path,
        config: &LogsConfig,
    ) -> Result<Arc<Self>, IndexError> {
        let dir = data_dir.join("index");
        let (mut index, mut wm) = LogIndex::open(&dir)?;
        let (last_req, last_audit) = store
            .read(|tx| Ok::<_, StoreError>((tx.last_key(REQUEST_LOGS)?, tx.last_key(AUDIT)?)))
            .unwrap_or((None, None));
        if wm.request_seq > last_req.unwrap_or(0) || wm.audit_seq > last_audit.unwrap_or(0) {
            // The data file is older than the index (a restored backup): start over.
            tracing::warn!("search index is ahead of the data file; rebuilding");
            drop(index);
            index = LogIndex::create_fresh(&dir)?;
            wm = index::Watermark { schema: index::SCHEMA_VERSION, ..Default::default() };
        }
        let index = Arc::new(index);
        let capacity = usize::try_from(config.channel_capacity).unwrap_or(65536).max(16);
        let (sender, receiver) = mpsc::channel(capacity);
        let initial =
            Progress { processed: 0, request_seq: wm.request_seq, audit_seq: wm.audit_seq };
        let (progress_tx, progress) = watch::channel(initial);
        let counters = Arc::new(Counters::default());
        let flush = Arc::new(Notify::new());
        let hurry = Arc::new(Notify::new());
        let stop = Arc::new(Notify::new());
        let stopping = Arc::new(AtomicBool::new(false));
        let refusals = Arc::new(refusals::Refusals::default());
        let disk = Arc::new(disk::DiskGuard::new(data_dir.to_path_buf(), config.min_free_disk_mb));
        disk.check();
        let w = writer::LogWriter::new(writer::Parts {
            store: store.clone(),
            index: Arc::clone(&index),
            rx: receiver,
            progress: progress_tx,
            flush: Arc::clone(&flush),
            hurry: Arc::clone(&hurry),
            stop: Arc::clone(&stop),
            counters: Arc::clone(&counters),
            commit_every: Duration::from_millis(config.index_commit_ms.max(10)),
            watermark: wm,
            index_memory: usize::try_from(config.index_memory_mb.clamp(15, 4000) << 20)
                .unwrap_or(64 << 20),
            refusals: Arc::clone(&refusals),
            disk: Arc::clone(&disk),
        })?;
        let thread = std::thread::Builder::new()
            .name("gatehouse-logs".into())
            .spawn(move || w.run())
            .map_err(|e| IndexError::Io { path: dir.display().to_string(), source: e })?;
        Ok(Arc::new(Self {
            sender,
            enqueued: AtomicU64::new(0),
            progress,
            flush,
            hurry,
            stop,
            stopping,
            index,
            store: store.clone(),
            thread: Mutex::new(Some(thread)),
            counters,
            config: config.clone(),
            refusals,
            disk,
        }))
    }

    async fn send(&self, msg: Msg) -> bool {
        let msg = match self.sender.try_send(msg) {
            Ok(()) => {
                self.enqueued.fetch_add(1, Ordering::SeqCst);
                return true;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
            Err(mpsc::error::TrySendError::Full(msg)) => msg,
        };
        self.counters.full_waits.fetch_add(1, Ordering::Relaxed);
        match tokio::time::timeout(FULL_WAIT, self.sender.send(msg)).await {
            Ok(Ok(())) => {
                self.enqueued.fetch_add(1, Ordering::SeqCst);
                true
            }
            _ => false,
        }
    }

    /// Messages waiting in the writer's channel (for the metrics).
    pub fn queue_depth(&self) -> u64 {
        let waiting = self.sender.max_capacity().saturating_sub(self.sender.capacity());
        u64::try_from(waiting).unwrap_or(u64::MAX)
    }

    /// Queues one request record; waits only if the channel is full (briefly, then drops it).
    /// Nothing is stored while disk space is low.
    pub async fn log(&self, rec: RequestLog) {
        if self.disk.is_low() {
            self.disk.drop_one();
            return;
        }
        if !self.send(Msg::Request(Box::new(rec))).await {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a refused anonymous request into its (client, route, status, minute) group
    /// instead of storing it on its own (see [`refusals`]).
    pub async fn log_refused(&self, rec: RequestLog) {
        if self.disk.is_low() {
            self.disk.drop_one();
            return;
        }
        let flush = self.refusals.add(rec);
        self.send_requests(flush).await;
    }

    async fn send_requests(&self, records: Vec<RequestLog>) {
        if records.is_empty() {
            return;
        }
        let n = records.len() as u64;
        if !self.send(Msg::Requests(records)).await {
            self.counters.dropped.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Queues a record without waiting (for code that cannot wait, e.g. a drop guard).
    pub fn log_now(&self, rec: RequestLog) {
        if self.disk.is_low() {
            self.disk.drop_one();
            return;
        }
        if self.sender.try_send(Msg::Request(Box::new(rec))).is_ok() {
            self.enqueued.fetch_add(1, Ordering::SeqCst);
        } else {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Stores reported records durably; returns their ids (in order).
    pub async fn ingest(&self, records: Vec<RequestLog>) -> Result<Vec<u64>, crate::domain::Error> {
        self.ingest_within(records, None).await
    }

    /// Stores reported records durably if they fit `quota` (all or none: the writer checks and
    /// counts the allowance in the transaction that stores them); returns their ids.
    pub async fn ingest_within(
        &self,
        records: Vec<RequestLog>,
        quota: Option<IngestQuota>,
    ) -> Result<Vec<u64>, crate::domain::Error> {
        use crate::domain::{Error, ErrorCode};
        if self.disk.is_low() {
            let mut e = Error::new(
                ErrorCode::RateLimited,
                "Disk space is low; reported calls are not stored until space is freed.",
            );
            e.retry_after = Some(60);
            return Err(e);
        }
        let (tx, rx) = oneshot::channel();
        if !self.send(Msg::Ingest(records, quota, tx)).await {
            return Err(Error::new(
                ErrorCode::RateLimited,
                "The request log is busy; retry shortly.",
            ));
        }
        // The caller waits for its batch: don't let it sit out the writer's gathering pause.
        self.hurry.notify_one();
        match rx.await {
            Ok(Ok(ids)) => Ok(ids),
            Ok(Err(IngestFailure::Quota { used, per_day })) => Err(quota::exceeded(used, per_day)),
            // The cause was logged by the writer thread, where it happened.
            Ok(Err(IngestFailure::Write)) => {
                Err(Error::internal("the request log batch was not written"))
            }
            Err(_) => Err(Error::internal("request log writer stopped")),
        }
    }

    /// Asks the writer to remove records created before the cutoffs from the index.
    pub(crate) async fn prune_index(&self, requests_before: i64, audit_before: Option<i64>) {
        let _ = self.send(Msg::Prune { requests_before, audit_before }).await;
    }

    /// Waits (bounded) until every request record queued or stored before this call is
    /// searchable (in the index or its pending set; no index commit needed).
    pub async fn wait_requests_visible(&self) {
        // Aggregated refusals still being counted are written now, so the list shows them.
        self.send_requests(self.refusals.take_all()).await;
        let enqueued = self.enqueued.load(Ordering::SeqCst);
        let last = self.store.read(|tx| tx.last_key(REQUEST_LOGS)).ok().flatten().unwrap_or(0);
        let done = move |p: &Progress| p.processed >= enqueued && p.request_seq >= last;
        if !done(&self.progress.borrow()) {
            self.hurry.notify_one();
        }
        self.wait_for(done, false).await;
    }

    /// The request and audit sequences the index has caught up to.
    pub fn indexed_through(&self) -> (u64, u64) {
        let p = self.progress.borrow();
        (p.request_seq, p.audit_seq)
    }

    /// Waits (bounded) until every audit record stored before this call is searchable; asks
    /// the writer to commit the index at once if needed.
    pub async fn wait_audit_visible(&self) {
        let last = self.store.read(|tx| tx.last_key(AUDIT)).ok().flatten().unwrap_or(0);
        self.wait_for(move |p: &Progress| p.audit_seq >= last, true).await;
    }

    async fn wait_for(&self, done: impl Fn(&Progress) -> bool, flush: bool) {
        if done(&self.progress.borrow()) {
            return;
        }
        if flush {
            self.flush.notify_one();
        }
        let mut rx = self.progress.clone();
        let _ = tokio::time::timeout(VISIBLE_WAIT, rx.wait_for(done)).await;
    }

    /// Request records matching `filter`, newest first, and the total count.
    pub async fn list_requests(
        &self,
        filter: RequestFilter,
        offset: usize,
        limit: usize,
    ) -> Result<(u64, Vec<RequestLog>), crate::domain::Error> {
        self.wait_requests_visible().await;
        let index = Arc::clone(&self.index);
        let (count, ids) =
            tokio::task::spawn_blocking(move || index.search_requests(&filter, offset, limit))
                .await??;
        let records = self.store.read(|tx| {
            let mut out = Vec::with_capacity(ids.len());
            for id in &ids {
                if let Some(r) = tx.get(REQUEST_LOGS, *id)? {
                    out.push(r);
                }
            }
            Ok::<_, StoreError>(out)
        })?;
        Ok((count, records))
    }

    /// Audit records matching `filter`, newest first, and the total count.
    pub async fn list_audit(
        &self,
        filter: AuditFilter,
        offset: usize,
        limit: usize,
    ) -> Result<(u64, Vec<AuditRecord>), crate::domain::Error> {
        self.wait_audit_visible().await;
        let index = Arc::clone(&self.index);
        let scope = filter.clone();
        let (count, ids) =
            tokio::task::spawn_blocking(move || index.search_audit(&filter, offset, limit))
                .await??;
        let records = self.store.read(|tx| {
            let mut out = Vec::with_capacity(ids.len());
            for id in &ids {
                match tx.get(AUDIT, *id)? {
                    Some(r) if scope.admits(&r) => out.push(r),
                    Some(_) => tracing::warn!(id, "search index hit outside the audit filter"),
                    None => {}
                }
            }
            Ok::<_, StoreError>(out)
        })?;
        Ok((count, records))
    }

    /// Writes everything queued, commits the index and stops the writer thread.
    pub fn shutdown(&self) {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        self.stop.notify_one();
        if let Some(handle) = self.thread.lock().take() {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests;
