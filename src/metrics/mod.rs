//! Prometheus metrics (issue 12): one [`Metrics`] value of prometheus-client `Family` fields,
//! registered once, held by the services and fed by the request-log layer (requests, latency,
//! rate limits) and by commit effects (object counts, audit events).
//!
//! Two views. `/api/v1/metrics/all` encodes the registry: every family with an `organization`
//! label, plus the process and storage figures of [`system`]. `/api/v1/metrics` encodes one
//! organization's [`OrgSeries`]: each holds clones of its own series' handles (a prometheus
//! counter, gauge or histogram clone shares the value), so an organization's scrape walks only
//! its own series and never sees another's, and neither view's cost grows with request volume.
//!
//! Cardinality is bounded: operations come from the API catalog (static names) and Gatehouse's
//! own statuses are a small set, but reported (ingested) service/method names and statuses are
//! not, so each organization keeps at most `metrics.max_series` request series (service,
//! method, status) and as many audit actions; the rest are counted under `other` (status `0`).

mod org;
pub mod system;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

pub use org::OrgSeries;
pub use system::{SystemProbe, SystemSample, TlsFigures};

/// A label value that is a name: borrowed from the catalog or the code, owned when ingested.
pub type Name = Cow<'static, str>;

/// The label value standing for every name past an organization's cap.
pub const OTHER: &str = "other";

/// The organization a series belongs to; `none` for requests no organization can be named for
/// (anonymous, or a caller in several organizations without a `company_id`).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub struct Org(pub Option<u64>);

impl EncodeLabelValue for Org {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        match self.0 {
            Some(id) => write!(encoder, "{id}"),
            None => encoder.write_str("none"),
        }
    }
}

/// The objects counted per organization (gauges).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)] // the variant names are the label values
pub enum Kind {
    projects,
    environments,
    variables,
    api_keys,
    pats,
}

impl From<crate::domain::effects::Counted> for Kind {
    fn from(c: crate::domain::effects::Counted) -> Self {
        use crate::domain::effects::Counted;
        match c {
            Counted::Projects => Kind::projects,
            Counted::Environments => Kind::environments,
            Counted::Variables => Kind::variables,
            Counted::ApiKeys => Kind::api_keys,
            Counted::Pats => Kind::pats,
        }
    }
}

impl Kind {
    pub const ALL: [Kind; 5] =
        [Kind::projects, Kind::environments, Kind::variables, Kind::api_keys, Kind::pats];
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub organization: Org,
    pub service: Name,
    pub method: Name,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    pub organization: Org,
    pub service: Name,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub organization: Org,
    pub kind: Kind,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    pub organization: Org,
    pub action: Name,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExecutionLabels {
    pub organization: Org,
    /// The final status: `COMPLETED`, `ERROR` or `STOPPED`.
    pub status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OrgLabels {
    pub organization: Org,
}

/// Name, help and unit of one family: the one place both views read them from.
pub struct Desc {
    pub name: &'static str,
    pub help: &'static str,
    pub unit: Option<Unit>,
}

pub const REQUESTS: Desc = Desc {
    name: "gatehouse_http_requests",
    help: "Requests answered, by organization, operation (service and method) and HTTP status",
    unit: None,
};
pub const DURATION: Desc = Desc {
    name: "gatehouse_http_request_duration",
    help: "Time from the request's arrival to its answer, by organization and service",
    unit: Some(Unit::Seconds),
};
pub const OBJECTS: Desc = Desc {
    name: "gatehouse_org_objects",
    help: "Live projects, environments, variables, active API keys and PATs per organization",
    unit: None,
};
pub const AUDIT: Desc = Desc {
    name: "gatehouse_audit_events",
    help: "Audit records written, by organization and action",
    unit: None,
};
pub const RATE_LIMITED: Desc = Desc {
    name: "gatehouse_ratelimit_refused_requests",
    help: "Requests refused with 429 by a rate limit",
    unit: None,
};

pub const EXECUTIONS: Desc = Desc {
    name: "gatehouse_deployment_executions",
    help: "API deployment executions ended, by organization and final status",
    unit: None,
};

/// Latency buckets (seconds): 1 ms to 10 s, the range between a cached read and a timeout.
const BUCKETS: [f64; 12] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every family, registered once, and the per-organization views over them.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Histograms<ServiceLabels>,
    objects: Family<KindLabels, Gauge>,
    audit: Family<ActionLabels, Counter>,
    rate_limited: Family<OrgLabels, Counter>,
    executions: Family<ExecutionLabels, Counter>,
    orgs: RwLock<HashMap<Option<u64>, Arc<OrgSeries>>>,
    max_series: usize,
    /// Pushed by the TLS listener and the certificate code.
    pub tls: Arc<TlsFigures>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("max_series", &self.max_series).finish_non_exhaustive()
    }
}

impl Metrics {
    /// The families and the process/storage collector; `max_series` caps the request series
    /// and the audit actions per organization.
    pub fn new(max_series: usize, probe: Arc<dyn SystemProbe>) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let durations: Histograms<ServiceLabels> = Family::new_with_constructor(histogram);
        let objects = Family::<KindLabels, Gauge>::default();
        let audit = Family::<ActionLabels, Counter>::default();
        let rate_limited = Family::<OrgLabels, Counter>::default();
        let executions = Family::<ExecutionLabels, Counter>::default();
        let mut registry = Registry::default();
        register(&mut registry, &REQUESTS, requests.clone());
        register(&mut registry, &DURATION, durations.clone());
        register(&mut registry, &OBJECTS, objects.clone());
        register(&mut registry, &AUDIT, audit.clone());
        register(&mut registry, &RATE_LIMITED, rate_limited.clone());
        register(&mut registry, &EXECUTIONS, executions.clone());
        let tls = Arc::new(TlsFigures::default());
        registry
            .register_collector(Box::new(system::SystemCollector::new(probe, Arc::clone(&tls))));
        Self {
            registry,
            requests,
            durations,
            objects,
            audit,
            rate_limited,
            executions,
            orgs: RwLock::new(HashMap::new()),
            max_series: max_series.max(1),
            tls,
        }
    }

    /// The series of `org`, created on first use (ids come from committed organizations or
    /// resolved credentials, so their number is the number of organizations).
    pub fn org(&self, org: Option<u64>) -> Arc<OrgSeries> {
        if let Some(series) = self.orgs.read().get(&org) {
            return Arc::clone(series);
        }
        let mut orgs = self.orgs.write();
        let series = orgs.entry(org).or_insert_with(|| {
            let label = Org(org);
            let objects = Kind::ALL.map(|kind| {
                self.objects.get_or_create_owned(&KindLabels { organization: label, kind })
            });
            let limited = self.rate_limited.get_or_create_owned(&OrgLabels { organization: label });
            Arc::new(OrgSeries::new(label, objects, limited, self.max_series))
        });
        Arc::clone(series)
    }

    /// Counts one answered request (series past the organization's cap count as `other`).
    pub fn record_request(
        &self,
        org: Option<u64>,
        service: Name,
        method: Name,
        status: u16,
        elapsed: Duration,
    ) {
        let series = self.org(org);
        if status == 429 {
            series.rate_limited().inc();
        }
        let (service, method, status) = series.admit_operation(service, method, status);
        series.request_counter(&self.requests, &service, &method, status).inc();
        series.duration_histogram(&self.durations, &service).observe(elapsed.as_secs_f64());
    }

    /// Moves the count of `kind` in `org` by `delta` (a committed create or delete).
    pub fn count(&self, org: u64, kind: Kind, delta: i64) {
        self.org(Some(org)).object_gauge(kind).inc_by(delta);
    }

    /// Sets the count of `kind` in `org` (a recount: API keys expire without a commit).
    pub fn set_count(&self, org: u64, kind: Kind, n: u64) {
        self.org(Some(org)).object_gauge(kind).set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Counts one committed audit record.
    pub fn audited(&self, org: Option<u64>, action: Name) {
        let series = self.org(org);
        series.audit_counter(&self.audit, action).inc();
    }

    /// Counts one API deployment execution that ended with `status`.
    pub fn execution_ended(&self, org: u64, status: &'static str) {
        let labels = ExecutionLabels { organization: Org(Some(org)), status };
        self.executions.get_or_create(&labels).inc();
    }

    /// The count of `kind` in `org` now (for the tests and the start-up count).
    pub fn object_count(&self, org: u64, kind: Kind) -> i64 {
        self.org(Some(org)).object_gauge(kind).get()
    }

    /// `/api/v1/metrics/all`: every family and the process figures.
    pub fn encode_all(&self, format: Format) -> Result<String, std::fmt::Error> {
        encode(&self.registry, format)
    }

    /// `/api/v1/metrics`: the series of one organization only.
    pub fn encode_org(&self, org: u64, format: Format) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(org::OrgCollector(self.org(Some(org)))));
        encode(&registry, format)
    }
}

fn register<M>(registry: &mut Registry, desc: &Desc, metric: M)
where
    M: prometheus_client::registry::Metric,
{
    match &desc.unit {
        Some(unit) => registry.register_with_unit(desc.name, desc.help, unit.clone(), metric),
        None => registry.register(desc.name, desc.help, metric),
    }
}

/// The exposition format a scraper asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0 (the default).
    OpenMetrics,
    /// The Prometheus text format 0.0.4, when `Accept` asks for `text/plain` without
    /// OpenMetrics.
    Text004,
}

impl Format {
    /// Content negotiation on the `Accept` header: OpenMetrics unless the client asks for the
    /// 0.0.4 text format and not for OpenMetrics.
    pub fn from_accept(accept: Option<&str>) -> Self {
        let Some(accept) = accept else { return Self::OpenMetrics };
        if accept.contains("application/openmetrics-text") || !accept.contains("text/plain") {
            Self::OpenMetrics
        } else {
            Self::Text004
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Self::Text004 => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

fn encode(registry: &Registry, format: Format) -> Result<String, std::fmt::Error> {
    let mut out = String::with_capacity(4096);
    match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, registry)?,
        Format::Text004 => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, registry)?
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
