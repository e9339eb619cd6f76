//! Micro-benchmark of the protocol core alone: `Server::handle` with the in-memory store on one
//! thread, no I/O. For a small client set (fits in cache) and a large one (store lookups miss
//! the cache), prints ns per message (wall clock and this thread's CPU time) and messages/s:
//! - Solicit → Advertise (allocation computed, nothing committed),
//! - Request → Reply for clients binding for the first time (the store inserts),
//! - Request → Reply for clients that already hold their binding (steady state, renew-like),
//! - Solicit → Advertise for bound clients.
//!
//! Run: `cargo bench --bench core` (release profile). Target: ≤ 500 ns per message.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Instant;

use common::*;
use xdhcp6::lease::memory::MemoryStore;
use xdhcp6::proto::Server;
use xdhcp6::wire::dhcpv6::{opt, MessageType as M};

fn duid(i: usize) -> Vec<u8> {
    let mut d = vec![0, 1, 0, 1, 0x5e, 0x11, 0x22, 0x33];
    d.extend_from_slice(&(i as u64).to_be_bytes()[2..]);
    d
}

/// CPU time of this thread: on a shared machine, time spent descheduled is not ours.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID is always supported
    // on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn measure(name: &str, n: usize, mut f: impl FnMut()) {
    let (t, c) = (Instant::now(), thread_cpu_ns());
    f();
    let (wall, cpu) = (t.elapsed().as_nanos() as f64, (thread_cpu_ns() - c) as f64);
    println!(
        "{name:<36} {n:>8} msgs  wall {:>7.1} ns/msg  cpu {:>7.1} ns/msg  {:>10.0} msgs/s (cpu)",
        wall / n as f64,
        cpu / n as f64,
        n as f64 * 1e9 / cpu
    );
}

fn run(clients: usize, rounds: usize) {
    println!("-- {clients} clients");
    // A pool large enough that no client finds it exhausted.
    let mut cfg = config();
    cfg.links[0].address_pools[0].count = 1 << 24;
    let s = Server::new(&cfg, MemoryStore::new(), SERVER_DUID.to_vec());
    let oro = [opt::DNS_SERVERS, opt::DOMAIN_LIST];
    let solicits: Vec<Msg> = (0..clients)
        .map(|i| {
            Msg::new(M::Solicit, i as u32)
                .client(&duid(i))
                .elapsed()
                .oro(&oro)
                .ia_na(1, &[])
        })
        .collect();
    let requests: Vec<Msg> = (0..clients)
        .map(|i| {
            Msg::new(M::Request, i as u32)
                .client(&duid(i))
                .server(SERVER_DUID)
                .elapsed()
                .oro(&oro)
                .ia_na(1, &[])
        })
        .collect();
    let meta = multicast();
    let mut out = [0u8; 1500];
    let now = 1_700_000_000;
    let mut go = |msgs: &[Msg], rounds: usize| {
        for _ in 0..rounds {
            for m in msgs {
                black_box(
                    s.handle(black_box(m.bytes()), &meta, now, &mut out)
                        .unwrap(),
                );
            }
        }
    };
    measure("Solicit -> Advertise", clients * rounds, || {
        go(&solicits, rounds)
    });
    measure("Request -> Reply (new binding)", clients, || {
        go(&requests, 1)
    });
    measure(
        "Request -> Reply (existing binding)",
        clients * rounds,
        || go(&requests, rounds),
    );
    measure(
        "Solicit -> Advertise (bound client)",
        clients * rounds,
        || go(&solicits, rounds),
    );
}

/// The hot-path cost of keeping the stats: the same warm messages through `handle`, bare and with
/// exactly the bookkeeping a backend worker does (per packet: receive type, transmit type, drop
/// reason; per batch of `BATCH`: receive and transmit counts, two clock reads, one histogram
/// update for the batch's replies). Runs alternate so machine noise hits both; the best of
/// each is reported.
fn stats_overhead(clients: usize, rounds: usize, repeats: usize) {
    use xdhcp6::stats::{msg_type_slot, WorkerStats};
    const BATCH: usize = 32;
    println!("-- stats on/off, {clients} warm clients, Solicit + Request (existing binding), batches of {BATCH}");
    let mut cfg = config();
    cfg.links[0].address_pools[0].count = 1 << 24;
    let s = Server::new(&cfg, MemoryStore::new(), SERVER_DUID.to_vec());
    let msgs: Vec<Msg> = (0..clients)
        .flat_map(|i| {
            [
                Msg::new(M::Solicit, i as u32)
                    .client(&duid(i))
                    .elapsed()
                    .ia_na(1, &[]),
                Msg::new(M::Request, i as u32)
                    .client(&duid(i))
                    .server(SERVER_DUID)
                    .elapsed()
                    .ia_na(1, &[]),
            ]
        })
        .collect();
    let meta = multicast();
    let mut out = [0u8; 1500];
    let now = 1_700_000_000;
    let stats = WorkerStats::new();
    for m in &msgs {
        s.handle(m.bytes(), &meta, now, &mut out).unwrap();
    }
    let n = msgs.len() * rounds;
    let (mut best_off, mut best_on) = (f64::MAX, f64::MAX);
    for _ in 0..repeats {
        let c = thread_cpu_ns();
        for _ in 0..rounds {
            for batch in msgs.chunks(BATCH) {
                for m in batch {
                    black_box(
                        s.handle(black_box(m.bytes()), &meta, now, &mut out)
                            .unwrap(),
                    );
                }
            }
        }
        best_off = best_off.min((thread_cpu_ns() - c) as f64 / n as f64);
        let c = thread_cpu_ns();
        for _ in 0..rounds {
            for batch in msgs.chunks(BATCH) {
                let t0 = Instant::now();
                stats.rx.add(batch.len() as u64);
                let mut sent = 0;
                for m in batch {
                    let req = black_box(m.bytes());
                    stats.rx_by_type[msg_type_slot(req[0])].incr();
                    match s.handle(req, &meta, now, &mut out) {
                        Ok(r) => {
                            stats.tx_by_type[msg_type_slot(out[0])].incr();
                            sent += 1;
                            black_box(r);
                        }
                        Err(d) => stats.drop(d),
                    }
                }
                stats.tx.add(sent);
                stats
                    .latency_ns
                    .record_n(t0.elapsed().as_nanos() as u64, sent);
            }
        }
        best_on = best_on.min((thread_cpu_ns() - c) as f64 / n as f64);
    }
    println!(
        "stats off {best_off:>7.1} ns/msg   stats on {best_on:>7.1} ns/msg   overhead {:+.1} %",
        (best_on - best_off) * 100.0 / best_off
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it,
    // and then a short smoke run (the code paths, not the figures) is all that is wanted.
    if !std::env::args().any(|a| a == "--bench") {
        run(100, 2);
        stats_overhead(100, 2, 1);
        return;
    }
    let only_stats = std::env::args().any(|a| a == "stats");
    if !only_stats {
        run(1_000, 200);
        run(100_000, 3);
    }
    stats_overhead(1_000, 50, 9);
}
