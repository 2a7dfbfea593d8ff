//! The index is a derived cache: deleted while stopped, it is rebuilt on start with the same
//! answers; retention prunes old records from redb, the roll-ups and the index.

use serde_json::json;

use super::{get, ingest, list, now, rfc3339};
use crate::harness::{login_admin, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_index_is_rebuilt_with_the_same_answers() {
    let server = TestServer::start().await;
    let admin = login_admin(&server).await;
    let items: Vec<_> = (0..300)
        .map(|i| json!({"service_name": "rb.Svc", "method_name": format!("M{}", i % 3), "duration_ms": i,
                        "status": if i % 10 == 0 { "error" } else { "success" }, "error_message": if i % 10 == 0 { "disk quota" } else { "" }}))
        .collect();
    assert_eq!(ingest(&server, &admin.token, json!(items)).await.status(), 201);
    let queries = [
        "service=rb.Svc&page_size=50",
        "method=M1&status=success",
        "search=quota&page=2&page_size=10",
    ];
    let mut before = Vec::new();
    for q in queries {
        before.push(list(&server, &admin, q).await["results"].clone());
    }
    let (_, audit_before) = get(&server, &admin.token, "/api/audit-logs/?page_size=100").await;
    let mut server = server;
    server.stop().await;
    std::fs::remove_dir_all(server.data_dir().join("index")).unwrap();
    let server = server.restart().await;
    let admin = login_admin(&server).await;
    for (q, want) in queries.iter().zip(&before) {
        assert_eq!(&list(&server, &admin, q).await["results"], want, "{q}");
    }
    assert_eq!(list(&server, &admin, "search=quota").await["count"], 30);
    // The audit records were re-indexed too (plus the new login).
    let (_, audit_after) = get(&server, &admin.token, "/api/audit-logs/?page_size=100").await;
    assert_eq!(audit_after["count"].as_u64().unwrap(), audit_before["count"].as_u64().unwrap() + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_old_records_everywhere() {
    let server = TestServer::start_with(&[("GATEHOUSE_LOGS_REQUEST_RETENTION_DAYS", "1")]).await;
    let admin = login_admin(&server).await;
    let items = json!([
        {"service_name": "ret.Svc", "method_name": "Old", "created_at": rfc3339(now() - 2 * 86400)},
        {"service_name": "ret.Svc", "method_name": "New"},
    ]);
    assert_eq!(ingest(&server, &admin.token, items).await.status(), 201);
    assert_eq!(list(&server, &admin, "service=ret.Svc").await["count"], 2);
    let (_, m) =
        get(&server, &admin.token, "/api/grpc/monitor/methods/?hours=720&service=ret.Svc").await;
    assert_eq!(m["total_methods"], 2);
    // Pruning runs at start (and hourly).
    let server = server.restart().await;
    let admin = login_admin(&server).await;
    let mut count = 0;
    for _ in 0..50 {
        count = list(&server, &admin, "service=ret.Svc").await["count"].as_u64().unwrap();
        if count == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(count, 1);
    let page = list(&server, &admin, "service=ret.Svc").await;
    assert_eq!(page["results"][0]["method_name"], "New");
    let (_, m) =
        get(&server, &admin.token, "/api/grpc/monitor/methods/?hours=720&service=ret.Svc").await;
    assert_eq!(m["total_methods"], 1);
    assert_eq!(m["methods"][0]["method_name"], "New");
}
