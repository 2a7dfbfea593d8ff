//! The spine: TLS, health, error format, trailing slashes, docs, restart, master key checks.

use std::sync::Arc;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::harness::{assert_error, client_for, TestServer};

#[tokio::test]
async fn health_answers_over_tls_with_headers() {
    let server = TestServer::start().await;
    let resp = server.get("/health/").await;
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert!(h.get("strict-transport-security").is_some());
    assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
    assert_eq!(h.get("cache-control").unwrap(), "no-store");
    let rid = h.get("x-request-id").unwrap().to_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&rid).is_ok());
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["service"], "Gatehouse API");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn paths_work_without_trailing_slash_and_request_id_is_honoured() {
    let server = TestServer::start().await;
    let resp = server
        .client
        .get(server.url("/health"))
        .header("x-request-id", "client-chosen-id-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers().get("x-request-id").unwrap(), "client-chosen-id-42");
    let resp = server
        .client
        .get(server.url("/health/"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    assert_ne!(resp.headers().get("x-request-id").unwrap(), "bad id with spaces");
    let index: serde_json::Value = server.get("/api").await.json().await.unwrap();
    assert_eq!(index["endpoints"]["projects"], "/api/projects/");
    assert_eq!(index["endpoints"]["health"], "/health/");
    assert!(index["message"].as_str().unwrap().contains("Gatehouse"));
}

#[tokio::test]
async fn unknown_route_wrong_method_and_huge_body_use_the_error_format() {
    let server = TestServer::start().await;
    let body = assert_error(server.get("/api/no-such-thing/").await, 404).await;
    assert_eq!(body["code"], "NOT_FOUND");
    let body =
        assert_error(server.client.delete(server.url("/health/")).send().await.unwrap(), 405).await;
    assert_eq!(body["code"], "METHOD_NOT_ALLOWED");
    let big = vec![b'x'; 2 * 1024 * 1024];
    let resp = server
        .client
        .post(server.url("/api/"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    let body = assert_error(resp, 413).await;
    assert_eq!(body["code"], "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn schema_and_docs_pages() {
    let server = TestServer::start().await;
    let resp = server.get("/api/schema/").await;
    assert_eq!(resp.status(), 200);
    let doc: serde_json::Value = resp.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut ids = std::collections::HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(ids.insert(id.to_string()), "duplicate operationId {id}");
            assert!(
                id.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "operationId {id} is not resource_action"
            );
            assert!(op["tags"].as_array().is_some_and(|t| t.len() == 1), "{id} needs one tag");
        }
    }
    let schemes = doc["components"]["securitySchemes"].as_object().cloned().unwrap_or_default();
    for name in ["Token", "bearerAuth", "Api-Key", "basicAuth"] {
        assert!(schemes.contains_key(name) || ids.len() < 3, "security scheme {name} missing");
    }
    let yaml = server.get("/api/schema/?format=yaml").await;
    assert_eq!(yaml.status(), 200);
    assert!(yaml.text().await.unwrap().contains("openapi:"));
    // drf-spectacular's negotiation, as Pegasus clients use it; `format` wins over Accept.
    for (accept, content_type, yaml) in [
        ("application/vnd.oai.openapi", "application/vnd.oai.openapi", true),
        ("application/vnd.oai.openapi+json", "application/vnd.oai.openapi+json", false),
        ("application/yaml", "application/yaml", true),
        ("text/html,*/*;q=0.8", "application/json", false),
    ] {
        let resp =
            server.client.get(server.url("/api/schema/")).header("accept", accept).send().await;
        let resp = resp.unwrap();
        assert_eq!(resp.status(), 200, "{accept}");
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with(content_type));
        let body = resp.text().await.unwrap();
        if yaml {
            assert!(body.starts_with("openapi:"), "{accept}: {}", &body[..40]);
        } else {
            serde_json::from_str::<serde_json::Value>(&body).unwrap();
        }
    }
    let resp = server
        .client
        .get(server.url("/api/schema/?format=json"))
        .header("accept", "application/vnd.oai.openapi")
        .send()
        .await
        .unwrap();
    serde_json::from_str::<serde_json::Value>(&resp.text().await.unwrap()).unwrap();
    for page in [
        "/api/schema/swagger-ui/",
        "/api/docs/",
        "/api/schema/redoc/",
        "/api/docs",
        "/api/schema/redoc",
    ] {
        let resp = server.get(page).await;
        assert_eq!(resp.status(), 200, "{page}");
        let html = resp.text().await.unwrap();
        assert!(html.contains("<html") || html.contains("<!DOCTYPE"), "{page} is not a page");
    }
}

async fn peer_fingerprint(server: &TestServer) -> String {
    use rustls::pki_types::ServerName;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut server.ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let addr = server.running.as_ref().unwrap().local_addr;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    let certs = tls.get_ref().1.peer_certificates().unwrap();
    hex::encode(ring::digest::digest(&ring::digest::SHA256, certs[0].as_ref()))
}

#[tokio::test]
async fn restart_keeps_ca_and_leaf() {
    let server = TestServer::start().await;
    let ca_before = server.ca_pem.clone();
    let leaf_before = peer_fingerprint(&server).await;
    let server = server.restart().await;
    assert_eq!(server.ca_pem, ca_before);
    assert_eq!(peer_fingerprint(&server).await, leaf_before);
    assert_eq!(server.get("/health/").await.status(), 200);
}

#[tokio::test]
async fn wrong_master_key_refuses_to_start() {
    let mut server = TestServer::start().await;
    server.stop().await;
    let other_key = server.data_dir().join("other.key");
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&other_key)
            .unwrap();
        f.write_all("11".repeat(32).as_bytes()).unwrap();
    }
    let err = TestServer::boot(server.data_dir(), &server.env, Some(other_key))
        .await
        .err()
        .expect("started with the wrong key");
    assert!(err.to_string().contains("different master key"), "{err}");
    // The right key still works afterwards.
    let again = TestServer::boot(server.data_dir(), &server.env, None).await.unwrap();
    again.shutdown().await;
}

#[tokio::test]
async fn tls_1_1_client_hello_is_refused() {
    let server = TestServer::start().await;
    let addr = server.running.as_ref().unwrap().local_addr;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&tls11_client_hello()).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    // Either an alert record (0x15) or a closed connection; never a ServerHello (0x16).
    assert!(
        n == 0 || buf[0] == 0x15,
        "server answered a TLS 1.1 hello with record type {:#x}",
        buf[0]
    );
    // And a modern client is still served.
    assert_eq!(
        client_for(&server.ca_pem).get(server.url("/health/")).send().await.unwrap().status(),
        200
    );
}

/// A minimal TLS 1.1 ClientHello (no supported_versions extension).
fn tls11_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x02];
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // ciphers: ECDHE-RSA-AES128-SHA, AES128-SHA
    body.extend_from_slice(&[0x01, 0x00]); // compression: null
    let mut hs = vec![0x01];
    let len = u32::try_from(body.len()).unwrap().to_be_bytes();
    hs.extend_from_slice(&len[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend_from_slice(&u16::try_from(hs.len()).unwrap().to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}
