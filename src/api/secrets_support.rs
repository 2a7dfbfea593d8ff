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
