//! `POST /api/admin/backup/`: a consistent snapshot of the data file, streamed (staff, through
//! a full session, audited). The snapshot holds sealed values and password hashes but never
//! the master key; restoring it needs the key the server runs with.

use std::sync::Arc;

use poem::web::Data;
use poem::{Body, Request};
use poem_openapi::payload::Binary;
use poem_openapi::{ApiResponse, OpenApi};

use crate::api::auth::client_ip;
use crate::api::error::ApiResult;
use crate::api::security::Authenticated;
use crate::api::tags::ApiTags;
use crate::domain::audit::{self, Actor, AuditEvent};
use crate::domain::Error;
use crate::services::Services;

#[derive(Default)]
pub struct BackupApi;

#[derive(ApiResponse)]
pub enum BackupResponse {
    /// The snapshot: a redb file to put in place of `DATA_DIR/gatehouse.redb` with
    /// `gatehouse restore`.
    #[oai(status = 200, content_type = "application/octet-stream")]
    Ok(
        Binary<Body>,
        /// `attachment; filename="gatehouse-<UTC time>.redb"`.
        #[oai(header = "Content-Disposition")]
        String,
        /// The snapshot's size in bytes.
        #[oai(header = "Content-Length")]
        u64,
        /// The data file schema version of the snapshot.
        #[oai(header = "X-Gatehouse-Schema-Version")]
        u64,
    ),
}

#[OpenApi(tag = "ApiTags::Admin")]
impl BackupApi {
    /// Stream a consistent snapshot of the data file (staff, through a full session: login
    /// token, session cookie, session JWT or Basic). Every table is copied in one read
    /// transaction while writes go on, checked, and sent; audited as `backup_downloaded`.
    #[oai(path = "/api/admin/backup/", method = "post", operation_id = "admin_backup_create")]
    async fn backup(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
    ) -> ApiResult<BackupResponse> {
        let p = auth.into_principal();
        p.require_staff()?;
        p.require_full_session("download backups")?;
        let (file, report) = state.backup.for_download().await.map_err(Error::from)?;
        let actor = Actor::from_principal(&p, client_ip(req));
        let details = serde_json::json!({
            "bytes": report.bytes,
            "schema_version": report.schema_version,
            "rows": report.rows,
        });
        state
            .store
            .write(move |tx| {
                audit::record(
                    tx,
                    AuditEvent {
                        actor: &actor,
                        organization_id: None,
                        action: "backup_downloaded",
                        target_type: "data_file",
                        target_id: String::new(),
                        details: details.clone(),
                    },
                )
            })
            .await?;
        let name = crate::services::backup::snapshot_name(std::time::SystemTime::now());
        let body = Body::from_async_read(tokio::fs::File::from_std(file));
        Ok(BackupResponse::Ok(
            Binary(body),
            format!("attachment; filename=\"{name}\""),
            report.bytes,
            report.schema_version,
        ))
    }
}
