//! Per-core workers: each drains its AF_XDP sockets in batches, answers in place in the same
//! UMEM frame, transmits in a batch and recycles frames. No allocation, no logging and no
//! syscalls per packet: per batch there is one clock read, the TX kicks the need-wakeup flag
//! asks for (copy mode: every batch, ≤ 32 frames per `sendto`), and `poll()` when every socket
//! is idle.
//!
//! Counting is the socket backend's (`src/io/socket.rs`): one [`WorkerStats`] per worker,
//! written by that worker only — `rx`, `tx`, drops by [`DropReason`] and by [`IoDrop`],
//! messages by type, the RX→TX latency of every answer, `fill_ring_empty` and the RX/TX ring
//! occupancy gauges. What only AF_XDP has (TX kicks, the kernel's XDP_STATISTICS) is kept per
//! socket in [`SocketCounters`] for `xdhcp6 status`.
//!
//! # The request and the reply share one frame
//!
//! The reply is built in the request's own UMEM frame, so the core cannot borrow the request
//! from the frame while writing the reply into it. The worker copies the request's DHCPv6
//! payload into a per-worker scratch buffer and lets the core write straight into the frame at
//! the reply's payload offset, so the reply is written once, where it is sent from. The
//! alternative, a scratch reply copied into the frame, moves the reply instead, which is the
//! larger of the two for everything a server answers (52–90-byte requests against 155–198-byte
//! replies in `bench/xdp_copy.rs`). Measured with the real core, the two are within run-to-run
//! noise of each other (±15 % on a shared 2-core machine; the copy is ≈ 10 ns of a 400–900 ns
//! message), so the smaller copy stays.

use std::net::Ipv6Addr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use xdpilone::xdp::XdpDesc;

use crate::io::shutdown::Shutdown;
use crate::io::Handler;
use crate::proto::{DropReason, RxMeta};
use crate::stats::{msg_type_slot, IoDrop, WorkerStats};
use crate::wire::frame::{
    finish_reply, parse_udp6, reply_payload_offset, verify_udp6_checksum, FrameError, ReplyParams,
    UdpFrame, IPV6_HEADER_LEN, UDP_HEADER_LEN,
};

use super::sys::{self, InterfaceInfo, Kick};
use super::xsk::{KernelStats, Xsk};
use super::DHCPV6_SERVER_PORT;

/// Frames per copy-mode TX kick (the kernel's per-call budget, BRIEF §7).
const COPY_MODE_TX_PER_KICK: u32 = 32;
/// Longest `poll()` sleep; shutdown wakes it earlier through its descriptor.
const IDLE_POLL_MS: i32 = 100;
/// How often a worker refreshes the kernel socket statistics.
const KERNEL_STATS_EVERY: Duration = Duration::from_secs(1);
/// Largest batch a worker takes off an RX ring at once.
pub const MAX_BATCH: usize = crate::config::MAX_XDP_BATCH;
/// Scratch buffer the request payload is copied into (no UMEM frame is larger).
const SCRATCH_LEN: usize = 4096;

/// Counters only AF_XDP has, per socket, written by its worker only (relaxed atomics).
#[repr(align(128))]
#[derive(Default)]
pub struct SocketCounters {
    pub tx_kicks: AtomicU64,
    pub tx_kick_errors: AtomicU64,
    pub k_rx_dropped: AtomicU64,
    pub k_rx_invalid_descs: AtomicU64,
    pub k_tx_invalid_descs: AtomicU64,
    pub k_rx_ring_full: AtomicU64,
    pub k_rx_fill_ring_empty_descs: AtomicU64,
    pub k_tx_ring_empty_descs: AtomicU64,
}

impl SocketCounters {
    fn bump(c: &AtomicU64, n: u64) {
        // Single writer: a relaxed load+store is enough and avoids a locked RMW.
        c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
    }

    fn set_kernel(&self, k: &KernelStats) {
        self.k_rx_dropped.store(k.rx_dropped, Relaxed);
        self.k_rx_invalid_descs.store(k.rx_invalid_descs, Relaxed);
        self.k_tx_invalid_descs.store(k.tx_invalid_descs, Relaxed);
        self.k_rx_ring_full.store(k.rx_ring_full, Relaxed);
        self.k_rx_fill_ring_empty_descs
            .store(k.rx_fill_ring_empty_descs, Relaxed);
        self.k_tx_ring_empty_descs
            .store(k.tx_ring_empty_descs, Relaxed);
    }

    pub fn kernel(&self) -> KernelStats {
        KernelStats {
            rx_dropped: self.k_rx_dropped.load(Relaxed),
            rx_invalid_descs: self.k_rx_invalid_descs.load(Relaxed),
            tx_invalid_descs: self.k_tx_invalid_descs.load(Relaxed),
            rx_ring_full: self.k_rx_ring_full.load(Relaxed),
            rx_fill_ring_empty_descs: self.k_rx_fill_ring_empty_descs.load(Relaxed),
            tx_ring_empty_descs: self.k_tx_ring_empty_descs.load(Relaxed),
        }
    }
}

/// One socket as a worker drives it.
pub struct SocketCtx {
    pub xsk: Xsk,
    pub iface: Arc<InterfaceInfo>,
    pub counters: Arc<SocketCounters>,
}

/// Worker knobs.
#[derive(Debug, Clone, Copy)]
pub struct WorkerOpts {
    pub batch: usize,
    pub verify_udp_checksum: bool,
    /// Busy-poll instead of sleeping in `poll()` (sockets were configured for it).
    pub busy_poll: bool,
    /// How long an idle worker watches its RX rings before it sleeps in `poll()` (zero: it
    /// sleeps at once).
    pub idle_spin: Duration,
    pub cpu: Option<usize>,
}

/// Stand-in for "no handler" in the bare echo; never called.
pub enum NoHandler {}

impl Handler for NoHandler {
    fn handle(
        &self,
        _: &[u8],
        _: &RxMeta,
        _: u64,
        _: &mut [u8],
    ) -> Result<crate::proto::ReplyMeta, DropReason> {
        match *self {}
    }
}

/// Why a frame was not answered: by the backend, or by the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drop_ {
    Io(IoDrop),
    Core(DropReason),
}

/// The backend's drop reason for a frame the codec rejected.
fn io_drop_for(e: FrameError) -> IoDrop {
    match e {
        FrameError::BadChecksum | FrameError::ZeroChecksum => IoDrop::BadChecksum,
        FrameError::Fragment => IoDrop::Fragment,
        _ => IoDrop::BadFrame,
    }
}

impl From<FrameError> for Drop_ {
    fn from(e: FrameError) -> Self {
        Drop_::Io(io_drop_for(e))
    }
}

/// Per-worker buffers, allocated once when the worker starts.
struct Scratch {
    descs: [XdpDesc; MAX_BATCH],
    tx: [XdpDesc; MAX_BATCH],
    recycle: [u64; MAX_BATCH],
    request: Box<[u8]>,
}

/// Run until `shutdown` triggers. `handler` `None` is the bare echo. Owns its sockets;
/// dropping them at the end closes them.
pub fn run<H: Handler>(
    mut sockets: Vec<SocketCtx>,
    handler: Option<&H>,
    opts: WorkerOpts,
    stats: &WorkerStats,
    shutdown: &Shutdown,
) -> std::io::Result<()> {
    assert!(!sockets.is_empty(), "a worker needs at least one socket");
    assert!(
        (1..=MAX_BATCH).contains(&opts.batch),
        "batch size out of range"
    );
    if let Some(cpu) = opts.cpu {
        if let Err(e) = sys::pin_current_thread(cpu) {
            tracing::warn!(cpu, error = %e, "could not pin XDP worker; running unpinned");
        }
    }
    let mut scratch = Scratch {
        descs: [XdpDesc::default(); MAX_BATCH],
        tx: [XdpDesc::default(); MAX_BATCH],
        recycle: [0u64; MAX_BATCH],
        request: vec![0u8; SCRATCH_LEN].into_boxed_slice(),
    };
    // The sockets, then the shutdown descriptor (readable once shutdown triggers).
    let mut pollfds: Vec<libc::pollfd> = sockets
        .iter()
        .map(|s| s.xsk.fd())
        .chain([shutdown.as_raw_fd()])
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let mut last_stats = Instant::now();

    while !shutdown.is_triggered() {
        let mut busy = false;
        for s in sockets.iter_mut() {
            busy |= drive(s, handler, &opts, stats, &mut scratch);
        }
        if last_stats.elapsed() >= KERNEL_STATS_EVERY {
            last_stats = Instant::now();
            refresh_kernel_stats(&sockets, stats);
        }
        if busy {
            continue;
        }
        if opts.busy_poll {
            for s in &sockets {
                sys::kick_rx(s.xsk.fd());
            }
            continue;
        }
        // Nothing to do this instant. Under load the next frame is microseconds away, and a
        // `poll()` sleep and wake-up costs more than that (a context switch, a wake-up from
        // the receiving CPU): spin on the RX rings a little first, syscall-free.
        if !opts.idle_spin.is_zero() && spin_for_rx(&sockets, opts.idle_spin) {
            continue;
        }
        // Idle: sleep until a socket has RX data. Frames still in flight on TX (zero-copy
        // completes asynchronously) shorten the sleep so they are reaped promptly.
        let in_flight = sockets.iter().any(|s| s.xsk.tx_pending() > 0);
        let timeout = if in_flight { 1 } else { IDLE_POLL_MS };
        for p in pollfds.iter_mut() {
            p.revents = 0;
        }
        if let Err(e) = sys::poll(&mut pollfds, timeout) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                tracing::error!(error = %e, "poll on AF_XDP sockets failed; worker stopping");
                return Err(e);
            }
        }
    }
    refresh_kernel_stats(&sockets, stats);
    Ok(())
}

/// Watch the RX rings for up to `limit`: true as soon as one has a frame.
fn spin_for_rx(sockets: &[SocketCtx], limit: Duration) -> bool {
    let start = Instant::now();
    loop {
        // Several checks per clock read: a ring check is a load of the producer index.
        for _ in 0..64 {
            if sockets.iter().any(|s| s.xsk.rx_available() > 0) {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= limit {
            return false;
        }
    }
}

/// Read every socket's XDP_STATISTICS into its [`SocketCounters`] (for `xdhcp6 status`) and
/// their sum into the worker's [`WorkerStats::xsk`] (for `xdhcp6 stats` and the metrics).
fn refresh_kernel_stats(sockets: &[SocketCtx], stats: &WorkerStats) {
    let mut sum = KernelStats::default();
    let (mut kicks, mut kick_errors) = (0, 0);
    for s in sockets {
        if let Ok(k) = s.xsk.kernel_stats() {
            s.counters.set_kernel(&k);
        }
        let k = s.counters.kernel();
        sum.rx_dropped += k.rx_dropped;
        sum.rx_ring_full += k.rx_ring_full;
        sum.rx_fill_ring_empty_descs += k.rx_fill_ring_empty_descs;
        sum.tx_ring_empty_descs += k.tx_ring_empty_descs;
        sum.rx_invalid_descs += k.rx_invalid_descs + k.tx_invalid_descs;
        kicks += s.counters.tx_kicks.load(Relaxed);
        kick_errors += s.counters.tx_kick_errors.load(Relaxed);
    }
    let x = &stats.xsk;
    x.rx_dropped.set(sum.rx_dropped);
    x.rx_ring_full.set(sum.rx_ring_full);
    x.rx_fill_ring_empty.set(sum.rx_fill_ring_empty_descs);
    x.tx_ring_empty.set(sum.tx_ring_empty_descs);
    x.invalid_descs.set(sum.rx_invalid_descs);
    x.tx_kicks.set(kicks);
    x.tx_kick_errors.set(kick_errors);
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One pass over one socket. Returns whether it did any work.
fn drive<H: Handler>(
    s: &mut SocketCtx,
    handler: Option<&H>,
    opts: &WorkerOpts,
    stats: &WorkerStats,
    sc: &mut Scratch,
) -> bool {
    let c = &*s.counters;
    let reaped = s.xsk.reap_completions(MAX_BATCH as u32 * 4);
    s.xsk.refill();
    if s.xsk.fill_level() == 0 {
        stats.fill_ring_empty.incr();
    }
    if s.xsk.fill_needs_wakeup() {
        // Zero-copy drivers may sleep until the fill ring is kicked.
        sys::kick_rx(s.xsk.fd());
    }

    stats.rx_ring_occupancy.set(u64::from(s.xsk.rx_available()));
    let n = s.xsk.receive(&mut sc.descs[..opts.batch]);
    if n == 0 {
        stats.tx_ring_occupancy.set(u64::from(s.xsk.tx_pending()));
        return reaped > 0;
    }
    let received_at = Instant::now();
    let now_secs = unix_now();
    stats.rx.add(n as u64);
    let mut n_tx = 0;
    let mut n_recycle = 0;
    for (i, d) in sc.descs[..n].iter().enumerate() {
        s.xsk.prefetch_ahead(&sc.descs[..n], i);
        let result = match s.xsk.frame_mut(d) {
            None => Err(Drop_::Io(IoDrop::BadFrame)),
            Some(buf) => match handler {
                Some(h) => answer(
                    h,
                    buf,
                    d.len as usize,
                    &s.iface,
                    opts,
                    now_secs,
                    stats,
                    &mut sc.request,
                ),
                None => echo(buf, d.len as usize, &s.iface),
            },
        };
        match result {
            Ok(len) => {
                sc.tx[n_tx] = XdpDesc {
                    addr: d.addr,
                    len: len as u32,
                    options: 0,
                };
                n_tx += 1;
            }
            Err(reason) => {
                match reason {
                    Drop_::Io(r) => stats.io_drop(r, 1),
                    Drop_::Core(r) => stats.drop(r),
                }
                sc.recycle[n_recycle] = d.addr;
                n_recycle += 1;
            }
        }
    }
    if n_tx > 0 && handler.is_some_and(|h| !h.durable_barrier(n_tx)) {
        // The batch's grants did not reach stable storage: its replies must not leave; their
        // frames go back to the fill ring.
        for d in &sc.tx[..n_tx] {
            sc.recycle[n_recycle] = d.addr;
            n_recycle += 1;
        }
        n_tx = 0;
    }
    let sent = s.xsk.transmit(&sc.tx[..n_tx]);
    if sent < n_tx {
        stats.io_drop(IoDrop::TxRingFull, (n_tx - sent) as u64);
        for d in &sc.tx[sent..n_tx] {
            sc.recycle[n_recycle] = d.addr;
            n_recycle += 1;
        }
    }
    if n_recycle > 0 {
        // A dropped request's frame goes straight back to the fill ring.
        s.xsk.recycle(&sc.recycle[..n_recycle]);
    }

    // TX wake-up: with need-wakeup set (always, in copy mode) the kernel sends only inside
    // `sendto`, at most 32 frames per call, answering EAGAIN while more wait.
    let pending = s.xsk.tx_pending();
    if pending > 0 && s.xsk.tx_needs_wakeup() {
        let mut budget = pending.div_ceil(COPY_MODE_TX_PER_KICK) + 1;
        while budget > 0 && s.xsk.tx_pending() > 0 {
            budget -= 1;
            SocketCounters::bump(&c.tx_kicks, 1);
            match s.xsk.kick_tx() {
                Ok(Kick::Done | Kick::Busy) => {}
                Err(_) => {
                    SocketCounters::bump(&c.tx_kick_errors, 1);
                    break;
                }
            }
        }
    }
    stats.tx.add(sent as u64);
    stats.tx_ring_occupancy.set(u64::from(s.xsk.tx_pending()));
    // Receive-to-transmit time of the batch (after the kick: in copy mode the frames have
    // left by then), recorded for each reply it carried.
    if sent > 0 {
        let latency_ns = u64::try_from(received_at.elapsed().as_nanos()).unwrap_or(u64::MAX);
        for _ in 0..sent {
            stats.latency_ns.record(latency_ns);
        }
    }
    true
}

/// Source address for a reply to `dst` on `iface`: link-local for link-local destinations
/// (direct clients), else the address the request was sent to if it is one of ours, else a
/// global address of the interface (relays reaching us through ff05::1:3, or off-link).
fn reply_source(iface: &InterfaceInfo, req_dst: &Ipv6Addr, dst: &Ipv6Addr) -> Option<Ipv6Addr> {
    if dst.is_unicast_link_local() {
        return iface.link_local.first().copied();
    }
    if iface.global.contains(req_dst) {
        return Some(*req_dst);
    }
    iface.global.first().copied()
}

/// Parse and check a received frame: well-formed IPv6/UDP to the server port, from an
/// address that can be answered, with a good checksum if the policy says so.
fn accept(frame: &[u8], verify_checksum: bool) -> Result<UdpFrame, Drop_> {
    let req = parse_udp6(frame)?;
    if req.dst_port != DHCPV6_SERVER_PORT
        || req.src_ip.is_multicast()
        || req.src_ip.is_unspecified()
    {
        // The XDP program steers only port 547; an unanswerable source is not a client.
        return Err(Drop_::Io(IoDrop::BadFrame));
    }
    if verify_checksum {
        verify_udp6_checksum(frame, &req)?;
    }
    Ok(req)
}

#[allow(clippy::too_many_arguments)]
fn answer<H: Handler>(
    h: &H,
    buf: &mut [u8],
    rx_len: usize,
    iface: &InterfaceInfo,
    opts: &WorkerOpts,
    now_secs: u64,
    stats: &WorkerStats,
    scratch: &mut [u8],
) -> Result<usize, Drop_> {
    let frame = buf.get(..rx_len).ok_or(Drop_::Io(IoDrop::BadFrame))?;
    let req = accept(frame, opts.verify_udp_checksum)?;
    let payload = req.payload(frame).ok_or(Drop_::Io(IoDrop::BadFrame))?;
    stats.rx_by_type[msg_type_slot(payload.first().copied().unwrap_or(0))].incr();
    let request = scratch
        .get_mut(..payload.len())
        .ok_or(Drop_::Io(IoDrop::BadFrame))?;
    request.copy_from_slice(payload);
    let meta = RxMeta {
        src: req.src_ip,
        src_port: req.src_port,
        dst: req.dst_ip,
        ifindex: iface.index,
    };
    // The reply must fit the UMEM frame and the link MTU (IPv6 + UDP headers included).
    let payload_at = reply_payload_offset(&req);
    let mtu_room = (iface.mtu as usize).saturating_sub(IPV6_HEADER_LEN + UDP_HEADER_LEN);
    let end = buf.len().min(payload_at + mtu_room);
    let out = buf
        .get_mut(payload_at..end)
        .ok_or(Drop_::Io(IoDrop::BadFrame))?;
    let reply = h
        .handle(request, &meta, now_secs, out)
        .map_err(Drop_::Core)?;
    assert!(reply.len <= out.len(), "core wrote past its buffer");
    let src = reply_source(iface, &req.dst_ip, &reply.dst).ok_or(Drop_::Io(IoDrop::SendError))?;
    stats.tx_by_type[msg_type_slot(out.first().copied().unwrap_or(0))].incr();
    let params = ReplyParams {
        src_mac: iface.mac,
        src_ip: src,
        dst_ip: reply.dst,
        hop_limit: crate::wire::frame::DEFAULT_HOP_LIMIT,
        src_port: DHCPV6_SERVER_PORT,
        dst_port: reply.dst_port,
    };
    // Direct client or relay, on-link or behind a router: the frame came from its source
    // MAC, which `finish_reply` answers to, keeping the request's VLAN tags.
    finish_reply(buf, &req, &params, reply.len).map_err(|_| Drop_::Io(IoDrop::BadFrame))
}

/// The bare echo: swap MACs, addresses and ports. A unicast request without extension headers
/// is swapped in place and its checksum stays valid (the sum is symmetric); a multicast one is
/// answered from our link-local address, which needs the checksum recomputed.
fn echo(buf: &mut [u8], rx_len: usize, iface: &InterfaceInfo) -> Result<usize, Drop_> {
    let frame = buf.get(..rx_len).ok_or(Drop_::Io(IoDrop::BadFrame))?;
    let req = accept(frame, false)?;
    let payload_at = reply_payload_offset(&req);
    if !req.dst_ip.is_multicast() && req.payload_offset == payload_at {
        buf[0..6].copy_from_slice(&req.src_mac);
        buf[6..12].copy_from_slice(&req.dst_mac);
        let ip = req.ip_offset;
        buf[ip + 8..ip + 24].copy_from_slice(&req.dst_ip.octets());
        buf[ip + 24..ip + 40].copy_from_slice(&req.src_ip.octets());
        let udp = req.udp_offset;
        buf[udp..udp + 2].copy_from_slice(&req.dst_port.to_be_bytes());
        buf[udp + 2..udp + 4].copy_from_slice(&req.src_port.to_be_bytes());
        return Ok(payload_at + req.payload_len);
    }
    let src = if req.dst_ip.is_multicast() {
        iface.link_local.first().copied()
    } else {
        Some(req.dst_ip)
    };
    let src = src.ok_or(Drop_::Io(IoDrop::SendError))?;
    buf.copy_within(req.payload_range(), payload_at);
    let params = ReplyParams::answering(&req, iface.mac, src);
    finish_reply(buf, &req, &params, req.payload_len).map_err(|_| Drop_::Io(IoDrop::BadFrame))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ReplyMeta;
    use crate::wire::frame::{build_udp6_frame, Udp6Params, VlanTag, VlanTags, TPID_8021Q};

    fn iface() -> InterfaceInfo {
        InterfaceInfo {
            name: "x".into(),
            index: 1,
            mac: [2, 0, 0, 0, 0, 1],
            mtu: 1500,
            link_local: vec!["fe80::1".parse().unwrap()],
            global: vec![
                "2001:db8::1".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
            ],
            rx_queues: 1,
        }
    }

    #[test]
    fn reply_source_rules() {
        let i = iface();
        let ll: Ipv6Addr = "fe80::9".parse().unwrap();
        let relay: Ipv6Addr = "2001:db8:9::1".parse().unwrap();
        let a = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        // Direct client: our link-local.
        assert_eq!(
            reply_source(&i, &a("ff02::1:2"), &ll),
            Some(i.link_local[0])
        );
        // Relay unicasting to our second address: answered from it.
        assert_eq!(
            reply_source(&i, &a("2001:db8::2"), &relay),
            Some(i.global[1])
        );
        // Relay via ff05::1:3, or to an address not ours: our first global address.
        assert_eq!(reply_source(&i, &a("ff05::1:3"), &relay), Some(i.global[0]));
        assert_eq!(
            reply_source(&i, &a("2001:db8:5::5"), &relay),
            Some(i.global[0])
        );
        let none = InterfaceInfo {
            global: vec![],
            ..iface()
        };
        assert_eq!(reply_source(&none, &a("ff05::1:3"), &relay), None);
    }

    /// Answers with a Reply (7) of `extra` more bytes than the request, to the client port.
    struct Grow(usize);
    impl Handler for Grow {
        fn handle(
            &self,
            req: &[u8],
            meta: &RxMeta,
            _: u64,
            out: &mut [u8],
        ) -> Result<ReplyMeta, DropReason> {
            let len = req.len() + self.0;
            let out = out.get_mut(..len).ok_or(DropReason::BufferTooSmall)?;
            out[..req.len()].copy_from_slice(req);
            out[0] = 7;
            out[req.len()..].fill(0xab);
            Ok(ReplyMeta {
                len,
                dst: meta.src,
                dst_port: meta.src_port,
            })
        }
    }

    fn request(vlans: &[VlanTag], payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; 2048];
        let p = Udp6Params {
            dst_mac: [0x33, 0x33, 0, 1, 0, 2],
            src_mac: [2, 0, 0, 0, 0, 2],
            vlans: VlanTags::from_slice(vlans).unwrap(),
            src_ip: "fe80::2".parse().unwrap(),
            dst_ip: "ff02::1:2".parse().unwrap(),
            hop_limit: 1,
            src_port: 546,
            dst_port: 547,
        };
        let n = build_udp6_frame(&mut buf, &p, payload).unwrap();
        buf.truncate(n);
        buf
    }

    fn opts() -> WorkerOpts {
        WorkerOpts {
            batch: 64,
            verify_udp_checksum: true,
            busy_poll: false,
            idle_spin: Duration::ZERO,
            cpu: None,
        }
    }

    #[test]
    fn answers_in_place_with_tag_and_valid_checksum() {
        let tag = VlanTag::new(TPID_8021Q, 42);
        let f = request(&[tag], b"\x01\x00\x00\x07hello");
        let rx_len = f.len();
        let mut buf = f.clone();
        buf.resize(2048, 0);
        let stats = WorkerStats::new();
        let mut scratch = vec![0u8; SCRATCH_LEN];
        let len = answer(
            &Grow(40),
            &mut buf,
            rx_len,
            &iface(),
            &opts(),
            0,
            &stats,
            &mut scratch,
        )
        .unwrap();
        let r = parse_udp6(&buf[..len]).unwrap();
        verify_udp6_checksum(&buf[..len], &r).unwrap();
        assert_eq!(r.vlans.as_slice(), &[tag], "VLAN tag kept");
        assert_eq!(r.dst_mac, [2, 0, 0, 0, 0, 2]);
        assert_eq!(r.src_mac, iface().mac);
        assert_eq!(r.src_ip, iface().link_local[0]);
        assert_eq!(r.dst_ip, "fe80::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!((r.src_port, r.dst_port), (547, 546));
        let p = r.payload(&buf[..len]).unwrap();
        assert_eq!(&p[..9], b"\x07\x00\x00\x07hello");
        assert_eq!(p.len(), 9 + 40);
        assert_eq!(stats.rx_by_type[1].get(), 1);
        assert_eq!(stats.tx_by_type[7].get(), 1);
    }

    #[test]
    fn bad_frames_map_to_io_drops() {
        let stats = WorkerStats::new();
        let mut scratch = vec![0u8; SCRATCH_LEN];
        let mut f = request(&[], b"\x01\x00\x00\x07hello");
        let n = f.len();
        f[n - 1] ^= 0xff;
        let mut buf = f.clone();
        buf.resize(2048, 0);
        let r = answer(
            &Grow(0),
            &mut buf,
            n,
            &iface(),
            &opts(),
            0,
            &stats,
            &mut scratch,
        );
        assert_eq!(r, Err(Drop_::Io(IoDrop::BadChecksum)));
        let r = answer(
            &Grow(0),
            &mut buf,
            20,
            &iface(),
            &opts(),
            0,
            &stats,
            &mut scratch,
        );
        assert_eq!(r, Err(Drop_::Io(IoDrop::BadFrame)));
        // A reply larger than the link MTU allows is refused by the core's buffer bound.
        let f = request(&[], b"\x01\x00\x00\x07hello");
        let mut buf = f.clone();
        buf.resize(2048, 0);
        let r = answer(
            &Grow(1500),
            &mut buf,
            f.len(),
            &iface(),
            &opts(),
            0,
            &stats,
            &mut scratch,
        );
        assert_eq!(r, Err(Drop_::Core(DropReason::BufferTooSmall)));
        assert_eq!(io_drop_for(FrameError::Fragment), IoDrop::Fragment);
        assert_eq!(io_drop_for(FrameError::ZeroChecksum), IoDrop::BadChecksum);
    }

    #[test]
    fn echo_swaps_and_keeps_checksum_valid() {
        let f = request(&[], b"\x01\x00\x00\x07hello");
        let mut buf = f.clone();
        buf.resize(2048, 0);
        let len = echo(&mut buf, f.len(), &iface()).unwrap();
        let r = parse_udp6(&buf[..len]).unwrap();
        verify_udp6_checksum(&buf[..len], &r).unwrap();
        assert_eq!((r.src_port, r.dst_port), (547, 546));
        assert_eq!(r.src_ip, iface().link_local[0]);
    }
}
