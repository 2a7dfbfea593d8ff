//! One resolver per credential kind. Each looks its secret up by digest (through the cache),
//! checks expiry, revocation and the user's credentials epoch, and builds the principal with
//! its limits.

use crate::auth::jwt::Claims;
use crate::auth::{principal_for, AuthService, BeforeHash, CacheKind, Limits, UsageOf};
use crate::clock::unix_now;
use crate::crypto::{sha256, Secret};
use crate::domain::accounts::tables::USERS;
use crate::domain::credentials::tables::{
    API_KEYS, API_KEYS_BY_DIGEST, JWT_DENYLIST, TOKENS, TOKENS_BY_DIGEST,
};
use crate::domain::credentials::TokenKind;
use crate::domain::pats::PatRef;
use crate::domain::{CredentialKind, Error, Principal};
use crate::store::{Reader, Store};

type Resolved = (Principal, Limits);

fn pat_error(msg: &str) -> Error {
    Error::unauthenticated(msg)
}

impl AuthService {
    pub(crate) fn resolve_token(
        &self,
        store: &Store,
        secret: &str,
        kind: TokenKind,
    ) -> Result<Resolved, Error> {
        let invalid = || match kind {
            TokenKind::Session => Error::unauthenticated("Invalid or expired session."),
            TokenKind::Token | TokenKind::Refresh => Error::unauthenticated("Invalid token."),
        };
        let well_formed = match kind {
            TokenKind::Token => secret.len() == 40,
            TokenKind::Session => secret.len() == 64,
            TokenKind::Refresh => false,
        } && secret.bytes().all(|b| b.is_ascii_hexdigit());
        if !well_formed {
            return Err(invalid());
        }
        let lower = secret.to_ascii_lowercase();
        let digest_bytes = sha256(lower.as_bytes());
        let key = match kind {
            TokenKind::Session => (CacheKind::Session, digest_bytes),
            TokenKind::Token | TokenKind::Refresh => (CacheKind::Token, digest_bytes),
        };
        if let Some(hit) = self.cached(&key) {
            return Ok(hit);
        }
        let generation = self.generation();
        let digest = hex::encode(digest_bytes);
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
                TokenKind::Session => CredentialKind::Session { id },
                TokenKind::Token | TokenKind::Refresh => CredentialKind::Token { id },
            };
            Ok(Some((principal_for(tx, &user, credential)?, row.expires_at)))
        })?;
        let (principal, expires_at) = found.ok_or_else(invalid)?;
        let limits = Limits::default();
        self.remember(key, generation, &principal, expires_at, &limits);
        Ok((principal, limits))
    }

    pub(crate) async fn resolve_basic(
        &self,
        store: &Store,
        ident: &str,
        password: Secret<String>,
        ip: Option<std::net::IpAddr>,
        before_hash: BeforeHash<'_>,
    ) -> Result<Principal, Error> {
        let ident = ident.trim().to_lowercase();
        let mut material = ident.clone().into_bytes();
        material.push(0);
        material.extend_from_slice(password.expose().as_bytes());
        let key = (CacheKind::Basic, self.basic_key.hmac_sha256(&material));
        if let Some((p, _)) = self.cached(&key) {
            return Ok(p);
        }
        let generation = self.generation();
        let invalid = || Error::unauthenticated("Invalid username/password.");
        if let Some((user_id, epoch)) = self.basic_verified(&key.1) {
            // Verified before: still valid while the name names the same account and the
            // password has not changed since (a change bumps the epoch). No hash needed.
            let again = store.read(|tx| -> Result<Option<Principal>, Error> {
                let Some(user) = crate::domain::accounts::find_by_login(tx, &ident)? else {
                    return Ok(None);
                };
                if user.id != user_id || user.credentials_epoch != epoch || !user.is_active {
                    return Ok(None);
                }
                refuse_basic_with_2fa(tx, user.id)?;
                Ok(Some(principal_for(tx, &user, CredentialKind::Basic)?))
            })?;
            match again {
                Some(principal) => {
                    self.remember(key, generation, &principal, None, &Limits::default());
                    return Ok(principal);
                }
                None => self.forget_basic(&key.1),
            }
        }
        let checked =
            self.check_password(store, &ident, password, ip, "basic", before_hash).await?;
        let user = match checked {
            crate::auth::PasswordCheck::Ok(user) => user,
            crate::auth::PasswordCheck::Wrong => return Err(invalid()),
            crate::auth::PasswordCheck::Locked(secs) => {
                return Err(crate::auth::locked_error(secs))
            }
        };
        let principal = store.read(|tx| -> Result<Principal, Error> {
            // Re-read: the account may have changed while the hash was being checked.
            let fresh = tx.get(USERS, user.id)?.ok_or_else(invalid)?;
            if fresh.credentials_epoch != user.credentials_epoch || !fresh.is_active {
                return Err(invalid());
            }
            refuse_basic_with_2fa(tx, fresh.id)?;
            principal_for(tx, &fresh, CredentialKind::Basic)
        })?;
        self.remember_basic(key.1, user.id, user.credentials_epoch);
        self.remember(key, generation, &principal, None, &Limits::default());
        Ok(principal)
    }

    pub(crate) fn resolve_jwt(&self, store: &Store, token: &str) -> Result<Resolved, Error> {
        let key = (CacheKind::Jwt, sha256(token.as_bytes()));
        if let Some(hit) = self.cached(&key) {
            return Ok(hit);
        }
        let generation = self.generation();
        let now = unix_now();
        let claims = self.jwt.verify(token, now)?;
        if claims.token_type != "access" {
            return Err(Error::unauthenticated("Token has wrong type"));
        }
        let resolved = store.read(|tx| -> Result<Resolved, Error> {
            let invalid = || Error::unauthenticated("Token is invalid or expired");
            let user = tx.get(USERS, claims.user_id)?.ok_or_else(invalid)?;
            // PATs live by their row, not by the password: only session JWTs die with it.
            if !user.is_active || (claims.pat_id.is_none() && user.credentials_epoch != claims.cev)
            {
                return Err(invalid());
            }
            let mut limits = Limits::default();
            let (credential, read_only, agm) = match &claims.pat_id {
                Some(reference) => {
                    let pat_id = check_pat(tx, &claims, reference)?;
                    limits.usage = Some(UsageOf::Pat { id: pat_id });
                    (
                        CredentialKind::Pat { id: pat_id },
                        claims.pat_ro.unwrap_or(false),
                        claims.pat_agm.unwrap_or(false),
                    )
                }
                None => {
                    if tx.lookup(JWT_DENYLIST, &claims.jti)?.is_some() {
                        return Err(invalid());
                    }
                    (CredentialKind::Jwt { jti: claims.jti.clone() }, false, false)
                }
            };
            let mut p = principal_for(tx, &user, credential)?;
            p.read_only = read_only;
            p.global_metrics = agm;
            p.company_id = claims.company_id;
            if claims.pat_id.is_some() {
                // A PAT is bound to its company (ShellUI); session JWTs stay account-wide (M1).
                p.org_scope = claims.company_id;
            }
            Ok((p, limits))
        })?;
        self.remember(key, generation, &resolved.0, Some(claims.exp), &resolved.1);
        Ok(resolved)
    }

    pub(crate) fn resolve_api_key(&self, store: &Store, secret: &str) -> Result<Resolved, Error> {
        let invalid = || Error::unauthenticated("Invalid or expired API key.");
        if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        let lower = secret.to_ascii_lowercase();
        let digest_bytes = sha256(lower.as_bytes());
        let key = (CacheKind::ApiKey, digest_bytes);
        if let Some(hit) = self.cached(&key) {
            return Ok(hit);
        }
        let generation = self.generation();
        let digest = hex::encode(digest_bytes);
        let now = unix_now();
        let found = store.read(|tx| -> Result<Option<(Resolved, Option<i64>)>, Error> {
            let Some(id) = tx.lookup(API_KEYS_BY_DIGEST, &digest)? else { return Ok(None) };
            let Some(k) = tx.get(API_KEYS, id)? else { return Ok(None) };
            if !k.is_valid(now) {
                return Ok(None);
            }
            let Some(version) = k
                .versions
                .iter()
                .find(|v| crate::crypto::ct_eq(v.digest.as_bytes(), digest.as_bytes()))
            else {
                return Ok(None);
            };
            if version.valid_until.is_some_and(|u| u <= now) {
                return Ok(None);
            }
            let Some(user) = tx.get(USERS, k.user_id)? else { return Ok(None) };
            if !user.is_active {
                return Ok(None);
            }
            let mut p =
                principal_for(tx, &user, CredentialKind::ApiKey { id, name: k.name.clone() })?;
            p.read_only = k.read_only;
            p.org_scope = k.organization;
            p.company_id = k.organization;
            p.limits = crate::domain::CredentialLimits {
                ip_allowlist: k.ip_allowlist.clone(),
                expires_at: k.expires_at,
            };
            // An allow-list that no longer parses refuses every address: failing open would
            // turn a damaged restriction into none.
            let Ok(allow) = crate::domain::api_keys::parse_allowlist(&k.ip_allowlist) else {
                tracing::warn!(api_key = id, "stored IP allow-list does not parse; key refused");
                return Err(Error::forbidden("This API key may not be used from this address."));
            };
            let limits =
                Limits { allow, usage: Some(UsageOf::ApiKey { id, version: version.version }) };
            let until = match (k.expires_at, version.valid_until) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            Ok(Some(((p, limits), until)))
        })?;
        let (resolved, until) = found.ok_or_else(invalid)?;
        self.remember(key, generation, &resolved.0, until, &resolved.1);
        Ok(resolved)
    }
}

/// HTTP Basic carries no second factor: an account with 2FA on may not use it (its tokens,
/// sessions and keys, obtained through the second factor, keep working). Enabling 2FA
/// invalidates the cache, so a cached Basic resolution does not outlive this check.
pub(crate) fn refuse_basic_with_2fa(tx: &impl Reader, user_id: u64) -> Result<(), Error> {
    if crate::domain::two_factor::is_enabled(tx, user_id)? {
        return Err(basic_2fa_error());
    }
    Ok(())
}

/// The refusal of a password-only login (HTTP Basic, `/api/auth/token/`) for a 2FA account.
pub fn basic_2fa_error() -> Error {
    Error::forbidden(
        "This account uses two-factor authentication, which HTTP Basic and password-only \
         token requests cannot carry: log in with POST /api/auth/login/ and then \
         POST /api/auth/verify-otp/, or use a token, session or API key.",
    )
}

/// ShellUI's PAT checks, each a 401 with its own message; the row's id when all pass.
fn check_pat(tx: &crate::store::ReadTx, claims: &Claims, reference: &PatRef) -> Result<u64, Error> {
    if let PatRef::Uuid(text) = reference {
        if uuid::Uuid::parse_str(text).is_err() {
            return Err(pat_error("Invalid personal access token id."));
        }
    }
    let row = crate::domain::pats::find(tx, reference)?
        .ok_or_else(|| pat_error("Personal access token not found."))?;
    if row.revoked_at.is_some() {
        return Err(pat_error("Personal access token revoked."));
    }
    if row.jti != claims.jti {
        return Err(pat_error("Personal access token mismatch."));
    }
    if row.user_id != claims.user_id {
        return Err(pat_error("Personal access token user mismatch."));
    }
    if claims.pat_ro != Some(row.read_only) || claims.pat_agm != Some(row.access_global_metrics) {
        return Err(pat_error("Personal access token scope mismatch."));
    }
    Ok(row.id)
}
