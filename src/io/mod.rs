//! Packet I/O backends: AF_XDP (`xdp`) and UDP sockets.

pub mod xdp;
