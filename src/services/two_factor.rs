//! The caller's own TOTP device: enrol, activate (recovery codes shown once) and turn off —
//! shared by `/api/auth/2fa/totp/` and the console's profile page. The second login step is
//! `Services::verify_otp` in `accounts`.

use std::net::IpAddr;

use crate::clock::unix_now;
use crate::crypto::Secret;
use crate::domain::records::User;
use crate::domain::two_factor::{self, invalid_otp, Enrolment};
use crate::domain::{accounts, Error, Principal};

use super::Services;

impl Services {
    fn own_user(&self, p: &Principal) -> Result<User, Error> {
        self.store.read(|tx| accounts::get(tx, p.user_id))?.ok_or_else(|| Error::not_found("User"))
    }

    /// A new (inactive) secret for the caller; full sessions only.
    pub async fn enrol_totp(&self, p: &Principal, ip: Option<IpAddr>) -> Result<Enrolment, Error> {
        p.require_full_session("set up two-factor authentication")?;
        let user = self.own_user(p)?;
        let master = self.master.clone();
        self.store.write(move |tx| two_factor::enrol(tx, &master, &user, ip)).await
    }

    /// Turns the pending enrolment on with a first code; the recovery codes, shown once.
    pub async fn activate_totp(
        &self,
        p: &Principal,
        otp: String,
        ip: Option<IpAddr>,
    ) -> Result<Vec<Secret<String>>, Error> {
        p.require_full_session("set up two-factor authentication")?;
        let user = self.own_user(p)?;
        let master = self.master.clone();
        self.store
            .write(move |tx| two_factor::activate(tx, &master, &user, &otp, unix_now(), ip))
            .await?
            .ok_or_else(invalid_otp)
    }

    /// Turns 2FA off with a current code or a recovery code; a wrong one counts toward the
    /// account's lockout, as at login.
    pub async fn disable_totp(
        &self,
        p: &Principal,
        otp: String,
        ip: Option<IpAddr>,
    ) -> Result<(), Error> {
        p.require_full_session("turn two-factor authentication off")?;
        let user = self.own_user(p)?;
        if let Some(secs) = self.credentials.locked_for(user.id) {
            return Err(crate::auth::locked_error(secs));
        }
        let (master, u) = (self.master.clone(), user.clone());
        let done = self
            .store
            .write(move |tx| two_factor::disable(tx, &master, &u, &otp, unix_now(), ip))
            .await?;
        if !done {
            self.credentials.otp_failed(&self.store, &user, ip).await;
            return Err(invalid_otp());
        }
        Ok(())
    }
}
