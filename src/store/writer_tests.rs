//! Relaxed commits (visible at once, on disk within the flush interval) and commit effects.

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

/// What the test sink saw: the effects of each committed batch, in order.
type Seen = std::sync::Arc<parking_lot::Mutex<Vec<Vec<u32>>>>;

fn store_with_sink(path: &std::path::Path) -> (Store, Seen) {
    let (store, _) = Store::open(path, &SecretKey::generate().unwrap(), 8, 16, &[]).unwrap();
    let seen: Seen = Default::default();
    let sink_seen = std::sync::Arc::clone(&seen);
    let installed = store.set_effect_sink(Box::new(move |effects| {
        let batch = effects.into_iter().filter_map(|e| e.downcast::<u32>().ok()).map(|e| *e);
        sink_seen.lock().push(batch.collect());
    }));
    assert!(installed);
    assert!(!store.set_effect_sink(Box::new(|_| {})), "the sink is installed once");
    (store, seen)
}

#[tokio::test]
async fn effects_reach_the_sink_before_the_caller_and_only_for_committed_mutations() {
    let dir = tempfile::tempdir().unwrap();
    let (store, seen) = store_with_sink(&dir.path().join("e.redb"));

    let probe = std::sync::Arc::clone(&seen);
    store
        .write(|tx| -> Result<(), StoreError> {
            tx.on_commit(1u32);
            put_meta(tx, "a", b"1")
        })
        .await
        .unwrap();
    // The answer comes after the sink ran.
    assert_eq!(*probe.lock(), vec![vec![1]]);

    // A mutation that fails leaves no effect, even one queued before it failed.
    let failed = store
        .write(|tx| -> Result<(), StoreError> {
            tx.on_commit(2u32);
            Err(StoreError::NotRun)
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(*seen.lock(), vec![vec![1]]);

    // Concurrent writers share a batch: a failing one is replayed out, the others' effects stay.
    let (a, b, c) = tokio::join!(
        store.write(|tx| -> Result<(), StoreError> {
            tx.on_commit(3u32);
            put_meta(tx, "b", b"3")
        }),
        store.write(|tx| -> Result<(), StoreError> {
            tx.on_commit(4u32);
            Err(StoreError::NotRun)
        }),
        store.write(|tx| -> Result<(), StoreError> {
            tx.on_commit(5u32);
            put_meta(tx, "c", b"5")
        }),
    );
    assert!(a.is_ok() && b.is_err() && c.is_ok());
    let mut all: Vec<u32> = seen.lock().iter().flatten().copied().collect();
    all.sort_unstable();
    assert_eq!(all, vec![1, 3, 5]);
    store.close();
}

#[tokio::test]
async fn below_the_reserve_writes_are_refused_as_disk_full_and_resume_above_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) =
        Store::open(&dir.path().join("r.redb"), &SecretKey::generate().unwrap(), 8, 16, &[])
            .unwrap();
    store.disk_space().set_reserve(u64::MAX);
    let refused =
        store.write(|tx| -> Result<(), StoreError> { put_meta(tx, "k", b"no") }).await.unwrap_err();
    assert!(matches!(refused, StoreError::BatchCommit(_)), "{refused}");
    assert_eq!(refused.unavailable(), Some(crate::store::Unavailable::DiskFull));
    assert!(store.disk_space().refusing_writes());
    assert_eq!(store.disk_space().refused(), 1);
    // Reads keep working, and the refused write left nothing.
    assert_eq!(store.read(|tx| read_meta(tx, "k")).unwrap(), None);

    store.disk_space().set_reserve(0);
    store.write(|tx| -> Result<(), StoreError> { put_meta(tx, "k", b"yes") }).await.unwrap();
    assert!(!store.disk_space().refusing_writes());
    assert_eq!(store.read(|tx| read_meta(tx, "k")).unwrap().as_deref(), Some(&b"yes"[..]));
    store.close();
}
