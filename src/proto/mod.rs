//! The sans-IO server core (RFC 8415 §16, §18.3). It never touches a socket, the clock or a
//! thread: request bytes, receive metadata and the current time go in; a reply written into the
//! caller's buffer, or a counted drop reason, comes out.
//!
//! API contract used by every backend (socket, AF_XDP, simulator, fuzzers):
//! `Server::handle(&self, request, &RxMeta, now_secs, out) -> Result<ReplyMeta, DropReason>`.
//! `Server` is `Sync`: all worker threads share one.

use std::net::Ipv6Addr;

use crate::config::Config;
use crate::lease::LeaseStore;

/// What the backend knows about a received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxMeta {
    /// IPv6 source address and UDP source port.
    pub src: Ipv6Addr,
    pub src_port: u16,
    /// IPv6 destination address (ff02::1:2, ff05::1:3, or one of ours for unicast).
    pub dst: Ipv6Addr,
    /// OS interface index the datagram arrived on.
    pub ifindex: u32,
}

/// Where the reply written into `out` must go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyMeta {
    /// Bytes of DHCPv6 payload written at the start of `out`.
    pub len: usize,
    /// Destination address and UDP port: the client (port 546) or the relay nearest the
    /// server (port 547).
    pub dst: Ipv6Addr,
    pub dst_port: u16,
}

/// Why a request was not answered. `Copy`, indexes per-core counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Placeholder until the core lands.
    NotImplemented,
}

impl DropReason {
    pub const COUNT: usize = 1;
    pub const ALL: [DropReason; Self::COUNT] = [DropReason::NotImplemented];
    pub const fn index(self) -> usize {
        self as usize
    }
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::NotImplemented => "not_implemented",
        }
    }
}

/// The DHCPv6 server core.
pub struct Server<S: LeaseStore> {
    store: S,
    _duid: Vec<u8>,
}

impl<S: LeaseStore> Server<S> {
    pub fn new(_config: &Config, store: S, server_duid: Vec<u8>) -> Self {
        Server {
            store,
            _duid: server_duid,
        }
    }

    /// Tell the core that OS interface `ifindex` is the configured interface `name`, so direct
    /// clients arriving on it are matched to the link that names it.
    pub fn set_interface(&mut self, _ifindex: u32, _name: &str) {}

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Handle one request; see the module docs.
    pub fn handle(
        &self,
        _request: &[u8],
        _meta: &RxMeta,
        _now: u64,
        _out: &mut [u8],
    ) -> Result<ReplyMeta, DropReason> {
        Err(DropReason::NotImplemented)
    }
}
