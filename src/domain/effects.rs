//! What a committed mutation asks of the rest of the process. Mutations queue these with
//! `tx.on_commit(…)` inside their transaction; the services apply them once the commit is
//! durable and before any caller of that commit is answered, so a revocation that has been
//! answered has taken effect. A mutation that fails, or a commit that fails, applies none.

/// One effect of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Users, memberships, organizations or credentials changed: every cached credential
    /// resolution may be stale.
    CredentialsChanged,
    /// `delta` objects of `kind` were created (positive) or removed (negative) in `org`: the
    /// metrics keep per-organization counts current from these instead of scanning tables.
    Counted { org: u64, kind: Counted, delta: i64 },
    /// An audit record with `action` was written (for the audit-event counter).
    Audited { org: Option<u64>, action: String },
}

/// The objects counted per organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Counted {
    Projects,
    Environments,
    Variables,
    /// Active (not revoked) API keys.
    ApiKeys,
    /// Active (not revoked) personal access tokens.
    Pats,
}

/// Queues a change of the count of `kind` in `org` (see [`Effect::Counted`]).
pub fn count(tx: &crate::store::WriteTx, org: u64, kind: Counted, delta: i64) {
    tx.on_commit(Effect::Counted { org, kind, delta });
}
