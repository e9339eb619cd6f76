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
    /// Record `n` observations of the same value (a batch that left together).
    #[inline]
    pub fn record_n(&self, value: u64, n: u64) {
        self.buckets[bucket_of(value)].add(n);
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

/// Message-type slots: DHCPv6 types are 1..=13 (RFC 8415 §7.3); slot 0 and any unknown type
/// share slot 0.
pub const MSG_TYPE_SLOTS: usize = 16;

/// The slot of a message type byte.
#[inline]
pub fn msg_type_slot(t: u8) -> usize {
    if (1..MSG_TYPE_SLOTS as u8).contains(&t) {
        t as usize
    } else {
        0
    }
}

/// Name of a message-type slot, as used in JSON and metrics.
pub fn msg_type_name(slot: usize) -> &'static str {
    const NAMES: [&str; MSG_TYPE_SLOTS] = [
        "other",
        "solicit",
        "advertise",
        "request",
        "confirm",
        "renew",
        "rebind",
        "reply",
        "release",
        "decline",
        "reconfigure",
        "information_request",
        "relay_forw",
        "relay_repl",
        "type14",
        "type15",
    ];
    NAMES.get(slot).copied().unwrap_or("other")
}

/// Why the backend itself (not the protocol core) could not hand a datagram to the core or send
/// its reply. `Copy`, indexes per-worker counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum IoDrop {
    /// The datagram was larger than the receive slot and arrived cut short.
    Truncated,
    /// No IPV6_PKTINFO came with the datagram, so its arrival interface is unknown.
    NoPacketInfo,
    /// Receiving failed with something other than "nothing to read".
    RecvError,
    /// The kernel refused to send a reply (no route, interface down, buffer full).
    SendError,
    /// A frame that is not a well-formed Ethernet/IPv6/UDP datagram (XDP backend).
    BadFrame,
    /// A frame whose UDP checksum does not verify (XDP backend).
    BadChecksum,
    /// A non-first IPv6 fragment (XDP backend; DHCPv6 never needs reassembly at these sizes).
    Fragment,
    /// No TX ring slot or UMEM frame for the reply (XDP backend).
    TxRingFull,
}

impl IoDrop {
    pub const COUNT: usize = 8;
    pub const ALL: [IoDrop; Self::COUNT] = [
        IoDrop::Truncated,
        IoDrop::NoPacketInfo,
        IoDrop::RecvError,
        IoDrop::SendError,
        IoDrop::BadFrame,
        IoDrop::BadChecksum,
        IoDrop::Fragment,
        IoDrop::TxRingFull,
    ];
    pub const fn index(self) -> usize {
        self as usize
    }
    pub const fn name(self) -> &'static str {
        match self {
            IoDrop::Truncated => "io_truncated",
            IoDrop::NoPacketInfo => "io_no_packet_info",
            IoDrop::RecvError => "io_recv_error",
            IoDrop::SendError => "io_send_error",
            IoDrop::BadFrame => "io_bad_frame",
            IoDrop::BadChecksum => "io_bad_checksum",
            IoDrop::Fragment => "io_fragment",
            IoDrop::TxRingFull => "io_tx_ring_full",
        }
    }
}

/// Everything one worker counts. Aligned to 128 bytes (two cache lines, the prefetch pair) so
/// workers never write into each other's lines.
#[derive(Debug)]
#[repr(align(128))]
pub struct WorkerStats {
    /// Frames or datagrams taken from the RX ring / socket.
    pub rx: Counter,
    /// Replies handed to the TX ring / socket.
    pub tx: Counter,
    /// Requests not answered, by [`crate::proto::DropReason`] index.
    pub drops: Box<[Counter]>,
    /// Datagrams the backend dropped before or after the core, by [`IoDrop`] index.
    pub io_drops: [Counter; IoDrop::COUNT],
    /// Received and sent messages by type (outermost message; relayed requests count as
    /// relay_forw, their inner type in `rx_inner_by_type`).
    pub rx_by_type: [Counter; MSG_TYPE_SLOTS],
    pub tx_by_type: [Counter; MSG_TYPE_SLOTS],
    /// XDP backend: times the fill ring was found empty, and ring occupancy gauges.
    pub fill_ring_empty: Counter,
    pub rx_ring_occupancy: Counter,
    pub tx_ring_occupancy: Counter,
    /// XDP backend: the kernel's statistics of this worker's AF_XDP sockets (XDP_STATISTICS,
    /// summed over its sockets, refreshed by the worker every second), and its TX kicks.
    pub xsk: XskCounters,
    /// Receive-to-transmit time of answered requests, nanoseconds.
    pub latency_ns: Histogram,
}

/// Where the kernel lost or starved an AF_XDP socket's packets (XDP_STATISTICS), plus the
/// `sendto` kicks the worker made. Packets the kernel drops never reach a worker, so these are
/// the only trace of them.
#[derive(Debug, Default)]
pub struct XskCounters {
    /// Received packets the kernel dropped other than for a full RX ring: mostly for want of
    /// a frame on the fill ring (which `rx_fill_ring_empty` counts as well).
    pub rx_dropped: Counter,
    /// Received packets dropped because the RX ring was full: the worker fell behind.
    pub rx_ring_full: Counter,
    /// Times the kernel found the fill ring empty: no frame to receive into.
    pub rx_fill_ring_empty: Counter,
    /// `sendto` kicks that found the TX ring empty (harmless: a kick with nothing to send).
    pub tx_ring_empty: Counter,
    /// Descriptors the kernel rejected as invalid, RX and TX together (a bug if nonzero).
    pub invalid_descs: Counter,
    /// TX kicks (`sendto`) made, and those that failed.
    pub tx_kicks: Counter,
    pub tx_kick_errors: Counter,
}

/// [`XskCounters`] as they travel over the control socket.
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct XskSnapshot {
    pub rx_dropped: u64,
    pub rx_ring_full: u64,
    pub rx_fill_ring_empty: u64,
    pub tx_ring_empty: u64,
    pub invalid_descs: u64,
    pub tx_kicks: u64,
    pub tx_kick_errors: u64,
}

impl XskCounters {
    pub fn snapshot(&self) -> XskSnapshot {
        XskSnapshot {
            rx_dropped: self.rx_dropped.get(),
            rx_ring_full: self.rx_ring_full.get(),
            rx_fill_ring_empty: self.rx_fill_ring_empty.get(),
            tx_ring_empty: self.tx_ring_empty.get(),
            invalid_descs: self.invalid_descs.get(),
            tx_kicks: self.tx_kicks.get(),
            tx_kick_errors: self.tx_kick_errors.get(),
        }
    }
}

impl XskSnapshot {
    fn add(&mut self, o: &XskSnapshot) {
        self.rx_dropped += o.rx_dropped;
        self.rx_ring_full += o.rx_ring_full;
        self.rx_fill_ring_empty += o.rx_fill_ring_empty;
        self.tx_ring_empty += o.tx_ring_empty;
        self.invalid_descs += o.invalid_descs;
        self.tx_kicks += o.tx_kicks;
        self.tx_kick_errors += o.tx_kick_errors;
    }

    /// Packets the kernel lost on the way into the sockets.
    pub fn rx_lost(&self) -> u64 {
        self.rx_dropped + self.rx_ring_full
    }
}

impl WorkerStats {
    pub fn new() -> Self {
        WorkerStats {
            rx: Counter::default(),
            tx: Counter::default(),
            drops: (0..crate::proto::DropReason::COUNT)
                .map(|_| Counter::default())
                .collect(),
            io_drops: Default::default(),
            rx_by_type: Default::default(),
            tx_by_type: Default::default(),
            fill_ring_empty: Counter::default(),
            rx_ring_occupancy: Counter::default(),
            tx_ring_occupancy: Counter::default(),
            xsk: XskCounters::default(),
            latency_ns: Histogram::default(),
        }
    }

    #[inline]
    pub fn drop(&self, reason: crate::proto::DropReason) {
        self.drops[reason.index()].incr();
    }

    #[inline]
    pub fn io_drop(&self, reason: IoDrop, n: u64) {
        self.io_drops[reason.index()].add(n);
    }

    /// A consistent-enough copy for reporting (each counter is read once; counters are
    /// monotonic so rates between two snapshots are never negative).
    pub fn snapshot(&self, worker: usize) -> WorkerSnapshot {
        let drops = crate::proto::DropReason::ALL
            .iter()
            .map(|r| (r.name().to_owned(), self.drops[r.index()].get()))
            .chain(
                IoDrop::ALL
                    .iter()
                    .map(|r| (r.name().to_owned(), self.io_drops[r.index()].get())),
            )
            .collect();
        let by_type = |c: &[Counter; MSG_TYPE_SLOTS]| {
            c.iter()
                .enumerate()
                .filter(|(_, c)| c.get() > 0)
                .map(|(i, c)| (msg_type_name(i).to_owned(), c.get()))
                .collect()
        };
        let buckets = self.latency_ns.snapshot();
        WorkerSnapshot {
            worker,
            rx: self.rx.get(),
            tx: self.tx.get(),
            drops,
            rx_by_type: by_type(&self.rx_by_type),
            tx_by_type: by_type(&self.tx_by_type),
            fill_ring_empty: self.fill_ring_empty.get(),
            rx_ring_occupancy: self.rx_ring_occupancy.get(),
            tx_ring_occupancy: self.tx_ring_occupancy.get(),
            xsk: self.xsk.snapshot(),
            latency_buckets: sparse(&buckets),
        }
    }
}

impl Default for WorkerStats {
    fn default() -> Self {
        Self::new()
    }
}

/// One worker's counters at one moment, as they travel over the control socket.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct WorkerSnapshot {
    pub worker: usize,
    pub rx: u64,
    pub tx: u64,
    /// Drops by reason: protocol-core reasons and backend (`io_*`) reasons.
    pub drops: std::collections::BTreeMap<String, u64>,
    pub rx_by_type: std::collections::BTreeMap<String, u64>,
    pub tx_by_type: std::collections::BTreeMap<String, u64>,
    pub fill_ring_empty: u64,
    pub rx_ring_occupancy: u64,
    pub tx_ring_occupancy: u64,
    /// XDP backend: the kernel's AF_XDP socket statistics and TX kicks (zero otherwise).
    #[serde(default)]
    pub xsk: XskSnapshot,
    /// Sparse latency histogram: (bucket index, count).
    pub latency_buckets: Vec<(u32, u64)>,
}

impl WorkerSnapshot {
    /// Total requests dropped for any reason.
    pub fn dropped(&self) -> u64 {
        self.drops.values().sum::<u64>()
    }

    /// Dense latency buckets.
    pub fn dense_latency(&self) -> Vec<u64> {
        let mut b = vec![0u64; LATENCY_BUCKETS];
        for &(i, n) in &self.latency_buckets {
            if let Some(slot) = b.get_mut(i as usize) {
                *slot = n;
            }
        }
        b
    }
}

/// Usage of one pool.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct PoolUsage {
    pub link: String,
    /// `2001:db8::100-2001:db8::1ff` for addresses, `2001:db8:100::/40 /56` for prefixes.
    pub pool: String,
    /// "na" or "pd".
    pub kind: String,
    pub total: u64,
    pub used: u64,
}

/// Failover figures, once failover is configured.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct FailoverSnapshot {
    pub state: String,
    pub partner_state: String,
    pub connected: bool,
    /// Lease updates queued for the partner and not yet acknowledged.
    pub unacked_updates: u64,
    /// Age of the oldest unacknowledged update, milliseconds.
    pub lag_ms: u64,
}

/// The whole server at one moment: what `xdhcp6 stats --json` prints.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct ServerSnapshot {
    pub version: String,
    pub uptime_secs: u64,
    /// Server monotonic clock when taken, nanoseconds; rates divide counter deltas by its delta.
    pub monotonic_ns: u64,
    pub backend: String,
    /// "zero-copy", "copy" or "" for the socket backend.
    pub xdp_mode: String,
    pub workers: Vec<WorkerSnapshot>,
    pub pools: Vec<PoolUsage>,
    pub leases_active: u64,
    /// Grants the lease store refused to record (full disk, I/O error: fail closed).
    #[serde(default)]
    pub lease_writes_refused: u64,
    pub failover: Option<FailoverSnapshot>,
}

impl ServerSnapshot {
    /// Sum of all workers.
    pub fn total(&self) -> WorkerSnapshot {
        let mut t = WorkerSnapshot {
            worker: usize::MAX,
            ..Default::default()
        };
        let mut lat = vec![0u64; LATENCY_BUCKETS];
        for w in &self.workers {
            t.rx += w.rx;
            t.tx += w.tx;
            t.fill_ring_empty += w.fill_ring_empty;
            t.rx_ring_occupancy += w.rx_ring_occupancy;
            t.tx_ring_occupancy += w.tx_ring_occupancy;
            t.xsk.add(&w.xsk);
            for (k, v) in &w.drops {
                *t.drops.entry(k.clone()).or_default() += v;
            }
            for (k, v) in &w.rx_by_type {
                *t.rx_by_type.entry(k.clone()).or_default() += v;
            }
            for (k, v) in &w.tx_by_type {
                *t.tx_by_type.entry(k.clone()).or_default() += v;
            }
            for &(i, n) in &w.latency_buckets {
                if let Some(b) = lat.get_mut(i as usize) {
                    *b += n;
                }
            }
        }
        t.latency_buckets = sparse(&lat);
        t
    }
}

/// Sparse form of dense buckets.
pub fn sparse(dense: &[u64]) -> Vec<(u32, u64)> {
    dense
        .iter()
        .enumerate()
        .filter(|(_, &n)| n > 0)
        .map(|(i, &n)| (i as u32, n))
        .collect()
}

/// Dense bucket-wise `cur - prev` (saturating, for a worker that restarted its counters).
pub fn latency_delta(cur: &WorkerSnapshot, prev: Option<&WorkerSnapshot>) -> Vec<u64> {
    let mut d = cur.dense_latency();
    if let Some(p) = prev {
        for &(i, n) in &p.latency_buckets {
            if let Some(b) = d.get_mut(i as usize) {
                *b = b.saturating_sub(n);
            }
        }
    }
    d
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
