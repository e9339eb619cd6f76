//! Hand-made Ethernet frames and raw sockets, for what ordinary clients cannot do: a
//! VLAN-tagged request on a link without a VLAN device, reading the tag of the answer, and an
//! ICMPv6 echo without a `ping` binary. Every function runs in the calling thread's network
//! namespace (see `netns::in_netns`).
#![allow(unsafe_code)]

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

/// OS index of `dev` in the current namespace.
pub fn ifindex(dev: &str) -> u32 {
    let c = std::ffi::CString::new(dev).unwrap();
    // SAFETY: valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert_ne!(i, 0, "no interface {dev}");
    i
}

/// MAC address of `dev`.
pub fn hw_addr(dev: &str) -> [u8; 6] {
    // SAFETY: SIOCGIFHWADDR on a datagram socket with a zeroed ifreq naming `dev`.
    unsafe {
        let fd = libc::socket(libc::AF_INET6, libc::SOCK_DGRAM, 0);
        assert!(fd >= 0);
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (d, b) in ifr.ifr_name.iter_mut().zip(dev.bytes()) {
            *d = b as libc::c_char;
        }
        assert_eq!(libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut ifr), 0);
        libc::close(fd);
        let sa = ifr.ifr_ifru.ifru_hwaddr.sa_data;
        std::array::from_fn(|i| sa[i] as u8)
    }
}

/// A Solicit for one address (IA_NA, IAID 1) from DUID-LL `mac`, transaction id `xid`.
pub fn solicit(xid: [u8; 3], mac: [u8; 6]) -> Vec<u8> {
    let mut m = vec![1, xid[0], xid[1], xid[2]];
    // Client Identifier: DUID-LL (type 3), hardware type 1 (Ethernet), the MAC.
    m.extend_from_slice(&[0, 1, 0, 10, 0, 3, 0, 1]);
    m.extend_from_slice(&mac);
    // Elapsed Time 0.
    m.extend_from_slice(&[0, 8, 0, 2, 0, 0]);
    // IA_NA: IAID 1, T1 0, T2 0.
    m.extend_from_slice(&[0, 3, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    m
}

/// Ethernet (+ 802.1Q tags) / IPv6 / UDP to ff02::1:2 port 547 with a correct checksum.
pub fn udp_frame(
    tags: &[u16],
    src_mac: [u8; 6],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = vec![0x33, 0x33, 0, 1, 0, 2];
    f.extend_from_slice(&src_mac);
    for t in tags {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&t.to_be_bytes());
    }
    f.extend_from_slice(&[0x86, 0xdd]);
    let ulen = (8 + payload.len()) as u16;
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&ulen.to_be_bytes());
    f.extend_from_slice(&[17, 1]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    let udp_at = f.len();
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&ulen.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    let mut acc: u64 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            acc += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&u32::from(ulen).to_be_bytes());
    add(&[0, 17]);
    add(&f[udp_at..]);
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    let sum = !(acc as u16);
    let sum = if sum == 0 { 0xffff } else { sum };
    f[udp_at + 6..udp_at + 8].copy_from_slice(&sum.to_be_bytes());
    f
}

/// Send one raw Ethernet frame out of `dev`.
pub fn send_raw(dev: &str, frame: &[u8]) {
    // SAFETY: plain socket(2), sendto with a valid sockaddr_ll and buffer, close.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        assert!(fd >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = ifindex(dev) as i32;
        sll.sll_halen = 6;
        let n = libc::sendto(
            fd,
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of_val(&sll) as u32,
        );
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        assert_eq!(n, frame.len() as isize, "raw send: {err}");
    }
}

/// An AF_PACKET receiver on one interface that reports VLAN tags, inline or (after the kernel
/// untagged the frame) through PACKET_AUXDATA.
pub struct RawRx(i32);

/// A DHCPv6 message received to port 546 by [`RawRx`].
#[derive(Debug, Clone)]
pub struct RawReply {
    /// VLAN TCI, 0 when untagged.
    pub tci: u16,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub src_port: u16,
    pub payload: Vec<u8>,
}

impl RawRx {
    pub fn open(dev: &str) -> RawRx {
        // SAFETY: socket/bind/setsockopt with valid, correctly sized arguments.
        unsafe {
            let fd = libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW,
                i32::from((libc::ETH_P_ALL as u16).to_be()),
            );
            assert!(fd >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
            let on: i32 = 1;
            libc::setsockopt(
                fd,
                libc::SOL_PACKET,
                libc::PACKET_AUXDATA,
                (&on as *const i32).cast(),
                4,
            );
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 200_000,
            };
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of_val(&tv) as u32,
            );
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
            sll.sll_ifindex = ifindex(dev) as i32;
            assert_eq!(
                libc::bind(
                    fd,
                    (&sll as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of_val(&sll) as u32
                ),
                0
            );
            RawRx(fd)
        }
    }

    /// The first incoming DHCPv6 message to port 546 with transaction id `xid` (and of type
    /// `msg_type`, when given), within 1 s.
    pub fn recv_reply(&self, xid: [u8; 3], msg_type: Option<u8>) -> Option<RawReply> {
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            let mut buf = [0u8; 2048];
            let mut cbuf = [0u64; 64];
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            // SAFETY: msghdr points at live buffers of the stated sizes; cmsg walking uses
            // the libc macros over that control buffer.
            let (n, aux_tci) = unsafe {
                let mut msg: libc::msghdr = std::mem::zeroed();
                msg.msg_iov = &mut iov;
                msg.msg_iovlen = 1;
                msg.msg_control = cbuf.as_mut_ptr().cast();
                msg.msg_controllen = std::mem::size_of_val(&cbuf);
                let n = libc::recvmsg(self.0, &mut msg, 0);
                if n <= 0 {
                    continue;
                }
                let mut tci = None;
                let mut c = libc::CMSG_FIRSTHDR(&msg);
                while !c.is_null() {
                    if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == libc::PACKET_AUXDATA
                    {
                        let aux = std::ptr::read_unaligned(
                            libc::CMSG_DATA(c) as *const libc::tpacket_auxdata
                        );
                        if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 {
                            tci = Some(aux.tp_vlan_tci);
                        }
                    }
                    c = libc::CMSG_NXTHDR(&msg, c);
                }
                (n as usize, tci)
            };
            let f = &buf[..n];
            let (tci, l3) = if f.get(12..14) == Some(&[0x81, 0x00]) {
                (Some(u16::from_be_bytes([f[14], f[15]])), 18)
            } else {
                (aux_tci, 14)
            };
            let udp = l3 + 40;
            if f.len() < udp + 12 || f[l3 - 2..l3] != [0x86, 0xdd] || f[l3 + 6] != 17 {
                continue;
            }
            let payload = &f[udp + 8..];
            if u16::from_be_bytes([f[udp + 2], f[udp + 3]]) == 546
                && msg_type.is_none_or(|t| payload[0] == t)
                && payload[1..4] == xid
            {
                let addr =
                    |at: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&f[at..at + 16]).unwrap());
                return Some(RawReply {
                    tci: tci.unwrap_or(0),
                    src: addr(l3 + 8),
                    dst: addr(l3 + 24),
                    src_port: u16::from_be_bytes([f[udp], f[udp + 1]]),
                    payload: payload.to_vec(),
                });
            }
        }
        None
    }
}

impl Drop for RawRx {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor.
        unsafe { libc::close(self.0) };
    }
}

/// ICMPv6 echo with a raw socket (no `ping` binary needed); true if answered within 3 tries.
pub fn icmp6_echo(dst: Ipv6Addr, scope: u32) -> bool {
    // SAFETY: plain socket(2); the kernel fills in the ICMPv6 checksum for raw ICMPv6 sockets.
    let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6) };
    assert!(
        fd >= 0,
        "raw ICMPv6 socket: {}",
        std::io::Error::last_os_error()
    );
    let tv = libc::timeval {
        tv_sec: 1,
        tv_usec: 0,
    };
    // SAFETY: valid option pointer and length.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of_val(&tv) as u32,
        );
    }
    // SAFETY: sockaddr_in6 is plain data.
    let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    sa.sin6_family = libc::AF_INET6 as u16;
    sa.sin6_addr.s6_addr = dst.octets();
    sa.sin6_scope_id = scope;
    let req = [128u8, 0, 0, 0, 0x12, 0x34, 0, 1, b'x', b'd'];
    let mut ok = false;
    for _ in 0..3 {
        // SAFETY: buffer and address are valid for the call.
        unsafe {
            libc::sendto(
                fd,
                req.as_ptr().cast(),
                req.len(),
                0,
                (&sa as *const libc::sockaddr_in6).cast(),
                std::mem::size_of_val(&sa) as u32,
            );
        }
        let mut buf = [0u8; 1500];
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            // SAFETY: receives into our buffer.
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n <= 0 {
                break;
            }
            if buf[0] == 129 && buf[4..6] == [0x12, 0x34] {
                ok = true;
                break;
            }
        }
        if ok {
            break;
        }
    }
    // SAFETY: we own fd.
    unsafe { libc::close(fd) };
    ok
}
