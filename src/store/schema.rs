//! The engine's own tables (`meta`, `sequences`) and the types of the schema registry: each
//! domain area lists its tables as [`TableInfo`]s, and the registry above the areas
//! (`services::schema`) joins the lists, so backup, `check`, migrations and state dumps walk
//! one list and a new table cannot be forgotten.

use redb::{
    ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle as _,
};

use super::codec::{decode, Record};
use super::tx::WriteTx;
use super::StoreError;

/// `name → bytes`: schema version, creation time, instance id, master key check value,
/// the sealed TLS CA and leaf, the JWT signing key.
pub const META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("meta");

/// `sequence name → last id handed out`.
pub const SEQUENCES: TableDefinition<'static, &str, u64> = TableDefinition::new("sequences");

/// The engine's tables, listed first in the registry.
pub const TABLES: &[TableInfo] = &[
    TableInfo { name: "meta", shape: Shape::Meta },
    TableInfo { name: "sequences", shape: Shape::Sequences },
];

/// One table of the data file, as the registry lists it.
#[derive(Clone, Copy)]
pub struct TableInfo {
    pub name: &'static str,
    pub shape: Shape,
}

/// What a table holds, and so how `check` reads it.
#[derive(Clone, Copy)]
pub enum Shape {
    /// `u64 id → Versioned<T>`; the function decodes every row and returns the row count.
    Records(fn(&ReadTransaction, &'static str) -> Result<u64, StoreError>),
    /// `(parent, child) → ()`.
    Index,
    /// `unique string → id`.
    Lookup,
    /// `meta`.
    Meta,
    /// `sequences`.
    Sequences,
}

impl TableInfo {
    /// Reads every row of the table (decoding records) and returns how many there are. A table
    /// that was never written counts as empty.
    pub fn verify(&self, tx: &ReadTransaction) -> Result<u64, StoreError> {
        let missing = |e: &redb::TableError| matches!(e, redb::TableError::TableDoesNotExist(_));
        let len = match self.shape {
            Shape::Records(check) => return check(tx, self.name),
            Shape::Index => {
                let def: TableDefinition<'static, (u64, u64), ()> = TableDefinition::new(self.name);
                match tx.open_table(def) {
                    Ok(t) => t.len()?,
                    Err(e) if missing(&e) => 0,
                    Err(e) => return Err(e.into()),
                }
            }
            Shape::Lookup => {
                let def: TableDefinition<'static, &str, u64> = TableDefinition::new(self.name);
                match tx.open_table(def) {
                    Ok(t) => t.len()?,
                    Err(e) if missing(&e) => 0,
                    Err(e) => return Err(e.into()),
                }
            }
            Shape::Meta => tx.open_table(META)?.len()?,
            Shape::Sequences => match tx.open_table(SEQUENCES) {
                Ok(t) => t.len()?,
                Err(e) if missing(&e) => 0,
                Err(e) => return Err(e.into()),
            },
        };
        Ok(len)
    }
}

/// What [`verify`] found: rows per registered table, and tables of the file the registry
/// does not name.
#[derive(Debug, Default)]
pub struct Verified {
    pub rows: Vec<(&'static str, u64)>,
    pub unknown: Vec<String>,
}

/// Reads every registered table in one snapshot (decoding every record) and lists the file's
/// tables that no area registered (a table the registry forgot, or a file from another build).
pub fn verify<'a>(
    tx: &ReadTransaction,
    tables: impl IntoIterator<Item = &'a TableInfo>,
) -> Result<Verified, StoreError> {
    let mut out = Verified::default();
    let mut known = std::collections::BTreeSet::new();
    for table in tables {
        known.insert(table.name);
        out.rows.push((table.name, table.verify(tx)?));
    }
    for handle in tx.list_tables()? {
        let name = handle.name().to_string();
        if !known.contains(name.as_str()) {
            out.unknown.push(name);
        }
    }
    Ok(out)
}

/// Names of the file's tables that `tables` does not list (without reading any rows).
pub fn verify_names<'a>(
    tx: &ReadTransaction,
    tables: impl IntoIterator<Item = &'a TableInfo>,
) -> Result<Vec<String>, StoreError> {
    let known: std::collections::BTreeSet<&str> = tables.into_iter().map(|t| t.name).collect();
    let mut unknown = Vec::new();
    for handle in tx.list_tables()? {
        if !known.contains(handle.name()) {
            unknown.push(handle.name().to_string());
        }
    }
    Ok(unknown)
}

/// Decodes every record of a record table (the [`Shape::Records`] check).
pub(super) fn verify_records<T: Record>(
    tx: &ReadTransaction,
    name: &'static str,
) -> Result<u64, StoreError> {
    let def: TableDefinition<'static, u64, &[u8]> = TableDefinition::new(name);
    let table = match tx.open_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let mut rows = 0;
    for entry in table.iter()? {
        let (_, value) = entry?;
        decode::<T>(value.value())?;
        rows += 1;
    }
    Ok(rows)
}

/// A migration from schema `version - 1` to `version`, declared by the area whose records it
/// rewrites and listed in the registry.
pub struct Migration {
    pub version: u64,
    pub run: fn(&WriteTx) -> Result<(), StoreError>,
}
