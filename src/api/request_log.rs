//! The request-log layer: sits just inside `Edge` and outside authentication and rate limiting,
//! so failed authentication, 404s and 429s are recorded too. It reads who called from the
//! `Principal` the auth layer leaves in the response data and the operation from poem-openapi's
//! `OperationId`; it never records headers, query strings or bodies, and masks keys in paths.
//! A drop guard records requests that never produced a response (timed out, client gone, panic).
//! Refusals of anonymous requests (a 4xx with no credential resolved: bad or missing
//! credentials, unknown routes, rate limits) are counted per client, route, status and minute
//! into one record each (see `logs::refusals`), so unauthenticated traffic cannot turn into
//! one stored row per request.
//!
//! It also feeds the metrics (`Metrics::record_request`), whether or not the request log is
//! enabled. A request's organization is the credential's: an org-scoped API key's
//! organization, else the JWT's or PAT's `company_id`, else the caller's only membership;
//! anything else (anonymous, or a caller in several organizations without a `company_id`) is
//! counted under `organization="none"`.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use poem::http::header;
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::OperationId;

use crate::api::catalog::ApiCatalog;
use crate::api::error::convert_poem_error;
use crate::api::middleware::RequestContext;
use crate::domain::{CredentialKind, Principal};
use crate::logs::record::{grpc_code_for_http, known_or_owned, mask_path, status_for_http, Text};
use crate::logs::{LogService, RequestLog};
use crate::metrics::Metrics;

/// Error bodies larger than this are not read for `error_message`.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Static facts the layer needs.
pub struct RequestLogSettings {
    /// The documented operations: the operation a response without poem-openapi's
    /// `OperationId` (refused before or by authentication) was meant for, and each
    /// operation's `service_name`, borrowed for the life of the process.
    pub catalog: &'static ApiCatalog,
    pub request_timeout: Duration,
    /// `logs.request_log_enabled`: when false the layer only passes requests through (and
    /// counts them in the metrics).
    pub enabled: bool,
    /// Where requests are counted (`None` in unit tests of the layer).
    pub metrics: Option<Arc<Metrics>>,
}

impl RequestLogSettings {
    pub fn new(catalog: &'static ApiCatalog, request_timeout: Duration) -> Self {
        Self { catalog, request_timeout, enabled: true, metrics: None }
    }

    /// The operation a method and path would reach.
    fn operation_for(&self, method: &str, path: &str) -> Option<&'static str> {
        self.catalog.match_route(method, path)?.operation_id.as_deref()
    }

    /// Counts one answered request in the metrics.
    fn count(&self, p: Option<&Principal>, rec: &RequestLog, status: u16, elapsed: Duration) {
        let Some(metrics) = &self.metrics else { return };
        let org = p.and_then(organization_of);
        let (service, method) = (rec.service_name.clone(), rec.method_name.clone());
        metrics.record_request(org, service, method, status, elapsed);
    }
}

/// The organization a request is counted under (see the module doc).
pub(crate) fn organization_of(p: &Principal) -> Option<u64> {
    if let Some(org) = p.org_scope.or(p.company_id) {
        return Some(org);
    }
    let mut orgs = p.memberships.keys();
    match (orgs.next(), orgs.next()) {
        (Some(only), None) => Some(*only),
        _ => None,
    }
}

/// The method's name, borrowed for the standard methods.
fn method_text(m: &poem::http::Method) -> Text {
    const STANDARD: [&str; 9] =
        ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE"];
    known_or_owned(m.as_str(), &STANDARD)
}

pub struct RequestLogLayer<E> {
    inner: E,
    logs: Arc<LogService>,
    settings: Arc<RequestLogSettings>,
}

impl<E> RequestLogLayer<E> {
    pub fn new(inner: E, logs: Arc<LogService>, settings: Arc<RequestLogSettings>) -> Self {
        Self { inner, logs, settings }
    }
}

/// Records a request that ended without a response when dropped.
struct Guard<'a> {
    rec: Option<RequestLog>,
    logs: &'a LogService,
    settings: &'a RequestLogSettings,
    started: Instant,
    timeout: Duration,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let Some(mut rec) = self.rec.take() else { return };
        let elapsed = self.started.elapsed();
        let http = if std::thread::panicking() {
            500
        } else if elapsed >= self.timeout {
            504
        } else {
            499
        };
        rec.http_status = Some(http);
        rec.status = status_for_http(http).into();
        rec.grpc_status_code = grpc_code_for_http(http).into();
        rec.error_message = match http {
            500 => "Internal server error",
            504 => "The request took too long.",
            _ => "The client closed the connection.",
        }
        .to_string();
        rec.duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        self.settings.count(None, &rec, http, elapsed);
        self.logs.log_now(rec);
    }
}

/// `service_name` and `method_name` for routes outside the OpenAPI document.
fn http_names(path: &str, status: u16) -> &'static str {
    if path.starts_with("/api/schema/swagger-ui") || path.starts_with("/api/docs") {
        "swagger_ui"
    } else if path.starts_with("/api/schema/redoc") {
        "redoc"
    } else if path.starts_with("/api/schema") {
        "schema_retrieve"
    } else if let Some(name) = crate::api::deployment_exec::operation_name(path) {
        name
    } else if status == 404 {
        "not_found"
    } else if status == 405 {
        "method_not_allowed"
    } else {
        "unknown"
    }
}

impl<E: Endpoint> Endpoint for RequestLogLayer<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if !self.settings.enabled {
            return Ok(self.pass_through(req).await);
        }
        let ctx = req.extensions().get::<RequestContext>();
        let started = ctx.map_or_else(Instant::now, |c| c.started);
        let rec = RequestLog {
            request_id: ctx.map(|c| c.request_id.clone()).unwrap_or_default(),
            client_ip: ctx.and_then(|c| c.client_ip).map(|ip| ip.to_string()).unwrap_or_default(),
            http_method: method_text(req.method()),
            path: mask_path(req.uri().path()),
            created_at: crate::clock::unix_now(),
            service_name: "gatehouse.Http".into(),
            method_name: "unknown".into(),
            ..RequestLog::default()
        };
        let raw_path = req.uri().path().to_string();
        let mut guard = Guard {
            rec: Some(rec),
            logs: &self.logs,
            settings: &self.settings,
            started,
            timeout: self.settings.request_timeout,
        };
        let mut resp = match self.inner.call(req).await {
            Ok(out) => out.into_response(),
            Err(err) => {
                let op = err.data::<OperationId>().copied();
                let mut resp = convert_poem_error(err);
                if let Some(op) = op {
                    resp.set_data(op);
                }
                resp
            }
        };
        let Some(mut rec) = guard.rec.take() else { return Ok(resp) };
        if resp.data::<OperationId>().is_none() {
            if let Some(op) = self.settings.operation_for(&rec.http_method, &raw_path) {
                rec.method_name = Cow::Borrowed(op);
            }
        }
        self.fill(&mut rec, &mut resp, started).await;
        if is_anonymous_refusal(&rec) {
            self.logs.log_refused(rec).await;
        } else {
            self.logs.log(rec).await;
        }
        Ok(resp)
    }
}

impl<E: Endpoint> RequestLogLayer<E> {
    /// The layer with the request log off: only the metrics count the request.
    async fn pass_through(&self, req: Request) -> Response {
        let started =
            req.extensions().get::<RequestContext>().map_or_else(Instant::now, |c| c.started);
        let method = method_text(req.method());
        let raw_path = req.uri().path().to_string();
        let resp = match self.inner.call(req).await {
            Ok(out) => out.into_response(),
            Err(err) => convert_poem_error(err),
        };
        let status = resp.status().as_u16();
        let op = resp
            .data::<OperationId>()
            .map(|op| op.0)
            .or_else(|| self.settings.operation_for(&method, &raw_path));
        let rec = RequestLog {
            method_name: op.map_or_else(|| http_names(&raw_path, status).into(), Cow::Borrowed),
            service_name: op
                .and_then(|op| self.settings.catalog.service_name_of(op))
                .map_or(Cow::Borrowed("gatehouse.Http"), Cow::Borrowed),
            ..RequestLog::default()
        };
        self.settings.count(resp.data::<Principal>(), &rec, status, started.elapsed());
        resp
    }
}

impl<E> RequestLogLayer<E> {
    async fn fill(&self, rec: &mut RequestLog, resp: &mut Response, started: Instant) {
        let status = resp.status().as_u16();
        rec.http_status = Some(status);
        rec.status = status_for_http(status).into();
        rec.grpc_status_code = grpc_code_for_http(status).into();
        if let Some(op) = resp.data::<OperationId>() {
            rec.method_name = op.0.into();
        } else if rec.method_name == "unknown" {
            rec.method_name = http_names(&rec.path, status).into();
        }
        if let Some(service) = self.settings.catalog.service_name_of(&rec.method_name) {
            rec.service_name = Cow::Borrowed(service);
        }
        if let Some(p) = resp.data::<Principal>() {
            rec.user_id = Some(p.user_id);
            rec.username.clone_from(&p.username);
            rec.is_authenticated = true;
            if let CredentialKind::ApiKey { id, name } = &p.credential {
                rec.api_key_id = Some(*id);
                rec.api_key_name.clone_from(name);
            }
        }
        if status >= 400 {
            rec.error_message = error_message(resp).await;
        }
        let elapsed = started.elapsed();
        rec.duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        self.settings.count(resp.data::<Principal>(), rec, status, elapsed);
    }
}

/// A client error answered to a request whose credential (if any) was never resolved.
fn is_anonymous_refusal(rec: &RequestLog) -> bool {
    !rec.is_authenticated && rec.http_status.is_some_and(|s| (400..500).contains(&s))
}

/// The `error` field of a JSON error body (the body is put back untouched).
async fn error_message(resp: &mut Response) -> String {
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    if !is_json {
        return resp.status().canonical_reason().unwrap_or("Error").to_string();
    }
    let Ok(bytes) = resp.take_body().into_bytes().await else { return String::new() };
    let message = if bytes.len() <= MAX_ERROR_BODY {
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_default()
    } else {
        String::new()
    };
    resp.set_body(bytes);
    message.chars().take(1000).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_for_routes_outside_the_document() {
        assert_eq!(http_names("/api/docs/index.html", 200), "swagger_ui");
        assert_eq!(http_names("/api/schema", 200), "schema_retrieve");
        assert_eq!(http_names("/nope", 404), "not_found");
    }

    #[test]
    fn operations_are_found_by_template() {
        let spec = r#"{"paths": {"/api/projects/{id}": {"get": {"operationId": "projects_retrieve"}},
                       "/api/projects": {"get": {"operationId": "projects_list"}}}}"#;
        let catalog = Box::leak(Box::new(ApiCatalog::from_document(spec)));
        let s = RequestLogSettings::new(catalog, Duration::from_secs(1));
        assert_eq!(s.operation_for("GET", "/api/projects/7/"), Some("projects_retrieve"));
        assert_eq!(s.operation_for("GET", "/api/projects"), Some("projects_list"));
        assert_eq!(s.operation_for("POST", "/api/projects/"), None);
        assert_eq!(s.operation_for("GET", "/api/projects/7/x"), None);
    }
}
