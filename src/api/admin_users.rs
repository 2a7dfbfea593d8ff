//! `/api/admin/users/`: staff create accounts (audited), so an appliance with registration
//! closed stays usable without stopping it.

use std::sync::Arc;

use poem::web::Data;
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::api::auth::{client_ip, UserBody};
use crate::api::error::ApiResult;
use crate::api::security::Authenticated;
use crate::api::tags::ApiTags;
use crate::auth::passwords;
use crate::crypto::Secret;
use crate::domain::accounts::{self, FormNames, NewUser, Registration};
use crate::domain::audit::Actor;
use crate::domain::{admin_users, usernames};
use crate::services::Services;

#[derive(Default)]
pub struct AdminUsersApi;

/// A new account. No `Debug`: it carries the password.
#[derive(Object)]
pub struct AdminUserCreateRequest {
    /// Unique (case-insensitive).
    pub email: String,
    /// At least `auth.password_min_length` (10) characters, not the email or username.
    pub password: String,
    /// 3–150 characters: letters, digits, `_`, `-`, `.`; unique. Default: derived from the
    /// email's local part (made unique).
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Default false.
    pub is_staff: Option<bool>,
}

#[derive(ApiResponse)]
pub enum AdminUserCreated {
    #[oai(status = 201)]
    Created(Json<UserBody>),
}

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminUsersApi {
    /// Create an account (staff, through a full session: login token, session cookie, session
    /// JWT or Basic). Validated like registration; no organization is created; audited as
    /// `user_created`.
    #[oai(path = "/api/admin/users/", method = "post", operation_id = "admin_users_create")]
    async fn create(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        body: Json<AdminUserCreateRequest>,
    ) -> ApiResult<AdminUserCreated> {
        let p = auth.into_principal();
        // Before any hashing: refused callers cost nothing.
        admin_users::authorize(&p)?;
        let b = body.0;
        let email = b.email.trim().to_lowercase();
        let (first, last) = (b.first_name.unwrap_or_default(), b.last_name.unwrap_or_default());
        let given = b.username.map(|u| u.trim().to_string()).filter(|u| !u.is_empty());
        let derive = given.is_none();
        let username = given.unwrap_or_else(|| usernames::from_email(&email));
        let min = usize::try_from(state.config.auth.password_min_length).unwrap_or(10);
        accounts::validate_registration(
            &Registration {
                username: &username,
                email: &email,
                password: &b.password,
                confirm_password: &b.password,
                first_name: &first,
                last_name: &last,
                form: FormNames::KEYNEST,
            },
            min,
        )?;
        let password_hash = passwords::hash(Secret::new(b.password)).await?;
        let new = NewUser {
            username,
            email,
            first_name: first.trim().to_string(),
            last_name: last.trim().to_string(),
            password_hash,
            is_staff: b.is_staff.unwrap_or(false),
        };
        let actor = Actor::from_principal(&p, client_ip(req));
        let user =
            state.store.write(move |tx| admin_users::create(tx, &p, &actor, &new, derive)).await?;
        Ok(AdminUserCreated::Created(Json(UserBody::from(&user))))
    }
}
