//! `gatehouse admin create-user` and `gatehouse admin reset-password`, run against the data
//! file while the server is stopped.

use std::io::BufRead as _;

use super::AdminCommand;
use crate::auth::{bootstrap, passwords};
use crate::config::Config;
use crate::domain::accounts;
use crate::store::Store;

/// Runs one admin command; the message is printed by the caller on failure.
pub fn run(store: &Store, config: &Config, command: AdminCommand) -> Result<(), String> {
    match command {
        AdminCommand::CreateUser { email, staff, password_stdin: _ } => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("stdin: {e}"))?;
            let password = line.trim_end_matches(['\n', '\r']).to_string();
            let min = usize::try_from(config.auth.password_min_length).unwrap_or(10);
            if password.chars().count() < min {
                return Err(format!("the password must have at least {min} characters"));
            }
            let user = bootstrap::create_staff_blocking(store, &email, &password, staff)
                .map_err(|e| e.message)?;
            println!("created {} (id {}, staff: {})", user.email, user.id, user.is_staff);
            Ok(())
        }
        AdminCommand::ResetPassword { email } => {
            let password = crate::crypto::random_token(18).map_err(|e| e.to_string())?;
            let hash = passwords::hash_blocking(&password).map_err(|e| e.message)?;
            let user = store
                .write_blocking(move |tx| accounts::reset_password(tx, &email, &hash))
                .map_err(|e| e.message)?;
            println!("new password for {}: {password}", user.email);
            Ok(())
        }
        AdminCommand::RotateMasterKey { .. } => {
            Err("rotate-master-key is handled by cli::rotate, not the account commands".into())
        }
    }
}
