//! Low findings of the security review: JWT key rotation (L6), the initial admin password
//! (L9), data-directory permissions (L11), the local CA's name constraints (L15) and
//! data-key rotation (L16). Files written before these changes come from
//! `tests/fixtures/pre-hardening` (see its README).

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use gatehouse::crypto::SecretKey;
use gatehouse::domain::secrets::tables::{
    ORG_DATA_KEYS, VARIABLES, VARIABLE_VERSIONS, VERSIONS_BY_VARIABLE,
};
use gatehouse::store::{Reader as _, Store};
use serde_json::json;

use crate::harness::{auth, client_for, env_map, TestServer};

/// Credentials issued by the previous version (see the fixture's README).
const FIXTURE_TOKEN: &str = "4861eed6a119c2c62ed35e31b4ff0fa82b2f36b7";
const FIXTURE_ACCESS: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0b2tlbl90eXBlIjoiYWNjZXNzIiwic3ViIjoiMiIsInVzZXJfaWQiOjIsImNvbXBhbnlfaWQiOjIsImlzX3N0YWZmIjpmYWxzZSwianRpIjoiODVhZTY0YTI2NWM4NmJhNDRmMzFlZGNjMDQwMjA0ZjAiLCJleHAiOjIxMTE0MjQwNTAsImlhdCI6MTc5NjA2NDA1MCwiY2V2IjowfQ.KgY2KAe4LPA0eSJpYqd3fp54D2K2GeO2R33DkH6dST8";
const FIXTURE_PAT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0b2tlbl90eXBlIjoiYWNjZXNzIiwic3ViIjoiMiIsInVzZXJfaWQiOjIsImNvbXBhbnlfaWQiOjIsImlzX3N0YWZmIjpmYWxzZSwianRpIjoiYTJkYmViNTNkOGE2MGJlNDk0MmE5NGQ2NTM1ODk1MTIiLCJleHAiOjIxMTE0MjQwNTMsImlhdCI6MTc5NjA2NDA1MywiY2V2IjowLCJwYXRfaWQiOjEsInBhdF9ybyI6ZmFsc2UsInBhdF9hZ20iOmZhbHNlfQ.wZ17mYncSdNAA8eT9L1Ra8o8vzv_FTFDzmbl8_gcQbE";

fn copy_fixture(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pre-hardening");
    for name in ["gatehouse.redb", "master.key"] {
        std::fs::copy(from.join(name), to.join(name)).unwrap();
    }
    // git keeps no modes; the master key must be private.
    std::fs::set_permissions(to.join("master.key"), std::fs::Permissions::from_mode(0o600))
        .unwrap();
}

fn fixture_dir() -> Arc<tempfile::TempDir> {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    copy_fixture(dir.path());
    dir
}

fn master_of(dir: &Path) -> SecretKey {
    let text = std::fs::read_to_string(dir.join("master.key")).unwrap();
    let bytes: [u8; 32] = hex::decode(text.trim()).unwrap().try_into().unwrap();
    SecretKey::from_bytes(bytes)
}

/// The data file of a stopped server, opened in-process.
fn open_store(dir: &Path) -> Store {
    Store::open(
        &dir.join("gatehouse.redb"),
        &master_of(dir),
        8,
        1,
        gatehouse::services::schema::MIGRATIONS,
    )
    .unwrap()
    .0
}

/// The real binary with a clean environment.
fn gatehouse(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GATEHOUSE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("GATEHOUSE_RATE_LIMIT_ENABLED", "false").args(args);
    cmd
}

/// Runs an offline command against `dir`; returns its stdout (the command must succeed).
fn offline(dir: &Path, args: &[&str]) -> String {
    let out = gatehouse(args).arg("--data-dir").arg(dir).stdin(Stdio::null()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?} failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn status_with(server: &TestServer, credential: &str) -> u16 {
    server
        .client
        .get(server.url("/api/auth/profile/"))
        .header("authorization", credential)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn kid_of(token: &str) -> Option<String> {
    let header = token.split('.').next().unwrap();
    let header: serde_json::Value = serde_json::from_slice(&B64.decode(header).unwrap()).unwrap();
    header.get("kid").and_then(|k| k.as_str()).map(str::to_string)
}

/// A kid-less HS256 token for the staff account (user 1), signed with `key`: what anyone holding
/// a leaked signing key can mint.
fn forge_staff_token(key: &[u8]) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({
        "token_type": "access", "sub": "1", "user_id": 1, "company_id": null,
        "is_staff": true, "jti": "f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0",
        "exp": now + 3600, "iat": now, "cev": 0,
    });
    let body = format!(
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{}",
        B64.encode(serde_json::to_vec(&claims).unwrap())
    );
    let tag =
        ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), body.as_bytes());
    format!("{body}.{}", B64.encode(tag.as_ref()))
}

async fn login_access(server: &TestServer) -> String {
    let resp = server
        .client
        .post(server.url("/api/auth/login/"))
        .json(&json!({"email": "rot@fixture.test", "password": "rot-pass-12345"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<serde_json::Value>().await.unwrap()["access"].as_str().unwrap().to_string()
}

// ---- L6 ------------------------------------------------------------------------------------

#[tokio::test]
async fn l6_jwt_keys_rotate_and_tokens_of_the_previous_version_expire_with_their_key() {
    let dir = fixture_dir();
    // The attack: the previous version's one signing key, leaked, forges a staff token.
    let legacy_key = {
        let store = open_store(dir.path());
        let sealed =
            store.read(|tx| gatehouse::store::read_meta(tx, "jwt_signing_key")).unwrap().unwrap();
        store.close();
        master_of(dir.path()).open(b"gatehouse/meta/jwt_signing_key", &sealed).unwrap()
    };
    let forged = forge_staff_token(&legacy_key);
    let env = env_map(&[]);

    let server = TestServer::start_in(Arc::clone(&dir), env.clone()).await;
    // Tokens issued before key ids keep working (kid-less → the legacy key).
    assert_eq!(status_with(&server, &format!("Bearer {FIXTURE_ACCESS}")).await, 200);
    assert_eq!(status_with(&server, &format!("Bearer {FIXTURE_PAT}")).await, 200);
    assert_eq!(status_with(&server, &format!("Bearer {forged}")).await, 200, "the attack works");
    let first = login_access(&server).await;
    let kid1 = kid_of(&first).expect("new tokens carry a kid");
    let mut server = server;
    server.stop().await;
    drop(server);
    // The key now lives in the ring only.
    let store = open_store(dir.path());
    let legacy_row = store.read(|tx| gatehouse::store::read_meta(tx, "jwt_signing_key")).unwrap();
    store.close();
    assert_eq!(legacy_row.as_deref(), Some(&b""[..]));

    // First rotation: the legacy key becomes the previous key and still verifies.
    let out = offline(dir.path(), &["jwt", "rotate"]);
    assert!(out.contains(&format!("tokens signed with key {kid1} stay valid")), "{out}");
    let server = TestServer::start_in(Arc::clone(&dir), env.clone()).await;
    assert_eq!(status_with(&server, &format!("Bearer {FIXTURE_PAT}")).await, 200);
    assert_eq!(status_with(&server, &format!("Bearer {first}")).await, 200);
    let second = login_access(&server).await;
    let kid2 = kid_of(&second).unwrap();
    assert_ne!(kid1, kid2);
    let mut server = server;
    server.stop().await;
    drop(server);

    // Second rotation: the legacy key is dropped; everything it signed is refused.
    let out = offline(dir.path(), &["jwt", "rotate"]);
    assert!(
        out.contains(&format!("tokens signed with key {kid1} are no longer accepted")),
        "{out}"
    );
    // Master rotation re-seals the ring (each key under its kid).
    let keys = tempfile::tempdir().unwrap();
    let new_key = keys.path().join("new.key");
    std::fs::write(&new_key, "cd".repeat(32)).unwrap();
    std::fs::set_permissions(&new_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = offline(
        dir.path(),
        &["admin", "rotate-master-key", "--new-key-file", new_key.to_str().unwrap()],
    );
    assert!(out.contains("jwt_keys"), "{out}");

    let server = TestServer::start_in(Arc::clone(&dir), env).await;
    for refused in [FIXTURE_ACCESS, FIXTURE_PAT, &forged, &first] {
        let resp = server
            .client
            .get(server.url("/api/auth/profile/"))
            .header("authorization", format!("Bearer {refused}"))
            .send()
            .await
            .unwrap();
        crate::harness::assert_error(resp, 401).await;
    }
    assert_eq!(status_with(&server, &format!("Bearer {second}")).await, 200);
    // Login tokens are not JWTs: unaffected.
    assert_eq!(status_with(&server, &auth(FIXTURE_TOKEN)).await, 200);
}

// ---- L9 and L11 (real binary: what reaches stdout and stderr) -------------------------------

struct Served {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on `dir` without a configured admin; returns it, its URL and what it
/// printed up to the "API docs" line.
fn serve_generated(dir: &Path) -> (Served, String, Vec<String>) {
    let mut cmd = gatehouse(&["serve", "--listen", "127.0.0.1:0", "--data-dir"]);
    cmd.arg(dir);
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let mut printed = Vec::new();
    let mut url = None;
    while !printed.iter().any(|l: &String| l.contains("API docs")) {
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("gatehouse printed no URL");
        if line.contains("listening on") {
            url = line.split_whitespace().find(|w| w.starts_with("https")).map(str::to_string);
        }
        printed.push(line);
    }
    let url = url.expect("no URL").trim_end_matches('/').to_string();
    (Served { child, lines: rx }, url, printed)
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn l9_l11_generated_password_stays_in_its_private_file_and_goes_after_a_change() {
    let dir = tempfile::tempdir().unwrap();
    // A loose data directory and a pre-existing, world-readable password file.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("initial-admin-password");
    std::fs::write(&path, "stale").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();

    let (mut served, url, printed) = serve_generated(dir.path());
    assert_eq!(mode_of(dir.path()), 0o700, "data directory not made private");
    assert_eq!(mode_of(&dir.path().join("gatehouse.redb")), 0o600, "data file not private");
    assert_eq!(mode_of(&path), 0o600, "password file keeps its old mode");
    let password = std::fs::read_to_string(&path).unwrap().trim().to_string();
    assert!(password.len() >= 20);
    let all = printed.join("\n");
    assert!(!all.contains(&password), "the password was printed: {all}");
    assert!(all.contains("initial-admin-password"), "the file is not named: {all}");

    let client = client_for(&std::fs::read_to_string(dir.path().join("ca.pem")).unwrap());
    let resp = client
        .post(format!("{url}/api/auth/login/"))
        .json(&json!({"email": "admin@localhost", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let token =
        resp.json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap().to_string();
    assert!(path.exists(), "the file must stay until the password changes");
    let resp = client
        .post(format!("{url}/api/auth/password/change/"))
        .header("authorization", auth(&token))
        .json(&json!({"old_password": password, "new_password": "a-new-admin-password-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(!path.exists(), "the password file outlived the password");

    let pid = served.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let _ = served.child.wait();
    let rest: Vec<String> = served.lines.try_iter().collect();
    assert!(!rest.join("\n").contains(&password), "the password reached the log");
}

#[tokio::test]
async fn l9_password_file_is_removed_at_start_once_it_no_longer_opens_the_account() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut env = env_map(&[]);
    env.remove("GATEHOUSE_ADMIN_EMAIL");
    env.remove("GATEHOUSE_ADMIN_PASSWORD");
    let server = TestServer::start_in(Arc::clone(&dir), env.clone()).await;
    let path = dir.path().join("initial-admin-password");
    assert!(path.exists());
    // Still the account's password: kept across a restart.
    let server = server.restart().await;
    assert!(path.exists(), "a valid password file was removed");
    let mut server = server;
    server.stop().await;
    drop(server);
    // Reset with the server stopped (as `admin reset-password` does): the file is stale.
    let out = offline(dir.path(), &["admin", "reset-password", "--email", "admin@localhost"]);
    assert!(out.contains("admin@localhost"), "{out}");
    let _server = TestServer::start_in(Arc::clone(&dir), env).await;
    assert!(!path.exists(), "a stale password file survived the start");
}

#[tokio::test]
async fn l11_existing_loose_data_dir_and_file_are_narrowed_at_start() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut server = TestServer::start_in(Arc::clone(&dir), env_map(&[])).await;
    let db = dir.path().join("gatehouse.redb");
    assert_eq!(mode_of(dir.path()), 0o700);
    assert_eq!(mode_of(&db), 0o600);
    server.stop().await;
    drop(server);
    // Loosened behind its back (a restore, a cp without -p): narrowed again.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let server = TestServer::start_in(Arc::clone(&dir), env_map(&[])).await;
    assert_eq!(mode_of(dir.path()), 0o700);
    assert_eq!(mode_of(&db), 0o600);
    assert_eq!(server.get("/health/").await.status(), 200);
}

// ---- L15 -----------------------------------------------------------------------------------

/// `(DNS subtrees, IP subtrees as address/mask bytes)` of the CA, or `None` without
/// constraints.
fn constraints_of(ca_pem: &str) -> Option<(Vec<String>, Vec<Vec<u8>>)> {
    use x509_parser::extensions::GeneralName;
    let der = rustls_pemfile::certs(&mut ca_pem.as_bytes()).next().unwrap().unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let nc = cert.name_constraints().unwrap()?;
    assert!(nc.critical);
    let (mut dns, mut ips) = (Vec::new(), Vec::new());
    for s in nc.value.permitted_subtrees.as_ref().unwrap() {
        match &s.base {
            GeneralName::DNSName(d) => dns.push(d.to_string()),
            GeneralName::IPAddress(b) => ips.push(b.to_vec()),
            other => panic!("unexpected subtree {other:?}"),
        }
    }
    dns.sort();
    Some((dns, ips))
}

#[tokio::test]
async fn l15_local_ca_is_name_constrained_and_follows_new_hostnames() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let env = env_map(&[("GATEHOUSE_TLS_HOSTNAMES", "gh.test,10.20.30.40")]);
    let server = TestServer::start_in(Arc::clone(&dir), env.clone()).await;
    // The harness client verifies with rustls/webpki, name constraints included.
    assert_eq!(server.get("/health/").await.status(), 200);
    let first_ca = server.ca_pem.clone();
    let (dns, ips) = constraints_of(&first_ca).expect("the local CA has no name constraints");
    assert_eq!(dns, ["gh.test", "localhost"]);
    for ip in [
        vec![10, 20, 30, 40, 255, 255, 255, 255],
        vec![127, 0, 0, 0, 255, 0, 0, 0],
        [[0u8; 15].as_slice(), &[1], &[255; 16]].concat(),
    ] {
        assert!(ips.contains(&ip), "no subtree {ip:?} in {ips:?}");
    }
    assert_eq!(ips.len(), 3);

    // Same names: the CA is kept (clients keep trusting it).
    let server = server.restart().await;
    assert_eq!(server.ca_pem, first_ca);
    let mut server = server;
    server.stop().await;
    drop(server);

    // A name outside the constraints: a new CA that covers it, and the old one is not trusted
    // for the new leaf.
    let env = env_map(&[("GATEHOUSE_TLS_HOSTNAMES", "gh.test,10.20.30.40,new.test")]);
    let server = TestServer::start_in(Arc::clone(&dir), env).await;
    assert_ne!(server.ca_pem, first_ca, "the CA was kept though it cannot cover new.test");
    let (dns, _) = constraints_of(&server.ca_pem).unwrap();
    assert_eq!(dns, ["gh.test", "localhost", "new.test"]);
    assert_eq!(server.get("/health/").await.status(), 200);
    let stale = client_for(&first_ca);
    assert!(stale.get(server.url("/health/")).send().await.is_err());
}

#[tokio::test]
async fn l15_unconstrained_ca_of_the_previous_version_is_kept_until_new_ca() {
    let dir = fixture_dir();
    let stored = {
        let store = open_store(dir.path());
        let pem = store.read(|tx| gatehouse::store::read_meta(tx, "tls_ca_cert")).unwrap();
        store.close();
        String::from_utf8(pem.unwrap()).unwrap()
    };
    assert!(constraints_of(&stored).is_none());
    let server = TestServer::start_in(Arc::clone(&dir), env_map(&[])).await;
    // Replacing it at upgrade would break every client that trusts it.
    assert_eq!(server.ca_pem, stored);
    let mut server = server;
    server.stop().await;
    drop(server);
    let out = offline(dir.path(), &["tls", "new-ca"]);
    assert!(out.contains("next start generates a new one"), "{out}");
    let server = TestServer::start_in(Arc::clone(&dir), env_map(&[])).await;
    assert_ne!(server.ca_pem, stored);
    assert!(constraints_of(&server.ca_pem).is_some());
    assert_eq!(status_with(&server, &auth(FIXTURE_TOKEN)).await, 200);
}

// ---- L16 -----------------------------------------------------------------------------------

/// How many sealed values of `org`'s variables `ids` open with `key` (current values and
/// history versions).
fn opened_by(store: &Store, key: &SecretKey, org: u64, ids: &[u64]) -> usize {
    use gatehouse::domain::secrets::sealing::value_aad;
    store
        .read(|tx| -> Result<usize, gatehouse::store::StoreError> {
            let mut n = 0;
            for &id in ids {
                let var = tx.get(VARIABLES, id)?.unwrap();
                let aad = value_aad(org, var.environment_id, id, var.version);
                n += usize::from(key.open(&aad, &var.sealed.0).is_ok());
                for row in tx.children(VERSIONS_BY_VARIABLE, id)? {
                    let v = tx.get(VARIABLE_VERSIONS, row)?.unwrap();
                    let aad = value_aad(org, var.environment_id, id, v.version);
                    n += usize::from(key.open(&aad, &v.sealed.0).is_ok());
                }
            }
            Ok(n)
        })
        .unwrap()
}

fn data_key_of(store: &Store, master: &SecretKey, org: u64) -> SecretKey {
    let rec = store.read(|tx| tx.get(ORG_DATA_KEYS, org)).unwrap().unwrap();
    let sealed = base64::engine::general_purpose::STANDARD.decode(&rec.sealed).unwrap();
    let aad = format!("gatehouse/org_data_key/v1/{org}");
    SecretKey::from_bytes(master.open(aad.as_bytes(), &sealed).unwrap().try_into().unwrap())
}

async fn get_json(server: &TestServer, path: &str) -> serde_json::Value {
    let resp = server
        .client
        .get(server.url(path))
        .header("authorization", auth(FIXTURE_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

async fn assert_fixture_values(server: &TestServer) {
    assert_eq!(get_json(server, "/api/variables/1/").await["decrypted_value"], "alpha-v3");
    assert_eq!(
        get_json(server, "/api/variables/2/").await["decrypted_value"],
        "postgres://u:p@db/x"
    );
    assert_eq!(get_json(server, "/api/variables/4/").await["decrypted_value"], "other-v1");
    let versions = get_json(server, "/api/variables/1/versions/").await.to_string();
    for v in ["alpha-v1", "alpha-v2", "alpha-v3"] {
        assert!(versions.contains(v), "{versions}");
    }
    // The deleted variable's history (organization admins only).
    let deleted = get_json(server, "/api/variables/3/versions/").await.to_string();
    assert!(deleted.contains("deleted-v1") && deleted.contains("deleted-v2"), "{deleted}");
    assert!(!versions.contains("DECRYPTION_ERROR") && !deleted.contains("DECRYPTION_ERROR"));
}

#[tokio::test]
async fn l16_data_keys_rotate_on_a_previous_version_file_resumably() {
    use gatehouse::domain::secrets::rekey::{rotate_org, RekeyOptions};
    let dir = fixture_dir();
    let master = master_of(dir.path());
    let org2 = [1u64, 2, 3];
    // The attack: the data file and the master key leak, giving the data key of org 2, which
    // opens every value and version of that org — and keeps opening them after a master
    // rotation, since that only re-seals the data keys.
    let store = open_store(dir.path());
    let leaked = data_key_of(&store, &master, 2);
    assert_eq!(opened_by(&store, &leaked, 2, &org2), 6);
    // Interrupted after one variable.
    let (st, m) = (store.clone(), master.clone());
    let opts = RekeyOptions { batch: 1, max_batches: Some(1) };
    let part = tokio::task::spawn_blocking(move || rotate_org(&st, &m, 2, opts))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(!part.finished && part.values == 1 && part.versions == 2, "{part:?}");
    assert_eq!(opened_by(&store, &leaked, 2, &org2), 3);
    store.close();

    // The half-rotated file serves every value.
    let env = env_map(&[]);
    let server = TestServer::start_in(Arc::clone(&dir), env.clone()).await;
    assert_fixture_values(&server).await;
    // A value written during the rotation.
    let resp = server
        .client
        .patch(server.url("/api/variables/2/"))
        .header("authorization", auth(FIXTURE_TOKEN))
        .json(&json!({"value": "postgres://u:p2@db/x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut server = server;
    server.stop().await;
    drop(server);

    let out = offline(dir.path(), &["keys", "rotate-data-keys"]);
    assert!(out.contains("organization 2: data key generation 2 (resumed)"), "{out}");
    assert!(out.contains("organization 3: data key generation 2, re-sealed 1 values"), "{out}");
    let store = open_store(dir.path());
    assert_eq!(opened_by(&store, &leaked, 2, &[1, 2, 3]), 0, "the leaked key still opens values");
    let rec = store.read(|tx| tx.get(ORG_DATA_KEYS, 2)).unwrap().unwrap();
    assert_eq!((rec.generation, rec.previous), (2, None));
    let fresh = data_key_of(&store, &master, 2);
    assert_eq!(opened_by(&store, &fresh, 2, &org2), 7);
    store.close();

    // Only one organization, and an unknown one is refused.
    let out = offline(dir.path(), &["keys", "rotate-data-keys", "--org", "3"]);
    assert!(out.contains("organization 3: data key generation 3"), "{out}");
    assert!(!out.contains("organization 2"), "{out}");
    let out = gatehouse(&["keys", "rotate-data-keys", "--org", "99", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());

    let server = TestServer::start_in(Arc::clone(&dir), env).await;
    assert_eq!(
        get_json(&server, "/api/variables/2/").await["decrypted_value"],
        "postgres://u:p2@db/x"
    );
    assert_eq!(get_json(&server, "/api/variables/1/").await["decrypted_value"], "alpha-v3");
    let deleted = get_json(&server, "/api/variables/3/versions/").await.to_string();
    assert!(deleted.contains("deleted-v1") && deleted.contains("deleted-v2"), "{deleted}");
    let audit = get_json(&server, "/api/audit-logs/?action=data_key_rotated").await.to_string();
    assert!(audit.contains("data_key_rotated"), "{audit}");
}
