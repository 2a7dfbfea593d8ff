//! The services core: one [`Services`] value built at start from the opened store and the
//! configuration, holding every area the HTTP layer and the console call into (accounts and
//! organizations through the domain, credentials, secrets, the request log, metrics and,
//! later, protos, deployments and backups). The web layer depends on this and never on
//! `app`; `app` only wires config, store, services, TLS and the server.
//!
//! It also applies commit effects: the store hands every durable commit's effects to the sink
//! installed here, which dispatches each [`Effect`] to the area that owns it.

pub mod accounts;
pub mod backup;
pub mod deployments;
mod key_gauge;
pub mod listener;
pub mod password_change;
pub mod pats;
mod probe;
pub mod rotation;
pub mod schema;
pub mod two_factor;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::auth::jwt::JwtKeys;
use crate::auth::AuthService;
use crate::config::Config;
use crate::crypto::SecretKey;
use crate::domain::effects::Effect;
use crate::domain::secrets::Vault;
use crate::logs::LogService;
use crate::metrics::Metrics;
use crate::store::Store;

/// Everything a handler may need, shared by reference.
pub struct Services {
    pub config: Arc<Config>,
    pub store: Store,
    pub master: SecretKey,
    pub data_dir: PathBuf,
    pub started_at: Instant,
    /// Whether the HTTPS listener is accepting (set by `app`), its address and start.
    pub listener: listener::Listener,
    pub instance_id: String,
    /// The request-log pipeline and the log index.
    pub logs: Arc<LogService>,
    /// Secrets: master key, opened organization data keys, history settings.
    pub secrets: Arc<Vault>,
    /// Credential resolution, its cache, rate limits and lockout.
    pub credentials: Arc<AuthService>,
    /// Prometheus families and the per-organization views (fed by commit effects and the
    /// request-log layer).
    pub metrics: Arc<Metrics>,
    /// API deployments: limits, the execution worker pool, usage.
    pub deployments: Arc<deployments::DeploymentService>,
    /// Snapshots of the data file (on demand and scheduled).
    pub backup: Arc<backup::BackupService>,
}

/// Why the services could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    #[error("log index: {0}")]
    Logs(#[from] crate::logs::IndexError),
    #[error("credentials: {0}")]
    Credentials(crate::domain::Error),
    #[error("metrics start-up count: {0}")]
    Metrics(crate::domain::Error),
    #[error("deployments start-up: {0}")]
    Deployments(crate::domain::Error),
    #[error("configuration: {0}")]
    Config(String),
    #[error("a start-up task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl Services {
    /// Builds every service over an opened store and installs the commit-effect sink.
    pub async fn start(
        config: Arc<Config>,
        store: Store,
        master: SecretKey,
        instance_id: String,
    ) -> Result<Arc<Self>, ServicesError> {
        let data_dir = config.server.data_dir.clone();
        let logs = LogService::start(&store, &data_dir, &config.logs)?;
        let (jwt_store, jwt_master) = (store.clone(), master.clone());
        let jwt =
            tokio::task::spawn_blocking(move || JwtKeys::load_or_create(&jwt_store, &jwt_master))
                .await?
                .map_err(ServicesError::Credentials)?;
        let credentials = AuthService::new(jwt, &config).map_err(ServicesError::Credentials)?;
        let secrets = Arc::new(Vault::new(
            master.clone(),
            config.storage.variable_versions,
            config.storage.deleted_retention_days,
        ));
        let data_file = data_dir.join("gatehouse.redb");
        let backup_figures = Arc::new(backup::BackupFigures::default());
        let probe = probe::Probe::new(data_file, &logs, &store, Arc::clone(&backup_figures));
        let max_series = usize::try_from(config.metrics.max_series).unwrap_or(usize::MAX);
        let metrics = Arc::new(Metrics::new(max_series, Arc::new(probe)));
        let counts_store = store.clone();
        let counts = tokio::task::spawn_blocking(move || probe::count_objects(&counts_store))
            .await?
            .map_err(ServicesError::Metrics)?;
        for (org, kind, n) in counts {
            metrics.count(org, kind.into(), n);
        }
        let sink_credentials = Arc::clone(&credentials);
        let sink_metrics = Arc::clone(&metrics);
        store.set_effect_sink(Box::new(move |effects| {
            apply_effects(&sink_credentials, &sink_metrics, effects);
        }));
        let deployments = Arc::new(deployments::DeploymentService::new(
            config.deployments.clone(),
            store.clone(),
            Arc::clone(&secrets),
            Arc::clone(&metrics),
        ));
        let interrupted = deployments.recover().await.map_err(ServicesError::Deployments)?;
        if interrupted > 0 {
            tracing::warn!(
                executions = interrupted,
                "executions interrupted by the restart marked ERROR"
            );
        }
        let interval =
            config.backup.interval().map_err(|e| ServicesError::Config(e.to_string()))?;
        let backup = Arc::new(backup::BackupService::new(
            store.clone(),
            master.clone(),
            &data_dir,
            config.backup.keep,
            interval,
            backup_figures,
        ));
        backup.clean_leftovers();
        Ok(Arc::new(Self {
            deployments,
            backup,
            config,
            store,
            master,
            data_dir,
            started_at: Instant::now(),
            listener: listener::Listener::default(),
            instance_id,
            logs,
            secrets,
            credentials,
            metrics,
        }))
    }
}

/// Dispatches one commit's effects. Effects of a type this build does not know are a bug in
/// the mutation that queued them; they are logged, not applied.
fn apply_effects(credentials: &AuthService, metrics: &Metrics, effects: Vec<crate::store::Effect>) {
    let mut invalidate = false;
    for effect in effects {
        match effect.downcast::<Effect>() {
            Ok(effect) => match *effect {
                Effect::CredentialsChanged => invalidate = true,
                Effect::Counted { org, kind, delta } => metrics.count(org, kind.into(), delta),
                Effect::Audited { org, action } => metrics.audited(org, action.into()),
            },
            Err(_) => tracing::error!("a commit queued an effect of an unknown type"),
        }
    }
    // One cache flush per commit, however many credentials the batch changed.
    if invalidate {
        credentials.invalidate();
    }
}
