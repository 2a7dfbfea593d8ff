//! Load benchmark (ignored by default): `GATEHOUSE_BENCH_RECORDS=1000000 cargo test --test it
//! bench_logs -- --ignored --nocapture`. Reports ingest records/s through the HTTP route,
//! filtered-list and statistics latencies (p50/p99, over HTTPS and in-process), index rebuild
//! time, data-file bytes per record, and the request-log layer's cost on `GET /health/`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use poem::{Endpoint, Request};
use serde_json::json;

use super::{list, now};
use crate::harness::{auth, login_admin, TestServer};
use gatehouse::logs::{rollups, stats, RequestFilter};

fn pct(mut v: Vec<Duration>, q: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 * q) as usize).min(v.len() - 1);
    v[i].as_secs_f64() * 1000.0
}

fn report(name: &str, v: Vec<Duration>) {
    println!("{name:<44} p50 {:>8.3} ms  p99 {:>8.3} ms", pct(v.clone(), 0.5), pct(v, 0.99));
}

/// Deterministic pseudo-random numbers.
fn lcg(x: &mut u64) -> u64 {
    *x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *x >> 33
}

fn batch(seed: u64, size: usize, t: i64) -> Vec<u8> {
    let mut x = seed;
    let items: Vec<_> = (0..size)
        .map(|_| {
            let r = lcg(&mut x);
            let status = if r % 10 == 0 { "error" } else { "success" };
            json!({
                "service_name": format!("bench.S{}", r % 5),
                "method_name": format!("M{}", (r / 5) % 4),
                "status": status,
                "duration_ms": r % 500,
                "created_at": t - (r % 86_000) as i64,
                "path": format!("/orders/{}", r % 1000),
                "error_message": if status == "error" { "upstream unavailable" } else { "" },
                "user_id": r % 50,
                "client_ip": "10.0.0.1",
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "requests": items })).unwrap()
}

async fn timed<F: std::future::Future>(n: usize, mut f: impl FnMut() -> F) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let s = Instant::now();
        f().await;
        out.push(s.elapsed());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "load benchmark; run explicitly"]
async fn bench_logs() {
    let n: usize = std::env::var("GATEHOUSE_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    // The daily ingest allowance would stop a million-record run.
    let server =
        TestServer::start_with(&[("GATEHOUSE_LOGS_INGEST_QUOTA_PER_DAY", "1000000000000")]).await;
    let admin = login_admin(&server).await;
    let t = now();
    let bodies: Vec<Vec<u8>> = (0..n / 1000).map(|i| batch(i as u64 + 1, 1000, t)).collect();
    let bodies = Arc::new(bodies);
    let started = Instant::now();
    let workers = 4;
    let mut handles = Vec::new();
    for w in 0..workers {
        let (client, url, token, bodies) = (
            server.client.clone(),
            server.url("/api/grpc/monitor/requests/"),
            admin.token.clone(),
            Arc::clone(&bodies),
        );
        handles.push(tokio::spawn(async move {
            for body in bodies.iter().skip(w).step_by(workers) {
                let r = client
                    .post(&url)
                    .header("authorization", auth(&token))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!("ingest through HTTP: {n} records in {secs:.2} s = {:.0} records/s", n as f64 / secs);
    let wait = Instant::now();
    while list(&server, &admin, "search=orders&page_size=1").await["count"].as_u64().unwrap()
        < n as u64
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("index visible {:.2} s after the last ingest answered", wait.elapsed().as_secs_f64());

    let q = "/api/grpc/monitor/requests/?service=bench.S1&status=error";
    let get = |path: String| {
        let (c, url, token) = (server.client.clone(), server.url(&path), admin.token.clone());
        async move {
            c.get(url)
                .header("authorization", auth(&token))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        }
    };
    report("HTTPS list service+status (page 1)", timed(200, || get(q.into())).await);
    report(
        "HTTPS list service+search (page 3)",
        timed(200, || {
            get("/api/grpc/monitor/requests/?service=bench.S2&search=unavailable&page=3".into())
        })
        .await,
    );
    report(
        "HTTPS overview hours=24",
        timed(200, || get("/api/grpc/monitor/overview/?hours=24".into())).await,
    );
    report(
        "HTTPS methods hours=24",
        timed(200, || get("/api/grpc/monitor/methods/?hours=24".into())).await,
    );
    report(
        "HTTPS overview hours=720",
        timed(200, || get("/api/grpc/monitor/overview/?hours=720".into())).await,
    );

    let state = Arc::clone(&server.running.as_ref().unwrap().state);
    let filter = RequestFilter {
        service: Some("bench.S1".into()),
        status: Some("error".into()),
        ..RequestFilter::default()
    };
    report(
        "in-process list service+status",
        timed(200, || state.logs.list_requests(filter.clone(), 0, 20)).await,
    );
    let from = rollups::window_start(now(), 24);
    let st = state.store.clone();
    report(
        "in-process overview 24h",
        timed(200, || {
            let st = st.clone();
            async move {
                st.read(|tx| stats::overview(tx, from)).unwrap();
            }
        })
        .await,
    );
    report(
        "in-process methods 24h",
        timed(200, || {
            let st = st.clone();
            async move {
                st.read(|tx| stats::methods(tx, from, None)).unwrap();
            }
        })
        .await,
    );

    // The request-log layer's own cost per request, against a whole in-process GET /health/.
    let app = gatehouse::api::build(Arc::clone(&state));
    let health =
        || async { app.call(Request::builder().uri_str("/health/").finish()).await.unwrap() };
    let full = timed(20_000, health).await.iter().sum::<Duration>() / 20_000;
    let settings = Arc::new(gatehouse::api::request_log::RequestLogSettings::new(
        gatehouse::api::catalog::ApiCatalog::shared(),
        Duration::from_secs(30),
    ));
    let bare = poem::endpoint::make_sync(|_| "ok");
    let layered = gatehouse::api::request_log::RequestLogLayer::new(
        poem::endpoint::make_sync(|_| "ok"),
        Arc::clone(&state.logs),
        settings,
    );
    let bare_t = timed(20_000, || bare.call(Request::builder().uri_str("/health/").finish()))
        .await
        .iter()
        .sum::<Duration>()
        / 20_000;
    let layer_t = timed(20_000, || layered.call(Request::builder().uri_str("/health/").finish()))
        .await
        .iter()
        .sum::<Duration>()
        / 20_000;
    let cost = layer_t.saturating_sub(bare_t);
    println!(
        "GET /health/ in-process {:.1} µs; request-log layer {:.1} µs = {:.1}% of it",
        full.as_secs_f64() * 1e6,
        cost.as_secs_f64() * 1e6,
        cost.as_secs_f64() * 100.0 / full.as_secs_f64()
    );
    let counters = &state.logs.counters;
    println!(
        "channel full waits {}, dropped {}",
        counters.full_waits.load(std::sync::atomic::Ordering::Relaxed),
        counters.dropped.load(std::sync::atomic::Ordering::Relaxed)
    );
    drop(state);
    drop(st);
    drop(app);
    drop(layered);

    let mut server = server;
    server.stop().await;
    let file = std::fs::metadata(server.data_dir().join("gatehouse.redb")).unwrap().len();
    let index = dir_size(&server.data_dir().join("index"));
    println!(
        "data file {file} bytes = {:.0} bytes/record; index {index} bytes = {:.0} bytes/record",
        file as f64 / n as f64,
        index as f64 / n as f64
    );
    std::fs::remove_dir_all(server.data_dir().join("index")).unwrap();
    let started = Instant::now();
    let server = server.restart().await;
    let admin = login_admin(&server).await;
    while list(&server, &admin, "search=orders&page_size=1").await["count"].as_u64().unwrap()
        < n as u64
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "index rebuild of {n} records: {:.2} s (start to searchable)",
        started.elapsed().as_secs_f64()
    );
}

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|it| it.flatten().map(|e| e.metadata().map(|m| m.len()).unwrap_or(0)).sum())
        .unwrap_or(0)
}
