//! Real scrapers of the metrics: Debian's `prometheus` (when installed) scraping over HTTPS
//! with a CA file and a PAT in a credentials file, and the scrape-latency benchmark (ignored by
//! default) with 100 organizations.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{auth, login_admin, register, TestServer};
use crate::metrics::{get, jwt, pat, scrape, ALL, ORG};

/// Asks the local Prometheus for `query`; the first sample's value.
async fn query(client: &reqwest::Client, base: &str, q: &str) -> Option<f64> {
    let resp =
        client.get(format!("{base}/api/v1/query")).query(&[("query", q)]).send().await.ok()?;
    let body: Value = resp.json().await.ok()?;
    body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_over_https_with_a_pat() {
    if std::process::Command::new("prometheus").arg("--version").output().is_err() {
        eprintln!("skipped: prometheus is not installed (apt-get install prometheus)");
        return;
    }
    let server = TestServer::start().await;
    let u = register(&server, "m_prom").await;
    let bearer = pat(&server, &u, json!({"name": "prometheus", "read_only": true})).await;
    let dir = tempfile::tempdir().unwrap();
    let (ca, token) = (dir.path().join("ca.pem"), dir.path().join("gatehouse.pat"));
    std::fs::write(&ca, &server.ca_pem).unwrap();
    std::fs::write(&token, bearer.trim_start_matches("Bearer ")).unwrap();
    let target = server.url("").trim_start_matches("https://").to_string();
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: gatehouse\n    scheme: https\n    metrics_path: /api/v1/metrics\n    tls_config:\n      ca_file: {}\n    authorization:\n      type: Bearer\n      credentials_file: {}\n    static_configs:\n      - targets: [\"{target}\"]\n",
        ca.display(),
        token.display()
    );
    let config_file = dir.path().join("prometheus.yml");
    std::fs::write(&config_file, config).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = std::process::Command::new("prometheus")
        .arg(format!("--config.file={}", config_file.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The harness client (reqwest here has no default TLS provider); the query is plain HTTP.
    let client = crate::harness::client_for(&server.ca_pem);
    let base = format!("http://127.0.0.1:{port}");
    let pats = format!("gatehouse_org_objects{{organization=\"{}\",kind=\"pats\"}}", u.org_id);
    let mut seen = (None, None);
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        seen = (
            query(&client, &base, "up{job=\"gatehouse\"}").await,
            query(&client, &base, &pats).await,
        );
        if seen == (Some(1.0), Some(1.0)) {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(seen, (Some(1.0), Some(1.0)), "prometheus did not scrape gatehouse (up, pats)");
}

fn pct(mut v: Vec<std::time::Duration>, q: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 * q) as usize).min(v.len() - 1);
    v[i].as_secs_f64() * 1000.0
}

/// Scrape latency with 100 organizations (ignored by default): `cargo test --test it
/// bench_metrics -- --ignored --nocapture`. Times `/api/v1/metrics/all` and one organization's
/// `/api/v1/metrics` over HTTPS, then again after ten times the requests (flat: the scrape
/// walks series, not requests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run explicitly"]
async fn bench_metrics() {
    let server = TestServer::start_with(&[("GATEHOUSE_RATE_LIMIT_ENABLED", "false")]).await;
    let admin = login_admin(&server).await;
    let mut users = Vec::new();
    for i in 0..100 {
        users.push(register(&server, &format!("bench{i}")).await);
    }
    let requests = |rounds: usize| {
        let server = &server;
        let users = &users;
        async move {
            for _ in 0..rounds {
                for u in users {
                    for path in ["/api/projects/", "/api/environments/", "/api/auth/profile/"] {
                        get(server, path, &auth(&u.token)).await;
                    }
                }
            }
        }
    };
    let one = jwt(&server, &users[7], users[7].org_id).await;
    let time = |path: &'static str, header: String| {
        let server = &server;
        async move {
            let mut v = Vec::new();
            let mut lines = 0;
            for _ in 0..50 {
                let t = std::time::Instant::now();
                let text = scrape(server, path, &header).await;
                v.push(t.elapsed());
                lines = text.lines().count();
            }
            (pct(v.clone(), 0.5), pct(v, 0.99), lines)
        }
    };
    // 6 requests per organization, then 54 more (ten times the volume).
    for (label, rounds) in [("600 requests", 2usize), ("6000 requests", 18)] {
        requests(rounds).await;
        let (p50, p99, lines) = time(ALL, auth(&admin.token)).await;
        println!("{label:<24} /all      p50 {p50:>7.2} ms  p99 {p99:>7.2} ms  {lines} lines");
        let (p50, p99, lines) = time(ORG, one.clone()).await;
        println!("{label:<24} /metrics  p50 {p50:>7.2} ms  p99 {p99:>7.2} ms  {lines} lines");
    }
}
