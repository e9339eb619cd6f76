//! xdhcp6: a kernel-bypass DHCPv6 server (RFC 8415) with RFC 7031 failover.
//!
//! The crate is laid out by architecture:
//! - [`wire`]: checked views over bytes and small validated representations (no I/O).
//! - [`proto`]: the sans-IO server core: request bytes + metadata + time in, reply bytes out.
//! - [`lease`]: the lease store the core allocates from.
//! - [`config`]: TOML configuration, parsed then validated into typed config.
//! - [`io`]: the backends that move packets (UDP sockets, AF_XDP) and drive the core.
//! - [`cli`]: the command-line front end.
//! - [`cpu`]: CPU hints (prefetch) shared by the data paths.
//! - [`loadgen`]: the DHCPv6 load generator (`xdhcp6 bench`).
#![deny(unsafe_code)]

pub mod cli;
pub mod config;
pub mod control;
pub mod cpu;
pub mod daemon;
pub mod io;
pub mod lease;
pub mod loadgen;
pub mod proto;
pub mod stats;
pub mod wire;
