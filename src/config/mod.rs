//! Configuration: TOML read with serde into raw structs (`raw`), then validated into the typed
//! [`Config`] below. Unknown keys are rejected and every error names the key and the reason.
//!
//! The typed form is what the rest of the server uses; it holds no strings that still need
//! parsing and no value that still needs checking.

use std::net::Ipv6Addr;
use std::path::PathBuf;

use crate::lease::PoolSpec;

/// Which packet path the server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Plain UDP sockets (works everywhere).
    Socket,
    /// XDP steering into AF_XDP sockets.
    Xdp,
    /// XDP where possible, otherwise sockets, saying why in the log.
    Auto,
}

/// An IPv6 prefix, host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Net {
    pub addr: Ipv6Addr,
    pub len: u8,
}

impl Ipv6Net {
    pub fn contains(&self, a: Ipv6Addr) -> bool {
        let mask = if self.len == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.len))
        };
        u128::from(a) & mask == u128::from(self.addr) & mask
    }
}

/// Whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub links: Vec<Link>,
}

/// Server-wide settings (`[server]`).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Interfaces to listen on (direct clients and relays arrive on these).
    pub interfaces: Vec<String>,
    pub backend: Backend,
    /// Worker threads; 0 means one per online core.
    pub workers: usize,
    /// Where the server DUID is kept once generated (DUID-LLT or DUID-UUID, RFC 8415 §11).
    pub duid_file: PathBuf,
    /// The lease file.
    pub lease_file: PathBuf,
    /// The control socket path.
    pub control_socket: PathBuf,
    /// How long a declined address stays out of circulation, seconds.
    pub decline_quarantine_secs: u32,
}

/// A link (RFC 8415 §4.2): a subnet the server assigns on, and how messages are matched to it.
#[derive(Debug, Clone)]
pub struct Link {
    pub name: String,
    /// The on-link prefix: an address is "appropriate for the link" if it is in here. A relay
    /// whose link-address is inside it selects this link (RFC 8415 §13.1).
    pub subnet: Ipv6Net,
    /// Direct (non-relayed) clients arriving on this interface use this link.
    pub interface: Option<String>,
    /// Relayed clients whose Interface-ID option equals one of these use this link.
    pub interface_ids: Vec<Vec<u8>>,
    /// IA_NA pools (len 128) and IA_PD pools (len < 128), with config-wide unique ids.
    pub address_pools: Vec<PoolSpec>,
    pub prefix_pools: Vec<PoolSpec>,
    pub preferred_lifetime: u32,
    pub valid_lifetime: u32,
    /// Renewal (T1) and rebinding (T2) times; `None` derives 0.5 and 0.8 of the preferred
    /// lifetime (RFC 8415 §21.4).
    pub t1: Option<u32>,
    pub t2: Option<u32>,
    /// Answer a Solicit carrying Rapid Commit with a committed Reply (RFC 8415 §18.3.1).
    pub rapid_commit: bool,
    /// Preference option value sent in Advertise (RFC 8415 §21.8); `None` sends none.
    pub preference: Option<u8>,
    pub options: DhcpOptions,
    pub reservations: Vec<Reservation>,
}

/// Configuration options handed to clients that ask for them in the ORO.
#[derive(Debug, Clone, Default)]
pub struct DhcpOptions {
    /// OPTION_DNS_SERVERS (23, RFC 3646).
    pub dns_servers: Vec<Ipv6Addr>,
    /// OPTION_DOMAIN_LIST (24, RFC 3646), as dotted names; validated as DNS names.
    pub domain_search: Vec<String>,
    /// OPTION_INFORMATION_REFRESH_TIME (32), seconds.
    pub information_refresh_time: Option<u32>,
    /// OPTION_SOL_MAX_RT (82), seconds.
    pub sol_max_rt: Option<u32>,
    /// OPTION_INF_MAX_RT (83), seconds.
    pub inf_max_rt: Option<u32>,
}

/// A host reservation: this DUID always gets this address and/or prefix on this link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub duid: Vec<u8>,
    pub address: Option<Ipv6Addr>,
    pub prefix: Option<Ipv6Net>,
}
