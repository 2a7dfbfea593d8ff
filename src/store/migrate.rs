//! Schema version, first-start initialisation and migrations, all in one write transaction at
//! open. Each migration upgrades the file from version N-1 to N; the fixture test in
//! `tests/it/storage.rs` opens a file written by schema 1.

use redb::{Database, ReadTransaction, ReadableTable, WriteTransaction};

use super::tables::META;
use super::{StoreError, StoreInfo};
use crate::crypto::SecretKey;

/// The schema this binary writes.
pub const SCHEMA_VERSION: u64 = 2;

const MASTER_CHECK_AAD: &[u8] = b"gatehouse/meta/master_check";
const MASTER_CHECK_PLAINTEXT: &[u8] = b"gatehouse master key check";

/// A migration from `version - 1` to `version`.
struct Migration {
    version: u64,
    run: fn(&WriteTransaction) -> Result<(), StoreError>,
}

/// Ordered by version.
const MIGRATIONS: &[Migration] = &[Migration { version: 2, run: variables_to_binary }];

/// 2: variables move from JSON bodies (record version 1) to the compact binary body (record
/// version 2). Records decode through `Record::upgrade`, so this only makes the file uniform
/// and lets an older binary refuse the file (schema too new) instead of failing per record.
fn variables_to_binary(tx: &WriteTransaction) -> Result<(), StoreError> {
    let def = super::tables::VARIABLES.def;
    let mut table = tx.open_table(def)?;
    let mut old = Vec::new();
    for entry in table.iter()? {
        let (k, v) = entry?;
        if v.value().first() == Some(&1) {
            old.push((k.value(), v.value().to_vec()));
        }
    }
    for (id, bytes) in old {
        let var: crate::domain::secrets::records::Variable = super::decode(&bytes)?;
        table.insert(id, super::encode(&var)?.as_slice())?;
    }
    Ok(())
}

pub fn prepare(db: &Database, master: &SecretKey) -> Result<StoreInfo, StoreError> {
    let mut tx = db.begin_write()?;
    tx.set_durability(redb::Durability::Immediate).map_err(|e| StoreError::Other(e.to_string()))?;
    let existing = get_meta(&tx, "schema_version")?;
    let info = match existing {
        None => initialise(&tx, master)?,
        Some(bytes) => {
            let found = parse_u64(&bytes)?;
            check_master(&tx, master)?;
            if found > SCHEMA_VERSION {
                return Err(StoreError::TooNew { found, supported: SCHEMA_VERSION });
            }
            for m in MIGRATIONS.iter().filter(|m| m.version > found) {
                tracing::info!(from = m.version - 1, to = m.version, "migrating data file");
                (m.run)(&tx)?;
                put_meta(&tx, "schema_version", m.version.to_string().as_bytes())?;
            }
            let instance_id = get_meta(&tx, "instance_id")?
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            StoreInfo { created: false, instance_id, schema_version: SCHEMA_VERSION }
        }
    };
    tx.commit()?;
    Ok(info)
}

fn initialise(tx: &WriteTransaction, master: &SecretKey) -> Result<StoreInfo, StoreError> {
    let instance_id = uuid::Uuid::new_v4().to_string();
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| StoreError::Other(e.to_string()))?;
    let check = master
        .seal(MASTER_CHECK_AAD, MASTER_CHECK_PLAINTEXT)
        .map_err(|e| StoreError::Other(e.to_string()))?;
    put_meta(tx, "schema_version", SCHEMA_VERSION.to_string().as_bytes())?;
    put_meta(tx, "created_at", now.as_bytes())?;
    put_meta(tx, "instance_id", instance_id.as_bytes())?;
    put_meta(tx, "master_check", &check)?;
    tx.open_table(super::tables::SEQUENCES)?;
    Ok(StoreInfo { created: true, instance_id, schema_version: SCHEMA_VERSION })
}

fn check_master(tx: &WriteTransaction, master: &SecretKey) -> Result<(), StoreError> {
    let sealed = get_meta(tx, "master_check")?.ok_or(StoreError::WrongMasterKey)?;
    match master.open(MASTER_CHECK_AAD, &sealed) {
        Ok(plain) if plain == MASTER_CHECK_PLAINTEXT => Ok(()),
        _ => Err(StoreError::WrongMasterKey),
    }
}

/// Re-seals the master key check value under `new` (part of master key rotation).
pub fn reseal_master_check(
    tx: &WriteTransaction,
    old: &SecretKey,
    new: &SecretKey,
) -> Result<(), StoreError> {
    check_master(tx, old)?;
    let check = new
        .seal(MASTER_CHECK_AAD, MASTER_CHECK_PLAINTEXT)
        .map_err(|e| StoreError::Other(e.to_string()))?;
    put_meta(tx, "master_check", &check)
}

pub fn read_schema_version(tx: &ReadTransaction) -> Result<u64, StoreError> {
    let table = tx.open_table(META)?;
    let value = table
        .get("schema_version")?
        .ok_or_else(|| StoreError::Other("no schema version".into()))?;
    parse_u64(value.value())
}

fn parse_u64(bytes: &[u8]) -> Result<u64, StoreError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| StoreError::Other("meta value is not a number".into()))
}

/// Reads a `meta` row inside a write transaction.
pub fn get_meta(tx: &WriteTransaction, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let table = tx.open_table(META)?;
    let value = table.get(key)?.map(|v| v.value().to_vec());
    Ok(value)
}

pub fn put_meta(tx: &WriteTransaction, key: &str, value: &[u8]) -> Result<(), StoreError> {
    tx.open_table(META)?.insert(key, value)?;
    Ok(())
}

/// Reads a `meta` row inside a read transaction.
pub fn read_meta(tx: &ReadTransaction, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let table = match tx.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let value = table.get(key)?.map(|v| v.value().to_vec());
    Ok(value)
}
