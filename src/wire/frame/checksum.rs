//! The Internet checksum (RFC 1071) and the UDP-over-IPv6 checksum (RFC 8200 §8.1).
//!
//! The sum is accumulated 8 bytes at a time in a `u64` with end-around carry. That gives the
//! same 16-bit ones'-complement sum as adding 16-bit words, because 2^16 ≡ 1 (mod 2^16 - 1),
//! so any aligned wider word is congruent to the sum of its 16-bit parts (RFC 1071 §2(B),
//! "parallel summation"), and folding at the end keeps the result.

use core::net::Ipv6Addr;

use super::ipv6::next_header;

/// A running ones'-complement sum.
///
/// Each slice passed to [`Checksum::add_bytes`] must start at an even offset of the data
/// being summed (a trailing odd byte is padded with a zero, RFC 1071 §4.1); so add an odd-
/// length slice only last.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checksum {
    sum: u64,
}

impl Checksum {
    pub const fn new() -> Self {
        Self { sum: 0 }
    }

    #[inline(always)]
    fn add_u64(&mut self, word: u64) {
        let (sum, carry) = self.sum.overflowing_add(word);
        // Cannot overflow: after a carry, `sum` is at most 2^64 - 2.
        self.sum = sum + u64::from(carry);
    }

    /// Adds a big-endian 16-bit word.
    #[inline]
    pub fn add_u16(&mut self, word: u16) {
        self.add_u64(u64::from(word));
    }

    /// Adds a big-endian 32-bit word (two 16-bit words).
    #[inline]
    pub fn add_u32(&mut self, word: u32) {
        self.add_u64(u64::from(word));
    }

    /// Adds `data` as a sequence of big-endian 16-bit words.
    #[inline]
    pub fn add_bytes(&mut self, data: &[u8]) {
        let mut chunks = data.chunks_exact(8);
        for c in &mut chunks {
            self.add_u64(u64::from_be_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut tail = [0u8; 8];
            for (t, b) in tail.iter_mut().zip(rest) {
                *t = *b;
            }
            self.add_u64(u64::from_be_bytes(tail));
        }
    }

    /// The 16-bit ones'-complement sum (not yet complemented).
    #[inline]
    pub fn fold(&self) -> u16 {
        let s = (self.sum >> 32) + (self.sum & 0xffff_ffff);
        let s = (s >> 32) + (s & 0xffff_ffff);
        let s = (s >> 16) + (s & 0xffff);
        let s = (s >> 16) + (s & 0xffff);
        s as u16
    }

    /// The checksum: the ones' complement of the folded sum.
    #[inline]
    pub fn finish(&self) -> u16 {
        !self.fold()
    }
}

/// The Internet checksum of `data` (RFC 1071), for an odd length too.
pub fn internet_checksum(data: &[u8]) -> u16 {
    let mut c = Checksum::new();
    c.add_bytes(data);
    c.finish()
}

/// Starts a sum with the IPv6 pseudo-header for UDP (RFC 8200 §8.1): source, destination,
/// upper-layer packet length (32 bits), three zero octets and Next Header 17.
pub fn udp6_pseudo_header(src: &Ipv6Addr, dst: &Ipv6Addr, udp_len: u32) -> Checksum {
    let mut c = Checksum::new();
    c.add_bytes(&src.octets());
    c.add_bytes(&dst.octets());
    c.add_u32(udp_len);
    c.add_u32(u32::from(next_header::UDP));
    c
}

/// The raw UDP checksum over the pseudo-header and `udp` (header and payload, checksum field
/// included as it stands). With the field zeroed this is the value to transmit, except that a
/// result of 0 must be sent as 0xffff (RFC 768; see [`udp6_checksum_for_tx`]). With the field
/// filled in, a datagram verifies when this returns 0.
pub fn udp6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, udp: &[u8]) -> u16 {
    // UDP over IPv6 is at most 65535 bytes without jumbograms; a longer slice still sums, with
    // the length truncated, and then cannot verify.
    let mut c = udp6_pseudo_header(src, dst, udp.len() as u32);
    c.add_bytes(udp);
    c.finish()
}

/// The checksum to write into a UDP header whose checksum field is zero: as
/// [`udp6_checksum`], with 0 sent as 0xffff because zero means "no checksum", which IPv6
/// forbids (RFC 8200 §8.1).
pub fn udp6_checksum_for_tx(src: &Ipv6Addr, dst: &Ipv6Addr, udp: &[u8]) -> u16 {
    match udp6_checksum(src, dst, udp) {
        0 => 0xffff,
        c => c,
    }
}
