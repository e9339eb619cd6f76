//! Bytes ⇄ views: checked views over packet buffers and small validated representations that
//! parse from and emit into a caller's buffer. No I/O, no allocation.

pub mod dhcpv6;
pub mod frame;

pub use dhcpv6::Error as Dhcpv6Error;
