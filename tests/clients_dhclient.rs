//! ISC dhclient against the server binary: an address (IA_NA), a prefix (IA_PD), and renewals.
//! Needs root and `dhclient` (scripts/install-deps.sh).

mod support;

use std::net::Ipv6Addr;
use std::time::Duration;

use support::clients::{dhclient, Events};
use support::config::{TestConfig, PD_LEN};
use support::netns::NetPair;
use support::server::ServerProcess;

fn bound<'a>(ev: &'a Events, key: &str) -> Option<&'a String> {
    ev.iter()
        .filter(|e| e.get("reason").is_some_and(|r| r == "BOUND6"))
        .find_map(|e| e.get(key))
}

fn renewed(ev: &Events, key: &str) -> usize {
    ev.iter()
        .filter(|e| e.get("reason").is_some_and(|r| r == "RENEW6") && e.contains_key(key))
        .count()
}

/// Short lifetimes so dhclient renews within seconds (T1 2 s, T2 4 s).
fn short_lived(net: &NetPair) -> TestConfig {
    TestConfig {
        preferred_lifetime: 8,
        valid_lifetime: 16,
        t1: Some(2),
        t2: Some(4),
        ..TestConfig::new(&net.server_if)
    }
}

#[test]
fn dhclient_gets_and_renews_an_address() {
    let net = NetPair::new();
    let server = ServerProcess::start(&net, &short_lived(&net));
    let mut client = dhclient(&net, &["-N"]);
    let ev = client
        .wait_events(Duration::from_secs(20), |ev| {
            renewed(ev, "new_ip6_address") >= 1
        })
        .unwrap_or_else(|| {
            panic!(
                "no address bound and renewed within 20 s; events {:#?}\n{}",
                client.events(),
                client.output()
            )
        });
    let addr: Ipv6Addr = bound(&ev, "new_ip6_address")
        .expect("BOUND6 with an address")
        .parse()
        .unwrap();
    let pool = support::config::POOL_FIRST.parse::<Ipv6Addr>().unwrap()
        ..=support::config::POOL_LAST.parse().unwrap();
    assert!(pool.contains(&addr), "{addr} is outside the pool");
    let renewed_addr = ev
        .iter()
        .filter(|e| e.get("reason").is_some_and(|r| r == "RENEW6"))
        .find_map(|e| e.get("new_ip6_address"))
        .unwrap();
    assert_eq!(
        renewed_addr.parse::<Ipv6Addr>().unwrap(),
        addr,
        "a renewal keeps the address"
    );
    // The stats file is rewritten every second: wait for it to catch up.
    let s = server.wait_stats(Duration::from_secs(3), |s| s.answered() >= 3);
    assert!(
        s.answered() >= 3,
        "Advertise, Reply, Reply to the Renew: {s:?}"
    );
}

#[test]
fn dhclient_gets_and_renews_a_prefix_with_an_address() {
    let net = NetPair::new();
    let _server = ServerProcess::start(&net, &short_lived(&net));
    let mut client = dhclient(&net, &["-N", "-P"]);
    let ev = client
        .wait_events(Duration::from_secs(20), |ev| {
            renewed(ev, "new_ip6_prefix") >= 1 && renewed(ev, "new_ip6_address") >= 1
        })
        .unwrap_or_else(|| {
            panic!(
                "no address and prefix bound and renewed within 20 s; events {:#?}\n{}",
                client.events(),
                client.output()
            )
        });
    let prefix = bound(&ev, "new_ip6_prefix").expect("BOUND6 with a prefix");
    let (net_addr, len) = prefix.split_once('/').expect("prefix/len");
    assert_eq!(len.parse::<u8>().unwrap(), PD_LEN);
    let p: Ipv6Addr = net_addr.parse().unwrap();
    let pool: xdhcp6::config::Ipv6Net = xdhcp6::config::Ipv6Net {
        addr: "2001:db8:100::".parse().unwrap(),
        len: 40,
    };
    assert!(
        pool.contains(p),
        "{prefix} is outside {}",
        support::config::PD_POOL
    );
    assert!(
        bound(&ev, "new_ip6_address").is_some(),
        "the address came too"
    );
}
