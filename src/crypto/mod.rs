//! Cryptographic primitives: AES-256-GCM sealing with associated data, SHA-256 digests,
//! HMAC, constant-time comparison and random tokens — all from `ring`, the one crypto library.

mod master_key;

pub use master_key::{load_master_key, load_or_create_master_key, MasterKeyError};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

/// Length of a symmetric key (master key, organization data keys, JWT signing key).
pub const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("ciphertext failed authentication")]
    Open,
    #[error("ciphertext is malformed")]
    Malformed,
    #[error("random number generator failed")]
    Random,
    #[error("sealing failed")]
    Seal,
}

/// A 256-bit key whose bytes never appear in `Debug` output. The AES-GCM key schedule is
/// prepared once: list responses open a hundred values per request under one key.
#[derive(Clone)]
pub struct SecretKey {
    bytes: [u8; KEY_LEN],
    aead: Option<LessSafeKey>,
}

impl SecretKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let aead = UnboundKey::new(&AES_256_GCM, &bytes).ok().map(LessSafeKey::new);
        Self { bytes, aead }
    }

    pub fn generate() -> Result<Self, CryptoError> {
        let mut bytes = [0u8; KEY_LEN];
        fill_random(&mut bytes)?;
        Ok(Self::from_bytes(bytes))
    }

    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// Seals `plaintext` so that it opens only with this key and the same `aad`.
    /// Output: 12-byte random nonce followed by ciphertext and tag.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let key = self.aead_key()?;
        let mut nonce_bytes = [0u8; NONCE_LEN];
        fill_random(&mut nonce_bytes)?;
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + AES_256_GCM.tag_len());
        out.extend_from_slice(&nonce_bytes);
        let mut body = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce_bytes),
            Aad::from(aad),
            &mut body,
        )
        .map_err(|_| CryptoError::Seal)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens what [`SecretKey::seal`] produced; fails if the key, the `aad` or any byte differs.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut buf = Vec::new();
        let plain_len = self.open_into(aad, sealed, &mut buf)?.len();
        buf.truncate(plain_len);
        Ok(buf)
    }

    /// [`SecretKey::open`] into `buf` (its contents replaced), returning the plaintext inside
    /// it: a caller opening many values reuses one buffer instead of allocating per value.
    pub fn open_into<'b>(
        &self,
        aad: &[u8],
        sealed: &[u8],
        buf: &'b mut Vec<u8>,
    ) -> Result<&'b [u8], CryptoError> {
        if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(CryptoError::Malformed);
        }
        let (nonce_bytes, body) = sealed.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce_bytes).map_err(|_| CryptoError::Malformed)?;
        let key = self.aead_key()?;
        buf.clear();
        buf.extend_from_slice(body);
        let plain = key.open_in_place(nonce, Aad::from(aad), buf).map_err(|_| CryptoError::Open)?;
        Ok(plain)
    }

    fn aead_key(&self) -> Result<&LessSafeKey, CryptoError> {
        self.aead.as_ref().ok_or(CryptoError::Seal)
    }

    /// HMAC-SHA256 of `data` under this key.
    pub fn hmac_sha256(&self, data: &[u8]) -> [u8; 32] {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.bytes);
        let tag = ring::hmac::sign(&key, data);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Verifies an HMAC-SHA256 tag in constant time.
    pub fn hmac_verify(&self, data: &[u8], tag: &[u8]) -> bool {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.bytes);
        ring::hmac::verify(&key, data, tag).is_ok()
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<secret>)")
    }
}

/// A secret string (token, password, key) that prints as `<secret>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }
    pub fn expose(&self) -> &T {
        &self.0
    }
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

impl<T> std::fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

fn rng() -> &'static SystemRandom {
    static RNG: std::sync::OnceLock<SystemRandom> = std::sync::OnceLock::new();
    RNG.get_or_init(SystemRandom::new)
}

pub fn fill_random(buf: &mut [u8]) -> Result<(), CryptoError> {
    rng().fill(buf).map_err(|_| CryptoError::Random)
}

/// `n` random bytes as lowercase hex (2n characters).
pub fn random_hex(n: usize) -> Result<String, CryptoError> {
    let mut buf = vec![0u8; n];
    fill_random(&mut buf)?;
    Ok(hex::encode(buf))
}

/// `n` random bytes as URL-safe base64 without padding.
pub fn random_token(n: usize) -> Result<String, CryptoError> {
    use base64::Engine as _;
    let mut buf = vec![0u8; n];
    fill_random(&mut buf)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha256(data))
}

/// HMAC-SHA1 of `data` under `key`: only for TOTP (RFC 6238), whose authenticator apps
/// default to SHA-1; nothing else in the server may use it.
pub fn hmac_sha1_for_totp(key: &[u8], data: &[u8]) -> [u8; 20] {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let tag = ring::hmac::sign(&key, data);
    let mut out = [0u8; 20];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Constant-time equality, for digests and tags.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip() {
        let key = SecretKey::generate().unwrap();
        let sealed = key.seal(b"org:1/env:2/var:3/v:1", b"hunter2").unwrap();
        assert_eq!(key.open(b"org:1/env:2/var:3/v:1", &sealed).unwrap(), b"hunter2");
    }

    #[test]
    fn moved_ciphertext_fails_to_open() {
        let key = SecretKey::generate().unwrap();
        let sealed = key.seal(b"org:1/env:2/var:3/v:1", b"hunter2").unwrap();
        assert_eq!(key.open(b"org:1/env:2/var:4/v:1", &sealed), Err(CryptoError::Open));
    }

    #[test]
    fn tampered_byte_fails() {
        let key = SecretKey::generate().unwrap();
        let sealed = key.seal(b"aad", b"value").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(key.open(b"aad", &bad).is_err(), "byte {i} flip not detected");
        }
        assert_eq!(key.open(b"aad", &sealed[..5]), Err(CryptoError::Malformed));
    }

    #[test]
    fn wrong_key_fails() {
        let a = SecretKey::generate().unwrap();
        let b = SecretKey::generate().unwrap();
        let sealed = a.seal(b"", b"x").unwrap();
        assert!(b.open(b"", &sealed).is_err());
    }

    #[test]
    fn nonces_never_repeat() {
        let key = SecretKey::generate().unwrap();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let sealed = key.seal(b"", b"same").unwrap();
            assert!(seen.insert(sealed[..NONCE_LEN].to_vec()));
        }
    }

    #[test]
    fn ct_eq_works() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }

    #[test]
    fn secret_debug_hides_value() {
        assert_eq!(format!("{:?}", Secret::new("pw")), "<secret>");
        assert_eq!(format!("{}", Secret::new("pw")), "<secret>");
        assert!(!format!("{:?}", SecretKey::from_bytes([7; 32])).contains('7'));
    }
}
