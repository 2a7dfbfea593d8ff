//! The `/api/v1/metrics/all`-only figures, read at scrape: build info, uptime, process CPU,
//! memory and open descriptors (Linux `/proc/self`), and what the services report through a
//! [`SystemProbe`] (data file size, index documents and lag, log queue depth, TLS).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Unit;

/// Figures owned by other areas, sampled at scrape. `None`: not available here.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SystemSample {
    pub data_file_bytes: Option<u64>,
    /// Free space on the data directory's filesystem (for unprivileged users).
    pub data_dir_free_bytes: Option<u64>,
    /// Free space the store keeps in reserve: writes are refused below it.
    pub data_dir_reserve_bytes: Option<u64>,
    /// Writes refused or failed for lack of space since start.
    pub writes_refused_disk_full: Option<u64>,
    /// Unix seconds of the last snapshot written since start.
    pub backup_last_success: Option<i64>,
    /// Size of that snapshot.
    pub backup_last_bytes: Option<u64>,
    /// Snapshots that failed since start.
    pub backup_failures: Option<u64>,
    /// Documents added to the log index since start.
    pub index_documents: Option<u64>,
    /// Records committed to redb and not yet searchable in the index.
    pub index_lag_records: Option<u64>,
    /// Records waiting in the request-log writer's channel.
    pub log_queue_depth: Option<u64>,
}

/// What the services expose to the global view.
pub trait SystemProbe: Send + Sync + 'static {
    fn sample(&self) -> SystemSample;
}

/// TLS figures the certificate code pushes. (Handshake counts would need a hook in the
/// listener's accept path; not wired yet.)
#[derive(Debug, Default)]
pub struct TlsFigures {
    /// The serving certificate's `notAfter`, Unix seconds; 0 until known.
    pub certificate_expiry: AtomicI64,
}

pub(super) struct SystemCollector {
    probe: Arc<dyn SystemProbe>,
    tls: Arc<TlsFigures>,
    started: Instant,
}

impl std::fmt::Debug for SystemCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemCollector").finish_non_exhaustive()
    }
}

impl SystemCollector {
    pub(super) fn new(probe: Arc<dyn SystemProbe>, tls: Arc<TlsFigures>) -> Self {
        Self { probe, tls, started: Instant::now() }
    }
}

/// The kernel's clock ticks per second for `/proc/self/stat` times: 100 on every Linux
/// architecture Gatehouse is built for (USER_HZ, fixed by the ABI, unlike CONFIG_HZ).
const TICKS_PER_SECOND: f64 = 100.0;

/// `utime + stime` of this process in seconds.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// Resident set size in bytes (`VmRSS` of `/proc/self/status`).
fn rss_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn open_fds() -> Option<i64> {
    let n = std::fs::read_dir("/proc/self/fd").ok()?.count();
    i64::try_from(n).ok()
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    g.encode(encoder.encode_descriptor(name, help, unit, g.metric_type())?)
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    c.encode(encoder.encode_descriptor(name, help, unit, c.metric_type())?)
}

fn saturating(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Collector for SystemCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let info = Info::new([("version", env!("CARGO_PKG_VERSION"))]);
        info.encode(e.encode_descriptor(
            "gatehouse_build",
            "The running build",
            None,
            info.metric_type(),
        )?)?;
        let uptime = self.started.elapsed().as_secs_f64();
        counter(
            &mut e,
            "gatehouse_process_uptime",
            "Time since start",
            Some(&Unit::Seconds),
            uptime,
        )?;
        if let Some(cpu) = cpu_seconds() {
            let help = "User and system CPU time used";
            counter(&mut e, "gatehouse_process_cpu", help, Some(&Unit::Seconds), cpu)?;
        }
        if let Some(rss) = rss_bytes() {
            let help = "Resident memory";
            gauge(&mut e, "gatehouse_process_resident_memory", help, Some(&Unit::Bytes), rss)?;
        }
        if let Some(fds) = open_fds() {
            gauge(&mut e, "gatehouse_process_open_fds", "Open file descriptors", None, fds)?;
        }
        let s = self.probe.sample();
        if let Some(v) = s.data_file_bytes {
            let help = "Size of the redb data file";
            gauge(
                &mut e,
                "gatehouse_storage_data_file_size",
                help,
                Some(&Unit::Bytes),
                saturating(v),
            )?;
        }
        if let Some(v) = s.data_dir_free_bytes {
            let help = "Free space on the data directory's filesystem";
            gauge(&mut e, "gatehouse_data_dir_free", help, Some(&Unit::Bytes), saturating(v))?;
        }
        if let Some(v) = s.data_dir_reserve_bytes {
            let help = "Free space kept in reserve: writes are refused below it";
            gauge(&mut e, "gatehouse_data_dir_reserve", help, Some(&Unit::Bytes), saturating(v))?;
        }
        if let Some(v) = s.writes_refused_disk_full {
            let help = "Writes refused (503) because the data disk is full";
            counter(&mut e, "gatehouse_storage_writes_refused_disk_full", help, None, v as f64)?;
        }
        if let Some(v) = s.backup_last_success {
            let help = "When the last snapshot was written, Unix time";
            let name = "gatehouse_backup_last_success_timestamp";
            gauge(&mut e, name, help, Some(&Unit::Seconds), v)?;
        }
        if let Some(v) = s.backup_last_bytes {
            let help = "Size of the last snapshot written";
            gauge(&mut e, "gatehouse_backup_last_size", help, Some(&Unit::Bytes), saturating(v))?;
        }
        if let Some(v) = s.backup_failures {
            let help = "Snapshots that failed since start";
            counter(&mut e, "gatehouse_backup_failures", help, None, v as f64)?;
        }
        if let Some(v) = s.index_documents {
            let help = "Documents added to the log index since start";
            counter(&mut e, "gatehouse_index_documents", help, None, v as f64)?;
        }
        if let Some(v) = s.index_lag_records {
            let help = "Log records committed but not yet searchable";
            gauge(&mut e, "gatehouse_index_lag_records", help, None, saturating(v))?;
        }
        if let Some(v) = s.log_queue_depth {
            let help = "Records waiting for the request-log writer";
            gauge(&mut e, "gatehouse_logs_queue_depth_records", help, None, saturating(v))?;
        }
        let expiry = self.tls.certificate_expiry.load(Ordering::Relaxed);
        if expiry > 0 {
            let help = "notAfter of the serving certificate, Unix time";
            gauge(
                &mut e,
                "gatehouse_tls_certificate_expiry_timestamp",
                help,
                Some(&Unit::Seconds),
                expiry,
            )?;
        }
        Ok(())
    }
}
