//! Logins waiting for their second factor: the `temp_otp_token` (a UUID4) a password login of
//! a 2FA account answers with, valid 300 s and once. In memory, by SHA-256 digest: a pending
//! login is short-lived and cheap to start again, so a restart voiding them costs a user one
//! more password entry, while keeping them out of the data file spares a durable write per
//! login attempt. Bounded: expired entries are swept when the map is full.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::crypto::{sha256_hex, Secret};
use crate::domain::Error;

/// Seconds a temporary token lives (Pegasus caches it for 300 s).
pub const TEMP_TOKEN_SECS: i64 = 300;

/// Pending logins kept at most.
const MAX_PENDING: usize = 100_000;

/// A password login waiting for its second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLogin {
    pub user_id: u64,
    /// The organization the JWTs will speak for (already checked at the password step).
    pub company: Option<u64>,
    pub expires_at: i64,
}

#[derive(Default)]
pub struct PendingLogins {
    map: Mutex<HashMap<String, PendingLogin>>,
}

/// Pegasus's answer to an unknown, expired or used temporary token (401, in `details`).
pub fn token_expired() -> Error {
    Error::unauthenticated("Invalid temporary token").with_details(
        serde_json::json!({"status": "token_expired", "detail": "Invalid temporary token"}),
    )
}

fn digest(token: &str) -> String {
    sha256_hex(token.trim().to_ascii_lowercase().as_bytes())
}

impl PendingLogins {
    /// A new temporary token for `user_id`.
    pub fn issue(
        &self,
        user_id: u64,
        company: Option<u64>,
        now: i64,
    ) -> Result<Secret<String>, Error> {
        let mut raw = [0u8; 16];
        crate::crypto::fill_random(&mut raw)?;
        let token = uuid::Builder::from_random_bytes(raw).into_uuid().to_string();
        let mut map = self.map.lock();
        if map.len() >= MAX_PENDING {
            map.retain(|_, p| p.expires_at > now);
            if map.len() >= MAX_PENDING {
                return Err(Error::rate_limited(u64::try_from(TEMP_TOKEN_SECS).unwrap_or(300)));
            }
        }
        let pending = PendingLogin { user_id, company, expires_at: now + TEMP_TOKEN_SECS };
        map.insert(digest(&token), pending);
        Ok(Secret::new(token))
    }

    /// Takes the pending login of `token` out (single use); `None` when unknown or expired.
    pub fn take(&self, token: &str, now: i64) -> Option<PendingLogin> {
        self.map.lock().remove(&digest(token)).filter(|p| p.expires_at > now)
    }

    /// Puts a pending login back after a wrong code, so the user may type the code again
    /// (each try counts toward the lockout), until it expires.
    pub fn restore(&self, token: &str, pending: PendingLogin) {
        self.map.lock().insert(digest(token), pending);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_use_and_expiring() {
        let p = PendingLogins::default();
        let t = p.issue(7, Some(3), 1000).unwrap();
        assert!(uuid::Uuid::parse_str(t.expose()).is_ok_and(|u| u.get_version_num() == 4));
        let got = p.take(t.expose(), 1001).unwrap();
        assert_eq!((got.user_id, got.company, got.expires_at), (7, Some(3), 1300));
        assert!(p.take(t.expose(), 1001).is_none());
        p.restore(t.expose(), got);
        assert!(p.take(&t.expose().to_uppercase(), 1299).is_some());
        let late = p.issue(7, None, 1000).unwrap();
        assert!(p.take(late.expose(), 1300).is_none());
        assert!(p.take("not-a-token", 1000).is_none());
    }
}
