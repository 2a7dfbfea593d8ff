//! Account flows that span several areas: registration (validation, password hashing, the
//! first token), password login (lockout and failure audit through the credential service),
//! and a full login (token, session, JWT pair, the audit record). The HTTP layer only maps
//! its request and response bodies onto these.

use std::net::IpAddr;

use crate::auth::issue::choose_company;
use crate::auth::{
    digest_of, locked_error, new_login_token, new_session_secret, no_gate, passwords, PasswordCheck,
};
use crate::clock::unix_now;
use crate::crypto::Secret;
use crate::domain::accounts::{self, NewUser, Registration, TokenGrant};
use crate::domain::credentials::TokenKind;
use crate::domain::records::{Organization, User};
use crate::domain::{Error, Role};

use super::Services;

/// A registration form as the client sent it.
pub struct RegistrationForm {
    pub username: String,
    pub email: String,
    pub password: String,
    pub confirm_password: String,
    pub first_name: String,
    pub last_name: String,
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
        form: RegistrationForm,
        ip: Option<IpAddr>,
    ) -> Result<Registered, Error> {
        if self.config.auth.registration != "open" {
            return Err(Error::forbidden("Registration is closed."));
        }
        let email = form.email.trim().to_lowercase();
        let min = usize::try_from(self.config.auth.password_min_length).unwrap_or(10);
        accounts::validate_registration(
            &Registration {
                username: form.username.trim(),
                email: &email,
                password: &form.password,
                confirm_password: &form.confirm_password,
                first_name: &form.first_name,
                last_name: &form.last_name,
            },
            min,
        )?;
        let password_hash = passwords::hash(Secret::new(form.password)).await?;
        let new = NewUser {
            username: form.username.trim().to_string(),
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
        let (user, organization) =
            self.store.write(move |tx| accounts::register(tx, &new, &grant, ip)).await?;
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
            PasswordCheck::Ok(user) => Ok(user),
            PasswordCheck::Wrong => Err(Error::unauthenticated("Invalid credentials")),
            PasswordCheck::Locked(secs) => Err(locked_error(secs)),
        }
    }

    /// A full login: a login token, a session, a JWT pair for `requested` (or the only
    /// organization), `last_login` and the audit record, in one commit.
    pub async fn login(
        &self,
        proof: LoginProof,
        requested: Option<u64>,
        ip: Option<IpAddr>,
    ) -> Result<LoggedIn, Error> {
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
