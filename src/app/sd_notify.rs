//! systemd service notifications (the `sd_notify(3)` datagram protocol, written out here: it is
//! one `sendto` on a Unix socket): `READY=1` once the server listens (the unit is
//! `Type=notify`), `WATCHDOG=1` at half of `WatchdogSec=`, and `STOPPING=1` on SIGTERM/SIGINT.
//! Outside systemd (`$NOTIFY_SOCKET` unset) nothing is sent.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Where systemd listens for this service's notifications, and how often it wants a watchdog
/// ping. Built from the environment map (the CLI's `process_env`), so tests pass their own.
#[derive(Debug)]
pub struct Systemd {
    socket: UnixDatagram,
    addr: SocketAddr,
    watchdog: Option<Duration>,
}

impl Systemd {
    /// `None` when `$NOTIFY_SOCKET` is unset or empty (not started by systemd with
    /// `Type=notify`); a malformed or unusable value is logged and also gives `None`, since
    /// the server works without notifications (systemd then times the start out and says why).
    pub fn from_env(env: &BTreeMap<String, String>) -> Option<Self> {
        let value = env.get("NOTIFY_SOCKET").filter(|v| !v.is_empty())?;
        match Self::connect(value) {
            Ok((socket, addr)) => {
                Some(Self { socket, addr, watchdog: watchdog_interval(env, std::process::id()) })
            }
            Err(e) => {
                tracing::warn!(notify_socket = %value, error = %e, "systemd notifications off");
                None
            }
        }
    }

    fn connect(value: &str) -> io::Result<(UnixDatagram, SocketAddr)> {
        let addr = socket_addr(value)?;
        let socket = UnixDatagram::unbound()?;
        // A send must never stall the runtime; systemd's queue is large, so WouldBlock means
        // systemd is not reading and the message is dropped (with a warning).
        socket.set_nonblocking(true)?;
        Ok((socket, addr))
    }

    /// Sends one notification (newline-separated `KEY=value` assignments).
    pub fn notify(&self, state: &str) -> io::Result<()> {
        let sent = self.socket.send_to_addr(state.as_bytes(), &self.addr)?;
        if sent == state.len() {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::WriteZero, "notification truncated"))
        }
    }

    /// The watchdog ping interval (half of `WatchdogSec=`), if systemd asked for pings.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Tells systemd the service is ready (with `status` shown by `systemctl status`), then
    /// keeps pinging the watchdog and reports `STOPPING=1` when a stop signal arrives. Call
    /// it inside the runtime, once the listener is bound.
    pub fn ready(self, status: &str) {
        let status = status.replace('\n', " ");
        if let Err(e) = self.notify(&format!("READY=1\nSTATUS={status}")) {
            tracing::warn!(error = %e, "could not notify systemd of readiness");
        }
        let this = std::sync::Arc::new(self);
        if let Some(period) = this.watchdog {
            let pinger = std::sync::Arc::clone(&this);
            // The ping proves the runtime still schedules tasks: a wedged runtime stops it and
            // systemd restarts the service (Restart=on-failure covers watchdog timeouts).
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if let Err(e) = pinger.notify("WATCHDOG=1") {
                        tracing::warn!(error = %e, "systemd watchdog ping failed");
                    }
                }
            });
        }
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            // Every tokio listener of a signal is woken, so this does not take it from
            // `app::StopSignals`, which performs the shutdown.
            let (Ok(mut term), Ok(mut int)) =
                (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
            else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            if let Err(e) = this.notify("STOPPING=1\nSTATUS=stopping") {
                tracing::warn!(error = %e, "could not notify systemd of the stop");
            }
        });
    }
}

/// `/path` or `@abstract-name` (systemd's two forms; `vsock:` is for VMs and not supported).
fn socket_addr(value: &str) -> io::Result<SocketAddr> {
    if let Some(name) = value.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt as _;
        return SocketAddr::from_abstract_name(name.as_bytes());
    }
    if value.starts_with('/') {
        return SocketAddr::from_pathname(value);
    }
    Err(io::Error::new(io::ErrorKind::InvalidInput, "not a path or an abstract socket name"))
}

/// Half of `$WATCHDOG_USEC`, when set to a positive number and meant for `pid`
/// (`$WATCHDOG_PID` absent or equal to it).
pub fn watchdog_interval(env: &BTreeMap<String, String>, pid: u32) -> Option<Duration> {
    if let Some(target) = env.get("WATCHDOG_PID") {
        if target.trim().parse::<u32>().ok() != Some(pid) {
            return None;
        }
    }
    let usec = env.get("WATCHDOG_USEC")?.trim().parse::<u64>().ok().filter(|&u| u > 0)?;
    Some(Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect()
    }

    fn recv(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn nothing_without_notify_socket() {
        assert!(Systemd::from_env(&env(&[])).is_none());
        assert!(Systemd::from_env(&env(&[("NOTIFY_SOCKET", "")])).is_none());
        assert!(Systemd::from_env(&env(&[("NOTIFY_SOCKET", "relative/path")])).is_none());
    }

    #[test]
    fn watchdog_interval_is_half_and_for_this_pid_only() {
        let half = Some(Duration::from_secs(15));
        assert_eq!(watchdog_interval(&env(&[("WATCHDOG_USEC", "30000000")]), 7), half);
        let mine = env(&[("WATCHDOG_USEC", "30000000"), ("WATCHDOG_PID", "7")]);
        assert_eq!(watchdog_interval(&mine, 7), half);
        assert_eq!(watchdog_interval(&mine, 8), None);
        assert_eq!(watchdog_interval(&env(&[("WATCHDOG_USEC", "0")]), 7), None);
        assert_eq!(watchdog_interval(&env(&[("WATCHDOG_USEC", "x")]), 7), None);
        assert_eq!(watchdog_interval(&env(&[]), 7), None);
    }

    #[tokio::test]
    async fn ready_then_watchdog_pings_over_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        server.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let systemd = Systemd::from_env(&env(&[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "100000"),
        ]))
        .unwrap();
        assert_eq!(systemd.watchdog(), Some(Duration::from_millis(50)));
        systemd.ready("listening on https://127.0.0.1:8443/");
        assert_eq!(recv(&server), "READY=1\nSTATUS=listening on https://127.0.0.1:8443/");
        let server = tokio::task::spawn_blocking(move || {
            assert_eq!(recv(&server), "WATCHDOG=1");
            assert_eq!(recv(&server), "WATCHDOG=1");
        });
        server.await.unwrap();
    }

    #[test]
    fn abstract_socket_names() {
        use std::os::linux::net::SocketAddrExt as _;
        let name = format!("gatehouse-sd-notify-test-{}", std::process::id());
        let server =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        server.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let systemd = Systemd::from_env(&env(&[("NOTIFY_SOCKET", &format!("@{name}"))])).unwrap();
        assert_eq!(systemd.watchdog(), None);
        systemd.notify("STATUS=hello").unwrap();
        assert_eq!(recv(&server), "STATUS=hello");
    }
}
