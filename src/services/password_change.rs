//! Changing one's own password (the API's `/api/auth/password/change/` and the console's
//! profile page): the rules, the old password's check, the new hash, and the revocation of
//! every other credential of the account.

use std::net::IpAddr;

use crate::auth::passwords;
use crate::crypto::Secret;
use crate::domain::audit::Actor;
use crate::domain::{accounts, CredentialKind, Error, Principal};

use super::Services;

/// A password change as the client sent it; `new_field` and `confirm_field` name the fields
/// its errors are reported under.
pub struct PasswordChange {
    pub old: String,
    pub new: String,
    pub confirm: Option<String>,
    pub new_field: &'static str,
    pub confirm_field: &'static str,
}

impl Services {
    /// Checks and applies `change` for the caller (a full session: a key or PAT may not change
    /// its owner's password). The credential used stays valid; every other one is revoked.
    pub async fn change_password(
        &self,
        p: &Principal,
        change: PasswordChange,
        ip: Option<IpAddr>,
    ) -> Result<(), Error> {
        p.require_full_session("change the password")?;
        let min = usize::try_from(self.config.auth.password_min_length).unwrap_or(10);
        let new = change.new;
        if new.chars().count() < min {
            return Err(Error::invalid(
                change.new_field,
                format!("Ensure this field has at least {min} characters."),
            ));
        }
        if new.len() > 1024 || new.eq_ignore_ascii_case(&p.email) {
            return Err(Error::invalid(change.new_field, "Choose a different password."));
        }
        if change.confirm.is_some_and(|c| c != new) {
            return Err(Error::invalid(
                change.confirm_field,
                "The two password fields didn't match.",
            ));
        }
        let old = Secret::new(change.old);
        if !self.credentials.check_old_password(&self.store, p.user_id, old, ip).await? {
            return Err(Error::invalid(
                "old_password",
                "Your old password was entered incorrectly.",
            ));
        }
        let new_hash = passwords::hash(Secret::new(new)).await?;
        let keep = match p.credential {
            CredentialKind::Token { id } | CredentialKind::Session { id } => Some(id),
            _ => None,
        };
        let actor = Actor::from_principal(p, ip);
        let user_id = p.user_id;
        self.store
            .write(move |tx| accounts::change_password(tx, user_id, &new_hash, keep, &actor))
            .await?;
        crate::auth::bootstrap::forget_initial_password(&self.data_dir, &p.email);
        Ok(())
    }
}
