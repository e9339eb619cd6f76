//! The hot path allocates nothing: with a counting global allocator, a warm client's Solicit,
//! Request, Renew and Release (direct and relayed) are handled with zero heap allocations.
//! Warm-up first: the in-memory store allocates when it first sees a new client or resource.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::*;
use xdhcp6::wire::dhcpv6::{opt, MessageType as M};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

// Only counts while COUNTING is set, and only on this test's thread (the test harness has its
// own threads; the single test below runs the measured section on one thread with no other
// tests in this binary).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn warm_client_exchanges_do_not_allocate() {
    let s = server();
    let oro = [opt::DNS_SERVERS, opt::DOMAIN_LIST, opt::SOL_MAX_RT];
    let sol = Msg::new(M::Solicit, 1)
        .client(CLIENT_DUID)
        .elapsed()
        .oro(&oro)
        .ia_na(1, &[])
        .ia_pd(2, &[]);
    let mut out = [0u8; 1500];
    // Warm-up: learn the address, bind it, release it (the store keeps the entries).
    let r = s.handle(sol.bytes(), &multicast(), 100, &mut out).unwrap();
    let addr = parse(&out[..r.len]).ia_na[0]
        .addresses()
        .next()
        .unwrap()
        .addr;
    let req = Msg::new(M::Request, 2)
        .client(CLIENT_DUID)
        .server(SERVER_DUID)
        .oro(&oro)
        .ia_na(1, &[addr])
        .ia_pd(2, &[]);
    let renew = Msg::new(M::Renew, 3)
        .client(CLIENT_DUID)
        .server(SERVER_DUID)
        .ia_na(1, &[addr])
        .ia_pd(2, &[]);
    let release = Msg::new(M::Release, 4)
        .client(CLIENT_DUID)
        .server(SERVER_DUID)
        .ia_na(1, &[addr]);
    let relayed = relay(
        req.bytes(),
        0,
        ip("2001:db8:1::1"),
        ip("fe80::2"),
        Some(b"port-1"),
    );
    let all: Vec<(&[u8], _)> = vec![
        (sol.bytes(), multicast()),
        (req.bytes(), multicast()),
        (renew.bytes(), multicast()),
        (release.bytes(), multicast()),
        (&relayed[..], from_relay()),
    ];
    for (m, meta) in &all {
        s.handle(m, meta, 200, &mut out).unwrap();
    }

    // The counter itself works.
    COUNTING.store(true, Ordering::SeqCst);
    drop(std::hint::black_box(Vec::<u8>::with_capacity(8)));
    COUNTING.store(false, Ordering::SeqCst);
    assert_eq!(ALLOCS.swap(0, Ordering::SeqCst), 1);

    COUNTING.store(true, Ordering::SeqCst);
    let mut handled = 0;
    for round in 0..100u64 {
        for (m, meta) in &all {
            let r = s.handle(m, meta, 300 + round, &mut out);
            handled += usize::from(r.is_ok());
        }
    }
    COUNTING.store(false, Ordering::SeqCst);
    assert_eq!(handled, 500);
    assert_eq!(
        ALLOCS.load(Ordering::SeqCst),
        0,
        "heap allocations on the hot path"
    );
}
