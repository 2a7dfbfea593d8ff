//! Glue shared by the projects, environments and variables APIs: turning a request into a
//! [`Caller`], and running domain reads and writes.

use std::sync::Arc;

use poem::Request;

use crate::api::error::ApiError;
use crate::api::middleware::RequestContext;
use crate::api::security::Authenticated;
use crate::app::AppState;
use crate::domain::secrets::{Caller, Vault};
use crate::domain::Error;
use crate::store::{ReadTx, WriteTx};

/// The caller of `req`, with the client address for audit records.
pub fn caller(req: &Request, auth: Authenticated) -> Caller {
    let ip = req.extensions().get::<RequestContext>().and_then(|c| c.client_ip);
    Caller::new(auth.into_principal(), ip)
}

/// Runs a domain read on a snapshot.
pub fn read<T>(
    state: &AppState,
    f: impl FnOnce(&ReadTx, &Vault) -> Result<T, Error>,
) -> Result<T, ApiError> {
    let vault = &state.vault;
    state.store.read(|tx| f(tx, vault)).map_err(ApiError::from)
}

/// Runs a domain mutation durably; `f` may run more than once (see `Store::write`).
pub async fn write<T, F>(state: &Arc<AppState>, caller: Caller, f: F) -> Result<T, ApiError>
where
    F: Fn(&WriteTx, &Caller, &Vault) -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    let vault = Arc::clone(&state.vault);
    state.store.write(move |tx| f(tx, &caller, &vault)).await.map_err(ApiError::from)
}

/// A unix timestamp as RFC 3339.
pub fn ts(secs: i64) -> String {
    crate::domain::rfc3339_from_unix(secs)
}

/// A unix timestamp serialised as RFC 3339 text without an intermediate `String`.
pub struct Ts<'a>(pub i64, pub &'a TsMemo);

/// The last timestamp converted while writing one response: rows written together (an
/// import, a bulk create) share their timestamps, and the calendar arithmetic is the larger
/// part of writing one.
#[derive(Default)]
pub struct TsMemo(std::cell::Cell<Option<(i64, [u8; 20])>>);

impl serde::Serialize for Ts<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let digits = match self.1 .0.get() {
            Some((secs, digits)) if secs == self.0 => Some(digits),
            _ => {
                let digits = crate::domain::rfc3339_digits(self.0);
                if let Some(d) = digits {
                    self.1 .0.set(Some((self.0, d)));
                }
                digits
            }
        };
        match digits {
            Some(buf) => s.serialize_str(std::str::from_utf8(&buf).unwrap_or_default()),
            None => s.serialize_str(&ts(self.0)),
        }
    }
}

/// A JSON body serialized straight from serde (no intermediate `serde_json::Value` as
/// poem-openapi's `Json` builds), documented in the OpenAPI document as `T`. Used by the hot
/// list routes, where building a `Value` tree per variable costs more than the rest of the
/// request.
pub struct PreJson<T> {
    body: Vec<u8>,
    _schema: std::marker::PhantomData<fn() -> T>,
}

impl<T> PreJson<T> {
    /// Serializes `value` (which must have the same JSON shape as `T`).
    pub fn new(value: &impl serde::Serialize) -> Result<Self, ApiError> {
        Self::with_capacity(value, 0)
    }

    /// Like [`PreJson::new`], into a buffer of `capacity` bytes (a good guess saves the
    /// copies of a growing buffer on large pages).
    pub fn with_capacity(value: &impl serde::Serialize, capacity: usize) -> Result<Self, ApiError> {
        let mut body = Vec::with_capacity(capacity);
        serde_json::to_writer(&mut body, value)
            .map_err(|e| ApiError::from(Error::internal(e.to_string())))?;
        Ok(Self { body, _schema: std::marker::PhantomData })
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

/// The serde twin of `paging::Page`, for [`PreJson`] bodies.
#[derive(serde::Serialize)]
pub struct PageBody<T> {
    pub count: u64,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<T>,
}

impl<T: poem_openapi::types::ParseFromJSON + poem_openapi::types::ToJSON + Send + Sync>
    From<crate::api::paging::Page<T>> for PageBody<T>
{
    fn from(p: crate::api::paging::Page<T>) -> Self {
        Self { count: p.count, next: p.next, previous: p.previous, results: p.results }
    }
}
