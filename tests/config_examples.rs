//! The example configurations shipped in docs/examples load and mean what they say.

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use xdhcp6::config::{load_file, Backend, Config, INFINITE};
use xdhcp6::lease::{IaType, Resource};

fn example(name: &str) -> Config {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "docs", "examples", name]
        .iter()
        .collect();
    load_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

#[test]
fn every_example_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            load_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(
        n >= 2,
        "expected at least minimal.toml and isp-edge.toml in {}",
        dir.display()
    );
}

#[test]
fn minimal_example() {
    let c = example("minimal.toml");
    assert_eq!(c.server.interfaces, ["eth0"]);
    assert_eq!(c.server.backend, Backend::Auto);
    assert_eq!(c.server.workers, 0);
    assert_eq!(c.server.lease_file, Path::new("/var/lib/xdhcp6/leases"));
    assert_eq!(c.server.duid_file, Path::new("/var/lib/xdhcp6/server-duid"));
    assert_eq!(
        c.server.control_socket,
        Path::new("/run/xdhcp6/control.sock")
    );
    assert_eq!(c.server.decline_quarantine_secs, 86_400);
    assert_eq!(c.links.len(), 1);
    let l = &c.links[0];
    assert_eq!(l.name, "lan");
    assert_eq!(l.interface.as_deref(), Some("eth0"));
    assert_eq!(l.subnet.addr, a("2001:db8:1::"));
    assert_eq!(l.subnet.len, 64);
    assert_eq!(l.address_pools.len(), 1);
    let p = l.address_pools[0];
    assert_ne!(p.id, 0);
    assert_eq!(
        (p.ia_type, p.base, p.len, p.count),
        (IaType::Na, a("2001:db8:1::1000"), 128, 0xf000)
    );
    assert!(l.prefix_pools.is_empty());
    assert_eq!((l.preferred_lifetime, l.valid_lifetime), (3600, 7200));
    assert_eq!((l.t1, l.t2), (None, None));
    assert!(!l.rapid_commit);
    assert_eq!(l.preference, None);
    assert!(l.options.dns_servers.is_empty());
    assert!(l.reservations.is_empty());
}

#[test]
fn isp_edge_example() {
    let c = example("isp-edge.toml");
    assert_eq!(c.links.len(), 4);

    let bng1 = c.link("bng1-residential").unwrap();
    assert_eq!(bng1.interface, None);
    assert!(bng1.interface_ids.is_empty());
    assert_eq!(
        (bng1.preferred_lifetime, bng1.valid_lifetime),
        (4 * 3600, 6 * 3600)
    );
    assert_eq!((bng1.t1, bng1.t2), (Some(7200), Some(11_520)));
    assert_eq!(bng1.preference, Some(128));
    assert!(!bng1.rapid_commit);
    let pd = bng1.prefix_pools[0];
    assert_eq!(
        (pd.ia_type, pd.base, pd.len, pd.count),
        (IaType::Pd, a("2001:db8:100::"), 56, 65_536)
    );
    assert_eq!(
        bng1.options.dns_servers,
        [a("2001:db8:53::53"), a("2001:db8:53::54")]
    );
    assert_eq!(
        bng1.options.domain_search,
        ["subscribers.example.net", "example.net"]
    );
    assert_eq!(bng1.options.information_refresh_time, Some(86_400));
    assert_eq!(
        (bng1.options.sol_max_rt, bng1.options.inf_max_rt),
        (Some(3600), Some(3600))
    );
    assert_eq!(bng1.reservations.len(), 2);
    let r = &bng1.reservations[0];
    assert_eq!(
        r.duid,
        [0, 1, 0, 1, 0x2a, 0x3b, 0x4c, 0x5d, 0, 0x11, 0x22, 0x33, 0x44, 0x55]
    );
    assert_eq!(r.address, Some(a("2001:db8:1000::100")));
    let rp = r.prefix.unwrap();
    assert!(
        pd.contains(Resource::prefix(rp.addr, rp.len)),
        "reserved /56 is one of the pool's"
    );
    assert_eq!(bng1.reservations[1].duid.len(), 18);

    let bng2 = c.link("bng2-residential").unwrap();
    assert_eq!(
        bng2.interface_ids,
        [b"ge-0/0/1.100".to_vec(), vec![0x42, 0xc0, 0xa8, 0x01, 0x01]]
    );
    assert!(bng2.rapid_commit);
    assert_eq!(bng2.prefix_pools.len(), 2);
    assert_eq!(bng2.prefix_pools[1].count, 1 << 16);
    // The link's own options replace the defaults key by key.
    assert_eq!(bng2.options.dns_servers, [a("2001:db8:2053::53")]);
    assert_eq!(bng2.options.domain_search, ["example.net"]);
    assert_eq!(bng2.options.information_refresh_time, Some(86_400));

    let biz = c.link("business-fibre").unwrap();
    assert_eq!(
        (biz.preferred_lifetime, biz.valid_lifetime),
        (7 * 86_400, 14 * 86_400)
    );
    assert_eq!(biz.preference, Some(255));
    assert_eq!(biz.prefix_pools[0].count, 4096);

    let mgmt = c.link("mgmt").unwrap();
    assert_eq!(mgmt.interface.as_deref(), Some("eth2"));
    assert!(mgmt.prefix_pools.is_empty());
    assert_ne!(mgmt.valid_lifetime, INFINITE);

    // Pool ids are unique across the configuration and never 0.
    let ids: Vec<u32> = c
        .links
        .iter()
        .flat_map(|l| l.address_pools.iter().chain(&l.prefix_pools).map(|p| p.id))
        .collect();
    let unique: std::collections::HashSet<u32> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
    assert!(!ids.contains(&0));
}
