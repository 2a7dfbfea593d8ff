//! Secrets area: projects, environments, variables, history, import/export, encryption at rest
//! and master key rotation, driven over HTTPS with owner, editor, viewer and outsider accounts.

pub(crate) mod at_rest;
mod credentials;
mod environments;
mod load;
mod projects;
mod transfer;
mod variables;

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{auth, register, TestServer, TestUser};

/// A server with an organization (the owner's) holding an editor and a viewer, and an outsider
/// with an organization of their own.
pub struct Team {
    pub s: TestServer,
    pub owner: TestUser,
    pub editor: TestUser,
    pub viewer: TestUser,
    pub outsider: TestUser,
}

impl Team {
    pub async fn new() -> Self {
        Self::with(TestServer::start().await).await
    }

    pub async fn with(s: TestServer) -> Self {
        let owner = register(&s, "owner").await;
        let editor = register(&s, "editor").await;
        let viewer = register(&s, "viewer").await;
        let outsider = register(&s, "outsider").await;
        s.add_member(&owner, owner.org_id, &editor, "editor").await;
        s.add_member(&owner, owner.org_id, &viewer, "viewer").await;
        Self { s, owner, editor, viewer, outsider }
    }

    /// Sends `method path` as `user` with an optional JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        user: &TestUser,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut rb = self
            .s
            .client
            .request(method, self.s.url(path))
            .header("authorization", auth(&user.token));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        rb.send().await.unwrap()
    }

    /// Sends `method path` with a raw `Authorization` header value.
    pub async fn call_as(
        &self,
        method: Method,
        path: &str,
        authorization: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut rb =
            self.s.client.request(method, self.s.url(path)).header("authorization", authorization);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        rb.send().await.unwrap()
    }

    pub async fn get(&self, path: &str, user: &TestUser) -> reqwest::Response {
        self.call(Method::GET, path, user, None).await
    }

    pub async fn post(&self, path: &str, user: &TestUser, body: Value) -> reqwest::Response {
        self.call(Method::POST, path, user, Some(body)).await
    }

    pub async fn patch(&self, path: &str, user: &TestUser, body: Value) -> reqwest::Response {
        self.call(Method::PATCH, path, user, Some(body)).await
    }

    pub async fn put(&self, path: &str, user: &TestUser, body: Value) -> reqwest::Response {
        self.call(Method::PUT, path, user, Some(body)).await
    }

    pub async fn delete(&self, path: &str, user: &TestUser) -> reqwest::Response {
        self.call(Method::DELETE, path, user, None).await
    }

    /// Creates a project in the owner's organization; returns its id.
    pub async fn project(&self, name: &str) -> u64 {
        let body = json!({"name": name, "description": "d", "organization": self.owner.org_id});
        ok(self.post("/api/projects/", &self.owner, body).await, 201).await["id"].as_u64().unwrap()
    }

    /// Creates an environment; returns its id.
    pub async fn environment(&self, project: u64, name: &str) -> u64 {
        let body = json!({"name": name, "project": project, "environment_type": "production"});
        ok(self.post("/api/environments/", &self.owner, body).await, 201).await["id"]
            .as_u64()
            .unwrap()
    }

    /// A project with one environment; returns the environment id.
    pub async fn env(&self) -> u64 {
        let p = self.project("Web Application").await;
        self.environment(p, "production").await
    }

    /// Creates a variable; returns its id.
    pub async fn variable(&self, env: u64, key: &str, value: &str) -> u64 {
        let body = json!({"key": key, "value": value, "environment": env});
        ok(self.post("/api/variables/", &self.owner, body).await, 201).await["id"].as_u64().unwrap()
    }
}

/// Asserts the status and returns the JSON body.
pub async fn ok(resp: reqwest::Response, status: u16) -> Value {
    let got = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(
        got,
        status,
        "unexpected status; body: {}",
        text.chars().take(500).collect::<String>()
    );
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    }
}
