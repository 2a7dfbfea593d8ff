//! Personal access tokens: creation (shown once), use, read-only, global-metrics scope,
//! revocation, `pat_agm` mismatch, `last_used_at`.

use serde_json::{json, Value};

use crate::harness::{assert_error, auth, login_admin, register, TestServer, TestUser};

const PATH: &str = "/api/v1/personal-access-tokens";

async fn create(server: &TestServer, u: &TestUser, body: Value) -> reqwest::Response {
    server
        .client
        .post(server.url(PATH))
        .header("authorization", auth(&u.token))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn profile(server: &TestServer, header: &str) -> u16 {
    server
        .client
        .get(server.url("/api/auth/profile/"))
        .header("authorization", header)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn create_use_list_and_revoke() {
    let server = TestServer::start().await;
    let u = register(&server, "patuser").await;
    let resp = create(&server, &u, json!({"name": "prometheus", "read_only": true})).await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(body["read_only"], true);
    assert_eq!(body["access_global_metrics"], false);
    assert!(body["last_used_at"].is_null());
    assert!(body["revoked_at"].is_null());
    let id = body["id"].as_u64().unwrap();
    let bearer = format!("Bearer {token}");
    assert_eq!(profile(&server, &bearer).await, 200);
    // Read-only: no writes, not even creating another PAT.
    let resp = server
        .client
        .post(server.url(PATH))
        .header("authorization", &bearer)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_error(resp, 403).await;
    let list: Value = server
        .client
        .get(server.url(PATH))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let row = &list["results"][0];
    assert!(row.get("access_token").is_none());
    assert!(row["last_used_at"].is_string(), "last_used_at not updated: {row}");
    assert_eq!(row["company_id"], u.org_id);

    // Someone else's PAT: 404; revoke: immediate.
    let other = register(&server, "patother").await;
    let resp = server
        .client
        .delete(server.url(&format!("{PATH}/{id}")))
        .header("authorization", auth(&other.token))
        .send()
        .await
        .unwrap();
    assert_error(resp, 404).await;
    let resp = server
        .client
        .post(server.url(&format!("{PATH}/{id}/revoke")))
        .header("authorization", auth(&u.token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.json::<Value>().await.unwrap()["revoked_at"].is_string());
    assert_eq!(profile(&server, &bearer).await, 401);
    let resp = server
        .client
        .delete(server.url(&format!("{PATH}/{id}")))
        .header("authorization", auth(&u.token))
        .send()
        .await
        .unwrap();
    assert_error(resp, 400).await;

    // Write PAT + DELETE route.
    let body: Value = create(&server, &u, json!({"name": "rw", "expires_in_days": 1}))
        .await
        .json()
        .await
        .unwrap();
    let rw = format!("Bearer {}", body["access_token"].as_str().unwrap());
    // A PAT writes data but never the account itself (H3): the profile needs a full session.
    let resp = server
        .client
        .patch(server.url("/api/auth/profile/"))
        .header("authorization", &rw)
        .json(&json!({"last_name": "Pat"}))
        .send()
        .await
        .unwrap();
    assert_error(resp, 403).await;
    let resp = server
        .client
        .post(server.url("/api/organizations/"))
        .header("authorization", &rw)
        .json(&json!({"name": "Pat Org"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = body["id"].as_u64().unwrap();
    let resp = server
        .client
        .delete(server.url(&format!("{PATH}/{id}")))
        .header("authorization", auth(&u.token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(profile(&server, &rw).await, 401);

    // Bad input.
    assert_error(create(&server, &u, json!({"expires_in_days": 0})).await, 400).await;
    assert_error(create(&server, &u, json!({"name": "x".repeat(201)})).await, 400).await;
    assert_error(create(&server, &u, json!({"company_id": other.org_id})).await, 403).await;
    let actions = super::audit_actions(&server);
    assert!(
        actions.contains(&"pat_created".to_string())
            && actions.contains(&"pat_revoked".to_string())
    );
}

#[tokio::test]
async fn global_metrics_scope_is_staff_only_and_must_match_the_row() {
    let server = TestServer::start().await;
    let u = register(&server, "patagm").await;
    let e =
        assert_error(create(&server, &u, json!({"access_global_metrics": true})).await, 403).await;
    assert!(e["error"].as_str().unwrap().contains("staff"));
    let admin = login_admin(&server).await;
    let resp =
        create(&server, &admin, json!({"name": "global", "access_global_metrics": true})).await;
    assert_eq!(resp.status(), 201);

    // A token whose pat_agm claim differs from its row (signed with the real key) is refused.
    let row: Value = create(&server, &u, json!({"name": "plain"})).await.json().await.unwrap();
    let state = &server.running.as_ref().unwrap().state;
    let user = {
        use gatehouse::store::Reader as _;
        state
            .store
            .read(|tx| tx.get(gatehouse::domain::accounts::tables::USERS, u.id))
            .unwrap()
            .unwrap()
    };
    let pat_row = {
        use gatehouse::store::Reader as _;
        state
            .store
            .read(|tx| {
                tx.get(gatehouse::domain::credentials::tables::PATS, row["id"].as_u64().unwrap())
            })
            .unwrap()
            .unwrap()
    };
    let now = gatehouse::clock::unix_now();
    let forged = state
        .credentials
        .issue_pat(&user, u.org_id, pat_row.id, &pat_row.jti, false, true, now, pat_row.expires_at)
        .unwrap();
    let resp = server
        .client
        .get(server.url("/api/auth/profile/"))
        .header("authorization", format!("Bearer {}", forged.expose()))
        .send()
        .await
        .unwrap();
    let e = assert_error(resp, 401).await;
    assert!(e["error"].as_str().unwrap().contains("scope mismatch"));
    let honest = state
        .credentials
        .issue_pat(&user, u.org_id, pat_row.id, &pat_row.jti, false, false, now, pat_row.expires_at)
        .unwrap();
    assert_eq!(profile(&server, &format!("Bearer {}", honest.expose())).await, 200);
    let wrong_jti = state
        .credentials
        .issue_pat(&user, u.org_id, pat_row.id, "other-jti", false, false, now, pat_row.expires_at)
        .unwrap();
    assert_eq!(profile(&server, &format!("Bearer {}", wrong_jti.expose())).await, 401);
}
