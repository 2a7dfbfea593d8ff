//! The one error format, `{"error", "details", "code", "timestamp"}`, for domain errors and for
//! every error poem or poem-openapi raises on its own (parse errors, 404, 405, 413, panics).

use poem::http::{header, HeaderValue, StatusCode};
use poem::{IntoResponse, Response};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry};
use poem_openapi::types::Type as _;
use poem_openapi::{ApiResponse, Object};
use serde_json::Value;

use crate::domain::{self, ErrorCode};

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

pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::Invalid => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub fn code_str(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::Invalid => "VALIDATION_ERROR",
        ErrorCode::Unauthenticated => "AUTHENTICATION_FAILED",
        ErrorCode::Forbidden => "PERMISSION_DENIED",
        ErrorCode::NotFound => "NOT_FOUND",
        ErrorCode::Conflict => "CONFLICT",
        ErrorCode::TooLarge => "PAYLOAD_TOO_LARGE",
        ErrorCode::RateLimited => "RATE_LIMITED",
        ErrorCode::Internal => "INTERNAL_ERROR",
    }
}

/// Builds an error response in the one format.
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

impl ApiError {
    pub fn into_response_with_log(self) -> Response {
        let e = self.0;
        let status = status_of(e.code);
        if e.code == ErrorCode::Internal {
            // The cause goes to the log; the client gets a generic message.
            tracing::error!(error = %e.message, "internal error");
            return error_response(status, code_str(e.code), "Internal server error", None);
        }
        let mut resp = error_response(status, code_str(e.code), &e.message, e.details);
        if let Some(secs) = e.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
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
        let statuses: [(u16, &'static str); 7] = [
            (400, "Invalid request"),
            (401, "Authentication required or failed"),
            (403, "Not allowed"),
            (404, "Not found"),
            (409, "Conflict"),
            (413, "Body too large"),
            (429, "Rate limit exceeded"),
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
    let (code, message, details): (&str, String, Option<Value>) = match status {
        StatusCode::BAD_REQUEST => {
            ("VALIDATION_ERROR", "Invalid request".into(), Some(parse_error_details(&err, &reason)))
        }
        StatusCode::UNAUTHORIZED => {
            ("NOT_AUTHENTICATED", "Authentication credentials were not provided.".into(), None)
        }
        StatusCode::NOT_FOUND => ("NOT_FOUND", "Not found.".into(), None),
        StatusCode::METHOD_NOT_ALLOWED => {
            ("METHOD_NOT_ALLOWED", "Method not allowed.".into(), None)
        }
        StatusCode::PAYLOAD_TOO_LARGE => {
            ("PAYLOAD_TOO_LARGE", "Request body too large.".into(), None)
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "UNSUPPORTED_MEDIA_TYPE",
            "Unsupported media type.".into(),
            Some(Value::String(reason.clone())),
        ),
        StatusCode::NOT_ACCEPTABLE => ("NOT_ACCEPTABLE", "Not acceptable.".into(), None),
        s if s.is_server_error() => {
            tracing::error!(error = %reason, status = s.as_u16(), "request failed");
            ("INTERNAL_ERROR", "Internal server error".into(), None)
        }
        s => (
            "ERROR",
            s.canonical_reason().unwrap_or("Error").to_string(),
            Some(Value::String(reason.clone())),
        ),
    };
    error_response(status, code, &message, details)
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
