//! Statistics endpoints against hand-computed numbers (records reported with chosen durations
//! and statuses), `hours` handling, the timeline and health, and their `/cfg` aliases.

use serde_json::{json, Value};

use super::{get, ingest, now, rfc3339};
use crate::harness::{login_admin, register, TestServer};

fn rec(method: &str, ms: u64, status: &str, at: i64) -> Value {
    json!({"service_name": "calc.Svc", "method_name": method, "duration_ms": ms, "status": status,
           "created_at": rfc3339(at)})
}

fn has_fields(v: &Value, fields: &[&str]) {
    for f in fields {
        assert!(v.get(*f).is_some(), "missing {f} in {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_and_method_stats_match_hand_computed_numbers() {
    let server = TestServer::start().await;
    let admin = login_admin(&server).await;
    let t = now() - 120;
    let mut items: Vec<Value> =
        [10, 20, 30, 40, 50].iter().map(|d| rec("Fast", *d, "success", t)).collect();
    for (d, s) in [(100, "success"), (200, "error"), (300, "timeout"), (400, "success")] {
        items.push(rec("Slow", d, s, t - 60));
    }
    items.push(rec("Fast", 1000, "success", now() - 30 * 3600));
    items.push(json!({"service_name": "calc.Other", "method_name": "Ping", "duration_ms": 1, "api_key_id": 5}));
    items.push(json!({"service_name": "calc.Other", "method_name": "Ping", "duration_ms": 1, "api_key_id": 6}));
    assert_eq!(ingest(&server, &admin.token, json!(items)).await.status(), 201);

    let (status, m) =
        get(&server, &admin.token, "/api/grpc/monitor/methods/?hours=24&service=calc.Svc").await;
    assert_eq!(status, 200, "{m}");
    assert_eq!((m["total_methods"].as_u64(), m["period_hours"].as_u64()), (Some(2), Some(24)));
    let fast = &m["methods"][0];
    has_fields(
        fast,
        &[
            "service_name",
            "method_name",
            "total_requests",
            "successful_requests",
            "failed_requests",
            "success_rate",
            "avg_duration_ms",
            "min_duration_ms",
            "max_duration_ms",
            "total",
            "successful",
            "errors",
            "last_activity_at",
            "p50_duration_ms",
            "p95_duration_ms",
            "p99_duration_ms",
        ],
    );
    assert_eq!(fast["method_name"], "Fast");
    assert_eq!(
        (
            fast["total_requests"].as_u64(),
            fast["successful_requests"].as_u64(),
            fast["failed_requests"].as_u64()
        ),
        (Some(5), Some(5), Some(0))
    );
    assert_eq!(
        (fast["min_duration_ms"].as_u64(), fast["max_duration_ms"].as_u64()),
        (Some(10), Some(50))
    );
    assert_eq!(
        (fast["avg_duration_ms"].as_f64(), fast["success_rate"].as_f64()),
        (Some(30.0), Some(100.0))
    );
    assert_eq!(
        (
            fast["p50_duration_ms"].as_u64(),
            fast["p95_duration_ms"].as_u64(),
            fast["p99_duration_ms"].as_u64()
        ),
        (Some(30), Some(50), Some(50))
    );
    assert_eq!(fast["last_activity_at"], rfc3339(t).as_str());
    let slow = &m["methods"][1];
    assert_eq!(
        (
            slow["total"].as_u64(),
            slow["successful"].as_u64(),
            slow["errors"].as_u64(),
            slow["failed_requests"].as_u64()
        ),
        (Some(4), Some(2), Some(1), Some(2))
    );
    assert_eq!(
        (slow["success_rate"].as_f64(), slow["avg_duration_ms"].as_f64()),
        (Some(50.0), Some(250.0))
    );
    assert_eq!(
        (slow["min_duration_ms"].as_u64(), slow["max_duration_ms"].as_u64()),
        (Some(100), Some(400))
    );
    assert_eq!(
        (slow["p50_duration_ms"].as_u64(), slow["p95_duration_ms"].as_u64()),
        (Some(300), Some(400))
    );

    // A wider window takes in the record from 30 hours ago.
    let (_, wide) =
        get(&server, &admin.token, "/api/grpc/monitor/methods/?hours=48&service=calc.Svc").await;
    assert_eq!(
        (wide["methods"][0]["total"].as_u64(), wide["methods"][0]["max_duration_ms"].as_u64()),
        (Some(6), Some(1000))
    );

    let (_, s) = get(&server, &admin.token, "/api/grpc/monitor/services/?hours=24").await;
    has_fields(&s, &["services", "total_services", "period_hours"]);
    let svc = s["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["service_name"] == "calc.Svc")
        .unwrap()
        .clone();
    has_fields(
        &svc,
        &[
            "total_requests",
            "successful_requests",
            "failed_requests",
            "success_rate",
            "avg_duration_ms",
            "methods_count",
            "total",
            "successful",
            "errors",
            "last_activity_at",
            "p50_duration_ms",
            "p95_duration_ms",
            "p99_duration_ms",
        ],
    );
    assert_eq!(
        (
            svc["total"].as_u64(),
            svc["successful"].as_u64(),
            svc["errors"].as_u64(),
            svc["methods_count"].as_u64()
        ),
        (Some(9), Some(7), Some(1), Some(2))
    );
    // 7/9 = 77.78 %, 1150/9 = 127.78 ms; sorted durations [10 … 400]: p50 = d[4], p95 = d[8].
    assert_eq!(
        (svc["success_rate"].as_f64(), svc["avg_duration_ms"].as_f64()),
        (Some(77.8), Some(127.8))
    );
    let p = (
        svc["p50_duration_ms"].as_u64(),
        svc["p95_duration_ms"].as_u64(),
        svc["p99_duration_ms"].as_u64(),
    );
    assert_eq!(p, (Some(50), Some(400), Some(400)));
    assert_eq!(s["total_services"].as_u64(), Some(s["services"].as_array().unwrap().len() as u64));
    // Busiest first.
    let totals: Vec<u64> =
        s["services"].as_array().unwrap().iter().map(|x| x["total"].as_u64().unwrap()).collect();
    assert!(totals.windows(2).all(|w| w[0] >= w[1]), "{totals:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_timeline_health_and_hours() {
    let server = TestServer::start().await;
    let admin = login_admin(&server).await;
    let t = now() - 60;
    let items = json!([
        rec("A", 100, "success", t), rec("A", 200, "timeout", t), rec("B", 300, "cancelled", t - 2 * 3600),
        {"service_name": "ov.Keys", "method_name": "K", "api_key_id": 5},
        {"service_name": "ov.Keys", "method_name": "K", "api_key_id": 6},
        {"service_name": "ov.Keys", "method_name": "K", "api_key_id": 6},
    ]);
    assert_eq!(ingest(&server, &admin.token, items).await.status(), 201);
    let (status, o) = get(&server, &admin.token, "/api/grpc/monitor/overview/").await;
    assert_eq!(status, 200, "{o}");
    has_fields(
        &o,
        &[
            "total_requests",
            "successful_requests",
            "failed_requests",
            "success_rate",
            "avg_duration_ms",
            "total_services",
            "active_api_keys",
            "total",
            "successful",
            "errors",
            "cancelled",
            "timeout",
            "p50_duration_ms",
            "p95_duration_ms",
            "p99_duration_ms",
            "period_hours",
        ],
    );
    // Gatehouse's own calls are counted too, but none of them timed out or was cancelled, and
    // none used an API key.
    assert_eq!((o["timeout"].as_u64(), o["cancelled"].as_u64()), (Some(1), Some(1)));
    // Keys 5 and 6 were reported as used but do not exist: `active_api_keys` counts existing
    // valid keys (issue 18); the keys seen in the window are `used_api_keys`.
    assert_eq!(o["used_api_keys"].as_u64(), Some(2));
    assert_eq!(o["active_api_keys"].as_u64(), Some(0));
    assert_eq!(o["period_hours"].as_u64(), Some(24));
    let total = o["total_requests"].as_u64().unwrap();
    let ok = o["successful_requests"].as_u64().unwrap();
    assert!(total >= 6);
    assert_eq!((o["total"].as_u64(), o["successful"].as_u64()), (Some(total), Some(ok)));
    assert_eq!(o["failed_requests"].as_u64(), Some(total - ok));
    let rate = (ok as f64 * 1000.0 / total as f64).round() / 10.0;
    assert_eq!(o["success_rate"].as_f64(), Some(rate));
    assert!(o["total_services"].as_u64().unwrap() >= 2);
    assert!(o["p95_duration_ms"].is_u64());
    // Only the last hour: the cancelled call from two hours ago drops out.
    let (_, o1) = get(&server, &admin.token, "/api/grpc/monitor/overview/?hours=1").await;
    assert_eq!(
        (o1["cancelled"].as_u64(), o1["timeout"].as_u64(), o1["period_hours"].as_u64()),
        (Some(0), Some(1), Some(1))
    );

    // hours: non-integer → 400, out of range → clamped; the same through the alias.
    for path in [
        "/api/grpc/monitor/overview/?hours=abc",
        "/cfg/grpc/monitor/overview/?hours=abc",
        "/api/grpc/monitor/services/?hours=2.5",
        "/api/grpc/monitor/methods/?hours=x",
        "/api/grpc/monitor/timeline/?hours=x",
    ] {
        assert_eq!(get(&server, &admin.token, path).await.0, 400, "{path}");
    }
    for (q, want) in [("0", 1), ("-5", 1), ("721", 720), ("99999", 720), ("48", 48)] {
        let (_, v) =
            get(&server, &admin.token, &format!("/api/grpc/monitor/services/?hours={q}")).await;
        assert_eq!(v["period_hours"].as_u64(), Some(want), "{q}");
    }
    let (status, alias) = get(&server, &admin.token, "/cfg/grpc/monitor/overview/?hours=1").await;
    assert_eq!(status, 200);
    assert_eq!((alias["timeout"].as_u64(), alias["period_hours"].as_u64()), (Some(1), Some(1)));
    let (_, alias_m) =
        get(&server, &admin.token, "/cfg/grpc/monitor/methods/?service=calc.Svc").await;
    assert_eq!(alias_m["total_methods"].as_u64(), Some(2));

    // Timeline: per hour by default, per day when asked or past 48 hours.
    let (_, tl) = get(&server, &admin.token, "/api/grpc/monitor/timeline/?hours=24").await;
    assert_eq!((tl["interval"].as_str(), tl["period_hours"].as_u64()), (Some("hour"), Some(24)));
    let points = tl["timeline"].as_array().unwrap();
    let sum: u64 = points.iter().map(|p| p["total"].as_u64().unwrap()).sum();
    assert!(sum >= 6);
    has_fields(&points[0], &["timestamp", "total", "successful", "errors", "avg_duration_ms"]);
    let two_h = (t - 2 * 3600).div_euclid(3600) * 3600;
    let p = points
        .iter()
        .find(|p| p["timestamp"] == rfc3339(two_h).as_str())
        .expect("bucket of two hours ago");
    assert_eq!((p["total"].as_u64(), p["avg_duration_ms"].as_f64()), (Some(1), Some(300.0)));
    let (_, day) = get(&server, &admin.token, "/api/grpc/monitor/timeline/?hours=72").await;
    assert_eq!(day["interval"], "day");
    let (_, day) =
        get(&server, &admin.token, "/cfg/grpc/monitor/timeline/?hours=5&interval=day").await;
    assert_eq!(day["interval"], "day");

    let (status, h) = get(&server, &admin.token, "/api/grpc/monitor/health/").await;
    assert_eq!(status, 200);
    assert_eq!(
        (h["status"].as_str(), h["server_running"].as_bool()),
        (Some("healthy"), Some(true))
    );
    assert!(h["uptime_seconds"].is_u64());
    assert!(h["registered_services"].as_u64().unwrap() >= 2);
    assert_eq!(get(&server, &admin.token, "/cfg/grpc/monitor/health/").await.0, 200);

    // Staff only.
    let user = register(&server, "viewer").await;
    for path in [
        "/api/grpc/monitor/overview/",
        "/api/grpc/monitor/services/",
        "/api/grpc/monitor/methods/",
        "/api/grpc/monitor/timeline/",
        "/api/grpc/monitor/health/",
        "/cfg/grpc/monitor/overview/",
    ] {
        assert_eq!(get(&server, &user.token, path).await.0, 403, "{path}");
        assert_eq!(server.get(path).await.status(), 401, "{path}");
    }
}
