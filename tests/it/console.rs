//! The web console at `/admin/`, driven as a browser drives it: a cookie jar, forms with their
//! CSRF field, `Origin` on every post, redirects read one at a time.

use reqwest::header::{HeaderMap, HeaderValue, ORIGIN};
use reqwest::redirect::Policy;
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{auth, register, tls_config, TestServer, TestUser};

/// A browser: its own cookie jar, sends `Origin` like a page of the console does.
struct Browser {
    client: reqwest::Client,
    base: String,
    csrf: String,
}

impl Browser {
    fn new(server: &TestServer) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(ORIGIN, HeaderValue::from_str(&server.base).unwrap());
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls_config(&server.ca_pem))
            .cookie_store(true)
            .redirect(Policy::none())
            .default_headers(headers)
            .build()
            .unwrap();
        Self { client, base: server.base.clone(), csrf: String::new() }
    }

    /// GETs a page, keeping the CSRF token its forms carry.
    async fn get(&mut self, path: &str) -> (StatusCode, String) {
        let resp = self.client.get(format!("{}{path}", self.base)).send().await.unwrap();
        let status = resp.status();
        let html = resp.text().await.unwrap();
        if let Some(t) = csrf_of(&html) {
            self.csrf = t;
        }
        (status, html)
    }

    /// Posts a form with the page's CSRF token; the status and the `Location` or the page.
    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
        let mut form: Vec<(&str, &str)> = vec![("csrf", &self.csrf)];
        form.extend_from_slice(fields);
        let resp =
            self.client.post(format!("{}{path}", self.base)).form(&form).send().await.unwrap();
        let status = resp.status();
        if status == StatusCode::SEE_OTHER {
            let to = resp.headers()["location"].to_str().unwrap().to_string();
            return (status, to);
        }
        let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
        assert_eq!(ct.as_deref(), Some("text/html; charset=utf-8"), "{path} answered {status}");
        (status, resp.text().await.unwrap())
    }

    async fn sign_in(&mut self, ident: &str, password: &str) {
        self.get("/admin/login/").await;
        let (status, to) =
            self.post("/admin/login/", &[("username", ident), ("password", password)]).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{to}");
        assert_eq!(to, "/admin/");
    }
}

fn csrf_of(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(html[at..at + 32].to_string())
}

/// The id at the end of a console location such as `/admin/projects/7/`.
fn id_in(location: &str, prefix: &str) -> u64 {
    let rest = location.strip_prefix(prefix).unwrap_or_else(|| panic!("{location}"));
    rest.split(['/', '?']).next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn signed_out_visitors_get_pages_with_the_security_headers() {
    let server = TestServer::start().await;
    let mut b = Browser::new(&server);
    let resp = b.client.get(server.url("/admin/projects/?page=2")).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/admin/login/?next=%2Fadmin%2Fprojects%2F%3Fpage%3D2");
    // The browser's CSRF token, set on its first visit.
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("gatehouse_csrf=") && cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("Secure") && cookie.contains("SameSite=Strict"), "{cookie}");
    let resp = b.client.get(server.url("/admin/login/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(h.get("set-cookie").is_none(), "the token is kept, not renewed on every page");
    // Unknown pages and ids are pages too, never JSON or a 500.
    let (status, html) = b.get("/admin/nowhere/").await;
    assert_eq!(status, 404);
    assert!(html.contains("<!doctype html>"), "{html}");
    let css = b.client.get(server.url("/admin/static/console.css")).send().await.unwrap();
    assert_eq!(css.status(), 200);
    assert!(css.headers()["content-type"].to_str().unwrap().starts_with("text/css"));
    // A stale session cookie is a sign-in page, not an API 401.
    let resp = b
        .client
        .get(server.url("/admin/"))
        .header("cookie", "gatehouse_session=0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
}

#[tokio::test]
async fn sign_in_refuses_bad_credentials_on_the_form_and_forged_posts() {
    let server = TestServer::start().await;
    let user = register(&server, "console_signin").await;
    let mut b = Browser::new(&server);
    b.get("/admin/login/").await;
    let (status, html) =
        b.post("/admin/login/", &[("username", &user.email), ("password", "wrong-password")]).await;
    assert_eq!(status, 401);
    assert!(html.contains("Invalid credentials"), "{html}");
    assert!(html.contains(&user.email), "the form keeps what was typed");
    assert!(!html.contains("wrong-password"), "a password is never sent back");

    // No token, a wrong token, or another site's origin: refused before anything happens.
    let form = [("username", user.email.as_str()), ("password", user.password.as_str())];
    let resp = b.client.post(server.url("/admin/login/")).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let mut with_bad = vec![("csrf", "0".repeat(32))];
    with_bad.extend(form.iter().map(|(k, v)| (*k, v.to_string())));
    let resp = b.client.post(server.url("/admin/login/")).form(&with_bad).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let mut good = vec![("csrf", b.csrf.clone())];
    good.extend(form.iter().map(|(k, v)| (*k, v.to_string())));
    let resp = b
        .client
        .post(server.url("/admin/login/"))
        .header("origin", "https://evil.example")
        .form(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("<!doctype html>"));

    // An open redirect is not followed: `next` stays inside the console.
    let (status, to) = b
        .post(
            "/admin/login/",
            &[("username", &user.email), ("password", &user.password), ("next", "//evil.example/")],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(to, "/admin/");
    let (status, html) = b.get("/admin/").await;
    assert_eq!(status, 200);
    assert!(html.contains("Sign out"));
    let (status, to) = b.post("/admin/logout/", &[]).await;
    assert_eq!((status, to.as_str()), (StatusCode::SEE_OTHER, "/admin/login/"));
    let resp = b.client.get(server.url("/admin/")).send().await.unwrap();
    assert_eq!(resp.status(), 303, "signed out");
}

/// The journey of the issue, steps 1–7: sign in; a project, an environment and a variable;
/// reveal, edit, roll back; import with a bad line; export; an API key used and revoked.
#[tokio::test]
async fn secrets_and_keys_journey() {
    let server = TestServer::start().await;
    let user = register(&server, "console_journey").await;
    let mut b = Browser::new(&server);
    b.sign_in(&user.username, &user.password).await;

    b.get("/admin/projects/").await;
    let org = user.org_id.to_string();
    let (status, html) = b.post("/admin/projects/", &[("organization", &org), ("name", " ")]).await;
    assert_eq!(status, 400);
    assert!(html.contains("field-errors"), "{html}");
    let (status, to) =
        b.post("/admin/projects/", &[("organization", &org), ("name", "Payments")]).await;
    assert_eq!(status, 303, "{to}");
    let project = id_in(&to, "/admin/projects/");
    b.get(&to).await;
    let (_, to) = b
        .post(
            &format!("/admin/projects/{project}/environments/"),
            &[("name", "prod"), ("environment_type", "production")],
        )
        .await;
    let env = id_in(&to, "/admin/environments/");
    let env_page = format!("/admin/environments/{env}/");
    b.get(&env_page).await;
    let vars = format!("{env_page}variables/");
    let (status, html) = b.post(&vars, &[("key", "bad key!"), ("value", "x")]).await;
    assert_eq!(status, 400);
    assert!(html.contains("aria-invalid"), "{html}");
    let (status, to) = b.post(&vars, &[("key", "DB_PASSWORD"), ("value", "s3cret-one")]).await;
    assert_eq!(status, 303);
    let var = id_in(&to, &format!("{env_page}?reveal="));

    // Masked until revealed.
    let (_, html) = b.get(&env_page).await;
    assert!(html.contains("DB_PASSWORD") && !html.contains("s3cret-one"), "{html}");
    let (_, html) = b.get(&format!("{env_page}?reveal={var}")).await;
    assert!(html.contains("s3cret-one"));

    // Edit, then roll back to version 1.
    let var_page = format!("/admin/variables/{var}/");
    b.get(&var_page).await;
    let (status, _) = b.post(&var_page, &[("key", "DB_PASSWORD"), ("value", "s3cret-two")]).await;
    assert_eq!(status, 303);
    let (_, html) = b.get(&var_page).await;
    assert!(html.contains("s3cret-two") && html.contains("Roll back to v1"), "{html}");
    let (status, _) = b.post(&format!("{var_page}rollback/"), &[("version", "1")]).await;
    assert_eq!(status, 303);
    let api = server
        .client
        .get(server.url(&format!("/api/variables/{var}/")))
        .header("authorization", auth(&user.token))
        .send()
        .await
        .unwrap();
    assert_eq!(api.json::<serde_json::Value>().await.unwrap()["decrypted_value"], "s3cret-one");

    // Import with one bad line: reported by line.
    b.get(&env_page).await;
    let upload = reqwest::multipart::Form::new()
        .text("csrf", b.csrf.clone())
        .text("overwrite", "true")
        .part(
            "file",
            reqwest::multipart::Part::bytes(
                b"API_URL=https://x.example\n1BAD LINE\nTOKEN=abc\n".to_vec(),
            )
            .file_name("prod.env"),
        );
    let resp = b
        .client
        .post(server.url(&format!("{env_page}import/")))
        .multipart(upload)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(html.contains("Imported 2") && html.contains("Line 2"), "{html}");
    let forged = reqwest::multipart::Form::new().text("csrf", "f".repeat(32)).text("text", "A=1");
    let resp = b
        .client
        .post(server.url(&format!("{env_page}import/")))
        .multipart(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    // Export.
    let resp = b.client.get(server.url(&format!("{env_page}export/"))).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-disposition"].to_str().unwrap().contains("attachment"));
    let text = resp.text().await.unwrap();
    assert!(text.contains("TOKEN=") && text.contains("DB_PASSWORD="), "{text}");

    // An API key: shown once, works, then revoked.
    b.get("/admin/keys/").await;
    let (status, html) = b.post("/admin/keys/", &[("name", "ci deploys")]).await;
    assert_eq!(status, 201);
    let at = html.find("id=\"new-key\">").unwrap() + "id=\"new-key\">".len();
    let key = html[at..at + 64].to_string();
    let call = || {
        server
            .client
            .get(server.url("/api/projects/"))
            .header("authorization", format!("Api-Key {key}"))
            .send()
    };
    assert_eq!(call().await.unwrap().status(), 200);
    let (_, html) = b.get("/admin/keys/").await;
    assert!(!html.contains(&key), "the key is shown only once");
    let before = &html[..html.find("/revoke/").unwrap()];
    let key_id = before.rsplit('/').next().unwrap().to_string();
    let (status, _) = b.post(&format!("/admin/keys/{key_id}/revoke/"), &[]).await;
    assert_eq!(status, 303);
    assert_eq!(call().await.unwrap().status(), 401);

    // Delete, and the audit page lists what happened.
    let (status, _) = b.post(&format!("{var_page}delete/"), &[]).await;
    assert_eq!(status, 303);
    let (status, html) = b.get("/admin/audit/?action=variable_created").await;
    assert_eq!(status, 200);
    assert!(html.contains("variable_created") && !html.contains("api_key_created"), "{html}");
    let (status, _) = b.get("/admin/audit/?date_from=yesterday").await;
    assert_eq!(status, 400);

    // Unknown and malformed ids are 404 pages.
    assert_eq!(b.get("/admin/environments/999999/").await.0, 404);
    assert_eq!(b.get("/admin/variables/abc/").await.0, 404);
}

/// A viewer sees no edit controls, and a post they make anyway is refused by the server.
#[tokio::test]
async fn a_viewer_finds_no_edit_controls_and_is_refused() {
    let server = TestServer::start().await;
    let admin = register(&server, "console_admin").await;
    let viewer: TestUser = register(&server, "console_viewer").await;
    server.add_member(&admin, admin.org_id, &viewer, "viewer").await;
    let post = |path: &str, body: serde_json::Value| {
        server
            .client
            .post(server.url(path))
            .header("authorization", auth(&admin.token))
            .json(&body)
            .send()
    };
    let project: serde_json::Value =
        post("/api/projects/", json!({"name": "Shared", "organization": admin.org_id}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let env: serde_json::Value = post(
        "/api/environments/",
        json!({"name": "dev", "project": project["id"], "environment_type": "development"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let env = env["id"].as_u64().unwrap();

    let mut b = Browser::new(&server);
    b.sign_in(&viewer.email, &viewer.password).await;
    let (status, html) = b.get(&format!("/admin/environments/{env}/")).await;
    assert_eq!(status, 200);
    assert!(!html.contains("Add variable") && !html.contains("Import"), "{html}");
    let (status, html) = b
        .post(&format!("/admin/environments/{env}/variables/"), &[("key", "X"), ("value", "1")])
        .await;
    assert_eq!(status, 403, "{html}");
    let (_, html) = b.get(&format!("/admin/projects/{}/", project["id"])).await;
    assert!(!html.contains("New environment"), "{html}");
}

/// Step 8 of the journey: staff see a request in the traffic page; others are refused.
#[tokio::test]
async fn staff_see_traffic_with_charts_and_others_do_not() {
    use crate::harness::login_admin;
    let server = TestServer::start().await;
    let admin = login_admin(&server).await;
    let user = register(&server, "console_traffic").await;
    let resp = server
        .client
        .get(server.url("/api/projects/"))
        .header("authorization", auth(&user.token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let mut b = Browser::new(&server);
    b.sign_in(&admin.email, &admin.password).await;
    let (status, html) = b.get("/admin/traffic/").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("projects_list"), "the request is listed: {html}");
    assert!(html.matches("<svg class=\"chart\"").count() == 2, "{html}");
    let (status, html) = b.get("/admin/traffic/?status=bogus").await;
    assert_eq!(status, 400);
    assert!(html.contains("field-errors"), "{html}");
    let (status, _) = b.get("/admin/traffic/?hours=abc").await;
    assert_eq!(status, 400);

    let mut other = Browser::new(&server);
    other.sign_in(&user.email, &user.password).await;
    let (status, html) = other.get("/admin/traffic/").await;
    assert_eq!(status, 403);
    assert!(!html.contains("projects_list"));
}

/// Organizations: create one, invite a member, change their role, the last admin cannot
/// leave, a member can; and the profile and password forms.
#[tokio::test]
async fn members_and_profile() {
    let server = TestServer::start().await;
    let owner = register(&server, "console_owner").await;
    let member = register(&server, "console_member").await;
    let mut b = Browser::new(&server);
    b.sign_in(&owner.email, &owner.password).await;
    b.get("/admin/").await;
    let (status, html) = b.post("/admin/orgs/", &[("name", "x")]).await;
    assert_eq!(status, 400, "{html}");
    let (status, to) = b.post("/admin/orgs/", &[("name", "Platform Team")]).await;
    assert_eq!(status, 303, "{to}");
    let org = id_in(&to, "/admin/orgs/");
    let org_page = format!("/admin/orgs/{org}/");
    b.get(&org_page).await;
    let members = format!("{org_page}members/");
    let (status, html) =
        b.post(&members, &[("email", "nobody@example.com"), ("role", "editor")]).await;
    assert!(status.is_client_error(), "{status}: {html}");
    let (status, _) = b.post(&members, &[("email", &member.email), ("role", "bogus")]).await;
    assert_eq!(status, 400);
    let (status, _) = b.post(&members, &[("email", &member.email), ("role", "viewer")]).await;
    assert_eq!(status, 303);
    let role = format!("{org_page}members/{}/role/", member.id);
    assert_eq!(b.post(&role, &[("role", "editor")]).await.0, 303);
    let (_, html) = b.get(&org_page).await;
    assert!(html.contains(&member.email), "{html}");
    // The last admin cannot leave; the refusal is on the page.
    let (status, html) = b.post(&format!("{org_page}members/{}/remove/", owner.id), &[]).await;
    assert!(status.is_client_error(), "{status}");
    assert!(html.contains("alert"), "{html}");

    let mut m = Browser::new(&server);
    m.sign_in(&member.email, &member.password).await;
    let (_, html) = m.get(&org_page).await;
    assert!(!html.contains("Invite a member") && html.contains("Leave"), "{html}");
    let (status, _) = m.post(&role, &[("role", "admin")]).await;
    assert_eq!(status, 403, "an editor cannot promote themself");
    let (status, to) = m.post(&format!("{org_page}members/{}/remove/", member.id), &[]).await;
    assert_eq!((status, to.as_str()), (StatusCode::SEE_OTHER, "/admin/"));
    assert_eq!(m.get(&org_page).await.0, 404, "gone after leaving");

    // Profile and password.
    b.get("/admin/profile/").await;
    let (status, _) = b
        .post(
            "/admin/profile/",
            &[("first_name", "Olga"), ("last_name", "O"), ("email", "not-an-email")],
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = b
        .post(
            "/admin/profile/",
            &[("first_name", "Olga"), ("last_name", "O"), ("email", &owner.email)],
        )
        .await;
    assert_eq!(status, 303);
    let (_, html) = b.get("/admin/profile/").await;
    assert!(html.contains("value=\"Olga\""), "{html}");
    let (status, html) = b
        .post(
            "/admin/profile/password/",
            &[
                ("old_password", "wrong"),
                ("new_password", "a-new-password-1"),
                ("new_password2", "a-new-password-1"),
            ],
        )
        .await;
    assert_eq!(status, 400);
    assert!(html.contains("incorrectly") && !html.contains("a-new-password-1"), "{html}");
    let (status, _) = b
        .post(
            "/admin/profile/password/",
            &[
                ("old_password", &owner.password),
                ("new_password", "a-new-password-1"),
                ("new_password2", "a-new-password-1"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    // This session stays; the old API token is revoked.
    assert_eq!(b.get("/admin/profile/").await.0, 200);
    let resp = server
        .client
        .get(server.url("/api/auth/profile/"))
        .header("authorization", auth(&owner.token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

/// The text between `start` and the next `end` after it.
fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let at = html.find(start).unwrap_or_else(|| panic!("{start} not in {html}")) + start.len();
    let len = html[at..].find(end).unwrap_or_else(|| panic!("{end} not after {start}"));
    &html[at..at + len]
}

/// Personal access tokens (shown once, reissued, revoked; staff grant global metrics) and
/// API keys (rotated; staff deactivate anyone's), each checked against the API.
#[tokio::test]
async fn tokens_and_keys_with_staff_controls() {
    use crate::harness::login_admin;
    let server = TestServer::start().await;
    let admin = login_admin(&server).await;
    let user = register(&server, "console_tokens").await;
    let call = |path: &'static str, authorization: String| {
        let req = server.client.get(server.url(path)).header("authorization", authorization);
        async move { req.send().await.unwrap().status() }
    };
    let mut u = Browser::new(&server);
    u.sign_in(&user.email, &user.password).await;

    u.get("/admin/tokens/").await;
    let org = user.org_id.to_string();
    let (status, html) = u
        .post(
            "/admin/tokens/",
            &[("name", "grafana"), ("company_id", &org), ("expires_in_days", "0")],
        )
        .await;
    assert_eq!(status, 400, "{html}");
    let (status, html) = u
        .post("/admin/tokens/", &[("name", "grafana"), ("company_id", &org), ("read_only", "true")])
        .await;
    assert_eq!(status, 201, "{html}");
    let first = between(&html, "id=\"new-token\">", "<").to_string();
    assert!(!html.contains("Grant global metrics"), "only staff see the staff table");
    let (_, html) = u.get("/admin/tokens/").await;
    assert!(!html.contains(&first) && html.contains("read-only"), "shown once: {html}");
    let id = between(&html, "action=\"/admin/tokens/", "/reissue/").to_string();
    assert_eq!(call("/api/auth/profile/", format!("Bearer {first}")).await, 200);
    assert_eq!(call(crate::metrics::ALL, format!("Bearer {first}")).await, 403);
    // Only staff grant the scope, whatever the form says.
    let (status, _) =
        u.post(&format!("/admin/tokens/{id}/scope/"), &[("access_global_metrics", "true")]).await;
    assert_eq!(status, 403);

    let mut s = Browser::new(&server);
    s.sign_in(&admin.email, &admin.password).await;
    let (_, html) = s.get("/admin/tokens/").await;
    assert!(html.contains(&user.email) && html.contains("Grant global metrics"), "{html}");
    let (status, to) =
        s.post(&format!("/admin/tokens/{id}/scope/"), &[("access_global_metrics", "true")]).await;
    assert_eq!((status, to.as_str()), (StatusCode::SEE_OTHER, "/admin/tokens/"));
    assert_eq!(call(crate::metrics::ALL, format!("Bearer {first}")).await, 401, "old string");
    // Staff cannot reissue another user's token (it would act as them).
    assert_eq!(s.post(&format!("/admin/tokens/{id}/reissue/"), &[]).await.0, 404);

    u.get("/admin/tokens/").await;
    let (status, html) = u.post(&format!("/admin/tokens/{id}/reissue/"), &[]).await;
    assert_eq!(status, 200, "{html}");
    let second = between(&html, "id=\"new-token\">", "<").to_string();
    assert_ne!(first, second);
    assert_eq!(call(crate::metrics::ALL, format!("Bearer {second}")).await, 200);
    assert_eq!(u.post(&format!("/admin/tokens/{id}/revoke/"), &[]).await.0, 303);
    assert_eq!(call("/api/auth/profile/", format!("Bearer {second}")).await, 401);
    let (_, html) = u.get("/admin/tokens/").await;
    assert!(html.contains("revoked") && !html.contains("/reissue/"), "{html}");

    // API keys: rotate (the old secret stops at once), then staff deactivate the new one.
    u.get("/admin/keys/").await;
    let (status, html) = u.post("/admin/keys/", &[("name", "ci")]).await;
    assert_eq!(status, 201);
    let old = between(&html, "id=\"new-key\">", "<").to_string();
    let key_id = between(&html, "action=\"/admin/keys/", "/rotate/").to_string();
    let (status, _) =
        u.post(&format!("/admin/keys/{key_id}/rotate/"), &[("grace_seconds", "x")]).await;
    assert_eq!(status, 400);
    let (status, html) =
        u.post(&format!("/admin/keys/{key_id}/rotate/"), &[("grace_seconds", "0")]).await;
    assert_eq!(status, 200, "{html}");
    let new = between(&html, "id=\"new-key\">", "<").to_string();
    assert_eq!(call("/api/projects/", format!("Api-Key {old}")).await, 401);
    assert_eq!(call("/api/projects/", format!("Api-Key {new}")).await, 200);
    let deactivate = format!("/admin/keys/{key_id}/active/");
    assert_eq!(u.post(&deactivate, &[("is_active", "false")]).await.0, 403, "staff only");
    let (_, html) = s.get("/admin/keys/").await;
    assert!(html.contains("Every user") && html.contains(&user.email), "{html}");
    assert_eq!(s.post(&deactivate, &[("is_active", "false")]).await.0, 303);
    assert_eq!(call("/api/projects/", format!("Api-Key {new}")).await, 401);
    assert_eq!(s.post(&deactivate, &[("is_active", "true")]).await.0, 303);
    assert_eq!(call("/api/projects/", format!("Api-Key {new}")).await, 200);
    let (_, html) = u.get("/admin/keys/").await;
    assert!(!html.contains(&new) && !html.contains("Every user"), "{html}");
}

/// Two-factor sign-in set up on the profile page (the key and the recovery codes shown once),
/// then a sign-in asks for the code: a wrong one is refused on the form, a right one or a
/// recovery code lets the browser in; turning it off needs a code.
#[tokio::test]
async fn two_factor_set_up_and_sign_in() {
    use crate::identity::two_factor::{code_at, room_for, wrong_code};
    let server = TestServer::start().await;
    let user = register(&server, "console_totp").await;
    let mut b = Browser::new(&server);
    b.sign_in(&user.email, &user.password).await;
    let (_, html) = b.get("/admin/profile/").await;
    assert!(html.contains("Set up"), "{html}");
    let (status, to) = b.post("/admin/profile/2fa/activate/", &[("otp", "123456")]).await;
    assert_eq!(status, 400, "nothing to activate: {to}");
    let (status, html) = b.post("/admin/profile/2fa/", &[]).await;
    assert_eq!(status, 200, "{html}");
    let secret = between(&html, "id=\"totp-secret\">", "<").to_string();
    assert!(html.contains("href=\"otpauth:") && html.contains("issuer=Gatehouse"), "{html}");
    let (_, html) = b.get("/admin/profile/").await;
    assert!(!html.contains(&secret) && html.contains("waiting for its first code"), "{html}");
    room_for(10).await;
    let (status, html) =
        b.post("/admin/profile/2fa/activate/", &[("otp", &wrong_code(&secret))]).await;
    assert_eq!(status, 400);
    assert!(html.contains("Invalid OTP code"), "{html}");
    let (status, html) =
        b.post("/admin/profile/2fa/activate/", &[("otp", &code_at(&secret, 0))]).await;
    assert_eq!(status, 200, "{html}");
    let codes = between(&html, "<ul id=\"recovery-codes\">", "</ul>").to_string();
    let recovery = between(&codes, "<code>", "<").to_string();
    let (_, html) = b.get("/admin/profile/").await;
    assert!(!html.contains(&recovery) && html.contains("Turn off"), "{html}");

    // Signing in now takes a code.
    let mut c = Browser::new(&server);
    c.get("/admin/login/").await;
    let (status, html) =
        c.post("/admin/login/", &[("username", &user.email), ("password", &user.password)]).await;
    assert_eq!(status, 200, "{html}");
    let temp = between(&html, "name=\"temp_otp_token\" value=\"", "\"").to_string();
    assert_eq!(c.get("/admin/").await.0, 303, "no session before the code");
    let (status, html) = c
        .post("/admin/login/otp/", &[("temp_otp_token", &temp), ("otp", &wrong_code(&secret))])
        .await;
    assert_eq!(status, 400);
    assert!(html.contains("Invalid OTP code"), "{html}");
    let (status, to) =
        c.post("/admin/login/otp/", &[("temp_otp_token", &temp), ("otp", &recovery)]).await;
    assert_eq!((status, to.as_str()), (StatusCode::SEE_OTHER, "/admin/"));
    assert_eq!(c.get("/admin/").await.0, 200);
    // The temporary token was spent.
    let (status, html) =
        c.post("/admin/login/otp/", &[("temp_otp_token", &temp), ("otp", &recovery)]).await;
    assert_eq!(status, 401);
    assert!(html.contains("password again"), "{html}");

    // Off, with a code (the spent recovery code no longer works).
    let (status, _) = b.post("/admin/profile/2fa/disable/", &[("otp", &recovery)]).await;
    assert_eq!(status, 400);
    room_for(5).await;
    let (status, _) = b.post("/admin/profile/2fa/disable/", &[("otp", &code_at(&secret, 1))]).await;
    assert_eq!(status, 303);
    let mut d = Browser::new(&server);
    d.sign_in(&user.email, &user.password).await;
}

/// API deployments in the console: a workflow (a template error is on the form), a
/// deployment whose key is shown once and works, its executions listed without their
/// input or result, a key rotation; a viewer of the organization is refused.
#[tokio::test]
async fn deployments_create_call_and_rotate() {
    let server = TestServer::start().await;
    let owner = register(&server, "console_deploy").await;
    let mut b = Browser::new(&server);
    b.sign_in(&owner.email, &owner.password).await;
    let org = owner.org_id;
    let list = format!("/admin/orgs/{org}/deployments/");
    let (status, html) = b.get(&list).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("No workflows yet"), "{html}");
    let workflows = format!("/admin/orgs/{org}/workflows/");
    let (status, html) = b
        .post(&workflows, &[("workflow_name", "greeter"), ("template", "hello {{ input.name")])
        .await;
    assert_eq!(status, 400);
    assert!(html.contains("line 1") && html.contains("aria-invalid"), "{html}");
    let template = "hello {{ input.name }}, secret-input-marker";
    let (status, to) = b
        .post(
            &workflows,
            &[("workflow_name", "greeter"), ("template", template), ("output_format", "text")],
        )
        .await;
    assert_eq!((status, to.as_str()), (StatusCode::SEE_OTHER, list.as_str()));
    let (_, html) = b.get(&list).await;
    let workflow = between(&html, "<option value=\"", "\"").to_string();
    let (status, _) = b.post(&list, &[("api_name", "Bad Name"), ("workflow", &workflow)]).await;
    assert_eq!(status, 400);
    let (status, html) = b.post(&list, &[("api_name", "greeter"), ("workflow", &workflow)]).await;
    assert_eq!(status, 201, "{html}");
    let key = between(&html, "id=\"new-key\">", "<").to_string();
    let dep = between(&html, &format!("href=\"/admin/orgs/{org}/deployments/"), "/").to_string();
    let (_, html) = b.get(&list).await;
    assert!(!html.contains(&key), "shown once");

    let submit = |key: String| {
        let req = server
            .client
            .post(server.url(&format!("/deployment/{key}/")))
            .header("authorization", format!("Bearer {key}"))
            .json(&json!({"input_data": {"name": "Ada"}, "timeout": 10}));
        async move { req.send().await.unwrap().status() }
    };
    assert!(submit(key.clone()).await.is_success());
    let page = format!("/admin/orgs/{org}/deployments/{dep}/");
    let (status, html) = b.get(&page).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("COMPLETED") || html.contains("PENDING") || html.contains("EXECUTING"));
    assert!(!html.contains("Ada") && !html.contains("secret-input-marker"), "{html}");
    let (status, html) = b.post(&format!("{page}rotate/"), &[("grace_seconds", "0")]).await;
    assert_eq!(status, 200, "{html}");
    let new = between(&html, "id=\"new-key\">", "<").to_string();
    assert_eq!(submit(key).await, 401);
    assert!(submit(new).await.is_success());

    // Another user, and the same user at a malformed id, get pages, not data.
    let other = register(&server, "console_deploy_other").await;
    let mut o = Browser::new(&server);
    o.sign_in(&other.email, &other.password).await;
    assert_eq!(o.get(&list).await.0, 404);
    assert_eq!(o.get(&page).await.0, 404);
    assert_eq!(b.get(&format!("/admin/orgs/{org}/deployments/x/")).await.0, 404);
}
