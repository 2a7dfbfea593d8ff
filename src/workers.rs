//! The background task runtime: every long-running task, periodic job and bounded work queue is
//! registered on one [`Workers`] under a name, watches one [`CancellationToken`], and is stopped
//! by [`Workers::shutdown`] in an orderly way (cancel, wait up to a grace period, and only then
//! abort, naming the task that overran). Depends on nothing else in the crate.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
pub use tokio_util::sync::CancellationToken;

/// The shortest period [`Workers::every`] accepts: a zero period would make tokio's interval
/// panic, and nothing here needs to run more often.
const MIN_PERIOD: Duration = Duration::from_millis(1);

/// A named task.
struct Task {
    name: &'static str,
    handle: JoinHandle<()>,
}

/// The registered background tasks and the token that stops them.
///
/// Registration takes `&self`, so a part that starts later can be handed a reference. Dropping a
/// `Workers` without [`shutdown`](Self::shutdown) (a start that failed half-way) still cancels
/// the token, so no task outlives it by more than the job it is running.
pub struct Workers {
    token: CancellationToken,
    tasks: Mutex<Vec<Task>>,
}

impl Default for Workers {
    fn default() -> Self {
        Self::new()
    }
}

impl Workers {
    pub fn new() -> Self {
        Self { token: CancellationToken::new(), tasks: Mutex::new(Vec::new()) }
    }

    /// Starts a long-running task. It gets the token and must return soon after it is
    /// cancelled; if it does not within the grace of [`shutdown`](Self::shutdown), it is
    /// aborted.
    pub fn spawn<F, Fut>(&self, name: &'static str, f: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(f(self.token.clone()));
        self.tasks.lock().push(Task { name, handle });
    }

    /// Runs `job` after `first_delay`, then every `period` from there. A run that overruns the
    /// period skips the ticks it missed (no burst of catch-up runs): the next run comes at the
    /// next multiple of `period`. Waiting between runs ends at once on cancellation; a run in
    /// progress is never interrupted here, so a job that writes finishes its write. A job with
    /// many steps may check the token it is given between them.
    pub fn every<F, Fut>(&self, name: &'static str, first_delay: Duration, period: Duration, job: F)
    where
        F: FnMut(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.spawn(name, move |token| periodic(token, first_delay, period, job));
    }

    /// Starts a worker that hands the items of a bounded queue to `handler`, one at a time and
    /// in order. On cancellation the queue stops accepting and the worker handles what was
    /// already queued before it returns, so an accepted item is not lost by a shutdown that
    /// keeps to its grace.
    pub fn queue<T, F, Fut>(
        &self,
        name: &'static str,
        capacity: usize,
        handler: F,
    ) -> QueueSender<T>
    where
        T: Send + 'static,
        F: FnMut(T) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        // tokio's channel panics on a zero capacity; one slot is the smallest real queue.
        let (tx, rx) = mpsc::channel(capacity.max(1));
        self.spawn(name, move |token| drain_queue(token, rx, handler));
        QueueSender { name, tx }
    }

    /// Stops every task: cancels the token, waits for each task until `grace` has passed
    /// (shared by all, counted from this call), then aborts and logs the ones still running.
    /// Returns once every task has ended, so whatever they hold (the store) is released.
    pub async fn shutdown(self, grace: Duration) {
        self.token.cancel();
        let deadline = Instant::now() + grace;
        let tasks = std::mem::take(&mut *self.tasks.lock());
        for Task { name, mut handle } in tasks {
            let ended = match tokio::time::timeout_at(deadline, &mut handle).await {
                Ok(ended) => ended,
                Err(_) => {
                    tracing::warn!(
                        name,
                        grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
                        "worker did not stop within the shutdown grace; aborting it"
                    );
                    handle.abort();
                    // Wait for the abort to take effect: the task is dropped (with what it
                    // holds) only at its next await point.
                    handle.await
                }
            };
            if let Err(e) = ended {
                if e.is_panic() {
                    tracing::error!(name, "worker panicked");
                }
            }
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

async fn periodic<F, Fut>(
    token: CancellationToken,
    first_delay: Duration,
    period: Duration,
    mut job: F,
) where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tick = tokio::time::interval_at(Instant::now() + first_delay, period.max(MIN_PERIOD));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        // Biased: once cancelled, a tick that is also due must not start another run.
        tokio::select! {
            biased;
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        job(token.clone()).await;
    }
}

async fn drain_queue<T, F, Fut>(token: CancellationToken, mut rx: mpsc::Receiver<T>, mut handler: F)
where
    F: FnMut(T) -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        let item = tokio::select! {
            biased;
            _ = token.cancelled() => break,
            item = rx.recv() => item,
        };
        match item {
            Some(item) => handler(item).await,
            // Every sender is gone: nothing more can arrive.
            None => return,
        }
    }
    // Refuse new items, then handle the ones accepted before the stop.
    rx.close();
    while let Some(item) = rx.recv().await {
        handler(item).await;
    }
}

/// The sending side of a [`Workers::queue`]. Cheap to clone.
pub struct QueueSender<T> {
    name: &'static str,
    tx: mpsc::Sender<T>,
}

impl<T> Clone for QueueSender<T> {
    fn clone(&self) -> Self {
        Self { name: self.name, tx: self.tx.clone() }
    }
}

impl<T> QueueSender<T> {
    /// Queues `item` without waiting. A full queue or a stopped worker is refused at once, with
    /// the item handed back, so the caller can answer "busy, retry later".
    pub fn try_send(&self, item: T) -> Result<(), QueueError<T>> {
        self.tx.try_send(item).map_err(|e| match e {
            mpsc::error::TrySendError::Full(item) => {
                QueueError { queue: self.name, reason: QueueRefusal::Full, item }
            }
            mpsc::error::TrySendError::Closed(item) => {
                QueueError { queue: self.name, reason: QueueRefusal::Stopped, item }
            }
        })
    }

    /// The queue's name, as given to [`Workers::queue`].
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// Why a queue refused an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueRefusal {
    /// The queue holds `capacity` items already.
    Full,
    /// The worker has stopped (shutdown).
    Stopped,
}

/// An item a queue refused, with the reason and the item itself.
pub struct QueueError<T> {
    pub queue: &'static str,
    pub reason: QueueRefusal,
    item: T,
}

impl<T> QueueError<T> {
    /// The refused item, for the caller to retry or report.
    pub fn into_inner(self) -> T {
        self.item
    }
}

// By hand: the item need not be `Debug`, and it is left out of logs.
impl<T> fmt::Debug for QueueError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueError")
            .field("queue", &self.queue)
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for QueueError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            QueueRefusal::Full => write!(f, "the {} queue is full", self.queue),
            QueueRefusal::Stopped => write!(f, "the {} queue is stopped", self.queue),
        }
    }
}

impl<T> std::error::Error for QueueError<T> {}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    use tokio::sync::Semaphore;

    use super::*;

    /// Polls `cond` until it holds or a generous deadline passes (the machine may be loaded).
    async fn eventually(cond: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    #[tokio::test]
    async fn periodic_job_runs_repeatedly_and_stops_on_shutdown() {
        let workers = Workers::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let r = Arc::clone(&runs);
        workers.every("tick", Duration::ZERO, Duration::from_millis(10), move |_| {
            let r = Arc::clone(&r);
            async move {
                r.fetch_add(1, Ordering::SeqCst);
            }
        });
        assert!(eventually(|| runs.load(Ordering::SeqCst) >= 3).await);
        workers.shutdown(Duration::from_secs(5)).await;
        let after = runs.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(runs.load(Ordering::SeqCst), after, "the job ran after shutdown");
    }

    #[tokio::test]
    async fn waiting_between_runs_ends_at_once_on_shutdown() {
        let workers = Workers::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let r = Arc::clone(&runs);
        // First run now, the next in an hour: shutdown must not wait for it (nor the grace).
        workers.every("hourly", Duration::ZERO, Duration::from_secs(3600), move |_| {
            let r = Arc::clone(&r);
            async move {
                r.fetch_add(1, Ordering::SeqCst);
            }
        });
        assert!(eventually(|| runs.load(Ordering::SeqCst) == 1).await);
        let started = std::time::Instant::now();
        workers.shutdown(Duration::from_secs(30)).await;
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn first_delay_is_kept() {
        let workers = Workers::new();
        let ran = Arc::new(AtomicBool::new(false));
        let r = Arc::clone(&ran);
        workers.every("later", Duration::from_secs(3600), Duration::from_secs(3600), move |_| {
            let r = Arc::clone(&r);
            async move { r.store(true, Ordering::SeqCst) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        workers.shutdown(Duration::from_secs(5)).await;
        assert!(!ran.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_run_in_progress_is_not_aborted() {
        let workers = Workers::new();
        let started = Arc::new(AtomicBool::new(false));
        let finished = Arc::new(AtomicBool::new(false));
        let (s, f) = (Arc::clone(&started), Arc::clone(&finished));
        workers.every("slow", Duration::ZERO, Duration::from_secs(3600), move |_| {
            let (s, f) = (Arc::clone(&s), Arc::clone(&f));
            async move {
                s.store(true, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
                f.store(true, Ordering::SeqCst);
            }
        });
        assert!(eventually(|| started.load(Ordering::SeqCst)).await);
        workers.shutdown(Duration::from_secs(10)).await;
        assert!(finished.load(Ordering::SeqCst), "the run was cut short");
    }

    /// Sets its flag when dropped: shows that an aborted task was dropped before shutdown
    /// returned.
    struct DropFlag(Arc<AtomicBool>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_task_ignoring_the_token_is_aborted_after_the_grace() {
        let workers = Workers::new();
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = DropFlag(Arc::clone(&dropped));
        workers.spawn("stubborn", move |_token| async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        });
        let polite = Arc::new(AtomicBool::new(false));
        let p = Arc::clone(&polite);
        workers.spawn("polite", move |token| async move {
            token.cancelled().await;
            p.store(true, Ordering::SeqCst);
        });
        let started = std::time::Instant::now();
        workers.shutdown(Duration::from_millis(100)).await;
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(dropped.load(Ordering::SeqCst), "the stubborn task is still alive");
        assert!(polite.load(Ordering::SeqCst), "the polite task did not see the cancellation");
    }

    #[tokio::test]
    async fn dropping_workers_cancels_the_token() {
        let workers = Workers::new();
        let stopped = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stopped);
        workers.spawn("watcher", move |token| async move {
            token.cancelled().await;
            s.store(true, Ordering::SeqCst);
        });
        drop(workers);
        assert!(eventually(|| stopped.load(Ordering::SeqCst)).await);
    }

    #[tokio::test]
    async fn queue_delivers_in_order() {
        let workers = Workers::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        let tx = workers.queue("jobs", 16, move |n: u32| {
            let s = Arc::clone(&s);
            async move { s.lock().push(n) }
        });
        for n in 1..=10 {
            assert!(tx.try_send(n).is_ok());
        }
        assert!(eventually(|| seen.lock().len() == 10).await);
        assert_eq!(*seen.lock(), (1..=10).collect::<Vec<_>>());
        workers.shutdown(Duration::from_secs(5)).await;
    }

    #[tokio::test]
    async fn queue_refuses_when_full_and_drains_on_shutdown() {
        let workers = Workers::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        // The handler takes one permit per item: none at first, so the first item blocks it.
        let gate = Arc::new(Semaphore::new(0));
        let (s, g) = (Arc::clone(&seen), Arc::clone(&gate));
        let tx = workers.queue("backups", 2, move |n: u32| {
            let (s, g) = (Arc::clone(&s), Arc::clone(&g));
            async move {
                s.lock().push(n);
                if let Ok(permit) = g.acquire().await {
                    permit.forget();
                }
            }
        });
        assert!(tx.try_send(1).is_ok());
        assert!(eventually(|| seen.lock().len() == 1).await, "the worker did not take item 1");
        assert!(tx.try_send(2).is_ok());
        assert!(tx.try_send(3).is_ok());
        let refused = tx.try_send(4).err();
        let refused = refused.map(|e| (e.reason, e.to_string(), e.into_inner()));
        assert_eq!(refused, Some((QueueRefusal::Full, "the backups queue is full".to_string(), 4)));

        let stopping = tokio::spawn(workers.shutdown(Duration::from_secs(10)));
        // Shutdown has cancelled the worker while item 1 is in progress; once it may go on,
        // it must still handle 2 and 3, which were accepted before the stop.
        tokio::time::sleep(Duration::from_millis(50)).await;
        gate.add_permits(10);
        assert!(stopping.await.is_ok());
        assert_eq!(*seen.lock(), vec![1, 2, 3]);
        let after = tx.try_send(5).err().map(|e| e.reason);
        assert_eq!(after, Some(QueueRefusal::Stopped));
    }
}
