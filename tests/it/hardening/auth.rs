//! Authentication and rate limiting under attack (security review H2, M5, M6, L1–L5, L7, L10,
//! L13, L14, L17): each test replays the attack against the real server and shows the refusal.

use std::sync::Arc;
use std::time::Duration;

use gatehouse::domain::audit::tables::AUDIT;
use gatehouse::domain::audit::AuditRecord;
use gatehouse::domain::credentials::tables::{JWT_DENYLIST, TOKENS, TOKENS_BY_DIGEST};
use gatehouse::store::{Reader as _, Writer as _};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::harness::{
    assert_error, auth, fresh_minute, login_admin, register, tls_connector, TestServer, TestUser,
};

type Err = gatehouse::domain::Error;

fn state(server: &TestServer) -> &Arc<gatehouse::services::Services> {
    &server.running.as_ref().unwrap().state
}

/// Audit records with `action`, oldest first.
fn audit(server: &TestServer, action: &str) -> Vec<AuditRecord> {
    state(server)
        .store
        .read(|tx| tx.scan(AUDIT, 0..=u64::MAX, usize::MAX, false))
        .unwrap()
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| r.action == action)
        .collect()
}

trait Details {
    fn detail(&self, key: &str) -> Value;
}

impl Details for AuditRecord {
    fn detail(&self, key: &str) -> Value {
        self.details[key].clone()
    }
}

fn basic(ident: &str, password: &str) -> String {
    use base64::Engine as _;
    let raw = format!("{ident}:{password}");
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
}

async fn get_with(server: &TestServer, path: &str, authorization: &str) -> reqwest::Response {
    server.client.get(server.url(path)).header("authorization", authorization).send().await.unwrap()
}

async fn login_form(server: &TestServer, ident: &str, password: &str) -> reqwest::Response {
    server
        .client
        .post(server.url("/api/auth/login/"))
        .json(&json!({"email": ident, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn token_form(server: &TestServer, ident: &str, password: &str) -> reqwest::Response {
    server
        .client
        .post(server.url("/api/auth/token/"))
        .json(&json!({"username": ident, "password": password}))
        .send()
        .await
        .unwrap()
}

/// Logs in with the form; the response body and the session cookie (`name=value`).
async fn login(server: &TestServer, u: &TestUser) -> (Value, String) {
    let resp = login_form(server, &u.email, &u.password).await;
    assert_eq!(resp.status(), 200);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    let cookie = cookie.split(';').next().unwrap().to_string();
    (resp.json().await.unwrap(), cookie)
}

fn without_timestamp(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("timestamp");
    v
}

/// [`without_timestamp`], with the seconds of "Try again in N seconds" blanked: two answers
/// given a moment apart may straddle a second.
fn without_clock(v: Value) -> Value {
    let text = without_timestamp(v).to_string();
    let mut out = String::with_capacity(text.len());
    let mut in_digits = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('N');
            }
            in_digits = true;
        } else {
            in_digits = false;
            out.push(c);
        }
    }
    serde_json::from_str(&out).unwrap()
}

// ---- H2 ------------------------------------------------------------------------------------

#[tokio::test]
async fn h2_basic_attempts_spend_the_auth_budget_before_any_hashing() {
    let server = TestServer::start_with(&[
        ("GATEHOUSE_RATE_LIMIT_ENABLED", "true"),
        ("GATEHOUSE_RATE_LIMIT_AUTH_PER_MINUTE", "4"),
    ])
    .await;
    fresh_minute().await;
    // Registering is one attempt of the four.
    let u = register(&server, "h2victim").await;
    let mut statuses = Vec::new();
    for i in 0..10 {
        let resp =
            get_with(&server, "/health/", &basic(&format!("nobody{i}@x.example"), "pw")).await;
        statuses.push(resp.status().as_u16());
        if resp.status() == 429 {
            let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=60).contains(&retry));
            assert!(resp.headers().get("x-ratelimit-remaining").is_some());
            assert_error(resp, 429).await;
        }
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429, 429, 429, 429, 429]);
    // Only the three attempts inside the budget reached the password check (each audited,
    // distinct names): the refused ones cost no hash and no write.
    assert_eq!(audit(&server, "user_login_failed").len(), 3);
    // While the address is over its budget, even a good credential is refused unexamined.
    assert_error(get_with(&server, "/api/auth/profile/", &auth(&u.token)).await, 429).await;
    let resp = get_with(&server, "/api/auth/profile/", &basic(&u.email, &u.password)).await;
    assert_error(resp, 429).await;
}

#[tokio::test]
async fn h2_a_verified_basic_client_does_not_rehash_after_unrelated_changes() {
    let server = TestServer::start_with(&[
        ("GATEHOUSE_RATE_LIMIT_ENABLED", "true"),
        ("GATEHOUSE_RATE_LIMIT_AUTH_PER_MINUTE", "4"),
    ])
    .await;
    fresh_minute().await;
    // Three of the four attempts are spent here; one more hash would spend the last, and the
    // address would then be refused everything.
    let u = register(&server, "basicclient").await; // one attempt
    let other = register(&server, "busyneighbour").await; // two
    let creds = basic(&u.email, &u.password);
    assert_eq!(get_with(&server, "/api/auth/profile/", &creds).await.status(), 200); // three
    for i in 0..5 {
        // Someone else's profile change empties the credential cache.
        let resp = server
            .client
            .patch(server.url("/api/auth/profile/"))
            .header("authorization", auth(&other.token))
            .json(&json!({"first_name": format!("N{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(get_with(&server, "/api/auth/profile/", &creds).await.status(), 200, "{i}");
    }
    // A password change ends the verified pair: the old password is checked (and refused).
    let resp = server
        .client
        .post(server.url("/api/auth/password/change/"))
        .header("authorization", auth(&u.token))
        .json(&json!({"old_password": u.password, "new_password": "another-long-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_error(get_with(&server, "/api/auth/profile/", &creds).await, 401).await;
    assert_error(get_with(&server, "/api/auth/profile/", &auth(&other.token)).await, 429).await;
}

#[tokio::test]
async fn h2_failed_tokens_and_malformed_headers_spend_the_auth_budget() {
    let server = TestServer::start_with(&[
        ("GATEHOUSE_RATE_LIMIT_ENABLED", "true"),
        ("GATEHOUSE_RATE_LIMIT_AUTH_PER_MINUTE", "3"),
    ])
    .await;
    fresh_minute().await;
    let guesses = [
        format!("Token {}", "a".repeat(40)),
        "Bearer not-a-jwt".to_string(),
        "Basic !!!".to_string(),
        format!("Api-Key {}", "b".repeat(64)),
        format!("Token {}", "c".repeat(40)),
    ];
    let mut statuses = Vec::new();
    for g in &guesses {
        let resp = get_with(&server, "/api/projects/", g).await;
        statuses.push(resp.status().as_u16());
        assert_error(resp, *statuses.last().unwrap()).await;
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    // Anonymous requests have their own budget and still pass.
    assert_eq!(server.get("/health/").await.status(), 200);
}

#[tokio::test]
async fn h2_l14_unknown_names_lock_like_accounts_and_answer_the_same() {
    let server = TestServer::start_with(&[("GATEHOUSE_AUTH_LOCKOUT_FAILURES", "3")]).await;
    let u = register(&server, "known").await;
    let ghost = "ghost-account@example.com";
    for _ in 0..3 {
        assert_error(login_form(&server, &u.email, "wrong-password").await, 401).await;
        assert_error(login_form(&server, ghost, "wrong-password").await, 401).await;
    }
    // Both locked now, with the same answer; the right password does not help the account.
    let known = login_form(&server, &u.email, &u.password).await;
    let unknown = login_form(&server, ghost, "wrong-password").await;
    let (rk, ru) =
        (known.headers()["retry-after"].clone(), unknown.headers()["retry-after"].clone());
    let known = without_clock(assert_error(known, 429).await);
    let unknown = without_clock(assert_error(unknown, 429).await);
    assert_eq!(known, unknown);
    let secs = |v: &reqwest::header::HeaderValue| v.to_str().unwrap().parse::<i64>().unwrap();
    assert!((secs(&rk) - secs(&ru)).abs() <= 2);
    // Over Basic and the token route too; names are compared case-insensitively.
    let resp = get_with(&server, "/api/auth/profile/", &basic(&u.email, &u.password)).await;
    let k = without_clock(assert_error(resp, 429).await);
    let resp = get_with(&server, "/api/auth/profile/", &basic(&ghost.to_uppercase(), "x")).await;
    assert_eq!(k, without_clock(assert_error(resp, 429).await));
    assert_error(token_form(&server, ghost, "x").await, 429).await;
    // Another unknown name is not affected.
    assert_error(login_form(&server, "other-ghost@example.com", "x").await, 401).await;
}

#[tokio::test]
async fn h2_l14_failed_logins_are_aggregated_and_unknown_names_never_stored() {
    let server = TestServer::start().await;
    let u = register(&server, "aggregated").await;
    // A password typed into the user field.
    let typed = "Correct-Horse-Battery-9";
    assert_error(login_form(&server, typed, "x").await, 401).await;
    assert_error(token_form(&server, typed, "x").await, 401).await;
    assert_error(get_with(&server, "/api/auth/profile/", &basic(typed, "y")).await, 401).await;
    assert_error(login_form(&server, &typed.to_lowercase(), "z").await, 401).await;
    assert_error(login_form(&server, &u.email, "wrong-1").await, 401).await;
    assert_error(
        get_with(&server, "/api/auth/profile/", &basic(&u.username, "wrong-2")).await,
        401,
    )
    .await;
    assert_error(token_form(&server, &u.email, "wrong-3").await, 401).await;

    // One record per identity so far (the first failure), the rest counted in memory.
    let records = audit(&server, "user_login_failed");
    assert_eq!(records.len(), 2, "{records:?}");
    let unknown = &records[0];
    assert_eq!(unknown.detail("login"), "unknown");
    assert_eq!(unknown.detail("count"), 1);
    assert_eq!(unknown.detail("login_hash").as_str().unwrap().len(), 12);
    assert_eq!(unknown.target_id, "");
    let known = &records[1];
    assert_eq!(known.detail("login"), u.email.as_str());
    assert_eq!(known.target_id, u.id.to_string());
    for r in &records {
        assert!(!r.details.to_string().to_lowercase().contains(&typed.to_lowercase()));
    }

    // Shutdown writes what was still counted: nothing is lost.
    let server = server.restart().await;
    let records = audit(&server, "user_login_failed");
    assert_eq!(records.len(), 4, "{records:?}");
    let total = |r: &dyn Fn(&AuditRecord) -> bool| -> u64 {
        records.iter().filter(|x| r(x)).map(|x| x.detail("count").as_u64().unwrap()).sum()
    };
    assert_eq!(total(&|r| r.detail("login") == "unknown"), 4);
    assert_eq!(total(&|r| r.target_id == u.id.to_string()), 3);
    let hashes: std::collections::BTreeSet<String> = records
        .iter()
        .filter_map(|r| r.detail("login_hash").as_str().map(str::to_string))
        .collect();
    assert_eq!(hashes.len(), 1, "one unknown name, one hash");
    assert!(!crate::logs::found_in_files(server.data_dir(), typed.to_lowercase().as_bytes()));
}

// ---- M5 ------------------------------------------------------------------------------------

#[tokio::test]
async fn m5_ipv6_addresses_of_one_64_share_a_budget() {
    let server = TestServer::start_with(&[
        ("GATEHOUSE_RATE_LIMIT_ENABLED", "true"),
        ("GATEHOUSE_RATE_LIMIT_AUTH_PER_MINUTE", "2"),
        ("GATEHOUSE_SERVER_TRUSTED_PROXIES", "127.0.0.1/32"),
    ])
    .await;
    fresh_minute().await;
    let attempt = |from: &'static str| {
        server
            .client
            .post(server.url("/api/auth/login/"))
            .header("x-forwarded-for", from)
            .json(&json!({"email": "nobody@example.com", "password": "whatever-pw"}))
            .send()
    };
    assert_eq!(attempt("2001:db8:1:2::1").await.unwrap().status(), 401);
    assert_eq!(attempt("2001:db8:1:2::2").await.unwrap().status(), 401);
    // Any other address of the same /64 is the same caller.
    assert_error(attempt("2001:db8:1:2:ffff:ffff:ffff:ffff").await.unwrap(), 429).await;
    assert_eq!(attempt("2001:db8:1:3::1").await.unwrap().status(), 401);
}

// ---- L1 ------------------------------------------------------------------------------------

#[tokio::test]
async fn l1_a_forged_first_forwarded_for_line_does_not_pass_an_allow_list() {
    let server =
        TestServer::start_with(&[("GATEHOUSE_SERVER_TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    let u = register(&server, "xff").await;
    let resp = server
        .client
        .post(server.url("/api/api-keys/"))
        .header("authorization", auth(&u.token))
        .json(&json!({"name": "office only", "ip_allowlist": ["203.0.113.0/24"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let key = resp.json::<Value>().await.unwrap()["key"].as_str().unwrap().to_string();
    let call = |lines: &'static [&'static str]| {
        let mut b = server
            .client
            .get(server.url("/api/auth/profile/"))
            .header("authorization", format!("Api-Key {key}"));
        for l in lines {
            b = b.header("x-forwarded-for", *l);
        }
        b.send()
    };
    // Through the proxy from inside the office.
    assert_eq!(call(&["203.0.113.5"]).await.unwrap().status(), 200);
    // From outside, with a forged first line; the proxy appended the real address on its own.
    assert_error(call(&["203.0.113.5", "198.51.100.7"]).await.unwrap(), 403).await;
}

// ---- L2 ------------------------------------------------------------------------------------

#[tokio::test]
async fn l2_double_slashes_do_not_escape_the_login_throttle() {
    let server = TestServer::start_with(&[
        ("GATEHOUSE_RATE_LIMIT_ENABLED", "true"),
        ("GATEHOUSE_RATE_LIMIT_AUTH_PER_MINUTE", "2"),
    ])
    .await;
    fresh_minute().await;
    let mut statuses = Vec::new();
    for path in ["//api/auth/login/", "/api//auth///login", "//api/auth/token//", "/api/auth/login"]
    {
        let resp = server
            .client
            .post(format!("{}{path}", server.base))
            .json(&json!({"email": "nobody@example.com", "password": "whatever-pw"}))
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 429, 429]);
}

// ---- L3 ------------------------------------------------------------------------------------

fn token_row(server: &TestServer, secret: &str) -> gatehouse::domain::credentials::LoginToken {
    let digest = gatehouse::auth::digest_of(secret);
    state(server)
        .store
        .read(|tx| -> Result<_, Err> {
            let id = tx.lookup(TOKENS_BY_DIGEST, &digest)?.expect("token stored");
            Ok(tx.get(TOKENS, id)?.expect("token row"))
        })
        .unwrap()
}

async fn set_token_expiry(server: &TestServer, id: u64, expires_at: Option<i64>) {
    state(server)
        .store
        .write(move |tx| -> Result<(), Err> {
            let mut row = tx.get(TOKENS, id)?.expect("token row");
            row.expires_at = expires_at;
            tx.put(TOKENS, id, &row)?;
            Ok(())
        })
        .await
        .unwrap();
    state(server).credentials.invalidate();
}

#[tokio::test]
async fn l3_login_tokens_expire_and_expired_credentials_are_swept() {
    let server = TestServer::start_with(&[("GATEHOUSE_AUTH_TOKEN_HOURS", "48")]).await;
    let u = register(&server, "expiry").await;
    let now = gatehouse::clock::unix_now();
    let (body, _) = login(&server, &u).await;
    let token = body["token"].as_str().unwrap().to_string();
    let access = body["access"].as_str().unwrap().to_string();
    for t in [&token, &u.token] {
        let row = token_row(&server, t);
        let at = row.expires_at.expect("login tokens expire");
        assert!((at - (now + 48 * 3600)).abs() <= 5, "expiry {at}");
    }
    assert_eq!(get_with(&server, "/api/auth/profile/", &auth(&token)).await.status(), 200);

    // Past its expiry: refused, then swept.
    let expired = token_row(&server, &token).id;
    set_token_expiry(&server, expired, Some(now - 1)).await;
    assert_error(get_with(&server, "/api/auth/profile/", &auth(&token)).await, 401).await;
    // A token stored before tokens expired gets a full lifetime from the sweep.
    let legacy = token_row(&server, &u.token).id;
    set_token_expiry(&server, legacy, None).await;
    // A logged-out access JWT is deny-listed until its expiry.
    let resp = server
        .client
        .post(server.url("/api/auth/logout/"))
        .header("authorization", format!("Bearer {access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let denied = || {
        state(&server)
            .store
            .read(|tx| {
                use gatehouse::store::RangeReader as _;
                tx.lookup_entries(JWT_DENYLIST, None, 100)
            })
            .unwrap()
    };
    let entries = denied();
    assert_eq!(entries.len(), 1);
    let jti = entries[0].0.clone();
    state(&server)
        .store
        .write(move |tx| -> Result<(), Err> { Ok(tx.set_lookup(JWT_DENYLIST, &jti, 1)?) })
        .await
        .unwrap();

    let swept =
        gatehouse::auth::sweep::sweep_credentials(&state(&server).store, 48 * 3600).await.unwrap();
    assert_eq!((swept.tokens, swept.denied_jwts), (1, 1));
    let gone = gatehouse::auth::digest_of(&token);
    assert_eq!(state(&server).store.read(|tx| tx.lookup(TOKENS_BY_DIGEST, &gone)).unwrap(), None);
    assert!(state(&server).store.read(|tx| tx.get(TOKENS, expired)).unwrap().is_none());
    assert!(denied().is_empty());
    let legacy_row = token_row(&server, &u.token);
    let at = legacy_row.expires_at.expect("given an expiry");
    assert!((at - (gatehouse::clock::unix_now() + 48 * 3600)).abs() <= 5);
    assert_eq!(get_with(&server, "/api/auth/profile/", &auth(&u.token)).await.status(), 200);
}

#[tokio::test]
async fn l3_token_hours_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["0", "87601"] {
        let env = crate::harness::env_map(&[("GATEHOUSE_AUTH_TOKEN_HOURS", bad)]);
        let err = TestServer::boot(dir.path(), &env, None).await.err().expect("started");
        assert!(err.to_string().contains("auth.token_hours"), "{err}");
    }
}

// ---- L4 ------------------------------------------------------------------------------------

#[tokio::test]
async fn l4_wrong_old_passwords_count_in_the_lockout_and_are_audited() {
    let server = TestServer::start_with(&[("GATEHOUSE_AUTH_LOCKOUT_FAILURES", "3")]).await;
    let u = register(&server, "pwchange").await;
    let change = |old: String| {
        server
            .client
            .post(server.url("/api/auth/password/change/"))
            .header("authorization", auth(&u.token))
            .json(&json!({"old_password": old, "new_password": "a-brand-new-password"}))
            .send()
    };
    for i in 0..3 {
        assert_error(change(format!("guess-{i}")).await.unwrap(), 400).await;
    }
    // Locked: the right old password is refused too, and so is a password login.
    let resp = change(u.password.clone()).await.unwrap();
    assert!(resp.headers().get("retry-after").is_some());
    assert_error(resp, 429).await;
    assert_error(login_form(&server, &u.email, &u.password).await, 429).await;
    let records = audit(&server, "password_change_failed");
    assert_eq!(records.len(), 1, "aggregated: {records:?}");
    assert_eq!(records[0].detail("count"), 1);
    assert_eq!(records[0].target_id, u.id.to_string());
    assert!(!records[0].details.to_string().contains("guess-"));
    let server = server.restart().await;
    let records = audit(&server, "password_change_failed");
    let total: u64 = records.iter().map(|r| r.detail("count").as_u64().unwrap()).sum();
    assert_eq!(total, 3);
}

// ---- L5 ------------------------------------------------------------------------------------

async fn refresh(server: &TestServer, token: &str) -> reqwest::Response {
    server
        .client
        .post(server.url("/api/auth/token/refresh/"))
        .json(&json!({"refresh": token}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn l5_reusing_a_rotated_refresh_token_revokes_its_family() {
    let server = TestServer::start().await;
    let u = register(&server, "refresh").await;
    let (first, _) = login(&server, &u).await;
    let (other, _) = login(&server, &u).await;
    let r0 = first["refresh"].as_str().unwrap().to_string();
    let resp = refresh(&server, &r0).await;
    assert_eq!(resp.status(), 200);
    let r1 = resp.json::<Value>().await.unwrap()["refresh"].as_str().unwrap().to_string();
    let resp = refresh(&server, &r1).await;
    assert_eq!(resp.status(), 200);
    let r2 = resp.json::<Value>().await.unwrap()["refresh"].as_str().unwrap().to_string();
    // The thief replays the token it stole before the owner used it.
    assert_error(refresh(&server, &r0).await, 401).await;
    // The whole family is gone, the latest token included…
    assert_error(refresh(&server, &r2).await, 401).await;
    let resp = server
        .client
        .post(server.url("/api/auth/token/verify/"))
        .json(&json!({"token": r1}))
        .send()
        .await
        .unwrap();
    assert_error(resp, 401).await;
    // …while another login's family is untouched.
    let s0 = other["refresh"].as_str().unwrap();
    assert_eq!(refresh(&server, s0).await.status(), 200);
    assert_eq!(audit(&server, "refresh_token_reused").len(), 1);
}

// ---- L7 ------------------------------------------------------------------------------------

#[tokio::test]
async fn l7_cookie_writes_must_come_from_this_origin() {
    let server = TestServer::start().await;
    let u = register(&server, "csrf").await;
    let (_, cookie) = login(&server, &u).await;
    let patch = |extra: &'static [(&'static str, &'static str)], origin: Option<String>| {
        let mut b = server
            .client
            .patch(server.url("/api/auth/profile/"))
            .header("cookie", &cookie)
            .json(&json!({"first_name": "Changed"}));
        for (k, v) in extra {
            b = b.header(*k, *v);
        }
        if let Some(o) = origin {
            b = b.header("origin", o);
        }
        b.send()
    };
    // A form posted from a sibling site, or a client that says nothing.
    for (extra, origin) in [
        (&[][..], None),
        (&[][..], Some("https://evil.example".to_string())),
        (&[][..], Some(format!("http://{}", server.base.trim_start_matches("https://")))),
        (&[("sec-fetch-site", "same-site")][..], None),
        (&[("sec-fetch-site", "cross-site")][..], Some("https://evil.example".into())),
    ] {
        let e = assert_error(patch(extra, origin).await.unwrap(), 403).await;
        assert!(e["error"].as_str().unwrap().contains("origin"), "{e}");
    }
    // From the console's own pages.
    assert_eq!(patch(&[], Some(server.base.clone())).await.unwrap().status(), 200);
    let same = patch(&[("sec-fetch-site", "same-origin")], None).await.unwrap();
    assert_eq!(same.status(), 200);
    // Reads with the cookie, and header credentials, need no origin.
    let resp = server.client.get(server.url("/api/auth/profile/")).header("cookie", &cookie).send();
    assert_eq!(resp.await.unwrap().status(), 200);
    let resp = server
        .client
        .patch(server.url("/api/auth/profile/"))
        .header("authorization", auth(&u.token))
        .json(&json!({"first_name": "Again"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

// ---- L10 -----------------------------------------------------------------------------------

/// Sends the head of a chunked upload and one chunk, never the end, and returns the status
/// line the server answers with (if it answers within five seconds).
async fn unfinished_upload(server: &TestServer, authorization: Option<&str>) -> Option<String> {
    use rustls::pki_types::ServerName;
    let addr = server.running.as_ref().unwrap().local_addr;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connector = tls_connector(&server.ca_pem);
    let mut tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    let auth_line = authorization.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    let head = format!(
        "POST /api/environments/1/import/ HTTP/1.1\r\nHost: localhost\r\n{auth_line}\
         Content-Type: multipart/form-data; boundary=XyZ\r\nTransfer-Encoding: chunked\r\n\r\n\
         400\r\n{}\r\n",
        "x".repeat(0x400)
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.flush().await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf)).await.ok()?.ok()?;
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    text.lines().next().map(str::to_string)
}

#[tokio::test]
async fn l10_uploads_are_refused_before_their_body_is_read() {
    let server = TestServer::start().await;
    let status = unfinished_upload(&server, None).await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 401 Unauthorized"), "anonymous");
    let bad = format!("Token {}", "d".repeat(40));
    let status = unfinished_upload(&server, Some(&bad)).await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 401 Unauthorized"), "bad token");
    // The same anonymous refusal as any protected route, in the error format.
    let resp = server.client.post(server.url("/api/environments/1/import/")).send().await.unwrap();
    let e = assert_error(resp, 401).await;
    assert_eq!(e["error"], "Authentication credentials were not provided.");
    assert!(server
        .client
        .get(server.url("/api/projects/"))
        .send()
        .await
        .unwrap()
        .headers()
        .contains_key("www-authenticate"));
    // Public routes still read their bodies.
    assert_error(login_form(&server, "nobody@example.com", "whatever-pw").await, 401).await;

    // An authenticated oversize body is still refused (413) and still logged.
    let admin = login_admin(&server).await;
    let resp = server
        .client
        .post(server.url("/api/projects/"))
        .header("authorization", auth(&admin.token))
        .header("content-type", "application/json")
        .header("x-request-id", "l10-oversize-0001")
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_error(resp, 413).await;
    let page = crate::logs::list(&server, &admin, "page_size=200").await;
    let logged = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["request_id"] == "l10-oversize-0001")
        .cloned()
        .expect("413 logged");
    assert_eq!(logged["http_status"], 413);
    assert_eq!(logged["user_id"], admin.id);
}

// ---- L13 -----------------------------------------------------------------------------------

#[tokio::test]
async fn l13_an_unparsable_stored_allow_list_refuses_the_key() {
    let server = TestServer::start().await;
    let u = register(&server, "allowlist").await;
    let resp = server
        .client
        .post(server.url("/api/api-keys/"))
        .header("authorization", auth(&u.token))
        .json(&json!({"name": "local", "ip_allowlist": ["127.0.0.1"]}))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    let (id, key) = (body["id"].as_u64().unwrap(), body["key"].as_str().unwrap().to_string());
    let key = format!("Api-Key {key}");
    assert_eq!(get_with(&server, "/api/auth/profile/", &key).await.status(), 200);
    // The stored list is damaged (hand-edited, or written by a future version).
    state(&server)
        .store
        .write(move |tx| -> Result<(), Err> {
            use gatehouse::domain::credentials::tables::API_KEYS;
            let mut k = tx.get(API_KEYS, id)?.expect("key row");
            k.ip_allowlist = vec!["127.0.0.1".into(), "not an address".into()];
            tx.put(API_KEYS, id, &k)?;
            Ok(())
        })
        .await
        .unwrap();
    state(&server).credentials.invalidate();
    assert_error(get_with(&server, "/api/auth/profile/", &key).await, 403).await;
}

// ---- L17 -----------------------------------------------------------------------------------

#[tokio::test]
async fn l17_a_cached_secret_resolves_only_under_its_own_scheme() {
    let server = TestServer::start().await;
    let u = register(&server, "cachekind").await;
    let (_, cookie) = login(&server, &u).await;
    let secret = cookie.split_once('=').unwrap().1.to_string();
    assert_eq!(secret.len(), 64);
    let resp = server.client.get(server.url("/api/auth/profile/")).header("cookie", &cookie).send();
    assert_eq!(resp.await.unwrap().status(), 200);
    // The session secret is now cached; presented as an API key it is still no API key.
    assert_error(get_with(&server, "/api/auth/profile/", &format!("Api-Key {secret}")).await, 401)
        .await;
    assert_error(get_with(&server, "/api/auth/profile/", &format!("Bearer {secret}")).await, 401)
        .await;
}

// ---- M6 (part) -----------------------------------------------------------------------------

#[tokio::test]
async fn m6_deployment_paths_are_authenticated_and_limited() {
    // Deployment routes take their own key, not an account credential; a refused key spends
    // the address's auth budget, and an address over it is refused before any lookup.
    let server = TestServer::start_with(&[("GATEHOUSE_RATE_LIMIT_ENABLED", "true")]).await;
    let resp = get_with(&server, "/deployment/x/run", &format!("Token {}", "e".repeat(40))).await;
    assert!(resp.headers().contains_key("x-ratelimit-remaining"));
    assert_error(resp, 401).await;
    let resp = server.get("/deployment/anything").await;
    assert!(resp.headers().contains_key("x-ratelimit-remaining"));
    assert_error(resp, 401).await;
    let key = format!("unst_{}", "A".repeat(43));
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let resp =
            get_with(&server, &format!("/deployment/{key}/status/x/"), &format!("Bearer {key}"))
                .await;
        statuses.push(resp.status().as_u16());
    }
    assert!(statuses.contains(&401) && statuses.last() == Some(&429), "{statuses:?}");
}
