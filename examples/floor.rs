//! The benchmark harness's floor: a bare poem server behind Gatehouse's own TLS acceptor
//! (tokio-rustls with ring, the same certificates kind and ALPN), answering `GET /health/`
//! with a small JSON body and doing nothing else: no middleware, no authentication, no
//! request log. `bench/run floor` measures it in the same run as Gatehouse, so a ratio
//! against it shows what Gatehouse's own work costs on this machine.
//!
//! Usage: `floor ADDR DIR` — writes `DIR/ca.pem` and serves `https://ADDR/health/`.

use std::path::PathBuf;
use std::time::Duration;

use gatehouse::tls::{self, CertSwap, TlsAcceptor};
use poem::listener::{Listener as _, TcpListener};
use poem::web::Json;
use poem::{get, handler, Route, Server};

#[handler]
fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "healthy", "version": gatehouse::VERSION}))
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
        let app = Route::new().at("/health", get(health)).at("/health/", get(health));
        Server::new_with_acceptor(acceptor).run(app).await
    })?;
    Ok(())
}
