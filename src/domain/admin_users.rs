//! Accounts created by staff (`POST /api/admin/users/`): the way in when the appliance ships
//! with registration closed (M3), so it stays usable without editing its config.

use serde_json::json;

use crate::domain::accounts::tables::USERS_BY_USERNAME;
use crate::domain::accounts::{self, NewUser};
use crate::domain::audit::{self, Actor, AuditEvent};
use crate::domain::records::User;
use crate::domain::{Error, Principal};
use crate::store::{Reader, WriteTx};

/// How many numbered variants of a derived username are tried before giving up (409).
const USERNAME_TRIES: u32 = 100;

/// Staff through a full, unscoped credential: creating accounts is appliance-wide power.
pub fn authorize(p: &Principal) -> Result<(), Error> {
    p.require_staff()?;
    p.require_full_session("create accounts")
}

/// A username derived from the email's local part when staff give none: the characters a
/// username allows, at least 3 of them (`alice@corp.com` → `alice`).
pub fn username_from_email(email: &str) -> String {
    let local = email.split('@').next().unwrap_or_default();
    let mut name: String = local
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .take(140)
        .collect();
    if name.chars().count() < 3 {
        name.push_str("_user");
    }
    name
}

/// `base`, else the first free `base-2`, `base-3`, … (409 when none is).
fn free_username(tx: &impl Reader, base: &str) -> Result<String, Error> {
    for n in 1..=USERNAME_TRIES {
        let candidate = if n == 1 { base.to_string() } else { format!("{base}-{n}") };
        if tx.lookup(USERS_BY_USERNAME, &candidate.to_lowercase())?.is_none() {
            return Ok(candidate);
        }
    }
    Err(Error::conflict("Username already exists."))
}

/// Creates the account (no organization: admins add it to theirs) and audits `user_created`
/// with the staff actor. `derive_username`: `new.username` is a base to make unique rather than
/// a name staff chose (a chosen name that is taken is a 409).
pub fn create(
    tx: &WriteTx,
    p: &Principal,
    actor: &Actor,
    new: &NewUser,
    derive_username: bool,
) -> Result<User, Error> {
    authorize(p)?;
    let mut new = new.clone();
    if derive_username {
        new.username = free_username(tx, &new.username)?;
    }
    let user = accounts::create_user(tx, &new)?;
    audit::record(
        tx,
        AuditEvent {
            actor,
            organization_id: None,
            action: "user_created",
            target_type: "user",
            target_id: user.id.to_string(),
            details: json!({"username": user.username, "is_staff": user.is_staff,
                "created_by_staff": p.user_id}),
        },
    )?;
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_usernames_are_valid() {
        assert_eq!(username_from_email("alice@corp.com"), "alice");
        assert_eq!(username_from_email("a@corp.com"), "a_user");
        assert_eq!(username_from_email("j+o.e@corp.com"), "jo.e");
        assert_eq!(username_from_email("é@x.io"), "_user");
        assert_eq!(username_from_email(&format!("{}@x.io", "a".repeat(300))).len(), 140);
    }
}
