//! In-memory fixed-window rate limits, O(1) per request: per user per hour, per anonymous
//! address per hour, a per-minute burst for both, and a per-minute limit on register/login
//! per address (KeyNest's `auth` throttle).

use std::collections::HashMap;
use std::net::IpAddr;

use parking_lot::Mutex;

use crate::config::RateLimitConfig;

/// Whose budget a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    User(u64),
    Anon(Option<IpAddr>),
    /// Register and login attempts from one address.
    Auth(Option<IpAddr>),
}

/// The outcome of one check, for the `X-RateLimit-*` headers and a 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub limit: u64,
    pub remaining: u64,
    /// Unix seconds when the window resets.
    pub reset: i64,
    /// Set when the request is over a limit: seconds until it may retry.
    pub retry_after: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Window {
    hour_start: i64,
    hour_count: u64,
    minute_start: i64,
    minute_count: u64,
}

/// Entries kept before stale windows are swept.
const SWEEP_AT: usize = 50_000;

pub struct RateLimiter {
    cfg: RateLimitConfig,
    windows: Mutex<HashMap<Bucket, Window>>,
}

impl RateLimiter {
    pub fn new(cfg: RateLimitConfig) -> Self {
        Self { cfg, windows: Mutex::new(HashMap::new()) }
    }

    pub fn enabled(&self) -> bool {
        self.cfg.enabled
    }

    /// Counts one request against `bucket` at `now` (unix seconds) and decides.
    pub fn check(&self, bucket: Bucket, now: i64) -> Decision {
        let (hour_limit, minute_limit) = match bucket {
            Bucket::User(_) => (Some(self.cfg.user_per_hour), self.cfg.burst_per_minute),
            Bucket::Anon(_) => (Some(self.cfg.anon_per_hour), self.cfg.burst_per_minute),
            Bucket::Auth(_) => (None, self.cfg.auth_per_minute),
        };
        let hour_start = now - now.rem_euclid(3600);
        let minute_start = now - now.rem_euclid(60);
        let mut map = self.windows.lock();
        if map.len() >= SWEEP_AT {
            map.retain(|_, w| w.hour_start == hour_start || w.minute_start == minute_start);
        }
        let w = map.entry(bucket).or_default();
        if w.hour_start != hour_start {
            w.hour_start = hour_start;
            w.hour_count = 0;
        }
        if w.minute_start != minute_start {
            w.minute_start = minute_start;
            w.minute_count = 0;
        }
        let minute_reset = minute_start + 60;
        let hour_reset = hour_start + 3600;
        let over_minute = w.minute_count >= minute_limit;
        let over_hour = hour_limit.is_some_and(|l| w.hour_count >= l);
        if !over_minute && !over_hour {
            w.minute_count += 1;
            w.hour_count += 1;
        }
        let secs = |reset: i64| u64::try_from((reset - now).max(1)).unwrap_or(1);
        match hour_limit {
            Some(limit) => Decision {
                limit,
                remaining: limit
                    .saturating_sub(w.hour_count)
                    .min(minute_limit.saturating_sub(w.minute_count)),
                reset: hour_reset,
                retry_after: if over_hour {
                    Some(secs(hour_reset))
                } else if over_minute {
                    Some(secs(minute_reset))
                } else {
                    None
                },
            },
            None => Decision {
                limit: minute_limit,
                remaining: minute_limit.saturating_sub(w.minute_count),
                reset: minute_reset,
                retry_after: over_minute.then(|| secs(minute_reset)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RateLimitConfig {
        RateLimitConfig {
            enabled: true,
            user_per_hour: 10,
            anon_per_hour: 3,
            burst_per_minute: 5,
            auth_per_minute: 2,
        }
    }

    #[test]
    fn burst_then_hour_then_reset() {
        let rl = RateLimiter::new(cfg());
        let t = 7200; // start of an hour and a minute
        for i in 0..5 {
            let d = rl.check(Bucket::User(1), t);
            assert_eq!(d.retry_after, None, "request {i}");
            assert_eq!(d.limit, 10);
        }
        let d = rl.check(Bucket::User(1), t + 10);
        assert_eq!(d.retry_after, Some(50));
        assert_eq!(d.remaining, 0);
        // Next minute: burst budget back; the hour has 5 left.
        for _ in 0..5 {
            assert_eq!(rl.check(Bucket::User(1), t + 60).retry_after, None);
        }
        let d = rl.check(Bucket::User(1), t + 120);
        assert_eq!(d.retry_after, Some(3600 - 120));
        // Other users are independent; the next hour starts afresh.
        assert_eq!(rl.check(Bucket::User(2), t + 120).retry_after, None);
        assert_eq!(rl.check(Bucket::User(1), t + 3600).retry_after, None);
    }

    #[test]
    fn auth_bucket_is_per_minute() {
        let rl = RateLimiter::new(cfg());
        let ip = Some("10.0.0.1".parse().unwrap());
        assert_eq!(rl.check(Bucket::Auth(ip), 60).remaining, 1);
        assert_eq!(rl.check(Bucket::Auth(ip), 61).remaining, 0);
        let d = rl.check(Bucket::Auth(ip), 62);
        assert_eq!((d.limit, d.retry_after), (2, Some(58)));
        assert_eq!(rl.check(Bucket::Auth(ip), 120).retry_after, None);
    }
}
