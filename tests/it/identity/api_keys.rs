//! User API keys (both header forms, read-only, org scope, allow-list, expiry, revocation,
//! rotation with grace, per-version usage) and the staff views (with the `/cfg` alias).

use serde_json::{json, Value};

use crate::harness::{assert_error, auth, login_admin, register, TestServer, TestUser};

async fn create_key(server: &TestServer, u: &TestUser, body: Value) -> reqwest::Response {
    server
        .client
        .post(server.url("/api/api-keys/"))
        .header("authorization", auth(&u.token))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn get_with(server: &TestServer, path: &str, header: &str) -> reqwest::Response {
    server.client.get(server.url(path)).header("authorization", header).send().await.unwrap()
}

#[tokio::test]
async fn create_use_list_and_revoke() {
    let server = TestServer::start().await;
    let u = register(&server, "keyuser").await;
    let resp = create_key(&server, &u, json!({"name": "CI key", "key_type": "cli"})).await;
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    assert_eq!(key.len(), 64);
    let masked = created["masked_key"].as_str().unwrap();
    assert_eq!(masked, format!("{}...{}", &key[..4], &key[60..]));
    assert_eq!(created["key_type"], "cli");
    assert_eq!(created["is_valid"], true);
    let id = created["id"].as_u64().unwrap();

    for header in [
        format!("Api-Key {key}"),
        format!("Bearer {key}"),
        format!("api-key {}", key.to_uppercase()),
    ] {
        let resp = get_with(&server, "/api/auth/profile/", &header).await;
        assert_eq!(resp.status(), 200, "{header}");
    }
    let list: Value =
        get_with(&server, "/api/api-keys/", &auth(&u.token)).await.json().await.unwrap();
    assert_eq!(list["count"], 1);
    assert!(list["results"][0].get("key").is_none(), "key shown again");
    assert_eq!(list["results"][0]["request_count"], 3);
    assert!(list["results"][0]["last_used_at"].is_string());
    let one: Value = get_with(&server, &format!("/api/api-keys/{id}/"), &auth(&u.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["name"], "CI key");

    // Another user sees nothing of it.
    let other = register(&server, "keyother").await;
    assert_error(
        get_with(&server, &format!("/api/api-keys/{id}/"), &auth(&other.token)).await,
        404,
    )
    .await;
    let resp = server
        .client
        .delete(server.url(&format!("/api/api-keys/{id}/")))
        .header("authorization", auth(&other.token))
        .send()
        .await
        .unwrap();
    assert_error(resp, 404).await;

    // Bad input.
    for body in [
        json!({"name": ""}),
        json!({"name": "x", "key_type": "root"}),
        json!({"name": "x", "ip_allowlist": ["not-a-cidr"]}),
        json!({"name": "x", "expires_at": "yesterday"}),
        json!({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}),
        json!({"name": "x", "organization": other.org_id}),
        json!({"name": ["x"]}),
    ] {
        assert_error(create_key(&server, &u, body.clone()).await, 400).await;
    }
    assert_error(get_with(&server, "/api/auth/profile/", "Api-Key 0123").await, 401).await;
    assert_error(
        get_with(&server, "/api/auth/profile/", &format!("Api-Key {}", "0".repeat(64))).await,
        401,
    )
    .await;

    // Revoke: the next request fails.
    let resp = server
        .client
        .delete(server.url(&format!("/api/api-keys/{id}/")))
        .header("authorization", auth(&u.token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_error(get_with(&server, "/api/auth/profile/", &format!("Api-Key {key}")).await, 401)
        .await;
    let one: Value = get_with(&server, &format!("/api/api-keys/{id}/"), &auth(&u.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["is_active"], false);
    let actions = super::audit_actions(&server);
    assert!(actions.contains(&"api_key_created".to_string()));
    assert!(actions.contains(&"api_key_revoked".to_string()));
}

#[tokio::test]
async fn read_only_scope_allowlist_and_expiry() {
    let server = TestServer::start().await;
    let u = register(&server, "keylimits").await;
    let second: Value = server
        .client
        .post(server.url("/api/organizations/"))
        .header("authorization", auth(&u.token))
        .json(&json!({"name": "Second Org"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let second_id = second["id"].as_u64().unwrap();
    let mk = |body: Value| async {
        create_key(&server, &u, body).await.json::<Value>().await.unwrap()["key"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // Read-only: reads pass, writes are 403 everywhere.
    let ro = mk(json!({"name": "ro", "read_only": true})).await;
    assert_eq!(
        get_with(&server, "/api/organizations/", &format!("Api-Key {ro}")).await.status(),
        200
    );
    let resp = server
        .client
        .post(server.url("/api/organizations/"))
        .header("authorization", format!("Api-Key {ro}"))
        .json(&json!({"name": "Nope Org"}))
        .send()
        .await
        .unwrap();
    assert_error(resp, 403).await;
    let resp = server
        .client
        .patch(server.url("/api/auth/profile/"))
        .header("authorization", format!("Bearer {ro}"))
        .json(&json!({"first_name": "x"}))
        .send()
        .await
        .unwrap();
    assert_error(resp, 403).await;

    // Organization scope: only that organization is visible.
    let scoped = mk(json!({"name": "scoped", "organization": second_id})).await;
    let list: Value = get_with(&server, "/api/organizations/", &format!("Api-Key {scoped}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["count"], 1);
    assert_eq!(list["results"][0]["id"], second_id);
    assert_error(
        get_with(
            &server,
            &format!("/api/organizations/{}/", u.org_id),
            &format!("Api-Key {scoped}"),
        )
        .await,
        404,
    )
    .await;

    // Allow-list: the test client calls from 127.0.0.1.
    let outside = mk(json!({"name": "outside", "ip_allowlist": ["10.0.0.0/8"]})).await;
    let e = assert_error(
        get_with(&server, "/api/auth/profile/", &format!("Api-Key {outside}")).await,
        403,
    )
    .await;
    assert!(e["error"].as_str().unwrap().contains("address"));
    let inside = mk(json!({"name": "inside", "ip_allowlist": ["10.0.0.0/8", "127.0.0.1"]})).await;
    assert_eq!(
        get_with(&server, "/api/auth/profile/", &format!("Api-Key {inside}")).await.status(),
        200
    );

    // Expiry: valid now, 401 after it passes.
    let soon = (time::OffsetDateTime::now_utc() + time::Duration::seconds(2))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let expiring = mk(json!({"name": "soon", "expires_at": soon})).await;
    assert_eq!(
        get_with(&server, "/api/auth/profile/", &format!("Api-Key {expiring}")).await.status(),
        200
    );
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert_error(
        get_with(&server, "/api/auth/profile/", &format!("Api-Key {expiring}")).await,
        401,
    )
    .await;
}

#[tokio::test]
async fn rotation_with_and_without_grace_counts_per_version() {
    let server = TestServer::start().await;
    let u = register(&server, "keyrotate").await;
    let created: Value =
        create_key(&server, &u, json!({"name": "rotating"})).await.json().await.unwrap();
    let (id, v1) = (created["id"].as_u64().unwrap(), created["key"].as_str().unwrap().to_string());
    get_with(&server, "/api/auth/profile/", &format!("Api-Key {v1}")).await;
    let rotate = |grace: Option<u64>| {
        let mut rb = server
            .client
            .post(server.url(&format!("/api/api-keys/{id}/rotate/")))
            .header("authorization", auth(&u.token));
        if let Some(g) = grace {
            rb = rb.json(&json!({"grace_seconds": g}));
        }
        rb.send()
    };
    let r: Value = rotate(Some(3600)).await.unwrap().json().await.unwrap();
    let v2 = r["key"].as_str().unwrap().to_string();
    assert_ne!(v1, v2);
    // Within the grace period both work.
    assert_eq!(
        get_with(&server, "/api/auth/profile/", &format!("Api-Key {v1}")).await.status(),
        200
    );
    for _ in 0..2 {
        assert_eq!(
            get_with(&server, "/api/auth/profile/", &format!("Api-Key {v2}")).await.status(),
            200
        );
    }
    // Without grace the old one dies at once.
    let r: Value = rotate(None).await.unwrap().json().await.unwrap();
    let v3 = r["key"].as_str().unwrap().to_string();
    assert_error(get_with(&server, "/api/auth/profile/", &format!("Api-Key {v2}")).await, 401)
        .await;
    assert_eq!(
        get_with(&server, "/api/auth/profile/", &format!("Api-Key {v3}")).await.status(),
        200
    );
    // v1 still inside its own grace period.
    assert_eq!(
        get_with(&server, "/api/auth/profile/", &format!("Api-Key {v1}")).await.status(),
        200
    );
    let k: Value = get_with(&server, &format!("/api/api-keys/{id}/"), &auth(&u.token))
        .await
        .json()
        .await
        .unwrap();
    let counts: Vec<u64> = k["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["request_count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, vec![3, 2, 1]);
    assert_eq!(k["request_count"], 6);
    // Counters survive a restart (flushed at shutdown).
    let server = server.restart().await;
    let k: Value = get_with(&server, &format!("/api/api-keys/{id}/"), &auth(&u.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(k["request_count"], 6);
    assert!(super::audit_actions(&server).contains(&"api_key_rotated".to_string()));
}

#[tokio::test]
async fn staff_views_exact_fields_filters_stats_and_alias() {
    let server = TestServer::start().await;
    let admin = login_admin(&server).await;
    let u = register(&server, "keystaff").await;
    let k1: Value = create_key(&server, &u, json!({"name": "svc", "key_type": "service"}))
        .await
        .json()
        .await
        .unwrap();
    create_key(&server, &u, json!({"name": "hook", "key_type": "webhook"})).await;
    create_key(&server, &admin, json!({"name": "admin cli", "key_type": "cli"})).await;
    get_with(&server, "/api/auth/profile/", &format!("Api-Key {}", k1["key"].as_str().unwrap()))
        .await;

    // Non-staff: 403 on every staff view, both prefixes.
    for path in [
        "/api/grpc/api-keys/",
        "/api/grpc/api-keys/stats/",
        "/cfg/grpc/api-keys/",
        "/cfg/grpc/api-keys/stats/",
    ] {
        assert_error(get_with(&server, path, &auth(&u.token)).await, 403).await;
    }
    assert_error(server.get("/api/grpc/api-keys/").await, 401).await;

    let list: Value =
        get_with(&server, "/api/grpc/api-keys/", &auth(&admin.token)).await.json().await.unwrap();
    assert_eq!(list["count"], 3);
    let item = list["results"].as_array().unwrap().iter().find(|i| i["name"] == "svc").unwrap();
    let mut fields: Vec<&str> = item.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    let mut expected = vec![
        "id",
        "name",
        "key_type",
        "masked_key",
        "is_active",
        "is_valid",
        "user_id",
        "username",
        "user_email",
        "request_count",
        "last_used_at",
        "expires_at",
        "created_at",
        "created_by",
    ];
    expected.sort_unstable();
    assert_eq!(fields, expected);
    assert_eq!(item["request_count"], 1);
    assert_eq!(item["username"], u.username.as_str());
    assert_eq!(item["user_email"], u.email.as_str());
    assert_eq!(item["created_by"], u.username.as_str());
    assert!(item["masked_key"].as_str().unwrap().contains("..."));

    let by_type: Value =
        get_with(&server, "/api/grpc/api-keys/?key_type=webhook", &auth(&admin.token))
            .await
            .json()
            .await
            .unwrap();
    assert_eq!(by_type["count"], 1);
    let by_user: Value = get_with(
        &server,
        &format!("/api/grpc/api-keys/?user_id={}", admin.id),
        &auth(&admin.token),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(by_user["count"], 1);
    let inactive: Value =
        get_with(&server, "/api/grpc/api-keys/?is_active=false", &auth(&admin.token))
            .await
            .json()
            .await
            .unwrap();
    assert_eq!(inactive["count"], 0);
    assert_error(
        get_with(&server, "/api/grpc/api-keys/?user_id=x", &auth(&admin.token)).await,
        400,
    )
    .await;

    let id = k1["id"].as_u64().unwrap();
    let one: Value = get_with(&server, &format!("/api/grpc/api-keys/{id}/"), &auth(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["id"], id);
    assert_error(get_with(&server, "/api/grpc/api-keys/99999/", &auth(&admin.token)).await, 404)
        .await;

    let stats: Value = get_with(&server, "/api/grpc/api-keys/stats/", &auth(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats,
        json!({"total_keys": 3, "active_keys": 3, "expired_keys": 0, "total_requests": 1,
        "keys_by_type": {"service": 1, "webhook": 1, "cli": 1}})
    );

    // The /cfg/grpc alias answers the same and is not in the document.
    let alias: Value = get_with(&server, &format!("/cfg/grpc/api-keys/{id}"), &auth(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(alias["masked_key"], one["masked_key"]);
    let alias_list: Value =
        get_with(&server, "/cfg/grpc/api-keys/?key_type=cli", &auth(&admin.token))
            .await
            .json()
            .await
            .unwrap();
    assert_eq!(alias_list["count"], 1);
    let doc: Value = server.get("/api/schema/").await.json().await.unwrap();
    assert!(doc["paths"].as_object().unwrap().keys().all(|p| !p.starts_with("/cfg/grpc/api-keys")));
    assert!(
        doc["paths"].get("/api/grpc/api-keys/stats").is_some()
            || doc["paths"].get("/api/grpc/api-keys/stats/").is_some()
    );
}
