//! Ending credentials: logout (tokens, sessions, refresh tokens, deny-listed access JWTs),
//! password changes and resets (a new credentials epoch; every other credential revoked),
//! refresh rotation with reuse detection, and the sweep of expired rows.

use serde_json::json;

use crate::domain::accounts::tables::{USERS, USERS_BY_EMAIL};
use crate::domain::accounts::{issue_token, revoke_token, revoke_user_tokens, TokenGrant};
use crate::domain::audit::{self, Actor, AuditEvent};
use crate::domain::credentials::tables::{JWT_DENYLIST, TOKENS, TOKENS_BY_DIGEST, USER_TOKENS};
use crate::domain::credentials::TokenKind;
use crate::domain::effects::Effect;
use crate::domain::records::User;
use crate::domain::Error;
use crate::store::{Reader, WriteTx, Writer as _};

/// Sets a new password hash, bumps the credentials epoch (older JWTs stop working) and revokes
/// every token, session and refresh token except `keep` (which is moved to the new epoch).
pub fn change_password(
    tx: &WriteTx,
    user_id: u64,
    new_hash: &str,
    keep: Option<u64>,
    actor: &Actor,
) -> Result<usize, Error> {
    // Cached credential resolutions carry what this changes.
    tx.on_commit(Effect::CredentialsChanged);
    let mut user = tx.get(USERS, user_id)?.ok_or_else(|| Error::not_found("User"))?;
    user.password_hash = new_hash.to_string();
    user.credentials_epoch += 1;
    tx.put(USERS, user_id, &user)?;
    let keep: Vec<u64> = keep.into_iter().collect();
    let revoked = revoke_user_tokens(tx, user_id, &keep)?;
    for id in &keep {
        if let Some(mut row) = tx.get(TOKENS, *id)? {
            row.epoch = user.credentials_epoch;
            tx.put(TOKENS, *id, &row)?;
        }
    }
    audit::record(
        tx,
        AuditEvent {
            actor,
            organization_id: None,
            action: "password_changed",
            target_type: "user",
            target_id: user_id.to_string(),
            details: json!({"revoked_credentials": revoked}),
        },
    )?;
    Ok(revoked)
}

/// Sets a password without the old one (the `gatehouse admin reset-password` command): bumps
/// the epoch and revokes every token and session.
pub fn reset_password(tx: &WriteTx, email: &str, new_hash: &str) -> Result<User, Error> {
    // Cached credential resolutions carry what this changes.
    tx.on_commit(Effect::CredentialsChanged);
    let id = tx
        .lookup(USERS_BY_EMAIL, &email.trim().to_lowercase())?
        .ok_or_else(|| Error::not_found("User"))?;
    change_password(tx, id, new_hash, None, &Actor::system())?;
    tx.get(USERS, id)?.ok_or_else(|| Error::not_found("User"))
}

/// Logout: revokes the given tokens/sessions and every refresh token of the actor, and
/// deny-lists an access JWT (`jti`, until its expiry).
pub fn logout(
    tx: &WriteTx,
    actor: &Actor,
    ids: &[u64],
    deny_jti: Option<(String, i64)>,
) -> Result<usize, Error> {
    // Cached credential resolutions carry what this changes.
    tx.on_commit(Effect::CredentialsChanged);
    let user_id = actor.user_id.unwrap_or_default();
    let mut revoked = 0;
    for id in ids {
        if revoke_token(tx, *id)? {
            revoked += 1;
        }
    }
    for id in tx.children(USER_TOKENS, user_id)? {
        if tx.get(TOKENS, id)?.is_some_and(|t| t.kind == TokenKind::Refresh)
            && revoke_token(tx, id)?
        {
            revoked += 1;
        }
    }
    if let Some((jti, until)) = deny_jti {
        let until = u64::try_from(until).unwrap_or(0);
        tx.set_lookup(crate::domain::credentials::tables::JWT_DENYLIST, &jti, until)?;
        revoked += 1;
    }
    audit::record(
        tx,
        AuditEvent {
            actor,
            organization_id: None,
            action: "user_logout",
            target_type: "user",
            target_id: user_id.to_string(),
            details: json!({"logout": true, "revoked": revoked}),
        },
    )?;
    Ok(revoked)
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// The token was live: it is now rotated and its successor stored (with this id).
    Rotated(u64),
    /// The token had already been exchanged: someone holds a copy. Every refresh token of its
    /// family (the login it descends from) is revoked; this many were.
    Reused(usize),
    /// Unknown, revoked, or someone else's.
    Invalid,
}

/// Exchanges refresh token row `id` (found by the digest of the presented token's `jti`) for
/// `successor`, which joins its family. The exchanged row is kept, marked rotated, until it
/// expires, so that a second use is recognised: then the whole family is revoked and the
/// reuse audited (the caller answers 401 either way).
pub fn exchange_refresh(
    tx: &WriteTx,
    user: &User,
    digest: &str,
    successor: &TokenGrant,
    now: i64,
    actor: &Actor,
) -> Result<Refresh, Error> {
    // Cached credential resolutions carry what this changes.
    tx.on_commit(Effect::CredentialsChanged);
    let Some(id) = tx.lookup(TOKENS_BY_DIGEST, digest)? else { return Ok(Refresh::Invalid) };
    let Some(mut row) = tx.get(TOKENS, id)? else { return Ok(Refresh::Invalid) };
    if row.kind != TokenKind::Refresh || row.user_id != user.id {
        return Ok(Refresh::Invalid);
    }
    let family = row.family_id();
    if row.rotated_at.is_some() {
        let mut revoked = 0;
        for other in tx.children(USER_TOKENS, user.id)? {
            let in_family = tx
                .get(TOKENS, other)?
                .is_some_and(|t| t.kind == TokenKind::Refresh && t.family_id() == family);
            if in_family && revoke_token(tx, other)? {
                revoked += 1;
            }
        }
        audit::record(
            tx,
            AuditEvent {
                actor,
                organization_id: None,
                action: "refresh_token_reused",
                target_type: "user",
                target_id: user.id.to_string(),
                details: json!({"revoked": revoked}),
            },
        )?;
        return Ok(Refresh::Reused(revoked));
    }
    row.rotated_at = Some(now);
    tx.put(TOKENS, id, &row)?;
    let grant = TokenGrant { family: Some(family), ..successor.clone() };
    Ok(Refresh::Rotated(issue_token(tx, user, &grant)?))
}

/// The login token or session whose secret has SHA-256 `digest`, if any.
pub fn token_by_digest(tx: &impl Reader, digest: &str) -> Result<Option<u64>, Error> {
    Ok(tx.lookup(TOKENS_BY_DIGEST, digest)?)
}

/// A refresh token that may still be exchanged (the verify route): stored, not yet rotated.
pub fn refresh_is_live(tx: &impl Reader, digest: &str) -> Result<bool, Error> {
    let Some(id) = tx.lookup(TOKENS_BY_DIGEST, digest)? else { return Ok(false) };
    Ok(tx.get(TOKENS, id)?.is_some_and(|t| t.kind == TokenKind::Refresh && t.rotated_at.is_none()))
}

/// Rows the sweeper has work for, among the token rows with ids in `from..` (at most `limit`
/// read): the expired ones (login tokens, sessions, refresh tokens, rotated ones included)
/// and login tokens stored before they had an expiry. Returns the next id to look at (`None`
/// at the end of the table) and the ids.
pub fn tokens_to_sweep(
    tx: &impl Reader,
    from: u64,
    limit: usize,
    now: i64,
) -> Result<(Option<u64>, Vec<u64>), Error> {
    let rows = tx.scan(TOKENS, from..=u64::MAX, limit, false)?;
    let next = if rows.len() < limit { None } else { rows.last().map(|(id, _)| id + 1) };
    let ids = rows
        .into_iter()
        .filter(|(_, row)| row.lacks_expiry() || row.expires_at.is_some_and(|e| e <= now))
        .map(|(id, _)| id)
        .collect();
    Ok((next, ids))
}

/// Removes the rows of `ids` that are (still) expired, and gives login tokens without an
/// expiry one `token_secs` from now (a full lifetime from the upgrade that introduced it, so
/// no token dies unannounced). Returns how many rows were removed.
pub fn sweep_token_rows(
    tx: &WriteTx,
    ids: &[u64],
    now: i64,
    token_secs: i64,
) -> Result<usize, Error> {
    let mut removed = 0;
    for id in ids {
        let Some(mut row) = tx.get(TOKENS, *id)? else { continue };
        if row.lacks_expiry() {
            row.expires_at = Some(now.saturating_add(token_secs));
            tx.put(TOKENS, *id, &row)?;
        } else if row.expires_at.is_some_and(|e| e <= now) && revoke_token(tx, *id)? {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Deny-listed access JWTs whose expiry has passed, among the entries with `jti` after
/// `after`, reading at most `limit`. Returns the last `jti` read (`None` at the end) and the
/// expired ones.
pub fn expired_denials(
    tx: &impl crate::store::RangeReader,
    after: Option<&str>,
    limit: usize,
    now: i64,
) -> Result<(Option<String>, Vec<String>), Error> {
    let entries = tx.lookup_entries(JWT_DENYLIST, after, limit)?;
    let next = if entries.len() < limit { None } else { entries.last().map(|(k, _)| k.clone()) };
    let now = u64::try_from(now).unwrap_or(0);
    Ok((next, entries.into_iter().filter(|(_, until)| *until <= now).map(|(k, _)| k).collect()))
}

/// Removes the deny-list entries of `jtis`; returns how many.
pub fn remove_denials(tx: &WriteTx, jtis: &[String]) -> Result<usize, Error> {
    for jti in jtis {
        tx.release(JWT_DENYLIST, jti)?;
    }
    Ok(jtis.len())
}
