//! Authentication: turns the `Authorization` header or the session cookie into one
//! [`Principal`]. Secrets are looked up by SHA-256 digest through an in-memory cache whose
//! entries die with every identity mutation (a generation counter), so a revoked token, a
//! removed membership or a changed password takes effect on the next request.

pub mod bootstrap;
pub mod failures;
pub mod issue;
pub mod jwt;
pub mod lockout;
pub mod passwords;
pub mod pending;
pub mod ratelimit;
mod resolve;
pub use resolve::basic_2fa_error;
pub mod sweep;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::clock::unix_now;
use crate::config::{AuthConfig, Config};
use crate::crypto::{sha256_hex, Secret, SecretKey};
use crate::domain::accounts;
use crate::domain::credentials::TokenKind;
use crate::domain::records::User;
use crate::domain::{CredentialKind, Error, Principal};
use crate::store::{Reader, Store};

use failures::{FailedAction, Failure, FailureLog, FailureRecord, Shown};
use lockout::LockKey;

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
    Ok(crate::crypto::random_hex(20).map(Secret::new)?)
}

/// A 64-hex session secret (256 random bits).
pub fn new_session_secret() -> Result<Secret<String>, Error> {
    Ok(crate::crypto::random_hex(32).map(Secret::new)?)
}

/// The stored digest of a token or session secret.
pub fn digest_of(secret: &str) -> String {
    sha256_hex(secret.as_bytes())
}

/// What a resolved credential still needs checked or counted on every use.
#[derive(Debug, Clone, Default)]
pub(crate) struct Limits {
    /// API key allow-list; empty means any address.
    pub allow: Vec<ipnet::IpNet>,
    /// Usage to count: an API key version, or a PAT.
    pub usage: Option<UsageOf>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum UsageOf {
    ApiKey { id: u64, version: u32 },
    Pat { id: u64 },
}

/// The kind of credential a cache entry was resolved from: part of the cache key, so a
/// secret presented under another scheme never resolves from another kind's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum CacheKind {
    Token,
    Session,
    Basic,
    Jwt,
    ApiKey,
}

type CacheKey = (CacheKind, [u8; 32]);

/// Called right before a password hash is verified (the expensive step): the authentication
/// layer spends the address's auth budget there and refuses when it is spent.
pub type BeforeHash<'a> = &'a (dyn Fn() -> Result<(), Error> + Sync);

/// A [`BeforeHash`] that lets every check through (the login form, whose route is already
/// counted per address).
pub fn no_gate() -> Result<(), Error> {
    Ok(())
}

struct Cached {
    generation: u64,
    principal: Principal,
    expires_at: Option<i64>,
    limits: Limits,
}

#[derive(Default)]
struct Usage {
    api_keys: BTreeMap<(u64, u32), (u64, i64)>,
    pats: BTreeMap<u64, i64>,
}

/// The outcome of a password check.
pub enum PasswordCheck {
    Ok(User),
    /// Wrong password, unknown or inactive account (the failure is counted and audited).
    Wrong,
    /// Too many failures for this identity, known or not: locked for this many seconds.
    Locked(u64),
}

/// The 429 of a locked identity: the same answer whether the account exists or not.
pub fn locked_error(secs: u64) -> Error {
    Error::rate_limited(secs).with_details(serde_json::Value::String(format!(
        "Too many failed login attempts. Try again in {secs} seconds."
    )))
}

/// The resolver with its cache, limits and usage counters; one per server, in `AppState`.
pub struct AuthService {
    generation: AtomicU64,
    cache: RwLock<HashMap<CacheKey, Cached>>,
    /// Keys the Basic cache so that it holds no fast hash of a password, and hashes login
    /// names that match no account (lockout, audit) so they are never kept as typed.
    basic_key: SecretKey,
    /// HTTP Basic pairs whose password was verified: keyed like the Basic cache entries, with
    /// the account and its credentials epoch. It outlives cache invalidations, so that a
    /// Basic client does not pay (and spend its address's auth budget on) a hash after every
    /// unrelated identity change; a password change bumps the epoch and ends the entry.
    basic_verified: RwLock<HashMap<[u8; 32], (u64, u64)>>,
    pub jwt: jwt::JwtKeys,
    pub limiter: ratelimit::RateLimiter,
    pub lockout: lockout::Lockout,
    /// Password logins of 2FA accounts waiting for their code.
    pub pending_logins: pending::PendingLogins,
    /// Refused passwords waiting to be audited (one record per identity per minute).
    failures: FailureLog,
    usage: Mutex<Usage>,
    pub config: AuthConfig,
}

impl AuthService {
    pub fn new(jwt: jwt::JwtKeys, config: &Config) -> Result<Arc<Self>, Error> {
        Ok(Arc::new(Self {
            generation: AtomicU64::new(1),
            cache: RwLock::new(HashMap::new()),
            basic_key: SecretKey::generate()?,
            basic_verified: RwLock::new(HashMap::new()),
            jwt,
            limiter: ratelimit::RateLimiter::new(config.rate_limit.clone()),
            lockout: lockout::Lockout::new(
                config.auth.lockout_failures,
                config.auth.lockout_minutes,
            ),
            pending_logins: pending::PendingLogins::default(),
            failures: FailureLog::default(),
            usage: Mutex::new(Usage::default()),
            config: config.auth.clone(),
        }))
    }

    /// Forgets every cached resolution. Call after any commit that changes users,
    /// memberships, organizations or credentials.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cache.write().clear();
    }

    fn cached(&self, key: &CacheKey) -> Option<(Principal, Limits)> {
        let now = unix_now();
        let generation = self.generation.load(Ordering::SeqCst);
        let cache = self.cache.read();
        let hit = cache.get(key)?;
        if hit.generation != generation || hit.expires_at.is_some_and(|e| e <= now) {
            return None;
        }
        Some((hit.principal.clone(), hit.limits.clone()))
    }

    fn remember(
        &self,
        key: CacheKey,
        generation: u64,
        principal: &Principal,
        expires_at: Option<i64>,
        limits: &Limits,
    ) {
        if generation != self.generation.load(Ordering::SeqCst) {
            return; // something changed while we read; don't cache a possibly stale answer
        }
        let mut cache = self.cache.write();
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        let entry =
            Cached { generation, principal: principal.clone(), expires_at, limits: limits.clone() };
        cache.insert(key, entry);
    }

    /// How long a login token lives (`auth.token_hours`), in seconds.
    pub fn token_lifetime_secs(&self) -> i64 {
        i64::try_from(self.config.token_hours.saturating_mul(3600)).unwrap_or(i64::MAX / 2)
    }

    /// The expiry of a login token issued at `now`.
    pub fn token_expiry(&self, now: i64) -> i64 {
        now.saturating_add(self.token_lifetime_secs())
    }

    /// The account a verified Basic pair stands for, with its credentials epoch.
    fn basic_verified(&self, key: &[u8; 32]) -> Option<(u64, u64)> {
        self.basic_verified.read().get(key).copied()
    }

    fn remember_basic(&self, key: [u8; 32], user_id: u64, epoch: u64) {
        let mut verified = self.basic_verified.write();
        if verified.len() >= CACHE_CAPACITY {
            verified.clear();
        }
        verified.insert(key, (user_id, epoch));
    }

    fn forget_basic(&self, key: &[u8; 32]) {
        self.basic_verified.write().remove(key);
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Resolves a presented credential to a principal: 401 when it is bad, expired or
    /// revoked; 403 when an API key is used from outside its allow-list.
    pub async fn authenticate(
        &self,
        store: &Store,
        presented: Presented,
        ip: Option<IpAddr>,
    ) -> Result<Principal, Error> {
        self.authenticate_gated(store, presented, ip, &no_gate).await
    }

    /// [`authenticate`](Self::authenticate), calling `before_hash` before any password hash
    /// is verified (HTTP Basic not answered from the cache).
    pub async fn authenticate_gated(
        &self,
        store: &Store,
        presented: Presented,
        ip: Option<IpAddr>,
        before_hash: BeforeHash<'_>,
    ) -> Result<Principal, Error> {
        let (principal, limits) = match presented {
            Presented::Token(s) => self.resolve_token(store, s.expose(), TokenKind::Token)?,
            Presented::Session(s) => self.resolve_token(store, s.expose(), TokenKind::Session)?,
            Presented::Basic { ident, password } => (
                self.resolve_basic(store, &ident, password, ip, before_hash).await?,
                Limits::default(),
            ),
            Presented::Bearer(s) if jwt::looks_like_jwt(s.expose()) => {
                self.resolve_jwt(store, s.expose())?
            }
            Presented::Bearer(s) | Presented::ApiKey(s) => {
                self.resolve_api_key(store, s.expose())?
            }
        };
        if !limits.allow.is_empty()
            && !ip.is_some_and(|ip| limits.allow.iter().any(|n| n.contains(&ip)))
        {
            return Err(Error::forbidden("This API key may not be used from this address."));
        }
        if let Some(u) = limits.usage {
            self.count_use(u);
        }
        Ok(principal)
    }

    fn count_use(&self, u: UsageOf) {
        let now = unix_now();
        let mut usage = self.usage.lock();
        match u {
            UsageOf::ApiKey { id, version } => {
                let e = usage.api_keys.entry((id, version)).or_insert((0, now));
                e.0 += 1;
                e.1 = now;
            }
            UsageOf::Pat { id } => {
                usage.pats.insert(id, now);
            }
        }
    }

    /// Requests counted for API key `id` but not yet written: version → (count, last used).
    pub fn pending_api_key_usage(&self, id: u64) -> BTreeMap<u32, (u64, i64)> {
        self.usage
            .lock()
            .api_keys
            .range((id, 0)..=(id, u32::MAX))
            .map(|((_, v), usage)| (*v, *usage))
            .collect()
    }

    /// `last_used_at` of PAT `id` not yet written.
    pub fn pending_pat_use(&self, id: u64) -> Option<i64> {
        self.usage.lock().pats.get(&id).copied()
    }

    /// Writes the batched usage counters (API key requests, `last_used_at`) in one commit,
    /// and the refused-password records that are due.
    pub async fn flush_usage(&self, store: &Store) -> Result<(), Error> {
        let due = self.failures.due(unix_now(), false);
        self.write_failures(store, due).await?;
        let taken = std::mem::take(&mut *self.usage.lock());
        if taken.api_keys.is_empty() && taken.pats.is_empty() {
            return Ok(());
        }
        let (keys, pats) = (taken.api_keys, taken.pats);
        store
            .write(move |tx| -> Result<(), Error> {
                crate::domain::api_keys::apply_usage(tx, &keys)?;
                crate::domain::pats::apply_usage(tx, &pats)
            })
            .await
    }

    /// At shutdown: writes every refused-password count not yet recorded.
    pub async fn flush_failures(&self, store: &Store) -> Result<(), Error> {
        let all = self.failures.due(unix_now(), true);
        self.write_failures(store, all).await
    }

    async fn write_failures(
        &self,
        store: &Store,
        records: Vec<FailureRecord>,
    ) -> Result<(), Error> {
        if records.is_empty() {
            return Ok(());
        }
        let owned = records.clone();
        let written = store
            .write(move |tx| -> Result<(), Error> {
                for r in &owned {
                    let (user_id, login, hash) = match &r.shown {
                        Shown::Account { user_id, login } => (Some(*user_id), login.as_str(), None),
                        Shown::Unknown { hash } => (None, "unknown", Some(hash.as_str())),
                        Shown::Overflow => (None, "unknown", None),
                    };
                    accounts::record_login_failed(
                        tx,
                        &accounts::FailedLogins {
                            action: r.action.as_str(),
                            user_id,
                            login,
                            login_hash: hash,
                            method: r.method,
                            count: r.count,
                            first_at: r.first_at,
                            last_at: r.last_at,
                            ip: r.ip,
                        },
                    )?;
                }
                Ok(())
            })
            .await;
        if written.is_err() {
            self.failures.restore(records);
        }
        written
    }

    /// Counts a refused password in the audit aggregate; writes a record when one is due.
    async fn audit_failure(&self, store: &Store, failure: Failure) {
        if let Some(record) = self.failures.note(failure, unix_now()) {
            if let Err(e) = self.write_failures(store, vec![record]).await {
                tracing::warn!(error = %e, "failed-login audit write failed; kept for later");
            }
        }
    }

    /// The keyed hash a login name that matches no account is known by (lockout, audit).
    fn ident_key(&self, normalised: &str) -> [u8; 16] {
        let mut material = b"login-name\0".to_vec();
        material.extend_from_slice(normalised.as_bytes());
        let mac = self.basic_key.hmac_sha256(&material);
        let mut out = [0u8; 16];
        out.copy_from_slice(&mac[..16]);
        out
    }

    /// Verifies an email-or-username and password, honouring the lockout, which applies to
    /// every name: an account, or a name that matches none (so the answers of a locked account
    /// and of an unknown name are the same, after the same work). `before_hash` runs right
    /// before the hash is verified. Failures are counted and audited (aggregated).
    pub async fn check_password(
        &self,
        store: &Store,
        ident: &str,
        password: Secret<String>,
        ip: Option<IpAddr>,
        method: &'static str,
        before_hash: BeforeHash<'_>,
    ) -> Result<PasswordCheck, Error> {
        let ident = ident.trim().to_lowercase();
        let user = store.read(|tx| accounts::find_by_login(tx, &ident))?;
        let (key, shown) = match &user {
            Some(u) => (LockKey::User(u.id), Shown::Account { user_id: u.id, login: ident }),
            None => {
                let key = self.ident_key(&ident);
                (LockKey::Ident(key), Shown::Unknown { hash: hex::encode(&key[..6]) })
            }
        };
        let now = unix_now();
        if let Some(secs) = self.lockout.locked(key, now) {
            return Ok(PasswordCheck::Locked(secs));
        }
        before_hash()?;
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let ok = passwords::verify(hash, password).await;
        if let Some(u) = user.filter(|u| ok && u.is_active) {
            self.lockout.success(key);
            return Ok(PasswordCheck::Ok(u));
        }
        if !ok {
            self.lockout.failure(key, now);
        }
        let failure = Failure { action: FailedAction::Login, key, shown, ip, method };
        self.audit_failure(store, failure).await;
        Ok(PasswordCheck::Wrong)
    }

    /// Seconds `user_id` stays locked out (password and OTP failures count alike), if it is.
    pub fn locked_for(&self, user_id: u64) -> Option<u64> {
        self.lockout.locked(LockKey::User(user_id), unix_now())
    }

    /// A wrong second factor: counts toward the account's lockout like a wrong password, and
    /// is audited (aggregated, without the code) as `user_otp_failed`.
    pub async fn otp_failed(&self, store: &Store, user: &User, ip: Option<IpAddr>) {
        let key = LockKey::User(user.id);
        self.lockout.failure(key, unix_now());
        let shown = Shown::Account { user_id: user.id, login: user.email.clone() };
        let failure = Failure { action: FailedAction::Otp, key, shown, ip, method: "otp" };
        self.audit_failure(store, failure).await;
    }

    /// A right second factor clears the account's failures, as a right password does.
    pub fn otp_succeeded(&self, user_id: u64) {
        self.lockout.success(LockKey::User(user_id));
    }

    /// Checks the caller's current password before a password change: locked identities are
    /// refused (429) without hashing, and a wrong password counts in the lockout and the audit.
    pub async fn check_old_password(
        &self,
        store: &Store,
        user_id: u64,
        password: Secret<String>,
        ip: Option<IpAddr>,
    ) -> Result<bool, Error> {
        let key = LockKey::User(user_id);
        let now = unix_now();
        if let Some(secs) = self.lockout.locked(key, now) {
            return Err(locked_error(secs));
        }
        let user = store.read(|tx| tx.get(crate::domain::accounts::tables::USERS, user_id))?;
        let login = user.as_ref().map(|u| u.email.clone()).unwrap_or_default();
        if passwords::verify(user.map(|u| u.password_hash), password).await {
            return Ok(true);
        }
        self.lockout.failure(key, now);
        let shown = Shown::Account { user_id, login };
        let failure = Failure {
            action: FailedAction::PasswordChange,
            key,
            shown,
            ip,
            method: "password_change",
        };
        self.audit_failure(store, failure).await;
        Ok(false)
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
        limits: crate::domain::CredentialLimits::default(),
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
