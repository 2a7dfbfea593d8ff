//! Login lockout: after `auth.lockout_failures` wrong passwords for one identity within
//! `auth.lockout_minutes`, the identity refuses logins (even with the right password) for
//! `auth.lockout_minutes`. In memory: a restart forgives.
//!
//! An identity is an account (by id, however it was named) or, for names that match no
//! account, the name itself (lower-cased, kept only as a keyed hash). Unknown names lock
//! exactly like accounts, so a lock tells nothing about whether the account exists. Names are
//! capped: once the map is full, further unknown names share one entry (they lock together,
//! which only ever refuses names that cannot log in); accounts are bounded by the user table
//! and always kept. Stale entries are swept at most once a minute.

use std::collections::HashMap;

use parking_lot::Mutex;

/// Whose failures are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockKey {
    /// An existing account.
    User(u64),
    /// A name that matches no account: a keyed hash of it (see `AuthService::ident_key`).
    Ident([u8; 16]),
}

/// The shared entry of unknown names once the map is full.
const OVERFLOW: LockKey = LockKey::Ident([0xff; 16]);

/// Unknown names tracked at most.
const MAX_IDENTS: usize = 100_000;

#[derive(Debug, Clone, Copy, Default)]
struct Failures {
    count: u64,
    first_at: i64,
    locked_until: i64,
}

#[derive(Default)]
struct Entries {
    map: HashMap<LockKey, Failures>,
    idents: usize,
    swept_at: i64,
}

pub struct Lockout {
    threshold: u64,
    window_secs: i64,
    max_idents: usize,
    entries: Mutex<Entries>,
}

impl Lockout {
    pub fn new(threshold: u64, minutes: u64) -> Self {
        Self::with_capacity(threshold, minutes, MAX_IDENTS)
    }

    fn with_capacity(threshold: u64, minutes: u64, max_idents: usize) -> Self {
        Self {
            threshold: threshold.max(1),
            window_secs: i64::try_from(minutes.saturating_mul(60)).unwrap_or(900).max(1),
            max_idents,
            entries: Mutex::new(Entries::default()),
        }
    }

    /// Seconds the identity stays locked, if it is.
    pub fn locked(&self, key: LockKey, now: i64) -> Option<u64> {
        let entries = self.entries.lock();
        let f = match entries.map.get(&key) {
            Some(f) => f,
            None if matches!(key, LockKey::Ident(_)) && entries.idents >= self.max_idents => {
                entries.map.get(&OVERFLOW)?
            }
            None => return None,
        };
        (f.locked_until > now).then(|| u64::try_from(f.locked_until - now).unwrap_or(1))
    }

    /// Records a wrong password; returns true when this failure locked the identity.
    pub fn failure(&self, key: LockKey, now: i64) -> bool {
        let mut entries = self.entries.lock();
        if now - entries.swept_at >= 60 {
            let window = self.window_secs;
            entries.map.retain(|_, f| f.locked_until > now || now - f.first_at < window);
            entries.idents = entries.map.keys().filter(|k| matches!(k, LockKey::Ident(_))).count();
            entries.swept_at = now;
        }
        let mut key = key;
        if matches!(key, LockKey::Ident(_)) && !entries.map.contains_key(&key) {
            if entries.idents >= self.max_idents {
                key = OVERFLOW;
            }
            if !entries.map.contains_key(&key) {
                entries.idents += 1;
            }
        }
        let f = entries.map.entry(key).or_default();
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
    pub fn success(&self, key: LockKey) {
        let mut entries = self.entries.lock();
        if entries.map.remove(&key).is_some() && matches!(key, LockKey::Ident(_)) {
            entries.idents = entries.idents.saturating_sub(1);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: LockKey = LockKey::User(1);
    const B: LockKey = LockKey::User(2);
    const C: LockKey = LockKey::User(3);

    #[test]
    fn locks_after_threshold_and_unlocks_later() {
        let l = Lockout::new(3, 1);
        assert!(!l.failure(A, 100));
        assert!(!l.failure(A, 101));
        assert_eq!(l.locked(A, 101), None);
        assert!(l.failure(A, 102));
        assert_eq!(l.locked(A, 102), Some(60));
        assert_eq!(l.locked(B, 102), None);
        assert_eq!(l.locked(A, 162), None);
        // Failures spread beyond the window don't add up.
        assert!(!l.failure(C, 0));
        assert!(!l.failure(C, 30));
        assert!(!l.failure(C, 100));
        l.success(C);
        assert_eq!(l.locked(C, 100), None);
    }

    #[test]
    fn unknown_names_lock_like_accounts() {
        let l = Lockout::new(2, 1);
        let name = LockKey::Ident([7; 16]);
        assert!(!l.failure(name, 10));
        assert!(l.failure(name, 11));
        assert!(!l.failure(A, 10));
        assert!(l.failure(A, 11));
        assert_eq!(l.locked(name, 12), l.locked(A, 12));
        assert_eq!(l.locked(LockKey::Ident([8; 16]), 12), None);
    }

    #[test]
    fn names_are_capped_and_swept() {
        let l = Lockout::with_capacity(2, 1, 3);
        for i in 0..3 {
            l.failure(LockKey::Ident([i; 16]), 10);
        }
        // Full: further names share one entry (and lock together).
        assert!(!l.failure(LockKey::Ident([50; 16]), 11));
        assert!(l.failure(LockKey::Ident([51; 16]), 12));
        assert!(l.locked(LockKey::Ident([52; 16]), 13).is_some());
        assert_eq!(l.locked(LockKey::Ident([0; 16]), 13), None);
        // Accounts are never capped.
        assert!(!l.failure(A, 13));
        assert_eq!(l.len(), 5);
        // A minute after the window, a failure sweeps the stale entries.
        assert!(!l.failure(B, 200));
        assert_eq!(l.len(), 1);
        assert!(!l.failure(LockKey::Ident([52; 16]), 201));
        assert_eq!(l.locked(LockKey::Ident([53; 16]), 201), None);
    }
}
