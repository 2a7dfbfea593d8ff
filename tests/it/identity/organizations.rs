//! Organizations and members: CRUD, roles, tenant walls, KeyNest's member actions, the
//! last-admin rule, and membership changes taking effect on the next request.

use serde_json::{json, Value};

use super::audit_actions;
use crate::harness::{assert_error, auth, register, TestServer, TestUser};

async fn call(
    server: &TestServer,
    method: &str,
    path: &str,
    user: &TestUser,
    body: Option<Value>,
) -> reqwest::Response {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut rb =
        server.client.request(m, server.url(path)).header("authorization", auth(&user.token));
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    rb.send().await.unwrap()
}

#[tokio::test]
async fn organization_crud_and_tenant_walls() {
    let server = TestServer::start().await;
    let ann = register(&server, "ann").await;
    let bob = register(&server, "bob").await;
    let resp = call(
        &server,
        "POST",
        "/api/organizations/",
        &ann,
        Some(json!({"name": "  Acme Corp ", "description": "Main"})),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let org: Value = resp.json().await.unwrap();
    let id = org["id"].as_u64().unwrap();
    assert_eq!(org["name"], "Acme Corp");
    assert_eq!(org["member_count"], 1);
    assert_eq!(org["project_count"], 0);
    assert_eq!(org["user_role"], "admin");
    for f in ["created_at", "updated_at", "description"] {
        assert!(org.get(f).is_some());
    }
    // Validation and duplicates.
    assert_error(
        call(&server, "POST", "/api/organizations/", &ann, Some(json!({"name": " a "}))).await,
        400,
    )
    .await;
    assert_error(
        call(&server, "POST", "/api/organizations/", &ann, Some(json!({"name": "acme corp"})))
            .await,
        409,
    )
    .await;
    assert_error(
        call(&server, "POST", "/api/organizations/", &ann, Some(json!({"name": [12]}))).await,
        400,
    )
    .await;
    // Bob (another tenant) sees nothing of it: 404 everywhere.
    let path = format!("/api/organizations/{id}/");
    for (m, body) in [("GET", None), ("PATCH", Some(json!({"name": "x-y"}))), ("DELETE", None)] {
        assert_error(call(&server, m, &path, &bob, body).await, 404).await;
    }
    assert_error(call(&server, "GET", &format!("{path}members/"), &bob, None).await, 404).await;
    assert_error(call(&server, "GET", "/api/organizations/999999/", &ann, None).await, 404).await;
    assert_error(call(&server, "GET", "/api/organizations/abc/", &ann, None).await, 400).await;
    let list: Value =
        call(&server, "GET", "/api/organizations/", &bob, None).await.json().await.unwrap();
    assert_eq!(list["count"], 1);
    // Update.
    let resp = call(&server, "PATCH", &path, &ann, Some(json!({"description": null}))).await;
    assert_eq!(resp.status(), 200);
    let b: Value = resp.json().await.unwrap();
    assert!(b["description"].is_null());
    assert_eq!(b["name"], "Acme Corp");
    let resp =
        call(&server, "PUT", &path, &ann, Some(json!({"name": "Acme Inc", "description": "d"})))
            .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["name"], "Acme Inc");
    // Delete.
    assert_eq!(call(&server, "DELETE", &path, &ann, None).await.status(), 204);
    assert_error(call(&server, "GET", &path, &ann, None).await, 404).await;
    let actions = audit_actions(&server);
    for a in ["organization_created", "organization_updated", "organization_deleted"] {
        assert!(actions.contains(&a.to_string()), "no {a}");
    }
}

#[tokio::test]
async fn roles_decide_who_may_change_what() {
    let server = TestServer::start().await;
    let admin = register(&server, "ada").await;
    let editor = register(&server, "eddie").await;
    let viewer = register(&server, "vic").await;
    let org = admin.org_id;
    server.add_member(&admin, org, &editor, "editor").await;
    server.add_member(&admin, org, &viewer, "viewer").await;
    let path = format!("/api/organizations/{org}/");
    let got: Value = call(&server, "GET", &path, &viewer, None).await.json().await.unwrap();
    assert_eq!(got["user_role"], "viewer");
    assert_eq!(got["member_count"], 3);
    assert_error(
        call(&server, "PATCH", &path, &viewer, Some(json!({"name": "Viewer Rename"}))).await,
        403,
    )
    .await;
    // Settings are the admin's (L8): an editor manages projects, not the organization.
    assert_error(
        call(&server, "PATCH", &path, &editor, Some(json!({"name": "Editor Rename"}))).await,
        403,
    )
    .await;
    assert_eq!(
        call(&server, "PATCH", &path, &admin, Some(json!({"name": "Admin Rename"}))).await.status(),
        200
    );
    assert_error(call(&server, "DELETE", &path, &editor, None).await, 403).await;
    // Member management is admin-only: 403, never 500.
    for who in [&editor, &viewer] {
        assert_error(call(&server, "GET", &format!("{path}members/"), who, None).await, 403).await;
        assert_error(
            call(
                &server,
                "POST",
                &format!("{path}invite_member/"),
                who,
                Some(json!({"email": "x@example.com"})),
            )
            .await,
            403,
        )
        .await;
        assert_error(
            call(
                &server,
                "PATCH",
                &format!("{path}update_member_role/"),
                who,
                Some(json!({"user_id": admin.id, "role": "viewer"})),
            )
            .await,
            403,
        )
        .await;
        assert_error(
            call(
                &server,
                "DELETE",
                &format!("{path}remove_member/"),
                who,
                Some(json!({"user_id": admin.id})),
            )
            .await,
            403,
        )
        .await;
    }
}

#[tokio::test]
async fn member_management_and_last_admin_rule() {
    let server = TestServer::start().await;
    let admin = register(&server, "amy").await;
    let carl = register(&server, "carl").await;
    let dana = register(&server, "dana").await;
    let org = admin.org_id;
    let base = format!("/api/organizations/{org}/");

    // KeyNest's invite action.
    let resp = call(
        &server,
        "POST",
        &format!("{base}invite_member/"),
        &admin,
        Some(json!({"email": carl.email.to_uppercase(), "role": "editor"})),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let b: Value = resp.json().await.unwrap();
    assert!(b["message"].as_str().unwrap().contains("as editor"));
    assert_eq!(b["member"]["id"], carl.id);
    assert_eq!(b["member"]["role"], "editor");
    // Errors.
    assert_error(
        call(
            &server,
            "POST",
            &format!("{base}invite_member/"),
            &admin,
            Some(json!({"email": carl.email})),
        )
        .await,
        409,
    )
    .await;
    assert_error(
        call(
            &server,
            "POST",
            &format!("{base}members/"),
            &admin,
            Some(json!({"email": "ghost@example.com"})),
        )
        .await,
        400,
    )
    .await;
    assert_error(
        call(&server, "POST", &format!("{base}members/"), &admin, Some(json!({"email": "bad"})))
            .await,
        400,
    )
    .await;
    assert_error(
        call(
            &server,
            "POST",
            &format!("{base}members/"),
            &admin,
            Some(json!({"email": dana.email, "role": "owner"})),
        )
        .await,
        400,
    )
    .await;
    server.add_member(&admin, org, &dana, "viewer").await;

    let members: Value =
        call(&server, "GET", &format!("{base}members/"), &admin, None).await.json().await.unwrap();
    assert_eq!(members["total_count"], 3);
    let m0 = &members["members"][0];
    for f in ["id", "email", "username", "role", "joined_at"] {
        assert!(m0.get(f).is_some(), "member lacks {f}");
    }

    // Role changes: REST and action routes.
    let resp = call(
        &server,
        "PATCH",
        &format!("{base}members/{}/", dana.id),
        &admin,
        Some(json!({"role": "editor"})),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["member"]["role"], "editor");
    let resp = call(
        &server,
        "PATCH",
        &format!("{base}update_member_role/"),
        &admin,
        Some(json!({"user_id": dana.id, "role": "editor"})),
    )
    .await;
    assert_eq!(
        resp.json::<Value>().await.unwrap()["message"],
        "Role is already set to the specified value"
    );
    assert_error(
        call(
            &server,
            "PATCH",
            &format!("{base}update_member_role/"),
            &admin,
            Some(json!({"user_id": 987654, "role": "viewer"})),
        )
        .await,
        404,
    )
    .await;
    assert_error(
        call(
            &server,
            "PATCH",
            &format!("{base}update_member_role/"),
            &admin,
            Some(json!({"user_id": "x", "role": "viewer"})),
        )
        .await,
        400,
    )
    .await;

    // The last admin can be neither demoted nor removed.
    let e = assert_error(
        call(
            &server,
            "PATCH",
            &format!("{base}members/{}/", admin.id),
            &admin,
            Some(json!({"role": "viewer"})),
        )
        .await,
        409,
    )
    .await;
    assert!(e["error"].as_str().unwrap().contains("last admin"));
    assert_error(
        call(
            &server,
            "PATCH",
            &format!("{base}update_member_role/"),
            &admin,
            Some(json!({"user_id": admin.id, "role": "editor"})),
        )
        .await,
        409,
    )
    .await;
    assert_error(
        call(&server, "DELETE", &format!("{base}members/{}/", admin.id), &admin, None).await,
        409,
    )
    .await;
    assert_error(
        call(
            &server,
            "DELETE",
            &format!("{base}remove_member/"),
            &admin,
            Some(json!({"user_id": admin.id})),
        )
        .await,
        409,
    )
    .await;

    // With a second admin, the first may step down.
    call(
        &server,
        "PATCH",
        &format!("{base}members/{}/", carl.id),
        &admin,
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!(
        call(
            &server,
            "PATCH",
            &format!("{base}members/{}/", admin.id),
            &admin,
            Some(json!({"role": "editor"}))
        )
        .await
        .status(),
        200
    );
    // The demotion took effect on the very next request.
    assert_error(call(&server, "GET", &format!("{base}members/"), &admin, None).await, 403).await;

    // Removal (action route) takes effect at once: dana now gets 404.
    assert_eq!(call(&server, "GET", &base, &dana, None).await.status(), 200);
    let resp = call(
        &server,
        "DELETE",
        &format!("{base}remove_member/"),
        &carl,
        Some(json!({"user_id": dana.id})),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["removed_member"]["email"], dana.email.as_str());
    assert_error(call(&server, "GET", &base, &dana, None).await, 404).await;
    assert_error(
        call(&server, "DELETE", &format!("{base}members/{}/", dana.id), &carl, None).await,
        404,
    )
    .await;

    let actions = audit_actions(&server);
    for a in ["member_added", "member_updated", "member_removed"] {
        assert!(actions.contains(&a.to_string()), "no {a}");
    }
}
