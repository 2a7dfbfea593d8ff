//! dj-rest-auth's `/api/auth/user/` (Pegasus's `UserDetailsView`): GET, PUT and PATCH of the
//! caller's account in Pegasus's user shape (`id`, `first_name`, `last_name`, `email`,
//! `avatar_url`, `get_display_name`) plus Gatehouse's own user fields. Changes go through the
//! same rule as `/api/auth/profile/` (a full session; unique email and username; audited).

use std::sync::Arc;

use poem::web::Data;
use poem::Request;

use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use crate::api::auth::{change_profile, current_user, ProfileUpdateRequest};
use crate::api::error::ApiResult;
use crate::api::security::Authenticated;
use crate::api::tags::ApiTags;
use crate::clock::rfc3339_from_unix;
use crate::domain::records::User;
use crate::services::Services;

#[derive(Default)]
pub struct AuthUserApi;

/// Pegasus's user fields first, then Gatehouse's.
#[derive(Debug, Object)]
pub struct PegasusUserBody {
    pub id: u64,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    /// Gravatar of the email (SHA-256, identicon fallback): Gatehouse stores no pictures.
    pub avatar_url: String,
    /// "First Last", or the email when both are blank.
    pub get_display_name: String,
    pub username: String,
    pub full_name: String,
    pub date_joined: String,
    pub last_login: Option<String>,
    pub is_active: bool,
    pub is_staff: bool,
}

impl From<&User> for PegasusUserBody {
    fn from(u: &User) -> Self {
        let name = format!("{} {}", u.first_name.trim(), u.last_name.trim()).trim().to_string();
        let hash = crate::crypto::sha256_hex(u.email.trim().to_lowercase().as_bytes());
        Self {
            id: u.id,
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            email: u.email.clone(),
            avatar_url: format!("https://www.gravatar.com/avatar/{hash}?s=128&d=identicon"),
            get_display_name: if name.is_empty() { u.email.clone() } else { name },
            username: u.username.clone(),
            full_name: u.full_name(),
            date_joined: rfc3339_from_unix(u.date_joined),
            last_login: u.last_login.map(rfc3339_from_unix),
            is_active: u.is_active,
            is_staff: u.is_staff,
        }
    }
}

#[OpenApi(tag = "ApiTags::Auth")]
impl AuthUserApi {
    /// The caller's account, in dj-rest-auth's (Pegasus's) user shape.
    #[oai(path = "/api/auth/user/", method = "get", operation_id = "auth_user_retrieve")]
    async fn get(
        &self,
        state: Data<&Arc<Services>>,
        auth: Authenticated,
    ) -> ApiResult<Json<PegasusUserBody>> {
        Ok(Json(PegasusUserBody::from(&current_user(&state, &auth)?)))
    }

    /// Change the caller's names, email or username (fields left out stay as they are).
    #[oai(path = "/api/auth/user/", method = "put", operation_id = "auth_user_update")]
    async fn put(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        body: Json<ProfileUpdateRequest>,
    ) -> ApiResult<Json<PegasusUserBody>> {
        let user = change_profile(&state, req, &auth, body.0).await?;
        Ok(Json(PegasusUserBody::from(&user)))
    }

    /// Change some of the caller's names, email or username.
    #[oai(path = "/api/auth/user/", method = "patch", operation_id = "auth_user_partial_update")]
    async fn patch(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        body: Json<ProfileUpdateRequest>,
    ) -> ApiResult<Json<PegasusUserBody>> {
        let user = change_profile(&state, req, &auth, body.0).await?;
        Ok(Json(PegasusUserBody::from(&user)))
    }
}
