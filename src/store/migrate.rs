//! Schema version, first-start initialisation and migrations, all in one write transaction at
//! open. Each migration upgrades the file from version N-1 to N; the fixture test in
//! `tests/it/storage.rs` opens a file written by schema 1.

use redb::{Database, ReadTransaction, ReadableTable, WriteTransaction};

use super::schema::{Migration, META, SEQUENCES};
use super::tx::WriteTx;
use super::{StoreError, StoreInfo};
use crate::crypto::SecretKey;

const MASTER_CHECK_AAD: &[u8] = b"gatehouse/meta/master_check";
const MASTER_CHECK_PLAINTEXT: &[u8] = b"gatehouse master key check";

/// Opens the schema in one write transaction: initialises a new file, or checks the master
/// key and runs the `migrations` (ordered by version) the file has not seen yet.
pub fn prepare(
    db: &Database,
    master: &SecretKey,
    migrations: &[Migration],
) -> Result<StoreInfo, StoreError> {
    let mut raw = db.begin_write()?;
    raw.set_durability(redb::Durability::Immediate)?;
    let tx = WriteTx::new(raw);
    // The schema this binary writes: that of the last migration (1 without any).
    let supported = migrations.last().map_or(1, |m| m.version);
    let existing = get_meta(&tx, "schema_version")?;
    let info = match existing {
        None => initialise(&tx, master, supported)?,
        Some(bytes) => {
            let found = parse_u64(&bytes)?;
            check_master(&tx, master)?;
            if found > supported {
                return Err(StoreError::TooNew { found, supported });
            }
            for m in migrations.iter().filter(|m| m.version > found) {
                tracing::info!(from = m.version - 1, to = m.version, "migrating data file");
                (m.run)(&tx)?;
                put_meta(&tx, "schema_version", m.version.to_string().as_bytes())?;
            }
            let instance_id = get_meta(&tx, "instance_id")?
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            StoreInfo { created: false, instance_id, schema_version: supported }
        }
    };
    // Migrations ask for no effects: nothing runs before the store is open.
    tx.into_parts().0.commit()?;
    Ok(info)
}

fn initialise(
    tx: &WriteTransaction,
    master: &SecretKey,
    version: u64,
) -> Result<StoreInfo, StoreError> {
    let instance_id = uuid::Uuid::new_v4().to_string();
    let now = crate::clock::now_rfc3339();
    let check = master.seal(MASTER_CHECK_AAD, MASTER_CHECK_PLAINTEXT)?;
    put_meta(tx, "schema_version", version.to_string().as_bytes())?;
    put_meta(tx, "created_at", now.as_bytes())?;
    put_meta(tx, "instance_id", instance_id.as_bytes())?;
    put_meta(tx, "master_check", &check)?;
    tx.open_table(SEQUENCES)?;
    Ok(StoreInfo { created: true, instance_id, schema_version: version })
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
    let check = new.seal(MASTER_CHECK_AAD, MASTER_CHECK_PLAINTEXT)?;
    put_meta(tx, "master_check", &check)
}

/// True when `master` opens the file's check value (read side, for snapshots and restores).
pub fn master_key_matches(tx: &ReadTransaction, master: &SecretKey) -> Result<bool, StoreError> {
    let Some(sealed) = read_meta(tx, "master_check")? else { return Ok(false) };
    Ok(
        matches!(master.open(MASTER_CHECK_AAD, &sealed), Ok(plain) if plain == MASTER_CHECK_PLAINTEXT),
    )
}

pub fn read_schema_version(tx: &ReadTransaction) -> Result<u64, StoreError> {
    let table = tx.open_table(META)?;
    let value = table
        .get("schema_version")?
        .ok_or(StoreError::Meta { key: "schema_version", problem: "missing" })?;
    parse_u64(value.value())
}

fn parse_u64(bytes: &[u8]) -> Result<u64, StoreError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(StoreError::Meta { key: "schema_version", problem: "not a number" })
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
