//! ShellUI's Prometheus endpoints: `GET /api/v1/metrics` (the organization in the token's
//! `company_id`; its admins and staff) and `GET /api/v1/metrics/all` (staff through their own
//! login, or a PAT with `pat_agm`). Both answer OpenMetrics text from prometheus-client, or the
//! 0.0.4 text format when `Accept` asks for it. The checks run in ShellUI's order: a
//! `company_id` in the query string (400), no `company_id` claim (400), unknown organization
//! (404), a caller who is neither staff nor an admin of it (403).

use std::collections::BTreeMap;
use std::sync::Arc;

use poem::web::Data;
use poem::Request;
use poem_openapi::payload::PlainText;
use poem_openapi::{ApiResponse, OpenApi, ResponseContent};

use crate::api::error::ApiResult;
use crate::api::security::Authenticated;
use crate::api::tags::ApiTags;
use crate::domain::{orgs, CredentialKind, Error, Principal, Role};
use crate::metrics::Format;
use crate::services::Services;

#[derive(Default)]
pub struct MetricsApi;

/// The exposition, in the format the scraper negotiated.
#[derive(ResponseContent)]
pub enum Exposition {
    /// OpenMetrics 1.0.0 (the default).
    #[oai(content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")]
    OpenMetrics(PlainText<String>),
    /// The Prometheus text format 0.0.4 (`Accept: text/plain` without OpenMetrics).
    #[oai(content_type = "text/plain; version=0.0.4; charset=utf-8")]
    Text(PlainText<String>),
}

#[derive(ApiResponse)]
pub enum MetricsResponse {
    /// Metric families as text.
    #[oai(status = 200)]
    Ok(Exposition),
}

fn answer(format: Format, text: Result<String, std::fmt::Error>) -> ApiResult<MetricsResponse> {
    let text = text.map_err(|_| Error::internal("metrics encoding"))?;
    Ok(MetricsResponse::Ok(match format {
        Format::OpenMetrics => Exposition::OpenMetrics(PlainText(text)),
        Format::Text004 => Exposition::Text(PlainText(text)),
    }))
}

fn enabled(state: &Services) -> Result<(), Error> {
    if state.config.metrics.enabled {
        Ok(())
    } else {
        Err(Error::not_found("Metrics"))
    }
}

fn format_of(req: &Request) -> Format {
    Format::from_accept(req.header(poem::http::header::ACCEPT))
}

/// The organization whose metrics the caller may read (see the module doc for the order).
fn organization(state: &Services, req: &Request, p: &Principal) -> Result<u64, Error> {
    // Any `company_id` parameter, however it is spelled in the query, is refused: the scope is
    // the token's alone.
    let query = req.params::<BTreeMap<String, String>>().unwrap_or_default();
    if query.contains_key("company_id") || req.uri().query().is_some_and(has_company_id) {
        return Err(Error::invalid(
            "company_id",
            "company_id must not be passed in the query string; the token's company_id is used.",
        ));
    }
    let org = p.company_id.ok_or_else(|| {
        Error::invalid(
            "company_id",
            "The token has no company_id claim; use a JWT or personal access token issued \
             for a company.",
        )
    })?;
    if !state.store.read(|tx| orgs::exists(tx, org))? {
        return Err(Error::not_found("Organization"));
    }
    if !p.is_staff && p.role_in(org) != Some(Role::Admin) {
        return Err(Error::forbidden(
            "Only staff or an admin of the token's company may read its metrics.",
        ));
    }
    Ok(org)
}

/// A raw `company_id` key in a query the map parse could not read.
fn has_company_id(query: &str) -> bool {
    query.split('&').any(|pair| pair.split('=').next() == Some("company_id"))
}

/// Staff through their own login (not a PAT or an org-scoped key), or a PAT with `pat_agm`.
fn may_read_all(p: &Principal) -> Result<(), Error> {
    if p.global_metrics && matches!(p.credential, CredentialKind::Pat { .. }) {
        return Ok(());
    }
    p.require_staff().map_err(|_| {
        Error::forbidden(
            "Global metrics need staff (session JWT or token) or a personal access token \
             with access_global_metrics.",
        )
    })
}

#[OpenApi(tag = "ApiTags::Metrics")]
impl MetricsApi {
    /// Metrics of the token's company (`company_id` claim): its requests, latency, object
    /// counts and audit events. A read-only PAT is enough.
    #[oai(path = "/api/v1/metrics", method = "get", operation_id = "metrics_retrieve")]
    async fn org(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
    ) -> ApiResult<MetricsResponse> {
        enabled(&state)?;
        let org = organization(&state, req, auth.principal())?;
        let format = format_of(req);
        state.recount_api_key_gauges();
        answer(format, state.metrics.encode_org(org, format))
    }

    /// Metrics of every company plus process, storage, index and TLS figures.
    #[oai(path = "/api/v1/metrics/all", method = "get", operation_id = "metrics_all_retrieve")]
    async fn all(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
    ) -> ApiResult<MetricsResponse> {
        enabled(&state)?;
        may_read_all(auth.principal())?;
        let format = format_of(req);
        state.recount_api_key_gauges();
        answer(format, state.metrics.encode_all(format))
    }
}
