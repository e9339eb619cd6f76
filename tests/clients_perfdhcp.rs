//! perfdhcp (Kea's load generator) against the server binary: four-message exchanges for
//! addresses, addresses with prefixes, and through one relay level, with no rejected leases and
//! no address handed to two clients. Needs root and `perfdhcp` (package kea-admin).

mod support;

use std::time::Duration;

use support::clients::{perf_num, perfdhcp};
use support::config::TestConfig;
use support::netns::NetPair;
use support::server::ServerProcess;

const CLIENTS: u64 = 200;

fn check(extra: &[&str]) {
    let net = NetPair::new();
    let server = ServerProcess::start(&net, &TestConfig::new(&net.server_if));
    let n = CLIENTS.to_string();
    let mut args = vec!["-r", "100", "-n", &n, "-R", &n];
    args.extend_from_slice(extra);
    let (stats, report) = perfdhcp(&net, &args, Duration::from_secs(30));
    for block in ["SOLICIT-ADVERTISE", "REQUEST-REPLY"] {
        assert_eq!(
            perf_num(&stats, block, "rejected leases", &report),
            0,
            "{block}: rejected leases\n{report}"
        );
        assert_eq!(
            perf_num(&stats, block, "non unique addresses", &report),
            0,
            "{block}: duplicates\n{report}"
        );
    }
    let sent = perf_num(&stats, "SOLICIT-ADVERTISE", "sent packets", &report);
    let done = perf_num(&stats, "REQUEST-REPLY", "received packets", &report);
    // perfdhcp stops the moment it has sent its last Solicit, so the last exchange or two can
    // be cut off on its side; everything else must complete.
    assert_eq!(sent, CLIENTS, "{report}");
    assert!(
        done + 2 >= CLIENTS,
        "only {done} of {CLIENTS} four-message exchanges completed\n{report}\n{}",
        server.log()
    );
    let s = server.stats();
    assert_eq!(s.io_dropped(), 0, "{s:?}");
}

#[test]
fn perfdhcp_addresses() {
    check(&[]);
}

#[test]
fn perfdhcp_addresses_and_prefixes() {
    check(&["-e", "address-and-prefix"]);
}

#[test]
fn perfdhcp_relayed() {
    check(&["-A", "1"]);
}
