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
//! Entry points: [`probe`] (can this host run the backend?), [`XdpBackend::open`] (attach the
//! program, bind the sockets) and [`XdpBackend::run`] (serve with any [`Handler`] — the
//! daemon's `Runtime`, or a bare [`Server`](crate::proto::Server) — until shutdown, then
//! detach). Like the socket backend, worker `i` counts into the caller's `stats[i]`; what only
//! AF_XDP has (program counters, kernel ring statistics, zero-copy or copy) comes from a
//! [`StatusHandle`]. Frames are parsed and built with [`crate::wire::frame`].
//!
//! Modules with `unsafe`: [`sys`] (every syscall) and [`xsk`] (UMEM and rings); the rest is
//! safe code.

mod loader;
mod sys;
mod worker;
mod xsk;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use loader::{
    AttachMode, Attached, ProgramCounters, FOREIGN_TEST_OBJECT_PATH, OBJECT_PATH, PROGRAM_NAME,
};
pub use sys::{interface_info, neighbour_mac, InterfaceInfo, Kick};
pub use worker::SocketCounters;
pub use xsk::{BindMode, KernelStats, Xsk, XskSizes, ZeroCopy};

use crate::config::{Config, RxChecksumPolicy, XdpAttachMode, ZeroCopyPolicy};
use crate::io::shutdown::Shutdown;
use crate::io::Handler;
use crate::stats::WorkerStats;

/// UDP port of DHCPv6 servers and relay agents (RFC 8415 §7.2).
pub const DHCPV6_SERVER_PORT: u16 = crate::io::socket::SERVER_PORT;

/// How often [`XdpBackend::run`] calls its `tick` (stats file, health) while serving.
pub const TICK_INTERVAL: Duration = Duration::from_secs(1);

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
    /// How long an idle worker watches its RX rings before it sleeps in `poll()`.
    pub idle_spin: Duration,
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
            idle_spin: Duration::from_micros(u64::from(crate::config::DEFAULT_XDP_IDLE_SPIN_USECS)),
            workers: 0,
            cpus: Vec::new(),
            verify_udp_checksum: true,
            replace_foreign_program: false,
        }
    }
}

impl XdpConfig {
    /// The backend's settings from the configuration file: `server.interfaces`,
    /// `server.workers` and the `[xdp]` section.
    pub fn from_config(cfg: &Config) -> Self {
        let x = &cfg.xdp;
        XdpConfig {
            interfaces: cfg.server.interfaces.clone(),
            queues: x.queues.clone(),
            sizes: XskSizes {
                frame_size: x.frame_size,
                frame_count: x.frame_count,
                fill_ring: x.fill_ring,
                completion_ring: x.completion_ring,
                rx_ring: x.rx_ring,
                tx_ring: x.tx_ring,
            },
            batch_size: x.batch_size,
            attach_mode: match x.attach_mode {
                XdpAttachMode::Auto => AttachMode::Auto,
                XdpAttachMode::Native => AttachMode::Native,
                XdpAttachMode::Generic => AttachMode::Generic,
            },
            zero_copy: match x.zero_copy {
                ZeroCopyPolicy::Auto => ZeroCopy::Auto,
                ZeroCopyPolicy::Require => ZeroCopy::Require,
                ZeroCopyPolicy::Off => ZeroCopy::Off,
            },
            busy_poll: x.busy_poll.map(|b| BusyPoll {
                usecs: b.usecs,
                budget: b.budget,
            }),
            idle_spin: Duration::from_micros(u64::from(x.idle_spin_usecs)),
            workers: cfg.server.workers,
            cpus: x.cpus.clone(),
            verify_udp_checksum: x.rx_checksum == RxChecksumPolicy::Verify,
            replace_foreign_program: x.replace_foreign_program,
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
    #[error("XDP worker {worker}: {source}")]
    Worker {
        worker: usize,
        #[source]
        source: std::io::Error,
    },
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

/// Identity of one bound socket.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SocketInfo {
    pub interface: String,
    pub queue: u32,
    pub mode: BindMode,
    pub worker: usize,
    pub cpu: Option<usize>,
}

/// What only AF_XDP knows about one socket (the packet counters are the worker's
/// [`WorkerStats`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SocketStatus {
    #[serde(flatten)]
    pub info: SocketInfo,
    /// `sendto` calls made to push TX frames (copy mode: at least one per batch).
    pub tx_kicks: u64,
    pub tx_kick_errors: u64,
    /// The kernel's XDP_STATISTICS, refreshed by the worker every second.
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

/// The backend's own state, for `xdhcp6 status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct XdpStatus {
    /// "zero-copy" when every socket is, else "copy".
    pub mode: &'static str,
    /// Empty once the backend has stopped and detached.
    pub programs: Vec<ProgramStats>,
    pub sockets: Vec<SocketStatus>,
}

/// A cheap, shareable reader of the backend's status (program counters, socket modes, kernel
/// ring statistics), usable from any thread while [`XdpBackend::run`] serves and afterwards.
#[derive(Clone)]
pub struct StatusHandle {
    programs: Arc<Mutex<Vec<loader::XdpProgram>>>,
    sockets: Arc<[(SocketInfo, Arc<SocketCounters>)]>,
}

impl StatusHandle {
    pub fn status(&self) -> XdpStatus {
        let programs = self
            .programs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
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
            .map(|(info, c)| SocketStatus {
                info: info.clone(),
                tx_kicks: c.tx_kicks.load(Ordering::Relaxed),
                tx_kick_errors: c.tx_kick_errors.load(Ordering::Relaxed),
                kernel: c.kernel(),
            })
            .collect();
        XdpStatus {
            mode: mode_of(self.sockets.iter().map(|(i, _)| i)).name(),
            programs,
            sockets,
        }
    }

    /// The status as JSON, for the daemon's `status` answer.
    pub fn status_json(&self) -> serde_json::Value {
        serde_json::to_value(self.status()).unwrap_or(serde_json::Value::Null)
    }
}

fn mode_of<'a>(mut sockets: impl Iterator<Item = &'a SocketInfo>) -> BindMode {
    if sockets.all(|s| s.mode == BindMode::ZeroCopy) {
        BindMode::ZeroCopy
    } else {
        BindMode::Copy
    }
}

/// The XDP program attached and the AF_XDP sockets bound, ready to [`run`](Self::run).
///
/// Opening is separate from running so that `serve` can fail fast (privileges, a foreign
/// program, a missing queue) before the lease store and the control socket start, and learn
/// the worker count and interfaces the runtime needs. Dropping it without running detaches
/// the programs again.
pub struct XdpBackend {
    status: StatusHandle,
    per_worker: Vec<(worker::WorkerOpts, Vec<worker::SocketCtx>)>,
    interfaces: Vec<(u32, String)>,
}

impl XdpBackend {
    /// Attach the program to every configured interface and bind one AF_XDP socket per queue.
    pub fn open(cfg: &XdpConfig) -> Result<XdpBackend, XdpError> {
        cfg.validate()?;
        let mut plan = Vec::new();
        for name in &cfg.interfaces {
            let info = Arc::new(interface(name)?);
            let queues = queues_of(cfg, &info)?;
            plan.push((info, queues));
        }
        let n_sockets: usize = plan.iter().map(|(_, q)| q.len()).sum();
        check_privileges(cfg, n_sockets as u64)?;
        sys::af_xdp_socket_works().map_err(XdpError::NoAfXdp)?;

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
        let cpu_of = |w: usize| cpus.get(w % cpus.len().max(1)).copied();
        let mut per_worker: Vec<(worker::WorkerOpts, Vec<worker::SocketCtx>)> = (0..n_workers)
            .map(|w| {
                let opts = worker::WorkerOpts {
                    batch: cfg.batch_size,
                    verify_udp_checksum: cfg.verify_udp_checksum,
                    busy_poll: cfg.busy_poll.is_some(),
                    idle_spin: cfg.idle_spin,
                    cpu: cpu_of(w),
                };
                (opts, Vec::new())
            })
            .collect();

        // Programs go into the shared list as soon as they are attached, so an error further
        // on drops (detaches) them with the half-built backend.
        let programs: Arc<Mutex<Vec<loader::XdpProgram>>> = Arc::default();
        let detach_all = |programs: &Mutex<Vec<loader::XdpProgram>>| {
            programs.lock().unwrap_or_else(|e| e.into_inner()).clear();
        };
        let mut sockets = Vec::new();
        let mut interfaces = Vec::new();
        let mut i = 0usize;
        for (info, queues) in &plan {
            let mut prog = match loader::XdpProgram::attach(
                &info.name,
                info.index,
                cfg.attach_mode,
                cfg.replace_foreign_program,
            ) {
                Ok(p) => p,
                Err(e) => {
                    detach_all(&programs);
                    return Err(e);
                }
            };
            for &queue in queues {
                let sock_err = |source| XdpError::Socket {
                    ifname: info.name.clone(),
                    queue,
                    source,
                };
                let opened = xsk::Xsk::open(&info.name, queue, &cfg.sizes, cfg.zero_copy)
                    .map_err(sock_err)
                    .and_then(|xsk| {
                        if let Some(bp) = cfg.busy_poll {
                            sys::set_busy_poll(xsk.fd(), bp.usecs, bp.budget).map_err(sock_err)?;
                        }
                        prog.register(queue, xsk.fd())?;
                        Ok(xsk)
                    });
                let xsk = match opened {
                    Ok(x) => x,
                    Err(e) => {
                        drop(prog);
                        detach_all(&programs);
                        return Err(e);
                    }
                };
                let w = i % n_workers;
                tracing::info!(
                    interface = %info.name,
                    queue,
                    mode = xsk.mode().name(),
                    worker = w,
                    "AF_XDP socket bound"
                );
                let counters = Arc::new(SocketCounters::default());
                sockets.push((
                    SocketInfo {
                        interface: info.name.clone(),
                        queue,
                        mode: xsk.mode(),
                        worker: w,
                        cpu: cpu_of(w),
                    },
                    Arc::clone(&counters),
                ));
                per_worker[w].1.push(worker::SocketCtx {
                    xsk,
                    iface: Arc::clone(info),
                    counters,
                });
                i += 1;
            }
            interfaces.push((info.index, info.name.clone()));
            programs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(prog);
        }
        Ok(XdpBackend {
            status: StatusHandle {
                programs,
                sockets: sockets.into(),
            },
            per_worker,
            interfaces,
        })
    }

    /// Worker threads [`run`](Self::run) starts (one stats block each).
    pub fn workers(&self) -> usize {
        self.per_worker.len()
    }

    /// (OS ifindex, name) of every interface served.
    pub fn interfaces(&self) -> &[(u32, String)] {
        &self.interfaces
    }

    /// The bound sockets and how they were bound.
    pub fn sockets(&self) -> impl Iterator<Item = &SocketInfo> {
        self.status.sockets.iter().map(|(i, _)| i)
    }

    /// Zero-copy when every socket got it, else copy.
    pub fn mode(&self) -> BindMode {
        mode_of(self.sockets())
    }

    pub fn status_handle(&self) -> StatusHandle {
        self.status.clone()
    }

    /// One fresh counter block per worker, for callers without their own.
    pub fn new_stats(&self) -> Vec<WorkerStats> {
        (0..self.workers()).map(|_| WorkerStats::new()).collect()
    }

    /// Serve with `handler` until `shutdown` triggers (or a worker fails, which triggers it),
    /// then close the sockets and detach the programs. Worker `i` counts into `stats[i]`;
    /// there must be one block per worker. `tick` runs on the calling thread every
    /// [`TICK_INTERVAL`] and once more after the workers stopped, before the programs are
    /// detached (final stats files, status snapshots).
    pub fn run<H: Handler>(
        self,
        handler: &H,
        stats: &[WorkerStats],
        shutdown: &Shutdown,
        tick: &mut dyn FnMut(),
    ) -> Result<(), XdpError> {
        self.run_path(Some(handler), stats, shutdown, tick)
    }

    /// [`run`](Self::run) with the bare echo instead of a core (swap addresses and ports):
    /// the ceiling of a setup, for benchmarks.
    pub fn run_echo(
        self,
        stats: &[WorkerStats],
        shutdown: &Shutdown,
        tick: &mut dyn FnMut(),
    ) -> Result<(), XdpError> {
        self.run_path::<worker::NoHandler>(None, stats, shutdown, tick)
    }

    fn run_path<H: Handler>(
        mut self,
        handler: Option<&H>,
        stats: &[WorkerStats],
        shutdown: &Shutdown,
        tick: &mut dyn FnMut(),
    ) -> Result<(), XdpError> {
        assert_eq!(stats.len(), self.workers(), "one stats block per worker");
        let per_worker = std::mem::take(&mut self.per_worker);
        tracing::info!(
            interfaces = ?self.interfaces.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>(),
            sockets = self.status.sockets.len(),
            workers = stats.len(),
            mode = self.mode().name(),
            "XDP backend serving"
        );
        let result = std::thread::scope(|scope| {
            let mut handles = Vec::with_capacity(per_worker.len());
            let mut first_error = None;
            for (w, ((opts, sockets), st)) in per_worker.into_iter().zip(stats).enumerate() {
                let spawned = std::thread::Builder::new()
                    .name(format!("xdhcp6-xdp{w}"))
                    .spawn_scoped(scope, move || {
                        let r = worker::run(sockets, handler, opts, st, shutdown);
                        if r.is_err() {
                            shutdown.trigger();
                        }
                        r.map_err(|source| XdpError::Worker { worker: w, source })
                    });
                match spawned {
                    Ok(h) => handles.push(h),
                    Err(e) => {
                        first_error = Some(XdpError::Thread(e));
                        shutdown.trigger();
                        break;
                    }
                }
            }
            while !shutdown.wait(TICK_INTERVAL) {
                tick();
            }
            for h in handles {
                let r = h
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                if let Err(e) = r {
                    tracing::error!(error = %e, "XDP worker failed");
                    first_error.get_or_insert(e);
                }
            }
            first_error.map_or(Ok(()), Err)
        });
        // Final counters, while the program counters are still readable.
        tick();
        // The workers have dropped (closed) their sockets; now detach.
        self.detach();
        result
    }

    fn detach(&mut self) {
        self.status
            .programs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

impl Drop for XdpBackend {
    fn drop(&mut self) {
        // Sockets first (they reference the XSKMAP entries), then the programs: a status
        // handle kept elsewhere must not keep the program attached.
        self.per_worker.clear();
        self.detach();
    }
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
    fn status_can_be_read_from_a_control_thread() {
        fn assert_send_sync<T: Send + Sync>() {}
        fn assert_send<T: Send>() {}
        assert_send_sync::<StatusHandle>();
        assert_send::<XdpBackend>();
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
