//! `POST /api/grpc/monitor/requests/`: batches with invalid items, limits, who may report, and
//! every list filter over reported records.

use serde_json::json;

use super::{get, ingest, list, now, rfc3339};
use crate::harness::{assert_error, auth, login_admin, register, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_reports_invalid_items_by_index() {
    let server = TestServer::start().await;
    let admin = login_admin(&server).await;
    let at = now() - 60;
    let items = json!([
        {"service_name": "ing.Alpha", "method_name": "Get", "duration_ms": 12, "status": "success"},
        {"service_name": "ing.Alpha", "duration_ms": -5},
        "not an object",
        {"service_name": "ing.Alpha", "method_name": "Put", "status": "error", "grpc_status_code": "INTERNAL",
         "error_message": "boom", "client_ip": "10.1.2.3", "user_id": 7, "username": "svc", "api_key_id": 3,
         "api_key_name": "Analytics", "created_at": rfc3339(at), "request_id": "ing-req-0001"},
        {"service_name": "ing.Alpha", "method_name": "X", "status": "nonsense", "client_ip": "nope"},
    ]);
    let resp = ingest(&server, &admin.token, items).await;
    assert_eq!(resp.status(), 201);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        (body["received"].as_u64(), body["stored"].as_u64(), body["rejected"].as_u64()),
        (Some(5), Some(2), Some(3))
    );
    let bad: Vec<u64> =
        body["errors"].as_array().unwrap().iter().map(|e| e["index"].as_u64().unwrap()).collect();
    assert_eq!(bad, vec![1, 2, 4]);
    assert!(body["errors"][0]["errors"]["method_name"].is_array());
    assert!(body["errors"][0]["errors"]["duration_ms"].is_array());
    assert!(body["errors"][2]["errors"]["status"].is_array());
    assert!(body["errors"][2]["errors"]["client_ip"].is_array());
    assert_eq!(body["ids"].as_array().unwrap().len(), 2);

    let page = list(&server, &admin, "service=ing.Alpha").await;
    assert_eq!(page["count"], 2);
    // Pick by name: the order of records reported with past `created_at`s is checked by the
    // filter tests below; this test is about the fields of one stored item.
    let put = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["method_name"] == "Put")
        .expect("the Put record is listed");
    assert_eq!(put["method_name"], "Put");
    assert_eq!(put["request_id"], "ing-req-0001");
    assert_eq!(put["grpc_status_code"], "INTERNAL");
    assert_eq!(put["error_message"], "boom");
    assert_eq!(put["client_ip"], "10.1.2.3");
    assert_eq!((put["user_id"].as_u64(), put["api_key_id"].as_u64()), (Some(7), Some(3)));
    assert_eq!(
        (put["username"].as_str(), put["api_key_name"].as_str()),
        (Some("svc"), Some("Analytics"))
    );
    assert_eq!(put["is_authenticated"], true);
    assert_eq!(put["created_at"], rfc3339(at).as_str());
    assert_eq!(put["http_status"], serde_json::Value::Null);

    // Nothing valid, empty, too many, malformed: 400 in the error format.
    assert_error(ingest(&server, &admin.token, json!([{"method_name": "x"}])).await, 400).await;
    assert_error(ingest(&server, &admin.token, json!([])).await, 400).await;
    let many: Vec<_> =
        (0..1001).map(|_| json!({"service_name": "s", "method_name": "m"})).collect();
    assert_error(ingest(&server, &admin.token, json!(many)).await, 400).await;
    let raw = server
        .client
        .post(server.url("/api/grpc/monitor/requests/"))
        .header("authorization", auth(&admin.token))
        .header("content-type", "application/json")
        .body("{\"requests\": [")
        .send()
        .await
        .unwrap();
    assert_error(raw, 400).await;
    let wrong = server
        .client
        .post(server.url("/api/grpc/monitor/requests/"))
        .header("authorization", auth(&admin.token))
        .json(&json!({"requests": "nope"}))
        .send()
        .await
        .unwrap();
    assert_error(wrong, 400).await;
    // Not staff: 403; nobody: 401. Also through the /cfg alias.
    let user = register(&server, "reporter").await;
    let one = json!([{"service_name": "s", "method_name": "m"}]);
    assert_error(ingest(&server, &user.token, one.clone()).await, 403).await;
    let anon = server
        .client
        .post(server.url("/api/grpc/monitor/requests/"))
        .json(&json!({"requests": one}))
        .send()
        .await
        .unwrap();
    assert_error(anon, 401).await;
    let alias = server
        .client
        .post(server.url("/cfg/grpc/monitor/requests/"))
        .header("authorization", auth(&admin.token))
        .json(&json!({"requests": [{"service_name": "ing.Alias", "method_name": "m"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(alias.status(), 201);
    assert_eq!(list(&server, &admin, "service=ing.Alias").await["count"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_list_filter() {
    let server = TestServer::start().await;
    let admin = login_admin(&server).await;
    let t = now();
    let items = json!([
        {"service_name": "flt.A", "method_name": "Get", "status": "success", "user_id": 1001, "created_at": rfc3339(t - 10), "path": "/orders/list"},
        {"service_name": "flt.A", "method_name": "Get", "status": "error", "user_id": 1002, "api_key_id": 9, "created_at": rfc3339(t - 20), "error_message": "database unavailable"},
        {"service_name": "flt.A", "method_name": "Put", "status": "timeout", "api_key_id": 9, "created_at": rfc3339(t - 5 * 3600)},
        {"service_name": "flt.B", "method_name": "Get", "status": "cancelled", "user_id": 1001, "created_at": rfc3339(t - 3 * 86400)},
        {"service_name": "flt.B", "method_name": "Del", "status": "pending", "created_at": "2020-01-15T12:00:00Z"},
    ]);
    assert_eq!(ingest(&server, &admin.token, items).await.status(), 201);
    let count = |q: &'static str| {
        let server = &server;
        let admin = &admin;
        async move { list(server, admin, q).await["count"].as_u64().unwrap() }
    };
    assert_eq!(count("service=flt.A").await, 3);
    assert_eq!(count("service=flt.A&method=Get").await, 2);
    assert_eq!(count("method=Del").await, 1);
    assert_eq!(count("service=flt.A&status=timeout").await, 1);
    assert_eq!(count("status=cancelled").await, 1);
    assert_eq!(count("status=pending").await, 1);
    assert_eq!(count("user_id=1001").await, 2);
    assert_eq!(count("api_key_id=9").await, 2);
    assert_eq!(count("service=flt.A&api_key_id=9&status=error").await, 1);
    assert_eq!(count("search=orders").await, 1);
    assert_eq!(count("search=database+unavailable").await, 1);
    assert_eq!(count("search=unavailable+orders").await, 0);
    assert_eq!(count("date_from=2020-01-15&date_to=2020-01-15").await, 1);
    assert_eq!(count("date_to=2020-01-14").await, 0);
    assert_eq!(count("service=flt.B&date_from=2020-01-16").await, 1);
    assert_eq!(count("service=flt.A&hours=1").await, 2);
    assert_eq!(count("service=flt.A&hours=6").await, 3);
    assert_eq!(count("service=flt.B&hours=100000").await, 1);
    // Newest first, with paging links.
    let page = list(&server, &admin, "service=flt.A&page_size=2").await;
    assert_eq!(page["results"][0]["status"], "success");
    assert!(page["next"].as_str().unwrap().contains("page=2"));
    let last = list(&server, &admin, "service=flt.A&page_size=2&page=2").await;
    assert_eq!(last["results"][0]["status"], "timeout");
    assert!(last["next"].is_null());
    // Bad values: 400; past the last page: 404.
    for q in [
        "hours=abc",
        "hours=1.5",
        "user_id=x",
        "status=bogus",
        "date_from=yesterday",
        "page_size=0",
    ] {
        let (status, body) =
            get(&server, &admin.token, &format!("/api/grpc/monitor/requests/?{q}")).await;
        assert_eq!(status, 400, "{q}: {body}");
        assert!(body["error"].is_string() && body["code"].is_string());
    }
    assert_eq!(
        get(&server, &admin.token, "/api/grpc/monitor/requests/?service=flt.A&page=9").await.0,
        404
    );
    assert_eq!(get(&server, &admin.token, "/cfg/grpc/monitor/requests/?hours=abc").await.0, 400);
    let user = register(&server, "nosy").await;
    assert_eq!(get(&server, &user.token, "/api/grpc/monitor/requests/").await.0, 403);
    assert_eq!(get(&server, &user.token, "/cfg/grpc/monitor/requests/").await.0, 403);
    assert_eq!(server.get("/cfg/grpc/monitor/requests/").await.status(), 401);
}

/// Only keys staff enabled for ingest may report (any user could make a `service` key, the
/// default type, so the type alone let anyone forge monitor data — review finding M4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_staff_enabled_may_report_other_keys_may_not() {
    let server = TestServer::start().await;
    let admin = login_admin(&server).await;
    let user = register(&server, "grpcsvc").await;
    let mut keys = Vec::new();
    for key_type in ["service", "cli"] {
        let resp = server
            .client
            .post(server.url("/api/api-keys/"))
            .header("authorization", auth(&user.token))
            .json(&json!({"name": format!("reporter {key_type}"), "key_type": key_type}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let body: serde_json::Value = resp.json().await.unwrap();
        keys.push((body["key"].as_str().unwrap().to_string(), body["id"].as_u64().unwrap()));
    }
    let post = |key: String| {
        server
            .client
            .post(server.url("/api/grpc/monitor/requests/"))
            .header("authorization", format!("Api-Key {key}"))
            .json(&json!({"requests": [{"service_name": "key.Svc", "method_name": "Report"}]}))
            .send()
    };
    // Neither may report until staff enable it; then only the enabled one may.
    assert_error(post(keys[0].0.clone()).await.unwrap(), 403).await;
    let enable = server
        .client
        .patch(server.url(&format!("/api/grpc/api-keys/{}/", keys[0].1)))
        .header("authorization", auth(&admin.token))
        .json(&json!({"ingest": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(enable.status(), 200);
    assert_eq!(post(keys[0].0.clone()).await.unwrap().status(), 201);
    assert_error(post(keys[1].0.clone()).await.unwrap(), 403).await;
    assert_eq!(list(&server, &admin, "service=key.Svc").await["count"], 1);
    // The reporting call itself is logged with its key.
    let page = list(&server, &admin, "method=grpc_monitor_requests_create&page_size=5").await;
    let by_key: Vec<_> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["api_key_id"] == keys[0].1 && r["http_status"] == 201)
        .collect();
    assert_eq!(by_key.len(), 1, "{page}");
    assert_eq!(by_key[0]["api_key_name"], "reporter service");
    assert_eq!(by_key[0]["user_id"], user.id);
    assert_eq!(by_key[0]["http_status"], 201);
}
