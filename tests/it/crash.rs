//! kill -9 under load: the real binary is killed (SIGKILL) while ~1 000 concurrent durable writes
//! are in flight, twenty times in a row on one data directory. After each kill the server starts
//! again, every write it had acknowledged (answered 2xx) is read back over the API, a SIGTERM
//! stops it and `gatehouse check` must pass. Guards the group commit's promise: an answer is
//! sent only after the commit that holds the write is durable.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{json, Value};

use crate::harness::{auth, client_speaking};

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");
const ROUNDS: usize = 20;
const WRITES: usize = 1000;

/// A command with a clean environment (no GATEHOUSE_* leaking in from the caller).
fn gatehouse(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GATEHOUSE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("GATEHOUSE_RATE_LIMIT_ENABLED", "false")
        .env("GATEHOUSE_LOGS_MIN_FREE_DISK_MB", "0")
        .env("GATEHOUSE_STORAGE_MIN_FREE_DISK_MB", "0")
        .env("GATEHOUSE_ADMIN_EMAIL", "admin@example.com")
        .env("GATEHOUSE_ADMIN_PASSWORD", "admin-password-123")
        .args(args);
    cmd
}

/// A served binary on `data`; killed on drop if the test fails before stopping it.
struct Served {
    /// Shared with the write tasks: the one that sees the kill threshold kills at once.
    child: Arc<Mutex<Child>>,
    base: String,
    client: reqwest::Client,
}

impl Drop for Served {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Starts the server on `data` (stderr appended to `log`) and waits for its URL line.
fn serve(data: &Path, log: &Path) -> Served {
    let stderr = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let mut child = gatehouse(&["--data-dir", data.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let Ok(first) = rx.recv() else {
        let status = child.wait().unwrap();
        panic!("gatehouse exited ({status}) before listening; see {}", log.display());
    };
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("https://"))
        .unwrap_or_else(|| panic!("no URL in {first:?}"))
        .trim_end_matches('/')
        .to_string();
    let ca = std::fs::read_to_string(data.join("ca.pem")).unwrap();
    Served { child: Arc::new(Mutex::new(child)), base, client: client_speaking(&ca, true) }
}

impl Served {
    async fn post(&self, token: &str, path: &str, body: Value) -> reqwest::Response {
        let url = format!("{}{path}", self.base);
        self.client.post(url).header("authorization", auth(token)).json(&body).send().await.unwrap()
    }

    /// The keys of environment `env`'s variables (at most one full page).
    async fn keys_of(&self, token: &str, env: u64) -> BTreeSet<String> {
        let url = format!("{}/api/environments/{env}/variables/?page_size=1000", self.base);
        let resp = self.client.get(url).header("authorization", auth(token)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "listing environment {env}");
        let page: Value = resp.json().await.unwrap();
        assert!(page["next"].is_null(), "more than one page in environment {env}");
        let results = page["results"].as_array().unwrap();
        results.iter().map(|v| v["key"].as_str().unwrap().to_string()).collect()
    }

    /// SIGTERM, then waits for a clean exit.
    fn terminate(self) {
        let mut child = self.child.lock().unwrap();
        let pid = child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let status = child.wait().unwrap();
        assert!(status.success(), "exit status after SIGTERM: {status}");
    }
}

/// Fires `WRITES` concurrent variable creations into `env`, SIGKILLs the server once
/// `kill_after` have been answered 201, and returns the keys that were answered 201.
async fn write_and_kill(
    served: &Served,
    token: &str,
    env: u64,
    round: usize,
    kill_after: usize,
) -> BTreeSet<String> {
    let acked = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..WRITES {
        let (client, acked, child) =
            (served.client.clone(), Arc::clone(&acked), Arc::clone(&served.child));
        let url = format!("{}/api/variables/", served.base);
        let token = auth(token);
        let key = format!("R{round}_K{i}");
        tasks.spawn(async move {
            let body =
                json!({"key": key, "value": format!("value-{round}-{i}"), "environment": env});
            // A transport error is a write cut off by the kill: not acknowledged.
            let resp = client.post(url).header("authorization", token).json(&body).send().await;
            let status = resp.ok()?.status();
            // SIGKILL sends no answer: every answer that arrived is the server's own.
            assert_eq!(status, 201, "write {key} answered {status}");
            if acked.fetch_add(1, Ordering::SeqCst) + 1 == kill_after {
                // Child::kill is SIGKILL.
                child.lock().unwrap().kill().unwrap();
            }
            Some(key)
        });
    }
    let mut keys = BTreeSet::new();
    while let Some(done) = tasks.join_next().await {
        if let Some(key) = done.unwrap() {
            keys.insert(key);
        }
    }
    served.child.lock().unwrap().wait().unwrap();
    assert!(keys.len() >= kill_after, "round {round}: the kill came before its threshold");
    keys
}

/// Logs in as the bootstrap admin and creates the project every round's environment lives in.
async fn set_up(served: &Served) -> (String, u64) {
    let body = json!({"email": "admin@example.com", "password": "admin-password-123"});
    let resp = served.client.post(format!("{}/api/auth/login/", served.base)).json(&body);
    let resp = resp.send().await.unwrap();
    assert_eq!(resp.status(), 200, "admin login");
    let login: Value = resp.json().await.unwrap();
    let token = login["token"].as_str().unwrap().to_string();
    let org = match login["organizations"].as_array().and_then(|a| a.first()) {
        Some(org) => org["id"].as_u64().unwrap(),
        None => {
            let resp = served.post(&token, "/api/organizations/", json!({"name": "Crash"})).await;
            assert_eq!(resp.status(), 201);
            resp.json::<Value>().await.unwrap()["id"].as_u64().unwrap()
        }
    };
    let body = json!({"name": "Crash", "organization": org});
    let resp = served.post(&token, "/api/projects/", body).await;
    assert_eq!(resp.status(), 201);
    (token, resp.json::<Value>().await.unwrap()["id"].as_u64().unwrap())
}

fn check(data: &Path, log: &Path) {
    let out =
        gatehouse(&["check", "--data-dir", data.to_str().unwrap()]).stdin(Stdio::null()).output();
    let out = out.unwrap();
    assert!(
        out.status.success(),
        "gatehouse check failed: {}{}; server log: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        log.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_twenty_kill_9s_and_check_passes() {
    let dir = tempfile::tempdir().unwrap();
    let data: PathBuf = dir.path().join("data");
    let log = dir.path().join("server.log");
    let started = Instant::now();
    let mut served = serve(&data, &log);
    let (token, project) = set_up(&served).await;
    // Per round: its environment and the keys the server acknowledged there.
    let mut rounds: Vec<(u64, BTreeSet<String>)> = Vec::new();
    let mut cut_off = 0;
    for round in 0..ROUNDS {
        let body = json!({"name": format!("round-{round}"), "project": project});
        let resp = served.post(&token, "/api/environments/", body).await;
        assert_eq!(resp.status(), 201, "round {round}: environment");
        let env = resp.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
        let kill_after = 300 + (round * 37) % 200;
        let acked = write_and_kill(&served, &token, env, round, kill_after).await;
        // Answers already in the socket when the kill lands still arrive, so a round may see
        // (almost) every write acknowledged; most rounds must have cut writes off.
        cut_off += usize::from(acked.len() < WRITES);
        rounds.push((env, acked));

        let restarted = serve(&data, &log);
        // The last round reads every round back; the others their own and the one before.
        let from = if round + 1 == ROUNDS { 0 } else { round.saturating_sub(1) };
        for (r, (env, acked)) in rounds.iter().enumerate().skip(from) {
            let present = restarted.keys_of(&token, *env).await;
            let lost: Vec<&String> = acked.difference(&present).collect();
            assert!(lost.is_empty(), "round {r}: acknowledged writes lost: {lost:?}");
        }
        eprintln!(
            "round {round}: {} of {WRITES} acknowledged, all present after the restart ({:.1?})",
            rounds[round].1.len(),
            started.elapsed()
        );
        restarted.terminate();
        check(&data, &log);
        if round + 1 < ROUNDS {
            served = serve(&data, &log);
        }
    }
    assert!(cut_off >= ROUNDS / 2, "only {cut_off} of {ROUNDS} kills cut writes off");
}
