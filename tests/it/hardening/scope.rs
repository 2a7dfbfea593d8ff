//! Credential scope and tenancy (security review H3, M1, M2, M3, L8): limited credentials
//! never mint, rotate or list beyond their scope nor change the account; PATs are bound to
//! their company; `company_id` is never a silent default; staff views need an unscoped
//! credential; staff create accounts; members leave; editors don't change settings.

use serde_json::{json, Value};

use crate::harness::{assert_error, auth, login_admin, register, TestServer, TestUser};
use crate::identity::audit_actions;

async fn send(
    server: &TestServer,
    method: &str,
    path: &str,
    header: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut rb = server.client.request(m, server.url(path)).header("authorization", header);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    rb.send().await.unwrap()
}

async fn json_of(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status().as_u16(), status, "unexpected status");
    resp.json().await.unwrap()
}

/// A 403 in the error format whose message names the full-session rule.
async fn refused_as_limited(resp: reqwest::Response) {
    let e = assert_error(resp, 403).await;
    assert!(e["error"].as_str().unwrap().contains("full session"), "{e}");
}

async fn new_org(server: &TestServer, u: &TestUser, name: &str) -> u64 {
    let body = json!({"name": name});
    json_of(send(server, "POST", "/api/organizations/", &auth(&u.token), Some(body)).await, 201)
        .await["id"]
        .as_u64()
        .unwrap()
}

/// A key made by `u`'s login token: `(id, secret)`.
async fn new_key(server: &TestServer, u: &TestUser, body: Value) -> (u64, String) {
    let k = json_of(send(server, "POST", "/api/api-keys/", &auth(&u.token), Some(body)).await, 201)
        .await;
    (k["id"].as_u64().unwrap(), k["key"].as_str().unwrap().to_string())
}

/// A PAT made by `u`'s login token: `(id, "Bearer …")`.
async fn new_pat(server: &TestServer, u: &TestUser, company: u64) -> (u64, String) {
    let body = json!({"name": "ci", "company_id": company});
    let path = "/api/v1/personal-access-tokens";
    let t = json_of(send(server, "POST", path, &auth(&u.token), Some(body)).await, 201).await;
    (t["id"].as_u64().unwrap(), format!("Bearer {}", t["access_token"].as_str().unwrap()))
}

fn password_change(u: &TestUser) -> Value {
    json!({"old_password": u.password, "new_password": "a-brand-new-password-1",
        "new_password2": "a-brand-new-password-1"})
}

async fn login(server: &TestServer, u: &TestUser) -> Value {
    let body = json!({"email": u.email, "password": u.password});
    let resp = server.client.post(server.url("/api/auth/login/")).json(&body).send().await.unwrap();
    json_of(resp, 200).await
}

fn claims(jwt: &str) -> Value {
    use base64::Engine as _;
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap())
        .unwrap()
}

#[tokio::test]
async fn h3_limited_api_keys_cannot_mint_rotate_or_change_the_account() {
    let server = TestServer::start().await;
    let u = register(&server, "h3keys").await;
    let org_b = new_org(&server, &u, "H3 Second").await;
    let soon = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    // The review's CI runner key: scoped to one org and allow-listed; plus an unscoped key,
    // an expiring one, and an unrestricted one.
    let (scoped_id, scoped) = new_key(
        &server,
        &u,
        json!({"name": "runner", "organization": org_b, "ip_allowlist": ["127.0.0.0/8"]}),
    )
    .await;
    let (victim_id, victim) = new_key(&server, &u, json!({"name": "deploy"})).await;
    let (_, expiring) = new_key(&server, &u, json!({"name": "soon", "expires_at": soon})).await;
    let (_, listed) =
        new_key(&server, &u, json!({"name": "listed", "ip_allowlist": ["127.0.0.1"]})).await;
    let (unrestricted_id, unrestricted) = new_key(&server, &u, json!({"name": "free"})).await;
    let created_before = audit_actions(&server).iter().filter(|a| *a == "api_key_created").count();

    // No API key mints a key, whatever its limits, with or without naming an organization.
    for (key, scheme) in [
        (&scoped, "Api-Key"),
        (&scoped, "Bearer"),
        (&expiring, "Api-Key"),
        (&listed, "Api-Key"),
        (&unrestricted, "Api-Key"),
    ] {
        let h = format!("{scheme} {key}");
        for body in [json!({"name": "x"}), json!({"name": "x", "organization": org_b})] {
            refused_as_limited(send(&server, "POST", "/api/api-keys/", &h, Some(body)).await).await;
        }
        let pat = json!({"name": "x", "company_id": org_b});
        let path = "/api/v1/personal-access-tokens";
        refused_as_limited(send(&server, "POST", path, &h, Some(pat)).await).await;
        let change = Some(password_change(&u));
        refused_as_limited(send(&server, "POST", "/api/auth/password/change/", &h, change).await)
            .await;
        let patch = Some(json!({"email": "taken-over@example.com"}));
        refused_as_limited(send(&server, "PATCH", "/api/auth/profile/", &h, patch).await).await;
    }
    let created_after = audit_actions(&server).iter().filter(|a| *a == "api_key_created").count();
    assert_eq!(created_before, created_after, "a limited credential minted a key");

    // The scoped key lists only its organization's keys and cannot reach the others.
    let sh = format!("Api-Key {scoped}");
    let list = json_of(send(&server, "GET", "/api/api-keys/", &sh, None).await, 200).await;
    assert_eq!(list["count"], 1, "{list}");
    assert_eq!(list["results"][0]["id"], scoped_id);
    let full =
        json_of(send(&server, "GET", "/api/api-keys/", &auth(&u.token), None).await, 200).await;
    assert_eq!(full["count"], 5);
    let other = format!("/api/api-keys/{victim_id}/");
    assert_error(send(&server, "GET", &other, &sh, None).await, 404).await;
    // Rotating another key would hand over its new secret; revoking it would be sabotage.
    let rotate = format!("/api/api-keys/{victim_id}/rotate/");
    refused_as_limited(send(&server, "POST", &rotate, &sh, Some(json!({}))).await).await;
    refused_as_limited(send(&server, "DELETE", &other, &sh, None).await).await;
    // Even an unscoped key may not rotate a sibling.
    let uh = format!("Api-Key {unrestricted}");
    refused_as_limited(send(&server, "POST", &rotate, &uh, Some(json!({}))).await).await;
    let vh = format!("Api-Key {victim}");
    assert_eq!(send(&server, "GET", "/api/auth/profile/", &vh, None).await.status(), 200);
    // The account is untouched: the password still logs in, the email is unchanged.
    let me = login(&server, &u).await;
    assert_eq!(me["user"]["email"], u.email.as_str());

    // A key may rotate itself: the successor keeps its organization and allow-list.
    let own = format!("/api/api-keys/{scoped_id}/rotate/");
    let rotated = json_of(send(&server, "POST", &own, &sh, Some(json!({}))).await, 200).await;
    assert_eq!(rotated["organization"], org_b);
    assert_eq!(rotated["ip_allowlist"], json!(["127.0.0.0/8"]));
    // A key may revoke itself.
    let own = format!("/api/api-keys/{unrestricted_id}/");
    assert_eq!(send(&server, "DELETE", &own, &uh, None).await.status(), 204);
    assert_error(send(&server, "GET", "/api/auth/profile/", &uh, None).await, 401).await;
}

#[tokio::test]
async fn h3_full_sessions_mint_and_pats_do_not() {
    let server = TestServer::start().await;
    let u = register(&server, "h3sessions").await;
    let session = login(&server, &u).await;
    let jwt = format!("Bearer {}", session["access"].as_str().unwrap());
    let token = auth(session["token"].as_str().unwrap());
    let basic = {
        use base64::Engine as _;
        let pair = format!("{}:{}", u.email, u.password);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
    };
    // Full sessions: login token, session JWT, Basic with the password, the session cookie.
    for h in [&token, &jwt, &basic] {
        let resp = send(&server, "POST", "/api/api-keys/", h, Some(json!({"name": "k"}))).await;
        assert_eq!(resp.status(), 201, "{h}");
    }
    let cookie = "gatehouse_session=".to_string();
    let login_resp = server
        .client
        .post(server.url("/api/auth/login/"))
        .json(&json!({"email": u.email, "password": u.password}))
        .send()
        .await
        .unwrap();
    let set = login_resp.headers()["set-cookie"].to_str().unwrap().to_string();
    let value = set.split(';').next().unwrap().trim_start_matches(&cookie).to_string();
    let resp = server
        .client
        .post(server.url("/api/api-keys/"))
        .header("cookie", format!("{cookie}{value}"))
        .header("origin", &server.base)
        .header("sec-fetch-site", "same-origin")
        .json(&json!({"name": "from cookie"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    // A write PAT: no keys, no PATs, no password, no profile; it lists only its company's
    // PATs, may revoke itself but not a sibling.
    let org_b = new_org(&server, &u, "H3 Pat Org").await;
    let (pat_id, pat) = new_pat(&server, &u, u.org_id).await;
    let (sibling_id, sibling) = new_pat(&server, &u, u.org_id).await;
    let (_, other_org_pat) = new_pat(&server, &u, org_b).await;
    let path = "/api/v1/personal-access-tokens";
    refused_as_limited(
        send(&server, "POST", "/api/api-keys/", &pat, Some(json!({"name": "k"}))).await,
    )
    .await;
    let body = json!({"name": "again", "company_id": u.org_id});
    refused_as_limited(send(&server, "POST", path, &pat, Some(body)).await).await;
    let change = Some(password_change(&u));
    refused_as_limited(send(&server, "POST", "/api/auth/password/change/", &pat, change).await)
        .await;
    let patch = Some(json!({"first_name": "Mallory"}));
    refused_as_limited(send(&server, "PATCH", "/api/auth/profile/", &pat, patch).await).await;
    let list = json_of(send(&server, "GET", path, &pat, None).await, 200).await;
    let companies: Vec<&Value> =
        list["results"].as_array().unwrap().iter().map(|t| &t["company_id"]).collect();
    assert_eq!(companies.len(), 2, "{list}");
    assert!(companies.iter().all(|c| **c == json!(u.org_id)), "{list}");
    let sib = format!("{path}/{sibling_id}/revoke");
    refused_as_limited(send(&server, "POST", &sib, &pat, None).await).await;
    assert_eq!(send(&server, "GET", "/api/auth/profile/", &sibling, None).await.status(), 200);
    let own = format!("{path}/{pat_id}/revoke");
    assert_eq!(send(&server, "POST", &own, &pat, None).await.status(), 200);
    assert_eq!(send(&server, "GET", "/api/auth/profile/", &pat, None).await.status(), 401);
    // The org-B PAT's own key list is limited to org B (none there).
    let keys =
        json_of(send(&server, "GET", "/api/api-keys/", &other_org_pat, None).await, 200).await;
    assert_eq!(keys["count"], 0, "{keys}");
}

#[tokio::test]
async fn m1_a_pat_sees_only_its_company() {
    let server = TestServer::start().await;
    let u = register(&server, "m1pat").await;
    let org_b = new_org(&server, &u, "M1 Other").await;
    let t = auth(&u.token);
    let mk = |org: u64, name: &'static str| {
        let body = json!({"name": name, "organization": org});
        let server = &server;
        let t = t.clone();
        async move {
            json_of(send(server, "POST", "/api/projects/", &t, Some(body)).await, 201).await["id"]
                .as_u64()
                .unwrap()
        }
    };
    let in_a = mk(u.org_id, "Project A").await;
    let in_b = mk(org_b, "Project B").await;
    let (_, pat) = new_pat(&server, &u, u.org_id).await;

    let projects = json_of(send(&server, "GET", "/api/projects/", &pat, None).await, 200).await;
    assert_eq!(projects["count"], 1, "{projects}");
    assert_eq!(projects["results"][0]["id"], in_a);
    let orgs = json_of(send(&server, "GET", "/api/organizations/", &pat, None).await, 200).await;
    assert_eq!(orgs["count"], 1, "{orgs}");
    assert_error(send(&server, "GET", &format!("/api/projects/{in_b}/"), &pat, None).await, 404)
        .await;
    let path = format!("/api/projects/{in_b}/environments/");
    let resp = send(&server, "GET", &path, &pat, None).await;
    assert!(matches!(resp.status().as_u16(), 403 | 404), "{}", resp.status());
    let body = Some(json!({"name": "Sneaky", "organization": org_b}));
    let resp = send(&server, "POST", "/api/projects/", &pat, body).await;
    let status = resp.status().as_u16();
    assert!(matches!(status, 403 | 404), "{status}");
    assert_error(resp, status).await;
    // Without naming one, a PAT's project lands in its own company.
    let body = Some(json!({"name": "Defaulted"}));
    let p = json_of(send(&server, "POST", "/api/projects/", &pat, body).await, 201).await;
    assert_eq!(p["organization"], u.org_id);
}

#[tokio::test]
async fn m1_company_id_is_never_a_silent_default_target() {
    let server = TestServer::start().await;
    // The attacker registers first, so the attacker's organization has the lower id, then adds
    // the victim as editor to it.
    let attacker = register(&server, "m1attacker").await;
    let victim = register(&server, "m1victim").await;
    assert!(attacker.org_id < victim.org_id);
    server.add_member(&attacker, attacker.org_id, &victim, "editor").await;

    let session = login(&server, &victim).await;
    let access = session["access"].as_str().unwrap();
    assert!(claims(access)["company_id"].is_null(), "{}", claims(access));
    let jwt = format!("Bearer {access}");
    for h in [auth(&victim.token), jwt] {
        let body = Some(json!({"name": "Secret Stuff"}));
        let e = assert_error(send(&server, "POST", "/api/projects/", &h, body).await, 400).await;
        assert!(e["details"]["organization"].is_array(), "{e}");
        let body = Some(json!({"name": "t"}));
        let path = "/api/v1/personal-access-tokens";
        let e = assert_error(send(&server, "POST", path, &h, body).await, 400).await;
        assert!(e["details"]["company_id"].is_array(), "{e}");
    }
    // Nothing landed in the attacker's organization.
    let t = auth(&attacker.token);
    let list = json_of(send(&server, "GET", "/api/projects/", &t, None).await, 200).await;
    assert_eq!(list["count"], 0, "{list}");
    // Naming the organization works; a single-organization user needs no name.
    let body = Some(json!({"name": "Mine", "organization": victim.org_id}));
    let mine =
        json_of(send(&server, "POST", "/api/projects/", &auth(&victim.token), body).await, 201)
            .await;
    assert_eq!(mine["organization"], victim.org_id);
    let body = Some(json!({"name": "Solo"}));
    let solo = json_of(send(&server, "POST", "/api/projects/", &t, body).await, 201).await;
    assert_eq!(solo["organization"], attacker.org_id);
}

#[tokio::test]
async fn m2_staff_views_need_an_unscoped_credential() {
    let server = TestServer::start().await;
    let admin = login_admin(&server).await;
    let (_, scoped) = new_key(
        &server,
        &admin,
        json!({"name": "tenant automation",
        "organization": admin.org_id}),
    )
    .await;
    let (_, unscoped) = new_key(&server, &admin, json!({"name": "monitoring"})).await;
    let (_, pat) = new_pat(&server, &admin, admin.org_id).await;
    let views = [
        "/api/grpc/monitor/requests/",
        "/api/grpc/monitor/overview/",
        "/api/grpc/monitor/health/",
        "/cfg/grpc/monitor/requests/",
        "/cfg/grpc/monitor/services/",
        "/api/grpc/api-keys/",
        "/api/grpc/api-keys/stats/",
    ];
    for view in views {
        for h in [format!("Api-Key {scoped}"), pat.clone()] {
            let e = assert_error(send(&server, "GET", view, &h, None).await, 403).await;
            assert!(e["error"].as_str().unwrap().contains("organization"), "{view}: {e}");
        }
        for h in [auth(&admin.token), format!("Api-Key {unscoped}")] {
            assert_eq!(send(&server, "GET", view, &h, None).await.status(), 200, "{view}");
        }
    }
}

#[tokio::test]
async fn m3_packaged_config_ships_closed() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/gatehouse.toml");
    let c = gatehouse::config::Config::from_sources(
        Some(&path),
        &std::collections::BTreeMap::new(),
        &gatehouse::config::Flags::default(),
    )
    .unwrap();
    assert_eq!(c.auth.registration, "closed");
}

#[tokio::test]
async fn m3_staff_create_accounts_when_registration_is_closed() {
    let server = TestServer::start_with(&[("GATEHOUSE_AUTH_REGISTRATION", "closed")]).await;
    let admin = login_admin(&server).await;
    let path = "/api/admin/users/";
    let body = json!({"email": "New.Hire@Example.com", "password": "welcome-aboard-42",
        "first_name": "New", "last_name": "Hire"});
    let made =
        json_of(send(&server, "POST", path, &auth(&admin.token), Some(body)).await, 201).await;
    for f in [
        "id",
        "username",
        "email",
        "first_name",
        "last_name",
        "full_name",
        "date_joined",
        "last_login",
        "is_active",
        "is_staff",
    ] {
        assert!(made.get(f).is_some(), "{f} missing: {made}");
    }
    assert_eq!(made["email"], "new.hire@example.com");
    assert_eq!(made["username"], "new.hire");
    assert_eq!(made["is_staff"], false);
    assert!(!made.to_string().contains("welcome-aboard-42"));
    // The account logs in.
    let resp = server
        .client
        .post(server.url("/api/auth/login/"))
        .json(&json!({"email": "new.hire@example.com", "password": "welcome-aboard-42"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(audit_actions(&server).contains(&"user_created".to_string()));
    {
        use gatehouse::domain::audit::tables::AUDIT;
        use gatehouse::store::Reader as _;
        let state = &server.running.as_ref().unwrap().state;
        let rows = state.store.read(|tx| tx.scan(AUDIT, 0..=u64::MAX, usize::MAX, false)).unwrap();
        let made_id = made["id"].as_u64().unwrap().to_string();
        let (_, rec) = rows
            .iter()
            .find(|(_, r)| r.action == "user_created" && r.target_id == made_id)
            .unwrap();
        assert_eq!(rec.user_id, Some(admin.id), "the actor is the staff user");
        assert!(!format!("{rec:?}").contains("welcome-aboard-42"));
    }
    // A derived username is made unique; validation is registration's; duplicates are 409.
    let body = json!({"email": "new.hire@other.example", "password": "welcome-aboard-43"});
    let second =
        json_of(send(&server, "POST", path, &auth(&admin.token), Some(body)).await, 201).await;
    assert_eq!(second["username"], "new.hire-2");
    let body = json!({"email": "short@example.com", "password": "short"});
    let e =
        assert_error(send(&server, "POST", path, &auth(&admin.token), Some(body)).await, 400).await;
    assert!(e["details"]["password"].is_array(), "{e}");
    let body = json!({"email": "not-an-email", "password": "long-enough-pw-1"});
    assert_error(send(&server, "POST", path, &auth(&admin.token), Some(body)).await, 400).await;
    let body = json!({"email": "NEW.HIRE@example.com", "password": "long-enough-pw-1"});
    assert_error(send(&server, "POST", path, &auth(&admin.token), Some(body)).await, 409).await;

    // Not staff, or staff through a limited credential: 403.
    let someone = {
        let body = json!({"email": "plain@example.com", "password": "plain-user-pw-1",
            "username": "plain_user"});
        json_of(send(&server, "POST", path, &auth(&admin.token), Some(body)).await, 201).await;
        let resp = server
            .client
            .post(server.url("/api/auth/login/"))
            .json(&json!({"email": "plain@example.com", "password": "plain-user-pw-1"}))
            .send()
            .await
            .unwrap();
        json_of(resp, 200).await["token"].as_str().unwrap().to_string()
    };
    let (_, key) = new_key(&server, &admin, json!({"name": "ops"})).await;
    let (_, pat) = new_pat(&server, &admin, admin.org_id).await;
    for h in [auth(&someone), format!("Api-Key {key}"), pat] {
        let body = json!({"email": "sneaky@example.com", "password": "sneaky-pass-123",
            "is_staff": true});
        assert_error(send(&server, "POST", path, &h, Some(body)).await, 403).await;
    }
    let resp = server.client.post(server.url(path)).json(&json!({})).send().await.unwrap();
    assert_error(resp, 401).await;
}

#[tokio::test]
async fn m3_a_member_can_leave_but_not_the_last_admin() {
    let server = TestServer::start().await;
    let owner = register(&server, "m3owner").await;
    let captured = register(&server, "m3captured").await;
    let bystander = register(&server, "m3bystander").await;
    let org = owner.org_id;
    server.add_member(&owner, org, &captured, "viewer").await;
    server.add_member(&owner, org, &bystander, "editor").await;
    let me = auth(&captured.token);

    // A viewer may not remove someone else…
    let other = format!("/api/organizations/{org}/members/{}/", bystander.id);
    assert_error(send(&server, "DELETE", &other, &me, None).await, 403).await;
    // …but may leave.
    let mine = format!("/api/organizations/{org}/members/{}/", captured.id);
    assert_eq!(send(&server, "DELETE", &mine, &me, None).await.status(), 204);
    assert_error(send(&server, "GET", &format!("/api/organizations/{org}/"), &me, None).await, 404)
        .await;
    assert!(audit_actions(&server).contains(&"member_left".to_string()));
    // KeyNest's action works for leaving too.
    let path = format!("/api/organizations/{org}/remove_member/");
    let body = Some(json!({"user_id": bystander.id}));
    let resp = send(&server, "DELETE", &path, &auth(&bystander.token), body).await;
    assert_eq!(resp.status(), 200);
    // The last admin cannot leave.
    let own = format!("/api/organizations/{org}/members/{}/", owner.id);
    let e = assert_error(send(&server, "DELETE", &own, &auth(&owner.token), None).await, 409).await;
    assert!(e["error"].as_str().unwrap().contains("last admin"), "{e}");
}

#[tokio::test]
async fn l8_editors_cannot_change_organization_settings() {
    let server = TestServer::start().await;
    let admin = register(&server, "l8admin").await;
    let editor = register(&server, "l8editor").await;
    server.add_member(&admin, admin.org_id, &editor, "editor").await;
    let path = format!("/api/organizations/{}/", admin.org_id);
    let e = auth(&editor.token);
    for (m, body) in [
        ("PATCH", json!({"name": "Renamed by editor"})),
        ("PUT", json!({"name": "Renamed by editor", "description": "x"})),
    ] {
        assert_error(send(&server, m, &path, &e, Some(body)).await, 403).await;
    }
    let got = json_of(send(&server, "GET", &path, &auth(&admin.token), None).await, 200).await;
    assert_ne!(got["name"], "Renamed by editor");
    let body = Some(json!({"name": "Renamed by admin"}));
    assert_eq!(send(&server, "PATCH", &path, &auth(&admin.token), body).await.status(), 200);
}
