//! django-cfg's view of "the server": the HTTPS listener (running or not, address, start,
//! uptime) and the services registered on it — Gatehouse's own API tags (`gatehouse.<Tag>`,
//! the request log's service names for its own calls) plus the services that reported calls
//! in the window, each once.

use std::collections::BTreeMap;

use super::dto::{uptime_display, ServerInfo, ServerService};
use crate::api::catalog::ApiCatalog;
use crate::clock::{now_rfc3339, rfc3339_from_unix, unix_now};
use crate::logs::rollups::Agg;
use crate::logs::stats::Row;
use crate::services::Services;

/// Gatehouse's own services and their documented operations: `gatehouse.<Tag>` → count.
pub fn own_services() -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for op in ApiCatalog::shared().operations() {
        if let Some(name) = &op.service_name {
            *out.entry(name.clone()).or_insert(0) += 1;
        }
    }
    out
}

/// Gatehouse's own services and the reported ones (`rows`, per service of the window),
/// deduplicated by full name, in name order.
pub fn registered(rows: Vec<Row>) -> Vec<ServerService> {
    let mut by_name: BTreeMap<String, (u64, Agg)> =
        own_services().into_iter().map(|(name, ops)| (name, (ops, Agg::default()))).collect();
    for r in rows {
        let own = by_name.contains_key(&r.service);
        let e = by_name.entry(r.service).or_insert((0, Agg::default()));
        if !own {
            e.0 = r.methods_count;
        }
        e.1.merge(&r.agg);
    }
    by_name
        .into_iter()
        .map(|(full_name, (methods_count, a))| ServerService {
            name: full_name.rsplit('.').next().unwrap_or(&full_name).to_string(),
            methods_count,
            request_count: a.total,
            error_count: a.error,
            success_rate: if a.total == 0 { 100.0 } else { a.success_rate() },
            full_name,
        })
        .collect()
}

/// Seconds since the listener was bound; 0 when it is not accepting.
pub fn uptime_seconds(state: &Services) -> u64 {
    match state.listener.started_at() {
        Some(t) if state.listener.is_running() => u64::try_from(unix_now() - t).unwrap_or(0),
        _ => 0,
    }
}

/// The bound address, or the configured one before binding.
pub fn address(state: &Services) -> (String, u16) {
    let addr = state.listener.addr().or_else(|| state.config.listen_addr().ok());
    (addr.map(|a| a.ip().to_string()).unwrap_or_default(), addr.map_or(0, |a| a.port()))
}

/// The overview's `server` object over the window's per-service rows.
pub fn info(state: &Services, rows: Vec<Row>) -> ServerInfo {
    let services = registered(rows);
    let running = state.listener.is_running();
    let uptime = uptime_seconds(state);
    let (host, port) = address(state);
    ServerInfo {
        status: if running { "running" } else { "stopped" }.into(),
        is_running: running,
        address: if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        },
        host,
        port,
        pid: std::process::id(),
        started_at: state.listener.started_at().map(rfc3339_from_unix),
        uptime_seconds: uptime,
        uptime_display: uptime_display(running, uptime),
        registered_services_count: services.len() as u64,
        enable_reflection: false,
        enable_health_check: true,
        last_heartbeat: now_rfc3339(),
        services_healthy: services.iter().all(|s| s.error_count == 0),
        services,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_tags_and_reported_services_are_listed_once() {
        let own = own_services();
        assert!(own.contains_key("gatehouse.Monitoring") && own.contains_key("gatehouse.ApiKeys"));
        let agg = |total, success, error| Agg { total, success, error, ..Agg::default() };
        let rows = vec![
            Row {
                service: "gatehouse.Monitoring".into(),
                method: String::new(),
                methods_count: 1,
                agg: agg(3, 2, 1),
            },
            Row {
                service: "calc.Svc".into(),
                method: String::new(),
                methods_count: 2,
                agg: agg(4, 4, 0),
            },
        ];
        let all = registered(rows);
        assert_eq!(all.len(), own.len() + 1);
        let m = all.iter().find(|s| s.full_name == "gatehouse.Monitoring").unwrap();
        assert_eq!((m.name.as_str(), m.request_count, m.error_count), ("Monitoring", 3, 1));
        assert_eq!(m.methods_count, own["gatehouse.Monitoring"]);
        let c = all.iter().find(|s| s.full_name == "calc.Svc").unwrap();
        assert_eq!((c.name.as_str(), c.methods_count, c.success_rate), ("Svc", 2, 100.0));
        let idle = all.iter().find(|s| s.full_name == "gatehouse.Health").unwrap();
        assert_eq!((idle.request_count, idle.success_rate), (0, 100.0));
    }
}
