//! Prometheus metrics (issue 12): `GET /api/v1/metrics` (the token's company: its admins and
//! staff; ShellUI's order of checks) and `GET /api/v1/metrics/all` (staff, or a PAT with
//! `pat_agm`); organization isolation; object counts kept by commit effects and recounted at
//! start; and the exposition read back by Python's `prometheus_client` parsers.

use serde_json::{json, Value};

use crate::harness::{assert_error, auth, login_admin, register, TestServer, TestUser};

pub(crate) const ORG: &str = "/api/v1/metrics";
pub(crate) const ALL: &str = "/api/v1/metrics/all";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub(crate) async fn get(server: &TestServer, path: &str, authorization: &str) -> reqwest::Response {
    server.client.get(server.url(path)).header("authorization", authorization).send().await.unwrap()
}

pub(crate) async fn post(server: &TestServer, path: &str, u: &TestUser, body: Value) -> Value {
    let resp = server
        .client
        .post(server.url(path))
        .header("authorization", auth(&u.token))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "POST {path}");
    resp.json().await.unwrap()
}

/// A session JWT speaking for `company`.
pub(crate) async fn jwt(server: &TestServer, u: &TestUser, company: u64) -> String {
    let body = json!({"email": u.email, "password": u.password, "company_id": company});
    let resp = server.client.post(server.url("/api/auth/login/")).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200, "login with company_id");
    let body: Value = resp.json().await.unwrap();
    format!("Bearer {}", body["access"].as_str().unwrap())
}

/// A PAT of `u` (`body` adds read_only, access_global_metrics, company_id).
pub(crate) async fn pat(server: &TestServer, u: &TestUser, body: Value) -> String {
    let created = post(server, "/api/v1/personal-access-tokens", u, body).await;
    format!("Bearer {}", created["access_token"].as_str().unwrap())
}

pub(crate) async fn scrape(server: &TestServer, path: &str, authorization: &str) -> String {
    let resp = get(server, path, authorization).await;
    assert_eq!(resp.status(), 200, "scrape {path}");
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert_eq!(ct, OPENMETRICS);
    resp.text().await.unwrap()
}

/// The value of the sample line starting with `series` (`name{labels}`), if any.
pub(crate) fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn objects(org: u64, kind: &str) -> String {
    format!("gatehouse_org_objects{{organization=\"{org}\",kind=\"{kind}\"}}")
}

#[tokio::test]
async fn organization_route_checks_in_shellui_order() {
    let server = TestServer::start().await;
    let owner = register(&server, "m_owner").await;
    let member = register(&server, "m_member").await;
    server.add_member(&owner, owner.org_id, &member, "editor").await;
    let owner_jwt = jwt(&server, &owner, owner.org_id).await;

    // 1. company_id in the query string: 400, before anything else (even for a good token).
    let q = format!("{ORG}?company_id={}", owner.org_id);
    let body = assert_error(get(&server, &q, &owner_jwt).await, 400).await;
    assert!(body.to_string().contains("company_id"), "{body}");
    assert_error(get(&server, &format!("{ORG}?x=1&company_id="), &owner_jwt).await, 400).await;
    // 2. A login token carries no company_id claim: 400 saying so.
    let body = assert_error(get(&server, ORG, &auth(&owner.token)).await, 400).await;
    assert!(body.to_string().contains("company_id claim"), "{body}");
    // 4. An editor of the company: 403 (admins and staff only).
    let member_jwt = jwt(&server, &member, owner.org_id).await;
    assert_error(get(&server, ORG, &member_jwt).await, 403).await;
    // Not a PAT's own company either: an editor's read-only PAT for it is refused the same way.
    let member_pat =
        pat(&server, &member, json!({"read_only": true, "company_id": owner.org_id})).await;
    assert_error(get(&server, ORG, &member_pat).await, 403).await;
    // The admin: 200 with a JWT and with a read-only PAT.
    let text = scrape(&server, ORG, &owner_jwt).await;
    assert!(text.ends_with("# EOF\n"));
    let ro = pat(&server, &owner, json!({"read_only": true})).await;
    scrape(&server, ORG, &ro).await;
    // No credential at all: 401.
    let resp = server.client.get(server.url(ORG)).send().await.unwrap();
    assert_error(resp, 401).await;

    // 3. The token's organization no longer exists: 404 (for staff, whom membership does
    // not gate; a member's token dies with the membership).
    let admin = login_admin(&server).await;
    let gone = post(&server, "/api/organizations/", &admin, json!({"name": "Short Lived"})).await;
    let gone_id = gone["id"].as_u64().unwrap();
    let gone_jwt = jwt(&server, &admin, gone_id).await;
    let resp = server
        .client
        .delete(server.url(&format!("/api/organizations/{gone_id}/")))
        .header("authorization", auth(&admin.token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_error(get(&server, ORG, &gone_jwt).await, 404).await;
}

#[tokio::test]
async fn staff_reads_any_company_it_speaks_for_and_the_formats_negotiate() {
    let server = TestServer::start().await;
    let admin = login_admin(&server).await;
    let admin_jwt = jwt(&server, &admin, admin.org_id).await;
    scrape(&server, ORG, &admin_jwt).await;
    // Prometheus's own Accept header prefers OpenMetrics.
    let accept =
        "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1";
    let resp = server
        .client
        .get(server.url(ORG))
        .header("authorization", &admin_jwt)
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], OPENMETRICS);
    // An old scraper asking for the 0.0.4 text format gets it.
    let resp = server
        .client
        .get(server.url(ALL))
        .header("authorization", auth(&admin.token))
        .header("accept", "text/plain; version=0.0.4")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    let text = resp.text().await.unwrap();
    assert!(text.contains("# TYPE gatehouse_http_requests_total counter"), "{text}");
    assert!(!text.contains("# EOF"));
}

#[tokio::test]
async fn global_route_is_for_staff_and_agm_pats_only() {
    let server = TestServer::start().await;
    let admin = login_admin(&server).await;
    let user = register(&server, "m_plain").await;
    // Staff with their own login: token and session JWT.
    let text = scrape(&server, ALL, &auth(&admin.token)).await;
    scrape(&server, ALL, &jwt(&server, &admin, admin.org_id).await).await;
    for needle in [
        "gatehouse_build_info{version=",
        "gatehouse_process_uptime_seconds_total ",
        "gatehouse_process_cpu_seconds_total ",
        "gatehouse_process_resident_memory_bytes ",
        "gatehouse_process_open_fds ",
        "gatehouse_storage_data_file_size_bytes ",
        "gatehouse_index_documents_total ",
        "gatehouse_index_lag_records ",
        "gatehouse_logs_queue_depth_records ",
        "gatehouse_tls_certificate_expiry_timestamp_seconds ",
    ] {
        assert!(text.contains(needle), "{needle} missing from /all");
    }
    let expiry = value(&text, "gatehouse_tls_certificate_expiry_timestamp_seconds").unwrap();
    assert!(expiry > 1.7e9, "certificate expiry {expiry}");
    // A staff PAT with pat_agm: yes; a staff PAT without it: no (PATs speak for one company).
    let agm = pat(&server, &admin, json!({"read_only": true, "access_global_metrics": true})).await;
    scrape(&server, ALL, &agm).await;
    let plain_pat = pat(&server, &admin, json!({"read_only": true})).await;
    assert_error(get(&server, ALL, &plain_pat).await, 403).await;
    // Anyone else: 403 (an org admin included), and 401 without a credential.
    assert_error(get(&server, ALL, &auth(&user.token)).await, 403).await;
    assert_error(get(&server, ALL, &jwt(&server, &user, user.org_id).await).await, 403).await;
    let resp = server.client.get(server.url(ALL)).send().await.unwrap();
    assert_error(resp, 401).await;
}

#[tokio::test]
async fn each_company_sees_only_its_series_and_counts_follow_commits() {
    let server = TestServer::start().await;
    let a = register(&server, "m_alpha").await;
    let b = register(&server, "m_beta").await;
    let (a_jwt, b_jwt) = (jwt(&server, &a, a.org_id).await, jwt(&server, &b, b.org_id).await);
    let project =
        post(&server, "/api/projects/", &a, json!({"name": "Alpha", "organization": a.org_id}))
            .await;
    let env =
        post(&server, "/api/environments/", &a, json!({"name": "prod", "project": project["id"]}))
            .await;
    for key in ["ONE", "TWO"] {
        let body = json!({"key": key, "value": "v", "environment": env["id"]});
        post(&server, "/api/variables/", &a, body).await;
    }
    post(&server, "/api/projects/", &b, json!({"name": "Beta", "organization": b.org_id})).await;
    // Requests by b with b's company: counted under b.
    scrape(&server, ORG, &b_jwt).await;

    let text = scrape(&server, ORG, &a_jwt).await;
    assert_eq!(value(&text, &objects(a.org_id, "projects")), Some(1.0), "{text}");
    assert_eq!(value(&text, &objects(a.org_id, "environments")), Some(1.0));
    assert_eq!(value(&text, &objects(a.org_id, "variables")), Some(2.0));
    let created = format!(
        "gatehouse_audit_events_total{{organization=\"{}\",action=\"variable_created\"}}",
        a.org_id
    );
    assert_eq!(value(&text, &created), Some(2.0), "{text}");
    let listed = format!(
        "gatehouse_http_requests_total{{organization=\"{}\",service=\"gatehouse.Variables\",method=\"variables_create\",status=\"201\"}}",
        a.org_id
    );
    assert_eq!(value(&text, &listed), Some(2.0), "{text}");
    // Nothing of b's: no label, no operation b alone called.
    assert!(!text.contains(&format!("organization=\"{}\"", b.org_id)), "{text}");
    let b_text = scrape(&server, ORG, &b_jwt).await;
    assert!(!b_text.contains(&format!("organization=\"{}\"", a.org_id)), "{b_text}");
    assert_eq!(value(&b_text, &objects(b.org_id, "projects")), Some(1.0));
    assert_eq!(value(&b_text, &objects(b.org_id, "variables")), Some(0.0));

    // Deleting the project cascades: every count drops.
    let resp = server
        .client
        .delete(server.url(&format!("/api/projects/{}/", project["id"])))
        .header("authorization", auth(&a.token))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "delete project: {}", resp.status());
    let text = scrape(&server, ORG, &a_jwt).await;
    for kind in ["projects", "environments", "variables"] {
        assert_eq!(value(&text, &objects(a.org_id, kind)), Some(0.0), "{kind}: {text}");
    }
    // PATs: created +1, revoked -1; the counts survive a restart (counted once at start).
    let p = post(&server, "/api/v1/personal-access-tokens", &a, json!({"name": "p"})).await;
    post(&server, "/api/v1/personal-access-tokens", &a, json!({"name": "q"})).await;
    let resp = server
        .client
        .post(server.url(&format!("/api/v1/personal-access-tokens/{}/revoke", p["id"])))
        .header("authorization", auth(&a.token))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "revoke: {}", resp.status());
    let text = scrape(&server, ORG, &a_jwt).await;
    assert_eq!(value(&text, &objects(a.org_id, "pats")), Some(1.0), "{text}");
    let server = server.restart().await;
    let a_jwt = jwt(&server, &a, a.org_id).await;
    let text = scrape(&server, ORG, &a_jwt).await;
    assert_eq!(value(&text, &objects(a.org_id, "pats")), Some(1.0), "{text}");
    let b_jwt = jwt(&server, &b, b.org_id).await;
    let b_text = scrape(&server, ORG, &b_jwt).await;
    assert_eq!(value(&b_text, &objects(b.org_id, "projects")), Some(1.0), "{b_text}");
}

/// Runs Python's `prometheus_client` parser over `text`; `None` when the module is missing.
fn python_parse(parser: &str, text: &str) -> Option<String> {
    use std::io::Write as _;
    let script = format!(
        "import sys\ntry:\n    from {parser} import text_string_to_metric_families\nexcept ImportError:\n    sys.exit(3)\nfams = list(text_string_to_metric_families(sys.stdin.read()))\nprint('\\n'.join(sorted(f.name for f in fams)))\n"
    );
    let mut child = std::process::Command::new("python3")
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.code() == Some(3) {
        return None;
    }
    assert!(out.status.success(), "parser failed: {}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8(out.stdout).unwrap())
}

#[tokio::test]
async fn a_real_parser_reads_both_formats() {
    let server = TestServer::start().await;
    let admin = login_admin(&server).await;
    let a = register(&server, "m_parsed").await;
    post(&server, "/api/projects/", &a, json!({"name": "Parsed", "organization": a.org_id})).await;
    let org_text = scrape(&server, ORG, &jwt(&server, &a, a.org_id).await).await;
    let all_text = scrape(&server, ALL, &auth(&admin.token)).await;
    let Some(names) = python_parse("prometheus_client.openmetrics.parser", &all_text) else {
        eprintln!(
            "skipped: python3 prometheus_client is not installed (pip install prometheus-client)"
        );
        return;
    };
    for family in [
        "gatehouse_http_requests",
        "gatehouse_http_request_duration_seconds",
        "gatehouse_org_objects",
        "gatehouse_build",
    ] {
        assert!(names.lines().any(|n| n == family), "{family} not parsed from /all: {names}");
    }
    let names = python_parse("prometheus_client.openmetrics.parser", &org_text).unwrap();
    assert!(names.lines().any(|n| n == "gatehouse_audit_events"), "{names}");
    let resp = server
        .client
        .get(server.url(ALL))
        .header("authorization", auth(&admin.token))
        .header("accept", "text/plain; version=0.0.4")
        .send()
        .await
        .unwrap();
    let names = python_parse("prometheus_client.parser", &resp.text().await.unwrap()).unwrap();
    assert!(names.lines().any(|n| n == "gatehouse_http_requests"), "{names}");
}

#[tokio::test]
async fn ingested_names_are_capped_per_organization() {
    let server = TestServer::start_with(&[("GATEHOUSE_METRICS_MAX_SERIES", "3")]).await;
    let admin = login_admin(&server).await;
    let items: Vec<Value> = (0..6)
        .map(|i| json!({"service_name": "ing.Capped", "method_name": format!("M{i}"), "duration_ms": 5, "status": "success"}))
        .collect();
    let resp = server
        .client
        .post(server.url("/api/grpc/monitor/requests/"))
        .header("authorization", auth(&admin.token))
        .json(&json!({"requests": items}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let text = scrape(&server, ORG, &jwt(&server, &admin, admin.org_id).await).await;
    let named = (0..6).filter(|i| text.contains(&format!("method=\"M{i}\""))).count();
    assert!((1..=3).contains(&named), "{named} ingested names kept: {text}");
    let other = format!(
        "gatehouse_http_requests_total{{organization=\"{}\",service=\"other\",method=\"other\",status=\"0\"}}",
        admin.org_id
    );
    assert!(value(&text, &other).is_some_and(|v| v >= 3.0), "{text}");
    // The cap is per organization: another organization's names are its own.
    let all = scrape(&server, ALL, &auth(&admin.token)).await;
    assert!(!all.contains("organization=\"none\",service=\"other\""), "{all}");
}
