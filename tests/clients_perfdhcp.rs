//! perfdhcp (Kea's load generator) against the server binary: four-message exchanges for
//! addresses, addresses with prefixes, and through one relay level, with no rejected leases and
//! no address handed to two clients. Needs root and `perfdhcp` (package kea-admin).

mod support;

use support::clients::perfdhcp_exchanges;
use support::config::TestConfig;
use support::netns::NetPair;
use support::server::ServerProcess;

const CLIENTS: u64 = 200;

fn check(extra: &[&str]) {
    let net = NetPair::new();
    let server = ServerProcess::start(&net, &TestConfig::new(&net.server_if));
    perfdhcp_exchanges(&net, &server, CLIENTS, extra);
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
