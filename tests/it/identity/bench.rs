//! Cost of authentication per request, by credential kind (ignored by default; run with
//! `cargo test --test it identity::bench -- --ignored --nocapture`, ideally with
//! `CARGO_PROFILE_DEV_OPT_LEVEL=2`).
//!
//! Two numbers per kind: the server-side resolution in process (the auth layer's work: parse,
//! digest or HMAC, cache lookup, allow-list, usage counter), warm cache and cold (every
//! resolution reads redb), and authenticated `GET /api/auth/profile/` over TLS keep-alive.

use std::time::Instant;

use serde_json::{json, Value};

use crate::harness::{auth, register, TestServer};

const N: u32 = 20_000;

#[tokio::test]
#[ignore]
async fn authentication_cost_per_credential_kind() {
    let server = TestServer::start().await;
    let u = register(&server, "bench").await;
    let login: Value = server
        .client
        .post(server.url("/api/auth/login/"))
        .json(&json!({"email": u.email, "password": u.password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key: Value = server
        .client
        .post(server.url("/api/api-keys/"))
        .header("authorization", auth(&u.token))
        .json(&json!({"name": "bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pat: Value = server
        .client
        .post(server.url("/api/v1/personal-access-tokens"))
        .header("authorization", auth(&u.token))
        .json(&json!({"name": "bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kinds: Vec<(&str, String)> = vec![
        ("Token", format!("Token {}", u.token)),
        ("API key", format!("Api-Key {}", key["key"].as_str().unwrap())),
        ("JWT", format!("Bearer {}", login["access"].as_str().unwrap())),
        ("PAT", format!("Bearer {}", pat["access_token"].as_str().unwrap())),
        ("Basic", {
            use base64::Engine as _;
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", u.email, u.password))
            )
        }),
    ];
    let state = std::sync::Arc::clone(&server.running.as_ref().unwrap().state);
    let ip = Some("127.0.0.1".parse().unwrap());
    println!("\nkind      warm µs/req  cold µs/req  HTTPS profile µs/req (keep-alive, sequential)");
    for (name, header) in &kinds {
        let presented = || gatehouse::auth::parse_authorization(header).unwrap();
        // Warm: the cache holds the resolution.
        state.credentials.authenticate(&state.store, presented(), ip).await.unwrap();
        let t = Instant::now();
        for _ in 0..N {
            state.credentials.authenticate(&state.store, presented(), ip).await.unwrap();
        }
        let warm = t.elapsed().as_secs_f64() * 1e6 / f64::from(N);
        // Cold: every resolution misses the cache (Basic would re-run argon2: skipped).
        let cold = if *name == "Basic" {
            f64::NAN
        } else {
            let n = N / 10;
            let t = Instant::now();
            for _ in 0..n {
                state.credentials.invalidate();
                state.credentials.authenticate(&state.store, presented(), ip).await.unwrap();
            }
            t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
        };
        let n = 500;
        let t = Instant::now();
        for _ in 0..n {
            let resp = server
                .client
                .get(server.url("/api/auth/profile/"))
                .header("authorization", header)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            resp.bytes().await.unwrap();
        }
        let http = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        println!("{name:<9} {warm:>11.2}  {cold:>11.2}  {http:>10.1}");
    }
}
