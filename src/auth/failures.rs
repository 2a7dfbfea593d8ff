//! Audit of refused passwords (login form, `/api/auth/token/`, HTTP Basic, the old password of
//! a password change), aggregated: at most one record per identity and action per minute,
//! carrying how many attempts it stands for. The first failure of a quiet identity is written
//! at once; later ones within the minute are counted here and written with the next record,
//! by the periodic flush, or at shutdown. Bounded: once full, further identities share one
//! entry (recorded as `unknown` with their total).

use std::collections::HashMap;
use std::net::IpAddr;

use parking_lot::Mutex;

use crate::auth::lockout::LockKey;

/// Seconds between two records of one identity.
pub const RECORD_EVERY_SECS: i64 = 60;

/// Identities tracked at most.
const MAX_PENDING: usize = 10_000;

/// What was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailedAction {
    /// A login with a password (`user_login_failed`).
    Login,
    /// The old password of a password change (`password_change_failed`).
    PasswordChange,
    /// A wrong TOTP or recovery code at login or when disabling 2FA (`user_otp_failed`).
    Otp,
}

impl FailedAction {
    pub fn as_str(self) -> &'static str {
        match self {
            FailedAction::Login => "user_login_failed",
            FailedAction::PasswordChange => "password_change_failed",
            FailedAction::Otp => "user_otp_failed",
        }
    }
}

/// How the identity is shown in the record: an account's own email or username, or, for a
/// name that matches no account, `unknown` with a short keyed hash (the name may be a
/// password typed into the wrong field, so it is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    Account {
        user_id: u64,
        login: String,
    },
    Unknown {
        hash: String,
    },
    /// Identities beyond the cap, counted together.
    Overflow,
}

/// One failure as it happened.
#[derive(Debug, Clone)]
pub struct Failure {
    pub action: FailedAction,
    pub key: LockKey,
    pub shown: Shown,
    pub ip: Option<IpAddr>,
    /// `password`, `basic`, `token` or `password_change`.
    pub method: &'static str,
}

/// A record to write.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureRecord {
    pub action: FailedAction,
    pub shown: Shown,
    pub ip: Option<IpAddr>,
    pub method: &'static str,
    pub count: u64,
    pub first_at: i64,
    pub last_at: i64,
}

#[derive(Debug)]
struct Pending {
    /// When the last record of this identity was written.
    written_at: Option<i64>,
    /// Failures not yet in a record, the first and last of them.
    count: u64,
    first_at: i64,
    last_at: i64,
    shown: Shown,
    ip: Option<IpAddr>,
    method: &'static str,
}

impl Pending {
    /// A record may be written: none yet, or the last one is a minute old.
    fn due(&self, now: i64) -> bool {
        self.written_at.is_none_or(|at| now - at >= RECORD_EVERY_SECS)
    }
}

type Key = (FailedAction, LockKey);

const OVERFLOW: LockKey = LockKey::Ident([0xff; 16]);

pub struct FailureLog {
    max: usize,
    pending: Mutex<HashMap<Key, Pending>>,
}

impl Default for FailureLog {
    fn default() -> Self {
        Self::with_capacity(MAX_PENDING)
    }
}

impl FailureLog {
    fn with_capacity(max: usize) -> Self {
        Self { max, pending: Mutex::new(HashMap::new()) }
    }

    /// Counts one failure; returns the record to write now, if this identity's last record is
    /// at least a minute old.
    pub fn note(&self, f: Failure, now: i64) -> Option<FailureRecord> {
        let mut map = self.pending.lock();
        let mut key = (f.action, f.key);
        let mut shown = f.shown;
        if !map.contains_key(&key) && map.len() >= self.max {
            key = (f.action, OVERFLOW);
            shown = Shown::Overflow;
        }
        let p = map.entry(key).or_insert_with(|| Pending {
            written_at: None,
            count: 0,
            first_at: now,
            last_at: now,
            shown: shown.clone(),
            ip: None,
            method: f.method,
        });
        if p.count == 0 {
            p.first_at = now;
        }
        p.count += 1;
        p.last_at = now;
        p.shown = shown;
        p.ip = f.ip;
        p.method = f.method;
        p.due(now).then(|| take(f.action, p, now))
    }

    /// Records due now: every identity with failures not yet written whose last record is a
    /// minute old (or all of them, at shutdown). Forgets identities that went quiet.
    pub fn due(&self, now: i64, all: bool) -> Vec<FailureRecord> {
        let mut map = self.pending.lock();
        let mut out = Vec::new();
        map.retain(|(action, _), p| {
            if p.count > 0 && (all || p.due(now)) {
                out.push(take(*action, p, now));
                return true;
            }
            p.count > 0 || !p.due(now)
        });
        out
    }

    /// Puts back records that could not be written, so their counts are not lost.
    pub fn restore(&self, records: Vec<FailureRecord>) {
        let mut map = self.pending.lock();
        for r in records {
            let (key, shown) = match &r.shown {
                Shown::Account { user_id, .. } => {
                    ((r.action, LockKey::User(*user_id)), r.shown.clone())
                }
                // The identity's key is not in the record: a failed write of an unknown name
                // is folded into the shared entry, still counted.
                Shown::Unknown { .. } | Shown::Overflow => ((r.action, OVERFLOW), Shown::Overflow),
            };
            let p = map.entry(key).or_insert_with(|| Pending {
                written_at: None,
                count: 0,
                first_at: r.first_at,
                last_at: r.last_at,
                shown,
                ip: r.ip,
                method: r.method,
            });
            p.count += r.count;
            p.first_at = p.first_at.min(r.first_at);
            p.written_at = None;
        }
    }
}

fn take(action: FailedAction, p: &mut Pending, now: i64) -> FailureRecord {
    let record = FailureRecord {
        action,
        shown: p.shown.clone(),
        ip: p.ip,
        method: p.method,
        count: p.count,
        first_at: p.first_at,
        last_at: p.last_at,
    };
    p.count = 0;
    p.written_at = Some(now);
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(key: LockKey) -> Failure {
        Failure {
            action: FailedAction::Login,
            key,
            shown: Shown::Unknown { hash: "h".into() },
            ip: None,
            method: "basic",
        }
    }

    #[test]
    fn one_record_per_identity_per_minute_with_the_count() {
        let log = FailureLog::default();
        let k = LockKey::Ident([1; 16]);
        let first = log.note(failure(k), 1000).unwrap();
        assert_eq!(first.count, 1);
        for t in 1001..1050 {
            assert!(log.note(failure(k), t).is_none());
        }
        // Another identity is independent.
        assert!(log.note(failure(LockKey::User(9)), 1010).is_some());
        assert!(log.due(1059, false).is_empty());
        let due = log.due(1060, false);
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].count, due[0].first_at, due[0].last_at), (49, 1001, 1049));
        // The next failure within the minute after that record waits again.
        assert!(log.note(failure(k), 1061).is_none());
        let next = log.note(failure(k), 1121).unwrap();
        assert_eq!(next.count, 2);
        // Quiet identities are forgotten after a minute.
        assert!(log.due(1300, false).is_empty());
        assert!(log.pending.lock().is_empty());
    }

    #[test]
    fn shutdown_takes_everything_and_restore_keeps_counts() {
        let log = FailureLog::default();
        let k = LockKey::User(3);
        let mut f = failure(k);
        f.shown = Shown::Account { user_id: 3, login: "a@b.c".into() };
        log.note(f.clone(), 10).unwrap();
        log.note(f.clone(), 11);
        log.note(f, 12);
        let all = log.due(13, true);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].count, 2);
        log.restore(all);
        assert_eq!(log.due(14, true)[0].count, 2);
    }

    #[test]
    fn bounded() {
        let log = FailureLog::with_capacity(2);
        log.note(failure(LockKey::User(1)), 10);
        log.note(failure(LockKey::User(2)), 10);
        let r = log.note(failure(LockKey::User(3)), 10).unwrap();
        assert_eq!(r.shown, Shown::Overflow);
        assert!(log.note(failure(LockKey::User(4)), 11).is_none());
        assert_eq!(log.pending.lock().len(), 3);
        assert_eq!(log.due(80, false)[0].count, 1);
    }
}
