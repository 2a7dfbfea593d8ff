//! PAT UUIDs, scope changes and reissue (issue 18): every `{id}` route takes the integer id or
//! the UUID, `PATCH` changes the flags (the old string then fails the scope check), `reissue`
//! gives a string with the row's flags and the same expiry and ends the previous one.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::harness::{assert_error, auth, login_admin, register, TestServer, TestUser};

const PATH: &str = "/api/v1/personal-access-tokens";

/// The claims of a JWT (its signature is the server's business).
fn claims(token: &str) -> Value {
    let body = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64.decode(body).unwrap()).unwrap()
}

fn uuid_like(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok() && s.len() == 36
}

fn bearer(created: &Value) -> String {
    format!("Bearer {}", created["access_token"].as_str().unwrap())
}

async fn create(server: &TestServer, u: &TestUser, body: Value) -> Value {
    let resp = server
        .client
        .post(server.url(PATH))
        .header("authorization", auth(&u.token))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

async fn patch(server: &TestServer, header: &str, id: &str, body: Value) -> reqwest::Response {
    server
        .client
        .patch(server.url(&format!("{PATH}/{id}")))
        .header("authorization", header)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn post(server: &TestServer, header: &str, path: &str) -> reqwest::Response {
    server.client.post(server.url(path)).header("authorization", header).send().await.unwrap()
}

async fn reissue(server: &TestServer, header: &str, id: &str) -> reqwest::Response {
    post(server, header, &format!("{PATH}/{id}/reissue")).await
}

async fn get(server: &TestServer, header: &str, path: &str) -> reqwest::Response {
    server.client.get(server.url(path)).header("authorization", header).send().await.unwrap()
}

/// The status of `/api/v1/metrics/all` for `header`, and the error text when refused.
async fn global_metrics(server: &TestServer, header: &str) -> (u16, String) {
    let resp = get(server, header, "/api/v1/metrics/all").await;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, text)
}

#[tokio::test]
async fn routes_take_the_uuid_or_the_integer_id_and_the_list_shows_both() {
    let server = TestServer::start().await;
    let u = register(&server, "patuuid").await;
    let a = create(&server, &u, json!({"name": "a"})).await;
    let b = create(&server, &u, json!({"name": "b"})).await;
    let a_uuid = a["uuid"].as_str().unwrap().to_string();
    let b_uuid = b["uuid"].as_str().unwrap().to_string();
    assert!(uuid_like(&a_uuid) && uuid_like(&b_uuid) && a_uuid != b_uuid, "{a} {b}");
    assert!(a["id"].is_u64());
    // New strings carry ShellUI's claim: the UUID, as a string.
    assert_eq!(claims(a["access_token"].as_str().unwrap())["pat_id"], json!(a_uuid));
    assert_eq!(get(&server, &bearer(&a), "/api/auth/profile/").await.status(), 200);

    let list: Value = get(&server, &auth(&u.token), PATH).await.json().await.unwrap();
    let rows = list["results"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["id"], b["id"]);
    assert_eq!(rows[0]["uuid"], json!(b_uuid));
    assert_eq!(rows[1]["id"], a["id"]);
    assert_eq!(rows[1]["uuid"], json!(a_uuid));

    // PATCH by UUID (upper case too), by integer id.
    let resp = patch(&server, &auth(&u.token), &a_uuid.to_uppercase(), json!({"name": "a2"})).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["name"], "a2");
    let resp = patch(&server, &auth(&u.token), &a["id"].to_string(), json!({"name": "a3"})).await;
    assert_eq!(resp.status(), 200);
    let row: Value = resp.json().await.unwrap();
    assert_eq!((row["name"].as_str(), row["uuid"].as_str()), (Some("a3"), Some(a_uuid.as_str())));

    // Revoke by UUID; again by integer id: already revoked.
    let resp = post(&server, &auth(&u.token), &format!("{PATH}/{a_uuid}/revoke")).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.json::<Value>().await.unwrap()["revoked_at"].is_string());
    let e = assert_error(
        post(&server, &auth(&u.token), &format!("{PATH}/{}/revoke", a["id"])).await,
        400,
    )
    .await;
    assert!(e.to_string().contains("Already revoked."), "{e}");
    assert_eq!(get(&server, &bearer(&a), "/api/auth/profile/").await.status(), 401);
    // DELETE by UUID.
    let resp = server
        .client
        .delete(server.url(&format!("{PATH}/{b_uuid}")))
        .header("authorization", auth(&u.token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(get(&server, &bearer(&b), "/api/auth/profile/").await.status(), 401);
}

#[tokio::test]
async fn malformed_unknown_and_others_ids_are_refused_in_the_error_format() {
    let server = TestServer::start().await;
    let u = register(&server, "patbadids").await;
    let other = register(&server, "patbadother").await;
    let mine = create(&server, &u, json!({"name": "mine"})).await;
    let h = auth(&u.token);
    let unknown = uuid::Uuid::new_v4().to_string();
    for id in ["not-a-uuid", "12ab", "-1", "99999999999999999999", "1.5", "999999", &unknown] {
        assert_error(patch(&server, &h, id, json!({"name": "x"})).await, 404).await;
        assert_error(reissue(&server, &h, id).await, 404).await;
        assert_error(post(&server, &h, &format!("{PATH}/{id}/revoke")).await, 404).await;
    }
    // Another user's PAT, by either name: 404 for every route.
    let oh = auth(&other.token);
    for id in [mine["id"].to_string(), mine["uuid"].as_str().unwrap().to_string()] {
        assert_error(patch(&server, &oh, &id, json!({"name": "x"})).await, 404).await;
        assert_error(reissue(&server, &oh, &id).await, 404).await;
        assert_error(post(&server, &oh, &format!("{PATH}/{id}/revoke")).await, 404).await;
    }
    // Bad bodies.
    let id = mine["uuid"].as_str().unwrap();
    let resp = server
        .client
        .patch(server.url(&format!("{PATH}/{id}")))
        .header("authorization", &h)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_error(resp, 400).await;
    assert_error(patch(&server, &h, id, json!({"access_global_metrics": "yes"})).await, 400).await;
    assert_error(patch(&server, &h, id, json!({"read_only": 1})).await, 400).await;
    assert_error(patch(&server, &h, id, json!({"name": "x".repeat(201)})).await, 400).await;
    // Without credentials: 401.
    let resp = server
        .client
        .patch(server.url(&format!("{PATH}/{id}")))
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_error(resp, 401).await;
    // Nothing changed.
    let list: Value = get(&server, &h, PATH).await.json().await.unwrap();
    assert_eq!(list["results"][0]["name"], "mine");
}

#[tokio::test]
async fn staff_turn_global_metrics_on_and_off_and_reissue_gives_a_matching_string() {
    let server = TestServer::start().await;
    let admin = login_admin(&server).await;
    let ah = auth(&admin.token);
    let pat = create(&server, &admin, json!({"name": "scrape", "company_id": admin.org_id})).await;
    let id = pat["uuid"].as_str().unwrap().to_string();
    let old = bearer(&pat);
    assert_eq!(global_metrics(&server, &old).await.0, 403);

    // On: the old string no longer matches its row.
    let resp = patch(&server, &ah, &id, json!({"access_global_metrics": true})).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["access_global_metrics"], true);
    let (status, text) = global_metrics(&server, &old).await;
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("Personal access token scope mismatch."), "{text}");
    assert_eq!(get(&server, &old, "/api/auth/profile/").await.status(), 401);

    // Reissue: the row's flags, the same expiry, a new jti; the old string stays dead.
    let resp = reissue(&server, &ah, &id).await;
    assert_eq!(resp.status(), 200);
    let again: Value = resp.json().await.unwrap();
    assert_eq!(again["uuid"], json!(id));
    assert_eq!(again["expires_at"], pat["expires_at"]);
    let (c_old, c_new) = (
        claims(pat["access_token"].as_str().unwrap()),
        claims(again["access_token"].as_str().unwrap()),
    );
    assert_eq!(c_new["exp"], c_old["exp"]);
    assert_ne!(c_new["jti"], c_old["jti"]);
    assert_eq!((c_new["pat_id"].clone(), c_new["pat_agm"].clone()), (json!(id), json!(true)));
    let new = bearer(&again);
    assert_eq!(global_metrics(&server, &new).await.0, 200);
    let (status, text) = global_metrics(&server, &old).await;
    assert_eq!(status, 401);
    assert!(text.contains("Personal access token mismatch."), "{text}");

    // Off again: the reissued string fails the scope check until reissued once more.
    let resp =
        patch(&server, &ah, &pat["id"].to_string(), json!({"access_global_metrics": false})).await;
    assert_eq!(resp.status(), 200);
    let (status, text) = global_metrics(&server, &new).await;
    assert_eq!(status, 401);
    assert!(text.contains("scope mismatch"), "{text}");
    let third: Value = reissue(&server, &ah, &pat["id"].to_string()).await.json().await.unwrap();
    assert_eq!(claims(third["access_token"].as_str().unwrap())["pat_agm"], false);
    assert_eq!(global_metrics(&server, &bearer(&third)).await.0, 403);
    assert_eq!(get(&server, &bearer(&third), "/api/auth/profile/").await.status(), 200);

    let actions = super::audit_actions(&server);
    assert_eq!(actions.iter().filter(|a| *a == "pat_updated").count(), 2, "{actions:?}");
    assert_eq!(actions.iter().filter(|a| *a == "pat_reissued").count(), 2, "{actions:?}");
}

#[tokio::test]
async fn staff_may_grant_a_users_pat_global_metrics_and_only_the_owner_reissues() {
    let server = TestServer::start().await;
    let admin = login_admin(&server).await;
    let u = register(&server, "patgranted").await;
    let pat = create(&server, &u, json!({"name": "grafana"})).await;
    let id = pat["uuid"].as_str().unwrap().to_string();
    assert_eq!(global_metrics(&server, &bearer(&pat)).await.0, 403);
    let resp =
        patch(&server, &auth(&admin.token), &id, json!({"access_global_metrics": true})).await;
    assert_eq!(resp.status(), 200);
    // Staff change flags, not names, and never get a string that acts as the user.
    let e = assert_error(patch(&server, &auth(&admin.token), &id, json!({"name": "x"})).await, 403)
        .await;
    assert!(e["error"].as_str().unwrap().contains("owner"), "{e}");
    assert_error(reissue(&server, &auth(&admin.token), &id).await, 404).await;
    let (status, text) = global_metrics(&server, &bearer(&pat)).await;
    assert_eq!(status, 401, "{text}");
    let again: Value = reissue(&server, &auth(&u.token), &id).await.json().await.unwrap();
    assert_eq!(global_metrics(&server, &bearer(&again)).await.0, 200);
}

#[tokio::test]
async fn the_owner_renames_and_tightens_but_never_widens() {
    let server = TestServer::start().await;
    let u = register(&server, "patowner").await;
    let h = auth(&u.token);
    let pat = create(&server, &u, json!({"name": "ci"})).await;
    let id = pat["id"].to_string();

    let e =
        assert_error(patch(&server, &h, &id, json!({"access_global_metrics": true})).await, 403)
            .await;
    assert!(e["error"].as_str().unwrap().contains("staff"), "{e}");
    // Refused as a whole: nothing else in the body applied.
    let resp = patch(&server, &h, &id, json!({"name": "new", "access_global_metrics": true})).await;
    assert_error(resp, 403).await;
    let list: Value = get(&server, &h, PATH).await.json().await.unwrap();
    assert_eq!(list["results"][0]["name"], "ci");
    assert_eq!(list["results"][0]["access_global_metrics"], false);

    let resp = patch(&server, &h, &id, json!({"name": "  ci-ro  ", "read_only": true})).await;
    assert_eq!(resp.status(), 200);
    let row: Value = resp.json().await.unwrap();
    assert_eq!((row["name"].as_str(), row["read_only"].as_bool()), (Some("ci-ro"), Some(true)));
    assert_eq!(get(&server, &bearer(&pat), "/api/auth/profile/").await.status(), 401);
    assert_error(patch(&server, &h, &id, json!({"read_only": false})).await, 403).await;
    // Turning global metrics off is tightening (already off: nothing to do).
    assert_eq!(
        patch(&server, &h, &id, json!({"access_global_metrics": false})).await.status(),
        200
    );
    // The reissued string is read-only now.
    let again: Value = reissue(&server, &h, &id).await.json().await.unwrap();
    assert_eq!(claims(again["access_token"].as_str().unwrap())["pat_ro"], true);
    let resp = server
        .client
        .post(server.url("/api/organizations/"))
        .header("authorization", bearer(&again))
        .json(&json!({"name": "No"}))
        .send()
        .await
        .unwrap();
    assert_error(resp, 403).await;
    assert_eq!(get(&server, &bearer(&again), "/api/auth/profile/").await.status(), 200);
}

#[tokio::test]
async fn revoked_and_token_callers_cannot_patch_or_reissue() {
    let server = TestServer::start().await;
    let admin = login_admin(&server).await;
    let u = register(&server, "patrevoked").await;
    let h = auth(&u.token);
    let gone = create(&server, &u, json!({"name": "gone"})).await;
    let id = gone["uuid"].as_str().unwrap().to_string();
    assert_eq!(post(&server, &h, &format!("{PATH}/{id}/revoke")).await.status(), 200);
    let e = assert_error(patch(&server, &h, &id, json!({"name": "x"})).await, 400).await;
    assert!(e.to_string().contains("Already revoked."), "{e}");
    let ah = auth(&admin.token);
    assert_error(patch(&server, &ah, &id, json!({"access_global_metrics": true})).await, 400).await;
    assert_error(reissue(&server, &h, &id).await, 400).await;

    // A read-only PAT may neither change nor renew itself (nor another).
    let ro = create(&server, &u, json!({"name": "ro", "read_only": true})).await;
    let rw = create(&server, &u, json!({"name": "rw"})).await;
    let ro_id = ro["uuid"].as_str().unwrap();
    let rw_id = rw["uuid"].as_str().unwrap();
    assert_error(patch(&server, &bearer(&ro), ro_id, json!({"read_only": true})).await, 403).await;
    assert_error(reissue(&server, &bearer(&ro), ro_id).await, 403).await;
    assert_error(reissue(&server, &bearer(&ro), rw_id).await, 403).await;
    // A read-write PAT neither: renewing needs the account's own session.
    assert_error(reissue(&server, &bearer(&rw), rw_id).await, 403).await;
    assert_error(patch(&server, &bearer(&rw), rw_id, json!({"name": "x"})).await, 403).await;
    // Both strings still work: nothing was changed.
    assert_eq!(get(&server, &bearer(&ro), "/api/auth/profile/").await.status(), 200);
    assert_eq!(get(&server, &bearer(&rw), "/api/auth/profile/").await.status(), 200);
}

#[tokio::test]
async fn pat_id_claims_by_integer_uuid_and_malformed_are_checked() {
    use gatehouse::store::Reader as _;
    let server = TestServer::start().await;
    let u = register(&server, "patclaims").await;
    let row = create(&server, &u, json!({"name": "c"})).await;
    let state = &server.running.as_ref().unwrap().state;
    let user = state
        .store
        .read(|tx| tx.get(gatehouse::domain::accounts::tables::USERS, u.id))
        .unwrap()
        .unwrap();
    let pat = state
        .store
        .read(|tx| {
            tx.get(gatehouse::domain::credentials::tables::PATS, row["id"].as_u64().unwrap())
        })
        .unwrap()
        .unwrap();
    let now = gatehouse::clock::unix_now();
    let sign = |reference: gatehouse::domain::pats::PatRef| {
        let t = state
            .credentials
            .issue_pat(&user, u.org_id, reference, &pat.jti, false, false, now, pat.expires_at)
            .unwrap();
        format!("Bearer {}", t.expose())
    };
    use gatehouse::domain::pats::PatRef;
    // The integer form (tokens issued before schema 4) still resolves.
    assert_eq!(get(&server, &sign(PatRef::Id(pat.id)), "/api/auth/profile/").await.status(), 200);
    assert_eq!(
        get(&server, &sign(PatRef::Uuid(pat.uuid.clone())), "/api/auth/profile/").await.status(),
        200
    );
    for (reference, message) in [
        (PatRef::Uuid("not-a-uuid".into()), "Invalid personal access token id."),
        (PatRef::Uuid(uuid::Uuid::new_v4().to_string()), "Personal access token not found."),
        (PatRef::Id(pat.id + 100), "Personal access token not found."),
    ] {
        let e = assert_error(get(&server, &sign(reference), "/api/auth/profile/").await, 401).await;
        assert!(e.to_string().contains(message), "{e}");
    }
}

#[tokio::test]
async fn the_new_routes_are_in_the_schema() {
    let server = TestServer::start().await;
    let text = server.get("/api/schema/").await.text().await.unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let item = &doc["paths"]["/api/v1/personal-access-tokens/{id}"];
    assert_eq!(item["patch"]["operationId"], "personal_access_tokens_partial_update");
    let item = &doc["paths"]["/api/v1/personal-access-tokens/{id}/reissue"];
    assert_eq!(item["post"]["operationId"], "personal_access_tokens_reissue_create");
}
