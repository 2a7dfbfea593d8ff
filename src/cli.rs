//! The command line: `gatehouse [serve]`, `tls export-ca`, `openapi`, `check`,
//! `admin rotate-master-key`.

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
    /// Validate the configuration and open the data file, then exit
    Check,
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
        Command::Check => check(&config, &cli.common, &env),
        Command::Openapi => {
            println!("{}", crate::api::spec_json());
            Ok(())
        }
        Command::Tls { command: TlsCommand::ExportCa } => export_ca(&config),
        Command::Admin { command: AdminCommand::RotateMasterKey { new_key_file } } => {
            crate::rotate::rotate_master_key(&config, &cli.common, &env, &new_key_file)
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

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())
}

fn serve(config: Config, common: &CommonArgs, env: BTreeMap<String, String>) -> Result<(), String> {
    let rt = runtime()?;
    rt.block_on(async move {
        let scheme = if config.server.insecure_http { "http" } else { "https" };
        let credentials_dir = env.get("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        let opts = crate::app::Options {
            config,
            master_key_file: common.master_key_file.clone(),
            credentials_dir,
            env,
        };
        let started = std::time::Instant::now();
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
        tracing::info!(
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(0),
            "ready"
        );
        running.run_until_signal().await;
        Ok(())
    })
}

fn check(
    config: &Config,
    common: &CommonArgs,
    env: &BTreeMap<String, String>,
) -> Result<(), String> {
    let credentials_dir = env.get("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let (store, _, info) = crate::app::open_store(
        config,
        common.master_key_file.as_deref(),
        credentials_dir.as_deref(),
    )
    .map_err(|e| e.to_string())?;
    store.close();
    println!(
        "ok: configuration valid, data file schema {}, instance {}",
        info.schema_version, info.instance_id
    );
    Ok(())
}

fn admin(
    config: &Config,
    common: &CommonArgs,
    env: &BTreeMap<String, String>,
    command: AdminCommand,
) -> Result<(), String> {
    let credentials_dir = env.get("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let (store, _, _) = crate::app::open_store(
        config,
        common.master_key_file.as_deref(),
        credentials_dir.as_deref(),
    )
    .map_err(|e| format!("{e} (is the server running? stop it first)"))?;
    let result = crate::auth::admin::run(&store, config, command);
    store.close();
    result
}

fn export_ca(config: &Config) -> Result<(), String> {
    let path = config.server.data_dir.join("ca.pem");
    let pem = std::fs::read_to_string(&path).map_err(|e| {
        format!("cannot read {} (start the server once to create it): {e}", path.display())
    })?;
    print!("{pem}");
    Ok(())
}
