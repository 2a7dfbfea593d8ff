//! Glue shared by the projects, environments and variables APIs: turning a request into a
//! [`Caller`], and running domain reads and writes.

use std::sync::Arc;

use poem::Request;

use crate::api::error::ApiError;
use crate::api::middleware::RequestContext;
use crate::api::security::Authenticated;
use crate::domain::secrets::{Caller, Vault};
use crate::domain::Error;
use crate::services::Services;
use crate::store::{ReadTx, WriteTx};

/// The caller of `req`, with the client address for audit records.
pub fn caller(req: &Request, auth: Authenticated) -> Caller {
    let ip = req.extensions().get::<RequestContext>().and_then(|c| c.client_ip);
    Caller::new(auth.into_principal(), ip)
}

/// Runs a domain read on a snapshot.
pub fn read<T>(
    state: &Services,
    f: impl FnOnce(&ReadTx, &Vault) -> Result<T, Error>,
) -> Result<T, ApiError> {
    let vault = &state.secrets;
    state.store.read(|tx| f(tx, vault)).map_err(ApiError::from)
}

/// Runs a domain mutation durably; `f` may run more than once (see `Store::write`).
pub async fn write<T, F>(state: &Arc<Services>, caller: Caller, f: F) -> Result<T, ApiError>
where
    F: Fn(&WriteTx, &Caller, &Vault) -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    let vault = Arc::clone(&state.secrets);
    state.store.write(move |tx| f(tx, &caller, &vault)).await.map_err(ApiError::from)
}

/// A unix timestamp as RFC 3339.
pub fn ts(secs: i64) -> String {
    crate::clock::rfc3339_from_unix(secs)
}

/// A JSON body written by the handler itself (no intermediate `serde_json::Value` as
/// poem-openapi's `Json` builds), documented in the OpenAPI document as `T`. Used by the hot
/// list routes, where building a `Value` tree per variable costs more than the rest of the
/// request (see `api::variable_json`).
pub struct PreJson<T> {
    body: Vec<u8>,
    _schema: std::marker::PhantomData<fn() -> T>,
}

impl<T> PreJson<T> {
    /// A body already written (which must have the same JSON shape as `T`).
    pub fn from_body(body: Vec<u8>) -> Self {
        Self { body, _schema: std::marker::PhantomData }
    }
}

impl<T: poem_openapi::types::Type> poem_openapi::payload::Payload for PreJson<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut poem_openapi::registry::Registry) {
        T::register(registry);
    }
}

impl<T: Send> poem::IntoResponse for PreJson<T> {
    fn into_response(self) -> poem::Response {
        poem::Response::builder().content_type("application/json; charset=utf-8").body(self.body)
    }
}

impl<T: poem_openapi::types::Type> poem_openapi::ApiResponse for PreJson<T> {
    fn meta() -> poem_openapi::registry::MetaResponses {
        use poem_openapi::payload::Payload as _;
        poem_openapi::registry::MetaResponses {
            responses: vec![poem_openapi::registry::MetaResponse {
                description: "",
                status: Some(200),
                status_range: None,
                content: vec![poem_openapi::registry::MetaMediaType {
                    content_type: Self::CONTENT_TYPE,
                    schema: Self::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut poem_openapi::registry::Registry) {
        T::register(registry);
    }
}
