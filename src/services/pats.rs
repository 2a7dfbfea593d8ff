//! Issuing a personal access token (the API's `POST /api/v1/personal-access-tokens` and the
//! console's tokens page): its organization, lifetime and flags, the row, and the signed
//! string shown once.

use std::net::IpAddr;

use crate::auth::issue::{choose_company, new_jti};
use crate::clock::unix_now;
use crate::crypto::Secret;
use crate::domain::audit::Actor;
use crate::domain::credentials::PersonalAccessToken;
use crate::domain::pats::{self, NewPat, PatRef};
use crate::domain::{accounts, Error, Principal};

use super::Services;

/// A token as the client asked for it.
pub struct PatRequest {
    pub name: String,
    pub read_only: bool,
    pub access_global_metrics: bool,
    pub company_id: Option<u64>,
    /// Default: `auth.pat_lifetime_days`.
    pub expires_in_days: Option<u64>,
}

impl Services {
    /// Creates the row and signs its string (full sessions only; the global-metrics scope is
    /// staff only).
    pub async fn create_pat(
        &self,
        p: &Principal,
        r: PatRequest,
        ip: Option<IpAddr>,
    ) -> Result<(PersonalAccessToken, Secret<String>), Error> {
        p.require_full_session("create personal access tokens")?;
        let days = r.expires_in_days.unwrap_or(self.config.auth.pat_lifetime_days);
        if !(1..=3650).contains(&days) {
            return Err(Error::invalid("expires_in_days", "Must be between 1 and 3650."));
        }
        // The company is the PAT's scope: never defaulted from the session's `company_id`,
        // only from the caller's single organization (M1).
        let company = choose_company(&p.memberships, r.company_id)?.ok_or_else(|| {
            let message = if p.memberships.len() > 1 {
                "You belong to several organizations: name the one the token is for."
            } else {
                "Missing company_id parameter."
            };
            Error::invalid("company_id", message)
        })?;
        let now = unix_now();
        let new = NewPat {
            name: r.name.trim().to_string(),
            read_only: r.read_only,
            access_global_metrics: r.access_global_metrics,
            company_id: company,
            expires_at: now + i64::try_from(days * 86_400).unwrap_or(86_400),
            jti: new_jti()?,
        };
        let user = self
            .store
            .read(|tx| accounts::get(tx, p.user_id))?
            .ok_or_else(|| Error::not_found("User"))?;
        let actor = Actor::from_principal(p, ip);
        let owner = p.clone();
        let row = self.store.write(move |tx| pats::create(tx, &owner, &actor, &new)).await?;
        let token = self.credentials.issue_pat(
            &user,
            company,
            PatRef::of(&row),
            &row.jti,
            row.read_only,
            row.access_global_metrics,
            now,
            row.expires_at,
        )?;
        Ok((row, token))
    }
    /// A new string for one of the caller's tokens: the row's current flags and expiry, a new
    /// `jti`, so the previous string stops working. `id` is resolved inside the write.
    pub async fn reissue_pat(
        &self,
        p: &Principal,
        id: PatId,
        ip: Option<IpAddr>,
    ) -> Result<(PersonalAccessToken, Secret<String>), Error> {
        let user = self
            .store
            .read(|tx| accounts::get(tx, p.user_id))?
            .ok_or_else(|| Error::not_found("User"))?;
        let jti = new_jti()?;
        let now = unix_now();
        let actor = Actor::from_principal(p, ip);
        let owner = p.clone();
        let row = self
            .store
            .write(move |tx| {
                let id = match &id {
                    PatId::Row(id) => *id,
                    PatId::Segment(s) => pats::resolve_segment(tx, s)?.ok_or_else(pat_not_found)?,
                };
                pats::reissue(tx, &owner, &actor, id, &jti, now)
            })
            .await?;
        // `reissue` refuses a row without an organization, so this is never the fallback.
        let company = row.company_id.ok_or_else(pat_not_found)?;
        let token = self.credentials.issue_pat(
            &user,
            company,
            PatRef::of(&row),
            &row.jti,
            row.read_only,
            row.access_global_metrics,
            now,
            row.expires_at,
        )?;
        Ok((row, token))
    }
}

/// Which token: a row id the caller already has, or the API's path segment (id or UUID).
pub enum PatId {
    Row(u64),
    Segment(String),
}

pub fn pat_not_found() -> Error {
    Error::not_found("Personal access token")
}
