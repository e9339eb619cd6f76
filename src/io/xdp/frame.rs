//! Minimal Ethernet/VLAN/IPv6/UDP handling for the AF_XDP worker.
//!
//! TODO(frame): replace with `crate::wire::frame` (branch `frame`) once it lands; this module
//! is private to the XDP backend and only does what the worker needs: parse a received frame
//! into offsets, verify the UDP checksum, and rewrite the frame in place into a reply.
//!
//! Fields are read at offsets with bounds checks, never by casting bytes to structs.

use std::net::Ipv6Addr;

pub const ETH_HDR_LEN: usize = 14;
pub const VLAN_TAG_LEN: usize = 4;
pub const IPV6_HDR_LEN: usize = 40;
pub const UDP_HDR_LEN: usize = 8;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_DSTOPTS: u8 = 60;
/// Same bound as the XDP program (ebpf/xdp_dhcp6.c).
const MAX_EXT_HEADERS: usize = 8;
const MAX_VLAN_TAGS: usize = 2;
/// Hop limit of replies. Relays may be several hops away (RFC 8415 §19), so not 1 or 255.
pub const REPLY_HOP_LIMIT: u8 = 64;

/// Why a frame was dropped before or after the protocol core. `Copy`; indexes counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameDrop {
    /// Shorter than its headers claim, or lengths inconsistent.
    Truncated,
    /// Not IPv6/UDP (the XDP program should never steer these).
    NotIpv6Udp,
    /// A fragment, too many extension headers, or more than two VLAN tags.
    Unsupported,
    /// UDP checksum zero (forbidden in IPv6, RFC 8200 §8.1) or wrong.
    BadChecksum,
    /// Source address that can never be answered (multicast or unspecified).
    BadSource,
    /// The reply would not fit the frame or the interface MTU.
    ReplyTooBig,
    /// The TX ring was full.
    TxRingFull,
    /// The interface has no address of the scope the reply needs.
    NoSourceAddress,
}

impl FrameDrop {
    pub const COUNT: usize = 8;
    pub const ALL: [FrameDrop; Self::COUNT] = [
        FrameDrop::Truncated,
        FrameDrop::NotIpv6Udp,
        FrameDrop::Unsupported,
        FrameDrop::BadChecksum,
        FrameDrop::BadSource,
        FrameDrop::ReplyTooBig,
        FrameDrop::TxRingFull,
        FrameDrop::NoSourceAddress,
    ];
    pub const fn index(self) -> usize {
        self as usize
    }
    pub const fn name(self) -> &'static str {
        match self {
            FrameDrop::Truncated => "truncated",
            FrameDrop::NotIpv6Udp => "not_ipv6_udp",
            FrameDrop::Unsupported => "unsupported_headers",
            FrameDrop::BadChecksum => "bad_udp_checksum",
            FrameDrop::BadSource => "bad_source",
            FrameDrop::ReplyTooBig => "reply_too_big",
            FrameDrop::TxRingFull => "tx_ring_full",
            FrameDrop::NoSourceAddress => "no_source_address",
        }
    }
}

/// Offsets and addresses of a parsed request frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// Bytes of Ethernet header plus VLAN tags; the IPv6 header starts here.
    pub l3_off: usize,
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub src_port: u16,
    pub dst_port: u16,
    /// UDP payload range within the frame.
    pub payload_off: usize,
    pub payload_len: usize,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn addr(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    let s: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(s))
}

fn mac(b: &[u8], at: usize) -> Option<[u8; 6]> {
    b.get(at..at + 6)?.try_into().ok()
}

/// Parse a received frame. `verify_checksum` checks the UDP checksum (RFC 8200 §8.1).
pub fn parse(frame: &[u8], verify_checksum: bool) -> Result<Parsed, FrameDrop> {
    use FrameDrop::*;
    let mut off = ETH_HDR_LEN;
    let mut ethertype = be16(frame, 12).ok_or(Truncated)?;
    let mut tags = 0;
    while ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
        if tags == MAX_VLAN_TAGS {
            return Err(Unsupported);
        }
        ethertype = be16(frame, off + 2).ok_or(Truncated)?;
        off += VLAN_TAG_LEN;
        tags += 1;
    }
    if ethertype != ETHERTYPE_IPV6 {
        return Err(NotIpv6Udp);
    }
    let l3_off = off;
    let ip = frame.get(l3_off..l3_off + IPV6_HDR_LEN).ok_or(Truncated)?;
    if ip[0] >> 4 != 6 {
        return Err(NotIpv6Udp);
    }
    let ip_payload_len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    let ip_end = l3_off + IPV6_HDR_LEN + ip_payload_len;
    if ip_end > frame.len() {
        return Err(Truncated);
    }
    let src = addr(frame, l3_off + 8).ok_or(Truncated)?;
    let dst = addr(frame, l3_off + 24).ok_or(Truncated)?;
    let mut next = ip[6];
    off = l3_off + IPV6_HDR_LEN;
    let mut walked = 0;
    while next != IPPROTO_UDP {
        match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                if walked == MAX_EXT_HEADERS {
                    return Err(Unsupported);
                }
                let hdr = frame.get(off..off + 2).ok_or(Truncated)?;
                next = hdr[0];
                off += (usize::from(hdr[1]) + 1) * 8;
                walked += 1;
            }
            IPPROTO_FRAGMENT => return Err(Unsupported),
            _ => return Err(NotIpv6Udp),
        }
    }
    if off + UDP_HDR_LEN > ip_end {
        return Err(Truncated);
    }
    let src_port = be16(frame, off).ok_or(Truncated)?;
    let dst_port = be16(frame, off + 2).ok_or(Truncated)?;
    let udp_len = usize::from(be16(frame, off + 4).ok_or(Truncated)?);
    if udp_len < UDP_HDR_LEN || off + udp_len > ip_end {
        return Err(Truncated);
    }
    if verify_checksum {
        let stored = be16(frame, off + 6).ok_or(Truncated)?;
        if stored == 0 || udp_checksum_fold(&src, &dst, &frame[off..off + udp_len]) != 0xffff {
            return Err(BadChecksum);
        }
    }
    if src.is_multicast() || src.is_unspecified() {
        return Err(BadSource);
    }
    Ok(Parsed {
        l3_off,
        src_mac: mac(frame, 6).ok_or(Truncated)?,
        dst_mac: mac(frame, 0).ok_or(Truncated)?,
        src,
        dst,
        src_port,
        dst_port,
        payload_off: off + UDP_HDR_LEN,
        payload_len: udp_len - UDP_HDR_LEN,
    })
}

/// One's-complement sum of 16-bit big-endian words, unfolded.
fn sum_words(mut acc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Folded sum over the IPv6 pseudo-header (RFC 8200 §8.1) and the UDP datagram as stored.
/// A datagram with a correct checksum folds to 0xffff.
fn udp_checksum_fold(src: &Ipv6Addr, dst: &Ipv6Addr, udp: &[u8]) -> u16 {
    let mut acc = sum_words(0, &src.octets());
    acc = sum_words(acc, &dst.octets());
    acc += udp.len() as u64;
    acc += u64::from(IPPROTO_UDP);
    fold(sum_words(acc, udp))
}

/// Where and how to send a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyAddrs {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub src_port: u16,
    pub dst_port: u16,
}

/// Rewrite `frame` in place into a reply whose UDP payload (`payload_len` bytes) the caller has
/// already placed at `l3_off + 48`. The Ethernet header and VLAN tags (`l3_off` bytes) are kept
/// except for the MACs; the IPv6 header is rewritten without extension headers. Returns the
/// reply's frame length.
pub fn write_reply(
    frame: &mut [u8],
    l3_off: usize,
    a: &ReplyAddrs,
    payload_len: usize,
) -> Option<usize> {
    let udp_off = l3_off + IPV6_HDR_LEN;
    let udp_len = UDP_HDR_LEN + payload_len;
    let total = udp_off + udp_len;
    if total > frame.len() || udp_len > usize::from(u16::MAX) {
        return None;
    }
    frame[0..6].copy_from_slice(&a.dst_mac);
    frame[6..12].copy_from_slice(&a.src_mac);
    let ip = &mut frame[l3_off..udp_off];
    // Version 6, traffic class 0, flow label 0.
    ip[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
    ip[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    ip[6] = IPPROTO_UDP;
    ip[7] = REPLY_HOP_LIMIT;
    ip[8..24].copy_from_slice(&a.src.octets());
    ip[24..40].copy_from_slice(&a.dst.octets());
    let udp = &mut frame[udp_off..total];
    udp[0..2].copy_from_slice(&a.src_port.to_be_bytes());
    udp[2..4].copy_from_slice(&a.dst_port.to_be_bytes());
    udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    let sum = !udp_checksum_fold(&a.src, &a.dst, udp);
    // RFC 8200 §8.1: a computed zero is sent as 0xffff.
    let sum = if sum == 0 { 0xffff } else { sum };
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
    Some(total)
}

/// The payload offset `write_reply` expects for a frame whose IPv6 header starts at `l3_off`.
pub const fn reply_payload_off(l3_off: usize) -> usize {
    l3_off + IPV6_HDR_LEN + UDP_HDR_LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Build a frame: Ethernet (+ tags), IPv6, optional hop-by-hop header, UDP, payload.
    pub(crate) fn build(
        tags: &[u16],
        hbh: bool,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut f = vec![0x33, 0x33, 0, 1, 0, 2, 2, 0, 0, 0, 0, 1];
        for &t in tags {
            f.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
            f.extend_from_slice(&t.to_be_bytes());
        }
        f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        let udp_len = 8 + payload.len();
        let ext = if hbh { 8 } else { 0 };
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&((udp_len + ext) as u16).to_be_bytes());
        f.push(if hbh { IPPROTO_HOPOPTS } else { IPPROTO_UDP });
        f.push(1);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&dst.octets());
        if hbh {
            f.extend_from_slice(&[IPPROTO_UDP, 0, 1, 4, 0, 0, 0, 0]);
        }
        let udp_off = f.len();
        f.extend_from_slice(&546u16.to_be_bytes());
        f.extend_from_slice(&547u16.to_be_bytes());
        f.extend_from_slice(&(udp_len as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(payload);
        let sum = !udp_checksum_fold(&src, &dst, &f[udp_off..]);
        f[udp_off + 6..udp_off + 8].copy_from_slice(&sum.to_be_bytes());
        f
    }

    fn ll() -> Ipv6Addr {
        "fe80::1".parse().unwrap()
    }
    fn mc() -> Ipv6Addr {
        "ff02::1:2".parse().unwrap()
    }

    #[test]
    fn parses_plain_tagged_and_ext() {
        for (tags, hbh) in [
            (&[][..], false),
            (&[100u16][..], false),
            (&[10, 20][..], true),
        ] {
            let f = build(tags, hbh, ll(), mc(), b"\x01\x00\x00\x01abc");
            let p = parse(&f, true).unwrap();
            assert_eq!(p.l3_off, 14 + 4 * tags.len());
            assert_eq!(
                (p.src, p.dst, p.src_port, p.dst_port),
                (ll(), mc(), 546, 547)
            );
            assert_eq!(
                &f[p.payload_off..p.payload_off + p.payload_len],
                b"\x01\x00\x00\x01abc"
            );
        }
    }

    #[test]
    fn rejects_bad_checksum_and_truncation() {
        let mut f = build(&[], false, ll(), mc(), b"hello");
        let n = f.len();
        f[n - 1] ^= 1;
        assert_eq!(parse(&f, true), Err(FrameDrop::BadChecksum));
        assert!(parse(&f, false).is_ok());
        for cut in 0..n - 1 {
            assert!(parse(&f[..cut], false).is_err(), "cut at {cut}");
        }
        assert_eq!(
            parse(&build(&[1, 2, 3], false, ll(), mc(), b"x"), false),
            Err(FrameDrop::Unsupported)
        );
        assert_eq!(
            parse(&build(&[], false, mc(), mc(), b"x"), true),
            Err(FrameDrop::BadSource)
        );
    }

    #[test]
    fn reply_round_trips_with_valid_checksum() {
        let mut f = build(&[7], true, ll(), mc(), b"request");
        f.resize(2048, 0);
        let p = parse(&f, true).unwrap();
        let off = reply_payload_off(p.l3_off);
        f[off..off + 11].copy_from_slice(b"reply-bytes");
        let a = ReplyAddrs {
            src_mac: [2, 0, 0, 0, 0, 9],
            dst_mac: p.src_mac,
            src: "fe80::9".parse().unwrap(),
            dst: p.src,
            src_port: 547,
            dst_port: 546,
        };
        let len = write_reply(&mut f, p.l3_off, &a, 11).unwrap();
        let r = parse(&f[..len], true).unwrap();
        assert_eq!(&f[12..16], &[0x81, 0x00, 0, 7], "VLAN tag kept");
        assert_eq!(
            (r.src, r.dst, r.src_port, r.dst_port),
            (a.src, a.dst, 547, 546)
        );
        assert_eq!(
            &f[r.payload_off..r.payload_off + r.payload_len],
            b"reply-bytes"
        );
        assert_eq!(write_reply(&mut f[..100], p.l3_off, &a, 200), None);
    }
}
