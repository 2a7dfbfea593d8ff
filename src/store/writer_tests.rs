//! Relaxed commits: visible at once, on disk within the flush interval.

use std::time::Duration;

use redb::ReadableDatabase as _;

use crate::crypto::SecretKey;
use crate::store::{get_meta, put_meta, read_meta, Store, StoreError};

fn copy_and_read(path: &std::path::Path, key: &str) -> Option<Vec<u8>> {
    let copy = path.with_extension("copy");
    std::fs::copy(path, &copy).unwrap();
    // Opening a copy of a file that is still open runs redb's recovery, which keeps exactly
    // what reached the disk durably.
    let db = redb::Database::create(&copy).unwrap();
    let tx = db.begin_read().unwrap();
    read_meta(&tx, key).unwrap()
}

#[tokio::test]
async fn relaxed_commits_are_visible_at_once_and_durable_within_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.redb");
    let (store, _) = Store::open(&path, &SecretKey::generate().unwrap(), 8, 16, &[]).unwrap();

    store
        .write_relaxed(|tx| -> Result<(), StoreError> { put_meta(tx, "relaxed", b"one") })
        .await
        .unwrap();
    let seen = store.read(|tx| read_meta(tx, "relaxed")).unwrap();
    assert_eq!(seen.as_deref(), Some(&b"one"[..]));

    tokio::time::sleep(super::FLUSH_INTERVAL + Duration::from_millis(400)).await;
    assert_eq!(copy_and_read(&path, "relaxed").as_deref(), Some(&b"one"[..]));

    // A durable write after relaxed ones carries them too, and is itself on disk at once.
    store
        .write_relaxed(|tx| -> Result<(), StoreError> { put_meta(tx, "relaxed", b"two") })
        .await
        .unwrap();
    store
        .write(|tx| -> Result<(), StoreError> {
            assert_eq!(get_meta(tx, "relaxed")?.as_deref(), Some(&b"two"[..]));
            put_meta(tx, "durable", b"three")
        })
        .await
        .unwrap();
    assert_eq!(copy_and_read(&path, "relaxed").as_deref(), Some(&b"two"[..]));
    assert_eq!(copy_and_read(&path, "durable").as_deref(), Some(&b"three"[..]));
    store.close();
}
