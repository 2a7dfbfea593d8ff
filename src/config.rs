//! Configuration: one struct, one precedence, validated.
//!
//! Precedence, lowest to highest: built-in defaults < the TOML file given with `--config`
//! < environment variables `GATEHOUSE_<SECTION>_<KEY>` < command-line flags.
//! The file and the environment are overlaid on the defaults as TOML values, so every key is
//! type-checked once by serde (`deny_unknown_fields`) and then validated by [`Config::validate`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A configuration error: which key, and what was wrong with it. Printed as one line.
#[derive(Debug, thiserror::Error)]
#[error("config: {key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub tls: TlsConfig,
    pub storage: StorageConfig,
    pub auth: AuthConfig,
    pub rate_limit: RateLimitConfig,
    pub logs: LogsConfig,
    pub metrics: MetricsConfig,
    pub deployments: DeploymentsConfig,
    pub backup: BackupConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    pub data_dir: PathBuf,
    pub insecure_http: bool,
    pub log_format: String,
    pub log_level: String,
    pub trusted_proxies: Vec<String>,
    pub max_body_bytes: u64,
    pub max_upload_bytes: u64,
    pub shutdown_timeout_seconds: u64,
    pub request_timeout_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub hostnames: Vec<String>,
    pub cert_file: String,
    pub key_file: String,
    pub ca_lifetime_days: u64,
    pub leaf_lifetime_days: u64,
    /// Leaf lifetime in seconds; when non-zero, overrides `leaf_lifetime_days` (for tests).
    pub leaf_lifetime_seconds: u64,
    pub handshake_timeout_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub cache_size_mb: u64,
    pub variable_versions: u64,
    pub deleted_retention_days: u64,
    pub max_batch: u64,
    /// Free space (MiB) kept on the data directory's filesystem: below it, writes are refused
    /// with 503 so redb never meets ENOSPC mid-commit (0: no reserve).
    pub min_free_disk_mb: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub registration: String,
    pub access_token_minutes: u64,
    pub refresh_token_days: u64,
    pub pat_lifetime_days: u64,
    pub session_hours: u64,
    /// Lifetime of a login token (`Authorization: Token …`), in hours.
    pub token_hours: u64,
    pub lockout_failures: u64,
    pub lockout_minutes: u64,
    pub password_min_length: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub enabled: bool,
    pub user_per_hour: u64,
    pub anon_per_hour: u64,
    pub burst_per_minute: u64,
    pub auth_per_minute: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// Record every API request in the request log (`false`: no request records are produced;
    /// ingested records, audit records and statistics still work).
    pub request_log_enabled: bool,
    pub request_retention_days: u64,
    pub audit_retention_days: u64,
    pub channel_capacity: u64,
    pub index_commit_ms: u64,
    /// The search index writer's indexing memory, in MiB: documents gather there between
    /// flushes to a segment (tantivy needs at least 15).
    pub index_memory_mb: u64,
    /// Below this much free space (MiB) on the data directory's filesystem, records of
    /// Gatehouse's own requests are no longer stored and reported calls are refused (0: off).
    pub min_free_disk_mb: u64,
    /// Reported records each API key (or staff user) may store per UTC day.
    pub ingest_quota_per_day: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub enabled: bool,
    /// Request series (service, method, status) and audit actions kept per organization; the
    /// rest are counted under `other`, so reported names cannot grow the series without bound.
    pub max_series: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DeploymentsConfig {
    /// Executions rendering at once.
    pub workers: u64,
    /// Executions waiting for a worker.
    pub queue_capacity: u64,
    /// Default of a new deployment's `rate_limit_per_minute`.
    pub rate_limit_per_minute: u64,
    /// Largest input a deployment may accept (and its default).
    pub max_input_bytes: u64,
    /// Longest run a deployment may allow (and its default `timeout_seconds`).
    pub max_run_seconds: u64,
    /// Unstract's concurrency limits: executions pending or running per organization and in
    /// all; past either a submission is refused with 429.
    pub max_concurrent_per_org: u64,
    pub max_concurrent: u64,
    /// How long executions and their results are kept.
    pub result_retention_hours: u64,
    /// Template work per render (MiniJinja fuel): a runaway loop ends as an error.
    pub template_fuel: u64,
    /// Largest rendered output per record, in bytes.
    pub max_output_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Time between automatic snapshots in `DATA_DIR/backups/`: a number with a unit
    /// (`90s`, `30m`, `6h`, `1d`); `0` or `off` turns them off.
    pub interval: String,
    /// Snapshot files kept (the oldest beyond this are deleted after each new one).
    pub keep: u64,
}

impl BackupConfig {
    /// The snapshot interval, `None` when snapshots are off.
    pub fn interval(&self) -> Result<Option<std::time::Duration>, ConfigError> {
        parse_interval(&self.interval).map_err(|m| ConfigError::new("backup.interval", m))
    }
}

/// `90s`, `30m`, `6h`, `1d` (or `0`/`off`: `None`).
pub fn parse_interval(text: &str) -> Result<Option<std::time::Duration>, String> {
    let text = text.trim();
    if text == "0" || text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let bad = || format!("{text:?} is not a duration such as 90s, 30m, 6h or 1d (0 or off: none)");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let unit_seconds = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    match n.checked_mul(unit_seconds) {
        Some(0) => Ok(None),
        Some(secs) if secs <= 366 * 86_400 => Ok(Some(std::time::Duration::from_secs(secs))),
        _ => Err(format!("{text:?} is longer than a year")),
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8443".into(),
            data_dir: PathBuf::from("./data"),
            insecure_http: false,
            log_format: "plain".into(),
            log_level: "info".into(),
            trusted_proxies: Vec::new(),
            max_body_bytes: 1024 * 1024,
            max_upload_bytes: 10 * 1024 * 1024,
            shutdown_timeout_seconds: 30,
            request_timeout_seconds: 60,
        }
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            hostnames: Vec::new(),
            cert_file: String::new(),
            key_file: String::new(),
            ca_lifetime_days: 3650,
            leaf_lifetime_days: 90,
            leaf_lifetime_seconds: 0,
            handshake_timeout_seconds: 10,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            cache_size_mb: 64,
            variable_versions: 20,
            deleted_retention_days: 30,
            max_batch: 256,
            min_free_disk_mb: 16,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            registration: "open".into(),
            access_token_minutes: 15,
            refresh_token_days: 7,
            pat_lifetime_days: 90,
            session_hours: 336,
            token_hours: 720,
            lockout_failures: 10,
            lockout_minutes: 15,
            password_min_length: 10,
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            user_per_hour: 1000,
            anon_per_hour: 100,
            burst_per_minute: 50,
            auth_per_minute: 5,
        }
    }
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            request_log_enabled: true,
            request_retention_days: 30,
            audit_retention_days: 0,
            channel_capacity: 65536,
            index_commit_ms: 1000,
            index_memory_mb: 64,
            min_free_disk_mb: 512,
            ingest_quota_per_day: 1_000_000,
        }
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { enabled: true, max_series: 1000 }
    }
}

impl Default for DeploymentsConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            queue_capacity: 1024,
            rate_limit_per_minute: 100,
            max_input_bytes: 1024 * 1024,
            max_run_seconds: 30,
            max_concurrent_per_org: 20,
            max_concurrent: 100,
            result_retention_hours: 24,
            template_fuel: 1_000_000,
            max_output_bytes: 1024 * 1024,
        }
    }
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self { interval: "6h".into(), keep: 7 }
    }
}

/// Values given on the command line; `None` means "not given".
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub insecure_http: bool,
}

impl Config {
    /// Builds the configuration from its sources. `env` is passed in (not read globally) so
    /// tests can drive it.
    pub fn from_sources(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
        flags: &Flags,
    ) -> Result<Self, ConfigError> {
        let defaults = toml::Value::try_from(Config::default())
            .map_err(|e| ConfigError::new("defaults", e.to_string()))?;
        let mut merged = defaults.clone();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::new(path.display().to_string(), e.to_string()))?;
            let table: toml::Table = toml::from_str(&text).map_err(|e| {
                ConfigError::new(path.display().to_string(), one_line(&e.to_string()))
            })?;
            overlay_file(&mut merged, &defaults, table)?;
        }
        overlay_env(&mut merged, &defaults, env)?;
        let mut config: Config = merged
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::new("config", one_line(&e.to_string())))?;
        if let Some(dir) = &flags.data_dir {
            config.server.data_dir.clone_from(dir);
        }
        if let Some(listen) = &flags.listen {
            config.server.listen.clone_from(listen);
        }
        if flags.insecure_http {
            config.server.insecure_http = true;
        }
        config.validate()?;
        Ok(config)
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server
            .listen
            .parse()
            .map_err(|_| ConfigError::new("server.listen", "not an IP:port address"))
    }

    pub fn trusted_proxies(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        self.server.trusted_proxies.iter().map(|s| parse_cidr(s)).collect::<Result<_, _>>().map_err(
            |bad| {
                ConfigError::new("server.trusted_proxies", format!("{bad:?} is not a CIDR or IP"))
            },
        )
    }

    /// Checks every value serde cannot: ranges, enumerations, addresses, pairs of keys.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let addr = self.listen_addr()?;
        if self.server.insecure_http && !addr.ip().is_loopback() {
            return Err(ConfigError::new(
                "server.insecure_http",
                "plain HTTP is only allowed on a loopback listen address",
            ));
        }
        one_of("server.log_format", &self.server.log_format, &["plain", "json"])?;
        one_of(
            "server.log_level",
            &self.server.log_level,
            &["error", "warn", "info", "debug", "trace"],
        )?;
        self.trusted_proxies()?;
        at_least("server.max_body_bytes", self.server.max_body_bytes, 1024)?;
        at_least("server.max_upload_bytes", self.server.max_upload_bytes, 1024)?;
        if self.tls.cert_file.is_empty() != self.tls.key_file.is_empty() {
            return Err(ConfigError::new(
                "tls.cert_file",
                "tls.cert_file and tls.key_file must be given together",
            ));
        }
        at_least("tls.ca_lifetime_days", self.tls.ca_lifetime_days, 1)?;
        at_least("tls.leaf_lifetime_days", self.tls.leaf_lifetime_days, 1)?;
        at_least("tls.handshake_timeout_seconds", self.tls.handshake_timeout_seconds, 1)?;
        at_least("storage.variable_versions", self.storage.variable_versions, 1)?;
        at_least("storage.max_batch", self.storage.max_batch, 1)?;
        one_of("auth.registration", &self.auth.registration, &["open", "closed"])?;
        at_least("auth.access_token_minutes", self.auth.access_token_minutes, 1)?;
        at_least("auth.refresh_token_days", self.auth.refresh_token_days, 1)?;
        at_least("auth.pat_lifetime_days", self.auth.pat_lifetime_days, 1)?;
        at_least("auth.token_hours", self.auth.token_hours, 1)?;
        at_most("auth.token_hours", self.auth.token_hours, 87_600)?;
        at_least("auth.password_min_length", self.auth.password_min_length, 8)?;
        at_least("rate_limit.user_per_hour", self.rate_limit.user_per_hour, 1)?;
        at_least("rate_limit.anon_per_hour", self.rate_limit.anon_per_hour, 1)?;
        at_least("rate_limit.burst_per_minute", self.rate_limit.burst_per_minute, 1)?;
        at_least("rate_limit.auth_per_minute", self.rate_limit.auth_per_minute, 1)?;
        at_least("logs.request_retention_days", self.logs.request_retention_days, 1)?;
        at_least("logs.channel_capacity", self.logs.channel_capacity, 16)?;
        at_least("logs.index_commit_ms", self.logs.index_commit_ms, 10)?;
        at_least("logs.index_memory_mb", self.logs.index_memory_mb, 15)?;
        at_most("logs.index_memory_mb", self.logs.index_memory_mb, 4000)?;
        at_least("deployments.workers", self.deployments.workers, 1)?;
        at_least("deployments.queue_capacity", self.deployments.queue_capacity, 1)?;
        at_least("deployments.max_run_seconds", self.deployments.max_run_seconds, 1)?;
        at_most("deployments.max_run_seconds", self.deployments.max_run_seconds, 3600)?;
        at_most("deployments.workers", self.deployments.workers, 1024)?;
        at_least("deployments.max_concurrent_per_org", self.deployments.max_concurrent_per_org, 1)?;
        at_least("deployments.max_concurrent", self.deployments.max_concurrent, 1)?;
        at_least("deployments.result_retention_hours", self.deployments.result_retention_hours, 1)?;
        at_least("deployments.template_fuel", self.deployments.template_fuel, 1000)?;
        at_least("deployments.max_output_bytes", self.deployments.max_output_bytes, 1024)?;
        at_least("deployments.max_input_bytes", self.deployments.max_input_bytes, 1)?;
        at_least("backup.keep", self.backup.keep, 1)?;
        at_most("backup.keep", self.backup.keep, 10_000)?;
        self.backup.interval()?;
        at_least("metrics.max_series", self.metrics.max_series, 1)?;
        at_most("metrics.max_series", self.metrics.max_series, 100_000)?;
        Ok(())
    }

    /// The leaf certificate lifetime.
    pub fn leaf_lifetime(&self) -> time::Duration {
        if self.tls.leaf_lifetime_seconds > 0 {
            return time::Duration::seconds(
                i64::try_from(self.tls.leaf_lifetime_seconds).unwrap_or(i64::MAX),
            );
        }
        time::Duration::days(i64::try_from(self.tls.leaf_lifetime_days).unwrap_or(3650))
    }
}

pub fn parse_cidr(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    if let Ok(net) = s.parse::<ipnet::IpNet>() {
        return Ok(net.trunc());
    }
    s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from).map_err(|_| s.to_string())
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn one_of(key: &str, value: &str, allowed: &[&str]) -> Result<(), ConfigError> {
    if allowed.contains(&value) {
        return Ok(());
    }
    Err(ConfigError::new(key, format!("{value:?} is not one of {}", allowed.join(", "))))
}

fn at_least(key: &str, value: u64, min: u64) -> Result<(), ConfigError> {
    if value >= min {
        return Ok(());
    }
    Err(ConfigError::new(key, format!("must be at least {min}, got {value}")))
}

fn at_most(key: &str, value: u64, max: u64) -> Result<(), ConfigError> {
    if value <= max {
        return Ok(());
    }
    Err(ConfigError::new(key, format!("must be at most {max}, got {value}")))
}

fn section_mut<'a>(root: &'a mut toml::Value, section: &str) -> Option<&'a mut toml::Table> {
    root.as_table_mut()?.get_mut(section)?.as_table_mut()
}

fn overlay_file(
    merged: &mut toml::Value,
    defaults: &toml::Value,
    file: toml::Table,
) -> Result<(), ConfigError> {
    for (section, value) in file {
        let Some(default_section) = defaults.get(&section).and_then(toml::Value::as_table) else {
            return Err(ConfigError::new(section, "unknown section"));
        };
        let toml::Value::Table(keys) = value else {
            return Err(ConfigError::new(section, "must be a table"));
        };
        for (key, v) in keys {
            let name = format!("{section}.{key}");
            let Some(default) = default_section.get(&key) else {
                return Err(ConfigError::new(name, "unknown key"));
            };
            if std::mem::discriminant(default) != std::mem::discriminant(&v) {
                return Err(ConfigError::new(
                    name,
                    format!("expected {}, got {}", default.type_str(), v.type_str()),
                ));
            }
            if let Some(target) = section_mut(merged, &section) {
                target.insert(key, v);
            }
        }
    }
    Ok(())
}

fn overlay_env(
    merged: &mut toml::Value,
    defaults: &toml::Value,
    env: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    let Some(sections) = defaults.as_table() else { return Ok(()) };
    // Longest section names first so `RATE_LIMIT_…` is not read as section `rate`.
    let mut names: Vec<&String> = sections.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix("GATEHOUSE_") else { continue };
        let rest = rest.to_ascii_lowercase();
        let Some(section) = names.iter().find(|s| rest.starts_with(&format!("{s}_"))) else {
            continue; // GATEHOUSE_ADMIN_EMAIL and friends are not config keys
        };
        let key = &rest[section.len() + 1..];
        let name = format!("{section}.{key}");
        let Some(default) = sections.get(*section).and_then(|s| s.get(key)) else {
            return Err(ConfigError::new(format!("{var} ({name})"), "unknown key"));
        };
        let value = parse_env_value(default, raw)
            .map_err(|m| ConfigError::new(format!("{var} ({name})"), m))?;
        if let Some(target) = section_mut(merged, section) {
            target.insert(key.to_string(), value);
        }
    }
    Ok(())
}

fn parse_env_value(default: &toml::Value, raw: &str) -> Result<toml::Value, String> {
    match default {
        toml::Value::Boolean(_) => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(toml::Value::Boolean(true)),
            "false" | "0" | "no" | "off" => Ok(toml::Value::Boolean(false)),
            _ => Err(format!("expected true or false, got {raw:?}")),
        },
        toml::Value::Integer(_) => raw
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|n| i64::try_from(n).ok())
            .map(toml::Value::Integer)
            .ok_or_else(|| format!("expected a non-negative integer, got {raw:?}")),
        toml::Value::Array(_) => Ok(toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        )),
        _ => Ok(toml::Value::String(raw.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect()
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::from_sources(None, &BTreeMap::new(), &Flags::default()).unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn precedence_flag_over_env_over_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        std::fs::write(&path, "[server]\nlisten = \"127.0.0.1:1111\"\n[rate_limit]\nburst_per_minute = 7\nuser_per_hour = 9\n").unwrap();
        let e = env(&[
            ("GATEHOUSE_SERVER_LISTEN", "127.0.0.1:2222"),
            ("GATEHOUSE_RATE_LIMIT_BURST_PER_MINUTE", "5"),
            ("GATEHOUSE_RATE_LIMIT_ENABLED", "false"),
        ]);
        let c = Config::from_sources(Some(&path), &e, &Flags::default()).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:2222");
        assert_eq!(c.rate_limit.burst_per_minute, 5);
        assert_eq!(c.rate_limit.user_per_hour, 9);
        assert!(!c.rate_limit.enabled);
        let flags = Flags { listen: Some("127.0.0.1:3333".into()), ..Flags::default() };
        let c = Config::from_sources(Some(&path), &e, &flags).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:3333");
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        std::fs::write(&path, "[server]\nlisen = \"x\"\n").unwrap();
        let err =
            Config::from_sources(Some(&path), &BTreeMap::new(), &Flags::default()).unwrap_err();
        assert_eq!(err.key, "server.lisen");
        std::fs::write(&path, "[rate_limit]\nenabled = \"yes\"\n").unwrap();
        let err =
            Config::from_sources(Some(&path), &BTreeMap::new(), &Flags::default()).unwrap_err();
        assert_eq!(err.key, "rate_limit.enabled");
        let err = Config::from_sources(
            None,
            &env(&[("GATEHOUSE_AUTH_REGISTRATION", "maybe")]),
            &Flags::default(),
        )
        .unwrap_err();
        assert_eq!(err.key, "auth.registration");
        let err =
            Config::from_sources(None, &env(&[("GATEHOUSE_STORAGE_NOPE", "1")]), &Flags::default())
                .unwrap_err();
        assert!(err.key.contains("storage.nope"));
        let err = Config::from_sources(
            None,
            &env(&[("GATEHOUSE_RATE_LIMIT_USER_PER_HOUR", "-3")]),
            &Flags::default(),
        )
        .unwrap_err();
        assert!(err.key.contains("rate_limit.user_per_hour"));
        for bad in ["14", "4001"] {
            let err = Config::from_sources(
                None,
                &env(&[("GATEHOUSE_LOGS_INDEX_MEMORY_MB", bad)]),
                &Flags::default(),
            )
            .unwrap_err();
            assert_eq!(err.key, "logs.index_memory_mb", "{bad}");
        }
        let ok = Config::from_sources(
            None,
            &env(&[("GATEHOUSE_LOGS_INDEX_MEMORY_MB", "15")]),
            &Flags::default(),
        )
        .unwrap();
        assert_eq!(ok.logs.index_memory_mb, 15);
    }

    #[test]
    fn insecure_http_only_on_loopback() {
        let flags =
            Flags { listen: Some("0.0.0.0:8080".into()), insecure_http: true, ..Flags::default() };
        let err = Config::from_sources(None, &BTreeMap::new(), &flags).unwrap_err();
        assert_eq!(err.key, "server.insecure_http");
    }

    #[test]
    fn shipped_config_file_matches_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/gatehouse.toml");
        let c = Config::from_sources(Some(&path), &BTreeMap::new(), &Flags::default()).unwrap();
        let mut expected = Config::default();
        expected.server.listen = "0.0.0.0:8443".into();
        expected.server.data_dir = PathBuf::from("/var/lib/gatehouse");
        expected.auth.registration = "closed".into(); // the appliance ships closed (M3)
        assert_eq!(c, expected);
    }
}
