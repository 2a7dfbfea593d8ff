//! User API keys: created (shown once), listed, rotated with a grace period, revoked; the
//! staff view of every key and its statistics. Only digests of keys are stored.

use std::collections::BTreeMap;

use serde_json::json;

use crate::clock::unix_now;
use crate::domain::audit::{self, Actor, AuditEvent};
use crate::domain::credentials::tables::{
    API_KEYS, API_KEYS_BY_DIGEST, ORG_API_KEYS, USER_API_KEYS,
};
use crate::domain::credentials::{ApiKey, ApiKeyVersion};
use crate::domain::effects::{self, Counted, Effect};
use crate::domain::{CredentialKind, Error, Principal};
use crate::store::{Reader, WriteTx, Writer as _};

/// The kinds django-cfg knows.
pub const KEY_TYPES: [&str; 5] = ["service", "cli", "webhook", "internal", "development"];

/// A key about to be created; `digest` and `masked` come from the fresh secret.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    pub key_type: String,
    pub organization: Option<u64>,
    pub read_only: bool,
    pub ip_allowlist: Vec<String>,
    pub expires_at: Option<i64>,
    pub digest: String,
    pub masked: String,
}

/// `52df...1660` (django-cfg's `masked_key`).
pub fn mask(key: &str) -> String {
    if key.len() <= 8 {
        return key.to_string();
    }
    format!("{}...{}", &key[..4], &key[key.len() - 4..])
}

/// Parses allow-list entries: CIDRs, or bare addresses (as /32 or /128). 400 on a bad entry.
pub fn parse_allowlist(entries: &[String]) -> Result<Vec<ipnet::IpNet>, Error> {
    if entries.len() > 100 {
        return Err(Error::invalid("ip_allowlist", "At most 100 entries."));
    }
    entries
        .iter()
        .map(|e| {
            let e = e.trim();
            e.parse::<ipnet::IpNet>()
                .or_else(|_| e.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    Error::invalid("ip_allowlist", format!("'{e}' is not an IP address or CIDR."))
                })
        })
        .collect()
}

/// The request narrowed to what the parent credential `p` may hand on: its organization, its
/// read-only flag, its expiry and its allow-list are inherited when the request leaves them
/// open and must contain what the request asks for. Only full sessions create keys today and
/// they have no limits, so this is the rule that keeps holding if that ever changes.
pub fn within_parent(p: &Principal, new: &NewApiKey) -> Result<NewApiKey, Error> {
    let mut n = new.clone();
    if let Some(scope) = p.org_scope {
        match n.organization {
            None => n.organization = Some(scope),
            Some(o) if o != scope => {
                return Err(Error::invalid(
                    "organization",
                    "Must be the organization of the credential used.",
                ))
            }
            Some(_) => {}
        }
    }
    n.read_only |= p.read_only;
    if let Some(parent) = p.limits.expires_at {
        n.expires_at = Some(n.expires_at.map_or(parent, |e| e.min(parent)));
    }
    if !p.limits.ip_allowlist.is_empty() {
        // A stored list that no longer parses fails closed.
        let parent = parse_allowlist(&p.limits.ip_allowlist)
            .map_err(|_| Error::forbidden("The allow-list of the credential used is invalid."))?;
        if n.ip_allowlist.is_empty() {
            n.ip_allowlist = p.limits.ip_allowlist.clone();
        }
        for (entry, net) in n.ip_allowlist.iter().zip(parse_allowlist(&n.ip_allowlist)?) {
            if !parent.iter().any(|outer| outer.contains(&net)) {
                return Err(Error::invalid(
                    "ip_allowlist",
                    format!("'{}' is outside the allow-list of the credential used.", entry.trim()),
                ));
            }
        }
    }
    Ok(n)
}

/// Validates and stores a new key for `p` (full sessions only: a key must not mint keys).
pub fn create(
    tx: &WriteTx,
    p: &Principal,
    actor: &Actor,
    new: &NewApiKey,
) -> Result<ApiKey, Error> {
    create_for(tx, p, actor, p.user_id, new)
}

/// Validates and stores a new key owned by `owner`: the caller's own, or (staff with a full
/// session only: django-cfg's admin) another user's. The key is `created_by` the caller.
pub fn create_for(
    tx: &WriteTx,
    p: &Principal,
    actor: &Actor,
    owner: u64,
    new: &NewApiKey,
) -> Result<ApiKey, Error> {
    p.require_full_session("create API keys")?;
    if owner != p.user_id {
        p.require_staff()?;
        if crate::domain::accounts::get(tx, owner)?.is_none() {
            return Err(Error::invalid(
                "user",
                format!("Invalid pk \"{owner}\" - object does not exist."),
            ));
        }
        if new.organization.is_some() {
            // Membership is checked against the caller below; a key for someone else would
            // inherit an organization its owner may not belong to.
            return Err(Error::invalid("organization", "Not available for another user's key."));
        }
    }
    let new = &within_parent(p, new)?;
    let now = unix_now();
    let name = validate_name(&new.name)?;
    validate_key_type(&new.key_type)?;
    let nets = parse_allowlist(&new.ip_allowlist)?;
    if new.expires_at.is_some_and(|e| e <= now) {
        return Err(Error::invalid("expires_at", "Must be in the future."));
    }
    if let Some(org) = new.organization {
        if p.role_in(org).is_none() {
            return Err(Error::invalid(
                "organization",
                "You are not a member of this organization.",
            ));
        }
    }
    let id = tx.next_id("api_keys")?;
    if !tx.claim(API_KEYS_BY_DIGEST, &new.digest, id)? {
        return Err(Error::internal("api key digest collision"));
    }
    let key = ApiKey {
        id,
        user_id: owner,
        name,
        key_type: new.key_type.clone(),
        organization: new.organization,
        read_only: new.read_only,
        ip_allowlist: nets.iter().map(ToString::to_string).collect(),
        expires_at: new.expires_at,
        is_active: true,
        created_at: now,
        updated_at: now,
        created_by: Some(p.user_id),
        versions: vec![ApiKeyVersion {
            version: 1,
            digest: new.digest.clone(),
            masked: new.masked.clone(),
            created_at: now,
            valid_until: None,
            request_count: 0,
            last_used_at: None,
        }],
        ingest: false,
    };
    tx.put(API_KEYS, id, &key)?;
    tx.link(USER_API_KEYS, owner, id)?;
    if let Some(org) = key.organization {
        tx.link(ORG_API_KEYS, org, id)?;
        effects::count(tx, org, Counted::ApiKeys, 1);
    }
    audit::record(
        tx,
        AuditEvent {
            actor,
            organization_id: key.organization,
            action: "api_key_created",
            target_type: "api_key",
            target_id: id.to_string(),
            details: if owner == p.user_id {
                json!({"name": key.name, "key_type": key.key_type, "read_only": key.read_only})
            } else {
                json!({"name": key.name, "key_type": key.key_type, "read_only": key.read_only,
                       "user_id": owner})
            },
        },
    )?;
    Ok(key)
}

/// The caller's own keys, newest first.
/// Key `id`, if it exists (any owner: for staff views and the ingest check).
pub fn get(tx: &impl Reader, id: u64) -> Result<Option<ApiKey>, Error> {
    Ok(tx.get(API_KEYS, id)?)
}

/// What staff change on a key (`PATCH /api/grpc/api-keys/{id}/`); `None` leaves a field.
#[derive(Debug, Clone, Default)]
pub struct StaffChange {
    pub name: Option<String>,
    pub key_type: Option<String>,
    pub is_active: Option<bool>,
    /// `Some(None)` removes the expiry.
    pub expires_at: Option<Option<i64>>,
    /// May the key report calls to the monitor?
    pub ingest: Option<bool>,
}

fn validate_name(name: &str) -> Result<String, Error> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 255 {
        return Err(Error::invalid("name", "1-255 characters."));
    }
    Ok(name.to_string())
}

fn validate_key_type(t: &str) -> Result<(), Error> {
    if !KEY_TYPES.contains(&t) {
        return Err(Error::invalid(
            "key_type",
            format!("Must be one of: {}.", KEY_TYPES.join(", ")),
        ));
    }
    Ok(())
}

/// Applies staff's change to key `id` (any owner), audited with the changed fields only.
/// Staff with a full session only. Deactivation keeps the key's digests, so staff can turn it
/// back on; a key its owner revoked has released them and stays revoked (409).
pub fn staff_update(
    tx: &WriteTx,
    p: &Principal,
    actor: &Actor,
    id: u64,
    change: &StaffChange,
) -> Result<ApiKey, Error> {
    p.require_staff()?;
    p.require_full_session("manage other users' API keys")?;
    // Cached credential resolutions carry what this changes.
    tx.on_commit(Effect::CredentialsChanged);
    let mut k = tx.get(API_KEYS, id)?.ok_or_else(|| Error::not_found("API key"))?;
    let now = unix_now();
    let mut details = serde_json::Map::new();
    if let Some(name) = &change.name {
        let name = validate_name(name)?;
        if name != k.name {
            details.insert("previous_name".into(), json!(k.name));
            k.name = name;
        }
    }
    if let Some(t) = &change.key_type {
        validate_key_type(t)?;
        if *t != k.key_type {
            details.insert("key_type".into(), json!(t));
            k.key_type = t.clone();
        }
    }
    if let Some(e) = change.expires_at {
        if e.is_some_and(|e| e <= now) {
            return Err(Error::invalid("expires_at", "Must be in the future."));
        }
        if e != k.expires_at {
            details.insert("expires_at".into(), json!(e.map(crate::clock::rfc3339_from_unix)));
            k.expires_at = e;
        }
    }
    if let Some(on) = change.ingest {
        if on != k.ingest {
            details.insert("ingest".into(), json!(on));
            k.ingest = on;
        }
    }
    if let Some(on) = change.is_active {
        if on != k.is_active {
            if on && !holds_current_digest(tx, &k)? {
                return Err(Error::conflict("A revoked API key can't be reactivated."));
            }
            if let Some(org) = k.organization {
                effects::count(tx, org, Counted::ApiKeys, if on { 1 } else { -1 });
            }
            details.insert("is_active".into(), json!(on));
            k.is_active = on;
        }
    }
    if details.is_empty() {
        return Ok(k);
    }
    k.updated_at = now;
    tx.put(API_KEYS, id, &k)?;
    let mut all = serde_json::Map::new();
    all.insert("name".into(), json!(k.name));
    all.extend(details);
    audit::record(
        tx,
        AuditEvent {
            actor,
            organization_id: k.organization,
            action: "api_key_updated",
            target_type: "api_key",
            target_id: id.to_string(),
            details: serde_json::Value::Object(all),
        },
    )?;
    Ok(k)
}

/// Whether the key's current secret still resolves to it (false once its owner revoked it).
fn holds_current_digest(tx: &WriteTx, k: &ApiKey) -> Result<bool, Error> {
    match k.versions.last() {
        Some(v) => Ok(tx.lookup(API_KEYS_BY_DIGEST, &v.digest)? == Some(k.id)),
        None => Ok(false),
    }
}

/// Deletes key `id` (any owner) for good, audited. Staff with a full session only.
pub fn staff_delete(tx: &WriteTx, p: &Principal, actor: &Actor, id: u64) -> Result<ApiKey, Error> {
    p.require_staff()?;
    p.require_full_session("manage other users' API keys")?;
    // Cached credential resolutions carry what this changes.
    tx.on_commit(Effect::CredentialsChanged);
    let key = tx.get(API_KEYS, id)?.ok_or_else(|| Error::not_found("API key"))?;
    release_versions(tx, &key, false, 0)?;
    tx.unlink(USER_API_KEYS, key.user_id, id)?;
    if let Some(org) = key.organization {
        tx.unlink(ORG_API_KEYS, org, id)?;
        if key.is_active {
            effects::count(tx, org, Counted::ApiKeys, -1);
        }
    }
    tx.remove(API_KEYS, id)?;
    audit::record(
        tx,
        AuditEvent {
            actor,
            organization_id: key.organization,
            action: "api_key_deleted",
            target_type: "api_key",
            target_id: id.to_string(),
            details: json!({"name": key.name, "user_id": key.user_id}),
        },
    )?;
    Ok(key)
}

/// Active, unexpired keys: the one definition behind the overview's `active_api_keys`.
pub fn count_valid(tx: &impl Reader, now: i64) -> Result<u64, Error> {
    let keys = tx.scan(API_KEYS, 1..=u64::MAX, usize::MAX, false)?;
    Ok(keys.iter().filter(|(_, k)| k.is_valid(now)).count() as u64)
}

/// Active, unexpired keys per organization, every organization that has keys included (with
/// 0 when none is valid): the per-organization `api_keys` gauge.
pub fn valid_by_org(tx: &impl Reader, now: i64) -> Result<BTreeMap<u64, u64>, Error> {
    let mut out = BTreeMap::new();
    for (_, k) in tx.scan(API_KEYS, 1..=u64::MAX, usize::MAX, false)? {
        if let Some(org) = k.organization {
            *out.entry(org).or_insert(0) += u64::from(k.is_valid(now));
        }
    }
    Ok(out)
}

pub fn list_own(tx: &impl Reader, user_id: u64) -> Result<Vec<ApiKey>, Error> {
    let mut out = Vec::new();
    for id in tx.children(USER_API_KEYS, user_id)?.into_iter().rev() {
        if let Some(k) = tx.get(API_KEYS, id)? {
            out.push(k);
        }
    }
    Ok(out)
}

/// The caller's own keys inside the credential's scope (an org-scoped caller sees only that
/// organization's keys), newest first.
pub fn list_visible(tx: &impl Reader, p: &Principal) -> Result<Vec<ApiKey>, Error> {
    Ok(list_own(tx, p.user_id)?.into_iter().filter(|k| p.scope_covers(k.organization)).collect())
}

/// One of the caller's own keys inside the credential's scope (404 for anyone else's and for
/// keys outside the scope).
pub fn get_visible(tx: &impl Reader, p: &Principal, id: u64) -> Result<ApiKey, Error> {
    tx.get(API_KEYS, id)?
        .filter(|k| k.user_id == p.user_id && p.scope_covers(k.organization))
        .ok_or_else(|| Error::not_found("API key"))
}

/// A key the caller is about to rotate or revoke: a key may act on itself (that never widens
/// anything), any other key needs a full session.
fn get_for_change(tx: &impl Reader, p: &Principal, id: u64, what: &str) -> Result<ApiKey, Error> {
    let is_self = matches!(p.credential, CredentialKind::ApiKey { id: own, .. } if own == id);
    if !is_self {
        p.require_full_session(what)?;
    }
    get_visible(tx, p, id)
}

fn release_versions(tx: &WriteTx, key: &ApiKey, keep_current: bool, now: i64) -> Result<(), Error> {
    let last = key.versions.len().saturating_sub(1);
    for (i, v) in key.versions.iter().enumerate() {
        let live = keep_current && (i == last || v.valid_until.is_some_and(|u| u > now));
        if !live && tx.lookup(API_KEYS_BY_DIGEST, &v.digest)? == Some(key.id) {
            tx.release(API_KEYS_BY_DIGEST, &v.digest)?;
        }
    }
    Ok(())
}

/// Revokes a key for good (its digests are released, so it can never match again).
pub fn revoke(tx: &WriteTx, p: &Principal, actor: &Actor, id: u64) -> Result<ApiKey, Error> {
    // Cached credential resolutions carry what this changes.
    tx.on_commit(Effect::CredentialsChanged);
    let mut key = get_for_change(tx, p, id, "revoke other API keys")?;
    let now = unix_now();
    release_versions(tx, &key, false, now)?;
    if let (true, Some(org)) = (key.is_active, key.organization) {
        effects::count(tx, org, Counted::ApiKeys, -1);
    }
    key.is_active = false;
    key.updated_at = now;
    tx.put(API_KEYS, id, &key)?;
    audit::record(
        tx,
        AuditEvent {
            actor,
            organization_id: key.organization,
            action: "api_key_revoked",
            target_type: "api_key",
            target_id: id.to_string(),
            details: json!({"name": key.name}),
        },
    )?;
    Ok(key)
}

/// Adds a new secret; the previous one keeps working for `grace_seconds` (0: not at all).
pub fn rotate(
    tx: &WriteTx,
    p: &Principal,
    actor: &Actor,
    id: u64,
    digest: &str,
    masked: &str,
    grace_seconds: u64,
) -> Result<ApiKey, Error> {
    // Cached credential resolutions carry what this changes.
    tx.on_commit(Effect::CredentialsChanged);
    let mut key = get_for_change(tx, p, id, "rotate other API keys")?;
    let now = unix_now();
    if !key.is_valid(now) {
        return Err(Error::conflict("A revoked or expired API key can't be rotated."));
    }
    let grace = i64::try_from(grace_seconds.min(30 * 86_400)).unwrap_or(0);
    if let Some(current) = key.versions.last_mut() {
        current.valid_until = Some(now + grace);
    }
    let version = key.versions.last().map_or(1, |v| v.version + 1);
    if !tx.claim(API_KEYS_BY_DIGEST, digest, id)? {
        return Err(Error::internal("api key digest collision"));
    }
    key.versions.push(ApiKeyVersion {
        version,
        digest: digest.to_string(),
        masked: masked.to_string(),
        created_at: now,
        valid_until: None,
        request_count: 0,
        last_used_at: None,
    });
    release_versions(tx, &key, true, now)?;
    key.updated_at = now;
    tx.put(API_KEYS, id, &key)?;
    audit::record(
        tx,
        AuditEvent {
            actor,
            organization_id: key.organization,
            action: "api_key_rotated",
            target_type: "api_key",
            target_id: id.to_string(),
            details: json!({"name": key.name, "version": version, "grace_seconds": grace}),
        },
    )?;
    Ok(key)
}

/// Staff filters of `GET /api/grpc/api-keys/`.
#[derive(Debug, Clone, Default)]
pub struct StaffFilter {
    pub is_active: Option<bool>,
    pub key_type: Option<String>,
    pub user_id: Option<u64>,
}

/// Every key matching `f`, newest first (staff only).
pub fn list_all(tx: &impl Reader, p: &Principal, f: &StaffFilter) -> Result<Vec<ApiKey>, Error> {
    p.require_staff()?;
    let keys: Vec<ApiKey> = match f.user_id {
        Some(user) => list_own(tx, user)?,
        None => {
            tx.scan(API_KEYS, 1..=u64::MAX, usize::MAX, true)?.into_iter().map(|(_, k)| k).collect()
        }
    };
    Ok(keys
        .into_iter()
        .filter(|k| f.is_active.is_none_or(|a| k.is_active == a))
        .filter(|k| f.key_type.as_ref().is_none_or(|t| &k.key_type == t))
        .collect())
}

/// django-cfg's key statistics.
#[derive(Debug, Clone, Default)]
pub struct KeyStats {
    pub total_keys: u64,
    pub active_keys: u64,
    /// Active keys past their expiry.
    pub expired_keys: u64,
    pub total_requests: u64,
    pub keys_by_type: BTreeMap<String, u64>,
}

pub fn stats(tx: &impl Reader, p: &Principal) -> Result<KeyStats, Error> {
    let now = unix_now();
    let mut s = KeyStats::default();
    for k in list_all(tx, p, &StaffFilter::default())? {
        s.total_keys += 1;
        if k.is_active {
            s.active_keys += 1;
            if k.is_expired(now) {
                s.expired_keys += 1;
            }
        }
        s.total_requests += k.request_count();
        *s.keys_by_type.entry(k.key_type.clone()).or_default() += 1;
    }
    Ok(s)
}

/// Adds batched usage: `(key id, version) → (requests, last used)`.
pub fn apply_usage(tx: &WriteTx, usage: &BTreeMap<(u64, u32), (u64, i64)>) -> Result<(), Error> {
    let mut by_key: BTreeMap<u64, Vec<(u32, u64, i64)>> = BTreeMap::new();
    for ((id, version), (n, at)) in usage {
        by_key.entry(*id).or_default().push((*version, *n, *at));
    }
    for (id, updates) in by_key {
        let Some(mut key) = tx.get(API_KEYS, id)? else { continue };
        for (version, n, at) in updates {
            if let Some(v) = key.versions.iter_mut().find(|v| v.version == version) {
                v.request_count += n;
                v.last_used_at = Some(v.last_used_at.map_or(at, |old| old.max(at)));
            }
        }
        tx.put(API_KEYS, id, &key)?;
    }
    Ok(())
}

/// Deletes every key scoped to `org` (organization deletion).
pub fn delete_for_org(tx: &WriteTx, org: u64) -> Result<u64, Error> {
    // Cached credential resolutions carry what this changes.
    tx.on_commit(Effect::CredentialsChanged);
    let mut n = 0;
    for id in tx.children(ORG_API_KEYS, org)? {
        if let Some(key) = tx.get(API_KEYS, id)? {
            release_versions(tx, &key, false, 0)?;
            tx.unlink(USER_API_KEYS, key.user_id, id)?;
            tx.remove(API_KEYS, id)?;
            if key.is_active {
                effects::count(tx, org, Counted::ApiKeys, -1);
            }
            n += 1;
        }
        tx.unlink(ORG_API_KEYS, org, id)?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CredentialKind, CredentialLimits, Role};

    fn parent(org_scope: Option<u64>, read_only: bool, limits: CredentialLimits) -> Principal {
        Principal {
            user_id: 1,
            username: "u".into(),
            email: "u@example.com".into(),
            full_name: "U".into(),
            is_staff: false,
            memberships: [(3, Role::Admin), (4, Role::Admin)].into_iter().collect(),
            credential: CredentialKind::ApiKey { id: 9, name: "parent".into() },
            read_only,
            org_scope,
            company_id: org_scope,
            global_metrics: false,
            limits,
        }
    }

    fn request(organization: Option<u64>, allow: &[&str], expires_at: Option<i64>) -> NewApiKey {
        NewApiKey {
            name: "child".into(),
            key_type: "service".into(),
            organization,
            read_only: false,
            ip_allowlist: allow.iter().map(ToString::to_string).collect(),
            expires_at,
            digest: String::new(),
            masked: String::new(),
        }
    }

    #[test]
    fn children_inherit_and_never_exceed_the_parent() {
        let limits =
            CredentialLimits { ip_allowlist: vec!["10.0.0.0/8".into()], expires_at: Some(1_000) };
        let p = parent(Some(3), true, limits);
        let n = within_parent(&p, &request(None, &[], None)).unwrap();
        assert_eq!(n.organization, Some(3));
        assert!(n.read_only);
        assert_eq!(n.ip_allowlist, vec!["10.0.0.0/8".to_string()]);
        assert_eq!(n.expires_at, Some(1_000));
        // Narrower requests stand.
        let n = within_parent(&p, &request(Some(3), &["10.1.0.0/16"], Some(500))).unwrap();
        assert_eq!((n.ip_allowlist[0].as_str(), n.expires_at), ("10.1.0.0/16", Some(500)));
        // A later expiry is cut to the parent's.
        assert_eq!(
            within_parent(&p, &request(None, &[], Some(5_000))).unwrap().expires_at,
            Some(1_000)
        );
        // Wider requests are refused.
        assert!(within_parent(&p, &request(Some(4), &[], None)).is_err());
        assert!(within_parent(&p, &request(None, &["0.0.0.0/0"], None)).is_err());
        assert!(within_parent(&p, &request(None, &["10.0.0.1", "192.168.1.1"], None)).is_err());
        // An unparsable stored list fails closed.
        let broken = CredentialLimits { ip_allowlist: vec!["nonsense".into()], expires_at: None };
        assert!(within_parent(&parent(None, false, broken), &request(None, &[], None)).is_err());
        // An unlimited parent leaves the request as it is.
        let free = parent(None, false, CredentialLimits::default());
        let n = within_parent(&free, &request(Some(4), &["1.2.3.4"], None)).unwrap();
        assert_eq!((n.organization, n.read_only, n.expires_at), (Some(4), false, None));
    }

    #[test]
    fn only_full_sessions_are_full() {
        let mut p = parent(None, false, CredentialLimits::default());
        assert!(!p.is_full_session(), "an API key is never a full session");
        for kind in [
            CredentialKind::Token { id: 1 },
            CredentialKind::Session { id: 1 },
            CredentialKind::Jwt { jti: "j".into() },
            CredentialKind::Basic,
        ] {
            p.credential = kind;
            assert!(p.is_full_session());
        }
        p.credential = CredentialKind::Pat { id: 1 };
        assert!(!p.is_full_session());
        p.credential = CredentialKind::Token { id: 1 };
        p.read_only = true;
        assert!(!p.is_full_session());
        p.read_only = false;
        p.org_scope = Some(3);
        assert!(!p.is_full_session());
    }
}
