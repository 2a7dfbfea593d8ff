//! Password hashing: argon2id (the crate's defaults, OWASP's m=19 MiB, t=2, p=1), always off
//! the async runtime.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::Argon2;

use crate::crypto::{fill_random, Secret};
use crate::domain::Error;

/// Hashes a password into a PHC string. Blocking (tens of milliseconds).
pub fn hash_blocking(password: &str) -> Result<String, Error> {
    let mut salt = [0u8; 16];
    fill_random(&mut salt).map_err(|e| Error::internal(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::internal(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::internal(format!("password hashing failed: {e}")))
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
    DECOY.get_or_init(|| hash_blocking("decoy password that never matches").unwrap_or_default())
}

/// [`hash_blocking`] on the blocking pool.
pub async fn hash(password: Secret<String>) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || hash_blocking(password.expose()))
        .await
        .map_err(|e| Error::internal(format!("hashing task failed: {e}")))?
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
}
