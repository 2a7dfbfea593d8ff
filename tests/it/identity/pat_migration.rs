//! Migration 4 (PAT UUIDs): a data file written by schema 3 (`tests/fixtures/schema-v3`, see
//! its README) opens, every PAT gets a UUID and the lookup from it, and the PAT JWTs issued
//! by that version (integer `pat_id`) keep authenticating; reissue moves them to the UUID.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::harness::{assert_error, env_map, TestServer};

/// PAT JWTs issued by schema 3 (3650 days): ids 1 (read-write), 2 (read-only), 3 (revoked),
/// 4 (staff, access_global_metrics).
const PLAIN: &str = "eyJhbGciOiJIUzI1NiIsImtpZCI6IjljMzM3NjMzODM2ZjA5ZTMiLCJ0eXAiOiJKV1QifQ.eyJ0b2tlbl90eXBlIjoiYWNjZXNzIiwic3ViIjoiMiIsInVzZXJfaWQiOjIsImNvbXBhbnlfaWQiOjIsImlzX3N0YWZmIjpmYWxzZSwianRpIjoiYzQ5MDdlNmUzNDIzZTJmNjA2ZTZmOWMzMDEwMjM5ZTQiLCJleHAiOjIxMTE0NjA5MTAsImlhdCI6MTc5NjEwMDkxMCwiY2V2IjowLCJwYXRfaWQiOjEsInBhdF9ybyI6ZmFsc2UsInBhdF9hZ20iOmZhbHNlfQ.H1fxKRJNO65LLZI06xD7LV_4T2oLNrj_I6wGmBEPRJQ";
const READ_ONLY: &str = "eyJhbGciOiJIUzI1NiIsImtpZCI6IjljMzM3NjMzODM2ZjA5ZTMiLCJ0eXAiOiJKV1QifQ.eyJ0b2tlbl90eXBlIjoiYWNjZXNzIiwic3ViIjoiMiIsInVzZXJfaWQiOjIsImNvbXBhbnlfaWQiOjIsImlzX3N0YWZmIjpmYWxzZSwianRpIjoiOTM5MzU1ZjM2NmZiYmM4ZWFhNWM2ZmJjMWJmNzE5ZTEiLCJleHAiOjIxMTE0NjA5MTAsImlhdCI6MTc5NjEwMDkxMCwiY2V2IjowLCJwYXRfaWQiOjIsInBhdF9ybyI6dHJ1ZSwicGF0X2FnbSI6ZmFsc2V9.EMyfAjpIc3SXyEuk9JyYRQNOxEKVGCiRd0myZJmeNQU";
const REVOKED: &str = "eyJhbGciOiJIUzI1NiIsImtpZCI6IjljMzM3NjMzODM2ZjA5ZTMiLCJ0eXAiOiJKV1QifQ.eyJ0b2tlbl90eXBlIjoiYWNjZXNzIiwic3ViIjoiMiIsInVzZXJfaWQiOjIsImNvbXBhbnlfaWQiOjIsImlzX3N0YWZmIjpmYWxzZSwianRpIjoiOTQzYWNhOTI1MjczZjY0MGQ2NzI5NGJhNjVmNjE1MjAiLCJleHAiOjIxMTE0NjA5MTAsImlhdCI6MTc5NjEwMDkxMCwiY2V2IjowLCJwYXRfaWQiOjMsInBhdF9ybyI6ZmFsc2UsInBhdF9hZ20iOmZhbHNlfQ.EAVwbnIGym-evHu_3LKfwT7CoDNwrK3-4DfIwx39d1U";
const GLOBAL: &str = "eyJhbGciOiJIUzI1NiIsImtpZCI6IjljMzM3NjMzODM2ZjA5ZTMiLCJ0eXAiOiJKV1QifQ.eyJ0b2tlbl90eXBlIjoiYWNjZXNzIiwic3ViIjoiMSIsInVzZXJfaWQiOjEsImNvbXBhbnlfaWQiOjMsImlzX3N0YWZmIjp0cnVlLCJqdGkiOiI5NWVmMzI5MWYyYTU2MGRlZmY3ZGMxMDk4OWZkMzM3NiIsImV4cCI6MjExMTQ2MDkxMCwiaWF0IjoxNzk2MTAwOTEwLCJjZXYiOjAsInBhdF9pZCI6NCwicGF0X3JvIjpmYWxzZSwicGF0X2FnbSI6dHJ1ZX0.P2Kv0MyVAc_WIUyJFMQBPMrrksYQL12jmQDdhasVoxg";

fn copy_fixture(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schema-v3");
    for name in ["gatehouse.redb", "master.key"] {
        std::fs::copy(from.join(name), to.join(name)).unwrap();
    }
    // git keeps no modes; the master key must be private.
    for name in ["gatehouse.redb", "master.key"] {
        std::fs::set_permissions(to.join(name), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

async fn status(server: &TestServer, path: &str, token: &str) -> u16 {
    get(server, path, token).await.status().as_u16()
}

async fn get(server: &TestServer, path: &str, token: &str) -> reqwest::Response {
    server
        .client
        .get(server.url(path))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap()
}

async fn login(server: &TestServer, email: &str, password: &str) -> String {
    let resp = server
        .client
        .post(server.url("/api/auth/login/"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string()
}

async fn list(server: &TestServer, token: &str) -> Vec<Value> {
    let resp = server
        .client
        .get(server.url("/api/v1/personal-access-tokens"))
        .header("authorization", format!("Token {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap()["results"].as_array().unwrap().clone()
}

fn uuid_of(row: &Value) -> String {
    let text = row["uuid"].as_str().unwrap_or_default().to_string();
    assert!(uuid::Uuid::parse_str(&text).is_ok() && text.len() == 36, "{row}");
    text
}

#[tokio::test]
async fn schema_v3_pats_get_uuids_and_their_integer_tokens_keep_working() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    copy_fixture(dir.path());
    let server = TestServer::start_in(Arc::clone(&dir), env_map(&[])).await;

    // Tokens of the previous version: their integer pat_id still resolves, every check intact.
    let claims: Value =
        serde_json::from_slice(&B64.decode(PLAIN.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(claims["pat_id"], 1);
    assert_eq!(status(&server, "/api/auth/profile/", PLAIN).await, 200);
    assert_eq!(status(&server, "/api/auth/profile/", READ_ONLY).await, 200);
    let e = assert_error(get(&server, "/api/auth/profile/", REVOKED).await, 401).await;
    assert!(e.to_string().contains("Personal access token revoked."), "{e}");
    assert_eq!(status(&server, "/api/v1/metrics/all", GLOBAL).await, 200);
    assert_eq!(status(&server, "/api/v1/metrics/all", PLAIN).await, 403);
    let resp = server
        .client
        .post(server.url("/api/organizations/"))
        .header("authorization", format!("Bearer {READ_ONLY}"))
        .json(&json!({"name": "Refused"}))
        .send()
        .await
        .unwrap();
    assert_error(resp, 403).await;

    // Every PAT has a UUID, distinct, and every route takes it.
    let user = login(&server, "pat@fixture.test", "pat-pass-12345").await;
    let admin = login(&server, "admin@example.com", "admin-password-123").await;
    let mut rows = list(&server, &user).await;
    rows.extend(list(&server, &admin).await);
    let mut ids: Vec<u64> = rows.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 2, 3, 4]);
    let uuids: std::collections::BTreeSet<String> = rows.iter().map(uuid_of).collect();
    assert_eq!(uuids.len(), 4);
    let plain = rows.iter().find(|r| r["id"] == 1).unwrap();
    let plain_uuid = uuid_of(plain);

    // Reissue moves the PAT to the UUID claim, same expiry; the integer token stops.
    let resp = server
        .client
        .post(server.url(&format!("/api/v1/personal-access-tokens/{plain_uuid}/reissue")))
        .header("authorization", format!("Token {user}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let again: Value = resp.json().await.unwrap();
    assert_eq!(again["expires_at"], plain["expires_at"]);
    let token = again["access_token"].as_str().unwrap().to_string();
    let new_claims: Value =
        serde_json::from_slice(&B64.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(new_claims["pat_id"], json!(plain_uuid));
    assert_eq!(new_claims["exp"], claims["exp"]);
    assert_eq!(status(&server, "/api/auth/profile/", &token).await, 200);
    assert_eq!(status(&server, "/api/auth/profile/", PLAIN).await, 401);

    // The UUIDs survive a restart (the migration ran once), and the file says schema 4.
    let mut server = server.restart().await;
    let user = login(&server, "pat@fixture.test", "pat-pass-12345").await;
    let after: std::collections::BTreeSet<String> =
        list(&server, &user).await.iter().map(uuid_of).collect();
    assert!(after.is_subset(&uuids) && after.len() == 3, "{after:?} {uuids:?}");
    assert_eq!(status(&server, "/api/auth/profile/", READ_ONLY).await, 200);
    server.stop().await;
    let db = redb::Database::create(dir.path().join("gatehouse.redb")).unwrap();
    let tx = redb::ReadableDatabase::begin_read(&db).unwrap();
    let meta = tx.open_table(redb::TableDefinition::<&str, &[u8]>::new("meta")).unwrap();
    assert_eq!(meta.get("schema_version").unwrap().unwrap().value(), b"4");
    let lookup = tx.open_table(redb::TableDefinition::<&str, u64>::new("pat_uuids")).unwrap();
    for (row, uuid) in rows.iter().map(|r| (r["id"].as_u64().unwrap(), uuid_of(r))) {
        assert_eq!(lookup.get(uuid.as_str()).unwrap().unwrap().value(), row);
    }
}
