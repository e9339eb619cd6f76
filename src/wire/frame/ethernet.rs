//! Ethernet II header (IEEE 802.3 §3.2.6 type interpretation) and IEEE 802.1Q VLAN tags.
//!
//! A tagged frame carries, after the two MAC addresses, one or more 4-byte tags: a Tag
//! Protocol Identifier (0x8100 for a customer tag, 0x88a8 for an 802.1ad service tag) and a
//! Tag Control Information word (PCP 3 bits, DEI 1 bit, VID 12 bits). The EtherType of the
//! payload follows the last tag. [`VlanHeader`] views the 4 bytes that follow a TPID: the TCI
//! and the next EtherType (or the next TPID).

use super::bytes::{read_array, read_u16, write_array, write_u16};
use super::FrameError;

/// A MAC address in transmission order.
pub type MacAddr = [u8; 6];

/// EtherType of IPv6 (RFC 2464 §3).
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// TPID of an IEEE 802.1Q customer VLAN tag.
pub const TPID_8021Q: u16 = 0x8100;
/// TPID of an IEEE 802.1ad service VLAN tag (the outer tag of Q-in-Q).
pub const TPID_8021AD: u16 = 0x88a8;

mod field {
    use core::ops::Range;

    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const HEADER_LEN: usize = 14;

    // VLAN header, relative to the byte after the TPID.
    pub const VLAN_TCI: usize = 0;
    pub const VLAN_ETHERTYPE: usize = 2;
    pub const VLAN_HEADER_LEN: usize = 4;
}

/// Length of an untagged Ethernet II header.
pub const ETHERNET_HEADER_LEN: usize = field::HEADER_LEN;
/// Bytes each VLAN tag adds to the Ethernet header.
pub const VLAN_TAG_LEN: usize = field::VLAN_HEADER_LEN;

/// True for the TPIDs this codec accepts as VLAN tags.
#[inline]
pub const fn is_vlan_tpid(ethertype: u16) -> bool {
    ethertype == TPID_8021Q || ethertype == TPID_8021AD
}

/// A checked view of an Ethernet II header. `ethertype` is the field at offset 12: a TPID when
/// the frame is tagged.
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer` without checking it: for emitting into a buffer whose fields are not
    /// yet valid. Accessors still never panic; out-of-range reads yield zeros and
    /// out-of-range writes are ignored.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` after checking it holds the 14-byte header.
    pub fn new_checked(buffer: T) -> Result<Self, FrameError> {
        if buffer.as_ref().len() < field::HEADER_LEN {
            return Err(FrameError::Truncated);
        }
        Ok(Self { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn dst_addr(&self) -> MacAddr {
        read_array(self.buffer.as_ref(), field::DST.start)
    }

    pub fn src_addr(&self) -> MacAddr {
        read_array(self.buffer.as_ref(), field::SRC.start)
    }

    pub fn ethertype(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ETHERTYPE)
    }

    /// Everything after the 14-byte header (tags included, if any).
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(field::HEADER_LEN..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    pub fn set_dst_addr(&mut self, addr: MacAddr) {
        write_array(self.buffer.as_mut(), field::DST.start, addr);
    }

    pub fn set_src_addr(&mut self, addr: MacAddr) {
        write_array(self.buffer.as_mut(), field::SRC.start, addr);
    }

    pub fn set_ethertype(&mut self, ethertype: u16) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, ethertype);
    }
}

/// A checked view of the 4 bytes that follow a VLAN TPID: the TCI and the next EtherType.
#[derive(Debug, Clone, Copy)]
pub struct VlanHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanHeader<T> {
    /// Wraps `buffer` without checking it: for emitting into a buffer whose fields are not
    /// yet valid. Accessors still never panic; out-of-range reads yield zeros and
    /// out-of-range writes are ignored.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, FrameError> {
        if buffer.as_ref().len() < field::VLAN_HEADER_LEN {
            return Err(FrameError::Truncated);
        }
        Ok(Self { buffer })
    }

    /// Tag Control Information: PCP (3 bits), DEI (1 bit), VID (12 bits).
    pub fn tci(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::VLAN_TCI)
    }

    /// EtherType (or TPID of the next tag) that follows this tag.
    pub fn ethertype(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::VLAN_ETHERTYPE)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanHeader<T> {
    pub fn set_tci(&mut self, tci: u16) {
        write_u16(self.buffer.as_mut(), field::VLAN_TCI, tci);
    }

    pub fn set_ethertype(&mut self, ethertype: u16) {
        write_u16(self.buffer.as_mut(), field::VLAN_ETHERTYPE, ethertype);
    }
}

/// The Ethernet multicast address an IPv6 multicast address maps to (RFC 2464 §7):
/// 33:33 followed by the last four octets of the IPv6 address. For ff02::1:2
/// (All_DHCP_Relay_Agents_and_Servers) that is 33:33:00:01:00:02.
pub fn ipv6_multicast_mac(addr: &core::net::Ipv6Addr) -> MacAddr {
    let o = addr.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}
