//! The sans-IO server core (RFC 8415 §16, §18.3). It never touches a socket, the clock or a
//! thread: request bytes, receive metadata and the current time go in; a reply written into the
//! caller's buffer, or a counted drop reason, comes out.
//!
//! API contract used by every backend (socket, AF_XDP, simulator, fuzzers):
//! `Server::handle(&self, request, &RxMeta, now_secs, out) -> Result<ReplyMeta, DropReason>`.
//! `Server` is `Sync`: all worker threads share one.
//!
//! The hot path allocates nothing: the request is parsed into a [`Repr`] that borrows it and
//! holds fixed-size `heapless` vectors; relay levels live in a fixed array; the reply is written
//! straight into `out`. Configuration-derived bytes (DNS option payloads, reservation index)
//! are prepared once in [`Server::new`].
//!
//! Link selection (RFC 8415 §13.1), as implemented:
//! - Relayed: the relay closest to the client whose link-address is not unspecified names the
//!   link, if that address is inside a link's subnet. If no relay has a link-address, or the
//!   closest one set matches no link, the Interface-ID options are tried, closest to the client
//!   first, against each link's `interface_ids`. If that fails too and every level's
//!   link-address is unspecified, every relay is a lightweight relay (RFC 6221), and such a
//!   relay only reaches servers on its own link: if the message came from our link (sent to a
//!   multicast group or from a link-local source), the client's link is then chosen as for a
//!   direct client, by the receiving interface. Otherwise the message is dropped (`NoLink`):
//!   a relay that names a link we do not serve is not second-guessed.
//! - Direct: the link whose `interface` was mapped to the arrival `ifindex` with
//!   [`Server::set_interface`]; failing that, the one link that names no interface, if exactly
//!   one such link exists (the single-link setup needs no interface configured); else `NoLink`.
//!
//! Unicast (RFC 8415 §16, §18.3): a direct client may unicast only Request, Renew, Release and
//! Decline, and since we never send the Server Unicast option those get a Reply with
//! UseMulticast. A direct Solicit, Confirm, Rebind or Information-request sent to a unicast
//! address is discarded (`UnicastNotAllowed`). Relayed messages arrive unicast from the relay
//! by design and are never subject to either rule.
//!
//! Many IAs: every IA of a message is answered, however many there are, as long as the reply
//! has room (a reply that would overflow is cut cleanly after the last whole IA; it never
//! exceeds the caller's buffer nor [`MAX_REPLY_LEN`]). New allocations are capped at
//! [`MAX_IAS`] IAs of each type per message, which bounds the probing work one packet can
//! cause; the IAs beyond that get NoAddrsAvail / NoPrefixAvail in the IA (§18.3.1, §18.3.2).
//! Renew, Rebind, Release, Decline and Confirm do no probing and process every IA.

use std::collections::HashMap;
use std::net::Ipv6Addr;

use heapless::Vec as HVec;

use crate::config::{Config, Link};
use crate::lease::{
    AllocRequest, BindingKey, IaType, LeaseStore, Lifetimes, PoolSpec, Reserved, Resource,
    StoreError,
};
use crate::wire::dhcpv6::{
    self as wire, opt, Duid, IaAddr, IaNa, IaPd, IaPrefix, MessageType, Nested, OptionWriter,
    Options, Oro, Packet, RelayPacket, RelayRepr, Repr, Status, StatusCode, INFINITY, MAX_IAS,
};

/// Most relay levels walked. HOP_COUNT_LIMIT is 8 (RFC 8415 §7.6) and a relay drops a message
/// whose hop-count has already reached it, so a legal chain has hop-counts 0..=8: 9 levels.
pub const MAX_RELAY_DEPTH: usize = 9;
/// Most addresses/prefixes listed in one IA of a reply (the one granted plus client-sent ones
/// returned with zero lifetimes). Further client-sent ones are not echoed.
pub const MAX_GRANTS_PER_IA: usize = 8;
/// Largest reply: the UDP payload of a maximal datagram (65535 minus the 8-byte UDP header), so
/// that no length field we write, nor the backend's UDP length, can overflow 16 bits.
pub const MAX_REPLY_LEN: usize = 65_535 - 8;
/// Pool id recorded for a reserved resource that lies outside every pool of its link.
pub const RESERVATION_POOL_ID: u32 = u32::MAX;
/// Room kept free while writing IAs for a top-level Status Code written after them.
const STATUS_TAIL_ROOM: usize = 4 + 2 + 32;
/// Below this much room no further IA is even attempted, so that no binding is committed for
/// an IA the reply could not carry: IA_PD header 16 + IAPREFIX 29 + Status Code ~30.
const IA_MIN_ROOM: usize = 80;

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
    /// Destination address and UDP port: the client (its source port, normally 546) or the
    /// relay nearest the server (port 547).
    pub dst: Ipv6Addr,
    pub dst_port: u16,
}

macro_rules! drop_reasons {
    ($($(#[$doc:meta])* $name:ident => $text:literal,)*) => {
        /// Why a request was not answered. `Copy`; [`index`](Self::index) indexes per-core
        /// counters and [`name`](Self::name) labels them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $($(#[$doc])* $name,)*
        }

        impl DropReason {
            pub const COUNT: usize = [$(stringify!($name),)*].len();
            pub const ALL: [DropReason; Self::COUNT] = [$(DropReason::$name,)*];
            pub const fn index(self) -> usize {
                self as usize
            }
            pub const fn name(self) -> &'static str {
                match self {
                    $(DropReason::$name => $text,)*
                }
            }
        }
    };
}

drop_reasons! {
    /// The datagram ends inside a message header or an option.
    Truncated => "truncated",
    /// An option is shorter than its fixed fields, has an invalid length, or is malformed.
    BadOption => "bad_option",
    /// No Client Identifier where §16 requires one.
    MissingClientId => "missing_client_id",
    /// A Client Identifier is empty or longer than 130 bytes.
    BadClientId => "bad_client_id",
    /// More than one Client Identifier.
    DuplicateClientId => "duplicate_client_id",
    /// A Server Identifier is empty or longer than 130 bytes.
    BadServerId => "bad_server_id",
    /// More than one Server Identifier.
    DuplicateServerId => "duplicate_server_id",
    /// Request, Renew, Release or Decline without a Server Identifier (§16.4, .6, .9, .10).
    MissingServerId => "missing_server_id",
    /// Solicit, Confirm or Rebind carrying a Server Identifier (§16.2, .5, .7).
    UnexpectedServerId => "unexpected_server_id",
    /// A Server Identifier that is not ours: the message is for another server.
    NotForUs => "not_for_us",
    /// A message type this server does not know.
    UnknownMessageType => "unknown_message_type",
    /// A known type that servers never receive: Advertise, Reply, Reconfigure, Relay-reply (§16).
    UnexpectedMessageType => "unexpected_message_type",
    /// Relay-forward nested deeper than `MAX_RELAY_DEPTH`.
    RelayTooDeep => "relay_too_deep",
    /// A Relay-forward without a Relay Message option, or with an empty one.
    RelayMessageMissing => "relay_message_missing",
    /// An Information-request carrying an IA option (§16.12).
    IaInInformationRequest => "ia_in_information_request",
    /// A Confirm with no addresses in it: there is nothing to confirm (§18.3.3).
    ConfirmWithoutAddresses => "confirm_without_addresses",
    /// A Solicit, Confirm, Rebind or Information-request sent by a client straight to a
    /// unicast address (RFC 8415 §16: servers discard these; only relays may unicast them).
    UnicastNotAllowed => "unicast_not_allowed",
    /// No configured link matches the message (§13.1).
    NoLink => "no_link",
    /// The output buffer cannot hold even the mandatory part of the reply.
    BufferTooSmall => "buffer_too_small",
}

fn drop_for(e: wire::Error) -> DropReason {
    match e {
        wire::Error::Truncated => DropReason::Truncated,
        wire::Error::BadOptionLength(_)
        | wire::Error::BadName
        | wire::Error::DuplicateRelayMessage => DropReason::BadOption,
        wire::Error::BadClientId => DropReason::BadClientId,
        wire::Error::BadServerId => DropReason::BadServerId,
        wire::Error::DuplicateClientId => DropReason::DuplicateClientId,
        wire::Error::DuplicateServerId => DropReason::DuplicateServerId,
        wire::Error::UnknownMessageType(_) => DropReason::UnknownMessageType,
        wire::Error::BufferTooSmall => DropReason::BufferTooSmall,
    }
}

/// Every reserved address and prefix in the configuration, so the allocator never hands one to
/// anybody else (the holder gets it through `LeaseStore::bind`).
#[derive(Debug, Clone, Default)]
pub struct ConfigReservations {
    sorted: Vec<Resource>,
}

impl ConfigReservations {
    pub fn new(config: &Config) -> Self {
        let mut sorted: Vec<Resource> = config
            .links
            .iter()
            .flat_map(|l| l.reservations.iter())
            .flat_map(|r| {
                let a = r.address.map(Resource::address);
                let p = r.prefix.map(|p| Resource::prefix(p.addr, p.len));
                a.into_iter().chain(p)
            })
            .collect();
        sorted.sort_unstable();
        sorted.dedup();
        ConfigReservations { sorted }
    }
}

impl Reserved for ConfigReservations {
    fn is_reserved(&self, r: Resource) -> bool {
        self.sorted.binary_search(&r).is_ok()
    }
}

/// A link with what the hot path needs precomputed.
struct LinkCtx {
    cfg: Link,
    /// OPTION_DNS_SERVERS payload; empty when none are configured.
    dns_payload: Vec<u8>,
    /// OPTION_DOMAIN_LIST payload (wire-format names); empty when none are configured.
    domain_payload: Vec<u8>,
    /// Client DUID → index into `cfg.reservations`.
    reservations: HashMap<Vec<u8>, usize>,
    lifetimes: Lifetimes,
}

impl LinkCtx {
    fn new(cfg: &Link) -> Self {
        let dns_payload = cfg.dns_payload();
        let mut domain_payload =
            vec![0u8; cfg.options.domain_search.iter().map(|n| n.len() + 2).sum()];
        let mut w = OptionWriter::new(&mut domain_payload);
        for name in &cfg.options.domain_search {
            // Config validation has already checked these are DNS names; a name that still
            // fails to encode is left out rather than sent malformed.
            let _ = wire::encode_domain_name(name, &mut w);
        }
        let used = w.position();
        domain_payload.truncate(used);
        let reservations = cfg
            .reservations
            .iter()
            .enumerate()
            .map(|(i, r)| (r.duid.clone(), i))
            .collect();
        // RFC 8415 §21.6: preferred must not exceed valid.
        let lifetimes = Lifetimes {
            preferred: cfg.preferred_lifetime.min(cfg.valid_lifetime),
            valid: cfg.valid_lifetime,
        };
        LinkCtx {
            cfg: cfg.clone(),
            dns_payload,
            domain_payload,
            reservations,
            lifetimes,
        }
    }

    fn reservation(&self, duid: &[u8]) -> Option<&crate::config::Reservation> {
        self.reservations
            .get(duid)
            .and_then(|&i| self.cfg.reservations.get(i))
    }

    /// RFC 8415 §21.4 (and §21.21 for IA_PD): T1/T2 from configuration, else 0.5 and 0.8 of the
    /// shortest preferred lifetime in the IA; never T1 > T2, never beyond that lifetime. An IA
    /// with nothing in it gets 0/0 (left to the client).
    fn timers(&self, min_preferred: Option<u32>) -> (u32, u32) {
        let Some(p) = min_preferred else {
            return (0, 0);
        };
        if p == INFINITY && self.cfg.t1.is_none() && self.cfg.t2.is_none() {
            return (INFINITY, INFINITY);
        }
        let p64 = u64::from(p);
        let t2 = self.cfg.t2.map_or(p64 * 4 / 5, u64::from).min(p64);
        let t1 = self.cfg.t1.map_or(p64 / 2, u64::from).min(t2);
        (t1 as u32, t2 as u32)
    }

    /// A delegated prefix is appropriate for the link if one of its prefix pools holds it or it
    /// is reserved on it.
    fn prefix_on_link(&self, r: Resource) -> bool {
        self.cfg.prefix_pools.iter().any(|p| p.contains(r))
            || self.cfg.reservations.iter().any(|x| {
                x.prefix
                    .is_some_and(|p| Resource::prefix(p.addr, p.len) == r)
            })
    }

    fn pool_id_for(&self, pools: &[PoolSpec], r: Resource) -> u32 {
        pools
            .iter()
            .find(|p| p.contains(r))
            .map_or(RESERVATION_POOL_ID, |p| p.id)
    }
}

trait LinkExt {
    fn dns_payload(&self) -> Vec<u8>;
}

impl LinkExt for Link {
    fn dns_payload(&self) -> Vec<u8> {
        self.options
            .dns_servers
            .iter()
            .flat_map(|a| a.octets())
            .collect()
    }
}

/// One Relay-forward level, outermost first in the list.
#[derive(Debug, Clone, Copy)]
struct RelayLevel<'a> {
    hop_count: u8,
    link_address: Ipv6Addr,
    peer_address: Ipv6Addr,
    interface_id: Option<&'a [u8]>,
}

/// One address or prefix in a reply IA.
#[derive(Debug, Clone, Copy)]
struct Grant {
    resource: Resource,
    lifetimes: Lifetimes,
}

/// The outcome for one IA.
#[derive(Debug, Default)]
struct IaResult {
    grants: HVec<Grant, MAX_GRANTS_PER_IA>,
    status: Option<Status>,
}

impl IaResult {
    fn status(s: Status) -> Self {
        IaResult {
            grants: HVec::new(),
            status: Some(s),
        }
    }
    fn granted(&self) -> bool {
        self.grants.iter().any(|g| g.lifetimes.valid > 0)
    }
    fn push(&mut self, resource: Resource, lifetimes: Lifetimes) {
        // A full list only loses zero-lifetime echoes of client-sent entries; the grant itself
        // always comes first.
        let _ = self.grants.push(Grant {
            resource,
            lifetimes,
        });
    }
}

const ZERO: Lifetimes = Lifetimes {
    preferred: 0,
    valid: 0,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IaKind {
    Na,
    Ta,
    Pd,
}

/// The DHCPv6 server core.
pub struct Server<S: LeaseStore> {
    store: S,
    duid: Vec<u8>,
    links: Vec<LinkCtx>,
    /// OS ifindex → link index, from `set_interface`.
    ifaces: Vec<(u32, usize)>,
    /// Link for direct clients on an unmapped interface (see the module docs).
    default_direct: Option<usize>,
    reserved: ConfigReservations,
    decline_quarantine_secs: u32,
}

impl<S: LeaseStore> Server<S> {
    /// Build the core. `server_duid` is this server's DUID (generated and persisted by the
    /// caller); it must be a valid DUID of 3..=130 bytes.
    pub fn new(config: &Config, store: S, server_duid: Vec<u8>) -> Self {
        assert!(
            Duid::parse(&server_duid).is_some(),
            "server DUID must be 3..=130 bytes (RFC 8415 §11.1), got {}",
            server_duid.len()
        );
        let links: Vec<LinkCtx> = config.links.iter().map(LinkCtx::new).collect();
        let mut unnamed = links
            .iter()
            .enumerate()
            .filter(|(_, l)| l.cfg.interface.is_none());
        let default_direct = match (unnamed.next(), unnamed.next()) {
            (Some((i, _)), None) => Some(i),
            _ => None,
        };
        Server {
            store,
            duid: server_duid,
            links,
            ifaces: Vec::new(),
            default_direct,
            reserved: ConfigReservations::new(config),
            decline_quarantine_secs: config.server.decline_quarantine_secs,
        }
    }

    /// Tell the core that OS interface `ifindex` is the configured interface `name`, so direct
    /// clients arriving on it are matched to the link that names it.
    pub fn set_interface(&mut self, ifindex: u32, name: &str) {
        self.ifaces.retain(|(i, _)| *i != ifindex);
        if let Some(l) = self
            .links
            .iter()
            .position(|l| l.cfg.interface.as_deref() == Some(name))
        {
            self.ifaces.push((ifindex, l));
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// This server's DUID.
    pub fn duid(&self) -> &[u8] {
        &self.duid
    }

    /// Handle one request; see the module docs. Never panics and never writes past `out`.
    pub fn handle(
        &self,
        request: &[u8],
        meta: &RxMeta,
        now: u64,
        out: &mut [u8],
    ) -> Result<ReplyMeta, DropReason> {
        // Walk Relay-forward nesting iteratively (RFC 8415 §9, §19), outermost first.
        let mut relays: HVec<RelayLevel<'_>, MAX_RELAY_DEPTH> = HVec::new();
        let mut msg = request;
        loop {
            let t = *msg.first().ok_or(DropReason::Truncated)?;
            match MessageType::from_u8(t) {
                Some(MessageType::RelayForw) => {
                    let p = RelayPacket::new_checked(msg).map_err(drop_for)?;
                    let r = RelayRepr::parse(&p).map_err(drop_for)?;
                    let level = RelayLevel {
                        hop_count: r.hop_count,
                        link_address: r.link_address,
                        peer_address: r.peer_address,
                        interface_id: r.interface_id,
                    };
                    relays.push(level).map_err(|_| DropReason::RelayTooDeep)?;
                    msg = match r.relay_message {
                        Some(m) if !m.is_empty() => m,
                        _ => return Err(DropReason::RelayMessageMissing),
                    };
                }
                Some(
                    MessageType::Advertise
                    | MessageType::Reply
                    | MessageType::Reconfigure
                    | MessageType::RelayRepl,
                ) => return Err(DropReason::UnexpectedMessageType),
                Some(_) => break,
                None => return Err(DropReason::UnknownMessageType),
            }
        }

        let packet = Packet::new_checked(msg).map_err(drop_for)?;
        let repr = Repr::parse(&packet).map_err(drop_for)?;
        self.validate(&repr)?;
        let direct_unicast = relays.is_empty() && !meta.dst.is_multicast();
        // RFC 8415 §16: "A server MUST discard any Solicit, Confirm, Rebind, or
        // Information-request messages it receives with a Layer 3 unicast destination address."
        if direct_unicast
            && matches!(
                repr.msg_type,
                MessageType::Solicit
                    | MessageType::Confirm
                    | MessageType::Rebind
                    | MessageType::InformationRequest
            )
        {
            return Err(DropReason::UnicastNotAllowed);
        }

        let dst = if relays.is_empty() {
            (meta.src, meta.src_port)
        } else {
            // Relay-reply goes to the relay that sent us the Relay-forward (RFC 8415 §19.3).
            (meta.src, wire::SERVER_PORT)
        };
        let cx = Reply {
            server: self,
            relays: &relays,
            repr: &repr,
            // `Packet::new_checked` guaranteed the header is there.
            options: msg.get(wire::HEADER_LEN..).unwrap_or_default(),
            now,
            dst,
        };

        // RFC 8415 §18.3.2, .4, .7, .8 (and §16): we never send the Server Unicast option, so a
        // direct client sending these by unicast is told to use multicast.
        let unicast_only = matches!(
            repr.msg_type,
            MessageType::Request | MessageType::Renew | MessageType::Release | MessageType::Decline
        );
        if unicast_only && direct_unicast {
            return cx.write(out, MessageType::Reply, |w| {
                StatusCode::new(Status::UseMulticast).emit(w)
            });
        }

        let link = self.select_link(&relays, meta).ok_or(DropReason::NoLink)?;
        let link = &self.links[link];
        match repr.msg_type {
            MessageType::Solicit => cx.solicit(link, out),
            MessageType::Request => cx.request(link, out),
            MessageType::Renew => cx.extend(link, false, out),
            MessageType::Rebind => cx.extend(link, true, out),
            MessageType::Confirm => cx.confirm(link, out),
            MessageType::Release => cx.release(out),
            MessageType::Decline => cx.decline(out),
            MessageType::InformationRequest => cx.information(link, out),
            // Filtered above; kept exhaustive so a new type cannot slip through unhandled.
            MessageType::Advertise
            | MessageType::Reply
            | MessageType::Reconfigure
            | MessageType::RelayForw
            | MessageType::RelayRepl => Err(DropReason::UnexpectedMessageType),
        }
    }

    /// RFC 8415 §16: the per-type rules on Client ID, Server ID and IAs.
    fn validate(&self, r: &Repr<'_>) -> Result<(), DropReason> {
        let ours = |d: Duid<'_>| d.bytes() == self.duid.as_slice();
        match r.msg_type {
            MessageType::Solicit | MessageType::Confirm | MessageType::Rebind => {
                if r.client_id.is_none() {
                    return Err(DropReason::MissingClientId);
                }
                if r.server_id.is_some() {
                    return Err(DropReason::UnexpectedServerId);
                }
            }
            MessageType::Request
            | MessageType::Renew
            | MessageType::Release
            | MessageType::Decline => {
                if r.client_id.is_none() {
                    return Err(DropReason::MissingClientId);
                }
                match r.server_id {
                    None => return Err(DropReason::MissingServerId),
                    Some(s) if !ours(s) => return Err(DropReason::NotForUs),
                    Some(_) => {}
                }
            }
            MessageType::InformationRequest => {
                if r.server_id.is_some_and(|s| !ours(s)) {
                    return Err(DropReason::NotForUs);
                }
                if r.has_ias() || r.ias_truncated {
                    return Err(DropReason::IaInInformationRequest);
                }
            }
            _ => return Err(DropReason::UnexpectedMessageType),
        }
        Ok(())
    }

    /// RFC 8415 §13.1; the rules chosen are in the module docs.
    fn select_link(&self, relays: &[RelayLevel<'_>], meta: &RxMeta) -> Option<usize> {
        let by_interface = || {
            self.ifaces
                .iter()
                .find(|(i, _)| *i == meta.ifindex)
                .map(|(_, l)| *l)
                .or(self.default_direct)
        };
        if relays.is_empty() {
            return by_interface();
        }
        if let Some(level) = relays
            .iter()
            .rev()
            .find(|l| !l.link_address.is_unspecified())
        {
            if let Some(i) = self
                .links
                .iter()
                .position(|l| l.cfg.subnet.contains(level.link_address))
            {
                return Some(i);
            }
        }
        let by_interface_id = relays
            .iter()
            .rev()
            .filter_map(|l| l.interface_id)
            .find_map(|id| {
                self.links
                    .iter()
                    .position(|l| l.cfg.interface_ids.iter().any(|x| x.as_slice() == id))
            });
        if by_interface_id.is_some() {
            return by_interface_id;
        }
        // Only lightweight relays (RFC 6221: link-address ::) between client and server: the
        // outermost one sent to ff02::1:2 on its own link, which is the client's link too. A
        // message that did not come from our link (multicast, or from a link-local source)
        // tells us nothing about where the client is.
        let from_our_link = meta.dst.is_multicast() || meta.src.is_unicast_link_local();
        if from_our_link && relays.iter().all(|l| l.link_address.is_unspecified()) {
            return by_interface();
        }
        None
    }
}

/// Everything needed to answer one message.
struct Reply<'s, 'r, 'a, S: LeaseStore> {
    server: &'s Server<S>,
    relays: &'r [RelayLevel<'a>],
    repr: &'r Repr<'a>,
    /// The client message's option area, for the IAs `repr` could not keep (`MAX_IAS`).
    options: &'a [u8],
    now: u64,
    dst: (Ipv6Addr, u16),
}

/// One IA option of the client message.
#[derive(Debug, Clone, Copy)]
enum Ia<'a> {
    Na(IaNa<'a>),
    Ta(wire::IaTa<'a>),
    Pd(IaPd<'a>),
}

impl Ia<'_> {
    fn kind(&self) -> IaKind {
        match self {
            Ia::Na(_) => IaKind::Na,
            Ia::Ta(_) => IaKind::Ta,
            Ia::Pd(_) => IaKind::Pd,
        }
    }
    fn iaid(&self) -> u32 {
        match self {
            Ia::Na(ia) => ia.iaid,
            Ia::Ta(ia) => ia.iaid,
            Ia::Pd(ia) => ia.iaid,
        }
    }
}

impl<'a, S: LeaseStore> Reply<'_, '_, 'a, S> {
    /// Every IA option of the message, in message order, including those beyond the `MAX_IAS`
    /// per type that `Repr` keeps. `Repr::parse` already validated every one of them, so none
    /// is skipped here for being malformed.
    fn ias(&self) -> impl Iterator<Item = Ia<'a>> + 'a {
        Options::new(self.options)
            .map_while(Result::ok)
            .filter_map(|(code, data)| match code {
                opt::IA_NA => IaNa::parse(data).ok().map(Ia::Na),
                opt::IA_TA => wire::IaTa::parse(data).ok().map(Ia::Ta),
                opt::IA_PD => IaPd::parse(data).ok().map(Ia::Pd),
                _ => None,
            })
    }

    fn client_duid(&self) -> &[u8] {
        self.repr.client_id.map_or(&[], |d| d.bytes())
    }

    fn key(&self, iaid: u32, ia_type: IaType) -> BindingKey<'_> {
        BindingKey {
            duid: self.client_duid(),
            iaid,
            ia_type,
        }
    }

    /// Write the reply: Relay-reply wrappers mirroring every Relay-forward level (RFC 8415
    /// §19.3: hop-count, link-address and peer-address copied, Interface-ID echoed), then the
    /// message with our Server ID and the client's Client ID, then `body`. Relay Message
    /// lengths are patched once the inner message is complete.
    fn write(
        &self,
        out: &mut [u8],
        msg_type: MessageType,
        body: impl FnOnce(&mut OptionWriter<'_>) -> Result<(), wire::Error>,
    ) -> Result<ReplyMeta, DropReason> {
        let mut w = OptionWriter::new(out);
        w.set_capacity(MAX_REPLY_LEN);
        let mut nests: HVec<Nested, MAX_RELAY_DEPTH> = HVec::new();
        let result = (|| {
            for level in self.relays {
                w.put_u8(MessageType::RelayRepl as u8)?;
                w.put_u8(level.hop_count)?;
                w.put_addr(&level.link_address)?;
                w.put_addr(&level.peer_address)?;
                if let Some(id) = level.interface_id {
                    w.put(opt::INTERFACE_ID, id)?;
                }
                let n = w.begin(opt::RELAY_MSG)?;
                // `relays` holds at most MAX_RELAY_DEPTH levels, the capacity of `nests`.
                nests.push(n).map_err(|_| wire::Error::BufferTooSmall)?;
            }
            w.put_u8(msg_type as u8)?;
            w.put_raw(&self.repr.transaction_id.to_be_bytes()[1..])?;
            w.put(opt::SERVERID, &self.server.duid)?;
            if let Some(c) = self.repr.client_id {
                w.put(opt::CLIENTID, c.bytes())?;
            }
            body(&mut w)?;
            while let Some(n) = nests.pop() {
                w.end(n)?;
            }
            Ok(())
        })();
        result.map_err(drop_for)?;
        Ok(ReplyMeta {
            len: w.position(),
            dst: self.dst.0,
            dst_port: self.dst.1,
        })
    }

    /// Options the client asked for in its ORO (RFC 8415 §21.7), each at most once.
    fn oro_options(&self, link: &LinkCtx, w: &mut OptionWriter<'_>) -> Result<(), wire::Error> {
        let Some(oro) = self.repr.oro else {
            return Ok(());
        };
        let info = self.repr.msg_type == MessageType::InformationRequest;
        let o = &link.cfg.options;
        let mut done = 0u8;
        let mut once = |bit: u8| {
            let first = done & bit == 0;
            done |= bit;
            first
        };
        for code in Oro::codes(&oro) {
            match code {
                opt::DNS_SERVERS if !link.dns_payload.is_empty() && once(1) => {
                    w.put(opt::DNS_SERVERS, &link.dns_payload)?;
                }
                opt::DOMAIN_LIST if !link.domain_payload.is_empty() && once(2) => {
                    w.put(opt::DOMAIN_LIST, &link.domain_payload)?;
                }
                // §21.23: only in a Reply to an Information-request.
                opt::INFORMATION_REFRESH_TIME if info && once(4) => {
                    if let Some(v) = o.information_refresh_time {
                        w.put_u32_opt(code, v)?;
                    }
                }
                opt::SOL_MAX_RT if once(8) => {
                    if let Some(v) = o.sol_max_rt {
                        w.put_u32_opt(code, v)?;
                    }
                }
                // §21.25: only in a Reply to an Information-request.
                opt::INF_MAX_RT if info && once(16) => {
                    if let Some(v) = o.inf_max_rt {
                        w.put_u32_opt(code, v)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// RFC 8415 §18.3.1: Advertise what a Request would get, or with Rapid Commit (when the
    /// link allows it) commit and Reply.
    fn solicit(&self, link: &LinkCtx, out: &mut [u8]) -> Result<ReplyMeta, DropReason> {
        let rapid = self.repr.rapid_commit && link.cfg.rapid_commit;
        let msg_type = if rapid {
            MessageType::Reply
        } else {
            MessageType::Advertise
        };
        self.write(out, msg_type, |w| {
            if rapid {
                w.put_empty(opt::RAPID_COMMIT)?;
            } else if let Some(p) = link.cfg.preference {
                w.put_u8_opt(opt::PREFERENCE, p)?;
            }
            self.oro_options(link, w)?;
            let any = self.assign_all(link, rapid, w)?;
            if !any {
                // Nothing at all can be offered: say so at the top level too (§18.3.1), so a
                // client without IAs, or with only unservable ones, knows to look elsewhere.
                let s = if self.repr.ia_na.is_empty()
                    && self.repr.ia_ta.is_empty()
                    && !self.repr.ia_pd.is_empty()
                {
                    Status::NoPrefixAvail
                } else {
                    Status::NoAddrsAvail
                };
                StatusCode::new(s).emit(w)?;
            }
            Ok(())
        })
    }

    /// RFC 8415 §18.3.2: commit the IAs.
    fn request(&self, link: &LinkCtx, out: &mut [u8]) -> Result<ReplyMeta, DropReason> {
        self.write(out, MessageType::Reply, |w| {
            self.oro_options(link, w)?;
            self.assign_all(link, true, w).map(|_| ())
        })
    }

    /// Assign every IA of the message, writing each; IAs that do not fit are left out whole.
    /// Returns whether anything was granted. Keeps room for a trailing top-level status.
    fn assign_all(
        &self,
        link: &LinkCtx,
        commit: bool,
        w: &mut OptionWriter<'_>,
    ) -> Result<bool, wire::Error> {
        let cap = w.capacity();
        w.set_capacity(cap.saturating_sub(STATUS_TAIL_ROOM));
        let mut any = false;
        // IAs of each type seen so far: IA_NA, IA_TA, IA_PD.
        let mut seen = [0usize; 3];
        for ia in self.ias() {
            if w.remaining() < IA_MIN_ROOM {
                break;
            }
            let n = &mut seen[ia.kind() as usize];
            *n += 1;
            let res = match ia {
                // Past the per-message cap no allocation is attempted (it bounds the probing
                // one packet can cause), but the IA is still answered, never silently dropped:
                // §18.3.1/§18.3.2 give it NoAddrsAvail / NoPrefixAvail.
                Ia::Na(_) | Ia::Ta(_) if *n > MAX_IAS => IaResult::status(Status::NoAddrsAvail),
                Ia::Pd(_) if *n > MAX_IAS => IaResult::status(Status::NoPrefixAvail),
                Ia::Na(ia) => self.assign_na(link, &ia, commit),
                // IA_TA is declined: this server has no temporary addresses (RFC 9915
                // deprecates them), which §18.3.1/.2 express as NoAddrsAvail in the IA.
                Ia::Ta(_) => IaResult::status(Status::NoAddrsAvail),
                Ia::Pd(ia) => self.assign_pd(link, &ia, commit),
            };
            any |= res.granted();
            if !emit_ia_or_rollback(w, link, ia.kind(), ia.iaid(), &res) {
                break;
            }
        }
        w.set_capacity(cap);
        Ok(any)
    }

    fn assign_na(&self, link: &LinkCtx, ia: &IaNa<'_>, commit: bool) -> IaResult {
        let key = self.key(ia.iaid, IaType::Na);
        let pools = &link.cfg.address_pools;
        let hint = ia
            .addresses()
            .map(|a| a.addr)
            .find(|a| link.cfg.subnet.contains(*a))
            .map(Resource::address);
        let reserved = link
            .reservation(key.duid)
            .and_then(|r| r.address)
            .map(Resource::address);
        let mut res = self.assign(
            link,
            key,
            pools,
            hint,
            reserved,
            commit,
            Status::NoAddrsAvail,
        );
        // §18.3.2: an address the client asks for that is not appropriate for its link is not
        // granted. Say so explicitly with lifetimes 0 (as §18.3.4/§18.3.5 do for Renew and
        // Rebind), so that a client that moved links stops using it at once. Only in a
        // committing Reply: an Advertise offers, it does not revoke.
        if commit && res.granted() {
            for a in ia.addresses().filter(|a| !link.cfg.subnet.contains(a.addr)) {
                res.push(Resource::address(a.addr), ZERO);
            }
        }
        res
    }

    fn assign_pd(&self, link: &LinkCtx, ia: &IaPd<'_>, commit: bool) -> IaResult {
        let key = self.key(ia.iaid, IaType::Pd);
        let pools = &link.cfg.prefix_pools;
        // An IAPREFIX hint may give only a length (prefix ::), RFC 8415 §18.2.1.
        let hint = ia
            .prefixes()
            .next()
            .map(|p| Resource::prefix(p.prefix, p.prefix_len));
        let reserved = link
            .reservation(key.duid)
            .and_then(|r| r.prefix)
            .map(|p| Resource::prefix(p.addr, p.len));
        self.assign(
            link,
            key,
            pools,
            hint,
            reserved,
            commit,
            Status::NoPrefixAvail,
        )
    }

    /// Host reservation first (it always wins), then an existing binding in any pool of the
    /// link, then a new allocation, pool by pool.
    #[allow(clippy::too_many_arguments)]
    fn assign(
        &self,
        link: &LinkCtx,
        key: BindingKey<'_>,
        pools: &[PoolSpec],
        hint: Option<Resource>,
        reserved: Option<Resource>,
        commit: bool,
        fail: Status,
    ) -> IaResult {
        let store = &self.server.store;
        let lt = link.lifetimes;
        let mut res = IaResult::default();
        if let Some(r) = reserved {
            if !commit {
                res.push(r, lt);
                return res;
            }
            match store.bind(&key, link.pool_id_for(pools, r), r, lt, self.now) {
                Ok(l) => {
                    res.push(l.resource, lt);
                    return res;
                }
                // Still held by someone from before the reservation existed: serve the client
                // dynamically until that binding ends.
                Err(StoreError::Conflict) => {}
                Err(_) => return IaResult::status(fail),
            }
        }
        for pool in pools {
            if !commit {
                if let Some(l) = store.lookup(&key, pool, self.now) {
                    res.push(l.resource, lt);
                    return res;
                }
            } else if let Some(Ok(l)) = store.renew(&key, pool, lt, self.now) {
                res.push(l.resource, lt);
                return res;
            }
        }
        for pool in pools {
            let req = AllocRequest {
                key,
                pool,
                hint,
                reserved: &self.server.reserved,
                lifetimes: lt,
                now: self.now,
            };
            match store.allocate(&req, commit) {
                Ok(l) => {
                    res.push(l.resource, lt);
                    return res;
                }
                Err(StoreError::PoolExhausted(_)) | Err(StoreError::Conflict) => continue,
                // Fail closed (full disk…): offer nothing so the client tries another server.
                Err(StoreError::Unavailable) | Err(StoreError::NoBinding) => break,
            }
        }
        IaResult::status(fail)
    }

    /// RFC 8415 §18.3.4 (Renew) and §18.3.5 (Rebind).
    fn extend(
        &self,
        link: &LinkCtx,
        rebind: bool,
        out: &mut [u8],
    ) -> Result<ReplyMeta, DropReason> {
        self.write(out, MessageType::Reply, |w| {
            self.oro_options(link, w)?;
            for ia in self.ias() {
                // Checked first, so that a Rebind does not re-create a binding it cannot report.
                if w.remaining() < IA_MIN_ROOM {
                    break;
                }
                let res = match ia {
                    Ia::Na(ia) => self.extend_na(link, &ia, rebind),
                    // We never bind IA_TA.
                    Ia::Ta(_) => IaResult::status(Status::NoBinding),
                    Ia::Pd(ia) => self.extend_pd(link, &ia, rebind),
                };
                if !emit_ia_or_rollback(w, link, ia.kind(), ia.iaid(), &res) {
                    break;
                }
            }
            Ok(())
        })
    }

    fn extend_na(&self, link: &LinkCtx, ia: &IaNa<'_>, rebind: bool) -> IaResult {
        let reserved = link
            .reservation(self.client_duid())
            .and_then(|x| x.address)
            .map(Resource::address);
        self.extend_one(
            link,
            self.key(ia.iaid, IaType::Na),
            &link.cfg.address_pools,
            reserved,
            ia.addresses().map(|a| Resource::address(a.addr)),
            |x| link.cfg.subnet.contains(x.addr),
            rebind,
        )
    }

    fn extend_pd(&self, link: &LinkCtx, ia: &IaPd<'_>, rebind: bool) -> IaResult {
        let reserved = link
            .reservation(self.client_duid())
            .and_then(|x| x.prefix)
            .map(|p| Resource::prefix(p.addr, p.len));
        self.extend_one(
            link,
            self.key(ia.iaid, IaType::Pd),
            &link.cfg.prefix_pools,
            reserved,
            ia.prefixes()
                .map(|p| Resource::prefix(p.prefix, p.prefix_len)),
            |x| link.prefix_on_link(x),
            rebind,
        )
    }

    /// Extend one IA's binding. With a binding: it, with fresh lifetimes, plus every other
    /// address the client listed with lifetimes 0 (no longer valid for it: not on the link or
    /// not ours to give). Without a binding:
    /// - Renew (§18.3.4): "If the server cannot find a client entry for the IA, the server
    ///   returns the IA containing no leases with a Status Code option set to NoBinding". The
    ///   client then sends a Request listing its lease (§18.2.10.1), which `assign` honours as
    ///   a hint, so the lease is kept anyway, one round trip later.
    /// - Rebind (§18.3.5): the server may answer for leases appropriate for the link. For lease
    ///   stability after a restart that lost the lease file (BRIEF §6; RFC 7031 requirement
    ///   4), the first listed lease that lies in one of the link's pools, is not reserved for
    ///   another client and is free in the store is bound again to this IA, unchanged. Listed
    ///   leases not appropriate for the link, or held by someone else, come back with lifetimes
    ///   0 so the client stops using them. Nothing usable at all: NoBinding.
    #[allow(clippy::too_many_arguments)]
    fn extend_one(
        &self,
        link: &LinkCtx,
        key: BindingKey<'_>,
        pools: &[PoolSpec],
        reserved: Option<Resource>,
        sent: impl Iterator<Item = Resource>,
        on_link: impl Fn(Resource) -> bool,
        rebind: bool,
    ) -> IaResult {
        let store = &self.server.store;
        let lt = link.lifetimes;
        // What the client listed; more than fit in a reply IA would not be echoed anyway.
        let sent: HVec<Resource, MAX_GRANTS_PER_IA> = sent.take(MAX_GRANTS_PER_IA).collect();
        let mut bound = None;
        if let Some(r) = reserved {
            match store.bind(&key, link.pool_id_for(pools, r), r, lt, self.now) {
                Ok(l) => bound = Some(l.resource),
                Err(StoreError::Conflict) => {}
                Err(_) => return IaResult::status(Status::UnspecFail),
            }
        }
        if bound.is_none() {
            for pool in pools {
                match store.renew(&key, pool, lt, self.now) {
                    Some(Ok(l)) => {
                        bound = Some(l.resource);
                        break;
                    }
                    Some(Err(_)) => return IaResult::status(Status::UnspecFail),
                    None => {}
                }
            }
        }
        // Listed leases in our pools that could not be bound again: taken by another client.
        let mut taken: HVec<Resource, MAX_GRANTS_PER_IA> = HVec::new();
        if bound.is_none() && rebind {
            for &s in &sent {
                let Some(pool) = pools.iter().find(|p| p.contains(s)) else {
                    continue;
                };
                if !on_link(s) {
                    continue;
                }
                if self.server.reserved.is_reserved(s) && reserved != Some(s) {
                    let _ = taken.push(s);
                    continue;
                }
                match store.bind(&key, pool.id, s, lt, self.now) {
                    Ok(l) => {
                        bound = Some(l.resource);
                        break;
                    }
                    Err(StoreError::Conflict) => {
                        let _ = taken.push(s);
                    }
                    // Fail closed (full disk…): no lease is re-created, none is revoked.
                    Err(_) => return IaResult::status(Status::NoBinding),
                }
            }
        }
        let mut res = IaResult::default();
        match bound {
            Some(b) => {
                res.push(b, lt);
                for &s in sent.iter().filter(|s| **s != b) {
                    res.push(s, ZERO);
                }
            }
            None => {
                if rebind {
                    for &s in sent.iter().filter(|s| !on_link(**s) || taken.contains(s)) {
                        res.push(s, ZERO);
                    }
                }
                if res.grants.is_empty() {
                    res.status = Some(Status::NoBinding);
                }
            }
        }
        res
    }

    /// RFC 8415 §18.3.3: Success if every address is on the link, NotOnLink if any is not; no
    /// reply at all for a Confirm without addresses.
    fn confirm(&self, link: &LinkCtx, out: &mut [u8]) -> Result<ReplyMeta, DropReason> {
        // Every IA counts, also those beyond the `MAX_IAS` that `Repr` keeps. Confirm carries
        // IA_NA/IA_TA; IA_PD is for Rebind (§18.2.3), so prefixes are not judged here.
        let mut addrs = self
            .ias()
            .flat_map(|ia| {
                let (na, ta) = match ia {
                    Ia::Na(ia) => (Some(ia.addresses()), None),
                    Ia::Ta(ia) => (None, Some(ia.addresses())),
                    Ia::Pd(_) => (None, None),
                };
                na.into_iter().flatten().chain(ta.into_iter().flatten())
            })
            .map(|a: IaAddr<'_>| a.addr)
            .peekable();
        if addrs.peek().is_none() {
            return Err(DropReason::ConfirmWithoutAddresses);
        }
        let all_on_link = addrs.all(|a| link.cfg.subnet.contains(a));
        let s = if all_on_link {
            Status::Success
        } else {
            Status::NotOnLink
        };
        self.write(out, MessageType::Reply, |w| StatusCode::new(s).emit(w))
    }

    /// RFC 8415 §18.3.7: release every listed lease the client holds (every IA of the message,
    /// even when the reply has no room left to report on all of them); top-level Success; an
    /// IA with NoBinding for each IA holding something that was not the client's.
    fn release(&self, out: &mut [u8]) -> Result<ReplyMeta, DropReason> {
        let store = &self.server.store;
        self.write(out, MessageType::Reply, |w| {
            StatusCode::new(Status::Success).emit(w)?;
            let mut room = true;
            for ia in self.ias() {
                let ok = match ia {
                    Ia::Na(ia) => {
                        let key = self.key(ia.iaid, IaType::Na);
                        ia.addresses()
                            .fold(ia.addresses().next().is_some(), |ok, a| {
                                store
                                    .release(&key, Resource::address(a.addr), self.now)
                                    .is_ok()
                                    && ok
                            })
                    }
                    Ia::Ta(_) => false,
                    Ia::Pd(ia) => {
                        let key = self.key(ia.iaid, IaType::Pd);
                        ia.prefixes().fold(ia.prefixes().next().is_some(), |ok, p| {
                            store
                                .release(&key, Resource::prefix(p.prefix, p.prefix_len), self.now)
                                .is_ok()
                                && ok
                        })
                    }
                };
                if !ok && room {
                    room = emit_status_ia(w, ia.kind(), ia.iaid(), Status::NoBinding);
                }
            }
            Ok(())
        })
    }

    /// RFC 8415 §18.3.8: quarantine each declined address (every IA of the message, even when
    /// the reply has no room left to report on all of them); top-level Success; NoBinding for
    /// IAs that were not the client's. Only addresses can be declined (IA_PD is ignored).
    fn decline(&self, out: &mut [u8]) -> Result<ReplyMeta, DropReason> {
        let store = &self.server.store;
        let q = self.server.decline_quarantine_secs;
        self.write(out, MessageType::Reply, |w| {
            StatusCode::new(Status::Success).emit(w)?;
            let mut room = true;
            for ia in self.ias() {
                let Ia::Na(ia) = ia else { continue };
                let key = self.key(ia.iaid, IaType::Na);
                let ok = ia
                    .addresses()
                    .fold(ia.addresses().next().is_some(), |ok, a| {
                        store
                            .decline(&key, Resource::address(a.addr), self.now, q)
                            .is_ok()
                            && ok
                    });
                if !ok && room {
                    room = emit_status_ia(w, IaKind::Na, ia.iaid, Status::NoBinding);
                }
            }
            Ok(())
        })
    }

    /// RFC 8415 §18.3.6: configuration options only.
    fn information(&self, link: &LinkCtx, out: &mut [u8]) -> Result<ReplyMeta, DropReason> {
        self.write(out, MessageType::Reply, |w| self.oro_options(link, w))
    }
}

/// Write one IA with its grants and status; on a full buffer roll back to before it and
/// return false (the reply is then cut cleanly after the previous IA).
fn emit_ia_or_rollback(
    w: &mut OptionWriter<'_>,
    link: &LinkCtx,
    kind: IaKind,
    iaid: u32,
    res: &IaResult,
) -> bool {
    let min_pref = res
        .grants
        .iter()
        .filter(|g| g.lifetimes.valid > 0)
        .map(|g| g.lifetimes.preferred)
        .min();
    emit_ia(w, kind, iaid, link.timers(min_pref), res)
}

fn emit_ia(
    w: &mut OptionWriter<'_>,
    kind: IaKind,
    iaid: u32,
    (t1, t2): (u32, u32),
    res: &IaResult,
) -> bool {
    let mark = w.position();
    let r = (|| {
        let n = w.begin(match kind {
            IaKind::Na => opt::IA_NA,
            IaKind::Ta => opt::IA_TA,
            IaKind::Pd => opt::IA_PD,
        })?;
        w.put_u32(iaid)?;
        if kind != IaKind::Ta {
            w.put_u32(t1)?;
            w.put_u32(t2)?;
        }
        for g in &res.grants {
            let Lifetimes { preferred, valid } = g.lifetimes;
            match kind {
                IaKind::Pd => IaPrefix {
                    preferred,
                    valid,
                    prefix_len: g.resource.len,
                    prefix: g.resource.addr,
                    options: &[],
                }
                .emit(w)?,
                IaKind::Na | IaKind::Ta => IaAddr {
                    addr: g.resource.addr,
                    preferred,
                    valid,
                    options: &[],
                }
                .emit(w)?,
            }
        }
        if let Some(s) = res.status {
            StatusCode::new(s).emit(w)?;
        }
        w.end(n)
    })();
    if r.is_err() {
        w.rollback(mark);
    }
    r.is_ok()
}

fn emit_status_ia(w: &mut OptionWriter<'_>, kind: IaKind, iaid: u32, s: Status) -> bool {
    emit_ia(w, kind, iaid, (0, 0), &IaResult::status(s))
}
