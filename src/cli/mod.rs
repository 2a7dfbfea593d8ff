//! The command line: `gatehouse [serve]`, `tls export-ca`, `tls new-ca`, `openapi`, `check`,
//! `admin rotate-master-key`, `jwt rotate`, `keys rotate-data-keys`.

mod admin;
mod backup;
mod check;
mod fetch;
mod progress;
mod reindex;
mod rotate;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError, Flags};

#[derive(Debug, Parser)]
#[command(
    name = "gatehouse",
    version,
    propagate_version = true,
    about = "Secrets, API credentials, request monitoring and published APIs in one HTTPS appliance"
)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags every subcommand accepts.
#[derive(Debug, Clone, Args, Default)]
pub struct CommonArgs {
    /// Directory holding the data file, master key, CA certificate and index [default: ./data]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8443]
    #[arg(long, global = true, value_name = "ADDR")]
    pub listen: Option<String>,
    /// TOML configuration file (see config/gatehouse.toml)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// File holding the 32-byte master key (hex or raw)
    #[arg(long, global = true, value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Serve plain HTTP (only on a loopback address)
    #[arg(long, global = true)]
    pub insecure_http: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API over HTTPS (the default)
    Serve,
    /// Check a stopped server's data: configuration, redb integrity, every record decodes,
    /// every sealed value opens, the search index agrees (exit code 1 on a problem)
    Check,
    /// Write a consistent snapshot of the data file to FILE: asks a running server through its
    /// API (staff login token from --token or GATEHOUSE_TOKEN), or copies a stopped server's
    /// file itself. The snapshot never contains the master key.
    Backup {
        /// Where to write the snapshot
        #[arg(long, short, value_name = "FILE")]
        output: PathBuf,
        /// Staff login token (or `Bearer <jwt>`) for a running server [env: GATEHOUSE_TOKEN]
        #[arg(long, value_name = "TOKEN")]
        token: Option<String>,
        /// The running server's base URL [default: from server.listen]
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// CA certificate to trust [default: DATA_DIR/ca.pem]
        #[arg(long, value_name = "FILE")]
        cacert: Option<PathBuf>,
        /// Replace FILE if it exists
        #[arg(long)]
        force: bool,
    },
    /// Rebuild the request-log search index from the data file now (stop the server first)
    Reindex,
    /// Put a snapshot in place of the data file (stop the server first): checks it opens with
    /// the master key, migrates an older schema, keeps the current file aside, and leaves the
    /// search index to be rebuilt at the next start
    Restore {
        /// The snapshot (from `gatehouse backup` or DATA_DIR/backups/)
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Print the OpenAPI document (JSON)
    Openapi,
    /// TLS utilities
    Tls {
        #[command(subcommand)]
        command: TlsCommand,
    },
    /// Administration of a stopped server's data file
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// JWT signing keys (stop the server first)
    Jwt {
        #[command(subcommand)]
        command: JwtCommand,
    },
    /// Organization data keys (stop the server first)
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum JwtCommand {
    /// Make a new signing key current. Tokens signed by the current key keep working until
    /// they expire; tokens signed by the key before it stop working. Run it twice to retire a
    /// leaked key at once.
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Give organizations new data keys and re-seal every value and history version under
    /// them, in small transactions; an interrupted run is resumed by running it again
    RotateDataKeys {
        /// Only this organization (default: every organization holding values)
        #[arg(long, value_name = "ID")]
        org: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an account (with its personal organization); the password is read from stdin
    CreateUser {
        #[arg(long)]
        email: String,
        /// Make the account staff (runs the whole appliance)
        #[arg(long)]
        staff: bool,
        /// Read the password from the first line of standard input
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Give an account a new random password (printed once); its tokens and sessions end
    ResetPassword {
        #[arg(long)]
        email: String,
    },
    /// Re-seal the organization data keys and sealed settings under a new master key (stop the
    /// server first). When the current key is DATA_DIR/master.key it is replaced by the new one.
    RotateMasterKey {
        /// File holding the new 32-byte master key (64 hex characters or raw), mode 0600
        #[arg(long, value_name = "FILE")]
        new_key_file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Print the local CA certificate (PEM), for `curl --cacert` and trust stores
    ExportCa,
    /// Forget the local CA so that the next start generates a new one, name-constrained to
    /// tls.hostnames (stop the server first; clients must then trust the new ca.pem)
    NewCa,
}

/// The process environment as a map (the only place that reads it).
pub fn process_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

pub fn load_config(
    common: &CommonArgs,
    env: &BTreeMap<String, String>,
) -> Result<Config, ConfigError> {
    let flags = Flags {
        data_dir: common.data_dir.clone(),
        listen: common.listen.clone(),
        insecure_http: common.insecure_http,
    };
    Config::from_sources(common.config.as_deref(), env, &flags)
}

/// Runs the parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let env = process_env();
    let config = match load_config(&cli.common, &env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            return ExitCode::from(2);
        }
    };
    crate::logging::init(&config);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config, &cli.common, env),
        Command::Check => check::check(&config, &cli.common, &env),
        Command::Backup { output, token, url, cacert, force } => backup::backup(
            &config,
            &cli.common,
            &env,
            backup::BackupArgs { output, token, url, cacert, force },
        ),
        Command::Reindex => reindex::reindex(&config, &cli.common, &env),
        Command::Restore { file } => backup::restore(&config, &cli.common, &env, &file),
        Command::Openapi => {
            println!("{}", crate::api::spec_json());
            Ok(())
        }
        Command::Tls { command: TlsCommand::ExportCa } => export_ca(&config),
        Command::Tls { command: TlsCommand::NewCa } => new_ca(&config, &cli.common, &env),
        Command::Jwt { command: JwtCommand::Rotate } => rotate_jwt(&config, &cli.common, &env),
        Command::Keys { command: KeysCommand::RotateDataKeys { org } } => {
            rotate_data_keys(&config, &cli.common, &env, org)
        }
        Command::Admin { command: AdminCommand::RotateMasterKey { new_key_file } } => {
            rotate::rotate_master_key(&config, &cli.common, &env, &new_key_file)
        }
        Command::Admin { command } => admin(&config, &cli.common, &env, command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gatehouse: {message}");
            ExitCode::from(1)
        }
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())
}

fn serve(config: Config, common: &CommonArgs, env: BTreeMap<String, String>) -> Result<(), String> {
    let rt = runtime()?;
    rt.block_on(async move {
        let scheme = if config.server.insecure_http { "http" } else { "https" };
        let credentials_dir = env.get("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        let systemd = crate::app::sd_notify::Systemd::from_env(&env);
        let opts = crate::app::Options {
            config,
            master_key_file: common.master_key_file.clone(),
            credentials_dir,
            env,
        };
        let started = std::time::Instant::now();
        let signals = crate::app::StopSignals::install();
        let running = crate::app::start(opts).await.map_err(|e| e.to_string())?;
        let addr = running.local_addr;
        let host = if addr.ip().is_unspecified() || addr.ip().is_loopback() {
            "127.0.0.1".to_string()
        } else {
            addr.ip().to_string()
        };
        println!("Gatehouse {} listening on {scheme}://{host}:{}/", crate::VERSION, addr.port());
        println!(
            "CA certificate: {} (curl --cacert {} {scheme}://{host}:{}/health/)",
            running.ca_pem_path.display(),
            running.ca_pem_path.display(),
            addr.port()
        );
        println!("API docs: {scheme}://{host}:{}/api/docs/", addr.port());
        if let Some(systemd) = systemd {
            systemd.ready(&format!("listening on {scheme}://{addr}/"));
        }
        tracing::info!(
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(0),
            "ready"
        );
        running.run_until_signal(signals).await;
        Ok(())
    })
}

/// Opens the data file of a stopped server (a running one holds redb's lock).
pub(crate) fn open_offline(
    config: &Config,
    common: &CommonArgs,
    env: &BTreeMap<String, String>,
) -> Result<(crate::store::Store, crate::crypto::SecretKey), String> {
    let credentials_dir = env.get("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let (store, master, _) = crate::app::open_store(
        config,
        common.master_key_file.as_deref(),
        credentials_dir.as_deref(),
    )
    .map_err(|e| format!("{e} (is the server running? stop it first)"))?;
    Ok((store, master))
}

fn admin(
    config: &Config,
    common: &CommonArgs,
    env: &BTreeMap<String, String>,
    command: AdminCommand,
) -> Result<(), String> {
    let (store, _) = open_offline(config, common, env)?;
    let result = admin::run(&store, config, command);
    store.close();
    result
}

fn rotate_jwt(
    config: &Config,
    common: &CommonArgs,
    env: &BTreeMap<String, String>,
) -> Result<(), String> {
    let (store, master) = open_offline(config, common, env)?;
    let result = crate::auth::jwt::JwtKeys::rotate(&store, &master);
    store.close();
    let report = result.map_err(|e| format!("jwt key rotation failed: {}", e.message))?;
    println!("new JWT signing key {} is current (used from the next start)", report.current);
    if let Some(previous) = report.previous {
        println!("tokens signed with key {previous} stay valid until they expire");
    }
    for dropped in report.dropped {
        println!("tokens signed with key {dropped} are no longer accepted");
    }
    Ok(())
}

fn rotate_data_keys(
    config: &Config,
    common: &CommonArgs,
    env: &BTreeMap<String, String>,
    org: Option<u64>,
) -> Result<(), String> {
    use crate::domain::secrets::rekey;
    let (store, master) = open_offline(config, common, env)?;
    let result = rekey::rotate_data_keys(&store, &master, org, rekey::RekeyOptions::default());
    store.close();
    let reports = result.map_err(|e| {
        format!("data key rotation stopped: {} (run the command again to resume)", e.message)
    })?;
    if reports.is_empty() {
        println!("no organization holds values yet; nothing to rotate");
    }
    for r in reports {
        println!(
            "organization {}: data key generation {}{}, re-sealed {} values and {} history \
             versions{}",
            r.organization_id,
            r.generation,
            if r.resumed { " (resumed)" } else { "" },
            r.values,
            r.versions,
            if r.unreadable > 0 {
                format!("; {} values open under no key and were left as they were", r.unreadable)
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

fn new_ca(
    config: &Config,
    common: &CommonArgs,
    env: &BTreeMap<String, String>,
) -> Result<(), String> {
    if !config.tls.cert_file.is_empty() {
        return Err("tls.cert_file is set: the server uses the supplied certificate, not a \
                    local CA"
            .into());
    }
    let (store, _) = open_offline(config, common, env)?;
    let result = crate::app::forget_ca(&store);
    store.close();
    result.map_err(|e| format!("cannot forget the local CA: {e}"))?;
    println!(
        "the local CA is forgotten: the next start generates a new one, constrained to \
         tls.hostnames, localhost and the loopback addresses; clients must then trust the new \
         {}",
        config.server.data_dir.join("ca.pem").display()
    );
    Ok(())
}

fn export_ca(config: &Config) -> Result<(), String> {
    let path = config.server.data_dir.join("ca.pem");
    let pem = std::fs::read_to_string(&path).map_err(|e| {
        format!("cannot read {} (start the server once to create it): {e}", path.display())
    })?;
    print!("{pem}");
    Ok(())
}

#[cfg(test)]
mod manpage;
