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
    /// `healthy`, or `unhealthy` when the data file cannot be read.
    pub status: String,
    pub service: String,
    pub version: String,
}

#[derive(ApiResponse)]
pub enum HealthResponse {
    /// The service is up and its data file readable.
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
        let body = HealthStatus {
            status: if healthy { "healthy" } else { "unhealthy" }.to_string(),
            service: "Gatehouse API".to_string(),
            version: crate::VERSION.to_string(),
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
