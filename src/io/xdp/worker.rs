//! Per-core workers: each drains its AF_XDP sockets in batches, answers in place in the same
//! UMEM frame, transmits in a batch and recycles frames. No allocation, no logging and no
//! syscalls per packet: per batch there is at most one clock read, the TX kicks the
//! need-wakeup flag asks for (copy mode: every batch, ≤ 32 frames per `sendto`), and `poll()`
//! when every socket is idle.

use std::net::Ipv6Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use xdpilone::xdp::XdpDesc;

use crate::proto::{DropReason, ReplyMeta, RxMeta};

use super::frame::{self, FrameDrop, Parsed, ReplyAddrs};
use super::sys::{self, InterfaceInfo, Kick};
use super::xsk::{KernelStats, Xsk};
use super::Responder;

/// Frames per copy-mode TX kick (the kernel's per-call budget, BRIEF §7).
const COPY_MODE_TX_PER_KICK: u32 = 32;
/// Longest `poll()` sleep, so a stop request is noticed promptly.
const IDLE_POLL_MS: i32 = 100;
/// How often a worker refreshes the kernel socket statistics.
const KERNEL_STATS_EVERY: Duration = Duration::from_secs(1);
/// Largest batch a worker takes off an RX ring at once.
pub const MAX_BATCH: usize = 256;
/// Scratch buffer the core writes a reply into (larger than any UMEM frame).
const SCRATCH_LEN: usize = 4096;

/// What the worker does with a received request.
pub enum DataPath<R> {
    /// Run the protocol core and answer in place.
    Serve(Arc<R>),
    /// Bare echo (swap MACs, addresses and ports): the ceiling of the setup, for benchmarks.
    Echo,
}

impl<R> Clone for DataPath<R> {
    fn clone(&self) -> Self {
        match self {
            DataPath::Serve(r) => DataPath::Serve(Arc::clone(r)),
            DataPath::Echo => DataPath::Echo,
        }
    }
}

/// Counters of one socket, written by its worker only (relaxed atomics, read by `stats()`).
#[repr(align(128))]
#[derive(Default)]
pub struct SocketCounters {
    pub rx: AtomicU64,
    pub tx: AtomicU64,
    pub frame_drops: [AtomicU64; FrameDrop::COUNT],
    pub core_drops: [AtomicU64; DropReason::COUNT],
    /// Loop iterations that found the fill ring empty (the kernel had no frame to receive into).
    pub fill_ring_empty: AtomicU64,
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
        // Single writer: a relaxed load+store is enough and avoids a locked RMW per batch.
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
    pub cpu: Option<usize>,
}

/// Why a frame was not answered: before/after the core, or by the core.
#[derive(Debug, Clone, Copy)]
enum Drop_ {
    Frame(FrameDrop),
    Core(DropReason),
}

impl From<FrameDrop> for Drop_ {
    fn from(d: FrameDrop) -> Self {
        Drop_::Frame(d)
    }
}

/// Run until `stop` is set. Owns its sockets; dropping them at the end closes them.
pub fn run<R: Responder>(
    mut sockets: Vec<SocketCtx>,
    path: DataPath<R>,
    opts: WorkerOpts,
    stop: &AtomicBool,
) {
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
    let mut descs = [XdpDesc::default(); MAX_BATCH];
    let mut tx = [XdpDesc::default(); MAX_BATCH];
    let mut recycle = [0u64; MAX_BATCH];
    let mut scratch = vec![0u8; SCRATCH_LEN].into_boxed_slice();
    let mut pollfds: Vec<libc::pollfd> = sockets
        .iter()
        .map(|s| libc::pollfd {
            fd: s.xsk.fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let mut last_stats = Instant::now();

    while !stop.load(Relaxed) {
        let mut busy = false;
        let now_secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        for s in sockets.iter_mut() {
            busy |= drive(
                s,
                &path,
                &opts,
                now_secs,
                &mut descs,
                &mut tx,
                &mut recycle,
                &mut scratch,
            );
        }
        if last_stats.elapsed() >= KERNEL_STATS_EVERY {
            last_stats = Instant::now();
            for s in &sockets {
                if let Ok(k) = s.xsk.kernel_stats() {
                    s.counters.set_kernel(&k);
                }
            }
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
        // Idle: sleep until a socket has RX data. Frames still in flight on TX (zero-copy
        // completes asynchronously) shorten the sleep so they are reaped promptly.
        let in_flight = sockets.iter().any(|s| s.xsk.tx_pending() > 0);
        let timeout = if in_flight { 1 } else { IDLE_POLL_MS };
        for p in pollfds.iter_mut() {
            p.revents = 0;
        }
        if let Err(e) = sys::poll(&mut pollfds, timeout) {
            tracing::error!(error = %e, "poll on AF_XDP sockets failed; worker stopping");
            break;
        }
    }
}

/// One pass over one socket. Returns whether it did any work.
#[allow(clippy::too_many_arguments)]
fn drive<R: Responder>(
    s: &mut SocketCtx,
    path: &DataPath<R>,
    opts: &WorkerOpts,
    now_secs: u64,
    descs: &mut [XdpDesc; MAX_BATCH],
    tx: &mut [XdpDesc; MAX_BATCH],
    recycle: &mut [u64; MAX_BATCH],
    scratch: &mut [u8],
) -> bool {
    let c = &*s.counters;
    let reaped = s.xsk.reap_completions(MAX_BATCH as u32 * 4);
    s.xsk.refill();
    if s.xsk.fill_level() == 0 {
        SocketCounters::bump(&c.fill_ring_empty, 1);
    }
    if s.xsk.fill_needs_wakeup() {
        // Zero-copy drivers may sleep until the fill ring is kicked.
        sys::kick_rx(s.xsk.fd());
    }

    let n = s.xsk.receive(&mut descs[..opts.batch]);
    let mut n_tx = 0;
    let mut n_recycle = 0;
    for d in &descs[..n] {
        let result = match s.xsk.frame_mut(d) {
            None => Err(Drop_::Frame(FrameDrop::Truncated)),
            Some(buf) => match path {
                DataPath::Serve(r) => {
                    answer(&**r, buf, d.len as usize, &s.iface, opts, now_secs, scratch)
                }
                DataPath::Echo => echo(buf, d.len as usize, &s.iface).map_err(Drop_::from),
            },
        };
        match result {
            Ok(len) => {
                tx[n_tx] = XdpDesc {
                    addr: d.addr,
                    len: len as u32,
                    options: 0,
                };
                n_tx += 1;
            }
            Err(reason) => {
                match reason {
                    Drop_::Frame(f) => SocketCounters::bump(&c.frame_drops[f.index()], 1),
                    Drop_::Core(r) => SocketCounters::bump(&c.core_drops[r.index()], 1),
                }
                recycle[n_recycle] = d.addr;
                n_recycle += 1;
            }
        }
    }
    let sent = s.xsk.transmit(&tx[..n_tx]);
    if sent < n_tx {
        SocketCounters::bump(
            &c.frame_drops[FrameDrop::TxRingFull.index()],
            (n_tx - sent) as u64,
        );
        for d in &tx[sent..n_tx] {
            recycle[n_recycle] = d.addr;
            n_recycle += 1;
        }
    }
    if n_recycle > 0 {
        // A dropped request's frame goes straight back to the fill ring.
        s.xsk.recycle(&recycle[..n_recycle]);
    }
    SocketCounters::bump(&c.rx, n as u64);
    SocketCounters::bump(&c.tx, sent as u64);

    // TX wake-up: with need-wakeup set (always, in copy mode) the kernel sends only inside
    // `sendto`, at most 32 frames per call, answering EAGAIN while more wait.
    let pending = s.xsk.tx_pending();
    if pending > 0 && s.xsk.tx_needs_wakeup() {
        let mut budget = pending.div_ceil(COPY_MODE_TX_PER_KICK) + 1;
        while budget > 0 && s.xsk.tx_pending() > 0 {
            budget -= 1;
            SocketCounters::bump(&c.tx_kicks, 1);
            match s.xsk.kick_tx() {
                Ok(Kick::Done) => {}
                Ok(Kick::Busy) => {}
                Err(_) => {
                    SocketCounters::bump(&c.tx_kick_errors, 1);
                    break;
                }
            }
        }
    }
    n > 0 || reaped > 0
}

/// Source address for a reply to `dst` on `iface`: link-local for link-local destinations
/// (direct clients), else the address the request was sent to if it is one of ours, else a
/// global address of the interface (relays reaching us through ff05::1:3, or off-link).
fn reply_source(iface: &InterfaceInfo, req: &Parsed, dst: &Ipv6Addr) -> Option<Ipv6Addr> {
    if dst.is_unicast_link_local() {
        return iface.link_local.first().copied();
    }
    if iface.global.contains(&req.dst) {
        return Some(req.dst);
    }
    iface.global.first().copied()
}

fn answer<R: Responder>(
    r: &R,
    buf: &mut [u8],
    rx_len: usize,
    iface: &InterfaceInfo,
    opts: &WorkerOpts,
    now_secs: u64,
    scratch: &mut [u8],
) -> Result<usize, Drop_> {
    let p = frame::parse(&buf[..rx_len], opts.verify_udp_checksum)?;
    let meta = RxMeta {
        src: p.src,
        src_port: p.src_port,
        dst: p.dst,
        ifindex: iface.index,
    };
    let payload_at = frame::reply_payload_off(p.l3_off);
    // The reply must fit the UMEM frame and the link MTU (IPv6 + UDP headers included).
    let room = buf.len().saturating_sub(payload_at);
    let mtu_room = (iface.mtu as usize).saturating_sub(frame::IPV6_HDR_LEN + frame::UDP_HDR_LEN);
    let max = room.min(mtu_room).min(scratch.len());
    let request = &buf[p.payload_off..p.payload_off + p.payload_len];
    let ReplyMeta { len, dst, dst_port } = r
        .respond(request, &meta, now_secs, &mut scratch[..max])
        .map_err(Drop_::Core)?;
    if len > max {
        return Err(FrameDrop::ReplyTooBig.into());
    }
    let src = reply_source(iface, &p, &dst).ok_or(Drop_::Frame(FrameDrop::NoSourceAddress))?;
    buf[payload_at..payload_at + len].copy_from_slice(&scratch[..len]);
    let addrs = ReplyAddrs {
        src_mac: iface.mac,
        // Direct client or relay, on-link or behind a router: the frame came from this MAC.
        dst_mac: p.src_mac,
        src,
        dst,
        src_port: crate::io::xdp::DHCPV6_SERVER_PORT,
        dst_port,
    };
    frame::write_reply(buf, p.l3_off, &addrs, len).ok_or(Drop_::Frame(FrameDrop::ReplyTooBig))
}

/// The bare echo: swap MACs, addresses and ports. A unicast request without extension headers
/// is swapped in place and its checksum stays valid (the sum is symmetric); a multicast one is
/// answered from our link-local address, which needs the checksum recomputed.
fn echo(buf: &mut [u8], rx_len: usize, iface: &InterfaceInfo) -> Result<usize, FrameDrop> {
    let p = frame::parse(&buf[..rx_len], false)?;
    let payload_at = frame::reply_payload_off(p.l3_off);
    if !p.dst.is_multicast() && p.payload_off == payload_at {
        buf[0..6].copy_from_slice(&p.src_mac);
        buf[6..12].copy_from_slice(&p.dst_mac);
        let ip = p.l3_off;
        buf[ip + 8..ip + 24].copy_from_slice(&p.dst.octets());
        buf[ip + 24..ip + 40].copy_from_slice(&p.src.octets());
        let udp = ip + frame::IPV6_HDR_LEN;
        buf[udp..udp + 2].copy_from_slice(&p.dst_port.to_be_bytes());
        buf[udp + 2..udp + 4].copy_from_slice(&p.src_port.to_be_bytes());
        return Ok(payload_at + p.payload_len);
    }
    let src = if p.dst.is_multicast() {
        iface.link_local.first().copied()
    } else {
        Some(p.dst)
    };
    let src = src.ok_or(FrameDrop::NoSourceAddress)?;
    buf.copy_within(p.payload_off..p.payload_off + p.payload_len, payload_at);
    let addrs = ReplyAddrs {
        src_mac: iface.mac,
        dst_mac: p.src_mac,
        src,
        dst: p.src,
        src_port: p.dst_port,
        dst_port: p.src_port,
    };
    frame::write_reply(buf, p.l3_off, &addrs, p.payload_len).ok_or(FrameDrop::ReplyTooBig)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn req(dst: &str) -> Parsed {
        Parsed {
            l3_off: 14,
            src_mac: [0; 6],
            dst_mac: [0; 6],
            src: "fe80::9".parse().unwrap(),
            dst: dst.parse().unwrap(),
            src_port: 546,
            dst_port: 547,
            payload_off: 62,
            payload_len: 0,
        }
    }

    #[test]
    fn reply_source_rules() {
        let i = iface();
        let ll: Ipv6Addr = "fe80::9".parse().unwrap();
        let relay: Ipv6Addr = "2001:db8:9::1".parse().unwrap();
        // Direct client: our link-local.
        assert_eq!(
            reply_source(&i, &req("ff02::1:2"), &ll),
            Some(i.link_local[0])
        );
        // Relay unicasting to our second address: answered from it.
        assert_eq!(
            reply_source(&i, &req("2001:db8::2"), &relay),
            Some(i.global[1])
        );
        // Relay via ff05::1:3, or to an address not ours: our first global address.
        assert_eq!(
            reply_source(&i, &req("ff05::1:3"), &relay),
            Some(i.global[0])
        );
        assert_eq!(
            reply_source(&i, &req("2001:db8:5::5"), &relay),
            Some(i.global[0])
        );
        let none = InterfaceInfo {
            global: vec![],
            ..iface()
        };
        assert_eq!(reply_source(&none, &req("ff05::1:3"), &relay), None);
    }
}
