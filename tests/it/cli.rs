//! The real binary: help and version, config precedence, bad keys and values (exit code 2),
//! plain HTTP only on loopback, `tls export-ca` after a start, a clean SIGTERM stop, and a
//! supplied certificate pair reloaded on SIGHUP.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

/// A command with a clean environment (no GATEHOUSE_* leaking in from the caller).
fn gatehouse(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GATEHOUSE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("GATEHOUSE_RATE_LIMIT_ENABLED", "false")
        .env("GATEHOUSE_ADMIN_EMAIL", "admin@example.com")
        .env("GATEHOUSE_ADMIN_PASSWORD", "admin-password-123")
        .args(args);
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn help_and_version_work_for_every_subcommand() {
    let out = run(&mut gatehouse(&["--version"]));
    assert!(out.status.success());
    let version = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    let out = run(&mut gatehouse(&["--help"]));
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    for word in ["serve", "check", "openapi", "tls", "--data-dir", "--listen", "--insecure-http"] {
        assert!(help.contains(word), "--help lacks {word}: {help}");
    }
    for sub in [
        &["serve", "--help"][..],
        &["check", "--help"],
        &["tls", "--help"],
        &["tls", "export-ca", "--help"],
        &["openapi", "--help"],
    ] {
        let out = run(&mut gatehouse(sub));
        assert!(out.status.success(), "{sub:?}: {}", stderr_of(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"), "{sub:?}");
    }
    for sub in [&["serve", "--version"][..], &["tls", "--version"]] {
        let out = run(&mut gatehouse(sub));
        assert!(out.status.success(), "{sub:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    }
    let out = run(&mut gatehouse(&["no-such-command"]));
    assert_eq!(out.status.code(), Some(2));
}

/// Asserts exit code 2 and one stderr line naming `key`.
fn assert_config_refused(out: &Output, key: &str) {
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr_of(out));
    let err = stderr_of(out);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line: {err}");
    assert!(lines[0].contains(key), "line does not name {key}: {err}");
}

#[test]
fn unknown_keys_and_bad_values_stop_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let out = run(gatehouse(&["check", "--data-dir", data]).env("GATEHOUSE_STORAGE_NOPE", "1"));
    assert_config_refused(&out, "GATEHOUSE_STORAGE_NOPE");
    let out = run(gatehouse(&["--data-dir", data]).env("GATEHOUSE_SERVER_LOG_FORMAT", "xml"));
    assert_config_refused(&out, "log_format");
    let out = run(gatehouse(&["--data-dir", data]).env("GATEHOUSE_RATE_LIMIT_ENABLED", "maybe"));
    assert_config_refused(&out, "GATEHOUSE_RATE_LIMIT_ENABLED");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[server]\nlisten = \"127.0.0.1:0\"\ncolour = \"blue\"\n").unwrap();
    let out = run(&mut gatehouse(&["--config", file.to_str().unwrap(), "--data-dir", data]));
    assert_config_refused(&out, "colour");
    std::fs::write(&file, "[nope]\nx = 1\n").unwrap();
    let out = run(&mut gatehouse(&["--config", file.to_str().unwrap(), "--data-dir", data]));
    assert_config_refused(&out, "nope");
    // Nothing was started: no data file was created by a refused start.
    assert!(!Path::new(data).join("gatehouse.redb").exists());
}

#[test]
fn insecure_http_is_refused_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    for listen in ["0.0.0.0:0", "192.0.2.1:8080", "[::]:0"] {
        let out = run(&mut gatehouse(&["--insecure-http", "--listen", listen, "--data-dir", data]));
        assert_config_refused(&out, "insecure_http");
    }
    let out = run(gatehouse(&["--listen", "0.0.0.0:0", "--data-dir", data])
        .env("GATEHOUSE_SERVER_INSECURE_HTTP", "true"));
    assert_config_refused(&out, "insecure_http");
}

#[test]
fn precedence_flag_over_env_over_file() {
    // `check` names the data file of the effective data_dir; see which one won.
    let dir = tempfile::tempdir().unwrap();
    let (from_file, from_env, from_flag) =
        (dir.path().join("file"), dir.path().join("env"), dir.path().join("flag"));
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(&config, format!("[server]\ndata_dir = {:?}\n", from_file.to_str().unwrap()))
        .unwrap();
    let cfg = config.to_str().unwrap();
    let env_dir = from_env.to_str().unwrap();
    let checked = |out: &Output, dir: &Path| {
        assert!(out.status.success(), "{}", stderr_of(out));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let named = dir.join("gatehouse.redb");
        assert!(stdout.contains(named.to_str().unwrap()), "{stdout}");
    };
    let out =
        run(gatehouse(&["check", "--config", cfg, "--data-dir", from_flag.to_str().unwrap()])
            .env("GATEHOUSE_SERVER_DATA_DIR", env_dir));
    checked(&out, &from_flag);
    let out = run(gatehouse(&["check", "--config", cfg]).env("GATEHOUSE_SERVER_DATA_DIR", env_dir));
    checked(&out, &from_env);
    let out = run(&mut gatehouse(&["check", "--config", cfg]));
    checked(&out, &from_file);
    // `check` creates nothing: not the data file, not a master key.
    for d in [&from_file, &from_env, &from_flag] {
        assert!(!d.join("gatehouse.redb").exists() && !d.join("master.key").exists());
    }
}

/// A served binary; killed on drop if a test fails before stopping it.
struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(args: &[&str]) -> Served {
    serve_command(gatehouse(args))
}

/// Starts `cmd` and waits for the line with the URL it listens on.
fn serve_command(mut cmd: Command) -> Served {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(60)).expect("no listening line");
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http"))
        .unwrap_or_else(|| panic!("no URL in {first:?}"))
        .trim_end_matches('/')
        .to_string();
    Served { child, url }
}

fn sigterm(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    for _ in 0..300 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("gatehouse did not stop within 15 s of SIGTERM");
}

#[tokio::test]
async fn serve_prints_the_url_export_ca_matches_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let mut served = serve(&["--data-dir", data, "--listen", "127.0.0.1:0"]);
    assert!(served.url.starts_with("https://127.0.0.1:"), "{}", served.url);
    let ca = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
    let client = crate::harness::client_for(&ca);
    let resp = client.get(format!("{}/health/", served.url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let out = run(&mut gatehouse(&["tls", "export-ca", "--data-dir", data]));
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), ca);
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    let status = sigterm(&mut served.child);
    assert!(status.success(), "exit status after SIGTERM: {status}");
    // The data file was closed cleanly: `check` opens it again.
    let out = run(&mut gatehouse(&["check", "--data-dir", data]));
    assert!(out.status.success(), "{}", stderr_of(&out));
}

#[test]
fn export_ca_before_any_start_fails_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let out =
        run(&mut gatehouse(&["tls", "export-ca", "--data-dir", dir.path().to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("start the server once"), "{}", stderr_of(&out));
}

#[tokio::test]
async fn plain_http_works_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let mut served = serve(&["--data-dir", data, "--listen", "127.0.0.1:0", "--insecure-http"]);
    assert!(served.url.starts_with("http://127.0.0.1:"), "{}", served.url);
    // No CA: the client has nothing to trust, so this only works because it is plain HTTP.
    let client = crate::harness::client_for("");
    let resp = client.get(format!("{}/health/", served.url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("strict-transport-security").is_none(), "HSTS over plain HTTP");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "healthy");
    assert!(sigterm(&mut served.child).success());
}

/// SHA-256 of the certificate `addr` presents (trusting `ca_pem`).
async fn served_leaf_fingerprint(addr: &str, ca_pem: &str) -> String {
    use rustls::pki_types::ServerName;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    let certs = tls.get_ref().1.peer_certificates().unwrap();
    hex::encode(ring::digest::digest(&ring::digest::SHA256, certs[0].as_ref()))
}

/// A supplied certificate pair is served, and replaced without a restart on SIGHUP; a broken
/// pair on SIGHUP keeps the one being served.
#[tokio::test]
async fn supplied_certificate_is_reloaded_on_sighup() {
    use gatehouse::tls;
    let dir = tempfile::tempdir().unwrap();
    let ca = tls::generate_ca("Test supplied CA", time::Duration::days(1)).unwrap();
    let names = ["localhost".to_string()];
    let first = tls::issue_leaf(&ca, &names, time::Duration::days(1)).unwrap();
    let second = tls::issue_leaf(&ca, &names, time::Duration::days(1)).unwrap();
    let (cert_file, key_file) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    let write_pair = |leaf: &tls::LeafMaterial| {
        std::fs::write(&cert_file, format!("{}{}", leaf.cert_pem, ca.cert_pem)).unwrap();
        std::fs::write(&key_file, &leaf.key_pem).unwrap();
    };
    write_pair(&first);
    let data = dir.path().join("data");
    let mut served = gatehouse_served_with_pair(&data, &cert_file, &key_file);
    let addr = served.url.trim_start_matches("https://").to_string();
    let fp = |leaf: &tls::LeafMaterial| tls::fingerprint_sha256(&leaf.cert_pem).unwrap();
    let normalise = |s: String| s.replace(':', "").to_lowercase();
    assert_eq!(served_leaf_fingerprint(&addr, &ca.cert_pem).await, normalise(fp(&first)));

    write_pair(&second);
    let pid = served.child.id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let mut now = String::new();
    for _ in 0..100 {
        now = served_leaf_fingerprint(&addr, &ca.cert_pem).await;
        if now == normalise(fp(&second)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(now, normalise(fp(&second)), "SIGHUP did not load the new pair");

    // A broken pair: the server keeps serving the good one.
    std::fs::write(&key_file, "not a key").unwrap();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(served_leaf_fingerprint(&addr, &ca.cert_pem).await, normalise(fp(&second)));
    assert!(sigterm(&mut served.child).success());
}

fn gatehouse_served_with_pair(
    data: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Served {
    std::fs::create_dir_all(data).unwrap();
    let mut cmd = gatehouse(&["--data-dir", data.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    cmd.env("GATEHOUSE_TLS_CERT_FILE", cert).env("GATEHOUSE_TLS_KEY_FILE", key);
    serve_command(cmd)
}
