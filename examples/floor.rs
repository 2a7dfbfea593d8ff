//! The benchmark harness's floor: a bare poem server behind Gatehouse's own TLS acceptor
//! (tokio-rustls with ring, the same certificates kind and ALPN), answering `GET /health/`
//! with a small JSON body and doing nothing else: no middleware, no authentication, no
//! request log. `bench/run floor` measures it in the same run as Gatehouse, so a ratio
//! against it shows what Gatehouse's own work costs on this machine.
//!
//! `GET /static-24k/` answers a fixed JSON body of the 100-variable list's size (24 900 bytes),
//! built once at start: what sending that response over TLS costs with no work behind it.
//!
//! Usage: `floor ADDR DIR` — writes `DIR/ca.pem` and serves `https://ADDR/health/`.

use std::path::PathBuf;
use std::time::Duration;

use gatehouse::tls::{self, CertSwap, TlsAcceptor};
use poem::listener::{Listener as _, TcpListener};
use poem::web::{Data, Json};
use poem::{get, handler, EndpointExt as _, Response, Route, Server};

/// The size of `GET /api/environments/{id}/variables/?page_size=100` in the harness.
const LIST_BODY_BYTES: usize = 24_900;

#[handler]
fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "healthy", "version": gatehouse::VERSION}))
}

#[handler]
fn static_list(body: Data<&bytes::Bytes>) -> Response {
    Response::builder().content_type("application/json").body(body.0.clone())
}

/// A JSON array of variable-like objects, padded to exactly `LIST_BODY_BYTES`.
fn list_body() -> bytes::Bytes {
    let mut s = String::from("{\"count\":100,\"results\":[");
    let mut n = 0;
    while s.len() < LIST_BODY_BYTES - 300 {
        s.push_str(&format!(
            "{{\"id\":{n},\"key\":\"BENCH_V_{n:05}\",\"decrypted_value\":\"value-{n}-abcdefghijklmnopqrstuvwxyz012345\",\"environment\":1,\"environment_name\":\"bench\",\"created_at\":\"2026-11-26T04:59:36Z\",\"updated_at\":\"2026-11-26T04:59:36Z\",\"created_by_name\":\"bench-admin\",\"version\":1}},"
        ));
        n += 1;
    }
    s.push_str("{\"pad\":\"");
    while s.len() < LIST_BODY_BYTES - 3 {
        s.push('x');
    }
    s.push_str("\"}]}");
    bytes::Bytes::from(s)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(dir)) = (args.next(), args.next()) else {
        return Err("usage: floor ADDR DIR".into());
    };
    let ca = tls::generate_ca("Gatehouse floor CA", time::Duration::days(1))?;
    let leaf = tls::issue_leaf(&ca, &["localhost".to_string()], time::Duration::days(1))?;
    let config = tls::server_config(&format!("{}{}", leaf.cert_pem, ca.cert_pem), &leaf.key_pem)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let tcp = TcpListener::bind(addr).into_acceptor().await?;
        std::fs::write(PathBuf::from(dir).join("ca.pem"), &ca.cert_pem)?;
        let acceptor = TlsAcceptor::new(tcp, CertSwap::new(config), Duration::from_secs(10));
        let app = Route::new()
            .at("/health", get(health))
            .at("/health/", get(health))
            .at("/static-24k/", get(static_list))
            .data(list_body());
        Server::new_with_acceptor(acceptor).run(app).await
    })?;
    Ok(())
}
