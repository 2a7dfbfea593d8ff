//! `/api/projects/`: fields, validation, uniqueness, search, paging and who may do what.

use serde_json::json;

use super::{ok, Team};
use crate::harness::assert_error;

#[tokio::test]
async fn project_crud_by_role() {
    let t = Team::new().await;
    let org = t.owner.org_id;
    let body =
        json!({"name": "Web Application", "description": "Main web app", "organization": org});
    let p = ok(t.post("/api/projects/", &t.owner, body).await, 201).await;
    for field in [
        "id",
        "name",
        "description",
        "organization",
        "organization_name",
        "created_at",
        "updated_at",
        "created_by_name",
        "environment_count",
    ] {
        assert!(p.get(field).is_some(), "missing {field}: {p}");
    }
    assert_eq!(p["organization"], org);
    assert_eq!(p["environment_count"], 0);
    assert!(p["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(p["created_by_name"].as_str().unwrap().starts_with("owner"));
    let id = p["id"].as_u64().unwrap();
    let path = format!("/api/projects/{id}/");

    // Names are unique per organization, case-insensitively.
    let dup = json!({"name": "web application", "organization": org});
    assert_error(t.post("/api/projects/", &t.editor, dup).await, 409).await;
    // The editor creates, the viewer may not, the outsider cannot see the organization.
    ok(
        t.post("/api/projects/", &t.editor, json!({"name": "Editor Project", "organization": org}))
            .await,
        201,
    )
    .await;
    assert_error(
        t.post("/api/projects/", &t.viewer, json!({"name": "Nope", "organization": org})).await,
        403,
    )
    .await;
    assert_error(
        t.post("/api/projects/", &t.outsider, json!({"name": "Nope", "organization": org})).await,
        404,
    )
    .await;
    // The outsider's own organization works without naming it (their only one).
    ok(t.post("/api/projects/", &t.outsider, json!({"name": "Web Application"})).await, 201).await;

    assert_eq!(ok(t.get(&path, &t.viewer).await, 200).await["name"], "Web Application");
    assert_error(t.get(&path, &t.outsider).await, 404).await;
    assert_error(t.get("/api/projects/999999/", &t.owner).await, 404).await;
    assert_error(t.get("/api/projects/abc/", &t.owner).await, 400).await;

    let patched = ok(t.patch(&path, &t.editor, json!({"description": "Updated"})).await, 200).await;
    assert_eq!(patched["description"], "Updated");
    assert_eq!(patched["name"], "Web Application");
    assert_error(t.patch(&path, &t.viewer, json!({"description": "x"})).await, 403).await;
    assert_error(t.patch(&path, &t.outsider, json!({"description": "x"})).await, 404).await;
    assert_error(t.put(&path, &t.editor, json!({"description": "no name"})).await, 400).await;
    let put =
        ok(t.put(&path, &t.editor, json!({"name": "Web App 2", "description": null})).await, 200)
            .await;
    assert_eq!(put["name"], "Web App 2");
    assert!(put["description"].is_null());
    assert_error(t.patch(&path, &t.owner, json!({"organization": t.outsider.org_id})).await, 400)
        .await;
    assert_error(t.patch(&path, &t.owner, json!({"name": "Editor Project"})).await, 409).await;

    assert_error(t.delete(&path, &t.editor).await, 403).await;
    assert_error(t.delete(&path, &t.viewer).await, 403).await;
    assert_error(t.delete(&path, &t.outsider).await, 404).await;
    ok(t.delete(&path, &t.owner).await, 204).await;
    assert_error(t.get(&path, &t.owner).await, 404).await;
    // The name is free again.
    ok(
        t.post("/api/projects/", &t.owner, json!({"name": "Web App 2", "organization": org})).await,
        201,
    )
    .await;
}

#[tokio::test]
async fn project_validation_and_bad_bodies() {
    let t = Team::new().await;
    let org = t.owner.org_id;
    let bad = assert_error(
        t.post("/api/projects/", &t.owner, json!({"name": "x", "organization": org})).await,
        400,
    )
    .await;
    assert!(bad["details"]["name"].is_array(), "{bad}");
    let bad = assert_error(
        t.post("/api/projects/", &t.owner, json!({"name": "bad/name", "organization": org})).await,
        400,
    )
    .await;
    assert!(bad["details"]["name"].is_array());
    let long = "a".repeat(256);
    assert_error(
        t.post("/api/projects/", &t.owner, json!({"name": long, "organization": org})).await,
        400,
    )
    .await;
    assert_error(
        t.post("/api/projects/", &t.owner, json!({"name": 5, "organization": org})).await,
        400,
    )
    .await;
    assert_error(t.post("/api/projects/", &t.owner, json!({"organization": org})).await, 400).await;
    assert_error(
        t.post("/api/projects/", &t.owner, json!({"name": "Fine", "organization": "x"})).await,
        400,
    )
    .await;
    assert_error(
        t.post("/api/projects/", &t.owner, json!({"name": "Fine", "organization": 999_999})).await,
        404,
    )
    .await;
    let resp =
        t.s.client
            .post(t.s.url("/api/projects/"))
            .header("authorization", crate::harness::auth(&t.owner.token))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
    assert_error(resp, 400).await;
    let resp = t.s.client.get(t.s.url("/api/projects/")).send().await.unwrap();
    assert_error(resp, 401).await;
}

#[tokio::test]
async fn project_list_search_filter_and_paging() {
    let t = Team::new().await;
    let org = t.owner.org_id;
    for (name, desc) in
        [("Web Application", "front"), ("Billing", "Handles WEB payments"), ("Mobile", "apps")]
    {
        ok(
            t.post(
                "/api/projects/",
                &t.owner,
                json!({"name": name, "description": desc, "organization": org}),
            )
            .await,
            201,
        )
        .await;
    }
    ok(t.post("/api/projects/", &t.outsider, json!({"name": "Web Outsider"})).await, 201).await;

    let all = ok(t.get("/api/projects/", &t.viewer).await, 200).await;
    assert_eq!(all["count"], 3);
    let found =
        ok(t.get(&format!("/api/projects/?organization={org}&search=web"), &t.viewer).await, 200)
            .await;
    let names: Vec<&str> =
        found["results"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Web Application", "Billing"]);
    let other = ok(
        t.get(&format!("/api/projects/?organization={}", t.outsider.org_id), &t.owner).await,
        200,
    )
    .await;
    assert_eq!(other["count"], 0);
    let page = ok(t.get("/api/projects/?page_size=2", &t.owner).await, 200).await;
    assert_eq!(page["results"].as_array().unwrap().len(), 2);
    assert!(page["next"].as_str().unwrap().starts_with("https://"));
    assert!(page["previous"].is_null());
    let page2 = ok(t.get("/api/projects/?page_size=2&page=2", &t.owner).await, 200).await;
    assert_eq!(page2["results"].as_array().unwrap().len(), 1);
    assert_error(t.get("/api/projects/?page=9", &t.owner).await, 404).await;
    assert_error(t.get("/api/projects/?page_size=0", &t.owner).await, 400).await;
    let outsider = ok(t.get("/api/projects/", &t.outsider).await, 200).await;
    assert_eq!(outsider["count"], 1);
}

#[tokio::test]
async fn organization_deletion_takes_its_secrets() {
    let t = Team::new().await;
    let org =
        ok(t.post("/api/organizations/", &t.owner, json!({"name": "Doomed Org"})).await, 201).await;
    let org_id = org["id"].as_u64().unwrap();
    let p = ok(
        t.post("/api/projects/", &t.owner, json!({"name": "Doomed", "organization": org_id})).await,
        201,
    )
    .await;
    let pid = p["id"].as_u64().unwrap();
    let e = t.environment(pid, "prod").await;
    let v = t.variable(e, "GONE", "with the org").await;
    let org_view = ok(t.get(&format!("/api/organizations/{org_id}/"), &t.owner).await, 200).await;
    assert_eq!(org_view["project_count"], 1);
    ok(t.delete(&format!("/api/organizations/{org_id}/"), &t.owner).await, 204).await;
    assert_error(t.get(&format!("/api/projects/{pid}/"), &t.owner).await, 404).await;
    assert_error(t.get(&format!("/api/environments/{e}/"), &t.owner).await, 404).await;
    assert_error(t.get(&format!("/api/variables/{v}/"), &t.owner).await, 404).await;
}
