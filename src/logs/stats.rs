//! Statistics from the roll-ups: overview, per service, per method, timeline. Each reads the
//! buckets of the window (minute buckets for the partial first hour, hour buckets after), so its
//! cost depends on the window and the number of series, not on how many records exist.
//! The monitoring views that show them are staff only: [`LogService::staff_read`] is the one
//! way in, and checks that before reading.

use std::collections::{BTreeMap, HashMap};

use super::rollups::{self, Agg, Series};
use super::LogService;
use crate::domain::{Error, Principal};
use crate::store::{ReadTx, StoreError};

impl LogService {
    /// Runs a read of the roll-ups for `p`, off the async runtime, after checking that `p` is
    /// staff through an unscoped credential (the monitoring views span every tenant).
    pub async fn staff_read<T: Send + 'static>(
        &self,
        p: &Principal,
        f: impl FnOnce(&ReadTx) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, Error> {
        p.require_staff()?;
        let store = self.store.clone();
        Ok(tokio::task::spawn_blocking(move || store.read(f)).await.map_err(Error::from)??)
    }
}

/// `hours` query values are clamped to this range.
pub const MAX_HOURS: u64 = 720;

/// Totals of a window.
#[derive(Debug, Clone)]
pub struct Overview {
    pub agg: Agg,
    pub services: u64,
    /// Distinct API keys that made requests in the window (the overview's `active_api_keys`
    /// counts existing valid keys instead, from the domain).
    pub used_api_keys: u64,
    /// Per service, busiest first (the overview's `server.services`).
    pub per_service: Vec<Row>,
}

/// One service or one method of a window.
#[derive(Debug, Clone)]
pub struct Row {
    pub service: String,
    pub method: String,
    pub methods_count: u64,
    pub agg: Agg,
}

pub fn overview(tx: &ReadTx, from: i64) -> Result<Overview, StoreError> {
    let per_series = rollups::by_series(tx, from)?;
    let names = rollups::series_names(tx, per_series.keys().copied())?;
    let mut agg = Agg::default();
    for a in per_series.values() {
        agg.merge(a);
    }
    let per_service = by_service(per_series, &names);
    let used_api_keys = rollups::active_keys(tx, from)?;
    Ok(Overview { agg, services: per_service.len() as u64, used_api_keys, per_service })
}

fn rows(per_series: HashMap<u64, Agg>, names: &HashMap<u64, Series>) -> Vec<(Series, Agg)> {
    per_series.into_iter().filter_map(|(id, a)| names.get(&id).map(|s| (s.clone(), a))).collect()
}

fn sort_rows(out: &mut [Row]) {
    out.sort_by(|a, b| {
        b.agg
            .total
            .cmp(&a.agg.total)
            .then_with(|| (&a.service, &a.method).cmp(&(&b.service, &b.method)))
    });
}

/// Per service, busiest first.
pub fn services(tx: &ReadTx, from: i64) -> Result<Vec<Row>, StoreError> {
    let per_series = rollups::by_series(tx, from)?;
    let names = rollups::series_names(tx, per_series.keys().copied())?;
    Ok(by_service(per_series, &names))
}

fn by_service(per_series: HashMap<u64, Agg>, names: &HashMap<u64, Series>) -> Vec<Row> {
    let mut by_service: BTreeMap<String, (Agg, u64)> = BTreeMap::new();
    for (s, a) in rows(per_series, names) {
        let e = by_service.entry(s.service).or_default();
        e.0.merge(&a);
        e.1 += 1;
    }
    let mut out: Vec<Row> = by_service
        .into_iter()
        .map(|(service, (agg, methods_count))| Row {
            service,
            method: String::new(),
            methods_count,
            agg,
        })
        .collect();
    sort_rows(&mut out);
    out
}

/// Per (service, method), busiest first, optionally of one service.
pub fn methods(tx: &ReadTx, from: i64, service: Option<&str>) -> Result<Vec<Row>, StoreError> {
    let per_series = rollups::by_series(tx, from)?;
    let names = rollups::series_names(tx, per_series.keys().copied())?;
    let mut out: Vec<Row> = rows(per_series, &names)
        .into_iter()
        .filter(|(s, _)| service.is_none_or(|want| s.service == want))
        .map(|(s, agg)| Row { service: s.service, method: s.method, methods_count: 1, agg })
        .collect();
    sort_rows(&mut out);
    Ok(out)
}

/// Totals per hour or per day (bucket start, unix seconds), oldest first; empty periods left out.
pub fn timeline(tx: &ReadTx, from: i64, day: bool) -> Result<Vec<(i64, Agg)>, StoreError> {
    let unit = if day { 86400 } else { 3600 };
    let mut out: BTreeMap<i64, Agg> = BTreeMap::new();
    rollups::for_each_bucket(tx, from, &mut |start, _, b| {
        out.entry(start.div_euclid(unit) * unit).or_default().add_encoded(b)
    })?;
    Ok(out.into_iter().collect())
}

/// Distinct services with traffic since `from`.
pub fn service_names(tx: &ReadTx, from: i64) -> Result<Vec<String>, StoreError> {
    let per_series = rollups::by_series(tx, from)?;
    let names = rollups::series_names(tx, per_series.keys().copied())?;
    let mut set: Vec<String> = names.into_values().map(|s| s.service).collect();
    set.sort();
    set.dedup();
    Ok(set)
}
