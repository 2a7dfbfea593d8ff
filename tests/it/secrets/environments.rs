//! `/api/environments/` and `/api/projects/{id}/environments/`.

use serde_json::json;

use super::{ok, Team};
use crate::harness::assert_error;

#[tokio::test]
async fn environment_crud_by_role() {
    let t = Team::new().await;
    let p = t.project("Web Application").await;
    let body = json!({"name": "Production", "project": p, "environment_type": "production", "description": "Prod"});
    let e = ok(t.post("/api/environments/", &t.editor, body).await, 201).await;
    for field in [
        "id",
        "name",
        "project",
        "project_name",
        "environment_type",
        "description",
        "created_at",
        "updated_at",
        "created_by_name",
        "variable_count",
    ] {
        assert!(e.get(field).is_some(), "missing {field}: {e}");
    }
    assert_eq!(e["name"], "production", "names are stored lower-cased");
    assert_eq!(e["project_name"], "Web Application");
    assert_eq!(e["variable_count"], 0);
    let id = e["id"].as_u64().unwrap();
    let path = format!("/api/environments/{id}/");

    let dup = json!({"name": "production", "project": p});
    assert_error(t.post("/api/environments/", &t.owner, dup).await, 409).await;
    let d =
        ok(t.post("/api/environments/", &t.owner, json!({"name": "dev", "project": p})).await, 201)
            .await;
    assert_eq!(d["environment_type"], "development");
    let bad = assert_error(
        t.post(
            "/api/environments/",
            &t.owner,
            json!({"name": "qa", "project": p, "environment_type": "qa"}),
        )
        .await,
        400,
    )
    .await;
    assert!(bad["details"]["environment_type"].is_array());
    assert_error(
        t.post("/api/environments/", &t.owner, json!({"name": "no spaces", "project": p})).await,
        400,
    )
    .await;
    assert_error(
        t.post("/api/environments/", &t.viewer, json!({"name": "staging", "project": p})).await,
        403,
    )
    .await;
    assert_error(
        t.post("/api/environments/", &t.outsider, json!({"name": "staging", "project": p})).await,
        404,
    )
    .await;
    assert_error(
        t.post("/api/environments/", &t.owner, json!({"name": "staging", "project": 99_999})).await,
        404,
    )
    .await;

    assert_eq!(ok(t.get(&path, &t.viewer).await, 200).await["id"], id);
    assert_error(t.get(&path, &t.outsider).await, 404).await;
    let patched =
        ok(t.patch(&path, &t.editor, json!({"environment_type": "staging"})).await, 200).await;
    assert_eq!(patched["environment_type"], "staging");
    assert_error(t.patch(&path, &t.viewer, json!({"description": "x"})).await, 403).await;
    assert_error(t.patch(&path, &t.outsider, json!({"description": "x"})).await, 404).await;
    assert_error(t.patch(&path, &t.editor, json!({"name": "dev"})).await, 409).await;
    assert_error(t.put(&path, &t.editor, json!({"description": "x"})).await, 400).await;
    let put = ok(
        t.put(
            &path,
            &t.editor,
            json!({"name": "prod", "environment_type": "production", "project": p}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(put["name"], "prod");

    let list = ok(t.get(&format!("/api/projects/{p}/environments/"), &t.viewer).await, 200).await;
    assert_eq!(list["count"], 2);
    assert_error(t.get(&format!("/api/projects/{p}/environments/"), &t.outsider).await, 404).await;
    let project = ok(t.get(&format!("/api/projects/{p}/"), &t.viewer).await, 200).await;
    assert_eq!(project["environment_count"], 2);

    t.variable(id, "API_KEY", "secret").await;
    assert_eq!(ok(t.get(&path, &t.viewer).await, 200).await["variable_count"], 1);
    assert_error(t.delete(&path, &t.viewer).await, 403).await;
    assert_error(t.delete(&path, &t.outsider).await, 404).await;
    ok(t.delete(&path, &t.editor).await, 204).await;
    assert_error(t.get(&path, &t.owner).await, 404).await;
    let vars = ok(t.get("/api/variables/", &t.owner).await, 200).await;
    assert_eq!(vars["count"], 0, "the environment's variables went with it");
}

#[tokio::test]
async fn environment_list_filters() {
    let t = Team::new().await;
    let a = t.project("Alpha").await;
    let b = t.project("Beta").await;
    t.environment(a, "prod").await;
    ok(
        t.post(
            "/api/environments/",
            &t.owner,
            json!({"name": "stage", "project": a, "environment_type": "staging"}),
        )
        .await,
        201,
    )
    .await;
    t.environment(b, "prod").await;
    let other =
        ok(t.post("/api/projects/", &t.outsider, json!({"name": "Other"})).await, 201).await;
    let other_id = other["id"].as_u64().unwrap();
    ok(
        t.post("/api/environments/", &t.outsider, json!({"name": "prod", "project": other_id}))
            .await,
        201,
    )
    .await;

    assert_eq!(ok(t.get("/api/environments/", &t.viewer).await, 200).await["count"], 3);
    assert_eq!(
        ok(t.get(&format!("/api/environments/?project={a}"), &t.viewer).await, 200).await["count"],
        2
    );
    let staging =
        ok(t.get("/api/environments/?environment_type=staging", &t.viewer).await, 200).await;
    assert_eq!(staging["count"], 1);
    assert_eq!(staging["results"][0]["name"], "stage");
    assert_eq!(
        ok(t.get(&format!("/api/environments/?project={other_id}"), &t.owner).await, 200).await
            ["count"],
        0
    );
    assert_error(t.get("/api/environments/?environment_type=nope", &t.owner).await, 400).await;
    assert_eq!(ok(t.get("/api/environments/", &t.outsider).await, 200).await["count"], 1);
}
