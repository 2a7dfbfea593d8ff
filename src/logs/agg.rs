//! Roll-up arithmetic: the stored [`Bucket`] (counts by status, sum/min/max duration, newest
//! record time, a sparse latency histogram) and [`Agg`], a sum of buckets with the statistics
//! the API reports. Buckets are stored in a compact binary body (version 2); version 1 bodies
//! (JSON, written before) still decode.

use serde::{Deserialize, Serialize};

use super::record::RequestLog;
use crate::store::binary::{self, put_i64, put_u64};
use crate::store::{Record, StoreError};

/// Inclusive upper bounds (ms) of the latency histogram's bins; one more bin holds the rest.
pub const BOUNDS: [u64; 64] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 18, 20, 25, 30, 35, 40, 45, 50, 60, 70, 80, 90,
    100, 120, 140, 160, 180, 200, 250, 300, 350, 400, 450, 500, 600, 700, 800, 900, 1000, 1200,
    1400, 1600, 1800, 2000, 2500, 3000, 3500, 4000, 4500, 5000, 6000, 7000, 8000, 9000, 10000,
    15000, 20000, 30000, 60000, 120_000,
];
pub const BINS: usize = BOUNDS.len() + 1;

fn bin_of(ms: u64) -> usize {
    BOUNDS.partition_point(|b| *b < ms)
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

/// Version 2 body: the nine numbers as varints (`last_at` zig-zag), the number of histogram
/// entries, then `(bin byte, count varint)` pairs. About a fifth of the JSON's size, and it
/// decodes without allocating (see [`Agg::add_encoded`]), which is what statistics do all day.
impl Record for Bucket {
    const VERSION: u8 = 2;
    const NAME: &'static str = "rollup";

    // Version 1: the same fields as JSON.
    const JSON_UNTIL: u8 = 1;

    fn write_body(&self, out: &mut Vec<u8>) -> Result<(), StoreError> {
        for v in [
            self.total,
            self.success,
            self.error,
            self.timeout,
            self.cancelled,
            self.sum_ms,
            self.min_ms,
            self.max_ms,
        ] {
            put_u64(out, v);
        }
        put_i64(out, self.last_at);
        put_u64(out, self.hist.len() as u64);
        for (bin, n) in &self.hist {
            out.push(*bin);
            put_u64(out, *n);
        }
        Ok(())
    }

    fn read_body(body: &[u8]) -> Result<Self, StoreError> {
        let mut hist = Vec::new();
        let head = read_v2(body, &mut |bin, n| hist.push((bin, n)))?;
        let mut b = Bucket { hist, ..Bucket::default() };
        head.into_bucket(&mut b);
        Ok(b)
    }
}

/// The fixed part of a version 2 body.
struct Head {
    n: [u64; 8],
    last_at: i64,
}

impl Head {
    fn into_bucket(self, b: &mut Bucket) {
        let [total, success, error, timeout, cancelled, sum_ms, min_ms, max_ms] = self.n;
        (b.total, b.success, b.error, b.timeout, b.cancelled) =
            (total, success, error, timeout, cancelled);
        (b.sum_ms, b.min_ms, b.max_ms, b.last_at) = (sum_ms, min_ms, max_ms, self.last_at);
    }
}

/// Decodes a version 2 body, handing each histogram entry to `bin`.
fn read_v2(body: &[u8], bin: &mut dyn FnMut(u8, u64)) -> Result<Head, StoreError> {
    let mut r = binary::Reader::new(body, Bucket::NAME);
    let mut n = [0u64; 8];
    for slot in &mut n {
        *slot = r.u64()?;
    }
    let last_at = r.i64()?;
    let entries = r.u64()?;
    if entries > BINS as u64 {
        return Err(r.error("too many histogram bins"));
    }
    for _ in 0..entries {
        let b = r.u8()?;
        let count = r.u64()?;
        bin(b, count);
    }
    r.finish()?;
    Ok(Head { n, last_at })
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
    /// Adds a record as the `count` requests it stands for (each with its duration).
    pub fn add_record(&mut self, r: &RequestLog) {
        let n = r.count.max(1);
        self.total += n;
        match &*r.status {
            "success" => self.success += n,
            "error" => self.error += n,
            "timeout" => self.timeout += n,
            "cancelled" => self.cancelled += n,
            _ => {}
        }
        self.sum_ms = self.sum_ms.saturating_add(r.duration_ms.saturating_mul(n));
        self.min_ms = self.min_ms.min(r.duration_ms);
        self.max_ms = self.max_ms.max(r.duration_ms);
        self.last_at = Some(self.last_at.map_or(r.created_at, |l| l.max(r.created_at)));
        if let Some(slot) = self.hist.get_mut(bin_of(r.duration_ms)) {
            *slot += n;
        }
    }

    /// Adds the fixed part of a bucket (not its histogram).
    fn add_counts(&mut self, h: &Head) {
        let [total, success, error, timeout, cancelled, sum_ms, min_ms, max_ms] = h.n;
        if total == 0 {
            return;
        }
        self.total += total;
        self.success += success;
        self.error += error;
        self.timeout += timeout;
        self.cancelled += cancelled;
        self.sum_ms = self.sum_ms.saturating_add(sum_ms);
        self.min_ms = self.min_ms.min(min_ms);
        self.max_ms = self.max_ms.max(max_ms);
        self.last_at = Some(self.last_at.map_or(h.last_at, |l| l.max(h.last_at)));
    }

    fn add_bin(&mut self, bin: u8, n: u64) {
        if let Some(slot) = self.hist.get_mut(usize::from(bin)) {
            *slot += n;
        }
    }

    pub fn add_bucket(&mut self, b: &Bucket) {
        if b.total == 0 {
            return;
        }
        let n = [b.total, b.success, b.error, b.timeout, b.cancelled, b.sum_ms, b.min_ms, b.max_ms];
        self.add_counts(&Head { n, last_at: b.last_at });
        for (bin, n) in &b.hist {
            self.add_bin(*bin, *n);
        }
    }

    /// Adds a stored bucket straight from its bytes (version byte included): a version 2 body
    /// is summed without building a [`Bucket`]; older versions go through [`Record::upgrade`].
    pub fn add_encoded(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        match bytes.split_first() {
            Some((&Bucket::VERSION, body)) => {
                let mut bins = [(0u8, 0u64); BINS];
                let mut used = 0;
                let head = read_v2(body, &mut |bin, n| {
                    if let Some(slot) = bins.get_mut(used) {
                        *slot = (bin, n);
                        used += 1;
                    }
                })?;
                if head.n[0] > 0 {
                    self.add_counts(&head);
                    for (bin, n) in bins.iter().take(used) {
                        self.add_bin(*bin, *n);
                    }
                }
                Ok(())
            }
            _ => {
                self.add_bucket(&crate::store::decode::<Bucket>(bytes)?);
                Ok(())
            }
        }
    }

    pub fn merge(&mut self, o: &Agg) {
        if o.total == 0 {
            return;
        }
        let n = [o.total, o.success, o.error, o.timeout, o.cancelled, o.sum_ms, o.min_ms, o.max_ms];
        self.add_counts(&Head { n, last_at: o.last_at.unwrap_or(0) });
        for (slot, n) in self.hist.iter_mut().zip(&o.hist) {
            *slot += n;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{decode, encode};

    fn sample() -> Bucket {
        Bucket {
            total: 5,
            success: 3,
            error: 1,
            timeout: 1,
            cancelled: 0,
            sum_ms: 1010,
            min_ms: 1,
            max_ms: 1000,
            last_at: 1_750_000_123,
            hist: vec![(1, 2), (3, 2), (42, 1)],
        }
    }

    #[test]
    fn buckets_round_trip_in_the_binary_body() {
        let b = sample();
        let bytes = encode(&b).unwrap();
        assert_eq!(bytes[0], 2);
        assert!(bytes.len() < 30, "{}", bytes.len());
        assert_eq!(decode::<Bucket>(&bytes).unwrap(), b);
        let mut direct = Agg::default();
        direct.add_encoded(&bytes).unwrap();
        let mut via = Agg::default();
        via.add_bucket(&b);
        assert_eq!(direct, via);
    }

    #[test]
    fn version_1_json_buckets_still_read() {
        // Exactly what the previous version wrote: version byte 1, then the JSON body.
        let v1 = br#"{"n":5,"ok":3,"er":1,"to":1,"ca":0,"sum":1010,"min":1,"max":1000,"last":1750000123,"h":[[1,2],[3,2],[42,1]]}"#;
        let mut bytes = vec![1u8];
        bytes.extend_from_slice(v1);
        assert_eq!(decode::<Bucket>(&bytes).unwrap(), sample());
        let mut a = Agg::default();
        a.add_encoded(&bytes).unwrap();
        assert_eq!((a.total, a.max_ms, a.hist[42]), (5, 1000, 1));
        // A v1 bucket updated by the writer is rewritten as v2 with the same content.
        let again = encode(&a.to_bucket()).unwrap();
        assert_eq!(decode::<Bucket>(&again).unwrap(), sample());
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        let bytes = encode(&sample()).unwrap();
        for cut in 1..bytes.len() {
            assert!(decode::<Bucket>(&bytes[..cut]).is_err(), "cut at {cut}");
            assert!(Agg::default().add_encoded(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = bytes;
        long.push(0);
        assert!(decode::<Bucket>(&long).is_err());
        assert!(decode::<Bucket>(&[9, 0]).is_err());
        assert!(Agg::default().add_encoded(&[]).is_err());
        // Too many histogram entries.
        let mut many = vec![2u8, 1, 1, 0, 0, 0, 1, 1, 1, 0, 100];
        many.extend(std::iter::repeat_n([0u8, 1], 100).flatten());
        assert!(decode::<Bucket>(&many).is_err());
    }

    #[test]
    fn merge_equals_adding_the_parts() {
        let mut a = Agg::default();
        a.add_bucket(&sample());
        let mut b = Agg::default();
        b.add_bucket(&Bucket {
            total: 1,
            success: 1,
            min_ms: 0,
            max_ms: 0,
            last_at: 5,
            hist: vec![(0, 1)],
            ..Bucket::default()
        });
        let mut sum = a.clone();
        sum.merge(&b);
        let mut want = Agg::default();
        want.add_bucket(&sample());
        want.add_bucket(&b.to_bucket());
        assert_eq!(sum, want);
        assert_eq!((sum.min(), sum.total, sum.last_at), (0, 6, Some(1_750_000_123)));
    }
}
