//! Running API deployments: the limits a call passes (per-deployment rate, per-organization
//! and global concurrency), the bounded worker pool that renders executions, waiting for a
//! result, batched usage counters, restart recovery and result retention.
//!
//! An accepted submission holds a concurrency [`limits::Slot`] from the moment it is stored
//! until its run ends, so the queue never holds more than `max_concurrent` jobs and a full
//! organization is refused before anything is written.

pub mod limits;
mod runner;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::ratelimit::Decision;
use crate::clock::{unix_now, unix_now_ms as now_ms};
use crate::config::DeploymentsConfig;
use crate::domain::deployments::api_deployments::Limits;
use crate::domain::deployments::executions::{self, Outcome, Submission};
use crate::domain::deployments::records::{Deployment, Execution, Usage};
use crate::domain::deployments::{api_deployments, template};
use crate::domain::secrets::Vault;
use crate::domain::{Error, ErrorCode};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::workers::{QueueSender, Workers};

use limits::{Concurrency, RateLimiter, Slot};

/// Executions removed per retention transaction.
const SWEEP_STEP: usize = 1000;

/// One queued run.
struct Job {
    execution_id: u64,
    deployment_id: u64,
    /// Released when the run ends.
    _slot: Slot,
}

/// What a caller submits.
#[derive(Debug, Clone)]
pub struct SubmitRequest {
    pub input: serde_json::Value,
    pub parameters: serde_json::Value,
    pub idempotency_key: Option<String>,
}

/// The deployments runtime, one per process.
pub struct DeploymentService {
    config: DeploymentsConfig,
    store: Store,
    vault: Arc<Vault>,
    metrics: Arc<Metrics>,
    rate: RateLimiter,
    concurrency: Arc<Concurrency>,
    queue: OnceLock<QueueSender<Job>>,
    /// Executions not yet final that someone may wait for: woken when they end.
    waiters: Mutex<HashMap<u64, Arc<Notify>>>,
    /// Usage increments not yet written (flushed every few seconds).
    usage: Mutex<HashMap<u64, Usage>>,
    /// Runs under way, and the signal that ends them at shutdown (left unfinished in the store,
    /// the next start marks them interrupted): a run must not keep the data file open.
    runs: TaskTracker,
    stopping: CancellationToken,
}

impl DeploymentService {
    pub fn new(
        config: DeploymentsConfig,
        store: Store,
        vault: Arc<Vault>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let concurrency = Concurrency::new(config.max_concurrent_per_org, config.max_concurrent);
        Self {
            config,
            store,
            vault,
            metrics,
            rate: RateLimiter::default(),
            concurrency,
            queue: OnceLock::new(),
            waiters: Mutex::new(HashMap::new()),
            usage: Mutex::new(HashMap::new()),
            runs: TaskTracker::new(),
            stopping: CancellationToken::new(),
        }
    }

    /// Ends the runs under way (their executions stay unfinished until the next start marks
    /// them interrupted) and waits until no run holds the store.
    pub async fn shutdown(&self) {
        self.stopping.cancel();
        self.runs.close();
        self.runs.wait().await;
    }

    /// Ends the executions a previous process left pending or running (before any worker
    /// starts): they can no longer finish, and must not stay `EXECUTING` forever.
    pub async fn recover(&self) -> Result<usize, Error> {
        let now = now_ms();
        self.store.write(move |tx| executions::interrupt_unfinished(tx, now)).await
    }

    /// Starts the worker pool: one queue (`queue_capacity`), at most `workers` runs at once.
    pub fn start(self: &Arc<Self>, workers: &Workers) {
        let permits = usize::try_from(self.config.workers).unwrap_or(1).max(1);
        let pool = Arc::new(Semaphore::new(permits));
        let capacity = usize::try_from(self.config.queue_capacity).unwrap_or(1024);
        let me = Arc::clone(self);
        let sender = workers.queue("deployment executions", capacity, move |job: Job| {
            let pool = Arc::clone(&pool);
            let me = Arc::clone(&me);
            async move {
                // Waiting for a permit holds the queue: it is the pool's backpressure.
                let Ok(permit) = pool.acquire_owned().await else { return };
                let runs = me.runs.clone();
                runs.spawn(async move {
                    if !me.stopping.is_cancelled() {
                        me.run(job).await;
                    }
                    drop(permit);
                });
            }
        });
        // A second start (tests build one service per server) keeps the first queue.
        let _ = self.queue.set(sender);
    }

    /// The server-wide limits a deployment's own settings default to.
    pub fn limits(&self) -> Limits {
        Limits {
            rate_limit_per_minute: self.config.rate_limit_per_minute,
            max_input_bytes: self.config.max_input_bytes,
            max_run_seconds: self.config.max_run_seconds,
        }
    }

    /// A deployment's usage as stored plus what is not yet flushed.
    pub fn usage_of(&self, stored: &Usage, id: u64) -> Usage {
        let mut u = stored.clone();
        if let Some(pending) = self.usage.lock().get(&id) {
            u.add(pending);
        }
        u
    }

    fn count(&self, deployment: u64, f: impl FnOnce(&mut Usage)) {
        let mut usage = self.usage.lock();
        let u = usage.entry(deployment).or_default();
        f(u);
        u.last_used_at = Some(unix_now());
    }

    /// Counts one call of a deployment (any route under its key).
    pub fn count_request(&self, deployment: u64) {
        self.count(deployment, |u| u.request_count += 1);
    }

    /// The deployment a key opens, if any (active or not).
    pub fn resolve_key(&self, key: &str) -> Result<Option<Deployment>, Error> {
        let now = unix_now();
        self.store.read(|tx| api_deployments::by_key(tx, key, now))
    }

    /// Counts one submission against the deployment's per-minute rate.
    pub fn check_rate(&self, d: &Deployment) -> Decision {
        self.rate.check(d.id, d.rate_limit_per_minute, unix_now())
    }

    /// Stores and queues an execution (or returns the first one of a repeated
    /// `Idempotency-Key`). 429 when a concurrency limit is full.
    pub async fn submit(&self, d: &Deployment, req: SubmitRequest) -> Result<Execution, Error> {
        let slot = self
            .concurrency
            .acquire(d.organization_id)
            .map_err(|busy| Error::new(ErrorCode::RateLimited, busy.message()))?;
        let submission = Submission {
            uuid: uuid::Uuid::new_v4().to_string(),
            deployment_id: d.id,
            organization_id: d.organization_id,
            input: req.input,
            parameters: req.parameters,
            idempotency_key: req.idempotency_key,
            now_ms: now_ms(),
        };
        let (execution, new) =
            self.store.write(move |tx| executions::create(tx, &submission)).await?;
        if !new {
            return Ok(execution);
        }
        self.count(d.id, |u| u.execution_count += 1);
        self.waiters.lock().insert(execution.id, Arc::new(Notify::new()));
        let job = Job { execution_id: execution.id, deployment_id: d.id, _slot: slot };
        let queued = match self.queue.get() {
            Some(q) => q.try_send(job).is_ok(),
            None => false,
        };
        if !queued {
            let failed = Outcome::Failed("the server could not queue the execution".into());
            self.record_outcome(execution.id, d.id, failed, 0).await;
            return Err(Error::new(
                ErrorCode::RateLimited,
                "The execution queue is full. Please try again in a few moments.",
            ));
        }
        Ok(execution)
    }

    /// Waits until execution `e` is final or `limit` passes; returns it as it then is.
    pub async fn wait(&self, e: Execution, limit: Duration) -> Result<Execution, Error> {
        if e.status.is_final() {
            return Ok(e);
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notify = self.waiters.lock().get(&e.id).cloned();
            let current = match notify {
                Some(notify) => {
                    let notified = notify.notified();
                    tokio::pin!(notified);
                    // Registered before the read below, so an end between the two still wakes.
                    notified.as_mut().enable();
                    let current = self.execution(e.deployment_id, &e.uuid)?;
                    if current.as_ref().is_none_or(|c| c.status.is_final()) {
                        current
                    } else if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        return Ok(current.unwrap_or(e));
                    } else {
                        continue;
                    }
                }
                None => self.execution(e.deployment_id, &e.uuid)?,
            };
            return Ok(current.unwrap_or(e));
        }
    }

    /// Execution `uuid` of deployment `deployment`.
    pub fn execution(&self, deployment: u64, uuid: &str) -> Result<Option<Execution>, Error> {
        self.store.read(|tx| executions::get(tx, deployment, uuid))
    }

    /// The result of a completed execution, opened.
    pub fn result_of(&self, e: &Execution) -> Result<Option<serde_json::Value>, Error> {
        let vault = &self.vault;
        self.store.read(|tx| executions::open_result(tx, vault, e))
    }

    /// Stops an execution that has not finished (`STOPPED`); its run, if one is under way,
    /// ends unrecorded.
    pub async fn stop(&self, deployment: u64, uuid: &str) -> Result<Execution, Error> {
        let (uuid_owned, now) = (uuid.to_string(), now_ms());
        let (e, stopped) =
            self.store.write(move |tx| executions::stop(tx, deployment, &uuid_owned, now)).await?;
        if stopped {
            self.metrics.execution_ended(e.organization_id, e.status.as_str());
        }
        self.wake(e.id);
        Ok(e)
    }

    fn wake(&self, id: u64) {
        if let Some(n) = self.waiters.lock().remove(&id) {
            n.notify_waiters();
        }
    }

    async fn run(&self, job: Job) {
        let started_at = Instant::now();
        let (id, now) = (job.execution_id, now_ms());
        // Relaxed (not waited to disk): the outcome's write, durable, follows; a crash before
        // it leaves the execution unfinished either way, and the next start ends it.
        let started = self.store.write_relaxed(move |tx| executions::start(tx, id, now)).await;
        let execution = match started {
            Ok(Some(e)) => e,
            Ok(None) => return self.wake(id),
            Err(e) => {
                tracing::error!(execution = id, error = %e, "an execution could not start");
                return self.wake(id);
            }
        };
        let vault = &self.vault;
        let context = self.store.read(|tx| runner::context(tx, vault, &execution));
        let outcome = match context {
            Ok(Ok(ctx)) => tokio::select! {
                outcome = self.render(ctx) => outcome,
                () = self.stopping.cancelled() => return,
            },
            Ok(Err(message)) => Outcome::Failed(message),
            Err(e) => {
                tracing::error!(execution = id, error = %e, "an execution's context could not be read");
                Outcome::Failed("the execution could not read its workflow".into())
            }
        };
        let ms = u64::try_from(started_at.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.record_outcome(id, job.deployment_id, outcome, ms).await;
    }

    async fn render(&self, ctx: runner::RunContext) -> Outcome {
        let limits = template::Limits {
            fuel: self.config.template_fuel,
            max_output_bytes: usize::try_from(self.config.max_output_bytes).unwrap_or(usize::MAX),
        };
        let timeout = ctx.timeout;
        let rendering = tokio::task::spawn_blocking(move || runner::render(&ctx, limits));
        match tokio::time::timeout(timeout, rendering).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Outcome::Failed("the run failed unexpectedly".into()),
            // The blocking render runs on until its fuel ends; its outcome is dropped.
            Err(_) => Outcome::Failed(format!(
                "the run took longer than its limit of {} s",
                timeout.as_secs()
            )),
        }
    }

    async fn record_outcome(&self, id: u64, deployment: u64, outcome: Outcome, ms: u64) {
        let failed = matches!(outcome, Outcome::Failed(_));
        let vault = Arc::clone(&self.vault);
        let now = now_ms();
        let r = self.store.write(move |tx| executions::finish(tx, &vault, id, &outcome, now)).await;
        match r {
            Ok(Some(e)) => self.metrics.execution_ended(e.organization_id, e.status.as_str()),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(execution = id, error = %e, "an execution's outcome could not be stored");
            }
        }
        self.count(deployment, |u| {
            u.finished_count += 1;
            u.total_execution_ms = u.total_execution_ms.saturating_add(ms);
            if failed {
                u.error_count += 1;
            }
        });
        self.wake(id);
    }

    /// Writes the batched usage increments.
    pub async fn flush_usage(&self) -> Result<(), Error> {
        let pending: Vec<(u64, Usage)> =
            std::mem::take(&mut *self.usage.lock()).into_iter().collect();
        if pending.is_empty() {
            return Ok(());
        }
        self.store.write(move |tx| api_deployments::add_usage(tx, &pending)).await
    }

    /// Removes executions older than `result_retention_hours`, in small transactions.
    pub async fn sweep(&self) -> Result<usize, Error> {
        let hours = i64::try_from(self.config.result_retention_hours).unwrap_or(i64::MAX / 4);
        let cutoff = now_ms().saturating_sub(hours.saturating_mul(3_600_000));
        let mut total = 0;
        loop {
            let n = self.store.write(move |tx| executions::sweep(tx, cutoff, SWEEP_STEP)).await?;
            total += n;
            if n < SWEEP_STEP {
                return Ok(total);
            }
        }
    }
}
