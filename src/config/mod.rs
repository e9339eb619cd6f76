//! Configuration: TOML read with serde into raw structs (`raw`), then validated into the typed
//! [`Config`] below. Unknown keys are rejected and every error names the key and the reason.
//!
//! The typed form is what the rest of the server uses; it holds no strings that still need
//! parsing and no value that still needs checking. `docs/configuration.md` documents every key.
//!
//! Entry points: [`load_file`] and [`parse_str`]; both return a [`ConfigError`] whose `Display`
//! is one line naming the key path (e.g. `link[1].address_pools[0].last`) and the reason.

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use crate::lease::PoolSpec;

mod error;
mod raw;
mod validate;
mod xdp;

pub use error::ConfigError;
pub use validate::{
    DEFAULT_CONTROL_SOCKET, DEFAULT_DECLINE_QUARANTINE_SECS, DEFAULT_DUID_FILE,
    DEFAULT_LEASE_COMMIT_WINDOW_USECS, DEFAULT_LEASE_FILE, DEFAULT_LEASE_FILE_GROWTH,
    DEFAULT_MAX_LEASES, DEFAULT_PREFERRED_LIFETIME_SECS, DEFAULT_VALID_LIFETIME_SECS,
    LEASE_FILE_GROWTH_UNIT, LEASE_FILE_SHARDS, MAX_LEASE_COMMIT_WINDOW_USECS,
    MAX_LEASE_FILE_GROWTH, MAX_MAX_LEASES, MIN_MAX_LEASES,
};
pub use xdp::{
    BusyPollSettings, RxChecksumPolicy, XdpAttachMode, XdpSettings, ZeroCopyPolicy,
    DEFAULT_XDP_BATCH, DEFAULT_XDP_IDLE_SPIN_USECS, MAX_XDP_BATCH,
};

/// The "infinity" lifetime or time value, 0xffffffff (RFC 8415 §7.7). Written `"infinite"` in
/// the file.
pub const INFINITE: u32 = u32::MAX;

/// Configuration files larger than this are refused unread: a config that size is a mistake.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Reads, parses and validates the configuration file at `path`. Relative paths in the file
/// (`duid_file`, `lease_file`, `control_socket`) are taken relative to the file's directory.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let io_err = |source| ConfigError::Io {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io_err)?.len();
    if size > MAX_FILE_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_owned(),
            size,
            limit: MAX_FILE_BYTES,
        });
    }
    let text = std::fs::read_to_string(path).map_err(io_err)?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    parse(&text, Some(base))
}

/// Parses and validates configuration text. Relative paths in it are kept as written
/// (relative to the process's working directory).
pub fn parse_str(s: &str) -> Result<Config, ConfigError> {
    parse(s, None)
}

fn parse(text: &str, base_dir: Option<&Path>) -> Result<Config, ConfigError> {
    let de = toml::Deserializer::parse(text).map_err(|e| {
        let (line, column) = error::line_col(text, e.span().map_or(0, |s| s.start));
        ConfigError::Syntax {
            line,
            column,
            message: error::one_line(e.message()),
        }
    })?;
    let raw: raw::RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let (line, column) = error::line_col(text, inner.span().map_or(0, |s| s.start));
        // "i64" is serde's word for what the file calls an integer.
        let reason =
            error::one_line(inner.message()).replace("expected i64", "expected an integer");
        ConfigError::Schema {
            key,
            reason,
            line,
            column,
        }
    })?;
    validate::validate(raw, base_dir)
}

impl Config {
    /// The link named `name`.
    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }
}

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
    /// `[xdp]`: settings of the XDP backend (defaults when the section is absent).
    pub xdp: XdpSettings,
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
    /// Group allowed to use the control socket besides root (mode 0660); `None` keeps it
    /// root-only (mode 0600).
    pub control_group: Option<String>,
    /// Where the Prometheus metrics endpoint listens; `None` (the default) turns it off.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// How long a declined address stays out of circulation, seconds (> 0, finite).
    pub decline_quarantine_secs: u32,
    /// How the lease file is written and sized (`lease_durability`, `max_leases` ...).
    pub lease: LeaseSettings,
}

/// When a granted lease counts as recorded (`server.lease_durability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseDurability {
    /// The record is in the shared file mapping before the reply leaves: survives `kill -9`
    /// of the server, not a power loss.
    Mapped,
    /// As `Mapped`, and the replies of a batch leave only after its grants are on disk
    /// (`fdatasync` shared by every batch that waits; the flusher gathers for `window_usecs`
    /// before syncing). Survives power loss, at the cost of reply latency.
    GroupCommit { window_usecs: u32 },
}

/// Lease file settings of `[server]`. All take effect only on restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseSettings {
    pub durability: LeaseDurability,
    /// The most records (≈ leases) the file may ever hold. Sizes an address-space reservation
    /// (96 bytes a record, virtual only); a full table refuses new grants (fail closed).
    pub max_leases: u64,
    /// Records a new lease file is allocated for at once, so serving up to that many leases
    /// never needs the file to grow (and cannot then run into a full disk).
    pub preallocate_leases: u64,
    /// Records a new lease file grows by at a time (a multiple of
    /// [`LEASE_FILE_GROWTH_UNIT`]); an existing file keeps the step it was created with.
    pub file_growth: u64,
}

impl Default for LeaseSettings {
    fn default() -> Self {
        LeaseSettings {
            durability: LeaseDurability::Mapped,
            max_leases: validate::DEFAULT_MAX_LEASES,
            preallocate_leases: 0,
            file_growth: validate::DEFAULT_LEASE_FILE_GROWTH,
        }
    }
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
    /// lifetime (RFC 8415 §21.4). Both are `None` or both `Some`. `Some(0)` (then both are 0)
    /// is sent as 0: the client chooses. Validated: 0 < T1 ≤ T2 ≤ preferred lifetime (unless
    /// that is infinite), or both 0. Lifetimes may be [`INFINITE`]; preferred ≤ valid, both > 0.
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
