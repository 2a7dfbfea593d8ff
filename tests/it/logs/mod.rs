//! Request log, monitoring and audit-log API tests, over real HTTPS against a real data file
//! and index: every recorded field, masking, ingest, filters, statistics against hand-computed
//! numbers, read-your-writes, index rebuild, retention.

mod audit;
mod bench;
mod index;
mod ingest;
mod records;
mod stats;

use serde_json::Value;

use crate::harness::{auth, TestServer, TestUser};

/// GET with a token; returns status and JSON body (Null when the body is not JSON).
pub async fn get(server: &TestServer, token: &str, path: &str) -> (u16, Value) {
    let resp = server
        .client
        .get(server.url(path))
        .header("authorization", auth(token))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// POSTs a batch to the ingest route.
pub async fn ingest(server: &TestServer, token: &str, items: Value) -> reqwest::Response {
    server
        .client
        .post(server.url("/api/grpc/monitor/requests/"))
        .header("authorization", auth(token))
        .json(&serde_json::json!({ "requests": items }))
        .send()
        .await
        .unwrap()
}

/// The request-list page for `query`, asserting 200.
pub async fn list(server: &TestServer, admin: &TestUser, query: &str) -> Value {
    let (status, body) =
        get(server, &admin.token, &format!("/api/grpc/monitor/requests/?{query}")).await;
    assert_eq!(status, 200, "{query}: {body}");
    body
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

pub fn rfc3339(secs: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(secs).unwrap();
    t.format(&time::format_description::well_known::Rfc3339).unwrap()
}

/// True if `needle` occurs in any file under `dir` (the data file, the index).
pub fn found_in_files(dir: &std::path::Path, needle: &[u8]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if found_in_files(&p, needle) {
                return true;
            }
        } else if let Ok(bytes) = std::fs::read(&p) {
            if bytes.windows(needle.len()).any(|w| w == needle) {
                return true;
            }
        }
    }
    false
}
