//! The tenant and permission matrix (issue 16): every operation of the served OpenAPI
//! document, its path parameters filled with the owner's real ids, called with credentials
//! that must not reach the owner's data — another organization's user, a viewer of the
//! owner's organization, the owner's read-only PAT, an expired key, a revoked key and none.
//! Each answer is the documented refusal (or the caller's own, empty view), never a 5xx, and
//! no body carries the owner's marked data; afterwards everything of the owner is intact.

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{auth, register, TestServer, TestUser};

/// In the owner's project name, description and variable value: never in another's answer.
const MARK: &str = "zq7matrixmark";

/// Operations that act on the caller's own session or account: calling them would end the
/// credential under test (logout, password change) or lock the account, not probe the owner.
/// As the document writes them (no trailing slash).
const OWN_ACCOUNT: &[&str] = &[
    "/api/auth/logout",
    "/api/auth/password/change",
    "/api/auth/2fa/totp",
    "/api/auth/2fa/totp/activate",
];

struct Owner {
    user: TestUser,
    project: u64,
    env: u64,
    var: u64,
    key: u64,
    pat: u64,
    workflow: u64,
    deployment: u64,
}

async fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    authorization: Option<&str>,
    body: Option<Value>,
) -> (u16, String) {
    let mut req = server.client.request(method, server.url(path));
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

async fn created(server: &TestServer, who: &str, path: &str, body: Value) -> Value {
    let (status, text) = send(server, Method::POST, path, Some(who), Some(body)).await;
    assert_eq!(status, 201, "POST {path}: {text}");
    serde_json::from_str(&text).unwrap()
}

async fn seed_owner(server: &TestServer) -> Owner {
    let user = register(server, "matrix_owner").await;
    let a = auth(&user.token);
    let org = user.org_id;
    let project = created(
        server,
        &a,
        "/api/projects/",
        json!({"name": format!("{MARK} project"), "description": MARK, "organization": org}),
    )
    .await["id"]
        .as_u64()
        .unwrap();
    let env = created(
        server,
        &a,
        "/api/environments/",
        json!({"name": "prod", "project": project, "environment_type": "production"}),
    )
    .await["id"]
        .as_u64()
        .unwrap();
    let var = created(
        server,
        &a,
        "/api/variables/",
        json!({"key": "MATRIX_SECRET", "value": format!("{MARK}-value"), "environment": env}),
    )
    .await["id"]
        .as_u64()
        .unwrap();
    let key = created(server, &a, "/api/api-keys/", json!({"name": format!("{MARK} key")})).await
        ["id"]
        .as_u64()
        .unwrap();
    let pat = created(
        server,
        &a,
        "/api/v1/personal-access-tokens",
        json!({"name": "matrix", "company_id": org}),
    )
    .await["id"]
        .as_u64()
        .unwrap();
    let workflow = created(
        server,
        &a,
        &format!("/unstract/{org}/api/v2/workflow/"),
        json!({"workflow_name": "matrix", "template": format!("{MARK} {{{{ input }}}}")}),
    )
    .await["id"]
        .as_u64()
        .unwrap();
    let deployment = created(
        server,
        &a,
        &format!("/unstract/{org}/api/v2/api-deployment/"),
        json!({"api_name": "matrix", "workflow": workflow}),
    )
    .await["id"]
        .as_u64()
        .unwrap();
    Owner { user, project, env, var, key, pat, workflow, deployment }
}

/// The document's path with each parameter replaced by the owner's id it names.
fn fill(path: &str, o: &Owner) -> String {
    let id = if path.starts_with("/api/projects/") {
        o.project
    } else if path.starts_with("/api/environments/") {
        o.env
    } else if path.starts_with("/api/variables/") {
        o.var
    } else if path.contains("api-keys/") {
        o.key
    } else if path.starts_with("/api/v1/personal-access-tokens/") {
        o.pat
    } else if path.contains("/workflow/") {
        o.workflow
    } else if path.contains("/api-deployment/") {
        o.deployment
    } else {
        o.user.org_id
    };
    path.replace("{org_id}", &o.user.org_id.to_string())
        .replace("{user_id}", &o.user.id.to_string())
        .replace("{app_label}", "gatehouse")
        .replace("{id}", &id.to_string())
}

/// Credentials that must be refused outright wherever the document asks for one.
struct Refused {
    name: &'static str,
    header: Option<String>,
}

/// Credentials that authenticate but must not reach the owner's data or change it.
struct Limited {
    name: &'static str,
    header: String,
    /// May read what the owner's organization holds (a viewer, the owner's read-only PAT).
    member: bool,
}

#[tokio::test]
async fn every_operation_refuses_other_tenants_and_weaker_credentials() {
    let server = TestServer::start().await;
    let o = seed_owner(&server).await;
    let a = auth(&o.user.token);

    let other = register(&server, "matrix_other").await;
    let viewer = register(&server, "matrix_viewer").await;
    server.add_member(&o.user, o.user.org_id, &viewer, "viewer").await;
    let ro_pat = created(
        &server,
        &a,
        "/api/v1/personal-access-tokens",
        json!({"name": "ro", "read_only": true, "company_id": o.user.org_id}),
    )
    .await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let revoked = created(&server, &a, "/api/api-keys/", json!({"name": "revoked"})).await;
    let revoked_key = revoked["key"].as_str().unwrap().to_string();
    let revoked_id = revoked["id"].as_u64().unwrap();
    let (status, _) =
        send(&server, Method::DELETE, &format!("/api/api-keys/{revoked_id}/"), Some(&a), None)
            .await;
    assert_eq!(status, 204);
    let soon = (time::OffsetDateTime::now_utc() + time::Duration::seconds(2))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let expiring =
        created(&server, &a, "/api/api-keys/", json!({"name": "expiring", "expires_at": soon}))
            .await["key"]
            .as_str()
            .unwrap()
            .to_string();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;

    let refused = [
        Refused { name: "none", header: None },
        Refused { name: "revoked key", header: Some(format!("Api-Key {revoked_key}")) },
        Refused { name: "expired key", header: Some(format!("Api-Key {expiring}")) },
    ];
    let limited = [
        Limited { name: "other organization", header: auth(&other.token), member: false },
        Limited { name: "viewer", header: auth(&viewer.token), member: true },
        Limited { name: "read-only PAT", header: format!("Bearer {ro_pat}"), member: true },
    ];

    let (status, doc) = send(&server, Method::GET, "/api/schema/?format=json", None, None).await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&doc).unwrap();
    let mut operations = 0;
    // How many operations demand a credential, and how many refusals of another tenant were
    // seen: a walk that reached nothing would pass vacuously.
    let (mut secured_ops, mut tenant_refusals) = (0, 0);
    let mut problems = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else { continue };
            if OWN_ACCOUNT.contains(&path.trim_end_matches('/')) && method != Method::GET {
                continue;
            }
            operations += 1;
            let secured = op.get("security").and_then(Value::as_array).is_some_and(|s| {
                // `[{}]` alongside a scheme means the credential is optional.
                !s.is_empty() && s.iter().all(|r| r.as_object().is_some_and(|m| !m.is_empty()))
            });
            secured_ops += usize::from(secured);
            let url = fill(path, &o);
            let targets_owner = ["{id}", "{org_id}", "{user_id}"].iter().any(|p| path.contains(p));
            let unsafe_method = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
            let body = unsafe_method.then(|| json!({}));
            let what = |who: &str, status: u16| format!("{who}: {method} {url} → {status}");

            for r in &refused {
                let (status, text) =
                    send(&server, method.clone(), &url, r.header.as_deref(), body.clone()).await;
                if status >= 500 || text.contains(MARK) {
                    problems.push(format!("{} (5xx or owner data)", what(r.name, status)));
                } else if secured && status != 401 {
                    problems.push(format!("{} (expected 401)", what(r.name, status)));
                }
            }
            for l in &limited {
                let (status, text) =
                    send(&server, method.clone(), &url, Some(&l.header), body.clone()).await;
                let leaked = !l.member && text.contains(MARK);
                let changed =
                    targets_owner && (200..300).contains(&status) && (unsafe_method || !l.member);
                if !l.member && targets_owner && matches!(status, 403 | 404) {
                    tenant_refusals += 1;
                }
                // 401: the credential under test stopped working, so the rest proves nothing.
                if status >= 500 || status == 401 || leaked || changed {
                    problems.push(what(l.name, status));
                }
            }
        }
    }
    assert!(operations > 80, "the document lists {operations} operations");
    assert!(secured_ops > 60, "{secured_ops} of {operations} operations ask for a credential");
    assert!(tenant_refusals > 30, "only {tenant_refusals} refusals of another tenant");
    assert!(problems.is_empty(), "{} refusals missing:\n{}", problems.len(), problems.join("\n"));

    // Nothing of the owner's was changed or removed along the way.
    let (status, text) =
        send(&server, Method::GET, &format!("/api/variables/{}/", o.var), Some(&a), None).await;
    assert_eq!(status, 200, "{text}");
    let (status, text) =
        send(&server, Method::GET, &format!("/api/projects/{}/", o.project), Some(&a), None).await;
    assert!(status == 200 && text.contains(MARK), "{status} {text}");
    let (status, text) =
        send(&server, Method::GET, &format!("/api/api-keys/{}/", o.key), Some(&a), None).await;
    assert!(status == 200 && text.contains("\"is_active\":true"), "{status} {text}");
    let (status, _) =
        send(&server, Method::GET, "/api/auth/profile/", Some(&format!("Bearer {ro_pat}")), None)
            .await;
    assert_eq!(status, 200, "the read-only PAT still works");
}
