//! `gatehouse backup` and `gatehouse restore`. A stopped server's file is copied directly; a
//! running one (redb's lock says so) is asked over its API for a snapshot. Restore puts a
//! checked, migrated copy of a snapshot in place of the data file of a stopped server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::fetch::{self, Target};
use super::progress::{human_bytes, Progress, Unit};
use super::CommonArgs;
use crate::config::Config;
use crate::crypto::{self, SecretKey};
use crate::store::snapshot::{self, SnapshotError};
use crate::store::{Store, TableInfo};

/// `gatehouse backup` options.
pub struct BackupArgs {
    pub output: PathBuf,
    pub token: Option<String>,
    pub url: Option<String>,
    pub cacert: Option<PathBuf>,
    pub force: bool,
}

fn tables() -> Vec<&'static TableInfo> {
    crate::services::schema::all_tables().collect()
}

fn master_key(
    config: &Config,
    common: &CommonArgs,
    env: &BTreeMap<String, String>,
) -> Result<SecretKey, String> {
    let credentials_dir = env.get("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    crypto::load_master_key(
        common.master_key_file.as_deref(),
        credentials_dir.as_deref(),
        &config.server.data_dir,
    )
    .map(|(k, _)| k)
    .map_err(|e| e.to_string())
}

pub fn backup(
    config: &Config,
    common: &CommonArgs,
    env: &BTreeMap<String, String>,
    args: BackupArgs,
) -> Result<(), String> {
    if args.output.exists() && !args.force {
        return Err(format!("{} exists (give --force to replace it)", args.output.display()));
    }
    let data_file = config.server.data_dir.join("gatehouse.redb");
    if !data_file.is_file() {
        return Err(format!("no data file at {}", data_file.display()));
    }
    let master = master_key(config, common, env).ok();
    if args.url.is_none() {
        if let Some(master) = &master {
            match offline(config, master, &args.output) {
                Err(Offline::InUse) => {}
                Err(Offline::Failed(message)) => return Err(message),
                Ok(()) => return Ok(()),
            }
        }
    }
    online(config, env, &args, master.as_ref())
}

enum Offline {
    InUse,
    Failed(String),
}

/// The server is stopped: open the file and write the snapshot from it.
fn offline(config: &Config, master: &SecretKey, output: &Path) -> Result<(), Offline> {
    let data_file = config.server.data_dir.join("gatehouse.redb");
    let migrations = crate::services::schema::MIGRATIONS;
    let (store, _) =
        match Store::open(&data_file, master, config.storage.cache_size_mb, 1, migrations) {
            Ok(opened) => opened,
            Err(e) if snapshot::is_in_use(&e) => return Err(Offline::InUse),
            Err(e) => return Err(Offline::Failed(format!("cannot open the data file: {e}"))),
        };
    let mut progress = Progress::new("backup", Unit::Rows);
    let result = store.snapshot(output, &tables(), master, &mut |p| {
        progress.update(p.rows_done, p.rows_total);
    });
    progress.finish();
    store.close();
    let report = result.map_err(|e| Offline::Failed(format!("backup failed: {e}")))?;
    println!(
        "backup written to {} ({}, {} rows, schema {}, {:.1} s; the server was stopped, so the \
         file was read directly)",
        report.path.display(),
        human_bytes(report.bytes),
        report.rows,
        report.schema_version,
        report.elapsed.as_secs_f64()
    );
    Ok(())
}

/// The server runs: ask it for a snapshot over its API, then check what arrived.
fn online(
    config: &Config,
    env: &BTreeMap<String, String>,
    args: &BackupArgs,
    master: Option<&SecretKey>,
) -> Result<(), String> {
    let token = args
        .token
        .clone()
        .or_else(|| env.get("GATEHOUSE_TOKEN").cloned())
        .filter(|t| !t.trim().is_empty())
        .ok_or(
            "the server is running, so the backup comes through its API: give a staff login token \
             with --token or GATEHOUSE_TOKEN",
        )?;
    let token = token.trim();
    let authorization =
        if token.contains(' ') { token.to_string() } else { format!("Token {token}") };
    let url = match &args.url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => default_url(config)?,
    };
    let url: hyper::Uri =
        format!("{url}/api/admin/backup/").parse().map_err(|e| format!("--url: {e}"))?;
    let ca_path = args.cacert.clone().unwrap_or_else(|| config.server.data_dir.join("ca.pem"));
    let ca_pem = std::fs::read(&ca_path).ok();
    let target = Target { url, ca_pem, authorization };
    let tmp = snapshot::temporary_name(&args.output);
    let mut file = create_private(&tmp)?;
    let rt = super::runtime()?;
    let fetched = rt.block_on(fetch::post_to_file(&target, &mut file));
    let result = fetched.and_then(|bytes| {
        file.sync_all().map_err(|e| format!("{}: {e}", tmp.display()))?;
        drop(file);
        check_download(&tmp, master).map(|found| (bytes, found))
    });
    let (bytes, found) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, &args.output).map_err(|e| format!("{}: {e}", args.output.display()))?;
    println!(
        "backup written to {} ({}, {} rows, schema {}; {})",
        args.output.display(),
        human_bytes(bytes),
        found.rows,
        found.schema_version,
        if master.is_some() {
            "checked with the master key"
        } else {
            "structure checked; no master key here to check it opens"
        }
    );
    Ok(())
}

/// Every record decodes (and the master key opens it, when this machine has the key).
fn check_download(path: &Path, master: Option<&SecretKey>) -> Result<snapshot::Inspection, String> {
    snapshot::inspect(path, &tables(), master)
        .map_err(|e| format!("the downloaded snapshot does not check out: {e}"))
}

fn default_url(config: &Config) -> Result<String, String> {
    let addr = config.listen_addr().map_err(|e| e.to_string())?;
    let host = if addr.ip().is_unspecified() || addr.ip().is_loopback() {
        "127.0.0.1".to_string()
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    let scheme = if config.server.insecure_http { "http" } else { "https" };
    Ok(format!("{scheme}://{host}:{}", addr.port()))
}

fn create_private(path: &Path) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// `gatehouse restore FILE`: the server must be stopped.
pub fn restore(
    config: &Config,
    common: &CommonArgs,
    env: &BTreeMap<String, String>,
    source: &Path,
) -> Result<(), String> {
    let data_dir = &config.server.data_dir;
    let data_file = data_dir.join("gatehouse.redb");
    if !source.is_file() {
        return Err(format!("{} is not a file", source.display()));
    }
    let master = master_key(config, common, env).map_err(|e| {
        format!("{e}; restoring needs the master key the snapshot was written with")
    })?;
    if data_file.is_file() {
        // A running server holds the lock: refuse before copying anything.
        match snapshot::check_integrity(&data_file) {
            Err(SnapshotError::Store(e)) if snapshot::is_in_use(&e) => {
                return Err("the server is running: stop it first (systemctl stop gatehouse)".into())
            }
            _ => {}
        }
    }
    let staged = data_dir.join(".gatehouse.redb.restore.partial");
    let copied = copy_with_progress(source, &staged);
    let checked = copied.and_then(|()| stage(config, &master, &staged));
    let found = match checked {
        Ok(found) => found,
        Err(e) => {
            let _ = std::fs::remove_file(&staged);
            return Err(e);
        }
    };
    let stamp = crate::clock::compact_utc(crate::clock::unix_now());
    let aside = data_dir.join(format!("gatehouse.redb.before-restore-{stamp}"));
    if data_file.is_file() {
        std::fs::rename(&data_file, &aside)
            .map_err(|e| format!("cannot move {} aside: {e}", data_file.display()))?;
    }
    std::fs::rename(&staged, &data_file)
        .map_err(|e| format!("cannot put the snapshot in place: {e}"))?;
    std::fs::File::open(data_dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("{}: {e}", data_dir.display()))?;
    // The search index is derived from the data file: the next start rebuilds it.
    let index = data_dir.join("index");
    if index.exists() {
        std::fs::remove_dir_all(&index)
            .map_err(|e| format!("cannot remove the old search index {}: {e}", index.display()))?;
    }
    println!(
        "restored {} ({} rows, schema {}) as {}",
        source.display(),
        found.rows,
        found.schema_version,
        data_file.display()
    );
    if aside.exists() {
        println!("the previous data file is kept as {}", aside.display());
    }
    println!("the search index is rebuilt on the next start: systemctl start gatehouse");
    Ok(())
}

fn copy_with_progress(source: &Path, dest: &Path) -> Result<(), String> {
    use std::io::{Read as _, Write as _};
    let mut from = std::fs::File::open(source).map_err(|e| format!("{}: {e}", source.display()))?;
    let total = from.metadata().map(|m| m.len()).unwrap_or(0);
    let mut to = create_private(dest)?;
    let mut progress = Progress::new("copying", Unit::Bytes);
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = from.read(&mut buf).map_err(|e| format!("{}: {e}", source.display()))?;
        let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else { break };
        to.write_all(chunk).map_err(|e| format!("{}: {e}", dest.display()))?;
        done += n as u64;
        progress.update(done, total);
    }
    progress.finish();
    to.sync_all().map_err(|e| format!("{}: {e}", dest.display()))
}

/// Opens the staged copy as the server would (master key check, migrations of an older
/// schema, refusal of a newer one), then decodes every record.
fn stage(
    config: &Config,
    master: &SecretKey,
    staged: &Path,
) -> Result<snapshot::Inspection, String> {
    let migrations = crate::services::schema::MIGRATIONS;
    let (store, info) = Store::open(staged, master, config.storage.cache_size_mb, 1, migrations)
        .map_err(|e| format!("the snapshot cannot be restored: {e}"))?;
    store.close();
    let found = snapshot::inspect(staged, &tables(), Some(master))
        .map_err(|e| format!("the snapshot cannot be restored: {e}"))?;
    if found.schema_version != info.schema_version {
        return Err(format!(
            "the snapshot was migrated to schema {} but reads as {}",
            info.schema_version, found.schema_version
        ));
    }
    Ok(found)
}
