//! `Edge` (with `BodyLimit` inside) driven directly: panics, routing errors and body limits become the error format.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use poem::http::{Method, StatusCode};
use poem::{handler, Body, Endpoint, Request, Route};

use super::{BodyLimit, Edge, EdgeSettings};

fn settings() -> Arc<EdgeSettings> {
    Arc::new(EdgeSettings {
        trusted_proxies: vec![],
        max_body_bytes: 64,
        max_upload_bytes: 1024,
        tls: true,
        request_timeout: Duration::from_secs(5),
    })
}

static CALLS: AtomicUsize = AtomicUsize::new(0);

#[handler]
fn sometimes_panics() -> &'static str {
    if CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
        panic!("boom in a handler");
    }
    "fine"
}

#[handler]
fn echo(body: String) -> String {
    body
}

#[handler]
async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(3)).await;
    "late"
}

async fn body_json(resp: poem::Response) -> serde_json::Value {
    let bytes = resp.into_body().into_bytes().await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn edge() -> Edge<BodyLimit<Route>> {
    let route =
        Route::new().at("/panic", sometimes_panics).at("/echo", poem::post(echo)).at("/slow", slow);
    Edge::new(BodyLimit::new(route, settings()), settings())
}

#[tokio::test]
async fn a_panic_is_a_500_in_the_error_format_and_the_next_request_is_served() {
    let edge = edge();
    let resp = edge.call(Request::builder().uri_str("/panic").finish()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(resp.headers().contains_key("x-request-id"));
    let body = body_json(resp).await;
    assert_eq!(body["code"], "INTERNAL_ERROR");
    assert_eq!(body["error"], "Internal server error");
    assert!(!body.to_string().contains("boom"), "panic message leaked: {body}");
    let resp = edge.call(Request::builder().uri_str("/panic").finish()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn routing_errors_are_rewritten() {
    let edge = edge();
    let resp = edge.call(Request::builder().uri_str("/nope").finish()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(body_json(resp).await["code"], "NOT_FOUND");
    let resp = edge
        .call(Request::builder().method(Method::DELETE).uri_str("/echo").finish())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body_json(resp).await["code"], "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn json_bodies_are_bounded_even_without_content_length() {
    let edge = edge();
    let chunks = futures_util::stream::iter(
        (0..10).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"0123456789"))),
    );
    let req = Request::builder()
        .method(Method::POST)
        .uri_str("/echo")
        .content_type("application/json")
        .body(Body::from_bytes_stream(chunks));
    let resp = edge.call(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body_json(resp).await["code"], "PAYLOAD_TOO_LARGE");
    // A body within the limit reaches the handler intact after being kept.
    let req = Request::builder()
        .method(Method::POST)
        .uri_str("/echo")
        .content_type("application/json")
        .body(r#"{"a": 1}"#);
    let resp = edge.call(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.into_body().into_string().await.unwrap(), r#"{"a": 1}"#);
}

#[tokio::test]
async fn uploads_are_bounded_by_the_file_limit_plus_framing() {
    let edge = edge();
    let limit = 1024 + super::UPLOAD_OVERHEAD_BYTES;
    let upload = |len: u64, chunked: bool| {
        let builder = Request::builder()
            .method(Method::POST)
            .uri_str("/echo")
            .content_type("multipart/form-data; boundary=x");
        if chunked {
            let chunks = futures_util::stream::iter(
                (0..len).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"a"))),
            );
            builder.body(Body::from_bytes_stream(chunks))
        } else {
            builder.header("content-length", len.to_string()).body(vec![b'a'; len as usize])
        }
    };
    for chunked in [false, true] {
        // A body a little over the file limit (the multipart framing) reaches the handler.
        let resp = edge.call(upload(limit, chunked)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "chunked: {chunked}");
        assert_eq!(resp.into_body().into_bytes().await.unwrap().len() as u64, limit);
        let resp = edge.call(upload(limit + 1, chunked)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE, "chunked: {chunked}");
        assert_eq!(body_json(resp).await["code"], "PAYLOAD_TOO_LARGE");
    }
}

#[tokio::test]
async fn a_handler_over_the_time_limit_is_a_504() {
    let mut s = (*settings()).clone();
    s.request_timeout = Duration::from_millis(200);
    let edge = Edge::new(Route::new().at("/slow", slow), Arc::new(s));
    let resp = edge.call(Request::builder().uri_str("/slow").finish()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(body_json(resp).await["code"], "TIMEOUT");
}

/// A body of `n` chunks of `size` bytes, counted as they are read.
fn counted(n: usize, size: usize, read: &Arc<AtomicUsize>) -> Body {
    let read = Arc::clone(read);
    Body::from_bytes_stream(futures_util::stream::iter((0..n).map(move |_| {
        read.fetch_add(size, Ordering::SeqCst);
        Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'a'; size]))
    })))
}

/// An HTTP/1.1 request answered before its body was read: the rest is read and thrown away
/// before the answer, which closes the connection (else the client, still sending, is reset
/// and never reads the 413). Over HTTP/2 the body is left to the stream reset, unread.
#[tokio::test]
async fn an_early_answer_drains_the_body_over_http1_and_not_over_http2() {
    let edge = edge();
    for (version, drained, close) in
        [(poem::http::Version::HTTP_11, 100_000, true), (poem::http::Version::HTTP_2, 0, false)]
    {
        let read = Arc::new(AtomicUsize::new(0));
        let req = Request::builder()
            .method(Method::POST)
            .version(version)
            .uri_str("/echo")
            .content_type("application/json")
            .header("content-length", "100000")
            .body(counted(100, 1000, &read));
        let resp = edge.call(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(read.load(Ordering::SeqCst), drained, "{version:?}");
        assert_eq!(resp.headers().get("connection").is_some_and(|v| v == "close"), close);
        assert_eq!(body_json(resp).await["code"], "PAYLOAD_TOO_LARGE");
    }
    // A body read in full keeps the connection.
    let read = Arc::new(AtomicUsize::new(0));
    let req = Request::builder()
        .method(Method::POST)
        .uri_str("/echo")
        .content_type("text/csv")
        .header("content-length", "50")
        .body(counted(2, 25, &read));
    let resp = edge.call(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("connection").is_none());
    assert_eq!(read.load(Ordering::SeqCst), 50);
}
