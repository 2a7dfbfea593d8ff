//! `gatehouse admin create-user` and `reset-password` against a stopped server's data file.

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::harness::{env_map, TestServer};

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

fn admin(dir: &std::path::Path, args: &[&str], stdin: &str) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GATEHOUSE_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .arg("--data-dir")
        .arg(dir)
        .arg("admin")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn create_user_and_reset_password_offline() {
    let mut server = TestServer::start().await;
    server.stop().await;
    let dir = std::sync::Arc::clone(&server.dir);
    let out = admin(
        dir.path(),
        &["create-user", "--email", "ops@example.com", "--staff", "--password-stdin"],
        "ops-password-12345\n",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = admin(
        dir.path(),
        &["create-user", "--email", "ops@example.com", "--password-stdin"],
        "ops-password-12345\n",
    );
    assert!(!out.status.success(), "duplicate accepted");
    let out = admin(
        dir.path(),
        &["create-user", "--email", "short@example.com", "--password-stdin"],
        "short\n",
    );
    assert!(!out.status.success(), "short password accepted");
    let out = admin(dir.path(), &["reset-password", "--email", "nobody@example.com"], "");
    assert!(!out.status.success());

    let server = TestServer::start_in(std::sync::Arc::clone(&dir), env_map(&[])).await;
    let resp = server
        .client
        .post(server.url("/api/auth/login/"))
        .json(&json!({"email": "ops@example.com", "password": "ops-password-12345"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["user"]["is_staff"], true);
    let token = body["token"].as_str().unwrap().to_string();
    let mut server = server;
    server.stop().await;

    let out = admin(dir.path(), &["reset-password", "--email", "ops@example.com"], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let new_pw = stdout.trim().rsplit(' ').next().unwrap().to_string();
    let server = TestServer::start_in(dir, env_map(&[])).await;
    let login = |pw: String| {
        server
            .client
            .post(server.url("/api/auth/login/"))
            .json(&json!({"email": "ops@example.com", "password": pw}))
            .send()
    };
    assert_eq!(login("ops-password-12345".into()).await.unwrap().status(), 401);
    assert_eq!(login(new_pw).await.unwrap().status(), 200);
    let resp = server
        .client
        .get(server.url("/api/auth/profile/"))
        .header("authorization", format!("Token {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "old token survived the reset");
}
