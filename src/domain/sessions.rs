//! Ending credentials: logout (tokens, sessions, refresh tokens, deny-listed access JWTs) and
//! password changes and resets (a new credentials epoch; every other credential revoked).

use serde_json::json;

use crate::domain::accounts::revoke_token;
use crate::domain::accounts::revoke_user_tokens;
use crate::domain::audit::{self, Actor, AuditEvent};
use crate::domain::credentials::TokenKind;
use crate::domain::records::User;
use crate::domain::Error;
use crate::store::tables::{TOKENS, USERS, USERS_BY_EMAIL, USER_TOKENS};
use crate::store::{Reader as _, WriteTx, Writer as _};

/// Sets a new password hash, bumps the credentials epoch (older JWTs stop working) and revokes
/// every token, session and refresh token except `keep` (which is moved to the new epoch).
pub fn change_password(
    tx: &WriteTx,
    user_id: u64,
    new_hash: &str,
    keep: Option<u64>,
    actor: &Actor,
) -> Result<usize, Error> {
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
        tx.set_lookup(crate::store::tables::JWT_DENYLIST, &jti, until)?;
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
