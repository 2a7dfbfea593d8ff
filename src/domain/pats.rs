//! Personal access tokens (ShellUI): rows that JWTs with `pat_id` are checked against on every
//! use; revocation is immediate.

use std::collections::BTreeMap;

use serde_json::json;

use crate::clock::unix_now;
use crate::domain::audit::{self, Actor, AuditEvent};
use crate::domain::credentials::tables::{ORG_PATS, PATS, USER_PATS};
use crate::domain::credentials::PersonalAccessToken;
use crate::domain::effects::{self, Counted, Effect};
use crate::domain::{CredentialKind, Error, Principal};
use crate::store::{Reader, WriteTx, Writer as _};

/// A PAT about to be created.
#[derive(Debug, Clone)]
pub struct NewPat {
    pub name: String,
    pub read_only: bool,
    pub access_global_metrics: bool,
    pub company_id: u64,
    pub expires_at: i64,
    pub jti: String,
}

/// Creates the row (full sessions only; global-metrics scope is staff only → 403). The token
/// never exceeds its parent: its company must be inside the parent's scope, and the parent's
/// read-only flag and expiry carry over (moot for the full sessions allowed today).
pub fn create(
    tx: &WriteTx,
    p: &Principal,
    actor: &Actor,
    new: &NewPat,
) -> Result<PersonalAccessToken, Error> {
    p.require_full_session("create personal access tokens")?;
    let mut new = new.clone();
    new.read_only |= p.read_only;
    if let Some(parent) = p.limits.expires_at {
        new.expires_at = new.expires_at.min(parent);
    }
    let new = &new;
    if new.access_global_metrics && !p.is_staff {
        return Err(Error::forbidden(
            "Only staff may create tokens with access to global metrics.",
        ));
    }
    if new.name.chars().count() > 200 {
        return Err(Error::invalid("name", "Ensure this field has no more than 200 characters."));
    }
    if p.role_in(new.company_id).is_none() {
        return Err(Error::forbidden("Forbidden for this company."));
    }
    let id = tx.next_id("personal_access_tokens")?;
    let row = PersonalAccessToken {
        id,
        user_id: p.user_id,
        company_id: Some(new.company_id),
        jti: new.jti.clone(),
        name: new.name.clone(),
        read_only: new.read_only,
        access_global_metrics: new.access_global_metrics,
        created_at: unix_now(),
        expires_at: new.expires_at,
        revoked_at: None,
        last_used_at: None,
    };
    tx.put(PATS, id, &row)?;
    tx.link(USER_PATS, p.user_id, id)?;
    tx.link(ORG_PATS, new.company_id, id)?;
    effects::count(tx, new.company_id, Counted::Pats, 1);
    audit::record(
        tx,
        AuditEvent {
            actor,
            organization_id: Some(new.company_id),
            action: "pat_created",
            target_type: "personal_access_token",
            target_id: id.to_string(),
            details: json!({"name": row.name, "read_only": row.read_only,
                "access_global_metrics": row.access_global_metrics}),
        },
    )?;
    Ok(row)
}

/// The caller's PATs, newest first.
pub fn list_own(tx: &impl Reader, user_id: u64) -> Result<Vec<PersonalAccessToken>, Error> {
    let mut out = Vec::new();
    for id in tx.children(USER_PATS, user_id)?.into_iter().rev() {
        if let Some(t) = tx.get(PATS, id)? {
            out.push(t);
        }
    }
    Ok(out)
}

/// The caller's PATs inside the credential's scope (an org-scoped caller, a PAT included,
/// sees only that organization's tokens), newest first.
pub fn list_visible(tx: &impl Reader, p: &Principal) -> Result<Vec<PersonalAccessToken>, Error> {
    Ok(list_own(tx, p.user_id)?.into_iter().filter(|t| p.scope_covers(t.company_id)).collect())
}

/// Revokes one of the caller's PATs (404 for others' and outside the credential's scope; 400
/// if already revoked). A PAT may revoke itself; any other needs a full session.
pub fn revoke(
    tx: &WriteTx,
    p: &Principal,
    actor: &Actor,
    id: u64,
) -> Result<PersonalAccessToken, Error> {
    // Cached credential resolutions carry what this changes.
    tx.on_commit(Effect::CredentialsChanged);
    if !matches!(p.credential, CredentialKind::Pat { id: own } if own == id) {
        p.require_full_session("revoke personal access tokens")?;
    }
    let mut row = tx
        .get(PATS, id)?
        .filter(|t| t.user_id == p.user_id && p.scope_covers(t.company_id))
        .ok_or_else(|| Error::not_found("Personal access token"))?;
    if row.revoked_at.is_some() {
        return Err(Error::invalid("non_field_errors", "Already revoked."));
    }
    row.revoked_at = Some(unix_now());
    tx.put(PATS, id, &row)?;
    if let Some(org) = row.company_id {
        effects::count(tx, org, Counted::Pats, -1);
    }
    audit::record(
        tx,
        AuditEvent {
            actor,
            organization_id: row.company_id,
            action: "pat_revoked",
            target_type: "personal_access_token",
            target_id: id.to_string(),
            details: json!({"name": row.name}),
        },
    )?;
    Ok(row)
}

/// Batched `last_used_at` updates: PAT id → time.
pub fn apply_usage(tx: &WriteTx, usage: &BTreeMap<u64, i64>) -> Result<(), Error> {
    for (id, at) in usage {
        if let Some(mut row) = tx.get(PATS, *id)? {
            row.last_used_at = Some(row.last_used_at.map_or(*at, |old| old.max(*at)));
            tx.put(PATS, *id, &row)?;
        }
    }
    Ok(())
}

/// Revokes every PAT speaking for `org` (organization deletion).
pub fn revoke_for_org(tx: &WriteTx, org: u64) -> Result<u64, Error> {
    // Cached credential resolutions carry what this changes.
    tx.on_commit(Effect::CredentialsChanged);
    let now = unix_now();
    let mut n = 0;
    for id in tx.children(ORG_PATS, org)? {
        if let Some(mut row) = tx.get(PATS, id)? {
            if row.revoked_at.is_none() {
                row.revoked_at = Some(now);
                tx.put(PATS, id, &row)?;
                effects::count(tx, org, Counted::Pats, -1);
                n += 1;
            }
        }
        tx.unlink(ORG_PATS, org, id)?;
    }
    Ok(n)
}
