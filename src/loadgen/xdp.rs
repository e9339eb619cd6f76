//! The AF_XDP transport: raw Ethernet frames through one AF_XDP socket per NIC queue, one
//! worker per socket, on the `crate::io::xdp` UMEM and rings the server uses.
//!
//! - TX: the engine writes each DHCPv6 message straight into a free UMEM frame at the UDP
//!   payload offset; [`finish_udp6_frame`] writes Ethernet, IPv6 and UDP headers and the full
//!   UDP checksum in front of it (AF_XDP has no checksum offload). A batch goes on the TX ring
//!   in one transaction, then `sendto` kicks push it: in copy mode (veth) the need-wakeup flag
//!   is always set and each kick moves at most 32 frames (BRIEF §7), so batches are 32.
//! - RX: `ebpf/xdp_loadgen.c` on the generator's interface steers what servers and relays send
//!   back (UDP from port 547) into the socket of the receiving queue; everything else, neighbour
//!   discovery included, goes on to the kernel, so the interface keeps working. Replies are
//!   parsed with [`parse_udp6`], their UDP checksum checked, and the payload handed to the
//!   engine; the frame goes straight back to the fill ring.
//! - Several cores: a reply comes in on whatever queue the server sent it to, which need not be
//!   the queue of the worker that owns the client (a kernel-socket server hashes its replies
//!   over queues). A worker that receives a reply for another worker's client forwards the
//!   payload through a bounded channel ([`Router`]); with the XDP backend on the same number of
//!   queues, replies come back on the queue the request left from and nothing is forwarded.
//!
//! Direct clients send to ff02::1:2 (MAC 33:33:00:01:00:02) from the interface's link-local
//! address; relays and unicast send to the server's MAC, from `--server-mac` or the neighbour
//! table (resolved before the run).

use std::io;
use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aya::maps::{PerCpuArray, XskMap};
use aya::programs::{Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use xdpilone::xdp::XdpDesc;

use crate::io::xdp::{self as xdp_io, BindMode, InterfaceInfo, Kick, Xsk, XskSizes, ZeroCopy};
use crate::wire::dhcpv6::SERVER_PORT;
use crate::wire::frame::{
    finish_udp6_frame, ipv6_multicast_mac, parse_udp6, udp6_payload_offset, verify_udp6_checksum,
    MacAddr, Udp6Params, VlanTags, DEFAULT_HOP_LIMIT, ETHERNET_HEADER_LEN,
};

use super::udp::wait_fd;
use super::Transport;

/// Name of the program function in `ebpf/xdp_loadgen.c`.
pub const PROGRAM_NAME: &str = "xdp_loadgen";

/// The compiled receive program, embedded like the server's.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdp_loadgen.o"));

/// Most frames per TX batch and per RX pass.
pub const MAX_BATCH: usize = 64;
/// Frames a copy-mode `sendto` moves (the kernel's per-call budget, BRIEF §7).
const TX_PER_KICK: usize = 32;
/// Kicks per flush beyond the ones the pending frames need, when the kernel says EAGAIN.
const EXTRA_KICKS: usize = 4;
/// Largest reply forwarded between workers; longer ones are counted and dropped.
const FORWARD_MAX: usize = 1024;
/// Forwarded replies a worker's inbox holds.
const FORWARD_QUEUE: usize = 4096;
/// How long to wait for neighbour discovery to resolve the server's MAC.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Counter slots of the program's `counters` map; order matches `enum counter` in the C file.
const CNT_STEERED: u32 = 0;
const CNT_UNBOUND: u32 = 2;

/// UMEM and rings per socket (32 MiB): the fill ring stays full for RX — 4096 replies of
/// slack while the generator is descheduled on a busy machine — and the rest of the frames are
/// for TX (in flight on the TX ring or waiting for completion).
pub fn default_sizes() -> XskSizes {
    XskSizes {
        frame_size: 2048,
        frame_count: 16384,
        fill_ring: 4096,
        completion_ring: 4096,
        rx_ring: 8192,
        tx_ring: 4096,
    }
}

pub(super) fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Load program `name` of `ebpf` and attach it to interface `ifindex`: native (driver) mode,
/// else generic (SKB) mode. Returns whether native mode was got. The attachment is a BPF link
/// owned by `ebpf`: dropping it (or the process dying) detaches the program.
pub(super) fn attach_program(ebpf: &mut Ebpf, name: &str, ifindex: u32) -> io::Result<bool> {
    let prog: &mut Xdp = ebpf
        .program_mut(name)
        .ok_or_else(|| other(format!("object has no program {name}")))?
        .try_into()
        .map_err(other)?;
    prog.load().map_err(other)?;
    match prog.attach_to_if_index(ifindex, XdpMode::Driver) {
        Ok(_) => Ok(true),
        Err(native) => {
            prog.attach_to_if_index(ifindex, XdpMode::Skb)
                .map_err(|e| {
                    other(format!(
                        "attaching {name}: native: {native}; generic: {e} (another XDP program \
                         on the interface?)"
                    ))
                })?;
            Ok(false)
        }
    }
}

/// How an XDP program got attached, for reports.
pub(super) fn mode_name(native: bool) -> &'static str {
    if native {
        "native"
    } else {
        "generic"
    }
}

/// The receive program attached to the generator's interface. Dropping it detaches it (aya
/// attaches through a BPF link, which also goes away if the process dies).
pub struct RxProgram {
    ebpf: Ebpf,
    native: bool,
}

impl RxProgram {
    /// Load and attach: native (driver) mode, else generic (SKB) mode.
    pub fn attach(ifindex: u32) -> io::Result<RxProgram> {
        let mut ebpf = EbpfLoader::new().load(OBJECT).map_err(other)?;
        let native = attach_program(&mut ebpf, PROGRAM_NAME, ifindex)?;
        Ok(RxProgram { ebpf, native })
    }

    pub fn attach_mode(&self) -> &'static str {
        mode_name(self.native)
    }

    /// Steer replies received on `queue` into socket `fd`.
    pub fn register(&mut self, queue: u32, fd: i32) -> io::Result<()> {
        let map = self
            .ebpf
            .map_mut("xsks")
            .ok_or_else(|| other("object has no map xsks"))?;
        let mut xsks = XskMap::try_from(map).map_err(other)?;
        xsks.set(queue, fd, 0).map_err(other)
    }

    /// (replies steered into sockets, replies on queues without a socket).
    pub fn counters(&self) -> (u64, u64) {
        let sum = |slot: u32| -> Option<u64> {
            let map = self.ebpf.map("counters")?;
            let arr = PerCpuArray::<_, u64>::try_from(map).ok()?;
            Some(arr.get(&slot, 0).ok()?.iter().sum())
        };
        (sum(CNT_STEERED).unwrap_or(0), sum(CNT_UNBOUND).unwrap_or(0))
    }
}

/// Which worker owns the client a reply names (`None`: not ours, or unparseable).
pub type OwnerFn = dyn Fn(&[u8]) -> Option<usize> + Send + Sync;

/// A reply on its way to the worker that owns its client.
struct Forwarded {
    len: u16,
    bytes: [u8; FORWARD_MAX],
}

/// One worker's connection to the others (only with more than one core).
pub struct Router {
    me: usize,
    owner_of: Arc<OwnerFn>,
    peers: Vec<SyncSender<Box<Forwarded>>>,
    inbox: Receiver<Box<Forwarded>>,
}

impl Router {
    /// One router per worker, fully connected.
    pub fn mesh(n: usize, owner_of: Arc<OwnerFn>) -> Vec<Router> {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| sync_channel(FORWARD_QUEUE)).unzip();
        rxs.into_iter()
            .enumerate()
            .map(|(me, inbox)| Router {
                me,
                owner_of: owner_of.clone(),
                peers: txs.clone(),
                inbox,
            })
            .collect()
    }
}

/// Where frames go and come from: fixed for a run.
#[derive(Debug, Clone)]
pub struct XdpPlan {
    pub iface: String,
    /// Sockets (and workers): one per queue, queues `0..cores`.
    pub cores: usize,
    pub src_ip: Ipv6Addr,
    pub src_port: u16,
    /// The server (unicast) or ff02::1:2 (direct clients).
    pub dst: SocketAddrV6,
    /// The server's MAC for unicast destinations; `None` resolves it.
    pub dst_mac: Option<MacAddr>,
    pub batch: usize,
    pub sizes: XskSizes,
    pub zero_copy: ZeroCopy,
    /// Drop replies with a bad UDP checksum (counted). Senders on veth need
    /// `ethtool -K <dev> tx off` or their checksums arrive incomplete.
    pub verify_checksum: bool,
}

/// The sockets of a run and the program steering replies into them.
pub struct XdpSetup {
    pub program: RxProgram,
    pub transports: Vec<XdpTransport>,
    pub mode: BindMode,
    pub dst_mac: MacAddr,
}

/// The MAC of a unicast next hop: `given`, or the neighbour table's entry, after provoking
/// neighbour discovery with one datagram to the discard port if there is none yet.
pub fn resolve_mac(info: &InterfaceInfo, dst: &SocketAddrV6) -> io::Result<MacAddr> {
    if dst.ip().is_multicast() {
        return Ok(ipv6_multicast_mac(dst.ip()));
    }
    if let Some(mac) = xdp_io::neighbour_mac(info.index, dst.ip())? {
        return Ok(mac);
    }
    let scope = if dst.ip().is_unicast_link_local() {
        info.index
    } else {
        0
    };
    let sock = UdpSocket::bind("[::]:0")?;
    // The discard port: the datagram only makes the kernel resolve the address.
    let _ = sock.send_to(&[0], SocketAddrV6::new(*dst.ip(), 9, 0, scope));
    let deadline = Instant::now() + RESOLVE_TIMEOUT;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        if let Some(mac) = xdp_io::neighbour_mac(info.index, dst.ip())? {
            return Ok(mac);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "no neighbour entry for {} on {} after {} s: give --server-mac",
            dst.ip(),
            info.name,
            RESOLVE_TIMEOUT.as_secs()
        ),
    ))
}

/// Attach the receive program and bind one socket per queue. `routers` (one per core) when
/// there is more than one core.
pub fn open(plan: &XdpPlan, info: &InterfaceInfo, routers: Vec<Router>) -> io::Result<XdpSetup> {
    assert!(plan.cores >= 1 && (1..=MAX_BATCH).contains(&plan.batch));
    assert!(plan.cores == 1 || routers.len() == plan.cores);
    if plan.cores as u32 > info.rx_queues {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} cores need {} queues; {} has {} (on veth: `ethtool -L {} rx {} tx {}` on \
                 both ends)",
                plan.cores,
                plan.cores,
                info.name,
                info.rx_queues,
                info.name,
                plan.cores,
                plan.cores
            ),
        ));
    }
    let dst_mac = match plan.dst_mac {
        Some(m) => m,
        None => resolve_mac(info, &plan.dst)?,
    };
    let hdr = Udp6Params {
        dst_mac,
        src_mac: info.mac,
        vlans: VlanTags::new(),
        src_ip: plan.src_ip,
        dst_ip: *plan.dst.ip(),
        // Link-scoped multicast never leaves the link (RFC 8415 §7.1 clients send with hop
        // limit 1 through their sockets; the same here).
        hop_limit: if plan.dst.ip().is_multicast() {
            1
        } else {
            DEFAULT_HOP_LIMIT
        },
        src_port: plan.src_port,
        dst_port: plan.dst.port(),
    };
    let mut program = RxProgram::attach(info.index)?;
    let mut routers = routers.into_iter().map(Some).collect::<Vec<_>>();
    let mut transports = Vec::with_capacity(plan.cores);
    for queue in 0..plan.cores as u32 {
        let xsk = Xsk::open(&info.name, queue, &plan.sizes, plan.zero_copy).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("AF_XDP socket on {} queue {queue}: {e}", info.name),
            )
        })?;
        program.register(queue, xsk.fd())?;
        let frame = xsk.frame_size() as usize;
        // The frame must fit the UMEM frame and the link MTU.
        let max_frame = frame.min(info.mtu as usize + ETHERNET_HEADER_LEN);
        let payload_at = udp6_payload_offset(0);
        transports.push(XdpTransport {
            xsk,
            hdr,
            payload_at,
            max_payload: max_frame.saturating_sub(payload_at),
            batch: plan.batch,
            local_port: plan.src_port,
            verify_checksum: plan.verify_checksum,
            slot: None,
            tx: [XdpDesc::default(); MAX_BATCH],
            tx_n: 0,
            rx: [XdpDesc::default(); MAX_BATCH],
            recycle: [0; MAX_BATCH],
            router: routers.get_mut(queue as usize).and_then(Option::take),
            c: Counters::default(),
            last_error: None,
        });
    }
    let mode = if transports
        .iter()
        .all(|t| t.xsk.mode() == BindMode::ZeroCopy)
    {
        BindMode::ZeroCopy
    } else {
        BindMode::Copy
    };
    Ok(XdpSetup {
        program,
        transports,
        mode,
        dst_mac,
    })
}

/// What one socket counted.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    pub tx_kicks: u64,
    pub tx_kick_errors: u64,
    /// Frames the TX ring had no room for.
    pub tx_ring_full: u64,
    /// Messages not built because every UMEM frame was in flight.
    pub tx_no_frame: u64,
    /// Received frames that did not parse as IPv6/UDP, or not to our port.
    pub rx_bad_frame: u64,
    pub rx_bad_checksum: u64,
    /// Replies handed to another worker / lost because its inbox was full or too long.
    pub forwarded: u64,
    pub forward_dropped: u64,
}

/// One worker's AF_XDP socket.
pub struct XdpTransport {
    xsk: Xsk,
    hdr: Udp6Params,
    payload_at: usize,
    max_payload: usize,
    batch: usize,
    local_port: u16,
    verify_checksum: bool,
    /// The frame the last `tx_slot` handed out, until committed.
    slot: Option<u64>,
    tx: [XdpDesc; MAX_BATCH],
    tx_n: usize,
    rx: [XdpDesc; MAX_BATCH],
    recycle: [u64; MAX_BATCH],
    router: Option<Router>,
    pub c: Counters,
    last_error: Option<String>,
}

impl XdpTransport {
    pub fn mode(&self) -> BindMode {
        self.xsk.mode()
    }

    /// Push what waits on the TX ring: copy mode sends only inside `sendto`, at most
    /// [`TX_PER_KICK`] frames per call, answering EAGAIN while more wait.
    fn kick(&mut self) {
        let pending = self.xsk.tx_pending() as usize;
        if pending == 0 || !self.xsk.tx_needs_wakeup() {
            return;
        }
        let mut budget = pending.div_ceil(TX_PER_KICK) + EXTRA_KICKS;
        while budget > 0 && self.xsk.tx_pending() > 0 {
            budget -= 1;
            self.c.tx_kicks += 1;
            match self.xsk.kick_tx() {
                Ok(Kick::Done | Kick::Busy) => {}
                Err(e) => {
                    self.c.tx_kick_errors += 1;
                    self.last_error = Some(e.to_string());
                    break;
                }
            }
        }
    }

    /// Completed TX frames back to the free list; the fill ring topped up.
    fn service(&mut self) {
        self.xsk.reap_completions(4 * MAX_BATCH as u32);
        if self.xsk.fill_needs_wakeup() {
            self.xsk.kick_rx();
        }
    }

    /// Hand one received payload to its owner: `f` here, or another worker's inbox.
    fn deliver(
        router: Option<&Router>,
        c: &mut Counters,
        payload: &[u8],
        f: &mut dyn FnMut(&[u8]),
    ) {
        let Some(r) = router else {
            return f(payload);
        };
        match (r.owner_of)(payload) {
            Some(owner) if owner != r.me && owner < r.peers.len() => {
                if payload.len() > FORWARD_MAX {
                    c.forward_dropped += 1;
                    return;
                }
                let mut m = Box::new(Forwarded {
                    len: payload.len() as u16,
                    bytes: [0; FORWARD_MAX],
                });
                m.bytes[..payload.len()].copy_from_slice(payload);
                match r.peers[owner].try_send(m) {
                    Ok(()) => c.forwarded += 1,
                    Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                        c.forward_dropped += 1
                    }
                }
            }
            // Ours, or nobody's: the engine counts what it cannot match.
            _ => f(payload),
        }
    }

    fn receive_ring(&mut self, f: &mut dyn FnMut(&[u8])) -> usize {
        let n = self.xsk.receive(&mut self.rx[..self.batch]);
        let mut delivered = 0;
        for i in 0..n {
            self.xsk.prefetch_ahead(&self.rx[..n], i);
            let d = self.rx[i];
            self.recycle[i] = d.addr;
            let Some(buf) = self.xsk.frame_mut(&d) else {
                self.c.rx_bad_frame += 1;
                continue;
            };
            let frame = &buf[..d.len as usize];
            let parsed = match parse_udp6(frame) {
                Ok(p) if p.dst_port == self.local_port && p.src_port == SERVER_PORT => p,
                _ => {
                    self.c.rx_bad_frame += 1;
                    continue;
                }
            };
            if self.verify_checksum && verify_udp6_checksum(frame, &parsed).is_err() {
                self.c.rx_bad_checksum += 1;
                continue;
            }
            let Some(payload) = parsed.payload(frame) else {
                self.c.rx_bad_frame += 1;
                continue;
            };
            Self::deliver(self.router.as_ref(), &mut self.c, payload, f);
            delivered += 1;
        }
        if n > 0 {
            self.xsk.recycle(&self.recycle[..n]);
        }
        delivered
    }

    fn receive_forwarded(&mut self, f: &mut dyn FnMut(&[u8])) -> usize {
        let Some(r) = &self.router else {
            return 0;
        };
        let mut n = 0;
        // Bounded: at most one inbox's worth per call.
        while n < FORWARD_QUEUE {
            match r.inbox.try_recv() {
                Ok(m) => {
                    f(&m.bytes[..usize::from(m.len)]);
                    n += 1;
                }
                Err(_) => break,
            }
        }
        n
    }

    /// Transport counters by name, for the report: ours, then the kernel's statistics of the
    /// socket (replies it dropped before our RX ring: no fill-ring frame, or the ring full).
    pub fn counter_list(&self) -> [(&'static str, u64); 11] {
        let c = &self.c;
        let k = self.xsk.kernel_stats().unwrap_or_default();
        [
            ("tx_kicks", c.tx_kicks),
            ("tx_kick_errors", c.tx_kick_errors),
            ("tx_ring_full", c.tx_ring_full),
            ("tx_no_frame", c.tx_no_frame),
            ("rx_bad_frame", c.rx_bad_frame),
            ("rx_bad_checksum", c.rx_bad_checksum),
            ("forwarded", c.forwarded),
            ("forward_dropped", c.forward_dropped),
            ("xsk_rx_dropped", k.rx_dropped),
            ("xsk_rx_ring_full", k.rx_ring_full),
            ("xsk_rx_fill_ring_empty", k.rx_fill_ring_empty_descs),
        ]
    }
}

impl Transport for XdpTransport {
    fn tx_slot(&mut self) -> Option<&mut [u8]> {
        if self.tx_n >= self.batch {
            return None;
        }
        if self.slot.is_none() {
            let addr = match self.xsk.alloc_frame() {
                Some(a) => a,
                None => {
                    // Every frame in flight: collect what the kernel has finished sending.
                    self.kick();
                    self.xsk.reap_completions(4 * MAX_BATCH as u32);
                    match self.xsk.alloc_frame() {
                        Some(a) => a,
                        None => {
                            self.c.tx_no_frame += 1;
                            return None;
                        }
                    }
                }
            };
            self.slot = Some(addr);
        }
        let addr = self.slot?;
        let (at, max) = (self.payload_at, self.max_payload);
        self.xsk.owned_frame_mut(addr)?.get_mut(at..at + max)
    }

    fn tx_commit(&mut self, len: usize) {
        assert!(len <= self.max_payload && self.tx_n < self.batch);
        let addr = self.slot.take().expect("tx_commit without tx_slot");
        let hdr = self.hdr;
        let frame_len = self
            .xsk
            .owned_frame_mut(addr)
            .and_then(|buf| finish_udp6_frame(buf, &hdr, len).ok());
        match frame_len {
            Some(n) => {
                self.tx[self.tx_n] = XdpDesc {
                    addr,
                    len: n as u32,
                    options: 0,
                };
                self.tx_n += 1;
            }
            // Cannot happen with max_payload checked above; keep the frame.
            None => self.xsk.recycle(&[addr]),
        }
    }

    fn flush(&mut self) -> u64 {
        let n = self.tx_n;
        self.tx_n = 0;
        let mut dropped = 0;
        if n > 0 {
            let sent = self.xsk.transmit(&self.tx[..n]);
            if sent < n {
                dropped = (n - sent) as u64;
                self.c.tx_ring_full += dropped;
                let mut unsent = [0u64; MAX_BATCH];
                for (u, d) in unsent.iter_mut().zip(&self.tx[sent..n]) {
                    *u = d.addr;
                }
                self.xsk.recycle(&unsent[..n - sent]);
            }
        }
        self.kick();
        self.service();
        dropped
    }

    fn recv(&mut self, wait: Duration, f: &mut dyn FnMut(&[u8])) -> io::Result<usize> {
        self.service();
        // Frames left on the TX ring by an EAGAIN go out now.
        self.kick();
        let mut n = self.receive_forwarded(f) + self.receive_ring(f);
        if n == 0 && !wait.is_zero() {
            // Forwarded replies do not wake the poll; the wait is at most a millisecond.
            if wait_fd(self.xsk.fd(), libc::POLLIN, wait)? {
                n += self.receive_ring(f);
            }
            n += self.receive_forwarded(f);
        }
        Ok(n)
    }

    fn tx_errors(&self) -> (u64, Option<String>) {
        (
            self.c.tx_kick_errors + self.c.tx_ring_full + self.c.tx_no_frame,
            self.last_error.clone(),
        )
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        self.counter_list().to_vec()
    }
}
