//! Zero-copy codec for the frames the AF_XDP path receives and sends: Ethernet II with up to
//! two VLAN tags (IEEE 802.1Q / 802.1ad), IPv6 (RFC 8200) with a bounded walk over extension
//! headers, and UDP (RFC 768) carrying DHCPv6 (RFC 8415).
//!
//! - RX: [`parse_udp6`] validates a whole frame in one pass and returns a [`UdpFrame`] of
//!   values and offsets; [`verify_udp6_checksum`] checks the UDP checksum separately, so the
//!   caller decides the policy (veth offloads TX checksums, see the brief §7).
//! - TX: the protocol core writes the DHCPv6 reply at [`reply_payload_offset`]; then
//!   [`finish_reply`] writes every header in front of it and the UDP checksum. The packet
//!   generator uses [`build_udp6_frame`] or, writing its payload in place,
//!   [`finish_udp6_frame`].
//!
//! Layer views ([`ethernet`], [`ipv6`], [`udp`]) follow smoltcp: `new_checked` then
//! accessors at offsets kept in a private `mod field`. Nothing here allocates, and no input
//! makes any function panic: every read and write goes through bounds-checked helpers.
#![forbid(unsafe_code)]

use core::fmt;
use core::net::Ipv6Addr;
use core::ops::Range;

mod bytes;
pub mod checksum;
pub mod ethernet;
pub mod ipv6;
pub mod udp;

pub use checksum::{internet_checksum, udp6_checksum, Checksum};
pub use ethernet::{
    ipv6_multicast_mac, EthernetFrame, MacAddr, VlanHeader, ETHERNET_HEADER_LEN, ETHERTYPE_IPV6,
    TPID_8021AD, TPID_8021Q, VLAN_TAG_LEN,
};
pub use ipv6::{skip_ext_headers, ExtChain, Ipv6Packet, IPV6_HEADER_LEN, MAX_EXT_HEADERS};
pub use udp::{UdpPacket, UDP_HEADER_LEN};

/// The most VLAN tags a frame may carry (an 802.1ad service tag and an 802.1Q customer tag).
pub const MAX_VLAN_TAGS: usize = 2;

/// Hop limit of frames this codec builds unless the caller says otherwise.
pub const DEFAULT_HOP_LIMIT: u8 = 64;

/// Why a received frame was rejected. `Copy`; [`FrameError::index`] indexes per-core drop
/// counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[repr(u8)]
pub enum FrameError {
    /// A header ends past the end of the frame or of the IPv6 payload.
    #[error("truncated header")]
    Truncated,
    /// EtherType (after any VLAN tags) is not IPv6, or the IP version is not 6.
    #[error("not IPv6")]
    NotIpv6,
    /// The upper-layer protocol after the extension headers is not UDP.
    #[error("not UDP")]
    NotUdp,
    /// The IPv6 Payload Length runs past the end of the frame (a jumbogram's zero length
    /// included, RFC 2675, which Ethernet cannot carry).
    #[error("IPv6 payload length exceeds the frame")]
    Ipv6PayloadLength,
    /// The UDP Length is under 8 or runs past the IPv6 payload.
    #[error("bad UDP length")]
    UdpLength,
    /// More than [`MAX_VLAN_TAGS`] VLAN tags.
    #[error("too many VLAN tags")]
    TooManyVlanTags,
    /// More than [`MAX_EXT_HEADERS`] IPv6 extension headers.
    #[error("IPv6 extension header chain too long")]
    ExtChainTooLong,
    /// A misplaced hop-by-hop header, or a routing header with segments left.
    #[error("bad IPv6 extension header")]
    BadExtHeader,
    /// A non-atomic IPv6 fragment; there is no reassembly.
    #[error("IPv6 fragment")]
    Fragment,
    /// A zero UDP checksum, which IPv6 receivers must discard (RFC 8200 §8.1).
    #[error("zero UDP checksum")]
    ZeroChecksum,
    /// The UDP checksum does not verify.
    #[error("bad UDP checksum")]
    BadChecksum,
}

impl FrameError {
    pub const COUNT: usize = 11;
    pub const ALL: [FrameError; Self::COUNT] = [
        FrameError::Truncated,
        FrameError::NotIpv6,
        FrameError::NotUdp,
        FrameError::Ipv6PayloadLength,
        FrameError::UdpLength,
        FrameError::TooManyVlanTags,
        FrameError::ExtChainTooLong,
        FrameError::BadExtHeader,
        FrameError::Fragment,
        FrameError::ZeroChecksum,
        FrameError::BadChecksum,
    ];

    /// Index into a `[_; FrameError::COUNT]` counter array.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Stable snake_case name for metrics.
    pub const fn name(self) -> &'static str {
        match self {
            FrameError::Truncated => "truncated",
            FrameError::NotIpv6 => "not_ipv6",
            FrameError::NotUdp => "not_udp",
            FrameError::Ipv6PayloadLength => "ipv6_payload_length",
            FrameError::UdpLength => "udp_length",
            FrameError::TooManyVlanTags => "too_many_vlan_tags",
            FrameError::ExtChainTooLong => "ext_chain_too_long",
            FrameError::BadExtHeader => "bad_ext_header",
            FrameError::Fragment => "fragment",
            FrameError::ZeroChecksum => "zero_checksum",
            FrameError::BadChecksum => "bad_checksum",
        }
    }
}

/// Why a frame could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum BuildError {
    /// The buffer cannot hold headers plus payload.
    #[error("buffer too small for the frame")]
    BufferTooSmall,
    /// UDP header plus payload exceed 65535 bytes.
    #[error("UDP payload too long")]
    PayloadTooLong,
    /// A VLAN tag's TPID is neither 0x8100 nor 0x88a8.
    #[error("VLAN tag with an unknown TPID")]
    BadVlanTpid,
}

/// One VLAN tag as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VlanTag {
    /// [`TPID_8021Q`] or [`TPID_8021AD`].
    pub tpid: u16,
    /// Tag Control Information: PCP (3 bits), DEI (1 bit), VID (12 bits).
    pub tci: u16,
}

impl VlanTag {
    /// A tag with priority 0, DEI clear and the given VLAN ID (low 12 bits).
    pub const fn new(tpid: u16, vid: u16) -> Self {
        Self {
            tpid,
            tci: vid & 0x0fff,
        }
    }

    pub const fn vid(&self) -> u16 {
        self.tci & 0x0fff
    }

    pub const fn pcp(&self) -> u8 {
        (self.tci >> 13) as u8
    }

    pub const fn dei(&self) -> bool {
        self.tci & 0x1000 != 0
    }
}

/// Up to [`MAX_VLAN_TAGS`] tags, outermost first. Fixed size, no allocation.
#[derive(Clone, Copy, Default)]
pub struct VlanTags {
    tags: [VlanTag; MAX_VLAN_TAGS],
    len: u8,
}

impl VlanTags {
    pub const fn new() -> Self {
        Self {
            tags: [VlanTag { tpid: 0, tci: 0 }; MAX_VLAN_TAGS],
            len: 0,
        }
    }

    /// Tags from a slice, outermost first.
    pub fn from_slice(tags: &[VlanTag]) -> Result<Self, FrameError> {
        let mut out = Self::new();
        for tag in tags {
            out.push(*tag)?;
        }
        Ok(out)
    }

    /// Appends an inner tag.
    pub fn push(&mut self, tag: VlanTag) -> Result<(), FrameError> {
        let slot = self
            .tags
            .get_mut(usize::from(self.len))
            .ok_or(FrameError::TooManyVlanTags)?;
        *slot = tag;
        self.len += 1;
        Ok(())
    }

    pub fn as_slice(&self) -> &[VlanTag] {
        self.tags.get(..usize::from(self.len)).unwrap_or(&[])
    }

    pub const fn len(&self) -> usize {
        self.len as usize
    }

    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl PartialEq for VlanTags {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for VlanTags {}

impl fmt::Debug for VlanTags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// A validated IPv6/UDP frame: the values a DHCPv6 server needs and where things are.
/// Offsets are from the start of the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpFrame {
    pub dst_mac: MacAddr,
    pub src_mac: MacAddr,
    /// VLAN tags, outermost first.
    pub vlans: VlanTags,
    /// Offset of the fixed IPv6 header.
    pub ip_offset: usize,
    pub hop_limit: u8,
    pub src_ip: Ipv6Addr,
    pub dst_ip: Ipv6Addr,
    /// Number of extension headers between the fixed header and UDP.
    pub ext_headers: u8,
    /// Offset of the UDP header.
    pub udp_offset: usize,
    pub src_port: u16,
    pub dst_port: u16,
    /// The checksum field as received.
    pub udp_checksum: u16,
    /// Offset of the UDP payload (the DHCPv6 message).
    pub payload_offset: usize,
    /// Length of the UDP payload, from the UDP Length field.
    pub payload_len: usize,
}

impl UdpFrame {
    /// The UDP payload's range within the frame.
    pub fn payload_range(&self) -> Range<usize> {
        self.payload_offset..self.payload_offset.saturating_add(self.payload_len)
    }

    /// The UDP payload, if `frame` is (at least as long as) the frame this was parsed from.
    pub fn payload<'a>(&self, frame: &'a [u8]) -> Option<&'a [u8]> {
        frame.get(self.payload_range())
    }

    /// The UDP header and payload's range within the frame.
    pub fn udp_range(&self) -> Range<usize> {
        self.udp_offset..self.payload_offset.saturating_add(self.payload_len)
    }
}

/// Parses an Ethernet frame carrying UDP over IPv6, in one pass and without copying.
///
/// Accepts up to [`MAX_VLAN_TAGS`] 802.1Q/802.1ad tags, and up to [`MAX_EXT_HEADERS`]
/// hop-by-hop, routing (segments left 0), destination options and atomic fragment headers
/// (see [`skip_ext_headers`]). Bytes after the IPv6 payload (Ethernet padding) are ignored,
/// and so are bytes after the UDP Length within the IPv6 payload, as Linux does. The UDP
/// checksum is not checked here: see [`verify_udp6_checksum`].
pub fn parse_udp6(frame: &[u8]) -> Result<UdpFrame, FrameError> {
    let eth = EthernetFrame::new_checked(frame)?;
    let mut vlans = VlanTags::new();
    let mut ethertype = eth.ethertype();
    let mut offset = ETHERNET_HEADER_LEN;
    while ethernet::is_vlan_tpid(ethertype) {
        let tag = VlanHeader::new_checked(frame.get(offset..).unwrap_or(&[]))?;
        vlans.push(VlanTag {
            tpid: ethertype,
            tci: tag.tci(),
        })?;
        ethertype = tag.ethertype();
        offset += VLAN_TAG_LEN;
    }
    if ethertype != ETHERTYPE_IPV6 {
        return Err(FrameError::NotIpv6);
    }

    let ip_offset = offset;
    let l3 = frame.get(ip_offset..).unwrap_or(&[]);
    let ip = Ipv6Packet::new_checked(l3)?;
    if ip.version() != 6 {
        return Err(FrameError::NotIpv6);
    }
    let ip_end = IPV6_HEADER_LEN + usize::from(ip.payload_len());
    let ip_payload = l3
        .get(IPV6_HEADER_LEN..ip_end)
        .ok_or(FrameError::Ipv6PayloadLength)?;

    let chain = skip_ext_headers(ip.next_header(), ip_payload)?;
    if chain.next_header != ipv6::next_header::UDP {
        return Err(FrameError::NotUdp);
    }
    let udp = UdpPacket::new_checked(ip_payload.get(chain.len..).unwrap_or(&[]))?;

    let udp_offset = ip_offset + IPV6_HEADER_LEN + chain.len;
    Ok(UdpFrame {
        dst_mac: eth.dst_addr(),
        src_mac: eth.src_addr(),
        vlans,
        ip_offset,
        hop_limit: ip.hop_limit(),
        src_ip: ip.src_addr(),
        dst_ip: ip.dst_addr(),
        // At most MAX_EXT_HEADERS, which fits.
        ext_headers: chain.count as u8,
        udp_offset,
        src_port: udp.src_port(),
        dst_port: udp.dst_port(),
        udp_checksum: udp.checksum(),
        payload_offset: udp_offset + UDP_HEADER_LEN,
        payload_len: usize::from(udp.len()).saturating_sub(UDP_HEADER_LEN),
    })
}

/// Verifies the UDP checksum of a frame [`parse_udp6`] accepted (RFC 8200 §8.1 pseudo-header
/// with the addresses in the fixed header). A zero checksum is [`FrameError::ZeroChecksum`]:
/// IPv6 receivers must discard it. Checking is the caller's policy: a frame from a sender that
/// offloads checksums (veth, brief §7) arrives with an incomplete one.
///
/// With a routing header the pseudo-header should carry the final destination; only routing
/// headers with segments left 0 are accepted, so the fixed header's destination is it.
pub fn verify_udp6_checksum(frame: &[u8], parsed: &UdpFrame) -> Result<(), FrameError> {
    let udp = frame.get(parsed.udp_range()).ok_or(FrameError::Truncated)?;
    if parsed.udp_checksum == 0 {
        return Err(FrameError::ZeroChecksum);
    }
    match udp6_checksum(&parsed.src_ip, &parsed.dst_ip, udp) {
        0 => Ok(()),
        _ => Err(FrameError::BadChecksum),
    }
}

/// Everything needed to build an IPv6/UDP frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Udp6Params {
    pub dst_mac: MacAddr,
    pub src_mac: MacAddr,
    /// VLAN tags to write, outermost first.
    pub vlans: VlanTags,
    pub src_ip: Ipv6Addr,
    pub dst_ip: Ipv6Addr,
    pub hop_limit: u8,
    pub src_port: u16,
    pub dst_port: u16,
}

/// Offset of the UDP payload in a frame with `vlan_count` tags and no extension headers.
pub const fn udp6_payload_offset(vlan_count: usize) -> usize {
    ETHERNET_HEADER_LEN + VLAN_TAG_LEN * vlan_count + IPV6_HEADER_LEN + UDP_HEADER_LEN
}

/// Writes Ethernet, VLAN, IPv6 (no extension headers, traffic class and flow label 0) and UDP
/// headers in front of a `payload_len`-byte payload already at
/// [`udp6_payload_offset`]`(params.vlans.len())`, then the UDP checksum. Returns the frame
/// length. Ethernet's 60-byte minimum needs no padding: headers alone are 62 bytes.
pub fn finish_udp6_frame(
    buf: &mut [u8],
    params: &Udp6Params,
    payload_len: usize,
) -> Result<usize, BuildError> {
    let tags = params.vlans.as_slice();
    if !tags.iter().all(|t| ethernet::is_vlan_tpid(t.tpid)) {
        return Err(BuildError::BadVlanTpid);
    }
    let udp_len = UDP_HEADER_LEN
        .checked_add(payload_len)
        .and_then(|len| u16::try_from(len).ok())
        .ok_or(BuildError::PayloadTooLong)?;
    let ip_offset = ETHERNET_HEADER_LEN + VLAN_TAG_LEN * tags.len();
    let udp_offset = ip_offset + IPV6_HEADER_LEN;
    let total = udp_offset + usize::from(udp_len);
    let frame = buf.get_mut(..total).ok_or(BuildError::BufferTooSmall)?;

    let mut eth = EthernetFrame::new_unchecked(&mut *frame);
    eth.set_dst_addr(params.dst_mac);
    eth.set_src_addr(params.src_mac);
    eth.set_ethertype(tags.first().map_or(ETHERTYPE_IPV6, |t| t.tpid));
    for (i, tag) in tags.iter().enumerate() {
        let next = tags.get(i + 1).map_or(ETHERTYPE_IPV6, |t| t.tpid);
        let at = ETHERNET_HEADER_LEN + VLAN_TAG_LEN * i;
        let mut vlan = VlanHeader::new_unchecked(frame.get_mut(at..).unwrap_or(&mut []));
        vlan.set_tci(tag.tci);
        vlan.set_ethertype(next);
    }

    let mut ip = Ipv6Packet::new_unchecked(frame.get_mut(ip_offset..).unwrap_or(&mut []));
    ip.set_version_tc_flow(0, 0);
    ip.set_payload_len(udp_len);
    ip.set_next_header(ipv6::next_header::UDP);
    ip.set_hop_limit(params.hop_limit);
    ip.set_src_addr(&params.src_ip);
    ip.set_dst_addr(&params.dst_ip);

    let udp_bytes = frame.get_mut(udp_offset..).unwrap_or(&mut []);
    let mut udp = UdpPacket::new_unchecked(&mut *udp_bytes);
    udp.set_src_port(params.src_port);
    udp.set_dst_port(params.dst_port);
    udp.set_len(udp_len);
    udp.set_checksum(0);
    let sum = checksum::udp6_checksum_for_tx(&params.src_ip, &params.dst_ip, udp_bytes);
    UdpPacket::new_unchecked(udp_bytes).set_checksum(sum);
    Ok(total)
}

/// Builds a complete frame for the packet generator: copies `payload` to
/// [`udp6_payload_offset`] and calls [`finish_udp6_frame`]. Returns the frame length.
pub fn build_udp6_frame(
    buf: &mut [u8],
    params: &Udp6Params,
    payload: &[u8],
) -> Result<usize, BuildError> {
    if payload.len() > usize::from(u16::MAX) - UDP_HEADER_LEN {
        return Err(BuildError::PayloadTooLong);
    }
    let start = udp6_payload_offset(params.vlans.len());
    buf.get_mut(start..start + payload.len())
        .ok_or(BuildError::BufferTooSmall)?
        .copy_from_slice(payload);
    finish_udp6_frame(buf, params, payload.len())
}

/// What the server chooses for a reply; the rest comes from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyParams {
    /// Our MAC on the receiving interface.
    pub src_mac: MacAddr,
    /// Our link-local or global address (never the request's multicast destination).
    pub src_ip: Ipv6Addr,
    pub dst_ip: Ipv6Addr,
    pub hop_limit: u8,
    pub src_port: u16,
    pub dst_port: u16,
}

impl ReplyParams {
    /// The usual answer to `req`: back to its source address and port, from the port it was
    /// sent to (547), with [`DEFAULT_HOP_LIMIT`] (RFC 8415 §18.3.11 / §19: replies go to the
    /// client, or to the relay agent that relayed the request).
    pub fn answering(req: &UdpFrame, src_mac: MacAddr, src_ip: Ipv6Addr) -> Self {
        Self {
            src_mac,
            src_ip,
            dst_ip: req.src_ip,
            hop_limit: DEFAULT_HOP_LIMIT,
            src_port: req.dst_port,
            dst_port: req.src_port,
        }
    }
}

/// Where the core writes the DHCPv6 reply for `req`: right after the request's Ethernet
/// header and VLAN tags, a fixed IPv6 header and a UDP header. Never after the request's
/// payload offset, since the reply drops the request's extension headers; it is before it
/// when the request had any, so a core reading the request from the same buffer must read
/// it before writing there.
pub const fn reply_payload_offset(req: &UdpFrame) -> usize {
    udp6_payload_offset(req.vlans.len())
}

/// Writes the headers of the reply to `req` into `buf`, in front of `payload_len` bytes of
/// DHCPv6 message already at [`reply_payload_offset`]`(req)`, and the UDP checksum. The
/// destination MAC is the request's source MAC, the VLAN tags are the request's, the IPv6
/// header has no extension headers. `buf` may be the request's own frame (in place) or
/// another TX frame. Returns the reply's frame length.
pub fn finish_reply(
    buf: &mut [u8],
    req: &UdpFrame,
    params: &ReplyParams,
    payload_len: usize,
) -> Result<usize, BuildError> {
    let udp = Udp6Params {
        dst_mac: req.src_mac,
        src_mac: params.src_mac,
        vlans: req.vlans,
        src_ip: params.src_ip,
        dst_ip: params.dst_ip,
        hop_limit: params.hop_limit,
        src_port: params.src_port,
        dst_port: params.dst_port,
    };
    finish_udp6_frame(buf, &udp, payload_len)
}
