//! The records shared across areas: users, organizations and memberships. The identity area
//! owns their rules (`accounts`, `orgs`); other areas read them through these types.

use serde::{Deserialize, Serialize};

use crate::domain::accounts::tables::USERS;
use crate::domain::orgs::tables::{MEMBERSHIPS, ORGANIZATIONS};
use crate::domain::Role;
use crate::store::{Reader, Record, StoreError};

/// An account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct User {
    pub id: u64,
    pub username: String,
    /// Lower-cased; unique.
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// PHC string (argon2id); never leaves the store.
    pub password_hash: String,
    pub is_staff: bool,
    pub is_active: bool,
    /// Unix seconds.
    pub date_joined: i64,
    pub last_login: Option<i64>,
    /// Bumped on password change: credentials issued before it stop working.
    #[serde(default)]
    pub credentials_epoch: u64,
}

impl Record for User {
    const VERSION: u8 = 1;
    const NAME: &'static str = "users";
}

impl User {
    /// "First Last", or the username when both are blank (KeyNest's `full_name`).
    pub fn full_name(&self) -> String {
        let full = format!("{} {}", self.first_name, self.last_name).trim().to_string();
        if full.is_empty() {
            self.username.clone()
        } else {
            full
        }
    }
}

/// An organization (a tenant).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Organization {
    pub id: u64,
    /// A second, stable identifier: Unstract's routes name organizations by UUID. Files
    /// written before schema 3 get one in migration 3.
    #[serde(default)]
    pub uuid: String,
    pub name: String,
    pub description: Option<String>,
    pub created_by: u64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Record for Organization {
    const VERSION: u8 = 1;
    const NAME: &'static str = "organizations";
}

/// A user's role in an organization.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Membership {
    pub user_id: u64,
    pub organization_id: u64,
    pub role: Role,
    pub joined_at: i64,
}

impl Record for Membership {
    const VERSION: u8 = 1;
    const NAME: &'static str = "memberships";
}

/// The user's full name, or "" if the account is gone.
pub fn user_name(tx: &impl Reader, user_id: u64) -> Result<String, StoreError> {
    Ok(tx.get(USERS, user_id)?.map(|u| u.full_name()).unwrap_or_default())
}

/// The organization's name, or "" if it is gone.
pub fn organization_name(tx: &impl Reader, org_id: u64) -> Result<String, StoreError> {
    Ok(tx.get(ORGANIZATIONS, org_id)?.map(|o| o.name).unwrap_or_default())
}

/// Reads one membership by its id.
pub fn membership(tx: &impl Reader, id: u64) -> Result<Option<Membership>, StoreError> {
    tx.get(MEMBERSHIPS, id)
}
