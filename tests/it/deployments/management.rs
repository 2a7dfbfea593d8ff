//! Workflows and API deployments: fields, validation, keys shown once, rotation, the two forms
//! of `{org_id}`, who may do what, cascades and the audit log.

use reqwest::Method;
use serde_json::{json, Value};

use super::{deployment, v2, workflow};
use crate::harness::assert_error;
use crate::secrets::{ok, Team};

#[tokio::test]
async fn unstract_workflow_crud() {
    let t = Team::new().await;
    let org = t.owner.org_id;
    let env = t.env().await;
    let list_path = v2(org, "workflow/");
    let body = json!({
        "workflow_name": "Invoice Parser",
        "description": "Parses invoices",
        "workflow_type": "etl",
        "environment": env,
        "template": "{{ input.name }} / {{ env.API_URL }}",
        "output_format": "json",
    });
    let w = ok(t.post(&list_path, &t.editor, body).await, 201).await;
    assert_eq!(w["workflow_name"], "Invoice Parser");
    assert_eq!(w["description"], "Parses invoices");
    assert_eq!(w["workflow_type"], "etl");
    assert_eq!(w["environment"], env);
    assert_eq!(w["template"], "{{ input.name }} / {{ env.API_URL }}");
    assert_eq!(w["output_format"], "json");
    assert_eq!(w["created_by"], t.editor.id);
    assert!(w["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(w["updated_at"].as_str().unwrap().ends_with('Z'));
    let id = w["id"].as_u64().unwrap();
    let path = v2(org, &format!("workflow/{id}/"));

    let got = ok(t.get(&path, &t.owner).await, 200).await;
    assert_eq!(got, w);
    // Without the trailing slash too.
    ok(t.get(path.trim_end_matches('/'), &t.owner).await, 200).await;

    // Defaults, uniqueness (case-insensitive) and paging.
    let d = ok(
        t.post(&list_path, &t.owner, json!({"workflow_name": "Second", "template": "x"})).await,
        201,
    )
    .await;
    assert_eq!(d["workflow_type"], "task");
    assert_eq!(d["output_format"], "text");
    assert!(d["environment"].is_null());
    assert_eq!(d["description"], "");
    let dup = json!({"workflow_name": "invoice parser", "template": "x"});
    assert_error(t.post(&list_path, &t.owner, dup).await, 409).await;
    ok(t.post(&list_path, &t.owner, json!({"workflow_name": "Third", "template": "y"})).await, 201)
        .await;
    let page = ok(t.get(&format!("{list_path}?page_size=2"), &t.owner).await, 200).await;
    assert_eq!(page["count"], 3);
    assert_eq!(page["results"].as_array().unwrap().len(), 2);
    assert!(page["next"].as_str().unwrap().contains("page=2"));
    assert_eq!(page["results"][0]["id"], id);
    let page2 = ok(t.get(&format!("{list_path}?page_size=2&page=2"), &t.owner).await, 200).await;
    assert_eq!(page2["results"].as_array().unwrap().len(), 1);
    assert!(page2["next"].is_null());
    assert_error(t.get(&format!("{list_path}?page_size=2&page=3"), &t.owner).await, 404).await;

    // PATCH changes a subset; null unbinds the environment.
    let p = ok(
        t.patch(&path, &t.editor, json!({"description": "New", "environment": null})).await,
        200,
    )
    .await;
    assert_eq!(p["description"], "New");
    assert!(p["environment"].is_null());
    assert_eq!(p["workflow_name"], "Invoice Parser");
    assert_eq!(p["output_format"], "json");
    let renamed = json!({"workflow_name": "Second"});
    assert_error(t.patch(&path, &t.editor, renamed).await, 409).await;
    // PUT requires the name and the template.
    let e =
        assert_error(t.put(&path, &t.editor, json!({"workflow_name": "Only"})).await, 400).await;
    assert!(e["details"]["template"].is_array(), "{e}");
    let e = assert_error(t.put(&path, &t.editor, json!({"template": "t"})).await, 400).await;
    assert!(e["details"]["workflow_name"].is_array(), "{e}");
    let put = json!({"workflow_name": "Renamed", "template": "T {{ input }}", "environment": env});
    let p = ok(t.put(&path, &t.editor, put).await, 200).await;
    assert_eq!(p["workflow_name"], "Renamed");
    assert_eq!(p["environment"], env);
    assert_error(t.patch(&path, &t.editor, json!({"workflow_type": "batch"})).await, 400).await;
    assert_error(t.patch(&path, &t.editor, json!({"output_format": "xml"})).await, 400).await;

    // Delete: 204, then 404.
    let resp = t.delete(&path, &t.editor).await;
    assert_eq!(resp.status().as_u16(), 204);
    assert_error(t.get(&path, &t.owner).await, 404).await;
    assert_error(t.delete(&path, &t.owner).await, 404).await;
}

#[tokio::test]
async fn unstract_workflow_validation() {
    let t = Team::new().await;
    let list_path = v2(t.owner.org_id, "workflow/");
    // A template syntax error names its line.
    let bad = json!({"workflow_name": "Broken", "template": "ok\n{% if x %}\n{{ y "});
    let e = assert_error(t.post(&list_path, &t.owner, bad).await, 400).await;
    let msg = e["details"]["template"][0].as_str().unwrap();
    assert!(msg.contains("line"), "{e}");
    // Missing required fields.
    let e = assert_error(t.post(&list_path, &t.owner, json!({"template": "x"})).await, 400).await;
    assert!(e["details"]["workflow_name"].is_array(), "{e}");
    let e =
        assert_error(t.post(&list_path, &t.owner, json!({"workflow_name": "N"})).await, 400).await;
    assert!(e["details"]["template"].is_array(), "{e}");
    let blank = json!({"workflow_name": "  ", "template": "x"});
    assert_error(t.post(&list_path, &t.owner, blank).await, 400).await;

    // An environment of another organization is refused.
    let resp = t
        .post(
            "/api/projects/",
            &t.outsider,
            json!({"name": "Theirs", "organization": t.outsider.org_id}),
        )
        .await;
    let project = ok(resp, 201).await["id"].as_u64().unwrap();
    let env_body = json!({"name": "prod", "project": project, "environment_type": "production"});
    let their_env =
        ok(t.post("/api/environments/", &t.outsider, env_body).await, 201).await["id"].clone();
    let body = json!({"workflow_name": "W", "template": "x", "environment": their_env});
    let e = assert_error(t.post(&list_path, &t.owner, body).await, 400).await;
    assert!(e["details"]["environment"].is_array(), "{e}");
    let body = json!({"workflow_name": "W", "template": "x", "environment": 999_999});
    assert_error(t.post(&list_path, &t.owner, body).await, 400).await;
}

#[tokio::test]
async fn unstract_deployment_crud_and_keys() {
    let t = Team::new().await;
    let org = t.owner.org_id;
    let wf = workflow(&t, "Extractor", "etl").await;
    let list_path = v2(org, "api-deployment/");
    let body = json!({
        "api_name": "invoice-api",
        "display_name": "Invoice API",
        "description": "For invoices",
        "workflow": wf,
        "ip_allowlist": ["10.1.2.3/8", "192.168.1.5"],
    });
    let d = ok(t.post(&list_path, &t.editor, body).await, 201).await;
    let key = d["api_key"].as_str().unwrap().to_string();
    assert!(key.starts_with("unst_"), "{key}");
    assert_eq!(key.len(), 48);
    assert_eq!(d["api_endpoint"], format!("/deployment/{key}/"));
    assert_eq!(d["api_name"], "invoice-api");
    assert_eq!(d["display_name"], "Invoice API");
    assert_eq!(d["description"], "For invoices");
    assert_eq!(d["workflow"], wf);
    assert_eq!(d["workflow_name"], "Extractor");
    assert_eq!(d["deployment_type"], "ETL");
    assert_eq!(d["is_active"], true);
    assert_eq!(d["rate_limit_per_minute"], 100);
    assert_eq!(d["ip_allowlist"], json!(["10.0.0.0/8", "192.168.1.5/32"]));
    assert!(d["max_input_bytes"].as_u64().unwrap() > 0);
    assert!(d["timeout_seconds"].as_u64().unwrap() > 0);
    let usage = &d["usage"];
    assert_eq!(usage["request_count"], 0);
    assert_eq!(usage["execution_count"], 0);
    assert_eq!(usage["error_count"], 0);
    assert_eq!(usage["avg_execution_ms"], 0.0);
    assert!(usage["last_used_at"].is_null());
    assert!(d["created_at"].as_str().unwrap().ends_with('Z'));
    let masked = d["masked_key"].as_str().unwrap().to_string();
    assert!(!masked.contains(&key) && !masked.contains(&key[5..20]), "{masked}");
    let id = d["id"].as_u64().unwrap();
    let path = v2(org, &format!("api-deployment/{id}/"));

    // Later reads never show the key.
    let got = ok(t.get(&path, &t.owner).await, 200).await;
    assert!(got["api_key"].is_null());
    assert!(got["api_endpoint"].is_null());
    assert_eq!(got["masked_key"], masked.as_str());
    assert!(!got.to_string().contains(&key));
    let list = ok(t.get(&list_path, &t.owner).await, 200).await;
    assert_eq!(list["count"], 1);
    assert!(!list.to_string().contains(&key));

    // A task workflow gives a TASK deployment; display_name defaults to api_name.
    let task = workflow(&t, "Summarizer", "task").await;
    let d2 = deployment(&t, "summary-api", task).await;
    assert_eq!(d2["deployment_type"], "TASK");
    assert_eq!(d2["display_name"], "summary-api");
    assert_ne!(d2["api_key"], d["api_key"]);

    // Validation from the domain.
    let e = assert_error(
        t.post(&list_path, &t.owner, json!({"api_name": "Bad_Name", "workflow": wf})).await,
        400,
    )
    .await;
    assert!(e["details"]["api_name"].is_array(), "{e}");
    let e = assert_error(
        t.post(&list_path, &t.owner, json!({"api_name": "invoice-api", "workflow": task})).await,
        400,
    )
    .await;
    assert_eq!(
        e["details"]["api_name"][0],
        "This API name is already in use. Please select a different name."
    );
    let bad_cidr = json!({"api_name": "cidr-api", "workflow": wf, "ip_allowlist": ["10.0.0.0/33"]});
    let e = assert_error(t.post(&list_path, &t.owner, bad_cidr).await, 400).await;
    assert!(e["details"]["ip_allowlist"].is_array(), "{e}");
    let no_wf = json!({"api_name": "nowf-api", "workflow": 999_999});
    assert_error(t.post(&list_path, &t.owner, no_wf).await, 400).await;
    let zero = json!({"api_name": "zero-api", "workflow": wf, "rate_limit_per_minute": 0});
    assert_error(t.post(&list_path, &t.owner, zero).await, 400).await;

    // Filters.
    let by_wf = ok(t.get(&format!("{list_path}?workflow={task}"), &t.owner).await, 200).await;
    assert_eq!(by_wf["count"], 1);
    assert_eq!(by_wf["results"][0]["api_name"], "summary-api");
    let by_name =
        ok(t.get(&format!("{list_path}?api_name=invoice-api"), &t.owner).await, 200).await;
    assert_eq!(by_name["count"], 1);
    let by_search = ok(t.get(&format!("{list_path}?search=INVOICE"), &t.owner).await, 200).await;
    assert_eq!(by_search["count"], 1);
    assert_eq!(by_search["results"][0]["id"], id);
    let paged = ok(t.get(&format!("{list_path}?page_size=1"), &t.owner).await, 200).await;
    assert_eq!(paged["count"], 2);
    assert_eq!(paged["results"].as_array().unwrap().len(), 1);

    // PATCH and PUT.
    let p = ok(
        t.patch(&path, &t.editor, json!({"rate_limit_per_minute": 5, "is_active": false})).await,
        200,
    )
    .await;
    assert_eq!(p["rate_limit_per_minute"], 5);
    assert_eq!(p["is_active"], false);
    assert!(p["api_key"].is_null());
    assert_eq!(p["masked_key"], masked.as_str());
    assert_error(t.put(&path, &t.editor, json!({"api_name": "invoice-api"})).await, 400).await;
    let put = json!({"api_name": "invoice-v2", "workflow": task});
    let p = ok(t.put(&path, &t.editor, put).await, 200).await;
    assert_eq!(p["api_name"], "invoice-v2");
    assert_eq!(p["deployment_type"], "TASK");

    // Rotation: a new key, shown once; the empty body is allowed.
    let resp =
        t.s.client
            .post(t.s.url(&v2(org, &format!("api-deployment/{id}/rotate-key/"))))
            .header("authorization", crate::harness::auth(&t.owner.token))
            .send()
            .await
            .unwrap();
    let r = ok(resp, 200).await;
    let new_key = r["api_key"].as_str().unwrap().to_string();
    assert!(new_key.starts_with("unst_") && new_key.len() == 48);
    assert_ne!(new_key, key);
    assert_eq!(r["api_endpoint"], format!("/deployment/{new_key}/"));
    assert_ne!(r["masked_key"], masked.as_str());
    let rotate = v2(org, &format!("api-deployment/{id}/rotate-key/"));
    let r2 = ok(t.post(&rotate, &t.owner, json!({"grace_seconds": 60})).await, 200).await;
    assert_ne!(r2["api_key"], r["api_key"]);
    let e =
        assert_error(t.post(&rotate, &t.owner, json!({"grace_seconds": 99_999_999})).await, 400)
            .await;
    assert!(e["details"]["grace_seconds"].is_array(), "{e}");
    assert!(ok(t.get(&path, &t.owner).await, 200).await["api_key"].is_null());

    // Delete: 204, then 404.
    let resp = t.delete(&path, &t.editor).await;
    assert_eq!(resp.status().as_u16(), 204);
    assert_error(t.get(&path, &t.owner).await, 404).await;
    assert_error(t.post(&rotate, &t.owner, json!({})).await, 404).await;
}

#[tokio::test]
async fn unstract_org_refs_and_roles() {
    let t = Team::new().await;
    let org = t.owner.org_id;
    let wf = workflow(&t, "Flow", "task").await;
    let d = deployment(&t, "flow-api", wf).await;
    let id = d["id"].as_u64().unwrap();
    let org_body = ok(t.get(&format!("/api/organizations/{org}/"), &t.owner).await, 200).await;
    let uuid = org_body["uuid"].as_str().unwrap().to_string();

    // The UUID form works like the id form.
    let by_uuid =
        ok(t.get(&v2(&uuid, &format!("api-deployment/{id}/")), &t.owner).await, 200).await;
    assert_eq!(by_uuid["api_name"], "flow-api");
    let list = ok(t.get(&v2(&uuid, "workflow/"), &t.editor).await, 200).await;
    assert_eq!(list["count"], 1);
    let w2 = json!({"workflow_name": "Via UUID", "template": "x"});
    ok(t.post(&v2(&uuid, "workflow/"), &t.editor, w2).await, 201).await;

    // Another user's organization is 404 in both forms, as is one that does not exist.
    for r in [org.to_string(), uuid.clone()] {
        for rest in ["workflow/".to_string(), format!("api-deployment/{id}/")] {
            let e = assert_error(t.get(&v2(&r, &rest), &t.outsider).await, 404).await;
            assert_eq!(e["error"], "Organization not found", "{e}");
        }
        let body = json!({"api_name": "sneaky", "workflow": wf});
        assert_error(t.post(&v2(&r, "api-deployment/"), &t.outsider, body).await, 404).await;
    }
    for r in ["999999", "00000000-0000-0000-0000-000000000000", "not-an-org"] {
        let e = assert_error(t.get(&v2(r, "workflow/"), &t.owner).await, 404).await;
        assert_eq!(e["error"], "Organization not found", "{e}");
    }
    // The outsider's own organization does not see the owner's deployment.
    let theirs = v2(t.outsider.org_id, &format!("api-deployment/{id}/"));
    assert_error(t.get(&theirs, &t.outsider).await, 404).await;

    // A viewer member is refused (editors and admins manage deployments).
    assert_error(t.get(&v2(org, "workflow/"), &t.viewer).await, 403).await;
    assert_error(t.get(&v2(org, "api-deployment/"), &t.viewer).await, 403).await;
    let body = json!({"workflow_name": "Nope", "template": "x"});
    assert_error(t.post(&v2(org, "workflow/"), &t.viewer, body).await, 403).await;
    let rotate = v2(org, &format!("api-deployment/{id}/rotate-key/"));
    assert_error(t.post(&rotate, &t.viewer, json!({})).await, 403).await;
    assert_error(t.delete(&v2(org, &format!("api-deployment/{id}/")), &t.viewer).await, 403).await;

    // Unauthenticated: 401.
    for (method, rest) in [
        (Method::GET, "workflow/".to_string()),
        (Method::GET, "api-deployment/".to_string()),
        (Method::POST, format!("api-deployment/{id}/rotate-key/")),
    ] {
        let resp = t.s.client.request(method, t.s.url(&v2(org, &rest))).send().await.unwrap();
        assert_error(resp, 401).await;
    }
}

fn actions(page: &Value) -> Vec<String> {
    page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn unstract_cascade_and_audit() {
    let t = Team::new().await;
    let org = t.owner.org_id;
    let wf = workflow(&t, "Doomed", "task").await;
    let keep = workflow(&t, "Kept", "task").await;
    let d1 = deployment(&t, "doomed-one", wf).await;
    let d2 = deployment(&t, "doomed-two", wf).await;
    let d3 = deployment(&t, "kept-one", keep).await;
    let id1 = d1["id"].as_u64().unwrap();
    let rotate = v2(org, &format!("api-deployment/{id1}/rotate-key/"));
    let rotated = ok(t.post(&rotate, &t.owner, json!({"grace_seconds": 30})).await, 200).await;
    let keys: Vec<String> = [&d1, &d2, &d3, &rotated]
        .iter()
        .map(|d| d["api_key"].as_str().unwrap().to_string())
        .collect();

    // Deleting the workflow removes its deployments and frees their names.
    let resp = t.delete(&v2(org, &format!("workflow/{wf}/")), &t.owner).await;
    assert_eq!(resp.status().as_u16(), 204);
    for d in [&d1, &d2] {
        let path = v2(org, &format!("api-deployment/{}/", d["id"]));
        assert_error(t.get(&path, &t.owner).await, 404).await;
    }
    let list = ok(t.get(&v2(org, "api-deployment/"), &t.owner).await, 200).await;
    assert_eq!(list["count"], 1);
    assert_eq!(list["results"][0]["id"], d3["id"]);
    deployment(&t, "doomed-one", keep).await;

    // The audit log records creation and rotation, never a key.
    let audit = ok(t.get("/api/audit-logs/?page_size=100", &t.owner).await, 200).await;
    let acts = actions(&audit);
    for action in [
        "workflow_created",
        "api_deployment_created",
        "api_deployment_key_rotated",
        "workflow_deleted",
    ] {
        assert!(acts.iter().any(|a| a == action), "no {action}: {acts:?}");
    }
    let created = audit["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "api_deployment_created")
        .unwrap();
    assert_eq!(created["target_type"], "api_deployment");
    let text = audit.to_string();
    for key in &keys {
        assert!(!text.contains(key.as_str()), "the audit log holds a key");
        assert!(!text.contains(&key[5..]), "the audit log holds a key's body");
    }
}
