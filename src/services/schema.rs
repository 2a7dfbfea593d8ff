//! The schema registry: every table of the data file, listed by the area that declares it, and
//! every migration. `gatehouse check`, the state dumps of the tests and (later) backups walk
//! [`TABLES`]; [`MIGRATIONS`] is what `Store::open` runs. A new table is one line in its area's
//! `TABLES`; a new area is one line here.

use crate::store::{Migration, TableInfo};

/// Every table, area by area: the engine's own first.
pub const TABLES: &[&[TableInfo]] = &[
    crate::store::schema::TABLES,
    crate::domain::accounts::tables::TABLES,
    crate::domain::orgs::tables::TABLES,
    crate::domain::credentials::tables::TABLES,
    crate::domain::secrets::tables::TABLES,
    crate::domain::audit::tables::TABLES,
    crate::domain::protos::tables::TABLES,
    crate::domain::deployments::tables::TABLES,
    crate::domain::two_factor::tables::TABLES,
    crate::logs::tables::TABLES,
];

/// Ordered by version; the last one's version is the schema this binary writes.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 2, run: crate::domain::secrets::tables::variables_to_binary },
    Migration { version: 3, run: crate::domain::orgs::tables::organization_uuids },
    Migration { version: 4, run: crate::domain::credentials::tables::pat_uuids },
];

/// Every registered table, flattened.
pub fn all_tables() -> impl Iterator<Item = &'static TableInfo> {
    TABLES.iter().flat_map(|area| area.iter())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn table_names_are_unique() {
        let mut seen = BTreeSet::new();
        for t in all_tables() {
            assert!(seen.insert(t.name), "table {} is registered twice", t.name);
        }
    }

    /// Every table declared anywhere in the sources (through `RecordTable::new` and its kin,
    /// outside test files) is in the registry: a table whose area forgot its `TABLES` line
    /// fails here, before anything writes it.
    #[test]
    fn every_declared_table_is_registered() {
        let registered: BTreeSet<&str> = all_tables().map(|t| t.name).collect();
        let mut missing = Vec::new();
        let mut dirs = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                if !name.ends_with(".rs") || name == "tests.rs" || name.ends_with("_tests.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for shape in ["RecordTable::new(\"", "IndexTable::new(\"", "LookupTable::new(\""] {
                    for (at, _) in text.match_indices(shape) {
                        let rest = &text[at + shape.len()..];
                        let table = &rest[..rest.find('"').unwrap()];
                        if !registered.contains(table) {
                            missing.push(format!("{}: {table}", path.display()));
                        }
                    }
                }
            }
        }
        assert!(missing.is_empty(), "tables missing from the registry:\n{}", missing.join("\n"));
    }

    #[test]
    fn migrations_are_ordered_and_contiguous() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as u64 + 2, "migration versions must run 2, 3, …");
        }
    }
}
