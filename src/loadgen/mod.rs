//! `xdhcp6 bench`: a DHCPv6 client emulator and load generator (RFC 8415 client side).
//!
//! It emulates up to billions of clients (in practice: as many as memory holds, 32 bytes
//! each plus the ownership map) that each have a DUID and IAIDs derived from their index, and
//! drives a server over a real interface through AF_XDP (raw frames, one socket per NIC queue
//! and core) or UDP sockets, open-loop at a target rate or searching for the highest rate the
//! server sustains (`--find-max`). Every reply is checked: transaction ID, client ID, server
//! ID, status codes, addresses and prefixes inside the configured pools, and no lease held by
//! two clients.
//!
//! Layout: [`clients`] (flat per-client state), [`msg`] (build and check messages),
//! [`ownership`] (who holds what), [`engine`] (one worker's loop, transport-agnostic),
//! [`xdp`] (AF_XDP transport on `crate::io::xdp`'s UMEM and rings), [`udp`] (socket
//! transport, the only `unsafe` here), [`report`].
//!
//! `--transport auto` (the default) uses AF_XDP when it can — an `--iface`, root (or
//! CAP_NET_ADMIN, CAP_BPF, CAP_NET_RAW, CAP_IPC_LOCK), and for unicast destinations the
//! server's MAC — and says in the report why it did not otherwise.
//!
//! ```text
//! xdhcp6-bench --iface veth0 --pool 2001:db8:1::/64 --scenario sarr --rate 5000 -d 10
//! xdhcp6-bench --iface veth0 --cores 2 --transport xdp --pool 2001:db8:1::/64 --find-max
//! xdhcp6-bench --relay 1 --server 2001:db8:ffff::2 --bind 2001:db8:ffff::1 \
//!              --pool 2001:db8:1::/64 --pd-pool 2001:db8:8000::/40,56 --ia both --find-max
//! ```

pub mod clients;
pub mod engine;
pub mod msg;
pub mod ownership;
pub mod pool;
pub mod reflector;
pub mod report;
pub mod responder;
pub mod udp;
pub mod xdp;

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::ValueEnum;

use crate::wire::dhcpv6::{ALL_DHCP_RELAY_AGENTS_AND_SERVERS, CLIENT_PORT, SERVER_PORT};
use crate::wire::frame::MacAddr;

use engine::{Clock, Ctx, Plan, Progress, Stats, Worker};
use msg::{RelayLevel, Wire, MAX_RELAY_LEVELS};
use ownership::Ownership;
use pool::{NaPool, PdPool, MAX_POOLS};
pub use report::{PhaseReport, Report, Trial};

/// Moves DHCPv6 payloads (UDP payloads) between the generator and the server.
pub trait Transport: Send {
    /// A buffer for the next outgoing payload; `None` when the batch is full (flush first).
    fn tx_slot(&mut self) -> Option<&mut [u8]>;
    /// Queue the first `len` bytes of the last slot.
    fn tx_commit(&mut self, len: usize);
    /// Send everything queued. Returns how many payloads could not be sent.
    fn flush(&mut self) -> u64;
    /// Hand received payloads to `f`; waits up to `wait` when none is ready.
    fn recv(&mut self, wait: Duration, f: &mut dyn FnMut(&[u8])) -> io::Result<usize>;
    /// Send errors so far, and the last one.
    fn tx_errors(&self) -> (u64, Option<String>);
    /// Transport-specific counters by name (summed over workers in the report).
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Solicit, Advertise, Request, Reply.
    #[value(name = "sarr", alias = "4msg")]
    FourMessage,
    /// Solicit with Rapid Commit, Reply.
    #[value(name = "rapid")]
    RapidCommit,
    /// Bind every client, then Renew over and over.
    Renew,
    /// Bind every client, then Rebind over and over.
    Rebind,
    /// Bind every client, then Release (and bind again when a released client comes up).
    Release,
    /// Information-Request, Reply (stateless).
    #[value(name = "info")]
    Information,
    /// Bind, then a mix: 60 % Renew, 10 % Rebind, 10 % Release, 10 % Information-Request,
    /// 10 % Solicit.
    Mix,
}

impl Scenario {
    pub const fn name(self) -> &'static str {
        match self {
            Scenario::FourMessage => "sarr",
            Scenario::RapidCommit => "rapid",
            Scenario::Renew => "renew",
            Scenario::Rebind => "rebind",
            Scenario::Release => "release",
            Scenario::Information => "info",
            Scenario::Mix => "mix",
        }
    }
    /// Scenarios that need bound clients first.
    pub const fn needs_bindings(self) -> bool {
        matches!(
            self,
            Scenario::Renew | Scenario::Rebind | Scenario::Release | Scenario::Mix
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IaMode {
    Na,
    Pd,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportKind {
    /// AF_XDP where it can (--iface given, privileges, server MAC known), else sockets.
    Auto,
    /// AF_XDP sockets, raw frames: one per NIC queue and core (queues 0..cores).
    Xdp,
    /// UDP sockets with recvmmsg/sendmmsg, one per core.
    #[value(name = "socket", alias = "udp")]
    Socket,
}

/// Hard limits that bound every run.
const MAX_DURATION_S: f64 = 86_400.0;
const MAX_RATE: u64 = 100_000_000;
const MAX_TRIALS: usize = 24;

#[derive(clap::Args, Debug, Clone)]
#[command(about = "DHCPv6 load generator: emulates many clients and validates every reply")]
pub struct Args {
    /// Interface to send on; direct clients multicast on it from its link-local address.
    #[arg(long, short = 'i')]
    pub iface: Option<String>,
    /// Server to send to: ADDR or [ADDR]:PORT. Default for direct clients: ff02::1:2 on
    /// --iface. Required with --relay.
    #[arg(long)]
    pub server: Option<String>,
    /// Local address for a worker's socket; repeat once per thread (replies are steered to
    /// workers by destination address). Default: --iface's link-local (direct) or any.
    #[arg(long = "bind")]
    pub bind: Vec<Ipv6Addr>,
    /// Local UDP port. Default: 546 (direct) or 547 (relayed: servers answer relays on 547).
    #[arg(long)]
    pub bind_port: Option<u16>,
    #[arg(long, value_enum, default_value = "sarr")]
    pub scenario: Scenario,
    /// Which IAs each client asks for.
    #[arg(long, value_enum, default_value = "na")]
    pub ia: IaMode,
    /// Relay levels between the clients and the server (0: direct clients).
    #[arg(long, default_value_t = 0)]
    pub relay: u8,
    /// Link-address of the relay nearest the clients. Default: the first pool's base.
    #[arg(long)]
    pub link_addr: Option<Ipv6Addr>,
    /// Interface-ID prefix sent by each relay (the level number is appended).
    #[arg(long, default_value = "xdhcp6-bench-")]
    pub interface_id: String,
    /// Enterprise number of the Remote-ID the innermost relay adds (its ID is the client index).
    #[arg(long, default_value_t = 32473)]
    pub remote_id_enterprise: u32,
    /// Number of emulated clients.
    #[arg(long, short = 'n', default_value_t = 10_000)]
    pub clients: u32,
    /// DUID namespace: runs with different seeds use disjoint DUIDs.
    #[arg(long, default_value_t = 0)]
    pub seed: u8,
    /// Exchanges started per second (open loop).
    #[arg(long, short = 'r', default_value_t = 1000)]
    pub rate: u64,
    /// Seconds to offer load.
    #[arg(long, short = 'd', default_value_t = 10.0)]
    pub duration: f64,
    /// Stop after starting this many exchanges.
    #[arg(long)]
    pub count: Option<u64>,
    /// Retransmission timeout in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub timeout_ms: u64,
    /// Retransmissions before an exchange counts as dropped.
    #[arg(long, default_value_t = 0)]
    pub retries: u8,
    /// Most exchanges in flight at once (all workers together).
    #[arg(long, default_value_t = 1_000_000)]
    pub max_inflight: usize,
    /// Search for the highest rate whose loss stays within --max-loss while the server keeps
    /// up (≥ 95 % of the offered exchanges complete before the trial's load stops).
    #[arg(long)]
    pub find_max: bool,
    /// Loss threshold for --find-max, in percent of offered exchanges.
    #[arg(long, default_value_t = 1.0)]
    pub max_loss: f64,
    /// First rate --find-max tries.
    #[arg(long, default_value_t = 1000)]
    pub start_rate: u64,
    /// Highest rate --find-max tries.
    #[arg(long, default_value_t = 10_000_000)]
    pub max_rate: u64,
    /// Seconds per --find-max or --sweep trial.
    #[arg(long, default_value_t = 3.0)]
    pub trial_secs: f64,
    /// Run one trial at each of these rates (comma-separated), for rate/latency curves.
    #[arg(long, value_delimiter = ',')]
    pub sweep: Vec<u64>,
    /// Rate of the preparation pass that binds every client (default: --rate).
    #[arg(long)]
    pub prepare_rate: Option<u64>,
    /// Skip the preparation pass of renew/rebind/release/mix.
    #[arg(long)]
    pub no_prepare: bool,
    /// IA_NA pool replies must come from (repeatable): PREFIX/LEN, LEN ≥ 64.
    #[arg(long = "pool")]
    pub pools: Vec<NaPool>,
    /// IA_PD pool (repeatable): PREFIX/LEN,DELEGATED_LEN.
    #[arg(long = "pd-pool")]
    pub pd_pools: Vec<PdPool>,
    #[arg(long, value_enum, default_value = "auto")]
    pub transport: TransportKind,
    /// Worker threads, one per core. AF_XDP: one socket per queue 0..N (veth needs
    /// `ethtool -L <dev> rx N tx N`); sockets: one --bind address per core.
    #[arg(long, alias = "threads")]
    pub cores: Option<usize>,
    /// The server's (or next hop's) MAC for unicast AF_XDP frames, e.g. 02:00:00:00:00:01.
    /// Default: from the neighbour table (resolved before the run).
    #[arg(long, value_parser = parse_mac)]
    pub server_mac: Option<MacAddr>,
    /// AF_XDP: accept replies whose UDP checksum does not verify (counted either way).
    #[arg(long)]
    pub no_verify_checksum: bool,
    /// CPUs to pin workers to, in order (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub cpus: Vec<usize>,
    /// Datagrams per send/receive batch.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Spin on the receive path instead of sleeping while waiting for replies or for the next
    /// send. Each worker then keeps its core busy, and its own wake-up (tens to hundreds of
    /// µs on a VM) stays out of the latency it measures. Only for cores that carry no kernel
    /// work of their own traffic: on veth (copy mode) the sender's CPU runs the softirqs, and
    /// a worker that never sleeps delays them by milliseconds.
    #[arg(long)]
    pub busy_wait: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// No progress line.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

fn parse_mac(s: &str) -> Result<MacAddr, String> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    let bytes: Result<Vec<u8>, _> = parts.iter().map(|p| u8::from_str_radix(p, 16)).collect();
    match bytes {
        Ok(b) if b.len() == 6 && parts.iter().all(|p| p.len() == 2) => {
            Ok([b[0], b[1], b[2], b[3], b[4], b[5]])
        }
        _ => Err(format!("{s:?} is not a MAC address (aa:bb:cc:dd:ee:ff)")),
    }
}

/// The link-local address of `iface`, from `if_inet6` of the calling thread's network
/// namespace (`/proc/net` shows the main thread's, which differs after a thread `setns`).
pub fn link_local_of(iface: &str) -> io::Result<Ipv6Addr> {
    let table = std::fs::read_to_string("/proc/thread-self/net/if_inet6")
        .or_else(|_| std::fs::read_to_string("/proc/net/if_inet6"))?;
    for line in table.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() == 6 && f[5] == iface && f[0].starts_with("fe80") {
            if let Ok(v) = u128::from_str_radix(f[0], 16) {
                return Ok(Ipv6Addr::from(v));
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("{iface} has no link-local address"),
    ))
}

fn is_link_local(a: &Ipv6Addr) -> bool {
    (a.segments()[0] & 0xffc0) == 0xfe80 || (a.segments()[0] & 0xff0f) == 0xff02
}

struct Setup {
    ctx: Ctx,
    workers: Vec<Worker>,
    transports: Vec<Box<dyn Transport>>,
    threads: usize,
    transport: &'static str,
    transport_detail: String,
    /// Steers replies into the AF_XDP sockets; detached when the run ends.
    xdp_program: Option<xdp::RxProgram>,
}

/// What `setup` opened for moving packets.
struct Opened {
    transports: Vec<Box<dyn Transport>>,
    name: &'static str,
    detail: String,
    program: Option<xdp::RxProgram>,
}

fn validate(args: &Args) -> anyhow::Result<()> {
    if args.clients == 0 || args.clients == u32::MAX {
        bail!("--clients must be in 1..{}", u32::MAX);
    }
    if !(args.duration > 0.0 && args.duration <= MAX_DURATION_S) {
        bail!("--duration must be in (0, {MAX_DURATION_S}] seconds");
    }
    if !(args.trial_secs > 0.0 && args.trial_secs <= 3600.0) {
        bail!("--trial-secs must be in (0, 3600]");
    }
    if args.rate == 0 || args.rate > MAX_RATE || args.max_rate > MAX_RATE {
        bail!("rates must be in 1..={MAX_RATE}");
    }
    if args.timeout_ms == 0 || args.timeout_ms > 60_000 {
        bail!("--timeout-ms must be in 1..=60000");
    }
    if usize::from(args.relay) > MAX_RELAY_LEVELS {
        bail!("--relay: at most {MAX_RELAY_LEVELS} levels");
    }
    if args.pools.len() > MAX_POOLS || args.pd_pools.len() > MAX_POOLS {
        bail!("at most {MAX_POOLS} pools of each kind");
    }
    let (na, pd) = ia_kinds(args.ia);
    if na && args.pools.is_empty() {
        bail!("--pool is required with --ia na/both: replies are checked against it");
    }
    if pd && args.pd_pools.is_empty() {
        bail!("--pd-pool is required with --ia pd/both");
    }
    if args.sweep.iter().any(|&r| r == 0 || r > MAX_RATE) {
        bail!("--sweep rates must be in 1..={MAX_RATE}");
    }
    Ok(())
}

fn ia_kinds(m: IaMode) -> (bool, bool) {
    match m {
        IaMode::Na => (true, false),
        IaMode::Pd => (false, true),
        IaMode::Both => (true, true),
    }
}

fn setup(args: &Args) -> anyhow::Result<Setup> {
    validate(args)?;
    let (ia_na, ia_pd) = ia_kinds(args.ia);
    let relayed = args.relay > 0;
    let ifindex = match &args.iface {
        Some(i) => Some(udp::ifindex(i).with_context(|| format!("interface {i}"))?),
        None => None,
    };

    let link = match args.link_addr {
        Some(a) => a,
        None => args
            .pools
            .first()
            .map(|p| p.base)
            .or(args.pd_pools.first().map(|p| p.base))
            .unwrap_or(Ipv6Addr::UNSPECIFIED),
    };
    let relays = (0..args.relay)
        .map(|level| RelayLevel {
            hop_count: level,
            link_address: link,
            interface_id: format!("{}{level}", args.interface_id).into_bytes(),
        })
        .collect();
    let wire = Wire {
        seed: args.seed,
        ia_na,
        ia_pd,
        relays,
        remote_id_enterprise: args.remote_id_enterprise,
        na_pools: args.pools.clone(),
        pd_pools: args.pd_pools.clone(),
    };

    // Where to send.
    let dst = match &args.server {
        Some(s) if s.starts_with('[') => s
            .parse::<SocketAddrV6>()
            .with_context(|| format!("--server {s}"))?,
        Some(s) => {
            let a: Ipv6Addr = s.parse().with_context(|| format!("--server {s}"))?;
            SocketAddrV6::new(a, SERVER_PORT, 0, 0)
        }
        None if relayed => bail!("--relay needs --server (relays unicast to the server)"),
        None => {
            let Some(ix) = ifindex else {
                bail!("direct clients need --iface (or --server)");
            };
            SocketAddrV6::new(ALL_DHCP_RELAY_AGENTS_AND_SERVERS, SERVER_PORT, 0, ix)
        }
    };
    let dst = if dst.scope_id() == 0 && is_link_local(dst.ip()) {
        let Some(ix) = ifindex else {
            bail!("a link-local or multicast --server needs --iface");
        };
        SocketAddrV6::new(*dst.ip(), dst.port(), 0, ix)
    } else {
        dst
    };

    let port = args
        .bind_port
        .unwrap_or(if relayed { SERVER_PORT } else { CLIENT_PORT });
    let try_xdp = match args.transport {
        TransportKind::Socket => false,
        TransportKind::Xdp => true,
        TransportKind::Auto => args.iface.is_some(),
    };
    let mut why_not_xdp = None;
    let mut opened = None;
    if try_xdp {
        match open_xdp(args, &wire, dst, port) {
            Ok(o) => opened = Some(o),
            Err(e) if args.transport == TransportKind::Auto => why_not_xdp = Some(format!("{e:#}")),
            Err(e) => return Err(e.context("--transport xdp")),
        }
    } else if args.transport == TransportKind::Auto {
        why_not_xdp = Some("no --iface".to_string());
    }
    let opened = match opened {
        Some(o) => o,
        None => {
            let mut o = open_sockets(args, ifindex, relayed, dst, port)?;
            if let Some(why) = why_not_xdp {
                o.detail = format!("{}; AF_XDP not used: {why}", o.detail);
            }
            o
        }
    };
    let threads = opened.transports.len();

    // Clients split into contiguous slices, one per worker.
    let n = args.clients as usize;
    let per = n.div_ceil(threads);
    let workers = (0..threads)
        .map(|i| {
            let first = (i * per).min(n);
            let count = per.min(n - first);
            Worker::new(first as u32, count)
        })
        .collect();
    let leases = n + n / 4;
    let ctx = Ctx {
        wire,
        timeout_us: args.timeout_ms * 1000,
        retries: args.retries,
        max_inflight: (args.max_inflight / threads).max(1),
        busy_wait: args.busy_wait,
        na_owners: Ownership::with_capacity(if ia_na { leases } else { 16 }),
        pd_owners: Ownership::with_capacity(if ia_pd { leases } else { 16 }),
    };
    Ok(Setup {
        ctx,
        workers,
        transports: opened.transports,
        threads,
        transport: opened.name,
        transport_detail: opened.detail,
        xdp_program: opened.program,
    })
}

/// UDP sockets, one per core, each bound to its own address (replies are steered to a worker
/// by their destination address).
fn open_sockets(
    args: &Args,
    ifindex: Option<u32>,
    relayed: bool,
    dst: SocketAddrV6,
    port: u16,
) -> anyhow::Result<Opened> {
    let mut binds = args.bind.clone();
    if binds.is_empty() {
        binds.push(match (&args.iface, relayed) {
            (Some(i), false) if dst.ip().is_multicast() || is_link_local(dst.ip()) => {
                link_local_of(i)?
            }
            _ => Ipv6Addr::UNSPECIFIED,
        });
    }
    let threads = args.cores.unwrap_or(binds.len()).max(1);
    if threads != binds.len() {
        bail!(
            "{threads} cores need {threads} --bind addresses with the socket transport (replies \
             are steered to a worker by their destination address); got {}",
            binds.len()
        );
    }
    let mut transports: Vec<Box<dyn Transport>> = Vec::with_capacity(threads);
    for b in &binds {
        let scope = if is_link_local(b) {
            ifindex.unwrap_or(0)
        } else {
            0
        };
        let cfg = udp::UdpConfig {
            bind: SocketAddrV6::new(*b, port, 0, scope),
            dst,
            multicast_if: if dst.ip().is_multicast() {
                ifindex
            } else {
                None
            },
            batch: args.batch,
        };
        let t =
            udp::UdpTransport::open(&cfg).with_context(|| format!("UDP socket on [{b}]:{port}"))?;
        transports.push(Box::new(t));
    }
    Ok(Opened {
        transports,
        name: "udp",
        detail: format!("UDP sockets (sendmmsg/recvmmsg) × {threads}"),
        program: None,
    })
}

/// One AF_XDP socket per core on queues 0..cores of --iface, and the program that steers the
/// replies into them.
fn open_xdp(args: &Args, wire: &Wire, dst: SocketAddrV6, port: u16) -> anyhow::Result<Opened> {
    let Some(iface) = &args.iface else {
        bail!("AF_XDP needs --iface");
    };
    let info =
        crate::io::xdp::interface_info(iface).with_context(|| format!("interface {iface}"))?;
    let cores = args.cores.unwrap_or(1).max(1);
    let src_ip = match args.bind.first() {
        Some(a) if !a.is_unspecified() => *a,
        _ if dst.ip().is_multicast() || is_link_local(dst.ip()) => *info
            .link_local
            .first()
            .with_context(|| format!("{iface} has no link-local address"))?,
        _ => *info
            .global
            .first()
            .with_context(|| format!("{iface} has no global address; give --bind"))?,
    };
    // Workers own contiguous client slices (as in `setup`); a reply that lands on another
    // worker's queue goes to the owner of the client it names.
    let routers = if cores > 1 {
        let per = (args.clients as usize).div_ceil(cores);
        let w = wire.clone();
        let owner: Arc<xdp::OwnerFn> = Arc::new(move |payload: &[u8]| {
            w.open(payload)
                .ok()
                .map(|(_, idx)| (idx as usize / per).min(cores - 1))
        });
        xdp::Router::mesh(cores, owner)
    } else {
        Vec::new()
    };
    let plan = xdp::XdpPlan {
        iface: iface.clone(),
        cores,
        src_ip,
        src_port: port,
        dst,
        dst_mac: args.server_mac,
        batch: args.batch.clamp(1, xdp::MAX_BATCH),
        sizes: xdp::default_sizes(),
        zero_copy: crate::io::xdp::ZeroCopy::Auto,
        verify_checksum: !args.no_verify_checksum,
    };
    let s = xdp::open(&plan, &info, routers).map_err(|e| {
        let hint = if e.kind() == io::ErrorKind::PermissionDenied {
            " (needs root, or CAP_NET_ADMIN, CAP_BPF, CAP_NET_RAW and CAP_IPC_LOCK)"
        } else {
            ""
        };
        anyhow::anyhow!("{e}{hint}")
    })?;
    let mac = s.dst_mac;
    let detail = format!(
        "AF_XDP {} mode × {cores} queue(s) on {iface}, receive program {} mode, from [{src_ip}]:{port} \
         to [{}]:{} via {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        s.mode.name(),
        s.program.attach_mode(),
        dst.ip(),
        dst.port(),
        mac[0],
        mac[1],
        mac[2],
        mac[3],
        mac[4],
        mac[5]
    );
    let transports = s
        .transports
        .into_iter()
        .map(|t| Box::new(t) as Box<dyn Transport>)
        .collect();
    Ok(Opened {
        transports,
        name: "af_xdp",
        detail,
        program: Some(s.program),
    })
}

struct Phase<'a> {
    label: &'a str,
    scenario: Scenario,
    rate: f64,
    duration_s: f64,
    count: Option<u64>,
    one_pass: bool,
}

fn run_phase(s: &mut Setup, clock: &Clock, phase: &Phase<'_>, args: &Args) -> Stats {
    let threads = s.threads;
    let plans: Vec<Plan> = (0..threads)
        .map(|i| {
            let max_exchanges = match phase.count {
                Some(c) => c / threads as u64 + u64::from((i as u64) < c % threads as u64),
                None => u64::MAX,
            };
            Plan {
                scenario: phase.scenario,
                rate: phase.rate / threads as f64,
                duration_us: (phase.duration_s * 1e6) as u64,
                max_exchanges,
                one_pass: phase.one_pass,
            }
        })
        .collect();
    let progress: Vec<Arc<Progress>> = s.workers.iter().map(|w| w.progress.clone()).collect();
    let stop = AtomicBool::new(false);
    let done = AtomicUsize::new(0);
    let ctx = &s.ctx;
    let (stop, done) = (&stop, &done);
    std::thread::scope(|scope| {
        let handles: Vec<_> = s
            .workers
            .iter_mut()
            .zip(s.transports.iter_mut())
            .zip(plans.iter())
            .enumerate()
            .map(|(i, ((w, t), plan))| {
                let cpu = args.cpus.get(i).copied();
                scope.spawn(move || {
                    if let Some(cpu) = cpu {
                        if let Err(e) = udp::pin_to_cpu(cpu) {
                            eprintln!("warning: cannot pin worker {i} to CPU {cpu}: {e}");
                        }
                    }
                    let st = w.run_phase(t.as_mut(), ctx, plan, clock, stop);
                    done.fetch_add(1, Ordering::Release);
                    // Replies for other workers' clients may still land on this worker's
                    // queue (AF_XDP forwards them): keep draining until every worker is done.
                    // This worker's own replies are late by now and ignored.
                    while threads > 1 && done.load(Ordering::Acquire) < threads {
                        let _ = t.recv(Duration::from_millis(1), &mut |_| {});
                    }
                    st
                })
            })
            .collect();

        let t0 = Instant::now();
        let mut last = Instant::now();
        // The published counters only grow; start from where earlier phases left them.
        let mut prev = [0u64; 4];
        for p in &progress {
            prev[0] += p.started.load(Ordering::Relaxed);
            prev[1] += p.completed.load(Ordering::Relaxed);
            prev[2] += p.drops.load(Ordering::Relaxed);
            prev[3] += p.invalid.load(Ordering::Relaxed);
        }
        while done.load(Ordering::Acquire) < threads {
            std::thread::sleep(Duration::from_millis(20));
            if args.quiet || last.elapsed() < Duration::from_secs(1) {
                continue;
            }
            let dt = last.elapsed().as_secs_f64();
            last = Instant::now();
            let mut now = [0u64; 4];
            let mut h = engine::new_histogram();
            for p in &progress {
                now[0] += p.started.load(Ordering::Relaxed);
                now[1] += p.completed.load(Ordering::Relaxed);
                now[2] += p.drops.load(Ordering::Relaxed);
                now[3] += p.invalid.load(Ordering::Relaxed);
                let mut g = p.interval.lock().unwrap_or_else(|e| e.into_inner());
                let _ = h.add(&*g);
                g.reset();
            }
            let d = |i: usize| now[i].saturating_sub(prev[i]);
            eprintln!(
                "[{:>6.1}s] {:<8} offered {:>10.0}/s  completed {:>10.0}/s  drops {:>8}  invalid {:>6}  p99 {:>7} µs",
                t0.elapsed().as_secs_f64(),
                phase.label,
                d(0) as f64 / dt,
                d(1) as f64 / dt,
                d(2),
                d(3),
                if h.is_empty() { 0 } else { h.value_at_quantile(0.99) },
            );
            prev = now;
        }
        let mut total = Stats::new();
        for h in handles {
            match h.join() {
                Ok(st) => total.merge(&st),
                Err(p) => std::panic::resume_unwind(p),
            }
        }
        total
    })
}

/// Run the generator as `args` says and return the report. Progress goes to stderr.
pub fn run(args: Args) -> anyhow::Result<Report> {
    let mut s = setup(&args)?;
    let clock = Clock::new();
    let mut prepare = None;
    if args.scenario.needs_bindings() && !args.no_prepare {
        let rate = args.prepare_rate.unwrap_or(if args.find_max {
            args.start_rate
        } else {
            args.rate
        }) as f64;
        // Enough time for one pass at that rate, twice over, bounded.
        let secs = (f64::from(args.clients) / rate * 2.0 + 5.0).min(MAX_DURATION_S);
        let st = run_phase(
            &mut s,
            &clock,
            &Phase {
                label: "prepare",
                scenario: Scenario::FourMessage,
                rate,
                duration_s: secs,
                count: None,
                one_pass: true,
            },
            &args,
        );
        prepare = Some(PhaseReport::from_stats(&st));
    }

    let mut trials = Vec::new();
    let mut max_rate = None;
    let mut generator_limited = false;
    let result;
    let target_rate;
    let trial = |s: &mut Setup, rate: u64| {
        let st = run_phase(
            s,
            &clock,
            &Phase {
                label: "trial",
                scenario: args.scenario,
                rate: rate as f64,
                duration_s: args.trial_secs,
                count: None,
                one_pass: false,
            },
            &args,
        );
        let r = PhaseReport::from_stats(&st);
        let offered_ok = r.offered_per_s >= 0.95 * rate as f64;
        // Pass: loss within the threshold, and the server kept up while load was offered
        // (otherwise a short trial with a long timeout hides a growing queue).
        let kept_up = r.completed_in_window_per_s >= 0.95 * r.offered_per_s;
        let passed = r.loss_pct <= args.max_loss && kept_up;
        (
            Trial {
                target_rate: rate as f64,
                passed,
                result: r,
            },
            offered_ok,
        )
    };

    if args.find_max {
        // Double while the loss stays within the threshold, then bisect between the last
        // passing and the first failing rate to within 5 %. The result is the best completed
        // rate of a passing trial.
        let mut lo: Option<u64> = None;
        let mut hi: Option<u64> = None;
        let mut best: Option<PhaseReport> = None;
        let mut rate = args.start_rate.clamp(1, args.max_rate);
        for _ in 0..MAX_TRIALS {
            let (t, offered_ok) = trial(&mut s, rate);
            if t.passed {
                lo = Some(rate);
                if best
                    .as_ref()
                    .is_none_or(|b| t.result.completed_per_s > b.completed_per_s)
                {
                    best = Some(t.result.clone());
                }
            } else {
                hi = Some(rate);
            }
            let passed = t.passed;
            trials.push(t);
            if passed && !offered_ok {
                // The generator itself could not offer more: searching higher measures us.
                generator_limited = true;
                break;
            }
            rate = match (lo, hi) {
                (Some(l), None) if l >= args.max_rate => break,
                (Some(l), None) => (l * 2).min(args.max_rate),
                (None, Some(h)) if h <= 10 => break,
                (None, Some(h)) => h / 2,
                (Some(l), Some(h)) => {
                    if h <= l + l / 20 + 1 {
                        break;
                    }
                    l + (h - l) / 2
                }
                (None, None) => break,
            };
        }
        target_rate = lo.unwrap_or(0) as f64;
        max_rate = Some(best.as_ref().map_or(0.0, |b| b.completed_per_s));
        result = match best {
            Some(b) => b,
            None => trials
                .last()
                .map(|t| t.result.clone())
                .context("no trial ran")?,
        };
    } else if !args.sweep.is_empty() {
        for &rate in &args.sweep {
            let (t, _) = trial(&mut s, rate);
            trials.push(t);
        }
        let last = trials.last().context("no trial ran")?;
        target_rate = last.target_rate;
        result = last.result.clone();
    } else {
        let st = run_phase(
            &mut s,
            &clock,
            &Phase {
                label: args.scenario.name(),
                scenario: args.scenario,
                rate: args.rate as f64,
                duration_s: args.duration,
                count: args.count,
                one_pass: false,
            },
            &args,
        );
        target_rate = args.rate as f64;
        result = PhaseReport::from_stats(&st);
    }

    let mut transport_counters = BTreeMap::new();
    for t in &s.transports {
        for (k, v) in t.counters() {
            *transport_counters.entry(k).or_insert(0u64) += v;
        }
    }
    if let Some(p) = &s.xdp_program {
        let (steered, unbound) = p.counters();
        transport_counters.insert("xdp_program_steered", steered);
        transport_counters.insert("xdp_program_unbound_queue", unbound);
    }
    let transport_errors = s
        .transports
        .iter()
        .filter_map(|t| {
            let (n, last) = t.tx_errors();
            (n > 0).then(|| format!("{n} send errors, last: {}", last.unwrap_or_default()))
        })
        .collect();
    Ok(Report {
        scenario: args.scenario.name(),
        ia: match args.ia {
            IaMode::Na => "IA_NA",
            IaMode::Pd => "IA_PD",
            IaMode::Both => "IA_NA+IA_PD",
        },
        mode: if args.relay == 0 {
            "direct".to_string()
        } else {
            format!("relayed({})", args.relay)
        },
        transport: s.transport,
        transport_detail: s.transport_detail.clone(),
        transport_counters,
        threads: s.threads,
        clients: args.clients,
        target_rate,
        result,
        prepare,
        max_rate,
        max_loss_pct: args.find_max.then_some(args.max_loss),
        generator_limited,
        trials,
        ownership_untracked: s.ctx.na_owners.overflowed() + s.ctx.pd_owners.overflowed(),
        clients_bound_at_end: s.workers.iter().map(Worker::bound).sum(),
        transport_errors,
    })
}

/// `run`, then print the report (text or JSON) on stdout.
pub fn main(args: Args) -> anyhow::Result<Report> {
    let json = args.json;
    let report = run(args)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(report)
}
