//! Accounts: registration (with the personal organization), login bookkeeping, tokens and
//! sessions, profile changes, and the live memberships a principal carries.

use std::collections::BTreeMap;

use serde_json::json;

use crate::clock::unix_now;
use crate::domain::accounts::tables::{USERS, USERS_BY_EMAIL, USERS_BY_USERNAME};
use crate::domain::audit::{self, Actor, AuditEvent};
use crate::domain::credentials::tables::{TOKENS, TOKENS_BY_DIGEST, USER_TOKENS};
use crate::domain::credentials::{LoginToken, TokenKind};
use crate::domain::effects::Effect;
use crate::domain::orgs::tables::{
    MEMBERSHIPS, MEMBERSHIP_IDS, ORGANIZATIONS, ORGANIZATION_UUIDS, ORG_MEMBERS, USER_ORGS,
};
use crate::domain::records::{Membership, Organization, User};
use crate::domain::{Error, Role};
use crate::store::{Reader, StoreError, WriteTx, Writer as _};

/// A validated registration, with the password already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub password_hash: String,
    pub is_staff: bool,
}

/// Plain registration fields as the client sent them (password checked, not stored).
pub struct Registration<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub password: &'a str,
    pub confirm_password: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    /// Which client's field names the errors use.
    pub form: FormNames,
}

/// The names a registration form gives its password fields, so that each client reads its
/// errors under the fields it sent.
#[derive(Debug, Clone, Copy)]
pub struct FormNames {
    pub password: &'static str,
    pub confirm: &'static str,
    /// Where a mismatch of the two passwords is reported, and how.
    pub mismatch: (&'static str, &'static str),
    /// KeyNest requires a username; dj-rest-auth derives one from the email.
    pub username_required: bool,
}

impl FormNames {
    /// KeyNest's `username`, `password`, `confirm_password`.
    pub const KEYNEST: Self = Self {
        password: "password",
        confirm: "confirm_password",
        mismatch: ("confirm_password", "Passwords do not match."),
        username_required: true,
    };
    /// dj-rest-auth's `email`, `password1`, `password2` (its serializer reports a mismatch as
    /// a non-field error).
    pub const DJ_REST_AUTH: Self = Self {
        password: "password1",
        confirm: "password2",
        mismatch: ("non_field_errors", "The two password fields didn't match."),
        username_required: false,
    };
}

/// A token about to be stored: its digest, kind and expiry.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub digest: String,
    pub kind: TokenKind,
    pub expires_at: Option<i64>,
    /// Refresh tokens issued by rotation: the family of the token they replace.
    pub family: Option<u64>,
}

/// `local@domain.tld`, no spaces, ≤ 254 characters.
pub fn valid_email(email: &str) -> bool {
    if email.len() > 254 || email.chars().any(char::is_whitespace) {
        return false;
    }
    let Some((local, domain)) = email.split_once('@') else { return false };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
}

fn valid_username(u: &str) -> bool {
    (3..=150).contains(&u.chars().count())
        && u.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

/// Field checks of `POST /api/auth/register/` (KeyNest's serializer rules, with a configurable
/// minimum password length).
pub fn validate_registration(r: &Registration<'_>, min_password: usize) -> Result<(), Error> {
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut add = |f: &str, m: &str| errors.entry(f.to_string()).or_default().push(m.to_string());
    if r.username.is_empty() {
        add("username", "This field is required.");
    } else if !valid_username(r.username) {
        add("username", "3-150 characters: letters, digits, '_', '-' or '.'.");
    }
    if r.email.is_empty() {
        add("email", "This field is required.");
    } else if !valid_email(r.email) {
        add("email", "Enter a valid email address.");
    }
    let pw = r.form.password;
    if r.password.chars().count() < min_password {
        add(pw, &format!("Ensure this field has at least {min_password} characters."));
    } else if r.password.len() > 1024 {
        add(pw, "Ensure this field has no more than 1024 characters.");
    }
    if r.password.eq_ignore_ascii_case(r.email) || r.password.eq_ignore_ascii_case(r.username) {
        add(pw, "The password is too similar to the email or username.");
    }
    if r.password != r.confirm_password {
        add(r.form.mismatch.0, r.form.mismatch.1);
    }
    if r.first_name.chars().count() > 150 {
        add("first_name", "Ensure this field has no more than 150 characters.");
    }
    if r.last_name.chars().count() > 150 {
        add("last_name", "Ensure this field has no more than 150 characters.");
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid_fields(errors))
    }
}

/// Creates a user (unique email and username → 409). Does not audit.
pub fn create_user(tx: &WriteTx, new: &NewUser) -> Result<User, Error> {
    let email = new.email.to_lowercase();
    let username_key = new.username.to_lowercase();
    let id = tx.next_id("users")?;
    if !tx.claim(USERS_BY_EMAIL, &email, id)? {
        return Err(Error::conflict("User with this email already exists."));
    }
    if !tx.claim(USERS_BY_USERNAME, &username_key, id)? {
        return Err(Error::conflict("Username already exists."));
    }
    let user = User {
        id,
        username: new.username.clone(),
        email,
        first_name: new.first_name.clone(),
        last_name: new.last_name.clone(),
        password_hash: new.password_hash.clone(),
        is_staff: new.is_staff,
        is_active: true,
        date_joined: unix_now(),
        last_login: None,
        credentials_epoch: 0,
    };
    tx.put(USERS, id, &user)?;
    Ok(user)
}

/// Adds `user_id` to `org_id` with `role` (no audit; callers record why).
pub fn add_membership(tx: &WriteTx, org_id: u64, user_id: u64, role: Role) -> Result<u64, Error> {
    // Cached credential resolutions carry what this changes.
    tx.on_commit(Effect::CredentialsChanged);
    let id = tx.next_id("memberships")?;
    if !tx.claim(MEMBERSHIP_IDS, &membership_key(org_id, user_id), id)? {
        return Err(Error::conflict("User is already a member of this organization."));
    }
    let m = Membership { user_id, organization_id: org_id, role, joined_at: unix_now() };
    tx.put(MEMBERSHIPS, id, &m)?;
    tx.link(ORG_MEMBERS, org_id, user_id)?;
    tx.link(USER_ORGS, user_id, org_id)?;
    Ok(id)
}

/// The key of `MEMBERSHIP_IDS`.
pub fn membership_key(org_id: u64, user_id: u64) -> String {
    format!("{org_id}/{user_id}")
}

/// Creates an organization with `owner` as its admin (no audit).
pub fn create_organization(
    tx: &WriteTx,
    owner: u64,
    name: &str,
    description: Option<String>,
) -> Result<Organization, Error> {
    let id = tx.next_id("organizations")?;
    let now = unix_now();
    let org = Organization {
        id,
        uuid: uuid::Uuid::new_v4().to_string(),
        name: name.to_string(),
        description,
        created_by: owner,
        created_at: now,
        updated_at: now,
    };
    tx.put(ORGANIZATIONS, id, &org)?;
    tx.set_lookup(ORGANIZATION_UUIDS, &org.uuid, id)?;
    add_membership(tx, id, owner, Role::Admin)?;
    Ok(org)
}

/// Registration in one transaction: the user, "<first name or username>'s Organization" with the
/// user as admin, a login token, and the audit record.
/// `derive_username`: `new.username` is a base derived from the email, made unique here
/// (dj-rest-auth's form sends no username).
pub fn register(
    tx: &WriteTx,
    new: &NewUser,
    derive_username: bool,
    grant: &TokenGrant,
    ip: Option<std::net::IpAddr>,
) -> Result<(User, Organization), Error> {
    let user = if derive_username {
        let mut new = new.clone();
        new.username = super::usernames::free(tx, &new.username)?;
        create_user(tx, &new)?
    } else {
        create_user(tx, new)?
    };
    let owner = if user.first_name.trim().is_empty() { &user.username } else { &user.first_name };
    let org = create_organization(
        tx,
        user.id,
        &format!("{}'s Organization", owner.trim()),
        Some("Personal organization".into()),
    )?;
    issue_token(tx, &user, grant)?;
    let actor = actor_for(&user, ip);
    audit::record(
        tx,
        AuditEvent {
            actor: &actor,
            organization_id: Some(org.id),
            action: "user_registered",
            target_type: "user",
            target_id: user.id.to_string(),
            details: json!({"registration": true, "organization_created": org.id}),
        },
    )?;
    Ok((user, org))
}

/// The audit actor for a user.
pub fn actor_for(user: &User, ip: Option<std::net::IpAddr>) -> Actor {
    Actor {
        user_id: Some(user.id),
        name: user.full_name(),
        email: user.email.clone(),
        ip: ip.map(|i| i.to_string()),
    }
}

/// Stores a token or session for `user`; returns its id.
pub fn issue_token(tx: &WriteTx, user: &User, grant: &TokenGrant) -> Result<u64, Error> {
    let id = tx.next_id("tokens")?;
    if !tx.claim(TOKENS_BY_DIGEST, &grant.digest, id)? {
        return Err(Error::internal("token digest collision"));
    }
    let row = LoginToken {
        id,
        user_id: user.id,
        kind: grant.kind,
        digest: grant.digest.clone(),
        created_at: unix_now(),
        expires_at: grant.expires_at,
        epoch: user.credentials_epoch,
        family: grant.family,
        rotated_at: None,
    };
    tx.put(TOKENS, id, &row)?;
    tx.link(USER_TOKENS, user.id, id)?;
    Ok(id)
}

/// Deletes one token or session row; `false` if it was already gone.
pub fn revoke_token(tx: &WriteTx, id: u64) -> Result<bool, Error> {
    // Cached credential resolutions carry what this changes.
    tx.on_commit(Effect::CredentialsChanged);
    let Some(row) = tx.get(TOKENS, id)? else { return Ok(false) };
    tx.release(TOKENS_BY_DIGEST, &row.digest)?;
    tx.unlink(USER_TOKENS, row.user_id, id)?;
    tx.remove(TOKENS, id)?;
    Ok(true)
}

/// Deletes every token and session of `user_id` except `keep`.
pub fn revoke_user_tokens(tx: &WriteTx, user_id: u64, keep: &[u64]) -> Result<usize, Error> {
    // Cached credential resolutions carry what this changes.
    tx.on_commit(Effect::CredentialsChanged);
    let mut n = 0;
    for id in tx.children(USER_TOKENS, user_id)? {
        if !keep.contains(&id) && revoke_token(tx, id)? {
            n += 1;
        }
    }
    Ok(n)
}

/// The account with `id`, if any.
pub fn get(tx: &impl Reader, id: u64) -> Result<Option<User>, StoreError> {
    tx.get(USERS, id)
}

/// Finds an account by email or username (case-insensitive).
pub fn find_by_login(tx: &impl Reader, ident: &str) -> Result<Option<User>, StoreError> {
    let key = ident.trim().to_lowercase();
    let id = match tx.lookup(USERS_BY_EMAIL, &key)? {
        Some(id) => Some(id),
        None => tx.lookup(USERS_BY_USERNAME, &key)?,
    };
    match id {
        Some(id) => tx.get(USERS, id),
        None => Ok(None),
    }
}

/// A successful login: `last_login`, the new token (and session), the audit record.
pub fn record_login(
    tx: &WriteTx,
    user_id: u64,
    grants: &[TokenGrant],
    via: &str,
    ip: Option<std::net::IpAddr>,
) -> Result<User, Error> {
    let mut user =
        tx.get(USERS, user_id)?.ok_or_else(|| Error::unauthenticated("Invalid credentials"))?;
    user.last_login = Some(unix_now());
    tx.put(USERS, user.id, &user)?;
    for grant in grants {
        issue_token(tx, &user, grant)?;
    }
    let actor = actor_for(&user, ip);
    audit::record(
        tx,
        AuditEvent {
            actor: &actor,
            organization_id: None,
            action: "user_login",
            target_type: "user",
            target_id: user.id.to_string(),
            details: json!({"login": true, "method": via}),
        },
    )?;
    Ok(user)
}

/// Refused password attempts of one identity, aggregated (at most one record per identity per
/// minute). `login` is an account's own email or username, or `unknown` when the name
/// matched no account (then `login_hash` tells names apart without storing them: a password
/// typed into the user field must not land in the audit log).
#[derive(Debug, Clone)]
pub struct FailedLogins<'a> {
    /// `user_login_failed` or `password_change_failed`.
    pub action: &'a str,
    pub user_id: Option<u64>,
    pub login: &'a str,
    pub login_hash: Option<&'a str>,
    /// `password`, `basic`, `token` or `password_change`.
    pub method: &'a str,
    pub count: u64,
    pub first_at: i64,
    pub last_at: i64,
    /// The address of the last attempt.
    pub ip: Option<std::net::IpAddr>,
}

/// Writes one aggregated record of refused password attempts, without the password.
pub fn record_login_failed(tx: &WriteTx, f: &FailedLogins<'_>) -> Result<(), Error> {
    let actor = Actor::anonymous(f.ip);
    let mut details = json!({
        "login": f.login,
        "count": f.count,
        "method": f.method,
        "first_at": crate::clock::rfc3339_from_unix(f.first_at),
        "last_at": crate::clock::rfc3339_from_unix(f.last_at),
    });
    if let (Some(hash), Some(map)) = (f.login_hash, details.as_object_mut()) {
        map.insert("login_hash".into(), json!(hash));
    }
    audit::record(
        tx,
        AuditEvent {
            actor: &actor,
            organization_id: None,
            action: f.action,
            target_type: "user",
            target_id: f.user_id.map(|u| u.to_string()).unwrap_or_default(),
            details,
        },
    )?;
    Ok(())
}

/// Live memberships: organization id → role.
pub fn memberships_of(tx: &impl Reader, user_id: u64) -> Result<BTreeMap<u64, Role>, StoreError> {
    let mut out = BTreeMap::new();
    for org in tx.children(USER_ORGS, user_id)? {
        if let Some(mid) = tx.lookup(MEMBERSHIP_IDS, &membership_key(org, user_id))? {
            if let Some(m) = tx.get(MEMBERSHIPS, mid)? {
                out.insert(org, m.role);
            }
        }
    }
    Ok(out)
}

/// Organizations of a user with their names and the user's role, in id order.
pub fn organizations_of(
    tx: &impl Reader,
    user_id: u64,
) -> Result<Vec<(Organization, Role)>, StoreError> {
    let mut out = Vec::new();
    for (org_id, role) in memberships_of(tx, user_id)? {
        if let Some(org) = tx.get(ORGANIZATIONS, org_id)? {
            out.push((org, role));
        }
    }
    Ok(out)
}

/// Profile fields a user may change about themselves.
#[derive(Debug, Clone, Default)]
pub struct ProfilePatch {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub username: Option<String>,
}

/// Applies a profile change (email and username stay unique → 409); audited as
/// `user_updated` with the names of the changed fields.
pub fn update_profile(
    tx: &WriteTx,
    user_id: u64,
    patch: &ProfilePatch,
    ip: Option<std::net::IpAddr>,
) -> Result<User, Error> {
    // Cached credential resolutions carry what this changes.
    tx.on_commit(Effect::CredentialsChanged);
    let mut user = tx.get(USERS, user_id)?.ok_or_else(|| Error::not_found("User"))?;
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut changed = Vec::new();
    for (field, value) in [("first_name", &patch.first_name), ("last_name", &patch.last_name)] {
        if let Some(v) = value {
            if v.chars().count() > 150 {
                errors
                    .entry(field.into())
                    .or_default()
                    .push("Ensure this field has no more than 150 characters.".into());
            }
        }
    }
    if let Some(email) = &patch.email {
        if !valid_email(email.trim()) {
            errors.entry("email".into()).or_default().push("Enter a valid email address.".into());
        }
    }
    if let Some(username) = &patch.username {
        if !valid_username(username) {
            errors
                .entry("username".into())
                .or_default()
                .push("3-150 characters: letters, digits, '_', '-' or '.'.".into());
        }
    }
    if !errors.is_empty() {
        return Err(Error::invalid_fields(errors));
    }
    if let Some(v) = &patch.first_name {
        user.first_name = v.trim().to_string();
        changed.push("first_name");
    }
    if let Some(v) = &patch.last_name {
        user.last_name = v.trim().to_string();
        changed.push("last_name");
    }
    if let Some(email) = &patch.email {
        let email = email.trim().to_lowercase();
        if email != user.email {
            if !tx.claim(USERS_BY_EMAIL, &email, user.id)? {
                return Err(Error::conflict("User with this email already exists."));
            }
            tx.release(USERS_BY_EMAIL, &user.email)?;
            user.email = email;
            changed.push("email");
        }
    }
    if let Some(username) = &patch.username {
        let old_key = user.username.to_lowercase();
        let new_key = username.to_lowercase();
        if new_key != old_key {
            if !tx.claim(USERS_BY_USERNAME, &new_key, user.id)? {
                return Err(Error::conflict("Username already exists."));
            }
            tx.release(USERS_BY_USERNAME, &old_key)?;
        }
        if *username != user.username {
            user.username = username.clone();
            changed.push("username");
        }
    }
    tx.put(USERS, user.id, &user)?;
    let actor = actor_for(&user, ip);
    audit::record(
        tx,
        AuditEvent {
            actor: &actor,
            organization_id: None,
            action: "user_updated",
            target_type: "user",
            target_id: user.id.to_string(),
            details: json!({"fields": changed}),
        },
    )?;
    Ok(user)
}

pub use crate::domain::sessions::{change_password, logout, reset_password};

/// Accounts: users and their unique names. Keys and values are described on each line.
pub mod tables {
    use crate::store::schema::TableInfo;
    #[allow(unused_imports)] // each area uses a different subset of the three shapes
    use crate::store::{IndexTable, LookupTable, RecordTable};

    /// `user id → User`.
    pub const USERS: RecordTable<crate::domain::records::User> = RecordTable::new("users");
    /// `lower-cased email → user id`.
    pub const USERS_BY_EMAIL: LookupTable = LookupTable::new("users_by_email");
    /// `lower-cased username → user id`.
    pub const USERS_BY_USERNAME: LookupTable = LookupTable::new("users_by_username");

    /// This area's tables, for the schema registry (backup, check, dumps).
    pub const TABLES: &[TableInfo] =
        &[USERS.info(), USERS_BY_EMAIL.info(), USERS_BY_USERNAME.info()];
}
