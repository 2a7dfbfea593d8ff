//! API deployments, the calling side: `/deployment/{api_key}/…` with the deployment's own key,
//! its checks in order (key, allow-list, rate, size, shape), asynchronous runs with status and
//! result, waiting, idempotency, stopping, limits of the sandbox, ETL records, key rotation,
//! a restart during a run, the per-deployment document, and secrets kept out of everything
//! but the result.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{assert_error, auth, env_map, TestServer};
use crate::secrets::at_rest::{contains, files_under};
use crate::secrets::{ok, Team};

/// A secret the templates read.
fn secret() -> String {
    format!("s3cr3t-deploy-{}", std::process::id())
}

/// Creates a workflow in the owner's organization; returns its id.
async fn workflow(t: &Team, name: &str, body: Value) -> u64 {
    let mut body = body;
    body["workflow_name"] = json!(name);
    let path = format!("/unstract/{}/api/v2/workflow/", t.owner.org_id);
    ok(t.post(&path, &t.owner, body).await, 201).await["id"].as_u64().unwrap()
}

/// Deploys a workflow; returns `(deployment id, key)`.
async fn deploy(t: &Team, api_name: &str, workflow: u64, extra: Value) -> (u64, String) {
    let mut body = json!({"api_name": api_name, "workflow": workflow});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let path = format!("/unstract/{}/api/v2/api-deployment/", t.owner.org_id);
    let created = ok(t.post(&path, &t.owner, body).await, 201).await;
    (created["id"].as_u64().unwrap(), created["api_key"].as_str().unwrap().to_string())
}

async fn call(
    t: &Team,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> reqwest::Response {
    t.call_as(method, path, &format!("Bearer {key}"), body).await
}

async fn submit(t: &Team, key: &str, body: Value) -> reqwest::Response {
    call(t, Method::POST, &format!("/deployment/{key}/"), key, Some(body)).await
}

/// Polls the status until it is final; returns the status.
async fn settle(t: &Team, key: &str, id: &str) -> String {
    for _ in 0..400 {
        let s = ok(
            call(t, Method::GET, &format!("/deployment/{key}/status/{id}/"), key, None).await,
            200,
        )
        .await;
        let status = s["status"].as_str().unwrap().to_string();
        if ["COMPLETED", "ERROR", "STOPPED"].contains(&status.as_str()) {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("execution {id} did not finish");
}

async fn result(t: &Team, key: &str, id: &str) -> Value {
    ok(call(t, Method::GET, &format!("/deployment/{key}/result/{id}/"), key, None).await, 200).await
}

/// A project, an environment with TOKEN = the secret, and a json workflow reading it.
async fn secret_workflow(t: &Team) -> u64 {
    let env = t.env().await;
    t.variable(env, "TOKEN", &secret()).await;
    let template = r#"{"greeting": "hello {{ input.name }}", "token": "{{ env.TOKEN }}", "mode": "{{ parameters.mode | default('plain') }}"}"#;
    workflow(
        t,
        "greeter",
        json!({"template": template, "environment": env, "output_format": "json"}),
    )
    .await
}

#[tokio::test]
async fn a_task_runs_asynchronously_and_keeps_its_secret_in_the_result_only() {
    let t = Team::new().await;
    let w = secret_workflow(&t).await;
    let (dep, key) = deploy(&t, "greeter", w, json!({})).await;

    let accepted = ok(
        submit(&t, &key, json!({"input_data": {"name": "Ada"}, "parameters": {"mode": "loud"}}))
            .await,
        202,
    )
    .await;
    let id = accepted["execution_id"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{accepted}");
    assert_eq!(accepted["status"], "PENDING");
    assert_eq!(accepted["status_api"], format!("/deployment/{key}/status/{id}/"));
    assert_eq!(accepted["result_api"], format!("/deployment/{key}/result/{id}/"));

    assert_eq!(settle(&t, &key, &id).await, "COMPLETED");
    let r = result(&t, &key, &id).await;
    assert_eq!(r["status"], "COMPLETED");
    assert_eq!(r["result"], json!({"greeting": "hello Ada", "token": secret(), "mode": "loud"}));
    assert!(r["error"].is_null());
    assert!(r["elapsed_time"].as_f64().unwrap() >= 0.0);

    // `timeout`: the call waits and answers 200 with the result.
    let waited =
        ok(submit(&t, &key, json!({"input_data": {"name": "Bo"}, "timeout": 30})).await, 200).await;
    assert_eq!(waited["status"], "COMPLETED");
    assert_eq!(waited["result"]["greeting"], "hello Bo");

    // Usage counts every call.
    let path = format!("/unstract/{}/api/v2/api-deployment/{dep}/", t.owner.org_id);
    let d = ok(t.get(&path, &t.owner).await, 200).await;
    assert_eq!(d["usage"]["execution_count"], 2, "{d}");
    assert!(d["usage"]["request_count"].as_u64().unwrap() >= 4, "{d}");
    assert_eq!(d["usage"]["error_count"], 0);
    assert!(!d.to_string().contains(&key));

    // Status bodies never carry the result; no file under the data dir holds the secret or
    // the key (results are sealed, keys hashed, the request log masks the path).
    let status =
        call(&t, Method::GET, &format!("/deployment/{key}/status/{id}/"), &key, None).await;
    assert!(!status.text().await.unwrap().contains(&secret()));
    let mut s = t.s;
    s.stop().await;
    let mut files = Vec::new();
    files_under(s.data_dir(), &mut files);
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert!(!contains(&bytes, secret().as_bytes()), "secret in {}", f.display());
        assert!(!contains(&bytes, key.as_bytes()), "key in {}", f.display());
    }
}

#[tokio::test]
async fn the_key_is_checked_before_anything_else() {
    let t = Team::new().await;
    let w = secret_workflow(&t).await;
    let (dep, key) = deploy(&t, "keyed", w, json!({})).await;
    let path = format!("/deployment/{key}/");

    // No bearer, a different bearer, an unknown key: 401 with a Bearer challenge.
    let none = t.s.client.post(t.s.url(&path)).json(&json!({})).send().await.unwrap();
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    assert_error(none, 401).await;
    assert_error(call(&t, Method::POST, &path, "unst_other", Some(json!({}))).await, 401).await;
    let unknown = "unst_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert_error(submit(&t, unknown, json!({})).await, 401).await;
    // An account token is no key here.
    assert_error(t.call_as(Method::POST, &path, &auth(&t.owner.token), Some(json!({}))).await, 401)
        .await;
    // Wrong method: 405 with Allow.
    let get = call(&t, Method::GET, &path, &key, None).await;
    assert_eq!(get.headers()["allow"], "POST");
    assert_error(get, 405).await;
    // Unknown route under a key: 404.
    assert_error(
        call(&t, Method::GET, &format!("/deployment/{key}/nope/x/"), &key, None).await,
        404,
    )
    .await;

    // Malformed and unknown execution ids.
    let bad =
        call(&t, Method::GET, &format!("/deployment/{key}/status/not-a-uuid/"), &key, None).await;
    let body = assert_error(bad, 400).await;
    assert!(body.to_string().contains("Must be a valid UUID"), "{body}");
    let missing = uuid::Uuid::new_v4();
    assert_error(
        call(&t, Method::GET, &format!("/deployment/{key}/result/{missing}/"), &key, None).await,
        404,
    )
    .await;

    // Another deployment's execution id is unknown here.
    let (_, other) = deploy(&t, "other", w, json!({})).await;
    let id = ok(submit(&t, &other, json!({"input_data": {}})).await, 202).await["execution_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_error(
        call(&t, Method::GET, &format!("/deployment/{key}/status/{id}/"), &key, None).await,
        404,
    )
    .await;

    // Inactive: 404.
    let mgmt = format!("/unstract/{}/api/v2/api-deployment/{dep}/", t.owner.org_id);
    ok(t.patch(&mgmt, &t.owner, json!({"is_active": false})).await, 200).await;
    let body = assert_error(submit(&t, &key, json!({})).await, 404).await;
    assert!(body["error"].as_str().unwrap().contains("inactive"), "{body}");
}

#[tokio::test]
async fn allow_list_rate_size_and_shape_are_enforced_in_order() {
    let t = Team::new().await;
    let w = workflow(&t, "echo", json!({"template": "{{ input }}"})).await;
    let etl =
        workflow(&t, "rows", json!({"template": "{{ input }}", "workflow_type": "etl"})).await;

    let (_, far) = deploy(&t, "far", w, json!({"ip_allowlist": ["10.0.0.0/8"]})).await;
    let body = assert_error(submit(&t, &far, json!({})).await, 403).await;
    assert!(body["error"].as_str().unwrap().contains("address"), "{body}");
    let (_, near) = deploy(&t, "near", w, json!({"ip_allowlist": ["127.0.0.1"]})).await;
    ok(submit(&t, &near, json!({})).await, 202).await;

    let (_, limited) = deploy(&t, "limited", w, json!({"rate_limit_per_minute": 2})).await;
    let first = submit(&t, &limited, json!({})).await;
    assert_eq!(first.headers()["x-ratelimit-limit"], "2");
    assert_eq!(first.headers()["x-ratelimit-remaining"], "1");
    ok(first, 202).await;
    ok(submit(&t, &limited, json!({})).await, 202).await;
    let third = submit(&t, &limited, json!({})).await;
    assert!(third.headers().get("retry-after").is_some());
    assert_eq!(third.headers()["x-ratelimit-remaining"], "0");
    assert_error(third, 429).await;
    // The rate is the deployment's own: another one is unaffected.
    ok(submit(&t, &near, json!({})).await, 202).await;

    let (_, small) = deploy(&t, "small", w, json!({"max_input_bytes": 100})).await;
    let big = json!({"input_data": "x".repeat(200)});
    assert_error(submit(&t, &small, big).await, 413).await;

    let (_, rows) = deploy(&t, "rows", etl, json!({})).await;
    let body =
        assert_error(submit(&t, &rows, json!({"input_data": {"not": "a list"}})).await, 400).await;
    assert!(body["details"]["input_data"].is_array(), "{body}");
    assert_error(submit(&t, &near, json!({"timeout": 301})).await, 400).await;
    assert_error(submit(&t, &near, json!({"parameters": [1]})).await, 400).await;
    let malformed =
        t.s.client
            .post(t.s.url(&format!("/deployment/{near}/")))
            .header("authorization", format!("Bearer {near}"))
            .header("content-type", "application/json")
            .body("{\"input_data\": ")
            .send()
            .await
            .unwrap();
    assert_error(malformed, 400).await;
}

#[tokio::test]
async fn etl_records_fail_alone_and_multipart_files_become_input() {
    let t = Team::new().await;
    let etl = workflow(
        &t,
        "doubler",
        json!({"template": "{{ input.n * 2 }}", "workflow_type": "etl", "output_format": "json"}),
    )
    .await;
    let (_, key) = deploy(&t, "doubler", etl, json!({})).await;
    let done = ok(
        submit(
            &t,
            &key,
            json!({"input_data": [{"n": 1}, {"n": "x"}, {"m": 3}, {"n": 4}], "timeout": 30}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let items = done["result"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert_eq!(
        (items[0]["status"].as_str(), items[0]["result"].as_i64()),
        (Some("Success"), Some(2))
    );
    assert_eq!(items[1]["status"], "Failed");
    assert!(items[1]["error"].as_str().unwrap().len() > 3, "{done}");
    assert_eq!(items[2]["status"], "Failed");
    assert_eq!(items[3]["result"], 8);

    let files = workflow(
        &t,
        "files",
        json!({"template": "{{ input.files['a.txt'] | upper }}|{{ input.tag }}"}),
    )
    .await;
    let (_, fkey) = deploy(&t, "files", files, json!({})).await;
    let form = reqwest::multipart::Form::new()
        .part("files", reqwest::multipart::Part::text("hello file").file_name("a.txt"))
        .text("input_data", "{\"tag\": \"t1\"}")
        .text("timeout", "30");
    let resp =
        t.s.client
            .post(t.s.url(&format!("/deployment/{fkey}/")))
            .header("authorization", format!("Bearer {fkey}"))
            .multipart(form)
            .send()
            .await
            .unwrap();
    let done = ok(resp, 200).await;
    assert_eq!(done["result"], "HELLO FILE|t1", "{done}");
}

#[tokio::test]
async fn runaway_templates_end_as_errors_without_leaking_secrets() {
    let t = Team::new().await;
    let env = t.env().await;
    t.variable(env, "TOKEN", &secret()).await;
    let spin = workflow(
        &t,
        "spin",
        json!({"template": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"}),
    )
    .await;
    let huge = workflow(
        &t,
        "huge",
        json!({"template": "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}"}),
    )
    .await;
    let leak = workflow(
        &t,
        "leak",
        json!({"template": "{{ env.TOKEN | int + env.TOKEN.nope }}", "environment": env}),
    )
    .await;
    let not_json = workflow(
        &t,
        "notjson",
        json!({"template": "{{ env.TOKEN }}", "environment": env, "output_format": "json"}),
    )
    .await;
    for (name, w, expect) in [
        ("spin", spin, "fuel"),
        ("huge", huge, "larger"),
        ("leak", leak, ""),
        ("notjson", not_json, "JSON"),
    ] {
        let (_, key) = deploy(&t, name, w, json!({})).await;
        let done = ok(submit(&t, &key, json!({"timeout": 60})).await, 200).await;
        assert_eq!(done["status"], "ERROR", "{name}: {done}");
        let error = done["error"].as_str().unwrap();
        assert!(error.contains(expect), "{name}: {error}");
        assert!(!done.to_string().contains(&secret()), "{name}: {done}");
        assert!(done["result"].is_null());
    }
    // Ended executions are counted per organization and final status.
    let admin = crate::harness::login_admin(&t.s).await;
    let metrics = t.get("/api/v1/metrics/all", &admin).await.text().await.unwrap();
    let series = format!(
        "gatehouse_deployment_executions_total{{organization=\"{}\",status=\"ERROR\"}} 4",
        t.owner.org_id
    );
    assert!(metrics.contains(&series), "{series} not in the scrape");
    assert!(!metrics.contains(&secret()));
}

#[tokio::test]
async fn idempotency_stop_pending_results_and_concurrency_limits() {
    let s = TestServer::start_with(&[
        ("GATEHOUSE_DEPLOYMENTS_WORKERS", "1"),
        ("GATEHOUSE_DEPLOYMENTS_MAX_CONCURRENT_PER_ORG", "3"),
        ("GATEHOUSE_DEPLOYMENTS_TEMPLATE_FUEL", "100000000"),
    ])
    .await;
    let t = Team::with(s).await;
    // Runs until its deployment's 1 s limit (the fuel lasts several seconds).
    let slow = workflow(&t, "slow", json!({"template": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"})).await;
    let (_, key) = deploy(&t, "slow", slow, json!({"timeout_seconds": 1})).await;

    let running = ok(submit(&t, &key, json!({})).await, 202).await["execution_id"]
        .as_str()
        .unwrap()
        .to_string();
    // The only worker is busy: the next one waits, PENDING; its result is not there yet.
    let waiting_resp =
        t.s.client
            .post(t.s.url(&format!("/deployment/{key}/")))
            .header("authorization", format!("Bearer {key}"))
            .header("idempotency-key", "retry-me-1")
            .json(&json!({}))
            .send()
            .await
            .unwrap();
    let waiting = ok(waiting_resp, 202).await["execution_id"].as_str().unwrap().to_string();
    let again =
        t.s.client
            .post(t.s.url(&format!("/deployment/{key}/")))
            .header("authorization", format!("Bearer {key}"))
            .header("idempotency-key", "retry-me-1")
            .json(&json!({}))
            .send()
            .await
            .unwrap();
    assert_eq!(
        ok(again, 202).await["execution_id"],
        waiting.as_str(),
        "a retry starts nothing new"
    );
    let early =
        call(&t, Method::GET, &format!("/deployment/{key}/result/{waiting}/"), &key, None).await;
    assert_error(early, 409).await;

    // The organization's third slot is taken; a fourth submission is refused, naming the limit.
    ok(submit(&t, &key, json!({})).await, 202).await;
    let body = assert_error(submit(&t, &key, json!({})).await, 429).await;
    assert!(body["error"].as_str().unwrap().contains("Organization has reached"), "{body}");

    // Stopping the waiting one: STOPPED, and it never runs.
    let stopped = ok(
        call(&t, Method::DELETE, &format!("/deployment/{key}/status/{waiting}/"), &key, None).await,
        200,
    )
    .await;
    assert_eq!(stopped["status"], "STOPPED");
    assert_eq!(settle(&t, &key, &running).await, "ERROR");
    let r = result(&t, &key, &running).await;
    assert!(r["error"].as_str().unwrap().contains("longer than"), "{r}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(settle(&t, &key, &waiting).await, "STOPPED");
}

#[tokio::test]
async fn rotation_ends_the_old_key_unless_given_grace() {
    let t = Team::new().await;
    let w = workflow(&t, "echo", json!({"template": "ok"})).await;
    let (dep, old) = deploy(&t, "rotating", w, json!({})).await;
    let rotate = format!("/unstract/{}/api/v2/api-deployment/{dep}/rotate-key/", t.owner.org_id);
    let rotated = ok(t.post(&rotate, &t.owner, json!({})).await, 200).await;
    let new = rotated["api_key"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_error(submit(&t, &old, json!({})).await, 401).await;
    ok(submit(&t, &new, json!({})).await, 202).await;

    let graced = ok(t.post(&rotate, &t.owner, json!({"grace_seconds": 60})).await, 200).await;
    let newest = graced["api_key"].as_str().unwrap().to_string();
    ok(submit(&t, &new, json!({})).await, 202).await;
    ok(submit(&t, &newest, json!({})).await, 202).await;
}

#[tokio::test]
async fn a_restart_during_a_run_marks_it_interrupted() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let env = env_map(&[("GATEHOUSE_DEPLOYMENTS_TEMPLATE_FUEL", "100000000")]);
    let s = TestServer::start_in(std::sync::Arc::clone(&dir), env).await;
    let t = Team::with(s).await;
    let slow = workflow(&t, "slow", json!({"template": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"})).await;
    let (_, key) = deploy(&t, "slow", slow, json!({"timeout_seconds": 30})).await;
    let id = ok(submit(&t, &key, json!({})).await, 202).await["execution_id"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..200 {
        let s = ok(
            call(&t, Method::GET, &format!("/deployment/{key}/status/{id}/"), &key, None).await,
            200,
        )
        .await;
        if s["status"] == "EXECUTING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = std::time::Instant::now();
    let s = t.s.restart().await;
    assert!(started.elapsed() < Duration::from_secs(20), "the run held the shutdown");
    let resp = s
        .client
        .get(s.url(&format!("/deployment/{key}/result/{id}/")))
        .header("authorization", format!("Bearer {key}"))
        .send()
        .await
        .unwrap();
    let r = ok(resp, 200).await;
    assert_eq!(r["status"], "ERROR");
    assert_eq!(r["error"], "interrupted by restart");
}

#[tokio::test]
async fn each_deployment_documents_itself() {
    let t = Team::new().await;
    let w = workflow(&t, "echo", json!({"template": "{{ input }}"})).await;
    let (_, key) = deploy(&t, "documented", w, json!({"display_name": "Echo API"})).await;
    let doc =
        ok(t.s.client.get(t.s.url(&format!("/deployment/{key}/docs/"))).send().await.unwrap(), 200)
            .await;
    assert_eq!(doc["openapi"], "3.0.0");
    assert!(doc["info"]["title"].as_str().unwrap().contains("Echo API"));
    for p in ["/", "/status/{execution_id}/", "/result/{execution_id}/"] {
        assert!(doc["paths"][p].is_object(), "{p}");
    }
    let html =
        t.s.client
            .get(t.s.url(&format!("/deployment/{key}/docs/")))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
    assert_eq!(html.status(), 200);
    assert!(html.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = html.text().await.unwrap();
    assert!(page.contains("SwaggerUIBundle") && page.contains("Echo API"));
}
