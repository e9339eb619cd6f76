//! The kernel-bypass backend: an XDP program steers DHCPv6 server traffic (UDP port 547,
//! optionally VLAN-tagged) into one AF_XDP socket per (interface, queue); pinned workers drain
//! the sockets in batches, run the protocol core and answer in place in the same UMEM frame.
//! Everything else goes on to the kernel untouched.
//!
//! ```text
//! NIC queue N ──XDP (ebpf/xdp_dhcp6.c)──► XSKMAP[N] ──► AF_XDP socket N ──► worker (pinned)
//!                 └── not DHCPv6: XDP_PASS                 parse → core → rewrite → TX ring
//! ```
//!
//! Entry points: [`probe`] (can this host run the backend?), [`start`] (attach, bind, spawn;
//! returns a [`XdpBackend`] with live [`XdpBackend::stats`]) and [`serve`] (start, block until
//! a shutdown flag, stop). Modules with `unsafe`: [`sys`] (every syscall) and [`xsk`] (UMEM
//! and rings); the rest is safe code.

mod frame;
mod loader;
mod sys;
mod worker;
mod xsk;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub use frame::FrameDrop;
pub use loader::{
    AttachMode, Attached, ProgramCounters, FOREIGN_TEST_OBJECT_PATH, OBJECT_PATH, PROGRAM_NAME,
};
pub use sys::InterfaceInfo;
pub use worker::{DataPath, SocketCounters};
pub use xsk::{BindMode, KernelStats, XskSizes, ZeroCopy};

use crate::lease::LeaseStore;
use crate::proto::{DropReason, ReplyMeta, RxMeta, Server};

/// UDP port of DHCPv6 servers and relay agents (RFC 8415 §7.2).
pub const DHCPV6_SERVER_PORT: u16 = 547;

/// What the workers call for each request: the protocol core, or a stand-in in tests.
pub trait Responder: Send + Sync + 'static {
    fn respond(
        &self,
        request: &[u8],
        meta: &RxMeta,
        now_secs: u64,
        out: &mut [u8],
    ) -> Result<ReplyMeta, DropReason>;
}

impl<S: LeaseStore + 'static> Responder for Server<S> {
    #[inline]
    fn respond(
        &self,
        request: &[u8],
        meta: &RxMeta,
        now_secs: u64,
        out: &mut [u8],
    ) -> Result<ReplyMeta, DropReason> {
        self.handle(request, meta, now_secs, out)
    }
}

/// Busy-poll settings (SO_PREFER_BUSY_POLL, SO_BUSY_POLL, SO_BUSY_POLL_BUDGET).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyPoll {
    pub usecs: u32,
    pub budget: u32,
}

/// Settings of the XDP backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpConfig {
    /// Interfaces to attach to.
    pub interfaces: Vec<String>,
    /// Queues to bind on every interface; `None` binds all RX queues.
    pub queues: Option<Vec<u32>>,
    pub sizes: XskSizes,
    /// Frames taken off an RX ring per batch (1..=256).
    pub batch_size: usize,
    pub attach_mode: AttachMode,
    pub zero_copy: ZeroCopy,
    pub busy_poll: Option<BusyPoll>,
    /// Worker threads; 0 means one per socket, at most one per allowed CPU.
    pub workers: usize,
    /// CPUs to pin workers to, in order; empty means the CPUs this process may use.
    pub cpus: Vec<usize>,
    /// Drop requests whose UDP checksum is wrong or zero (RFC 8200 §8.1). Senders on the same
    /// host through veth need `ethtool -K <dev> tx off`, or their checksums are left partial.
    pub verify_udp_checksum: bool,
    /// Detach any XDP program found on the interface, not only a stale one of ours.
    pub replace_foreign_program: bool,
}

impl Default for XdpConfig {
    fn default() -> Self {
        XdpConfig {
            interfaces: Vec::new(),
            queues: None,
            sizes: XskSizes::default(),
            batch_size: 64,
            attach_mode: AttachMode::Auto,
            zero_copy: ZeroCopy::Auto,
            busy_poll: None,
            workers: 0,
            cpus: Vec::new(),
            verify_udp_checksum: true,
            replace_foreign_program: false,
        }
    }
}

impl XdpConfig {
    /// Defaults for the interfaces and worker count of the server configuration.
    pub fn from_server(cfg: &crate::config::Config) -> Self {
        XdpConfig {
            interfaces: cfg.server.interfaces.clone(),
            workers: cfg.server.workers,
            ..XdpConfig::default()
        }
    }

    fn validate(&self) -> Result<(), XdpError> {
        if self.interfaces.is_empty() {
            return Err(XdpError::Config("no interfaces configured".into()));
        }
        if !(1..=worker::MAX_BATCH).contains(&self.batch_size) {
            return Err(XdpError::Config(format!(
                "batch_size must be in 1..={}",
                worker::MAX_BATCH
            )));
        }
        self.sizes.validate().map_err(XdpError::Config)
    }
}

/// Why the XDP backend cannot run (also what `auto` logs before using sockets).
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    #[error("invalid XDP configuration: {0}")]
    Config(String),
    #[error(
        "the XDP backend lacks privileges: {missing}. Run as root or grant them, e.g. \
         `setcap cap_net_admin,cap_net_raw,cap_bpf,cap_ipc_lock+ep <binary>` or systemd \
         `AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW CAP_BPF CAP_IPC_LOCK`"
    )]
    Privileges { missing: String },
    #[error("AF_XDP sockets are not available on this kernel: {0}")]
    NoAfXdp(#[source] std::io::Error),
    #[error("interface {name}: {what}: {source}")]
    Interface {
        name: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("loading the XDP program: {0}")]
    Load(String),
    #[error("attaching XDP in {mode} mode to {ifname}: {reason}")]
    Attach {
        ifname: String,
        mode: String,
        reason: String,
    },
    #[error(
        "interface {ifname} already runs XDP program {name:?} (id {id}), not ours; detach it \
         (`ip link set dev {ifname} xdp off`) or set replace_foreign_program"
    )]
    ForeignProgram {
        ifname: String,
        id: u32,
        name: String,
    },
    #[error(
        "interface {ifname}: XDP program {name:?} (id {id}) is held by a BPF link: another \
         xdhcp6 (or a pinned link) owns the interface"
    )]
    Busy {
        ifname: String,
        id: u32,
        name: String,
    },
    #[error("AF_XDP socket on {ifname} queue {queue}: {source}")]
    Socket {
        ifname: String,
        queue: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("spawning XDP worker: {0}")]
    Thread(#[source] std::io::Error),
}

/// What `xdp::probe` returns when the backend cannot be used.
pub type WhyNot = XdpError;

// Capability numbers (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;
const CAP_IPC_LOCK: u32 = 14;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// Effective capability set of this process, from `/proc/self/status` (`CapEff`).
fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// The privileges missing for `cfg`, named; empty when all are present.
fn missing_privileges(caps: u64, memlock: u64, umem_bytes: u64) -> Vec<&'static str> {
    let has = |c: u32| caps & (1u64 << c) != 0;
    let mut missing = Vec::new();
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN (attach XDP programs)");
    }
    if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_BPF (load the XDP program)");
    }
    if !has(CAP_NET_RAW) {
        missing.push("CAP_NET_RAW (create AF_XDP sockets)");
    }
    // UMEM pages are pinned: charged against RLIMIT_MEMLOCK unless CAP_IPC_LOCK.
    if !has(CAP_IPC_LOCK) && memlock < umem_bytes {
        missing.push("CAP_IPC_LOCK or a RLIMIT_MEMLOCK covering the UMEM (LimitMEMLOCK=infinity)");
    }
    missing
}

fn check_privileges(cfg: &XdpConfig, sockets: u64) -> Result<(), XdpError> {
    let umem = cfg.sizes.umem_bytes().saturating_mul(sockets.max(1));
    let missing = missing_privileges(effective_caps(), sys::memlock_limit(), umem);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(XdpError::Privileges {
            missing: missing.join(", "),
        })
    }
}

fn interface(name: &str) -> Result<InterfaceInfo, XdpError> {
    sys::interface_info(name).map_err(|e| XdpError::Interface {
        name: name.to_string(),
        what: "looking up the interface",
        source: e,
    })
}

fn queues_of(cfg: &XdpConfig, info: &InterfaceInfo) -> Result<Vec<u32>, XdpError> {
    match &cfg.queues {
        None => Ok((0..info.rx_queues).collect()),
        Some(qs) => {
            if let Some(q) = qs.iter().find(|&&q| q >= info.rx_queues) {
                return Err(XdpError::Config(format!(
                    "interface {} has {} RX queue(s); queue {q} does not exist (ethtool -L {} combined N)",
                    info.name, info.rx_queues, info.name
                )));
            }
            Ok(qs.clone())
        }
    }
}

/// Can the XDP backend run with `cfg` on this host? Checks privileges, AF_XDP support, the
/// interfaces and that the program passes the verifier; attaches nothing.
pub fn probe(cfg: &XdpConfig) -> Result<(), WhyNot> {
    cfg.validate()?;
    let mut sockets = 0u64;
    for name in &cfg.interfaces {
        let info = interface(name)?;
        sockets += queues_of(cfg, &info)?.len() as u64;
    }
    check_privileges(cfg, sockets)?;
    sys::af_xdp_socket_works().map_err(XdpError::NoAfXdp)?;
    drop(loader::load()?);
    Ok(())
}

/// Identity of one bound socket, for stats.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SocketInfo {
    pub interface: String,
    pub queue: u32,
    pub mode: BindMode,
    pub worker: usize,
    pub cpu: Option<usize>,
}

/// A snapshot of one socket's counters.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SocketStats {
    #[serde(flatten)]
    pub info: SocketInfo,
    pub rx: u64,
    pub tx: u64,
    /// Frame-level drops by [`FrameDrop::name`].
    pub frame_drops: Vec<(&'static str, u64)>,
    /// Protocol-core drops by [`DropReason::name`].
    pub core_drops: Vec<(&'static str, u64)>,
    pub fill_ring_empty: u64,
    pub tx_kicks: u64,
    pub tx_kick_errors: u64,
    pub kernel: KernelStats,
}

/// XDP program counters of one interface.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProgramStats {
    pub interface: String,
    pub attach_mode: Attached,
    #[serde(flatten)]
    pub counters: ProgramCounters,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct XdpStats {
    pub programs: Vec<ProgramStats>,
    pub sockets: Vec<SocketStats>,
}

/// The running backend. Dropping it (or [`XdpBackend::stop`]) stops the workers, closes the
/// sockets and detaches the programs.
pub struct XdpBackend {
    programs: Mutex<Vec<loader::XdpProgram>>,
    sockets: Vec<(SocketInfo, Arc<SocketCounters>)>,
    workers: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

/// Attach, bind and start the workers.
pub fn start<R: Responder>(cfg: &XdpConfig, path: DataPath<R>) -> Result<XdpBackend, XdpError> {
    cfg.validate()?;
    let mut plan = Vec::new();
    for name in &cfg.interfaces {
        let info = Arc::new(interface(name)?);
        let queues = queues_of(cfg, &info)?;
        plan.push((info, queues));
    }
    let n_sockets: usize = plan.iter().map(|(_, q)| q.len()).sum();
    check_privileges(cfg, n_sockets as u64)?;

    let mut backend = XdpBackend {
        programs: Mutex::new(Vec::new()),
        sockets: Vec::new(),
        workers: Vec::new(),
        stop: Arc::new(AtomicBool::new(false)),
    };
    let cpus = if cfg.cpus.is_empty() {
        sys::allowed_cpus()
    } else {
        cfg.cpus.clone()
    };
    let n_workers = match cfg.workers {
        0 => n_sockets.min(cpus.len().max(1)),
        w => w.min(n_sockets),
    }
    .max(1);
    let mut per_worker: Vec<Vec<worker::SocketCtx>> = (0..n_workers).map(|_| Vec::new()).collect();

    let mut programs = Vec::new();
    let mut i = 0usize;
    for (info, queues) in &plan {
        let mut prog = loader::XdpProgram::attach(
            &info.name,
            info.index,
            cfg.attach_mode,
            cfg.replace_foreign_program,
        )?;
        for &queue in queues {
            let sock_err = |source| XdpError::Socket {
                ifname: info.name.clone(),
                queue,
                source,
            };
            let xsk =
                xsk::Xsk::open(&info.name, queue, &cfg.sizes, cfg.zero_copy).map_err(sock_err)?;
            if let Some(bp) = cfg.busy_poll {
                sys::set_busy_poll(xsk.fd(), bp.usecs, bp.budget).map_err(sock_err)?;
            }
            prog.register(queue, xsk.fd())?;
            let w = i % n_workers;
            let cpu = cpus.get(w % cpus.len().max(1)).copied();
            tracing::info!(
                interface = %info.name,
                queue,
                mode = xsk.mode().name(),
                worker = w,
                "AF_XDP socket bound"
            );
            let counters = Arc::new(SocketCounters::default());
            backend.sockets.push((
                SocketInfo {
                    interface: info.name.clone(),
                    queue,
                    mode: xsk.mode(),
                    worker: w,
                    cpu,
                },
                Arc::clone(&counters),
            ));
            per_worker[w].push(worker::SocketCtx {
                xsk,
                iface: Arc::clone(info),
                counters,
            });
            i += 1;
        }
        programs.push(prog);
    }
    *backend.programs.lock().expect("not poisoned") = programs;

    for (w, sockets) in per_worker.into_iter().enumerate() {
        let opts = worker::WorkerOpts {
            batch: cfg.batch_size,
            verify_udp_checksum: cfg.verify_udp_checksum,
            busy_poll: cfg.busy_poll.is_some(),
            cpu: cpus.get(w % cpus.len().max(1)).copied(),
        };
        let stop = Arc::clone(&backend.stop);
        let path = path.clone();
        let handle = std::thread::Builder::new()
            .name(format!("xdp-worker-{w}"))
            .spawn(move || worker::run(sockets, path, opts, &stop))
            .map_err(XdpError::Thread)?;
        backend.workers.push(handle);
    }
    Ok(backend)
}

impl XdpBackend {
    /// The bound sockets and how they were bound (zero-copy or copy).
    pub fn sockets(&self) -> impl Iterator<Item = &SocketInfo> {
        self.sockets.iter().map(|(i, _)| i)
    }

    pub fn stats(&self) -> XdpStats {
        let programs = self
            .programs
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|p| ProgramStats {
                interface: p.ifname().to_string(),
                attach_mode: p.mode(),
                counters: p.counters().unwrap_or_default(),
            })
            .collect();
        let sockets = self
            .sockets
            .iter()
            .map(|(info, c)| {
                let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
                SocketStats {
                    info: info.clone(),
                    rx: ld(&c.rx),
                    tx: ld(&c.tx),
                    frame_drops: FrameDrop::ALL
                        .iter()
                        .map(|d| (d.name(), ld(&c.frame_drops[d.index()])))
                        .collect(),
                    core_drops: DropReason::ALL
                        .iter()
                        .map(|d| (d.name(), ld(&c.core_drops[d.index()])))
                        .collect(),
                    fill_ring_empty: ld(&c.fill_ring_empty),
                    tx_kicks: ld(&c.tx_kicks),
                    tx_kick_errors: ld(&c.tx_kick_errors),
                    kernel: c.kernel(),
                }
            })
            .collect();
        XdpStats { programs, sockets }
    }

    /// Whether every worker is still running (a worker stops early only on a fatal poll error).
    pub fn healthy(&self) -> bool {
        self.workers.iter().all(|w| !w.is_finished())
    }

    /// Stop the workers, close the sockets, detach the programs; returns the final counters.
    pub fn stop(mut self) -> XdpStats {
        self.shutdown();
        self.stats()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers.drain(..) {
            if w.join().is_err() {
                tracing::error!("an XDP worker panicked");
            }
        }
    }
}

impl Drop for XdpBackend {
    fn drop(&mut self) {
        self.shutdown();
        // Programs detach when `programs` drops, after the sockets closed.
    }
}

/// Run the XDP backend until `shutdown` is set; returns the final counters.
pub fn serve<R: Responder>(
    cfg: &XdpConfig,
    responder: Arc<R>,
    shutdown: &AtomicBool,
) -> Result<XdpStats, XdpError> {
    let backend = start(cfg, DataPath::Serve(responder))?;
    while !shutdown.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(backend.stop())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privileges_named() {
        let all = (1 << CAP_NET_ADMIN) | (1 << CAP_NET_RAW) | (1 << CAP_IPC_LOCK) | (1 << CAP_BPF);
        assert!(missing_privileges(all, 0, 1 << 25).is_empty());
        let m = missing_privileges(0, 0, 1 << 25);
        assert_eq!(m.len(), 4);
        assert!(m[0].starts_with("CAP_NET_ADMIN") && m[1].starts_with("CAP_BPF"));
        // Enough memlock replaces CAP_IPC_LOCK; CAP_SYS_ADMIN replaces CAP_BPF.
        let some = (1 << CAP_NET_ADMIN) | (1 << CAP_NET_RAW) | (1 << CAP_SYS_ADMIN);
        assert!(missing_privileges(some, u64::MAX, 1 << 25).is_empty());
    }

    #[test]
    fn backend_can_be_shared_with_a_stats_thread() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<XdpBackend>();
    }

    #[test]
    fn config_validation() {
        let mut c = XdpConfig {
            interfaces: vec!["lo".into()],
            ..XdpConfig::default()
        };
        assert!(c.validate().is_ok());
        c.sizes.frame_size = 3000;
        assert!(c.validate().is_err());
        c.sizes.frame_size = 2048;
        c.batch_size = 0;
        assert!(c.validate().is_err());
    }
}
