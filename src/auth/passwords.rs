//! Password hashing: argon2id (the crate's defaults, OWASP's m=19 MiB, t=2, p=1), always off
//! the async runtime.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::Argon2;

use crate::crypto::{fill_random, CryptoError, Secret};
use crate::domain::{Error, ErrorCode, ServiceError};

/// Why a password could not be hashed: always the server's failure.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("salt: {0}")]
    Salt(#[from] CryptoError),
    /// Kept by value: the crate's error type implements `std::error::Error` only with its
    /// `std` feature.
    #[error("argon2: {0}")]
    Hash(argon2::password_hash::Error),
}

impl ServiceError for PasswordError {
    fn error_code(&self) -> ErrorCode {
        match self {
            PasswordError::Salt(_) | PasswordError::Hash(_) => ErrorCode::Internal,
        }
    }
}

impl From<PasswordError> for Error {
    fn from(e: PasswordError) -> Self {
        Error::from_service("password hashing", e)
    }
}

/// Verified for unknown accounts when the decoy cannot be hashed at start (no system
/// randomness): argon2id with the crate's default parameters, of a password nobody knows, so
/// the timing still matches a real account's.
const FALLBACK_DECOY: &str = concat!(
    "$argon2id$v=19$m=19456,t=2,p=1",
    "$qDokmMXGj50AqY+wQ6qYKg",
    "$xSsJv/Sr7B12cWMrC01dX3hNlqePmnii7Utzf7lT4rI"
);

/// Hashes a password into a PHC string. Blocking (tens of milliseconds).
pub fn hash_blocking(password: &str) -> Result<String, Error> {
    let mut salt = [0u8; 16];
    fill_random(&mut salt).map_err(PasswordError::Salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(PasswordError::Hash)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e).into())
}

/// Checks a password against a PHC string. Blocking. A malformed hash never matches.
pub fn verify_blocking(hash: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else { return false };
    Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
}

/// A hash that matches no password, verified for unknown accounts so that a wrong email and a
/// wrong password take the same time.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        hash_blocking("decoy password that never matches").unwrap_or_else(|e| {
            // An empty decoy would fail to parse at once and make unknown accounts fast.
            tracing::error!(error = %e, "cannot hash the decoy password; using the fixed one");
            FALLBACK_DECOY.to_string()
        })
    })
}

/// [`hash_blocking`] on the blocking pool.
pub async fn hash(password: Secret<String>) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || hash_blocking(password.expose())).await?
}

/// [`verify_blocking`] on the blocking pool; `None` verifies against a decoy.
pub async fn verify(hash: Option<String>, password: Secret<String>) -> bool {
    tokio::task::spawn_blocking(move || match hash {
        Some(h) => verify_blocking(&h, password.expose()),
        None => {
            let _ = verify_blocking(decoy_hash(), password.expose());
            false
        }
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_blocking("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(!h.contains("correct horse"));
        assert!(verify_blocking(&h, "correct horse battery"));
        assert!(!verify_blocking(&h, "correct horse batterx"));
        assert!(!verify_blocking("not a phc string", "x"));
    }

    /// The fallback decoy must cost what a real hash costs: a parseable PHC string with the
    /// parameters hashes are made with today.
    #[test]
    fn the_fallback_decoy_has_the_parameters_of_a_real_hash() {
        let real = hash_blocking("x").unwrap();
        let params = |phc: &str| PasswordHash::new(phc).unwrap().params.to_string();
        assert_eq!(params(FALLBACK_DECOY), params(&real));
        assert!(FALLBACK_DECOY.starts_with("$argon2id$v=19$"));
        assert!(!verify_blocking(FALLBACK_DECOY, ""));
        assert!(!decoy_hash().is_empty());
    }
}
