//! Identity and access: accounts, the authentication layer, organizations and members.

mod accounts;
mod admin_cli;
mod api_keys;
mod bench;
mod jwt;
mod layer;
mod limits;
mod organizations;
mod pat_migration;
mod pat_scope;
mod pats;
mod secrets;
pub(crate) mod two_factor;

use crate::harness::TestServer;

/// Audit actions recorded so far, oldest first (read straight from the data file).
pub fn audit_actions(server: &TestServer) -> Vec<String> {
    use gatehouse::domain::audit::tables::AUDIT;
    use gatehouse::store::Reader as _;
    let state = &server.running.as_ref().unwrap().state;
    state
        .store
        .read(|tx| tx.scan(AUDIT, 0..=u64::MAX, usize::MAX, false))
        .unwrap()
        .into_iter()
        .map(|(_, r)| r.action)
        .collect()
}
