//! `TestServer`: boots Gatehouse in-process over TLS and gives a client that trusts its CA.

#![allow(dead_code)] // each test module uses a different part of the harness

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gatehouse::app::{Options, Running};
use gatehouse::config::{Config, Flags};

pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    pub dir: Arc<tempfile::TempDir>,
    pub env: BTreeMap<String, String>,
    pub running: Option<Running>,
    pub ca_pem: String,
}

pub fn env_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("GATEHOUSE_RATE_LIMIT_ENABLED".into(), "false".into());
    // A CI machine's free space is not the server's to judge in tests: the disk guard has its
    // own test, which sets the minimum it needs.
    env.insert("GATEHOUSE_LOGS_MIN_FREE_DISK_MB".into(), "0".into());
    env.insert("GATEHOUSE_STORAGE_MIN_FREE_DISK_MB".into(), "0".into());
    env.insert("GATEHOUSE_ADMIN_EMAIL".into(), "admin@example.com".into());
    env.insert("GATEHOUSE_ADMIN_PASSWORD".into(), "admin-password-123".into());
    for (k, v) in pairs {
        env.insert((*k).to_string(), (*v).to_string());
    }
    env
}

/// A rustls client configuration trusting exactly `ca_pem`, with ring as its crypto provider.
pub fn tls_config(ca_pem: &str) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// A reqwest client trusting exactly `ca_pem`.
pub fn client_for(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder().use_preconfigured_tls(tls_config(ca_pem)).build().unwrap()
}

/// A reqwest client trusting exactly `ca_pem` that speaks only HTTP/2 (`h2`) or only HTTP/1.1
/// (ALPN and, for HTTP/2, prior knowledge).
pub fn client_speaking(ca_pem: &str, h2: bool) -> reqwest::Client {
    let mut tls = tls_config(ca_pem);
    tls.alpn_protocols = vec![if h2 { b"h2".to_vec() } else { b"http/1.1".to_vec() }];
    let b = reqwest::Client::builder().use_preconfigured_tls(tls);
    let b = if h2 { b.http2_prior_knowledge() } else { b.http1_only() };
    b.build().unwrap()
}

/// A raw TLS connector trusting exactly `ca_pem` (for tests that write HTTP by hand).
pub fn tls_connector(ca_pem: &str) -> tokio_rustls::TlsConnector {
    tokio_rustls::TlsConnector::from(Arc::new(tls_config(ca_pem)))
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    pub async fn start_with(pairs: &[(&str, &str)]) -> Self {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        Self::start_in(dir, env_map(pairs)).await
    }

    pub async fn start_in(dir: Arc<tempfile::TempDir>, env: BTreeMap<String, String>) -> Self {
        let running = Self::boot(dir.path(), &env, None).await.unwrap();
        let ca_pem = std::fs::read_to_string(&running.ca_pem_path).unwrap();
        let client = client_for(&ca_pem);
        let base = format!("https://127.0.0.1:{}", running.local_addr.port());
        Self { base, client, dir, env, running: Some(running), ca_pem }
    }

    pub async fn boot(
        dir: &Path,
        env: &BTreeMap<String, String>,
        master_key_file: Option<PathBuf>,
    ) -> Result<Running, gatehouse::app::StartError> {
        let flags = Flags {
            data_dir: Some(dir.to_path_buf()),
            listen: Some("127.0.0.1:0".into()),
            insecure_http: false,
        };
        let config = Config::from_sources(None, env, &flags)?;
        gatehouse::app::start(Options {
            config,
            master_key_file,
            credentials_dir: None,
            env: env.clone(),
        })
        .await
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }

    /// Stops and starts again on the same data directory (new port, same CA).
    pub async fn restart(mut self) -> Self {
        self.stop().await;
        let dir = Arc::clone(&self.dir);
        let env = self.env.clone();
        drop(self);
        Self::start_in(dir, env).await
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            // Best effort when a test panics: close in the background of the current runtime.
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(r.shutdown());
            }
        }
    }
}

/// Asserts the one error format and returns the body.
pub async fn assert_error(resp: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(resp.status().as_u16(), status, "unexpected status");
    assert!(resp.headers().get("x-request-id").is_some(), "no X-Request-Id");
    let ct =
        resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(ct.starts_with("application/json"), "error is not JSON: {ct}");
    let body: serde_json::Value = resp.json().await.unwrap();
    for field in ["error", "details", "code", "timestamp"] {
        assert!(body.get(field).is_some(), "error body lacks {field}: {body}");
    }
    assert!(body["error"].is_string());
    assert!(body["code"].is_string());
    body
}

// ---- identity helpers (used by every area's tests) ------------------------------------------

/// An account made through the API, with its login token and personal organization.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: u64,
    pub email: String,
    pub username: String,
    pub password: String,
    pub token: String,
    pub org_id: u64,
}

/// `Authorization` header value for a login token.
/// Rate limits and per-minute audit records count in fixed minutes: start a burst early in a
/// minute so that it does not straddle two (a slow CI machine spends seconds per login).
pub async fn fresh_minute() {
    let into = gatehouse::clock::unix_now().rem_euclid(60);
    if into > 30 {
        tokio::time::sleep(std::time::Duration::from_secs(u64::try_from(61 - into).unwrap_or(1)))
            .await;
    }
}

pub fn auth(token: &str) -> String {
    format!("Token {token}")
}

fn unique_suffix() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}{n}", std::process::id())
}

/// Registers a new account (unique email and username derived from `name`) and returns it
/// with its token and personal organization.
pub async fn register(server: &TestServer, name: &str) -> TestUser {
    let clean: String =
        name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(40).collect();
    let username = format!("{clean}_{}", unique_suffix());
    let email = format!("{username}@example.com").to_lowercase();
    let password = format!("pw-{username}-secret");
    let resp = server
        .client
        .post(server.url("/api/auth/register/"))
        .json(&serde_json::json!({
            "username": username, "email": email, "password": password,
            "confirm_password": password, "first_name": clean, "last_name": "Tester",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "register {name} failed");
    let body: serde_json::Value = resp.json().await.unwrap();
    TestUser {
        id: body["user"]["id"].as_u64().unwrap(),
        email,
        username,
        password,
        token: body["token"].as_str().unwrap().to_string(),
        org_id: body["organization"]["id"].as_u64().unwrap(),
    }
}

/// Logs in as the bootstrap staff account (`admin@example.com`); `org_id` is its first
/// organization (one is created if it has none).
pub async fn login_admin(server: &TestServer) -> TestUser {
    let email = server.env.get("GATEHOUSE_ADMIN_EMAIL").cloned().unwrap();
    let password = server.env.get("GATEHOUSE_ADMIN_PASSWORD").cloned().unwrap();
    let resp = server
        .client
        .post(server.url("/api/auth/login/"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "admin login failed");
    let body: serde_json::Value = resp.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_string();
    let org_id = match body["organizations"].as_array().and_then(|a| a.first()) {
        Some(org) => org["id"].as_u64().unwrap(),
        None => {
            let resp = server
                .client
                .post(server.url("/api/organizations/"))
                .header("authorization", auth(&token))
                .json(&serde_json::json!({"name": format!("Admin Org {}", unique_suffix())}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201);
            resp.json::<serde_json::Value>().await.unwrap()["id"].as_u64().unwrap()
        }
    };
    TestUser {
        id: body["user"]["id"].as_u64().unwrap(),
        username: body["user"]["username"].as_str().unwrap().to_string(),
        email,
        password,
        token,
        org_id,
    }
}

impl TestServer {
    /// `admin` (an admin of `org_id`) adds `user` with `role` (`admin`, `editor`, `viewer`).
    pub async fn add_member(&self, admin: &TestUser, org_id: u64, user: &TestUser, role: &str) {
        let resp = self
            .client
            .post(self.url(&format!("/api/organizations/{org_id}/members/")))
            .header("authorization", auth(&admin.token))
            .json(&serde_json::json!({"email": user.email, "role": role}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "add_member failed");
    }
}
