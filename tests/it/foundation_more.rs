//! More of the spine: leaf renewal without restart, a supplied certificate pair, graceful
//! shutdown with a request in flight, and the OpenAPI document checked by
//! openapi-spec-validator.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::harness::{client_for, tls_connector, TestServer};

/// A fresh TLS connection (verified against `ca_pem`) to `server`.
async fn connect(
    server: &TestServer,
    ca_pem: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls::pki_types::ServerName;
    let addr = server.running.as_ref().unwrap().local_addr;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tls_connector(ca_pem).connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap()
}

/// SHA-256 of the leaf certificate a new connection is served.
async fn peer_leaf(server: &TestServer) -> String {
    let tls = connect(server, &server.ca_pem).await;
    let certs = tls.get_ref().1.peer_certificates().unwrap();
    hex::encode(ring::digest::digest(&ring::digest::SHA256, certs[0].as_ref()))
}

#[tokio::test]
async fn the_leaf_is_renewed_without_a_restart() {
    // Six seconds of life: due at 4 s, checked every second (lifetime/20 clamped to 1 s).
    let server = TestServer::start_with(&[("GATEHOUSE_TLS_LEAF_LIFETIME_SECONDS", "6")]).await;
    let first = peer_leaf(&server).await;
    assert_eq!(peer_leaf(&server).await, first, "renewed too early");
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    // Same CA (the connection verifies against the ca.pem written at start), new leaf.
    let second = peer_leaf(&server).await;
    assert_ne!(second, first, "leaf not renewed after two thirds of its life");
    assert_eq!(std::fs::read_to_string(server.data_dir().join("ca.pem")).unwrap(), server.ca_pem);
    assert_eq!(server.get("/health/").await.status(), 200);
    // The renewed leaf was stored: a restart serves it rather than the first one.
    let server = server.restart().await;
    assert_ne!(peer_leaf(&server).await, first);
}

#[tokio::test]
async fn a_supplied_certificate_pair_is_served() {
    use gatehouse::tls;
    let dir = tempfile::tempdir().unwrap();
    let ca = tls::generate_ca("Supplied Test CA", time::Duration::days(30)).unwrap();
    let leaf = tls::issue_leaf(&ca, &[], time::Duration::days(7)).unwrap();
    let cert_file = dir.path().join("server.crt");
    let key_file = dir.path().join("server.key");
    std::fs::write(&cert_file, format!("{}{}", leaf.cert_pem, ca.cert_pem)).unwrap();
    std::fs::write(&key_file, &leaf.key_pem).unwrap();
    let server = TestServer::start_with(&[
        ("GATEHOUSE_TLS_CERT_FILE", cert_file.to_str().unwrap()),
        ("GATEHOUSE_TLS_KEY_FILE", key_file.to_str().unwrap()),
    ])
    .await;
    let tls_stream = connect(&server, &ca.cert_pem).await;
    let served = tls_stream.get_ref().1.peer_certificates().unwrap()[0].as_ref().to_vec();
    let want = tls::fingerprint_sha256(&leaf.cert_pem).unwrap();
    assert_eq!(hex::encode(ring::digest::digest(&ring::digest::SHA256, &served)), want);
    let resp = client_for(&ca.cert_pem).get(server.url("/health/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_missing_supplied_certificate_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let env = crate::harness::env_map(&[
        ("GATEHOUSE_TLS_CERT_FILE", "/nonexistent/server.crt"),
        ("GATEHOUSE_TLS_KEY_FILE", "/nonexistent/server.key"),
    ]);
    let err = TestServer::boot(dir.path(), &env, None).await.err().expect("started");
    assert!(err.to_string().contains("tls.cert_file"), "{err}");
}

#[tokio::test]
async fn graceful_shutdown_lets_an_in_flight_request_finish() {
    let mut server = TestServer::start().await;
    let mut tls = connect(&server, &server.ca_pem).await;
    // Headers and half the body now; the edge reads the whole JSON body before routing.
    let body = br#"{"name": "in-flight", "padding": "xxxxxxxxxxxxxxxx"}"#;
    let head = format!(
        "POST /api/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&body[..10]).await.unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let running = server.running.take().unwrap();
    let stopping = tokio::spawn(running.shutdown());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!stopping.is_finished(), "shut down with a request in flight");
    // New connections are no longer accepted.
    let refused = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(server.base.trim_start_matches("https://")),
    )
    .await;
    assert!(!matches!(refused, Ok(Ok(_))), "accepted a new connection while stopping");
    tls.write_all(&body[10..]).await.unwrap();
    tls.flush().await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 405"), "in-flight request got: {text}");
    assert!(text.contains("METHOD_NOT_ALLOWED"), "{text}");
    tokio::time::timeout(Duration::from_secs(10), stopping).await.unwrap().unwrap();
}

#[tokio::test]
async fn the_openapi_document_passes_openapi_spec_validator() {
    let server = TestServer::start().await;
    let text = server.get("/api/schema/").await.text().await.unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    // Basic structure, checked in Rust whatever the validator's availability.
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(path.starts_with('/'), "{path}");
        for (method, op) in item.as_object().unwrap() {
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path}");
        }
    }
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    for r in refs {
        let name =
            r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("odd $ref {r}"));
        assert!(doc["components"]["schemas"].get(name).is_some(), "dangling $ref {r}");
    }
    let file = server.data_dir().join("openapi.json");
    std::fs::write(&file, &text).unwrap();
    let probe = std::process::Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!(
            "skip: openapi-spec-validator is not installed (pip install openapi-spec-validator)"
        );
        return;
    }
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn collect_refs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                if k == "$ref" {
                    out.extend(v.as_str().map(str::to_string));
                } else {
                    collect_refs(v, out);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// Posts raw bytes as JSON and returns the error body (asserting the one format and 400).
async fn post_json_400(server: &TestServer, path: &str, body: &str) -> serde_json::Value {
    let resp = server
        .client
        .post(server.url(path))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let err = crate::harness::assert_error(resp, 400).await;
    assert_eq!(err["code"], "VALIDATION_ERROR", "{err}");
    err["details"].clone()
}

#[tokio::test]
async fn json_parse_failures_name_the_field() {
    let server = TestServer::start().await;
    let path = "/api/auth/register/";
    let details = post_json_400(
        &server,
        path,
        r#"{"email": "new@example.com", "password": "long-enough-pw-1"}"#,
    )
    .await;
    assert_eq!(details["username"], serde_json::json!(["This field is required."]), "{details}");
    assert_eq!(details["confirm_password"], serde_json::json!(["This field is required."]));
    assert!(details.get("email").is_none() && details.get("first_name").is_none(), "{details}");
    let details = post_json_400(
        &server,
        path,
        r#"{"username": ["x"], "email": "n@example.com", "password": "long-enough-pw-1",
            "confirm_password": "long-enough-pw-1", "first_name": {"a": 1}}"#,
    )
    .await;
    assert_eq!(details["username"], serde_json::json!(["Not a valid string."]), "{details}");
    assert_eq!(details["first_name"], serde_json::json!(["Not a valid string."]), "{details}");
    let details = post_json_400(&server, path, r#"{"username": "x", "#).await;
    let msg = details["non_field_errors"][0].as_str().unwrap_or_default();
    assert!(msg.starts_with("JSON parse error - "), "{details}");
    let details = post_json_400(&server, path, "[1, 2, 3]").await;
    assert_eq!(
        details,
        serde_json::json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]})
    );
    // Without a trailing slash the same operation is found.
    let details = post_json_400(&server, "/api/auth/register", "{}").await;
    assert_eq!(details["email"], serde_json::json!(["This field is required."]), "{details}");
    // The server still serves a well-formed request afterwards.
    assert_eq!(server.get("/health/").await.status(), 200);
}

/// A boolean where the document says string is refused as DRF's CharField refuses it, with
/// nothing changed; a number there is still taken as its text (DRF does, and clients rely on it).
#[tokio::test]
async fn a_boolean_is_not_a_string() {
    let server = TestServer::start().await;
    let user = crate::harness::register(&server, "booleans").await;
    let patch = |body: serde_json::Value| {
        server
            .client
            .patch(server.url("/api/auth/profile/"))
            .header("authorization", crate::harness::auth(&user.token))
            .json(&body)
            .send()
    };
    let resp = patch(serde_json::json!({"first_name": true, "last_name": "Kept"})).await.unwrap();
    let err = crate::harness::assert_error(resp, 400).await;
    assert_eq!(err["code"], "VALIDATION_ERROR", "{err}");
    assert_eq!(err["details"], serde_json::json!({"first_name": ["Not a valid string."]}));
    let resp = patch(serde_json::json!({"last_name": 5})).await.unwrap();
    assert_eq!(resp.status(), 200);
    let profile: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(profile["first_name"], "booleans", "the refused change was not half-applied");
    assert_eq!(profile["last_name"], "5");
    // Booleans nested in a list of objects are named by index.
    let resp = server
        .client
        .post(server.url("/api/grpc/monitor/requests/"))
        .header("authorization", crate::harness::auth(&user.token))
        .json(&serde_json::json!({"requests": [
            {"service_name": "s", "method_name": "m"},
            {"service_name": false, "method_name": "m"}]}))
        .send()
        .await
        .unwrap();
    let err = crate::harness::assert_error(resp, 400).await;
    assert_eq!(
        err["details"]["requests"]["1"]["service_name"],
        serde_json::json!(["Not a valid string."]),
        "{err}"
    );
}

/// Bodies refused for their size (413) reach the request log like any other refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_logged() {
    let server = TestServer::start_with(&[("GATEHOUSE_SERVER_MAX_BODY_BYTES", "1024")]).await;
    let admin = crate::harness::login_admin(&server).await;
    let resp = server
        .client
        .post(server.url("/api/projects/"))
        .header("authorization", crate::harness::auth(&admin.token))
        .header("x-request-id", "test-req-0413-big")
        .header("content-type", "application/json")
        .body(format!(r#"{{"name": "{}"}}"#, "x".repeat(4096)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let page: serde_json::Value = server
        .client
        .get(server.url("/api/grpc/monitor/requests/?page_size=200"))
        .header("authorization", crate::harness::auth(&admin.token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rec = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["request_id"] == "test-req-0413-big")
        .cloned()
        .unwrap_or_else(|| panic!("413 not logged: {page}"));
    assert_eq!(rec["http_status"], 413);
    assert_eq!(rec["status"], "error");
    assert_eq!(rec["grpc_status_code"], "RESOURCE_EXHAUSTED");
    assert_eq!(rec["method_name"], "projects_create");
    assert_eq!(rec["error_message"], "Request body too large.");
}
