//! `gatehouse admin rotate-master-key`: re-seals what the master key protects under a new key
//! while the server is stopped (redb's file lock makes a running server refuse the open).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::CommonArgs;
use crate::config::Config;
use crate::crypto::{self, SecretKey};
use crate::services::rotation::{rotate_master_key as reseal_all, RotationReport};
use crate::store::Store;

/// Opens the data file with the current key, re-seals everything under the key in
/// `new_key_file` in one transaction, and — when the current key lives in `DATA_DIR/master.key`
/// — replaces that file with the new key (atomically, mode 0600).
pub fn rotate_master_key(
    config: &Config,
    common: &CommonArgs,
    env: &BTreeMap<String, String>,
    new_key_file: &Path,
) -> Result<(), String> {
    let data_dir = &config.server.data_dir;
    let data_file = data_dir.join("gatehouse.redb");
    if !data_file.is_file() {
        return Err(format!("no data file at {}", data_file.display()));
    }
    let credentials_dir = env.get("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let (old, old_path) = crypto::load_or_create_master_key(
        common.master_key_file.as_deref(),
        credentials_dir.as_deref(),
        data_dir,
    )
    .map_err(|e| e.to_string())?;
    let new = read_new_key(new_key_file)?;
    if crypto::ct_eq(old.expose(), new.expose()) {
        return Err("the new master key is the same as the current one".into());
    }
    let (store, _) = Store::open(
        &data_file,
        &old,
        config.storage.cache_size_mb,
        1,
        crate::services::schema::MIGRATIONS,
    )
    .map_err(|e| format!("cannot open the data file (is the server stopped?): {e}"))?;
    let (o, n) = (old, new.clone());
    let report: Result<RotationReport, crate::domain::Error> =
        store.write_blocking(move |tx| reseal_all(tx, &o, &n));
    store.close();
    let report = report.map_err(|e| format!("rotation failed, nothing changed: {e}"))?;
    println!(
        "re-sealed {} organization data keys and {} settings ({}) under the new master key",
        report.data_keys,
        report.meta_rows.len(),
        report.meta_rows.join(", ")
    );
    if old_path == data_dir.join("master.key") {
        replace_key_file(&old_path, &new)?;
        println!("{} now holds the new key", old_path.display());
    } else {
        println!(
            "the data file now needs the new key: install {} where {} was (--master-key-file or \
             the systemd credential) before starting the server",
            new_key_file.display(),
            old_path.display()
        );
    }
    Ok(())
}

fn read_new_key(path: &Path) -> Result<SecretKey, String> {
    // Same rules as the master key itself: exact length, not readable by group or others.
    crypto::load_or_create_master_key(Some(path), None, Path::new("/nonexistent"))
        .map(|(k, _)| k)
        .map_err(|e| format!("new key: {e}"))
}

fn replace_key_file(path: &Path, key: &SecretKey) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("key.new");
    let err = |e: std::io::Error| format!("cannot write {}: {e}", tmp.display());
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(hex::encode(key.expose()).as_bytes()).map_err(err)?;
    f.write_all(b"\n").map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot replace {}: {e}", path.display()))?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
