//! Whether the HTTPS listener is accepting, where it is bound and since when: set by `app`
//! once the socket is bound, cleared when shutdown begins, read by the monitor's health and
//! overview (django-cfg's `server_running` and `server` object).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::OnceLock;

#[derive(Debug, Default)]
pub struct Listener {
    running: AtomicBool,
    addr: OnceLock<SocketAddr>,
    /// Unix seconds of the bind (0 before).
    started_at: AtomicI64,
}

impl Listener {
    /// The socket is bound and the server about to accept on it.
    pub fn bound(&self, addr: SocketAddr) {
        // One bind per process start: a second call keeps the first address.
        let _ = self.addr.set(addr);
        self.started_at.store(crate::clock::unix_now(), Ordering::Relaxed);
        self.running.store(true, Ordering::Release);
    }

    /// Shutdown began: no new connections are accepted.
    pub fn stopped(&self) {
        self.running.store(false, Ordering::Release);
    }

    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// The bound address (the real port when the configuration asked for port 0).
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr.get().copied()
    }

    /// Unix seconds of the bind, if bound.
    pub fn started_at(&self) -> Option<i64> {
        Some(self.started_at.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }
}
