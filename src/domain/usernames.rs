//! Usernames derived from an email, for the forms that send none: staff creating an account
//! (`POST /api/admin/users/`) and dj-rest-auth's registration body (email and passwords only).

use crate::crypto;
use crate::domain::accounts::tables::USERS_BY_USERNAME;
use crate::domain::Error;
use crate::store::Reader;

/// How many numbered variants of a derived username are tried before a random suffix.
const NUMBERED_TRIES: u32 = 100;
/// Random suffixes tried after that (each a 2^32 space: a collision is a 409, not a loop).
const RANDOM_TRIES: u32 = 4;

/// The characters a username allows from the email's local part, at least 3 of them
/// (`alice@corp.com` → `alice`).
pub fn from_email(email: &str) -> String {
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

/// `base`, else the first free `base-2` … `base-100`, else `base-<8 random hex>`: open
/// registration must not run out of names because a hundred people are called john.
/// Runs inside the write transaction that claims the name, so two registrations cannot both
/// pick it.
pub fn free(tx: &impl Reader, base: &str) -> Result<String, Error> {
    for n in 1..=NUMBERED_TRIES {
        let candidate = if n == 1 { base.to_string() } else { format!("{base}-{n}") };
        if tx.lookup(USERS_BY_USERNAME, &candidate.to_lowercase())?.is_none() {
            return Ok(candidate);
        }
    }
    for _ in 0..RANDOM_TRIES {
        let suffix = crypto::random_hex(4).map_err(|_| Error::internal("random username"))?;
        let candidate = format!("{base}-{suffix}");
        if tx.lookup(USERS_BY_USERNAME, &candidate.to_lowercase())?.is_none() {
            return Ok(candidate);
        }
    }
    Err(Error::conflict("Username already exists."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_usernames_are_valid() {
        assert_eq!(from_email("alice@corp.com"), "alice");
        assert_eq!(from_email("a@corp.com"), "a_user");
        assert_eq!(from_email("j+o.e@corp.com"), "jo.e");
        assert_eq!(from_email("é@x.io"), "_user");
        assert_eq!(from_email(&format!("{}@x.io", "a".repeat(300))).len(), 140);
    }
}
