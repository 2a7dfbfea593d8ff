//! The credential sweeper: removes expired login tokens, sessions, refresh tokens and
//! deny-listed access JWTs, and gives login tokens from before they expired an expiry. Each batch is read in a read transaction and only the expired rows
//! are removed, a few hundred per write transaction, so the sweep never holds the writer for
//! long and writes nothing when nothing expired. Expired rows already stop working when
//! presented; this keeps the tables from growing for ever.

use crate::clock::unix_now;
use crate::domain::sessions::{expired_denials, remove_denials, sweep_token_rows, tokens_to_sweep};
use crate::domain::Error;
use crate::store::Store;

/// Rows read per transaction.
const BATCH: usize = 500;

/// What one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub tokens: usize,
    pub denied_jwts: usize,
}

/// One full pass over both tables.
pub async fn sweep_credentials(store: &Store, token_secs: i64) -> Result<Swept, Error> {
    let mut swept = Swept::default();
    let mut from = Some(0u64);
    while let Some(start) = from {
        let now = unix_now();
        let (next, ids) = store.read(|tx| tokens_to_sweep(tx, start, BATCH, now))?;
        if !ids.is_empty() {
            swept.tokens +=
                store.write(move |tx| sweep_token_rows(tx, &ids, now, token_secs)).await?;
        }
        from = next;
    }
    let mut after: Option<String> = None;
    loop {
        let now = unix_now();
        let (next, jtis) = store.read(|tx| expired_denials(tx, after.as_deref(), BATCH, now))?;
        if !jtis.is_empty() {
            swept.denied_jwts += store.write(move |tx| remove_denials(tx, &jtis)).await?;
        }
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    Ok(swept)
}
