//! `visit_many`: the range scan and the per-id lookups answer alike.

use redb::ReadableDatabase as _;
use serde::{Deserialize, Serialize};

use super::*;

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Thing {
    n: u64,
}

impl Record for Thing {
    const VERSION: u8 = 1;
    const NAME: &'static str = "things";
}

const THINGS: RecordTable<Thing> = RecordTable::new("things");

fn visited(tx: &impl Reader, ids: &[u64]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    tx.visit_many(THINGS, ids, |id, bytes| -> Result<(), StoreError> {
        out.push((id, decode::<Thing>(bytes)?.n));
        Ok(())
    })
    .unwrap();
    out
}

#[test]
fn range_scans_and_lookups_visit_the_same_rows_in_the_given_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = redb::Database::create(dir.path().join("t.redb")).unwrap();
    let tx = crate::store::WriteTx::new(db.begin_write().unwrap());
    // Every id from 1 to 300 except multiples of 7, which are missing.
    for id in (1..=300u64).filter(|i| i % 7 != 0) {
        tx.put(THINGS, id, &Thing { n: id * 10 }).unwrap();
    }
    tx.into_parts().0.commit().unwrap();
    let tx = db.begin_read().unwrap();

    let expect = |ids: &[u64]| -> Vec<(u64, u64)> {
        ids.iter().filter(|i| *i % 7 != 0).map(|i| (*i, i * 10)).collect()
    };
    // Dense and ascending: one range scan, with gaps, missing ids and rows between wanted ones.
    let dense: Vec<u64> = (10..=120).filter(|i| i % 3 != 0).collect();
    assert!(scan_covers(&dense));
    assert_eq!(visited(&tx, &dense), expect(&dense));
    // Sparse, descending or repeated: a lookup per id, in the order given.
    for ids in [vec![1, 150, 299], vec![40, 30, 20, 10], vec![5, 5, 6], vec![42], vec![]] {
        assert!(!scan_covers(&ids));
        assert_eq!(visited(&tx, &ids), expect(&ids));
    }
    // Ids past the end and a table that does not exist yet.
    assert_eq!(visited(&tx, &[299, 300, 301, 302]), vec![(299, 2990), (300, 3000)]);
    let none: RecordTable<Thing> = RecordTable::new("absent");
    let mut calls = 0;
    tx.visit_many(none, &[1, 2], |_, _| -> Result<(), StoreError> {
        calls += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(calls, 0);
}
