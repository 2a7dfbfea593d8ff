//! Application assembly: opens the store, prepares TLS, builds the endpoint, serves, and shuts
//! down in order (stop accepting, finish requests, flush, close the data file).

mod certs;
mod jobs;
mod perms;
pub mod sd_notify;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use poem::listener::{Acceptor as _, Listener as _, TcpListener};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::crypto::{self, SecretKey};
use crate::services::Services;
use crate::store::{Store, StoreError};
use crate::workers::Workers;

pub use certs::{forget_ca, CertManager};

/// Why the application could not start. Printed as one line; exit code 1.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    MasterKey(#[from] crypto::MasterKeyError),
    #[error("data file: {0}")]
    Store(#[from] StoreError),
    #[error("tls: {0}")]
    Tls(String),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Services(#[from] crate::services::ServicesError),
    #[error("initial account: {0}")]
    Bootstrap(String),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    let context = context.into();
    move |source| StartError::Io { context, source }
}

/// How to start.
pub struct Options {
    pub config: Config,
    pub master_key_file: Option<PathBuf>,
    /// `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`).
    pub credentials_dir: Option<PathBuf>,
    /// The process environment, for settings that are not config keys (`GATEHOUSE_ADMIN_*`).
    pub env: BTreeMap<String, String>,
}

/// A running server.
pub struct Running {
    pub local_addr: SocketAddr,
    pub ca_pem_path: PathBuf,
    pub state: Arc<Services>,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
    /// The background tasks (periodic jobs, certificate renewal), stopped after the server.
    workers: Workers,
    /// How long the server may take to finish requests, and the workers their current run.
    grace: Duration,
}

/// Opens the data file with the master key (creating both on first start).
pub fn open_store(
    config: &Config,
    opts_key: Option<&Path>,
    credentials_dir: Option<&Path>,
) -> Result<(Store, SecretKey, crate::store::StoreInfo), StartError> {
    let data_dir = &config.server.data_dir;
    perms::private_dir(data_dir)?;
    let (master, _) = crypto::load_or_create_master_key(opts_key, credentials_dir, data_dir)?;
    let max_batch = usize::try_from(config.storage.max_batch).unwrap_or(256);
    let data_file = data_dir.join("gatehouse.redb");
    perms::private_file(&data_file)?;
    let migrations = crate::services::schema::MIGRATIONS;
    let (store, info) =
        Store::open(&data_file, &master, config.storage.cache_size_mb, max_batch, migrations)?;
    store.disk_space().set_reserve(config.storage.min_free_disk_mb.saturating_mul(1 << 20));
    Ok((store, master, info))
}

/// Starts serving; returns once the socket is bound.
pub async fn start(opts: Options) -> Result<Running, StartError> {
    let config = Arc::new(opts.config);
    let (store, master, info) =
        open_store(&config, opts.master_key_file.as_deref(), opts.credentials_dir.as_deref())?;
    let data_dir = config.server.data_dir.clone();
    bootstrap_admin(&store, &opts.env, &data_dir).await?;
    let state =
        Services::start(Arc::clone(&config), store.clone(), master, info.instance_id).await?;
    let logs = Arc::clone(&state.logs);

    let certs = CertManager::prepare(&state).await?;
    let ca_pem_path = data_dir.join("ca.pem");
    write_public_file(&ca_pem_path, certs.ca_pem().as_bytes())?;

    let workers = Workers::new();
    jobs::register(&workers, &state);
    crate::logs::retention::register(&workers, logs, store.clone());
    let endpoint = crate::api::build(Arc::clone(&state));
    let addr = config.listen_addr()?;
    let tcp = TcpListener::bind(addr)
        .into_acceptor()
        .await
        .map_err(io_err(format!("cannot listen on {addr}")))?;
    let local_addr = tcp
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .ok_or_else(|| StartError::Tls("listener has no socket address".into()))?;
    state.listener.bound(local_addr);
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let grace = Duration::from_secs(config.server.shutdown_timeout_seconds);
    let signal = async move {
        let _ = shutdown_rx.await;
    };
    let server = if config.server.insecure_http {
        tokio::spawn(poem::Server::new_with_acceptor(tcp).run_with_graceful_shutdown(
            endpoint,
            signal,
            Some(grace),
        ))
    } else {
        let handshake = Duration::from_secs(config.tls.handshake_timeout_seconds);
        let acceptor = crate::tls::TlsAcceptor::new(tcp, certs.swap(), handshake);
        certs.register_renewal(&workers, Arc::clone(&state));
        tokio::spawn(poem::Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
            endpoint,
            signal,
            Some(grace),
        ))
    };
    Ok(Running {
        local_addr,
        ca_pem_path,
        state,
        shutdown: Some(shutdown_tx),
        server,
        workers,
        grace,
    })
}

/// Creates the first staff account on a start with no users. A generated password is written
/// to its file only: stdout is the journal under systemd.
async fn bootstrap_admin(
    store: &Store,
    env: &BTreeMap<String, String>,
    data_dir: &Path,
) -> Result<(), StartError> {
    use crate::auth::bootstrap::{ensure_admin, Bootstrapped, PASSWORD_FILE};
    let (store, env, dir) = (store.clone(), env.clone(), data_dir.to_path_buf());
    let done = tokio::task::spawn_blocking(move || ensure_admin(&store, &env, &dir))
        .await
        .map_err(|e| StartError::Bootstrap(e.to_string()))?
        .map_err(|e| StartError::Bootstrap(e.message))?;
    match done {
        Bootstrapped::Existing => {}
        Bootstrapped::Configured { email } => {
            tracing::info!(email = %email, "created the initial staff account");
        }
        Bootstrapped::Generated { email, password: _ } => {
            println!(
                "Initial staff account: {email}; its password is in {} (mode 0600), removed \
                 once the password is changed",
                data_dir.join(PASSWORD_FILE).display()
            );
        }
    }
    Ok(())
}

/// Writes a non-secret file atomically (temp file, then rename), mode 0644.
fn write_public_file(path: &Path, bytes: &[u8]) -> Result<(), StartError> {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io_err(format!("cannot write {}", tmp.display())))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))
        .map_err(io_err(format!("cannot chmod {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io_err(format!("cannot write {}", path.display())))
}

impl Running {
    /// Stops accepting, lets requests in flight finish (up to the configured grace), stops the
    /// background tasks, and closes the data file after the writer drained.
    pub async fn shutdown(mut self) {
        self.state.listener.stopped();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.finish().await;
    }

    /// Serves until SIGTERM or SIGINT (handlers installed by [`StopSignals::install`] before
    /// the server was announced), then shuts down.
    pub async fn run_until_signal(mut self, signals: StopSignals) {
        signals.wait().await;
        tracing::info!("shutting down");
        self.state.listener.stopped();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.finish().await;
    }

    /// The stop order, in one place; each step needs the ones before it:
    /// 1. server stopped: no request is in flight, so nothing new is queued by a handler;
    /// 2. workers stopped: cancelled, a job run in progress finishes (up to the grace, then it
    ///    is aborted and named in the log); they hold the state, and so the data file, which a
    ///    restart in the same process must find unlocked;
    /// 3. credential usage and failed-login audit records flushed (nothing adds to them now);
    /// 4. request-log pipeline drained and the search index committed (its own thread, joined);
    /// 5. store closed, after its writer drained.
    async fn finish(self) {
        if let Err(e) = self.server.await.unwrap_or_else(|e| Err(std::io::Error::other(e))) {
            tracing::warn!(error = %e, "server ended with an error");
        }
        self.state.deployments.shutdown().await;
        self.workers.shutdown(self.grace).await;
        if let Err(e) = self.state.credentials.flush_usage(&self.state.store).await {
            tracing::warn!(error = %e, "credential usage flush failed");
        }
        if let Err(e) = self.state.credentials.flush_failures(&self.state.store).await {
            tracing::warn!(error = %e, "failed-login audit flush failed");
        }
        if let Err(e) = self.state.deployments.flush_usage().await {
            tracing::warn!(error = %e, "deployment usage flush failed");
        }
        let logs = Arc::clone(&self.state.logs);
        let _ = tokio::task::spawn_blocking(move || logs.shutdown()).await;
        let store = self.state.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
        tracing::info!("stopped");
    }
}

/// SIGTERM and SIGINT handlers. Installed before the server announces itself, so a signal sent
/// right after the announcement shuts down cleanly instead of meeting the default action.
pub struct StopSignals {
    handlers: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl StopSignals {
    /// Installs the handlers (inside the runtime).
    pub fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        let handlers = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(term), Ok(int)) => Some((term, int)),
            _ => None,
        };
        Self { handlers }
    }

    async fn wait(self) {
        let Some((mut term, mut int)) = self.handlers else {
            // Without signal handlers the only way out is the process being killed.
            std::future::pending::<()>().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    }
}
