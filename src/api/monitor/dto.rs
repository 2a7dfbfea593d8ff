//! Response bodies of the monitoring views: django-cfg's documented field names, with the
//! names its code uses beside them (`total`, `successful`, `errors`, …) and p50/p95/p99.

use poem_openapi::Object;

use crate::logs::rollups::Agg;
use crate::logs::RequestLog;

/// One logged request.
#[derive(Debug, Object)]
pub struct RequestLogItem {
    pub id: u64,
    pub request_id: String,
    pub service_name: String,
    pub method_name: String,
    /// `success`, `error`, `timeout`, `cancelled` or `pending`.
    pub status: String,
    pub duration_ms: u64,
    /// Canonical gRPC code name (`OK`, `NOT_FOUND`, …).
    pub grpc_status_code: String,
    pub error_message: String,
    pub created_at: String,
    pub client_ip: String,
    pub user_id: Option<u64>,
    pub username: String,
    pub is_authenticated: bool,
    pub api_key_id: Option<u64>,
    pub api_key_name: String,
    /// HTTP method of a call to Gatehouse (empty for reported gRPC calls).
    pub http_method: String,
    /// Request path, keys masked (empty for reported gRPC calls).
    pub path: String,
    pub http_status: Option<u16>,
    /// How many requests this record stands for: refused anonymous requests of one address,
    /// route and minute are recorded once, with their number.
    pub count: u64,
    /// Reported calls: the user whose credential reported them.
    pub ingested_by_user_id: Option<u64>,
    /// Reported calls: the API key that reported them (null when staff reported them with a
    /// session).
    pub ingested_by_key_id: Option<u64>,
    pub ingested_by_key_name: String,
}

impl From<RequestLog> for RequestLogItem {
    fn from(r: RequestLog) -> Self {
        Self {
            id: r.id,
            request_id: r.request_id,
            service_name: r.service_name.into_owned(),
            method_name: r.method_name.into_owned(),
            status: r.status.into_owned(),
            duration_ms: r.duration_ms,
            grpc_status_code: r.grpc_status_code.into_owned(),
            error_message: r.error_message,
            created_at: crate::clock::rfc3339_from_unix(r.created_at),
            client_ip: r.client_ip,
            user_id: r.user_id,
            username: r.username,
            is_authenticated: r.is_authenticated,
            api_key_id: r.api_key_id,
            api_key_name: r.api_key_name,
            http_method: r.http_method.into_owned(),
            path: r.path,
            http_status: r.http_status,
            count: r.count,
            ingested_by_user_id: r.ingested_by_user_id,
            ingested_by_key_id: r.ingested_by_key_id,
            ingested_by_key_name: r.ingested_by_key_name,
        }
    }
}

/// `GET …/monitor/health/`.
#[derive(Debug, Object)]
pub struct MonitorHealth {
    /// `healthy`, or `unhealthy` when the data file cannot be read.
    pub status: String,
    /// Whether the HTTPS listener is accepting connections.
    pub server_running: bool,
    pub uptime_seconds: u64,
    /// Gatehouse's own services (its API tags, `gatehouse.<Tag>`) plus the services that
    /// reported calls in the last 24 hours.
    pub registered_services: u64,
    /// django-cfg code names.
    pub server_host: String,
    pub server_port: u16,
    pub enabled: bool,
    pub timestamp: String,
}

/// `GET …/monitor/overview/`.
#[derive(Debug, Object)]
pub struct OverviewStats {
    pub total_requests: u64,
    pub successful_requests: u64,
    /// Everything that did not succeed (errors, timeouts, cancellations, pending).
    pub failed_requests: u64,
    /// Percentage, one decimal.
    pub success_rate: f64,
    pub avg_duration_ms: f64,
    pub total_services: u64,
    /// API keys that are active and unexpired now (whether used or not).
    pub active_api_keys: u64,
    /// Distinct API keys that made requests in the window.
    pub used_api_keys: u64,
    pub total: u64,
    pub successful: u64,
    pub errors: u64,
    pub cancelled: u64,
    pub timeout: u64,
    pub p50_duration_ms: Option<u64>,
    pub p95_duration_ms: Option<u64>,
    pub p99_duration_ms: Option<u64>,
    pub min_duration_ms: u64,
    pub max_duration_ms: u64,
    pub period_hours: u64,
    /// django-cfg's `server` object: the HTTPS listener and its services.
    pub server: ServerInfo,
}

/// One service of the overview's `server.services`.
#[derive(Debug, Object)]
pub struct ServerService {
    /// The last dotted part of `full_name` (`Monitoring`, `Svc`).
    pub name: String,
    /// The `service_name` of the request log (`gatehouse.Monitoring`, `calc.Svc`).
    pub full_name: String,
    /// Gatehouse's own: its documented operations; reported: methods seen in the window.
    pub methods_count: u64,
    pub request_count: u64,
    pub error_count: u64,
    /// Percentage; 100.0 when there were no requests (as django-cfg).
    pub success_rate: f64,
}

/// The overview's `server` (django-cfg's `GRPCServerStatus` of the running server).
#[derive(Debug, Object)]
pub struct ServerInfo {
    /// `running` or `stopped`.
    pub status: String,
    pub is_running: bool,
    pub host: String,
    pub port: u16,
    /// `host:port`.
    pub address: String,
    pub pid: u32,
    /// RFC 3339; null before the listener was bound.
    pub started_at: Option<String>,
    /// 0 when not running.
    pub uptime_seconds: u64,
    /// `1d 2h 3m 4s`, `3m 4s`, …; `Not running` when not running.
    pub uptime_display: String,
    pub registered_services_count: u64,
    /// No gRPC reflection: Gatehouse speaks HTTPS.
    pub enable_reflection: bool,
    /// `GET /health/` answers.
    pub enable_health_check: bool,
    /// Now: the process answering is its own heartbeat.
    pub last_heartbeat: String,
    pub services: Vec<ServerService>,
    /// No service had an error in the window.
    pub services_healthy: bool,
}

/// django-cfg's `uptime_display`: the non-zero leading units down to seconds.
pub fn uptime_display(running: bool, seconds: u64) -> String {
    if !running {
        return "Not running".into();
    }
    let (d, h, m, s) = (seconds / 86400, seconds % 86400 / 3600, seconds % 3600 / 60, seconds % 60);
    if d > 0 {
        format!("{d}d {h}h {m}m {s}s")
    } else if h > 0 {
        format!("{h}h {m}m {s}s")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// The counts of the overview besides the request totals.
#[derive(Debug, Clone, Copy)]
pub struct OverviewCounts {
    pub total_services: u64,
    pub active_api_keys: u64,
    pub used_api_keys: u64,
    pub period_hours: u64,
}

impl OverviewStats {
    pub fn new(a: &Agg, c: OverviewCounts, server: ServerInfo) -> Self {
        let OverviewCounts { total_services, active_api_keys, used_api_keys, period_hours } = c;
        Self {
            total_requests: a.total,
            successful_requests: a.success,
            failed_requests: a.failed(),
            success_rate: a.success_rate(),
            avg_duration_ms: a.avg(),
            total_services,
            active_api_keys,
            used_api_keys,
            total: a.total,
            successful: a.success,
            errors: a.error,
            cancelled: a.cancelled,
            timeout: a.timeout,
            p50_duration_ms: a.percentile(0.5),
            p95_duration_ms: a.percentile(0.95),
            p99_duration_ms: a.percentile(0.99),
            min_duration_ms: a.min(),
            max_duration_ms: a.max_ms,
            period_hours,
            server,
        }
    }
}

/// One service of `GET …/monitor/services/`.
#[derive(Debug, Object)]
pub struct ServiceStats {
    pub service_name: String,
    pub total_requests: u64,
    pub successful_requests: u64,
    pub failed_requests: u64,
    pub success_rate: f64,
    pub avg_duration_ms: f64,
    pub methods_count: u64,
    pub total: u64,
    pub successful: u64,
    pub errors: u64,
    pub last_activity_at: Option<String>,
    pub min_duration_ms: u64,
    pub max_duration_ms: u64,
    pub p50_duration_ms: Option<u64>,
    pub p95_duration_ms: Option<u64>,
    pub p99_duration_ms: Option<u64>,
}

#[derive(Debug, Object)]
pub struct ServicesResponse {
    pub services: Vec<ServiceStats>,
    pub total_services: u64,
    pub period_hours: u64,
}

/// One method of `GET …/monitor/methods/`.
#[derive(Debug, Object)]
pub struct MethodStats {
    pub service_name: String,
    pub method_name: String,
    pub total_requests: u64,
    pub successful_requests: u64,
    pub failed_requests: u64,
    pub success_rate: f64,
    pub avg_duration_ms: f64,
    pub min_duration_ms: u64,
    pub max_duration_ms: u64,
    pub total: u64,
    pub successful: u64,
    pub errors: u64,
    pub last_activity_at: Option<String>,
    pub p50_duration_ms: Option<u64>,
    pub p95_duration_ms: Option<u64>,
    pub p99_duration_ms: Option<u64>,
}

#[derive(Debug, Object)]
pub struct MethodsResponse {
    pub methods: Vec<MethodStats>,
    pub total_methods: u64,
    pub period_hours: u64,
}

#[derive(Debug, Object)]
pub struct TimelinePoint {
    /// Start of the hour or day (RFC 3339 UTC).
    pub timestamp: String,
    pub total: u64,
    pub successful: u64,
    pub errors: u64,
    pub avg_duration_ms: f64,
}

#[derive(Debug, Object)]
pub struct TimelineResponse {
    pub timeline: Vec<TimelinePoint>,
    pub period_hours: u64,
    /// `hour` or `day`.
    pub interval: String,
}

/// `POST …/monitor/requests/` body: up to 1 000 records of the request-list item's fields
/// (`service_name` and `method_name` required; `created_at` defaults to now).
#[derive(Debug, Object)]
pub struct IngestRequest {
    pub requests: Vec<serde_json::Value>,
}

/// An item that was not stored, and why.
#[derive(Debug, Object)]
pub struct IngestItemError {
    /// Position in `requests` (from 0).
    pub index: u64,
    /// `{"field": ["message"]}`.
    pub errors: serde_json::Value,
}

#[derive(Debug, Object)]
pub struct IngestResponse {
    pub received: u64,
    pub stored: u64,
    pub rejected: u64,
    /// Ids of the stored records, in order.
    pub ids: Vec<u64>,
    pub errors: Vec<IngestItemError>,
}

#[cfg(test)]
mod tests {
    use super::uptime_display;

    #[test]
    fn uptime_reads_like_django_cfg() {
        assert_eq!(uptime_display(false, 0), "Not running");
        assert_eq!(uptime_display(true, 0), "0s");
        assert_eq!(uptime_display(true, 4), "4s");
        assert_eq!(uptime_display(true, 184), "3m 4s");
        assert_eq!(uptime_display(true, 7384), "2h 3m 4s");
        assert_eq!(uptime_display(true, 93784), "1d 2h 3m 4s");
        assert_eq!(uptime_display(true, 86400), "1d 0h 0m 0s");
    }
}
