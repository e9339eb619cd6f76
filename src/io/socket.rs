//! The UDP socket backend: the protocol core behind ordinary kernel sockets, for wherever
//! AF_XDP is not available. Same behaviour as the AF_XDP path, lower speed.
//!
//! # Socket layout, and why
//!
//! One socket per configured interface, bound to `[::]:547` with SO_BINDTODEVICE, joined to
//! All_DHCP_Relay_Agents_and_Servers (ff02::1:2) and All_DHCP_Servers (ff05::1:3) on that
//! interface (RFC 8415 §7.1). Every worker watches every interface socket through its own epoll
//! instance with EPOLLEXCLUSIVE and drains it with `recvmmsg`.
//!
//! A multicast datagram must be answered exactly once. A datagram sits in exactly one socket
//! queue and one `recvmmsg` dequeues it, so sharing one socket per interface among the
//! workers gives that by construction. The tempting alternative, an SO_REUSEPORT group of one
//! socket per worker, does not: Linux hashes *unicast* datagrams to one member of the group,
//! but delivers a *multicast* datagram to every member (checked on 6.18, and pinned by the
//! test `reuseport_group_duplicates_multicast` in `tests/socket_backend.rs`), so every worker
//! would answer every Solicit. EPOLLEXCLUSIVE keeps one arrival from waking every idle worker.
//!
//! Binding per device (rather than one wildcard socket) keeps the server off interfaces it was
//! not told to serve, and lets a second server bind port 547 on other interfaces.
//! IPV6_MULTICAST_ALL is turned off so a socket only receives the groups it joined.
//!
//! # Replies
//!
//! The core says where a reply goes (`ReplyMeta`): the client's link-local address port 546,
//! or the relay port 547. A link-local destination gets the arrival interface as its scope,
//! and every reply carries IPV6_PKTINFO naming the arrival interface; when the request came to
//! one of our unicast addresses, that address is the reply's source, so a relay sees the
//! answer come from the address it sent to.

use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::Config;
use crate::proto::{RxMeta, Server};

use super::shutdown::Shutdown;
use super::sys::{self, RxBatch, TxBatch, BATCH};
use super::Handler;
use crate::stats::{msg_type_slot, IoDrop, ServerSnapshot, WorkerStats};

/// UDP port servers and relay agents listen on (RFC 8415 §7.2).
pub const SERVER_PORT: u16 = 547;
/// All_DHCP_Relay_Agents_and_Servers (RFC 8415 §7.1).
pub const ALL_DHCP_RELAY_AGENTS_AND_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
/// All_DHCP_Servers (RFC 8415 §7.1), used by relay agents.
pub const ALL_DHCP_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff05, 0, 0, 0, 0, 0, 1, 3);

/// Receive slot size. DHCPv6 has no fixed maximum; a relayed message several hops deep can
/// exceed an Ethernet MTU (IPv6 fragments are reassembled before we see them). Larger
/// datagrams are counted as `truncated` and dropped.
const RX_SLOT_LEN: usize = 16 * 1024;
/// Reply slot size: what the core may write. Relay-reply nesting makes replies larger than
/// the client payload, so this matches the receive slot.
const TX_SLOT_LEN: usize = 16 * 1024;
/// Receive buffer asked of the kernel per interface socket, to ride out bursts (a reboot
/// storm) while workers catch up; capped by net.core.rmem_max.
const RECV_BUFFER_BYTES: usize = 4 << 20;
/// Batches one worker takes from one socket per wake-up before looking at its other sockets
/// and the shutdown flag again, so one busy interface cannot starve the rest.
const BATCHES_PER_WAKEUP: usize = 16;
/// Longest sleep in `epoll_wait`; shutdown wakes workers earlier through its descriptor, this
/// only bounds how long a missed wake-up could go unnoticed.
const EPOLL_TIMEOUT_MS: i32 = 1000;
/// Epoll token of the shutdown descriptor (interface sockets use their index).
const SHUTDOWN_TOKEN: u64 = u64::MAX;

/// Errors setting up or running the socket backend. Each names what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("no interfaces configured (server.interfaces is empty)")]
    NoInterfaces,
    #[error("interface {name}: {source}")]
    Interface { name: String, source: io::Error },
    #[error("interface {name}: {op}: {source}")]
    Socket {
        name: String,
        op: &'static str,
        source: io::Error,
    },
    #[error("worker {worker}: {source}")]
    Worker { worker: usize, source: io::Error },
    #[error("starting worker threads: {0}")]
    Spawn(io::Error),
}

/// Options of the socket backend that are not part of the configuration file.
#[derive(Debug, Clone)]
pub struct SocketOptions {
    /// How often [`SocketBackend::run`] calls its `tick` (stats file, health) while serving.
    pub tick_interval: Duration,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            tick_interval: Duration::from_secs(1),
        }
    }
}

/// A configured interface the backend listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub ifindex: u32,
}

#[derive(Debug)]
struct Listener {
    iface: Interface,
    socket: Socket,
}

/// Bound, joined sockets for every configured interface, ready to [`run`](Self::run).
///
/// Binding is separate from running so that `main` can bind first (failing fast on a missing
/// interface or a port in use), tell the core the interface indexes
/// ([`Server::set_interface`]), and only then share the server with the workers.
#[derive(Debug)]
pub struct SocketBackend {
    listeners: Vec<Listener>,
    workers: usize,
}

impl SocketBackend {
    /// Create, configure and bind one socket per `config.server.interfaces` entry in the
    /// calling thread's network namespace.
    pub fn bind(config: &Config) -> Result<Self, SocketError> {
        Self::bind_port(config, SERVER_PORT)
    }

    /// [`bind`](Self::bind) on another port (tests that must not collide with a real server).
    pub fn bind_port(config: &Config, port: u16) -> Result<Self, SocketError> {
        if config.server.interfaces.is_empty() {
            return Err(SocketError::NoInterfaces);
        }
        let mut listeners = Vec::with_capacity(config.server.interfaces.len());
        for name in &config.server.interfaces {
            let ifindex = sys::if_nametoindex(name).map_err(|source| SocketError::Interface {
                name: name.clone(),
                source,
            })?;
            let iface = Interface {
                name: name.clone(),
                ifindex,
            };
            let socket = open_socket(&iface, port)?;
            listeners.push(Listener { iface, socket });
        }
        let workers = match config.server.workers {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            n => n,
        };
        Ok(SocketBackend { listeners, workers })
    }

    pub fn interfaces(&self) -> impl Iterator<Item = &Interface> {
        self.listeners.iter().map(|l| &l.iface)
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// One fresh counter block per worker, to pass to [`run`](Self::run) (and to whatever
    /// else reads the counters, such as the control socket).
    pub fn new_stats(&self) -> Vec<WorkerStats> {
        (0..self.workers).map(|_| WorkerStats::new()).collect()
    }

    /// Serve until `shutdown` is triggered (or a worker fails, which triggers it). Worker `i`
    /// counts into `stats[i]`; there must be one block per worker. `tick` runs on the calling
    /// thread every `opts.tick_interval` and once more after the workers stopped (the same
    /// contract as the XDP backend's `run`: stats files, status snapshots). Returns the final
    /// counters, which are also logged.
    pub fn run<H: Handler>(
        &self,
        handler: &H,
        stats: &[WorkerStats],
        shutdown: &Shutdown,
        opts: &SocketOptions,
        tick: &mut dyn FnMut(),
    ) -> Result<ServerSnapshot, SocketError> {
        assert_eq!(stats.len(), self.workers, "one stats block per worker");
        tracing::info!(
            interfaces = ?self.listeners.iter().map(|l| l.iface.name.as_str()).collect::<Vec<_>>(),
            workers = self.workers,
            "socket backend serving"
        );
        let result = std::thread::scope(|scope| {
            let mut handles = Vec::with_capacity(self.workers);
            let mut spawn_error = None;
            for (id, st) in stats.iter().enumerate() {
                let spawned = std::thread::Builder::new()
                    .name(format!("xdhcp6-w{id}"))
                    .spawn_scoped(scope, move || {
                        let r = worker(&self.listeners, handler, shutdown, st);
                        if r.is_err() {
                            shutdown.trigger();
                        }
                        r.map_err(|source| SocketError::Worker { worker: id, source })
                    });
                match spawned {
                    Ok(h) => handles.push(h),
                    Err(e) => {
                        spawn_error = Some(SocketError::Spawn(e));
                        shutdown.trigger();
                        break;
                    }
                }
            }
            while !shutdown.wait(opts.tick_interval) {
                tick();
            }
            let mut first_error = spawn_error;
            for h in handles {
                let r = h
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                if let Err(e) = r {
                    tracing::error!(error = %e, "worker failed");
                    first_error.get_or_insert(e);
                }
            }
            first_error.map_or(Ok(()), Err)
        });
        tick();
        let snap = snapshot(stats);
        let total = snap.total();
        tracing::info!(
            received = total.rx,
            answered = total.tx,
            drops = ?total.drops.iter().filter(|(_, n)| **n > 0).collect::<Vec<_>>(),
            "socket backend stopped"
        );
        result.map(|()| snap)
    }
}

/// The counters as the control socket reports them (without pools or failover, which the
/// backend does not know).
pub fn snapshot(stats: &[WorkerStats]) -> ServerSnapshot {
    ServerSnapshot {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        backend: "socket".to_owned(),
        workers: stats
            .iter()
            .enumerate()
            .map(|(i, s)| s.snapshot(i))
            .collect(),
        ..ServerSnapshot::default()
    }
}

/// Bind the configured interfaces, tell `server` their indexes, and serve until shutdown:
/// the whole socket backend in one call, for `xdhcp6 serve`. Counters go to `stats` when
/// blocks of its own; use [`SocketBackend`] directly to share them with a control socket.
pub fn serve<S: crate::lease::LeaseStore>(
    config: &Config,
    server: &mut Server<S>,
    shutdown: &Shutdown,
    opts: &SocketOptions,
) -> Result<ServerSnapshot, SocketError> {
    let backend = SocketBackend::bind(config)?;
    for iface in backend.interfaces() {
        server.set_interface(iface.ifindex, &iface.name);
    }
    let stats = backend.new_stats();
    backend.run(&*server, &stats, shutdown, opts, &mut || {})
}

fn open_socket(iface: &Interface, port: u16) -> Result<Socket, SocketError> {
    let err = |op: &'static str| {
        move |source| SocketError::Socket {
            name: iface.name.clone(),
            op,
            source,
        }
    };
    let s = Socket::new(Domain::IPV6, Type::DGRAM.cloexec(), Some(Protocol::UDP))
        .map_err(err("socket"))?;
    s.set_only_v6(true).map_err(err("IPV6_V6ONLY"))?;
    // Before bind: the device is part of the bind conflict check, so servers on other
    // interfaces can hold port 547 too.
    s.bind_device(Some(iface.name.as_bytes()))
        .map_err(err("SO_BINDTODEVICE"))?;
    s.set_multicast_all_v6(false)
        .map_err(err("IPV6_MULTICAST_ALL"))?;
    sys::set_recv_pktinfo(&s).map_err(err("IPV6_RECVPKTINFO"))?;
    // Best effort: the kernel caps it at net.core.rmem_max, which is fine.
    let _ = s.set_recv_buffer_size(RECV_BUFFER_BYTES);
    let addr = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0));
    s.bind(&addr.into()).map_err(err("bind [::]:547"))?;
    for group in [ALL_DHCP_RELAY_AGENTS_AND_SERVERS, ALL_DHCP_SERVERS] {
        s.join_multicast_v6(&group, iface.ifindex)
            .map_err(err("IPV6_JOIN_GROUP"))?;
    }
    Ok(s)
}

fn now_unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Link-local unicast (fe80::/10) or link-scoped multicast: needs a scope id to be routable.
fn needs_scope(a: &Ipv6Addr) -> bool {
    let s = a.segments()[0];
    (s & 0xffc0) == 0xfe80 || (a.is_multicast() && (s & 0x000f) == 0x2)
}

/// Logs the first error of each kind a worker sees; afterwards only counters move, so a
/// persistent fault cannot flood the log at packet rate.
#[derive(Default)]
struct ErrorOnce {
    recv: bool,
    send: bool,
}

fn worker<H: Handler>(
    listeners: &[Listener],
    handler: &H,
    shutdown: &Shutdown,
    stats: &WorkerStats,
) -> io::Result<()> {
    let epoll = sys::Epoll::new()?;
    for (i, l) in listeners.iter().enumerate() {
        epoll.add(&l.socket, i as u64, true)?;
    }
    epoll.add(&shutdown.wake_fd(), SHUTDOWN_TOKEN, false)?;
    let mut rx = RxBatch::new(RX_SLOT_LEN);
    let mut tx = TxBatch::new(TX_SLOT_LEN);
    let mut events = [sys::empty_event(); 8];
    let mut logged = ErrorOnce::default();
    loop {
        if shutdown.is_triggered() {
            return Ok(());
        }
        let n = epoll.wait(&mut events, EPOLL_TIMEOUT_MS)?;
        for ev in &events[..n] {
            let token = sys::event_token(ev);
            if token == SHUTDOWN_TOKEN {
                return Ok(());
            }
            let Some(l) = listeners.get(token as usize) else {
                continue;
            };
            drain(l, handler, stats, &mut rx, &mut tx, &mut logged);
        }
    }
}

/// Receive, handle and answer up to [`BATCHES_PER_WAKEUP`] batches from one socket.
fn drain<H: Handler>(
    l: &Listener,
    handler: &H,
    stats: &WorkerStats,
    rx: &mut RxBatch,
    tx: &mut TxBatch,
    logged: &mut ErrorOnce,
) {
    for _ in 0..BATCHES_PER_WAKEUP {
        let n = match rx.recv(&l.socket) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                stats.io_drop(IoDrop::RecvError, 1);
                if !logged.recv {
                    logged.recv = true;
                    tracing::warn!(interface = %l.iface.name, error = %e, "receive failed (further errors only counted)");
                }
                return;
            }
        };
        stats.rx.add(n as u64);
        let now = now_unix_secs();
        let received_at = Instant::now();
        for i in 0..n {
            let d = rx.get(i);
            stats.rx_by_type[msg_type_slot(d.payload.first().copied().unwrap_or(0))].incr();
            if d.truncated {
                stats.io_drop(IoDrop::Truncated, 1);
                continue;
            }
            let Some((dst, ifindex)) = d.pktinfo else {
                stats.io_drop(IoDrop::NoPacketInfo, 1);
                continue;
            };
            let meta = RxMeta {
                src: *d.src.ip(),
                src_port: d.src.port(),
                dst,
                ifindex,
            };
            let out = tx
                .next_buf()
                .expect("at most BATCH replies per batch of BATCH requests");
            match handler.handle(d.payload, &meta, now, out) {
                Ok(reply) => {
                    assert!(reply.len <= TX_SLOT_LEN, "core wrote past its buffer");
                    let scope = if needs_scope(&reply.dst) { ifindex } else { 0 };
                    let dst_addr = SocketAddrV6::new(reply.dst, reply.dst_port, 0, scope);
                    // Answer from the address the request was sent to when it was one of ours.
                    let src = if dst.is_multicast() {
                        Ipv6Addr::UNSPECIFIED
                    } else {
                        dst
                    };
                    stats.tx_by_type[msg_type_slot(out.first().copied().unwrap_or(0))].incr();
                    tx.commit(reply.len, dst_addr, src, ifindex);
                }
                Err(reason) => stats.drop(reason),
            }
        }
        if !tx.is_empty() && !handler.durable_barrier(tx.len()) {
            // The batch's grants did not reach stable storage: its replies must not leave.
            tx.clear();
        }
        if !tx.is_empty() {
            let o = tx.send(&l.socket);
            stats.tx.add(o.sent as u64);
            // Receive-to-send time of the batch, recorded for each reply it carried.
            let latency_ns = u64::try_from(received_at.elapsed().as_nanos()).unwrap_or(u64::MAX);
            stats.latency_ns.record_n(latency_ns, o.sent as u64);
            if o.failed > 0 {
                stats.io_drop(IoDrop::SendError, o.failed as u64);
                if !logged.send {
                    logged.send = true;
                    let e = io::Error::from_raw_os_error(o.first_error.unwrap_or(0));
                    tracing::warn!(interface = %l.iface.name, error = %e, "send failed (further errors only counted)");
                }
            }
        }
        if n < BATCH {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_rules() {
        assert!(needs_scope(&"fe80::1".parse().unwrap()));
        assert!(needs_scope(&"febf::1".parse().unwrap()));
        assert!(needs_scope(&ALL_DHCP_RELAY_AGENTS_AND_SERVERS));
        assert!(!needs_scope(&ALL_DHCP_SERVERS));
        assert!(!needs_scope(&"2001:db8::1".parse().unwrap()));
        assert!(!needs_scope(&"fec0::1".parse().unwrap()));
    }
}
