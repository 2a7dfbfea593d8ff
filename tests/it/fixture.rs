//! A data file written by the first schema (tests/fixtures/schema-v1) opens with the current
//! binary, migrations included, and every kind of record in it reads back.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;

use crate::harness::{env_map, TestServer};

const FIXTURE_TOKEN: &str = "2a8baa16dd282799f7c20d4a1fd45f259e1d2c20";

fn copy_fixture(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schema-v1");
    for name in ["gatehouse.redb", "master.key"] {
        std::fs::copy(from.join(name), to.join(name)).unwrap();
    }
    // git does not keep file modes; the server refuses a group- or world-readable key.
    std::fs::set_permissions(to.join("master.key"), std::fs::Permissions::from_mode(0o600))
        .unwrap();
}

async fn get_json(server: &TestServer, path: &str) -> serde_json::Value {
    let resp = server
        .client
        .get(server.url(path))
        .header("authorization", format!("Token {FIXTURE_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

#[tokio::test]
async fn schema_v1_data_file_opens_and_reads_back() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    copy_fixture(dir.path());
    let server = TestServer::start_in(Arc::clone(&dir), env_map(&[])).await;

    let health = server.get("/health/").await;
    assert_eq!(health.status(), 200);

    let profile: serde_json::Value = get_json(&server, "/api/auth/profile/").await;
    let text = profile.to_string();
    assert!(text.contains("fixture@fixture.test"), "{text}");

    let var: serde_json::Value = get_json(&server, "/api/variables/1/").await;
    assert_eq!(var["key"], "DATABASE_URL");
    assert_eq!(var["decrypted_value"], "postgres://fixture:s3cret-v2@db/app");
    assert_eq!(var["environment_name"], "production");

    let project: serde_json::Value = get_json(&server, "/api/projects/1/").await;
    assert_eq!(project["name"], "Fixture Project");
    assert_eq!(project["organization_name"], "Fix's Organization");

    let keys: serde_json::Value = get_json(&server, "/api/api-keys/").await;
    assert!(keys.to_string().contains("fixture key"), "{keys}");

    // The index is not part of the fixture: it is rebuilt from redb at start.
    let audit: serde_json::Value = get_json(&server, "/api/audit-logs/").await;
    assert!(audit["count"].as_u64().unwrap() >= 5, "{audit}");
    assert!(audit.to_string().contains("variable_created"), "{audit}");

    // Login with the stored password hash still works.
    let login = server
        .client
        .post(server.url("/api/auth/login/"))
        .json(&serde_json::json!({"email": "fixture@fixture.test", "password": "fixture-pass-123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);

    // The history written by schema 1 still opens.
    let versions: serde_json::Value = get_json(&server, "/api/variables/1/versions/").await;
    let text = versions.to_string();
    assert!(text.contains("s3cret-v2@") && text.contains("fixture:s3cret@"), "{text}");

    // Migration 3 gave the organization a UUID, shown beside its id.
    let org_id = project["organization"].as_u64().unwrap_or_default();
    let org: serde_json::Value = get_json(&server, &format!("/api/organizations/{org_id}/")).await;
    let org_uuid = org["uuid"].as_str().unwrap_or_default().to_string();
    assert!(uuid_like(&org_uuid), "{org}");

    // Migrated: schema 4 (the current one), variables in the binary record body (version byte 2).
    let mut server = server;
    server.stop().await;
    let db = redb::Database::create(dir.path().join("gatehouse.redb")).unwrap();
    let tx = redb::ReadableDatabase::begin_read(&db).unwrap();
    let meta = tx.open_table(redb::TableDefinition::<&str, &[u8]>::new("meta")).unwrap();
    assert_eq!(meta.get("schema_version").unwrap().unwrap().value(), b"4");
    let vars = tx.open_table(redb::TableDefinition::<u64, &[u8]>::new("variables")).unwrap();
    assert_eq!(vars.get(1).unwrap().unwrap().value()[0], 2);
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}
