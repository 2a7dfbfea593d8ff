//! `gatehouse check` (server stopped): the configuration, redb's own integrity check, every
//! record decodes, every sealed value opens, and the search index agrees with the data file.
//! Exit code 0 when all hold; 1 with the problems listed otherwise.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::progress::{human_bytes, Progress, Unit};
use super::CommonArgs;
use crate::config::Config;
use crate::logs::consistency::{check_index, IndexCheck};
use crate::store::snapshot::{self, SnapshotError};
use crate::store::Store;

pub fn check(
    config: &Config,
    common: &CommonArgs,
    env: &BTreeMap<String, String>,
) -> Result<(), String> {
    println!("configuration: valid");
    let data_dir = &config.server.data_dir;
    let data_file = data_dir.join("gatehouse.redb");
    if !data_file.is_file() {
        println!("data file: none yet at {} (the first start creates it)", data_file.display());
        return Ok(());
    }
    println!("data file: {} ({})", data_file.display(), human_bytes(Store::file_size(&data_file)));
    let mut problems: Vec<String> = Vec::new();
    match snapshot::check_integrity(&data_file) {
        Ok(true) => println!("integrity: ok (pages and trees verified)"),
        Ok(false) => problems.push("integrity: redb found damage and repaired the file".into()),
        Err(SnapshotError::Store(e)) if snapshot::is_in_use(&e) => {
            return Err("the data file is in use: stop the server first (systemctl stop \
                        gatehouse)"
                .into());
        }
        Err(e) => return Err(format!("integrity: {e}")),
    }
    let credentials_dir = env.get("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let (master, _) = crate::crypto::load_master_key(
        common.master_key_file.as_deref(),
        credentials_dir.as_deref(),
        data_dir,
    )
    .map_err(|e| e.to_string())?;
    let migrations = crate::services::schema::MIGRATIONS;
    let (store, info) =
        Store::open(&data_file, &master, config.storage.cache_size_mb, 1, migrations)
            .map_err(|e| format!("data file: {e}"))?;
    let result = check_open_store(&store, &master, data_dir, info.schema_version, &mut problems);
    store.close();
    result?;
    if problems.is_empty() {
        println!("ok: instance {}", info.instance_id);
        return Ok(());
    }
    for p in &problems {
        eprintln!("problem: {p}");
    }
    Err(format!("{} problem(s) found", problems.len()))
}

fn check_open_store(
    store: &Store,
    master: &crate::crypto::SecretKey,
    data_dir: &std::path::Path,
    schema_version: u64,
    problems: &mut Vec<String>,
) -> Result<(), String> {
    let verified = store.verify(crate::services::schema::all_tables());
    let verified = verified.map_err(|e| format!("records: {e}"))?;
    if !verified.unknown.is_empty() {
        problems.push(format!("tables this binary does not know: {}", verified.unknown.join(", ")));
    }
    let rows: u64 = verified.rows.iter().map(|(_, n)| n).sum();
    println!(
        "records: {rows} rows in {} tables decode (schema {schema_version})",
        verified.rows.len()
    );
    let mut progress = Progress::new("sealed values", Unit::Rows);
    let seals = store.read(|tx| {
        crate::domain::sealcheck::check_all(tx, master, &mut |done, total| {
            progress.update(done, total);
        })
    });
    progress.finish();
    let seals = seals.map_err(|e| format!("sealed values: {e}"))?;
    println!(
        "sealed values: {} data keys, {} values, {} history versions, {} deployment results \
         checked, {} do not open",
        seals.data_keys, seals.values, seals.versions, seals.results, seals.failures
    );
    problems.extend(seals.problems.iter().map(|p| format!("sealed values: {p}")));
    if seals.failures > seals.problems.len() as u64 {
        problems.push(format!(
            "sealed values: {} more rows do not open",
            seals.failures - seals.problems.len() as u64
        ));
    }
    match check_index(store, data_dir).map_err(|e| format!("search index: {e}"))? {
        IndexCheck::Consistent { requests, audit } => {
            println!("search index: consistent ({requests} request and {audit} audit documents)")
        }
        IndexCheck::Behind { requests, audit } => println!(
            "search index: {requests} request and {audit} audit records not indexed yet (the \
             next start indexes them)"
        ),
        IndexCheck::Rebuilt { reason } => {
            println!("search index: {reason}; the next start rebuilds it from the data file")
        }
        IndexCheck::Inconsistent { detail } => problems.push(format!(
            "search index: {detail}; remove {} and start the server to rebuild it",
            data_dir.join("index").display()
        )),
    }
    Ok(())
}
