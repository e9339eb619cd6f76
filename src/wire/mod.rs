//! Bytes ⇄ views: checked views over packet buffers and small validated representations that
//! parse from and emit into a caller's buffer. No I/O, no allocation.
//!
//! - [`dhcpv6`]: DHCPv6 messages, relay messages and options (RFC 8415).
//! - [`frame`]: Ethernet (with up to two VLAN tags) / IPv6 / UDP frames for the AF_XDP path.

pub mod dhcpv6;
pub mod frame;

pub use dhcpv6::Error as Dhcpv6Error;
