//! dhcpcd against the server binary: an address and a prefix in one exchange, and Rapid
//! Commit (RFC 8415 §18.3.1: Solicit with Rapid Commit answered by a committed Reply).
//! Needs root and `dhcpcd` (scripts/install-deps.sh).

mod support;

use std::time::Duration;

use support::clients::{dhcpcd, Events};
use support::config::TestConfig;
use support::netns::NetPair;
use support::server::ServerProcess;

fn bound6(ev: &Events) -> Option<&std::collections::BTreeMap<String, String>> {
    ev.iter()
        .find(|e| e.get("reason").is_some_and(|r| r == "BOUND6"))
}

fn run(
    rapid_server: bool,
    rapid_client: bool,
) -> (
    String,
    std::collections::BTreeMap<String, String>,
    support::server::Stats,
) {
    let net = NetPair::new();
    let cfg = TestConfig {
        rapid_commit: rapid_server,
        ..TestConfig::new(&net.server_if)
    };
    let server = ServerProcess::start(&net, &cfg);
    let extra: &[&str] = if rapid_client {
        &["option rapid_commit"]
    } else {
        &[]
    };
    let mut client = dhcpcd(&net, extra);
    let ev = client
        .wait_events(Duration::from_secs(25), |ev| bound6(ev).is_some())
        .unwrap_or_else(|| {
            panic!(
                "dhcpcd did not bind within 25 s; events {:#?}\n{}",
                client.events(),
                client.output()
            )
        });
    let b = bound6(&ev).unwrap().clone();
    let stats = server.wait_stats(Duration::from_secs(3), |s| s.answered() >= 1);
    (client.output(), b, stats)
}

/// The BOUND6 event names an address (IAID 1) and a prefix (IAID 2).
fn assert_address_and_prefix(b: &std::collections::BTreeMap<String, String>) {
    assert!(
        b.contains_key("new_dhcp6_ia_na1_ia_addr1"),
        "no address: {b:#?}"
    );
    assert!(
        b.contains_key("new_dhcp6_ia_pd1_prefix1"),
        "no prefix: {b:#?}"
    );
}

#[test]
fn dhcpcd_gets_an_address_and_a_prefix() {
    let (out, b, stats) = run(false, false);
    assert_address_and_prefix(&b);
    assert_eq!(
        b.get("new_dhcp6_ia_pd1_prefix1_length").map(String::as_str),
        Some("56")
    );
    assert!(
        out.contains("ADV"),
        "a four-message exchange shows the Advertise:\n{out}"
    );
    assert!(stats.answered() >= 2);
}

#[test]
fn dhcpcd_rapid_commit_skips_the_advertise() {
    let (out, b, stats) = run(true, true);
    assert_address_and_prefix(&b);
    assert!(out.contains("REPLY6 received"), "{out}");
    assert!(
        !out.contains("ADV"),
        "with Rapid Commit there is no Advertise:\n{out}"
    );
    assert_eq!(
        stats.answered(),
        1,
        "one Solicit, one committed Reply: {stats:?}"
    );
}
