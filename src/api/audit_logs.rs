//! `GET /api/audit-logs/` (KeyNest): the audit trail, newest first, with the documented filters
//! plus full-text `search` over details. Staff see everything; organization admins see the
//! records of their organizations and their own; everyone else sees their own actions.

use std::sync::Arc;

use poem::web::Data;
use poem::Request;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use crate::api::error::ApiResult;
use crate::api::monitor::params::parse_date;
use crate::api::paging::{Page, PageRequest};
use crate::api::security::Authenticated;
use crate::api::tags::ApiTags;
use crate::domain::audit::AuditRecord;
use crate::logs::{AuditFilter, AuditScope};
use crate::services::Services;

#[derive(Default)]
pub struct AuditLogsApi;

/// One audit record, with KeyNest's field names.
#[derive(Debug, Object)]
pub struct AuditLogItem {
    pub id: u64,
    pub user_name: String,
    pub user_email: String,
    /// `variable_created`, `user_login`, …
    pub action: String,
    pub target_type: String,
    /// The target's id: an integer where the target has one, else a string.
    pub target_id: serde_json::Value,
    /// What changed: names and ids, never secret values.
    pub details: serde_json::Value,
    pub ip_address: Option<String>,
    pub timestamp: String,
}

impl From<AuditRecord> for AuditLogItem {
    fn from(a: AuditRecord) -> Self {
        let target_id = a.target_id.parse::<u64>().map_or_else(
            |_| serde_json::Value::String(a.target_id.clone()),
            serde_json::Value::from,
        );
        Self {
            id: a.id,
            user_name: a.user_name,
            user_email: a.user_email,
            action: a.action,
            target_type: a.target_type,
            target_id,
            details: a.details,
            ip_address: a.ip_address,
            timestamp: crate::clock::rfc3339_from_unix(a.timestamp),
        }
    }
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

#[OpenApi(tag = "ApiTags::AuditLogs")]
impl AuditLogsApi {
    /// The audit log, newest first.
    #[allow(clippy::too_many_arguments)] // one parameter per documented query field
    #[oai(path = "/api/audit-logs/", method = "get", operation_id = "audit_logs_list")]
    async fn list(
        &self,
        state: Data<&Arc<Services>>,
        req: &Request,
        auth: Authenticated,
        /// The acting user's id.
        user: Query<Option<u64>>,
        action: Query<Option<String>>,
        target_type: Query<Option<String>>,
        /// `YYYY-MM-DD`, inclusive, UTC.
        date_from: Query<Option<String>>,
        /// `YYYY-MM-DD`, inclusive, UTC.
        date_to: Query<Option<String>>,
        /// Words that must occur in the details.
        search: Query<Option<String>>,
        page: Query<Option<u64>>,
        page_size: Query<Option<u64>>,
    ) -> ApiResult<Json<Page<AuditLogItem>>> {
        let paging = PageRequest::new(page.0, page_size.0)?;
        let filter = AuditFilter {
            scope: AuditScope::of(auth.principal()),
            user: user.0,
            action: non_empty(action.0),
            target_type: non_empty(target_type.0),
            from: parse_date(date_from.0.as_deref(), "date_from", false)?,
            to: parse_date(date_to.0.as_deref(), "date_to", true)?,
            search: non_empty(search.0),
        };
        let (count, records) =
            state.logs.list_audit(filter, paging.offset(), paging.limit()).await?;
        let items = records.into_iter().map(AuditLogItem::from).collect();
        paging.build(req, count, items).map(Json)
    }
}
