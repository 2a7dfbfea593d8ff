//! `/api/variables/`, `/api/environments/{id}/variables/`, versions, rollback and the deleted
//! variables an admin can still read.

use serde_json::json;

use super::{ok, Team};
use crate::harness::assert_error;

#[tokio::test]
async fn variable_crud_by_role() {
    let t = Team::new().await;
    let env = t.env().await;
    let body = json!({"key": "DATABASE_URL", "value": "postgresql://user:pass@host/db", "environment": env});
    let v = ok(t.post("/api/variables/", &t.editor, body).await, 201).await;
    for field in [
        "id",
        "key",
        "decrypted_value",
        "environment",
        "environment_name",
        "created_at",
        "updated_at",
        "created_by_name",
    ] {
        assert!(v.get(field).is_some(), "missing {field}: {v}");
    }
    assert!(v.get("value").is_none(), "value is write-only");
    assert_eq!(v["decrypted_value"], "postgresql://user:pass@host/db");
    assert_eq!(v["environment_name"], "production");
    let id = v["id"].as_u64().unwrap();
    let path = format!("/api/variables/{id}/");

    let dup = json!({"key": "DATABASE_URL", "value": "x", "environment": env});
    assert_error(t.post("/api/variables/", &t.owner, dup).await, 409).await;
    assert_error(
        t.post(
            "/api/variables/",
            &t.viewer,
            json!({"key": "NEW", "value": "x", "environment": env}),
        )
        .await,
        403,
    )
    .await;
    assert_error(
        t.post(
            "/api/variables/",
            &t.outsider,
            json!({"key": "NEW", "value": "x", "environment": env}),
        )
        .await,
        404,
    )
    .await;
    assert_error(
        t.post(
            "/api/variables/",
            &t.owner,
            json!({"key": "NEW", "value": "x", "environment": 999_999}),
        )
        .await,
        404,
    )
    .await;
    let empty = ok(
        t.post("/api/variables/", &t.owner, json!({"key": "lower_case_ok", "environment": env}))
            .await,
        201,
    )
    .await;
    assert_eq!(empty["decrypted_value"], "");

    // Values are readable by every member, including viewers; outsiders get 404.
    assert_eq!(
        ok(t.get(&path, &t.viewer).await, 200).await["decrypted_value"],
        "postgresql://user:pass@host/db"
    );
    assert_error(t.get(&path, &t.outsider).await, 404).await;
    let list =
        ok(t.get(&format!("/api/environments/{env}/variables/"), &t.viewer).await, 200).await;
    assert_eq!(list["count"], 2);
    assert_error(t.get(&format!("/api/environments/{env}/variables/"), &t.outsider).await, 404)
        .await;
    assert_eq!(ok(t.get("/api/variables/", &t.outsider).await, 200).await["count"], 0);
    assert_eq!(
        ok(t.get(&format!("/api/variables/?environment={env}"), &t.outsider).await, 200).await
            ["count"],
        0
    );
    assert_eq!(
        ok(t.get(&format!("/api/variables/?environment={env}"), &t.viewer).await, 200).await
            ["count"],
        2
    );

    let patched =
        ok(t.patch(&path, &t.editor, json!({"value": "new_secret_value"})).await, 200).await;
    assert_eq!(patched["decrypted_value"], "new_secret_value");
    assert_eq!(patched["version"], 2);
    let renamed = ok(t.patch(&path, &t.editor, json!({"key": "DB_URL"})).await, 200).await;
    assert_eq!(
        (renamed["key"].as_str(), renamed["decrypted_value"].as_str()),
        (Some("DB_URL"), Some("new_secret_value"))
    );
    assert_error(t.patch(&path, &t.editor, json!({"key": "lower_case_ok"})).await, 409).await;
    assert_error(t.patch(&path, &t.viewer, json!({"value": "x"})).await, 403).await;
    assert_error(t.patch(&path, &t.outsider, json!({"value": "x"})).await, 404).await;
    assert_error(t.patch(&path, &t.editor, json!({"environment": env + 1})).await, 400).await;
    assert_error(t.put(&path, &t.editor, json!({"value": "x"})).await, 400).await;
    let put = ok(
        t.put(&path, &t.editor, json!({"key": "DATABASE_URL", "value": "", "environment": env}))
            .await,
        200,
    )
    .await;
    assert_eq!(put["decrypted_value"], "");

    assert_error(t.delete(&path, &t.viewer).await, 403).await;
    assert_error(t.delete(&path, &t.outsider).await, 404).await;
    ok(t.delete(&path, &t.editor).await, 204).await;
    assert_error(t.get(&path, &t.owner).await, 404).await;
    assert_error(t.delete(&path, &t.owner).await, 404).await;
}

#[tokio::test]
async fn variable_names_and_values_are_validated() {
    let t = Team::new().await;
    let env = t.env().await;
    for bad in ["", "9LIVES", "HAS-DASH", "HAS SPACE", "ÜBER", "A.B"] {
        let r = assert_error(
            t.post(
                "/api/variables/",
                &t.owner,
                json!({"key": bad, "value": "v", "environment": env}),
            )
            .await,
            400,
        )
        .await;
        assert!(r["details"]["key"].is_array(), "{bad}: {r}");
    }
    let long = "K".repeat(257);
    assert_error(
        t.post("/api/variables/", &t.owner, json!({"key": long, "value": "v", "environment": env}))
            .await,
        400,
    )
    .await;
    t.variable(env, &"K".repeat(256), "ok").await;
    t.variable(env, "_UNDERSCORE", "ok").await;
    let big = "x".repeat(65_537);
    assert_error(
        t.post(
            "/api/variables/",
            &t.owner,
            json!({"key": "BIG", "value": big, "environment": env}),
        )
        .await,
        400,
    )
    .await;
    t.variable(env, "MAX", &"x".repeat(65_536)).await;
    assert_error(
        t.post(
            "/api/variables/",
            &t.owner,
            json!({"key": "NUL", "value": "a\u{0}b", "environment": env}),
        )
        .await,
        400,
    )
    .await;
    // Like DRF's CharField, a number is taken as its text; other types are refused.
    let n =
        t.post("/api/variables/", &t.owner, json!({"key": "NUM", "value": 5, "environment": env}));
    assert_eq!(ok(n.await, 201).await["decrypted_value"], "5");
    let arr = json!({"key": "T", "value": ["x"], "environment": env});
    assert_error(t.post("/api/variables/", &t.owner, arr).await, 400).await;
    let bad_env = json!({"key": "T", "value": "v", "environment": "one"});
    assert_error(t.post("/api/variables/", &t.owner, bad_env).await, 400).await;
    assert_error(t.post("/api/variables/", &t.owner, json!({"key": "T", "value": "v"})).await, 400)
        .await;
    let unicode = "héllo 🦀\nline2\t\"quoted\" $HOME `x`";
    let id = t.variable(env, "UNICODE", unicode).await;
    assert_eq!(
        ok(t.get(&format!("/api/variables/{id}/"), &t.viewer).await, 200).await["decrypted_value"],
        unicode
    );
}

#[tokio::test]
async fn versions_and_rollback() {
    let t = Team::new().await;
    let env = t.env().await;
    let id = t.variable(env, "API_KEY", "v1").await;
    let path = format!("/api/variables/{id}/");
    for v in ["v2", "v3"] {
        ok(t.patch(&path, &t.editor, json!({"value": v})).await, 200).await;
    }
    let versions = ok(t.get(&format!("{path}versions/"), &t.viewer).await, 200).await;
    let got: Vec<(u64, &str, bool)> = versions["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().unwrap(),
                v["decrypted_value"].as_str().unwrap(),
                v["is_current"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, vec![(3, "v3", true), (2, "v2", false), (1, "v1", false)]);
    assert!(versions["results"][0]["created_by_name"].as_str().unwrap().starts_with("editor"));
    assert_error(t.get(&format!("{path}versions/"), &t.outsider).await, 404).await;

    let rolled =
        ok(t.post(&format!("{path}rollback/"), &t.editor, json!({"version": 1})).await, 200).await;
    assert_eq!(
        (rolled["version"].as_u64(), rolled["decrypted_value"].as_str()),
        (Some(4), Some("v1"))
    );
    assert_eq!(ok(t.get(&path, &t.viewer).await, 200).await["decrypted_value"], "v1");
    assert_error(t.post(&format!("{path}rollback/"), &t.viewer, json!({"version": 2})).await, 403)
        .await;
    assert_error(
        t.post(&format!("{path}rollback/"), &t.outsider, json!({"version": 2})).await,
        404,
    )
    .await;
    assert_error(t.post(&format!("{path}rollback/"), &t.editor, json!({"version": 99})).await, 400)
        .await;
    assert_error(t.post(&format!("{path}rollback/"), &t.editor, json!({"version": 4})).await, 400)
        .await;
    assert_error(
        t.post(&format!("{path}rollback/"), &t.editor, json!({"version": "one"})).await,
        400,
    )
    .await;
    let versions = ok(t.get(&format!("{path}versions/"), &t.viewer).await, 200).await;
    assert_eq!(versions["count"], 4);
}

#[tokio::test]
async fn history_is_bounded_by_configuration() {
    let s = crate::harness::TestServer::start_with(&[("GATEHOUSE_STORAGE_VARIABLE_VERSIONS", "2")])
        .await;
    let t = Team::with(s).await;
    let env = t.env().await;
    let id = t.variable(env, "K", "v1").await;
    for v in ["v2", "v3", "v4", "v5"] {
        ok(t.patch(&format!("/api/variables/{id}/"), &t.owner, json!({"value": v})).await, 200)
            .await;
    }
    let versions = ok(t.get(&format!("/api/variables/{id}/versions/"), &t.owner).await, 200).await;
    let values: Vec<&str> = versions["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["decrypted_value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["v5", "v4", "v3"]);
}

#[tokio::test]
async fn deleted_variables_stay_readable_by_admins() {
    let t = Team::new().await;
    let env = t.env().await;
    let id = t.variable(env, "OLD_TOKEN", "first").await;
    ok(t.patch(&format!("/api/variables/{id}/"), &t.owner, json!({"value": "second"})).await, 200)
        .await;
    ok(t.delete(&format!("/api/variables/{id}/"), &t.editor).await, 204).await;

    let deleted_path = format!("/api/environments/{env}/deleted-variables/");
    let deleted = ok(t.get(&deleted_path, &t.owner).await, 200).await;
    assert_eq!(deleted["count"], 1);
    assert_eq!(deleted["results"][0]["key"], "OLD_TOKEN");
    assert!(deleted["results"][0]["purge_at"].as_str().unwrap().ends_with('Z'));
    assert_error(t.get(&deleted_path, &t.editor).await, 403).await;
    assert_error(t.get(&deleted_path, &t.viewer).await, 403).await;
    assert_error(t.get(&deleted_path, &t.outsider).await, 404).await;

    let versions = ok(t.get(&format!("/api/variables/{id}/versions/"), &t.owner).await, 200).await;
    let values: Vec<&str> = versions["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["decrypted_value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["second", "first"]);
    assert_eq!(versions["results"][0]["is_current"], false);
    assert_error(t.get(&format!("/api/variables/{id}/versions/"), &t.editor).await, 404).await;
    assert_error(
        t.post(&format!("/api/variables/{id}/rollback/"), &t.owner, json!({"version": 1})).await,
        404,
    )
    .await;
    // The key can be reused at once.
    t.variable(env, "OLD_TOKEN", "third").await;
}

/// Pages of the two list routes over variables of two environments created interleaved, with
/// a deleted one among them: every page holds exactly its environment's live variables, in id
/// order, with their own values, names and links.
#[tokio::test]
async fn list_pages_hold_exactly_the_environments_live_variables() {
    let t = Team::new().await;
    let project = t.project("paging").await;
    let (a, b) = (t.environment(project, "alpha").await, t.environment(project, "bravo").await);
    let mut expect_a = Vec::new();
    for i in 0..7 {
        let value = format!("a-{i} \"quoted\" \\ \n\u{1F600}");
        let id = t.variable(a, &format!("A_{i}"), &value).await;
        expect_a.push((id, format!("A_{i}"), value));
        t.variable(b, &format!("B_{i}"), &format!("b-{i}")).await;
    }
    // Delete A_3: its record stays (retained history) between live ones.
    let gone = expect_a.remove(3).0;
    assert_eq!(t.delete(&format!("/api/variables/{gone}/"), &t.owner).await.status(), 204);

    let first =
        ok(t.get(&format!("/api/variables/{}/", expect_a[0].0), &t.viewer).await, 200).await;
    let owner_name = first["created_by_name"].as_str().unwrap().to_string();
    assert!(!owner_name.is_empty());
    let mut seen = Vec::new();
    let mut url = format!("/api/environments/{a}/variables/?page_size=4");
    for page in 1..=2 {
        let body = ok(t.get(&url, &t.viewer).await, 200).await;
        assert_eq!(body["count"], 6);
        assert_eq!(body["previous"].is_null(), page == 1, "{body}");
        for v in body["results"].as_array().unwrap() {
            assert_eq!(v["environment"], a);
            assert_eq!(v["environment_name"], "alpha");
            assert_eq!(v["created_by_name"].as_str(), Some(owner_name.as_str()));
            seen.push((
                v["id"].as_u64().unwrap(),
                v["key"].as_str().unwrap().to_string(),
                v["decrypted_value"].as_str().unwrap().to_string(),
            ));
        }
        match body["next"].as_str() {
            Some(next) => url = next.split_once("/api/").map(|(_, p)| format!("/api/{p}")).unwrap(),
            None => assert_eq!(page, 2),
        }
    }
    assert_eq!(seen, expect_a);

    // The same rows through /api/variables/?environment=, and both environments without it.
    let body =
        ok(t.get(&format!("/api/variables/?environment={a}&page_size=100"), &t.viewer).await, 200)
            .await;
    let keys: Vec<&str> =
        body["results"].as_array().unwrap().iter().map(|v| v["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["A_0", "A_1", "A_2", "A_4", "A_5", "A_6"]);
    let body = ok(t.get("/api/variables/?page_size=100", &t.viewer).await, 200).await;
    assert_eq!(body["count"], 13);
    let names: Vec<(&str, &str)> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["key"].as_str().unwrap(), v["environment_name"].as_str().unwrap()))
        .collect();
    assert_eq!(names[..3], [("A_0", "alpha"), ("B_0", "bravo"), ("A_1", "alpha")]);
    // A page past the end is a 404, as DRF answers; other tenants see nothing.
    assert_error(
        t.get(&format!("/api/environments/{a}/variables/?page=3&page_size=4"), &t.viewer).await,
        404,
    )
    .await;
    assert_error(t.get(&format!("/api/environments/{a}/variables/"), &t.outsider).await, 404).await;
    let body = ok(t.get(&format!("/api/variables/?environment={a}"), &t.outsider).await, 200).await;
    assert_eq!(
        (body["count"].as_u64(), body["results"].as_array().map(Vec::len)),
        (Some(0), Some(0))
    );
}
