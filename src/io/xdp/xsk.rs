//! One AF_XDP socket bound to one (interface, queue), with its own UMEM: the memory area, the
//! fill/completion rings and the RX/TX rings (built on `xdpilone`, whose ring accesses are
//! `#[must_use]` transactions ending in `commit()`/`release()`).
//!
//! Frame ownership is the invariant everything rests on: every UMEM frame is at any time in
//! exactly one place — the kernel (fill ring, RX in flight, TX ring until completion) or user
//! space (`free`, or held by the worker between RX and TX/recycle). `debug_assert`s check the
//! bookkeeping where it is cheap.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::num::NonZeroU32;

use xdpilone::xdp::XdpDesc;
use xdpilone::{
    CompletionQueue, FillQueue, IfInfo, RingRx, RingTx, Socket, SocketConfig, Umem, UmemConfig,
    User,
};

use super::sys::{self, MmapArea};

/// Passes over a ring per operation. xdpilone reserves (or peeks) against its cached copy of
/// the kernel's index and re-reads the kernel's index only when that copy shows *nothing*
/// free (or available); when the copy shows fewer entries than asked for but more than zero,
/// it hands out just those. A ring with 2047 free slots can so look like one with 1 free slot.
/// The first pass uses up the cached view; a second pass then sees the kernel's real index.
/// Two passes are always enough: after the first, the cached view is empty by construction.
const SHORT_VIEW_PASSES: usize = 2;

/// Bytes of a received frame [`Xsk::prefetch_ahead`] fetches: Ethernet, IPv6 and UDP headers (62
/// bytes untagged) and the first 130 bytes of the DHCPv6 message, where a client's
/// transaction ID, Client Identifier and first IA usually sit.
const PREFETCH_BYTES: usize = 192;

/// How many frames of a received batch [`Xsk::prefetch_ahead`] keeps in flight ahead of the
/// one being handled. The kernel copies frames into the UMEM on the sender's CPU, so a frame's
/// first read misses in this CPU's caches; handling four frames takes longer than one miss.
const PREFETCH_AHEAD: usize = 4;

/// The frames of a batch of `n` to prefetch before handling frame `i`: the window
/// `0..PREFETCH_AHEAD` first, then the one frame entering it. Over a pass every frame is
/// fetched once, at least [`PREFETCH_AHEAD`] - 1 frames before it is handled (or at the start).
fn prefetch_window(i: usize, n: usize) -> std::ops::Range<usize> {
    let (start, end) = if i == 0 {
        (0, PREFETCH_AHEAD)
    } else {
        (i + PREFETCH_AHEAD - 1, i + PREFETCH_AHEAD)
    };
    start.min(n)..end.min(n)
}

/// Ring and UMEM sizes for one socket. Sizes are powers of two (a kernel requirement).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XskSizes {
    /// Bytes per UMEM frame: 2048 or 4096 (other sizes fail on the kernels we run on).
    pub frame_size: u32,
    /// UMEM frames per socket.
    pub frame_count: u32,
    pub fill_ring: u32,
    pub completion_ring: u32,
    pub rx_ring: u32,
    pub tx_ring: u32,
}

impl Default for XskSizes {
    fn default() -> Self {
        XskSizes {
            frame_size: 2048,
            frame_count: 4096,
            fill_ring: 2048,
            completion_ring: 2048,
            rx_ring: 2048,
            tx_ring: 2048,
        }
    }
}

impl XskSizes {
    pub fn validate(&self) -> Result<(), String> {
        if self.frame_size != 2048 && self.frame_size != 4096 {
            return Err(format!(
                "frame_size must be 2048 or 4096, not {}",
                self.frame_size
            ));
        }
        for (name, v) in [
            ("frame_count", self.frame_count),
            ("fill_ring", self.fill_ring),
            ("completion_ring", self.completion_ring),
            ("rx_ring", self.rx_ring),
            ("tx_ring", self.tx_ring),
        ] {
            if !v.is_power_of_two() || !(64..=1 << 16).contains(&v) {
                return Err(format!(
                    "{name} must be a power of two in 64..=65536, not {v}"
                ));
            }
        }
        if self.fill_ring > self.frame_count {
            return Err("fill_ring must not exceed frame_count".into());
        }
        Ok(())
    }

    pub fn umem_bytes(&self) -> u64 {
        u64::from(self.frame_size) * u64::from(self.frame_count)
    }
}

/// How the socket ended up bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BindMode {
    ZeroCopy,
    Copy,
}

impl BindMode {
    pub const fn name(self) -> &'static str {
        match self {
            BindMode::ZeroCopy => "zero-copy",
            BindMode::Copy => "copy",
        }
    }
}

/// Whether to try zero-copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ZeroCopy {
    /// Try zero-copy, fall back to copy mode.
    #[default]
    Auto,
    /// Zero-copy or fail.
    Require,
    /// Copy mode only.
    Off,
}

/// Kernel-side socket statistics (`XDP_STATISTICS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct KernelStats {
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    pub rx_ring_full: u64,
    pub rx_fill_ring_empty_descs: u64,
    pub tx_ring_empty_descs: u64,
}

pub struct Xsk {
    // Field order is drop order: the rings (which unmap themselves) and the socket go first,
    // the UMEM registration next, the memory area last.
    rx: RingRx,
    tx: RingTx,
    fill: FillQueue,
    comp: CompletionQueue,
    user: User,
    _umem: Umem,
    area: MmapArea,
    /// Frame base addresses owned by user space and not in any ring.
    free: Vec<u64>,
    frame_size: u32,
    frame_mask: u64,
    mode: BindMode,
    fd: i32,
}

// SAFETY: xdpilone's handles are !Send only because they hold raw pointers into the ring
// mmaps and the UMEM area. Every such handle of one socket lives in this one `Xsk` (the `Arc`s
// inside are never cloned out of it), so moving the whole `Xsk` to a worker thread moves all
// users of those pointers together; nothing is shared across threads.
unsafe impl Send for Xsk {}

fn errno(e: xdpilone::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.get_raw().abs())
}

impl Xsk {
    /// Create the UMEM and socket and bind to `ifname`/`queue`, trying zero-copy first as
    /// `zero_copy` says.
    pub fn open(
        ifname: &str,
        queue: u32,
        sizes: &XskSizes,
        zero_copy: ZeroCopy,
    ) -> io::Result<Xsk> {
        sizes
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        match zero_copy {
            ZeroCopy::Off => Self::open_mode(ifname, queue, sizes, BindMode::Copy),
            ZeroCopy::Require => Self::open_mode(ifname, queue, sizes, BindMode::ZeroCopy),
            ZeroCopy::Auto => match Self::open_mode(ifname, queue, sizes, BindMode::ZeroCopy) {
                Ok(x) => Ok(x),
                // EOPNOTSUPP (veth, drivers without XSK pool support) or EINVAL: fall back.
                // A fresh socket is used: a failed bind leaves the old one in no reusable state.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EOPNOTSUPP | libc::EINVAL | libc::EPROTONOSUPPORT)
                    ) =>
                {
                    Self::open_mode(ifname, queue, sizes, BindMode::Copy)
                }
                Err(e) => Err(e),
            },
        }
    }

    fn open_mode(ifname: &str, queue: u32, sizes: &XskSizes, mode: BindMode) -> io::Result<Xsk> {
        let area = MmapArea::new(sizes.umem_bytes() as usize)?;
        let umem_cfg = UmemConfig {
            fill_size: sizes.fill_ring,
            complete_size: sizes.completion_ring,
            frame_size: sizes.frame_size,
            headroom: 0,
            flags: 0,
        };
        // SAFETY: `area` is a page-aligned mapping of exactly `umem_bytes` that outlives the
        // Umem (it is dropped after it, see field order of `Xsk`).
        let umem = unsafe { Umem::new(umem_cfg, area.as_nonnull_slice()) }.map_err(errno)?;

        let mut info = IfInfo::invalid();
        let cname =
            CString::new(ifname).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        info.from_name(&cname).map_err(errno)?;
        info.set_queue(queue);

        let sock = Socket::with_shared(&info, &umem).map_err(errno)?;
        let device = umem.fq_cq(&sock).map_err(errno)?;
        let mut bind_flags = SocketConfig::XDP_BIND_NEED_WAKEUP;
        bind_flags |= match mode {
            BindMode::ZeroCopy => SocketConfig::XDP_BIND_ZEROCOPY,
            BindMode::Copy => SocketConfig::XDP_BIND_COPY,
        };
        let cfg = SocketConfig {
            rx_size: NonZeroU32::new(sizes.rx_ring),
            tx_size: NonZeroU32::new(sizes.tx_ring),
            bind_flags,
        };
        let user = umem.rx_tx(&sock, &cfg).map_err(errno)?;
        let rx = user.map_rx().map_err(errno)?;
        let tx = user.map_tx().map_err(errno)?;
        umem.bind(&user).map_err(errno)?;
        let (fill, comp) = device.into_parts();
        let fd = user.as_raw_fd();

        let free = (0..u64::from(sizes.frame_count))
            .map(|i| i * u64::from(sizes.frame_size))
            .rev()
            .collect();
        let mut xsk = Xsk {
            rx,
            tx,
            fill,
            comp,
            user,
            _umem: umem,
            area,
            free,
            frame_size: sizes.frame_size,
            frame_mask: !(u64::from(sizes.frame_size) - 1),
            mode,
            fd,
        };
        xsk.refill();
        Ok(xsk)
    }

    pub fn mode(&self) -> BindMode {
        self.mode
    }

    pub fn fd(&self) -> i32 {
        self.fd
    }

    /// Move completed TX frames back to user space; returns how many (at most `max`).
    pub fn reap_completions(&mut self, max: u32) -> u32 {
        let mut n = 0;
        // Two passes: see [`SHORT_VIEW_PASSES`].
        for _ in 0..SHORT_VIEW_PASSES {
            if n >= max {
                break;
            }
            let mut reader = self.comp.complete(max - n);
            let mut got = 0;
            while let Some(addr) = reader.read() {
                self.free.push(addr & self.frame_mask);
                got += 1;
            }
            reader.release();
            if got == 0 {
                break;
            }
            n += got;
        }
        n
    }

    /// Hand free frames to the kernel through the fill ring; returns how many.
    pub fn refill(&mut self) -> u32 {
        let mut n = 0;
        // Two passes: see [`SHORT_VIEW_PASSES`].
        for _ in 0..SHORT_VIEW_PASSES {
            if self.free.is_empty() {
                break;
            }
            let mut writer = self.fill.fill(self.free.len() as u32);
            let cap = writer.capacity() as usize;
            if cap == 0 {
                break;
            }
            let start = self.free.len() - cap.min(self.free.len());
            // `take(cap)` matters: the ring writer consumes one item past its capacity
            // otherwise.
            let put = writer.insert(self.free[start..].iter().copied().take(cap));
            writer.commit();
            debug_assert_eq!(put as usize, self.free.len() - start);
            self.free.truncate(start);
            n += put;
        }
        n
    }

    /// Frames the kernel can currently fill (0 means received packets are being dropped).
    pub fn fill_level(&self) -> u32 {
        self.fill.pending()
    }

    /// Descriptors waiting on the RX ring (advisory: a relaxed read of the kernel's producer).
    pub fn rx_available(&self) -> u32 {
        self.rx.available()
    }

    /// Take up to `out.len()` received descriptors off the RX ring.
    pub fn receive(&mut self, out: &mut [XdpDesc]) -> usize {
        let mut n = 0;
        // Two passes: see [`SHORT_VIEW_PASSES`].
        for _ in 0..SHORT_VIEW_PASSES {
            if n == out.len() {
                break;
            }
            let mut reader = self.rx.receive((out.len() - n) as u32);
            let before = n;
            while n < out.len() {
                match reader.read() {
                    Some(d) => {
                        out[n] = d;
                        n += 1;
                    }
                    None => break,
                }
            }
            reader.release();
            if n == before {
                break;
            }
        }
        n
    }

    /// The writable bytes of a received frame: from the packet start to the frame's end.
    /// `None` if the kernel handed us an address outside the UMEM (never expected).
    pub fn frame_mut(&mut self, desc: &XdpDesc) -> Option<&mut [u8]> {
        let base = desc.addr & self.frame_mask;
        let room = (base + u64::from(self.frame_size)).checked_sub(desc.addr)? as usize;
        if (desc.len as usize) > room {
            return None;
        }
        self.area.frame_mut(desc.addr, room)
    }

    /// Keep [`PREFETCH_AHEAD`] frames of a received batch in flight: call with `i`, the index
    /// of the frame about to be handled, for every `i` in order. Each call fetches the first
    /// [`PREFETCH_BYTES`] of the frames of [`prefetch_window`].
    pub fn prefetch_ahead(&self, descs: &[XdpDesc], i: usize) {
        for d in &descs[prefetch_window(i, descs.len())] {
            self.area
                .prefetch(d.addr, (d.len as usize).min(PREFETCH_BYTES));
        }
    }

    /// Queue frames for transmission; returns how many fit (the caller recycles the rest).
    /// Fewer than `descs.len()` only when the TX ring really is full.
    pub fn transmit(&mut self, descs: &[XdpDesc]) -> usize {
        let mut n = 0;
        // Two passes: see [`SHORT_VIEW_PASSES`]. A single pass dropped replies whenever the
        // cached view of the ring ran out mid-batch, once per lap of the ring.
        for _ in 0..SHORT_VIEW_PASSES {
            if n == descs.len() {
                break;
            }
            let mut writer = self.tx.transmit((descs.len() - n) as u32);
            let cap = writer.capacity() as usize;
            if cap == 0 {
                break;
            }
            n += writer.insert(descs[n..].iter().copied().take(cap)) as usize;
            writer.commit();
        }
        n
    }

    /// Return frames straight to the kernel through the fill ring (dropped requests), keeping
    /// any that do not fit for the next refill.
    pub fn recycle(&mut self, addrs: &[u64]) {
        self.free.extend(addrs.iter().map(|a| a & self.frame_mask));
        self.refill();
    }

    /// TX descriptors the kernel has not consumed yet.
    pub fn tx_pending(&self) -> u32 {
        self.tx.pending()
    }

    pub fn tx_needs_wakeup(&self) -> bool {
        self.tx.needs_wakeup()
    }

    pub fn fill_needs_wakeup(&self) -> bool {
        self.fill.needs_wakeup()
    }

    /// Kernel statistics for this socket (XDP_STATISTICS, v2 fields where available).
    pub fn kernel_stats(&self) -> io::Result<KernelStats> {
        let s = self.user.statistics_v2().map_err(errno)?;
        Ok(KernelStats {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: s.tx_ring_empty_descs,
        })
    }

    /// Kick the kernel TX path (needed on every batch when the need-wakeup flag is set, as it
    /// always is in copy mode).
    pub fn kick_tx(&self) -> io::Result<sys::Kick> {
        sys::kick_tx(self.fd)
    }

    /// Wake a driver that sleeps until its fill ring is kicked (zero-copy with need-wakeup).
    pub fn kick_rx(&self) {
        sys::kick_rx(self.fd)
    }

    /// Bytes per UMEM frame.
    pub fn frame_size(&self) -> u32 {
        self.frame_size
    }

    /// Take a frame from user space's free list to build a frame to transmit (a sender's TX
    /// path; the server answers in the RX frame instead). `None` when every frame is with the
    /// kernel: reap completions and try again. The frame returns to the pool through
    /// [`transmit`](Self::transmit) and [`reap_completions`](Self::reap_completions), or
    /// [`recycle`](Self::recycle) if it is not sent.
    pub fn alloc_frame(&mut self) -> Option<u64> {
        self.free.pop()
    }

    /// The whole of a frame user space owns (from [`alloc_frame`](Self::alloc_frame)), from
    /// its base address to its end.
    pub fn owned_frame_mut(&mut self, addr: u64) -> Option<&mut [u8]> {
        let base = addr & self.frame_mask;
        self.area.frame_mut(base, self.frame_size as usize)
    }

    /// Frames in user space's free list (neither in a ring nor held by the caller).
    pub fn free_frames(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_frame_of_a_batch_is_prefetched_once_and_ahead() {
        for n in 0..=70 {
            let mut fetched_at = vec![None; n];
            for i in 0..n {
                for f in prefetch_window(i, n) {
                    assert!(fetched_at[f].is_none(), "n {n}: frame {f} fetched twice");
                    fetched_at[f] = Some(i);
                }
                let at = fetched_at[i].expect("a frame is fetched before it is handled");
                assert!(
                    at == 0 || i - at >= PREFETCH_AHEAD - 1,
                    "n {n}: frame {i} late"
                );
            }
            assert!(fetched_at.iter().all(Option::is_some), "n {n}");
        }
    }
}
