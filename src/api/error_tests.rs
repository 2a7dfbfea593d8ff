//! The code table (one status and one wire code per meaning) and the internal-error split: the
//! cause goes to the log with the request id, never to the client.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use poem::http::{header, StatusCode};
use poem::Response;

use super::*;
use crate::domain::Error;

async fn body_json(resp: Response) -> Value {
    let bytes = resp.into_body().into_bytes().await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn every_code_has_its_own_wire_code_and_status() {
    let wire_codes: HashSet<&str> = ErrorCode::ALL.iter().map(|c| code_str(*c)).collect();
    assert_eq!(wire_codes.len(), ErrorCode::ALL.len(), "{wire_codes:?}");
    let statuses: HashSet<StatusCode> = ErrorCode::ALL.iter().map(|c| status_of(*c)).collect();
    assert_eq!(statuses.len(), ErrorCode::ALL.len(), "{statuses:?}");
    for code in ErrorCode::ALL {
        assert_eq!(code_of_status(status_of(code)), code, "{code:?} does not map back");
    }
}

#[test]
fn statuses_outside_the_table_are_a_bad_request_or_the_servers_failure() {
    assert_eq!(code_of_status(StatusCode::LENGTH_REQUIRED), ErrorCode::Invalid);
    assert_eq!(code_of_status(StatusCode::URI_TOO_LONG), ErrorCode::Invalid);
    assert_eq!(code_of_status(StatusCode::SERVICE_UNAVAILABLE), ErrorCode::Internal);
}

#[tokio::test]
async fn a_401_is_not_authenticated_whoever_raises_it() {
    assert_eq!(code_str(ErrorCode::Unauthenticated), "NOT_AUTHENTICATED");
    let from_domain = ApiError(Error::unauthenticated("Invalid token.")).into_response();
    let from_poem = convert_poem_error(poem::Error::from_status(StatusCode::UNAUTHORIZED));
    for resp in [from_domain, from_poem] {
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(resp.headers().get(header::WWW_AUTHENTICATE).unwrap(), "Token");
        assert_eq!(body_json(resp).await["code"], "NOT_AUTHENTICATED");
    }
}

#[tokio::test]
async fn poem_errors_take_their_code_from_the_table() {
    for (status, wire_code) in [
        (StatusCode::NOT_FOUND, "NOT_FOUND"),
        (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED"),
        (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE"),
        (StatusCode::NOT_ACCEPTABLE, "NOT_ACCEPTABLE"),
    ] {
        let resp = convert_poem_error(poem::Error::from_status(status));
        assert_eq!(resp.status(), status);
        let body = body_json(resp).await;
        assert_eq!(body["code"], wire_code);
        for field in ["error", "details", "code", "timestamp"] {
            assert!(body.get(field).is_some(), "{body}");
        }
    }
}

#[tokio::test]
async fn a_rate_limit_keeps_its_retry_after() {
    let resp = ApiError(Error::rate_limited(30)).into_response();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers().get(header::RETRY_AFTER).unwrap(), "30");
    assert_eq!(body_json(resp).await["code"], "RATE_LIMITED");
}

/// A log sink the test reads back.
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Log lines written while `f` runs, at every level.
fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let writer = Arc::clone(&buf);
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || SharedBuf(Arc::clone(&writer)))
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
    (out, text)
}

#[tokio::test]
async fn an_internal_cause_is_logged_with_the_request_id_and_never_answered() {
    const CAUSE: &str = "planted-cause /var/lib/gatehouse/secret-row";
    let internal = || Error::from(std::io::Error::other(CAUSE));
    // Both ways an internal error reaches a client: rendered directly, and raised through poem.
    let renders: [Box<dyn FnOnce() -> Response>; 2] = [
        Box::new(move || ApiError(internal()).into_response()),
        Box::new(move || convert_poem_error(poem::Error::from(ApiError(internal())))),
    ];
    for render in renders {
        let (resp, log) = logged(|| REQUEST_ID.sync_scope("req-planted-42".to_string(), render));
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let text = String::from_utf8(resp.into_body().into_vec().await.unwrap()).unwrap();
        assert!(!text.contains("planted-cause"), "the cause reached the client: {text}");
        assert!(!text.contains("secret-row"), "{text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["code"], "INTERNAL_ERROR");
        assert_eq!(body["error"], "Internal server error");
        assert_eq!(body["details"], Value::Null);
        assert_eq!(log.matches("internal error").count(), 1, "logged once: {log}");
        assert!(log.contains("req-planted-42"), "no request id in the log: {log}");
        assert!(log.contains(CAUSE), "no cause in the log: {log}");
        assert!(log.contains("Io"), "the cause's type is not logged: {log}");
    }
}

#[poem::handler]
fn fails_inside() -> poem::Result<&'static str> {
    Err(ApiError(Error::from(std::io::Error::other("planted-cause in a handler"))).into())
}

/// Through the edge, as a request: the id the client sent is the one logged with the cause.
#[tokio::test]
async fn the_edge_gives_the_error_log_the_request_id() {
    use crate::api::middleware::{Edge, EdgeSettings};
    use poem::Endpoint as _;
    let settings = Arc::new(EdgeSettings {
        trusted_proxies: vec![],
        max_body_bytes: 64,
        max_upload_bytes: 64,
        tls: false,
        request_timeout: std::time::Duration::from_secs(5),
    });
    let edge = Edge::new(poem::Route::new().at("/fail", fails_inside), settings);
    let req =
        poem::Request::builder().uri_str("/fail").header("x-request-id", "req-edge-7777").finish();
    let buf = Arc::new(Mutex::new(Vec::new()));
    let writer = Arc::clone(&buf);
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || SharedBuf(Arc::clone(&writer)))
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let resp = edge.call(req).await.unwrap();
    drop(guard);
    let log = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!String::from_utf8(resp.into_body().into_vec().await.unwrap())
        .unwrap()
        .contains("planted"));
    let line = log.lines().find(|l| l.contains("internal error")).unwrap_or_default();
    assert!(line.contains("req-edge-7777") && line.contains("planted-cause"), "{log}");
}
