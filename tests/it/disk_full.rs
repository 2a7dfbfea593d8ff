//! A full data disk (a size-limited tmpfs; skipped with a message where it cannot be mounted):
//! writes answer 503 in the error format with `Retry-After`, reads keep working, `/health/` says
//! `degraded`, the metrics show the free space, nothing acknowledged is lost, and writes work
//! again by themselves once space is freed. Both paths: the reserve refusing writes before the
//! disk is full, and a real ENOSPC mid-commit (reserve 0), after which redb fails every
//! transaction until the store closes and reopens the data file.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{assert_error, auth, env_map, login_admin, TestServer, TestUser};
use crate::metrics::{scrape, value, ALL};

/// A tmpfs mounted for the test; unmounted (lazily, so a failed test cannot wedge it) on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let opts = format!("size={size}");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &opts, "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Self { dir }),
            Ok(out) => {
                eprintln!(
                    "skipped: cannot mount a tmpfs: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount: {e}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

fn free(path: &Path) -> u64 {
    fs4::available_space(path).unwrap()
}

/// Fills the filesystem with `file` until at most `leave` bytes are free (0: until ENOSPC).
fn fill(file: &Path, leave: u64) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(file).unwrap();
    let chunk = vec![0xa5u8; 64 * 1024];
    loop {
        let room = free(file.parent().unwrap());
        if leave > 0 && room <= leave {
            break;
        }
        let n = if leave == 0 { chunk.len() } else { chunk.len().min((room - leave) as usize) };
        let Some(part) = chunk.get(..n) else { break };
        match f.write_all(part) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling {}: {e}", file.display()),
        }
    }
    let _ = f.sync_all();
}

struct Fixture {
    server: TestServer,
    admin: TestUser,
    env: u64,
}

impl Fixture {
    async fn new(data: &Path, pairs: &[(&str, &str)]) -> Self {
        let dir = Arc::new(tempfile::tempdir_in(data).unwrap());
        let server = TestServer::start_in(dir, env_map(pairs)).await;
        let admin = login_admin(&server).await;
        let body = json!({"name": "Disk", "organization": admin.org_id});
        let project = server.post_as(&admin, "/api/projects/", body).await;
        assert_eq!(project.status(), 201);
        let project: Value = project.json().await.unwrap();
        let body = json!({"name": "prod", "project": project["id"]});
        let env = server.post_as(&admin, "/api/environments/", body).await;
        assert_eq!(env.status(), 201);
        let env = env.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
        Self { server, admin, env }
    }

    /// Creates variable `key` with a value of `size` bytes; the response.
    async fn write(&self, key: &str, size: usize) -> reqwest::Response {
        let body = json!({"key": key, "value": "v".repeat(size), "environment": self.env});
        self.server.post_as(&self.admin, "/api/variables/", body).await
    }

    async fn keys(&self) -> BTreeSet<String> {
        let path = format!("/api/environments/{}/variables/?page_size=1000", self.env);
        let resp = self.server.get_as(&self.admin, &path).await;
        assert_eq!(resp.status(), 200, "reading the variables");
        let page: Value = resp.json().await.unwrap();
        let results = page["results"].as_array().unwrap();
        results.iter().map(|v| v["key"].as_str().unwrap().to_string()).collect()
    }

    async fn health(&self) -> Value {
        let resp = self.server.get("/health/").await;
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }
}

impl TestServer {
    async fn post_as(&self, u: &TestUser, path: &str, body: Value) -> reqwest::Response {
        let req = self.client.post(self.url(path)).header("authorization", auth(&u.token));
        req.json(&body).send().await.unwrap()
    }

    async fn get_as(&self, u: &TestUser, path: &str) -> reqwest::Response {
        let req = self.client.get(self.url(path)).header("authorization", auth(&u.token));
        req.send().await.unwrap()
    }
}

/// Asserts a 503 answer in the error format, with `Retry-After`; returns its `error`.
async fn assert_unavailable(resp: reqwest::Response) -> String {
    let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    let body = assert_error(resp, 503).await;
    assert_eq!(body["code"], "SERVICE_UNAVAILABLE", "{body}");
    assert!(retry_after.is_some_and(|s| s.parse::<u64>().is_ok()), "no Retry-After");
    body["error"].as_str().unwrap().to_string()
}

/// Asserts a 503 "the data disk is full" answer.
async fn assert_disk_full(resp: reqwest::Response) {
    let error = assert_unavailable(resp).await;
    assert_eq!(error, "The data disk is full");
}

const MB: u64 = 1 << 20;

#[tokio::test]
async fn the_reserve_refuses_writes_with_503_and_they_resume_when_space_returns() {
    let Some(fs) = Tmpfs::mount("24m") else { return };
    // The request log stops first (its own, larger minimum), then writes are refused.
    let pairs =
        [("GATEHOUSE_STORAGE_MIN_FREE_DISK_MB", "4"), ("GATEHOUSE_LOGS_MIN_FREE_DISK_MB", "6")];
    let f = Fixture::new(fs.path(), &pairs).await;
    let mut acked = BTreeSet::new();
    for i in 0..20 {
        let key = format!("BEFORE_{i}");
        assert_eq!(f.write(&key, 1000).await.status(), 201);
        acked.insert(key);
    }
    assert_eq!(f.health().await["status"], "healthy");

    let filler: PathBuf = fs.path().join("filler");
    fill(&filler, 3 * MB);
    assert_disk_full(f.write("REFUSED", 10).await).await;
    // Reads keep working, and the refused write left no trace.
    assert_eq!(f.keys().await, acked);
    let health = f.health().await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["storage"]["writable"], false, "{health}");
    assert_eq!(health["storage"]["reason"], "disk_full", "{health}");
    let text = scrape(&f.server, ALL, &auth(&f.admin.token)).await;
    let free_now = value(&text, "gatehouse_data_dir_free_bytes").expect("no free-space gauge");
    assert!(free_now < (4 * MB) as f64, "{free_now}");
    assert_eq!(value(&text, "gatehouse_data_dir_reserve_bytes"), Some((4 * MB) as f64));
    assert!(value(&text, "gatehouse_storage_writes_refused_disk_full_total").unwrap() >= 1.0);

    std::fs::remove_file(&filler).unwrap();
    assert_eq!(f.write("AFTER", 10).await.status(), 201, "writes resume once space is freed");
    acked.insert("AFTER".to_string());
    assert_eq!(f.health().await["status"], "healthy");
    assert_eq!(f.keys().await, acked);
    let mut server = f.server;
    server.stop().await;
}

#[tokio::test]
async fn a_real_enospc_mid_commit_is_a_503_and_the_store_recovers_when_space_returns() {
    let Some(fs) = Tmpfs::mount("16m") else { return };
    // No reserve: the disk fills under redb itself.
    let pairs =
        [("GATEHOUSE_STORAGE_MIN_FREE_DISK_MB", "0"), ("GATEHOUSE_LOGS_MIN_FREE_DISK_MB", "0")];
    let f = Fixture::new(fs.path(), &pairs).await;
    let filler: PathBuf = fs.path().join("filler");
    fill(&filler, MB);
    // Large values grow the data file until a commit meets ENOSPC.
    let mut acked = BTreeSet::new();
    let mut refused = 0;
    for i in 0..200 {
        let key = format!("FILL_{i}");
        let resp = f.write(&key, 60_000).await;
        if resp.status() == 201 {
            acked.insert(key);
            continue;
        }
        // The commit that met ENOSPC says so; while the data file is being reopened, writes
        // say storage is recovering.
        let error = assert_unavailable(resp).await;
        eprintln!("write {i}: 503 {error}");
        refused += 1;
        if refused == 3 {
            break;
        }
    }
    assert_eq!(refused, 3, "the disk never filled");
    eprintln!("{} writes acknowledged before the disk was full", acked.len());
    assert!(!acked.is_empty());
    // Only a commit that met ENOSPC can say so: there is no reserve.
    let health = f.health().await;
    assert_eq!(health["status"], "degraded", "{health}");
    // The data file was reopened at once (its repair needs no new space): reads work.
    assert!(acked.is_subset(&f.keys().await));

    std::fs::remove_file(&filler).unwrap();
    // The writer reopens the data file (at most once a second while it cannot); no restart.
    let mut status = 0;
    for _ in 0..50 {
        status = f.write("AFTER", 10).await.status().as_u16();
        if status == 201 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, 201, "writes did not resume after space returned");
    acked.insert("AFTER".to_string());
    let present = f.keys().await;
    let lost: Vec<&String> = acked.difference(&present).collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert_eq!(f.health().await["status"], "healthy");

    // And the file is sound after a restart.
    let server = f.server.restart().await;
    let admin = login_admin(&server).await;
    let f = Fixture { server, admin, env: f.env };
    let present = f.keys().await;
    assert!(acked.is_subset(&present));
    let mut server = f.server;
    server.stop().await;
}
