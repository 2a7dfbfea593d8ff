//! The request-log record (django-cfg's `GrpcRequestLog` fields plus HTTP method, path and
//! status), how an HTTP status maps to a log status and a gRPC code name, and key masking in
//! paths. Stored JSON uses short field names: a million records is a lot of field names.

use serde::{Deserialize, Serialize};

use crate::store::Record;

/// One logged call: a request to Gatehouse itself or a call reported by a team's gRPC service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct RequestLog {
    /// The sequence number (`request_log`), assigned by the writer.
    #[serde(rename = "i")]
    pub id: u64,
    #[serde(rename = "r")]
    pub request_id: String,
    #[serde(rename = "s")]
    pub service_name: String,
    #[serde(rename = "m")]
    pub method_name: String,
    /// `success`, `error`, `timeout`, `cancelled` or `pending`.
    #[serde(rename = "st")]
    pub status: String,
    #[serde(rename = "d")]
    pub duration_ms: u64,
    #[serde(rename = "g", default, skip_serializing_if = "String::is_empty")]
    pub grpc_status_code: String,
    #[serde(rename = "e", default, skip_serializing_if = "String::is_empty")]
    pub error_message: String,
    /// Unix seconds.
    #[serde(rename = "t")]
    pub created_at: i64,
    #[serde(rename = "ip", default, skip_serializing_if = "String::is_empty")]
    pub client_ip: String,
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<u64>,
    #[serde(rename = "un", default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(rename = "a", default, skip_serializing_if = "is_false")]
    pub is_authenticated: bool,
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<u64>,
    #[serde(rename = "kn", default, skip_serializing_if = "String::is_empty")]
    pub api_key_name: String,
    #[serde(rename = "hm", default, skip_serializing_if = "String::is_empty")]
    pub http_method: String,
    #[serde(rename = "p", default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(rename = "hs", default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_false(b: &bool) -> bool {
    !*b
}

impl Record for RequestLog {
    const VERSION: u8 = 1;
    const NAME: &'static str = "request_logs";
}

/// The statuses a record may have.
pub const STATUSES: [&str; 5] = ["success", "error", "timeout", "cancelled", "pending"];

/// `success` for 1xx–3xx, `timeout` for 504 and 408, `error` otherwise.
pub fn status_for_http(status: u16) -> &'static str {
    match status {
        0..=399 => "success",
        408 | 504 => "timeout",
        499 => "cancelled",
        _ => "error",
    }
}

/// The canonical gRPC code name for an HTTP status (the mapping gRPC gateways use).
pub fn grpc_code_for_http(status: u16) -> &'static str {
    match status {
        0..=399 => "OK",
        400 | 411 | 415 | 416 | 422 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        405 | 501 => "UNIMPLEMENTED",
        408 | 504 => "DEADLINE_EXCEEDED",
        409 => "ALREADY_EXISTS",
        412 => "FAILED_PRECONDITION",
        413 | 429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        500 => "INTERNAL",
        502 | 503 => "UNAVAILABLE",
        400..=499 => "FAILED_PRECONDITION",
        _ => "UNKNOWN",
    }
}

fn key_alphabet(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'
}

/// Looks like a credential: an Unstract deployment key (`unst_…`), or a long run of key
/// characters (API keys, tokens, digests).
fn looks_like_key(segment: &str) -> bool {
    segment.starts_with("unst_") || (segment.len() >= 32 && segment.chars().all(key_alphabet))
}

/// `abcd...wxyz` for a long key (the product's `masked_key` style), `***` for a short one.
pub fn mask_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 16 {
        return "***".into();
    }
    let head: String = chars.iter().take(4).collect();
    let tail: String = chars.iter().skip(chars.len() - 4).collect();
    format!("{head}...{tail}")
}

/// The path with every key-like segment masked: the segment after `/deployment/`, and any
/// segment that looks like a key wherever it appears. Query strings are never recorded.
pub fn mask_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut after_deployment = false;
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if !segment.is_empty() && (after_deployment || looks_like_key(segment)) {
            out.push_str(&mask_key(segment));
        } else {
            out.push_str(segment);
        }
        after_deployment = segment == "deployment" || segment == "deployments-key";
    }
    // Keep recorded paths bounded whatever a client sends.
    if out.len() > 512 {
        let mut cut = 512;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_grpc_mapping() {
        assert_eq!((status_for_http(200), grpc_code_for_http(200)), ("success", "OK"));
        assert_eq!((status_for_http(302), grpc_code_for_http(302)), ("success", "OK"));
        assert_eq!((status_for_http(401), grpc_code_for_http(401)), ("error", "UNAUTHENTICATED"));
        assert_eq!(grpc_code_for_http(403), "PERMISSION_DENIED");
        assert_eq!(grpc_code_for_http(404), "NOT_FOUND");
        assert_eq!(grpc_code_for_http(409), "ALREADY_EXISTS");
        assert_eq!(grpc_code_for_http(429), "RESOURCE_EXHAUSTED");
        assert_eq!(grpc_code_for_http(500), "INTERNAL");
        assert_eq!(grpc_code_for_http(503), "UNAVAILABLE");
        assert_eq!(
            (status_for_http(504), grpc_code_for_http(504)),
            ("timeout", "DEADLINE_EXCEEDED")
        );
        assert_eq!((status_for_http(499), grpc_code_for_http(499)), ("cancelled", "CANCELLED"));
    }

    #[test]
    fn masks_keys_in_paths() {
        let key = "unst_0123456789abcdef0123456789abcdef";
        assert_eq!(mask_path(&format!("/deployment/{key}/")), "/deployment/unst...cdef/");
        assert_eq!(mask_path("/deployment/short/"), "/deployment/***/");
        let hex = "a".repeat(64);
        assert_eq!(mask_path(&format!("/cfg/grpc/x/{hex}")), "/cfg/grpc/x/aaaa...aaaa");
        assert_eq!(mask_path("/api/projects/12/"), "/api/projects/12/");
        assert_eq!(mask_path("/"), "/");
        assert!(mask_path(&"/x".repeat(1000)).len() <= 512);
    }

    #[test]
    fn compact_encoding_round_trips() {
        let r = RequestLog {
            id: 7,
            request_id: "abc".into(),
            service_name: "svc".into(),
            method_name: "m".into(),
            status: "success".into(),
            created_at: 1,
            http_status: Some(200),
            ..RequestLog::default()
        };
        let bytes = crate::store::encode(&r).unwrap();
        assert!(bytes.len() < 90, "{}", bytes.len());
        assert_eq!(crate::store::decode::<RequestLog>(&bytes).unwrap(), r);
    }
}
