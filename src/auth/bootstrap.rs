//! The first staff account: created on a start with no users, from `GATEHOUSE_ADMIN_EMAIL` and
//! `GATEHOUSE_ADMIN_PASSWORD`, or else as `admin@localhost` with a random password written
//! only to `DATA_DIR/initial-admin-password` (mode 0600) — never printed, so it stays out of
//! terminals' scrollback and the journal. The file is removed once the password changes: by
//! the password-change route, or at the next start when it no longer matches the account.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use crate::auth::passwords;
use crate::domain::accounts::tables::USERS;
use crate::domain::accounts::{self, NewUser};
use crate::domain::audit::{self, Actor, AuditEvent};
use crate::domain::records::User;
use crate::domain::{Error, InternalError};
use crate::store::{Reader as _, Store};

/// File holding the generated password of the initial admin.
pub const PASSWORD_FILE: &str = "initial-admin-password";
/// The account created with a generated password.
pub const GENERATED_EMAIL: &str = "admin@localhost";

/// What bootstrap did.
#[derive(Debug)]
pub enum Bootstrapped {
    /// Users exist already; nothing was done.
    Existing,
    /// The configured account was created.
    Configured { email: String },
    /// `admin@localhost` was created with a generated password (also in the password file).
    Generated { email: String, password: String },
}

/// Creates a staff account with a personal organization, audited as `user_created`.
pub fn create_staff_blocking(
    store: &Store,
    email: &str,
    password: &str,
    staff: bool,
) -> Result<User, Error> {
    let email = email.trim().to_lowercase();
    // `admin@localhost` has no dot in its domain, so only the shape is checked here.
    let (local, domain) = email.split_once('@').unwrap_or(("", ""));
    if local.is_empty() || domain.is_empty() || email.chars().any(char::is_whitespace) {
        return Err(Error::invalid("email", "Enter a valid email address."));
    }
    let username = email.split('@').next().unwrap_or("admin").to_string();
    let new = NewUser {
        username,
        email,
        first_name: String::new(),
        last_name: String::new(),
        password_hash: passwords::hash_blocking(password)?,
        is_staff: staff,
    };
    store.write_blocking(move |tx| -> Result<User, Error> {
        let mut new = new.clone();
        if accounts::find_by_login(tx, &new.username)?.is_some() {
            new.username = format!("{}_{}", new.username, tx.count(USERS)? + 1);
        }
        let user = accounts::create_user(tx, &new)?;
        let org = accounts::create_organization(
            tx,
            user.id,
            &format!("{}'s Organization", user.username),
            Some("Personal organization".into()),
        )?;
        audit::record(
            tx,
            AuditEvent {
                actor: &Actor::system(),
                organization_id: Some(org.id),
                action: "user_created",
                target_type: "user",
                target_id: user.id.to_string(),
                details: json!({"is_staff": user.is_staff, "organization_created": org.id}),
            },
        )?;
        Ok(user)
    })
}

/// Runs at start (blocking; call from `spawn_blocking`).
pub fn ensure_admin(
    store: &Store,
    env: &BTreeMap<String, String>,
    data_dir: &Path,
) -> Result<Bootstrapped, Error> {
    if store.read(|tx| tx.count(USERS))? > 0 {
        forget_stale_password(store, data_dir)?;
        return Ok(Bootstrapped::Existing);
    }
    let email = env.get("GATEHOUSE_ADMIN_EMAIL").filter(|s| !s.trim().is_empty());
    let password = env.get("GATEHOUSE_ADMIN_PASSWORD").filter(|s| !s.is_empty());
    if let (Some(email), Some(password)) = (email, password) {
        let user = create_staff_blocking(store, email, password, true)?;
        return Ok(Bootstrapped::Configured { email: user.email });
    }
    let password = crate::crypto::random_token(18)?;
    write_private_file(&data_dir.join(PASSWORD_FILE), password.as_bytes())?;
    let user = create_staff_blocking(store, GENERATED_EMAIL, &password, true)?;
    Ok(Bootstrapped::Generated { email: user.email, password })
}

/// Removes the password file once it no longer opens the generated account (its password was
/// changed or reset while the server was stopped, or the account is gone). Blocking: one
/// argon2 verification, only while the file exists.
fn forget_stale_password(store: &Store, data_dir: &Path) -> Result<(), Error> {
    let path = data_dir.join(PASSWORD_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(()) };
    let user = store.read(|tx| accounts::find_by_login(tx, GENERATED_EMAIL))?;
    let current = user.is_some_and(|u| passwords::verify_blocking(&u.password_hash, text.trim()));
    if !current {
        remove_password_file(&path);
    }
    Ok(())
}

/// Called after an account's password changed: the generated password in the file is no
/// longer valid when the account is the generated one, so the file goes.
pub fn forget_initial_password(data_dir: &Path, email: &str) {
    if email.eq_ignore_ascii_case(GENERATED_EMAIL) {
        remove_password_file(&data_dir.join(PASSWORD_FILE));
    }
}

fn remove_password_file(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!(path = %path.display(), "removed the initial password file"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(error = %e, path = %path.display(), "cannot remove the initial password file")
        }
    }
}

/// Writes `bytes` and a newline to `path`, readable by the owner only — also when the file
/// already existed with a wider mode (`mode` applies only to files the open creates).
fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let fail = |source| Error::from(InternalError::File { path: path.to_path_buf(), source });
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    // Before any byte is written: the truncated file holds nothing yet.
    f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    f.write_all(bytes).and_then(|()| f.write_all(b"\n")).and_then(|()| f.sync_all()).map_err(fail)
}
