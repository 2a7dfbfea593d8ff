//! TOTP two-factor authentication (issue 18): enrolment, activation, the `otp_required` login
//! and `/api/auth/verify-otp/`, recovery codes, code reuse, lockout, HTTP Basic refusal,
//! disabling, and a real Pegasus-style client (`tests/clients/pegasus_2fa.py`).

use gatehouse::domain::two_factor::{base32, code};
use serde_json::{json, Value};

use super::audit_actions;
use crate::harness::{assert_error, auth, register, TestServer, TestUser};

/// The code of the step `offset` steps from now, for the base32 `secret`.
pub(crate) fn code_at(secret: &str, offset: i64) -> String {
    let raw = base32::decode(secret).unwrap();
    let step = code::step_at(gatehouse::clock::unix_now());
    code::code_at_step(&raw, step.checked_add_signed(offset).unwrap())
}

/// The step of now.
fn now_step() -> u64 {
    code::step_at(gatehouse::clock::unix_now())
}

/// The code of an explicit step: a sequence of checks stays right across a step boundary.
fn code_of(secret: &str, step: u64) -> String {
    code::code_at_step(&base32::decode(secret).unwrap(), step)
}

/// A six-digit code that is none of the codes the server accepts now.
pub(crate) fn wrong_code(secret: &str) -> String {
    let valid: Vec<String> = (-2..=2).map(|o| code_at(secret, o)).collect();
    (0..1_000_000u32).map(|n| format!("{n:06}")).find(|c| !valid.contains(c)).unwrap()
}

/// Sleeps past the next step boundary when fewer than `secs` seconds of this step are left,
/// so a test's codes are computed and checked within one step.
pub(crate) async fn room_for(secs: i64) {
    let into = gatehouse::clock::unix_now().rem_euclid(code::PERIOD);
    if into > code::PERIOD - secs {
        let wait = u64::try_from(code::PERIOD - into + 1).unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    }
}

async fn send(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = server.client.request(method, server.url(path));
    if let Some(t) = token {
        req = req.header("authorization", auth(t));
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

async fn post(
    server: &TestServer,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> reqwest::Response {
    send(server, reqwest::Method::POST, path, token, Some(body)).await
}

async fn status_of(server: &TestServer, u: &TestUser) -> Value {
    let resp =
        send(server, reqwest::Method::GET, "/api/auth/2fa/totp/", Some(&u.token), None).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Enrols and activates TOTP for `u` with the previous step's code (the current one stays
/// usable once); returns the secret and the recovery codes.
async fn enable(server: &TestServer, u: &TestUser) -> (String, Vec<String>) {
    let resp =
        send(server, reqwest::Method::POST, "/api/auth/2fa/totp/", Some(&u.token), None).await;
    assert_eq!(resp.status(), 201);
    let e: Value = resp.json().await.unwrap();
    let secret = e["secret"].as_str().unwrap().to_string();
    let resp = post(
        server,
        "/api/auth/2fa/totp/activate/",
        Some(&u.token),
        json!({"otp": code_at(&secret, -1)}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let a: Value = resp.json().await.unwrap();
    let codes = a["recovery_codes"].as_array().unwrap();
    (secret, codes.iter().map(|c| c.as_str().unwrap().to_string()).collect())
}

async fn login(server: &TestServer, u: &TestUser) -> reqwest::Response {
    post(server, "/api/auth/login/", None, json!({"email": u.email, "password": u.password})).await
}

/// Logs in a 2FA account: the `temp_otp_token`.
async fn temp_token(server: &TestServer, u: &TestUser) -> String {
    let resp = login(server, u).await;
    assert_eq!(resp.status(), 200);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["status"], "otp_required");
    b["temp_otp_token"].as_str().unwrap().to_string()
}

async fn verify(server: &TestServer, temp: &str, otp: &str) -> reqwest::Response {
    post(server, "/api/auth/verify-otp/", None, json!({"temp_otp_token": temp, "otp": otp})).await
}

async fn assert_invalid_otp(resp: reqwest::Response) {
    let e = assert_error(resp, 400).await;
    assert_eq!(e["error"], "Invalid OTP code");
    assert_eq!(e["details"], json!({"status": "invalid_otp", "detail": "Invalid OTP code"}));
}

async fn assert_token_expired(resp: reqwest::Response) {
    let e = assert_error(resp, 401).await;
    assert_eq!(
        e["details"],
        json!({"status": "token_expired", "detail": "Invalid temporary token"})
    );
}

#[tokio::test]
async fn enrol_activate_login_verify_and_no_code_twice() {
    let server = TestServer::start().await;
    let u = register(&server, "totp").await;
    assert_eq!(
        status_of(&server, &u).await,
        json!({"enabled": false, "pending": false, "recovery_codes_left": 0})
    );

    // Enrolment: the secret and its URI, once; not active yet.
    let resp =
        send(&server, reqwest::Method::POST, "/api/auth/2fa/totp/", Some(&u.token), None).await;
    assert_eq!(resp.status(), 201);
    let e: Value = resp.json().await.unwrap();
    let secret = e["secret"].as_str().unwrap().to_string();
    assert_eq!(base32::decode(&secret).unwrap().len(), 20);
    let email = u.email.replace('@', "%40");
    assert_eq!(
        e["otpauth_uri"],
        format!(
            "otpauth://totp/Gatehouse:{email}?secret={secret}&issuer=Gatehouse&algorithm=SHA1&digits=6&period=30"
        )
    );
    assert_eq!(e["enabled"], false);
    assert_eq!(status_of(&server, &u).await["pending"], true);
    let b: Value = login(&server, &u).await.json().await.unwrap();
    assert_eq!(b["status"], "success", "not active before activation");

    // Activation: bad bodies, a wrong code, then the right one.
    let activate = "/api/auth/2fa/totp/activate/";
    assert_error(post(&server, activate, Some(&u.token), json!({"otp": 123456})).await, 400).await;
    assert_error(post(&server, activate, Some(&u.token), json!({})).await, 400).await;
    let resp = server
        .client
        .post(server.url(activate))
        .header("authorization", auth(&u.token))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_error(resp, 400).await;
    assert_invalid_otp(
        post(&server, activate, Some(&u.token), json!({"otp": wrong_code(&secret)})).await,
    )
    .await;
    assert_eq!(status_of(&server, &u).await["enabled"], false);
    room_for(20).await;
    let base = now_step();
    let resp =
        post(&server, activate, Some(&u.token), json!({"otp": code_of(&secret, base - 1)})).await;
    assert_eq!(resp.status(), 200);
    let a: Value = resp.json().await.unwrap();
    let codes = a["recovery_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    let distinct: std::collections::BTreeSet<_> =
        codes.iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(distinct.len(), 10);
    assert_eq!(
        status_of(&server, &u).await,
        json!({"enabled": true, "pending": false, "recovery_codes_left": 10})
    );
    // Activated: enrolling or activating again is a conflict.
    let resp =
        send(&server, reqwest::Method::POST, "/api/auth/2fa/totp/", Some(&u.token), None).await;
    assert_error(resp, 409).await;
    assert_error(
        post(&server, activate, Some(&u.token), json!({"otp": code_at(&secret, 0)})).await,
        409,
    )
    .await;

    // Login: otp_required, nothing else.
    let resp = login(&server, &u).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("set-cookie").is_none());
    let b: Value = resp.json().await.unwrap();
    let keys: Vec<&String> = b.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["detail", "status", "temp_otp_token"]);
    assert_eq!(b["detail"], "OTP required for 2FA");
    let temp = b["temp_otp_token"].as_str().unwrap().to_string();
    assert_eq!(uuid::Uuid::parse_str(&temp).unwrap().get_version_num(), 4);

    // The activation's code is spent; a wrong one is refused; the current one logs in.
    assert_invalid_otp(verify(&server, &temp, &code_of(&secret, base - 1)).await).await;
    assert_invalid_otp(verify(&server, &temp, &wrong_code(&secret)).await).await;
    let current = code_of(&secret, base);
    let resp = verify(&server, &temp, &current).await;
    assert_eq!(resp.status(), 200);
    assert!(resp
        .headers()
        .get("set-cookie")
        .is_some_and(|c| c.to_str().unwrap().starts_with("gatehouse_session=")));
    let pair: Value = resp.json().await.unwrap();
    assert_eq!(pair["user"]["email"], u.email.as_str());
    assert_eq!(pair["user"]["id"], u.id);
    assert!(pair["user"]["get_display_name"].is_string());
    for field in ["access", "refresh", "token"] {
        assert!(pair[field].as_str().is_some_and(|s| !s.is_empty()), "no {field}");
    }
    let me = server
        .client
        .get(server.url("/api/auth/user/"))
        .bearer_auth(pair["access"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let resp =
        send(&server, reqwest::Method::GET, "/api/auth/profile/", pair["token"].as_str(), None)
            .await;
    assert_eq!(resp.status(), 200);

    // The temporary token is single-use; the code cannot be used twice either.
    assert_token_expired(verify(&server, &temp, &current).await).await;
    let temp2 = temp_token(&server, &u).await;
    assert_ne!(temp, temp2);
    assert_invalid_otp(verify(&server, &temp2, &current).await).await;
    assert_eq!(verify(&server, &temp2, &code_of(&secret, base + 1)).await.status(), 200);

    // Audited, without the secret or any code.
    let actions = audit_actions(&server);
    for a in ["totp_enrolment_started", "totp_enabled", "user_otp_failed"] {
        assert!(actions.iter().any(|x| x == a), "no {a} in {actions:?}");
    }
    let state = &server.running.as_ref().unwrap().state;
    let dump = {
        use gatehouse::store::Reader as _;
        let all = state
            .store
            .read(|tx| {
                tx.scan(gatehouse::domain::audit::tables::AUDIT, 0..=u64::MAX, usize::MAX, false)
            })
            .unwrap();
        format!("{all:?}")
    };
    assert!(!dump.contains(&secret));
    assert!(!dump.contains(&current));
    assert!(!dump.contains(codes[0].as_str().unwrap()));
}

#[tokio::test]
async fn bad_credentials_and_bad_temp_tokens() {
    let server = TestServer::start().await;
    let u = register(&server, "badotp").await;
    // dj-rest-auth's refusal inside the error format; KeyNest's status and message.
    let resp = post(
        &server,
        "/api/auth/login/",
        None,
        json!({"email": u.email, "password": "wrong-password"}),
    )
    .await;
    let e = assert_error(resp, 401).await;
    assert_eq!(e["error"], "Invalid credentials");
    assert_eq!(
        e["details"],
        json!({"non_field_errors": ["Unable to log in with provided credentials."]})
    );

    let (secret, _) = enable(&server, &u).await;
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_token_expired(verify(&server, &unknown, &code_at(&secret, 0)).await).await;
    assert_token_expired(verify(&server, "not-a-token", "123456").await).await;
    assert_token_expired(verify(&server, "", "").await).await;
    assert_error(post(&server, "/api/auth/verify-otp/", None, json!({"otp": "123456"})).await, 400)
        .await;
    assert_error(
        post(&server, "/api/auth/verify-otp/", None, json!({"temp_otp_token": unknown})).await,
        400,
    )
    .await;
    assert_error(
        post(
            &server,
            "/api/auth/verify-otp/",
            None,
            json!({"temp_otp_token": ["x"], "otp": "123456"}),
        )
        .await,
        400,
    )
    .await;
    let resp = server
        .client
        .post(server.url("/api/auth/verify-otp/"))
        .header("content-type", "application/json")
        .body("{\"temp_otp_token\":")
        .send()
        .await
        .unwrap();
    assert_error(resp, 400).await;
    // Another user's token does not help: temporary tokens are not credentials.
    let resp = send(&server, reqwest::Method::GET, "/api/auth/2fa/totp/", None, None).await;
    assert_error(resp, 401).await;
    let resp = server
        .client
        .get(server.url("/api/auth/2fa/totp/"))
        .header("authorization", format!("Token {}", temp_token(&server, &u).await))
        .send()
        .await
        .unwrap();
    assert_error(resp, 401).await;
}

#[tokio::test]
async fn recovery_code_works_once() {
    let server = TestServer::start().await;
    let u = register(&server, "recovery").await;
    let (_, codes) = enable(&server, &u).await;
    let temp = temp_token(&server, &u).await;
    assert_eq!(verify(&server, &temp, &codes[0]).await.status(), 200);
    assert_eq!(status_of(&server, &u).await["recovery_codes_left"], 9);
    assert!(audit_actions(&server).iter().any(|a| a == "totp_recovery_code_used"));
    let temp = temp_token(&server, &u).await;
    assert_invalid_otp(verify(&server, &temp, &codes[0]).await).await;
    // Typed in upper case without the dash, another code still works (once).
    let typed = codes[1].replace('-', "").to_uppercase();
    assert_eq!(verify(&server, &temp, &typed).await.status(), 200);
    let temp = temp_token(&server, &u).await;
    assert_invalid_otp(verify(&server, &temp, &codes[1]).await).await;
    assert_eq!(status_of(&server, &u).await["recovery_codes_left"], 8);
}

#[tokio::test]
async fn basic_and_password_only_tokens_are_refused_existing_tokens_keep_working() {
    let server = TestServer::start().await;
    let u = register(&server, "basic2fa").await;
    let other = register(&server, "basicplain").await;
    let basic = |who: &TestUser, path: &str| {
        server.client.get(server.url(path)).basic_auth(&who.email, Some(&who.password)).send()
    };
    // Warm the Basic cache before 2FA goes on: it must not outlive the activation.
    assert_eq!(basic(&u, "/api/auth/profile/").await.unwrap().status(), 200);
    let key: Value =
        post(&server, "/api/api-keys/", Some(&u.token), json!({"name": "ci", "key_type": "cli"}))
            .await
            .json()
            .await
            .unwrap();
    let key = key["key"].as_str().unwrap().to_string();
    enable(&server, &u).await;

    let e = assert_error(basic(&u, "/api/auth/profile/").await.unwrap(), 403).await;
    assert!(e["error"].as_str().unwrap().contains("two-factor"), "{e}");
    let resp = server
        .client
        .post(server.url("/api/auth/login/"))
        .basic_auth(&u.email, Some(&u.password))
        .send()
        .await
        .unwrap();
    assert_error(resp, 403).await;
    // `/api/auth/token/` hands out JWTs on a password alone: refused too.
    let resp =
        post(&server, "/api/auth/token/", None, json!({"email": u.email, "password": u.password}))
            .await;
    let e = assert_error(resp, 403).await;
    assert!(e["error"].as_str().unwrap().contains("two-factor"), "{e}");
    // A wrong Basic password is still just wrong.
    let resp = server
        .client
        .get(server.url("/api/auth/profile/"))
        .basic_auth(&u.email, Some("nope-nope"))
        .send()
        .await
        .unwrap();
    assert_error(resp, 401).await;
    // Tokens and keys issued before keep working; other accounts are untouched.
    let resp =
        send(&server, reqwest::Method::GET, "/api/auth/profile/", Some(&u.token), None).await;
    assert_eq!(resp.status(), 200);
    let resp = server
        .client
        .get(server.url("/api/auth/profile/"))
        .header("authorization", format!("Api-Key {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(basic(&other, "/api/auth/profile/").await.unwrap().status(), 200);
    // An API key may not enrol or disable (a full session only).
    let resp = server
        .client
        .delete(server.url("/api/auth/2fa/totp/"))
        .header("authorization", format!("Api-Key {key}"))
        .json(&json!({"otp": "123456"}))
        .send()
        .await
        .unwrap();
    assert_error(resp, 403).await;
    let resp = server
        .client
        .post(server.url("/api/auth/2fa/totp/"))
        .header("authorization", format!("Api-Key {key}"))
        .send()
        .await
        .unwrap();
    assert_error(resp, 403).await;
}

#[tokio::test]
async fn lockout_counts_otp_failures() {
    let server = TestServer::start_with(&[("GATEHOUSE_AUTH_LOCKOUT_FAILURES", "3")]).await;
    let u = register(&server, "lockotp").await;
    let (secret, _) = enable(&server, &u).await;
    let temp = temp_token(&server, &u).await;
    let bad = wrong_code(&secret);
    for _ in 0..3 {
        assert_invalid_otp(verify(&server, &temp, &bad).await).await;
    }
    // Locked: the right code and the right password are both refused now.
    let e = assert_error(verify(&server, &temp, &code_at(&secret, 0)).await, 429).await;
    assert!(e["details"].as_str().unwrap().contains("Too many failed login attempts"));
    assert_error(login(&server, &u).await, 429).await;
    assert!(audit_actions(&server).iter().any(|a| a == "user_otp_failed"));
}

#[tokio::test]
async fn disable_with_a_code_or_a_recovery_code() {
    let server = TestServer::start().await;
    let u = register(&server, "disable").await;
    let other = register(&server, "bystander").await;
    // Not on: nothing to disable.
    assert_error(delete(&server, &u, Some(json!({"otp": "123456"}))).await, 400).await;
    let (secret, codes) = enable(&server, &u).await;
    // No body at all: poem's 415 (no JSON content type), in the error format.
    assert_error(delete(&server, &u, None).await, 415).await;
    assert_error(delete(&server, &u, Some(json!({"otp": false}))).await, 400).await;
    assert_invalid_otp(delete(&server, &u, Some(json!({"otp": wrong_code(&secret)}))).await).await;
    // Another account's code or session does not touch this one.
    assert_error(delete(&server, &other, Some(json!({"otp": codes[0]}))).await, 400).await;
    assert_eq!(status_of(&server, &u).await["enabled"], true);
    let resp = delete(&server, &u, Some(json!({"otp": codes[0]}))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["enabled"], false);
    assert_eq!(status_of(&server, &u).await["enabled"], false);
    assert!(audit_actions(&server).iter().any(|a| a == "totp_disabled"));
    // Off again: logins answer in full and Basic works.
    let b: Value = login(&server, &u).await.json().await.unwrap();
    assert_eq!(b["status"], "success");
    let resp = server
        .client
        .get(server.url("/api/auth/profile/"))
        .basic_auth(&u.email, Some(&u.password))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Enrolling again gives a new secret, and a current code disables too.
    room_for(10).await;
    let (secret2, _) = enable(&server, &u).await;
    assert_ne!(secret, secret2);
    assert_eq!(delete(&server, &u, Some(json!({"otp": code_at(&secret2, 0)}))).await.status(), 200);
}

async fn delete(server: &TestServer, who: &TestUser, body: Option<Value>) -> reqwest::Response {
    send(server, reqwest::Method::DELETE, "/api/auth/2fa/totp/", Some(&who.token), body).await
}

/// A Pegasus-style client written against pyotp and requests, run for real.
#[tokio::test]
async fn pegasus_client_flow_in_python() {
    let probe =
        std::process::Command::new("python3").args(["-c", "import pyotp, requests"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        // CI installs them: there a missing tool is a failure, not a skip.
        assert_ne!(
            std::env::var("GATEHOUSE_CI").as_deref(),
            Ok("1"),
            "pyotp and requests must be installed under GATEHOUSE_CI=1"
        );
        eprintln!(
            "skip: python3 with pyotp and requests is not installed (pip install pyotp requests)"
        );
        return;
    }
    let server = TestServer::start().await;
    let ca = server.data_dir().join("client-ca.pem");
    std::fs::write(&ca, &server.ca_pem).unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/pegasus_2fa.py");
    let url = server.url("");
    // Blocking: the server answers on this runtime's other threads meanwhile.
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(script)
            .arg("--url")
            .arg(url)
            .arg("--cacert")
            .arg(&ca)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        out.status.success(),
        "pegasus_2fa.py failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The TOTP sealing key is a master-sealed meta row: master key rotation re-seals it, and
/// codes keep working under the new master key.
#[tokio::test]
async fn totp_survives_master_key_rotation() {
    use std::os::unix::fs::PermissionsExt as _;
    let mut server = TestServer::start().await;
    let u = register(&server, "rotated2fa").await;
    room_for(10).await;
    let (secret, _) = enable(&server, &u).await;
    let (dir, env) = (std::sync::Arc::clone(&server.dir), server.env.clone());
    server.stop().await;
    drop(server);

    let keys = tempfile::tempdir().unwrap();
    let new_key = keys.path().join("new.key");
    std::fs::write(&new_key, "cd".repeat(32)).unwrap();
    std::fs::set_permissions(&new_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GATEHOUSE_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(["admin", "rotate-master-key", "--data-dir"]).arg(dir.path());
    let out = cmd.arg("--new-key-file").arg(&new_key).output().unwrap();
    assert!(out.status.success(), "rotation failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("totp_key"));

    let server = TestServer::start_in(dir, env).await;
    let temp = temp_token(&server, &u).await;
    assert_eq!(verify(&server, &temp, &code_of(&secret, now_step())).await.status(), 200);
}

/// Guessing codes is a credential attempt: `verify-otp` spends the address's auth budget like
/// login does, on top of the account's lockout.
#[tokio::test]
async fn verify_otp_spends_the_auth_budget() {
    let server = TestServer::start_with(&[
        ("GATEHOUSE_RATE_LIMIT_ENABLED", "true"),
        ("GATEHOUSE_RATE_LIMIT_AUTH_PER_MINUTE", "3"),
    ])
    .await;
    crate::harness::fresh_minute().await;
    let unknown = uuid::Uuid::new_v4().to_string();
    for _ in 0..3 {
        assert_token_expired(verify(&server, &unknown, "123456").await).await;
    }
    let e = assert_error(verify(&server, &unknown, "123456").await, 429).await;
    assert_eq!(e["code"], "RATE_LIMITED");
}
