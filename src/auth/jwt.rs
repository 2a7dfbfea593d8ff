//! HS256 JSON Web Tokens, written by hand on ring's HMAC: access and refresh tokens
//! (SimpleJWT's shapes) and personal access tokens.
//!
//! Signing keys have a key id (`kid` in the header) and live in the `meta` row `jwt_keys`: the
//! current key, which signs, and at most one previous key, which still verifies, so tokens it
//! signed keep working until they expire. `gatehouse jwt rotate` makes a new current key (the
//! server is stopped; the new ring is read at start). Each key is sealed with the master key
//! under associated data naming its kid.
//!
//! Files written before key ids held one kid-less key in `jwt_signing_key`: the first start
//! moves it into the ring, marked `legacy`, and tokens without a `kid` verify against it alone,
//! so tokens issued by the previous version keep working until they expire — or until two
//! rotations have pushed the legacy key out of the ring.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::crypto::{CryptoError, SecretKey, KEY_LEN};
use crate::domain::{Error, ErrorCode, ServiceError};
use crate::store::{get_meta, put_meta, Store, WriteTx};

/// The row written before key ids (one kid-less key), and its associated data.
const LEGACY_META_KEY: &str = "jwt_signing_key";
const LEGACY_AAD: &[u8] = b"gatehouse/meta/jwt_signing_key";
/// The key ring: current key first, then at most one previous key.
pub const RING_META_KEY: &str = "jwt_keys";
const RING_VERSION: u8 = 1;
/// Keys kept in the ring: the current one and the one before it.
const RING_SIZE: usize = 2;
/// A header longer than this is not one Gatehouse wrote (ours is about 80 characters).
const MAX_HEADER_B64: usize = 256;

/// The claims of every token Gatehouse signs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    /// `access` or `refresh`.
    pub token_type: String,
    /// The user id as a string (RFC 7519 `sub`).
    pub sub: String,
    pub user_id: u64,
    /// The organization the token speaks for.
    pub company_id: Option<u64>,
    pub is_staff: bool,
    pub jti: String,
    pub exp: i64,
    pub iat: i64,
    /// The user's credentials epoch at issue; a password change invalidates older tokens.
    /// It is a small, guessable counter, and that is fine: it only ends old tokens and
    /// authenticates nothing. Forging a token takes the HMAC key; a forger holding it could
    /// read the epoch from any token of the user or try the few plausible values, so a random
    /// epoch would not help. Key secrecy and rotation (`gatehouse jwt rotate`) stop forgery.
    #[serde(default)]
    pub cev: u64,
    /// The PAT's UUID string (ShellUI's form); tokens issued before schema 4 carry its integer id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pat_id: Option<crate::domain::pats::PatRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pat_ro: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pat_agm: Option<bool>,
}

/// One signing key as stored in the ring.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    /// Base64 of the master-sealed 32-byte key (associated data: [`key_aad`]).
    sealed: String,
    created_at: i64,
    /// The key from before key ids: tokens without a `kid` verify against it.
    #[serde(default)]
    legacy: bool,
}

/// The persisted ring (`meta` row [`RING_META_KEY`], JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredRing {
    version: u8,
    keys: Vec<StoredKey>,
}

fn key_aad(kid: &str) -> Vec<u8> {
    format!("gatehouse/meta/jwt_key/v1/{kid}").into_bytes()
}

/// One opened key.
struct SigningKey {
    kid: String,
    key: ring::hmac::Key,
    legacy: bool,
    /// The encoded header this key signs with: `{"alg":"HS256","typ":"JWT","kid":"…"}`.
    header: String,
}

impl SigningKey {
    fn new(kid: &str, secret: &[u8; KEY_LEN], legacy: bool) -> Self {
        let header = serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": kid}).to_string();
        Self {
            kid: kid.to_string(),
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
            legacy,
            header: B64.encode(header),
        }
    }
}

/// The signing keys: `keys[0]` signs; every key verifies tokens carrying its kid.
pub struct JwtKeys {
    keys: Vec<SigningKey>,
}

/// What `gatehouse jwt rotate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotateReport {
    pub current: String,
    /// Still verifies until its tokens expire.
    pub previous: Option<String>,
    /// No longer verifies anything.
    pub dropped: Vec<String>,
}

/// What the signing keys fail at: always the server's failure (a presented token that does not
/// verify is the client's 401, [`invalid`]).
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("signing key {kid} is not valid base64")]
    KeyNotBase64 { kid: String },
    #[error("signing key {kid} does not open with the master key")]
    KeyDoesNotOpen { kid: String, source: CryptoError },
    #[error("signing key {kid} has the wrong length")]
    KeyLength { kid: String },
    #[error("the kid-less signing key does not open with the master key")]
    LegacyKeyDoesNotOpen(#[source] CryptoError),
    #[error("key ring: {0}")]
    Ring(#[from] serde_json::Error),
    #[error("the key ring was written by a newer version")]
    RingTooNew,
    #[error("the key ring is empty")]
    RingEmpty,
    #[error("no signing key")]
    NoSigningKey,
    #[error("claims: {0}")]
    Claims(#[source] serde_json::Error),
    #[error("key material: {0}")]
    Crypto(#[from] CryptoError),
}

impl ServiceError for JwtError {
    fn error_code(&self) -> ErrorCode {
        match self {
            JwtError::KeyNotBase64 { .. }
            | JwtError::KeyDoesNotOpen { .. }
            | JwtError::KeyLength { .. }
            | JwtError::LegacyKeyDoesNotOpen(_)
            | JwtError::Ring(_)
            | JwtError::RingTooNew
            | JwtError::RingEmpty
            | JwtError::NoSigningKey
            | JwtError::Claims(_)
            | JwtError::Crypto(_) => ErrorCode::Internal,
        }
    }
}

impl From<JwtError> for Error {
    fn from(e: JwtError) -> Self {
        Error::from_service("jwt", e)
    }
}

fn invalid() -> Error {
    Error::unauthenticated("Token is invalid or expired")
}

/// A fresh key and its id (16 hex characters: only names the key, carries no secret).
fn fresh_key(legacy: bool) -> Result<(String, SecretKey, bool), Error> {
    let kid = crate::crypto::random_hex(8).map_err(JwtError::Crypto)?;
    let key = SecretKey::generate().map_err(JwtError::Crypto)?;
    Ok((kid, key, legacy))
}

fn seal_key(
    master: &SecretKey,
    kid: &str,
    key: &[u8],
    created_at: i64,
    legacy: bool,
) -> Result<StoredKey, Error> {
    let sealed = master.seal(&key_aad(kid), key).map_err(JwtError::Crypto)?;
    Ok(StoredKey { kid: kid.to_string(), sealed: STANDARD.encode(sealed), created_at, legacy })
}

fn open_key(master: &SecretKey, stored: &StoredKey) -> Result<[u8; KEY_LEN], Error> {
    let kid = || stored.kid.clone();
    let sealed =
        STANDARD.decode(&stored.sealed).map_err(|_| JwtError::KeyNotBase64 { kid: kid() })?;
    let plain = master
        .open(&key_aad(&stored.kid), &sealed)
        .map_err(|source| JwtError::KeyDoesNotOpen { kid: kid(), source })?;
    Ok(plain.try_into().map_err(|_| JwtError::KeyLength { kid: kid() })?)
}

fn read_ring(tx: &WriteTx) -> Result<Option<StoredRing>, Error> {
    let Some(bytes) = get_meta(tx, RING_META_KEY)? else { return Ok(None) };
    let ring: StoredRing = serde_json::from_slice(&bytes).map_err(JwtError::Ring)?;
    if ring.version > RING_VERSION {
        return Err(JwtError::RingTooNew.into());
    }
    if ring.keys.is_empty() {
        return Err(JwtError::RingEmpty.into());
    }
    Ok(Some(ring))
}

fn write_ring(tx: &WriteTx, ring: &StoredRing) -> Result<(), Error> {
    let bytes = serde_json::to_vec(ring).map_err(JwtError::Ring)?;
    put_meta(tx, RING_META_KEY, &bytes)?;
    Ok(())
}

/// The ring stored in `tx`, created on first use: from the kid-less key of an older file
/// (kept, marked legacy) or from `fresh`.
fn ensure_ring(
    tx: &WriteTx,
    master: &SecretKey,
    fresh: &(String, SecretKey, bool),
) -> Result<StoredRing, Error> {
    if let Some(ring) = read_ring(tx)? {
        return Ok(ring);
    }
    let now = crate::clock::unix_now();
    let (kid, key, _) = fresh;
    let first = match get_meta(tx, LEGACY_META_KEY)?.filter(|b| !b.is_empty()) {
        Some(sealed) => {
            let plain = master.open(LEGACY_AAD, &sealed).map_err(JwtError::LegacyKeyDoesNotOpen)?;
            // The legacy key keeps working under a kid; its old row is blanked so the key
            // lives in one place (master rotation skips blank rows).
            put_meta(tx, LEGACY_META_KEY, b"")?;
            seal_key(master, kid, &plain, now, true)?
        }
        None => seal_key(master, kid, key.expose(), now, false)?,
    };
    let ring = StoredRing { version: RING_VERSION, keys: vec![first] };
    write_ring(tx, &ring)?;
    Ok(ring)
}

impl JwtKeys {
    /// One key that signs with a kid and also verifies kid-less tokens (tests and tools).
    pub fn from_secret(secret: &SecretKey) -> Self {
        let kid = hex::encode(&crate::crypto::sha256(secret.expose())[..8]);
        Self { keys: vec![SigningKey::new(&kid, secret.expose(), true)] }
    }

    fn from_ring(master: &SecretKey, ring: &StoredRing) -> Result<Self, Error> {
        let keys = ring
            .keys
            .iter()
            .map(|k| Ok(SigningKey::new(&k.kid, &open_key(master, k)?, k.legacy)))
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Self { keys })
    }

    /// Reads the key ring from `meta`, creating it on first start (or from an older file's
    /// kid-less key). Blocking.
    pub fn load_or_create(store: &Store, master: &SecretKey) -> Result<Self, Error> {
        let fresh = fresh_key(false)?;
        let m = master.clone();
        let ring = store.write_blocking(move |tx| ensure_ring(tx, &m, &fresh))?;
        Self::from_ring(master, &ring)
    }

    /// Makes a new current key; the current one becomes the previous one (still verifying),
    /// and the one before it is dropped. Blocking; run with the server stopped (the server
    /// reads the ring at start).
    pub fn rotate(store: &Store, master: &SecretKey) -> Result<RotateReport, Error> {
        let first = fresh_key(false)?;
        let (kid, key, _) = fresh_key(false)?;
        let m = master.clone();
        store.write_blocking(move |tx| {
            let mut ring = ensure_ring(tx, &m, &first)?;
            let now = crate::clock::unix_now();
            ring.keys.insert(0, seal_key(&m, &kid, key.expose(), now, false)?);
            let dropped: Vec<String> = ring
                .keys
                .split_off(RING_SIZE.min(ring.keys.len()))
                .into_iter()
                .map(|k| k.kid)
                .collect();
            write_ring(tx, &ring)?;
            Ok(RotateReport {
                current: kid.clone(),
                previous: ring.keys.get(1).map(|k| k.kid.clone()),
                dropped,
            })
        })
    }

    /// The id of the key that signs.
    pub fn current_kid(&self) -> &str {
        self.keys.first().map(|k| k.kid.as_str()).unwrap_or("")
    }

    /// Signs `claims` into a compact JWT with the current key.
    pub fn sign(&self, claims: &Claims) -> Result<String, Error> {
        let key = self.keys.first().ok_or(JwtError::NoSigningKey)?;
        let payload = serde_json::to_vec(claims).map_err(JwtError::Claims)?;
        let mut out = format!("{}.{}", key.header, B64.encode(payload));
        let tag = ring::hmac::sign(&key.key, out.as_bytes());
        out.push('.');
        out.push_str(&B64.encode(tag.as_ref()));
        Ok(out)
    }

    /// The key a token's header names: its `kid`, or the legacy key when it has none.
    fn key_for(&self, header: &serde_json::Value) -> Option<&SigningKey> {
        match header.get("kid") {
            None => self.keys.iter().find(|k| k.legacy),
            Some(serde_json::Value::String(kid)) => self.keys.iter().find(|k| k.kid == *kid),
            Some(_) => None,
        }
    }

    /// Verifies signature, header and expiry; returns the claims.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, Error> {
        if token.len() > 4096 {
            return Err(invalid());
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        if header_b64.len() > MAX_HEADER_B64 {
            return Err(invalid());
        }
        // The header names the key, so it is read before the signature is checked; it is
        // small and bounded, and nothing in it is trusted beyond choosing among our keys.
        let header: serde_json::Value =
            serde_json::from_slice(&B64.decode(header_b64).map_err(|_| invalid())?)
                .map_err(|_| invalid())?;
        if !header.is_object() || header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err(invalid());
        }
        let key = self.key_for(&header).ok_or_else(invalid)?;
        let sig = B64.decode(sig).map_err(|_| invalid())?;
        let signed_len = header_b64.len() + 1 + payload.len();
        let signed = token.as_bytes().get(..signed_len).ok_or_else(invalid)?;
        ring::hmac::verify(&key.key, signed, &sig).map_err(|_| invalid())?;
        let claims: Claims = serde_json::from_slice(&B64.decode(payload).map_err(|_| invalid())?)
            .map_err(|_| invalid())?;
        if claims.exp <= now {
            return Err(invalid());
        }
        Ok(claims)
    }
}

/// Re-seals every key of the ring from `old` to `new` master key (master key rotation);
/// false when the file has no ring yet.
pub fn reseal_ring(tx: &WriteTx, old: &SecretKey, new: &SecretKey) -> Result<bool, Error> {
    let Some(mut ring) = read_ring(tx)? else { return Ok(false) };
    for stored in &mut ring.keys {
        let plain = open_key(old, stored)?;
        *stored = seal_key(new, &stored.kid, &plain, stored.created_at, stored.legacy)?;
    }
    write_ring(tx, &ring)?;
    Ok(true)
}

/// True when `s` has the shape of a compact JWT (three base64url parts).
pub fn looks_like_jwt(s: &str) -> bool {
    s.split('.').count() == 3
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            token_type: "access".into(),
            sub: "7".into(),
            user_id: 7,
            company_id: Some(3),
            is_staff: false,
            jti: "abc".into(),
            exp,
            iat: 0,
            cev: 0,
            pat_id: None,
            pat_ro: None,
            pat_agm: None,
        }
    }

    fn header_of(token: &str) -> serde_json::Value {
        serde_json::from_slice(&B64.decode(token.split('.').next().unwrap()).unwrap()).unwrap()
    }

    /// A token signed the way the previous version did: fixed header, no kid.
    fn kidless(secret: &[u8; 32], c: &Claims) -> String {
        let head = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
        let body = format!("{head}.{}", B64.encode(serde_json::to_vec(c).unwrap()));
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
        format!("{body}.{}", B64.encode(ring::hmac::sign(&key, body.as_bytes()).as_ref()))
    }

    #[test]
    fn sign_verify_and_tamper() {
        let keys = JwtKeys::from_secret(&SecretKey::from_bytes([9; 32]));
        let other = JwtKeys::from_secret(&SecretKey::from_bytes([8; 32]));
        let t = keys.sign(&claims(100)).unwrap();
        assert!(looks_like_jwt(&t));
        assert_eq!(header_of(&t)["kid"], keys.current_kid());
        assert_eq!(keys.verify(&t, 50).unwrap(), claims(100));
        assert!(keys.verify(&t, 100).is_err(), "expired");
        assert!(other.verify(&t, 50).is_err(), "wrong key");
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = B64.encode(serde_json::to_vec(&Claims { user_id: 1, ..claims(100) }).unwrap());
        parts[1] = &forged;
        assert!(keys.verify(&parts.join("."), 50).is_err(), "payload swap");
        let none_alg =
            format!("{}.{}.", B64.encode(br#"{"alg":"none"}"#), t.split('.').nth(1).unwrap());
        assert!(keys.verify(&none_alg, 50).is_err(), "alg none");
        assert!(keys.verify("a.b", 50).is_err());
        assert!(keys.verify("a.b.c.d", 50).is_err());
    }

    #[test]
    fn kid_selects_the_key_and_kidless_tokens_need_the_legacy_key() {
        let legacy = SigningKey::new("old", &[1; 32], true);
        let current = SigningKey::new("new", &[2; 32], false);
        let ring = JwtKeys { keys: vec![current, legacy] };
        // Signed by the previous version: no kid, the legacy key.
        let old = kidless(&[1; 32], &claims(100));
        assert_eq!(ring.verify(&old, 50).unwrap(), claims(100));
        // A kid-less token signed with the current key is refused: kid-less means legacy.
        assert!(ring.verify(&kidless(&[2; 32], &claims(100)), 50).is_err());
        let t = ring.sign(&claims(100)).unwrap();
        assert_eq!(header_of(&t)["kid"], "new");
        assert!(ring.verify(&t, 50).is_ok());
        // The kid names the key: relabelling a token to another kid breaks the signature.
        let (_, rest) = t.split_once('.').unwrap();
        let head = B64.encode(br#"{"alg":"HS256","typ":"JWT","kid":"old"}"#);
        assert!(ring.verify(&format!("{head}.{rest}"), 50).is_err());
        let head = B64.encode(br#"{"alg":"HS256","typ":"JWT","kid":"unknown"}"#);
        assert!(ring.verify(&format!("{head}.{rest}"), 50).is_err());
        let head = B64.encode(br#"{"alg":"HS256","kid":7}"#);
        assert!(ring.verify(&format!("{head}.{rest}"), 50).is_err());
        // Without a legacy key in the ring, kid-less tokens are refused.
        let ring = JwtKeys { keys: vec![SigningKey::new("new", &[2; 32], false)] };
        assert!(ring.verify(&old, 50).is_err());
        let huge = format!("{}.{rest}", B64.encode(vec![b' '; 300]));
        assert!(ring.verify(&huge, 50).is_err());
    }
}
