//! Shared helpers for the protocol tests, the allocation test and the benchmark: a typed
//! configuration built in Rust (the TOML parser lives elsewhere) and a byte-level builder for
//! client and relay messages, so tests state exactly what goes on the wire.
#![allow(dead_code)]

use std::net::Ipv6Addr;
use std::path::PathBuf;

use xdhcp6::config::{Backend, Config, DhcpOptions, Ipv6Net, Link, Reservation, ServerConfig};
use xdhcp6::lease::memory::MemoryStore;
use xdhcp6::lease::{IaType, PoolSpec};
use xdhcp6::proto::{RxMeta, Server};
use xdhcp6::wire::dhcpv6::{opt, MessageType, Packet, RelayPacket, RelayRepr, Repr};

pub const SERVER_DUID: &[u8] = &[0, 1, 0, 1, 0x2a, 0x2b, 0x2c, 0x2d, 2, 0, 0, 0, 0, 1];
pub const CLIENT_DUID: &[u8] = &[0, 1, 0, 1, 0x11, 0x22, 0x33, 0x44, 2, 0, 0, 0, 0, 2];
pub const RESERVED_DUID: &[u8] = &[0, 3, 0, 1, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff];

pub fn ip(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// Link "lan" (2001:db8:1::/64, no interface: the default for direct clients) and link "other"
/// (2001:db8:2::/64 on interface eth1, relay Interface-ID "relay-if-2").
pub fn config() -> Config {
    let lan = Link {
        name: "lan".into(),
        subnet: Ipv6Net {
            addr: ip("2001:db8:1::"),
            len: 64,
        },
        interface: None,
        interface_ids: vec![b"relay-if-1".to_vec()],
        address_pools: vec![PoolSpec {
            id: 1,
            ia_type: IaType::Na,
            base: ip("2001:db8:1::1000"),
            len: 128,
            count: 4096,
        }],
        prefix_pools: vec![PoolSpec {
            id: 2,
            ia_type: IaType::Pd,
            base: ip("2001:db8:100::"),
            len: 56,
            count: 256,
        }],
        preferred_lifetime: 3600,
        valid_lifetime: 7200,
        t1: None,
        t2: None,
        rapid_commit: true,
        preference: Some(7),
        options: DhcpOptions {
            dns_servers: vec![ip("2001:db8::53"), ip("2001:db8::54")],
            domain_search: vec!["example.com".into(), "corp.example.net".into()],
            information_refresh_time: Some(3600),
            sol_max_rt: Some(600),
            inf_max_rt: Some(900),
        },
        reservations: vec![Reservation {
            duid: RESERVED_DUID.to_vec(),
            address: Some(ip("2001:db8:1::1234")),
            prefix: Some(Ipv6Net {
                addr: ip("2001:db8:100:ff00::"),
                len: 56,
            }),
        }],
    };
    let other = Link {
        name: "other".into(),
        subnet: Ipv6Net {
            addr: ip("2001:db8:2::"),
            len: 64,
        },
        interface: Some("eth1".into()),
        interface_ids: vec![b"relay-if-2".to_vec()],
        address_pools: vec![PoolSpec {
            id: 3,
            ia_type: IaType::Na,
            base: ip("2001:db8:2::100"),
            len: 128,
            count: 16,
        }],
        prefix_pools: vec![],
        preferred_lifetime: 1000,
        valid_lifetime: 2000,
        t1: Some(300),
        t2: Some(600),
        rapid_commit: false,
        preference: None,
        options: DhcpOptions::default(),
        reservations: vec![],
    };
    Config {
        server: ServerConfig {
            interfaces: vec!["eth0".into(), "eth1".into()],
            backend: Backend::Socket,
            workers: 1,
            duid_file: PathBuf::from("/nonexistent/duid"),
            lease_file: PathBuf::from("/nonexistent/leases"),
            control_socket: PathBuf::from("/nonexistent/ctl"),
            control_group: None,
            metrics_listen: None,
            decline_quarantine_secs: 3600,
            lease: Default::default(),
        },
        links: vec![lan, other],
        xdp: Default::default(),
    }
}

pub fn server() -> Server<MemoryStore> {
    Server::new(&config(), MemoryStore::new(), SERVER_DUID.to_vec())
}

/// A direct client on the default link, sending to ff02::1:2.
pub fn multicast() -> RxMeta {
    RxMeta {
        src: ip("fe80::2"),
        src_port: 546,
        dst: ip("ff02::1:2"),
        ifindex: 1,
    }
}

/// A relay agent's datagram, unicast to the server.
pub fn from_relay() -> RxMeta {
    RxMeta {
        src: ip("2001:db8:ffff::1"),
        src_port: 547,
        dst: ip("2001:db8::547"),
        ifindex: 1,
    }
}

/// Byte-level message builder.
#[derive(Clone)]
pub struct Msg(pub Vec<u8>);

impl Msg {
    pub fn new(t: MessageType, xid: u32) -> Msg {
        Msg::raw(t as u8, xid)
    }
    pub fn raw(t: u8, xid: u32) -> Msg {
        let x = xid.to_be_bytes();
        Msg(vec![t, x[1], x[2], x[3]])
    }
    pub fn opt(mut self, code: u16, data: &[u8]) -> Msg {
        self.0.extend_from_slice(&code.to_be_bytes());
        self.0.extend_from_slice(&(data.len() as u16).to_be_bytes());
        self.0.extend_from_slice(data);
        self
    }
    pub fn client(self, duid: &[u8]) -> Msg {
        self.opt(opt::CLIENTID, duid)
    }
    pub fn server(self, duid: &[u8]) -> Msg {
        self.opt(opt::SERVERID, duid)
    }
    /// IA_NA with the given T1/T2 and addresses (each with the given lifetimes).
    pub fn ia_na_full(self, iaid: u32, t1: u32, t2: u32, addrs: &[(Ipv6Addr, u32, u32)]) -> Msg {
        let mut d = Vec::new();
        d.extend_from_slice(&iaid.to_be_bytes());
        d.extend_from_slice(&t1.to_be_bytes());
        d.extend_from_slice(&t2.to_be_bytes());
        for (a, p, v) in addrs {
            d.extend_from_slice(&opt::IAADDR.to_be_bytes());
            d.extend_from_slice(&24u16.to_be_bytes());
            d.extend_from_slice(&a.octets());
            d.extend_from_slice(&p.to_be_bytes());
            d.extend_from_slice(&v.to_be_bytes());
        }
        self.opt(opt::IA_NA, &d)
    }
    pub fn ia_na(self, iaid: u32, addrs: &[Ipv6Addr]) -> Msg {
        let a: Vec<_> = addrs.iter().map(|a| (*a, 0, 0)).collect();
        self.ia_na_full(iaid, 0, 0, &a)
    }
    pub fn ia_ta(self, iaid: u32) -> Msg {
        self.opt(opt::IA_TA, &iaid.to_be_bytes())
    }
    pub fn ia_pd(self, iaid: u32, prefixes: &[(Ipv6Addr, u8)]) -> Msg {
        let mut d = Vec::new();
        d.extend_from_slice(&iaid.to_be_bytes());
        d.extend_from_slice(&[0; 8]);
        for (a, len) in prefixes {
            d.extend_from_slice(&opt::IAPREFIX.to_be_bytes());
            d.extend_from_slice(&25u16.to_be_bytes());
            d.extend_from_slice(&[0; 8]);
            d.push(*len);
            d.extend_from_slice(&a.octets());
        }
        self.opt(opt::IA_PD, &d)
    }
    pub fn oro(self, codes: &[u16]) -> Msg {
        let d: Vec<u8> = codes.iter().flat_map(|c| c.to_be_bytes()).collect();
        self.opt(opt::ORO, &d)
    }
    pub fn rapid(self) -> Msg {
        self.opt(opt::RAPID_COMMIT, &[])
    }
    pub fn elapsed(self) -> Msg {
        self.opt(opt::ELAPSED_TIME, &[0, 0])
    }
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Wrap `inner` in a Relay-forward.
pub fn relay(
    inner: &[u8],
    hop: u8,
    link: Ipv6Addr,
    peer: Ipv6Addr,
    iface: Option<&[u8]>,
) -> Vec<u8> {
    let mut v = vec![MessageType::RelayForw as u8, hop];
    v.extend_from_slice(&link.octets());
    v.extend_from_slice(&peer.octets());
    if let Some(i) = iface {
        v.extend_from_slice(&opt::INTERFACE_ID.to_be_bytes());
        v.extend_from_slice(&(i.len() as u16).to_be_bytes());
        v.extend_from_slice(i);
    }
    v.extend_from_slice(&opt::RELAY_MSG.to_be_bytes());
    v.extend_from_slice(&(inner.len() as u16).to_be_bytes());
    v.extend_from_slice(inner);
    v
}

/// Parse a (non-relay) reply.
pub fn parse(buf: &[u8]) -> Repr<'_> {
    Repr::parse(&Packet::new_checked(buf).expect("header")).expect("valid reply")
}

/// Unwrap Relay-reply levels, outermost first, returning each level and the inner message.
pub fn unwrap_relays(mut buf: &[u8]) -> (Vec<RelayRepr<'_>>, &[u8]) {
    let mut levels = Vec::new();
    while buf.first() == Some(&(MessageType::RelayRepl as u8)) {
        let r = RelayRepr::parse(&RelayPacket::new_checked(buf).unwrap()).unwrap();
        buf = r.relay_message.expect("relay message");
        levels.push(r);
    }
    (levels, buf)
}
