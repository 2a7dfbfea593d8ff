//! Cross-cutting request handling: request id, client address, body limits, security headers,
//! the error format for everything poem raises, panics turned into 500s, and request bodies
//! left unread by an early answer drained (HTTP/1.1) or reset after the answer (HTTP/2), so
//! the client reads that answer.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use parking_lot::Mutex;
use poem::error::ReadBodyError;
use poem::http::{header, HeaderValue, Method, StatusCode, Version};
use poem::{Body, Endpoint, IntoResponse, Request, Response};

use crate::api::error::{code_response, convert_poem_error, with_request_id};
use crate::api::validation;
use crate::domain::ErrorCode;

/// Per-request facts every later layer needs; inserted first, read everywhere.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub client_ip: Option<IpAddr>,
    pub started: Instant,
}

/// Settings the outer middleware needs.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub max_body_bytes: u64,
    pub max_upload_bytes: u64,
    pub tls: bool,
    pub request_timeout: std::time::Duration,
}

/// Accepts an incoming `X-Request-Id` only if it is short and made of safe characters.
pub fn well_formed_request_id(s: &str) -> bool {
    (8..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// The client address: the peer, or — only when the peer is a trusted proxy — the right-most
/// `X-Forwarded-For` entry that is not itself a trusted proxy. Every `X-Forwarded-For` line
/// counts, in order: a proxy may append its own line rather than extend the client's, and the
/// client's line then comes first.
pub fn client_ip(req: &Request, trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
    let peer = req.remote_addr().as_socket_addr().map(|a| a.ip())?;
    let xff = forwarded_for(req.headers());
    Some(resolve_client_ip(peer, xff.as_deref(), trusted))
}

/// Every `X-Forwarded-For` line, joined in order. A line that is not text stops the walk
/// there, like an entry that is not an address.
fn forwarded_for(headers: &poem::http::HeaderMap) -> Option<String> {
    let lines = headers.get_all("x-forwarded-for");
    lines.iter().next()?;
    Some(lines.iter().map(|v| v.to_str().unwrap_or("invalid")).collect::<Vec<_>>().join(","))
}

fn resolve_client_ip(peer: IpAddr, xff: Option<&str>, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(xff) = xff else {
        return peer;
    };
    let mut chosen = peer;
    for part in xff.rsplit(',') {
        let Ok(ip) = part.trim().parse::<IpAddr>() else { break };
        chosen = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    chosen
}

/// The outermost layer.
pub struct Edge<E> {
    inner: E,
    settings: Arc<EdgeSettings>,
}

impl<E> Edge<E> {
    pub fn new(inner: E, settings: Arc<EdgeSettings>) -> Self {
        Self { inner, settings }
    }
}

impl<E: Endpoint> Endpoint for Edge<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let started = Instant::now();
        let request_id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|s| well_formed_request_id(s))
            .map_or_else(crate::api::request_id::new_request_id, str::to_string);
        let ctx = RequestContext {
            request_id: request_id.clone(),
            client_ip: client_ip(&req, &self.settings.trusted_proxies),
            started,
        };
        req.extensions_mut().insert(ctx);
        let unread = UnreadBody::watch(&mut req);
        let path = req.uri().path();
        let is_docs = path.starts_with("/api/schema") || path.starts_with("/api/docs");
        // Copied only when the debug line is on: a path copy per request otherwise.
        let debug = tracing::enabled!(tracing::Level::DEBUG)
            .then(|| (req.method().clone(), path.to_string()));

        // Kept for a 405's `Allow` (a refcount, not a copy of the path).
        let uri = req.uri().clone();
        let mut resp = with_request_id(request_id.clone(), self.call_inner(req)).await;
        if resp.status() == StatusCode::METHOD_NOT_ALLOWED {
            add_allow(&mut resp, uri.path());
        }
        if let Some(unread) = unread {
            unread.settle(&mut resp).await;
        }
        self.finish(&mut resp, &request_id, is_docs);
        if let Some((method, path)) = debug {
            tracing::debug!(
                request_id = %request_id,
                method = %method,
                path = %path,
                status = resp.status().as_u16(),
                duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                "request"
            );
        }
        Ok(resp)
    }
}

/// Most of a left-over request body that is read and thrown away before an HTTP/1.1 answer.
const DRAIN_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Longest the left-over body is read for.
const DRAIN_MAX_TIME: Duration = Duration::from_secs(5);
/// A client that sends nothing for this long is not sending a body we owe a read: answer it
/// (a stalled upload must not hold its refusal back for the whole drain time).
const DRAIN_IDLE_TIME: Duration = Duration::from_secs(2);

type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// The request body as the layers below see it, with the rest kept here: whatever they leave
/// unread (an answer given before the body was read — 413, 401, 429, 404 — or a body the
/// route ignores) is dealt with before the answer goes out. Left alone, the server would close
/// the connection with the client's bytes unread; the kernel then resets it, and a client
/// still sending never reads the answer.
struct UnreadBody {
    rest: Arc<Mutex<Option<BodyStream>>>,
    version: Version,
}

impl UnreadBody {
    /// Puts the body behind a shared slot, for requests that may carry one.
    fn watch(req: &mut Request) -> Option<Self> {
        if !may_have_body(req) {
            return None;
        }
        let inner: BodyStream = Box::pin(req.take_body().into_bytes_stream());
        let rest = Arc::new(Mutex::new(Some(inner)));
        let shared = Arc::clone(&rest);
        let seen = futures_util::stream::poll_fn(move |cx| {
            let mut slot = shared.lock();
            let Some(body) = slot.as_mut() else { return Poll::Ready(None) };
            let next = body.as_mut().poll_next(cx);
            if matches!(next, Poll::Ready(None)) {
                // Read to the end: nothing left to deal with.
                *slot = None;
            }
            next
        });
        req.set_body(Body::from_bytes_stream(seen));
        Some(Self { rest, version: req.version() })
    }

    /// Deals with what the layers below left of the body.
    async fn settle(self, resp: &mut Response) {
        let Some(rest) = self.rest.lock().take() else { return };
        if self.version >= Version::HTTP_2 {
            // A stream of its own: answer it in full, then let the body go — the HTTP/2 layer
            // resets the stream with NO_ERROR once the answer is complete (RFC 9113 §8.1),
            // which tells the client to stop sending without failing the response.
            let mut body = Box::pin(resp.take_body().into_bytes_stream());
            let held = futures_util::stream::poll_fn(move |cx| {
                let _until_answered = &rest;
                body.as_mut().poll_next(cx)
            });
            resp.set_body(Body::from_bytes_stream(held));
            return;
        }
        // HTTP/1.1, as nginx's lingering close: read and discard what the client still sends
        // (bounded in bytes and time), then answer and close the connection.
        let (read, finished) = drain(rest).await;
        if read > 0 || !finished {
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
}

/// A body is possible: a length above zero, chunked framing, or an HTTP/2 write without a
/// length (its DATA frames carry no framing header to look at).
fn may_have_body(req: &Request) -> bool {
    let headers = req.headers();
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    match headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()) {
        Some(len) => len.trim() != "0",
        None => {
            req.version() >= Version::HTTP_2
                && !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        }
    }
}

/// Reads and discards `rest` up to [`DRAIN_MAX_BYTES`] within [`DRAIN_MAX_TIME`], giving up
/// after [`DRAIN_IDLE_TIME`] without a byte; returns the bytes read and whether the body ended.
async fn drain(mut rest: BodyStream) -> (u64, bool) {
    let deadline = tokio::time::Instant::now() + DRAIN_MAX_TIME;
    let mut read = 0u64;
    loop {
        let until = deadline.min(tokio::time::Instant::now() + DRAIN_IDLE_TIME);
        match tokio::time::timeout_at(until, rest.next()).await {
            Ok(Some(Ok(chunk))) => {
                read = read.saturating_add(chunk.len() as u64);
                if read > DRAIN_MAX_BYTES {
                    return (read, false);
                }
            }
            Ok(None) => return (read, true),
            Ok(Some(Err(_))) | Err(_) => return (read, false),
        }
    }
}

/// Room for the multipart framing around an upload. `max_upload_bytes` limits the file itself
/// (the import checks its exact size and answers 413 one byte over); the body also holds the
/// boundaries, part headers (file name, content type) and small fields such as `overwrite`,
/// a few hundred bytes in practice. 64 KiB covers long file names and extra fields while still
/// refusing an oversized body before any of it is read.
pub const UPLOAD_OVERHEAD_BYTES: u64 = 64 * 1024;

/// Body limits (413, also for chunked bodies) and the kept copy of a JSON body that
/// validation errors are explained with. Inside the request log, so refusals are logged.
pub struct BodyLimit<E> {
    inner: E,
    settings: Arc<EdgeSettings>,
}

impl<E> BodyLimit<E> {
    pub fn new(inner: E, settings: Arc<EdgeSettings>) -> Self {
        Self { inner, settings }
    }
}

impl<E: Endpoint> Endpoint for BodyLimit<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        if let Some(resp) = self.check_body_size(&req) {
            return Ok(resp);
        }
        if let Err(resp) = self.bound_chunked_upload(&mut req).await {
            return Ok(resp);
        }
        match self.keep_json_body(&mut req).await {
            Ok(kept) => {
                let catalog = crate::api::catalog::ApiCatalog::shared();
                let (method, path) = (req.method().as_str(), req.uri().path());
                if let Some(details) = kept
                    .as_ref()
                    .and_then(|b| validation::booleans_for_strings(catalog, method, path, b))
                {
                    return Ok(code_response(
                        ErrorCode::Invalid,
                        "Validation failed",
                        Some(details),
                    ));
                }
                let kept = kept.map(|body| validation::KeptBody {
                    method: req.method().clone(),
                    path: req.uri().path().to_string(),
                    body,
                });
                // Errors are turned into responses inside the scope: explaining a JSON parse
                // error needs the kept body.
                let resp = validation::with_kept_body(kept, async move {
                    match self.inner.call(req).await {
                        Ok(out) => out.into_response(),
                        Err(err) => {
                            let op = err.data::<poem_openapi::OperationId>().copied();
                            let mut resp = convert_poem_error(err);
                            if let Some(op) = op {
                                resp.set_data(op);
                            }
                            resp
                        }
                    }
                })
                .await;
                Ok(resp)
            }
            Err(resp) => Ok(resp),
        }
    }
}

impl<E: Endpoint> BodyLimit<E> {
    fn is_upload(req: &Request) -> bool {
        req.content_type()
            .is_some_and(|c| c.starts_with("multipart/") || c.starts_with("text/plain"))
    }

    fn upload_limit(&self) -> u64 {
        self.settings.max_upload_bytes.saturating_add(UPLOAD_OVERHEAD_BYTES)
    }

    fn check_body_size(&self, req: &Request) -> Option<Response> {
        let length = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())?;
        let limit =
            if Self::is_upload(req) { self.upload_limit() } else { self.settings.max_body_bytes };
        (length > limit).then(|| too_large(limit))
    }

    /// An upload sent without a Content-Length (chunked) is read here, bounded, so that an
    /// endless one is refused with 413 instead of being buffered whole by the multipart reader.
    async fn bound_chunked_upload(&self, req: &mut Request) -> Result<(), Response> {
        let has_body = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
        if !has_body || !Self::is_upload(req) || req.headers().contains_key(header::CONTENT_LENGTH)
        {
            return Ok(());
        }
        let limit = usize::try_from(self.upload_limit()).unwrap_or(usize::MAX);
        let read = req.take_body().into_bytes_limit(limit);
        match tokio::time::timeout(self.settings.request_timeout, read).await {
            Ok(Ok(bytes)) => {
                req.set_body(bytes);
                Ok(())
            }
            Ok(Err(ReadBodyError::PayloadTooLarge)) => Err(too_large(limit as u64)),
            Ok(Err(_)) | Err(_) => Err(unreadable()),
        }
    }

    /// Reads a JSON body (bounded by the body limit, which also covers chunked bodies without
    /// a Content-Length) and puts it back, keeping a copy to explain a parse failure with.
    async fn keep_json_body(&self, req: &mut Request) -> Result<Option<Bytes>, Response> {
        let has_body = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
        let is_json = req.content_type().is_some_and(|c| c.contains("json"));
        if !has_body || !is_json {
            return Ok(None);
        }
        let limit = usize::try_from(self.settings.max_body_bytes).unwrap_or(usize::MAX);
        let read = req.take_body().into_bytes_limit(limit);
        match tokio::time::timeout(self.settings.request_timeout, read).await {
            Ok(Ok(bytes)) => {
                req.set_body(bytes.clone());
                Ok(Some(bytes))
            }
            Ok(Err(ReadBodyError::PayloadTooLarge)) => Err(too_large(limit as u64)),
            Ok(Err(_)) | Err(_) => Err(unreadable()),
        }
    }
}

fn too_large(limit: u64) -> Response {
    code_response(
        ErrorCode::TooLarge,
        "Request body too large.",
        Some(serde_json::Value::String(format!("The limit is {limit} bytes."))),
    )
}

fn unreadable() -> Response {
    code_response(
        ErrorCode::Invalid,
        "Invalid request",
        Some(serde_json::json!({"non_field_errors": ["The request body could not be read."]})),
    )
}

impl<E: Endpoint> Edge<E> {
    async fn call_inner(&self, req: Request) -> Response {
        // Boxed once here: the inner future (every layer and route below) is several KiB, and
        // the panic and timeout wrappers and poem's own boxing would otherwise copy it whole.
        let fut = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(Box::pin(
            self.inner.call(req),
        )));
        match tokio::time::timeout(self.settings.request_timeout, fut).await {
            Ok(Ok(Ok(out))) => {
                let resp = out.into_response();
                if resp.status().is_client_error() || resp.status().is_server_error() {
                    normalise_error_body(resp)
                } else {
                    resp
                }
            }
            Ok(Ok(Err(err))) => convert_poem_error(err),
            Ok(Err(panic)) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(error = %what, "handler panicked");
                code_response(ErrorCode::Internal, "Internal server error", None)
            }
            Err(_) => code_response(ErrorCode::Timeout, "The request took too long.", None),
        }
    }

    fn finish(&self, resp: &mut Response, request_id: &str, is_docs: bool) {
        let headers = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(request_id) {
            headers.insert("x-request-id", v);
        }
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        if self.settings.tls {
            headers.insert(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000"),
            );
        }
        if !is_docs && !headers.contains_key(header::CACHE_CONTROL) {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
    }
}

/// A handler or poem may have produced an error response whose body is not in the error
/// format (e.g. a bare 404 or 405 from routing); rewrite those, keep ours.
fn normalise_error_body(resp: Response) -> Response {
    let is_json =
        resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|c| {
            c.starts_with("application/json")
                || c.starts_with("text/plain; version=0.0.4")
                || c.starts_with("application/openmetrics")
                // The console's error pages: written for a browser, kept as they are.
                || c.starts_with("text/html")
        });
    if is_json {
        return resp;
    }
    let status = resp.status();
    let mut out = convert_poem_error(poem::Error::from_status(status));
    for (name, value) in resp.headers() {
        if name == header::RETRY_AFTER
            || name == header::WWW_AUTHENTICATE
            || name.as_str().starts_with("x-ratelimit")
            || name == header::ALLOW
        {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// RFC 9110 §15.5.6: a 405 names the methods the resource supports. The router's own 405
/// carries none, so they come from the document; a handler's own `Allow` is kept.
fn add_allow(resp: &mut Response, path: &str) {
    if resp.headers().contains_key(header::ALLOW) {
        return;
    }
    let allowed = crate::api::catalog::ApiCatalog::shared().allowed_methods(path);
    if allowed.is_empty() {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
        resp.headers_mut().insert(header::ALLOW, v);
    }
}

/// Methods a read-only credential may use.
pub fn is_safe_method(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_id_format() {
        assert!(well_formed_request_id("abc-123-def-456"));
        assert!(well_formed_request_id(&uuid::Uuid::new_v4().to_string()));
        assert!(!well_formed_request_id("short"));
        assert!(!well_formed_request_id("has space in it"));
        assert!(!well_formed_request_id(&"a".repeat(65)));
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            resolve_client_ip(ip("203.0.113.5"), Some("1.2.3.4"), &trusted),
            ip("203.0.113.5")
        );
        assert_eq!(
            resolve_client_ip(ip("10.0.0.1"), Some("1.2.3.4, 10.0.0.2"), &trusted),
            ip("1.2.3.4")
        );
        assert_eq!(resolve_client_ip(ip("10.0.0.1"), None, &trusted), ip("10.0.0.1"));
        assert_eq!(resolve_client_ip(ip("10.0.0.1"), Some("garbage"), &trusted), ip("10.0.0.1"));
        assert_eq!(resolve_client_ip(ip("10.0.0.1"), Some("1.2.3.4"), &[]), ip("10.0.0.1"));
    }

    #[test]
    fn every_forwarded_for_line_counts() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let resolve = |lines: &[&[u8]], trusted: &[ipnet::IpNet]| {
            let mut headers = poem::http::HeaderMap::new();
            for l in lines {
                headers.append("x-forwarded-for", HeaderValue::from_bytes(l).unwrap());
            }
            resolve_client_ip(peer, forwarded_for(&headers).as_deref(), trusted)
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // The client forges a first line; the proxy appends the real address on its own line.
        assert_eq!(resolve(&[b"6.6.6.6", b"203.0.113.9"], &trusted), ip("203.0.113.9"));
        assert_eq!(
            resolve(&[b"6.6.6.6, 1.1.1.1", b"203.0.113.9, 10.0.0.7"], &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(resolve(&[b"203.0.113.9"], &trusted), ip("203.0.113.9"));
        assert_eq!(resolve(&[], &trusted), peer);
        // A line that is not text ends the walk: the address right of it is used.
        assert_eq!(resolve(&[b"6.6.6.6", b"\xff", b"10.0.0.3"], &trusted), ip("10.0.0.3"));
        // From an untrusted peer, no line counts.
        assert_eq!(resolve(&[b"6.6.6.6", b"203.0.113.9"], &[]), peer);
    }
}

#[cfg(test)]
#[path = "middleware_tests.rs"]
mod edge_tests;
