//! The daily ingest allowance of each reporting key (or staff user): at most
//! `logs.ingest_quota_per_day` reported records per UTC day. The log writer — the one thread
//! that stores reported records — checks and counts a batch in the transaction that stores
//! it, so concurrent batches cannot overshoot, and the count survives a restart (a `meta` row
//! per subject: `ingest_quota/<subject>` = `<day> <used>`).
//!
//! A batch that does not fit is refused whole with 429 (not cut into stored and rejected
//! items): the reporter's batch stays one unit it can retry as is once the day turns (the
//! answer says when), and nothing of it is half-stored.

use std::collections::HashMap;

use super::IngestQuota;
use crate::domain::{Error, ErrorCode};
use crate::store::{read_meta, Store, StoreError};

const DAY: i64 = 86_400;

fn meta_key(subject: &str) -> String {
    format!("ingest_quota/{subject}")
}

fn encode(day: i64, used: u64) -> Vec<u8> {
    format!("{day} {used}").into_bytes()
}

/// `(day, used)` of a stored row; a malformed row counts as unused.
fn decode(bytes: &[u8]) -> Option<(i64, u64)> {
    let s = std::str::from_utf8(bytes).ok()?;
    let (day, used) = s.split_once(' ')?;
    Some((day.parse().ok()?, used.parse().ok()?))
}

/// The UTC day of `unix` seconds.
pub fn day_of(unix: i64) -> i64 {
    unix.div_euclid(DAY)
}

/// 429 for a batch over the allowance, retryable when the UTC day turns.
pub fn exceeded(used: u64, per_day: u64) -> Error {
    let now = crate::clock::unix_now();
    let retry = (day_of(now) + 1) * DAY - now;
    let mut e = Error::new(ErrorCode::RateLimited, "Daily ingest quota exceeded.").with_details(
        serde_json::json!({
            "quota_per_day": per_day,
            "used_today": used,
            "remaining": per_day.saturating_sub(used),
        }),
    );
    e.retry_after = u64::try_from(retry).ok();
    e
}

/// The writer's view of the allowances: counts read from `meta` on first use, then kept here.
#[derive(Default)]
pub struct QuotaBook {
    used: HashMap<String, (i64, u64)>,
}

impl QuotaBook {
    /// Takes `n` records from `q`'s allowance for `day`, or returns what is used already. On
    /// success, returns the `meta` row to store with the batch.
    pub fn take(
        &mut self,
        store: &Store,
        q: &IngestQuota,
        n: u64,
        day: i64,
    ) -> Result<(String, Vec<u8>), u64> {
        let key = meta_key(&q.subject);
        let entry = match self.used.get(&key) {
            Some(found) => *found,
            None => {
                let stored = store
                    .read(|tx| read_meta(tx, &key))
                    .unwrap_or_else(|e: StoreError| {
                        tracing::warn!(error = %e, "cannot read an ingest quota");
                        None
                    })
                    .and_then(|b| decode(&b))
                    .unwrap_or((day, 0));
                self.used.insert(key.clone(), stored);
                stored
            }
        };
        let used = if entry.0 == day { entry.1 } else { 0 };
        let after = used.saturating_add(n);
        if after > q.per_day {
            return Err(used);
        }
        self.used.insert(key.clone(), (day, after));
        Ok((key, encode(day, after)))
    }

    /// Forgets the counts (a batch that took from them was not stored): the next use reads
    /// them back from `meta`.
    pub fn forget(&mut self) {
        self.used.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_bad_rows_are_unused() {
        assert_eq!(decode(&encode(20_000, 42)), Some((20_000, 42)));
        assert_eq!(decode(b"garbage"), None);
        assert_eq!(decode(b"1 x"), None);
    }

    #[test]
    fn exceeded_is_429_until_the_day_turns() {
        let e = exceeded(990, 1000);
        assert_eq!(e.code, ErrorCode::RateLimited);
        assert!(e.retry_after.is_some_and(|s| (1..=86_400).contains(&s)));
        assert_eq!(e.details.unwrap()["remaining"], 10);
    }
}
