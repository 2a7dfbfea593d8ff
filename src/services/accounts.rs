//! Account flows that span several areas: registration (validation, password hashing, the
//! first token), password login (lockout and failure audit through the credential service),
//! the second factor of 2FA accounts (issue 18), and a full login (token, session, JWT pair,
//! the audit record). The HTTP layer only maps its request and response bodies onto these.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::auth::issue::choose_company;
use crate::auth::pending::token_expired;
use crate::auth::{
    basic_2fa_error, digest_of, locked_error, new_login_token, new_session_secret, no_gate,
    passwords, PasswordCheck,
};
use crate::clock::unix_now;
use crate::crypto::Secret;
use crate::domain::accounts::{self, FormNames, NewUser, Registration, TokenGrant};
use crate::domain::credentials::TokenKind;
use crate::domain::records::{Organization, User};
use crate::domain::two_factor::{self, invalid_otp, Factor};
use crate::domain::{usernames, Error, ErrorCode, Role};

use super::Services;

/// A registration form as the client sent it, in either client's field names.
pub struct RegistrationForm {
    /// KeyNest requires it; dj-rest-auth sends none, and one is derived from the email.
    pub username: Option<String>,
    pub email: String,
    pub password: Option<String>,
    pub confirm_password: Option<String>,
    pub first_name: String,
    pub last_name: String,
    /// Whose field names the form used (and the errors use).
    pub names: FormNames,
}

impl RegistrationForm {
    /// Both passwords present, else the fields missing under the client's names.
    fn passwords(&mut self) -> Result<(String, String), Error> {
        let mut missing = BTreeMap::new();
        let (pw, confirm) = (self.names.password, self.names.confirm);
        let required = || vec!["This field is required.".to_string()];
        if self.password.is_none() {
            missing.insert(pw.to_string(), required());
        }
        if self.confirm_password.is_none() {
            missing.insert(confirm.to_string(), required());
        }
        if self.names.username_required && self.username.is_none() {
            missing.insert("username".to_string(), required());
        }
        match (self.password.take(), self.confirm_password.take()) {
            (Some(p), Some(c)) if missing.is_empty() => Ok((p, c)),
            _ => Err(Error::invalid_fields(missing)),
        }
    }
}

/// A new account, its personal organization and its first login token.
pub struct Registered {
    pub user: User,
    pub organization: Organization,
    pub token: Secret<String>,
}

/// How a login proved who it is.
pub enum LoginProof {
    /// A login form: email or username, and password.
    Password { ident: String, password: String },
    /// HTTP Basic, already checked by the authentication layer.
    Basic { user_id: u64 },
}

/// What a login answers: everything, or the request for a second factor.
pub enum LoginOutcome {
    Done(Box<LoggedIn>),
    /// 2FA is on: present this token with the code at `/api/auth/verify-otp/`.
    OtpRequired {
        temp_otp_token: Secret<String>,
    },
}

/// What a login hands out.
pub struct LoggedIn {
    pub user: User,
    pub organizations: Vec<(Organization, Role)>,
    pub token: Secret<String>,
    pub session: Secret<String>,
    /// Seconds the session cookie lives.
    pub session_max_age: u64,
    pub access: Secret<String>,
    pub refresh: Secret<String>,
}

impl Services {
    /// Creates an account with its personal organization (registration must be open).
    pub async fn register(
        &self,
        mut form: RegistrationForm,
        ip: Option<IpAddr>,
    ) -> Result<Registered, Error> {
        if self.config.auth.registration != "open" {
            return Err(Error::forbidden("Registration is closed."));
        }
        let (password, confirm_password) = form.passwords()?;
        let email = form.email.trim().to_lowercase();
        // A blank username is KeyNest's "required" error; an absent one in dj-rest-auth's
        // form is derived.
        let given = form.username.take().map(|u| u.trim().to_string());
        let derive_username = match &given {
            None => true,
            Some(u) => u.is_empty() && !form.names.username_required,
        };
        let username = match given {
            Some(u) if !derive_username => u,
            _ => usernames::from_email(&email),
        };
        let min = usize::try_from(self.config.auth.password_min_length).unwrap_or(10);
        accounts::validate_registration(
            &Registration {
                username: &username,
                email: &email,
                password: &password,
                confirm_password: &confirm_password,
                first_name: &form.first_name,
                last_name: &form.last_name,
                form: form.names,
            },
            min,
        )?;
        let password_hash = passwords::hash(Secret::new(password)).await?;
        let new = NewUser {
            username,
            email,
            first_name: form.first_name.trim().to_string(),
            last_name: form.last_name.trim().to_string(),
            password_hash,
            is_staff: false,
        };
        let token = new_login_token()?;
        let grant = TokenGrant {
            digest: digest_of(token.expose()),
            kind: TokenKind::Token,
            expires_at: Some(self.credentials.token_expiry(unix_now())),
            family: None,
        };
        let (user, organization) = self
            .store
            .write(move |tx| accounts::register(tx, &new, derive_username, &grant, ip))
            .await?;
        Ok(Registered { user, organization, token })
    }

    /// Checks a login form's credentials (lockout, audit of failures); the user on success.
    pub async fn password_login(
        &self,
        ident: &str,
        password: String,
        ip: Option<IpAddr>,
        method: &'static str,
    ) -> Result<User, Error> {
        if ident.trim().is_empty() {
            return Err(Error::invalid("email", "This field is required."));
        }
        if password.is_empty() {
            return Err(Error::invalid("password", "This field is required."));
        }
        // The route itself is counted per address by the authentication layer, so the hash
        // needs no further gate here.
        let checked = self
            .credentials
            .check_password(&self.store, ident, Secret::new(password), ip, method, &no_gate)
            .await?;
        match checked {
            // Only the login form continues to a second factor; `/api/auth/token/` would
            // hand out tokens on the password alone.
            PasswordCheck::Ok(user) if method != "password" && self.two_factor_on(user.id)? => {
                Err(basic_2fa_error())
            }
            PasswordCheck::Ok(user) => Ok(user),
            PasswordCheck::Wrong => Err(Error::unauthenticated("Invalid credentials")),
            PasswordCheck::Locked(secs) => Err(locked_error(secs)),
        }
    }

    /// A login: the password (or HTTP Basic), then either the full login or, for an account
    /// with 2FA on, a temporary token to present with the code at `/api/auth/verify-otp/`.
    pub async fn login(
        &self,
        proof: LoginProof,
        requested: Option<u64>,
        ip: Option<IpAddr>,
    ) -> Result<LoginOutcome, Error> {
        let (user, via) = match proof {
            LoginProof::Password { ident, password } => {
                (self.password_login(&ident, password, ip, "password").await?, "password")
            }
            LoginProof::Basic { user_id } => {
                let user = self.store.read(|tx| accounts::get(tx, user_id))?;
                (user.ok_or_else(|| Error::unauthenticated("Invalid credentials"))?, "basic")
            }
        };
        let now = unix_now();
        let memberships = self.store.read(|tx| accounts::memberships_of(tx, user.id))?;
        let company = choose_company(&memberships, requested)?;
        if self.two_factor_on(user.id)? {
            if via == "basic" {
                // The authentication layer already refuses it; kept here so no path logs a
                // 2FA account in on its password alone.
                return Err(basic_2fa_error());
            }
            let temp_otp_token = self.credentials.pending_logins.issue(user.id, company, now)?;
            return Ok(LoginOutcome::OtpRequired { temp_otp_token });
        }
        Ok(LoginOutcome::Done(Box::new(self.complete_login(user, company, via, ip).await?)))
    }

    fn two_factor_on(&self, user_id: u64) -> Result<bool, Error> {
        Ok(self.store.read(|tx| two_factor::is_enabled(tx, user_id))?)
    }

    /// The second step of a 2FA login: the temporary token (single use, 300 s) and a TOTP
    /// code or a recovery code. A wrong code counts toward the account's lockout and leaves
    /// the token usable until it expires.
    pub async fn verify_otp(
        &self,
        temp_otp_token: &str,
        otp: &str,
        ip: Option<IpAddr>,
    ) -> Result<LoggedIn, Error> {
        let now = unix_now();
        let pending = &self.credentials.pending_logins;
        let Some(login) = pending.take(temp_otp_token, now) else { return Err(token_expired()) };
        let user = self
            .store
            .read(|tx| accounts::get(tx, login.user_id))?
            .filter(|u| u.is_active)
            .ok_or_else(token_expired)?;
        if let Some(secs) = self.credentials.locked_for(user.id) {
            pending.restore(temp_otp_token, login);
            return Err(locked_error(secs));
        }
        let master = self.master.clone();
        let (user_id, code) = (user.id, otp.to_string());
        let checked =
            self.store.write(move |tx| two_factor::check(tx, &master, user_id, &code, now)).await;
        let factor = match checked {
            Ok(Some(factor)) => factor,
            Ok(None) => {
                self.credentials.otp_failed(&self.store, &user, ip).await;
                pending.restore(temp_otp_token, login);
                return Err(invalid_otp());
            }
            // 2FA was turned off meanwhile: this pending login no longer stands.
            Err(e) if e.code == ErrorCode::Invalid => return Err(token_expired()),
            Err(e) => return Err(e),
        };
        self.credentials.otp_succeeded(user.id);
        if factor == Factor::RecoveryCode {
            let u = user.clone();
            self.store.write(move |tx| two_factor::record_recovery_use(tx, &u, ip)).await?;
        }
        let via = match factor {
            Factor::Totp => "password+totp",
            Factor::RecoveryCode => "password+recovery_code",
        };
        self.complete_login(user, login.company, via, ip).await
    }

    /// A full login: a login token, a session, a JWT pair for `company`, `last_login` and
    /// the audit record, in one commit.
    async fn complete_login(
        &self,
        user: User,
        company: Option<u64>,
        via: &'static str,
        ip: Option<IpAddr>,
    ) -> Result<LoggedIn, Error> {
        let now = unix_now();
        let pair = self.credentials.issue_pair(&user, company, now)?;
        let token = new_login_token()?;
        let session = new_session_secret()?;
        let session_max_age = self.config.auth.session_hours.saturating_mul(3600);
        let session_expiry =
            now.saturating_add(i64::try_from(session_max_age).unwrap_or(i64::MAX / 2));
        let grants = vec![
            TokenGrant {
                digest: digest_of(token.expose()),
                kind: TokenKind::Token,
                expires_at: Some(self.credentials.token_expiry(now)),
                family: None,
            },
            TokenGrant {
                digest: digest_of(session.expose()),
                kind: TokenKind::Session,
                expires_at: Some(session_expiry),
                family: None,
            },
            pair.refresh_grant.clone(),
        ];
        let user_id = user.id;
        let user = self
            .store
            .write(move |tx| accounts::record_login(tx, user_id, &grants, via, ip))
            .await?;
        let organizations = self.store.read(|tx| accounts::organizations_of(tx, user.id))?;
        Ok(LoggedIn {
            user,
            organizations,
            token,
            session,
            session_max_age,
            access: pair.access,
            refresh: pair.refresh,
        })
    }
}
