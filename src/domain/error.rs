//! The error every layer speaks: a code from one short list, a message for the client, and for
//! internal failures the typed cause, kept for the log and never shown. `api::error` maps each
//! code to its HTTP status and wire code in one table; each area's own error enum says which
//! code it answers with through [`ServiceError`] (Quickwit's `ServiceError::error_code`).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::crypto::CryptoError;
use crate::store::StoreError;

/// The short list of error kinds. Each is one meaning for clients, with one HTTP status and one
/// wire code, so the list grows only after review (Quickwit's rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 400: the request is malformed or a field is invalid.
    Invalid,
    /// 401: no credential, or a bad, expired or revoked one.
    Unauthenticated,
    /// 403: the caller is known but may not do this.
    Forbidden,
    /// 404: no such object, or it belongs to an organization the caller is not in.
    NotFound,
    /// 405: the route exists but not with this method.
    MethodNotAllowed,
    /// 406: no representation the client accepts.
    NotAcceptable,
    /// 409: the object exists already, or the change breaks a rule of the current state.
    Conflict,
    /// 413: the body or upload is over its limit.
    TooLarge,
    /// 415: the body's content type is not one the route reads.
    UnsupportedMediaType,
    /// 429: rate limited.
    RateLimited,
    /// 500: a bug or a storage failure; the cause is logged, not shown.
    Internal,
    /// 504: the request took longer than the server allows.
    Timeout,
}

impl ErrorCode {
    /// Every code, in declaration order (the mapping table's tests walk it).
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::Invalid,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::NotAcceptable,
        ErrorCode::Conflict,
        ErrorCode::TooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::RateLimited,
        ErrorCode::Internal,
        ErrorCode::Timeout,
    ];
}

/// An area's own error type (sealing, JWT keys, password hashing, the log index): it says which
/// code each of its failures answers with. An `Internal` one keeps its value as the cause.
pub trait ServiceError: std::error::Error + Send + Sync + 'static {
    fn error_code(&self) -> ErrorCode;
}

/// Why the server failed, typed: the real cause, kept for the log. Every variant is the
/// server's own failure, so a parse of client input must become [`Error::invalid`] before it
/// could reach one of these `From`s.
#[derive(Debug, thiserror::Error)]
pub enum InternalError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// An I/O failure on a file the operator may need to look at.
    #[error("{}: {source}", path.display())]
    File { path: std::path::PathBuf, source: std::io::Error },
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("yaml: {0}")]
    Yaml(#[from] serde_norway::Error),
    #[error("a blocking task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// A broken invariant, for which a fixed text is the best description.
    #[error("{0}")]
    Invariant(&'static str),
    /// An area's own internal failure ([`ServiceError`]), its type kept behind the box: the
    /// areas above the domain (auth, logs) cannot be named here.
    #[error("{area}: {source}")]
    Area { area: &'static str, source: Box<dyn std::error::Error + Send + Sync> },
}

/// A domain error: a code, a message, optional details (`{"field": ["message"]}` for
/// validation errors) and, for `Internal`, the cause. An internal error's message is the
/// cause's text for operators (start-up and CLI output); the API never sends it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<serde_json::Value>,
    /// Seconds until a rate-limited caller may retry.
    pub retry_after: Option<u64>,
    /// Shared so that the error stays `Clone` (poem re-renders a stored error).
    #[source]
    cause: Option<Arc<InternalError>>,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), details: None, retry_after: None, cause: None }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The typed cause of an internal error.
    pub fn cause(&self) -> Option<&InternalError> {
        self.cause.as_deref()
    }

    /// 404 for `what` ("Project", "Variable", …).
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, message)
    }

    /// An internal error described by a fixed text: a broken invariant. A failure with a cause
    /// converts from that cause instead (`?`, `Error::from`), so its type reaches the log.
    pub fn internal(what: &'static str) -> Self {
        InternalError::Invariant(what).into()
    }

    /// An area's error: an internal one keeps its value as the cause; any other answers with
    /// its own text.
    pub fn from_service(area: &'static str, e: impl ServiceError) -> Self {
        match e.error_code() {
            ErrorCode::Internal => InternalError::Area { area, source: Box::new(e) }.into(),
            code => Self::new(code, e.to_string()),
        }
    }

    /// 400 with `{"<field>": ["<message>"]}` details.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let mut details = BTreeMap::new();
        details.insert(field.to_string(), vec![message.into()]);
        Self::invalid_fields(details)
    }

    /// 400 with several field errors.
    pub fn invalid_fields(fields: BTreeMap<String, Vec<String>>) -> Self {
        Self::new(ErrorCode::Invalid, "Validation failed").with_details(field_errors(fields))
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        let mut e = Self::new(ErrorCode::RateLimited, "Rate limit exceeded").with_details(
            serde_json::Value::String(format!(
                "Too many requests. Try again in {retry_after} seconds."
            )),
        );
        e.retry_after = Some(retry_after);
        e
    }
}

/// `{"field": ["message", …]}` built directly: serialising the map could not fail, but a
/// fallible call would need a fallback that hides the errors.
pub fn field_errors(fields: BTreeMap<String, Vec<String>>) -> serde_json::Value {
    fields
        .into_iter()
        .map(|(field, messages)| {
            (field, messages.into_iter().map(serde_json::Value::String).collect())
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

impl From<InternalError> for Error {
    fn from(e: InternalError) -> Self {
        let mut out = Self::new(ErrorCode::Internal, e.to_string());
        out.cause = Some(Arc::new(e));
        out
    }
}

/// `?` on the server's own failures: each becomes an internal error keeping its cause.
macro_rules! internal_from {
    ($($cause:ty),+ $(,)?) => {$(
        impl From<$cause> for Error {
            fn from(e: $cause) -> Self {
                InternalError::from(e).into()
            }
        }
    )+};
}

internal_from!(
    StoreError,
    CryptoError,
    std::io::Error,
    serde_json::Error,
    serde_norway::Error,
    tokio::task::JoinError,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_code_once_in_order() {
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(*code as usize, i, "{code:?}");
        }
    }

    #[test]
    fn an_internal_error_keeps_its_typed_cause() {
        let e = Error::from(std::io::Error::other("disk on fire"));
        assert_eq!(e.code, ErrorCode::Internal);
        assert!(matches!(e.cause(), Some(InternalError::Io(_))), "{:?}", e.cause());
        assert_eq!(e.message, "i/o: disk on fire");
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("i/o: disk on fire"));
        assert!(Error::not_found("Project").cause().is_none());
    }

    #[derive(Debug, thiserror::Error)]
    enum Area {
        #[error("broken")]
        Broken,
        #[error("too deep")]
        TooDeep,
    }

    impl ServiceError for Area {
        fn error_code(&self) -> ErrorCode {
            match self {
                Area::Broken => ErrorCode::Internal,
                Area::TooDeep => ErrorCode::Invalid,
            }
        }
    }

    #[test]
    fn an_area_error_answers_with_its_code() {
        let e = Error::from_service("area", Area::Broken);
        assert_eq!(e.code, ErrorCode::Internal);
        assert_eq!(e.message, "area: broken");
        let Some(InternalError::Area { source, .. }) = e.cause() else { panic!("{e:?}") };
        assert!(source.downcast_ref::<Area>().is_some(), "the type is kept");
        let e = Error::from_service("area", Area::TooDeep);
        assert_eq!((e.code, e.message.as_str()), (ErrorCode::Invalid, "too deep"));
        assert!(e.cause().is_none());
    }

    #[test]
    fn field_errors_are_the_documented_shape() {
        let e = Error::invalid("name", "This field is required.");
        assert_eq!(e.details, Some(serde_json::json!({"name": ["This field is required."]})));
    }
}
