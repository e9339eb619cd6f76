//! IPv6 fixed header and the extension headers a DHCPv6 datagram may carry (RFC 8200).

use core::net::Ipv6Addr;

use super::bytes::{
    read_array, read_u16, read_u32, read_u8, write_array, write_u16, write_u32, write_u8,
};
use super::FrameError;

/// Next Header values (IANA "Assigned Internet Protocol Numbers").
pub mod next_header {
    /// Hop-by-Hop Options (RFC 8200 §4.3); only allowed right after the fixed header.
    pub const HOP_BY_HOP: u8 = 0;
    pub const UDP: u8 = 17;
    /// Routing header (RFC 8200 §4.4).
    pub const ROUTING: u8 = 43;
    /// Fragment header (RFC 8200 §4.5).
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    /// No Next Header (RFC 8200 §4.7).
    pub const NO_NEXT_HEADER: u8 = 59;
    /// Destination Options (RFC 8200 §4.6).
    pub const DEST_OPTS: u8 = 60;
}

/// The most extension headers [`skip_ext_headers`] walks before giving up. RFC 8200 §4.1
/// recommends an order in which each header appears at most once (destination options at
/// most twice), so a legitimate chain has at most 6; anything longer is an attack on the
/// walker and is dropped (RFC 7112 lets a node drop such packets).
pub const MAX_EXT_HEADERS: usize = 8;

mod field {
    use core::ops::Range;

    pub const VER_TC_FLOW: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
    pub const HEADER_LEN: usize = 40;

    // Generic extension header (RFC 8200 §4.3, §4.4, §4.6): next header, length in 8-octet
    // units not counting the first 8, then data. The routing header's third and fourth
    // octets are the routing type and segments left.
    pub const EXT_NEXT_HEADER: usize = 0;
    pub const EXT_LEN: usize = 1;
    pub const EXT_ROUTING_SEGMENTS_LEFT: usize = 3;
    pub const EXT_MIN_LEN: usize = 8;

    // Fragment header (RFC 8200 §4.5): next header, reserved, offset (13 bits) + res (2) +
    // M flag, identification.
    pub const FRAG_OFFSET_FLAGS: usize = 2;
    pub const FRAG_IDENT: usize = 4;
    pub const FRAG_LEN: usize = 8;
}

/// Length of the fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = field::HEADER_LEN;

/// A checked view of the fixed IPv6 header (RFC 8200 §3).
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps `buffer` without checking it: for emitting into a buffer whose fields are not
    /// yet valid. Accessors still never panic; out-of-range reads yield zeros and
    /// out-of-range writes are ignored.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` after checking it holds the 40-byte fixed header. The version and the
    /// payload length are not checked here: [`super::parse_udp6`] decides what they mean.
    pub fn new_checked(buffer: T) -> Result<Self, FrameError> {
        if buffer.as_ref().len() < field::HEADER_LEN {
            return Err(FrameError::Truncated);
        }
        Ok(Self { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::VER_TC_FLOW) >> 4
    }

    pub fn traffic_class(&self) -> u8 {
        ((read_u32(self.buffer.as_ref(), field::VER_TC_FLOW) >> 20) & 0xff) as u8
    }

    pub fn flow_label(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VER_TC_FLOW) & 0x000f_ffff
    }

    /// Length of everything after the fixed header, extension headers included.
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }

    pub fn next_header(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::NEXT_HEADER)
    }

    pub fn hop_limit(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::HOP_LIMIT)
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(read_array::<16>(self.buffer.as_ref(), field::SRC.start))
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(read_array::<16>(self.buffer.as_ref(), field::DST.start))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Writes version 6 with the given traffic class and flow label (20 bits; higher bits
    /// are dropped).
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let word = (6u32 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        write_u32(self.buffer.as_mut(), field::VER_TC_FLOW, word);
    }

    pub fn set_payload_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::PAYLOAD_LEN, len);
    }

    pub fn set_next_header(&mut self, next_header: u8) {
        write_u8(self.buffer.as_mut(), field::NEXT_HEADER, next_header);
    }

    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        write_u8(self.buffer.as_mut(), field::HOP_LIMIT, hop_limit);
    }

    pub fn set_src_addr(&mut self, addr: &Ipv6Addr) {
        write_array(self.buffer.as_mut(), field::SRC.start, addr.octets());
    }

    pub fn set_dst_addr(&mut self, addr: &Ipv6Addr) {
        write_array(self.buffer.as_mut(), field::DST.start, addr.octets());
    }
}

/// A checked view of a hop-by-hop, routing or destination options header: the two octets
/// every one of them starts with, and the length they declare.
#[derive(Debug, Clone, Copy)]
pub struct ExtHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ExtHeader<T> {
    /// Wraps `buffer` without checking it: for emitting into a buffer whose fields are not
    /// yet valid. Accessors still never panic; out-of-range reads yield zeros and
    /// out-of-range writes are ignored.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Checks that the buffer holds the whole header, as long as its length field says.
    pub fn new_checked(buffer: T) -> Result<Self, FrameError> {
        let view = Self { buffer };
        let len = view.buffer.as_ref().len();
        if len < field::EXT_MIN_LEN || len < view.header_len() {
            return Err(FrameError::Truncated);
        }
        Ok(view)
    }

    pub fn next_header(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::EXT_NEXT_HEADER)
    }

    /// Total length of this header in bytes: (Hdr Ext Len + 1) * 8, at most 2048.
    pub fn header_len(&self) -> usize {
        (usize::from(read_u8(self.buffer.as_ref(), field::EXT_LEN)) + 1) * 8
    }

    /// Segments Left, meaningful for a routing header only.
    pub fn segments_left(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::EXT_ROUTING_SEGMENTS_LEFT)
    }
}

/// A checked view of a fragment header (RFC 8200 §4.5).
#[derive(Debug, Clone, Copy)]
pub struct FragmentHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> FragmentHeader<T> {
    /// Wraps `buffer` without checking it: for emitting into a buffer whose fields are not
    /// yet valid. Accessors still never panic; out-of-range reads yield zeros and
    /// out-of-range writes are ignored.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, FrameError> {
        if buffer.as_ref().len() < field::FRAG_LEN {
            return Err(FrameError::Truncated);
        }
        Ok(Self { buffer })
    }

    pub fn next_header(&self) -> u8 {
        read_u8(self.buffer.as_ref(), field::EXT_NEXT_HEADER)
    }

    /// Fragment offset in 8-octet units.
    pub fn frag_offset(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FRAG_OFFSET_FLAGS) >> 3
    }

    pub fn more_fragments(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FRAG_OFFSET_FLAGS) & 1 == 1
    }

    pub fn ident(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::FRAG_IDENT)
    }

    /// An atomic fragment (offset 0, no more fragments) is a whole datagram and is processed
    /// as one (RFC 6946 §4).
    pub fn is_atomic(&self) -> bool {
        self.frag_offset() == 0 && !self.more_fragments()
    }
}

/// Where the upper-layer header starts, after walking the extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtChain {
    /// Next Header value of the upper-layer header (17 for UDP).
    pub next_header: u8,
    /// Bytes of extension headers, i.e. the upper-layer header's offset in the IPv6 payload.
    pub len: usize,
    /// Number of extension headers walked.
    pub count: usize,
}

/// Walks the extension headers at the start of `payload` (the IPv6 payload, exactly as long
/// as the payload length field says), starting from the fixed header's `next_header`.
///
/// Stops at the first header that is not hop-by-hop, routing, destination options or
/// fragment. Errors:
/// - [`FrameError::ExtChainTooLong`] after [`MAX_EXT_HEADERS`] headers;
/// - [`FrameError::BadExtHeader`] for hop-by-hop anywhere but first (RFC 8200 §4.1), or a
///   routing header with Segments Left != 0: this node is then not the final destination and
///   must not deliver the payload (RFC 8200 §4.4);
/// - [`FrameError::Fragment`] for any fragment but an atomic one: without reassembly, a first
///   fragment holds only part of the UDP datagram and a later one holds no UDP header;
/// - [`FrameError::Truncated`] when a header runs past the IPv6 payload.
pub fn skip_ext_headers(next_header: u8, payload: &[u8]) -> Result<ExtChain, FrameError> {
    use next_header::{DEST_OPTS, FRAGMENT, HOP_BY_HOP, ROUTING};

    let mut chain = ExtChain {
        next_header,
        len: 0,
        count: 0,
    };
    loop {
        if !matches!(
            chain.next_header,
            HOP_BY_HOP | ROUTING | DEST_OPTS | FRAGMENT
        ) {
            return Ok(chain);
        }
        if chain.count == MAX_EXT_HEADERS {
            return Err(FrameError::ExtChainTooLong);
        }
        let rest = payload.get(chain.len..).ok_or(FrameError::Truncated)?;
        let header_len = match chain.next_header {
            FRAGMENT => {
                let frag = FragmentHeader::new_checked(rest)?;
                if !frag.is_atomic() {
                    return Err(FrameError::Fragment);
                }
                chain.next_header = frag.next_header();
                field::FRAG_LEN
            }
            kind => {
                if kind == HOP_BY_HOP && chain.count != 0 {
                    return Err(FrameError::BadExtHeader);
                }
                let ext = ExtHeader::new_checked(rest)?;
                if kind == ROUTING && ext.segments_left() != 0 {
                    return Err(FrameError::BadExtHeader);
                }
                chain.next_header = ext.next_header();
                ext.header_len()
            }
        };
        chain.len += header_len;
        chain.count += 1;
    }
}
