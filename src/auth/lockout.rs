//! Login lockout: after `auth.lockout_failures` wrong passwords for one account within
//! `auth.lockout_minutes`, the account refuses logins (even with the right password) for
//! `auth.lockout_minutes`. In memory: a restart forgives.

use std::collections::HashMap;

use parking_lot::Mutex;

#[derive(Debug, Clone, Copy, Default)]
struct Failures {
    count: u64,
    first_at: i64,
    locked_until: i64,
}

pub struct Lockout {
    threshold: u64,
    window_secs: i64,
    accounts: Mutex<HashMap<u64, Failures>>,
}

impl Lockout {
    pub fn new(threshold: u64, minutes: u64) -> Self {
        Self {
            threshold: threshold.max(1),
            window_secs: i64::try_from(minutes.saturating_mul(60)).unwrap_or(900).max(1),
            accounts: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds the account stays locked, if it is.
    pub fn locked(&self, user_id: u64, now: i64) -> Option<u64> {
        let map = self.accounts.lock();
        let f = map.get(&user_id)?;
        (f.locked_until > now).then(|| u64::try_from(f.locked_until - now).unwrap_or(1))
    }

    /// Records a wrong password; returns true when this failure locked the account.
    pub fn failure(&self, user_id: u64, now: i64) -> bool {
        let mut map = self.accounts.lock();
        if map.len() > 100_000 {
            map.retain(|_, f| f.locked_until > now || now - f.first_at < self.window_secs);
        }
        let f = map.entry(user_id).or_default();
        if now - f.first_at >= self.window_secs {
            f.count = 0;
            f.first_at = now;
        }
        f.count += 1;
        if f.count >= self.threshold {
            f.locked_until = now + self.window_secs;
            f.count = 0;
            f.first_at = now;
            return true;
        }
        false
    }

    /// A successful login clears the account's failures.
    pub fn success(&self, user_id: u64) {
        self.accounts.lock().remove(&user_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_threshold_and_unlocks_later() {
        let l = Lockout::new(3, 1);
        assert!(!l.failure(1, 100));
        assert!(!l.failure(1, 101));
        assert_eq!(l.locked(1, 101), None);
        assert!(l.failure(1, 102));
        assert_eq!(l.locked(1, 102), Some(60));
        assert_eq!(l.locked(2, 102), None);
        assert_eq!(l.locked(1, 162), None);
        // Failures spread beyond the window don't add up.
        assert!(!l.failure(3, 0));
        assert!(!l.failure(3, 30));
        assert!(!l.failure(3, 100));
        l.success(3);
        assert_eq!(l.locked(3, 100), None);
    }
}
