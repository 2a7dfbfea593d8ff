//! Per-minute and per-hour roll-ups per (service, method) series: counts by status, sum/min/max
//! duration, the newest record time and a fixed latency histogram. The writer updates them in
//! the same transaction as the records; statistics read them, so the cost of an answer depends
//! on the window and the number of series, never on the number of records.
//!
//! Keys are `bucket << 20 | series id` (minutes or hours since the epoch), so a time range of
//! buckets is one key range. A window is read as minute buckets up to the first whole hour and
//! hour buckets from there on.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::record::RequestLog;
use crate::store::tables::{
    LOG_KEYS_BY_HOUR, LOG_SERIES, LOG_SERIES_IDS, ROLLUP_HOUR, ROLLUP_MINUTE,
};
use crate::store::{decode, RangeReader, Reader, Record, StoreError, WriteTx, Writer};

const SERIES_BITS: u32 = 20;
const SERIES_MASK: u64 = (1 << SERIES_BITS) - 1;

/// Inclusive upper bounds (ms) of the latency histogram's bins; one more bin holds the rest.
pub const BOUNDS: [u64; 64] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 18, 20, 25, 30, 35, 40, 45, 50, 60, 70, 80, 90,
    100, 120, 140, 160, 180, 200, 250, 300, 350, 400, 450, 500, 600, 700, 800, 900, 1000, 1200,
    1400, 1600, 1800, 2000, 2500, 3000, 3500, 4000, 4500, 5000, 6000, 7000, 8000, 9000, 10000,
    15000, 20000, 30000, 60000, 120_000,
];
const BINS: usize = BOUNDS.len() + 1;

fn bin_of(ms: u64) -> usize {
    BOUNDS.partition_point(|b| *b < ms)
}

/// A (service, method) pair that has been seen.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Series {
    pub service: String,
    pub method: String,
}

impl Record for Series {
    const VERSION: u8 = 1;
    const NAME: &'static str = "log_series";
}

/// One roll-up bucket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Bucket {
    #[serde(rename = "n")]
    pub total: u64,
    #[serde(rename = "ok", default)]
    pub success: u64,
    #[serde(rename = "er", default)]
    pub error: u64,
    #[serde(rename = "to", default)]
    pub timeout: u64,
    #[serde(rename = "ca", default)]
    pub cancelled: u64,
    #[serde(rename = "sum", default)]
    pub sum_ms: u64,
    #[serde(rename = "min", default)]
    pub min_ms: u64,
    #[serde(rename = "max", default)]
    pub max_ms: u64,
    /// Newest `created_at` in the bucket (unix seconds).
    #[serde(rename = "last", default)]
    pub last_at: i64,
    /// Sparse histogram: `(bin, count)`.
    #[serde(rename = "h", default)]
    pub hist: Vec<(u8, u64)>,
}

impl Record for Bucket {
    const VERSION: u8 = 1;
    const NAME: &'static str = "rollup";
}

/// A sum of buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agg {
    pub total: u64,
    pub success: u64,
    pub error: u64,
    pub timeout: u64,
    pub cancelled: u64,
    pub sum_ms: u64,
    pub min_ms: u64,
    pub max_ms: u64,
    pub last_at: Option<i64>,
    pub hist: [u64; BINS],
}

impl Default for Agg {
    fn default() -> Self {
        Self {
            total: 0,
            success: 0,
            error: 0,
            timeout: 0,
            cancelled: 0,
            sum_ms: 0,
            min_ms: u64::MAX,
            max_ms: 0,
            last_at: None,
            hist: [0; BINS],
        }
    }
}

impl Agg {
    pub fn add_record(&mut self, r: &RequestLog) {
        self.total += 1;
        match r.status.as_str() {
            "success" => self.success += 1,
            "error" => self.error += 1,
            "timeout" => self.timeout += 1,
            "cancelled" => self.cancelled += 1,
            _ => {}
        }
        self.sum_ms = self.sum_ms.saturating_add(r.duration_ms);
        self.min_ms = self.min_ms.min(r.duration_ms);
        self.max_ms = self.max_ms.max(r.duration_ms);
        self.last_at = Some(self.last_at.map_or(r.created_at, |l| l.max(r.created_at)));
        if let Some(slot) = self.hist.get_mut(bin_of(r.duration_ms)) {
            *slot += 1;
        }
    }

    pub fn add_bucket(&mut self, b: &Bucket) {
        if b.total == 0 {
            return;
        }
        self.total += b.total;
        self.success += b.success;
        self.error += b.error;
        self.timeout += b.timeout;
        self.cancelled += b.cancelled;
        self.sum_ms = self.sum_ms.saturating_add(b.sum_ms);
        self.min_ms = self.min_ms.min(b.min_ms);
        self.max_ms = self.max_ms.max(b.max_ms);
        self.last_at = Some(self.last_at.map_or(b.last_at, |l| l.max(b.last_at)));
        for (bin, n) in &b.hist {
            if let Some(slot) = self.hist.get_mut(usize::from(*bin)) {
                *slot += n;
            }
        }
    }

    pub fn merge(&mut self, o: &Agg) {
        if o.total == 0 {
            return;
        }
        self.add_bucket(&o.to_bucket());
    }

    pub fn to_bucket(&self) -> Bucket {
        Bucket {
            total: self.total,
            success: self.success,
            error: self.error,
            timeout: self.timeout,
            cancelled: self.cancelled,
            sum_ms: self.sum_ms,
            min_ms: if self.total == 0 { 0 } else { self.min_ms },
            max_ms: self.max_ms,
            last_at: self.last_at.unwrap_or(0),
            hist: self
                .hist
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .filter_map(|(i, n)| u8::try_from(i).ok().map(|i| (i, *n)))
                .collect(),
        }
    }

    /// Everything that did not succeed (errors, timeouts, cancellations, pending).
    pub fn failed(&self) -> u64 {
        self.total - self.success
    }

    pub fn min(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            self.min_ms
        }
    }

    /// Percentage of successes, one decimal.
    pub fn success_rate(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        round1(self.success as f64 * 100.0 / self.total as f64)
    }

    /// Mean duration, one decimal.
    pub fn avg(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        round1(self.sum_ms as f64 / self.total as f64)
    }

    /// The duration at quantile `q` (`sorted[floor(n·q)]`, as django-cfg computes p95), read from
    /// the histogram: the upper bound of the bin holding that rank, kept within [min, max].
    /// Exact whenever durations fall on bin bounds. `None` when empty.
    pub fn percentile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // q in [0,1]
        let rank = ((self.total as f64 * q).floor() as u64).min(self.total - 1);
        let mut seen = 0;
        for (i, n) in self.hist.iter().enumerate() {
            seen += n;
            if seen > rank {
                let upper = BOUNDS.get(i).copied().unwrap_or(self.max_ms);
                return Some(upper.clamp(self.min(), self.max_ms));
            }
        }
        Some(self.max_ms)
    }
}

/// Rounds to one decimal place.
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn minute_of(ts: i64) -> u64 {
    u64::try_from(ts.div_euclid(60)).unwrap_or(0)
}

fn hour_of(ts: i64) -> u64 {
    u64::try_from(ts.div_euclid(3600)).unwrap_or(0)
}

fn key(bucket: u64, series: u64) -> u64 {
    (bucket << SERIES_BITS) | (series & SERIES_MASK)
}

/// The series id of (service, method), created on first sight. Ids past the key space share
/// series 0, which is never handed out otherwise.
fn series_id(
    tx: &WriteTx,
    cache: &mut HashMap<(String, String), u64>,
    service: &str,
    method: &str,
) -> Result<u64, StoreError> {
    if let Some(id) = cache.get(&(service.to_string(), method.to_string())) {
        return Ok(*id);
    }
    let name = format!("{service}\u{1f}{method}");
    let id = match tx.lookup(LOG_SERIES_IDS, &name)? {
        Some(id) => id,
        None => {
            let id = tx.next_id("log_series")?;
            let id = if id > SERIES_MASK { 0 } else { id };
            tx.set_lookup(LOG_SERIES_IDS, &name, id)?;
            let series = Series { service: service.to_string(), method: method.to_string() };
            tx.put(LOG_SERIES, id, &series)?;
            id
        }
    };
    cache.insert((service.to_string(), method.to_string()), id);
    Ok(id)
}

/// Adds `records` to the minute and hour buckets (and the per-hour API key set) inside `tx`.
pub fn apply(tx: &WriteTx, records: &[RequestLog]) -> Result<(), StoreError> {
    let mut cache = HashMap::new();
    let mut minutes: BTreeMap<u64, Agg> = BTreeMap::new();
    let mut hours: BTreeMap<u64, Agg> = BTreeMap::new();
    let mut keys: BTreeMap<(u64, u64), ()> = BTreeMap::new();
    for r in records {
        let series = series_id(tx, &mut cache, &r.service_name, &r.method_name)?;
        minutes.entry(key(minute_of(r.created_at), series)).or_default().add_record(r);
        hours.entry(key(hour_of(r.created_at), series)).or_default().add_record(r);
        if let Some(k) = r.api_key_id {
            keys.insert((hour_of(r.created_at), k), ());
        }
    }
    for (table, deltas) in [(ROLLUP_MINUTE, minutes), (ROLLUP_HOUR, hours)] {
        for (k, delta) in deltas {
            let mut agg = Agg::default();
            if let Some(old) = tx.get(table, k)? {
                agg.add_bucket(&old);
            }
            agg.merge(&delta);
            tx.put(table, k, &agg.to_bucket())?;
        }
    }
    for (hour, k) in keys.into_keys() {
        tx.link(LOG_KEYS_BY_HOUR, hour, k)?;
    }
    Ok(())
}

/// Where a window starts: `hours` before `now`.
pub fn window_start(now: i64, hours: u64) -> i64 {
    now - i64::try_from(hours).unwrap_or(720).saturating_mul(3600)
}

/// Calls `f(bucket start time, series id, bucket)` for every bucket from `from` (unix seconds,
/// rounded down to its minute) on: minute buckets until the first whole hour, hour buckets after.
pub fn for_each_bucket<R: RangeReader>(
    tx: &R,
    from: i64,
    f: &mut dyn FnMut(i64, u64, &Bucket),
) -> Result<(), StoreError> {
    let start_min = minute_of(from);
    let first_hour = start_min.div_ceil(60);
    let mut visit = |k: u64, bytes: &[u8], unit: i64| -> Result<bool, StoreError> {
        let b: Bucket = decode(bytes)?;
        let start = i64::try_from(k >> SERIES_BITS).unwrap_or(i64::MAX).saturating_mul(unit);
        f(start, k & SERIES_MASK, &b);
        Ok(true)
    };
    if start_min < first_hour * 60 {
        let to = key(first_hour * 60 - 1, SERIES_MASK);
        tx.for_each_raw(ROLLUP_MINUTE, key(start_min, 0), to, &mut |k, v| visit(k, v, 60))?;
    }
    tx.for_each_raw(ROLLUP_HOUR, key(first_hour, 0), u64::MAX, &mut |k, v| visit(k, v, 3600))
}

/// Per-series aggregates of a window.
pub fn by_series<R: RangeReader>(tx: &R, from: i64) -> Result<HashMap<u64, Agg>, StoreError> {
    let mut out: HashMap<u64, Agg> = HashMap::new();
    for_each_bucket(tx, from, &mut |_, series, b| out.entry(series).or_default().add_bucket(b))?;
    Ok(out)
}

/// The names of series ids.
pub fn series_names<R: Reader>(
    tx: &R,
    ids: impl Iterator<Item = u64>,
) -> Result<HashMap<u64, Series>, StoreError> {
    let mut out = HashMap::new();
    for id in ids {
        if let Some(s) = tx.get(LOG_SERIES, id)? {
            out.insert(id, s);
        }
    }
    Ok(out)
}

/// Distinct API keys seen from `from` on (hour resolution).
pub fn active_keys<R: RangeReader>(tx: &R, from: i64) -> Result<u64, StoreError> {
    let pairs = tx.pairs(LOG_KEYS_BY_HOUR, (hour_of(from), 0), (u64::MAX, u64::MAX), 1_000_000)?;
    let set: std::collections::HashSet<u64> = pairs.into_iter().map(|(_, k)| k).collect();
    Ok(set.len() as u64)
}

/// Removes up to `limit` buckets (minute buckets before `cutoff`'s minute, hour buckets and key
/// sets of hours that ended by `cutoff`); returns how many went.
pub fn prune(tx: &WriteTx, cutoff: i64, limit: usize) -> Result<usize, StoreError> {
    let mut removed = 0;
    let tables = [(ROLLUP_MINUTE, minute_of(cutoff)), (ROLLUP_HOUR, hour_of(cutoff))];
    for (table, end) in tables {
        if end == 0 || removed >= limit {
            continue;
        }
        let mut ks = Vec::new();
        let upto = key(end - 1, SERIES_MASK);
        tx.for_each_raw(table, 0, upto, &mut |k, _| {
            ks.push(k);
            Ok(ks.len() < limit - removed)
        })?;
        for k in ks {
            tx.remove(table, k)?;
            removed += 1;
        }
    }
    let end = hour_of(cutoff);
    if end > 0 && removed < limit {
        for (h, k) in tx.pairs(LOG_KEYS_BY_HOUR, (0, 0), (end - 1, u64::MAX), limit - removed)? {
            tx.unlink(LOG_KEYS_BY_HOUR, h, k)?;
            removed += 1;
        }
    }
    Ok(removed)
}
