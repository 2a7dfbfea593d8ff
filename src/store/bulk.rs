//! Batch writes for append-heavy tables (the request log): each table is opened once per batch
//! instead of once per row, and ids are reserved in one step. Same tables, same encodings as
//! [`super::Writer`]; only the number of table opens differs.

use redb::ReadableTable as _;

use super::tx::WriteTx;

use super::schema::SEQUENCES;
use super::typed::{IndexTable, RecordTable};
use super::{Record, StoreError};

/// Batch writes, only inside a write transaction.
pub trait BulkWriter {
    /// Reserves `n` consecutive ids of `sequence` (as `n` calls of `next_id` would hand out);
    /// returns the first.
    fn reserve_ids(&self, sequence: &str, n: u64) -> Result<u64, StoreError>;
    /// Inserts `n` rows: `row(i, buf)` appends row `i`'s stored bytes (version byte and body, as
    /// [`super::encode`] makes them) to the empty `buf` and returns its id.
    fn put_encoded<T: Record>(
        &self,
        table: RecordTable<T>,
        n: usize,
        row: &mut dyn FnMut(usize, &mut Vec<u8>) -> u64,
    ) -> Result<(), StoreError>;
    /// Inserts every `(parent, child)` pair.
    fn link_all(
        &self,
        table: IndexTable,
        pairs: &mut dyn Iterator<Item = (u64, u64)>,
    ) -> Result<(), StoreError>;
}

impl BulkWriter for WriteTx {
    fn reserve_ids(&self, sequence: &str, n: u64) -> Result<u64, StoreError> {
        let mut t = self.open_table(SEQUENCES)?;
        let last = t.get(sequence)?.map_or(0, |v| v.value());
        t.insert(sequence, last + n)?;
        Ok(last + 1)
    }

    fn put_encoded<T: Record>(
        &self,
        table: RecordTable<T>,
        n: usize,
        row: &mut dyn FnMut(usize, &mut Vec<u8>) -> u64,
    ) -> Result<(), StoreError> {
        let mut t = self.open_table(table.def)?;
        let mut buf = Vec::with_capacity(256);
        for i in 0..n {
            buf.clear();
            let id = row(i, &mut buf);
            t.insert(id, buf.as_slice())?;
        }
        Ok(())
    }

    fn link_all(
        &self,
        table: IndexTable,
        pairs: &mut dyn Iterator<Item = (u64, u64)>,
    ) -> Result<(), StoreError> {
        let mut t = self.open_table(table.def)?;
        for pair in pairs {
            t.insert(pair, ())?;
        }
        Ok(())
    }
}
