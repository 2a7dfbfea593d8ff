//! Credential records owned by the identity area: login tokens and browser sessions. Only
//! SHA-256 digests of the secrets are stored; the secrets themselves are shown once.

use serde::{Deserialize, Serialize};

use crate::store::Record;

/// What a [`LoginToken`] row stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// `Authorization: Token <40 hex>` (KeyNest's login token; no expiry).
    Token,
    /// The `gatehouse_session` cookie set at login (expires after `auth.session_hours`).
    Session,
}

/// A login token or session, found by the SHA-256 digest of its secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoginToken {
    pub id: u64,
    pub user_id: u64,
    pub kind: TokenKind,
    /// Lower-case hex SHA-256 of the secret; the key of `TOKENS_BY_DIGEST`.
    pub digest: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; `None` never expires.
    pub expires_at: Option<i64>,
    /// The user's `credentials_epoch` when issued; a password change bumps the epoch.
    pub epoch: u64,
}

impl Record for LoginToken {
    const VERSION: u8 = 1;
    const NAME: &'static str = "tokens";
}
