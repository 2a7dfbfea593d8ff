//! Organizations and their members: who may create, change and delete them, and the rule that
//! an organization always keeps at least one admin.

use std::collections::BTreeMap;

use serde_json::json;

use crate::clock::unix_now;
use crate::domain::accounts::tables::{USERS, USERS_BY_EMAIL};
use crate::domain::accounts::{self, membership_key};
use crate::domain::audit::{self, Actor, AuditEvent};
use crate::domain::effects::{Counted, Effect};
use crate::domain::orgs::tables::{
    MEMBERSHIPS, MEMBERSHIP_IDS, ORGANIZATIONS, ORGANIZATION_UUIDS, ORG_MEMBERS, USER_ORGS,
};
use crate::domain::records::{Membership, Organization, User};
use crate::domain::{Error, Principal, Role};
use crate::store::{Reader, StoreError, WriteTx, Writer as _};

/// Most members one organization may have (KeyNest's limit).
pub const MAX_MEMBERS: u64 = 100;

/// An organization as the API shows it to one caller.
#[derive(Debug, Clone)]
pub struct OrgView {
    pub org: Organization,
    pub member_count: u64,
    pub project_count: u64,
    pub user_role: Option<Role>,
}

/// One member as the API shows it.
#[derive(Debug, Clone)]
pub struct MemberView {
    pub user: User,
    pub role: Role,
    pub joined_at: i64,
}

/// Validates and normalises an organization name: trimmed, 2–255 characters.
pub fn clean_name(name: &str) -> Result<String, Error> {
    let name = name.trim();
    if name.chars().count() < 2 {
        return Err(Error::invalid(
            "name",
            "Organization name must be at least 2 characters long.",
        ));
    }
    if name.chars().count() > 255 {
        return Err(Error::invalid("name", "Ensure this field has no more than 255 characters."));
    }
    Ok(name.to_string())
}

fn check_description(d: &Option<String>) -> Result<(), Error> {
    if d.as_ref().is_some_and(|d| d.chars().count() > 10_000) {
        return Err(Error::invalid(
            "description",
            "Ensure this field has no more than 10000 characters.",
        ));
    }
    Ok(())
}

/// The view of `org` for `p`.
pub fn view(tx: &impl Reader, p: &Principal, org: Organization) -> Result<OrgView, StoreError> {
    Ok(OrgView {
        member_count: tx.count_children(ORG_MEMBERS, org.id)?,
        project_count: crate::domain::cascade::organization_project_count(tx, org.id)?,
        user_role: p.role_in(org.id),
        org,
    })
}

/// Organizations visible to `p`, in id order.
pub fn list(tx: &impl Reader, p: &Principal) -> Result<Vec<OrgView>, Error> {
    let mut out = Vec::new();
    for id in accounts::memberships_of(tx, p.user_id)?.keys() {
        if p.org_scope.is_some_and(|s| s != *id) {
            continue;
        }
        if let Some(org) = tx.get(ORGANIZATIONS, *id)? {
            out.push(view(tx, p, org)?);
        }
    }
    Ok(out)
}

/// One organization the caller belongs to (404 otherwise).
pub fn get(tx: &impl Reader, p: &Principal, id: u64) -> Result<OrgView, Error> {
    live_role(tx, p, id, Role::Viewer)?;
    let org = tx.get(ORGANIZATIONS, id)?.ok_or_else(|| Error::not_found("Organization"))?;
    Ok(view(tx, p, org)?)
}

/// The organization a path names by integer id or by UUID (Unstract's routes use the
/// UUID); `None` when it names none. Membership is the caller's check.
pub fn resolve_ref(tx: &impl Reader, reference: &str) -> Result<Option<u64>, Error> {
    let reference = reference.trim();
    if let Ok(id) = reference.parse::<u64>() {
        return Ok(tx.get(ORGANIZATIONS, id)?.map(|o| o.id));
    }
    match uuid::Uuid::parse_str(reference) {
        Ok(u) => Ok(tx.lookup(ORGANIZATION_UUIDS, &u.hyphenated().to_string())?),
        Err(_) => Ok(None),
    }
}

/// Whether organization `id` exists (no caller check: `/api/v1/metrics` answers an unknown
/// organization with 404 before it checks the caller, as ShellUI does).
pub fn exists(tx: &impl Reader, id: u64) -> Result<bool, Error> {
    Ok(tx.get(ORGANIZATIONS, id)?.is_some())
}

/// The live object counts of every organization, read once at start; commit effects
/// (`Effect::Counted`) keep them current afterwards. Walks the organizations and their
/// by-organization indexes; active credentials are those not revoked (and, for API keys,
/// not expired).
pub fn object_counts(tx: &impl Reader) -> Result<Vec<(u64, Counted, i64)>, Error> {
    use crate::domain::credentials::tables::{API_KEYS, ORG_API_KEYS, ORG_PATS, PATS};
    use crate::domain::secrets::tables::{ENVIRONMENTS_BY_ORG, PROJECTS_BY_ORG, VARIABLES_BY_ORG};
    let to_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let mut out = Vec::new();
    for (org, _) in tx.scan(ORGANIZATIONS, 1..=u64::MAX, usize::MAX, false)? {
        out.push((org, Counted::Projects, to_i64(tx.count_children(PROJECTS_BY_ORG, org)?)));
        let envs = tx.count_children(ENVIRONMENTS_BY_ORG, org)?;
        out.push((org, Counted::Environments, to_i64(envs)));
        out.push((org, Counted::Variables, to_i64(tx.count_children(VARIABLES_BY_ORG, org)?)));
        let keys = tx.get_many(API_KEYS, &tx.children(ORG_API_KEYS, org)?)?;
        // Active and unexpired, as the scrape-time recount (`api_keys::valid_by_org`).
        let now = crate::clock::unix_now();
        let active = keys.iter().filter(|k| k.is_valid(now)).count();
        out.push((org, Counted::ApiKeys, i64::try_from(active).unwrap_or(i64::MAX)));
        let pats = tx.get_many(PATS, &tx.children(ORG_PATS, org)?)?;
        let active = pats.iter().filter(|t| t.revoked_at.is_none()).count();
        out.push((org, Counted::Pats, i64::try_from(active).unwrap_or(i64::MAX)));
    }
    Ok(out)
}

/// The caller's current role in `org`, read inside the transaction (not from the possibly
/// older principal), honouring an API key's scope. Not a member → 404; lower role → 403.
fn live_role(tx: &impl Reader, p: &Principal, org: u64, min: Role) -> Result<Role, Error> {
    if p.org_scope.is_some_and(|s| s != org) {
        return Err(Error::not_found("Organization"));
    }
    let role = role_of(tx, org, p.user_id)?.ok_or_else(|| Error::not_found("Organization"))?;
    if role < min {
        return Err(Error::forbidden("You do not have permission to perform this action."));
    }
    Ok(role)
}

/// The role of `user_id` in `org`, if a member.
pub fn role_of(tx: &impl Reader, org: u64, user_id: u64) -> Result<Option<Role>, StoreError> {
    Ok(membership_row(tx, org, user_id)?.map(|(_, m)| m.role))
}

fn membership_row(
    tx: &impl Reader,
    org: u64,
    user_id: u64,
) -> Result<Option<(u64, Membership)>, StoreError> {
    let Some(mid) = tx.lookup(MEMBERSHIP_IDS, &membership_key(org, user_id))? else {
        return Ok(None);
    };
    Ok(tx.get(MEMBERSHIPS, mid)?.map(|m| (mid, m)))
}

fn has_duplicate_name(
    tx: &impl Reader,
    user_id: u64,
    name: &str,
    except: u64,
) -> Result<bool, Error> {
    let lower = name.to_lowercase();
    for org in tx.children(USER_ORGS, user_id)? {
        if org == except {
            continue;
        }
        if tx.get(ORGANIZATIONS, org)?.is_some_and(|o| o.name.to_lowercase() == lower) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Creates an organization with the caller as admin.
pub fn create(
    tx: &WriteTx,
    p: &Principal,
    actor: &Actor,
    name: &str,
    description: Option<String>,
) -> Result<OrgView, Error> {
    let name = clean_name(name)?;
    check_description(&description)?;
    if has_duplicate_name(tx, p.user_id, &name, 0)? {
        return Err(Error::conflict("You already have an organization with this name."));
    }
    let org = accounts::create_organization(tx, p.user_id, &name, description)?;
    audit::record(
        tx,
        AuditEvent {
            actor,
            organization_id: Some(org.id),
            action: "organization_created",
            target_type: "organization",
            target_id: org.id.to_string(),
            details: json!({"name": org.name}),
        },
    )?;
    Ok(OrgView { member_count: 1, project_count: 0, user_role: Some(Role::Admin), org })
}

/// Changes name and/or description (admin only: settings belong to admins, editors manage
/// projects, environments and variables — L8).
pub fn update(
    tx: &WriteTx,
    p: &Principal,
    actor: &Actor,
    id: u64,
    name: Option<&str>,
    description: Option<Option<String>>,
) -> Result<OrgView, Error> {
    live_role(tx, p, id, Role::Admin)?;
    let mut org = tx.get(ORGANIZATIONS, id)?.ok_or_else(|| Error::not_found("Organization"))?;
    let mut changed = Vec::new();
    if let Some(name) = name {
        let name = clean_name(name)?;
        if has_duplicate_name(tx, p.user_id, &name, id)? {
            return Err(Error::conflict("You already have an organization with this name."));
        }
        if name != org.name {
            org.name = name;
            changed.push("name");
        }
    }
    if let Some(d) = description {
        check_description(&d)?;
        org.description = d;
        changed.push("description");
    }
    org.updated_at = unix_now();
    tx.put(ORGANIZATIONS, id, &org)?;
    audit::record(
        tx,
        AuditEvent {
            actor,
            organization_id: Some(id),
            action: "organization_updated",
            target_type: "organization",
            target_id: id.to_string(),
            details: json!({"fields": changed, "name": org.name}),
        },
    )?;
    Ok(view(tx, p, org)?)
}

/// Deletes an organization and everything it owns (admin only).
pub fn delete(tx: &WriteTx, p: &Principal, actor: &Actor, id: u64) -> Result<(), Error> {
    // Cached credential resolutions carry what this changes.
    tx.on_commit(Effect::CredentialsChanged);
    live_role(tx, p, id, Role::Admin)?;
    let org = tx.get(ORGANIZATIONS, id)?.ok_or_else(|| Error::not_found("Organization"))?;
    let removed = crate::domain::cascade::delete_organization_children(tx, id)?;
    let members = tx.children(ORG_MEMBERS, id)?;
    for user_id in &members {
        drop_membership(tx, id, *user_id)?;
    }
    tx.remove(ORGANIZATIONS, id)?;
    if !org.uuid.is_empty() {
        tx.release(ORGANIZATION_UUIDS, &org.uuid)?;
    }
    audit::record(
        tx,
        AuditEvent {
            actor,
            organization_id: Some(id),
            action: "organization_deleted",
            target_type: "organization",
            target_id: id.to_string(),
            details: json!({"name": org.name, "members": members.len(), "removed": removed}),
        },
    )?;
    Ok(())
}

fn drop_membership(tx: &WriteTx, org: u64, user_id: u64) -> Result<Option<Membership>, Error> {
    let Some((mid, m)) = membership_row(tx, org, user_id)? else { return Ok(None) };
    tx.remove(MEMBERSHIPS, mid)?;
    tx.release(MEMBERSHIP_IDS, &membership_key(org, user_id))?;
    tx.unlink(ORG_MEMBERS, org, user_id)?;
    tx.unlink(USER_ORGS, user_id, org)?;
    Ok(Some(m))
}

/// Members of an organization, by join time (admin only, as KeyNest's action is).
pub fn members(tx: &impl Reader, p: &Principal, org: u64) -> Result<Vec<MemberView>, Error> {
    live_role(tx, p, org, Role::Admin)?;
    let mut out = Vec::new();
    for user_id in tx.children(ORG_MEMBERS, org)? {
        let (Some((_, m)), Some(user)) =
            (membership_row(tx, org, user_id)?, tx.get(USERS, user_id)?)
        else {
            continue;
        };
        out.push(MemberView { user, role: m.role, joined_at: m.joined_at });
    }
    out.sort_by_key(|m| (m.joined_at, m.user.id));
    Ok(out)
}

/// Parses a role name (400 otherwise).
pub fn parse_role(field: &str, role: &str) -> Result<Role, Error> {
    Role::parse(role)
        .ok_or_else(|| Error::invalid(field, "Invalid role. Must be admin, editor, or viewer"))
}

/// Adds an existing account by email (admin only).
pub fn add_member(
    tx: &WriteTx,
    p: &Principal,
    actor: &Actor,
    org: u64,
    email: &str,
    role: Role,
) -> Result<MemberView, Error> {
    // Cached credential resolutions carry what this changes.
    tx.on_commit(Effect::CredentialsChanged);
    live_role(tx, p, org, Role::Admin)?;
    let org_row = tx.get(ORGANIZATIONS, org)?.ok_or_else(|| Error::not_found("Organization"))?;
    let email = email.trim().to_lowercase();
    if email.is_empty() {
        return Err(Error::invalid("email", "Email is required"));
    }
    if !accounts::valid_email(&email) {
        return Err(Error::invalid("email", "Invalid email format"));
    }
    let user = match tx.lookup(USERS_BY_EMAIL, &email)? {
        Some(id) => tx.get(USERS, id)?,
        None => None,
    };
    let Some(user) = user else {
        return Err(Error::invalid(
            "email",
            "Unable to invite user. Please ensure the email is correct and the user has an account.",
        ));
    };
    if role_of(tx, org, user.id)?.is_some() {
        return Err(Error::conflict("User is already a member of this organization"));
    }
    if tx.count_children(ORG_MEMBERS, org)? >= MAX_MEMBERS {
        return Err(Error::invalid(
            "email",
            "Organization has reached the maximum number of members",
        ));
    }
    accounts::add_membership(tx, org, user.id, role)?;
    audit::record(
        tx,
        AuditEvent {
            actor,
            organization_id: Some(org),
            action: "member_added",
            target_type: "membership",
            target_id: org.to_string(),
            details: json!({
                "user_id": user.id, "role": role.as_str(), "organization_name": org_row.name,
            }),
        },
    )?;
    Ok(MemberView { user, role, joined_at: unix_now() })
}

fn admin_count(tx: &impl Reader, org: u64) -> Result<usize, Error> {
    let mut n = 0;
    for user_id in tx.children(ORG_MEMBERS, org)? {
        if role_of(tx, org, user_id)? == Some(Role::Admin) {
            n += 1;
        }
    }
    Ok(n)
}

/// Changes a member's role (admin only); the last admin can't be demoted (409).
/// Returns the member and the previous role.
pub fn update_member_role(
    tx: &WriteTx,
    p: &Principal,
    actor: &Actor,
    org: u64,
    user_id: u64,
    role: Role,
) -> Result<(MemberView, Role), Error> {
    // Cached credential resolutions carry what this changes.
    tx.on_commit(Effect::CredentialsChanged);
    live_role(tx, p, org, Role::Admin)?;
    let (mid, mut m) =
        membership_row(tx, org, user_id)?.ok_or_else(|| Error::not_found("Member"))?;
    let user = tx.get(USERS, user_id)?.ok_or_else(|| Error::not_found("Member"))?;
    let old = m.role;
    if old == role {
        return Ok((MemberView { user, role, joined_at: m.joined_at }, old));
    }
    if old == Role::Admin && admin_count(tx, org)? <= 1 {
        return Err(Error::conflict("Cannot change role of the last admin in the organization"));
    }
    m.role = role;
    tx.put(MEMBERSHIPS, mid, &m)?;
    audit::record(
        tx,
        AuditEvent {
            actor,
            organization_id: Some(org),
            action: "member_updated",
            target_type: "membership",
            target_id: org.to_string(),
            details: json!({"user_id": user_id, "old_role": old.as_str(), "new_role": role.as_str()}),
        },
    )?;
    Ok((MemberView { user, role, joined_at: m.joined_at }, old))
}

/// Removes a member (admin only), or the caller leaves (any member: members are added without
/// their consent, so they must be able to walk out). The last admin can't be removed nor leave
/// (409).
pub fn remove_member(
    tx: &WriteTx,
    p: &Principal,
    actor: &Actor,
    org: u64,
    user_id: u64,
) -> Result<MemberView, Error> {
    // Cached credential resolutions carry what this changes.
    tx.on_commit(Effect::CredentialsChanged);
    let leaving = user_id == p.user_id;
    live_role(tx, p, org, if leaving { Role::Viewer } else { Role::Admin })?;
    let org_row = tx.get(ORGANIZATIONS, org)?.ok_or_else(|| Error::not_found("Organization"))?;
    let role = role_of(tx, org, user_id)?.ok_or_else(|| Error::not_found("Member"))?;
    if role == Role::Admin && admin_count(tx, org)? <= 1 {
        return Err(Error::conflict(if leaving {
            "You are the last admin of this organization: make another member admin, or \
             delete the organization."
        } else {
            "Cannot remove the last admin from the organization"
        }));
    }
    let user = tx.get(USERS, user_id)?.ok_or_else(|| Error::not_found("Member"))?;
    let m = drop_membership(tx, org, user_id)?.ok_or_else(|| Error::not_found("Member"))?;
    audit::record(
        tx,
        AuditEvent {
            actor,
            organization_id: Some(org),
            action: if leaving { "member_left" } else { "member_removed" },
            target_type: "membership",
            target_id: org.to_string(),
            details: json!({"user_id": user_id, "role": role.as_str(), "organization_name": org_row.name}),
        },
    )?;
    Ok(MemberView { user, role, joined_at: m.joined_at })
}

/// Roles by organization for a set of users (used by tests and views).
pub fn roles(tx: &impl Reader, org: u64) -> Result<BTreeMap<u64, Role>, Error> {
    let mut out = BTreeMap::new();
    for user_id in tx.children(ORG_MEMBERS, org)? {
        if let Some(r) = role_of(tx, org, user_id)? {
            out.insert(user_id, r);
        }
    }
    Ok(out)
}

/// Organizations and memberships. Keys and values are described on each line.
pub mod tables {
    use crate::store::schema::TableInfo;
    #[allow(unused_imports)] // each area uses a different subset of the three shapes
    use crate::store::{IndexTable, LookupTable, RecordTable};

    /// `organization id → Organization`.
    pub const ORGANIZATIONS: RecordTable<crate::domain::records::Organization> =
        RecordTable::new("organizations");
    /// `membership id → Membership`.
    pub const MEMBERSHIPS: RecordTable<crate::domain::records::Membership> =
        RecordTable::new("memberships");
    /// `(organization id, user id) → ()`: members of an organization. The membership row is found
    /// through `MEMBERSHIP_IDS`.
    pub const ORG_MEMBERS: IndexTable = IndexTable::new("org_members");
    /// `(user id, organization id) → ()`: organizations of a user.
    pub const USER_ORGS: IndexTable = IndexTable::new("user_orgs");
    /// `"<organization id>/<user id>" → membership id`.
    pub const MEMBERSHIP_IDS: LookupTable = LookupTable::new("membership_ids");
    /// `"<organization uuid>" → organization id`.
    pub const ORGANIZATION_UUIDS: LookupTable = LookupTable::new("organization_uuids");

    /// This area's tables, for the schema registry (backup, check, dumps).
    pub const TABLES: &[TableInfo] = &[
        ORGANIZATIONS.info(),
        MEMBERSHIPS.info(),
        ORG_MEMBERS.info(),
        USER_ORGS.info(),
        MEMBERSHIP_IDS.info(),
        ORGANIZATION_UUIDS.info(),
    ];

    /// Migration 3: every organization gets a UUID (Unstract's routes name organizations by
    /// one) and the lookup from it.
    pub fn organization_uuids(tx: &crate::store::WriteTx) -> Result<(), crate::store::StoreError> {
        use crate::store::{Reader as _, Writer as _};
        for (id, mut org) in tx.scan(ORGANIZATIONS, 1..=u64::MAX, usize::MAX, false)? {
            if org.uuid.is_empty() {
                org.uuid = uuid::Uuid::new_v4().to_string();
                tx.put(ORGANIZATIONS, id, &org)?;
            }
            tx.set_lookup(ORGANIZATION_UUIDS, &org.uuid, id)?;
        }
        Ok(())
    }
}
