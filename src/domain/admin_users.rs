//! Accounts created by staff (`POST /api/admin/users/`): the way in when the appliance ships
//! with registration closed (M3), so it stays usable without editing its config.

use serde_json::json;

use crate::domain::accounts::{self, NewUser};
use crate::domain::audit::{self, Actor, AuditEvent};
use crate::domain::records::User;
use crate::domain::{usernames, Error, Principal};
use crate::store::WriteTx;

/// Staff through a full, unscoped credential: creating accounts is appliance-wide power.
pub fn authorize(p: &Principal) -> Result<(), Error> {
    p.require_staff()?;
    p.require_full_session("create accounts")
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
        new.username = usernames::free(tx, &new.username)?;
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
