//! TLS: local CA + server leaf (rcgen), rustls ServerConfig (ring), and a poem Acceptor with lazy handshakes and hot-swappable certificates.

use std::{collections::HashSet, net::IpAddr, sync::Arc};

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    NameConstraints, SanType,
};
use rustls::{
    pki_types::{CertificateDer, PrivateKeyDer},
    ServerConfig,
};
use time::OffsetDateTime;

/// Errors from certificate generation, parsing and TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate generation failed: {0}")]
    Generate(String),
    #[error("certificate or key parsing failed: {0}")]
    Parse(String),
    #[error("TLS configuration failed: {0}")]
    Config(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn gen_err(e: impl std::fmt::Display) -> TlsError {
    TlsError::Generate(e.to_string())
}

/// A CA certificate and its PKCS#8 private key, both PEM.
#[derive(Clone)]
pub struct CaMaterial {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CaMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaMaterial").finish_non_exhaustive()
    }
}

/// A server (leaf) certificate, its PKCS#8 private key (PEM) and its validity window.
#[derive(Clone)]
pub struct LeafMaterial {
    pub cert_pem: String,
    pub key_pem: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl std::fmt::Debug for LeafMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeafMaterial")
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// Validity window of `lifetime` seconds, starting slightly in the past (at most
/// 5 minutes, at most 1/30 of the lifetime) to tolerate client clock skew.
fn validity_window(lifetime: time::Duration) -> Result<(OffsetDateTime, OffsetDateTime), TlsError> {
    if lifetime < time::Duration::seconds(3) {
        return Err(TlsError::Generate("certificate lifetime too short".into()));
    }
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).map_err(gen_err)?;
    let backdate = std::cmp::min(time::Duration::minutes(5), lifetime / 30);
    let backdate = time::Duration::seconds(backdate.whole_seconds());
    let not_before = now - backdate;
    Ok((not_before, not_before + lifetime))
}

fn new_key() -> Result<KeyPair, TlsError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(gen_err)
}

/// Generates a self-signed CA (ECDSA P-256, path length 0) without name constraints: it can
/// sign for any name (tests and tools; the server's own CA is [`generate_local_ca`]).
pub fn generate_ca(common_name: &str, lifetime: time::Duration) -> Result<CaMaterial, TlsError> {
    generate_ca_with(common_name, lifetime, None)
}

/// Generates the server's local CA, name-constrained to what its leaves may name:
/// `hostnames` plus localhost, 127.0.0.0/8 and ::1. A CA an operator adds to a trust store
/// then vouches for these names only, not for every domain.
pub fn generate_local_ca(
    common_name: &str,
    lifetime: time::Duration,
    hostnames: &[String],
) -> Result<CaMaterial, TlsError> {
    generate_ca_with(common_name, lifetime, Some(name_constraints(hostnames)?))
}

/// The permitted subtrees for `hostnames`: one DNS subtree per DNS name (a wildcard's parent
/// domain for `*.name`), `localhost`, one exact-address subtree per configured IP, 127.0.0.0/8
/// and ::1/128. Having both DNS and IP subtrees constrains both kinds of name (RFC 5280: a
/// kind without subtrees would be unconstrained).
fn name_constraints(hostnames: &[String]) -> Result<NameConstraints, TlsError> {
    let mut permitted = Vec::new();
    let mut seen = HashSet::new();
    for san in leaf_sans(hostnames)? {
        let subtree = match san {
            SanType::DnsName(name) => {
                let name = name.as_str();
                GeneralSubtree::DnsName(name.strip_prefix("*.").unwrap_or(name).to_owned())
            }
            SanType::IpAddress(IpAddr::V4(ip)) if ip.is_loopback() => continue,
            SanType::IpAddress(ip) => {
                GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(ip, host_prefix(ip)))
            }
            _ => continue,
        };
        if seen.insert(format!("{subtree:?}")) {
            permitted.push(subtree);
        }
    }
    permitted.push(GeneralSubtree::IpAddress(CidrSubnet::from_v4_prefix([127, 0, 0, 0], 8)));
    Ok(NameConstraints { permitted_subtrees: permitted, excluded_subtrees: Vec::new() })
}

fn host_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

fn generate_ca_with(
    common_name: &str,
    lifetime: time::Duration,
    constraints: Option<NameConstraints>,
) -> Result<CaMaterial, TlsError> {
    let key = new_key()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.name_constraints = constraints;
    (params.not_before, params.not_after) = validity_window(lifetime)?;
    let cert = params.self_signed(&key).map_err(gen_err)?;
    Ok(CaMaterial { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// Whether a CA's name constraints cover the names a leaf for `hostnames` would carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaCoverage {
    /// The CA has no name constraints (generated before they existed): it covers every name.
    Unconstrained,
    /// Every name is inside the permitted subtrees.
    Covered,
    /// These names are outside: a leaf naming them would be refused by clients.
    Missing(Vec<String>),
}

/// Checks the first certificate of `ca_pem` against the SANs [`issue_leaf`] would write for
/// `hostnames` (defaults included).
pub fn ca_coverage(ca_pem: &str, hostnames: &[String]) -> Result<CaCoverage, TlsError> {
    use x509_parser::extensions::GeneralName;
    let der = first_cert_der(ca_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| TlsError::Parse(format!("CA certificate: {e}")))?;
    let constraints =
        cert.name_constraints().map_err(|e| TlsError::Parse(format!("nameConstraints: {e}")))?;
    let Some(permitted) = constraints.and_then(|c| c.value.permitted_subtrees.as_ref()) else {
        return Ok(CaCoverage::Unconstrained);
    };
    let mut dns: Vec<String> = Vec::new();
    let mut ips: Vec<&[u8]> = Vec::new();
    for subtree in permitted {
        match &subtree.base {
            GeneralName::DNSName(d) => dns.push(d.trim_end_matches('.').to_ascii_lowercase()),
            GeneralName::IPAddress(b) => ips.push(b),
            _ => {}
        }
    }
    let mut missing = Vec::new();
    for san in leaf_sans(hostnames)? {
        let covered = match &san {
            SanType::DnsName(name) => {
                let name = name.as_str();
                let name = name.strip_prefix("*.").unwrap_or(name);
                dns.iter().any(|d| dns_within(name, d))
            }
            SanType::IpAddress(ip) => ips.iter().any(|subnet| ip_within(*ip, subnet)),
            _ => true,
        };
        if !covered {
            missing.push(match san {
                SanType::DnsName(name) => name.as_str().to_owned(),
                SanType::IpAddress(ip) => ip.to_string(),
                _ => String::new(),
            });
        }
    }
    Ok(if missing.is_empty() { CaCoverage::Covered } else { CaCoverage::Missing(missing) })
}

/// RFC 5280 DNS subtree: the name itself or any name below it.
fn dns_within(name: &str, subtree: &str) -> bool {
    let subtree = subtree.trim_start_matches('.');
    name == subtree || name.strip_suffix(subtree).is_some_and(|rest| rest.ends_with('.'))
}

/// An iPAddress subtree is address ‖ mask (8 bytes for IPv4, 32 for IPv6).
fn ip_within(ip: IpAddr, subnet: &[u8]) -> bool {
    let addr: Vec<u8> = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    if subnet.len() != addr.len() * 2 {
        return false;
    }
    let (base, mask) = subnet.split_at(addr.len());
    addr.iter().zip(base).zip(mask).all(|((a, b), m)| a & m == b & m)
}

/// The SAN list for a leaf: `hostnames` plus localhost, 127.0.0.1 and ::1, deduplicated.
fn leaf_sans(hostnames: &[String]) -> Result<Vec<SanType>, TlsError> {
    let mut seen_ip = HashSet::new();
    let mut seen_dns = HashSet::new();
    let mut sans = Vec::new();
    let defaults = ["localhost", "127.0.0.1", "::1"];
    let all = hostnames.iter().map(String::as_str).chain(defaults);
    for raw in all {
        let name = raw.trim();
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            if seen_ip.insert(ip) {
                sans.push(SanType::IpAddress(ip));
            }
        } else if !name.is_empty() {
            let lower = name.trim_end_matches('.').to_ascii_lowercase();
            if !valid_dns_name(&lower) {
                return Err(TlsError::Generate(format!("invalid hostname {name:?}")));
            }
            if seen_dns.insert(lower.clone()) {
                let dns = lower
                    .try_into()
                    .map_err(|e| TlsError::Generate(format!("invalid hostname {name:?}: {e}")))?;
                sans.push(SanType::DnsName(dns));
            }
        }
    }
    Ok(sans)
}

/// A DNS name usable in a SAN: LDH labels of 1..=63 characters (`_` tolerated), an
/// optional leading `*` wildcard label, at most 253 characters in all.
fn valid_dns_name(name: &str) -> bool {
    let labels = name.strip_prefix("*.").unwrap_or(name);
    name.len() <= 253
        && labels.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Rebuilds the issuer's subject DN from the parsed CA certificate, keeping string types
/// so that the leaf's issuer name is byte-identical to the CA's subject.
fn issuer_dn(name: &x509_parser::x509::X509Name<'_>) -> Result<DistinguishedName, TlsError> {
    use x509_parser::der_parser::asn1_rs::Tag;
    let bad = |what: &str| TlsError::Parse(format!("CA subject: {what}"));
    let mut dn = DistinguishedName::new();
    for attr in name.iter_attributes() {
        let oid: Vec<u64> = attr.attr_type().iter().ok_or_else(|| bad("attribute OID"))?.collect();
        let text = std::str::from_utf8(attr.as_slice()).map_err(|_| bad("non-UTF-8 value"))?;
        let value = match attr.attr_value().tag() {
            Tag::Utf8String => DnValue::Utf8String(text.to_owned()),
            Tag::PrintableString => {
                DnValue::PrintableString(text.try_into().map_err(|_| bad("PrintableString"))?)
            }
            Tag::Ia5String => DnValue::Ia5String(text.try_into().map_err(|_| bad("IA5String"))?),
            _ => return Err(bad("unsupported string type")),
        };
        dn.push(DnType::from_oid(&oid), value);
    }
    Ok(dn)
}

/// Issues a server certificate for `hostnames` (+ localhost, 127.0.0.1, ::1), signed by `ca`.
pub fn issue_leaf(
    ca: &CaMaterial,
    hostnames: &[String],
    lifetime: time::Duration,
) -> Result<LeafMaterial, TlsError> {
    // Re-create the rcgen issuer from the CA PEMs.
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(|e| TlsError::Parse(e.to_string()))?;
    let ca_der = first_cert_der(&ca.cert_pem)?;
    let (_, ca_x509) = x509_parser::parse_x509_certificate(&ca_der)
        .map_err(|e| TlsError::Parse(format!("CA certificate: {e}")))?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = issuer_dn(ca_x509.subject())?;
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    if let Ok(Some(ski)) = ca_x509
        .get_extension_unique(&x509_parser::oid_registry::OID_X509_EXT_SUBJECT_KEY_IDENTIFIER)
    {
        if let x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) =
            ski.parsed_extension()
        {
            ca_params.key_identifier_method = KeyIdMethod::PreSpecified(id.0.to_vec());
        }
    }
    let issuer = Issuer::new(ca_params, ca_key);

    let key = new_key()?;
    let sans = leaf_sans(hostnames)?;
    let cn = match sans.first() {
        Some(SanType::DnsName(n)) => n.as_str().to_owned(),
        Some(SanType::IpAddress(ip)) => ip.to_string(),
        _ => "localhost".to_owned(),
    };
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let (not_before, not_after) = validity_window(lifetime)?;
    (params.not_before, params.not_after) = (not_before, not_after);
    let cert = params.signed_by(&key, &issuer).map_err(gen_err)?;
    Ok(LeafMaterial { cert_pem: cert.pem(), key_pem: key.serialize_pem(), not_before, not_after })
}

fn all_cert_ders(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Parse(format!("certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::Parse("no CERTIFICATE block in PEM".into()));
    }
    Ok(certs)
}

fn first_cert_der(pem: &str) -> Result<CertificateDer<'static>, TlsError> {
    let mut certs = all_cert_ders(pem)?;
    Ok(certs.swap_remove(0))
}

/// `(not_before, not_after)` of the first certificate in `cert_pem`.
pub fn leaf_validity(cert_pem: &str) -> Result<(OffsetDateTime, OffsetDateTime), TlsError> {
    let der = first_cert_der(cert_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| TlsError::Parse(format!("certificate: {e}")))?;
    let v = cert.validity();
    Ok((v.not_before.to_datetime(), v.not_after.to_datetime()))
}

/// Whether the first certificate in `cert_pem` lists `hostname` as a SAN, normalised as
/// [`issue_leaf`] does (IP literals compare as addresses, DNS names case-insensitively;
/// blank names are never added, so they always count as present).
pub fn leaf_has_san(cert_pem: &str, hostname: &str) -> Result<bool, TlsError> {
    use x509_parser::extensions::GeneralName;
    let der = first_cert_der(cert_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| TlsError::Parse(format!("certificate: {e}")))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| TlsError::Parse(format!("subjectAltName: {e}")))?;
    let names = san.map(|s| s.value.general_names.as_slice()).unwrap_or(&[]);
    let name = hostname.trim();
    if name.is_empty() {
        return Ok(true);
    }
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    Ok(match bare.parse::<IpAddr>() {
        Ok(ip) => names.iter().any(|n| match (n, ip) {
            (GeneralName::IPAddress(b), IpAddr::V4(v4)) => *b == v4.octets().as_slice(),
            (GeneralName::IPAddress(b), IpAddr::V6(v6)) => *b == v6.octets().as_slice(),
            _ => false,
        }),
        Err(_) => {
            let want = name.trim_end_matches('.');
            names
                .iter()
                .any(|n| matches!(n, GeneralName::DNSName(d) if d.eq_ignore_ascii_case(want)))
        }
    })
}

/// True once two thirds of the certificate's lifetime have passed (or the window is empty).
pub fn needs_renewal(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
) -> bool {
    let total = (not_after - not_before).whole_nanoseconds();
    if total <= 0 {
        return true;
    }
    let elapsed = (now - not_before).whole_nanoseconds();
    elapsed.saturating_mul(3) >= total.saturating_mul(2)
}

/// Lower-case hex SHA-256 over the DER of the first certificate in `cert_pem`.
pub fn fingerprint_sha256(cert_pem: &str) -> Result<String, TlsError> {
    let der = first_cert_der(cert_pem)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &der);
    Ok(digest.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

/// A rustls server config (ring provider, TLS 1.3 + 1.2, ALPN h2 + http/1.1).
/// `cert_chain_pem` holds the leaf first, optionally followed by intermediates/CA;
/// `key_pem` may be PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
pub fn server_config(cert_chain_pem: &str, key_pem: &str) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = all_cert_ders(cert_chain_pem)?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .map_err(|e| TlsError::Parse(format!("private key PEM: {e}")))?
        .ok_or_else(|| TlsError::Parse("no private key block in PEM".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

mod acceptor;

pub use acceptor::{CertSwap, LazyTlsStream, TlsAcceptor, TlsListener};

#[cfg(test)]
mod tests;
