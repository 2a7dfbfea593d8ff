//! Request monitoring (django-cfg's gRPC monitor): the request list and batch ingest, health,
//! overview, per-service, per-method and timeline statistics. Staff only (ingest also for an
//! API key staff enabled for it). The same views answer under `/cfg/grpc/monitor/…` (see
//! `alias`).

pub mod alias;
pub mod dto;
pub mod ingest;
pub mod params;
pub mod server;
pub mod views;

use std::sync::Arc;

use poem::web::Data;
use poem::Request;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use crate::api::error::ApiResult;
use crate::api::paging::Page;
use crate::api::security::Authenticated;
use crate::api::tags::ApiTags;
use crate::services::Services;
use dto::{
    IngestRequest, IngestResponse, MethodsResponse, MonitorHealth, OverviewStats, RequestLogItem,
    ServicesResponse, TimelineResponse,
};
use params::MonitorParams;

#[derive(Default)]
pub struct MonitorApi;

#[derive(ApiResponse)]
pub enum IngestCreated {
    /// The valid items were stored; `errors` lists the others by index.
    #[oai(status = 201)]
    Created(Json<IngestResponse>),
}

fn window(hours: Option<i64>) -> MonitorParams {
    MonitorParams { hours, ..MonitorParams::default() }
}

#[OpenApi(tag = "ApiTags::Monitoring")]
impl MonitorApi {
    /// Recent requests, newest first, with filters and full-text search over path and error.
    #[allow(clippy::too_many_arguments)] // one parameter per documented query field
    #[oai(
        path = "/api/grpc/monitor/requests/",
        method = "get",
        operation_id = "grpc_monitor_requests_list"
    )]
    async fn requests_list(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        /// Service name (exact).
        service: Query<Option<String>>,
        /// Method name (exact).
        method: Query<Option<String>>,
        /// `success`, `error`, `timeout`, `cancelled` or `pending`.
        status: Query<Option<String>>,
        user_id: Query<Option<u64>>,
        api_key_id: Query<Option<u64>>,
        /// `YYYY-MM-DD` (inclusive, UTC) or RFC 3339.
        date_from: Query<Option<String>>,
        /// `YYYY-MM-DD` (inclusive, UTC) or RFC 3339.
        date_to: Query<Option<String>>,
        /// Only the last N hours (1–720), when no dates are given.
        hours: Query<Option<i64>>,
        /// Words that must occur in the path or error message.
        search: Query<Option<String>>,
        page: Query<Option<u64>>,
        page_size: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<RequestLogItem>>> {
        let params = MonitorParams {
            service: service.0,
            method: method.0,
            status: status.0,
            user_id: user_id.0,
            api_key_id: api_key_id.0,
            date_from: date_from.0,
            date_to: date_to.0,
            hours: hours.0,
            search: search.0,
            interval: None,
            page: page.0,
            page_size: page_size.0,
        };
        views::list(&state, req, auth.principal(), &params).await.map(Json)
    }

    /// Report calls: `{"requests": [...]}`, up to 1 000 items.
    #[oai(
        path = "/api/grpc/monitor/requests/",
        method = "post",
        operation_id = "grpc_monitor_requests_create"
    )]
    async fn requests_create(
        &self,
        state: Data<&Arc<Services>>,
        auth: Authenticated,
        body: Json<IngestRequest>,
    ) -> ApiResult<IngestCreated> {
        let out = ingest::ingest(
            &state.logs,
            &state.metrics,
            &state.store,
            auth.principal(),
            &body.0.requests,
        )
        .await?;
        Ok(IngestCreated::Created(Json(out)))
    }

    /// Monitoring health.
    #[oai(
        path = "/api/grpc/monitor/health/",
        method = "get",
        operation_id = "grpc_monitor_health_retrieve"
    )]
    async fn health(
        &self,
        state: Data<&Arc<Services>>,
        auth: Authenticated,
    ) -> ApiResult<Json<MonitorHealth>> {
        views::health(&state, auth.principal()).await.map(Json)
    }

    /// Totals of the last `hours` (default 24, clamped to 1–720).
    #[oai(
        path = "/api/grpc/monitor/overview/",
        method = "get",
        operation_id = "grpc_monitor_overview_retrieve"
    )]
    async fn overview(
        &self,
        state: Data<&Arc<Services>>,
        auth: Authenticated,
        hours: Query<Option<i64>>,
    ) -> ApiResult<Json<OverviewStats>> {
        views::overview(&state, auth.principal(), &window(hours.0)).await.map(Json)
    }

    /// Per-service statistics, busiest first.
    #[oai(
        path = "/api/grpc/monitor/services/",
        method = "get",
        operation_id = "grpc_monitor_services_retrieve"
    )]
    async fn services(
        &self,
        state: Data<&Arc<Services>>,
        auth: Authenticated,
        hours: Query<Option<i64>>,
    ) -> ApiResult<Json<ServicesResponse>> {
        views::services(&state, auth.principal(), &window(hours.0)).await.map(Json)
    }

    /// Per-method statistics, busiest first, optionally of one service.
    #[oai(
        path = "/api/grpc/monitor/methods/",
        method = "get",
        operation_id = "grpc_monitor_methods_retrieve"
    )]
    async fn methods(
        &self,
        state: Data<&Arc<Services>>,
        auth: Authenticated,
        hours: Query<Option<i64>>,
        service: Query<Option<String>>,
    ) -> ApiResult<Json<MethodsResponse>> {
        let params = MonitorParams { service: service.0, ..window(hours.0) };
        views::methods(&state, auth.principal(), &params).await.map(Json)
    }

    /// Requests per hour or day.
    #[oai(
        path = "/api/grpc/monitor/timeline/",
        method = "get",
        operation_id = "grpc_monitor_timeline_retrieve"
    )]
    async fn timeline(
        &self,
        state: Data<&Arc<Services>>,
        auth: Authenticated,
        hours: Query<Option<i64>>,
        /// `hour` (default) or `day`.
        interval: Query<Option<String>>,
    ) -> ApiResult<Json<TimelineResponse>> {
        let params = MonitorParams { interval: interval.0, ..window(hours.0) };
        views::timeline(&state, auth.principal(), &params).await.map(Json)
    }
}
