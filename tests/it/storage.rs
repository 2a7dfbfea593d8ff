//! The data file: creation, reopening, group commit under concurrency.

use crate::harness::TestServer;

#[tokio::test]
async fn data_file_and_private_key_files_are_created() {
    let mut server = TestServer::start().await;
    let dir = server.data_dir().to_path_buf();
    server.stop().await;
    use std::os::unix::fs::PermissionsExt as _;
    assert!(dir.join("gatehouse.redb").is_file());
    let mode = std::fs::metadata(dir.join("master.key")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let pem = std::fs::read_to_string(dir.join("ca.pem")).unwrap();
    assert!(pem.contains("BEGIN CERTIFICATE"));
    // No private key material in clear in the data file.
    let data = std::fs::read(dir.join("gatehouse.redb")).unwrap();
    assert!(!String::from_utf8_lossy(&data).contains("PRIVATE KEY"));
}

/// Every table a used server's data file holds is in the schema registry and every record in
/// it decodes: the registry (`services::schema`) is what `check` and backups walk, so a table
/// missing from it would be silently skipped.
#[tokio::test]
async fn every_table_of_a_used_data_file_is_registered_and_every_record_decodes() {
    use crate::harness::{auth, login_admin};
    let mut server = TestServer::start().await;
    let admin = login_admin(&server).await;
    let post = |path: &str, body: serde_json::Value| {
        server.client.post(server.url(path)).header("authorization", auth(&admin.token)).json(&body)
    };
    let project: serde_json::Value = post(
        "/api/projects/",
        serde_json::json!({"name": "Registry", "organization": admin.org_id}),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let env: serde_json::Value =
        post("/api/environments/", serde_json::json!({"name": "prod", "project": project["id"]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let var: serde_json::Value = post(
        "/api/variables/",
        serde_json::json!({"key": "K", "value": "one", "environment": env["id"]}),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let patched = server
        .client
        .patch(server.url(&format!("/api/variables/{}/", var["id"])))
        .header("authorization", auth(&admin.token))
        .json(&serde_json::json!({"value": "two"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let key = post("/api/api-keys/", serde_json::json!({"name": "registry"})).send().await.unwrap();
    assert_eq!(key.status(), 201);
    let dir = server.data_dir().to_path_buf();
    server.stop().await;

    let key_text = std::fs::read_to_string(dir.join("master.key")).unwrap();
    let bytes: [u8; 32] = hex::decode(key_text.trim()).unwrap().try_into().unwrap();
    let (store, _) = gatehouse::store::Store::open(
        &dir.join("gatehouse.redb"),
        &gatehouse::crypto::SecretKey::from_bytes(bytes),
        8,
        1,
        gatehouse::services::schema::MIGRATIONS,
    )
    .unwrap();
    let verified = store.verify(gatehouse::services::schema::all_tables()).unwrap();
    store.close();
    assert!(
        verified.unknown.is_empty(),
        "tables missing from the registry: {:?}",
        verified.unknown
    );
    let rows = |name: &str| verified.rows.iter().find(|(n, _)| *n == name).map(|(_, r)| *r);
    let tables =
        ["users", "projects", "environments", "variables", "variable_versions", "api_keys"];
    for table in tables.into_iter().chain(["audit", "request_logs", "org_data_keys"]) {
        assert!(rows(table).unwrap_or(0) > 0, "{table} should hold rows: {:?}", verified.rows);
    }
}
