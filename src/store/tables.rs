//! Every table of the data file, in one place. Keys and values are described on each line;
//! record tables hold `Versioned<T>` bytes (see `codec`).

use redb::TableDefinition;

#[allow(unused_imports)] // each area below uses a different subset
use super::typed::{IndexTable, LookupTable, RecordTable};

/// `name → bytes`: schema version, creation time, instance id, master key check value,
/// the sealed TLS CA and leaf, the JWT signing key.
pub const META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("meta");

/// `sequence name → last id handed out`.
pub const SEQUENCES: TableDefinition<'static, &str, u64> = TableDefinition::new("sequences");

// ---- identity and access --------------------------------------------------------------

// ---- secrets ------------------------------------------------------------------------------

// ---- logs, audit and monitoring ---------------------------------------------------------

/// `audit id → AuditRecord`; ids are sequential (sequence `audit`), so id order is time order.
pub const AUDIT: RecordTable<crate::domain::audit::AuditRecord> = RecordTable::new("audit");
/// `(organization id, audit id)`: the records of an organization.
pub const AUDIT_BY_ORG: IndexTable = IndexTable::new("audit_by_org");
/// `(user id, audit id)`: the records of one actor.
pub const AUDIT_BY_USER: IndexTable = IndexTable::new("audit_by_user");

// ---- end of tables ------------------------------------------------------------------------
