//! One organization's series: clones of its handles in the shared families (a clone shares
//! the value), the names it has admitted under the cap, and the collector that encodes only
//! them for `/api/v1/metrics`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;

use super::{
    ActionLabels, Desc, Kind, KindLabels, Name, Org, OrgLabels, RequestLabels, ServiceLabels,
    AUDIT, DURATION, OBJECTS, OTHER, RATE_LIMITED, REQUESTS,
};

/// The series of one organization (or of `none`).
#[derive(Debug)]
pub struct OrgSeries {
    org: Org,
    max_series: usize,
    /// Distinct `(service, method, status)` request series admitted so far (at most
    /// `max_series`): capping the triple, not the pair, also bounds reported statuses.
    operations: Mutex<HashSet<(Name, Name, u16)>>,
    requests: Mutex<HashMap<(Name, Name, u16), Counter>>,
    durations: Mutex<HashMap<Name, Histogram>>,
    audit: Mutex<HashMap<Name, Counter>>,
    objects: [Gauge; 5],
    rate_limited: Counter,
}

impl OrgSeries {
    pub(super) fn new(org: Org, objects: [Gauge; 5], rate_limited: Counter, max: usize) -> Self {
        Self {
            org,
            max_series: max,
            operations: Mutex::new(HashSet::new()),
            requests: Mutex::new(HashMap::new()),
            durations: Mutex::new(HashMap::new()),
            audit: Mutex::new(HashMap::new()),
            objects,
            rate_limited,
        }
    }

    /// The series itself if already admitted or if there is room, else `(other, other, 0)`.
    pub(super) fn admit_operation(
        &self,
        service: Name,
        method: Name,
        status: u16,
    ) -> (Name, Name, u16) {
        let mut ops = self.operations.lock();
        let key = (service, method, status);
        if ops.contains(&key) {
            return key;
        }
        if ops.len() < self.max_series {
            ops.insert(key.clone());
            return key;
        }
        (Name::Borrowed(OTHER), Name::Borrowed(OTHER), 0)
    }

    pub(super) fn request_counter(
        &self,
        family: &Family<RequestLabels, Counter>,
        service: &Name,
        method: &Name,
        status: u16,
    ) -> Counter {
        let mut map = self.requests.lock();
        let key = (service.clone(), method.clone(), status);
        if let Some(c) = map.get(&key) {
            return c.clone();
        }
        let labels = RequestLabels {
            organization: self.org,
            service: service.clone(),
            method: method.clone(),
            status,
        };
        map.entry(key).or_insert_with(|| family.get_or_create_owned(&labels)).clone()
    }

    pub(super) fn duration_histogram<C: MetricConstructor<Histogram>>(
        &self,
        family: &Family<ServiceLabels, Histogram, C>,
        service: &Name,
    ) -> Histogram {
        let mut map = self.durations.lock();
        if let Some(h) = map.get(service) {
            return h.clone();
        }
        let labels = ServiceLabels { organization: self.org, service: service.clone() };
        map.entry(service.clone()).or_insert_with(|| family.get_or_create_owned(&labels)).clone()
    }

    /// The action's counter; past the cap, new actions share `other`.
    pub(super) fn audit_counter(
        &self,
        family: &Family<ActionLabels, Counter>,
        action: Name,
    ) -> Counter {
        let mut map = self.audit.lock();
        if let Some(c) = map.get(&action) {
            return c.clone();
        }
        let action = if map.len() < self.max_series { action } else { Name::Borrowed(OTHER) };
        let labels = ActionLabels { organization: self.org, action: action.clone() };
        map.entry(action).or_insert_with(|| family.get_or_create_owned(&labels)).clone()
    }

    pub(super) fn object_gauge(&self, kind: Kind) -> &Gauge {
        // Constant indexes into a fixed array: checked at compile time.
        match kind {
            Kind::projects => &self.objects[0],
            Kind::environments => &self.objects[1],
            Kind::variables => &self.objects[2],
            Kind::api_keys => &self.objects[3],
            Kind::pats => &self.objects[4],
        }
    }

    pub(super) fn rate_limited(&self) -> &Counter {
        &self.rate_limited
    }
}

/// Encodes one organization's series with the same names, help and units as the registry.
#[derive(Debug)]
pub(super) struct OrgCollector(pub Arc<OrgSeries>);

fn descriptor<'a>(
    encoder: &'a mut DescriptorEncoder,
    desc: &'a Desc,
    metric_type: MetricType,
) -> Result<prometheus_client::encoding::MetricEncoder<'a>, std::fmt::Error> {
    encoder.encode_descriptor(desc.name, desc.help, desc.unit.as_ref(), metric_type)
}

impl Collector for OrgCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        // Snapshots of the handles: the locks are held only for the copy, never while writing.
        let requests: Vec<_> =
            s.requests.lock().iter().map(|(k, c)| (k.clone(), c.clone())).collect();
        if !requests.is_empty() {
            let mut m = descriptor(&mut encoder, &REQUESTS, MetricType::Counter)?;
            for ((service, method, status), c) in requests {
                let labels = RequestLabels { organization: s.org, service, method, status };
                c.encode(m.encode_family(&labels)?)?;
            }
        }
        let durations: Vec<_> =
            s.durations.lock().iter().map(|(k, h)| (k.clone(), h.clone())).collect();
        if !durations.is_empty() {
            let mut m = descriptor(&mut encoder, &DURATION, MetricType::Histogram)?;
            for (service, h) in durations {
                let labels = ServiceLabels { organization: s.org, service };
                h.encode(m.encode_family(&labels)?)?;
            }
        }
        let mut m = descriptor(&mut encoder, &OBJECTS, MetricType::Gauge)?;
        for (kind, g) in Kind::ALL.iter().zip(&s.objects) {
            let labels = KindLabels { organization: s.org, kind: *kind };
            g.encode(m.encode_family(&labels)?)?;
        }
        let audit: Vec<_> = s.audit.lock().iter().map(|(k, c)| (k.clone(), c.clone())).collect();
        if !audit.is_empty() {
            let mut m = descriptor(&mut encoder, &AUDIT, MetricType::Counter)?;
            for (action, c) in audit {
                let labels = ActionLabels { organization: s.org, action };
                c.encode(m.encode_family(&labels)?)?;
            }
        }
        let mut m = descriptor(&mut encoder, &RATE_LIMITED, MetricType::Counter)?;
        s.rate_limited.encode(m.encode_family(&OrgLabels { organization: s.org })?)?;
        Ok(())
    }
}
