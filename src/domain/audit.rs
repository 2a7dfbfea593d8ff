//! Audit records: written inside the same write transaction as the change they describe, so a
//! change and its record commit together or not at all. Details name keys and objects, never
//! secret values.

use serde::{Deserialize, Serialize};

use crate::domain::audit::tables::{AUDIT, AUDIT_BY_ORG, AUDIT_BY_USER};
use crate::domain::{Error, Principal};
use crate::store::{Record, WriteTx, Writer as _};

/// Who did something, from where.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    /// `None` for anonymous callers (failed logins) and the system itself.
    pub user_id: Option<u64>,
    pub name: String,
    pub email: String,
    pub ip: Option<String>,
}

impl Actor {
    pub fn from_principal(p: &Principal, ip: Option<std::net::IpAddr>) -> Self {
        Self {
            user_id: Some(p.user_id),
            name: p.full_name.clone(),
            email: p.email.clone(),
            ip: ip.map(|i| i.to_string()),
        }
    }

    pub fn anonymous(ip: Option<std::net::IpAddr>) -> Self {
        Self { ip: ip.map(|i| i.to_string()), ..Self::default() }
    }

    pub fn system() -> Self {
        Self { name: "system".into(), ..Self::default() }
    }
}

/// One audit record as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditRecord {
    pub id: u64,
    pub user_id: Option<u64>,
    pub user_name: String,
    pub user_email: String,
    /// The organization the change belongs to, for admins' views.
    pub organization_id: Option<u64>,
    /// `variable_created`, `user_login_failed`, …
    pub action: String,
    /// `variable`, `project`, `user`, …
    pub target_type: String,
    pub target_id: String,
    pub details: serde_json::Value,
    pub ip_address: Option<String>,
    /// Unix seconds.
    pub timestamp: i64,
}

impl Record for AuditRecord {
    const VERSION: u8 = 1;
    const NAME: &'static str = "audit";
}

/// What to record; the id and time are assigned here.
pub struct AuditEvent<'a> {
    pub actor: &'a Actor,
    pub organization_id: Option<u64>,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: String,
    pub details: serde_json::Value,
}

/// Appends an audit record inside `tx`. Ids are sequential, so id order is time order.
pub fn record(tx: &WriteTx, event: AuditEvent<'_>) -> Result<u64, Error> {
    let id = tx.next_id("audit")?;
    let rec = AuditRecord {
        id,
        user_id: event.actor.user_id,
        user_name: event.actor.name.clone(),
        user_email: event.actor.email.clone(),
        organization_id: event.organization_id,
        action: event.action.to_string(),
        target_type: event.target_type.to_string(),
        target_id: event.target_id,
        details: event.details,
        ip_address: event.actor.ip.clone(),
        timestamp: crate::clock::unix_now(),
    };
    tx.put(AUDIT, id, &rec)?;
    tx.on_commit(crate::domain::effects::Effect::Audited {
        org: rec.organization_id,
        action: rec.action.clone(),
    });
    if let Some(org) = rec.organization_id {
        tx.link(AUDIT_BY_ORG, org, id)?;
    }
    if let Some(user) = rec.user_id {
        tx.link(AUDIT_BY_USER, user, id)?;
    }
    Ok(id)
}

/// The audit log. Keys and values are described on each line.
pub mod tables {
    use crate::store::schema::TableInfo;
    #[allow(unused_imports)] // each area uses a different subset of the three shapes
    use crate::store::{IndexTable, LookupTable, RecordTable};

    /// `audit id → AuditRecord`; ids are sequential (sequence `audit`), so id order is time order.
    pub const AUDIT: RecordTable<crate::domain::audit::AuditRecord> = RecordTable::new("audit");
    /// `(organization id, audit id)`: the records of an organization.
    pub const AUDIT_BY_ORG: IndexTable = IndexTable::new("audit_by_org");
    /// `(user id, audit id)`: the records of one actor.
    pub const AUDIT_BY_USER: IndexTable = IndexTable::new("audit_by_user");

    /// This area's tables, for the schema registry (backup, check, dumps).
    pub const TABLES: &[TableInfo] = &[AUDIT.info(), AUDIT_BY_ORG.info(), AUDIT_BY_USER.info()];
}
