//! Lease table benchmarks (see docs/benchmarks.md, "Lease table").
//!
//! `cargo bench --bench lease -- [--sizes 1000000,10000000] [--dir DIR] [--cold] [--group-only | --no-group]
//!   [--only LABEL[+LABEL],…] [--repeat R]`
//!
//! For each size N: allocate N new bindings (one core), then random lookup-and-renew (one
//! core), file and resident bytes per lease, reopen time; then group-commit throughput and the
//! latency it adds.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xdhcp6::lease::table::{Durability, LeaseTable, TableConfig};
use xdhcp6::lease::{
    AllocRequest, BindingKey, IaType, LeaseStore, Lifetimes, NoReservations, PoolSpec,
};

const LT: Lifetimes = Lifetimes {
    preferred: 3600,
    valid: 7200,
};

fn pool() -> PoolSpec {
    PoolSpec {
        id: 1,
        ia_type: IaType::Na,
        base: "2001:db8::".parse().unwrap(),
        len: 128,
        count: 1 << 48,
    }
}

/// A DUID-LLT (14 bytes) with the client number in its link-layer address.
fn duid(buf: &mut [u8; 14], i: u64) -> &[u8] {
    buf[..8].copy_from_slice(&[0, 1, 0, 1, 0x2a, 0x3b, 0x4c, 0x5d]);
    buf[8..].copy_from_slice(&i.to_be_bytes()[2..]);
    &buf[..]
}

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Minor page faults of this process so far (first touches and write-protect faults of the
/// file mapping after write-back).
fn minor_faults() -> u64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    s.rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .nth(7)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// User + system CPU time of this process.
fn cpu_time() -> Duration {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = s
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10) // USER_HZ = 100
}

fn cfg(path: &Path, n: u64, durability: Durability) -> TableConfig {
    TableConfig {
        shards: 64,
        // Grown on demand (pre-sizing with `initial_records` trades file bytes for no growth).
        initial_records: 0,
        max_records: n * 2 + 1_000_000,
        durability,
        ..TableConfig::new(path)
    }
}

/// The grant request of a new client (IAID 1) in `pool`.
fn new_client<'a>(duid: &'a [u8], pool: &'a PoolSpec) -> AllocRequest<'a> {
    AllocRequest {
        key: BindingKey {
            duid,
            iaid: 1,
            ia_type: IaType::Na,
        },
        pool,
        hint: None,
        reserved: &NoReservations,
        lifetimes: LT,
        now: 1_000_000,
    }
}

/// `--only SUBSTR[,SUBSTR…]`: run only the measurements whose label contains one of them
/// (`A+B`: both; e.g. `allocate_many(256)+preallocated`).
static ONLY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Whether `--only` (if given) selects `label`: one of its comma-separated items is in the
/// label, an item `a+b` when both `a` and `b` are.
fn selected(label: &str) -> bool {
    ONLY.get().is_none_or(|only| {
        only.split(',')
            .any(|item| item.split('+').all(|part| label.contains(part)))
    })
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn per_sec(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// `--repeat R`: run each renew/lookup measurement R times and print the median (the VM's
/// run-to-run spread is ±25 %: one run is not a figure).
static REPEAT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// Runs `f` once, printing ops/s by wall clock and by this process's CPU time (the VM is
/// shared: CPU time shows what one core does when it is not taken by others).
fn timed(label: &str, ops: u64, f: impl FnOnce()) {
    let mut f = Some(f);
    timed_repeat(label, ops, 1, || (f.take().expect("run once"))());
}

/// [`timed`] `--repeat` times (once when not given): each run's figures, then the median run.
fn timed_n(label: &str, ops: u64, f: impl FnMut()) {
    timed_repeat(label, ops, *REPEAT.get().unwrap_or(&1), f);
}

fn timed_repeat(label: &str, ops: u64, runs: usize, mut f: impl FnMut()) {
    // Allocation fills the table every other measurement needs.
    if !selected(label) && !label.contains("allocate-new") {
        return;
    }
    timed_runs(label, ops, runs, || (), |()| f());
}

/// [`timed_repeat`] with an untimed `setup` before each run, whose result the run gets and
/// which is dropped, untimed, after it.
fn timed_runs<S>(
    label: &str,
    ops: u64,
    runs: usize,
    mut setup: impl FnMut() -> S,
    mut f: impl FnMut(&S),
) {
    let mut walls = Vec::with_capacity(runs);
    for _ in 0..runs {
        let state = setup();
        let cpu0 = cpu_time();
        let faults0 = minor_faults();
        let start = Instant::now();
        f(&state);
        let wall = start.elapsed();
        let cpu = cpu_time() - cpu0;
        println!(
            "{label:<44} {:>10.0} ops/s wall ({:.0} ns/op); {:>10.0} ops per CPU-second; {} page faults",
            per_sec(ops, wall),
            wall.as_nanos() as f64 / ops as f64,
            per_sec(ops, cpu.max(Duration::from_millis(10))),
            minor_faults() - faults0
        );
        walls.push(wall);
        drop(state);
    }
    if runs > 1 {
        walls.sort();
        println!(
            "{label:<44} median {:>10.0} ops/s wall over {runs} runs (min {:.0}, max {:.0})",
            per_sec(ops, walls[runs / 2]),
            per_sec(ops, walls[runs - 1]),
            per_sec(ops, walls[0]),
        );
    }
}

fn bench_size(dir: &Path, n: u64, cold: bool) {
    // `--only allocate_many` (or `--only preallocated`): those lines need no filled table.
    if ONLY.get().is_some_and(|only| {
        only.split(',')
            .all(|o| o.starts_with("allocate_many") || o.starts_with("preallocated"))
    }) {
        return;
    }
    let path = dir.join(format!("bench-{n}.leases"));
    let _ = std::fs::remove_file(&path);
    let pool = pool();
    let rss0 = rss_bytes();
    let t = LeaseTable::open(cfg(&path, n, Durability::Mapped)).unwrap();
    let mut buf = [0u8; 14];

    // Allocate-new: every call creates a binding (hash candidate, resource check, record
    // write, two index inserts).
    timed(&format!("N={n}: allocate-new"), n, || {
        for i in 0..n {
            let d = duid(&mut buf, i);
            let req = new_client(d, &pool);
            t.allocate(&req, true).unwrap();
        }
    });

    // Lookup-and-renew at random the way the core did it before `renew`: lookup, then bind
    // the same address with a new cltt.
    let ops = n.min(4_000_000);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let renew = |rng: &mut Rng, buf: &mut [u8; 14], set: u64| {
        for k in 0..ops {
            let i = rng.next() % set;
            let d = duid(buf, i);
            let key = BindingKey {
                duid: d,
                iaid: 1,
                ia_type: IaType::Na,
            };
            let l = t.lookup(&key, &pool, 1_000_001).unwrap();
            t.bind(&key, 1, l.resource, LT, 1_000_001 + k).unwrap();
        }
    };
    timed_n(&format!("N={n}: lookup+renew, random clients"), ops, || {
        renew(&mut rng, &mut buf, n)
    });
    // Over a hot set of 16 Ki clients (fits in cache): the CPU cost of the operation itself.
    timed(
        &format!("N={n}: lookup+renew, hot 16 Ki clients"),
        ops,
        || renew(&mut rng, &mut buf, n.min(16 * 1024)),
    );
    // The same over batches of 32 keys (an RX batch): `lookup_many` hashes the batch and
    // prefetches its buckets and records, then each client is renewed.
    timed(
        &format!("N={n}: lookup_many(32)+renew, random"),
        ops,
        || {
            let mut bufs = [[0u8; 14]; 32];
            let mut out = [None; 32];
            let mut k = 0;
            while k < ops {
                for b in bufs.iter_mut() {
                    let i = rng.next() % n;
                    duid(b, i);
                }
                let keys: Vec<BindingKey<'_>> = bufs
                    .iter()
                    .map(|b| BindingKey {
                        duid: &b[..],
                        iaid: 1,
                        ia_type: IaType::Na,
                    })
                    .collect();
                t.lookup_many(&keys, &pool, 1_000_001, &mut out);
                for (key, l) in keys.iter().zip(&out) {
                    t.bind(key, 1, l.unwrap().resource, LT, 1_000_001 + k)
                        .unwrap();
                    k += 1;
                }
            }
        },
    );
    // Lookup-and-renew as one call (what the server does for a Renew): one hash, one lock,
    // one index probe, the record rewritten in place.
    let renew_one = |rng: &mut Rng, buf: &mut [u8; 14], set: u64| {
        for _ in 0..ops {
            let i = rng.next() % set;
            let key = BindingKey {
                duid: duid(buf, i),
                iaid: 1,
                ia_type: IaType::Na,
            };
            t.renew(&key, &pool, LT, 1_000_002).unwrap().unwrap();
        }
    };
    timed_n(&format!("N={n}: renew, random clients"), ops, || {
        renew_one(&mut rng, &mut buf, n)
    });
    timed_n(&format!("N={n}: renew, hot 16 Ki clients"), ops, || {
        renew_one(&mut rng, &mut buf, n.min(16 * 1024))
    });
    // Batches of renewals (64: an RX batch; 256: a renew storm drained from several
    // batches): `renew_many` hashes the batch, prefetches its index buckets and records, then
    // renews the clients shard by shard.
    renew_batched::<64>(&t, &pool, n, n, ops, &mut rng);
    renew_batched::<256>(&t, &pool, n, n, ops, &mut rng);
    renew_batched::<1024>(&t, &pool, n, n, ops, &mut rng);
    // The same over 256 clients (all in cache): the CPU cost of the batched renewal itself.
    renew_batched::<256>(&t, &pool, n, n.min(256), ops, &mut rng);
    timed_n(&format!("N={n}: lookup, random clients"), ops, || {
        for _ in 0..ops {
            let i = rng.next() % n;
            let d = duid(&mut buf, i);
            let key = BindingKey {
                duid: d,
                iaid: 1,
                ia_type: IaType::Na,
            };
            std::hint::black_box(t.lookup(&key, &pool, 1_000_001));
        }
    });
    // Background reclaim: one pass over a table where no binding is due (the steady state of
    // a server whose clients renew), the cost the housekeeping thread pays per slot.
    timed_n(
        &format!("N={n}: reclaim pass, nothing due (slots)"),
        n,
        || {
            let r = t.reclaim(1_000_002, n);
            assert_eq!((r.examined, r.expired + r.freed), (n, 0));
        },
    );

    let st = t.stats();
    let rss = rss_bytes().saturating_sub(rss0);
    let file_len = std::fs::metadata(&path).unwrap().len();
    println!(
        "N={n}: file {:.1} B/lease ({} MiB, slots {}), RSS {:.1} B/lease (index+free lists {:.1} B/lease)",
        file_len as f64 / n as f64,
        file_len >> 20,
        st.slots,
        rss as f64 / n as f64,
        st.index_bytes as f64 / n as f64
    );
    drop(t);

    if cold {
        let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
    }
    let start = Instant::now();
    let cpu0 = cpu_time();
    let t = LeaseTable::open(cfg(&path, n, Durability::Mapped)).unwrap();
    let open = start.elapsed();
    let open_cpu = cpu_time() - cpu0;
    println!(
        "N={n}: open {:.2} s wall, {:.2} s CPU (user+sys, all threads)",
        open.as_secs_f64(),
        open_cpu.as_secs_f64()
    );
    assert_eq!(t.len(), n);
    let rss_reopen = rss_bytes().saturating_sub(rss0);
    let st = t.stats();
    println!(
        "N={n}: after reopen: RSS {:.1} B/lease (indexes+free lists {:.1} B/lease)",
        rss_reopen as f64 / n as f64,
        st.index_bytes as f64 / n as f64
    );
    println!(
        "N={n}: open {:.2} s ({} records, {} corrupt){}",
        open.as_secs_f64(),
        t.open_report().records,
        t.open_report().corrupt,
        if cold {
            " [cold cache]"
        } else {
            " [warm cache]"
        }
    );
    drop(t);
    let _ = std::fs::remove_file(&path);
}

/// Allocate-new in batches (the new clients of an RX batch, or of several), each into a fresh
/// file as the single-call line; then one at a time and batched into a table preallocated for
/// N (`preallocate_leases`): no file or index growth while it fills, what a server sized for
/// its subscribers does at any fill level.
fn allocate_lines(dir: &Path, n: u64) {
    allocate_batched::<32>(dir, n, false);
    allocate_batched::<256>(dir, n, false);
    allocate_batched::<1>(dir, n, true);
    allocate_batched::<256>(dir, n, true);
}

/// Fill a fresh table with `n` new bindings through `allocate_many`, `B` requests a call;
/// `prealloc`: the table is opened preallocated for `n` records.
fn allocate_batched<const B: usize>(dir: &Path, n: u64, prealloc: bool) {
    // B = 1: one `allocate` call per grant (the same work without the batch).
    let call = if B == 1 {
        "allocate_many(1) = allocate".to_string()
    } else {
        format!("allocate_many({B})")
    };
    let label = format!(
        "N={n}: {call}, new{}",
        if prealloc { ", preallocated" } else { "" }
    );
    if !selected(&label) {
        return;
    }
    let path = dir.join(format!("bench-{n}-many.leases"));
    let pool = pool();
    // Each run (`--repeat`) fills a new table.
    let open = || {
        let _ = std::fs::remove_file(&path);
        let mut c = cfg(&path, n, Durability::Mapped);
        if prealloc {
            c.initial_records = n;
        }
        let start = Instant::now();
        let t = LeaseTable::open(c).unwrap();
        if prealloc {
            println!(
                "N={n}: open of a new file preallocated for N: {:.2} s",
                start.elapsed().as_secs_f64()
            );
        }
        t
    };
    let runs = *REPEAT.get().unwrap_or(&1);
    timed_runs(&label, n, runs, open, |t| {
        let mut bufs = [[0u8; 14]; B];
        let mut out: [Option<Result<_, _>>; B] = [None; B];
        let mut i = 0;
        while i < n {
            let m = (n - i).min(B as u64) as usize;
            for (j, b) in bufs[..m].iter_mut().enumerate() {
                duid(b, i + j as u64);
            }
            // Built in place (an array built and moved costs a 20 KiB copy per call).
            let reqs: Vec<AllocRequest<'_>> =
                bufs[..m].iter().map(|b| new_client(b, &pool)).collect();
            if B == 1 {
                out[0] = Some(t.allocate(&reqs[0], true));
            } else {
                t.allocate_many(&reqs[..m], &mut out[..m]);
            }
            for o in &out[..m] {
                assert!(matches!(o, Some(Ok(_))), "allocation failed: {o:?}");
            }
            i += m as u64;
        }
        assert_eq!(t.len(), n);
    });
    let _ = std::fs::remove_file(&path);
}

fn renew_batched<const B: usize>(
    t: &LeaseTable,
    pool: &PoolSpec,
    n: u64,
    set: u64,
    ops: u64,
    rng: &mut Rng,
) {
    let what = if set == n {
        "random".to_string()
    } else {
        format!("hot {set} clients")
    };
    timed_n(&format!("N={n}: renew_many({B}), {what}"), ops, || {
        let mut bufs = [[0u8; 14]; B];
        let mut out: [Option<Result<_, _>>; B] = [None; B];
        let mut k = 0;
        while k < ops {
            for b in bufs.iter_mut() {
                let i = rng.next() % set;
                duid(b, i);
            }
            let keys: [BindingKey<'_>; B] = std::array::from_fn(|j| BindingKey {
                duid: &bufs[j][..],
                iaid: 1,
                ia_type: IaType::Na,
            });
            t.renew_many(&keys, pool, LT, 1_000_003, &mut out);
            for o in &out {
                assert!(matches!(o, Some(Ok(_))), "renewal failed: {o:?}");
            }
            k += B as u64;
        }
    });
}

/// The memory ceiling of a random renew on this machine: the same accesses as `renew_many`
/// (an 8-byte index bucket, then the 96-byte record it names, read and written back) over
/// anonymous memory the size of the table's key index and records at `n` leases, batched and
/// prefetched the same way, with no lease logic at all.
fn memory_ceiling(n: u64, ops: u64, rng: &mut Rng, huge: bool) {
    const B: usize = 256;
    let what = if huge { "huge pages" } else { "4 KiB pages" };
    let label = format!("N={n}: memory ceiling (bucket + record, batched, {what})");
    if !selected(&label) {
        return;
    }
    let buckets = (n + n / 4) as usize;
    let mut index: Vec<u64> = Vec::with_capacity(buckets);
    let mut records: Vec<u8> = Vec::with_capacity(n as usize * 96);
    if huge {
        advise_huge(index.as_ptr() as usize, buckets * 8);
        advise_huge(records.as_ptr() as usize, n as usize * 96);
    }
    index.extend((0..buckets as u64).map(|i| fmix(i) % n));
    records.resize(n as usize * 96, 0);
    timed(&label, ops, || {
        let mut k = 0;
        let mut at = [0usize; B];
        while k < ops {
            for a in at.iter_mut() {
                *a = (rng.next() % buckets as u64) as usize;
                prefetch(index.as_ptr().wrapping_add(*a) as *const u8);
            }
            for a in at.iter_mut() {
                *a = index[*a] as usize * 96;
                prefetch(records.as_ptr().wrapping_add(*a));
                prefetch(records.as_ptr().wrapping_add(*a + 95));
            }
            for &a in &at {
                let r = &mut records[a..a + 96];
                r[44] = r[44].wrapping_add(1);
                r[60] = r[60].wrapping_add(1);
            }
            k += B as u64;
        }
    });
    std::hint::black_box(&records);
}

fn advise_huge(addr: usize, len: usize) {
    let start = (addr + 4095) & !4095;
    let end = (addr + len) & !4095;
    if end > start {
        // SAFETY: advice on memory this process owns (an allocation not yet touched).
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
}

fn fmix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch cannot fault and reads nothing architecturally.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

fn bench_group_commit(dir: &Path, threads: u64, batch: u64, secs: f64) {
    let path = dir.join("bench-group.leases");
    let _ = std::fs::remove_file(&path);
    let d = Durability::GroupCommit {
        batch_window: Duration::ZERO,
        max_interval: Duration::from_millis(50),
    };
    let t = Arc::new(LeaseTable::open(cfg(&path, 2_000_000, d)).unwrap());
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let hs: Vec<_> = (0..threads)
        .map(|th| {
            let t = t.clone();
            std::thread::spawn(move || {
                let pool = pool();
                let mut buf = [0u8; 14];
                let mut waits = Vec::new();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    for _ in 0..batch {
                        let d = duid(&mut buf, th << 40 | n);
                        n += 1;
                        t.allocate(&new_client(d, &pool), true).unwrap();
                    }
                    let w = Instant::now();
                    t.wait_durable(t.commit_ticket()).unwrap();
                    waits.push(w.elapsed());
                }
                (n, waits)
            })
        })
        .collect();
    let start = Instant::now();
    let mut total = 0;
    let mut waits = Vec::new();
    for h in hs {
        let (n, w) = h.join().unwrap();
        total += n;
        waits.extend(w);
    }
    let el = start.elapsed().max(Duration::from_secs_f64(secs));
    waits.sort();
    let pct = |p: f64| waits[((waits.len() - 1) as f64 * p) as usize].as_micros();
    println!(
        "group commit: {threads} threads, batch {batch}: {:.0} leases/s durable; added latency p50 {} us, p99 {} us, max {} us",
        per_sec(total, el),
        pct(0.5),
        pct(0.99),
        waits.last().unwrap().as_micros()
    );
    drop(t);
    let _ = std::fs::remove_file(&path);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it,
    // and then a short smoke run (the code paths, not the figures) is all that is wanted.
    let smoke = !args.iter().any(|a| a == "--bench");
    let default_sizes = if smoke { "20000" } else { "1000000,10000000" };
    let sizes: Vec<u64> = arg("--sizes")
        .unwrap_or_else(|| default_sizes.into())
        .split(',')
        .map(|s| s.parse().expect("size"))
        .collect();
    let dir =
        PathBuf::from(arg("--dir").unwrap_or_else(|| std::env::temp_dir().display().to_string()));
    let cold = args.iter().any(|a| a == "--cold");
    let only_group = args.iter().any(|a| a == "--group-only");
    let no_group = args.iter().any(|a| a == "--no-group");
    if let Some(only) = arg("--only") {
        let _ = ONLY.set(only);
    }
    if let Some(r) = arg("--repeat") {
        let _ = REPEAT.set(r.parse::<usize>().expect("--repeat N").max(1));
    }
    std::fs::create_dir_all(&dir).unwrap();
    if !only_group {
        for &n in &sizes {
            bench_size(&dir, n, cold);
        }
        // After every size: freeing these large buffers (the preallocated tables' indexes
        // too) raises the allocator's mmap threshold, which would inflate the resident
        // figures of a later size.
        for &n in &sizes {
            allocate_lines(&dir, n);
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for &n in &sizes {
            memory_ceiling(n, n.min(4_000_000), &mut rng, false);
            memory_ceiling(n, n.min(4_000_000), &mut rng, true);
        }
    }
    let secs = if smoke { 0.2 } else { 3.0 };
    for (threads, batch) in [(1, 1), (2, 1), (2, 32)] {
        if no_group {
            break;
        }
        bench_group_commit(&dir, threads, batch, secs);
    }
}
