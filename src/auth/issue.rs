//! Issuing JWTs: an access/refresh pair for a user (login, `/api/auth/token/`, refresh) and
//! personal access tokens.

use std::collections::BTreeMap;

use crate::auth::jwt::Claims;
use crate::auth::{digest_of, AuthService};
use crate::crypto::{random_hex, Secret};
use crate::domain::accounts::TokenGrant;
use crate::domain::credentials::TokenKind;
use crate::domain::records::User;
use crate::domain::{Error, Role};

/// A freshly signed pair and the refresh row to store.
pub struct IssuedPair {
    pub access: Secret<String>,
    pub refresh: Secret<String>,
    pub refresh_grant: TokenGrant,
}

/// A new `jti` (128 random bits).
pub fn new_jti() -> Result<String, Error> {
    Ok(random_hex(16)?)
}

/// The organization a token speaks for: the one asked for (if the user belongs to it), else
/// the user's only one. With several organizations and none asked for there is none: picking
/// one (the lowest id) would let whoever created the older organization and added the user
/// choose it for them (M1, M3).
pub fn choose_company(
    memberships: &BTreeMap<u64, Role>,
    requested: Option<u64>,
) -> Result<Option<u64>, Error> {
    match requested {
        Some(org) if memberships.contains_key(&org) => Ok(Some(org)),
        Some(_) => Err(Error::forbidden("Forbidden for this company.")),
        None if memberships.len() == 1 => Ok(memberships.keys().next().copied()),
        None => Ok(None),
    }
}

impl AuthService {
    fn claims(
        &self,
        user: &User,
        company_id: Option<u64>,
        token_type: &str,
        lifetime: i64,
        now: i64,
    ) -> Result<Claims, Error> {
        Ok(Claims {
            token_type: token_type.to_string(),
            sub: user.id.to_string(),
            user_id: user.id,
            company_id,
            is_staff: user.is_staff,
            jti: new_jti()?,
            exp: now.saturating_add(lifetime),
            iat: now,
            cev: user.credentials_epoch,
            pat_id: None,
            pat_ro: None,
            pat_agm: None,
        })
    }

    /// Signs an access token and a refresh token for `user`.
    pub fn issue_pair(
        &self,
        user: &User,
        company_id: Option<u64>,
        now: i64,
    ) -> Result<IssuedPair, Error> {
        let access_secs =
            i64::try_from(self.config.access_token_minutes.saturating_mul(60)).unwrap_or(900);
        let refresh_secs =
            i64::try_from(self.config.refresh_token_days.saturating_mul(86_400)).unwrap_or(604_800);
        let access =
            self.jwt.sign(&self.claims(user, company_id, "access", access_secs, now)?)?;
        let refresh_claims = self.claims(user, company_id, "refresh", refresh_secs, now)?;
        let refresh = self.jwt.sign(&refresh_claims)?;
        Ok(IssuedPair {
            access: Secret::new(access),
            refresh: Secret::new(refresh),
            refresh_grant: TokenGrant {
                digest: digest_of(&refresh_claims.jti),
                kind: TokenKind::Refresh,
                expires_at: Some(refresh_claims.exp),
                family: None,
            },
        })
    }

    /// Signs a personal access token for an already stored PAT row.
    #[allow(clippy::too_many_arguments)]
    pub fn issue_pat(
        &self,
        user: &User,
        company_id: u64,
        pat_id: impl Into<crate::domain::pats::PatRef>,
        jti: &str,
        read_only: bool,
        agm: bool,
        now: i64,
        expires_at: i64,
    ) -> Result<Secret<String>, Error> {
        let mut c = self.claims(user, Some(company_id), "access", expires_at - now, now)?;
        c.jti = jti.to_string();
        c.pat_id = Some(pat_id.into());
        c.pat_ro = Some(read_only);
        c.pat_agm = Some(agm);
        Ok(Secret::new(self.jwt.sign(&c)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn company_is_never_guessed_among_several() {
        let one: BTreeMap<u64, Role> = [(7, Role::Viewer)].into_iter().collect();
        let two: BTreeMap<u64, Role> = [(3, Role::Editor), (7, Role::Admin)].into_iter().collect();
        assert_eq!(choose_company(&one, None).unwrap(), Some(7));
        assert_eq!(choose_company(&two, None).unwrap(), None);
        assert_eq!(choose_company(&two, Some(7)).unwrap(), Some(7));
        assert!(choose_company(&two, Some(9)).is_err());
        assert_eq!(choose_company(&BTreeMap::new(), None).unwrap(), None);
    }
}
