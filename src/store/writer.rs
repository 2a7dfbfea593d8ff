//! The single writer thread. Mutations queue here; the thread takes every pending one (up to
//! `max_batch`), runs them in one write transaction and commits once with
//! `Durability::Immediate`, so N concurrent writers share one fsync. A mutation that returns an
//! error must leave no trace, and redb cannot roll back part of a transaction, so the batch's
//! transaction is aborted and the mutations that succeeded are re-run in a fresh one.
//!
//! A mutation may be submitted *relaxed* (request-log batches nobody waits on): a batch made
//! only of relaxed mutations commits without fsync, and the thread makes everything durable
//! with the next durable batch or at most [`FLUSH_INTERVAL`] later, so hot paths that only
//! record what happened do not pay an fsync per batch.
//!
//! A full disk must not break the store (see `tests/it/disk_full.rs`). Before each batch the
//! writer looks at the free space ([`DiskSpace`]) and refuses the batch (`DiskFull`, 503) while
//! it is below the reserve, so redb does not meet ENOSPC mid-commit. The reserve can still be
//! eaten by others; redb then latches the I/O failure and fails every later transaction, reads
//! included (`PreviousIo`), until the file is closed and opened again. So after a commit fails
//! with an I/O error the writer answers the batch (503), closes the file and opens it again
//! ([`DbSlot::reopen`]), which keeps every earlier durable commit; if the open fails (still
//! full), it tries again before later batches, at most once per [`REOPEN_EVERY`].

use std::cell::Cell;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redb::{Database, Durability};
use tokio::sync::{oneshot, watch};

use super::tx::{EffectSink, WriteTx};
use super::StoreError;

/// Longest time a relaxed commit stays without fsync.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Least time between two attempts to open the data file again after an I/O failure.
pub const REOPEN_EVERY: Duration = Duration::from_secs(1);

#[path = "writer_space.rs"]
mod space;
pub use space::{DbSlot, DiskSpace};

trait Job: Send {
    /// Runs the mutation; `true` if it succeeded (its result waits for the commit).
    fn run(&mut self, tx: &WriteTx) -> bool;
    /// Delivers the result: the mutation's own, or the commit's error.
    fn finish(self: Box<Self>, commit: Result<(), &Arc<StoreError>>);
    /// Whether its caller needs the commit on disk before the answer.
    fn durable(&self) -> bool;
}

struct TypedJob<T, E, F> {
    f: F,
    durable: bool,
    result: Option<Result<T, E>>,
    reply: oneshot::Sender<Result<T, E>>,
}

impl<T, E, F> Job for TypedJob<T, E, F>
where
    F: Fn(&WriteTx) -> Result<T, E> + Send,
    T: Send,
    E: From<StoreError> + Send,
{
    fn run(&mut self, tx: &WriteTx) -> bool {
        let mark = tx.effect_mark();
        let r = (self.f)(tx);
        let ok = r.is_ok();
        if !ok {
            tx.rollback_effects(mark);
        }
        self.result = Some(r);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), &Arc<StoreError>>) {
        let out = match (commit, self.result) {
            (_, Some(Err(e))) => Err(e),
            (Err(e), _) => Err(E::from(StoreError::BatchCommit(Arc::clone(e)))),
            (Ok(()), Some(Ok(v))) => Ok(v),
            (Ok(()), None) => Err(E::from(StoreError::NotRun)),
        };
        // The caller may have gone away (request cancelled); the commit stands regardless.
        let _ = self.reply.send(out);
    }

    fn durable(&self) -> bool {
        self.durable
    }
}

enum Msg {
    Job(Box<dyn Job>),
    Shutdown,
}

/// Handle to the writer thread.
#[derive(Clone)]
pub struct WriterHandle {
    sender: mpsc::Sender<Msg>,
    commits: watch::Receiver<u64>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
    sink: Arc<OnceLock<EffectSink>>,
    space: Arc<DiskSpace>,
}

/// Starts the writer on `slot`, the file at `path`.
pub fn spawn(slot: Arc<DbSlot>, max_batch: usize, path: &Path) -> Result<WriterHandle, StoreError> {
    let (sender, receiver) = mpsc::channel();
    let (commit_tx, commits) = watch::channel(0u64);
    let sink = Arc::new(OnceLock::new());
    let space = Arc::new(DiskSpace::new(path));
    let (thread_sink, thread_space) = (Arc::clone(&sink), Arc::clone(&space));
    let thread = std::thread::Builder::new()
        .name("gatehouse-writer".into())
        .spawn(move || {
            let writer = Writer {
                slot: &slot,
                sink: &thread_sink,
                space: &thread_space,
                last_reopen: Cell::new(None),
            };
            writer.run(&receiver, &commit_tx, max_batch.max(1));
        })
        .map_err(StoreError::WriterStart)?;
    let thread = Arc::new(Mutex::new(Some(thread)));
    Ok(WriterHandle { sender, commits, thread, sink, space })
}

impl WriterHandle {
    pub async fn submit<T, E, F>(&self, f: F, durable: bool) -> Result<T, E>
    where
        F: Fn(&WriteTx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job = TypedJob { f, durable, result: None, reply };
        if self.sender.send(Msg::Job(Box::new(job))).is_err() {
            return Err(E::from(StoreError::WriterGone));
        }
        rx.await.unwrap_or_else(|_| Err(E::from(StoreError::WriterGone)))
    }

    pub fn submit_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: Fn(&WriteTx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job = TypedJob { f, durable: true, result: None, reply };
        if self.sender.send(Msg::Job(Box::new(job))).is_err() {
            return Err(E::from(StoreError::WriterGone));
        }
        rx.blocking_recv().unwrap_or_else(|_| Err(E::from(StoreError::WriterGone)))
    }

    pub fn commits(&self) -> watch::Receiver<u64> {
        self.commits.clone()
    }

    /// Installs the receiver of commit effects; `false` if one is installed already.
    pub fn set_effect_sink(&self, sink: EffectSink) -> bool {
        self.sink.set(sink).is_ok()
    }

    /// The free space the writer watches and the reserve it keeps.
    pub fn disk_space(&self) -> &Arc<DiskSpace> {
        &self.space
    }

    /// Lets the writer finish what is queued, then joins it.
    pub fn shutdown(&self) {
        let _ = self.sender.send(Msg::Shutdown);
        if let Some(handle) = self.thread.lock().take() {
            let _ = handle.join();
        }
    }
}

/// The writer thread's view: the database, where commit effects go, and the disk space.
struct Writer<'a> {
    slot: &'a DbSlot,
    sink: &'a OnceLock<EffectSink>,
    space: &'a DiskSpace,
    /// When the file was last (re)opened after a failure.
    last_reopen: Cell<Option<Instant>>,
}

impl Writer<'_> {
    fn run(&self, receiver: &mpsc::Receiver<Msg>, commits: &watch::Sender<u64>, max_batch: usize) {
        let mut done = false;
        // When the oldest commit not yet on disk was made (relaxed commits only).
        let mut unflushed_since: Option<Instant> = None;
        while !done {
            let first = match unflushed_since {
                None => match receiver.recv() {
                    Ok(m) => m,
                    Err(_) => return,
                },
                Some(since) => {
                    let wait = FLUSH_INTERVAL.saturating_sub(since.elapsed());
                    match receiver.recv_timeout(wait) {
                        Ok(m) => m,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            self.flush(&mut unflushed_since);
                            continue;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => {
                            self.flush(&mut unflushed_since);
                            return;
                        }
                    }
                }
            };
            let mut batch: Vec<Box<dyn Job>> = Vec::new();
            match first {
                Msg::Job(j) => batch.push(j),
                Msg::Shutdown => {
                    self.flush(&mut unflushed_since);
                    return;
                }
            }
            while batch.len() < max_batch {
                match receiver.try_recv() {
                    Ok(Msg::Job(j)) => batch.push(j),
                    Ok(Msg::Shutdown) => {
                        done = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            let overdue = unflushed_since.is_some_and(|t| t.elapsed() >= FLUSH_INTERVAL);
            let durable = done || overdue || batch.iter().any(|j| j.durable());
            let durability = if durable { Durability::Immediate } else { Durability::None };
            match self.run_batch(batch, durability) {
                Ok(()) if durable => unflushed_since = None,
                Ok(()) => {
                    unflushed_since.get_or_insert_with(Instant::now);
                }
                // The file was reopened (see `fail`): relaxed commits not yet on disk went with
                // the old handle.
                Err(e) if e.needs_reopen() => unflushed_since = None,
                Err(_) => {}
            }
            commits.send_modify(|n| *n += 1);
        }
        self.flush(&mut unflushed_since);
    }

    /// Runs and commits one batch. The effects of the committed mutations go to the sink
    /// before any of them is answered.
    fn run_batch(
        &self,
        batch: Vec<Box<dyn Job>>,
        durability: Durability,
    ) -> Result<(), Arc<StoreError>> {
        if let Err(e) = self.ready(batch.len()) {
            return Err(fail_all(batch, e));
        }
        let db = match self.slot.current() {
            Ok(db) => db,
            Err(e) => return Err(fail_all(batch, e)),
        };
        let mut succeeded: Vec<Box<dyn Job>> = Vec::with_capacity(batch.len());
        let mut tx = match begin(&db, durability) {
            Ok(tx) => tx,
            Err(e) => return Err(self.fail(db, batch, e)),
        };
        for mut job in batch {
            if job.run(&tx) {
                succeeded.push(job);
                continue;
            }
            // Discard everything this transaction holds, answer the failed job, then replay the
            // jobs that had succeeded so far in a fresh transaction.
            job.finish(Ok(()));
            let (raw, _) = tx.into_parts();
            let _ = raw.abort();
            tx = match replay(&db, &mut succeeded, durability) {
                Ok(tx) => tx,
                Err(e) => return Err(self.fail(db, succeeded, e)),
            };
        }
        let (raw, effects) = tx.into_parts();
        let commit = raw.commit().map_err(|e| Arc::new(StoreError::from(e)));
        self.space.note_commit(commit.as_ref().map(|_| ()).map_err(AsRef::as_ref), succeeded.len());
        if let Err(e) = &commit {
            if e.needs_reopen() {
                // Before anyone is answered, so that no answered client reads the failed file.
                drop(db);
                self.reopen(e);
            }
        }
        if commit.is_ok() && !effects.is_empty() {
            match self.sink.get() {
                Some(sink) => sink(effects),
                None => tracing::debug!(count = effects.len(), "commit effects without a sink"),
            }
        }
        for job in succeeded {
            job.finish(commit.as_ref().map(|_| ()));
        }
        commit
    }

    /// Answers `jobs` with `err`, after reopening the file if `err` is a latched I/O failure.
    fn fail(&self, db: Arc<Database>, jobs: Vec<Box<dyn Job>>, err: StoreError) -> Arc<StoreError> {
        if err.needs_reopen() {
            drop(db);
            self.reopen(&err);
        }
        fail_all(jobs, err)
    }

    /// Whether a batch may run: the file is open (opening it again if an earlier attempt
    /// failed and [`REOPEN_EVERY`] has passed) and the free space is above the reserve.
    fn ready(&self, jobs: usize) -> Result<(), StoreError> {
        if !self.slot.is_open() {
            let due = self.last_reopen.get().is_none_or(|t| t.elapsed() >= REOPEN_EVERY);
            if !due {
                return Err(StoreError::Reopening);
            }
            self.reopen(&StoreError::Reopening);
            if !self.slot.is_open() {
                return Err(StoreError::Reopening);
            }
        }
        self.space.admit(jobs)
    }

    /// Closes and reopens the file after `cause` (an I/O failure redb has latched).
    fn reopen(&self, cause: &StoreError) {
        self.last_reopen.set(Some(Instant::now()));
        tracing::warn!(error = %cause, "reopening the data file after an I/O failure");
        match self.slot.reopen() {
            Ok(()) => tracing::warn!("the data file is open again"),
            Err(e) => tracing::error!(
                error = %e,
                "cannot open the data file again; retrying before the next write"
            ),
        }
    }

    /// Makes relaxed commits durable with an empty durable commit.
    fn flush(&self, unflushed_since: &mut Option<Instant>) {
        if unflushed_since.is_none() {
            return;
        }
        let result = self
            .slot
            .current()
            .and_then(|db| begin(&db, Durability::Immediate))
            .and_then(|tx| Ok(tx.into_parts().0.commit()?));
        match result {
            Ok(()) => *unflushed_since = None,
            Err(e) => {
                tracing::error!(error = %e, "flushing relaxed commits failed");
                if e.needs_reopen() {
                    *unflushed_since = None;
                    self.reopen(&e);
                }
            }
        }
    }
}

fn begin(db: &Database, durability: Durability) -> Result<WriteTx, StoreError> {
    let mut tx = db.begin_write()?;
    tx.set_durability(durability)?;
    Ok(WriteTx::new(tx))
}

/// Re-runs `jobs` in a new transaction; a job that now fails is answered and dropped.
fn replay(
    db: &Database,
    jobs: &mut Vec<Box<dyn Job>>,
    durability: Durability,
) -> Result<WriteTx, StoreError> {
    loop {
        let tx = begin(db, durability)?;
        let mut failed_at = None;
        for (i, job) in jobs.iter_mut().enumerate() {
            if !job.run(&tx) {
                failed_at = Some(i);
                break;
            }
        }
        let Some(i) = failed_at else { return Ok(tx) };
        let (raw, _) = tx.into_parts();
        let _ = raw.abort();
        let job = jobs.remove(i);
        job.finish(Ok(()));
    }
}

/// Answers every job with `err`, and returns it.
fn fail_all(jobs: Vec<Box<dyn Job>>, err: StoreError) -> Arc<StoreError> {
    let err = Arc::new(err);
    for job in jobs {
        job.finish(Err(&err));
    }
    err
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
