//! The proto-file registry (`/api/grpc/proto-files/…`, also `/cfg/grpc/proto-files/…`):
//! uploads parsed with a real parser, the list's counts on real-world files, downloads and the
//! zip, staff-only mutations with their audit records, and generated files checked by `protoc`.

use std::io::Read as _;

use serde_json::{json, Value};

use crate::harness::{assert_error, auth, login_admin, register, TestServer, TestUser};

const BASE: &str = "/api/grpc/proto-files";
const ALIAS: &str = "/cfg/grpc/proto-files";

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/protos/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

async fn put(s: &TestServer, who: &TestUser, label: &str, text: &str) -> reqwest::Response {
    s.client
        .put(s.url(&format!("{BASE}/{label}/")))
        .header("authorization", auth(&who.token))
        .header("content-type", "text/plain")
        .body(text.to_string())
        .send()
        .await
        .unwrap()
}

async fn get(s: &TestServer, who: &TestUser, path: &str) -> reqwest::Response {
    s.client.get(s.url(path)).header("authorization", auth(&who.token)).send().await.unwrap()
}

async fn generate(s: &TestServer, who: &TestUser, body: Value) -> reqwest::Response {
    s.client
        .post(s.url(&format!("{BASE}/generate/")))
        .header("authorization", auth(&who.token))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn list(s: &TestServer, who: &TestUser, prefix: &str) -> Value {
    let resp = get(s, who, &format!("{prefix}/")).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn uploads_are_parsed_listed_downloaded_and_deleted() {
    let s = TestServer::start().await;
    let admin = login_admin(&s).await;
    let expected = [
        ("crypto", "api.crypto", 4, 1),
        ("health", "grpc.health.v1", 4, 1),
        ("legacy", "legacy.v1", 3, 2),
    ];
    for (label, ..) in expected {
        let text = fixture(&format!("{label}.proto"));
        let resp = put(&s, &admin, label, &text).await;
        assert_eq!(resp.status(), 201, "{label}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["size_bytes"], text.len());
    }
    let listed = list(&s, &admin, BASE).await;
    assert_eq!(listed["total_files"], 3);
    assert_eq!(listed["proto_dir"], "redb://proto_files");
    for ((label, package, messages, services), f) in
        expected.iter().zip(listed["files"].as_array().unwrap())
    {
        assert_eq!(f["app_label"], *label);
        assert_eq!(f["filename"], format!("{label}.proto"));
        assert_eq!(f["package"], *package);
        assert_eq!(f["messages_count"], *messages, "{label}");
        assert_eq!(f["services_count"], *services, "{label}");
        let created = f["created_at"].as_f64().unwrap();
        assert!(created > 1.7e9 && created.fract() != 0.0, "{created}");
        assert_eq!(f["created_at"], f["modified_at"]);
    }
    // The same list under django-cfg's prefix, and a non-staff user may read it all.
    let user = register(&s, "reader").await;
    assert_eq!(list(&s, &user, ALIAS).await, listed);
    let resp = get(&s, &user, &format!("{ALIAS}/crypto/")).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert_eq!(resp.headers()["content-disposition"], "attachment; filename=\"crypto.proto\"");
    assert_eq!(resp.text().await.unwrap(), fixture("crypto.proto"));

    // Replacing keeps created_at; deleting answers 204, then 404.
    let resp = put(&s, &admin, "crypto", "syntax = \"proto3\";\nmessage M {}\n").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["package"], "");
    assert_eq!(body["messages_count"], 1);
    assert_eq!(body["created_at"], listed["files"][0]["created_at"]);
    assert!(body["modified_at"].as_f64() > body["created_at"].as_f64());
    let del = |path: String| {
        s.client.delete(s.url(&path)).header("authorization", auth(&admin.token)).send()
    };
    assert_eq!(del(format!("{ALIAS}/crypto/")).await.unwrap().status(), 204);
    assert_error(get(&s, &admin, &format!("{BASE}/crypto/")).await, 404).await;
    assert_error(del(format!("{BASE}/crypto/")).await.unwrap(), 404).await;
    assert_eq!(list(&s, &admin, BASE).await["total_files"], 2);

    // Each change is audited.
    let resp = get(&s, &admin, "/api/audit-logs/?page_size=100").await;
    let audit: Value = resp.json().await.unwrap();
    let actions: Vec<&str> =
        audit["results"].as_array().unwrap().iter().filter_map(|r| r["action"].as_str()).collect();
    for action in ["proto_file_created", "proto_file_updated", "proto_file_deleted"] {
        assert!(actions.contains(&action), "{action} not in {actions:?}");
    }
}

#[tokio::test]
async fn download_all_is_a_zip_of_every_file() {
    let s = TestServer::start().await;
    let admin = login_admin(&s).await;
    let user = register(&s, "zipper").await;
    let empty = get(&s, &user, &format!("{BASE}/download-all/")).await;
    assert_eq!(empty.status(), 200);
    for label in ["crypto", "health"] {
        assert_eq!(put(&s, &admin, label, &fixture(&format!("{label}.proto"))).await.status(), 201);
    }
    let resp = get(&s, &user, &format!("{ALIAS}/download-all/")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/zip");
    assert_eq!(resp.headers()["content-disposition"], "attachment; filename=\"protos.zip\"");
    let bytes = resp.bytes().await.unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    assert_eq!(zip.len(), 2);
    for label in ["crypto", "health"] {
        let mut text = String::new();
        zip.by_name(&format!("{label}.proto")).unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, fixture(&format!("{label}.proto")));
    }
}

#[tokio::test]
async fn bad_uploads_are_refused() {
    let s = TestServer::start().await;
    let admin = login_admin(&s).await;
    let ok = fixture("health.proto");
    // The parser's line and message.
    let body = assert_error(put(&s, &admin, "broken", &fixture("broken.proto")).await, 400).await;
    let message = body["details"]["body"][0].as_str().unwrap();
    assert!(message.starts_with("line 7, column 3:"), "{message}");
    assert_error(put(&s, &admin, "empty", "  \n").await, 400).await;
    let proto3_required = "syntax = \"proto3\";\nmessage A { required string a = 1; }\n";
    let body = assert_error(put(&s, &admin, "p3", proto3_required).await, 400).await;
    assert!(body["details"]["body"][0].as_str().unwrap().starts_with("line 2"), "{body}");
    // Labels outside ^[a-z][a-z0-9_]{0,63}$.
    for label in ["Crypto", "9lives", "_x", "a.b", "caf%C3%A9", &"a".repeat(65)] {
        let body = assert_error(put(&s, &admin, label, &ok).await, 400).await;
        assert!(body["details"]["app_label"].is_array(), "{label}: {body}");
        assert_error(get(&s, &admin, &format!("{BASE}/{label}/")).await, 400).await;
    }
    assert_eq!(put(&s, &admin, &"a".repeat(64), &ok).await.status(), 201);
    // Over 1 MiB: 413; not UTF-8: 400; a JSON body is not a proto file: 415 or 400.
    let big = format!("{ok}\n//{}\n", "x".repeat(1024 * 1024));
    assert_error(put(&s, &admin, "big", &big).await, 413).await;
    let resp = s
        .client
        .put(s.url(&format!("{BASE}/bytes/")))
        .header("authorization", auth(&admin.token))
        .header("content-type", "application/octet-stream")
        .body(vec![0xff, 0xfe, 0x00])
        .send()
        .await
        .unwrap();
    assert_error(resp, 400).await;
    let resp = s
        .client
        .put(s.url(&format!("{BASE}/json/")))
        .header("authorization", auth(&admin.token))
        .json(&json!({"text": ok}))
        .send()
        .await
        .unwrap();
    assert!(matches!(resp.status().as_u16(), 400 | 415), "{}", resp.status());
    // The same text as raw bytes is fine.
    let resp = s
        .client
        .put(s.url(&format!("{ALIAS}/bytes/")))
        .header("authorization", auth(&admin.token))
        .header("content-type", "application/octet-stream")
        .body(ok.clone().into_bytes())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(list(&s, &admin, BASE).await["total_files"], 2);
}

#[tokio::test]
async fn only_staff_change_files_and_only_signed_in_callers_read_them() {
    let s = TestServer::start().await;
    let admin = login_admin(&s).await;
    let user = register(&s, "notstaff").await;
    let ok = fixture("health.proto");
    assert_eq!(put(&s, &admin, "health", &ok).await.status(), 201);
    assert_error(put(&s, &user, "health", &ok).await, 403).await;
    assert_error(put(&s, &user, "mine", &ok).await, 403).await;
    let resp = s
        .client
        .delete(s.url(&format!("{BASE}/health/")))
        .header("authorization", auth(&user.token))
        .send()
        .await
        .unwrap();
    assert_error(resp, 403).await;
    assert_error(generate(&s, &user, json!({})).await, 403).await;
    assert_eq!(list(&s, &user, BASE).await["total_files"], 1);
    for path in [
        format!("{BASE}/"),
        format!("{ALIAS}/"),
        format!("{BASE}/health/"),
        format!("{BASE}/download-all/"),
    ] {
        assert_error(s.get(&path).await, 401).await;
    }
    let resp = s.client.put(s.url(&format!("{BASE}/x/"))).body(ok).send().await.unwrap();
    assert_error(resp, 401).await;
}

#[tokio::test]
async fn generation_writes_one_file_per_tag_and_skips_unchanged_ones() {
    let s = TestServer::start().await;
    let admin = login_admin(&s).await;
    let resp = generate(&s, &admin, json!({})).await;
    assert_eq!(resp.status(), 200);
    let first: Value = resp.json().await.unwrap();
    assert_eq!(first["status"], "success");
    assert_eq!(first["errors"], json!([]));
    assert_eq!(first["proto_dir"], "redb://proto_files");
    let generated: Vec<String> = serde_json::from_value(first["generated"].clone()).unwrap();
    assert_eq!(first["generated_count"], generated.len());
    for tag in ["projects", "variables", "api_keys", "personal_access_tokens", "proto_files"] {
        assert!(generated.iter().any(|g| g == tag), "{tag} not in {generated:?}");
    }
    let obj = first.as_object().unwrap();
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 5, "{keys:?}");

    // Unchanged files are skipped; `force` rewrites them; no body at all is allowed.
    let resp = s
        .client
        .post(s.url(&format!("{ALIAS}/generate/")))
        .header("authorization", auth(&admin.token))
        .send()
        .await
        .unwrap();
    let again: Value = resp.json().await.unwrap();
    assert_eq!(again["generated_count"], 0, "{again}");
    let forced: Value = generate(&s, &admin, json!({"apps": ["projects"], "force": true}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(forced["generated"], json!(["projects"]));
    // An unknown app is an error of its own; a malformed label or a wrong type is a 400.
    let partial: Value =
        generate(&s, &admin, json!({"apps": ["projects", "nosuchapp"], "force": true}))
            .await
            .json()
            .await
            .unwrap();
    assert_eq!(partial["generated"], json!(["projects"]));
    assert_eq!(partial["errors"][0]["app"], "nosuchapp");
    assert_error(generate(&s, &admin, json!({"apps": ["Bad-Label"]})).await, 400).await;
    assert_error(generate(&s, &admin, json!({"apps": "projects"})).await, 400).await;
    assert_error(generate(&s, &admin, json!({"force": "yes"})).await, 400).await;

    // The list shows what the parser read; the service is the tag's.
    let listed = list(&s, &admin, BASE).await;
    let projects = listed["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["app_label"] == "projects")
        .unwrap()
        .clone();
    assert_eq!(projects["package"], "gatehouse.projects");
    assert_eq!(projects["services_count"], 1);
    assert!(projects["messages_count"].as_u64().unwrap() > 3);
    let text = get(&s, &admin, &format!("{BASE}/projects/")).await.text().await.unwrap();
    assert!(text.contains("service ProjectsService {"), "{text}");
    assert!(text.contains("rpc ProjectsList(ProjectsListRequest)"), "{text}");

    protoc_compiles(&s, &admin, &generated).await;
}

/// Every generated file compiles with `protoc` (Debian `protobuf-compiler`) when it is
/// installed; the test says so and skips this part when it is not.
async fn protoc_compiles(s: &TestServer, admin: &TestUser, labels: &[String]) {
    if std::process::Command::new("protoc").arg("--version").output().is_err() {
        println!("skip: protoc is not installed (apt-get install protobuf-compiler)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for label in labels {
        let text = get(s, admin, &format!("{BASE}/{label}/")).await.text().await.unwrap();
        std::fs::write(dir.path().join(format!("{label}.proto")), text).unwrap();
    }
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    for label in labels {
        let out = std::process::Command::new("protoc")
            .arg(format!("--proto_path={}", dir.path().display()))
            .arg(format!("--descriptor_set_out={}", out_dir.join(format!("{label}.pb")).display()))
            .arg(format!("{label}.proto"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "protoc refused {label}.proto: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // All together too: each file has its own package, so no name is defined twice.
    let out = std::process::Command::new("protoc")
        .arg(format!("--proto_path={}", dir.path().display()))
        .arg(format!("--descriptor_set_out={}", out_dir.join("all.pb").display()))
        .args(labels.iter().map(|l| format!("{l}.proto")))
        .output()
        .unwrap();
    assert!(out.status.success(), "protoc: {}", String::from_utf8_lossy(&out.stderr));
}
