//! JWTs: login pair, SimpleJWT routes, refresh rotation, logout and password change revoking.

use serde_json::{json, Value};

use crate::harness::{assert_error, auth, register, TestServer};

async fn post(server: &TestServer, path: &str, body: Value) -> reqwest::Response {
    server.client.post(server.url(path)).json(&body).send().await.unwrap()
}

async fn profile_status(server: &TestServer, header: &str) -> u16 {
    server
        .client
        .get(server.url("/api/auth/profile/"))
        .header("authorization", header)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn claims(jwt: &str) -> Value {
    use base64::Engine as _;
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap())
        .unwrap()
}

#[tokio::test]
async fn login_pair_claims_and_bearer() {
    let server = TestServer::start().await;
    let u = register(&server, "jwt_user").await;
    let body: Value =
        post(&server, "/api/auth/login/", json!({"email": u.email, "password": u.password}))
            .await
            .json()
            .await
            .unwrap();
    let access = body["access"].as_str().unwrap();
    // Pegasus's SPA reads the same pair from `jwt`, beside `status` and `detail`.
    assert_eq!(body["status"], "success");
    assert_eq!(body["detail"], "User logged in.");
    assert_eq!(body["jwt"]["access"], body["access"]);
    assert_eq!(body["jwt"]["refresh"], body["refresh"]);
    assert_eq!(body["jwt"]["user"]["email"], u.email.as_str());
    assert!(body["jwt"]["user"]["get_display_name"].is_string(), "{body}");
    let c = claims(access);
    assert_eq!(c["user_id"], u.id);
    assert_eq!(c["sub"], u.id.to_string());
    assert_eq!(c["company_id"], u.org_id);
    assert_eq!(c["is_staff"], false);
    assert_eq!(c["token_type"], "access");
    assert!(c["jti"].is_string());
    let (exp, iat) = (c["exp"].as_i64().unwrap(), c["iat"].as_i64().unwrap());
    assert_eq!(exp - iat, 15 * 60);
    assert_eq!(profile_status(&server, &format!("Bearer {access}")).await, 200);
    // A refresh token is not an access token; a tampered token is nothing.
    let refresh = body["refresh"].as_str().unwrap();
    assert_eq!(profile_status(&server, &format!("Bearer {refresh}")).await, 401);
    let mut tampered = access.to_string();
    tampered.pop();
    tampered.push(if access.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(profile_status(&server, &format!("Bearer {tampered}")).await, 401);
    // company_id: one the user belongs to, else 403.
    let other = register(&server, "jwt_other").await;
    let resp = post(
        &server,
        "/api/auth/token/",
        json!({"email": u.email, "password": u.password, "company_id": other.org_id}),
    )
    .await;
    assert_error(resp, 403).await;
}

#[tokio::test]
async fn obtain_refresh_rotation_and_verify() {
    let server = TestServer::start().await;
    let u = register(&server, "simplejwt").await;
    let resp =
        post(&server, "/api/auth/token/", json!({"username": u.username, "password": u.password}))
            .await;
    assert_eq!(resp.status(), 200);
    let pair: Value = resp.json().await.unwrap();
    let (access, refresh) = (pair["access"].as_str().unwrap(), pair["refresh"].as_str().unwrap());
    assert_error(
        post(&server, "/api/auth/token/", json!({"email": u.email, "password": "wrong-pw-123"}))
            .await,
        401,
    )
    .await;

    let resp = post(&server, "/api/auth/token/verify/", json!({"token": access})).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({}));
    assert_error(post(&server, "/api/auth/token/verify/", json!({"token": "a.b.c"})).await, 401)
        .await;
    assert_error(post(&server, "/api/auth/token/verify/", json!({"token": [5]})).await, 400).await;

    let resp = post(&server, "/api/auth/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(resp.status(), 200);
    let next: Value = resp.json().await.unwrap();
    assert_ne!(next["refresh"], pair["refresh"]);
    assert_eq!(
        profile_status(&server, &format!("Bearer {}", next["access"].as_str().unwrap())).await,
        200
    );
    // The old refresh token was rotated out.
    assert_error(post(&server, "/api/auth/token/refresh/", json!({"refresh": refresh})).await, 401)
        .await;
    assert_error(post(&server, "/api/auth/token/refresh/", json!({"refresh": access})).await, 401)
        .await;
    assert_error(
        post(&server, "/api/auth/token/refresh/", json!({"refresh": "garbage"})).await,
        401,
    )
    .await;
    let resp = post(&server, "/api/auth/token/verify/", json!({"token": refresh})).await;
    assert_error(resp, 401).await;
}

#[tokio::test]
async fn logout_with_jwt_revokes_it_and_refresh_tokens() {
    let server = TestServer::start().await;
    let u = register(&server, "jwt_logout").await;
    let pair: Value =
        post(&server, "/api/auth/token/", json!({"email": u.email, "password": u.password}))
            .await
            .json()
            .await
            .unwrap();
    let bearer = format!("Bearer {}", pair["access"].as_str().unwrap());
    let resp = server
        .client
        .post(server.url("/api/auth/logout/"))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(profile_status(&server, &bearer).await, 401);
    assert_error(
        post(&server, "/api/auth/token/refresh/", json!({"refresh": pair["refresh"]})).await,
        401,
    )
    .await;
    // Other credentials live on.
    assert_eq!(profile_status(&server, &auth(&u.token)).await, 200);
}

#[tokio::test]
async fn password_change_revokes_other_credentials() {
    let server = TestServer::start().await;
    let u = register(&server, "pw_change").await;
    let login: Value =
        post(&server, "/api/auth/login/", json!({"email": u.email, "password": u.password}))
            .await
            .json()
            .await
            .unwrap();
    let other_token = login["token"].as_str().unwrap().to_string();
    let bearer = format!("Bearer {}", login["access"].as_str().unwrap());
    let change = |body: Value| {
        server
            .client
            .post(server.url("/api/auth/password/change/"))
            .header("authorization", auth(&u.token))
            .json(&body)
            .send()
    };
    let e = assert_error(
        change(json!({"old_password": "not-the-password", "new_password": "brand-new-password-1"}))
            .await
            .unwrap(),
        400,
    )
    .await;
    assert!(e["details"].get("old_password").is_some());
    assert_error(
        change(json!({"old_password": u.password, "new_password": "short"})).await.unwrap(),
        400,
    )
    .await;
    assert_error(change(json!({"old_password": u.password, "new_password1": "brand-new-password-1", "new_password2": "other-password-22"})).await.unwrap(), 400).await;
    assert_eq!(
        change(json!({"old_password": u.password, "new_password": "brand-new-password-1"}))
            .await
            .unwrap()
            .status(),
        200
    );

    // The credential used survives; every other one is dead on the next request.
    assert_eq!(profile_status(&server, &auth(&u.token)).await, 200);
    assert_eq!(profile_status(&server, &auth(&other_token)).await, 401);
    assert_eq!(profile_status(&server, &bearer).await, 401);
    assert_error(
        post(&server, "/api/auth/token/refresh/", json!({"refresh": login["refresh"]})).await,
        401,
    )
    .await;
    assert_error(
        post(&server, "/api/auth/login/", json!({"email": u.email, "password": u.password})).await,
        401,
    )
    .await;
    assert_eq!(
        post(
            &server,
            "/api/auth/login/",
            json!({"email": u.email, "password": "brand-new-password-1"})
        )
        .await
        .status(),
        200
    );
    assert!(super::audit_actions(&server).contains(&"password_changed".to_string()));
}

#[tokio::test]
async fn signing_key_survives_restart_and_is_sealed() {
    let server = TestServer::start().await;
    let u = register(&server, "jwt_restart").await;
    let pair: Value =
        post(&server, "/api/auth/token/", json!({"email": u.email, "password": u.password}))
            .await
            .json()
            .await
            .unwrap();
    let server = server.restart().await;
    assert_eq!(
        profile_status(&server, &format!("Bearer {}", pair["access"].as_str().unwrap())).await,
        200
    );
}

/// ShellUI's `POST /api/v1/token`: `grant_type=refresh_token` and `refresh_token` in the query,
/// a JSON body or a form body; ShellUI's answer; rotation as on the SimpleJWT route.
#[tokio::test]
async fn shellui_token_refresh_in_query_json_or_form() {
    let server = TestServer::start().await;
    let u = register(&server, "shellui_refresh").await;
    let pair: Value =
        post(&server, "/api/auth/token/", json!({"email": u.email, "password": u.password}))
            .await
            .json()
            .await
            .unwrap();
    let first = pair["refresh"].as_str().unwrap().to_string();
    let shellui = |resp: Value| -> (String, String) {
        assert_eq!(resp["token_type"], "bearer", "{resp}");
        let (expires_in, expires_at) =
            (resp["expires_in"].as_i64().unwrap(), resp["expires_at"].as_i64().unwrap());
        assert_eq!(expires_in, 15 * 60);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        assert!((expires_at - now - expires_in).abs() <= 5, "{resp}");
        (
            resp["access_token"].as_str().unwrap().to_string(),
            resp["refresh_token"].as_str().unwrap().to_string(),
        )
    };
    // In the query, no body.
    let url = server.url(&format!("/api/v1/token?grant_type=refresh_token&refresh_token={first}"));
    let resp = server.client.post(url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let (access, second) = shellui(resp.json().await.unwrap());
    assert_eq!(profile_status(&server, &format!("Bearer {access}")).await, 200);
    // In a JSON body.
    let body = json!({"grant_type": "refresh_token", "refresh_token": second});
    let resp = post(&server, "/api/v1/token", body).await;
    assert_eq!(resp.status(), 200);
    let (_, third) = shellui(resp.json().await.unwrap());
    // In a form body.
    let resp = server
        .client
        .post(server.url("/api/v1/token"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", third.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (_, _fourth) = shellui(resp.json().await.unwrap());
    // A rotated-out token, a wrong grant, a missing token, a malformed body.
    let body = json!({"grant_type": "refresh_token", "refresh_token": first});
    assert_error(post(&server, "/api/v1/token", body).await, 401).await;
    let body = json!({"grant_type": "password", "refresh_token": third});
    let err = assert_error(post(&server, "/api/v1/token", body).await, 400).await;
    assert!(err["details"]["grant_type"].is_array(), "{err}");
    let err = assert_error(
        post(&server, "/api/v1/token", json!({"grant_type": "refresh_token"})).await,
        400,
    )
    .await;
    assert!(err["details"]["refresh_token"].is_array(), "{err}");
    let resp = server
        .client
        .post(server.url("/api/v1/token"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_error(resp, 400).await;
}
