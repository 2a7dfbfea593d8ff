//! `/deployment/{api_key}/…`: calling a published workflow with its own key (the seed's
//! execution routes). These routes sit outside the account authentication layer: the key in
//! the path (repeated as `Authorization: Bearer`) is the credential, checked here, then the
//! deployment's IP allow-list, its per-minute rate, the input size and the input's shape, in
//! that order. Every call still passes the edge and the request log (which masks the key).

use std::sync::Arc;
use std::time::Duration;

use poem::http::{header, HeaderValue, Method, StatusCode};
use poem::web::Multipart;
use poem::{Body, Endpoint, FromRequest, IntoResponse, Request, RequestBody, Response};
use serde_json::{json, Map, Value};

use crate::api::authn::put_rate_headers;
use crate::api::error::ApiError;
use crate::api::middleware::RequestContext;
use crate::auth::ratelimit::{Bucket, Decision};
use crate::crypto::ct_eq;
use crate::domain::deployments::api_deployments;
use crate::domain::deployments::executions::MAX_IDEMPOTENCY_KEY;
use crate::domain::deployments::records::{Deployment, Execution, WorkflowType};
use crate::domain::{Error, ErrorCode};
use crate::services::deployments::SubmitRequest;
use crate::services::Services;

/// The path prefix these routes own.
pub const PREFIX: &str = "/deployment";
/// Longest a submission may ask to wait (`timeout`), in seconds (Unstract's bound).
pub const MAX_WAIT_SECONDS: i64 = 300;
/// Most files in one multipart submission (Unstract's bound).
pub const MAX_FILES: usize = 32;
/// Most records in one `etl` submission.
pub const MAX_RECORDS: usize = 10_000;
/// Room for multipart framing around the files themselves.
const MULTIPART_FRAMING: usize = 64 * 1024;

/// Whether `path` (as received) belongs to these routes.
pub fn owns(path: &str) -> bool {
    let trimmed = path.trim_start_matches('/');
    trimmed == "deployment" || trimmed.starts_with("deployment/")
}

/// The execution routes as one endpoint.
pub struct DeploymentRoutes {
    state: Arc<Services>,
    docs_html: Arc<str>,
}

impl DeploymentRoutes {
    pub fn new(state: Arc<Services>) -> Self {
        Self { state, docs_html: Arc::from(swagger_shell()) }
    }
}

/// Which route a path names.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Execute { key: &'a str },
    Status { key: &'a str, id: &'a str },
    Result { key: &'a str, id: &'a str },
    Docs { key: &'a str },
}

fn route(path: &str) -> Option<Route<'_>> {
    let mut parts = path.split('/').filter(|p| !p.is_empty());
    if parts.next() != Some("deployment") {
        return None;
    }
    let key = parts.next()?;
    let rest: Vec<&str> = parts.collect();
    match rest.as_slice() {
        [] => Some(Route::Execute { key }),
        ["status", id] => Some(Route::Status { key, id }),
        ["result", id] => Some(Route::Result { key, id }),
        ["docs"] => Some(Route::Docs { key }),
        _ => None,
    }
}

fn fail(e: Error) -> Response {
    let unauthenticated = e.code == ErrorCode::Unauthenticated;
    let mut resp = ApiError(e).into_response();
    if unauthenticated {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

fn method_not_allowed(allow: &'static str) -> Response {
    let mut resp = fail(Error::new(ErrorCode::MethodNotAllowed, "Method not allowed."));
    resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(body.to_string())
}

impl Endpoint for DeploymentRoutes {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        Ok(self.handle(req).await)
    }
}

impl DeploymentRoutes {
    async fn handle(&self, req: Request) -> Response {
        let path = req.uri().path().to_string();
        let parsed = route(&path);
        let (key, needs_bearer) = match parsed {
            Some(
                Route::Execute { key } | Route::Status { key, .. } | Route::Result { key, .. },
            ) => (key, true),
            Some(Route::Docs { key }) => (key, false),
            // An unknown route under a key still checks the key first: no route shape is
            // learnt without one.
            None => match key_segment(&path) {
                Some(key) => (key, true),
                None => return fail(Error::not_found("API")),
            },
        };
        // Keys are guessed like any credential: an address over its auth budget is refused
        // before the lookup, and every refused key spends that budget (as in `authn`).
        let ip = req.extensions().get::<RequestContext>().and_then(|c| c.client_ip);
        let limiter = &self.state.credentials.limiter;
        let now = crate::clock::unix_now();
        if limiter.enabled() {
            let d = limiter.peek(Bucket::Auth(ip), now);
            if let Some(secs) = d.retry_after {
                return with_auth_budget(fail(Error::rate_limited(secs)), &d);
            }
        }
        let d = match self.authorize(&req, key, needs_bearer) {
            Ok(d) => d,
            Err(e) => {
                let refused = fail(e);
                if !limiter.enabled() {
                    return refused;
                }
                let spent = limiter.check(Bucket::Auth(ip), now);
                return with_auth_budget(refused, &spent);
            }
        };
        let Some(route) = parsed else {
            return fail(Error::not_found("API"));
        };
        self.state.deployments.count_request(d.id);
        let method = req.method().clone();
        match route {
            Route::Execute { key } if method == Method::POST => self.execute(req, &d, key).await,
            Route::Execute { .. } => method_not_allowed("POST"),
            Route::Status { id, .. } if method == Method::GET || method == Method::HEAD => {
                self.status(&d, id)
            }
            Route::Status { id, .. } if method == Method::DELETE => self.stop(&d, id).await,
            Route::Status { .. } => method_not_allowed("GET, HEAD, DELETE"),
            Route::Result { id, .. } if method == Method::GET || method == Method::HEAD => {
                self.result(&d, id)
            }
            Route::Result { .. } => method_not_allowed("GET, HEAD"),
            Route::Docs { key } if method == Method::GET || method == Method::HEAD => {
                self.docs(&req, &d, key)
            }
            Route::Docs { .. } => method_not_allowed("GET, HEAD"),
        }
    }

    /// The key opens an active deployment, the bearer (when required, and whenever sent)
    /// repeats it, and the caller's address is allowed.
    fn authorize(&self, req: &Request, key: &str, needs_bearer: bool) -> Result<Deployment, Error> {
        let bearer = req.headers().get(header::AUTHORIZATION).map(|v| {
            v.to_str().ok().and_then(|s| s.strip_prefix("Bearer ")).map(str::trim).unwrap_or("")
        });
        match bearer {
            None if needs_bearer => {
                return Err(Error::unauthenticated(
                    "Authentication credentials were not provided: send Authorization: Bearer <api_key>.",
                ))
            }
            Some(b) if !ct_eq(b.as_bytes(), key.as_bytes()) => {
                return Err(Error::unauthenticated(
                    "The bearer key does not match the key in the path.",
                ))
            }
            _ => {}
        }
        let d = self
            .state
            .deployments
            .resolve_key(key)?
            .ok_or_else(|| Error::unauthenticated("Invalid API key."))?;
        if !d.is_active {
            return Err(Error::new(ErrorCode::NotFound, "API not found or inactive."));
        }
        let ip = req.extensions().get::<RequestContext>().and_then(|c| c.client_ip);
        if !api_deployments::allows(&d.ip_allowlist, ip) {
            return Err(Error::forbidden("Your address may not call this API."));
        }
        Ok(d)
    }

    async fn execute(&self, mut req: Request, d: &Deployment, key: &str) -> Response {
        let decision = self.state.deployments.check_rate(d);
        let mut resp = match decision.retry_after {
            Some(secs) => fail(Error::rate_limited(secs)),
            None => match self.submit(&mut req, d, key).await {
                Ok(resp) => resp,
                Err(e) => fail(e),
            },
        };
        put_rate_headers(&mut resp, &decision);
        resp
    }

    async fn submit(
        &self,
        req: &mut Request,
        d: &Deployment,
        key: &str,
    ) -> Result<Response, Error> {
        let limit = usize::try_from(d.max_input_bytes).unwrap_or(usize::MAX);
        let workflow_type = self.workflow_type(d)?;
        let idempotency_key = idempotency_key(req)?;
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let body = req.take_body();
        let parsed = if content_type.starts_with("multipart/form-data") {
            let bytes = read_limited(body, limit.saturating_add(MULTIPART_FRAMING)).await?;
            parse_multipart(req, bytes, limit).await?
        } else if content_type.is_empty() || content_type.starts_with("application/json") {
            let bytes = read_limited(body, limit).await?;
            parse_json(&bytes)?
        } else {
            return Err(Error::new(
                ErrorCode::UnsupportedMediaType,
                "Send application/json or multipart/form-data.",
            ));
        };
        check_shape(workflow_type, &parsed.input)?;
        let deployments = &self.state.deployments;
        let submitted = deployments
            .submit(
                d,
                SubmitRequest {
                    input: parsed.input,
                    parameters: parsed.parameters,
                    idempotency_key,
                },
            )
            .await?;
        let wait = parsed.timeout.filter(|t| *t > 0);
        let execution = match wait {
            Some(secs) => {
                let limit = Duration::from_secs(u64::try_from(secs).unwrap_or(0));
                deployments.wait(submitted, limit).await?
            }
            None => submitted,
        };
        if wait.is_some() && execution.status.is_final() {
            return Ok(json_response(StatusCode::OK, &self.result_body(&execution)?));
        }
        let body = json!({
            "execution_id": execution.uuid,
            "status": execution.status.as_str(),
            "status_api": format!("{PREFIX}/{key}/status/{}/", execution.uuid),
            "result_api": format!("{PREFIX}/{key}/result/{}/", execution.uuid),
        });
        Ok(json_response(StatusCode::ACCEPTED, &body))
    }

    fn workflow_type(&self, d: &Deployment) -> Result<WorkflowType, Error> {
        self.state.store.read(|tx| {
            crate::domain::deployments::workflows::load(tx, d.organization_id, d.workflow_id)
                .map(|w| w.workflow_type)
        })
    }

    fn find(&self, d: &Deployment, id: &str) -> Result<Execution, Error> {
        let uuid = uuid::Uuid::parse_str(id.trim()).map_err(|_| {
            Error::invalid(
                "execution_id",
                format!("Invalid execution_id '{}'. Must be a valid UUID.", clip(id)),
            )
        })?;
        self.state
            .deployments
            .execution(d.id, &uuid.hyphenated().to_string())?
            .ok_or_else(|| Error::new(ErrorCode::NotFound, "Execution not found."))
    }

    fn status(&self, d: &Deployment, id: &str) -> Response {
        match self.find(d, id) {
            Ok(e) => json_response(
                StatusCode::OK,
                &json!({"execution_id": e.uuid, "status": e.status.as_str()}),
            ),
            Err(e) => fail(e),
        }
    }

    async fn stop(&self, d: &Deployment, id: &str) -> Response {
        let found = match self.find(d, id) {
            Ok(e) => e,
            Err(e) => return fail(e),
        };
        match self.state.deployments.stop(d.id, &found.uuid).await {
            Ok(e) => json_response(
                StatusCode::OK,
                &json!({"execution_id": e.uuid, "status": e.status.as_str()}),
            ),
            Err(e) => fail(e),
        }
    }

    fn result(&self, d: &Deployment, id: &str) -> Response {
        let e = match self.find(d, id) {
            Ok(e) => e,
            Err(e) => return fail(e),
        };
        if !e.status.is_final() {
            return fail(Error::conflict(format!(
                "The execution has not finished yet (status {}).",
                e.status.as_str()
            )));
        }
        match self.result_body(&e) {
            Ok(body) => json_response(StatusCode::OK, &body),
            Err(e) => fail(e),
        }
    }

    fn result_body(&self, e: &Execution) -> Result<Value, Error> {
        let result = self.state.deployments.result_of(e)?;
        Ok(json!({
            "execution_id": e.uuid,
            "status": e.status.as_str(),
            "result": result,
            "error": e.error,
            "elapsed_time": e.elapsed_seconds(crate::clock::unix_now_ms()),
        }))
    }

    fn docs(&self, req: &Request, d: &Deployment, key: &str) -> Response {
        let workflow_type = self.workflow_type(d).unwrap_or(WorkflowType::Task);
        let doc = deployment_document(d, key, workflow_type).to_string();
        let wants_html = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
        if wants_html {
            let html = self.docs_html.replacen(SHELL_SPEC, &doc, 1);
            return Response::builder()
                .content_type("text/html; charset=utf-8")
                .header(header::CACHE_CONTROL, "no-store")
                .body(html);
        }
        Response::builder()
            .content_type("application/json")
            .header(header::CACHE_CONTROL, "no-store")
            .body(doc)
    }
}

/// The name the request log and the metrics give a call of these routes (never the key).
pub fn operation_name(path: &str) -> Option<&'static str> {
    Some(match route(path)? {
        Route::Execute { .. } => "deployment_execute",
        Route::Status { .. } => "deployment_status",
        Route::Result { .. } => "deployment_result",
        Route::Docs { .. } => "deployment_docs",
    })
}

/// The first segment after `/deployment/` (the key), if any.
fn key_segment(path: &str) -> Option<&str> {
    let mut parts = path.split('/').filter(|p| !p.is_empty());
    (parts.next() == Some("deployment")).then(|| parts.next()).flatten()
}

/// A refusal with the address's auth budget in the `X-RateLimit-*` headers.
fn with_auth_budget(mut resp: Response, d: &Decision) -> Response {
    put_rate_headers(&mut resp, d);
    resp
}

/// At most 64 characters of a client's value, for a message.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

fn idempotency_key(req: &Request) -> Result<Option<String>, Error> {
    let Some(v) = req.headers().get("idempotency-key") else { return Ok(None) };
    let key = v.to_str().unwrap_or("").trim();
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(Error::invalid(
            "Idempotency-Key",
            format!("1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters."),
        ));
    }
    Ok(Some(key.to_string()))
}

async fn read_limited(body: Body, limit: usize) -> Result<bytes::Bytes, Error> {
    body.into_bytes_limit(limit).await.map_err(|e| match e {
        poem::error::ReadBodyError::PayloadTooLarge => Error::new(
            ErrorCode::TooLarge,
            format!("The input is larger than this API's limit of {limit} bytes."),
        ),
        _ => Error::invalid("body", "The request body could not be read."),
    })
}

/// A submission's parts.
struct Parsed {
    input: Value,
    parameters: Value,
    timeout: Option<i64>,
}

fn parse_parameters(v: Option<Value>) -> Result<Value, Error> {
    match v {
        None | Some(Value::Null) => Ok(Value::Object(Map::new())),
        Some(Value::Object(m)) => Ok(Value::Object(m)),
        Some(_) => Err(Error::invalid("parameters", "Must be a JSON object.")),
    }
}

fn parse_timeout(v: Option<&Value>) -> Result<Option<i64>, Error> {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(None) };
    let t = v
        .as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .ok_or_else(|| Error::invalid("timeout", "A valid integer is required."))?;
    if !(-1..=MAX_WAIT_SECONDS).contains(&t) {
        return Err(Error::invalid(
            "timeout",
            format!("Ensure this value is between -1 and {MAX_WAIT_SECONDS}."),
        ));
    }
    Ok(Some(t))
}

fn parse_json(bytes: &[u8]) -> Result<Parsed, Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Parsed {
            input: Value::Null,
            parameters: Value::Object(Map::new()),
            timeout: None,
        });
    }
    let body: Value = serde_json::from_slice(bytes).map_err(|e| {
        Error::invalid(
            "body",
            format!("Malformed JSON at line {}, column {}.", e.line(), e.column()),
        )
    })?;
    let Value::Object(mut body) = body else {
        return Err(Error::invalid(
            "body",
            "Send a JSON object: {\"input_data\", \"parameters\", \"timeout\"}.",
        ));
    };
    Ok(Parsed {
        timeout: parse_timeout(body.get("timeout"))?,
        parameters: parse_parameters(body.remove("parameters"))?,
        input: body.remove("input_data").unwrap_or(Value::Null),
    })
}

async fn parse_multipart(
    req: &Request,
    bytes: bytes::Bytes,
    limit: usize,
) -> Result<Parsed, Error> {
    let bad = |m: &str| Error::invalid("body", m.to_string());
    let mut body = RequestBody::new(Body::from(bytes));
    let mut form = Multipart::from_request(req, &mut body)
        .await
        .map_err(|_| bad("Malformed multipart body."))?;
    let mut files = Map::new();
    let mut total = 0usize;
    let mut input = None;
    let mut parameters = None;
    let mut timeout = None;
    while let Some(field) = form.next_field().await.map_err(|_| bad("Malformed multipart body."))? {
        let name = field.name().unwrap_or("").to_string();
        let file_name = field.file_name().map(str::to_string);
        let text = field.text().await.map_err(|_| Error::invalid(&name, "Must be UTF-8 text."))?;
        match name.as_str() {
            "files" => {
                if files.len() >= MAX_FILES {
                    return Err(Error::invalid("files", format!("At most {MAX_FILES} files.")));
                }
                total = total.saturating_add(text.len());
                if total > limit {
                    return Err(Error::new(
                        ErrorCode::TooLarge,
                        format!("The files are larger than this API's limit of {limit} bytes."),
                    ));
                }
                let file_name = file_name.unwrap_or_else(|| format!("file{}", files.len() + 1));
                files.insert(file_name, Value::String(text));
            }
            "input_data" => {
                input = Some(serde_json::from_str(&text).unwrap_or(Value::String(text)));
            }
            "parameters" => {
                let v = serde_json::from_str(&text)
                    .map_err(|_| Error::invalid("parameters", "Must be a JSON object."))?;
                parameters = Some(v);
            }
            "timeout" => timeout = parse_timeout(Some(&Value::String(text)))?,
            _ => {}
        }
    }
    let input = match (input, files.is_empty()) {
        (input, true) => input.unwrap_or(Value::Null),
        (None | Some(Value::Null), false) => json!({ "files": files }),
        (Some(Value::Object(mut m)), false) => {
            m.insert("files".into(), Value::Object(files));
            Value::Object(m)
        }
        (Some(_), false) => {
            return Err(Error::invalid(
                "input_data",
                "With files, input_data must be a JSON object (the files go in input.files).",
            ))
        }
    };
    Ok(Parsed { input, parameters: parse_parameters(parameters)?, timeout })
}

fn check_shape(t: WorkflowType, input: &Value) -> Result<(), Error> {
    if t == WorkflowType::Etl {
        let Some(records) = input.as_array() else {
            return Err(Error::invalid("input_data", "An etl workflow takes a list of records."));
        };
        if records.len() > MAX_RECORDS {
            return Err(Error::invalid(
                "input_data",
                format!("At most {MAX_RECORDS} records per execution."),
            ));
        }
    }
    Ok(())
}

/// The document of one deployment: its execute, status and result operations and its input.
fn deployment_document(d: &Deployment, key: &str, t: WorkflowType) -> Value {
    let input_schema = match t {
        WorkflowType::Task => {
            json!({"description": "Any JSON value; the template sees it as `input`."})
        }
        WorkflowType::Etl => json!({
            "type": "array", "maxItems": MAX_RECORDS,
            "description": "Records; each is rendered on its own as `input`.",
            "items": {}
        }),
    };
    let error = json!({"$ref": "#/components/schemas/Error"});
    let id_param = json!([{"name": "execution_id", "in": "path", "required": true,
        "schema": {"type": "string", "format": "uuid"}}]);
    let status_values = json!(["PENDING", "EXECUTING", "COMPLETED", "STOPPED", "ERROR"]);
    json!({
        "openapi": "3.0.0",
        "info": {
            "title": format!("{} (API deployment)", d.display_name),
            "version": crate::VERSION,
            "description": d.description,
        },
        "servers": [{"url": format!("{PREFIX}/{key}")}],
        "security": [{"bearer": []}],
        "paths": {
            "/": {"post": {
                "operationId": "execute",
                "summary": "Start an execution (or wait up to `timeout` seconds for it).",
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": false,
                    "schema": {"type": "string", "maxLength": MAX_IDEMPOTENCY_KEY}}],
                "requestBody": {"content": {"application/json": {"schema": {
                    "type": "object",
                    "properties": {
                        "input_data": input_schema,
                        "parameters": {"type": "object"},
                        "timeout": {"type": "integer", "minimum": -1, "maximum": MAX_WAIT_SECONDS}
                    }
                }}}},
                "responses": {
                    "200": {"description": "Finished within `timeout`.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Result"}}}},
                    "202": {"description": "Queued.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}},
                    "400": {"description": "Invalid input.", "content": {"application/json": {"schema": error}}},
                    "401": {"description": "Missing or wrong key.", "content": {"application/json": {"schema": error}}},
                    "403": {"description": "Address not allowed.", "content": {"application/json": {"schema": error}}},
                    "404": {"description": "Inactive API.", "content": {"application/json": {"schema": error}}},
                    "413": {"description": "Input too large.", "content": {"application/json": {"schema": error}}},
                    "429": {"description": "Rate or concurrency limit.", "content": {"application/json": {"schema": error}}}
                }
            }},
            "/status/{execution_id}/": {
                "get": {"operationId": "status", "parameters": id_param,
                    "responses": {"200": {"description": "The status.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}}},
                        "400": {"description": "Not a UUID.", "content": {"application/json": {"schema": error}}},
                        "404": {"description": "No such execution.", "content": {"application/json": {"schema": error}}}}},
                "delete": {"operationId": "stop", "parameters": id_param,
                    "responses": {"200": {"description": "Stopped (or already final).", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}}},
                        "404": {"description": "No such execution.", "content": {"application/json": {"schema": error}}}}}
            },
            "/result/{execution_id}/": {"get": {"operationId": "result", "parameters": id_param,
                "responses": {"200": {"description": "The result.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Result"}}}},
                    "404": {"description": "No such execution.", "content": {"application/json": {"schema": error}}},
                    "409": {"description": "Not finished yet.", "content": {"application/json": {"schema": error}}}}}}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Accepted": {"type": "object", "properties": {
                    "execution_id": {"type": "string", "format": "uuid"},
                    "status": {"type": "string", "enum": status_values},
                    "status_api": {"type": "string"}, "result_api": {"type": "string"}}},
                "Status": {"type": "object", "properties": {
                    "execution_id": {"type": "string", "format": "uuid"},
                    "status": {"type": "string", "enum": status_values}}},
                "Result": {"type": "object", "properties": {
                    "execution_id": {"type": "string", "format": "uuid"},
                    "status": {"type": "string", "enum": status_values},
                    "result": {"nullable": true},
                    "error": {"type": "string", "nullable": true},
                    "elapsed_time": {"type": "number"}}},
                "Error": {"type": "object", "properties": {
                    "error": {"type": "string"}, "details": {"nullable": true},
                    "code": {"type": "string"}, "timestamp": {"type": "string"}}}
            }
        }
    })
}

/// The spec text the Swagger UI shell embeds, replaced by each deployment's document.
const SHELL_SPEC: &str = "\"__GATEHOUSE_DEPLOYMENT_SPEC__\"";

/// poem-openapi's Swagger UI page (its bundled script and style) around a placeholder spec:
/// built from an empty document, whose text is then swapped for the placeholder.
fn swagger_shell() -> String {
    let empty = poem_openapi::OpenApiService::new((), "deployment", crate::VERSION);
    let spec = empty.spec();
    empty.swagger_ui_html().replacen(&spec, SHELL_SPEC, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/deployment/unst_a/"), Some(Route::Execute { key: "unst_a" }));
        assert_eq!(
            route("/deployment/unst_a/status/x"),
            Some(Route::Status { key: "unst_a", id: "x" })
        );
        assert_eq!(
            route("/deployment/unst_a/result/x/"),
            Some(Route::Result { key: "unst_a", id: "x" })
        );
        assert_eq!(route("/deployment/unst_a/docs/"), Some(Route::Docs { key: "unst_a" }));
        assert_eq!(route("/deployment/"), None);
        assert_eq!(route("/deployment/k/other/x"), None);
        assert!(owns("/deployment/x") && owns("//deployment") && !owns("/deployments/x"));
        assert_eq!(operation_name("/deployment/unst_a/status/x/"), Some("deployment_status"));
        assert_eq!(operation_name("/api/projects/"), None);
    }

    #[test]
    fn timeouts_and_parameters() {
        assert_eq!(parse_timeout(Some(&json!(300))).unwrap(), Some(300));
        assert_eq!(parse_timeout(Some(&json!("-1"))).unwrap(), Some(-1));
        assert!(parse_timeout(Some(&json!(301))).is_err());
        assert!(parse_timeout(Some(&json!("soon"))).is_err());
        assert!(parse_parameters(Some(json!([1]))).is_err());
        let p = parse_json(br#"{"input_data": {"a": 1}, "timeout": 5}"#).unwrap();
        assert_eq!(p.input, json!({"a": 1}));
        assert_eq!(p.timeout, Some(5));
        assert!(parse_json(b"[1]").is_err());
        assert!(parse_json(b"{").is_err());
    }

    #[test]
    fn the_swagger_shell_has_its_placeholder() {
        assert!(swagger_shell().contains(SHELL_SPEC));
    }
}
