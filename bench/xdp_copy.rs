//! Which copy the XDP worker should make (src/io/xdp/worker.rs): the request and its reply
//! live in the same UMEM frame, so either the request payload is copied to a scratch buffer
//! and the core writes the reply straight into the frame (`copy request`), or the core writes
//! into scratch and the reply is copied into the frame (`copy reply`). Both then write the
//! headers and the UDP checksum. Real core, real frames (Solicit → Advertise and
//! Request → Reply for bound clients, direct and relayed), one thread, thread CPU time.
//!
//! Run: `cargo bench --bench xdp_copy`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use common::*;
use xdhcp6::lease::memory::MemoryStore;
use xdhcp6::proto::{RxMeta, Server};
use xdhcp6::wire::dhcpv6::{opt, MessageType as M};
use xdhcp6::wire::frame::{
    build_udp6_frame, finish_reply, parse_udp6, reply_payload_offset, ReplyParams, Udp6Params,
    VlanTags,
};

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID always exists on
    // Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn frame(payload: &[u8], meta: &RxMeta) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let p = Udp6Params {
        dst_mac: [0x33, 0x33, 0, 1, 0, 2],
        src_mac: [2, 0, 0, 0, 0, 2],
        vlans: VlanTags::new(),
        src_ip: meta.src,
        dst_ip: meta.dst,
        hop_limit: 1,
        src_port: meta.src_port,
        dst_port: 547,
    };
    let n = build_udp6_frame(&mut buf, &p, payload).unwrap();
    buf.truncate(n);
    buf
}

/// A received frame and what the backend would tell the core about it.
type Frame = (Vec<u8>, RxMeta);

#[derive(Clone, Copy, PartialEq)]
enum Strategy {
    CopyRequest,
    CopyReply,
}

fn answer(
    s: &Server<MemoryStore>,
    strategy: Strategy,
    umem: &mut [u8],
    rx_len: usize,
    meta: &RxMeta,
    scratch: &mut [u8],
) -> usize {
    let req = parse_udp6(&umem[..rx_len]).unwrap();
    let at = reply_payload_offset(&req);
    let reply = match strategy {
        Strategy::CopyRequest => {
            let payload = req.payload(umem).unwrap();
            let request = &mut scratch[..payload.len()];
            request.copy_from_slice(payload);
            s.handle(request, meta, 1_700_000_000, &mut umem[at..1500])
                .unwrap()
        }
        Strategy::CopyReply => {
            let r = s
                .handle(
                    req.payload(umem).unwrap(),
                    meta,
                    1_700_000_000,
                    &mut scratch[..1500 - at],
                )
                .unwrap();
            umem[at..at + r.len].copy_from_slice(&scratch[..r.len]);
            r
        }
    };
    let params = ReplyParams {
        dst_ip: reply.dst,
        dst_port: reply.dst_port,
        ..ReplyParams::answering(&req, [2, 0, 0, 0, 0, 1], "fe80::1".parse().unwrap())
    };
    finish_reply(umem, &req, &params, reply.len).unwrap()
}

fn main() {
    let mut cfg = config();
    cfg.links[0].address_pools[0].count = 1 << 20;
    let s = Server::new(&cfg, MemoryStore::new(), SERVER_DUID.to_vec());
    let oro = [opt::DNS_SERVERS, opt::DOMAIN_LIST];
    let duid = |i: u32| {
        let mut d = vec![0, 1, 0, 1, 0x5e, 0x11, 0x22, 0x33, 0, 0];
        d.extend_from_slice(&i.to_be_bytes());
        d
    };
    let clients = 1000u32;
    let direct = multicast();
    let mut cases: Vec<(&str, Vec<Frame>)> = Vec::new();
    let solicit = |i| {
        Msg::new(M::Solicit, i)
            .client(&duid(i))
            .elapsed()
            .oro(&oro)
            .ia_na(1, &[])
    };
    let request = |i| {
        Msg::new(M::Request, i)
            .client(&duid(i))
            .server(SERVER_DUID)
            .elapsed()
            .oro(&oro)
            .ia_na(1, &[])
    };
    cases.push((
        "Solicit -> Advertise",
        (0..clients)
            .map(|i| (frame(solicit(i).bytes(), &direct), direct))
            .collect(),
    ));
    let mut out = [0u8; 1500];
    for i in 0..clients {
        // Bind every client, so the Requests below renew existing bindings.
        s.handle(request(i).bytes(), &direct, 1_700_000_000, &mut out)
            .unwrap();
    }
    cases.push((
        "Request -> Reply (bound)",
        (0..clients)
            .map(|i| (frame(request(i).bytes(), &direct), direct))
            .collect(),
    ));
    let rmeta = from_relay();
    cases.push((
        "Relayed Solicit -> Advertise",
        (0..clients)
            .map(|i| {
                let inner = solicit(i);
                let m = relay(inner.bytes(), 0, ip("2001:db8:1::1"), ip("fe80::99"), None);
                (frame(&m, &rmeta), rmeta)
            })
            .collect(),
    ));

    let mut scratch = vec![0u8; 4096];
    let mut umem = vec![0u8; 2048];
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it,
    // and then a short smoke run (the code paths, not the figures) is all that is wanted.
    let rounds = if std::env::args().any(|a| a == "--bench") {
        100
    } else {
        1
    };
    for (name, frames) in &cases {
        let mut cpu = [0u64; 2];
        // Interleaved, several times, so a busy neighbour hurts both strategies alike.
        for _ in 0..5 {
            for (k, strategy) in [Strategy::CopyRequest, Strategy::CopyReply]
                .into_iter()
                .enumerate()
            {
                let t = thread_cpu_ns();
                for _ in 0..rounds {
                    for (f, meta) in frames {
                        umem[..f.len()].copy_from_slice(f);
                        black_box(answer(&s, strategy, &mut umem, f.len(), meta, &mut scratch));
                    }
                }
                cpu[k] += thread_cpu_ns() - t;
            }
        }
        let n = (5 * rounds * frames.len()) as f64;
        let (f, meta) = &frames[0];
        umem[..f.len()].copy_from_slice(f);
        let reply_len = answer(
            &s,
            Strategy::CopyRequest,
            &mut umem,
            f.len(),
            meta,
            &mut scratch,
        );
        println!(
            "{name:<30} copy request {:>6.1} ns/msg   copy reply {:>6.1} ns/msg   (request {} B, reply {} B)",
            cpu[0] as f64 / n,
            cpu[1] as f64 / n,
            f.len() - 62,
            reply_len - 62,
        );
    }
}
