//! Pipeline tests on a real data file and index in a temp dir: ingest → redb + roll-ups +
//! index, filters, read-your-writes, audit following, rebuild after the index is deleted,
//! retention, and percentile arithmetic.

use std::sync::Arc;

use super::rollups::{Agg, BOUNDS};
use super::*;
use crate::config::LogsConfig;
use crate::crypto::SecretKey;
use crate::domain::audit::{self, Actor, AuditEvent};

fn open(dir: &Path) -> (Store, Arc<LogService>) {
    let key = SecretKey::from_bytes([7; 32]);
    let (store, _) = Store::open(&dir.join("gatehouse.redb"), &key, 16, 256, &[]).unwrap();
    let logs = LogService::start(&store, dir, &LogsConfig::default()).unwrap();
    (store, logs)
}

fn close(store: Store, logs: Arc<LogService>) {
    logs.shutdown();
    drop(logs);
    store.close();
}

fn rec(service: &str, method: &str, status: &str, ms: u64, at: i64) -> RequestLog {
    RequestLog {
        request_id: format!("req-{service}-{method}-{ms}"),
        service_name: service.to_string().into(),
        method_name: method.to_string().into(),
        status: status.to_string().into(),
        duration_ms: ms,
        created_at: at,
        path: format!("/api/{method}/"),
        ..RequestLog::default()
    }
}

fn all() -> RequestFilter {
    RequestFilter::default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_filter_and_read_your_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (store, logs) = open(dir.path());
    let now = crate::clock::unix_now();
    let ids = logs
        .ingest(vec![
            rec("a.S", "Get", "success", 10, now - 30),
            rec("a.S", "Put", "error", 20, now - 20),
            rec("b.T", "Get", "success", 30, now - 10),
        ])
        .await
        .unwrap();
    assert_eq!(ids.len(), 3);
    // No sleep: the list waits for the index.
    let (count, rows) = logs.list_requests(all(), 0, 10).await.unwrap();
    assert_eq!(count, 3);
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), vec![ids[2], ids[1], ids[0]]);
    let f = RequestFilter { service: Some("a.S".into()), ..all() };
    assert_eq!(logs.list_requests(f, 0, 10).await.unwrap().0, 2);
    let f = RequestFilter { status: Some("error".into()), ..all() };
    assert_eq!(logs.list_requests(f, 0, 10).await.unwrap().1[0].method_name, "Put");
    let f = RequestFilter { search: Some("put".into()), ..all() };
    assert_eq!(logs.list_requests(f, 0, 10).await.unwrap().0, 1);
    let f = RequestFilter { from: Some(now - 15), ..all() };
    assert_eq!(logs.list_requests(f, 0, 10).await.unwrap().0, 1);
    // Queued (not ingested) records are visible on the next list too.
    logs.log(rec("c.U", "Ping", "success", 1, now)).await;
    let f = RequestFilter { service: Some("c.U".into()), ..all() };
    assert_eq!(logs.list_requests(f, 0, 10).await.unwrap().0, 1);
    close(store, logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_come_from_rollups() {
    let dir = tempfile::tempdir().unwrap();
    let (store, logs) = open(dir.path());
    let now = crate::clock::unix_now();
    let durations = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
    let mut batch: Vec<RequestLog> =
        durations.iter().map(|d| rec("svc", "M", "success", *d, now - 60)).collect();
    batch[9].status = "error".into();
    batch.push(rec("svc", "N", "timeout", 5, now - 7200));
    batch.push(rec("old", "X", "success", 1, now - 3 * 86400));
    logs.ingest(batch).await.unwrap();
    let from = rollups::window_start(now, 24);
    let o = store.read(|tx| stats::overview(tx, from)).unwrap();
    assert_eq!((o.agg.total, o.agg.success, o.agg.error, o.agg.timeout), (11, 9, 1, 1));
    assert_eq!(o.services, 1);
    let methods = store.read(|tx| stats::methods(tx, from, Some("svc"))).unwrap();
    let m = &methods[0];
    assert_eq!((m.method.as_str(), m.agg.total, m.agg.min(), m.agg.max_ms), ("M", 10, 10, 100));
    assert!((m.agg.avg() - 55.0).abs() < 1e-9);
    assert!((m.agg.success_rate() - 90.0).abs() < 1e-9);
    // sorted[floor(n·q)]: p50 → 60, p95 → 100, p99 → 100.
    assert_eq!(m.agg.percentile(0.5), Some(60));
    assert_eq!(m.agg.percentile(0.95), Some(100));
    let wide = store.read(|tx| stats::overview(tx, rollups::window_start(now, 720))).unwrap();
    assert_eq!((wide.agg.total, wide.services), (12, 2));
    let line = store.read(|tx| stats::timeline(tx, from, false)).unwrap();
    assert_eq!(line.iter().map(|(_, a)| a.total).sum::<u64>(), 11);
    close(store, logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_is_followed_and_scoped() {
    let dir = tempfile::tempdir().unwrap();
    let (store, logs) = open(dir.path());
    for (user, org, action) in [
        (1, Some(10), "project_created"),
        (2, Some(20), "variable_updated"),
        (1, None, "user_login"),
    ] {
        store
            .write(move |tx| {
                let actor = Actor { user_id: Some(user), name: "N".into(), email: "e@x".into(), ip: None };
                audit::record(tx, AuditEvent {
                    actor: &actor,
                    organization_id: org,
                    action,
                    target_type: "project",
                    target_id: "5".into(),
                    details: serde_json::json!({"variable_key": "API_KEY", "environment_name": "production"}),
                })
            })
            .await
            .unwrap();
    }
    let f = |scope, search: Option<&str>| AuditFilter {
        scope,
        user: None,
        action: None,
        target_type: None,
        from: None,
        to: None,
        search: search.map(str::to_string),
    };
    assert_eq!(logs.list_audit(f(AuditScope::All, None), 0, 10).await.unwrap().0, 3);
    let mine = AuditScope::Limited { user: 1, orgs: vec![] };
    assert_eq!(logs.list_audit(f(mine, None), 0, 10).await.unwrap().0, 2);
    let admin = AuditScope::Limited { user: 3, orgs: vec![20] };
    let (n, rows) = logs.list_audit(f(admin, None), 0, 10).await.unwrap();
    assert_eq!((n, rows[0].action.as_str()), (1, "variable_updated"));
    assert_eq!(logs.list_audit(f(AuditScope::All, Some("production")), 0, 10).await.unwrap().0, 3);
    assert_eq!(logs.list_audit(f(AuditScope::All, Some("staging")), 0, 10).await.unwrap().0, 0);
    close(store, logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_index_is_rebuilt_with_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    let now = crate::clock::unix_now();
    let (store, logs) = open(dir.path());
    let batch: Vec<RequestLog> = (0..2500)
        .map(|i| rec("s", if i % 2 == 0 { "A" } else { "B" }, "success", i, now - 100))
        .collect();
    logs.ingest(batch).await.unwrap();
    let before = logs
        .list_requests(RequestFilter { method: Some("A".into()), ..all() }, 0, 5)
        .await
        .unwrap();
    close(store, logs);
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let (store, logs) = open(dir.path());
    let after = logs
        .list_requests(RequestFilter { method: Some("A".into()), ..all() }, 0, 5)
        .await
        .unwrap();
    assert_eq!(before, after);
    assert_eq!(after.0, 1250);
    close(store, logs);
    // A corrupt index is rebuilt too.
    std::fs::write(dir.path().join("index").join("meta.json"), b"{not json").unwrap();
    let (store, logs) = open(dir.path());
    assert_eq!(logs.list_requests(all(), 0, 1).await.unwrap().0, 2500);
    close(store, logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_of_an_older_schema_is_rebuilt_from_redb() {
    let dir = tempfile::tempdir().unwrap();
    let now = crate::clock::unix_now();
    let (store, logs) = open(dir.path());
    let batch: Vec<RequestLog> = (0..30).map(|i| rec("s", "A", "error", i, now - 50)).collect();
    logs.ingest(batch).await.unwrap();
    close(store, logs);
    // Replace the index by one of the previous schema that claims to hold all 30 records.
    let index = dir.path().join("index");
    std::fs::remove_dir_all(&index).unwrap();
    index::index_tests::write_v1_index(&index, 30);
    let (store, logs) = open(dir.path());
    let filter =
        RequestFilter { status: Some("error".into()), search: Some("api".into()), ..all() };
    assert_eq!(logs.list_requests(filter, 0, 5).await.unwrap().0, 30);
    close(store, logs);
}

/// L12 across a restart: an index of schema 2 (ids truncated to 32 bits) that claims to hold
/// everything is detected on start and rebuilt from redb, and ids past 2^32 — in redb, in the
/// index and in the pending set — come back whole from both lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_past_two_to_the_32_survive_a_rebuild_from_a_schema_2_index() {
    let dir = tempfile::tempdir().unwrap();
    let now = crate::clock::unix_now();
    let big = 1u64 << 32;
    let (store, logs) = open(dir.path());
    // Jump both sequences past 2^32, as years of traffic would.
    store
        .write(move |tx| {
            crate::store::BulkWriter::reserve_ids(tx, "request_log", big)?;
            crate::store::BulkWriter::reserve_ids(tx, "audit", big)
        })
        .await
        .unwrap();
    let ids = logs
        .ingest((0..3).map(|i| rec("big", "M", "success", i, now - 10 + i as i64)).collect())
        .await
        .unwrap();
    assert_eq!(ids, vec![big + 1, big + 2, big + 3]);
    for org in [1u64, 2] {
        store
            .write(move |tx| {
                let actor =
                    Actor { user_id: Some(org), name: "N".into(), email: "e@x".into(), ip: None };
                audit::record(
                    tx,
                    AuditEvent {
                        actor: &actor,
                        organization_id: Some(org),
                        action: "project_created",
                        target_type: "project",
                        target_id: "5".into(),
                        details: serde_json::json!({}),
                    },
                )
            })
            .await
            .unwrap();
    }
    let (n, rows) = logs.list_requests(all(), 0, 10).await.unwrap();
    assert_eq!(
        (n, rows.iter().map(|r| r.id).collect::<Vec<_>>()),
        (3, vec![big + 3, big + 2, big + 1])
    );
    close(store, logs);

    let index = dir.path().join("index");
    std::fs::remove_dir_all(&index).unwrap();
    index::index_tests::write_v2_index(&index, big + 3, big + 2);
    let (store, logs) = open(dir.path());
    let (n, rows) = logs.list_requests(all(), 0, 10).await.unwrap();
    assert_eq!(
        (n, rows.iter().map(|r| r.id).collect::<Vec<_>>()),
        (3, vec![big + 3, big + 2, big + 1])
    );
    let only = |user| AuditFilter {
        scope: AuditScope::Limited { user, orgs: vec![] },
        user: None,
        action: None,
        target_type: None,
        from: None,
        to: None,
        search: None,
    };
    let (n, rows) = logs.list_audit(only(2), 0, 10).await.unwrap();
    assert_eq!((n, rows.len(), rows[0].id, rows[0].user_id), (1, 1, big + 2, Some(2)));
    let (n, rows) = logs.list_audit(only(1), 0, 10).await.unwrap();
    assert_eq!((n, rows[0].id), (1, big + 1));
    close(store, logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_records_rollups_and_index() {
    let dir = tempfile::tempdir().unwrap();
    let (store, logs) = open(dir.path());
    let now = crate::clock::unix_now();
    logs.ingest(vec![
        rec("s", "Old", "success", 1, now - 40 * 86400),
        rec("s", "New", "success", 1, now),
    ])
    .await
    .unwrap();
    let pruned = retention::run_once(&logs, &store, now).await.unwrap();
    assert_eq!(pruned.requests, 1);
    assert!(pruned.buckets >= 2);
    let (n, rows) = logs.list_requests(all(), 0, 10).await.unwrap();
    assert_eq!((n, &*rows[0].method_name), (1, "New"));
    let o = store.read(|tx| stats::overview(tx, 0)).unwrap();
    assert_eq!(o.agg.total, 1);
    close(store, logs);
}

#[test]
fn percentiles_follow_the_histogram() {
    let mut a = Agg::default();
    assert_eq!(a.percentile(0.5), None);
    for ms in [1, 2, 3, 4, 1000] {
        a.add_record(&rec("s", "m", "success", ms, 0));
    }
    assert_eq!(
        (a.percentile(0.5), a.percentile(0.99), a.min(), a.max_ms),
        (Some(3), Some(1000), 1, 1000)
    );
    let mut big = Agg::default();
    big.add_record(&rec("s", "m", "success", 10_000_000, 0));
    assert_eq!(big.percentile(0.5), Some(10_000_000));
    assert!(BOUNDS.windows(2).all(|w| w[0] < w[1]));
}
