//! The authentication layer: every malformed, unknown or revoked credential is a 401 in the
//! error format with `WWW-Authenticate`, never a 500.

use crate::harness::{assert_error, register, TestServer};

#[tokio::test]
async fn bad_credentials_are_401_with_www_authenticate() {
    use base64::Engine as _;
    let server = TestServer::start().await;
    let u = register(&server, "hal").await;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let cases = vec![
        "Token".to_string(),
        "Token ".to_string(),
        "Token abc".to_string(),
        format!("Token {}", "0".repeat(40)),
        format!("Token {}", "z".repeat(40)),
        format!("Token {} extra", u.token),
        format!("Token {}x", u.token),
        "Bearer not.a.jwt".to_string(),
        "Api-Key nope".to_string(),
        "Digest abc".to_string(),
        "Basic !!!notbase64".to_string(),
        format!("Basic {}", b64("no-colon")),
        format!("Basic {}", b64(&format!("{}:wrong-password", u.email))),
        format!("Basic {}", b64("ghost@example.com:whatever")),
    ];
    for header in cases {
        let resp = server
            .client
            .get(server.url("/api/auth/profile/"))
            .header("authorization", &header)
            .send()
            .await
            .unwrap();
        assert!(resp.headers().get("www-authenticate").is_some(), "{header}: no WWW-Authenticate");
        let e = assert_error(resp, 401).await;
        assert!(!e["error"].as_str().unwrap().contains(&u.token), "token echoed");
    }
    // Non-UTF-8 header bytes.
    let resp = server
        .client
        .get(server.url("/api/auth/profile/"))
        .header(
            "authorization",
            reqwest::header::HeaderValue::from_bytes(b"Token \xff\xfe").unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_error(resp, 401).await;
    // The keyword is case-insensitive; Basic with the username works too.
    for header in [
        format!("token {}", u.token),
        format!("Basic {}", b64(&format!("{}:{}", u.username, u.password))),
    ] {
        let resp = server
            .client
            .get(server.url("/api/auth/profile/"))
            .header("authorization", &header)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{header}");
    }
}

#[tokio::test]
async fn public_routes_need_no_credential() {
    let server = TestServer::start().await;
    assert_eq!(server.get("/health/").await.status(), 200);
    assert_eq!(server.get("/api/schema/").await.status(), 200);
    let resp = server.get("/api/organizations/").await;
    assert!(resp.headers().get("www-authenticate").is_some());
    let e = assert_error(resp, 401).await;
    assert_eq!(e["code"], "NOT_AUTHENTICATED");
}
