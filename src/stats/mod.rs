//! Per-worker counters and latency histograms, kept without locks on the hot path.
//!
//! Each worker owns one [`WorkerStats`]: it is the only writer, so it bumps counters with a
//! relaxed load and store (no locked read-modify-write), and the block is aligned so that no two
//! workers share a cache line. Readers (the control socket, the metrics endpoint) take a
//! [`Snapshot`] at any time; rates and interval percentiles come from the difference of two
//! snapshots of monotonic counters.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Sub-buckets per power of two: 16 gives a relative error of at most 1/16 (6.25 %).
const SUB_BUCKET_BITS: u32 = 4;
const SUB_BUCKETS: usize = 1 << SUB_BUCKET_BITS;
/// Values are nanoseconds; 2^40 ns is about 18 minutes, far past any reply latency.
const MAX_EXPONENT: usize = 40;
/// Number of histogram buckets.
pub const LATENCY_BUCKETS: usize = (MAX_EXPONENT + 1) * SUB_BUCKETS;

/// The bucket a value falls in: values below `SUB_BUCKETS` get one bucket each; above, each power
/// of two is split into `SUB_BUCKETS` equal parts (a log-linear, HDR-style layout).
pub fn bucket_of(value: u64) -> usize {
    if value < SUB_BUCKETS as u64 {
        return value as usize;
    }
    let exp = 63 - value.leading_zeros(); // >= SUB_BUCKET_BITS
    let shift = exp - SUB_BUCKET_BITS;
    let sub = (value >> shift) as usize & (SUB_BUCKETS - 1);
    let idx = (exp - SUB_BUCKET_BITS + 1) as usize * SUB_BUCKETS + sub;
    idx.min(LATENCY_BUCKETS - 1)
}

/// The largest value that falls in bucket `idx` (what percentiles report: never an underestimate).
pub fn bucket_high(idx: usize) -> u64 {
    if idx < SUB_BUCKETS {
        return idx as u64;
    }
    let group = (idx / SUB_BUCKETS) as u32; // >= 1
    let sub = (idx % SUB_BUCKETS) as u64;
    let shift = group - 1;
    let low = (SUB_BUCKETS as u64 + sub) << shift;
    low + (1u64 << shift) - 1
}

/// A counter with one writer. `add` is a relaxed load and store, which is correct only because
/// exactly one thread ever writes it; any thread may read it.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.wrapping_add(n), Ordering::Relaxed);
    }
    #[inline]
    pub fn incr(&self) {
        self.add(1);
    }
    /// Set an absolute value (for gauges such as ring occupancy).
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A latency histogram with one writer.
#[derive(Debug)]
pub struct Histogram {
    buckets: Box<[Counter]>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..LATENCY_BUCKETS).map(|_| Counter::default()).collect(),
        }
    }
}

impl Histogram {
    #[inline]
    pub fn record(&self, value: u64) {
        self.buckets[bucket_of(value)].incr();
    }
    pub fn snapshot(&self) -> Vec<u64> {
        self.buckets.iter().map(Counter::get).collect()
    }
}

/// Percentile (0.0..=100.0) of a bucket array, reported as the bucket's upper bound; `None` when
/// the histogram is empty.
pub fn percentile(buckets: &[u64], pct: f64) -> Option<u64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((pct / 100.0) * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0u64;
    for (i, &n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(bucket_high(i));
        }
    }
    buckets.iter().rposition(|&n| n > 0).map(bucket_high)
}

/// Serializable summary used by the CLI and tests.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ns: Option<u64>,
    pub p99_ns: Option<u64>,
    pub p999_ns: Option<u64>,
    pub max_ns: Option<u64>,
}

impl LatencySummary {
    pub fn from_buckets(b: &[u64]) -> Self {
        LatencySummary {
            count: b.iter().sum(),
            p50_ns: percentile(b, 50.0),
            p99_ns: percentile(b, 99.0),
            p999_ns: percentile(b, 99.9),
            max_ns: percentile(b, 100.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_bounded() {
        let mut last = 0;
        for v in (0..1_000_000u64).step_by(7).chain([u64::MAX / 2, u64::MAX]) {
            let b = bucket_of(v);
            assert!(b >= last, "bucket order broke at {v}");
            assert!(b < LATENCY_BUCKETS);
            last = b;
            if v < 1 << MAX_EXPONENT {
                assert!(
                    bucket_high(b) >= v,
                    "upper bound {} below value {v}",
                    bucket_high(b)
                );
                // Relative error bound of the log-linear layout.
                assert!(
                    bucket_high(b) - v <= v / SUB_BUCKETS as u64 + 1,
                    "bucket too wide at {v}"
                );
            }
        }
    }

    #[test]
    fn percentiles_follow_the_data() {
        let h = Histogram::default();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let s = h.snapshot();
        let p50 = percentile(&s, 50.0).unwrap();
        let p99 = percentile(&s, 99.0).unwrap();
        let max = percentile(&s, 100.0).unwrap();
        assert!((500_000..=535_000).contains(&p50), "p50 {p50}");
        assert!((990_000..=1_060_000).contains(&p99), "p99 {p99}");
        assert!(max >= 1_000_000);
        assert_eq!(percentile(&vec![0; LATENCY_BUCKETS], 50.0), None);
    }

    #[test]
    fn counters_accumulate() {
        let c = Counter::default();
        c.incr();
        c.add(41);
        assert_eq!(c.get(), 42);
    }
}
