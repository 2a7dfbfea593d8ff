//! Tests for certificate issuance, renewal timing and the lazy TLS acceptor.

#![allow(clippy::unwrap_used)] // tests may panic

use std::{
    collections::HashSet,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration as StdDuration,
};

use poem::{
    get, handler,
    listener::{Acceptor, Listener, TcpAcceptor, TcpListener},
    Route, Server,
};
use rustls::{pki_types::ServerName, ClientConfig, ProtocolVersion, RootCertStore};
use time::{macros::datetime, Duration};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use x509_parser::extensions::{GeneralName, ParsedExtension};

use super::*;

const DAY: Duration = Duration::days(1);

fn ca() -> CaMaterial {
    generate_ca("Gatehouse Test CA", DAY * 3650).unwrap()
}

fn leaf(ca: &CaMaterial, hosts: &[&str]) -> LeafMaterial {
    let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
    issue_leaf(ca, &hosts, DAY * 90).unwrap()
}

fn config(ca: &CaMaterial, leaf: &LeafMaterial) -> Arc<rustls::ServerConfig> {
    server_config(&format!("{}{}", leaf.cert_pem, ca.cert_pem), &leaf.key_pem).unwrap()
}

fn der(pem: &str) -> Vec<u8> {
    first_cert_der(pem).unwrap().to_vec()
}

#[handler]
fn ok() -> &'static str {
    "ok"
}

async fn serve(certs: CertSwap, handshake_timeout: StdDuration) -> SocketAddr {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let acceptor =
        TlsAcceptor::new(TcpAcceptor::from_tokio(tcp).unwrap(), certs, handshake_timeout);
    tokio::spawn(Server::new_with_acceptor(acceptor).run(Route::new().at("/", get(ok))));
    addr
}

fn client(ca_pem: &str, versions: &[&'static rustls::SupportedProtocolVersion]) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    roots.add(first_cert_der(ca_pem).unwrap()).unwrap();
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

type ClientStream = tokio_rustls::client::TlsStream<TcpStream>;

async fn connect(addr: SocketAddr, cfg: ClientConfig) -> std::io::Result<ClientStream> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    let fut = tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp);
    tokio::time::timeout(StdDuration::from_secs(10), fut)
        .await
        .map_err(|_| std::io::ErrorKind::TimedOut)?
}

/// Sends a raw HTTP/1.1 GET and returns the whole response.
async fn http_get(stream: &mut ClientStream) -> String {
    let req = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    stream.write_all(req).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(StdDuration::from_secs(10), async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    });
    read.await.unwrap();
    String::from_utf8(out).unwrap()
}

fn assert_ok_response(resp: &str) {
    assert!(resp.starts_with("HTTP/1.1 200"), "response: {resp:?}");
    assert!(resp.ends_with("\r\n\r\nok"), "response: {resp:?}");
}

fn peer_der(stream: &ClientStream) -> Vec<u8> {
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[test]
fn ca_and_leaf_validity_and_sans() {
    let ca = ca();
    let (ca_nb, ca_na) = leaf_validity(&ca.cert_pem).unwrap();
    assert_eq!(ca_na - ca_nb, DAY * 3650);

    let before = OffsetDateTime::now_utc();
    let hosts = ["gatehouse.example", "10.1.2.3", "LOCALHOST", "127.0.0.1", " gatehouse.example "];
    let leaf = leaf(&ca, &hosts);
    assert!(leaf.key_pem.contains("BEGIN PRIVATE KEY"));
    assert!(ca.key_pem.contains("BEGIN PRIVATE KEY"));
    let (nb, na) = leaf_validity(&leaf.cert_pem).unwrap();
    assert_eq!((nb, na), (leaf.not_before, leaf.not_after));
    assert_eq!(na - nb, DAY * 90);
    assert!(nb <= before && before - nb <= Duration::minutes(5) + Duration::seconds(2));

    let leaf_der = der(&leaf.cert_pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf_der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    for name in &san.value.general_names {
        match name {
            GeneralName::DNSName(n) => dns.push(n.to_string()),
            GeneralName::IPAddress(b) => ips.push(match b.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()),
                _ => IpAddr::from(<[u8; 16]>::try_from(*b).unwrap()),
            }),
            other => panic!("unexpected SAN {other:?}"),
        }
    }
    dns.sort();
    assert_eq!(dns, ["gatehouse.example", "localhost"]);
    let ips: HashSet<IpAddr> = ips.into_iter().collect();
    let want: HashSet<IpAddr> =
        ["10.1.2.3", "127.0.0.1", "::1"].iter().map(|s| s.parse().unwrap()).collect();
    assert_eq!(ips, want);
    assert_eq!(san.value.general_names.len(), 5, "SANs must be deduplicated");

    for present in
        ["gatehouse.example", "GateHouse.Example.", "[::1]", "127.0.0.1", " ", "10.1.2.3"]
    {
        assert!(leaf_has_san(&leaf.cert_pem, present).unwrap(), "{present:?}");
    }
    for absent in ["other.example", "10.1.2.4", "::2", "example"] {
        assert!(!leaf_has_san(&leaf.cert_pem, absent).unwrap(), "{absent:?}");
    }
    assert!(leaf_has_san("junk", "localhost").is_err());

    let eku = cert.extended_key_usage().unwrap().unwrap();
    assert!(eku.value.server_auth);
    assert!(!cert.is_ca());
    let ca_der = der(&ca.cert_pem);
    let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    assert!(ca_cert.is_ca());
    assert_eq!(cert.issuer().as_raw(), ca_cert.subject().as_raw());
    // The leaf's authority key id names the CA's subject key id (signature: handshake tests).
    let aki = cert.iter_extensions().find_map(|e| match e.parsed_extension() {
        ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().map(|k| k.0),
        _ => None,
    });
    let ski = ca_cert.iter_extensions().find_map(|e| match e.parsed_extension() {
        ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0),
        _ => None,
    });
    assert!(aki.is_some());
    assert_eq!(aki, ski);
    assert_ne!(
        fingerprint_sha256(&leaf.cert_pem).unwrap(),
        fingerprint_sha256(&ca.cert_pem).unwrap()
    );
}

#[test]
fn fingerprint_is_sha256_hex_of_der() {
    let ca = ca();
    let fp = fingerprint_sha256(&ca.cert_pem).unwrap();
    assert_eq!(fp.len(), 64);
    assert!(fp.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    let digest = ring::digest::digest(&ring::digest::SHA256, &der(&ca.cert_pem));
    assert_eq!(fp[..2], format!("{:02x}", digest.as_ref()[0]));
    assert!(fingerprint_sha256("junk").is_err());
}

#[test]
fn renewal_at_two_thirds_of_life() {
    let nb = datetime!(2025-01-01 00:00:00 UTC);
    let na = nb + Duration::seconds(90);
    assert!(!needs_renewal(nb, na, nb));
    assert!(!needs_renewal(nb, na, nb + Duration::seconds(45)));
    assert!(!needs_renewal(nb, na, nb + Duration::seconds(59)));
    assert!(needs_renewal(nb, na, nb + Duration::milliseconds(60_001)));
    assert!(needs_renewal(nb, na, na + Duration::days(1)));
    assert!(needs_renewal(nb, nb, nb));

    let ca = ca();
    let short = issue_leaf(&ca, &[], Duration::seconds(90)).unwrap();
    let (nb, na) = leaf_validity(&short.cert_pem).unwrap();
    assert_eq!(na - nb, Duration::seconds(90));
    assert!(!needs_renewal(nb, na, nb + Duration::seconds(45)));
    assert!(needs_renewal(nb, na, nb + Duration::seconds(61)));
}

#[test]
fn server_config_rejects_garbage() {
    let ca = ca();
    let leaf = leaf(&ca, &[]);
    let other = leaf_of_other_key(&ca);
    let cases = [
        ("", ""),
        ("garbage", "garbage"),
        ("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", &leaf.key_pem),
        (&leaf.cert_pem, "not a key"),
        (&leaf.cert_pem, &leaf.cert_pem),
        (&leaf.key_pem, &leaf.key_pem),
        (&leaf.cert_pem, &other),
    ];
    for (cert, key) in cases {
        assert!(server_config(cert, key).is_err(), "accepted {cert:?} / {key:?}");
    }
    let bad_ca = CaMaterial { cert_pem: "x".into(), key_pem: "y".into() };
    assert!(issue_leaf(&bad_ca, &[], DAY).is_err());
    assert!(leaf_validity("").is_err());
    for bad in ["bad host", "nul\u{0}", "-lead.example", "a..b", "ünï.example", "*"] {
        assert!(issue_leaf(&ca, &[bad.into()], DAY).is_err(), "accepted host {bad:?}");
    }
    issue_leaf(&ca, &["*.gatehouse.example".into(), "[::2]".into(), "a_b.example.".into()], DAY)
        .unwrap();

    // The same key re-encoded as SEC1 ("EC PRIVATE KEY") is accepted too.
    let sec1 = sec1_pem(&leaf.key_pem);
    assert!(sec1.starts_with("-----BEGIN EC PRIVATE KEY-----"));
    server_config(&leaf.cert_pem, &sec1).unwrap();
}

fn leaf_of_other_key(ca: &CaMaterial) -> String {
    leaf(ca, &[]).key_pem
}

/// Re-wraps a ring/rcgen PKCS#8 EC key as a SEC1 PEM (the inner ECPrivateKey).
fn sec1_pem(pkcs8_pem: &str) -> String {
    use x509_parser::der_parser::{ber::BerObjectContent, parse_der};
    let pkcs8 = match rustls_pemfile::private_key(&mut pkcs8_pem.as_bytes()).unwrap().unwrap() {
        PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
        _ => panic!("expected PKCS#8"),
    };
    let (_, obj) = parse_der(&pkcs8).unwrap();
    let seq = obj.as_sequence().unwrap();
    let inner = match &seq[2].content {
        BerObjectContent::OctetString(b) => b.to_vec(),
        other => panic!("unexpected {other:?}"),
    };
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in inner.chunks(3) {
        let n =
            chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            b64.push(if i <= chunk.len() {
                B64[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    format!("-----BEGIN EC PRIVATE KEY-----\n{b64}\n-----END EC PRIVATE KEY-----\n")
}

#[tokio::test]
async fn handshake_serves_http_over_tls12_and_tls13() {
    let ca = ca();
    let leaf = leaf(&ca, &["gatehouse.example"]);
    let addr = serve(CertSwap::new(config(&ca, &leaf)), StdDuration::from_secs(10)).await;

    for (versions, want) in [
        (vec![&rustls::version::TLS13], ProtocolVersion::TLSv1_3),
        (vec![&rustls::version::TLS12], ProtocolVersion::TLSv1_2),
    ] {
        let mut s = connect(addr, client(&ca.cert_pem, &versions)).await.unwrap();
        assert_eq!(s.get_ref().1.protocol_version(), Some(want));
        assert_eq!(peer_der(&s), der(&leaf.cert_pem));
        assert_ok_response(&http_get(&mut s).await);
    }

    // A client trusting a different CA must fail the handshake.
    let stranger = generate_ca("Stranger CA", DAY).unwrap();
    let versions = [&rustls::version::TLS13];
    assert!(connect(addr, client(&stranger.cert_pem, &versions)).await.is_err());
}

#[tokio::test]
async fn alpn_negotiates_h2_and_http11() {
    let ca = ca();
    let leaf = leaf(&ca, &[]);
    let addr = serve(CertSwap::new(config(&ca, &leaf)), StdDuration::from_secs(10)).await;
    let versions = [&rustls::version::TLS13, &rustls::version::TLS12];

    let mut cfg = client(&ca.cert_pem, &versions);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut s = connect(addr, cfg).await.unwrap();
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    // Speak enough HTTP/2 to see the server's SETTINGS frame.
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let mut header = [0u8; 9];
    tokio::time::timeout(StdDuration::from_secs(10), s.read_exact(&mut header))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(header[3], 0x04, "expected a SETTINGS frame, got {header:?}");

    let mut cfg = client(&ca.cert_pem, &versions);
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut s = connect(addr, cfg).await.unwrap();
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_ok_response(&http_get(&mut s).await);
}

#[tokio::test]
async fn swapped_certificate_is_used_by_new_connections() {
    let ca = ca();
    let first = leaf(&ca, &[]);
    let second = leaf(&ca, &[]);
    let fp2 = fingerprint_sha256(&second.cert_pem).unwrap();
    assert_ne!(fingerprint_sha256(&first.cert_pem).unwrap(), fp2);

    let certs = CertSwap::new(config(&ca, &first));
    let addr = serve(certs.clone(), StdDuration::from_secs(10)).await;
    let versions = [&rustls::version::TLS13];
    let mut old = connect(addr, client(&ca.cert_pem, &versions)).await.unwrap();
    assert_eq!(peer_der(&old), der(&first.cert_pem));

    certs.set(config(&ca, &second));
    let mut new = connect(addr, client(&ca.cert_pem, &versions)).await.unwrap();
    let seen = peer_der(&new);
    assert_eq!(seen, der(&second.cert_pem));
    let digest = ring::digest::digest(&ring::digest::SHA256, &seen);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, fp2);
    assert_ok_response(&http_get(&mut new).await);
    // The connection made before the swap keeps working.
    assert_ok_response(&http_get(&mut old).await);
}

#[tokio::test]
async fn silent_client_does_not_block_others() {
    let ca = ca();
    let leaf = leaf(&ca, &[]);
    let addr = serve(CertSwap::new(config(&ca, &leaf)), StdDuration::from_secs(60)).await;
    let _silent1 = TcpStream::connect(addr).await.unwrap();
    let _silent2 = TcpStream::connect(addr).await.unwrap();
    let versions = [&rustls::version::TLS13];
    let served = async {
        let mut s = connect(addr, client(&ca.cert_pem, &versions)).await.unwrap();
        http_get(&mut s).await
    };
    let resp = tokio::time::timeout(StdDuration::from_secs(5), served).await.unwrap();
    assert_ok_response(&resp);
}

#[tokio::test]
async fn handshake_times_out_for_silent_client() {
    let ca = ca();
    let leaf = leaf(&ca, &[]);
    let listener = TlsListener::new(
        TcpListener::bind("127.0.0.1:0"),
        CertSwap::new(config(&ca, &leaf)),
        StdDuration::from_millis(200),
    );
    let mut acceptor = listener.into_acceptor().await.unwrap();
    let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
    let silent = TcpStream::connect(addr).await.unwrap();
    let (mut io, _, _, scheme) =
        tokio::time::timeout(StdDuration::from_secs(2), acceptor.accept()).await.unwrap().unwrap();
    assert_eq!(scheme, poem::http::uri::Scheme::HTTPS);
    let mut buf = [0u8; 16];
    let started = std::time::Instant::now();
    let err = tokio::time::timeout(StdDuration::from_secs(5), io.read(&mut buf))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert!(started.elapsed() >= StdDuration::from_millis(150));
    // Later I/O on the failed stream errors instead of hanging or panicking.
    assert!(io.write_all(b"x").await.is_err());
    drop(silent);
}

#[tokio::test]
async fn listener_serves_through_poem_server() {
    let ca = ca();
    let leaf = leaf(&ca, &[]);
    let listener = TlsListener::new(
        TcpListener::bind("127.0.0.1:0"),
        CertSwap::new(config(&ca, &leaf)),
        StdDuration::from_secs(10),
    );
    let acceptor = listener.into_acceptor().await.unwrap();
    let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
    tokio::spawn(Server::new_with_acceptor(acceptor).run(Route::new().at("/", get(ok))));
    let versions = [&rustls::version::TLS12];
    let mut s = connect(addr, client(&ca.cert_pem, &versions)).await.unwrap();
    assert_ok_response(&http_get(&mut s).await);
}

/// Verifies `leaf` for `name` the way a rustls client does (webpki, `ca` as the only root).
fn webpki_verify(ca: &CaMaterial, leaf: &LeafMaterial, name: &str) -> Result<(), rustls::Error> {
    use rustls::client::danger::ServerCertVerifier as _;
    let mut roots = RootCertStore::empty();
    roots.add(first_cert_der(&ca.cert_pem).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
    let server_name = ServerName::try_from(name.to_string()).unwrap();
    let now = rustls::pki_types::UnixTime::now();
    verifier
        .verify_server_cert(&first_cert_der(&leaf.cert_pem).unwrap(), &[], &server_name, &[], now)
        .map(|_| ())
}

#[test]
fn local_ca_is_name_constrained_and_clients_enforce_it() {
    let hosts: Vec<String> =
        ["gh.example.com", "*.apps.example.org", "10.1.2.3", "[fd00::7]", "127.0.0.2"]
            .iter()
            .map(|h| h.to_string())
            .collect();
    let ca = generate_local_ca("Gatehouse Test CA", DAY * 30, &hosts).unwrap();
    let ca_der = der(&ca.cert_pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    let nc = cert.name_constraints().unwrap().expect("nameConstraints extension");
    assert!(nc.critical, "nameConstraints must be critical");
    assert!(nc.value.excluded_subtrees.is_none());
    let mut dns = HashSet::new();
    let mut ips = HashSet::new();
    for subtree in nc.value.permitted_subtrees.as_ref().unwrap() {
        match &subtree.base {
            GeneralName::DNSName(d) => assert!(dns.insert(d.to_string())),
            GeneralName::IPAddress(b) => assert!(ips.insert(b.to_vec())),
            other => panic!("unexpected subtree {other:?}"),
        }
    }
    let want_dns: HashSet<String> =
        ["gh.example.com", "apps.example.org", "localhost"].iter().map(|s| s.to_string()).collect();
    assert_eq!(dns, want_dns);
    let v6 = |a: &str, m: u8| {
        let mut out = a.parse::<std::net::Ipv6Addr>().unwrap().octets().to_vec();
        out.extend_from_slice(&(u128::MAX << (128 - u32::from(m))).to_be_bytes());
        out
    };
    let want_ips: HashSet<Vec<u8>> = [
        vec![10, 1, 2, 3, 255, 255, 255, 255],
        vec![127, 0, 0, 0, 255, 0, 0, 0],
        v6("fd00::7", 128),
        v6("::1", 128),
    ]
    .into_iter()
    .collect();
    assert_eq!(ips, want_ips);

    // The leaf for the configured names passes webpki's name-constraint checks.
    let leaf = issue_leaf(&ca, &hosts, DAY).unwrap();
    for name in
        ["gh.example.com", "x.apps.example.org", "localhost", "10.1.2.3", "127.0.0.1", "::1"]
    {
        webpki_verify(&ca, &leaf, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // A leaf the CA signs for any other name is refused by clients, whatever it names.
    for outside in ["evil.example.net", "gh.example.com.evil.net", "10.1.2.4"] {
        let forged = issue_leaf(&ca, &[outside.to_string()], DAY).unwrap();
        let err = webpki_verify(&ca, &forged, outside).unwrap_err();
        assert!(format!("{err:?}").contains("NameConstraint"), "{outside}: {err:?}");
    }
    // Without constraints (generate_ca) the same forgery would pass: the review's finding.
    let open_ca = generate_ca("Unconstrained", DAY);
    let open_ca = open_ca.unwrap();
    let forged = issue_leaf(&open_ca, &["evil.example.net".to_string()], DAY).unwrap();
    assert!(webpki_verify(&open_ca, &forged, "evil.example.net").is_ok());

    assert_eq!(ca_coverage(&ca.cert_pem, &hosts).unwrap(), CaCoverage::Covered);
    assert_eq!(
        ca_coverage(&ca.cert_pem, &["sub.gh.example.com".into(), "::1".into()]).unwrap(),
        CaCoverage::Covered
    );
    assert_eq!(
        ca_coverage(&ca.cert_pem, &["new.example.net".into(), "10.9.9.9".into()]).unwrap(),
        CaCoverage::Missing(vec!["new.example.net".into(), "10.9.9.9".into()])
    );
    assert_eq!(ca_coverage(&open_ca.cert_pem, &hosts).unwrap(), CaCoverage::Unconstrained);
}
