//! Consistent copies of the data file. redb locks the live file and a byte copy of a file being
//! written is not a backup, so a snapshot walks every registered table in one read transaction
//! and writes the rows to a new file. The copy goes to a hidden temporary name, is made durable,
//! opened again read-only and checked (every record decodes, the row counts match, the master
//! key opens it) and only then renamed into place, so a snapshot file that exists is whole.
//! The master key itself is never in the data file, so never in a snapshot.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::{
    Database, Key, ReadOnlyDatabase, ReadTransaction, ReadableDatabase as _, ReadableTable,
    ReadableTableMetadata as _, TableDefinition, TableHandle as _, Value,
};

use super::schema::{self, Shape, TableInfo, META, SEQUENCES};
use super::{migrate, Store, StoreError};
use crate::crypto::SecretKey;

/// Rows per transaction of the copy: bounds the memory a 1 GB file needs to be copied.
const CHUNK_ROWS: u64 = 20_000;

/// Cache of the snapshot file while it is written and checked (it is read once).
const SNAPSHOT_CACHE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error(
        "the data file has tables this binary does not know ({0}); a snapshot would lose them"
    )]
    UnknownTables(String),
    #[error("the snapshot does not match the data file: {0}")]
    Mismatch(String),
    #[error("the master key does not open this file")]
    WrongMasterKey,
}

impl From<redb::DatabaseError> for SnapshotError {
    fn from(e: redb::DatabaseError) -> Self {
        Self::Store(e.into())
    }
}
impl From<redb::TransactionError> for SnapshotError {
    fn from(e: redb::TransactionError) -> Self {
        Self::Store(e.into())
    }
}
impl From<redb::TableError> for SnapshotError {
    fn from(e: redb::TableError) -> Self {
        Self::Store(e.into())
    }
}
impl From<redb::StorageError> for SnapshotError {
    fn from(e: redb::StorageError) -> Self {
        Self::Store(e.into())
    }
}
impl From<redb::CommitError> for SnapshotError {
    fn from(e: redb::CommitError) -> Self {
        Self::Store(e.into())
    }
}
impl From<redb::SetDurabilityError> for SnapshotError {
    fn from(e: redb::SetDurabilityError) -> Self {
        Self::Store(e.into())
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io { path: path.display().to_string(), source }
}

/// How far a snapshot has come: rows copied out of the rows the file holds.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub rows_done: u64,
    pub rows_total: u64,
}

/// What a finished snapshot holds.
#[derive(Debug, Clone)]
pub struct SnapshotReport {
    pub path: PathBuf,
    pub bytes: u64,
    pub rows: u64,
    pub tables: usize,
    pub schema_version: u64,
    pub elapsed: Duration,
}

/// What [`inspect`] found in a data file or snapshot.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub schema_version: u64,
    pub rows: u64,
    pub tables: usize,
}

impl Store {
    /// Writes a consistent copy of every table of `tables` to `dest` (atomically: temporary
    /// name, fsync, check, rename). Refuses a file with tables outside `tables`.
    pub fn snapshot(
        &self,
        dest: &Path,
        tables: &[&TableInfo],
        master: &SecretKey,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<SnapshotReport, SnapshotError> {
        let started = Instant::now();
        let tx = self.db.begin_read()?;
        write_snapshot(&tx, dest, tables, master, progress, started)
    }
}

fn write_snapshot(
    src: &ReadTransaction,
    dest: &Path,
    tables: &[&TableInfo],
    master: &SecretKey,
    progress: &mut dyn FnMut(Progress),
    started: Instant,
) -> Result<SnapshotReport, SnapshotError> {
    let unknown = schema::verify_names(src, tables.iter().copied())?;
    if !unknown.is_empty() {
        return Err(SnapshotError::UnknownTables(unknown.join(", ")));
    }
    let schema_version = migrate::read_schema_version(src)?;
    let tmp = temporary_name(dest);
    // A leftover of an interrupted run is garbage by construction.
    remove_if_present(&tmp)?;
    let result = copy_and_check(src, &tmp, tables, master, progress);
    let counts = match result {
        Ok(counts) => counts,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, dest).map_err(io(dest))?;
    sync_parent(dest)?;
    let bytes = std::fs::metadata(dest).map_err(io(dest))?.len();
    Ok(SnapshotReport {
        path: dest.to_path_buf(),
        bytes,
        rows: counts.iter().map(|(_, n)| n).sum(),
        tables: counts.len(),
        schema_version,
        elapsed: started.elapsed(),
    })
}

/// Copies, makes durable and checks; returns the rows per table that exist in the source.
fn copy_and_check(
    src: &ReadTransaction,
    tmp: &Path,
    tables: &[&TableInfo],
    master: &SecretKey,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<(&'static str, u64)>, SnapshotError> {
    let mut total = 0;
    for t in tables {
        total += rows_of(src, t)?.unwrap_or(0);
    }
    let mut done = Progress { rows_done: 0, rows_total: total };
    progress(done);
    {
        // Owner-only from the first byte: a snapshot is as private as the data file.
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(tmp)
            .map_err(io(tmp))?;
    }
    let db = redb::Builder::new().set_cache_size(SNAPSHOT_CACHE_BYTES).create(tmp)?;
    let mut counts = Vec::new();
    for t in tables {
        let copied = match t.shape {
            Shape::Records(_) => copy_table::<u64, &[u8]>(src, &db, t.name, &mut done, progress)?,
            Shape::Index => copy_table::<(u64, u64), ()>(src, &db, t.name, &mut done, progress)?,
            Shape::Lookup => copy_table::<&str, u64>(src, &db, t.name, &mut done, progress)?,
            Shape::Meta => copy_table::<&str, &[u8]>(src, &db, META.name(), &mut done, progress)?,
            Shape::Sequences => {
                copy_table::<&str, u64>(src, &db, SEQUENCES.name(), &mut done, progress)?
            }
        };
        if let Some(n) = copied {
            counts.push((t.name, n));
        }
    }
    // The chunks were committed without fsync; one durable commit makes all of them durable.
    let mut last = db.begin_write()?;
    last.set_durability(redb::Durability::Immediate)?;
    last.commit()?;
    drop(db);
    let check = inspect_counts(tmp, tables, master)?;
    for (name, n) in &counts {
        let found = check.iter().find(|(t, _)| t == name).map_or(0, |(_, c)| *c);
        if found != *n {
            return Err(SnapshotError::Mismatch(format!(
                "table {name}: {n} rows copied, {found} read back"
            )));
        }
    }
    Ok(counts)
}

/// Rows of a table in the source (`None` if it was never created).
fn rows_of(src: &ReadTransaction, t: &TableInfo) -> Result<Option<u64>, SnapshotError> {
    fn len<K: Key + 'static, V: Value + 'static>(
        src: &ReadTransaction,
        name: &str,
    ) -> Result<Option<u64>, SnapshotError> {
        match src.open_table(TableDefinition::<K, V>::new(name)) {
            Ok(table) => Ok(Some(table.len()?)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    match t.shape {
        Shape::Records(_) => len::<u64, &[u8]>(src, t.name),
        Shape::Index => len::<(u64, u64), ()>(src, t.name),
        Shape::Lookup | Shape::Sequences => len::<&str, u64>(src, t.name),
        Shape::Meta => len::<&str, &[u8]>(src, t.name),
    }
}

/// Copies one table in chunks of [`CHUNK_ROWS`] rows, each its own (non-durable) commit.
/// `None` when the source never created the table (the copy does not create it either).
fn copy_table<K: Key + 'static, V: Value + 'static>(
    src: &ReadTransaction,
    dst: &Database,
    name: &str,
    done: &mut Progress,
    progress: &mut dyn FnMut(Progress),
) -> Result<Option<u64>, SnapshotError> {
    let def = TableDefinition::<K, V>::new(name);
    let table = match src.open_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut rows = table.iter()?;
    let mut copied = 0u64;
    loop {
        let mut tx = dst.begin_write()?;
        tx.set_durability(redb::Durability::None)?;
        let mut finished = false;
        let mut chunk = 0u64;
        {
            let mut out = tx.open_table(def)?;
            for _ in 0..CHUNK_ROWS {
                let Some(row) = rows.next() else {
                    finished = true;
                    break;
                };
                let (k, v) = row?;
                out.insert(k.value(), v.value())?;
                chunk += 1;
            }
        }
        tx.commit()?;
        copied += chunk;
        done.rows_done = (done.rows_done + chunk).min(done.rows_total);
        progress(*done);
        if finished {
            return Ok(Some(copied));
        }
    }
}

/// Opens a closed data file or snapshot read-only, decodes every record of `tables`, and checks
/// the master key opens it. Fails on tables the registry does not know.
pub fn inspect(
    path: &Path,
    tables: &[&TableInfo],
    master: Option<&SecretKey>,
) -> Result<Inspection, SnapshotError> {
    let db = ReadOnlyDatabase::open(path)?;
    let tx = db.begin_read()?;
    let unknown = schema::verify_names(&tx, tables.iter().copied())?;
    if !unknown.is_empty() {
        return Err(SnapshotError::UnknownTables(unknown.join(", ")));
    }
    if let Some(master) = master {
        if !migrate::master_key_matches(&tx, master)? {
            return Err(SnapshotError::WrongMasterKey);
        }
    }
    let schema_version = migrate::read_schema_version(&tx)?;
    let verified = schema::verify(&tx, tables.iter().copied())?;
    Ok(Inspection {
        schema_version,
        rows: verified.rows.iter().map(|(_, n)| n).sum(),
        tables: verified.rows.len(),
    })
}

fn inspect_counts(
    path: &Path,
    tables: &[&TableInfo],
    master: &SecretKey,
) -> Result<Vec<(&'static str, u64)>, SnapshotError> {
    let db = ReadOnlyDatabase::open(path)?;
    let tx = db.begin_read()?;
    if !migrate::master_key_matches(&tx, master)? {
        return Err(SnapshotError::WrongMasterKey);
    }
    Ok(schema::verify(&tx, tables.iter().copied())?.rows)
}

/// True when the error says another process (a running server) holds the file.
pub fn is_in_use(e: &StoreError) -> bool {
    matches!(e, StoreError::Database(redb::DatabaseError::DatabaseAlreadyOpen))
}

/// Runs redb's own integrity check (page checksums, tree structure) on a closed file; repairs
/// an uncleanly closed one as opening it would. `Ok(false)` when the file needed repair.
pub fn check_integrity(path: &Path) -> Result<bool, SnapshotError> {
    let mut db = Database::open(path)?;
    Ok(db.check_integrity()?)
}

/// `dir/.name.partial` beside `dest`: hidden, so "copy the newest file" never picks it.
pub fn temporary_name(dest: &Path) -> PathBuf {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dest.with_file_name(format!(".{name}.partial"))
}

fn remove_if_present(path: &Path) -> Result<(), SnapshotError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path)(e)),
    }
}

/// fsyncs the directory holding `path`, so the rename survives a crash.
fn sync_parent(path: &Path) -> Result<(), SnapshotError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}
