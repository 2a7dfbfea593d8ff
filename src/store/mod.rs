//! The one source of truth: a redb file with typed tables, versioned records, group-committed
//! durable writes and a migration runner. Only this module imports `redb`.

pub mod binary;
mod bulk;
mod codec;
mod error;
mod migrate;
mod range;
pub mod schema;
pub mod snapshot;
mod tx;
mod typed;
mod writer;

use std::path::Path;
use std::sync::Arc;

pub use bulk::BulkWriter;
pub use codec::{decode, encode, Record};
pub use error::{StoreError, Unavailable};
pub use migrate::{get_meta, put_meta, read_meta, reseal_master_check};
pub use range::RangeReader;
pub use redb::{ReadTransaction as ReadTx, ReadableTable, ReadableTableMetadata};
pub use schema::{Migration, TableInfo, Verified};
pub use tx::{Effect, EffectSink, WriteTx};
pub use typed::{IndexTable, LookupTable, Reader, RecordTable, Writer};
pub use writer::{DiskSpace, WriterHandle};

use crate::crypto::SecretKey;

/// The opened data file. Cheap to clone; reads run inline, writes go to the writer thread.
#[derive(Clone)]
pub struct Store {
    db: Arc<writer::DbSlot>,
    writer: WriterHandle,
}

/// What [`Store::open`] found in `meta`.
#[derive(Debug, Clone)]
pub struct StoreInfo {
    pub created: bool,
    pub instance_id: String,
    pub schema_version: u64,
}

impl Store {
    /// Opens (or creates) the data file, checks the master key against the sealed check value in
    /// `meta`, runs pending migrations in one write transaction, and starts the writer thread.
    pub fn open(
        path: &Path,
        master: &SecretKey,
        cache_size_mb: u64,
        max_batch: usize,
        migrations: &[Migration],
    ) -> Result<(Self, StoreInfo), StoreError> {
        let cache =
            usize::try_from(cache_size_mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
        let db = redb::Builder::new().set_cache_size(cache).create(path)?;
        let info = migrate::prepare(&db, master, migrations)?;
        let db = Arc::new(writer::DbSlot::new(db, path, cache));
        let writer = writer::spawn(Arc::clone(&db), max_batch, path)?;
        Ok((Self { db, writer }, info))
    }

    /// Runs `f` against a consistent snapshot.
    pub fn read<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&ReadTx) -> Result<T, E>,
    ) -> Result<T, E> {
        let tx = self.db.begin_read()?;
        f(&tx)
    }

    /// Runs `f` in a write transaction and returns after the commit is durable. Concurrent
    /// writes share one commit. `f` may run more than once (if another write in its batch fails,
    /// the batch is re-run without it), so it must be a pure function of its captures and `tx`.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: Fn(&WriteTx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.writer.submit(f, true).await
    }

    /// Like [`Store::write`], but the commit may reach the disk up to
    /// a second later (for records of what happened that no caller is
    /// waiting on; a crash may lose the last second of them, never a durable write).
    pub async fn write_relaxed<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: Fn(&WriteTx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.writer.submit(f, false).await
    }

    /// Blocking variant of [`Store::write`] for the CLI and start-up (not from async code).
    pub fn write_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: Fn(&WriteTx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.writer.submit_blocking(f)
    }

    /// Installs the receiver of commit effects (once, at start); `false` if one is installed.
    pub fn set_effect_sink(&self, sink: EffectSink) -> bool {
        self.writer.set_effect_sink(sink)
    }

    /// A receiver that changes after every commit (value: number of commits so far).
    pub fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.writer.commits()
    }

    /// Reads every table the registry lists (decoding every record) in one snapshot; see
    /// [`schema::verify`].
    pub fn verify<'a>(
        &self,
        tables: impl IntoIterator<Item = &'a TableInfo>,
    ) -> Result<Verified, StoreError> {
        self.read(|tx| schema::verify(tx, tables))
    }

    /// True when a read transaction can be opened and `meta` read.
    pub fn healthy(&self) -> bool {
        self.read(migrate::read_schema_version).is_ok()
    }

    /// The free space of the data directory and the reserve below which writes are refused.
    pub fn disk_space(&self) -> &Arc<DiskSpace> {
        self.writer.disk_space()
    }

    /// Size of the data file in bytes, if known.
    pub fn file_size(path: &Path) -> u64 {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }

    /// Stops the writer after it has committed everything queued, then closes the file.
    pub fn close(self) {
        self.writer.shutdown();
    }
}
