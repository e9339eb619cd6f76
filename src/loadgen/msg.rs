//! Building client messages and checking replies, on top of the `wire::dhcpv6` codec.
//!
//! Messages are written straight into the transport's buffer with an [`OptionWriter`]; relay
//! levels are nested Relay Message options closed after the client message is written, so
//! nothing is copied.

use std::net::Ipv6Addr;

use crate::wire::dhcpv6::{
    opt, Error, IaNa, IaPd, MessageType, Nested, OptionWriter, Packet, RelayPacket, RelayRepr,
    RemoteId, Repr, Status,
};

use super::clients::{client_duid, client_link_local, duid_client, flag, Client, State};
use super::pool::{locate_addr, locate_prefix, NaPool, PdPool};

/// Deepest relay chain we build (RFC 8415 §7.6 HOP_COUNT_LIMIT is 8).
pub const MAX_RELAY_LEVELS: usize = 8;

/// Options requested in the ORO: DNS servers and domain list (RFC 3646).
const ORO: [u8; 4] = [0, opt::DNS_SERVERS as u8, 0, opt::DOMAIN_LIST as u8];

/// One relay agent between the emulated clients and the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayLevel {
    pub hop_count: u8,
    pub link_address: Ipv6Addr,
    pub interface_id: Vec<u8>,
}

/// What every worker needs to build and check messages; immutable during a run.
#[derive(Debug, Clone)]
pub struct Wire {
    pub seed: u8,
    pub ia_na: bool,
    pub ia_pd: bool,
    /// Innermost (closest to the client) first; empty for direct clients.
    pub relays: Vec<RelayLevel>,
    pub remote_id_enterprise: u32,
    pub na_pools: Vec<NaPool>,
    pub pd_pools: Vec<PdPool>,
}

/// Why a reply was judged invalid. `Copy`; indexes the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Invalid {
    /// The DHCPv6 message does not parse.
    Malformed,
    /// A relay level is missing, not a Relay-reply, or does not echo hop count,
    /// peer-address or Interface-ID (RFC 8415 §19.3).
    Relay,
    /// A message type the client was not waiting for.
    UnexpectedType,
    MissingClientId,
    /// A Client ID that is not one of ours, or not handled by this worker.
    UnknownClient,
    /// The transaction ID matches no message the client sent.
    BadXid,
    MissingServerId,
    /// The Reply comes from a server other than the one the client chose.
    WrongServerId,
    StatusUnspecFail,
    StatusNoAddrsAvail,
    StatusNoBinding,
    StatusNotOnLink,
    StatusUseMulticast,
    StatusNoPrefixAvail,
    StatusOther,
    /// A requested IA is missing from the reply.
    MissingIa,
    /// An IA without any address or prefix with a non-zero valid lifetime.
    EmptyIa,
    /// An address or prefix outside every configured pool (or a prefix of the wrong length).
    OutOfPool,
    /// Preferred lifetime above valid lifetime, or T1 above T2 (RFC 8415 §21.4, §21.6).
    BadLifetimes,
    /// An address or prefix that another emulated client holds.
    Duplicate,
}

impl Invalid {
    pub const COUNT: usize = 20;
    pub const ALL: [Invalid; Self::COUNT] = [
        Invalid::Malformed,
        Invalid::Relay,
        Invalid::UnexpectedType,
        Invalid::MissingClientId,
        Invalid::UnknownClient,
        Invalid::BadXid,
        Invalid::MissingServerId,
        Invalid::WrongServerId,
        Invalid::StatusUnspecFail,
        Invalid::StatusNoAddrsAvail,
        Invalid::StatusNoBinding,
        Invalid::StatusNotOnLink,
        Invalid::StatusUseMulticast,
        Invalid::StatusNoPrefixAvail,
        Invalid::StatusOther,
        Invalid::MissingIa,
        Invalid::EmptyIa,
        Invalid::OutOfPool,
        Invalid::BadLifetimes,
        Invalid::Duplicate,
    ];
    pub const fn index(self) -> usize {
        self as usize
    }
    pub const fn name(self) -> &'static str {
        match self {
            Invalid::Malformed => "malformed",
            Invalid::Relay => "relay",
            Invalid::UnexpectedType => "unexpected_type",
            Invalid::MissingClientId => "missing_client_id",
            Invalid::UnknownClient => "unknown_client",
            Invalid::BadXid => "bad_xid",
            Invalid::MissingServerId => "missing_server_id",
            Invalid::WrongServerId => "wrong_server_id",
            Invalid::StatusUnspecFail => "status_unspec_fail",
            Invalid::StatusNoAddrsAvail => "status_no_addrs_avail",
            Invalid::StatusNoBinding => "status_no_binding",
            Invalid::StatusNotOnLink => "status_not_on_link",
            Invalid::StatusUseMulticast => "status_use_multicast",
            Invalid::StatusNoPrefixAvail => "status_no_prefix_avail",
            Invalid::StatusOther => "status_other",
            Invalid::MissingIa => "missing_ia",
            Invalid::EmptyIa => "empty_ia",
            Invalid::OutOfPool => "out_of_pool",
            Invalid::BadLifetimes => "bad_lifetimes",
            Invalid::Duplicate => "duplicate",
        }
    }

    /// `Ok` for Success (or no status), the matching kind otherwise.
    pub fn check_status(code: Option<u16>) -> Result<(), Invalid> {
        match code.map(Status::from_u16) {
            None | Some(Some(Status::Success)) => Ok(()),
            Some(Some(Status::UnspecFail)) => Err(Invalid::StatusUnspecFail),
            Some(Some(Status::NoAddrsAvail)) => Err(Invalid::StatusNoAddrsAvail),
            Some(Some(Status::NoBinding)) => Err(Invalid::StatusNoBinding),
            Some(Some(Status::NotOnLink)) => Err(Invalid::StatusNotOnLink),
            Some(Some(Status::UseMulticast)) => Err(Invalid::StatusUseMulticast),
            Some(Some(Status::NoPrefixAvail)) => Err(Invalid::StatusNoPrefixAvail),
            Some(None) => Err(Invalid::StatusOther),
        }
    }
}

/// The message a client in `state` sends.
pub fn message_type(state: State) -> Option<MessageType> {
    Some(match state {
        State::Soliciting => MessageType::Solicit,
        State::Requesting => MessageType::Request,
        State::Renewing => MessageType::Renew,
        State::Rebinding => MessageType::Rebind,
        State::Releasing => MessageType::Release,
        State::InfoRequesting => MessageType::InformationRequest,
        State::Idle | State::Bound => return None,
    })
}

impl Wire {
    /// Write the message client `idx` sends in its current state (transaction ID `xid`) into
    /// `buf`, wrapped in the configured relay levels. Returns its length.
    pub fn build(
        &self,
        idx: u32,
        c: &Client,
        xid: u32,
        server_duid: Option<&[u8]>,
        elapsed_cs: u16,
        buf: &mut [u8],
    ) -> Result<usize, Error> {
        let t = message_type(c.state).ok_or(Error::UnknownMessageType(0))?;
        let mut w = OptionWriter::new(buf);
        let mut nests: heapless::Vec<Nested, MAX_RELAY_LEVELS> = heapless::Vec::new();
        let peer = client_link_local(self.seed, idx);
        for (i, level) in self.relays.iter().enumerate().rev() {
            let peer_address = if i == 0 {
                peer
            } else {
                self.relays[i - 1].link_address
            };
            RelayRepr {
                msg_type: MessageType::RelayForw,
                hop_count: level.hop_count,
                link_address: level.link_address,
                peer_address,
                relay_message: None,
                interface_id: None,
                remote_id: None,
                subscriber_id: None,
                client_link_layer_addr: None,
            }
            .emit_header(&mut w)?;
            w.put(opt::INTERFACE_ID, &level.interface_id)?;
            if i == 0 {
                RemoteId {
                    enterprise: self.remote_id_enterprise,
                    id: &u64::from(idx).to_be_bytes(),
                }
                .emit(&mut w)?;
            }
            nests
                .push(w.begin(opt::RELAY_MSG)?)
                .map_err(|_| Error::BufferTooSmall)?;
        }

        w.put_u8(t as u8)?;
        w.put_raw(&xid.to_be_bytes()[1..])?;
        w.put(opt::CLIENTID, &client_duid(self.seed, idx))?;
        if matches!(
            t,
            MessageType::Request | MessageType::Renew | MessageType::Release
        ) {
            if let Some(s) = server_duid {
                w.put(opt::SERVERID, s)?;
            }
        }
        w.put_u16_opt(opt::ELAPSED_TIME, elapsed_cs)?;
        if t == MessageType::Solicit && c.flags & flag::RAPID != 0 {
            w.put_empty(opt::RAPID_COMMIT)?;
        }
        if t != MessageType::InformationRequest {
            let (na_addr, pd_prefix) = match t {
                MessageType::Solicit => (false, false),
                MessageType::Request => {
                    (c.flags & flag::OFFER_NA != 0, c.flags & flag::OFFER_PD != 0)
                }
                _ => (c.flags & flag::HAS_NA != 0, c.flags & flag::HAS_PD != 0),
            };
            // Solicit and Request carry every configured IA; Renew, Rebind and Release only
            // those the client holds.
            let all = matches!(t, MessageType::Solicit | MessageType::Request);
            if self.ia_na && (all || na_addr) {
                let n = w.begin(opt::IA_NA)?;
                w.put_u32(idx)?;
                w.put_u32(0)?;
                w.put_u32(0)?;
                if na_addr {
                    if let Some(p) = self.na_pools.get(usize::from(c.na_pool)) {
                        let a = w.begin(opt::IAADDR)?;
                        w.put_addr(&p.addr(c.na_off))?;
                        w.put_u32(0)?;
                        w.put_u32(0)?;
                        w.end(a)?;
                    }
                }
                w.end(n)?;
            }
            if self.ia_pd && (all || pd_prefix) {
                let n = w.begin(opt::IA_PD)?;
                w.put_u32(idx)?;
                w.put_u32(0)?;
                w.put_u32(0)?;
                if pd_prefix {
                    if let Some(p) = self.pd_pools.get(usize::from(c.pd_pool)) {
                        let a = w.begin(opt::IAPREFIX)?;
                        w.put_u32(0)?;
                        w.put_u32(0)?;
                        w.put_u8(p.delegated_len)?;
                        w.put_addr(&p.prefix(c.pd_idx))?;
                        w.end(a)?;
                    }
                }
                w.end(n)?;
            }
        }
        if t != MessageType::Release {
            w.put(opt::ORO, &ORO)?;
        }
        while let Some(n) = nests.pop() {
            w.end(n)?;
        }
        Ok(w.position())
    }

    /// Peel the relay levels off a reply and parse the client message. Returns the message,
    /// the client it names, and the innermost peer-address (to check against that client).
    pub fn open<'a>(&self, payload: &'a [u8]) -> Result<(Repr<'a>, u32), Invalid> {
        let mut buf = payload;
        let mut peer = None;
        for (i, level) in self.relays.iter().enumerate().rev() {
            let p = RelayPacket::new_checked(buf).map_err(|_| Invalid::Relay)?;
            let r = RelayRepr::parse(&p).map_err(|_| Invalid::Relay)?;
            let expected_peer = (i > 0).then(|| self.relays[i - 1].link_address);
            let ok = r.msg_type == MessageType::RelayRepl
                && r.hop_count == level.hop_count
                && r.link_address == level.link_address
                && r.interface_id == Some(level.interface_id.as_slice())
                && expected_peer.is_none_or(|e| e == r.peer_address);
            if !ok {
                return Err(Invalid::Relay);
            }
            if i == 0 {
                peer = Some(r.peer_address);
            }
            buf = r.relay_message.ok_or(Invalid::Relay)?;
        }
        let p = Packet::new_checked(buf).map_err(|_| Invalid::Malformed)?;
        let repr = Repr::parse(&p).map_err(|_| Invalid::Malformed)?;
        let duid = repr.client_id.ok_or(Invalid::MissingClientId)?;
        let idx = duid_client(self.seed, duid.bytes()).ok_or(Invalid::UnknownClient)?;
        if let Some(peer) = peer {
            if peer != client_link_local(self.seed, idx) {
                return Err(Invalid::Relay);
            }
        }
        Ok((repr, idx))
    }

    /// Check the IAs of an Advertise or a Reply that grants leases. Returns the first address
    /// and prefix (each as `(pool, offset)`) with a non-zero valid lifetime in the client's
    /// IAs, for the IA kinds configured.
    pub fn leases(&self, r: &Repr<'_>, idx: u32) -> Result<Leases, Invalid> {
        let mut out = Leases::default();
        if self.ia_na {
            let ia = r
                .ia_na
                .iter()
                .find(|ia| ia.iaid == idx)
                .ok_or(Invalid::MissingIa)?;
            out.na = Some(self.na_lease(ia)?);
        }
        if self.ia_pd {
            let ia = r
                .ia_pd
                .iter()
                .find(|ia| ia.iaid == idx)
                .ok_or(Invalid::MissingIa)?;
            out.pd = Some(self.pd_lease(ia)?);
        }
        Ok(out)
    }

    fn na_lease(&self, ia: &IaNa<'_>) -> Result<(u8, u64), Invalid> {
        Invalid::check_status(ia.status().map(|s| s.code))?;
        check_timers(ia.t1, ia.t2)?;
        let mut found = None;
        for a in ia.addresses() {
            if a.preferred > a.valid {
                return Err(Invalid::BadLifetimes);
            }
            if a.valid == 0 {
                continue;
            }
            let loc = locate_addr(&self.na_pools, a.addr).ok_or(Invalid::OutOfPool)?;
            found.get_or_insert(loc);
        }
        found.ok_or(Invalid::EmptyIa)
    }

    fn pd_lease(&self, ia: &IaPd<'_>) -> Result<(u8, u64), Invalid> {
        Invalid::check_status(ia.status().map(|s| s.code))?;
        check_timers(ia.t1, ia.t2)?;
        let mut found = None;
        for p in ia.prefixes() {
            if p.preferred > p.valid {
                return Err(Invalid::BadLifetimes);
            }
            if p.valid == 0 {
                continue;
            }
            let loc =
                locate_prefix(&self.pd_pools, p.prefix, p.prefix_len).ok_or(Invalid::OutOfPool)?;
            found.get_or_insert(loc);
        }
        found.ok_or(Invalid::EmptyIa)
    }
}

fn check_timers(t1: u32, t2: u32) -> Result<(), Invalid> {
    // RFC 8415 §21.4: T1 > T2 (both non-zero) is invalid.
    if t1 != 0 && t2 != 0 && t1 > t2 {
        Err(Invalid::BadLifetimes)
    } else {
        Ok(())
    }
}

/// The leases a reply grants, as `(pool, offset)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Leases {
    pub na: Option<(u8, u64)>,
    pub pd: Option<(u8, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::clients::xid;

    fn wire(levels: usize) -> Wire {
        Wire {
            seed: 1,
            ia_na: true,
            ia_pd: true,
            relays: (0..levels)
                .map(|i| RelayLevel {
                    hop_count: i as u8,
                    link_address: format!("2001:db8:{}::1", i + 1).parse().unwrap(),
                    interface_id: format!("if{i}").into_bytes(),
                })
                .collect(),
            remote_id_enterprise: 32473,
            na_pools: vec!["2001:db8:1::/64".parse().unwrap()],
            pd_pools: vec!["2001:db8:8000::/40,56".parse().unwrap()],
        }
    }

    #[test]
    fn solicit_parses_with_the_codec() {
        let w = wire(0);
        let mut c = Client::NEW;
        c.state = State::Soliciting;
        c.flags |= flag::RAPID;
        let mut buf = [0u8; 512];
        let n = w.build(42, &c, xid(42, 1), None, 0, &mut buf).unwrap();
        let p = Packet::new_checked(&buf[..n]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.msg_type, MessageType::Solicit);
        assert_eq!(r.transaction_id, xid(42, 1));
        assert!(r.rapid_commit);
        assert_eq!(r.ia_na.len(), 1);
        assert_eq!(r.ia_pd.len(), 1);
        assert_eq!(r.ia_na[0].iaid, 42);
        assert!(r.server_id.is_none());
    }

    #[test]
    fn renew_carries_held_leases_and_server_id() {
        let w = wire(0);
        let mut c = Client::NEW;
        c.state = State::Renewing;
        c.flags |= flag::HAS_NA;
        c.na_off = 0x1234;
        let mut buf = [0u8; 512];
        let n = w.build(7, &c, 1, Some(&[0, 1, 2, 3]), 5, &mut buf).unwrap();
        let p = Packet::new_checked(&buf[..n]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.msg_type, MessageType::Renew);
        assert_eq!(r.server_id.unwrap().bytes(), &[0, 1, 2, 3]);
        assert_eq!(r.elapsed_time, Some(5));
        assert!(r.ia_pd.is_empty(), "the prefix is not held");
        let a = r.ia_na[0].addresses().next().unwrap();
        assert_eq!(a.addr, "2001:db8:1::1234".parse::<Ipv6Addr>().unwrap());
    }

    #[test]
    fn relay_levels_nest_and_open() {
        let w = wire(3);
        let mut c = Client::NEW;
        c.state = State::InfoRequesting;
        let mut buf = [0u8; 1024];
        let n = w.build(9, &c, 77, None, 0, &mut buf).unwrap();
        // Turn each Relay-forward into a Relay-reply, as a server would.
        let mut off = 0;
        for _ in 0..3 {
            assert_eq!(buf[off], MessageType::RelayForw as u8);
            buf[off] = MessageType::RelayRepl as u8;
            let p = RelayPacket::new_checked(&buf[off..n]).unwrap();
            let r = RelayRepr::parse(&p).unwrap();
            let inner = r.relay_message.unwrap();
            off = inner.as_ptr() as usize - buf.as_ptr() as usize;
        }
        buf[off] = MessageType::Reply as u8;
        let (r, idx) = w.open(&buf[..n]).unwrap();
        assert_eq!(idx, 9);
        assert_eq!(r.transaction_id, 77);
        // A relay level that is not echoed correctly is reported.
        assert_eq!(w.open(&buf[off..n]).unwrap_err(), Invalid::Relay);
    }

    #[test]
    fn status_kinds() {
        assert_eq!(Invalid::check_status(None), Ok(()));
        assert_eq!(Invalid::check_status(Some(0)), Ok(()));
        assert_eq!(
            Invalid::check_status(Some(2)),
            Err(Invalid::StatusNoAddrsAvail)
        );
        assert_eq!(Invalid::check_status(Some(99)), Err(Invalid::StatusOther));
        for (i, k) in Invalid::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
    }
}
