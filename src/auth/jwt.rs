//! HS256 JSON Web Tokens, written by hand on ring's HMAC: access and refresh tokens
//! (SimpleJWT's shapes) and personal access tokens. The signing key is generated on first
//! start and kept in `meta` as `jwt_signing_key`, sealed with the master key.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::crypto::{SecretKey, KEY_LEN};
use crate::domain::Error;
use crate::store::{get_meta, put_meta, Store};

const META_KEY: &str = "jwt_signing_key";
const AAD: &[u8] = b"gatehouse/meta/jwt_signing_key";
/// `{"alg":"HS256","typ":"JWT"}`, the only header Gatehouse issues or accepts.
const HEADER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

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
    #[serde(default)]
    pub cev: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pat_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pat_ro: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pat_agm: Option<bool>,
}

/// The signing key.
pub struct JwtKeys {
    key: ring::hmac::Key,
}

fn invalid() -> Error {
    Error::unauthenticated("Token is invalid or expired")
}

impl JwtKeys {
    pub fn from_secret(secret: &SecretKey) -> Self {
        Self { key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.expose()) }
    }

    /// Reads the sealed key from `meta`, creating it on first start. Blocking.
    pub fn load_or_create(store: &Store, master: &SecretKey) -> Result<Self, Error> {
        let fresh = SecretKey::generate().map_err(|e| Error::internal(e.to_string()))?;
        let sealed_fresh =
            master.seal(AAD, fresh.expose()).map_err(|e| Error::internal(e.to_string()))?;
        let sealed = store.write_blocking(move |tx| -> Result<Vec<u8>, Error> {
            if let Some(existing) = get_meta(tx, META_KEY)? {
                return Ok(existing);
            }
            put_meta(tx, META_KEY, &sealed_fresh)?;
            Ok(sealed_fresh.clone())
        })?;
        let bytes = master
            .open(AAD, &sealed)
            .map_err(|e| Error::internal(format!("jwt signing key: {e}")))?;
        let bytes: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| Error::internal("jwt signing key has the wrong length"))?;
        Ok(Self::from_secret(&SecretKey::from_bytes(bytes)))
    }

    /// Signs `claims` into a compact JWT.
    pub fn sign(&self, claims: &Claims) -> Result<String, Error> {
        let payload = serde_json::to_vec(claims).map_err(|e| Error::internal(e.to_string()))?;
        let mut out = format!("{HEADER}.{}", B64.encode(payload));
        let tag = ring::hmac::sign(&self.key, out.as_bytes());
        out.push('.');
        out.push_str(&B64.encode(tag.as_ref()));
        Ok(out)
    }

    /// Verifies signature, header and expiry; returns the claims.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, Error> {
        if token.len() > 4096 {
            return Err(invalid());
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        let sig = B64.decode(sig).map_err(|_| invalid())?;
        let signed_len = header.len() + 1 + payload.len();
        ring::hmac::verify(&self.key, &token.as_bytes()[..signed_len], &sig)
            .map_err(|_| invalid())?;
        // Only after the signature: the header must be exactly ours (no `alg` games).
        let header: serde_json::Value =
            serde_json::from_slice(&B64.decode(header).map_err(|_| invalid())?)
                .map_err(|_| invalid())?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err(invalid());
        }
        let claims: Claims = serde_json::from_slice(&B64.decode(payload).map_err(|_| invalid())?)
            .map_err(|_| invalid())?;
        if claims.exp <= now {
            return Err(invalid());
        }
        Ok(claims)
    }
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

    #[test]
    fn sign_verify_and_tamper() {
        let keys = JwtKeys::from_secret(&SecretKey::from_bytes([9; 32]));
        let other = JwtKeys::from_secret(&SecretKey::from_bytes([8; 32]));
        let t = keys.sign(&claims(100)).unwrap();
        assert!(looks_like_jwt(&t));
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
}
