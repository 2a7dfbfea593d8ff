//! Personal access tokens (ShellUI): rows that JWTs with `pat_id` are checked against on every
//! use; revocation is immediate. A PAT is named by its integer id or its UUID; its scope flags
//! may change later, after which only a reissued string (same expiry, new `jti`) passes.

use std::collections::BTreeMap;

use serde_json::json;

use crate::clock::unix_now;
use crate::crypto::CryptoError;
use crate::domain::audit::{self, Actor, AuditEvent};
use crate::domain::credentials::tables::{ORG_PATS, PATS, PAT_UUIDS, USER_PATS};
use crate::domain::credentials::PersonalAccessToken;
use crate::domain::effects::{self, Counted, Effect};
use crate::domain::{CredentialKind, Error, Principal};
use crate::store::{Reader, WriteTx, Writer as _};

/// A fresh random (version 4) UUID from ring's generator, hyphenated lower case.
pub fn new_uuid() -> Result<String, CryptoError> {
    let mut bytes = [0u8; 16];
    crate::crypto::fill_random(&mut bytes)?;
    Ok(uuid::Builder::from_random_bytes(bytes).into_uuid().hyphenated().to_string())
}

/// How a JWT's `pat_id` or a route names a PAT: the integer id (tokens issued before schema 4,
/// Gatehouse's routes) or the UUID (ShellUI's, and every token issued since).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum PatRef {
    Id(u64),
    Uuid(String),
}

impl From<u64> for PatRef {
    fn from(id: u64) -> Self {
        Self::Id(id)
    }
}

impl From<&str> for PatRef {
    fn from(uuid: &str) -> Self {
        Self::Uuid(uuid.to_string())
    }
}

impl PatRef {
    /// What a path segment names: an integer, a UUID, or (`None`) nothing a PAT could be.
    pub fn parse(segment: &str) -> Option<Self> {
        let segment = segment.trim();
        if let Ok(id) = segment.parse::<u64>() {
            return Some(Self::Id(id));
        }
        uuid::Uuid::parse_str(segment).ok().map(|u| Self::Uuid(u.hyphenated().to_string()))
    }

    /// The name new tokens carry for `row`: its UUID (a row without one, which migration 4
    /// leaves none of, falls back to its id).
    pub fn of(row: &PersonalAccessToken) -> Self {
        if row.uuid.is_empty() {
            Self::Id(row.id)
        } else {
            Self::Uuid(row.uuid.clone())
        }
    }
}

/// The row `reference` names, if any; a UUID that does not parse names none (the JWT check
/// words that case itself).
pub fn find(
    tx: &impl Reader,
    reference: &PatRef,
) -> Result<Option<PersonalAccessToken>, crate::store::StoreError> {
    let id = match reference {
        PatRef::Id(id) => Some(*id),
        PatRef::Uuid(text) => match uuid::Uuid::parse_str(text) {
            Ok(u) => tx.lookup(PAT_UUIDS, &u.hyphenated().to_string())?,
            Err(_) => None,
        },
    };
    match id {
        Some(id) => tx.get(PATS, id),
        None => Ok(None),
    }
}

/// The id of the PAT a path segment names (`None`: names none, malformed included).
pub fn resolve_segment(tx: &impl Reader, segment: &str) -> Result<Option<u64>, Error> {
    let Some(reference) = PatRef::parse(segment) else { return Ok(None) };
    Ok(find(tx, &reference)?.map(|row| row.id))
}

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
    let uuid = new_uuid()?;
    tx.set_lookup(PAT_UUIDS, &uuid, id)?;
    let row = PersonalAccessToken {
        id,
        uuid,
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

/// Every live (unrevoked, unexpired) PAT of every user, newest first, for staff deciding
/// which may read global metrics; at most `limit`.
pub fn list_live_all(
    tx: &impl Reader,
    p: &Principal,
    now: i64,
    limit: usize,
) -> Result<Vec<PersonalAccessToken>, Error> {
    p.require_staff()?;
    let rows = tx.scan(PATS, 1..=u64::MAX, usize::MAX, true)?;
    Ok(rows
        .into_iter()
        .map(|(_, t)| t)
        .filter(|t| t.revoked_at.is_none() && t.expires_at > now)
        .take(limit)
        .collect())
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

/// What `PATCH /api/v1/personal-access-tokens/{id}` may change; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct PatPatch {
    pub name: Option<String>,
    pub read_only: Option<bool>,
    pub access_global_metrics: Option<bool>,
}

/// The live PAT a management call acts on: a full session only (a PAT or API key never
/// manages PATs, so no token can widen or renew itself); the caller's own, or for staff any
/// user's inside the credential's scope; others → 404; revoked → 400.
fn managed(
    tx: &WriteTx,
    p: &Principal,
    id: u64,
    what: &str,
    staff_reaches_others: bool,
) -> Result<PersonalAccessToken, Error> {
    p.require_full_session(what)?;
    let row = tx
        .get(PATS, id)?
        .filter(|t| {
            (t.user_id == p.user_id || (staff_reaches_others && p.is_staff))
                && p.scope_covers(t.company_id)
        })
        .ok_or_else(|| Error::not_found("Personal access token"))?;
    if row.revoked_at.is_some() {
        return Err(Error::invalid("non_field_errors", "Already revoked."));
    }
    Ok(row)
}

/// Changes a PAT's name or scope flags. Staff may turn `access_global_metrics` and
/// `read_only` either way, on any user's PAT (granting a user's token global metrics is a
/// staff decision); the owner may rename it and tighten it (`read_only` on,
/// `access_global_metrics` off) but never widen it. The strings issued before no longer match
/// the row's flags and fail the scope check until [`reissue`] gives a new one.
pub fn update(
    tx: &WriteTx,
    p: &Principal,
    actor: &Actor,
    id: u64,
    patch: &PatPatch,
) -> Result<PersonalAccessToken, Error> {
    // Cached credential resolutions carry the flags this changes.
    tx.on_commit(Effect::CredentialsChanged);
    let mut row = managed(tx, p, id, "change personal access tokens", true)?;
    let owner = row.user_id == p.user_id;
    let mut changes = serde_json::Map::new();
    if let Some(name) = &patch.name {
        if !owner {
            return Err(Error::forbidden("Only its owner may rename a personal access token."));
        }
        let name = name.trim();
        if name.chars().count() > 200 {
            return Err(Error::invalid(
                "name",
                "Ensure this field has no more than 200 characters.",
            ));
        }
        if name != row.name {
            row.name = name.to_string();
            changes.insert("name".into(), json!(row.name));
        }
    }
    if let Some(ro) = patch.read_only {
        if !ro && row.read_only && !p.is_staff {
            return Err(Error::forbidden(
                "Only staff may lift the read-only restriction of a personal access token.",
            ));
        }
        if ro != row.read_only {
            row.read_only = ro;
            changes.insert("read_only".into(), json!(ro));
        }
    }
    if let Some(agm) = patch.access_global_metrics {
        if agm && !row.access_global_metrics && !p.is_staff {
            return Err(Error::forbidden("Only staff may give tokens access to global metrics."));
        }
        if agm != row.access_global_metrics {
            row.access_global_metrics = agm;
            changes.insert("access_global_metrics".into(), json!(agm));
        }
    }
    if changes.is_empty() {
        return Ok(row);
    }
    tx.put(PATS, id, &row)?;
    audit::record(
        tx,
        AuditEvent {
            actor,
            organization_id: row.company_id,
            action: "pat_updated",
            target_type: "personal_access_token",
            target_id: id.to_string(),
            details: json!({"changes": changes, "owner_id": row.user_id}),
        },
    )?;
    Ok(row)
}

/// Gives one of the caller's PATs a new `jti`: the string signed for it next carries the row's
/// current flags and the same expiry, and every earlier string stops matching the row. Only
/// the owner: a new string for someone else's PAT would let its holder act as that user.
/// An expired PAT is not renewed (400).
pub fn reissue(
    tx: &WriteTx,
    p: &Principal,
    actor: &Actor,
    id: u64,
    jti: &str,
    now: i64,
) -> Result<PersonalAccessToken, Error> {
    // Cached credential resolutions of the previous string must end now.
    tx.on_commit(Effect::CredentialsChanged);
    let mut row = managed(tx, p, id, "reissue personal access tokens", false)?;
    if row.expires_at <= now {
        return Err(Error::invalid("non_field_errors", "Personal access token expired."));
    }
    if row.company_id.is_none() {
        return Err(Error::invalid(
            "non_field_errors",
            "This personal access token names no organization; create a new one.",
        ));
    }
    row.jti = jti.to_string();
    tx.put(PATS, id, &row)?;
    audit::record(
        tx,
        AuditEvent {
            actor,
            organization_id: row.company_id,
            action: "pat_reissued",
            target_type: "personal_access_token",
            target_id: id.to_string(),
            details: json!({"name": row.name, "read_only": row.read_only,
                "access_global_metrics": row.access_global_metrics}),
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
