//! The syscall funnel of the I/O backends: every `unsafe` call into libc made by `src/io` lives
//! here, behind small safe wrappers, so the rest of the backend is ordinary safe Rust.
//!
//! What is here and why it is not a crate call: `socket2` covers socket creation and most
//! options, but not IPV6_RECVPKTINFO, batched `recvmmsg`/`sendmmsg` with per-message control
//! data, `epoll` with EPOLLEXCLUSIVE, or the interface lookups, so those few calls are wrapped
//! by hand. Buffers for the batched calls are allocated once per worker and reused, so the
//! packet path does not touch the heap.

use std::ffi::CString;
use std::io;
use std::mem;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;

/// Datagrams moved per `recvmmsg`/`sendmmsg` call.
pub const BATCH: usize = 32;

/// Room for control messages per datagram: one `in6_pktinfo` needs CMSG_SPACE(20) = 40 bytes
/// on 64-bit Linux; 64 leaves slack. Stored as `u64`s so the buffer is aligned for `cmsghdr`.
const CONTROL_U64S: usize = 8;
const CONTROL_LEN: usize = CONTROL_U64S * mem::size_of::<u64>();

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// OS interface index of `name` in the calling thread's network namespace.
pub fn if_nametoindex(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(index)
    }
}

/// The Ethernet MAC address of interface `name`, or `None` if it is not an Ethernet-like
/// interface (loopback, tunnels) or its address is all zeros.
pub fn ethernet_address(name: &str) -> io::Result<Option<[u8; 6]>> {
    if name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: plain socket(2) call; the result is checked and owned immediately.
    let fd =
        cvt(unsafe { libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `ifreq` is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR reads `ifr_name` and writes `ifr_ifru.ifru_hwaddr` of the `ifreq`
    // we own; the name is NUL-terminated because it is shorter than IFNAMSIZ.
    cvt(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) })?;
    // SAFETY: after a successful SIOCGIFHWADDR the union holds `ifru_hwaddr`.
    let hw = unsafe { req.ifr_ifru.ifru_hwaddr };
    if hw.sa_family != libc::ARPHRD_ETHER {
        return Ok(None);
    }
    let mut mac = [0u8; 6];
    for (dst, src) in mac.iter_mut().zip(hw.sa_data.iter()) {
        *dst = *src as u8;
    }
    Ok((mac != [0; 6]).then_some(mac))
}

fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the option value is a live `c_int` and its exact size is passed.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Ask for an IPV6_PKTINFO control message (destination address, arrival interface) with
/// every received datagram (RFC 3542 §6.1).
pub fn set_recv_pktinfo(sock: &impl AsRawFd) -> io::Result<()> {
    setsockopt_int(
        sock.as_raw_fd(),
        libc::IPPROTO_IPV6,
        libc::IPV6_RECVPKTINFO,
        1,
    )
}

/// Wait until `fd` is readable or `timeout_ms` passes; `Ok(true)` if readable.
pub fn poll_readable(fd: &impl AsRawFd, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid `pollfd` and a count of one.
    match unsafe { libc::poll(&mut pfd, 1, timeout_ms) } {
        -1 => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
        0 => Ok(false),
        _ => Ok(pfd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0),
    }
}

/// An epoll instance owned by one worker.
pub struct Epoll {
    fd: OwnedFd,
}

/// One readiness event: the token registered with the descriptor.
pub type Event = libc::epoll_event;

pub const fn empty_event() -> Event {
    libc::epoll_event { events: 0, u64: 0 }
}

pub fn event_token(e: &Event) -> u64 {
    e.u64
}

impl Epoll {
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain epoll_create1(2); the result is checked and owned immediately.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `fd` is a fresh descriptor nothing else owns.
        Ok(Epoll {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Watch `fd` for readability. With `exclusive` (EPOLLEXCLUSIVE), when several workers'
    /// epoll instances watch the same socket, one datagram's arrival wakes one of them rather
    /// than all, so idle workers do not stampede over a single datagram.
    pub fn add(&self, fd: &impl AsRawFd, token: u64, exclusive: bool) -> io::Result<()> {
        let mut flags = libc::EPOLLIN as u32;
        if exclusive {
            flags |= libc::EPOLLEXCLUSIVE as u32;
        }
        let mut ev = libc::epoll_event {
            events: flags,
            u64: token,
        };
        // SAFETY: both descriptors are open; `ev` is a valid event the kernel copies.
        cvt(unsafe {
            libc::epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                &mut ev,
            )
        })
        .map(drop)
    }

    /// Wait up to `timeout_ms` for events; an interrupted wait returns no events.
    pub fn wait(&self, events: &mut [Event], timeout_ms: i32) -> io::Result<usize> {
        let max = events.len().min(i32::MAX as usize) as libc::c_int;
        // SAFETY: `events` is a writable buffer of at least `max` events.
        let n =
            unsafe { libc::epoll_wait(self.fd.as_raw_fd(), events.as_mut_ptr(), max, timeout_ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(0);
            }
            return Err(e);
        }
        Ok(n as usize)
    }
}

fn sockaddr_to_v6(sa: &libc::sockaddr_in6) -> SocketAddrV6 {
    SocketAddrV6::new(
        Ipv6Addr::from(sa.sin6_addr.s6_addr),
        u16::from_be(sa.sin6_port),
        u32::from_be(sa.sin6_flowinfo),
        sa.sin6_scope_id,
    )
}

fn v6_to_sockaddr(a: &SocketAddrV6) -> libc::sockaddr_in6 {
    // SAFETY: `sockaddr_in6` is plain old data; all-zero is valid.
    let mut sa: libc::sockaddr_in6 = unsafe { mem::zeroed() };
    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sa.sin6_port = a.port().to_be();
    sa.sin6_flowinfo = a.flowinfo().to_be();
    sa.sin6_addr.s6_addr = a.ip().octets();
    sa.sin6_scope_id = a.scope_id();
    sa
}

/// One received datagram, borrowed from an [`RxBatch`].
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    pub payload: &'a [u8],
    pub src: SocketAddrV6,
    /// Destination address and arrival interface index from IPV6_PKTINFO.
    pub pktinfo: Option<(Ipv6Addr, u32)>,
    /// The datagram was longer than the slot and was cut (MSG_TRUNC).
    pub truncated: bool,
}

/// Preallocated state for one `recvmmsg` call of up to [`BATCH`] datagrams.
///
/// The `mmsghdr`s point into the other boxed arrays; the pointers are rebuilt before every
/// call, so moving the struct (the boxes themselves never move) is harmless.
pub struct RxBatch {
    slot_len: usize,
    bufs: Box<[u8]>,
    names: Box<[libc::sockaddr_in6]>,
    control: Box<[[u64; CONTROL_U64S]]>,
    iov: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
    count: usize,
}

impl RxBatch {
    pub fn new(slot_len: usize) -> Self {
        assert!(slot_len > 0);
        // SAFETY (all three): these C structs are plain old data; all-zero is valid.
        let name: libc::sockaddr_in6 = unsafe { mem::zeroed() };
        let iov = libc::iovec {
            iov_base: ptr::null_mut(),
            iov_len: 0,
        };
        // SAFETY: as above.
        let hdr: libc::mmsghdr = unsafe { mem::zeroed() };
        RxBatch {
            slot_len,
            bufs: vec![0u8; slot_len * BATCH].into_boxed_slice(),
            names: vec![name; BATCH].into_boxed_slice(),
            control: vec![[0u64; CONTROL_U64S]; BATCH].into_boxed_slice(),
            iov: vec![iov; BATCH].into_boxed_slice(),
            hdrs: vec![hdr; BATCH].into_boxed_slice(),
            count: 0,
        }
    }

    /// Receive up to [`BATCH`] datagrams without blocking. `Ok(0)` never happens for UDP: an
    /// empty queue is `Err(WouldBlock)`.
    pub fn recv(&mut self, sock: &impl AsRawFd) -> io::Result<usize> {
        self.count = 0;
        let bufs = self.bufs.as_mut_ptr();
        for i in 0..BATCH {
            // SAFETY: `i * slot_len` is within `bufs`, which is `slot_len * BATCH` long.
            self.iov[i].iov_base = unsafe { bufs.add(i * self.slot_len) }.cast();
            self.iov[i].iov_len = self.slot_len;
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.names[i] as *mut libc::sockaddr_in6).cast();
            h.msg_namelen = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            h.msg_iov = &mut self.iov[i];
            h.msg_iovlen = 1;
            h.msg_control = self.control[i].as_mut_ptr().cast();
            h.msg_controllen = CONTROL_LEN;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        // SAFETY: every header points at buffers owned by `self` that stay alive and unaliased
        // for the duration of the call; the count matches the array length.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                ptr::null_mut(),
            )
        };
        let n = cvt(n)? as usize;
        assert!(n <= BATCH);
        self.count = n;
        Ok(n)
    }

    /// The `i`-th datagram of the last [`recv`](Self::recv).
    pub fn get(&self, i: usize) -> Datagram<'_> {
        assert!(i < self.count);
        let hdr = &self.hdrs[i];
        let len = (hdr.msg_len as usize).min(self.slot_len);
        let start = i * self.slot_len;
        Datagram {
            payload: &self.bufs[start..start + len],
            src: sockaddr_to_v6(&self.names[i]),
            pktinfo: self.pktinfo(i),
            truncated: hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
        }
    }

    fn pktinfo(&self, i: usize) -> Option<(Ipv6Addr, u32)> {
        let h = &self.hdrs[i].msg_hdr;
        if h.msg_flags & libc::MSG_CTRUNC != 0 {
            return None;
        }
        // SAFETY: `h` describes our control buffer with the length the kernel filled in; the
        // CMSG_* macros only walk inside [msg_control, msg_control + msg_controllen).
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(h);
            while !c.is_null() {
                if (*c).cmsg_level == libc::IPPROTO_IPV6
                    && (*c).cmsg_type == libc::IPV6_PKTINFO
                    && (*c).cmsg_len as usize
                        >= libc::CMSG_LEN(mem::size_of::<libc::in6_pktinfo>() as u32) as usize
                {
                    let info = ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::in6_pktinfo>());
                    return Some((Ipv6Addr::from(info.ipi6_addr.s6_addr), info.ipi6_ifindex));
                }
                c = libc::CMSG_NXTHDR(h, c);
            }
        }
        None
    }
}

/// How a [`TxBatch::send`] went.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendOutcome {
    pub sent: usize,
    pub failed: usize,
    /// The first error seen, if any.
    pub first_error: Option<i32>,
}

/// Preallocated state for one `sendmmsg` call of up to [`BATCH`] datagrams, each with an
/// IPV6_PKTINFO control message choosing the outgoing interface and source address.
pub struct TxBatch {
    slot_len: usize,
    bufs: Box<[u8]>,
    lens: [usize; BATCH],
    names: Box<[libc::sockaddr_in6]>,
    control: Box<[[u64; CONTROL_U64S]]>,
    iov: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
    count: usize,
}

impl TxBatch {
    pub fn new(slot_len: usize) -> Self {
        assert!(slot_len > 0);
        // SAFETY: plain old data; all-zero is valid.
        let name: libc::sockaddr_in6 = unsafe { mem::zeroed() };
        let iov = libc::iovec {
            iov_base: ptr::null_mut(),
            iov_len: 0,
        };
        // SAFETY: plain old data; all-zero is valid.
        let hdr: libc::mmsghdr = unsafe { mem::zeroed() };
        TxBatch {
            slot_len,
            bufs: vec![0u8; slot_len * BATCH].into_boxed_slice(),
            lens: [0; BATCH],
            names: vec![name; BATCH].into_boxed_slice(),
            control: vec![[0u64; CONTROL_U64S]; BATCH].into_boxed_slice(),
            iov: vec![iov; BATCH].into_boxed_slice(),
            hdrs: vec![hdr; BATCH].into_boxed_slice(),
            count: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Replies queued so far.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Forget the queued replies without sending them.
    pub fn clear(&mut self) {
        self.count = 0;
    }

    /// The buffer the next reply is written into, or `None` when the batch is full.
    pub fn next_buf(&mut self) -> Option<&mut [u8]> {
        if self.count == BATCH {
            return None;
        }
        let start = self.count * self.slot_len;
        Some(&mut self.bufs[start..start + self.slot_len])
    }

    /// Queue the reply just written into [`next_buf`](Self::next_buf): `len` bytes to `dst`,
    /// out of interface `ifindex` (0: routing decides) from source `src` (unspecified: the
    /// kernel picks).
    pub fn commit(&mut self, len: usize, dst: SocketAddrV6, src: Ipv6Addr, ifindex: u32) {
        assert!(self.count < BATCH && len <= self.slot_len);
        let i = self.count;
        self.lens[i] = len;
        self.names[i] = v6_to_sockaddr(&dst);
        let info = libc::in6_pktinfo {
            ipi6_addr: libc::in6_addr {
                s6_addr: src.octets(),
            },
            ipi6_ifindex: ifindex,
        };
        self.control[i] = [0; CONTROL_U64S];
        // SAFETY: a zeroed msghdr whose control buffer is our aligned `control[i]`, large
        // enough (CONTROL_LEN >= CMSG_SPACE(sizeof in6_pktinfo)) for one cmsg, which is
        // written through the CMSG_* macros inside that buffer.
        unsafe {
            let mut h: libc::msghdr = mem::zeroed();
            h.msg_control = self.control[i].as_mut_ptr().cast();
            h.msg_controllen = CONTROL_LEN;
            let c = libc::CMSG_FIRSTHDR(&h);
            assert!(!c.is_null());
            (*c).cmsg_level = libc::IPPROTO_IPV6;
            (*c).cmsg_type = libc::IPV6_PKTINFO;
            (*c).cmsg_len = libc::CMSG_LEN(mem::size_of::<libc::in6_pktinfo>() as u32) as _;
            ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::in6_pktinfo>(), info);
        }
        self.count += 1;
    }

    /// Send every queued reply, then empty the batch. A datagram the kernel refuses (no route,
    /// interface gone) is skipped and counted; the rest still go out.
    pub fn send(&mut self, sock: &impl AsRawFd) -> SendOutcome {
        // SAFETY: CMSG_SPACE is a pure size computation.
        let control_len =
            unsafe { libc::CMSG_SPACE(mem::size_of::<libc::in6_pktinfo>() as u32) } as usize;
        let bufs = self.bufs.as_mut_ptr();
        for i in 0..self.count {
            // SAFETY: `i * slot_len` is within `bufs`.
            self.iov[i].iov_base = unsafe { bufs.add(i * self.slot_len) }.cast();
            self.iov[i].iov_len = self.lens[i];
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.names[i] as *mut libc::sockaddr_in6).cast();
            h.msg_namelen = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            h.msg_iov = &mut self.iov[i];
            h.msg_iovlen = 1;
            h.msg_control = self.control[i].as_mut_ptr().cast();
            h.msg_controllen = control_len;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        let mut out = SendOutcome::default();
        let mut next = 0;
        // Each round either sends at least one datagram or skips exactly one, so this ends
        // within `count` rounds.
        while next < self.count {
            let remaining = (self.count - next) as libc::c_uint;
            // SAFETY: headers `next..count` point at buffers owned by `self`, alive and
            // unaliased for the duration of the call.
            let n = unsafe {
                libc::sendmmsg(
                    sock.as_raw_fd(),
                    self.hdrs.as_mut_ptr().add(next),
                    remaining,
                    0,
                )
            };
            if n > 0 {
                next += n as usize;
                out.sent += n as usize;
            } else {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                out.first_error.get_or_insert(e.raw_os_error().unwrap_or(0));
                out.failed += 1;
                next += 1;
            }
        }
        self.count = 0;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_round_trip() {
        let a = SocketAddrV6::new("fe80::1:2".parse().unwrap(), 546, 7, 3);
        assert_eq!(sockaddr_to_v6(&v6_to_sockaddr(&a)), a);
    }

    #[test]
    fn loopback_batch_carries_pktinfo() {
        let rx = std::net::UdpSocket::bind("[::1]:0").unwrap();
        set_recv_pktinfo(&rx).unwrap();
        let tx = std::net::UdpSocket::bind("[::1]:0").unwrap();
        let mut batch = TxBatch::new(64);
        for i in 0..3u8 {
            batch.next_buf().unwrap()[..4].copy_from_slice(&[i; 4]);
            let dst = match rx.local_addr().unwrap() {
                std::net::SocketAddr::V6(a) => a,
                _ => unreachable!(),
            };
            batch.commit(4, dst, Ipv6Addr::UNSPECIFIED, 0);
        }
        assert_eq!(
            batch.send(&tx),
            SendOutcome {
                sent: 3,
                failed: 0,
                first_error: None
            }
        );
        assert!(poll_readable(&rx, 1000).unwrap());
        let mut r = RxBatch::new(2);
        let n = r.recv(&rx).unwrap();
        assert_eq!(n, 3);
        for i in 0..n {
            let d = r.get(i);
            assert!(d.truncated, "4 bytes into a 2-byte slot is cut");
            assert_eq!(d.payload, &[i as u8; 2]);
            assert_eq!(d.pktinfo.map(|p| p.0), Some(Ipv6Addr::LOCALHOST));
            assert_eq!(std::net::SocketAddr::V6(d.src), tx.local_addr().unwrap());
        }
        assert_eq!(r.recv(&rx).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    }
}
