//! What the request-log layer records for Gatehouse's own requests: every field, refused
//! requests (401, 403, 404), masked keys, no secrets, and read-your-writes.

use serde_json::Value;

use super::{found_in_files, get, list, now};
use crate::harness::{login_admin, register, TestServer};

/// The record with `request_id`, searched among the newest records.
async fn find(server: &TestServer, admin: &crate::harness::TestUser, request_id: &str) -> Value {
    let page = list(server, admin, "page_size=200").await;
    page["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["request_id"] == request_id)
        .cloned()
        .unwrap_or_else(|| panic!("no record {request_id} in {page}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_of_a_logged_request() {
    let server = TestServer::start().await;
    let admin = login_admin(&server).await;
    let resp = server
        .client
        .get(server.url("/api/organizations/?page=1"))
        .header("authorization", crate::harness::auth(&admin.token))
        .header("x-request-id", "test-req-0200")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let r = find(&server, &admin, "test-req-0200").await;
    let keys: std::collections::BTreeSet<&str> =
        r.as_object().unwrap().keys().map(String::as_str).collect();
    let expected = [
        "id",
        "request_id",
        "service_name",
        "method_name",
        "status",
        "duration_ms",
        "grpc_status_code",
        "error_message",
        "created_at",
        "client_ip",
        "user_id",
        "username",
        "is_authenticated",
        "api_key_id",
        "api_key_name",
        "http_method",
        "path",
        "http_status",
        "count",
        "ingested_by_user_id",
        "ingested_by_key_id",
        "ingested_by_key_name",
    ];
    assert_eq!(keys, expected.into_iter().collect());
    assert!(r["id"].as_u64().unwrap() > 0);
    assert_eq!(r["service_name"], "gatehouse.Organizations");
    assert_eq!(r["method_name"], "organizations_list");
    assert_eq!(r["status"], "success");
    assert!(r["duration_ms"].is_u64());
    assert_eq!(r["grpc_status_code"], "OK");
    assert_eq!(r["error_message"], "");
    let created = time::OffsetDateTime::parse(
        r["created_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!((created.unix_timestamp() - now()).abs() < 30);
    assert!(r["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(r["client_ip"], "127.0.0.1");
    assert_eq!(r["user_id"], admin.id);
    assert_eq!(r["username"], admin.username.as_str());
    assert_eq!(r["is_authenticated"], true);
    assert_eq!(r["api_key_id"], Value::Null);
    assert_eq!(r["api_key_name"], "");
    assert_eq!(r["http_method"], "GET");
    assert_eq!(r["path"], "/api/organizations/");
    assert_eq!(r["http_status"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_are_logged_without_secrets() {
    let server = TestServer::start().await;
    let admin = login_admin(&server).await;
    let user = register(&server, "plain").await;
    let bad = "Token 0123456789abcdef0123456789abcdef01234567";
    let key = "unst_ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210";
    let send = |path: String, rid: &'static str, authz: Option<String>| {
        let mut b = server.client.get(server.url(&path)).header("x-request-id", rid);
        if let Some(a) = authz {
            b = b.header("authorization", a);
        }
        b.send()
    };
    let r = send(
        "/api/grpc/monitor/overview/?secret_param=QUERYSECRET42".into(),
        "test-req-0401",
        Some(bad.into()),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    let r = send(
        "/api/grpc/monitor/overview/".into(),
        "test-req-0403",
        Some(crate::harness::auth(&user.token)),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    // Refused anonymous requests of one client, route, status and minute share one record,
    // the first one's: the masked path is sent first so that its record is its own.
    let r = send(format!("/deployment/{key}/"), "test-req-mask", None).await.unwrap();
    assert!(r.status().is_client_error());
    let r = send("/api/no-such-route/".into(), "test-req-0404", None).await.unwrap();
    assert_eq!(r.status(), 404);

    let r401 = find(&server, &admin, "test-req-0401").await;
    assert_eq!(r401["status"], "error");
    assert_eq!(r401["http_status"], 401);
    assert_eq!(r401["grpc_status_code"], "UNAUTHENTICATED");
    assert_eq!(r401["is_authenticated"], false);
    assert_eq!(r401["user_id"], Value::Null);
    assert_eq!(r401["username"], "");
    assert_eq!(r401["service_name"], "gatehouse.Monitoring");
    assert_eq!(r401["method_name"], "grpc_monitor_overview_retrieve");
    assert!(!r401["error_message"].as_str().unwrap().is_empty());
    assert_eq!(r401["path"], "/api/grpc/monitor/overview/");

    let r403 = find(&server, &admin, "test-req-0403").await;
    assert_eq!(
        (r403["http_status"].as_u64(), r403["grpc_status_code"].as_str()),
        (Some(403), Some("PERMISSION_DENIED"))
    );
    assert_eq!(r403["user_id"], user.id);
    assert_eq!(r403["is_authenticated"], true);
    assert_eq!(r403["method_name"], "grpc_monitor_overview_retrieve");

    let page = list(&server, &admin, "method=not_found&page_size=10").await;
    let r404 = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["http_status"] == 404 && r["is_authenticated"] == false)
        .cloned()
        .unwrap_or_else(|| panic!("no anonymous 404 in {page}"));
    assert_eq!(r404["service_name"], "gatehouse.Http");
    assert_eq!(r404["method_name"], "not_found");
    assert_eq!(r404["grpc_status_code"], "NOT_FOUND");
    assert_eq!(r404["status"], "error");

    let masked = find(&server, &admin, "test-req-mask").await;
    assert_eq!(masked["path"], "/deployment/unst...3210/");

    // Nothing secret reached the data file or the index: not the token, the key, the query.
    let mut server = server;
    server.stop().await;
    for needle in [&bad[6..], key, "QUERYSECRET42", user.password.as_str()] {
        assert!(!found_in_files(server.data_dir(), needle.as_bytes()), "{needle} was stored");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sees_its_own_previous_call() {
    let server = TestServer::start().await;
    let admin = login_admin(&server).await;
    for i in 0..5 {
        let rid = format!("test-ryw-{i:04}");
        let resp = server
            .client
            .get(server.url("/health/"))
            .header("x-request-id", &rid)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        // Immediately: the list waits for the index to reach the record of that call.
        let page = list(&server, &admin, "method=health_retrieve&page_size=1").await;
        assert_eq!(page["results"][0]["request_id"], rid.as_str(), "{page}");
        assert_eq!(page["results"][0]["service_name"], "gatehouse.Health");
    }
    // Aliases under /cfg/grpc/monitor/ answer the same and stay out of the OpenAPI document.
    let (status, alias) = get(
        &server,
        &admin.token,
        "/cfg/grpc/monitor/requests/?method=health_retrieve&page_size=1",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(alias["results"][0]["request_id"], "test-ryw-0004");
    let (_, spec) = get(&server, &admin.token, "/api/schema/").await;
    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.keys().any(|p| p.starts_with("/api/grpc/monitor/requests")));
    assert!(!paths.keys().any(|p| p.starts_with("/cfg/grpc/monitor")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_requests_are_logged() {
    let server = TestServer::start_with(&[
        ("GATEHOUSE_RATE_LIMIT_ENABLED", "true"),
        ("GATEHOUSE_RATE_LIMIT_ANON_PER_HOUR", "3"),
    ])
    .await;
    let admin = login_admin(&server).await;
    let mut limited = None;
    for i in 0..10 {
        let rid = format!("test-req-429-{i:02}");
        let resp = server
            .client
            .get(server.url("/api/"))
            .header("x-request-id", &rid)
            .send()
            .await
            .unwrap();
        if resp.status() == 429 {
            limited = Some(rid);
            break;
        }
    }
    let rid = limited.expect("anonymous calls were never limited");
    let r = find(&server, &admin, &rid).await;
    assert_eq!(r["http_status"], 429);
    assert_eq!(r["grpc_status_code"], "RESOURCE_EXHAUSTED");
    assert_eq!(r["status"], "error");
    assert_eq!(r["is_authenticated"], false);
    assert_eq!(r["method_name"], "api_root_retrieve");
    assert_eq!(r["service_name"], "gatehouse.Health");
    assert!(!r["error_message"].as_str().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_logging_can_be_switched_off() {
    let server = TestServer::start_with(&[("GATEHOUSE_LOGS_REQUEST_LOG_ENABLED", "false")]).await;
    let admin = login_admin(&server).await;
    for path in ["/health/", "/api/no-such-route/", "/api/grpc/monitor/overview/"] {
        let resp = server.client.get(server.url(path)).send().await.unwrap();
        assert!(resp.status().as_u16() < 500, "{path}");
    }
    // Failed requests still answer in the error format without the layer's bookkeeping.
    let resp = server.client.get(server.url("/api/no-such-route/")).send().await.unwrap();
    crate::harness::assert_error(resp, 404).await;
    // Reported records are still stored and counted; Gatehouse's own calls are not.
    let item = serde_json::json!([{"service_name": "team.Svc", "method_name": "Get",
                                   "status": "success", "duration_ms": 3}]);
    assert_eq!(super::ingest(&server, &admin.token, item).await.status(), 201);
    let page = list(&server, &admin, "page_size=50").await;
    assert_eq!(page["count"], 1, "{page}");
    assert_eq!(page["results"][0]["service_name"], "team.Svc");
    let (status, overview) =
        get(&server, &admin.token, "/api/grpc/monitor/overview/?hours=1").await;
    assert_eq!(status, 200);
    assert_eq!(overview["total_requests"], 1, "{overview}");
}
