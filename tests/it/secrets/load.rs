//! Quick load figures (ignored by default; run with
//! `cargo test --release --test it secrets::load -- --ignored --nocapture`): `/health/`, the
//! 100-variable list and durable creates, each with 32 concurrent clients.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Team;
use crate::harness::auth;

async fn hammer(
    client: reqwest::Client,
    url: Arc<dyn Fn(u64) -> (reqwest::Method, String, Option<serde_json::Value>) + Send + Sync>,
    token: String,
    clients: u64,
    secs: u64,
) -> (f64, Duration, Duration) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, url, token, counter) =
            (client.clone(), Arc::clone(&url), token.clone(), Arc::clone(&counter));
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let (m, u, body) = url(n);
                let started = Instant::now();
                let mut rb = client.request(m, u).header("authorization", auth(&token));
                if let Some(b) = body {
                    rb = rb.json(&b);
                }
                let resp = rb.send().await.unwrap();
                assert!(resp.status().is_success(), "{}", resp.status());
                let _ = resp.bytes().await.unwrap();
                lat.push(started.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    let rate = all.len() as f64 / secs as f64;
    let p = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len() - 1)).copied().unwrap_or_default()
    };
    (rate, p(0.5), p(0.99))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load test; run explicitly"]
async fn load_figures() {
    let t = Team::new().await;
    let env = t.env().await;
    for i in 0..100 {
        t.variable(env, &format!("VAR_{i:03}"), &format!("value-{i}-postgres://user:pass@host/db"))
            .await;
    }
    let base = t.s.base.clone();
    let get = |path: String| -> Arc<
        dyn Fn(u64) -> (reqwest::Method, String, Option<serde_json::Value>) + Send + Sync,
    > {
        let url = format!("{base}{path}");
        Arc::new(move |_| (reqwest::Method::GET, url.clone(), None))
    };
    let token = t.owner.token.clone();
    let health = hammer(t.s.client.clone(), get("/health/".into()), token.clone(), 32, 4).await;
    let one =
        hammer(t.s.client.clone(), get(format!("/api/environments/{env}/")), token.clone(), 32, 4)
            .await;
    let list1 = hammer(
        t.s.client.clone(),
        get(format!("/api/environments/{env}/variables/?page_size=1")),
        token.clone(),
        32,
        4,
    )
    .await;
    let list = hammer(
        t.s.client.clone(),
        get(format!("/api/environments/{env}/variables/?page_size=100")),
        token.clone(),
        32,
        4,
    )
    .await;
    let b = base.clone();
    let create = hammer(
        t.s.client.clone(),
        Arc::new(move |n| {
            let body = serde_json::json!({"key": format!("LOAD_{n}"), "value": "some-secret-value", "environment": env});
            (reqwest::Method::POST, format!("{b}/api/variables/"), Some(body))
        }),
        token.clone(),
        32,
        4,
    )
    .await;
    for (name, (rate, p50, p99)) in
        [("health", health), ("env", one), ("list1", list1), ("list100", list), ("create", create)]
    {
        println!("{name:8} {rate:8.0} req/s  p50 {p50:?}  p99 {p99:?}");
    }
    println!("list100/health = {:.0}%", list.0 / health.0 * 100.0);
}
