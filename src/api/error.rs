//! The one error format, `{"error", "details", "code", "timestamp"}`, for domain errors and for
//! every error poem or poem-openapi raises on its own (parse errors, 404, 405, 413, panics).

use poem::http::{header, HeaderValue, StatusCode};
use poem::{IntoResponse, Response};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry};
use poem_openapi::types::Type as _;
use poem_openapi::{ApiResponse, Object};
use serde_json::Value;

use crate::domain::{self, ErrorCode, InternalError};
use crate::store::Unavailable;

/// The error body every failure answers with.
#[derive(Debug, Object)]
#[oai(rename = "Error")]
pub struct ErrorBody {
    /// A short human message.
    pub error: String,
    /// Field errors (`{"field": ["message"]}`), a sentence, or null.
    pub details: Option<Value>,
    /// A stable machine code, e.g. `VALIDATION_ERROR`.
    pub code: String,
    /// When the error happened (RFC 3339 UTC).
    pub timestamp: String,
}

/// An API error: a domain error on its way to becoming an HTTP response.
#[derive(Debug)]
pub struct ApiError(pub domain::Error);

impl From<domain::Error> for ApiError {
    fn from(e: domain::Error) -> Self {
        Self(e)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        Self(e.into())
    }
}

/// The one table: each code's HTTP status and wire code. Exhaustive, so a new code does not
/// compile without its row; [`convert_poem_error`] reads it backwards for poem's own errors.
pub fn wire(code: ErrorCode) -> (StatusCode, &'static str) {
    match code {
        ErrorCode::Invalid => (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"),
        ErrorCode::Unauthenticated => (StatusCode::UNAUTHORIZED, "NOT_AUTHENTICATED"),
        ErrorCode::Forbidden => (StatusCode::FORBIDDEN, "PERMISSION_DENIED"),
        ErrorCode::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
        ErrorCode::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED"),
        ErrorCode::NotAcceptable => (StatusCode::NOT_ACCEPTABLE, "NOT_ACCEPTABLE"),
        ErrorCode::Conflict => (StatusCode::CONFLICT, "CONFLICT"),
        ErrorCode::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
        ErrorCode::UnsupportedMediaType => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE")
        }
        ErrorCode::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED"),
        ErrorCode::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR"),
        ErrorCode::Timeout => (StatusCode::GATEWAY_TIMEOUT, "TIMEOUT"),
    }
}

pub fn status_of(code: ErrorCode) -> StatusCode {
    wire(code).0
}

pub fn code_str(code: ErrorCode) -> &'static str {
    wire(code).1
}

/// The code of a status poem raised on its own: the table read backwards; a status it does not
/// list is the server's failure (5xx) or a malformed request (any other, e.g. 411 or 414).
pub fn code_of_status(status: StatusCode) -> ErrorCode {
    match ErrorCode::ALL.into_iter().find(|c| status_of(*c) == status) {
        Some(code) => code,
        None if status.is_server_error() => ErrorCode::Internal,
        None => ErrorCode::Invalid,
    }
}

/// Builds an error response in the one format, with the status and wire code of `code`.
pub fn code_response(code: ErrorCode, error: &str, details: Option<Value>) -> Response {
    let (status, wire_code) = wire(code);
    error_response(status, wire_code, error, details)
}

/// Builds an error response in the one format. Prefer [`code_response`], which takes the status
/// and wire code from the table.
pub fn error_response(
    status: StatusCode,
    code: &str,
    error: &str,
    details: Option<Value>,
) -> Response {
    let body = serde_json::json!({
        "error": error,
        "details": details,
        "code": code,
        "timestamp": crate::clock::now_rfc3339(),
    });
    let mut resp =
        Response::builder().status(status).content_type("application/json").body(body.to_string());
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
    }
    resp
}

tokio::task_local! {
    /// The id of the request being answered, for the log line of an internal error.
    static REQUEST_ID: String;
}

/// Runs `fut` (the handling of one request) with its request id known to the error log.
pub async fn with_request_id<F: std::future::Future>(request_id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(request_id, fut).await
}

/// The id of the request being answered; "-" outside one (tests, tools).
fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_else(|_| "-".to_string())
}

impl ApiError {
    pub fn into_response_with_log(self) -> Response {
        let e = self.0;
        if let Some(why) = storage_unavailable(&e) {
            return unavailable_response(why);
        }
        if e.code == ErrorCode::Internal {
            // The cause goes to the log, once, with the request id; the client gets a generic
            // message (the cause may name paths, keys or rows).
            tracing::error!(
                request_id = %current_request_id(),
                error = %e.message,
                cause = ?e.cause(),
                "internal error"
            );
            return code_response(e.code, "Internal server error", None);
        }
        let mut resp = code_response(e.code, &e.message, e.details);
        if let Some(secs) = e.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

/// Seconds a client is asked to wait when the data disk is full or being reopened.
const UNAVAILABLE_RETRY_AFTER: &str = "30";

/// Why the store cannot serve this, when that (not a bug) is the cause of an internal error.
fn storage_unavailable(e: &domain::Error) -> Option<Unavailable> {
    match e.cause()? {
        InternalError::Store(s) => s.unavailable(),
        _ => None,
    }
}

/// 503 in the one format, with `Retry-After`: the disk is full or the data file is being
/// reopened; the server recovers by itself, so a retry later succeeds. Not a bug, so a warning.
fn unavailable_response(why: Unavailable) -> Response {
    let (error, details) = match why {
        Unavailable::DiskFull => (
            "The data disk is full",
            "Writes are refused until space is freed on the server's data disk; reads still work.",
        ),
        Unavailable::Recovering => (
            "Storage is temporarily unavailable",
            "The server is reopening its data file after a disk error; retry shortly.",
        ),
    };
    tracing::warn!(request_id = %current_request_id(), reason = ?why, "write refused: {error}");
    let mut resp = error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVICE_UNAVAILABLE",
        error,
        Some(Value::String(details.to_string())),
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static(UNAVAILABLE_RETRY_AFTER));
    resp
}

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        if storage_unavailable(&self.0).is_some() {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        status_of(self.0.code)
    }

    fn as_response(&self) -> Response {
        ApiError(self.0.clone()).into_response_with_log()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.message.fmt(f)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.into_response_with_log()
    }
}

/// Declares the error responses every operation may give, so generated clients know the shape.
impl ApiResponse for ApiError {
    fn meta() -> MetaResponses {
        let statuses: [(u16, &'static str); 9] = [
            (400, "Invalid request"),
            (401, "Authentication required or failed"),
            (403, "Not allowed"),
            (404, "Not found"),
            (409, "Conflict"),
            (413, "Body too large"),
            (415, "Unsupported request body media type"),
            (429, "Rate limit exceeded"),
            (
                503,
                "The data disk is full (writes refused) or storage is recovering; see Retry-After",
            ),
        ];
        MetaResponses {
            responses: statuses
                .into_iter()
                .map(|(status, description)| MetaResponse {
                    description,
                    status: Some(status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: "application/json",
                        schema: MetaSchemaRef::Reference(ErrorBody::name().into_owned()),
                    }],
                    headers: vec![],
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        <ErrorBody as poem_openapi::types::Type>::register(registry);
    }
}

/// Result type of every handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// Converts any `poem::Error` (raised by poem, poem-openapi or a handler) into the error
/// format, keeping its status.
pub fn convert_poem_error(err: poem::Error) -> Response {
    if let Some(api) = err.downcast_ref::<ApiError>() {
        return ApiError(api.0.clone()).into_response_with_log();
    }
    let status = err.status();
    let reason = err.to_string();
    let code = code_of_status(status);
    // Exhaustive like the table: each code's message for an error poem raised without one.
    let (message, details) = match code {
        ErrorCode::Invalid => ("Invalid request", Some(parse_error_details(&err, &reason))),
        ErrorCode::Unauthenticated => ("Authentication credentials were not provided.", None),
        ErrorCode::Forbidden => ("You do not have permission to perform this action.", None),
        ErrorCode::NotFound => ("Not found.", None),
        ErrorCode::MethodNotAllowed => ("Method not allowed.", None),
        ErrorCode::NotAcceptable => ("Not acceptable.", None),
        ErrorCode::Conflict => ("Conflict.", None),
        ErrorCode::TooLarge => ("Request body too large.", None),
        ErrorCode::UnsupportedMediaType => ("Unsupported media type.", Some(Value::String(reason))),
        ErrorCode::RateLimited => ("Rate limit exceeded", None),
        ErrorCode::Internal => {
            tracing::error!(
                request_id = %current_request_id(),
                error = %reason,
                status = status.as_u16(),
                "request failed"
            );
            ("Internal server error", None)
        }
        ErrorCode::Timeout => ("The request took too long.", None),
    };
    code_response(code, message, details)
}

/// `{"field": ["message"]}` where the field can be told, else `{"non_field_errors": [...]}`.
fn parse_error_details(err: &poem::Error, reason: &str) -> Value {
    use poem_openapi::error::{ParseParamError, ParsePathError};
    if let Some(details) = crate::api::validation::kept_body_details(err) {
        return details;
    }
    if let Some(p) = err.downcast_ref::<ParseParamError>() {
        return serde_json::json!({ p.name: [clean_reason(&p.reason)] });
    }
    if let Some(p) = err.downcast_ref::<ParsePathError>() {
        return serde_json::json!({ p.name: [clean_reason(&p.reason)] });
    }
    if let Some(field) = crate::api::validation::field_of(reason) {
        return serde_json::json!({ field.0: [field.1] });
    }
    serde_json::json!({ "non_field_errors": [clean_reason(reason)] })
}

fn clean_reason(reason: &str) -> String {
    reason.chars().take(300).collect()
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
