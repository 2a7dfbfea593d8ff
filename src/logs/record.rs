//! The request-log record (django-cfg's `GrpcRequestLog` fields plus HTTP method, path and
//! status), its compact stored form, how an HTTP status maps to a log status and a gRPC code
//! name, and key masking in paths.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::store::binary::{self, put_i64, put_str, put_u64};
use crate::store::{Record, StoreError};

/// A field that is mostly one of a few fixed strings (status, gRPC code, HTTP method, the
/// operation and service names of Gatehouse's own routes): borrowed then, so logging a request
/// allocates only what is really per request.
pub type Text = Cow<'static, str>;

/// `s` as a borrowed static string if it is one of `known`, else owned.
pub fn known_or_owned(s: &str, known: &[&'static str]) -> Text {
    known.iter().find(|k| **k == s).map_or_else(|| Cow::Owned(s.to_string()), |k| Cow::Borrowed(*k))
}

/// One logged call: a request to Gatehouse itself or a call reported by a team's gRPC service.
/// A record may stand for several refused anonymous requests of one address, route and minute
/// (`count`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RequestLog {
    /// The sequence number (`request_log`), assigned by the writer.
    #[serde(rename = "i")]
    pub id: u64,
    #[serde(rename = "r")]
    pub request_id: String,
    #[serde(rename = "s")]
    pub service_name: Text,
    #[serde(rename = "m")]
    pub method_name: Text,
    /// `success`, `error`, `timeout`, `cancelled` or `pending`.
    #[serde(rename = "st")]
    pub status: Text,
    #[serde(rename = "d")]
    pub duration_ms: u64,
    #[serde(rename = "g", default, skip_serializing_if = "is_empty")]
    pub grpc_status_code: Text,
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
    #[serde(rename = "hm", default, skip_serializing_if = "is_empty")]
    pub http_method: Text,
    #[serde(rename = "p", default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(rename = "hs", default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// How many requests this record stands for (1, or more for aggregated refusals).
    #[serde(rename = "n", default = "one", skip_serializing_if = "is_one")]
    pub count: u64,
    /// Reported records: the user whose credential reported them (staff or a key's owner).
    #[serde(rename = "bu", default, skip_serializing_if = "Option::is_none")]
    pub ingested_by_user_id: Option<u64>,
    /// Reported records: the API key that reported them, if a key did.
    #[serde(rename = "bk", default, skip_serializing_if = "Option::is_none")]
    pub ingested_by_key_id: Option<u64>,
    #[serde(rename = "bkn", default, skip_serializing_if = "String::is_empty")]
    pub ingested_by_key_name: String,
}

impl Default for RequestLog {
    fn default() -> Self {
        Self {
            id: 0,
            request_id: String::new(),
            service_name: Text::default(),
            method_name: Text::default(),
            status: Text::default(),
            duration_ms: 0,
            grpc_status_code: Text::default(),
            error_message: String::new(),
            created_at: 0,
            client_ip: String::new(),
            user_id: None,
            username: String::new(),
            is_authenticated: false,
            api_key_id: None,
            api_key_name: String::new(),
            http_method: Text::default(),
            path: String::new(),
            http_status: None,
            count: 1,
            ingested_by_user_id: None,
            ingested_by_key_id: None,
            ingested_by_key_name: String::new(),
        }
    }
}

fn one() -> u64 {
    1
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_one(n: &u64) -> bool {
    *n == 1
}

fn is_empty(t: &Text) -> bool {
    t.is_empty()
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_false(b: &bool) -> bool {
    !*b
}

/// Version 3 body (version 2 is the same without the tail, version 1 the JSON with short names;
/// both still read): a flags byte (user id, API key id, HTTP status present; authenticated;
/// count, reporting user, reporting key present), then the fields in declaration order —
/// numbers as varints (`created_at` zig-zag), strings length-prefixed, absent options left out.
/// Roughly half the JSON's size and a fraction of its encoding time, which the writer pays for
/// every logged request; a plain record of Gatehouse's own has no tail and costs what it did.
impl Record for RequestLog {
    const VERSION: u8 = 3;
    const NAME: &'static str = "request_logs";

    // Version 1: the same fields as JSON.
    const JSON_UNTIL: u8 = 1;

    fn upgrade(version: u8, body: &[u8]) -> Result<Self, StoreError> {
        match version {
            1 => serde_json::from_slice(body).map_err(|e| StoreError::codec(Self::NAME, e)),
            2 => Self::read_binary(body, false),
            v => Err(StoreError::codec(Self::NAME, format!("unknown record version {v}"))),
        }
    }

    fn write_body(&self, out: &mut Vec<u8>) -> Result<(), StoreError> {
        self.encode_body_as(self.id, out);
        Ok(())
    }

    fn read_body(body: &[u8]) -> Result<Self, StoreError> {
        Self::read_binary(body, true)
    }
}

const F_USER: u8 = 1;
const F_KEY: u8 = 2;
const F_HTTP_STATUS: u8 = 4;
const F_AUTHENTICATED: u8 = 8;
// Version 3: the tail after the version 2 fields.
const F_COUNT: u8 = 16;
const F_BY_USER: u8 = 32;
const F_BY_KEY: u8 = 64;
const TAIL: u8 = F_COUNT | F_BY_USER | F_BY_KEY;

impl RequestLog {
    /// Reads a version 3 body, or (`tail` false) a version 2 one, which has no tail flags.
    fn read_binary(body: &[u8], tail: bool) -> Result<Self, StoreError> {
        let mut r = binary::Reader::new(body, Self::NAME);
        let flags = r.u8()?;
        if !tail && flags & TAIL != 0 {
            return Err(r.error("version 3 flags in a version 2 record"));
        }
        let has = |bit: u8| flags & bit != 0;
        let rec = RequestLog {
            id: r.u64()?,
            request_id: r.string()?,
            service_name: r.string()?.into(),
            method_name: r.string()?.into(),
            status: known_or_owned(r.str()?, &STATUSES),
            duration_ms: r.u64()?,
            grpc_status_code: r.string()?.into(),
            error_message: r.string()?,
            created_at: r.i64()?,
            client_ip: r.string()?,
            user_id: if has(F_USER) { Some(r.u64()?) } else { None },
            username: r.string()?,
            is_authenticated: has(F_AUTHENTICATED),
            api_key_id: if has(F_KEY) { Some(r.u64()?) } else { None },
            api_key_name: r.string()?,
            http_method: r.string()?.into(),
            path: r.string()?,
            http_status: if has(F_HTTP_STATUS) {
                Some(u16::try_from(r.u64()?).map_err(|_| r.error("bad HTTP status"))?)
            } else {
                None
            },
            count: if has(F_COUNT) { r.u64()? } else { 1 },
            ingested_by_user_id: if has(F_BY_USER) { Some(r.u64()?) } else { None },
            ingested_by_key_id: if has(F_BY_KEY) { Some(r.u64()?) } else { None },
            ingested_by_key_name: if has(F_BY_KEY) { r.string()? } else { String::new() },
        };
        r.finish()?;
        Ok(rec)
    }

    /// The version 3 body of this record as if its id were `id` (the writer assigns ids inside
    /// the transaction and encodes without copying the record).
    pub fn encode_body_as(&self, id: u64, out: &mut Vec<u8>) {
        let mut flags = 0;
        for (set, bit) in [
            (self.user_id.is_some(), F_USER),
            (self.api_key_id.is_some(), F_KEY),
            (self.http_status.is_some(), F_HTTP_STATUS),
            (self.is_authenticated, F_AUTHENTICATED),
            (self.count != 1, F_COUNT),
            (self.ingested_by_user_id.is_some(), F_BY_USER),
            (self.ingested_by_key_id.is_some(), F_BY_KEY),
        ] {
            if set {
                flags |= bit;
            }
        }
        out.push(flags);
        put_u64(out, id);
        for s in [&*self.request_id, &self.service_name, &self.method_name, &self.status] {
            put_str(out, s);
        }
        put_u64(out, self.duration_ms);
        put_str(out, &self.grpc_status_code);
        put_str(out, &self.error_message);
        put_i64(out, self.created_at);
        put_str(out, &self.client_ip);
        if let Some(u) = self.user_id {
            put_u64(out, u);
        }
        put_str(out, &self.username);
        if let Some(k) = self.api_key_id {
            put_u64(out, k);
        }
        for s in [&*self.api_key_name, &self.http_method, &self.path] {
            put_str(out, s);
        }
        if let Some(h) = self.http_status {
            put_u64(out, u64::from(h));
        }
        if self.count != 1 {
            put_u64(out, self.count);
        }
        if let Some(u) = self.ingested_by_user_id {
            put_u64(out, u);
        }
        if let Some(k) = self.ingested_by_key_id {
            put_u64(out, k);
            put_str(out, &self.ingested_by_key_name);
        }
    }

    /// The stored bytes (version byte and body) of this record with id `id`.
    pub fn encode_as(&self, id: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(96 + self.path.len() + self.error_message.len());
        out.push(<Self as Record>::VERSION);
        self.encode_body_as(id, &mut out);
        out
    }
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
    // Most paths have nothing to mask: no segment can be 32 long, no deployment key, no `unst_`.
    if path.len() < 32 && !path.contains("deployment") && !path.contains("unst_") {
        return path.to_string();
    }
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
        // Short paths take the fast path, which must not skip a short deployment key.
        assert_eq!(mask_path("/unst_abc/"), "/***/");
        assert_eq!(mask_path("/deployments-key/k1/"), "/deployments-key/***/");
        assert_eq!(mask_path("/health/"), "/health/");
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
        assert!(bytes.len() < 40, "{}", bytes.len());
        assert_eq!(crate::store::decode::<RequestLog>(&bytes).unwrap(), r);
        assert_eq!(r.encode_as(7), bytes);
        let full = full_record();
        let bytes = crate::store::encode(&full).unwrap();
        assert_eq!(bytes[0], 3);
        assert_eq!(crate::store::decode::<RequestLog>(&bytes).unwrap(), full);
        let mut other = full.clone();
        other.id = 99;
        assert_eq!(crate::store::decode::<RequestLog>(&full.encode_as(99)).unwrap(), other);
        // Every truncation and trailing garbage is an error, never a panic.
        for cut in 1..bytes.len() {
            assert!(crate::store::decode::<RequestLog>(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = bytes;
        long.push(0);
        assert!(crate::store::decode::<RequestLog>(&long).is_err());
    }

    fn full_record() -> RequestLog {
        RequestLog {
            id: 123_456,
            request_id: "0b9f6c1e-2d4a-4f7e-9a51-3c2b1d0e8f77".into(),
            service_name: "gatehouse.Projects".into(),
            method_name: "projects_list".into(),
            status: "error".into(),
            duration_ms: 1234,
            grpc_status_code: "NOT_FOUND".into(),
            error_message: "Not found: ünïcode".into(),
            created_at: 1_750_000_000,
            client_ip: "2001:db8::1".into(),
            user_id: Some(7),
            username: "alice".into(),
            is_authenticated: true,
            api_key_id: Some(3),
            api_key_name: "ci key".into(),
            http_method: "GET".into(),
            path: "/api/projects/9/".into(),
            http_status: Some(404),
            count: 1,
            ingested_by_user_id: None,
            ingested_by_key_id: None,
            ingested_by_key_name: String::new(),
        }
    }

    /// The tail of version 3 (count, reporting user and key) round-trips, and every truncation
    /// of it is an error.
    #[test]
    fn version_3_tail_round_trips() {
        let r = RequestLog {
            count: 200,
            ingested_by_user_id: Some(9),
            ingested_by_key_id: Some((1 << 40) + 3),
            ingested_by_key_name: "reporter".into(),
            ..full_record()
        };
        let bytes = crate::store::encode(&r).unwrap();
        assert_eq!(crate::store::decode::<RequestLog>(&bytes).unwrap(), r);
        let plain = crate::store::encode(&full_record()).unwrap();
        assert!(bytes.len() > plain.len());
        for cut in plain.len()..bytes.len() {
            assert!(crate::store::decode::<RequestLog>(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        // A version 2 record never carries tail flags: refused rather than misread.
        let mut as_v2 = bytes;
        as_v2[0] = 2;
        assert!(crate::store::decode::<RequestLog>(&as_v2).is_err());
    }

    /// Exactly what the previous version (record version 2) wrote for `full_record()`: it still
    /// decodes, with `count` 1 and no reporter.
    #[test]
    fn version_2_binary_records_still_read() {
        let mut v2 = vec![2u8];
        let r = full_record();
        // The version 2 encoder, field by field (flags: user, key, HTTP status, authenticated).
        v2.push(1 | 2 | 4 | 8);
        put_u64(&mut v2, r.id);
        for s in [&*r.request_id, &r.service_name, &r.method_name, &r.status] {
            put_str(&mut v2, s);
        }
        put_u64(&mut v2, r.duration_ms);
        put_str(&mut v2, &r.grpc_status_code);
        put_str(&mut v2, &r.error_message);
        put_i64(&mut v2, r.created_at);
        put_str(&mut v2, &r.client_ip);
        put_u64(&mut v2, 7);
        put_str(&mut v2, &r.username);
        put_u64(&mut v2, 3);
        for s in [&*r.api_key_name, &r.http_method, &r.path] {
            put_str(&mut v2, s);
        }
        put_u64(&mut v2, 404);
        let decoded = crate::store::decode::<RequestLog>(&v2).unwrap();
        assert_eq!(decoded, r);
        assert_eq!((decoded.count, decoded.ingested_by_key_id), (1, None));
        // And the current encoder writes the same body for it, under version 3.
        assert_eq!(&crate::store::encode(&r).unwrap()[1..], &v2[1..]);
    }

    #[test]
    fn version_1_json_records_still_read() {
        // Exactly what the previous version wrote for a request: version byte 1, short-name JSON.
        let v1 = br#"{"i":123456,"r":"0b9f6c1e-2d4a-4f7e-9a51-3c2b1d0e8f77","s":"gatehouse.Projects","m":"projects_list","st":"error","d":1234,"g":"NOT_FOUND","e":"Not found: \u00fcn\u00efcode","t":1750000000,"ip":"2001:db8::1","u":7,"un":"alice","a":true,"k":3,"kn":"ci key","hm":"GET","p":"/api/projects/9/","hs":404}"#;
        let mut bytes = vec![1u8];
        bytes.extend_from_slice(v1);
        assert_eq!(crate::store::decode::<RequestLog>(&bytes).unwrap(), full_record());
        let minimal = br#"{"i":1,"r":"","s":"a","m":"b","st":"success","d":0,"t":5}"#;
        let mut bytes = vec![1u8];
        bytes.extend_from_slice(minimal);
        let r = crate::store::decode::<RequestLog>(&bytes).unwrap();
        assert_eq!((r.id, r.created_at, r.user_id, r.http_status), (1, 5, None, None));
        assert_eq!(r.count, 1);
    }
}
