//! `GET /health/` and `GET /api/` (KeyNest's health check and API index).

use std::collections::BTreeMap;
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::api::tags::ApiTags;
use crate::services::Services;

#[derive(Default)]
pub struct HealthApi;

#[derive(Debug, Object)]
pub struct HealthStatus {
    /// `healthy`; `degraded` (still 200) while writes are refused but reads work (the data
    /// disk is full); `unhealthy` (503) when the data file cannot be read.
    pub status: String,
    pub service: String,
    pub version: String,
    /// Whether the data file takes writes, and why not.
    pub storage: StorageHealth,
}

#[derive(Debug, Object)]
pub struct StorageHealth {
    /// False while writes are refused (answered 503).
    pub writable: bool,
    /// Why writes are refused (`disk_full`, `unreadable`), or null.
    pub reason: Option<String>,
}

#[derive(ApiResponse)]
pub enum HealthResponse {
    /// The service is up and its data file readable (`status` says whether it takes writes).
    #[oai(status = 200)]
    Healthy(Json<HealthStatus>),
    /// The data file cannot be read.
    #[oai(status = 503)]
    Unhealthy(Json<HealthStatus>),
}

#[derive(Debug, Object)]
pub struct ApiIndex {
    pub message: String,
    pub version: String,
    /// Where the main groups of routes live.
    pub endpoints: BTreeMap<String, String>,
}

#[OpenApi(tag = "ApiTags::Health")]
impl HealthApi {
    /// Health check: is the service up and its data file readable?
    #[oai(path = "/health/", method = "get", operation_id = "health_retrieve")]
    async fn health(&self, state: Data<&Arc<Services>>) -> HealthResponse {
        let healthy = state.store.healthy();
        // statvfs: a few microseconds.
        let disk_full = state.store.disk_space().refusing_writes();
        let (status, reason) = match (healthy, disk_full) {
            (false, _) => ("unhealthy", Some("unreadable")),
            (true, true) => ("degraded", Some("disk_full")),
            (true, false) => ("healthy", None),
        };
        let body = HealthStatus {
            status: status.to_string(),
            service: "Gatehouse API".to_string(),
            version: crate::VERSION.to_string(),
            storage: StorageHealth {
                writable: reason.is_none(),
                reason: reason.map(str::to_string),
            },
        };
        if healthy {
            HealthResponse::Healthy(Json(body))
        } else {
            HealthResponse::Unhealthy(Json(body))
        }
    }

    /// The API index.
    #[oai(path = "/api/", method = "get", operation_id = "api_root_retrieve")]
    async fn root(&self) -> Json<ApiIndex> {
        let endpoints = [
            ("authentication", "/api/auth/"),
            ("organizations", "/api/organizations/"),
            ("projects", "/api/projects/"),
            ("environments", "/api/environments/"),
            ("variables", "/api/variables/"),
            ("audit_logs", "/api/audit-logs/"),
            ("api_keys", "/api/api-keys/"),
            ("monitoring", "/api/grpc/monitor/"),
            ("metrics", "/api/v1/metrics"),
            ("schema", "/api/schema/"),
            ("docs", "/api/docs/"),
            ("health", "/health/"),
            ("admin", "/admin/"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Json(ApiIndex {
            message: "Welcome to Gatehouse API".to_string(),
            version: crate::VERSION.to_string(),
            endpoints,
        })
    }
}
