//! `GET /api/audit-logs/`: documented fields, who sees what (own records; organization admins
//! their organizations'; staff everything), each filter, full-text search, bad input.

use serde_json::{json, Value};

use super::get;
use crate::harness::{auth, login_admin, register, TestServer};

fn actions(page: &Value) -> Vec<String> {
    page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_fields_scope_and_filters() {
    let server = TestServer::start().await;
    let staff = login_admin(&server).await;
    let alice = register(&server, "alice").await;
    let bob = register(&server, "bob").await;
    let carol = register(&server, "carol").await;
    server.add_member(&alice, alice.org_id, &bob, "viewer").await;
    server.add_member(&alice, alice.org_id, &carol, "admin").await;
    let resp = server
        .client
        .post(server.url("/api/organizations/"))
        .header("authorization", auth(&alice.token))
        .json(&json!({"name": "Zeta Searchable Org"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    // Alice sees her own actions, newest first, with exactly the documented fields.
    let (status, mine) = get(&server, &alice.token, "/api/audit-logs/").await;
    assert_eq!(status, 200, "{mine}");
    let first = &mine["results"][0];
    let keys: std::collections::BTreeSet<&str> =
        first.as_object().unwrap().keys().map(String::as_str).collect();
    let documented = [
        "id",
        "user_name",
        "user_email",
        "action",
        "target_type",
        "target_id",
        "details",
        "ip_address",
        "timestamp",
    ];
    assert_eq!(keys, documented.into_iter().collect());
    assert_eq!(first["action"], "organization_created");
    assert_eq!(first["user_email"], alice.email.as_str());
    assert!(first["target_id"].is_u64());
    assert_eq!(first["details"]["name"], "Zeta Searchable Org");
    assert_eq!(first["ip_address"], "127.0.0.1");
    assert!(first["timestamp"].as_str().unwrap().ends_with('Z'));
    let alice_actions = actions(&mine);
    assert!(alice_actions.contains(&"user_registered".to_string()));
    assert_eq!(alice_actions.iter().filter(|a| *a == "member_added").count(), 2);
    let ids: Vec<u64> =
        mine["results"].as_array().unwrap().iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");

    // Bob, a viewer of Alice's organization, sees only his own; Carol, an admin of it, also
    // sees what happened in it (Alice adding members), but not Alice's other organization.
    let (_, b) = get(&server, &bob.token, "/api/audit-logs/").await;
    assert!(actions(&b).iter().all(|a| a != "member_added" && a != "organization_created"), "{b}");
    assert!(b["results"].as_array().unwrap().iter().all(|r| r["user_email"] == bob.email.as_str()));
    let (_, c) = get(&server, &carol.token, "/api/audit-logs/").await;
    assert_eq!(actions(&c).iter().filter(|a| *a == "member_added").count(), 2, "{c}");
    assert!(!actions(&c).contains(&"organization_created".to_string()));
    // Staff see everyone's.
    let (_, all) = get(&server, &staff.token, "/api/audit-logs/?page_size=100").await;
    let emails: std::collections::BTreeSet<&str> = all["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["user_email"].as_str())
        .collect();
    for u in [&alice, &bob, &carol] {
        assert!(emails.contains(u.email.as_str()));
    }

    // Filters.
    let count = |token: String, q: &'static str| {
        let server = &server;
        async move {
            let (status, v) = get(server, &token, &format!("/api/audit-logs/?{q}")).await;
            assert_eq!(status, 200, "{q}: {v}");
            v["count"].as_u64().unwrap()
        }
    };
    assert_eq!(count(alice.token.clone(), "action=member_added").await, 2);
    assert_eq!(count(alice.token.clone(), "target_type=membership").await, 2);
    assert_eq!(count(alice.token.clone(), "action=member_added&target_type=user").await, 0);
    assert_eq!(
        count(staff.token.clone(), &*Box::leak(format!("user={}", bob.id).into_boxed_str())).await,
        b["count"].as_u64().unwrap()
    );
    assert_eq!(count(alice.token.clone(), "search=zeta").await, 1);
    assert_eq!(count(alice.token.clone(), "search=nothing-like-this").await, 0);
    let today = time::OffsetDateTime::now_utc().date();
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let d =
        |date: time::Date| Box::leak(date.format(&fmt).unwrap().into_boxed_str()) as &'static str;
    let today_q =
        Box::leak(format!("date_from={}&date_to={}", d(today), d(today)).into_boxed_str());
    assert_eq!(count(alice.token.clone(), today_q).await, mine["count"].as_u64().unwrap());
    let tomorrow =
        Box::leak(format!("date_from={}", d(today.next_day().unwrap())).into_boxed_str());
    assert_eq!(count(alice.token.clone(), tomorrow).await, 0);
    let yesterday =
        Box::leak(format!("date_to={}", d(today.previous_day().unwrap())).into_boxed_str());
    assert_eq!(count(alice.token.clone(), yesterday).await, 0);
    let paged = get(&server, &alice.token, "/api/audit-logs/?page_size=1&page=2").await.1;
    assert_eq!(paged["results"][0]["id"], mine["results"][1]["id"]);

    // Bad input and no credentials.
    for q in ["date_from=2025-13-01", "date_to=yesterday", "user=abc", "page=0", "page_size=5000"] {
        assert_eq!(
            get(&server, &alice.token, &format!("/api/audit-logs/?{q}")).await.0,
            400,
            "{q}"
        );
    }
    assert_eq!(server.get("/api/audit-logs/").await.status(), 401);
}
