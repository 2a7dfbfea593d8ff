//! Three table shapes cover every entity: records by id, parent→child indexes and unique
//! string lookups. [`Reader`] works on read and write transactions alike.

use std::marker::PhantomData;

use redb::{ReadTransaction, ReadableTable, TableDefinition};

use super::codec::{decode, encode, Record};
use super::schema::{verify_records, Shape, TableInfo};
use super::tx::WriteTx;
use super::StoreError;

/// `u64 id → Versioned<T>`.
pub struct RecordTable<T> {
    pub def: TableDefinition<'static, u64, &'static [u8]>,
    name: &'static str,
    _marker: PhantomData<fn() -> T>,
}

impl<T> Clone for RecordTable<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for RecordTable<T> {}

impl<T> RecordTable<T> {
    pub const fn new(name: &'static str) -> Self {
        Self { def: TableDefinition::new(name), name, _marker: PhantomData }
    }
}

impl<T: Record> RecordTable<T> {
    /// This table's line in the schema registry.
    pub const fn info(self) -> TableInfo {
        TableInfo { name: self.name, shape: Shape::Records(verify_records::<T>) }
    }
}

/// `(parent id, child id) → ()`: the children of a parent, in id order.
#[derive(Clone, Copy)]
pub struct IndexTable {
    pub def: TableDefinition<'static, (u64, u64), ()>,
    name: &'static str,
}

impl IndexTable {
    pub const fn new(name: &'static str) -> Self {
        Self { def: TableDefinition::new(name), name }
    }

    /// This table's line in the schema registry.
    pub const fn info(self) -> TableInfo {
        TableInfo { name: self.name, shape: Shape::Index }
    }
}

/// `unique string key → id`.
#[derive(Clone, Copy)]
pub struct LookupTable {
    pub def: TableDefinition<'static, &'static str, u64>,
    name: &'static str,
}

impl LookupTable {
    pub const fn new(name: &'static str) -> Self {
        Self { def: TableDefinition::new(name), name }
    }

    /// This table's line in the schema registry.
    pub const fn info(self) -> TableInfo {
        TableInfo { name: self.name, shape: Shape::Lookup }
    }
}

fn missing_is_empty<T>(r: Result<T, redb::TableError>) -> Result<Option<T>, StoreError> {
    match r {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether one range scan over `ids`' span reads them more cheaply than a lookup each: they
/// ascend strictly and the span holds at most twice as many rows as are wanted.
fn scan_covers(ids: &[u64]) -> bool {
    let (Some(&first), Some(&last)) = (ids.first(), ids.last()) else { return false };
    let span = last.saturating_sub(first).saturating_add(1);
    ids.len() > 1
        && ids.windows(2).all(|w| matches!(w, [a, b] if a < b))
        && span <= 2 * ids.len() as u64
}

/// Reads that work inside read and write transactions.
pub trait Reader {
    fn get<T: Record>(&self, table: RecordTable<T>, id: u64) -> Result<Option<T>, StoreError>;
    /// The records with these ids, in the order given (missing ids skipped), opening the table
    /// once — for list pages, where a table open per row would cost more than the row.
    fn get_many<T: Record>(&self, table: RecordTable<T>, ids: &[u64])
        -> Result<Vec<T>, StoreError>;
    /// Calls `f` with the stored bytes (version byte included) of each record with these ids, in
    /// the order given, missing ids skipped, without decoding them: list pages read their few
    /// fields in place instead of allocating a record per row. Ascending ids that sit close
    /// together (an environment's variables, created together) are read with one range scan,
    /// which walks each leaf page once instead of descending the tree per id.
    fn visit_many<T: Record, E: From<StoreError>>(
        &self,
        table: RecordTable<T>,
        ids: &[u64],
        f: impl FnMut(u64, &[u8]) -> Result<(), E>,
    ) -> Result<(), E>;
    /// Child ids of `parent`, ascending.
    fn children(&self, table: IndexTable, parent: u64) -> Result<Vec<u64>, StoreError>;
    fn count_children(&self, table: IndexTable, parent: u64) -> Result<u64, StoreError>;
    fn lookup(&self, table: LookupTable, key: &str) -> Result<Option<u64>, StoreError>;
    /// Every record with id in `range`, ascending (for small tables and paging by id).
    fn scan<T: Record>(
        &self,
        table: RecordTable<T>,
        range: std::ops::RangeInclusive<u64>,
        limit: usize,
        newest_first: bool,
    ) -> Result<Vec<(u64, T)>, StoreError>;
    fn count<T: Record>(&self, table: RecordTable<T>) -> Result<u64, StoreError>;
}

macro_rules! impl_reader {
    ($tx:ty) => {
        impl Reader for $tx {
            fn get<T: Record>(
                &self,
                table: RecordTable<T>,
                id: u64,
            ) -> Result<Option<T>, StoreError> {
                let Some(t) = missing_is_empty(self.open_table(table.def))? else {
                    return Ok(None);
                };
                let found = match t.get(id)? {
                    Some(v) => Some(decode(v.value())?),
                    None => None,
                };
                Ok(found)
            }

            fn get_many<T: Record>(
                &self,
                table: RecordTable<T>,
                ids: &[u64],
            ) -> Result<Vec<T>, StoreError> {
                let Some(t) = missing_is_empty(self.open_table(table.def))? else {
                    return Ok(Vec::new());
                };
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    if let Some(v) = t.get(*id)? {
                        out.push(decode(v.value())?);
                    }
                }
                Ok(out)
            }

            fn visit_many<T: Record, E: From<StoreError>>(
                &self,
                table: RecordTable<T>,
                ids: &[u64],
                mut f: impl FnMut(u64, &[u8]) -> Result<(), E>,
            ) -> Result<(), E> {
                let Some(t) = missing_is_empty(self.open_table(table.def))? else {
                    return Ok(());
                };
                let (Some(&first), Some(&last)) = (ids.first(), ids.last()) else {
                    return Ok(());
                };
                if scan_covers(ids) {
                    let mut wanted = ids.iter().copied().peekable();
                    for entry in t.range(first..=last).map_err(StoreError::from)? {
                        let (k, v) = entry.map_err(StoreError::from)?;
                        let id = k.value();
                        while wanted.next_if(|w| *w < id).is_some() {}
                        if wanted.next_if_eq(&id).is_some() {
                            f(id, v.value())?;
                        }
                    }
                    return Ok(());
                }
                for &id in ids {
                    if let Some(v) = t.get(id).map_err(StoreError::from)? {
                        f(id, v.value())?;
                    }
                }
                Ok(())
            }

            fn children(&self, table: IndexTable, parent: u64) -> Result<Vec<u64>, StoreError> {
                let Some(t) = missing_is_empty(self.open_table(table.def))? else {
                    return Ok(Vec::new());
                };
                let mut out = Vec::new();
                for entry in t.range((parent, 0)..=(parent, u64::MAX))? {
                    let (k, _) = entry?;
                    out.push(k.value().1);
                }
                Ok(out)
            }

            fn count_children(&self, table: IndexTable, parent: u64) -> Result<u64, StoreError> {
                let Some(t) = missing_is_empty(self.open_table(table.def))? else { return Ok(0) };
                let mut n = 0;
                for entry in t.range((parent, 0)..=(parent, u64::MAX))? {
                    entry?;
                    n += 1;
                }
                Ok(n)
            }

            fn lookup(&self, table: LookupTable, key: &str) -> Result<Option<u64>, StoreError> {
                let Some(t) = missing_is_empty(self.open_table(table.def))? else {
                    return Ok(None);
                };
                let found = t.get(key)?.map(|v| v.value());
                Ok(found)
            }

            fn scan<T: Record>(
                &self,
                table: RecordTable<T>,
                range: std::ops::RangeInclusive<u64>,
                limit: usize,
                newest_first: bool,
            ) -> Result<Vec<(u64, T)>, StoreError> {
                let Some(t) = missing_is_empty(self.open_table(table.def))? else {
                    return Ok(Vec::new());
                };
                let mut out = Vec::new();
                let iter = t.range(range)?;
                let mut push = |entry: Result<
                    (redb::AccessGuard<'_, u64>, redb::AccessGuard<'_, &[u8]>),
                    redb::StorageError,
                >|
                 -> Result<bool, StoreError> {
                    let (k, v) = entry?;
                    out.push((k.value(), decode(v.value())?));
                    Ok(out.len() < limit)
                };
                if newest_first {
                    for entry in iter.rev() {
                        if !push(entry)? {
                            break;
                        }
                    }
                } else {
                    for entry in iter {
                        if !push(entry)? {
                            break;
                        }
                    }
                }
                Ok(out)
            }

            fn count<T: Record>(&self, table: RecordTable<T>) -> Result<u64, StoreError> {
                use redb::ReadableTableMetadata as _;
                let Some(t) = missing_is_empty(self.open_table(table.def))? else { return Ok(0) };
                Ok(t.len()?)
            }
        }
    };
}

impl_reader!(ReadTransaction);
impl_reader!(WriteTx);

/// Writes, only inside a write transaction.
pub trait Writer {
    fn put<T: Record>(&self, table: RecordTable<T>, id: u64, value: &T) -> Result<(), StoreError>;
    fn remove<T: Record>(&self, table: RecordTable<T>, id: u64) -> Result<bool, StoreError>;
    fn link(&self, table: IndexTable, parent: u64, child: u64) -> Result<(), StoreError>;
    fn unlink(&self, table: IndexTable, parent: u64, child: u64) -> Result<(), StoreError>;
    /// Inserts a unique key; returns `false` (and changes nothing) if it already exists.
    fn claim(&self, table: LookupTable, key: &str, id: u64) -> Result<bool, StoreError>;
    fn set_lookup(&self, table: LookupTable, key: &str, id: u64) -> Result<(), StoreError>;
    fn release(&self, table: LookupTable, key: &str) -> Result<(), StoreError>;
    /// The next id of the named sequence (starting at 1).
    fn next_id(&self, sequence: &str) -> Result<u64, StoreError>;
}

impl Writer for WriteTx {
    fn put<T: Record>(&self, table: RecordTable<T>, id: u64, value: &T) -> Result<(), StoreError> {
        let bytes = encode(value)?;
        self.open_table(table.def)?.insert(id, bytes.as_slice())?;
        Ok(())
    }

    fn remove<T: Record>(&self, table: RecordTable<T>, id: u64) -> Result<bool, StoreError> {
        Ok(self.open_table(table.def)?.remove(id)?.is_some())
    }

    fn link(&self, table: IndexTable, parent: u64, child: u64) -> Result<(), StoreError> {
        self.open_table(table.def)?.insert((parent, child), ())?;
        Ok(())
    }

    fn unlink(&self, table: IndexTable, parent: u64, child: u64) -> Result<(), StoreError> {
        self.open_table(table.def)?.remove((parent, child))?;
        Ok(())
    }

    fn claim(&self, table: LookupTable, key: &str, id: u64) -> Result<bool, StoreError> {
        let mut t = self.open_table(table.def)?;
        if t.get(key)?.is_some() {
            return Ok(false);
        }
        t.insert(key, id)?;
        Ok(true)
    }

    fn set_lookup(&self, table: LookupTable, key: &str, id: u64) -> Result<(), StoreError> {
        self.open_table(table.def)?.insert(key, id)?;
        Ok(())
    }

    fn release(&self, table: LookupTable, key: &str) -> Result<(), StoreError> {
        self.open_table(table.def)?.remove(key)?;
        Ok(())
    }

    fn next_id(&self, sequence: &str) -> Result<u64, StoreError> {
        let mut t = self.open_table(super::schema::SEQUENCES)?;
        let next = t.get(sequence)?.map_or(0, |v| v.value()) + 1;
        t.insert(sequence, next)?;
        Ok(next)
    }
}

#[cfg(test)]
#[path = "typed_tests.rs"]
mod tests;
