//! Ordered range reads and bulk removal over [`IndexTable`] and [`RecordTable`] keys, for tables
//! whose parent key is a time (request logs by minute, roll-ups by minute/hour) and that are
//! pruned or aggregated by range rather than by one parent.

use redb::{ReadTransaction, ReadableTable};

use super::tx::WriteTx;

use super::typed::{IndexTable, LookupTable, RecordTable};
use super::{Record, StoreError};

fn missing_is_empty<T>(r: Result<T, redb::TableError>) -> Result<Option<T>, StoreError> {
    match r {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A visitor of raw records: `(key, bytes) → keep going?`.
pub type RawVisitor<'a> = dyn FnMut(u64, &[u8]) -> Result<bool, StoreError> + 'a;

/// Range reads on read and write transactions.
pub trait RangeReader {
    /// Up to `limit` `(parent, child)` pairs with `from <= pair <= to`, ascending.
    fn pairs(
        &self,
        table: IndexTable,
        from: (u64, u64),
        to: (u64, u64),
        limit: usize,
    ) -> Result<Vec<(u64, u64)>, StoreError>;
    /// The largest key of a record table, if any.
    fn last_key<T: Record>(&self, table: RecordTable<T>) -> Result<Option<u64>, StoreError>;
    /// The raw bytes of the records with key in `from..=to`, ascending, passed to `f` until it
    /// returns `false`.
    fn for_each_raw<T: Record>(
        &self,
        table: RecordTable<T>,
        from: u64,
        to: u64,
        f: &mut RawVisitor<'_>,
    ) -> Result<(), StoreError>;
    /// Up to `limit` entries of a lookup table with key after `after` (from the start when
    /// `None`), ascending.
    fn lookup_entries(
        &self,
        table: LookupTable,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, StoreError>;
}

macro_rules! impl_range_reader {
    ($tx:ty) => {
        impl RangeReader for $tx {
            fn pairs(
                &self,
                table: IndexTable,
                from: (u64, u64),
                to: (u64, u64),
                limit: usize,
            ) -> Result<Vec<(u64, u64)>, StoreError> {
                let Some(t) = missing_is_empty(self.open_table(table.def))? else {
                    return Ok(Vec::new());
                };
                let mut out = Vec::new();
                if from > to {
                    return Ok(out);
                }
                for entry in t.range(from..=to)? {
                    if out.len() >= limit {
                        break;
                    }
                    let (k, _) = entry?;
                    out.push(k.value());
                }
                Ok(out)
            }

            fn last_key<T: Record>(
                &self,
                table: RecordTable<T>,
            ) -> Result<Option<u64>, StoreError> {
                let Some(t) = missing_is_empty(self.open_table(table.def))? else {
                    return Ok(None);
                };
                let last = t.last()?.map(|(k, _)| k.value());
                Ok(last)
            }

            fn for_each_raw<T: Record>(
                &self,
                table: RecordTable<T>,
                from: u64,
                to: u64,
                f: &mut RawVisitor<'_>,
            ) -> Result<(), StoreError> {
                let Some(t) = missing_is_empty(self.open_table(table.def))? else {
                    return Ok(());
                };
                if from > to {
                    return Ok(());
                }
                for entry in t.range(from..=to)? {
                    let (k, v) = entry?;
                    if !f(k.value(), v.value())? {
                        break;
                    }
                }
                Ok(())
            }

            fn lookup_entries(
                &self,
                table: LookupTable,
                after: Option<&str>,
                limit: usize,
            ) -> Result<Vec<(String, u64)>, StoreError> {
                use std::ops::Bound;
                let Some(t) = missing_is_empty(self.open_table(table.def))? else {
                    return Ok(Vec::new());
                };
                let start = after.map_or(Bound::Unbounded, Bound::Excluded);
                let mut out = Vec::new();
                for entry in t.range::<&str>((start, Bound::Unbounded))? {
                    if out.len() >= limit {
                        break;
                    }
                    let (k, v) = entry?;
                    out.push((k.value().to_string(), v.value()));
                }
                Ok(out)
            }
        }
    };
}

impl_range_reader!(ReadTransaction);
impl_range_reader!(WriteTx);
