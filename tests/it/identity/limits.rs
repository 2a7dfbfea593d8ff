//! Rate limits (headers on every response, 429 + Retry-After in the error format, the 5/minute
//! register/login limit) and the login lockout.

use serde_json::json;

use crate::harness::{assert_error, auth, register, TestServer};

#[tokio::test]
async fn burst_limit_gives_429_with_headers() {
    let server = TestServer::start_with(&[
        ("GATEHOUSE_RATE_LIMIT_ENABLED", "true"),
        ("GATEHOUSE_RATE_LIMIT_BURST_PER_MINUTE", "5"),
        ("GATEHOUSE_RATE_LIMIT_AUTH_PER_MINUTE", "50"),
    ])
    .await;
    let u = register(&server, "limited").await;
    crate::harness::fresh_minute().await;
    let mut last_remaining = u64::MAX;
    let mut saw_429 = false;
    for i in 0..7 {
        let resp = server
            .client
            .get(server.url("/api/auth/profile/"))
            .header("authorization", auth(&u.token))
            .send()
            .await
            .unwrap();
        let h = resp.headers().clone();
        let limit: u64 = h["x-ratelimit-limit"].to_str().unwrap().parse().unwrap();
        let remaining: u64 = h["x-ratelimit-remaining"].to_str().unwrap().parse().unwrap();
        let reset: i64 = h["x-ratelimit-reset"].to_str().unwrap().parse().unwrap();
        assert_eq!(limit, 1000);
        assert!(reset > gatehouse::clock::unix_now());
        assert!(remaining <= last_remaining);
        last_remaining = remaining;
        if resp.status() == 429 {
            saw_429 = true;
            assert!(i >= 5, "limited too early at {i}");
            let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=60).contains(&retry));
            let e = assert_error(resp, 429).await;
            assert_eq!(e["error"], "Rate limit exceeded");
        } else {
            assert_eq!(resp.status(), 200, "request {i}");
        }
    }
    assert!(saw_429);
    // Anonymous callers have their own budget (100/hour) and get the headers too.
    let resp = server.get("/health/").await;
    assert_eq!(resp.headers()["x-ratelimit-limit"], "100");
}

#[tokio::test]
async fn login_is_limited_per_address_and_lockout_locks() {
    let server = TestServer::start_with(&[("GATEHOUSE_RATE_LIMIT_ENABLED", "true")]).await;
    // register counts against the same 5/minute budget as login.
    crate::harness::fresh_minute().await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let resp = server
            .client
            .post(server.url("/api/auth/login/"))
            .json(&json!({"email": format!("nobody{i}@example.com"), "password": "whatever-pw"}))
            .send()
            .await
            .unwrap();
        assert!(resp.headers().get("x-ratelimit-remaining").is_some());
        statuses.push(resp.status().as_u16());
        if resp.status() == 429 {
            assert!(resp.headers().get("retry-after").is_some());
            assert_error(resp, 429).await;
        }
    }
    assert_eq!(statuses, vec![401, 401, 401, 401, 401, 429]);
}

#[tokio::test]
async fn repeated_failures_lock_the_account() {
    let server = TestServer::start_with(&[("GATEHOUSE_AUTH_LOCKOUT_FAILURES", "3")]).await;
    let u = register(&server, "lockme").await;
    let login = |pw: String| {
        server
            .client
            .post(server.url("/api/auth/login/"))
            .json(&json!({"email": u.email, "password": pw}))
            .send()
    };
    for _ in 0..3 {
        assert_error(login("wrong-password".into()).await.unwrap(), 401).await;
    }
    // Locked: even the right password is refused, over Basic too.
    let resp = login(u.password.clone()).await.unwrap();
    assert!(resp.headers().get("retry-after").is_some());
    assert_error(resp, 429).await;
    let resp = server
        .client
        .get(server.url("/api/auth/profile/"))
        .basic_auth(&u.email, Some(&u.password))
        .send()
        .await
        .unwrap();
    assert_error(resp, 429).await;
    // Token holders are not locked out.
    let resp = server
        .client
        .get(server.url("/api/auth/profile/"))
        .header("authorization", auth(&u.token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}
