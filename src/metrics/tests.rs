use std::sync::Arc;
use std::time::Duration;

use super::*;

struct NoProbe;

impl SystemProbe for NoProbe {
    fn sample(&self) -> SystemSample {
        SystemSample { data_file_bytes: Some(4096), ..SystemSample::default() }
    }
}

fn metrics(max_series: usize) -> Metrics {
    Metrics::new(max_series, Arc::new(NoProbe))
}

fn op(m: &Metrics, org: Option<u64>, method: &'static str, status: u16) {
    let ms = Duration::from_millis(3);
    m.record_request(org, Name::Borrowed("gatehouse.Projects"), Name::Borrowed(method), status, ms);
}

#[test]
fn an_organization_sees_only_its_series() {
    let m = metrics(100);
    op(&m, Some(1), "projects_list", 200);
    op(&m, Some(2), "projects_create", 201);
    m.count(1, Kind::projects, 3);
    m.count(2, Kind::variables, 7);
    m.audited(Some(2), "project_created".into());
    let one = m.encode_org(1, Format::OpenMetrics).unwrap();
    assert!(one.contains(
        "gatehouse_http_requests_total{organization=\"1\",service=\"gatehouse.Projects\",method=\"projects_list\",status=\"200\"} 1"
    ), "{one}");
    assert!(one.contains("gatehouse_org_objects{organization=\"1\",kind=\"projects\"} 3"), "{one}");
    assert!(!one.contains("organization=\"2\""), "{one}");
    assert!(!one.contains("projects_create"), "{one}");
    assert!(one.ends_with("# EOF\n"));
    let all = m.encode_all(Format::OpenMetrics).unwrap();
    for needle in [
        "organization=\"1\"",
        "organization=\"2\"",
        "gatehouse_audit_events_total{organization=\"2\",action=\"project_created\"} 1",
        "gatehouse_build_info{version=",
        "gatehouse_storage_data_file_size_bytes 4096",
        "gatehouse_http_request_duration_seconds_bucket{",
    ] {
        assert!(all.contains(needle), "{needle} missing from {all}");
    }
}

#[test]
fn names_past_the_cap_are_counted_as_other() {
    let m = metrics(2);
    op(&m, Some(5), "a", 200);
    op(&m, Some(5), "b", 200);
    op(&m, Some(5), "c", 200);
    op(&m, Some(5), "d", 200);
    op(&m, Some(5), "a", 200);
    let text = m.encode_org(5, Format::OpenMetrics).unwrap();
    assert!(text.contains("method=\"a\",status=\"200\"} 2"), "{text}");
    assert!(text.contains("service=\"other\",method=\"other\",status=\"0\"} 2"), "{text}");
    assert!(!text.contains("method=\"c\""), "{text}");
    // Another organization has its own allowance.
    op(&m, Some(6), "c", 200);
    assert!(m.encode_org(6, Format::OpenMetrics).unwrap().contains("method=\"c\""));
}

#[test]
fn counts_move_with_effects_and_rate_limits_are_counted() {
    let m = metrics(10);
    m.count(3, Kind::pats, 2);
    m.count(3, Kind::pats, -1);
    assert_eq!(m.object_count(3, Kind::pats), 1);
    op(&m, None, "projects_list", 429);
    let all = m.encode_all(Format::OpenMetrics).unwrap();
    assert!(
        all.contains("gatehouse_ratelimit_refused_requests_total{organization=\"none\"} 1"),
        "{all}"
    );
}

#[test]
fn the_format_follows_accept() {
    assert_eq!(Format::from_accept(None), Format::OpenMetrics);
    assert_eq!(Format::from_accept(Some("*/*")), Format::OpenMetrics);
    assert_eq!(Format::from_accept(Some("text/plain; version=0.0.4")), Format::Text004);
    let prometheus =
        "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4";
    assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
    let m = metrics(10);
    op(&m, Some(1), "projects_list", 200);
    let text = m.encode_org(1, Format::Text004).unwrap();
    assert!(text.contains("# TYPE gatehouse_http_requests_total counter"), "{text}");
    assert!(!text.contains("# EOF"));
}

const OPS: [&str; 20] = [
    "projects_list",
    "projects_create",
    "projects_retrieve",
    "projects_update",
    "projects_destroy",
    "environments_list",
    "environments_create",
    "environments_retrieve",
    "environments_update",
    "environments_destroy",
    "variables_list",
    "variables_create",
    "variables_retrieve",
    "variables_update",
    "variables_destroy",
    "api_keys_list",
    "api_keys_create",
    "pats_list",
    "pats_create",
    "audit_logs_list",
];

/// 100 organizations × 20 operations: the scrape walks series, never requests, so ten times the
/// requests give the same lines. Prints the time of one `/all` encoding (the figure quoted in
/// the commit).
#[test]
fn scrape_cost_is_flat_in_request_volume() {
    let m = metrics(500);
    let round = |m: &Metrics| {
        for org in 1..=100 {
            for name in OPS {
                op(m, Some(org), name, 200);
            }
        }
    };
    round(&m);
    let lines = m.encode_all(Format::OpenMetrics).unwrap().lines().count();
    for _ in 0..9 {
        round(&m);
    }
    let started = std::time::Instant::now();
    let all = m.encode_all(Format::OpenMetrics).unwrap();
    let took = started.elapsed();
    assert_eq!(all.lines().count(), lines);
    let one = m.encode_org(7, Format::OpenMetrics).unwrap();
    assert!(one.lines().count() * 50 < lines, "an organization's scrape is its share only");
    eprintln!("encode_all: {} lines, {} bytes in {took:?}", lines, all.len());
}
