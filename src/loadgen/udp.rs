//! The UDP socket transport: one non-blocking socket per worker, batched with
//! `sendmmsg`/`recvmmsg`, plus the few other syscalls the generator needs (interface index,
//! CPU pinning). All `unsafe` of the generator lives in this module.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use super::Transport;

/// Most datagrams per `sendmmsg`/`recvmmsg` call.
pub const MAX_BATCH: usize = 64;
/// Largest payload we build (relay chains included); far below any MTU we test on.
const TX_BUF: usize = 1536;
/// Largest reply we accept; longer ones arrive truncated and fail to parse.
const RX_BUF: usize = 4096;
/// Socket buffers: deep enough to absorb a burst of a whole batch from every worker.
const SOCKET_BUFFER_BYTES: libc::c_int = 8 << 20;

/// How one worker's socket is set up.
#[derive(Debug, Clone, Copy)]
pub struct UdpConfig {
    pub bind: SocketAddrV6,
    pub dst: SocketAddrV6,
    /// Interface for multicast sends (direct clients), with hop limit 1.
    pub multicast_if: Option<u32>,
    pub batch: usize,
}

pub struct UdpTransport {
    sock: UdpSocket,
    dst: libc::sockaddr_in6,
    batch: usize,
    tx: Vec<u8>,
    tx_len: [usize; MAX_BATCH],
    tx_n: usize,
    rx: Vec<u8>,
    tx_errors: u64,
    last_error: Option<io::Error>,
}

fn sockaddr(a: &SocketAddrV6) -> libc::sockaddr_in6 {
    // SAFETY: sockaddr_in6 is plain old data; all-zero is a valid value of it.
    let mut s: libc::sockaddr_in6 = unsafe { zeroed() };
    s.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    s.sin6_port = a.port().to_be();
    s.sin6_addr = libc::in6_addr {
        s6_addr: a.ip().octets(),
    };
    s.sin6_scope_id = a.scope_id();
    s
}

fn setsockopt_int(
    fd: libc::c_int,
    level: libc::c_int,
    name: libc::c_int,
    val: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `fd` is an open socket; the pointer and length describe a c_int on our stack that
    // outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&val as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Wait until `fd` is ready for `events` or `wait` passes.
pub(super) fn wait_fd(fd: libc::c_int, events: libc::c_short, wait: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: wait.as_secs() as libc::time_t,
        tv_nsec: wait.subsec_nanos() as libc::c_long,
    };
    // SAFETY: one valid pollfd and a valid timespec on our stack; no signal mask.
    let rc = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
    match rc {
        n if n > 0 => Ok(true),
        0 => Ok(false),
        _ => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
    }
}

impl UdpTransport {
    pub fn open(cfg: &UdpConfig) -> io::Result<Self> {
        let sock = UdpSocket::bind(cfg.bind)?;
        sock.set_nonblocking(true)?;
        let fd = sock.as_raw_fd();
        // The FORCE variants pass the sysctl caps when we have CAP_NET_ADMIN; otherwise take
        // what the kernel allows.
        for (force, plain) in [
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
        ] {
            if setsockopt_int(fd, libc::SOL_SOCKET, force, SOCKET_BUFFER_BYTES).is_err() {
                setsockopt_int(fd, libc::SOL_SOCKET, plain, SOCKET_BUFFER_BYTES)?;
            }
        }
        if let Some(ifindex) = cfg.multicast_if {
            setsockopt_int(
                fd,
                libc::IPPROTO_IPV6,
                libc::IPV6_MULTICAST_IF,
                ifindex as libc::c_int,
            )?;
            setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, 1)?;
            sock.set_multicast_loop_v6(false)?;
        }
        let batch = cfg.batch.clamp(1, MAX_BATCH);
        Ok(UdpTransport {
            sock,
            dst: sockaddr(&cfg.dst),
            batch,
            tx: vec![0; TX_BUF * MAX_BATCH],
            tx_len: [0; MAX_BATCH],
            tx_n: 0,
            rx: vec![0; RX_BUF * MAX_BATCH],
            tx_errors: 0,
            last_error: None,
        })
    }

    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.sock.local_addr()
    }
}

impl Transport for UdpTransport {
    fn tx_slot(&mut self) -> Option<&mut [u8]> {
        if self.tx_n >= self.batch {
            return None;
        }
        let at = self.tx_n * TX_BUF;
        Some(&mut self.tx[at..at + TX_BUF])
    }

    fn tx_commit(&mut self, len: usize) {
        assert!(self.tx_n < self.batch && len <= TX_BUF);
        self.tx_len[self.tx_n] = len;
        self.tx_n += 1;
    }

    fn flush(&mut self) -> u64 {
        let n = self.tx_n;
        self.tx_n = 0;
        if n == 0 {
            return 0;
        }
        let fd = self.sock.as_raw_fd();
        // SAFETY: iovec and mmsghdr are plain old data; all-zero is valid for both.
        let mut iov: [libc::iovec; MAX_BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
        let base = self.tx.as_mut_ptr();
        for i in 0..n {
            // SAFETY: i * TX_BUF + tx_len[i] <= tx.len() (tx_commit checks len <= TX_BUF).
            iov[i].iov_base = unsafe { base.add(i * TX_BUF) }.cast();
            iov[i].iov_len = self.tx_len[i];
            let h = &mut msgs[i].msg_hdr;
            h.msg_name = (&mut self.dst as *mut libc::sockaddr_in6).cast();
            h.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            h.msg_iov = &mut iov[i];
            h.msg_iovlen = 1;
        }
        // SAFETY: msgs[..n] are initialised headers whose iovecs point into self.tx and whose
        // names point at self.dst, all alive and unaliased until send_all returns.
        let (dropped, error) = unsafe { send_all(fd, &mut msgs[..n]) };
        if let Some(e) = error {
            self.tx_errors += dropped;
            self.last_error = Some(e);
        }
        dropped
    }

    fn recv(&mut self, wait: Duration, f: &mut dyn FnMut(&[u8])) -> io::Result<usize> {
        let fd = self.sock.as_raw_fd();
        let batch = self.batch;
        for attempt in 0..2 {
            // SAFETY: plain old data, all-zero is valid.
            let mut iov: [libc::iovec; MAX_BATCH] = unsafe { zeroed() };
            // SAFETY: as above.
            let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
            let base = self.rx.as_mut_ptr();
            for i in 0..batch {
                // SAFETY: (i + 1) * RX_BUF <= rx.len() for i < MAX_BATCH.
                iov[i].iov_base = unsafe { base.add(i * RX_BUF) }.cast();
                iov[i].iov_len = RX_BUF;
                msgs[i].msg_hdr.msg_iov = &mut iov[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: `batch` initialised headers pointing into self.rx, alive for the call;
            // MSG_DONTWAIT so it never blocks; no timeout pointer.
            let rc = unsafe {
                libc::recvmmsg(
                    fd,
                    msgs.as_mut_ptr(),
                    batch as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if rc > 0 {
                let n = rc as usize;
                for (i, m) in msgs.iter().enumerate().take(n) {
                    let len = (m.msg_len as usize).min(RX_BUF);
                    f(&self.rx[i * RX_BUF..i * RX_BUF + len]);
                }
                return Ok(n);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => {
                    if attempt == 0 && !wait.is_zero() && !wait_fd(fd, libc::POLLIN, wait)? {
                        return Ok(0);
                    }
                    if wait.is_zero() {
                        return Ok(0);
                    }
                }
                _ => return Err(e),
            }
        }
        Ok(0)
    }

    fn tx_errors(&self) -> (u64, Option<String>) {
        (
            self.tx_errors,
            self.last_error.as_ref().map(|e| e.to_string()),
        )
    }
}

/// The OS index of interface `name`.
pub fn ifindex(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a NUL-terminated string alive for the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(i)
    }
}

/// CPU time the calling thread has used, in microseconds.
pub fn thread_cpu_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

/// Pin the calling thread to `cpu`.
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain old data (all-zero is the empty set); CPU_SET writes inside
    // it (it bounds-checks `cpu`); sched_setaffinity reads size_of::<cpu_set_t>() bytes of it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A UDP socket that receives and answers in batches, replying to each datagram's source
/// (the test responder's data path).
pub struct BatchSocket {
    sock: UdpSocket,
    rx: Vec<u8>,
    rx_len: [usize; MAX_BATCH],
    tx: Vec<u8>,
    names: [libc::sockaddr_in6; MAX_BATCH],
    out: [(usize, usize); MAX_BATCH],
    out_n: usize,
}

impl BatchSocket {
    pub fn new(sock: UdpSocket) -> io::Result<Self> {
        sock.set_nonblocking(true)?;
        let fd = sock.as_raw_fd();
        for (force, plain) in [
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
        ] {
            if setsockopt_int(fd, libc::SOL_SOCKET, force, SOCKET_BUFFER_BYTES).is_err() {
                setsockopt_int(fd, libc::SOL_SOCKET, plain, SOCKET_BUFFER_BYTES)?;
            }
        }
        Ok(BatchSocket {
            sock,
            rx: vec![0; RX_BUF * MAX_BATCH],
            rx_len: [0; MAX_BATCH],
            tx: vec![0; RX_BUF * MAX_BATCH],
            // SAFETY: plain old data, all-zero is valid.
            names: unsafe { zeroed() },
            out: [(0, 0); MAX_BATCH],
            out_n: 0,
        })
    }

    /// Receive up to a batch, waiting up to `wait` for the first datagram. Returns how many.
    pub fn recv_batch(&mut self, wait: Duration) -> io::Result<usize> {
        let fd = self.sock.as_raw_fd();
        for attempt in 0..2 {
            // SAFETY: plain old data, all-zero is valid.
            let mut iov: [libc::iovec; MAX_BATCH] = unsafe { zeroed() };
            // SAFETY: as above.
            let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
            let base = self.rx.as_mut_ptr();
            for i in 0..MAX_BATCH {
                // SAFETY: (i + 1) * RX_BUF <= rx.len().
                iov[i].iov_base = unsafe { base.add(i * RX_BUF) }.cast();
                iov[i].iov_len = RX_BUF;
                let h = &mut msgs[i].msg_hdr;
                h.msg_iov = &mut iov[i];
                h.msg_iovlen = 1;
                h.msg_name = (&mut self.names[i] as *mut libc::sockaddr_in6).cast();
                h.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
            // SAFETY: MAX_BATCH initialised headers pointing into self.rx and self.names, alive
            // and unaliased for the call; MSG_DONTWAIT; no timeout pointer.
            let rc = unsafe {
                libc::recvmmsg(
                    fd,
                    msgs.as_mut_ptr(),
                    MAX_BATCH as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if rc > 0 {
                let n = rc as usize;
                for (i, m) in msgs.iter().enumerate().take(n) {
                    self.rx_len[i] = (m.msg_len as usize).min(RX_BUF);
                }
                return Ok(n);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => {
                    if attempt == 1 || !wait_fd(fd, libc::POLLIN, wait)? {
                        return Ok(0);
                    }
                }
                _ => return Err(e),
            }
        }
        Ok(0)
    }

    /// Datagram `i` of the last batch and the reply buffer for it.
    pub fn split(&mut self, i: usize) -> (&[u8], &mut [u8]) {
        let at = i * RX_BUF;
        (
            &self.rx[at..at + self.rx_len[i]],
            &mut self.tx[at..at + RX_BUF],
        )
    }

    /// Queue `len` bytes of reply buffer `i` for datagram `i`'s source.
    pub fn queue_reply(&mut self, i: usize, len: usize) {
        assert!(i < MAX_BATCH && len <= RX_BUF && self.out_n < MAX_BATCH);
        self.out[self.out_n] = (i, len);
        self.out_n += 1;
    }

    /// Send the queued replies. Returns how many could not be sent.
    pub fn send_replies(&mut self) -> u64 {
        let n = self.out_n;
        self.out_n = 0;
        if n == 0 {
            return 0;
        }
        let fd = self.sock.as_raw_fd();
        // SAFETY: plain old data, all-zero is valid.
        let mut iov: [libc::iovec; MAX_BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
        let base = self.tx.as_mut_ptr();
        for k in 0..n {
            let (i, len) = self.out[k];
            // SAFETY: i < MAX_BATCH and len <= RX_BUF (queue_reply checks), inside self.tx.
            iov[k].iov_base = unsafe { base.add(i * RX_BUF) }.cast();
            iov[k].iov_len = len;
            let h = &mut msgs[k].msg_hdr;
            h.msg_iov = &mut iov[k];
            h.msg_iovlen = 1;
            h.msg_name = (&mut self.names[i] as *mut libc::sockaddr_in6).cast();
            h.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        }
        // SAFETY: msgs[..n] are initialised and point into self.tx / self.names, alive until
        // send_all returns.
        unsafe { send_all(fd, &mut msgs[..n]) }.0
    }
}

/// Send every message of `msgs` with `sendmmsg`, retrying partial sends and waiting briefly
/// (bounded) on a full socket buffer. A datagram the kernel refuses is skipped and counted.
/// Returns how many were skipped and the last error seen.
///
/// # Safety
/// Every header in `msgs` must point at iovecs, buffers and names valid for the call.
unsafe fn send_all(fd: i32, msgs: &mut [libc::mmsghdr]) -> (u64, Option<io::Error>) {
    let n = msgs.len();
    let (mut sent, mut dropped, mut stalls, mut last) = (0, 0u64, 0, None);
    while sent < n {
        // SAFETY: the caller guarantees msgs[sent..n] are valid for sendmmsg.
        let rc = unsafe {
            libc::sendmmsg(
                fd,
                msgs.as_mut_ptr().add(sent),
                (n - sent) as libc::c_uint,
                0,
            )
        };
        if rc > 0 {
            sent += rc as usize;
            continue;
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock if stalls < 100 => {
                stalls += 1;
                let _ = wait_fd(fd, libc::POLLOUT, Duration::from_micros(200));
            }
            _ => {
                // Skip the datagram the kernel refused (or give up on a full socket).
                last = Some(e);
                sent += 1;
                dropped += 1;
            }
        }
    }
    (dropped, last)
}
