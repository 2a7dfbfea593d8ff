//! The monitoring views as plain functions of (state, caller, parameters), shared by the
//! OpenAPI operations under `/api/grpc/monitor/…` and the `/cfg/grpc/monitor/…` aliases.

use std::collections::BTreeSet;
use std::sync::Arc;

use poem::Request;

use super::dto::{
    MethodStats, MethodsResponse, MonitorHealth, OverviewCounts, OverviewStats, RequestLogItem,
    ServiceStats, ServicesResponse, TimelinePoint, TimelineResponse,
};
use super::params::{MonitorParams, CFG_PAGE_SIZE};
use super::server;
use crate::api::error::ApiResult;
use crate::api::paging::{Page, PageRequest};
use crate::clock::{rfc3339_from_unix, unix_now};
use crate::domain::api_keys;
use crate::domain::Principal;
use crate::logs::rollups::window_start;
use crate::logs::stats::{self, Row};
use crate::services::Services;

pub async fn list(
    state: &Arc<Services>,
    req: &Request,
    p: &Principal,
    params: &MonitorParams,
) -> ApiResult<Page<RequestLogItem>> {
    p.require_staff()?;
    let page = PageRequest::new(params.page, Some(params.page_size.unwrap_or(CFG_PAGE_SIZE)))?;
    let filter = params.request_filter(unix_now())?;
    let (count, records) = state.logs.list_requests(filter, page.offset(), page.limit()).await?;
    page.build(req, count, records.into_iter().map(RequestLogItem::from).collect())
}

pub async fn health(state: &Arc<Services>, p: &Principal) -> ApiResult<MonitorHealth> {
    let from = window_start(unix_now(), 24);
    let reported = state.logs.staff_read(p, move |tx| stats::service_names(tx, from)).await?;
    let mut names: BTreeSet<String> = server::own_services().into_keys().collect();
    names.extend(reported);
    let (host, port) = server::address(state);
    let healthy = state.store.healthy();
    Ok(MonitorHealth {
        status: if healthy { "healthy" } else { "unhealthy" }.into(),
        server_running: state.listener.is_running(),
        uptime_seconds: server::uptime_seconds(state),
        registered_services: names.len() as u64,
        server_host: host,
        server_port: port,
        enabled: true,
        timestamp: crate::clock::now_rfc3339(),
    })
}

pub async fn overview(
    state: &Arc<Services>,
    p: &Principal,
    params: &MonitorParams,
) -> ApiResult<OverviewStats> {
    let hours = params.hours();
    let now = unix_now();
    let from = window_start(now, hours);
    let o = state.logs.staff_read(p, move |tx| stats::overview(tx, from)).await?;
    let active_api_keys = state.store.read(|tx| api_keys::count_valid(tx, now))?;
    let counts = OverviewCounts {
        total_services: o.services,
        active_api_keys,
        used_api_keys: o.used_api_keys,
        period_hours: hours,
    };
    Ok(OverviewStats::new(&o.agg, counts, server::info(state, o.per_service)))
}

fn last(a: &crate::logs::rollups::Agg) -> Option<String> {
    a.last_at.map(rfc3339_from_unix)
}

fn service_stats(r: Row) -> ServiceStats {
    let a = &r.agg;
    ServiceStats {
        total_requests: a.total,
        successful_requests: a.success,
        failed_requests: a.failed(),
        success_rate: a.success_rate(),
        avg_duration_ms: a.avg(),
        methods_count: r.methods_count,
        total: a.total,
        successful: a.success,
        errors: a.error,
        last_activity_at: last(a),
        min_duration_ms: a.min(),
        max_duration_ms: a.max_ms,
        p50_duration_ms: a.percentile(0.5),
        p95_duration_ms: a.percentile(0.95),
        p99_duration_ms: a.percentile(0.99),
        service_name: r.service,
    }
}

fn method_stats(r: Row) -> MethodStats {
    let a = &r.agg;
    MethodStats {
        total_requests: a.total,
        successful_requests: a.success,
        failed_requests: a.failed(),
        success_rate: a.success_rate(),
        avg_duration_ms: a.avg(),
        min_duration_ms: a.min(),
        max_duration_ms: a.max_ms,
        total: a.total,
        successful: a.success,
        errors: a.error,
        last_activity_at: last(a),
        p50_duration_ms: a.percentile(0.5),
        p95_duration_ms: a.percentile(0.95),
        p99_duration_ms: a.percentile(0.99),
        service_name: r.service,
        method_name: r.method,
    }
}

pub async fn services(
    state: &Arc<Services>,
    p: &Principal,
    params: &MonitorParams,
) -> ApiResult<ServicesResponse> {
    let hours = params.hours();
    let from = window_start(unix_now(), hours);
    let rows = state.logs.staff_read(p, move |tx| stats::services(tx, from)).await?;
    let services: Vec<ServiceStats> = rows.into_iter().map(service_stats).collect();
    Ok(ServicesResponse { total_services: services.len() as u64, services, period_hours: hours })
}

pub async fn methods(
    state: &Arc<Services>,
    p: &Principal,
    params: &MonitorParams,
) -> ApiResult<MethodsResponse> {
    let hours = params.hours();
    let from = window_start(unix_now(), hours);
    let service = params.service.clone();
    let rows =
        state.logs.staff_read(p, move |tx| stats::methods(tx, from, service.as_deref())).await?;
    let methods: Vec<MethodStats> = rows.into_iter().map(method_stats).collect();
    Ok(MethodsResponse { total_methods: methods.len() as u64, methods, period_hours: hours })
}

pub async fn timeline(
    state: &Arc<Services>,
    p: &Principal,
    params: &MonitorParams,
) -> ApiResult<TimelineResponse> {
    let hours = params.hours();
    // As django-cfg: days when asked for, or when the window is longer than two days.
    let day = params.interval.as_deref() == Some("day") || hours > 48;
    let from = window_start(unix_now(), hours);
    let points = state.logs.staff_read(p, move |tx| stats::timeline(tx, from, day)).await?;
    let timeline = points
        .into_iter()
        .map(|(ts, a)| TimelinePoint {
            timestamp: rfc3339_from_unix(ts),
            total: a.total,
            successful: a.success,
            errors: a.error,
            avg_duration_ms: a.avg(),
        })
        .collect();
    Ok(TimelineResponse {
        timeline,
        period_hours: hours,
        interval: if day { "day" } else { "hour" }.into(),
    })
}
