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
}

pub fn spawn(db: Arc<Database>, max_batch: usize) -> Result<WriterHandle, StoreError> {
    let (sender, receiver) = mpsc::channel();
    let (commit_tx, commits) = watch::channel(0u64);
    let sink = Arc::new(OnceLock::new());
    let thread_sink = Arc::clone(&sink);
    let thread = std::thread::Builder::new()
        .name("gatehouse-writer".into())
        .spawn(move || {
            let writer = Writer { db: &db, sink: &thread_sink };
            writer.run(&receiver, &commit_tx, max_batch.max(1));
        })
        .map_err(StoreError::WriterStart)?;
    Ok(WriterHandle { sender, commits, thread: Arc::new(Mutex::new(Some(thread))), sink })
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

    /// Lets the writer finish what is queued, then joins it.
    pub fn shutdown(&self) {
        let _ = self.sender.send(Msg::Shutdown);
        if let Some(handle) = self.thread.lock().take() {
            let _ = handle.join();
        }
    }
}

/// The writer thread's view: the database and where commit effects go.
struct Writer<'a> {
    db: &'a Database,
    sink: &'a OnceLock<EffectSink>,
}

impl Writer<'_> {
    fn run(&self, receiver: &mpsc::Receiver<Msg>, commits: &watch::Sender<u64>, max_batch: usize) {
        let db = self.db;
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
                            flush(db, &mut unflushed_since);
                            continue;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => {
                            flush(db, &mut unflushed_since);
                            return;
                        }
                    }
                }
            };
            let mut batch: Vec<Box<dyn Job>> = Vec::new();
            match first {
                Msg::Job(j) => batch.push(j),
                Msg::Shutdown => {
                    flush(db, &mut unflushed_since);
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
            if self.run_batch(batch, durability) {
                if durable {
                    unflushed_since = None;
                } else if unflushed_since.is_none() {
                    unflushed_since = Some(Instant::now());
                }
            }
            commits.send_modify(|n| *n += 1);
        }
        flush(db, &mut unflushed_since);
    }

    /// Runs and commits one batch; `true` if the commit succeeded. The effects of the committed
    /// mutations go to the sink before any of them is answered.
    fn run_batch(&self, batch: Vec<Box<dyn Job>>, durability: Durability) -> bool {
        let db = self.db;
        let mut succeeded: Vec<Box<dyn Job>> = Vec::with_capacity(batch.len());
        let mut tx = match begin(db, durability) {
            Ok(tx) => tx,
            Err(e) => {
                fail_all(batch, e);
                return false;
            }
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
            tx = match replay(db, &mut succeeded, durability) {
                Ok(tx) => tx,
                Err(e) => {
                    fail_all(succeeded, e);
                    return false;
                }
            };
        }
        let (raw, effects) = tx.into_parts();
        let commit = raw.commit().map_err(|e| Arc::new(StoreError::from(e)));
        let ok = commit.is_ok();
        if ok && !effects.is_empty() {
            match self.sink.get() {
                Some(sink) => sink(effects),
                None => tracing::debug!(count = effects.len(), "commit effects without a sink"),
            }
        }
        for job in succeeded {
            job.finish(commit.as_ref().map(|_| ()));
        }
        ok
    }
}

/// Makes relaxed commits durable with an empty durable commit.
fn flush(db: &Database, unflushed_since: &mut Option<Instant>) {
    if unflushed_since.is_none() {
        return;
    }
    match begin(db, Durability::Immediate).and_then(|tx| Ok(tx.into_parts().0.commit()?)) {
        Ok(()) => *unflushed_since = None,
        Err(e) => tracing::error!(error = %e, "flushing relaxed commits failed"),
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

fn fail_all(jobs: Vec<Box<dyn Job>>, err: StoreError) {
    let err = Arc::new(err);
    for job in jobs {
        job.finish(Err(&err));
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
