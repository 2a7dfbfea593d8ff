//! What a committed mutation asks of the rest of the process. Mutations queue these with
//! `tx.on_commit(…)` inside their transaction; the services apply them once the commit is
//! durable and before any caller of that commit is answered, so a revocation that has been
//! answered has taken effect. A mutation that fails, or a commit that fails, applies none.

/// One effect of a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Users, memberships, organizations or credentials changed: every cached credential
    /// resolution may be stale.
    CredentialsChanged,
}
