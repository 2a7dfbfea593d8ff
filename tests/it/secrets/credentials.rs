//! Read-only and organization-scoped credentials (API keys and personal access tokens) on the
//! secrets routes: reads pass, every write is refused, other organizations stay invisible.

use reqwest::Method;
use serde_json::{json, Value};

use super::{ok, Team};
use crate::harness::assert_error;

async fn api_key(t: &Team, body: Value) -> String {
    let resp = t.post("/api/api-keys/", &t.owner, body).await;
    ok(resp, 201).await["key"].as_str().unwrap().to_string()
}

async fn read_only_pat(t: &Team) -> String {
    let body = json!({"name": "ci", "read_only": true});
    let resp = t.post("/api/v1/personal-access-tokens", &t.owner, body).await;
    ok(resp, 201).await["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn read_only_credentials_read_and_export_but_never_write() {
    let t = Team::new().await;
    let env = t.env().await;
    let var = t.variable(env, "API_KEY", "sk_live_123").await;
    let project = ok(t.get(&format!("/api/environments/{env}/"), &t.owner).await, 200).await
        ["project"]
        .as_u64()
        .unwrap();
    let key = api_key(&t, json!({"name": "ro", "read_only": true})).await;
    let pat = read_only_pat(&t).await;
    for header in [format!("Api-Key {key}"), format!("Bearer {key}"), format!("Bearer {pat}")] {
        let t = &t;
        let get = |path: String| {
            let header = header.clone();
            async move { t.call_as(Method::GET, &path, &header, None).await }
        };
        assert_eq!(ok(get("/api/projects/".into()).await, 200).await["count"], 1);
        let v = ok(get(format!("/api/variables/{var}/")).await, 200).await;
        assert_eq!(v["decrypted_value"], "sk_live_123");
        ok(get(format!("/api/environments/{env}/variables/")).await, 200).await;
        ok(get(format!("/api/variables/{var}/versions/")).await, 200).await;
        assert_eq!(get(format!("/api/environments/{env}/export/")).await.status(), 200);

        let writes: Vec<(Method, String, Option<Value>)> = vec![
            (
                Method::POST,
                "/api/projects/".into(),
                Some(json!({"name": "RO Project", "organization": t.owner.org_id})),
            ),
            (Method::PATCH, format!("/api/projects/{project}/"), Some(json!({"description": "x"}))),
            (Method::DELETE, format!("/api/projects/{project}/"), None),
            (
                Method::POST,
                "/api/environments/".into(),
                Some(json!({"name": "ro", "project": project})),
            ),
            (Method::PUT, format!("/api/environments/{env}/"), Some(json!({"name": "renamed"}))),
            (Method::DELETE, format!("/api/environments/{env}/"), None),
            (
                Method::POST,
                "/api/variables/".into(),
                Some(json!({"key": "NEW", "value": "v", "environment": env})),
            ),
            (Method::PATCH, format!("/api/variables/{var}/"), Some(json!({"value": "changed"}))),
            (Method::DELETE, format!("/api/variables/{var}/"), None),
            (Method::POST, format!("/api/variables/{var}/rollback/"), Some(json!({"version": 1}))),
        ];
        for (method, path, body) in writes {
            let resp = t.call_as(method.clone(), &path, &header, body).await;
            assert_error(resp, 403).await;
        }
        let form = reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::bytes(b"RO=1\n".to_vec()));
        let resp =
            t.s.client
                .post(t.s.url(&format!("/api/environments/{env}/import/")))
                .header("authorization", &header)
                .multipart(form)
                .send()
                .await
                .unwrap();
        assert_error(resp, 403).await;
    }
    // Nothing changed.
    let v = ok(t.get(&format!("/api/variables/{var}/"), &t.owner).await, 200).await;
    assert_eq!(
        (v["decrypted_value"].as_str(), v["version"].as_u64()),
        (Some("sk_live_123"), Some(1))
    );
    assert_eq!(ok(t.get("/api/projects/", &t.owner).await, 200).await["count"], 1);
}

#[tokio::test]
async fn organization_scoped_key_sees_only_its_organization() {
    let t = Team::new().await;
    let env = t.env().await;
    let var = t.variable(env, "FIRST_ORG", "one").await;
    let second =
        ok(t.post("/api/organizations/", &t.owner, json!({"name": "Second Org"})).await, 201).await;
    let second_id = second["id"].as_u64().unwrap();
    let key = api_key(&t, json!({"name": "scoped", "organization": second_id})).await;
    let header = format!("Api-Key {key}");
    let body = json!({"name": "Scoped Project", "organization": second_id});
    let p = ok(t.call_as(Method::POST, "/api/projects/", &header, Some(body)).await, 201).await;
    assert_eq!(p["organization"], second_id);
    // Without `organization`, the key's organization is used.
    let p2 = ok(
        t.call_as(Method::POST, "/api/projects/", &header, Some(json!({"name": "Implicit"}))).await,
        201,
    )
    .await;
    assert_eq!(p2["organization"], second_id);
    let list = ok(t.call_as(Method::GET, "/api/projects/", &header, None).await, 200).await;
    assert_eq!(list["count"], 2);
    assert_error(
        t.call_as(Method::GET, &format!("/api/variables/{var}/"), &header, None).await,
        404,
    )
    .await;
    assert_error(
        t.call_as(Method::GET, &format!("/api/environments/{env}/export/"), &header, None).await,
        404,
    )
    .await;
    let body = json!({"name": "Wrong Org", "organization": t.owner.org_id});
    assert_error(t.call_as(Method::POST, "/api/projects/", &header, Some(body)).await, 404).await;
    assert_eq!(
        ok(t.call_as(Method::GET, "/api/variables/", &header, None).await, 200).await["count"],
        0
    );
    // The owner's own token still sees both organizations.
    assert_eq!(ok(t.get("/api/projects/", &t.owner).await, 200).await["count"], 3);
}
