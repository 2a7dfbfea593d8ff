//! Registration, login (JSON, username, Basic), session cookie, logout, profile, bootstrap.

use serde_json::json;

use super::audit_actions;
use crate::harness::{assert_error, auth, login_admin, register, TestServer};

#[tokio::test]
async fn register_returns_token_user_and_personal_organization() {
    let server = TestServer::start().await;
    let resp = server
        .client
        .post(server.url("/api/auth/register/"))
        .json(&json!({
            "username": "john_doe", "email": "John@Example.com", "password": "securepassword123",
            "confirm_password": "securepassword123", "first_name": "John", "last_name": "Doe",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["message"], "User registered successfully");
    let token = body["token"].as_str().unwrap();
    assert_eq!(token.len(), 40);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(body["user"]["email"], "john@example.com");
    assert_eq!(body["user"]["full_name"], "John Doe");
    assert!(body["user"]["date_joined"].as_str().unwrap().ends_with('Z'));
    assert_eq!(body["organization"]["name"], "John's Organization");

    let resp = server
        .client
        .get(server.url("/api/auth/profile/"))
        .header("authorization", auth(token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let profile: serde_json::Value = resp.json().await.unwrap();
    for field in [
        "id",
        "username",
        "email",
        "first_name",
        "last_name",
        "full_name",
        "date_joined",
        "last_login",
        "is_active",
    ] {
        assert!(profile.get(field).is_some(), "profile lacks {field}");
    }
    assert_eq!(profile["username"], "john_doe");
    let orgs: serde_json::Value = server
        .client
        .get(server.url("/api/organizations/"))
        .header("authorization", auth(token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(orgs["count"], 1);
    assert_eq!(orgs["results"][0]["user_role"], "admin");
    assert_eq!(orgs["results"][0]["member_count"], 1);
    assert!(audit_actions(&server).contains(&"user_registered".to_string()));
}

#[tokio::test]
async fn register_rejects_bad_input() {
    let server = TestServer::start().await;
    let post = |body: serde_json::Value| {
        server.client.post(server.url("/api/auth/register/")).json(&body).send()
    };
    let good = json!({"username": "alice", "email": "alice@example.com",
        "password": "long-enough-pw", "confirm_password": "long-enough-pw"});
    let with = |k: &str, v: serde_json::Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    for (body, field) in [
        (with("email", json!("not-an-email")), "email"),
        (with("username", json!("a b")), "username"),
        (with("password", json!("short")), "password"),
        (with("confirm_password", json!("different-pw-1")), "confirm_password"),
    ] {
        let e = assert_error(post(body).await.unwrap(), 400).await;
        assert!(e["details"].get(field).is_some(), "no {field} error: {e}");
    }
    let same = json!({"username": "bob", "email": "bob@example.com",
        "password": "bob@example.com", "confirm_password": "bob@example.com"});
    let e = assert_error(post(same).await.unwrap(), 400).await;
    assert!(e["details"].get("password").is_some());
    assert_error(post(json!({"username": 5})).await.unwrap(), 400).await;
    let raw = server
        .client
        .post(server.url("/api/auth/register/"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_error(raw, 400).await;

    assert_eq!(post(good.clone()).await.unwrap().status(), 201);
    let e = assert_error(post(with("username", json!("alice2"))).await.unwrap(), 409).await;
    assert!(e["error"].as_str().unwrap().contains("email"));
    let e =
        assert_error(post(with("email", json!("ALICE2@example.com")).clone()).await.unwrap(), 409)
            .await;
    assert!(e["error"].as_str().unwrap().contains("Username"));
}

#[tokio::test]
async fn closed_registration_is_forbidden() {
    let server = TestServer::start_with(&[("GATEHOUSE_AUTH_REGISTRATION", "closed")]).await;
    let resp = server
        .client
        .post(server.url("/api/auth/register/"))
        .json(&json!({"username": "carol", "email": "carol@example.com",
            "password": "long-enough-pw", "confirm_password": "long-enough-pw"}))
        .send()
        .await
        .unwrap();
    assert_error(resp, 403).await;
}

#[tokio::test]
async fn login_by_email_username_or_basic() {
    let server = TestServer::start().await;
    let u = register(&server, "dora").await;
    for body in [
        json!({"email": u.email.to_uppercase(), "password": u.password}),
        json!({"username": u.username, "password": u.password}),
        json!({"email": u.username, "password": u.password}),
    ] {
        let resp =
            server.client.post(server.url("/api/auth/login/")).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{body}");
        let cookie = resp.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
        assert!(cookie.starts_with("gatehouse_session="));
        for attr in ["HttpOnly", "Secure", "SameSite=Strict"] {
            assert!(cookie.contains(attr), "cookie lacks {attr}");
        }
        let b: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(b["message"], "Login successful");
        assert_eq!(b["token"].as_str().unwrap().len(), 40);
        assert_ne!(b["token"], u.token.as_str());
        assert_eq!(b["user"]["id"], u.id);
        assert_eq!(b["organizations"][0]["id"], u.org_id);
        assert_eq!(b["organizations"][0]["role"], "admin");
        assert!(b["organizations"][0]["name"].is_string());
    }
    let resp = server
        .client
        .post(server.url("/api/auth/login/"))
        .basic_auth(&u.email, Some(&u.password))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let b: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(b["user"]["username"], u.username.as_str());
    assert!(b["user"]["last_login"].is_string());

    // Wrong password, unknown account, missing fields.
    crate::harness::fresh_minute().await;
    let resp = server
        .client
        .post(server.url("/api/auth/login/"))
        .json(&json!({"email": u.email, "password": "wrong-password"}))
        .send()
        .await
        .unwrap();
    let e = assert_error(resp, 401).await;
    assert_eq!(e["error"], "Invalid credentials");
    let resp = server
        .client
        .post(server.url("/api/auth/login/"))
        .json(&json!({"email": "nobody@example.com", "password": "whatever-pw"}))
        .send()
        .await
        .unwrap();
    assert_error(resp, 401).await;
    let resp = server
        .client
        .post(server.url("/api/auth/login/"))
        .json(&json!({"password": "whatever-pw"}))
        .send()
        .await
        .unwrap();
    assert_error(resp, 400).await;
    assert_error(server.client.post(server.url("/api/auth/login/")).send().await.unwrap(), 400)
        .await;
    let resp = server
        .client
        .post(server.url("/api/auth/login/"))
        .basic_auth(&u.email, Some("wrong-password"))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("www-authenticate").is_some());
    assert_error(resp, 401).await;
    let actions = audit_actions(&server);
    assert!(actions.contains(&"user_login".to_string()));
    // Two failed forms (wrong password, unknown account) and one failed Basic: one record per
    // identity per minute, so the Basic failure of the same account waits in the count.
    assert_eq!(actions.iter().filter(|a| *a == "user_login_failed").count(), 2);
}

#[tokio::test]
async fn session_cookie_authenticates_and_logout_revokes() {
    let server = TestServer::start().await;
    let u = register(&server, "erin").await;
    let resp = server
        .client
        .post(server.url("/api/auth/login/"))
        .json(&json!({"email": u.email, "password": u.password}))
        .send()
        .await
        .unwrap();
    let cookie = resp.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    let session = cookie.split(';').next().unwrap().to_string();
    let login: serde_json::Value = resp.json().await.unwrap();
    let token = login["token"].as_str().unwrap().to_string();
    let with_cookie =
        || server.client.get(server.url("/api/auth/profile/")).header("cookie", &session);
    assert_eq!(with_cookie().send().await.unwrap().status(), 200);

    // Logout with the token and the cookie: both stop working at once.
    let resp = server
        .client
        .post(server.url("/api/auth/logout/"))
        .header("authorization", auth(&token))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let b: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(b["message"], "Successfully logged out");
    assert_error(with_cookie().send().await.unwrap(), 401).await;
    let resp = server
        .client
        .get(server.url("/api/auth/profile/"))
        .header("authorization", auth(&token))
        .send()
        .await
        .unwrap();
    assert_error(resp, 401).await;
    // The registration token is a different credential and still works.
    let resp = server
        .client
        .get(server.url("/api/auth/profile/"))
        .header("authorization", auth(&u.token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Basic has nothing to log out.
    let resp = server
        .client
        .post(server.url("/api/auth/logout/"))
        .basic_auth(&u.email, Some(&u.password))
        .send()
        .await
        .unwrap();
    assert_error(resp, 400).await;
    assert!(audit_actions(&server).contains(&"user_logout".to_string()));
}

#[tokio::test]
async fn profile_update_and_its_errors() {
    let server = TestServer::start().await;
    let u = register(&server, "fay").await;
    let other = register(&server, "gus").await;
    let patch = |body: serde_json::Value| {
        server
            .client
            .patch(server.url("/api/auth/profile/"))
            .header("authorization", auth(&u.token))
            .json(&body)
            .send()
    };
    let resp = patch(json!({"first_name": "Fay", "last_name": "Smith"})).await.unwrap();
    assert_eq!(resp.status(), 200);
    let b: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(b["full_name"], "Fay Smith");
    assert_error(patch(json!({"email": other.email})).await.unwrap(), 409).await;
    assert_error(patch(json!({"username": other.username.to_uppercase()})).await.unwrap(), 409)
        .await;
    assert_error(patch(json!({"email": "nope"})).await.unwrap(), 400).await;
    assert_error(patch(json!({"first_name": {"a": 7}})).await.unwrap(), 400).await;
    let resp = patch(json!({"email": "fay.new@example.com"})).await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = server
        .client
        .post(server.url("/api/auth/login/"))
        .json(&json!({"email": "fay.new@example.com", "password": u.password}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = server.client.get(server.url("/api/auth/profile/")).send().await.unwrap();
    assert!(resp.headers().get("www-authenticate").is_some());
    assert_error(resp, 401).await;
}

#[tokio::test]
async fn bootstrap_admin_from_environment_is_staff() {
    let server = TestServer::start().await;
    let admin = login_admin(&server).await;
    let resp = server
        .client
        .get(server.url("/api/auth/profile/"))
        .header("authorization", auth(&admin.token))
        .send()
        .await
        .unwrap();
    let b: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(b["email"], "admin@example.com");
    assert_eq!(b["is_staff"], true);
    assert!(!server.data_dir().join("initial-admin-password").exists());
    // A second start does not create another account.
    let server = server.restart().await;
    login_admin(&server).await;
}

#[tokio::test]
async fn bootstrap_admin_with_generated_password() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let mut env = crate::harness::env_map(&[]);
    env.remove("GATEHOUSE_ADMIN_EMAIL");
    env.remove("GATEHOUSE_ADMIN_PASSWORD");
    let server = TestServer::start_in(dir, env).await;
    let path = server.data_dir().join("initial-admin-password");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let password = std::fs::read_to_string(&path).unwrap().trim().to_string();
    assert!(password.len() >= 20);
    let resp = server
        .client
        .post(server.url("/api/auth/login/"))
        .json(&json!({"email": "admin@localhost", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let b: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(b["user"]["is_staff"], true);
}

/// dj-rest-auth's `/api/auth/user/` as Pegasus's SPA uses it: its user fields, PATCH and PUT.
#[tokio::test]
async fn pegasus_user_details_get_put_patch() {
    let server = crate::harness::TestServer::start().await;
    let u = crate::harness::register(&server, "pegasus_user").await;
    let other = crate::harness::register(&server, "pegasus_other").await;
    let call = |method: reqwest::Method, body: Option<serde_json::Value>, token: Option<&str>| {
        let mut rb = server.client.request(method, server.url("/api/auth/user/"));
        if let Some(t) = token {
            rb = rb.header("authorization", crate::harness::auth(t));
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        rb.send()
    };
    let me: serde_json::Value =
        call(reqwest::Method::GET, None, Some(&u.token)).await.unwrap().json().await.unwrap();
    for field in ["id", "first_name", "last_name", "email", "avatar_url", "get_display_name"] {
        assert!(me.get(field).is_some(), "{field} missing: {me}");
    }
    assert_eq!(me["id"], u.id);
    assert_eq!(me["email"], u.email.as_str());
    assert!(me["avatar_url"].as_str().unwrap().starts_with("https://www.gravatar.com/avatar/"));
    let resp = call(
        reqwest::Method::PATCH,
        Some(serde_json::json!({"first_name": "Ada", "last_name": "Lovelace", "id": 999})),
        Some(&u.token),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let me: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(me["get_display_name"], "Ada Lovelace");
    assert_eq!(me["id"], u.id, "read-only fields are ignored");
    let new_email = format!("renamed-{}", u.email);
    let resp = call(
        reqwest::Method::PUT,
        Some(serde_json::json!({"first_name": "Ada", "last_name": "L", "email": new_email})),
        Some(&u.token),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let me: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(me["email"], new_email.as_str());
    // Another account's email: 409; no credential: 401; malformed JSON: 400.
    let taken = serde_json::json!({"email": other.email});
    let resp = call(reqwest::Method::PATCH, Some(taken), Some(&u.token)).await.unwrap();
    crate::harness::assert_error(resp, 409).await;
    let resp = call(reqwest::Method::GET, None, None).await.unwrap();
    crate::harness::assert_error(resp, 401).await;
    let resp = server
        .client
        .patch(server.url("/api/auth/user/"))
        .header("authorization", crate::harness::auth(&u.token))
        .header("content-type", "application/json")
        .body("{\"first_name\": ")
        .send()
        .await
        .unwrap();
    crate::harness::assert_error(resp, 400).await;
}

/// dj-rest-auth's `RegisterSerializer` body (Pegasus's SPA): email and two passwords, no
/// username. The username is derived from the email and kept unique; errors are reported
/// under the fields that client sent.
#[tokio::test]
async fn register_accepts_dj_rest_auth_form() {
    let server = TestServer::start().await;
    let post = |body: serde_json::Value| {
        server.client.post(server.url("/api/auth/register/")).json(&body).send()
    };
    let form = |email: &str| json!({"email": email, "password1": "long-enough-pw", "password2": "long-enough-pw"});
    let resp = post(form("Alice@Example.com")).await.unwrap();
    assert_eq!(resp.status(), 201);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["user"]["username"], "alice");
    assert_eq!(body["user"]["email"], "alice@example.com");
    assert_eq!(body["token"].as_str().unwrap().len(), 40);
    let body: serde_json::Value =
        post(form("alice@other.org")).await.unwrap().json().await.unwrap();
    assert_eq!(body["user"]["username"], "alice-2", "{body}");
    let mut named = form("x@y.io");
    named["first_name"] = json!("Xavier");
    let body: serde_json::Value = post(named).await.unwrap().json().await.unwrap();
    assert_eq!(body["user"]["username"], "x_user", "{body}");
    assert_eq!(body["user"]["first_name"], "Xavier");

    // The account logs in with its email, as dj-rest-auth's login does.
    let resp = server
        .client
        .post(server.url("/api/auth/login/"))
        .json(&json!({"email": "alice@other.org", "password": "long-enough-pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let mismatch = json!({"email": "m@example.com", "password1": "long-enough-pw", "password2": "other-pw-12"});
    let e = assert_error(post(mismatch).await.unwrap(), 400).await;
    assert_eq!(
        e["details"]["non_field_errors"],
        json!(["The two password fields didn't match."]),
        "{e}"
    );
    let e = assert_error(
        post(json!({"email": "s@example.com", "password1": "short", "password2": "short"}))
            .await
            .unwrap(),
        400,
    )
    .await;
    assert!(e["details"].get("password1").is_some(), "{e}");
    assert!(e["details"].get("password").is_none(), "{e}");
    let e = assert_error(
        post(json!({"email": "p@example.com", "password1": "long-enough-pw"})).await.unwrap(),
        400,
    )
    .await;
    assert_eq!(e["details"]["password2"], json!(["This field is required."]), "{e}");
    assert!(e["details"].get("username").is_none(), "{e}");
    // A taken email is still a conflict, whichever form.
    assert_error(post(form("ALICE@example.com")).await.unwrap(), 409).await;
    // A chosen username in that form is kept as given.
    let mut chosen = form("q@example.com");
    chosen["username"] = json!("quentin");
    let body: serde_json::Value = post(chosen).await.unwrap().json().await.unwrap();
    assert_eq!(body["user"]["username"], "quentin", "{body}");
}
