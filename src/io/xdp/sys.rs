//! The one place the XDP backend makes system calls (aya's `sys` style): memory maps, poll,
//! TX/RX kicks, socket options, CPU pinning, interface queries and the netlink requests that
//! query and detach XDP programs. Everything above this module is safe code.
//!
//! Each wrapper turns a C return convention into `io::Result` and documents the invariants it
//! relies on in `// SAFETY:` comments.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::net::Ipv6Addr;
use std::os::fd::RawFd;
use std::ptr::NonNull;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// An anonymous, page-aligned, pre-faulted memory map: the UMEM area.
pub struct MmapArea {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the map is plain memory owned by this value; access to its contents is coordinated
// by the UMEM ring protocol (a frame is owned by exactly one side at a time).
unsafe impl Send for MmapArea {}

/// Transparent huge page size the UMEM is aligned to.
const HUGE_PAGE: usize = 2 << 20;

impl MmapArea {
    /// Map `len` bytes, backed by transparent huge pages where the kernel allows it. Each
    /// frame is its own 4 KiB page otherwise, so a worker reading a batch of frames misses the
    /// TLB on nearly every one; with 2 MiB pages one entry covers 512 frames. The range is
    /// 2 MiB-aligned (a huge page needs it) and faulted in before the UMEM is registered.
    pub fn new(len: usize) -> io::Result<Self> {
        assert!(len > 0, "empty UMEM area");
        let padded = len
            .checked_add(HUGE_PAGE)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: anonymous private mapping with no address hint; the kernel picks a fresh,
        // page-aligned range that aliases nothing else in this process.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                padded,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let raw = raw as usize;
        let start = raw.next_multiple_of(HUGE_PAGE);
        let head = start - raw;
        let tail = padded - head - len;
        // SAFETY: both ranges lie inside the mapping just made and nothing refers to them: they
        // are the padding around the aligned `len` bytes kept.
        unsafe {
            if head > 0 {
                libc::munmap(raw as *mut libc::c_void, head);
            }
            if tail > 0 {
                libc::munmap((start + len) as *mut libc::c_void, tail);
            }
        }
        let ptr = NonNull::new(start as *mut u8).expect("mmap returned NULL without MAP_FIXED");
        let area = MmapArea { ptr, len };
        // SAFETY: advice and population of exactly the range this value owns. Huge pages are
        // a hint: without them (THP disabled) the area works the same on 4 KiB pages.
        unsafe {
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        }
        // Fault everything in now: a first touch in the data path would
        // cost a page fault, and the kernel pins the pages at registration anyway.
        // SAFETY: as above.
        let populated =
            unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_POPULATE_WRITE) };
        if populated != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINVAL) {
                // Out of memory (ENOMEM) or the like: a clear error now (`area` unmaps on
                // drop), not an OOM kill at the first touch in the data path.
                return Err(err);
            }
            // Kernels before 5.14 do not know the advice: touch one byte per page.
            let mut at = 0;
            while at < len {
                // SAFETY: inside the owned range, which no one else references yet.
                unsafe { std::ptr::write_volatile(ptr.as_ptr().add(at), 0) };
                at += 4096;
            }
        }
        Ok(area)
    }

    pub fn as_nonnull_slice(&self) -> NonNull<[u8]> {
        NonNull::slice_from_raw_parts(self.ptr, self.len)
    }

    /// The bytes `[offset, offset + len)` of the area.
    ///
    /// Callers hold exclusive ownership of the frame containing the range (it came off the RX
    /// ring and has not been handed back to the kernel), so no other reference aliases it.
    pub fn frame_mut(&mut self, offset: u64, len: usize) -> Option<&mut [u8]> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(len)?;
        if end > self.len {
            return None;
        }
        // SAFETY: `start..end` lies inside the mapping (checked above), and `&mut self` makes
        // this the only live Rust reference into the area. The kernel writes only to frames
        // on the fill ring, which the caller does not own while it holds this slice.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(start), len) })
    }

    /// Prefetch the cache lines of `len` bytes at `offset` (a received frame about to be
    /// parsed: the kernel copied it in on another CPU, so its first read is a miss). The
    /// range is not checked: a prefetch never faults.
    pub fn prefetch(&self, offset: u64, len: usize) {
        let start = (self.ptr.as_ptr() as usize).wrapping_add(offset as usize);
        let mut line = start & !63;
        while line < start.wrapping_add(len) {
            crate::cpu::prefetch(line);
            line += 64;
        }
    }
}

impl Drop for MmapArea {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned; the sockets using the area were
        // dropped before (field order in `Xsk`), so the kernel no longer references it.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// `poll(2)` on a set of descriptors; returns how many have events.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: `fds` is a valid, exclusively borrowed array of `fds.len()` pollfd structs.
    let ret = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    match cvt(ret) {
        Ok(n) => Ok(n as usize),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(e) => Err(e),
    }
}

/// Outcome of a TX kick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    /// The kernel took what it could; the caller checks the ring to see if more is pending.
    Done,
    /// The kernel is busy (EAGAIN/EBUSY/ENOBUFS): try again on the next batch.
    Busy,
}

/// Wake the kernel TX path of an AF_XDP socket (copy mode moves at most 32 frames per call).
pub fn kick_tx(fd: RawFd) -> io::Result<Kick> {
    // SAFETY: a zero-length send with null buffer and address is the documented AF_XDP TX
    // wake-up; it reads no user memory.
    let ret = unsafe {
        libc::sendto(
            fd,
            std::ptr::null(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null(),
            0,
        )
    };
    if ret >= 0 {
        return Ok(Kick::Done);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::EINTR) => Ok(Kick::Busy),
        // ENETDOWN: the interface went down; nothing will move until it is up again.
        Some(libc::ENETDOWN) => Ok(Kick::Busy),
        _ => Err(err),
    }
}

/// Drive the RX path of a busy-polling AF_XDP socket without sleeping.
pub fn kick_rx(fd: RawFd) {
    // SAFETY: zero-length receive into a null buffer is the documented AF_XDP RX wake-up.
    unsafe {
        libc::recvfrom(
            fd,
            std::ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
    }
}

fn setsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int, value: i32) -> io::Result<()> {
    // SAFETY: passes a pointer to a live i32 and its exact size.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Enable preferred busy polling on an AF_XDP socket (Linux 5.11+).
pub fn set_busy_poll(fd: RawFd, usecs: u32, budget: u32) -> io::Result<()> {
    const SO_PREFER_BUSY_POLL: libc::c_int = 69;
    const SO_BUSY_POLL_BUDGET: libc::c_int = 70;
    setsockopt_int(fd, libc::SOL_SOCKET, SO_PREFER_BUSY_POLL, 1)?;
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_BUSY_POLL, usecs as i32)?;
    setsockopt_int(fd, libc::SOL_SOCKET, SO_BUSY_POLL_BUDGET, budget as i32)
}

/// Pin the calling thread to one CPU.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cpu index out of range",
        ));
    }
    // SAFETY: cpu_set_t is plain data; CPU_ZERO/CPU_SET write within it (index checked above);
    // pid 0 means the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        cvt(libc::sched_setaffinity(
            0,
            std::mem::size_of::<libc::cpu_set_t>(),
            &set,
        ))
        .map(drop)
    }
}

/// CPUs this process may run on, in order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills the zeroed set for the calling thread; CPU_ISSET reads
    // within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![0];
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// `RLIMIT_MEMLOCK` soft limit in bytes (`u64::MAX` for unlimited).
pub fn memlock_limit() -> u64 {
    // SAFETY: getrlimit writes one rlimit struct we own.
    unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut rl) != 0 {
            return 0;
        }
        if rl.rlim_cur == libc::RLIM_INFINITY {
            u64::MAX
        } else {
            rl.rlim_cur
        }
    }
}

/// Whether this kernel lets us create AF_XDP sockets at all.
pub fn af_xdp_socket_works() -> io::Result<()> {
    // SAFETY: plain socket(2); the descriptor is closed right away.
    let fd = cvt(unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: we own `fd`.
    unsafe { libc::close(fd) };
    Ok(())
}

pub fn if_nametoindex(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(idx)
    }
}

/// What the data path needs to know about an interface, looked up once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceInfo {
    pub name: String,
    pub index: u32,
    pub mac: [u8; 6],
    pub mtu: u32,
    /// fe80::/10 addresses.
    pub link_local: Vec<Ipv6Addr>,
    /// Other unicast IPv6 addresses (global or ULA).
    pub global: Vec<Ipv6Addr>,
    /// RX queues (max of combined and rx channels; 1 when the driver cannot say).
    pub rx_queues: u32,
}

struct Ifaddrs(*mut libc::ifaddrs);

impl Drop for Ifaddrs {
    fn drop(&mut self) {
        // SAFETY: the pointer came from a successful getifaddrs and is freed once.
        unsafe { libc::freeifaddrs(self.0) }
    }
}

fn ifreq_for(name: &str) -> io::Result<libc::ifreq> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad interface name",
        ));
    }
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &b) in ifr.ifr_name.iter_mut().zip(bytes) {
        *dst = b as libc::c_char;
    }
    Ok(ifr)
}

struct OwnedSock(RawFd);
impl Drop for OwnedSock {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor.
        unsafe { libc::close(self.0) };
    }
}

fn dgram_socket() -> io::Result<OwnedSock> {
    // SAFETY: plain socket(2).
    cvt(unsafe { libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })
        .map(OwnedSock)
}

fn interface_mtu(name: &str) -> io::Result<u32> {
    let sock = dgram_socket()?;
    let mut ifr = ifreq_for(name)?;
    // SAFETY: SIOCGIFMTU reads ifr_name and writes ifru_mtu of the ifreq we own.
    cvt(unsafe { libc::ioctl(sock.0, libc::SIOCGIFMTU, &mut ifr) })?;
    // SAFETY: the kernel filled the mtu member of the union.
    Ok(unsafe { ifr.ifr_ifru.ifru_mtu } as u32)
}

/// RX queue count through ETHTOOL_GCHANNELS; `None` when the driver does not implement it.
fn interface_rx_queues(name: &str) -> Option<u32> {
    const ETHTOOL_GCHANNELS: u32 = 0x3c;
    #[repr(C)]
    #[derive(Default)]
    struct EthtoolChannels {
        cmd: u32,
        max_rx: u32,
        max_tx: u32,
        max_other: u32,
        max_combined: u32,
        rx_count: u32,
        tx_count: u32,
        other_count: u32,
        combined_count: u32,
    }
    let sock = dgram_socket().ok()?;
    let mut ifr = ifreq_for(name).ok()?;
    let mut ch = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    ifr.ifr_ifru.ifru_data = (&mut ch as *mut EthtoolChannels).cast();
    // SAFETY: SIOCETHTOOL with ETHTOOL_GCHANNELS writes one ethtool_channels struct through
    // ifru_data, which points at `ch`, alive for the call.
    let ret = unsafe { libc::ioctl(sock.0, libc::SIOCETHTOOL, &mut ifr) };
    if ret < 0 {
        return None;
    }
    let n = ch.rx_count.max(ch.combined_count);
    (n > 0).then_some(n)
}

/// Look up index, MAC, MTU, addresses and queue count of `name` (in the caller's netns).
pub fn interface_info(name: &str) -> io::Result<InterfaceInfo> {
    let index = if_nametoindex(name)?;
    let mut info = InterfaceInfo {
        name: name.to_string(),
        index,
        mac: [0; 6],
        mtu: interface_mtu(name)?,
        link_local: Vec::new(),
        global: Vec::new(),
        rx_queues: interface_rx_queues(name).unwrap_or(1),
    };
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs allocates a list we free through `Ifaddrs`.
    cvt(unsafe { libc::getifaddrs(&mut head) })?;
    let list = Ifaddrs(head);
    let mut cur = list.0;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list owned by `list`, alive until it drops.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string inside the list.
        let ifa_name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        if ifa_name.to_bytes() != name.as_bytes() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points at a sockaddr whose family says its type.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        if family == libc::AF_INET6 {
            // SAFETY: family AF_INET6 means the storage is a sockaddr_in6.
            let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
            let addr = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            if addr.is_unicast_link_local() {
                info.link_local.push(addr);
            } else if !addr.is_loopback() && !addr.is_multicast() && !addr.is_unspecified() {
                info.global.push(addr);
            }
        } else if family == libc::AF_PACKET {
            // SAFETY: family AF_PACKET means the storage is a sockaddr_ll.
            let sll = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_ll) };
            if sll.sll_halen == 6 {
                info.mac.copy_from_slice(&sll.sll_addr[..6]);
            }
        }
    }
    Ok(info)
}

// ---- netlink: query and detach XDP programs (for stale programs left by a crashed run) ----

const IFLA_XDP: u16 = 43;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_FLAGS: u16 = 3;
const IFLA_XDP_PROG_ID: u16 = 4;
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
const IFLA_XDP_SKB_PROG_ID: u16 = 6;
const IFLA_XDP_HW_PROG_ID: u16 = 7;
const NLA_F_NESTED: u16 = 1 << 15;
pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
pub const XDP_FLAGS_HW_MODE: u32 = 1 << 3;

/// Programs attached to an interface, by attach mode (0 = none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttachedXdp {
    pub drv_prog_id: u32,
    pub skb_prog_id: u32,
    pub hw_prog_id: u32,
}

impl AttachedXdp {
    /// `(mode flag, program id)` of each attached program.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32)> {
        [
            (XDP_FLAGS_DRV_MODE, self.drv_prog_id),
            (XDP_FLAGS_SKB_MODE, self.skb_prog_id),
            (XDP_FLAGS_HW_MODE, self.hw_prog_id),
        ]
        .into_iter()
        .filter(|&(_, id)| id != 0)
    }
}

struct Netlink(RawFd);
impl Drop for Netlink {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor.
        unsafe { libc::close(self.0) };
    }
}

fn nla_align(n: usize) -> usize {
    (n + 3) & !3
}

fn push_attr(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(nla_align(buf.len()), 0);
}

/// Build an `ifinfomsg` request for `ifindex`; attributes are appended by the caller.
fn link_request(msg_type: u16, flags: u16, ifindex: u32) -> Vec<u8> {
    let mut buf = vec![0u8; 16];
    // struct ifinfomsg { u8 family, u8 pad, u16 type, i32 index, u32 flags, u32 change }
    let mut ifi = [0u8; 16];
    ifi[4..8].copy_from_slice(&(ifindex as i32).to_ne_bytes());
    buf.extend_from_slice(&ifi);
    buf[4..6].copy_from_slice(&msg_type.to_ne_bytes());
    buf[6..8].copy_from_slice(&flags.to_ne_bytes());
    buf[8..12].copy_from_slice(&1u32.to_ne_bytes()); // sequence number
    buf
}

fn finish_len(buf: &mut [u8]) {
    let len = buf.len() as u32;
    buf[0..4].copy_from_slice(&len.to_ne_bytes());
}

impl Netlink {
    fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2).
        let fd = cvt(unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        })?;
        let nl = Netlink(fd);
        // Receive extended ACKs so errors carry the kernel's message; failure is harmless.
        let _ = setsockopt_int(fd, libc::SOL_NETLINK, libc::NETLINK_EXT_ACK, 1);
        Ok(nl)
    }

    /// Send one request and read replies until its answer (NEWLINK data or an ACK/error).
    fn transact(&self, req: &[u8], mut on_msg: impl FnMut(u16, &[u8])) -> io::Result<()> {
        // SAFETY: `req` is a valid buffer of `req.len()` bytes; no destination address means
        // the kernel.
        let sent = unsafe { libc::send(self.0, req.as_ptr().cast(), req.len(), 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 32 * 1024];
        // Bounded: a link request is answered by one message (plus an ACK).
        for _ in 0..16 {
            // SAFETY: receives into our buffer of `buf.len()` bytes.
            let n = unsafe { libc::recv(self.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut msgs = &buf[..n as usize];
            while msgs.len() >= 16 {
                let len = u32::from_ne_bytes(msgs[0..4].try_into().expect("4 bytes")) as usize;
                let ty = u16::from_ne_bytes(msgs[4..6].try_into().expect("2 bytes"));
                if len < 16 || len > msgs.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "bad netlink length",
                    ));
                }
                let body = &msgs[16..len];
                match i32::from(ty) {
                    libc::NLMSG_ERROR => {
                        let code = body
                            .get(0..4)
                            .map(|b| i32::from_ne_bytes(b.try_into().expect("4 bytes")))
                            .unwrap_or(-libc::EINVAL);
                        return if code == 0 {
                            Ok(())
                        } else {
                            Err(io::Error::from_raw_os_error(-code))
                        };
                    }
                    libc::NLMSG_DONE => return Ok(()),
                    _ => {
                        on_msg(ty, body);
                        // A GETLINK without NLM_F_ACK ends with its single reply.
                        if ty == libc::RTM_NEWLINK {
                            return Ok(());
                        }
                    }
                }
                msgs = &msgs[nla_align(len).min(msgs.len())..];
            }
        }
        Err(io::Error::new(io::ErrorKind::TimedOut, "no netlink answer"))
    }
}

/// Iterate `(type, payload)` of netlink attributes.
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & !NLA_F_NESTED;
        if len < 4 || len > b.len() {
            return None;
        }
        let payload = &b[4..len];
        b = &b[nla_align(len).min(b.len())..];
        Some((ty, payload))
    })
}

fn u32_of(p: &[u8]) -> u32 {
    p.get(0..4)
        .map(|b| u32::from_ne_bytes(b.try_into().expect("4 bytes")))
        .unwrap_or(0)
}

/// Which XDP programs are attached to `ifindex`.
pub fn xdp_query(ifindex: u32) -> io::Result<AttachedXdp> {
    let nl = Netlink::open()?;
    let mut req = link_request(libc::RTM_GETLINK, libc::NLM_F_REQUEST as u16, ifindex);
    finish_len(&mut req);
    let mut out = AttachedXdp::default();
    nl.transact(&req, |ty, body| {
        if ty != libc::RTM_NEWLINK || body.len() < 16 {
            return;
        }
        let mut single = (0u8, 0u32);
        for (t, p) in attrs(&body[16..]) {
            if t != IFLA_XDP {
                continue;
            }
            for (xt, xp) in attrs(p) {
                match xt {
                    IFLA_XDP_ATTACHED => single.0 = xp.first().copied().unwrap_or(0),
                    IFLA_XDP_PROG_ID => single.1 = u32_of(xp),
                    IFLA_XDP_DRV_PROG_ID => out.drv_prog_id = u32_of(xp),
                    IFLA_XDP_SKB_PROG_ID => out.skb_prog_id = u32_of(xp),
                    IFLA_XDP_HW_PROG_ID => out.hw_prog_id = u32_of(xp),
                    _ => {}
                }
            }
        }
        // With one program attached the kernel reports only ATTACHED + PROG_ID
        // (XDP_ATTACHED_DRV = 1, SKB = 2, HW = 3).
        match single {
            (1, id) if out.drv_prog_id == 0 => out.drv_prog_id = id,
            (2, id) if out.skb_prog_id == 0 => out.skb_prog_id = id,
            (3, id) if out.hw_prog_id == 0 => out.hw_prog_id = id,
            _ => {}
        }
    })?;
    Ok(out)
}

/// Detach the netlink-attached XDP program of one mode from `ifindex` (fd -1). Fails with
/// EBUSY if that program is held by a BPF link, i.e. owned by a live process or a pin.
pub fn xdp_detach(ifindex: u32, mode_flag: u32) -> io::Result<()> {
    let nl = Netlink::open()?;
    let mut req = link_request(
        libc::RTM_SETLINK,
        (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16,
        ifindex,
    );
    let mut nested = Vec::new();
    push_attr(&mut nested, IFLA_XDP_FD, &(-1i32).to_ne_bytes());
    push_attr(&mut nested, IFLA_XDP_FLAGS, &mode_flag.to_ne_bytes());
    push_attr(&mut req, IFLA_XDP | NLA_F_NESTED, &nested);
    finish_len(&mut req);
    nl.transact(&req, |_, _| {})
}

// ---- netlink: the neighbour table (a sender's next-hop MAC) ----

const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const NUD_INCOMPLETE: u16 = 0x01;
const NUD_FAILED: u16 = 0x20;

/// The MAC address the neighbour table holds for `addr` on `ifindex`, if it has a usable
/// entry (any state but INCOMPLETE and FAILED). A sender that builds its own frames (the load
/// generator's AF_XDP transport) needs it for unicast destinations.
pub fn neighbour_mac(ifindex: u32, addr: &Ipv6Addr) -> io::Result<Option<[u8; 6]>> {
    let nl = Netlink::open()?;
    let mut req = vec![0u8; 16];
    req[4..6].copy_from_slice(&libc::RTM_GETNEIGH.to_ne_bytes());
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    req[6..8].copy_from_slice(&flags.to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    // struct ndmsg { u8 family, u8 pad1, u16 pad2, i32 ifindex, u16 state, u8 flags, u8 type }
    let mut nd = [0u8; 12];
    nd[0] = libc::AF_INET6 as u8;
    nd[4..8].copy_from_slice(&(ifindex as i32).to_ne_bytes());
    req.extend_from_slice(&nd);
    finish_len(&mut req);
    let want = addr.octets();
    let mut found = None;
    nl.transact(&req, |ty, body| {
        if ty != libc::RTM_NEWNEIGH || body.len() < 12 || found.is_some() {
            return;
        }
        let index = u32::from_ne_bytes(body[4..8].try_into().expect("4 bytes"));
        let state = u16::from_ne_bytes(body[8..10].try_into().expect("2 bytes"));
        if index != ifindex || state & (NUD_INCOMPLETE | NUD_FAILED) != 0 {
            return;
        }
        let (mut dst, mut mac) = (None, None);
        for (t, p) in attrs(&body[12..]) {
            match t {
                NDA_DST if p.len() == 16 => dst = Some(p),
                NDA_LLADDR if p.len() == 6 => mac = p.try_into().ok(),
                _ => {}
            }
        }
        if dst == Some(&want[..]) {
            found = mac;
        }
    })?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn umem_area_is_huge_page_aligned_zeroed_and_writable() {
        for len in [4096, HUGE_PAGE, 3 * HUGE_PAGE + 4096] {
            let mut a = MmapArea::new(len).expect("mmap");
            assert_eq!(a.ptr.as_ptr() as usize % HUGE_PAGE, 0, "{len}");
            let f = a.frame_mut(0, len).expect("whole area");
            assert!(f.iter().all(|&b| b == 0), "{len}: not zeroed");
            f[len - 1] = 0xa5;
            assert_eq!(a.frame_mut(len as u64 - 1, 1), Some(&mut [0xa5u8][..]));
            assert_eq!(a.frame_mut(len as u64, 1), None);
            // A prefetch past the end is harmless.
            a.prefetch(len as u64, 256);
        }
    }

    #[test]
    fn attrs_roundtrip() {
        let mut b = Vec::new();
        push_attr(&mut b, 7, &[1, 2, 3]);
        push_attr(&mut b, 9, &5u32.to_ne_bytes());
        let v: Vec<_> = attrs(&b).collect();
        assert_eq!(v, vec![(7, &[1u8, 2, 3][..]), (9, &5u32.to_ne_bytes()[..])]);
    }

    #[test]
    fn attrs_stop_on_bad_length() {
        let b = [200u8, 0, 1, 0, 0, 0];
        assert_eq!(attrs(&b).count(), 0);
    }

    #[test]
    fn loopback_info() {
        let info = interface_info("lo").expect("lo exists");
        assert!(info.index > 0);
        assert!(info.mtu > 0);
    }
}
