//! In-memory fixed-window rate limits, O(1) per request: per user per hour, per anonymous
//! address per hour, a per-minute burst for both, and a per-minute limit on credential
//! attempts per address (KeyNest's `auth` throttle, also spent by HTTP Basic password checks
//! and failed credentials).
//!
//! Addresses are bucketed by network: an IPv6 client holds a whole /64, so each /64 is one
//! caller. Stale windows are swept once per minute (entries only go stale when a minute or an
//! hour ends), never on every check, and the address map is capped: once full, new addresses
//! share one overflow bucket per kind, so memory stays bounded and a flood of fresh addresses
//! buys no fresh budgets.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};

use parking_lot::Mutex;

use crate::config::RateLimitConfig;

/// Whose budget a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    User(u64),
    Anon(Option<IpAddr>),
    /// Credential attempts from one address: register and login, HTTP Basic password checks,
    /// and every refused credential.
    Auth(Option<IpAddr>),
}

/// The network an address is counted as: IPv4 addresses as themselves (IPv4-mapped IPv6
/// too), other IPv6 addresses by their /64.
pub fn network_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(bits))
            }
        },
    }
}

impl Bucket {
    /// The key the bucket is counted under.
    fn key(self) -> Self {
        match self {
            Bucket::User(_) => self,
            Bucket::Anon(ip) => Bucket::Anon(ip.map(network_of)),
            Bucket::Auth(ip) => Bucket::Auth(ip.map(network_of)),
        }
    }

    /// Where an address bucket goes once the map is full.
    fn overflow(self) -> Self {
        match self {
            Bucket::User(_) => self,
            Bucket::Anon(_) => Bucket::Anon(Some(OVERFLOW_ADDR)),
            Bucket::Auth(_) => Bucket::Auth(Some(OVERFLOW_ADDR)),
        }
    }
}

/// The overflow buckets' key: an address no client can have (`::` is unspecified).
const OVERFLOW_ADDR: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

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

/// Address buckets kept at most (users are bounded by the accounts and always kept).
const MAX_ADDRESS_BUCKETS: usize = 100_000;

#[derive(Default)]
struct Windows {
    map: HashMap<Bucket, Window>,
    /// Address buckets in `map` (for the cap).
    addresses: usize,
    /// The minute of the last sweep.
    swept_minute: i64,
}

impl Windows {
    /// Drops windows that no longer count: nothing in them belongs to the current minute,
    /// nor (for hourly buckets) to the current hour.
    fn sweep(&mut self, hour_start: i64, minute_start: i64) {
        self.map.retain(|b, w| {
            w.minute_start == minute_start
                || (!matches!(b, Bucket::Auth(_)) && w.hour_start == hour_start)
        });
        self.addresses = self.map.keys().filter(|b| !matches!(b, Bucket::User(_))).count();
        self.swept_minute = minute_start;
    }
}

/// Moves a window to the current hour and minute, dropping counts of earlier ones.
fn roll(w: &mut Window, now: i64) {
    let hour_start = now - now.rem_euclid(3600);
    let minute_start = now - now.rem_euclid(60);
    if w.hour_start != hour_start {
        w.hour_start = hour_start;
        w.hour_count = 0;
    }
    if w.minute_start != minute_start {
        w.minute_start = minute_start;
        w.minute_count = 0;
    }
}

pub struct RateLimiter {
    cfg: RateLimitConfig,
    windows: Mutex<Windows>,
    max_address_buckets: usize,
}

impl RateLimiter {
    pub fn new(cfg: RateLimitConfig) -> Self {
        Self::with_capacity(cfg, MAX_ADDRESS_BUCKETS)
    }

    fn with_capacity(cfg: RateLimitConfig, max_address_buckets: usize) -> Self {
        Self { cfg, windows: Mutex::new(Windows::default()), max_address_buckets }
    }

    pub fn enabled(&self) -> bool {
        self.cfg.enabled
    }

    fn limits(&self, bucket: Bucket) -> (Option<u64>, u64) {
        match bucket {
            Bucket::User(_) => (Some(self.cfg.user_per_hour), self.cfg.burst_per_minute),
            Bucket::Anon(_) => (Some(self.cfg.anon_per_hour), self.cfg.burst_per_minute),
            Bucket::Auth(_) => (None, self.cfg.auth_per_minute),
        }
    }

    /// Seconds until `bucket` may spend again, when it is over a limit now; counts nothing.
    pub fn over(&self, bucket: Bucket, now: i64) -> Option<u64> {
        self.peek(bucket, now).retry_after
    }

    /// The decision a request would get, without counting it (nor creating a bucket).
    pub fn peek(&self, bucket: Bucket, now: i64) -> Decision {
        let found = {
            let windows = self.windows.lock();
            let key = bucket.key();
            match windows.map.get(&key) {
                Some(w) => Some(*w),
                None if windows.addresses >= self.max_address_buckets => {
                    windows.map.get(&key.overflow()).copied()
                }
                None => None,
            }
        };
        let mut w = found.unwrap_or_default();
        roll(&mut w, now);
        self.decide(bucket, &w, now)
    }

    /// Counts one request against `bucket` at `now` (unix seconds) and decides.
    pub fn check(&self, bucket: Bucket, now: i64) -> Decision {
        let (hour_limit, minute_limit) = self.limits(bucket);
        let hour_start = now - now.rem_euclid(3600);
        let minute_start = now - now.rem_euclid(60);
        let mut windows = self.windows.lock();
        if minute_start > windows.swept_minute {
            windows.sweep(hour_start, minute_start);
        }
        let mut key = bucket.key();
        if !windows.map.contains_key(&key) && !matches!(key, Bucket::User(_)) {
            if windows.addresses >= self.max_address_buckets {
                key = key.overflow();
            }
            if !windows.map.contains_key(&key) {
                windows.addresses += 1;
            }
        }
        let w = windows.map.entry(key).or_default();
        roll(w, now);
        let over_minute = w.minute_count >= minute_limit;
        let over_hour = hour_limit.is_some_and(|l| w.hour_count >= l);
        if !over_minute && !over_hour {
            w.minute_count += 1;
            w.hour_count += 1;
        }
        let w = *w;
        drop(windows);
        self.decide_counted(bucket, &w, now, over_minute, over_hour)
    }

    /// The decision for a window that already holds the request (or refused it).
    fn decide_counted(
        &self,
        bucket: Bucket,
        w: &Window,
        now: i64,
        over_minute: bool,
        over_hour: bool,
    ) -> Decision {
        let (hour_limit, minute_limit) = self.limits(bucket);
        let minute_reset = w.minute_start + 60;
        let hour_reset = w.hour_start + 3600;
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

    /// The decision for a window as it stands (nothing counted).
    fn decide(&self, bucket: Bucket, w: &Window, now: i64) -> Decision {
        let (hour_limit, minute_limit) = self.limits(bucket);
        let over_minute = w.minute_count >= minute_limit;
        let over_hour = hour_limit.is_some_and(|l| w.hour_count >= l);
        self.decide_counted(bucket, w, now, over_minute, over_hour)
    }

    /// Buckets held (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.windows.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

    #[test]
    fn ipv6_clients_are_counted_by_64() {
        let rl = RateLimiter::new(cfg());
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(network_of(a), network_of(b));
        assert_ne!(network_of(a), network_of(other));
        // IPv4 and IPv4-mapped IPv6 are one caller.
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(network_of(mapped), v4);
        assert_eq!(rl.check(Bucket::Auth(Some(a)), 60).remaining, 1);
        assert_eq!(rl.check(Bucket::Auth(Some(b)), 60).remaining, 0);
        assert_eq!(rl.check(Bucket::Auth(Some(a)), 61).retry_after, Some(59));
        assert_eq!(rl.over(Bucket::Auth(Some(b)), 61), Some(59));
        assert_eq!(rl.over(Bucket::Auth(Some(other)), 61), None);
        assert_eq!(rl.check(Bucket::Auth(Some(other)), 61).retry_after, None);
    }

    #[test]
    fn over_counts_nothing() {
        let rl = RateLimiter::new(cfg());
        let ip = Some("10.0.0.9".parse().unwrap());
        for _ in 0..10 {
            assert_eq!(rl.over(Bucket::Auth(ip), 60), None);
        }
        assert!(rl.is_empty());
        rl.check(Bucket::Auth(ip), 60);
        rl.check(Bucket::Auth(ip), 60);
        assert_eq!(rl.over(Bucket::Auth(ip), 70), Some(50));
        assert_eq!(rl.over(Bucket::Auth(ip), 120), None);
    }

    #[test]
    fn stale_windows_are_swept_once_a_minute() {
        let rl = RateLimiter::new(cfg());
        let t = 7200;
        for i in 0..1000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            rl.check(Bucket::Auth(Some(ip)), t);
            rl.check(Bucket::Anon(Some(ip)), t);
        }
        rl.check(Bucket::User(1), t);
        assert_eq!(rl.len(), 2001);
        // Same minute: nothing is swept, whatever the size.
        rl.check(Bucket::User(2), t + 59);
        assert_eq!(rl.len(), 2002);
        // Next minute: the per-minute auth windows go, hourly windows stay for the hour.
        rl.check(Bucket::User(3), t + 60);
        assert_eq!(rl.len(), 1003);
        // Next hour: everything but the caller is gone.
        rl.check(Bucket::User(3), t + 3600);
        assert_eq!(rl.len(), 1);
    }

    #[test]
    fn full_map_sends_new_addresses_to_a_shared_bucket() {
        let rl = RateLimiter::with_capacity(cfg(), 4);
        let ip = |i: u32| Some(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
        for i in 0..4 {
            rl.check(Bucket::Auth(ip(i)), 60);
        }
        assert_eq!(rl.len(), 4);
        // Later addresses share one overflow budget (2 per minute), never a fresh one each.
        assert_eq!(rl.check(Bucket::Auth(ip(10)), 61).retry_after, None);
        assert_eq!(rl.check(Bucket::Auth(ip(11)), 61).retry_after, None);
        assert_eq!(rl.check(Bucket::Auth(ip(12)), 61).retry_after, Some(59));
        assert_eq!(rl.over(Bucket::Auth(ip(13)), 61), Some(59));
        assert_eq!(rl.len(), 5);
        // Known addresses keep their own bucket; users are never capped.
        assert_eq!(rl.check(Bucket::Auth(ip(0)), 61).retry_after, None);
        for u in 0..10 {
            rl.check(Bucket::User(u), 61);
        }
        assert_eq!(rl.len(), 15);
        // A new minute sweeps the auth windows and frees room.
        assert_eq!(rl.check(Bucket::Auth(ip(12)), 120).retry_after, None);
        assert_eq!(rl.len(), 11);
    }
}
