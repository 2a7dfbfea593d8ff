//! Backups as an operator takes them: `POST /api/admin/backup/` under a concurrent write load
//! (every write acknowledged before the snapshot began is in it), `gatehouse backup` against a
//! running and a stopped server, rotating scheduled snapshots, `gatehouse restore` of a
//! snapshot and of a previous-schema file, and `gatehouse check` on the results. A snapshot
//! never holds the master key; only staff through a full session may take one.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::harness::{assert_error, auth, env_map, login_admin, register, TestServer};
use crate::secrets::at_rest::contains;
use crate::secrets::{ok, Team};

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

fn gatehouse(data_dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GATEHOUSE_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg("--data-dir").arg(data_dir).args(args).stdin(Stdio::null()).output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

async fn download(s: &TestServer, token: &str) -> reqwest::Response {
    s.client
        .post(s.url("/api/admin/backup/"))
        .header("authorization", auth(token))
        .send()
        .await
        .unwrap()
}

/// A fresh data directory holding `snapshot` restored with `master_key`.
fn restored_dir(snapshot: &Path, master_key: &Path) -> Arc<tempfile::TempDir> {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let key = dir.path().join("master.key");
    std::fs::copy(master_key, &key).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = gatehouse(dir.path(), &["restore", snapshot.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = gatehouse(dir.path(), &["check"]);
    assert!(out.status.success(), "{}", text(&out));
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_snapshot_under_write_load_holds_every_write_acknowledged_before_it_began() {
    let team = Arc::new(Team::new().await);
    let env = team.env().await;
    let admin = login_admin(&team.s).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acked = Arc::new(parking_lot::Mutex::new(Vec::<(String, String)>::new()));
    let mut writers = Vec::new();
    for w in 0..8 {
        let (team, stop, acked) = (Arc::clone(&team), Arc::clone(&stop), Arc::clone(&acked));
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (key, value) = (format!("W{w}_{i}"), format!("value-{w}-{i}"));
                let body = json!({"key": key, "value": value, "environment": env});
                let resp = team.post("/api/variables/", &team.owner, body).await;
                if resp.status() == 201 {
                    acked.lock().push((key, value));
                }
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before: Vec<(String, String)> = acked.lock().clone();
    let resp = download(&team.s, &admin.token).await;
    assert_eq!(resp.status(), 200);
    let disposition = resp.headers()["content-disposition"].to_str().unwrap().to_string();
    assert!(disposition.starts_with("attachment; filename=\"gatehouse-"), "{disposition}");
    assert_eq!(resp.headers()["x-gatehouse-schema-version"], "4");
    let length: usize = resp.headers()["content-length"].to_str().unwrap().parse().unwrap();
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(bytes.len(), length);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let after = acked.lock().len();
    assert!(
        !before.is_empty() && after > before.len(),
        "writes went on: {} then {after}",
        before.len()
    );

    // The master key is not in the snapshot, in either of its forms.
    let key_file = std::fs::read(team.s.data_dir().join("master.key")).unwrap();
    let key_hex = String::from_utf8(key_file.clone()).unwrap();
    let key_raw = hex::decode(key_hex.trim()).unwrap();
    assert!(!contains(&bytes, key_hex.trim().as_bytes()) && !contains(&bytes, &key_raw));
    // Nor is any value in the clear.
    assert!(!contains(&bytes, before[0].1.as_bytes()));

    // Restored into a new directory, it holds every write acknowledged before it began.
    let snapshot = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(snapshot.path(), &bytes).unwrap();
    let dir = restored_dir(snapshot.path(), &team.s.data_dir().join("master.key"));
    let restored = Team::with(TestServer::start_in(dir, env_map(&[])).await).await;
    let mut stored = std::collections::HashMap::new();
    for page in 1.. {
        let path = format!("/api/variables/?environment={env}&page_size=1000&page={page}");
        let listed = ok(restored.get(&path, &team.owner).await, 200).await;
        for v in listed["results"].as_array().unwrap() {
            stored.insert(
                v["key"].as_str().unwrap().to_string(),
                v["decrypted_value"].as_str().unwrap().to_string(),
            );
        }
        if listed["next"].is_null() {
            break;
        }
    }
    assert!(stored.len() <= after, "{} stored, {after} acknowledged", stored.len());
    for (key, value) in &before {
        let found = stored.get(key);
        let found =
            found.unwrap_or_else(|| panic!("{key} acknowledged before the snapshot is lost"));
        assert_eq!(found, value);
    }
}

#[tokio::test]
async fn only_staff_through_a_full_session_take_a_snapshot_and_it_is_audited() {
    let s = TestServer::start().await;
    let resp = s.client.post(s.url("/api/admin/backup/")).send().await.unwrap();
    assert_error(resp, 401).await;
    let user = register(&s, "notstaff").await;
    assert_error(download(&s, &user.token).await, 403).await;
    let admin = login_admin(&s).await;
    // A staff member's API key is not a full session.
    let key = s
        .client
        .post(s.url("/api/api-keys/"))
        .header("authorization", auth(&admin.token))
        .json(&json!({"name": "ops", "key_type": "cli"}))
        .send()
        .await
        .unwrap();
    assert_eq!(key.status(), 201);
    let key: serde_json::Value = key.json().await.unwrap();
    let resp = s
        .client
        .post(s.url("/api/admin/backup/"))
        .header("authorization", format!("Api-Key {}", key["key"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_error(resp, 403).await;
    let resp = download(&s, &admin.token).await;
    assert_eq!(resp.status(), 200);
    let _ = resp.bytes().await.unwrap();
    s.running.as_ref().unwrap().state.logs.wait_audit_visible().await;
    let audit = s
        .client
        .get(s.url("/api/audit-logs/?action=backup_downloaded"))
        .header("authorization", auth(&admin.token))
        .send()
        .await
        .unwrap();
    let audit: serde_json::Value = audit.json().await.unwrap();
    assert_eq!(audit["count"], 1, "{audit}");
    // Nothing is left behind in the snapshot folder by a download.
    let left: Vec<_> = std::fs::read_dir(s.data_dir().join("backups"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

// The CLI runs while the in-process server answers it: the test must not block the server's
// only thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_backs_up_a_running_server_through_its_api_and_a_stopped_one_directly() {
    let mut s = TestServer::start().await;
    let admin = login_admin(&s).await;
    let dir = s.data_dir().to_path_buf();
    let port = s.base.rsplit(':').next().unwrap().to_string();
    let listen = format!("127.0.0.1:{port}");
    let out_dir = tempfile::tempdir().unwrap();
    let online = out_dir.path().join("online.redb");
    let o = online.to_str().unwrap();
    // Running: no token, no backup (and no file).
    let out = gatehouse(&dir, &["backup", "--listen", &listen, "-o", o]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("--token"), "{}", text(&out));
    assert!(!online.exists());
    // A bad token: the server's refusal, no file.
    let out = gatehouse(&dir, &["backup", "--listen", &listen, "-o", o, "--token", "nope"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("401"), "{}", text(&out));
    assert!(!online.exists());
    let out = gatehouse(&dir, &["backup", "--listen", &listen, "-o", o, "--token", &admin.token]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("checked with the master key"), "{}", text(&out));
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&online).unwrap().permissions().mode() & 0o777, 0o600);
    // It will not overwrite without --force.
    let out = gatehouse(&dir, &["backup", "--listen", &listen, "-o", o, "--token", &admin.token]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // `check` and `restore` refuse a running server's file.
    let out = gatehouse(&dir, &["check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("stop the server"), "{}", text(&out));
    let out = gatehouse(&dir, &["restore", o]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("stop it first"), "{}", text(&out));

    s.stop().await;
    let offline = out_dir.path().join("offline.redb");
    let out = gatehouse(&dir, &["backup", "-o", offline.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("read directly"), "{}", text(&out));
    let out = gatehouse(&dir, &["check"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("search index: consistent"), "{}", text(&out));
    // `reindex` rebuilds it now, and it agrees with the data file again.
    std::fs::remove_dir_all(dir.join("index")).unwrap();
    let out = gatehouse(&dir, &["check"]);
    assert!(text(&out).contains("the next start rebuilds it"), "{}", text(&out));
    let out = gatehouse(&dir, &["reindex"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("search index rebuilt"), "{}", text(&out));
    let out = gatehouse(&dir, &["check"]);
    assert!(text(&out).contains("search index: consistent"), "{}", text(&out));

    // Restore keeps the current file aside and drops the index; the server starts on it.
    let out = gatehouse(&dir, &["restore", o]);
    assert!(out.status.success(), "{}", text(&out));
    let aside: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("gatehouse.redb.before-restore-"))
        .collect();
    assert_eq!(aside.len(), 1);
    assert!(!dir.join("index").exists());
    let s = TestServer::start_in(Arc::clone(&s.dir), s.env.clone()).await;
    let admin = login_admin(&s).await;
    let me = s
        .client
        .get(s.url("/api/auth/profile/"))
        .header("authorization", auth(&admin.token))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
}

#[tokio::test]
async fn restore_refuses_a_snapshot_the_master_key_does_not_open_and_changes_nothing() {
    let mut s = TestServer::start().await;
    s.stop().await;
    let snapshot = s.data_dir().join("snap.redb");
    let out = gatehouse(s.data_dir(), &["backup", "-o", snapshot.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let other = TestServer::start().await;
    let mut other = other;
    other.stop().await;
    let unchanged = |dir: &Path| {
        let moved = std::fs::read_dir(dir).unwrap().flatten().any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.contains("before-restore") || name.contains("partial")
        });
        assert!(!moved, "a refused restore moved or left files");
        let out = gatehouse(dir, &["check"]);
        assert!(out.status.success(), "{}", text(&out));
    };
    let out = gatehouse(other.data_dir(), &["restore", snapshot.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("master key"), "{}", text(&out));
    unchanged(other.data_dir());
    let garbage = other.data_dir().join("garbage.redb");
    std::fs::write(&garbage, b"not a database at all").unwrap();
    let out = gatehouse(other.data_dir(), &["restore", garbage.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    unchanged(other.data_dir());
}

#[tokio::test]
async fn a_previous_schema_file_restores_migrated_and_serves() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schema-v1");
    let key = dir.path().join("master.key");
    std::fs::copy(fixture.join("master.key"), &key).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = gatehouse(dir.path(), &["restore", fixture.join("gatehouse.redb").to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("schema 4"), "{}", text(&out));
    let out = gatehouse(dir.path(), &["check"]);
    assert!(out.status.success(), "{}", text(&out));
    // The fixture itself is untouched (restore works on a copy).
    let s = TestServer::start_in(dir, env_map(&[])).await;
    let var = s
        .client
        .get(s.url("/api/variables/1/"))
        .header("authorization", auth("2a8baa16dd282799f7c20d4a1fd45f259e1d2c20"))
        .send()
        .await
        .unwrap();
    let var: serde_json::Value = var.json().await.unwrap();
    assert_eq!(var["decrypted_value"], "postgres://fixture:s3cret-v2@db/app");
}

#[tokio::test]
async fn scheduled_snapshots_rotate_and_each_one_opens() {
    let s = TestServer::start_with(&[
        ("GATEHOUSE_BACKUP_INTERVAL", "1s"),
        ("GATEHOUSE_BACKUP_KEEP", "2"),
    ])
    .await;
    let dir = s.data_dir().join("backups");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..100 {
        for (path, _) in gatehouse::services::backup::list_snapshots(&dir) {
            seen.insert(path);
        }
        if seen.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(seen.len() >= 3, "snapshots written: {seen:?}");
    let kept = gatehouse::services::backup::list_snapshots(&dir);
    assert!(kept.len() <= 2, "{kept:?}");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for name in &names {
        assert!(
            name.starts_with("gatehouse-") && name.ends_with(".redb") || name.ends_with(".partial"),
            "{name}"
        );
    }
    let newest = kept.iter().map(|(p, _)| p.clone()).max().unwrap();
    let copy = tempfile::NamedTempFile::new().unwrap();
    std::fs::copy(&newest, copy.path()).unwrap();
    let restored = restored_dir(copy.path(), &s.data_dir().join("master.key"));
    assert!(restored.path().join("gatehouse.redb").is_file());
}
