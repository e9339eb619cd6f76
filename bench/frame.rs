//! Micro-benchmark of the frame codec on a typical 150-byte DHCPv6 frame: ns per
//! `parse_udp6`, per parse + checksum verification, and per `finish_reply`.
//! Run: `cargo bench --bench frame`. No harness: plain loops, best of several rounds.

use std::hint::black_box;
use std::net::Ipv6Addr;
use std::time::Instant;

use xdhcp6::wire::frame::*;

const ITERS: u32 = 2_000_000;
const ROUNDS: usize = 5;

/// `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it, and
/// then a short smoke run (the code paths, not the figures) is all that is wanted.
fn iters() -> u32 {
    if std::env::args().any(|a| a == "--bench") {
        ITERS
    } else {
        1_000
    }
}

fn best_ns_per_op(mut f: impl FnMut()) -> f64 {
    let iters = iters();
    (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(iters)
        })
        .fold(f64::INFINITY, f64::min)
}

fn frame(vlans: &[VlanTag], payload_len: usize) -> Vec<u8> {
    let all_dhcp = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
    let params = Udp6Params {
        dst_mac: ipv6_multicast_mac(&all_dhcp),
        src_mac: [0x00, 0x11, 0x22, 0x33, 0x44, 0x55],
        vlans: VlanTags::from_slice(vlans).expect("at most two tags"),
        src_ip: "fe80::211:22ff:fe33:4455".parse().expect("valid address"),
        dst_ip: all_dhcp,
        hop_limit: 1,
        src_port: 546,
        dst_port: 547,
    };
    let payload: Vec<u8> = (0..payload_len).map(|i| i as u8).collect();
    let mut buf = vec![0u8; 2048];
    let len = build_udp6_frame(&mut buf, &params, &payload).expect("fits");
    buf.truncate(len);
    buf
}

fn main() {
    let cases = [
        ("untagged", frame(&[], 88)),
        (
            "q-in-q",
            frame(
                &[
                    VlanTag::new(TPID_8021AD, 100),
                    VlanTag::new(TPID_8021Q, 200),
                ],
                80,
            ),
        ),
    ];
    for (name, bytes) in &cases {
        let req = parse_udp6(bytes).expect("valid frame");
        let parse = best_ns_per_op(|| {
            black_box(parse_udp6(black_box(bytes)).ok());
        });
        let verify = best_ns_per_op(|| {
            let f = parse_udp6(black_box(bytes));
            black_box(f.and_then(|f| verify_udp6_checksum(bytes, &f)).ok());
        });

        let mut buf = [0u8; 2048];
        buf[..bytes.len()].copy_from_slice(bytes);
        let params = ReplyParams::answering(&req, [2, 0, 0, 0, 0, 1], "fe80::1".parse().unwrap());
        let reply_len = req.payload_len;
        let finish = best_ns_per_op(|| {
            black_box(finish_reply(black_box(&mut buf), black_box(&req), &params, reply_len).ok());
        });
        println!(
            "frame/{name} ({} bytes): parse_udp6 {parse:.1} ns, parse+verify_checksum {verify:.1} ns, \
             finish_reply {finish:.1} ns",
            bytes.len()
        );
    }
}
