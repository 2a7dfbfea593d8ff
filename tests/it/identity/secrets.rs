//! No password, token or key in clear: not in the data file, the captured logs, or audit details.

use serde_json::{json, Value};

use crate::harness::{auth, register, TestServer};

#[tokio::test]
async fn planted_secrets_never_appear_in_clear() {
    use tracing_subscriber::fmt::MakeWriter;
    #[derive(Clone, Default)]
    struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }
    let logs = Buf::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut server = TestServer::start().await;
    let u = register(&server, "planted").await;
    let mut planted = vec![u.password.clone(), u.token.clone()];
    let login: Value = server
        .client
        .post(server.url("/api/auth/login/"))
        .json(&json!({"email": u.email, "password": u.password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for f in ["token", "access", "refresh"] {
        planted.push(login[f].as_str().unwrap().to_string());
    }
    let key: Value = server
        .client
        .post(server.url("/api/api-keys/"))
        .header("authorization", auth(&u.token))
        .json(&json!({"name": "planted key"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = key["key"].as_str().unwrap().to_string();
    server
        .client
        .get(server.url("/api/auth/profile/"))
        .header("authorization", format!("Api-Key {key}"))
        .send()
        .await
        .unwrap();
    planted.push(key);
    let pat: Value = server
        .client
        .post(server.url("/api/v1/personal-access-tokens"))
        .header("authorization", auth(&u.token))
        .json(&json!({"name": "planted pat"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    planted.push(pat["access_token"].as_str().unwrap().to_string());
    // Failed logins with a secret-looking password, and a bad token in a header.
    server
        .client
        .post(server.url("/api/auth/login/"))
        .json(&json!({"email": u.email, "password": "planted-wrong-password-xyz"}))
        .send()
        .await
        .unwrap();
    planted.push("planted-wrong-password-xyz".into());
    let new_pw = "planted-new-password-123";
    server
        .client
        .post(server.url("/api/auth/password/change/"))
        .header("authorization", auth(&u.token))
        .json(&json!({"old_password": u.password, "new_password": new_pw}))
        .send()
        .await
        .unwrap();
    planted.push(new_pw.into());

    let audit: Vec<String> = {
        use gatehouse::store::Reader as _;
        let state = &server.running.as_ref().unwrap().state;
        state
            .store
            .read(|tx| {
                tx.scan(gatehouse::domain::audit::tables::AUDIT, 0..=u64::MAX, usize::MAX, false)
            })
            .unwrap()
            .into_iter()
            .map(|(_, r)| serde_json::to_string(&r).unwrap())
            .collect()
    };
    assert!(audit.len() >= 6);
    server.stop().await;
    let data = std::fs::read(server.data_dir().join("gatehouse.redb")).unwrap();
    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    for secret in &planted {
        assert!(!contains(&data, secret.as_bytes()), "secret in the data file");
        assert!(!logs.contains(secret.as_str()), "secret in the logs");
        assert!(audit.iter().all(|a| !a.contains(secret.as_str())), "secret in audit details");
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
