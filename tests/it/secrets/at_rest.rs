//! Encryption at rest: no secret value in any file under the data dir after a stop, and master
//! key rotation with the server stopped.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use super::{ok, Team};
use crate::harness::TestServer;

pub(crate) fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

pub(crate) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn no_secret_value_reaches_any_file() {
    let t = Team::new().await;
    let env = t.env().await;
    let secrets: Vec<String> =
        (0..5).map(|i| format!("s3cr3t-marker-{i}-{}", std::process::id())).collect();
    let id = t.variable(env, "ONE", &secrets[0]).await;
    ok(
        t.patch(&format!("/api/variables/{id}/"), &t.owner, json!({"value": secrets[1]})).await,
        200,
    )
    .await;
    let gone = t.variable(env, "GONE", &secrets[2]).await;
    ok(t.delete(&format!("/api/variables/{gone}/"), &t.owner).await, 204).await;
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(
            format!("IMPORTED=\"{}\"\nOTHER={}\n", secrets[3], secrets[4]).into_bytes(),
        ),
    );
    let resp =
        t.s.client
            .post(t.s.url(&format!("/api/environments/{env}/import/")))
            .header("authorization", crate::harness::auth(&t.owner.token))
            .multipart(form)
            .send()
            .await
            .unwrap();
    ok(resp, 200).await;
    let text =
        t.get(&format!("/api/environments/{env}/export/"), &t.viewer).await.text().await.unwrap();
    assert!(text.contains(&secrets[1]) && text.contains(&secrets[3]));

    let dir = Arc::clone(&t.s.dir);
    let mut t = t;
    t.s.stop().await;
    let mut files = Vec::new();
    files_under(dir.path(), &mut files);
    assert!(files.iter().any(|f| f.ends_with("gatehouse.redb")));
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        for s in &secrets {
            assert!(
                !contains(&bytes, s.as_bytes()),
                "{} holds a secret value in clear",
                file.display()
            );
        }
    }
}

#[tokio::test]
async fn rotate_master_key_reseals_and_refuses_the_old_key() {
    let t = Team::new().await;
    let env = t.env().await;
    let id = t.variable(env, "ROTATED", "value-before-rotation").await;
    let (owner, env_map, dir) = (t.owner.clone(), t.s.env.clone(), Arc::clone(&t.s.dir));
    let mut s = t.s;
    s.stop().await;
    drop(s);

    let keys = tempfile::tempdir().unwrap();
    let old_key = keys.path().join("old.key");
    std::fs::copy(dir.path().join("master.key"), &old_key).unwrap();
    let new_key = keys.path().join("new.key");
    std::fs::write(&new_key, "ab".repeat(32)).unwrap();
    std::fs::set_permissions(&new_key, std::fs::Permissions::from_mode(0o600)).unwrap();

    let bin = env!("CARGO_BIN_EXE_gatehouse");
    let run = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(bin);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("GATEHOUSE_") {
                cmd.env_remove(k);
            }
        }
        cmd.args(["admin", "rotate-master-key", "--data-dir"]).arg(dir.path()).args(extra);
        cmd.output().unwrap()
    };
    // A world-readable new key is refused; nothing changes.
    let loose = keys.path().join("loose.key");
    std::fs::write(&loose, "cd".repeat(32)).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(!run(&["--new-key-file", loose.to_str().unwrap()]).status.success());
    let out = run(&["--new-key-file", new_key.to_str().unwrap()]);
    assert!(out.status.success(), "rotation failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("re-sealed 1 organization data keys"), "{stdout}");
    assert!(stdout.contains("tls_ca_key"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("master.key")).unwrap().trim(),
        "ab".repeat(32)
    );

    // The old key is refused.
    let refused = TestServer::boot(dir.path(), &env_map, Some(old_key.clone())).await;
    assert!(refused.is_err(), "the old master key still opens the data file");
    // The new key (now in DATA_DIR/master.key) serves the old values over the old TLS CA.
    let s = TestServer::start_in(Arc::clone(&dir), env_map).await;
    let resp = s
        .client
        .get(s.url(&format!("/api/variables/{id}/")))
        .header("authorization", crate::harness::auth(&owner.token))
        .send()
        .await
        .unwrap();
    let v = ok(resp, 200).await;
    assert_eq!(v["decrypted_value"], "value-before-rotation");
}
