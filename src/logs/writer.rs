//! The log writer thread: the only owner of the tantivy `IndexWriter`. It takes batches of
//! records from the channel, commits them (with their roll-ups) to redb, adds them to the index,
//! follows the `AUDIT` table, and commits the index at least every `index_commit_ms` — at once
//! when a list is waiting — with the indexed sequences as the commit payload.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tantivy::indexer::UserOperation;
use tantivy::IndexWriter;
use tokio::sync::{mpsc, watch, Notify};

use super::disk::DiskGuard;
use super::index::{IndexError, LogIndex, Pending, Watermark};
use super::quota::{day_of, QuotaBook};
use super::refusals::Refusals;
use super::{rollups, Counters, IngestFailure, Msg, Progress, RequestLog};
use crate::domain::audit::tables::AUDIT;
use crate::logs::tables::{REQUEST_LOGS, REQUEST_LOGS_BY_MINUTE};
use crate::store::{BulkWriter as _, Reader as _, Record, Store, StoreError, WriteTx};

/// Records per redb transaction.
const MAX_BATCH: usize = 8192;
/// Records read from redb per catch-up step.
const CATCH_UP_CHUNK: usize = 10_000;
/// Past this many uncommitted (pending) records the index commits early.
const PENDING_MAX: usize = 100_000;
/// How long the writer lets records gather after a batch before taking the next one.
const GATHER: Duration = Duration::from_millis(50);

/// An ingest caller waiting for its records' ids: (reply, first index in the batch, count).
type Ack = (tokio::sync::oneshot::Sender<Result<Vec<u64>, IngestFailure>>, usize, usize);

pub(super) struct Parts {
    pub store: Store,
    pub index: Arc<LogIndex>,
    pub rx: mpsc::Receiver<Msg>,
    pub progress: watch::Sender<Progress>,
    pub flush: Arc<Notify>,
    /// A list is waiting for records: take the next batch now.
    pub hurry: Arc<Notify>,
    pub stop: Arc<Notify>,
    pub counters: Arc<Counters>,
    pub commit_every: Duration,
    pub watermark: Watermark,
    /// `logs.index_memory_mb`, in bytes.
    pub index_memory: usize,
    /// Aggregated refusals, written here when their minute is over.
    pub refusals: Arc<Refusals>,
    pub disk: Arc<DiskGuard>,
}

pub(super) struct LogWriter {
    p: Parts,
    writer: IndexWriter,
    /// What has been added to the index writer (committed or not).
    wm: Watermark,
    processed: u64,
    last_written: u64,
    dirty: bool,
    flush_requested: bool,
    last_commit: Instant,
    rebuild_started: Option<Instant>,
    quotas: QuotaBook,
}

/// Writes `records` with consecutive ids assigned here, their roll-ups and the ingest quota
/// rows they count against; returns the first id. Each table is opened once for the batch and
/// no record is copied.
fn write_batch(
    tx: &WriteTx,
    records: &[RequestLog],
    quota_rows: &[(String, Vec<u8>)],
) -> Result<u64, StoreError> {
    for (key, value) in quota_rows {
        crate::store::put_meta(tx, key, value)?;
    }
    let first = tx.reserve_ids("request_log", records.len() as u64)?;
    let id = |i: usize| first + i as u64;
    tx.put_encoded(REQUEST_LOGS, records.len(), &mut |i, buf| {
        buf.push(<RequestLog as Record>::VERSION);
        if let Some(r) = records.get(i) {
            r.encode_body_as(id(i), buf);
        }
        id(i)
    })?;
    let minute = |r: &RequestLog| u64::try_from(r.created_at.div_euclid(60)).unwrap_or(0);
    tx.link_all(
        REQUEST_LOGS_BY_MINUTE,
        &mut records.iter().enumerate().map(|(i, r)| (minute(r), id(i))),
    )?;
    rollups::apply(tx, records)?;
    Ok(first)
}

impl LogWriter {
    pub fn new(p: Parts) -> Result<Self, IndexError> {
        let writer = p.index.writer(p.index_memory)?;
        let wm = p.watermark;
        Ok(Self {
            p,
            writer,
            wm,
            processed: 0,
            last_written: 0,
            dirty: false,
            flush_requested: false,
            last_commit: Instant::now(),
            rebuild_started: None,
            quotas: QuotaBook::default(),
        })
    }

    /// The thread body: a small runtime of its own, so waiting on the channel, the store's
    /// commit notifications and timers is cheap, and tantivy may block it freely.
    pub fn run(self) {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the log writer runtime");
                return;
            }
        };
        rt.block_on(self.main_loop());
    }

    async fn main_loop(mut self) {
        let mut commits = self.p.store.commits();
        let stop = Arc::clone(&self.p.stop);
        let flush = Arc::clone(&self.p.flush);
        let hurry = Arc::clone(&self.p.hurry);
        let mut behind = self.catch_up();
        loop {
            let wait = if behind {
                Duration::ZERO
            } else {
                self.p.commit_every.saturating_sub(self.last_commit.elapsed())
            };
            let mut took = false;
            tokio::select! {
                biased;
                () = stop.notified() => break,
                msg = self.p.rx.recv() => match msg {
                    Some(first) => {
                        self.take_batch(first).await;
                        took = true;
                    }
                    None => break,
                },
                () = flush.notified() => self.flush_requested = true,
                _ = commits.changed() => {},
                () = tokio::time::sleep(wait) => {},
            }
            self.write_due_refusals(false).await;
            self.p.disk.check_due();
            // After the batch, before committing: what others wrote (audit) joins this commit.
            behind = self.catch_up();
            self.publish_requests();
            self.maybe_commit();
            if took && !behind {
                // Let the next records gather in the channel for a moment: while this thread is
                // not waiting on the channel, a handler's send is a queue push, not a wake-up of
                // this thread — under load, one wake per gathering instead of one per request.
                // A list waiting for its own records cuts the moment short (`hurry`).
                tokio::select! {
                    biased;
                    () = stop.notified() => break,
                    () = hurry.notified() => {},
                    () = flush.notified() => self.flush_requested = true,
                    () = tokio::time::sleep(GATHER) => {},
                }
            }
        }
        // Shutting down: write what is queued, index it, commit.
        self.p.rx.close();
        while let Some(first) = self.p.rx.recv().await {
            self.take_batch(first).await;
        }
        self.write_due_refusals(true).await;
        while self.catch_up() {}
        self.flush_requested = true;
        self.maybe_commit();
    }

    async fn take_batch(&mut self, first: Msg) {
        let mut batch = Vec::with_capacity(self.p.rx.len().min(MAX_BATCH) + 1);
        batch.push(first);
        let mut n = 0;
        while n < MAX_BATCH {
            match self.p.rx.try_recv() {
                Ok(m) => {
                    n += match &m {
                        Msg::Ingest(v, _, _) | Msg::Requests(v) => v.len(),
                        _ => 1,
                    };
                    batch.push(m);
                }
                Err(_) => break,
            }
        }
        self.handle(batch).await;
    }

    async fn handle(&mut self, batch: Vec<Msg>) {
        let count = batch.len() as u64;
        // Sized once: grown by pushes, a batch of thousands of records reallocated its way up
        // through fresh pages, and the kernel zeroing them was most of this thread's time.
        let total = batch
            .iter()
            .map(|m| match m {
                Msg::Request(_) => 1,
                Msg::Ingest(v, _, _) | Msg::Requests(v) => v.len(),
                Msg::Prune { .. } => 0,
            })
            .sum();
        let mut records = Vec::with_capacity(total);
        let mut acks = Vec::new();
        // One row per subject: a later batch of the same reporter carries the newer count.
        let mut quota_rows = std::collections::HashMap::new();
        let day = day_of(crate::clock::unix_now());
        for msg in batch {
            match msg {
                Msg::Request(r) => records.push(*r),
                Msg::Requests(v) => records.extend(v),
                Msg::Ingest(v, quota, reply) => {
                    if let Some(q) = &quota {
                        match self.quotas.take(&self.p.store, q, v.len() as u64, day) {
                            Ok((key, row)) => {
                                quota_rows.insert(key, row);
                            }
                            Err(used) => {
                                let refused = IngestFailure::Quota { used, per_day: q.per_day };
                                let _ = reply.send(Err(refused));
                                continue;
                            }
                        }
                    }
                    acks.push((reply, records.len(), v.len()));
                    records.extend(v);
                }
                Msg::Prune { requests_before, audit_before } => {
                    self.prune(requests_before, audit_before);
                }
            }
        }
        if !records.is_empty() {
            self.write(records, acks, quota_rows.into_iter().collect()).await;
        }
        self.processed += count;
    }

    /// Writes the aggregated refusals whose minute is over (all of them when `all`).
    async fn write_due_refusals(&mut self, all: bool) {
        let due = if all {
            self.p.refusals.take_all()
        } else {
            self.p.refusals.take_due(crate::clock::unix_now())
        };
        if due.is_empty() {
            return;
        }
        if self.p.disk.is_low() {
            for _ in &due {
                self.p.disk.drop_one();
            }
            return;
        }
        self.write(due, Vec::new(), Vec::new()).await;
    }

    async fn write(
        &mut self,
        records: Vec<RequestLog>,
        acks: Vec<Ack>,
        quota_rows: Vec<(String, Vec<u8>)>,
    ) {
        let shared = Arc::new(records);
        let captured = Arc::clone(&shared);
        let took_quota = !quota_rows.is_empty();
        // Records of this server's own requests wait on nobody: no fsync of their own (they
        // reach the disk within a second). Ingested batches are acknowledged, so durable.
        let result = if acks.is_empty() {
            self.p.store.write_relaxed(move |tx| write_batch(tx, &captured, &quota_rows)).await
        } else {
            self.p.store.write(move |tx| write_batch(tx, &captured, &quota_rows)).await
        };
        match result {
            Ok(first) => {
                let n = shared.len() as u64;
                for (reply, start, len) in acks {
                    let start = first + start as u64;
                    let _ = reply.send(Ok((start..start + len as u64).collect()));
                }
                self.p.counters.written.fetch_add(n, Ordering::Relaxed);
                if n == 0 {
                    return;
                }
                let last = first + n - 1;
                self.last_written = last;
                // Index straight from memory when nothing is missing before this batch; else
                // the catch-up reads the gap (and this batch) back from redb.
                if self.wm.request_seq + 1 == first {
                    let index = &self.p.index;
                    let docs = shared
                        .iter()
                        .enumerate()
                        .map(|(i, r)| index.request_doc_as(r, first + i as u64))
                        .collect();
                    self.add_all(docs);
                    self.wm.request_seq = last;
                    self.pend(Pending::numbered(first, shared));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "request log batch not written");
                if took_quota {
                    self.quotas.forget();
                }
                for (reply, _, _) in acks {
                    let _ = reply.send(Err(IngestFailure::Write));
                }
            }
        }
    }

    /// Makes added (uncommitted) records searchable at once; commits early when many pile up.
    fn pend(&mut self, records: Pending) {
        if self.p.index.add_pending(records) > PENDING_MAX {
            self.flush_requested = true;
        }
    }

    /// Publishes what lists can see now: every handled message whose records are in redb and in
    /// the index or the pending set.
    fn publish_requests(&self) {
        let caught_up = self.wm.request_seq >= self.last_written;
        let (processed, seq) = (self.processed, self.wm.request_seq);
        self.p.progress.send_if_modified(|p| {
            let before = *p;
            if caught_up {
                p.processed = processed;
            }
            p.request_seq = seq;
            before != *p
        });
    }

    /// Hands documents to the index writer as one group (one hand-off to its indexing thread,
    /// not one per document).
    fn add_all(&mut self, docs: Vec<tantivy::TantivyDocument>) {
        if docs.is_empty() {
            return;
        }
        let n = docs.len() as u64;
        if let Err(e) = self.writer.run(docs.into_iter().map(UserOperation::Add)) {
            tracing::error!(error = %e, "cannot index log records");
            return;
        }
        self.p.counters.indexed.fetch_add(n, Ordering::Relaxed);
        self.dirty = true;
    }

    fn prune(&mut self, requests_before: i64, audit_before: Option<i64>) {
        let mut queries = vec![self.p.index.requests_before(requests_before)];
        if let Some(cut) = audit_before {
            queries.push(self.p.index.audit_before(cut));
        }
        self.p.index.prune_pending(requests_before);
        for q in queries {
            if let Err(e) = self.writer.delete_query(q) {
                tracing::warn!(error = %e, "cannot prune the search index");
            }
        }
        self.dirty = true;
    }

    /// Indexes one chunk of request and audit records that are in redb but not yet in the index.
    /// Returns whether more remain.
    fn catch_up(&mut self) -> bool {
        let from_req = self.wm.request_seq + 1;
        let from_audit = self.wm.audit_seq + 1;
        let read = self.p.store.read(|tx| {
            let reqs = tx.scan(REQUEST_LOGS, from_req..=u64::MAX, CATCH_UP_CHUNK, false)?;
            let audits = tx.scan(AUDIT, from_audit..=u64::MAX, CATCH_UP_CHUNK, false)?;
            Ok::<_, StoreError>((reqs, audits))
        });
        let (reqs, audits) = match read {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(error = %e, "cannot read records to index");
                return false;
            }
        };
        let more = reqs.len() >= CATCH_UP_CHUNK || audits.len() >= CATCH_UP_CHUNK;
        if reqs.len() >= CATCH_UP_CHUNK && self.rebuild_started.is_none() {
            self.rebuild_started = Some(Instant::now());
            tracing::info!(from = from_req, "indexing request log records");
        }
        let index = Arc::clone(&self.p.index);
        self.add_all(reqs.iter().map(|(id, rec)| index.request_doc_as(rec, *id)).collect());
        if let Some((last, _)) = reqs.last() {
            self.wm.request_seq = *last;
            let records = reqs.into_iter().map(|(id, r)| RequestLog { id, ..r }).collect();
            self.pend(Pending::own_ids(Arc::new(records)));
        }
        self.add_all(audits.iter().map(|(_, rec)| index.audit_doc(rec)).collect());
        if let Some((last, _)) = audits.last() {
            self.wm.audit_seq = *last;
        }
        if more {
            tracing::info!(indexed_through = self.wm.request_seq, "indexing progress");
        } else if let Some(started) = self.rebuild_started.take() {
            let secs = started.elapsed().as_secs_f64();
            tracing::info!(through = self.wm.request_seq, seconds = secs, "index caught up");
        }
        more
    }

    fn maybe_commit(&mut self) {
        let due = self.last_commit.elapsed() >= self.p.commit_every;
        if !(self.flush_requested || (self.dirty && due)) {
            if due {
                // Nothing to commit: restart the period, so an idle writer sleeps a whole period
                // instead of waking at once (the wait is "period minus time since commit").
                self.last_commit = Instant::now();
            }
            return;
        }
        self.flush_requested = false;
        if self.dirty {
            if let Err(e) = self.commit() {
                tracing::error!(error = %e, "search index commit failed");
                return;
            }
        }
        self.last_commit = Instant::now();
        self.dirty = false;
        let audit = self.wm.audit_seq;
        self.p.progress.send_if_modified(|p| {
            let changed = p.audit_seq != audit;
            p.audit_seq = audit;
            changed
        });
    }

    fn commit(&mut self) -> Result<(), IndexError> {
        // An empty payload would read as "no watermark" and rebuild the whole index at start.
        let payload = serde_json::to_string(&self.wm)?;
        let mut prepared = self.writer.prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
        self.p.index.reload()
    }
}
