//! Hostile input, per route family: absurd page numbers, ids past u64, malformed credentials
//! of every scheme, oversized headers and bodies, invalid UTF-8 and deeply nested JSON. Every
//! answer must be a 4xx in the error format (`error`, `details`, `code`, `timestamp`), except
//! where only the transport can answer (a header block too large for the HTTP parser: a bare
//! 4xx), and `/health/` must still answer 200 after each family.
//!
//! The server runs as a child process (the real binary): an input that aborts it (an
//! allocation failure is not a panic) fails this family's test instead of the whole run.
//! Each test collects every bad answer of its family before failing, so one run lists them all.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Method;

use crate::harness::{auth, client_for, login_admin, TestServer};

/// The server child process; killed when the test ends.
struct Child2(Child);

impl Drop for Child2 {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Boots the binary on a fresh data directory (uploads limited to 64 KiB so that an oversized
/// upload stays cheap; JSON bodies keep the default 1 MiB limit).
fn boot() -> (Child2, TestServer) {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let env = crate::harness::env_map(&[("GATEHOUSE_SERVER_MAX_UPLOAD_BYTES", "65536")]);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GATEHOUSE_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(&env).args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(dir.path());
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let base = loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("gatehouse printed no URL");
        if let Some(url) = line.split_whitespace().find(|w| w.starts_with("https://")) {
            break url.trim_end_matches('/').to_string();
        }
    };
    let ca_pem = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
    let client = client_for(&ca_pem);
    (Child2(child), TestServer { base, client, dir, env, running: None, ca_pem })
}

/// What an answer must look like.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    /// A 4xx with the error format.
    Error,
    /// A public route given junk it may ignore: 200, or a 4xx with the error format.
    OkOrError,
    /// Only the transport can answer: any 4xx (or, for HTTP/1.1, a closed connection).
    Transport,
}

/// One family's server, credential and the failures found so far.
struct Run {
    name: &'static str,
    _child: Child2,
    s: TestServer,
    token: String,
    failures: Vec<String>,
    sent: usize,
    /// Set once the server process has gone: later probes would only repeat it.
    dead: bool,
    /// Speak HTTP/2 (ALPN h2) instead of HTTP/1.1.
    h2: bool,
}

/// A client trusting `ca_pem` that speaks HTTP/2 only.
fn h2_client(ca_pem: &str) -> reqwest::Client {
    crate::harness::client_speaking(ca_pem, true)
}

impl Run {
    async fn new(name: &'static str) -> Self {
        let (child, s) = boot();
        let admin = login_admin(&s).await;
        Self {
            name,
            _child: child,
            s,
            token: admin.token,
            failures: Vec::new(),
            sent: 0,
            dead: false,
            h2: false,
        }
    }

    /// The same, over HTTP/2.
    async fn new_h2(name: &'static str) -> Self {
        let mut run = Self::new(name).await;
        run.s.client = h2_client(&run.s.ca_pem);
        run.h2 = true;
        run
    }

    fn fresh_client(&self) -> reqwest::Client {
        if self.h2 {
            h2_client(&self.s.ca_pem)
        } else {
            client_for(&self.s.ca_pem)
        }
    }

    /// Sends one request and records what is wrong with its answer.
    async fn probe(
        &mut self,
        what: &str,
        method: Method,
        path: &str,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Option<(&str, Vec<u8>)>,
        expect: Expect,
    ) {
        if self.dead {
            return;
        }
        self.sent += 1;
        let label = format!("[{}] {what}: {method} {}", self.name, shorten(path));
        // A body over the limit may end its connection (413, then close): it gets a
        // connection of its own, so that the requests after it are judged on their own.
        let oversized = body.as_ref().is_some_and(|(_, b)| b.len() > 1024 * 1024);
        let client = if oversized { self.fresh_client() } else { self.s.client.clone() };
        // HTTP/2 refuses a header list beyond its limit (16 KiB) at the transport, with
        // GOAWAY: no HTTP answer is possible there.
        let header_bytes: usize = headers.iter().map(|(n, v)| n.as_str().len() + v.len()).sum();
        let expect = if self.h2 && header_bytes > 16 * 1024 { Expect::Transport } else { expect };
        let mut req = client.request(method, self.s.url(path));
        let has_auth = headers.iter().any(|(n, _)| n == reqwest::header::AUTHORIZATION);
        if !has_auth {
            req = req.header("authorization", auth(&self.token));
        }
        for (n, v) in headers {
            req = req.header(n, v);
        }
        if let Some((ct, bytes)) = body {
            req = req.header("content-type", ct).body(bytes);
        }
        let resp = match tokio::time::timeout(Duration::from_secs(60), req.send()).await {
            Err(_) => return self.failures.push(format!("{label}: no answer within 60 s")),
            Ok(Err(e)) => {
                if self.exited(&label) {
                    return;
                }
                // HTTP/1.1 may close a connection whose header block it refused.
                if expect != Expect::Transport {
                    self.failures.push(format!("{label}: transport error {e:?}"));
                }
                return;
            }
            Ok(Ok(resp)) => resp,
        };
        let status = resp.status().as_u16();
        if let Some(problem) = check(resp, status, expect).await {
            self.failures.push(format!("{label}: {status} {problem}"));
        }
    }

    /// Records the death of the server (on the request `label`) and stops the family.
    fn exited(&mut self, label: &str) -> bool {
        // An abort takes a moment to reap.
        for _ in 0..20 {
            if let Ok(Some(status)) = self._child.0.try_wait() {
                self.failures.push(format!("{label}: THE SERVER DIED ({status})"));
                self.dead = true;
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    async fn get(&mut self, what: &str, path: &str, expect: Expect) {
        self.probe(what, Method::GET, path, Vec::new(), None, expect).await;
    }

    /// `/health/` answers 200 and the process is still running.
    async fn assert_alive(&mut self) {
        if self.dead {
            return;
        }
        let resp = self.s.client.get(self.s.url("/health/")).send().await;
        match resp {
            Ok(r) if r.status() == 200 => {}
            Ok(r) => {
                self.failures.push(format!("[{}] /health/ answered {}", self.name, r.status()))
            }
            Err(e) => self.failures.push(format!("[{}] /health/ unreachable: {e:?}", self.name)),
        }
        let label = format!("[{}] after the requests so far", self.name);
        self.exited(&label);
    }

    /// Fails the test with every problem found.
    async fn finish(mut self) {
        self.assert_alive().await;
        assert!(self.sent > 0);
        assert!(
            self.failures.is_empty(),
            "{} of {} hostile requests answered badly:\n{}",
            self.failures.len(),
            self.sent,
            self.failures.join("\n")
        );
    }
}

fn shorten(path: &str) -> String {
    if path.len() > 120 {
        format!("{}…({} bytes)", &path[..100], path.len())
    } else {
        path.to_string()
    }
}

/// `None` if the answer is acceptable for `expect`.
async fn check(resp: reqwest::Response, status: u16, expect: Expect) -> Option<String> {
    if expect == Expect::OkOrError && status == 200 {
        return None;
    }
    if !(400..500).contains(&status) {
        return Some("is not a 4xx".into());
    }
    if expect == Expect::Transport {
        return None;
    }
    let ct =
        resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let bytes = resp.bytes().await.unwrap_or_default();
    if !ct.starts_with("application/json") {
        return Some(format!("content-type {ct:?}, body {:?}", String::from_utf8_lossy(&bytes)));
    }
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Some(format!("body is not JSON: {:?}", String::from_utf8_lossy(&bytes)));
    };
    for field in ["error", "details", "code", "timestamp"] {
        if body.get(field).is_none() {
            return Some(format!("body lacks {field}: {body}"));
        }
    }
    if !body["error"].is_string() || !body["code"].is_string() {
        return Some(format!("error/code are not strings: {body}"));
    }
    None
}

/// A route family: its list routes (paged), routes with an id (`{id}`), JSON write routes
/// and one route that needs a credential.
struct Family {
    name: &'static str,
    lists: &'static [&'static str],
    /// False for lists that take no paging parameters (they may ignore them: 200).
    paged: bool,
    ids: &'static [(&'static str, &'static [Method])],
    writes: &'static [(Method, &'static str)],
    protected: &'static str,
}

const PAGES: &[&str] = &[
    "page=-1",
    "page=0",
    "page=99999999999999999999",
    "page=abc",
    "page_size=abc",
    "page_size=-5",
    "page_size=0",
    "page_size=99999999999999999999",
    "page=10000000000&page_size=1000",
    "page=18446744073709551615&page_size=1000",
    "page=4294967296&page_size=100",
    "page=1000000&page_size=1000",
];

const IDS: &[&str] = &["99999999999999999999999", "18446744073709551616", "-1", "abc", "1e3"];

/// Malformed `Authorization` values of every scheme.
fn bad_credentials() -> Vec<(&'static str, HeaderValue)> {
    let text = |s: String| HeaderValue::from_str(&s).unwrap();
    let mut out = vec![
        ("Basic with junk", text("Basic !!!".into())),
        ("Basic without a colon", text(format!("Basic {}", B64.encode("nocolon")))),
        ("Basic non-UTF-8", text(format!("Basic {}", B64.encode([0xff, 0xfe, b':', 0xc3])))),
        ("Basic huge", text(format!("Basic {}", B64.encode(format!("{}:x", "a".repeat(6000)))))),
        ("Basic empty", text("Basic ".into())),
        ("Bearer empty", text("Bearer".into())),
        ("Bearer garbage", text("Bearer garbage!!".into())),
        ("Bearer three dots", text("Bearer a.b.c".into())),
        (
            "Bearer JWT-shaped junk",
            text(format!("Bearer eyJ{}.eyJ{}.{}", "A".repeat(50), "B".repeat(50), "C".repeat(43))),
        ),
        (
            "Bearer alg none",
            text(format!(
                "Bearer {}.{}.",
                B64.encode(r#"{"alg":"none"}"#),
                B64.encode(r#"{"user_id":1}"#)
            )),
        ),
        ("Bearer long", text(format!("Bearer {}", "x".repeat(8000)))),
        ("Token short", text("Token abc123".into())),
        ("Token 41 hex", text(format!("Token {}", "a".repeat(41)))),
        ("Token non-hex", text(format!("Token {}", "z".repeat(40)))),
        ("Api-Key non-hex", text(format!("Api-Key {}", "g".repeat(64)))),
        ("Api-Key 63 hex", text(format!("Api-Key {}", "a".repeat(63)))),
        ("Api-Key empty", text("Api-Key".into())),
        ("unknown scheme", text("Digest username=\"x\"".into())),
        ("no scheme", text("deadbeef".into())),
        ("very long value", text(format!("Token {}", "f".repeat(64 * 1024)))),
    ];
    for (what, bytes) in [
        ("Token non-ASCII", b"Token \xff\xfe\xfd\x80abc".to_vec()),
        ("Bearer non-ASCII", b"Bearer \xc3\x28\xa0\xa1.\xf0\x28.\x8c".to_vec()),
        ("Api-Key non-ASCII", [b"Api-Key ".as_slice(), &[0xe9; 64]].concat()),
        ("Basic non-ASCII", b"Basic \xff\xff\xff".to_vec()),
    ] {
        out.push((what, HeaderValue::from_bytes(&bytes).unwrap()));
    }
    out
}

fn json_bodies() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let mut deep_objects = "{\"a\":".repeat(50_000);
    deep_objects.push('1');
    deep_objects.push_str(&"}".repeat(50_000));
    vec![
        (
            "invalid UTF-8",
            "application/json",
            b"{\"name\": \"\xff\xfe\xc3\x28\", \"key\": \"\xed\xa0\x80\"}".to_vec(),
        ),
        ("invalid UTF-8 (text/plain)", "text/plain", b"\xff\xfe\xfd".to_vec()),
        ("100 000 [", "application/json", vec![b'['; 100_000]),
        (
            "100 000 [ closed",
            "application/json",
            [vec![b'['; 100_000], vec![b']'; 100_000]].concat(),
        ),
        ("50 000 nested objects", "application/json", deep_objects.into_bytes()),
        ("over 1 MiB of JSON", "application/json", oversized_json()),
        ("not JSON at all", "application/json", b"<xml/>".to_vec()),
        ("JSON null", "application/json", b"null".to_vec()),
        (
            "huge number",
            "application/json",
            format!("{{\"organization\": 1{}}}", "0".repeat(5000)).into_bytes(),
        ),
    ]
}

fn oversized_json() -> Vec<u8> {
    format!("{{\"name\": \"{}\"}}", "x".repeat(1_200_000)).into_bytes()
}

async fn hostile_family(f: Family) {
    hostile_run(Run::new(f.name).await, f).await;
}

async fn hostile_run(mut run: Run, f: Family) {
    let paging = if f.paged { Expect::Error } else { Expect::OkOrError };
    for list in f.lists {
        for q in PAGES {
            let sep = if list.contains('?') { '&' } else { '?' };
            run.get("paging", &format!("{list}{sep}{q}"), paging).await;
        }
    }
    run.assert_alive().await;

    for (template, methods) in f.ids {
        for id in IDS {
            let path = template.replace("{id}", id);
            for m in *methods {
                let body = matches!(*m, Method::POST | Method::PUT | Method::PATCH)
                    .then(|| ("application/json", b"{}".to_vec()));
                run.probe("id past u64", m.clone(), &path, Vec::new(), body, Expect::Error).await;
            }
        }
    }
    run.assert_alive().await;

    for (what, value) in bad_credentials() {
        let headers = vec![(reqwest::header::AUTHORIZATION, value)];
        run.probe(what, Method::GET, f.protected, headers, None, Expect::Error).await;
    }
    // Two credentials at once, and a credential in a cookie that is junk.
    let both = vec![
        (reqwest::header::AUTHORIZATION, HeaderValue::from_static("Token abc")),
        (reqwest::header::COOKIE, HeaderValue::from_static("gatehouse_session=%ff%00junk")),
    ];
    run.probe("junk cookie", Method::GET, f.protected, both, None, Expect::Error).await;
    run.assert_alive().await;

    // Oversized headers: 100 KiB in one header reaches the application (no credential: 401);
    // 1 MiB of headers is refused by the HTTP layer.
    let big = HeaderValue::from_str(&"h".repeat(100 * 1024)).unwrap();
    let no_auth = (reqwest::header::AUTHORIZATION, HeaderValue::from_static("Token 0"));
    let headers = vec![(HeaderName::from_static("x-filler"), big), no_auth.clone()];
    run.probe("100 KiB header", Method::GET, f.protected, headers, None, Expect::Error).await;
    let mut many = vec![no_auth];
    for i in 0..16 {
        let name = HeaderName::from_bytes(format!("x-filler-{i}").as_bytes()).unwrap();
        many.push((name, HeaderValue::from_str(&"m".repeat(64 * 1024)).unwrap()));
    }
    run.probe("1 MiB of headers", Method::GET, f.protected, many, None, Expect::Transport).await;
    run.assert_alive().await;

    for (method, path) in f.writes {
        for (what, ct, body) in json_bodies() {
            run.probe(what, method.clone(), path, Vec::new(), Some((ct, body)), Expect::Error)
                .await;
        }
    }
    run.assert_alive().await;
    run.finish().await;
}

#[tokio::test]
async fn hostile_auth() {
    hostile_family(Family {
        name: "auth",
        lists: &[],
        paged: true,
        ids: &[],
        writes: &[
            (Method::POST, "/api/auth/login/"),
            (Method::POST, "/api/auth/register/"),
            (Method::POST, "/api/auth/token/"),
            (Method::POST, "/api/auth/token/refresh/"),
            (Method::POST, "/api/auth/token/verify/"),
            (Method::POST, "/api/auth/password/change/"),
            (Method::PATCH, "/api/auth/profile/"),
        ],
        protected: "/api/auth/profile/",
    })
    .await;
}

#[tokio::test]
async fn hostile_organizations() {
    hostile_family(Family {
        name: "organizations",
        lists: &["/api/organizations/"],
        paged: true,
        ids: &[
            ("/api/organizations/{id}/", &[Method::GET, Method::PATCH, Method::DELETE]),
            ("/api/organizations/{id}/members/", &[Method::GET, Method::POST]),
            ("/api/organizations/1/members/{id}/", &[Method::PATCH, Method::DELETE]),
        ],
        writes: &[(Method::POST, "/api/organizations/"), (Method::PATCH, "/api/organizations/1/")],
        protected: "/api/organizations/",
    })
    .await;
}

#[tokio::test]
async fn hostile_projects() {
    hostile_family(Family {
        name: "projects",
        lists: &["/api/projects/", "/api/projects/?organization=99999999999999999999999"],
        paged: true,
        ids: &[
            ("/api/projects/{id}/", &[Method::GET, Method::PUT, Method::DELETE]),
            ("/api/projects/{id}/environments/", &[Method::GET]),
        ],
        writes: &[(Method::POST, "/api/projects/"), (Method::PATCH, "/api/projects/1/")],
        protected: "/api/projects/",
    })
    .await;
}

#[tokio::test]
async fn hostile_environments() {
    hostile_family(Family {
        name: "environments",
        lists: &["/api/environments/", "/api/environments/1/deleted-variables/"],
        paged: true,
        ids: &[
            ("/api/environments/{id}/", &[Method::GET, Method::PATCH, Method::DELETE]),
            ("/api/environments/{id}/variables/", &[Method::GET]),
            ("/api/environments/{id}/deleted-variables/", &[Method::GET]),
        ],
        writes: &[(Method::POST, "/api/environments/"), (Method::PUT, "/api/environments/1/")],
        protected: "/api/environments/",
    })
    .await;
}

#[tokio::test]
async fn hostile_variables() {
    hostile_family(Family {
        name: "variables",
        lists: &["/api/variables/", "/api/variables/?environment=-3", "/api/variables/1/versions/"],
        paged: true,
        ids: &[
            ("/api/variables/{id}/", &[Method::GET, Method::PATCH, Method::DELETE]),
            ("/api/variables/{id}/versions/", &[Method::GET]),
            ("/api/variables/{id}/rollback/", &[Method::POST]),
        ],
        writes: &[
            (Method::POST, "/api/variables/"),
            (Method::PUT, "/api/variables/1/"),
            (Method::POST, "/api/variables/1/rollback/"),
        ],
        protected: "/api/variables/",
    })
    .await;
}

#[tokio::test]
async fn hostile_import_export() {
    let mut run = Run::new("import/export").await;
    // An environment to aim at, so the requests reach the parsers.
    let org = login_admin(&run.s).await.org_id;
    let client = run.s.client.clone();
    let post = |path: &str, body: serde_json::Value| {
        client.post(run.s.url(path)).header("authorization", auth(&run.token)).json(&body).send()
    };
    let p: serde_json::Value =
        post("/api/projects/", serde_json::json!({"name": "Hostile", "organization": org}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let e: serde_json::Value =
        post("/api/environments/", serde_json::json!({"name": "prod", "project": p["id"]}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let env = e["id"].as_u64().expect("environment created");
    for id in IDS {
        run.get("id past u64", &format!("/api/environments/{id}/export/"), Expect::Error).await;
        let form = ("multipart/form-data; boundary=X", multipart("file", b"A=1\n"));
        run.probe(
            "id past u64",
            Method::POST,
            &format!("/api/environments/{id}/import/"),
            Vec::new(),
            Some(form),
            Expect::Error,
        )
        .await;
    }
    for q in ["format=../../etc/passwd", "format=%ff%fe", "format=xml"] {
        run.get("bad format", &format!("/api/environments/{env}/export/?{q}"), Expect::Error).await;
    }
    // One of the two wins; either way nothing breaks.
    let twice = format!("/api/environments/{env}/export/?format=env&format=%ff");
    run.get("format twice", &twice, Expect::OkOrError).await;
    let import = format!("/api/environments/{env}/import/");
    let deep = vec![b'['; 100_000];
    let cases: Vec<(&str, String, Vec<u8>)> = vec![
        (
            "invalid UTF-8 file",
            "multipart/form-data; boundary=X".into(),
            multipart("file", b"K=\xff\xfe\n\xc3\x28=1\n"),
        ),
        ("deep JSON file", "multipart/form-data; boundary=X".into(), multipart("file", &deep)),
        ("deep JSON data", "multipart/form-data; boundary=X".into(), multipart("data", &deep)),
        (
            "upload over the limit",
            "multipart/form-data; boundary=X".into(),
            multipart("file", &vec![b'A'; 200 * 1024]),
        ),
        (
            "broken multipart",
            "multipart/form-data; boundary=X".into(),
            b"--X\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nA=1".to_vec(),
        ),
        ("no boundary", "multipart/form-data".into(), b"A=1".to_vec()),
        ("over 1 MiB of JSON", "application/json".into(), oversized_json()),
        ("100 000 [", "application/json".into(), deep.clone()),
        ("invalid UTF-8 JSON", "application/json".into(), b"{\"data\": \"\xff\"}".to_vec()),
    ];
    for (what, ct, body) in cases {
        run.probe(what, Method::POST, &import, Vec::new(), Some((&ct, body)), Expect::Error).await;
    }
    run.assert_alive().await;
    for (what, value) in bad_credentials() {
        let headers = vec![(reqwest::header::AUTHORIZATION, value)];
        run.probe(
            what,
            Method::GET,
            &format!("/api/environments/{env}/export/"),
            headers,
            None,
            Expect::Error,
        )
        .await;
    }
    run.finish().await;
}

fn multipart(field: &str, content: &[u8]) -> Vec<u8> {
    [
        format!("--X\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"x.env\"\r\nContent-Type: text/plain\r\n\r\n").as_bytes(),
        content,
        b"\r\n--X--\r\n",
    ]
    .concat()
}

#[tokio::test]
async fn hostile_api_keys() {
    hostile_family(Family {
        name: "api-keys",
        lists: &["/api/api-keys/"],
        paged: true,
        ids: &[
            ("/api/api-keys/{id}/", &[Method::GET, Method::DELETE]),
            ("/api/api-keys/{id}/rotate/", &[Method::POST]),
        ],
        writes: &[(Method::POST, "/api/api-keys/"), (Method::POST, "/api/api-keys/1/rotate/")],
        protected: "/api/api-keys/",
    })
    .await;
}

#[tokio::test]
async fn hostile_pats() {
    hostile_family(Family {
        name: "pats",
        lists: &["/api/v1/personal-access-tokens"],
        paged: false,
        ids: &[
            ("/api/v1/personal-access-tokens/{id}", &[Method::DELETE, Method::PATCH]),
            ("/api/v1/personal-access-tokens/{id}/revoke", &[Method::POST]),
            ("/api/v1/personal-access-tokens/{id}/reissue", &[Method::POST]),
        ],
        writes: &[
            (Method::POST, "/api/v1/personal-access-tokens"),
            (Method::PATCH, "/api/v1/personal-access-tokens/1"),
        ],
        protected: "/api/v1/personal-access-tokens",
    })
    .await;
}

#[tokio::test]
async fn hostile_staff_keys() {
    hostile_family(Family {
        name: "staff keys",
        lists: &["/api/grpc/api-keys/", "/cfg/grpc/api-keys/"],
        paged: true,
        ids: &[
            ("/api/grpc/api-keys/{id}/", &[Method::GET, Method::PATCH, Method::DELETE]),
            ("/cfg/grpc/api-keys/{id}/", &[Method::GET, Method::PATCH, Method::DELETE]),
        ],
        writes: &[(Method::POST, "/api/grpc/api-keys/"), (Method::POST, "/cfg/grpc/api-keys/")],
        protected: "/api/grpc/api-keys/stats/",
    })
    .await;
}

#[tokio::test]
async fn hostile_monitor() {
    hostile_family(Family {
        name: "monitor",
        lists: &["/api/grpc/monitor/requests/", "/cfg/grpc/monitor/requests/"],
        paged: true,
        ids: &[],
        writes: &[(Method::POST, "/api/grpc/monitor/requests/")],
        protected: "/api/grpc/monitor/overview/",
    })
    .await;
    // django-cfg parses `hours` as an int (a non-int is a 400) and clamps it to [1, 168], so
    // `hours=-1` is a valid one-hour window; a filter naming no service or status matches
    // nothing. `health` takes no `hours`. Those may answer 200; none may fail or crash.
    let mut run = Run::new("monitor views").await;
    for view in ["overview", "services", "methods", "timeline", "requests"] {
        for q in ["hours=abc", "hours=99999999999999999999"] {
            run.get("bad query", &format!("/api/grpc/monitor/{view}/?{q}"), Expect::Error).await;
        }
    }
    for view in ["overview", "services", "methods", "timeline", "requests", "health"] {
        for q in ["hours=-1", "service=%ff%fe", "status=%00", "hours=abc"] {
            let path = format!("/api/grpc/monitor/{view}/?{q}");
            run.get("ignorable query", &path, Expect::OkOrError).await;
        }
    }
    run.finish().await;
}

#[tokio::test]
async fn hostile_audit_logs() {
    hostile_family(Family {
        name: "audit logs",
        lists: &[
            "/api/audit-logs/",
            "/api/audit-logs/?organization=99999999999999999999999",
            "/api/audit-logs/?scope=all",
        ],
        paged: true,
        ids: &[],
        writes: &[],
        protected: "/api/audit-logs/",
    })
    .await;
}

#[tokio::test]
async fn hostile_schema_docs_and_health() {
    let mut run = Run::new("schema/docs/health").await;
    for path in [
        "/api/schema/?format=%ff%fe",
        "/api/schema/?format=../../etc/passwd",
        "/api/schema/?format=xml",
        "/api/schema/swagger-ui/../../../etc/passwd",
        "/api/docs/%ff%fe",
        "/api/schema/redoc/%00",
        "/api/99999999999999999999999/",
        "/health/99999999999999999999999/",
        "/%ff%fe/",
        "//api//..//health",
    ] {
        run.get("odd path", path, Expect::Error).await;
    }
    // Public routes may ignore junk credentials, but never fail on them.
    for path in ["/health/", "/api/", "/api/schema/", "/api/docs/"] {
        for (what, value) in bad_credentials() {
            let headers = vec![(reqwest::header::AUTHORIZATION, value)];
            run.probe(what, Method::GET, path, headers, None, Expect::OkOrError).await;
        }
        run.get(
            "paging on a public route",
            &format!("{path}?page=-1&page_size=abc"),
            Expect::OkOrError,
        )
        .await;
    }
    for (what, ct, body) in json_bodies() {
        run.probe(what, Method::POST, "/health/", Vec::new(), Some((ct, body)), Expect::Error)
            .await;
    }
    run.finish().await;
}

/// Credentials, ids, bodies and headers again, over HTTP/2 (where an oversized body must be
/// answered on its stream before the stream is reset).
#[tokio::test]
async fn hostile_variables_over_http2() {
    let run = Run::new_h2("variables over h2").await;
    let resp = run.s.client.get(run.s.url("/health/")).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    hostile_run(
        run,
        Family {
            name: "variables over h2",
            lists: &["/api/variables/"],
            paged: true,
            ids: &[("/api/variables/{id}/", &[Method::GET, Method::PATCH])],
            writes: &[(Method::POST, "/api/variables/"), (Method::PATCH, "/api/variables/1/")],
            protected: "/api/variables/",
        },
    )
    .await;
}
