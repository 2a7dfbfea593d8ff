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

pub use super::agg::{round1, Agg, Bucket, BOUNDS};
use super::record::RequestLog;
use crate::logs::tables::{
    LOG_KEYS_BY_HOUR, LOG_SERIES, LOG_SERIES_IDS, ROLLUP_HOUR, ROLLUP_MINUTE,
};
use crate::store::{RangeReader, Reader, Record, StoreError, WriteTx, Writer};

const SERIES_BITS: u32 = 20;
const SERIES_MASK: u64 = (1 << SERIES_BITS) - 1;

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
fn series_id<'a>(
    tx: &WriteTx,
    cache: &mut HashMap<(&'a str, &'a str), u64>,
    service: &'a str,
    method: &'a str,
) -> Result<u64, StoreError> {
    if let Some(id) = cache.get(&(service, method)) {
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
    cache.insert((service, method), id);
    Ok(id)
}

/// Adds `records` to the minute and hour buckets (and the per-hour API key set) inside `tx`.
pub fn apply(tx: &WriteTx, records: &[RequestLog]) -> Result<(), StoreError> {
    let mut cache = HashMap::new();
    let mut minutes: BTreeMap<u64, Agg> = BTreeMap::new();
    let mut hours: BTreeMap<u64, Agg> = BTreeMap::new();
    let mut keys: BTreeMap<(u64, u64), ()> = BTreeMap::new();
    // Consecutive records are mostly of one series (a burst of one route): compare with the
    // previous record's names before hashing them.
    let mut last: Option<(&str, &str, u64)> = None;
    for r in records {
        let series = match last {
            Some((s, m, id)) if s == r.service_name && m == r.method_name => id,
            _ => {
                let id = series_id(tx, &mut cache, &r.service_name, &r.method_name)?;
                last = Some((&r.service_name, &r.method_name, id));
                id
            }
        };
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

/// A visitor of stored buckets: `(bucket start time, series id, stored bytes)`.
pub type BucketVisitor<'a> = dyn FnMut(i64, u64, &[u8]) -> Result<(), StoreError> + 'a;

/// Calls `f(bucket start time, series id, stored bucket bytes)` for every bucket from `from`
/// (unix seconds, rounded down to its minute) on: minute buckets until the first whole hour,
/// hour buckets after. The bytes go to [`Agg::add_encoded`], which sums them without decoding
/// into a [`Bucket`].
pub fn for_each_bucket<R: RangeReader>(
    tx: &R,
    from: i64,
    f: &mut BucketVisitor<'_>,
) -> Result<(), StoreError> {
    let start_min = minute_of(from);
    let first_hour = start_min.div_ceil(60);
    let mut visit = |k: u64, bytes: &[u8], unit: i64| -> Result<bool, StoreError> {
        let start = i64::try_from(k >> SERIES_BITS).unwrap_or(i64::MAX).saturating_mul(unit);
        f(start, k & SERIES_MASK, bytes)?;
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
    for_each_bucket(tx, from, &mut |_, series, b| out.entry(series).or_default().add_encoded(b))?;
    Ok(out)
}

/// The names of series ids.
pub fn series_names<R: Reader>(
    tx: &R,
    ids: impl Iterator<Item = u64>,
) -> Result<HashMap<u64, Series>, StoreError> {
    let mut ids: Vec<u64> = ids.collect();
    ids.sort_unstable();
    // One table open for all of them; series are never deleted, so each id has its row (if
    // one were missing, fall back to one lookup per id rather than pair names wrongly).
    let found = tx.get_many(LOG_SERIES, &ids)?;
    if found.len() == ids.len() {
        return Ok(ids.into_iter().zip(found).collect());
    }
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
