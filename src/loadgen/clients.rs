//! Per-client state in one flat array per worker: no heap object per client.
//!
//! A client is identified by its global index. Everything else that names it on the wire is
//! derived from that index, so a reply can be mapped back to its client without a lookup
//! table: the DUID is a DUID-LL (RFC 8415 §11.4) whose MAC carries the index, the IAIDs are
//! the index, and the transaction ID of each exchange is a hash of the index and a per-client
//! sequence number.

use std::net::Ipv6Addr;

/// Length of the DUID-LL we emit: type (2) + hardware type (2) + MAC (6).
pub const DUID_LEN: usize = 10;

/// DUID type 3 (DUID-LL) with hardware type 1 (Ethernet).
const DUID_LL_ETHERNET: [u8; 4] = [0, 3, 0, 1];

/// Where a client is in its life. Waiting states name the message the client last sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// Holds nothing.
    Idle,
    /// Holds the leases flagged in [`Client::flags`].
    Bound,
    Soliciting,
    Requesting,
    Renewing,
    Rebinding,
    Releasing,
    InfoRequesting,
}

impl State {
    pub const fn is_waiting(self) -> bool {
        !matches!(self, State::Idle | State::Bound)
    }
}

/// `Client::flags` bits.
pub mod flag {
    /// The client owns the address in `na_off` (in pool `na_pool`).
    pub const HAS_NA: u8 = 1 << 0;
    /// The client owns the prefix `pd_idx` (in pool `pd_pool`).
    pub const HAS_PD: u8 = 1 << 1;
    /// The current Solicit asked for Rapid Commit (RFC 8415 §18.2.1).
    pub const RAPID: u8 = 1 << 2;
    /// Set while `na_off` / `pd_idx` hold an offer from an Advertise (Requesting).
    pub const OFFER_NA: u8 = 1 << 3;
    pub const OFFER_PD: u8 = 1 << 4;
    /// The exchange in flight is part of the measured load (not the preparation pass).
    pub const MEASURED: u8 = 1 << 5;
}

/// One emulated client: 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Client {
    /// Address offset from the base of NA pool `na_pool`.
    pub na_off: u64,
    /// Prefix number inside PD pool `pd_pool` (prefix = base + idx << (128 - delegated_len)).
    pub pd_idx: u64,
    /// Message transaction counter; the transaction ID is derived from it.
    pub seq: u32,
    /// When the exchange in flight started (µs on the generator clock, wrapping).
    pub t_start_us: u32,
    pub state: State,
    /// Retransmissions of the message in flight.
    pub retries: u8,
    /// Index into the worker's table of server DUIDs; `NO_SERVER` if none chosen.
    pub server: u8,
    pub flags: u8,
    pub na_pool: u8,
    pub pd_pool: u8,
    _pad: [u8; 2],
}

pub const NO_SERVER: u8 = u8::MAX;

impl Client {
    pub const NEW: Client = Client {
        na_off: 0,
        pd_idx: 0,
        seq: 0,
        t_start_us: 0,
        state: State::Idle,
        retries: 0,
        server: NO_SERVER,
        flags: 0,
        na_pool: 0,
        pd_pool: 0,
        _pad: [0; 2],
    };

    pub fn holds_any(&self) -> bool {
        self.flags & (flag::HAS_NA | flag::HAS_PD) != 0
    }

    /// The resting state after an exchange ends: bound if it still holds something.
    pub fn rest(&mut self) {
        self.state = if self.holds_any() {
            State::Bound
        } else {
            State::Idle
        };
        self.flags &= !(flag::RAPID | flag::OFFER_NA | flag::OFFER_PD | flag::MEASURED);
        self.retries = 0;
    }
}

const _: () = assert!(core::mem::size_of::<Client>() == 32);

/// The MAC address of client `idx` in DUID namespace `seed`: locally administered, unicast.
pub fn client_mac(seed: u8, idx: u32) -> [u8; 6] {
    let i = idx.to_be_bytes();
    [0x02, seed, i[0], i[1], i[2], i[3]]
}

/// The DUID-LL of client `idx`.
pub fn client_duid(seed: u8, idx: u32) -> [u8; DUID_LEN] {
    let mut d = [0u8; DUID_LEN];
    d[..4].copy_from_slice(&DUID_LL_ETHERNET);
    d[4..].copy_from_slice(&client_mac(seed, idx));
    d
}

/// The client index encoded in `duid`, if it is one of ours (same seed).
pub fn duid_client(seed: u8, duid: &[u8]) -> Option<u32> {
    match duid {
        [0, 3, 0, 1, 0x02, s, a, b, c, d] if *s == seed => {
            Some(u32::from_be_bytes([*a, *b, *c, *d]))
        }
        _ => None,
    }
}

/// The client's link-local address (modified EUI-64 from its MAC, RFC 4291 appendix A); used as
/// the peer-address of relayed messages.
pub fn client_link_local(seed: u8, idx: u32) -> Ipv6Addr {
    let m = client_mac(seed, idx);
    let mut o = [0u8; 16];
    o[0] = 0xfe;
    o[1] = 0x80;
    o[8..].copy_from_slice(&[m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]]);
    Ipv6Addr::from(o)
}

/// SplitMix64 finaliser: a cheap, well-mixed hash.
pub const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The 24-bit transaction ID of message `seq` of client `idx`.
pub fn xid(idx: u32, seq: u32) -> u32 {
    (mix64((u64::from(idx) << 32) | u64::from(seq)) & 0x00ff_ffff) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duid_round_trip() {
        for idx in [0, 1, 255, 65_536, 9_999_999, u32::MAX] {
            let d = client_duid(7, idx);
            assert_eq!(duid_client(7, &d), Some(idx));
            assert_eq!(duid_client(8, &d), None);
        }
        assert_eq!(duid_client(0, &[0, 3, 0, 1]), None);
    }

    #[test]
    fn link_local_is_eui64() {
        let a = client_link_local(0, 1);
        assert_eq!(a, "fe80::ff:fe00:1".parse::<Ipv6Addr>().unwrap());
    }

    #[test]
    fn xids_differ_between_messages() {
        assert_ne!(xid(1, 1), xid(1, 2));
        assert_ne!(xid(1, 1), xid(2, 1));
        assert!(xid(3, 4) <= 0x00ff_ffff);
    }
}
