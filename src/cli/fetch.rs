//! The client side of `gatehouse backup` against a running server: one HTTP/1.1 POST over TLS
//! trusting the server's own CA (or plain HTTP where the server serves it), streamed to a file.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper::Uri;
use hyper_util::rt::TokioIo;

use super::progress::{Progress, Unit};

/// Where and how to ask.
pub struct Target {
    pub url: Uri,
    pub ca_pem: Option<Vec<u8>>,
    /// The `Authorization` header value.
    pub authorization: String,
}

/// Errors bodies are read up to this size (they are small JSON documents).
const MAX_ERROR_BODY: usize = 64 * 1024;
/// The server writes and checks the whole snapshot before it answers.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3600);
/// A download that stalls this long has failed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// POSTs to `target` and writes a 200 body to `out`; returns the bytes written. A non-200
/// answer becomes its error message.
pub async fn post_to_file(target: &Target, out: &mut std::fs::File) -> Result<u64, String> {
    let scheme = target.url.scheme_str().unwrap_or("https");
    let host = target.url.host().ok_or("the URL has no host")?.to_string();
    let port = target.url.port_u16().unwrap_or(if scheme == "http" { 80 } else { 443 });
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let request = hyper::Request::post(target.url.path_and_query().map_or("/", |p| p.as_str()))
        .header(hyper::header::HOST, format!("{host}:{port}"))
        .header(hyper::header::AUTHORIZATION, &target.authorization)
        .header(hyper::header::USER_AGENT, concat!("gatehouse-cli/", env!("CARGO_PKG_VERSION")))
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("cannot build the request: {e}"))?;
    match scheme {
        "http" => send(TokioIo::new(tcp), request, out).await,
        "https" => {
            let tls = connector(target.ca_pem.as_deref())?;
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|_| format!("{host} is not a valid TLS server name"))?;
            let stream = tls
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake with {host}:{port} failed: {e}"))?;
            send(TokioIo::new(stream), request, out).await
        }
        other => Err(format!("unsupported URL scheme {other:?} (use https)")),
    }
}

fn connector(ca_pem: Option<&[u8]>) -> Result<tokio_rustls::TlsConnector, String> {
    let pem = ca_pem.ok_or("no CA certificate to trust (give --cacert)")?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        let cert = cert.map_err(|e| format!("CA certificate: {e}"))?;
        roots.add(cert).map_err(|e| format!("CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("the CA file holds no certificate".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

async fn send<IO>(
    io: TokioIo<IO>,
    request: hyper::Request<Empty<Bytes>>,
    out: &mut std::fs::File,
) -> Result<u64, String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    let driver = tokio::spawn(conn);
    let response = tokio::time::timeout(ANSWER_TIMEOUT, sender.send_request(request))
        .await
        .map_err(|_| "no answer within an hour".to_string())?
        .map_err(|e| format!("the request failed: {e}"))?;
    let status = response.status();
    let total = response
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let mut body = response.into_body();
    if status != hyper::StatusCode::OK {
        let mut text = Vec::new();
        while let Some(frame) = next_frame(&mut body).await? {
            let frame = frame.map_err(|e| format!("reading the answer: {e}"))?;
            if let Some(data) = frame.data_ref() {
                text.extend_from_slice(data);
            }
            if text.len() > MAX_ERROR_BODY {
                break;
            }
        }
        driver.abort();
        return Err(format!("the server answered {status}: {}", error_message(&text)));
    }
    let mut progress = Progress::new("downloading", Unit::Bytes);
    let mut written = 0u64;
    while let Some(frame) = next_frame(&mut body).await? {
        let frame = frame.map_err(|e| format!("the download broke off: {e}"))?;
        if let Some(data) = frame.data_ref() {
            out.write_all(data).map_err(|e| format!("writing the snapshot: {e}"))?;
            written += data.len() as u64;
            progress.update(written, total);
        }
    }
    progress.finish();
    driver.abort();
    if total > 0 && written != total {
        return Err(format!("the download ended after {written} of {total} bytes"));
    }
    Ok(written)
}

type Frame = Result<hyper::body::Frame<Bytes>, hyper::Error>;

/// The next frame of `body`, or an error when none comes for [`IDLE_TIMEOUT`].
async fn next_frame(body: &mut hyper::body::Incoming) -> Result<Option<Frame>, String> {
    tokio::time::timeout(IDLE_TIMEOUT, body.frame())
        .await
        .map_err(|_| format!("the download stalled for {} s", IDLE_TIMEOUT.as_secs()))
}

/// The `error` text of an error body in the house format, or the body itself.
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect())
}
