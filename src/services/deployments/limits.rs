//! The two gates a submission passes before it is stored: a deployment's requests per minute
//! (the seed's "100 requests per minute") and Unstract's concurrency limits (executions pending
//! or running, per organization and in all).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::auth::ratelimit::Decision;

/// Fixed one-minute windows per deployment.
#[derive(Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<u64, (i64, u64)>>,
}

/// Windows kept before stale ones are pruned.
const PRUNE_AT: usize = 10_000;

impl RateLimiter {
    /// Counts one request of `deployment` at `now` (seconds) against `limit` per minute.
    /// The decision has the account limiter's shape, so both answer the same
    /// `X-RateLimit-*` headers (`reset`: when the window ends, Unix seconds).
    pub fn check(&self, deployment: u64, limit: u64, now: i64) -> Decision {
        let minute = now.div_euclid(60);
        let left = u64::try_from(60 - now.rem_euclid(60)).unwrap_or(60);
        let reset = (minute + 1) * 60;
        let mut windows = self.windows.lock();
        if windows.len() > PRUNE_AT {
            windows.retain(|_, (m, _)| *m == minute);
        }
        let slot = windows.entry(deployment).or_insert((minute, 0));
        if slot.0 != minute {
            *slot = (minute, 0);
        }
        if slot.1 >= limit {
            return Decision { limit, remaining: 0, reset, retry_after: Some(left.max(1)) };
        }
        slot.1 += 1;
        Decision { limit, remaining: limit - slot.1, reset, retry_after: None }
    }
}

/// Why a submission found no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    Organization { current: u64, limit: u64 },
    Global { limit: u64 },
}

impl Busy {
    /// Unstract's own messages, naming the limit that was hit.
    pub fn message(self) -> String {
        match self {
            Busy::Organization { current, limit } => format!(
                "Organization has reached the maximum concurrent API requests limit \
                 ({current}/{limit}). Please try again later."
            ),
            Busy::Global { limit } => format!(
                "The server has reached its maximum of {limit} concurrent API executions. \
                 Please try again in a few moments."
            ),
        }
    }
}

#[derive(Default)]
struct Counts {
    per_org: HashMap<u64, u64>,
    total: u64,
}

/// Executions in flight, per organization and in all.
pub struct Concurrency {
    per_org_limit: u64,
    total_limit: u64,
    counts: Mutex<Counts>,
}

/// One execution's place in the limits; released when dropped (the run ended, or the
/// submission failed before it was queued).
pub struct Slot {
    org: u64,
    owner: Arc<Concurrency>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.owner.counts.lock();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_org.get_mut(&self.org) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_org.remove(&self.org);
            }
        }
    }
}

impl Concurrency {
    pub fn new(per_org_limit: u64, total_limit: u64) -> Arc<Self> {
        Arc::new(Self { per_org_limit, total_limit, counts: Mutex::new(Counts::default()) })
    }

    /// A slot for one more execution of `org`, or which limit is full.
    pub fn acquire(self: &Arc<Self>, org: u64) -> Result<Slot, Busy> {
        let mut c = self.counts.lock();
        let current = c.per_org.get(&org).copied().unwrap_or(0);
        if current >= self.per_org_limit {
            return Err(Busy::Organization { current, limit: self.per_org_limit });
        }
        if c.total >= self.total_limit {
            return Err(Busy::Global { limit: self.total_limit });
        }
        c.total += 1;
        *c.per_org.entry(org).or_insert(0) += 1;
        Ok(Slot { org, owner: Arc::clone(self) })
    }

    /// Executions in flight in all.
    pub fn in_flight(&self) -> u64 {
        self.counts.lock().total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_window_counts_and_resets() {
        let r = RateLimiter::default();
        let t = 6_000; // a minute boundary
        for i in 0..3 {
            let d = r.check(1, 3, t + i);
            assert_eq!(d.retry_after, None);
            assert_eq!(d.remaining, 2 - u64::try_from(i).unwrap());
        }
        let refused = r.check(1, 3, t + 10);
        assert_eq!(refused.retry_after, Some(50));
        assert_eq!(refused.reset, t + 60);
        assert_eq!(refused.remaining, 0);
        // Another deployment has its own window; the next minute starts afresh.
        assert_eq!(r.check(2, 3, t + 10).retry_after, None);
        assert_eq!(r.check(1, 3, t + 60).retry_after, None);
    }

    #[test]
    fn concurrency_limits_per_org_and_total_and_releases_on_drop() {
        let c = Concurrency::new(2, 3);
        let a = c.acquire(1).unwrap();
        let _b = c.acquire(1).unwrap();
        assert_eq!(c.acquire(1).err(), Some(Busy::Organization { current: 2, limit: 2 }));
        let _d = c.acquire(2).unwrap();
        assert_eq!(c.acquire(3).err(), Some(Busy::Global { limit: 3 }));
        drop(a);
        assert_eq!(c.in_flight(), 2);
        assert!(c.acquire(1).is_ok());
    }
}
