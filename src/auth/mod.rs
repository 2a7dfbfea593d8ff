//! Authentication: turns the `Authorization` header or the session cookie into one
//! [`Principal`]. Secrets are looked up by SHA-256 digest through an in-memory cache whose
//! entries die with every identity mutation (a generation counter), so a revoked token, a
//! removed membership or a changed password takes effect on the next request.

pub mod bootstrap;
pub mod passwords;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::crypto::{sha256, sha256_hex, Secret, SecretKey};
use crate::domain::accounts;
use crate::domain::credentials::TokenKind;
use crate::domain::records::User;
use crate::domain::{unix_now, CredentialKind, Error, Principal};
use crate::store::tables::{TOKENS, TOKENS_BY_DIGEST, USERS};
use crate::store::{Reader, Store};

/// Name of the session cookie set at login.
pub const SESSION_COOKIE: &str = "gatehouse_session";

/// Cache entries kept before the cache is emptied and refilled (bounds memory).
const CACHE_CAPACITY: usize = 100_000;

/// A credential as presented, before it is checked.
pub enum Presented {
    /// `Token <40 hex>`.
    Token(Secret<String>),
    /// The session cookie's value.
    Session(Secret<String>),
    /// HTTP Basic: email or username, and password.
    Basic { ident: String, password: Secret<String> },
    /// `Bearer <…>`: a JWT, a personal access token or an API key.
    Bearer(Secret<String>),
    /// `Api-Key <key>`.
    ApiKey(Secret<String>),
}

/// Parses an `Authorization` header value. Keywords are case-insensitive (as DRF's).
pub fn parse_authorization(value: &str) -> Result<Presented, Error> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if rest.is_empty() {
        return Err(Error::unauthenticated("Invalid token header. No credentials provided."));
    }
    if rest.contains(' ') {
        return Err(Error::unauthenticated(
            "Invalid token header. Token string should not contain spaces.",
        ));
    }
    let secret = || Secret::new(rest.to_string());
    match scheme.to_ascii_lowercase().as_str() {
        "token" => Ok(Presented::Token(secret())),
        "bearer" => Ok(Presented::Bearer(secret())),
        "api-key" => Ok(Presented::ApiKey(secret())),
        "basic" => parse_basic(rest),
        _ => Err(Error::unauthenticated("Unsupported authorization scheme.")),
    }
}

fn parse_basic(encoded: &str) -> Result<Presented, Error> {
    use base64::Engine as _;
    let bad = || {
        Error::unauthenticated("Invalid basic header. Credentials not correctly base64 encoded.")
    };
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (ident, password) = text.split_once(':').ok_or_else(bad)?;
    if ident.is_empty() || password.is_empty() || ident.len() > 254 || password.len() > 1024 {
        return Err(Error::unauthenticated("Invalid username/password."));
    }
    Ok(Presented::Basic { ident: ident.to_string(), password: Secret::new(password.to_string()) })
}

/// A 40-hex login token (160 random bits).
pub fn new_login_token() -> Result<Secret<String>, Error> {
    crate::crypto::random_hex(20).map(Secret::new).map_err(|e| Error::internal(e.to_string()))
}

/// A 64-hex session secret (256 random bits).
pub fn new_session_secret() -> Result<Secret<String>, Error> {
    crate::crypto::random_hex(32).map(Secret::new).map_err(|e| Error::internal(e.to_string()))
}

/// The stored digest of a token or session secret.
pub fn digest_of(secret: &str) -> String {
    sha256_hex(secret.as_bytes())
}

struct Cached {
    generation: u64,
    principal: Principal,
    expires_at: Option<i64>,
}

/// The resolver with its cache; one per server, in `AppState`.
pub struct AuthService {
    generation: AtomicU64,
    cache: RwLock<HashMap<[u8; 32], Cached>>,
    /// Keys the Basic cache so that it holds no fast hash of a password.
    basic_key: SecretKey,
}

impl AuthService {
    pub fn new() -> Result<Arc<Self>, Error> {
        Ok(Arc::new(Self {
            generation: AtomicU64::new(1),
            cache: RwLock::new(HashMap::new()),
            basic_key: SecretKey::generate().map_err(|e| Error::internal(e.to_string()))?,
        }))
    }

    /// Forgets every cached resolution. Call after any commit that changes users,
    /// memberships, organizations or credentials.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cache.write().clear();
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Principal> {
        let now = unix_now();
        let generation = self.generation.load(Ordering::SeqCst);
        let cache = self.cache.read();
        let hit = cache.get(key)?;
        if hit.generation != generation || hit.expires_at.is_some_and(|e| e <= now) {
            return None;
        }
        Some(hit.principal.clone())
    }

    fn remember(
        &self,
        key: [u8; 32],
        generation: u64,
        principal: &Principal,
        expires_at: Option<i64>,
    ) {
        if generation != self.generation.load(Ordering::SeqCst) {
            return; // something changed while we read; don't cache a possibly stale answer
        }
        let mut cache = self.cache.write();
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(key, Cached { generation, principal: principal.clone(), expires_at });
    }

    /// Resolves a presented credential to a principal, or 401.
    pub async fn authenticate(
        &self,
        store: &Store,
        presented: Presented,
    ) -> Result<Principal, Error> {
        match presented {
            Presented::Token(secret) => {
                self.resolve_token(store, secret.expose(), TokenKind::Token)
            }
            Presented::Session(secret) => {
                self.resolve_token(store, secret.expose(), TokenKind::Session)
            }
            Presented::Basic { ident, password } => {
                self.resolve_basic(store, &ident, password).await
            }
            Presented::Bearer(_) | Presented::ApiKey(_) => {
                Err(Error::unauthenticated("Invalid token."))
            }
        }
    }

    fn resolve_token(
        &self,
        store: &Store,
        secret: &str,
        kind: TokenKind,
    ) -> Result<Principal, Error> {
        let invalid = || match kind {
            TokenKind::Token => Error::unauthenticated("Invalid token."),
            TokenKind::Session => Error::unauthenticated("Invalid or expired session."),
        };
        let well_formed = match kind {
            TokenKind::Token => secret.len() == 40,
            TokenKind::Session => secret.len() == 64,
        } && secret.bytes().all(|b| b.is_ascii_hexdigit());
        if !well_formed {
            return Err(invalid());
        }
        let lower = secret.to_ascii_lowercase();
        let key = sha256(lower.as_bytes());
        if let Some(p) = self.cached(&key) {
            return Ok(p);
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let digest = hex::encode(key);
        let now = unix_now();
        let found = store.read(|tx| -> Result<Option<(Principal, Option<i64>)>, Error> {
            let Some(id) = tx.lookup(TOKENS_BY_DIGEST, &digest)? else { return Ok(None) };
            let Some(row) = tx.get(TOKENS, id)? else { return Ok(None) };
            if row.kind != kind || row.expires_at.is_some_and(|e| e <= now) {
                return Ok(None);
            }
            let Some(user) = tx.get(USERS, row.user_id)? else { return Ok(None) };
            if !user.is_active || user.credentials_epoch != row.epoch {
                return Ok(None);
            }
            let credential = match kind {
                TokenKind::Token => CredentialKind::Token { id },
                TokenKind::Session => CredentialKind::Session { id },
            };
            Ok(Some((principal_for(tx, &user, credential)?, row.expires_at)))
        })?;
        let (principal, expires_at) = found.ok_or_else(invalid)?;
        self.remember(key, generation, &principal, expires_at);
        Ok(principal)
    }

    async fn resolve_basic(
        &self,
        store: &Store,
        ident: &str,
        password: Secret<String>,
    ) -> Result<Principal, Error> {
        let ident = ident.trim().to_lowercase();
        let mut material = ident.clone().into_bytes();
        material.push(0);
        material.extend_from_slice(password.expose().as_bytes());
        let key = self.basic_key.hmac_sha256(&material);
        if let Some(p) = self.cached(&key) {
            return Ok(p);
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let user = store.read(|tx| accounts::find_by_login(tx, &ident))?;
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let ok = passwords::verify(hash, password).await;
        let invalid = || Error::unauthenticated("Invalid username/password.");
        let user = user.filter(|u| ok && u.is_active).ok_or_else(invalid)?;
        let principal = store.read(|tx| -> Result<Principal, Error> {
            // Re-read: the account may have changed while the hash was being checked.
            let fresh = tx.get(USERS, user.id)?.ok_or_else(invalid)?;
            if fresh.credentials_epoch != user.credentials_epoch || !fresh.is_active {
                return Err(invalid());
            }
            principal_for(tx, &fresh, CredentialKind::Basic)
        })?;
        self.remember(key, generation, &principal, None);
        Ok(principal)
    }

    /// Verifies an email-or-username and password (the login form), without caching.
    /// Returns the user on success.
    pub async fn check_password(
        &self,
        store: &Store,
        ident: &str,
        password: Secret<String>,
    ) -> Result<Result<User, Option<u64>>, Error> {
        let user = store.read(|tx| accounts::find_by_login(tx, ident))?;
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let ok = passwords::verify(hash, password).await;
        Ok(match user {
            Some(u) if ok && u.is_active => Ok(u),
            Some(u) => Err(Some(u.id)),
            None => Err(None),
        })
    }
}

/// Builds the principal of `user` with their live memberships.
pub fn principal_for(
    tx: &impl Reader,
    user: &User,
    credential: CredentialKind,
) -> Result<Principal, Error> {
    Ok(Principal {
        user_id: user.id,
        username: user.username.clone(),
        email: user.email.clone(),
        full_name: user.full_name(),
        is_staff: user.is_staff,
        memberships: accounts::memberships_of(tx, user.id)?,
        credential,
        read_only: false,
        org_scope: None,
        company_id: None,
        global_metrics: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_schemes() {
        assert!(matches!(parse_authorization("Token abc"), Ok(Presented::Token(_))));
        assert!(matches!(parse_authorization("token abc"), Ok(Presented::Token(_))));
        assert!(matches!(parse_authorization("Bearer x.y.z"), Ok(Presented::Bearer(_))));
        assert!(matches!(parse_authorization("Api-Key k"), Ok(Presented::ApiKey(_))));
        assert!(parse_authorization("Token").is_err());
        assert!(parse_authorization("Token a b").is_err());
        assert!(parse_authorization("Digest abc").is_err());
        assert!(parse_authorization("Basic !!!").is_err());
        // "a@b.c:pw" in base64
        match parse_authorization("Basic YUBiLmM6cHc=") {
            Ok(Presented::Basic { ident, password }) => {
                assert_eq!(ident, "a@b.c");
                assert_eq!(password.expose(), "pw");
            }
            _ => panic!("basic not parsed"),
        }
    }
}
