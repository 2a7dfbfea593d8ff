//! Hardening of paging, the request log, ingest and oversized bodies (security review H1, M4,
//! M6, L12 and the 413 finding): each test sends the attack over real HTTPS and checks the
//! refusal, in the error format, with the server still up.

use serde_json::{json, Value};

use crate::harness::{assert_error, auth, login_admin, register, TestServer, TestUser};

async fn get(server: &TestServer, token: &str, path: &str) -> reqwest::Response {
    server.client.get(server.url(path)).header("authorization", auth(token)).send().await.unwrap()
}

async fn get_json(server: &TestServer, token: &str, path: &str) -> Value {
    let resp = get(server, token, path).await;
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

async fn still_up(server: &TestServer) {
    assert_eq!(server.get("/health/").await.status(), 200);
}

/// H1: one authenticated `GET /api/audit-logs/?page=10000000000&page_size=1000` aborted the
/// process (tantivy reserved `offset + limit` slots). Now every list refuses pages deeper than
/// 100 000 rows with 400 on `page`, and a page past the end is 404 "Invalid page.".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_pages_are_400_and_pages_past_the_end_404_on_every_list() {
    let server = TestServer::start().await;
    let staff = login_admin(&server).await;
    let user = register(&server, "deep_pager").await;
    // The deepest page at the default page size: 100 000 rows deep (20 a page; django-cfg's
    // lists answer 100 a page, issue 18).
    let lists = [
        ("/api/audit-logs/", &user, 5000),
        ("/api/audit-logs/", &staff, 5000),
        ("/api/grpc/monitor/requests/", &staff, 1000),
        ("/cfg/grpc/monitor/requests/", &staff, 1000),
        ("/api/projects/", &user, 5000),
        ("/api/environments/", &user, 5000),
        ("/api/variables/", &user, 5000),
        ("/api/organizations/", &user, 5000),
        ("/api/api-keys/", &user, 5000),
        ("/api/grpc/api-keys/", &staff, 1000),
    ];
    for (list, who, deepest) in lists {
        for query in [
            "page=10000000000&page_size=1000",
            "page=18446744073709551615&page_size=1000",
            "page=101&page_size=1000",
            "page=5001",
        ] {
            let path = format!("{list}?{query}");
            let body = assert_error(get(&server, &who.token, &path).await, 400).await;
            assert!(body["details"]["page"].is_array(), "{path}: {body}");
        }
        // Deep but allowed, and past the end: 404 without a search.
        for query in ["page=100&page_size=1000".to_string(), format!("page={deepest}")] {
            let path = format!("{list}?{query}");
            let body = assert_error(get(&server, &who.token, &path).await, 404).await;
            assert_eq!(body["error"], "Invalid page.", "{path}");
        }
        // Ids past u64 and negative pages: 400, never a 5xx.
        for query in ["page=18446744073709551616", "page=-1", "page_size=-5", "page=1e3"] {
            let path = format!("{list}?{query}");
            let status = get(&server, &who.token, &path).await.status().as_u16();
            assert_eq!(status, 400, "{path}");
        }
    }
    // The first page and a real second page still work.
    let page = get_json(&server, &staff.token, "/api/audit-logs/?page_size=1").await;
    assert!(page["count"].as_u64().unwrap() >= 2);
    assert!(page["next"].as_str().unwrap().contains("page=2"));
    let second = get_json(&server, &staff.token, "/api/audit-logs/?page_size=1&page=2").await;
    assert_eq!(second["results"].as_array().unwrap().len(), 1);
    let requests = get_json(&server, &staff.token, "/api/grpc/monitor/requests/?page_size=1").await;
    assert!(requests["count"].as_u64().unwrap() >= 2);
    get_json(&server, &staff.token, "/api/grpc/monitor/requests/?page_size=1&page=2").await;
    still_up(&server).await;
}

/// A key of `user`'s, with its secret and id.
async fn create_key(server: &TestServer, user: &TestUser, name: &str) -> (String, u64) {
    let resp = server
        .client
        .post(server.url("/api/api-keys/"))
        .header("authorization", auth(&user.token))
        .json(&json!({"name": name, "key_type": "service"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    (body["key"].as_str().unwrap().to_string(), body["id"].as_u64().unwrap())
}

async fn ingest_with(server: &TestServer, authz: &str, items: Value) -> reqwest::Response {
    server
        .client
        .post(server.url("/api/grpc/monitor/requests/"))
        .header("authorization", authz)
        .json(&json!({ "requests": items }))
        .send()
        .await
        .unwrap()
}

async fn set_ingest(server: &TestServer, who: &TestUser, id: u64, on: bool) -> reqwest::Response {
    server
        .client
        .patch(server.url(&format!("/api/grpc/api-keys/{id}/")))
        .header("authorization", auth(&who.token))
        .json(&json!({ "ingest": on }))
        .send()
        .await
        .unwrap()
}

fn now() -> i64 {
    crate::logs::now()
}

/// M4: any user's default `service` key could report forged, future-dated `gatehouse.*`
/// records. Now only staff or a key staff enabled may report; each record names its reporter;
/// times are clamped; `gatehouse.` names are refused per item; and each key has a daily quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_needs_a_key_staff_enabled_stamps_it_and_enforces_the_rules() {
    let server = TestServer::start_with(&[("GATEHOUSE_LOGS_INGEST_QUOTA_PER_DAY", "6")]).await;
    let staff = login_admin(&server).await;
    let user = register(&server, "forger").await;
    let (key, key_id) = create_key(&server, &user, "team reporter").await;
    let key_authz = format!("Api-Key {key}");
    let one = json!([{"service_name": "team.Svc", "method_name": "Get"}]);

    // A plain service key (the default type), and the user's session: refused.
    assert_error(ingest_with(&server, &key_authz, one.clone()).await, 403).await;
    assert_error(ingest_with(&server, &auth(&user.token), one.clone()).await, 403).await;
    // Only staff may enable a key, and only through the staff view.
    assert_error(set_ingest(&server, &user, key_id, true).await, 403).await;
    assert_error(set_ingest(&server, &staff, 999_999, true).await, 404).await;
    let bad = server
        .client
        .patch(server.url(&format!("/api/grpc/api-keys/{key_id}/")))
        .header("authorization", auth(&staff.token))
        .json(&json!({"ingest": "yes"}))
        .send()
        .await
        .unwrap();
    assert_error(bad, 400).await;
    let resp = set_ingest(&server, &staff, key_id, true).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!((body["id"].as_u64(), body["ingest"].as_bool()), (Some(key_id), Some(true)));
    let enabled = get_json(&server, &staff.token, "/api/grpc/api-keys/?ingest=true").await;
    assert_eq!(enabled["count"], 1);
    assert_eq!(enabled["results"][0]["id"], key_id);
    let audit = get_json(&server, &staff.token, "/api/audit-logs/?action=api_key_updated").await;
    assert_eq!(audit["results"][0]["details"], json!({"name": "team reporter", "ingest": true}));
    assert_eq!(audit["results"][0]["user_email"], staff.email.as_str());

    // Enabled: stored, stamped with the key, future times clamped, `gatehouse.` refused.
    let far = "2100-01-01T00:00:00Z";
    let items = json!([
        {"service_name": "team.Svc", "method_name": "Get", "created_at": far},
        {"service_name": "gatehouse.Auth", "method_name": "login"},
        {"service_name": "Gatehouse.Http", "method_name": "x"},
        {"service_name": "team.Svc", "method_name": "Put", "api_key_id": 1, "api_key_name": "forged"},
    ]);
    let resp = ingest_with(&server, &key_authz, items).await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    assert_eq!((body["stored"].as_u64(), body["rejected"].as_u64()), (Some(2), Some(2)));
    let bad: Vec<u64> =
        body["errors"].as_array().unwrap().iter().map(|e| e["index"].as_u64().unwrap()).collect();
    assert_eq!(bad, vec![1, 2]);
    assert!(body["errors"][0]["errors"]["service_name"].is_array());
    let page =
        get_json(&server, &staff.token, "/api/grpc/monitor/requests/?service=team.Svc").await;
    assert_eq!(page["count"], 2);
    for r in page["results"].as_array().unwrap() {
        assert_eq!(r["ingested_by_key_id"], key_id);
        assert_eq!(r["ingested_by_key_name"], "team reporter");
        assert_eq!(r["ingested_by_user_id"], user.id);
        let at = time::OffsetDateTime::parse(
            r["created_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
        .unix_timestamp();
        assert!(at <= now() + 300, "{r}");
    }
    for forged in ["service=gatehouse.Auth&method=login", "service=Gatehouse.Http"] {
        let path = format!("/api/grpc/monitor/requests/?{forged}");
        assert_eq!(get_json(&server, &staff.token, &path).await["count"], 0, "{forged}");
    }

    // Quota 6 per day: 2 used; 3 more fit, then a batch of 2 does not (429, nothing stored),
    // a batch of 1 still fits, and the next one does not.
    let batch = |n: usize| json!(vec![json!({"service_name": "quota.Svc", "method_name": "M"}); n]);
    assert_eq!(ingest_with(&server, &key_authz, batch(3)).await.status(), 201);
    let refused = ingest_with(&server, &key_authz, batch(2)).await;
    let retry = refused.headers().get("retry-after").cloned();
    let body = assert_error(refused, 429).await;
    assert_eq!(body["details"]["remaining"], 1);
    assert!(retry.is_some());
    assert_eq!(ingest_with(&server, &key_authz, batch(1)).await.status(), 201);
    assert_error(ingest_with(&server, &key_authz, batch(1)).await, 429).await;
    let stored =
        get_json(&server, &staff.token, "/api/grpc/monitor/requests/?service=quota.Svc").await;
    assert_eq!(stored["count"], 4);
    // Staff have their own allowance; a disabled key is refused again.
    assert_eq!(ingest_with(&server, &auth(&staff.token), batch(1)).await.status(), 201);
    assert_eq!(set_ingest(&server, &staff, key_id, false).await.status(), 200);
    assert_error(ingest_with(&server, &key_authz, one.clone()).await, 403).await;
    assert_eq!(set_ingest(&server, &staff, key_id, true).await.status(), 200);

    // The count survives a restart.
    let server = server.restart().await;
    assert_error(ingest_with(&server, &key_authz, batch(1)).await, 429).await;
    still_up(&server).await;
}

/// The page of request records of `method` (newest first, up to 100).
async fn records_of(server: &TestServer, staff: &TestUser, query: &str) -> Vec<Value> {
    let page = get_json(
        server,
        &staff.token,
        &format!("/api/grpc/monitor/requests/?page_size=100&{query}"),
    )
    .await;
    page["results"].as_array().unwrap().clone()
}

/// M6: every refused anonymous request became its own stored row. Now the refusals of one
/// client, route, status and minute are one row with a `count`, counted in the statistics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_anonymous_requests_become_one_row_with_a_count() {
    let server = TestServer::start().await;
    let staff = login_admin(&server).await;
    for i in 0..200 {
        let authz = if i % 2 == 0 { None } else { Some("Token not-a-real-token") };
        let mut req = server.client.get(server.url("/api/projects/"));
        if let Some(a) = authz {
            req = req.header("authorization", a);
        }
        assert_eq!(req.send().await.unwrap().status(), 401);
    }
    for i in 0..50 {
        let resp = server.get(&format!("/no/such/route/{i}/{}", "x".repeat(i))).await;
        assert_eq!(resp.status(), 404);
    }
    let rows = records_of(&server, &staff, "method=projects_list").await;
    let refused: Vec<&Value> = rows.iter().filter(|r| r["http_status"] == 401).collect();
    assert!(!refused.is_empty() && refused.len() <= 2, "{} rows: {rows:?}", refused.len());
    assert_eq!(refused.iter().map(|r| r["count"].as_u64().unwrap()).sum::<u64>(), 200);
    assert_eq!(refused[0]["is_authenticated"], false);
    assert_eq!(refused[0]["client_ip"], "127.0.0.1");
    let missing = records_of(&server, &staff, "method=not_found").await;
    assert!(!missing.is_empty() && missing.len() <= 2, "{missing:?}");
    assert_eq!(missing.iter().map(|r| r["count"].as_u64().unwrap()).sum::<u64>(), 50);
    // An authenticated request is still one row of its own.
    let mine = get(&server, &staff.token, "/api/no-such-route/").await;
    assert_eq!(mine.status(), 404);
    let staff_rows: Vec<Value> = records_of(&server, &staff, "method=not_found")
        .await
        .into_iter()
        .filter(|r| r["user_id"] == staff.id)
        .collect();
    assert_eq!((staff_rows.len(), staff_rows[0]["count"].as_u64()), (1, Some(1)));
    // The statistics count the requests, not the rows.
    let methods =
        get_json(&server, &staff.token, "/api/grpc/monitor/methods/?service=gatehouse.Projects")
            .await;
    let list = methods["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["method_name"] == "projects_list")
        .cloned()
        .unwrap();
    assert_eq!(list["total_requests"], 200);
    assert_eq!(list["failed_requests"], 200);
    still_up(&server).await;
}

/// M6, the disk guard: below `logs.min_free_disk_mb` of free space, Gatehouse's own requests
/// are no longer stored and reported calls are refused (429), while the API keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_free_disk_minimum_nothing_more_is_stored() {
    // More free space than any disk has: the guard is on from the start.
    let server =
        TestServer::start_with(&[("GATEHOUSE_LOGS_MIN_FREE_DISK_MB", "1000000000000")]).await;
    let staff = login_admin(&server).await;
    for _ in 0..20 {
        assert_eq!(server.get("/health/").await.status(), 200);
        assert_eq!(server.get("/api/projects/").await.status(), 401);
    }
    let page = get_json(&server, &staff.token, "/api/grpc/monitor/requests/").await;
    assert_eq!(page["count"], 0, "{page}");
    let one = json!([{"service_name": "team.Svc", "method_name": "Get"}]);
    assert_error(ingest_with(&server, &auth(&staff.token), one).await, 429).await;
    still_up(&server).await;
}

/// A client that trusts the server's CA and speaks only HTTP/2 (`h2`) or HTTP/1.1.
fn client(server: &TestServer, h2: bool) -> reqwest::Client {
    crate::harness::client_speaking(&server.ca_pem, h2)
}

/// A 3 MiB JSON document (the limit is 1 MiB).
fn big_json() -> Vec<u8> {
    let mut body = b"{\"name\": \"".to_vec();
    body.extend(std::iter::repeat_n(b'a', 3 * 1024 * 1024));
    body.extend_from_slice(b"\"}");
    body
}

/// The same bytes sent chunked: no Content-Length, 64 KiB pieces.
fn chunked(bytes: Vec<u8>) -> reqwest::Body {
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(pieces))
}

/// Oversized bodies: the server answered 413 without reading the body and closed, so a client
/// still sending saw a reset instead of the answer. Now the client always reads the 413 in the
/// error format: over HTTP/1.1 (the rest is drained, then the connection closed) and over
/// HTTP/2 (the stream is answered, then reset), whole or chunked, again and again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_a_whole_oversized_body_reads_the_413() {
    let server = TestServer::start().await;
    let staff = login_admin(&server).await;
    let body = big_json();
    for h2 in [false, true] {
        let c = client(&server, h2);
        let version = if h2 { reqwest::Version::HTTP_2 } else { reqwest::Version::HTTP_11 };
        for round in 0..5 {
            for whole in [true, false] {
                let payload =
                    if whole { reqwest::Body::from(body.clone()) } else { chunked(body.clone()) };
                let resp = c
                    .post(server.url("/api/projects/"))
                    .header("authorization", auth(&staff.token))
                    .header("content-type", "application/json")
                    .body(payload)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("h2={h2} whole={whole} round={round}: {e:?}"));
                assert_eq!(resp.version(), version);
                let err = assert_error(resp, 413).await;
                assert_eq!(err["code"], "PAYLOAD_TOO_LARGE", "h2={h2} whole={whole}");
            }
            // Without a credential the answer may come before the body limit (401) — either
            // way the client reads it.
            let resp = c
                .post(server.url("/api/projects/"))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap_or_else(|e| panic!("anonymous h2={h2} round={round}: {e:?}"));
            let status = resp.status().as_u16();
            assert!(status == 401 || status == 413, "{status}");
            assert_error(resp, status).await;
        }
        // The same client goes on working.
        let ok = c
            .get(server.url("/api/projects/"))
            .header("authorization", auth(&staff.token))
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
    }
    still_up(&server).await;
}
