//! django-cfg semantics (issue 18): `active_api_keys` and the `api_keys` gauge count active,
//! unexpired keys; `registered_services` and the overview's `server` object; 100 rows a page
//! on django-cfg's lists; staff key administration (create for any user, patch, delete),
//! audited, refused to non-staff and to delegated staff credentials.

use serde_json::{json, Value};

use crate::harness::{assert_error, auth, login_admin, register, TestServer, TestUser};
use crate::logs::{get, ingest, now, rfc3339};

const KEYS: &str = "/api/grpc/api-keys/";

async fn send(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    authorization: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req =
        server.client.request(method, server.url(path)).header("authorization", authorization);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

/// A key of `u`'s own (`/api/api-keys/`), returning (key, id).
async fn own_key(server: &TestServer, u: &TestUser, body: Value) -> (String, u64) {
    let resp =
        send(server, reqwest::Method::POST, "/api/api-keys/", &auth(&u.token), Some(body)).await;
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap();
    (v["key"].as_str().unwrap().to_string(), v["id"].as_u64().unwrap())
}

/// Staff's `POST /api/grpc/api-keys/`, asserting 201.
async fn staff_create(server: &TestServer, staff: &TestUser, body: Value) -> Value {
    let resp = send(server, reqwest::Method::POST, KEYS, &auth(&staff.token), Some(body)).await;
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

async fn authenticates(server: &TestServer, key: &str) -> bool {
    let resp =
        send(server, reqwest::Method::GET, "/api/auth/profile/", &format!("Api-Key {key}"), None)
            .await;
    match resp.status().as_u16() {
        200 => true,
        401 => false,
        s => panic!("unexpected status {s}"),
    }
}

fn gauge(text: &str, org: u64) -> Option<f64> {
    let series = format!("gatehouse_org_objects{{organization=\"{org}\",kind=\"api_keys\"}}");
    crate::metrics::value(text, &series)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_api_keys_and_the_gauge_count_active_unexpired_keys() {
    let server = TestServer::start().await;
    let staff = login_admin(&server).await;
    let u = register(&server, "cfg_keys").await;
    let org = json!(u.org_id);
    own_key(&server, &u, json!({"name": "unused", "organization": org})).await;
    let soon = rfc3339(now() + 2);
    own_key(&server, &u, json!({"name": "expiring", "organization": org, "expires_at": soon}))
        .await;
    let (_, revoked) = own_key(&server, &u, json!({"name": "revoked", "organization": org})).await;
    let resp = send(
        &server,
        reqwest::Method::DELETE,
        &format!("/api/api-keys/{revoked}/"),
        &auth(&u.token),
        None,
    )
    .await;
    assert_eq!(resp.status(), 204);

    let (_, o) = get(&server, &staff.token, "/api/grpc/monitor/overview/").await;
    assert_eq!(o["active_api_keys"].as_u64(), Some(2), "{o}");
    let all = crate::metrics::scrape(&server, crate::metrics::ALL, &auth(&staff.token)).await;
    assert_eq!(gauge(&all, u.org_id), Some(2.0), "{all}");

    // Past its expiry the key drops out of both, with no request and no commit in between.
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let (_, o) = get(&server, &staff.token, "/api/grpc/monitor/overview/").await;
    assert_eq!(o["active_api_keys"].as_u64(), Some(1), "{o}");
    assert_eq!(o["used_api_keys"].as_u64(), Some(0), "no key made a request");
    let (_, alias) = get(&server, &staff.token, "/cfg/grpc/monitor/overview/").await;
    assert_eq!(alias["active_api_keys"].as_u64(), Some(1));
    let all = crate::metrics::scrape(&server, crate::metrics::ALL, &auth(&staff.token)).await;
    assert_eq!(gauge(&all, u.org_id), Some(1.0), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_server_object_and_registered_services() {
    let server = TestServer::start().await;
    let staff = login_admin(&server).await;
    let items = json!([
        {"service_name": "ext.billing.Billing", "method_name": "Charge", "duration_ms": 5},
        {"service_name": "ext.billing.Billing", "method_name": "Refund", "status": "error"},
    ]);
    assert_eq!(ingest(&server, &staff.token, items).await.status(), 201);
    let port: u16 = server.base.rsplit(':').next().unwrap().trim_end_matches('/').parse().unwrap();

    for path in ["/api/grpc/monitor/overview/", "/cfg/grpc/monitor/overview/"] {
        let (status, o) = get(&server, &staff.token, path).await;
        assert_eq!(status, 200, "{o}");
        let s = &o["server"];
        assert_eq!(
            (s["status"].as_str(), s["is_running"].as_bool()),
            (Some("running"), Some(true))
        );
        assert_eq!(s["port"].as_u64(), Some(u64::from(port)), "{s}");
        let host = s["host"].as_str().unwrap();
        assert!(!host.is_empty());
        assert!(s["address"].as_str().unwrap().ends_with(&format!(":{port}")), "{s}");
        assert_eq!(s["pid"].as_u64(), Some(u64::from(std::process::id())));
        let started = s["started_at"].as_str().unwrap();
        assert!(time::OffsetDateTime::parse(
            started,
            &time::format_description::well_known::Rfc3339
        )
        .is_ok());
        assert!(s["uptime_seconds"].is_u64());
        let display = s["uptime_display"].as_str().unwrap();
        assert!(display.ends_with('s') && display != "Not running", "{display}");
        assert_eq!(s["enable_reflection"], false);
        assert_eq!(s["enable_health_check"], true);
        assert!(s["last_heartbeat"].is_string());
        let services = s["services"].as_array().unwrap();
        assert_eq!(s["registered_services_count"].as_u64(), Some(services.len() as u64));
        let find = |full: &str| services.iter().find(|x| x["full_name"] == full).cloned();
        // Gatehouse's own tags, each once, used or not.
        for tag in ["Monitoring", "ApiKeys", "Health", "Projects", "Metrics"] {
            let own = find(&format!("gatehouse.{tag}")).unwrap_or_else(|| panic!("{tag}: {s}"));
            assert_eq!(own["name"], tag);
            assert!(own["methods_count"].as_u64().unwrap() >= 1);
        }
        let names: Vec<&str> = services.iter().map(|x| x["full_name"].as_str().unwrap()).collect();
        let mut dedup = names.clone();
        dedup.dedup();
        assert_eq!(names, dedup, "listed once each");
        // The reported service, with its window's numbers.
        let billing = find("ext.billing.Billing").expect("reported service");
        assert_eq!(billing["name"], "Billing");
        assert_eq!(
            (billing["methods_count"].as_u64(), billing["request_count"].as_u64()),
            (Some(2), Some(2))
        );
        assert_eq!(
            (billing["error_count"].as_u64(), billing["success_rate"].as_f64()),
            (Some(1), Some(50.0))
        );
        // An idle own service: 100 %, as django-cfg.
        let idle = find("gatehouse.ApiDeployments").unwrap();
        assert_eq!(
            (idle["request_count"].as_u64(), idle["success_rate"].as_f64()),
            (Some(0), Some(100.0))
        );
        assert_eq!(s["services_healthy"], false, "Billing had an error");
    }

    let (_, o) = get(&server, &staff.token, "/api/grpc/monitor/overview/").await;
    let (status, h) = get(&server, &staff.token, "/api/grpc/monitor/health/").await;
    assert_eq!(status, 200);
    assert_eq!(h["server_running"], true);
    assert_eq!(h["registered_services"], o["server"]["registered_services_count"]);
    assert_eq!(h["server_port"].as_u64(), Some(u64::from(port)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_cfg_lists_default_to_100_per_page() {
    let server = TestServer::start().await;
    let staff = login_admin(&server).await;
    for i in 0..25 {
        staff_create(&server, &staff, json!({"name": format!("k{i}"), "user_id": staff.id})).await;
    }
    for path in [KEYS, "/cfg/grpc/api-keys/"] {
        let (status, page) = get(&server, &staff.token, path).await;
        assert_eq!(status, 200);
        assert_eq!(page["count"], 25);
        assert_eq!(page["results"].as_array().unwrap().len(), 25, "{path}");
        assert!(page["next"].is_null());
        let (_, small) = get(&server, &staff.token, &format!("{path}?page_size=10&page=2")).await;
        assert_eq!(small["results"].as_array().unwrap().len(), 10);
        assert!(small["next"].is_string() && small["previous"].is_string());
    }
    // KeyNest's own list keeps its 20.
    let (_, own) = get(&server, &staff.token, "/api/api-keys/").await;
    assert_eq!((own["count"].as_u64(), own["results"].as_array().unwrap().len()), (Some(25), 20));

    let items: Vec<Value> = (0..30)
        .map(|i| json!({"service_name": "pg.Svc", "method_name": format!("M{i}")}))
        .collect();
    assert_eq!(ingest(&server, &staff.token, json!(items)).await.status(), 201);
    for path in
        ["/api/grpc/monitor/requests/?service=pg.Svc", "/cfg/grpc/monitor/requests/?service=pg.Svc"]
    {
        let (_, page) = get(&server, &staff.token, path).await;
        assert_eq!(page["count"], 30);
        assert_eq!(page["results"].as_array().unwrap().len(), 30, "{path}");
        let (_, small) = get(&server, &staff.token, &format!("{path}&page_size=7")).await;
        assert_eq!(small["results"].as_array().unwrap().len(), 7);
    }
}

async fn audit(server: &TestServer, staff: &TestUser, action: &str) -> Vec<Value> {
    let (status, page) =
        get(server, &staff.token, &format!("/api/audit-logs/?action={action}&page_size=100")).await;
    assert_eq!(status, 200, "{page}");
    page["results"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_create_patch_and_delete_keys_of_any_user_audited() {
    let server = TestServer::start().await;
    let staff = login_admin(&server).await;
    let staff_auth = auth(&staff.token);
    let u = register(&server, "cfg_owner").await;

    // Create by id (django-cfg's `user`), by username, by email.
    let k = staff_create(
        &server,
        &staff,
        json!({"name": "billing", "key_type": "webhook", "user": u.id, "expires_at": rfc3339(now() + 86400)}),
    )
    .await;
    let key = k["key"].as_str().unwrap().to_string();
    assert_eq!(key.len(), 64);
    assert_eq!(k["masked_key"], format!("{}...{}", &key[..4], &key[60..]));
    assert_eq!(
        (k["user_id"].as_u64(), k["username"].as_str()),
        (Some(u.id), Some(u.username.as_str()))
    );
    assert_eq!((k["key_type"].as_str(), k["is_active"].as_bool()), (Some("webhook"), Some(true)));
    assert_eq!(k["created_by"], staff.username.as_str());
    assert!(k["expires_at"].is_string());
    let id = k["id"].as_u64().unwrap();
    assert!(authenticates(&server, &key).await);
    let by_name = staff_create(&server, &staff, json!({"name": "n", "username": u.username})).await;
    assert_eq!(by_name["user_id"].as_u64(), Some(u.id));
    let by_mail = staff_create(&server, &staff, json!({"name": "m", "email": u.email})).await;
    assert_eq!(by_mail["user_id"].as_u64(), Some(u.id));
    // The owner sees it among their keys; the secret is not shown again.
    let (_, mine) = get(&server, &u.token, &format!("/api/api-keys/{id}/")).await;
    assert_eq!(mine["name"], "billing");
    assert!(mine.get("key").is_none());

    let created = audit(&server, &staff, "api_key_created").await;
    let rec = created.iter().find(|r| r["target_id"] == id).expect("audited");
    assert_eq!(rec["details"]["user_id"].as_u64(), Some(u.id));
    assert_eq!(rec["user_email"], staff.email.as_str());
    assert!(!rec.to_string().contains(&key), "no key material in the audit");

    // Rename and clear the expiry; through the /cfg alias too.
    let resp = send(
        &server,
        reqwest::Method::PATCH,
        &format!("{KEYS}{id}/"),
        &staff_auth,
        Some(json!({"name": "billing-2", "expires_at": null})),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let p: Value = resp.json().await.unwrap();
    assert_eq!((p["name"].as_str(), p["expires_at"].is_null()), (Some("billing-2"), true));
    assert_eq!(p["ingest"], false);
    let resp = send(
        &server,
        reqwest::Method::PATCH,
        &format!("/cfg/grpc/api-keys/{id}/"),
        &staff_auth,
        Some(json!({"key_type": "cli"})),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["key_type"], "cli");
    let updated = audit(&server, &staff, "api_key_updated").await;
    let rename = updated
        .iter()
        .find(|r| r["details"]["previous_name"] == "billing")
        .expect("rename audited");
    assert_eq!(rename["details"]["name"], "billing-2");
    assert!(rename["details"]["expires_at"].is_null());

    // Deactivate: the key stops authenticating; reactivate: it works again.
    let item = format!("{KEYS}{id}/");
    let patch_active = |on: bool| {
        send(&server, reqwest::Method::PATCH, &item, &staff_auth, Some(json!({"is_active": on})))
    };
    let off: Value = patch_active(false).await.json().await.unwrap();
    assert_eq!((off["is_active"].as_bool(), off["is_valid"].as_bool()), (Some(false), Some(false)));
    assert!(!authenticates(&server, &key).await, "a deactivated key still authenticates");
    let updated = audit(&server, &staff, "api_key_updated").await;
    assert!(updated.iter().any(|r| r["details"]["is_active"] == false && r["target_id"] == id));
    assert_eq!(patch_active(true).await.status(), 200);
    assert!(authenticates(&server, &key).await);
    assert!(!audit(&server, &staff, "api_key_updated")
        .await
        .iter()
        .any(|r| r.to_string().contains(&key)));

    // A key its owner revoked stays revoked.
    let (_, revoked) = own_key(&server, &u, json!({"name": "gone"})).await;
    let resp = send(
        &server,
        reqwest::Method::DELETE,
        &format!("/api/api-keys/{revoked}/"),
        &auth(&u.token),
        None,
    )
    .await;
    assert_eq!(resp.status(), 204);
    let resp = send(
        &server,
        reqwest::Method::PATCH,
        &format!("{KEYS}{revoked}/"),
        &staff_auth,
        Some(json!({"is_active": true})),
    )
    .await;
    assert_error(resp, 409).await;

    // Delete: 204, gone from the views, no longer authenticates, audited.
    let resp =
        send(&server, reqwest::Method::DELETE, &format!("{KEYS}{id}/"), &staff_auth, None).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(get(&server, &staff.token, &format!("{KEYS}{id}/")).await.0, 404);
    assert_eq!(get(&server, &u.token, &format!("/api/api-keys/{id}/")).await.0, 404);
    assert!(!authenticates(&server, &key).await);
    let deleted = audit(&server, &staff, "api_key_deleted").await;
    let rec = deleted.iter().find(|r| r["target_id"] == id).expect("delete audited");
    assert_eq!(rec["details"], json!({"name": "billing-2", "user_id": u.id}));
    // The other keys are still there.
    let (_, left) = get(&server, &staff.token, &format!("{KEYS}?user_id={}", u.id)).await;
    assert_eq!(left["count"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_key_admin_refusals() {
    let server = TestServer::start().await;
    let staff = login_admin(&server).await;
    let staff_auth = auth(&staff.token);
    let u = register(&server, "cfg_plain").await;
    let (_, id) = own_key(&server, &u, json!({"name": "mine"})).await;
    let item = format!("{KEYS}{id}/");
    let create = json!({"name": "x", "user_id": u.id});
    let (staff_key, _) = own_key(&server, &staff, json!({"name": "staff key"})).await;
    let staff_org_key =
        own_key(&server, &staff, json!({"name": "scoped", "organization": staff.org_id})).await.0;

    // Non-staff, and staff through a delegated credential (an API key, scoped or not): 403.
    for who in [auth(&u.token), format!("Api-Key {staff_key}"), format!("Api-Key {staff_org_key}")]
    {
        let r = send(&server, reqwest::Method::POST, KEYS, &who, Some(create.clone())).await;
        assert_error(r, 403).await;
        let r =
            send(&server, reqwest::Method::PATCH, &item, &who, Some(json!({"name": "y"}))).await;
        assert_error(r, 403).await;
        let r = send(&server, reqwest::Method::DELETE, &item, &who, None).await;
        assert_error(r, 403).await;
    }
    // No credential: 401.
    let r = server.client.delete(server.url(&item)).send().await.unwrap();
    assert_error(r, 401).await;
    // Unknown ids: 404.
    for m in [reqwest::Method::PATCH, reqwest::Method::DELETE] {
        let r =
            send(&server, m, &format!("{KEYS}999999/"), &staff_auth, Some(json!({"name": "z"})))
                .await;
        assert_error(r, 404).await;
    }
    // Bad bodies: 400.
    let bad_creates = [
        json!({"name": "x"}),
        json!({"name": "x", "user_id": u.id, "username": u.username}),
        json!({"name": "x", "user_id": 999_999}),
        json!({"name": "x", "username": "nobody-here"}),
        json!({"name": "x", "email": u.username}),
        json!({"name": ["x"], "user_id": u.id}),
        json!({"name": "x", "user_id": "one"}),
        json!({"name": "", "user_id": u.id}),
        json!({"name": "x", "user_id": u.id, "key_type": "root"}),
        json!({"name": "x", "user_id": u.id, "expires_at": "tomorrow"}),
        json!({"name": "x", "user_id": u.id, "expires_at": rfc3339(now() - 60)}),
        json!(["not", "an", "object"]),
    ];
    for body in bad_creates {
        let r = send(&server, reqwest::Method::POST, KEYS, &staff_auth, Some(body.clone())).await;
        let status = r.status();
        assert_eq!(status, 400, "{body}");
        assert_error(r, 400).await;
    }
    let r = server
        .client
        .post(server.url(KEYS))
        .header("authorization", &staff_auth)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_error(r, 400).await;
    for body in [
        json!({"is_active": "no"}),
        json!({"name": ""}),
        json!({"key_type": "root"}),
        json!({"expires_at": rfc3339(now() - 60)}),
        json!({"expires_at": 5}),
    ] {
        let r = send(&server, reqwest::Method::PATCH, &item, &staff_auth, Some(body.clone())).await;
        assert_eq!(r.status(), 400, "{body}");
        assert_error(r, 400).await;
    }
    // Nothing was changed or created by any of it.
    let (_, k) = get(&server, &staff.token, &item).await;
    assert_eq!((k["name"].as_str(), k["is_active"].as_bool()), (Some("mine"), Some(true)));
    let (_, list) = get(&server, &staff.token, &format!("{KEYS}?user_id={}", u.id)).await;
    assert_eq!(list["count"], 1);
}
