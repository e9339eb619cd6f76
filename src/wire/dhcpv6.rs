//! DHCPv6 messages and options (RFC 8415 §8, §9, §21), zero-copy.
//!
//! Three layers, as in smoltcp:
//! - [`Packet`] and [`RelayPacket`]: checked views over a byte buffer. `new_checked` verifies the
//!   buffer is long enough for the fixed header, after which no accessor can panic.
//! - [`Options`] / [`OptionWriter`]: an iterator over the option area that never reads past the
//!   buffer, and a writer into a caller's `&mut [u8]` that returns `Err` instead of overflowing.
//! - Typed option views (`IaNa`, `IaAddr`, `StatusCode`, …) and the validated message
//!   representations [`Repr`] (client/server messages) and [`RelayRepr`] (relay messages), which
//!   borrow the buffer and hold at most fixed numbers of items (no heap).
//!
//! Everything here is about bytes; policy (which messages a server accepts, §16) lives in
//! `proto`. The one policy-like check done here is structural: an option shorter than its fixed
//! fields, or a DUID outside 3..=130 bytes (§11.1), makes the message malformed.

use core::fmt;
use std::net::Ipv6Addr;

use heapless::Vec;

/// Errors found while parsing or emitting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer ends inside a fixed header or inside an option.
    #[error("truncated")]
    Truncated,
    /// An option is shorter than its fixed fields, or its length is not a valid multiple.
    #[error("option {0} has a bad length")]
    BadOptionLength(u16),
    /// A Client Identifier is empty or longer than 130 bytes (RFC 8415 §11.1).
    #[error("bad client DUID")]
    BadClientId,
    /// A Server Identifier is empty or longer than 130 bytes (RFC 8415 §11.1).
    #[error("bad server DUID")]
    BadServerId,
    /// More than one Client Identifier (RFC 8415 §16).
    #[error("duplicate client identifier")]
    DuplicateClientId,
    /// More than one Server Identifier (RFC 8415 §16).
    #[error("duplicate server identifier")]
    DuplicateServerId,
    /// More than one Relay Message option in a relay message (RFC 8415 §9).
    #[error("duplicate relay message")]
    DuplicateRelayMessage,
    /// The message type is not one this codec knows, or the wrong view was used for it.
    #[error("unknown message type {0}")]
    UnknownMessageType(u8),
    /// A DNS name is malformed (label too long, compression pointer, over 255 bytes…).
    #[error("bad domain name")]
    BadName,
    /// The output buffer is too small.
    #[error("buffer too small")]
    BufferTooSmall,
}

/// Message types (RFC 8415 §7.3). Types a server never receives are kept so that it can name
/// them when it drops them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    Solicit = 1,
    Advertise = 2,
    Request = 3,
    Confirm = 4,
    Renew = 5,
    Rebind = 6,
    Reply = 7,
    Release = 8,
    Decline = 9,
    Reconfigure = 10,
    InformationRequest = 11,
    RelayForw = 12,
    RelayRepl = 13,
}

impl MessageType {
    pub const ALL: [MessageType; 13] = [
        MessageType::Solicit,
        MessageType::Advertise,
        MessageType::Request,
        MessageType::Confirm,
        MessageType::Renew,
        MessageType::Rebind,
        MessageType::Reply,
        MessageType::Release,
        MessageType::Decline,
        MessageType::Reconfigure,
        MessageType::InformationRequest,
        MessageType::RelayForw,
        MessageType::RelayRepl,
    ];

    pub const fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => MessageType::Solicit,
            2 => MessageType::Advertise,
            3 => MessageType::Request,
            4 => MessageType::Confirm,
            5 => MessageType::Renew,
            6 => MessageType::Rebind,
            7 => MessageType::Reply,
            8 => MessageType::Release,
            9 => MessageType::Decline,
            10 => MessageType::Reconfigure,
            11 => MessageType::InformationRequest,
            12 => MessageType::RelayForw,
            13 => MessageType::RelayRepl,
            _ => return None,
        })
    }

    /// Relay messages have the 34-byte relay header (RFC 8415 §9).
    pub const fn is_relay(self) -> bool {
        matches!(self, MessageType::RelayForw | MessageType::RelayRepl)
    }
}

/// Option codes (RFC 8415 §21 and the RFCs named).
pub mod opt {
    pub const CLIENTID: u16 = 1;
    pub const SERVERID: u16 = 2;
    pub const IA_NA: u16 = 3;
    pub const IA_TA: u16 = 4;
    pub const IAADDR: u16 = 5;
    pub const ORO: u16 = 6;
    pub const PREFERENCE: u16 = 7;
    pub const ELAPSED_TIME: u16 = 8;
    pub const RELAY_MSG: u16 = 9;
    pub const AUTH: u16 = 11;
    pub const UNICAST: u16 = 12;
    pub const STATUS_CODE: u16 = 13;
    pub const RAPID_COMMIT: u16 = 14;
    pub const USER_CLASS: u16 = 15;
    pub const VENDOR_CLASS: u16 = 16;
    pub const VENDOR_OPTS: u16 = 17;
    pub const INTERFACE_ID: u16 = 18;
    pub const RECONF_MSG: u16 = 19;
    pub const RECONF_ACCEPT: u16 = 20;
    /// RFC 3646.
    pub const DNS_SERVERS: u16 = 23;
    /// RFC 3646.
    pub const DOMAIN_LIST: u16 = 24;
    pub const IA_PD: u16 = 25;
    pub const IAPREFIX: u16 = 26;
    pub const INFORMATION_REFRESH_TIME: u16 = 32;
    /// RFC 4649.
    pub const REMOTE_ID: u16 = 37;
    /// RFC 4580.
    pub const SUBSCRIBER_ID: u16 = 38;
    /// RFC 6939.
    pub const CLIENT_LINKLAYER_ADDR: u16 = 79;
    pub const SOL_MAX_RT: u16 = 82;
    pub const INF_MAX_RT: u16 = 83;
}

/// Status codes (RFC 8415 §21.13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Status {
    Success = 0,
    UnspecFail = 1,
    NoAddrsAvail = 2,
    NoBinding = 3,
    NotOnLink = 4,
    UseMulticast = 5,
    NoPrefixAvail = 6,
}

impl Status {
    pub const fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            0 => Status::Success,
            1 => Status::UnspecFail,
            2 => Status::NoAddrsAvail,
            3 => Status::NoBinding,
            4 => Status::NotOnLink,
            5 => Status::UseMulticast,
            6 => Status::NoPrefixAvail,
            _ => return None,
        })
    }

    /// A short human-readable message for the status-message field.
    pub const fn message(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::UnspecFail => "unspecified failure",
            Status::NoAddrsAvail => "no addresses available",
            Status::NoBinding => "no binding",
            Status::NotOnLink => "not on link",
            Status::UseMulticast => "use multicast",
            Status::NoPrefixAvail => "no prefixes available",
        }
    }
}

/// The "infinity" lifetime (RFC 8415 §7.7).
pub const INFINITY: u32 = 0xffff_ffff;
/// Longest DUID: 2-byte type + 128 bytes (RFC 8415 §11.1).
pub const DUID_MAX_LEN: usize = 130;
/// Shortest DUID: 2-byte type + 1 byte (RFC 8415 §11.1).
pub const DUID_MIN_LEN: usize = 3;
/// Most IAs of each kind (IA_NA, IA_TA, IA_PD) a [`Repr`] holds; more set `ias_truncated`.
pub const MAX_IAS: usize = 16;
/// Client port and server/relay port (RFC 8415 §7.2).
pub const CLIENT_PORT: u16 = 546;
pub const SERVER_PORT: u16 = 547;
/// All_DHCP_Relay_Agents_and_Servers (ff02::1:2) and All_DHCP_Servers (ff05::1:3), §7.1.
pub const ALL_DHCP_RELAY_AGENTS_AND_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
pub const ALL_DHCP_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff05, 0, 0, 0, 0, 0, 1, 3);

mod field {
    use core::ops::{Range, RangeFrom};

    pub const MSG_TYPE: usize = 0;
    // Client/server messages (RFC 8415 §8).
    pub const TRANSACTION_ID: Range<usize> = 1..4;
    pub const OPTIONS: RangeFrom<usize> = 4..;
    pub const HEADER_LEN: usize = 4;
    // Relay messages (RFC 8415 §9).
    pub const HOP_COUNT: usize = 1;
    pub const LINK_ADDRESS: Range<usize> = 2..18;
    pub const PEER_ADDRESS: Range<usize> = 18..34;
    pub const RELAY_OPTIONS: RangeFrom<usize> = 34..;
    pub const RELAY_HEADER_LEN: usize = 34;
    // Option header.
    pub const OPTION_HEADER_LEN: usize = 4;
}

/// Header length of a client/server message.
pub const HEADER_LEN: usize = field::HEADER_LEN;
/// Header length of a relay message.
pub const RELAY_HEADER_LEN: usize = field::RELAY_HEADER_LEN;
/// Option header length (code + length).
pub const OPTION_HEADER_LEN: usize = field::OPTION_HEADER_LEN;

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}
fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
fn addr(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    Ipv6Addr::from(a)
}

/// The message type byte of any DHCPv6 message, if there is one.
pub fn peek_msg_type(buf: &[u8]) -> Option<u8> {
    buf.first().copied()
}

/// A checked view over a client/server message (RFC 8415 §8).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap `buffer` after checking it holds the 4-byte header.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if buffer.as_ref().len() < field::HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::MSG_TYPE]
    }

    /// The 24-bit transaction ID.
    pub fn transaction_id(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::TRANSACTION_ID];
        u32::from_be_bytes([0, b[0], b[1], b[2]])
    }

    /// The option area.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_msg_type(&mut self, t: u8) {
        self.buffer.as_mut()[field::MSG_TYPE] = t;
    }

    /// Set the transaction ID; only the low 24 bits are kept.
    pub fn set_transaction_id(&mut self, xid: u32) {
        let b = xid.to_be_bytes();
        self.buffer.as_mut()[field::TRANSACTION_ID].copy_from_slice(&b[1..]);
    }

    pub fn options_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::OPTIONS]
    }
}

/// A checked view over a relay message (RFC 8415 §9).
#[derive(Debug, Clone)]
pub struct RelayPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> RelayPacket<T> {
    /// Wrap `buffer` after checking it holds the 34-byte relay header.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if buffer.as_ref().len() < field::RELAY_HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(RelayPacket { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::MSG_TYPE]
    }

    pub fn hop_count(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_COUNT]
    }

    pub fn link_address(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::LINK_ADDRESS])
    }

    pub fn peer_address(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::PEER_ADDRESS])
    }

    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::RELAY_OPTIONS]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> RelayPacket<T> {
    pub fn set_msg_type(&mut self, t: u8) {
        self.buffer.as_mut()[field::MSG_TYPE] = t;
    }
    pub fn set_hop_count(&mut self, h: u8) {
        self.buffer.as_mut()[field::HOP_COUNT] = h;
    }
    pub fn set_link_address(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::LINK_ADDRESS].copy_from_slice(&a.octets());
    }
    pub fn set_peer_address(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::PEER_ADDRESS].copy_from_slice(&a.octets());
    }
}

/// Iterator over the options in an option area: yields `(code, data)` or one `Err` and then
/// stops. It never reads past the slice it was given.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    buf: &'a [u8],
}

impl<'a> Options<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Options { buf }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<(u16, &'a [u8]), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let item = match self.buf {
            [c0, c1, l0, l1, rest @ ..] => {
                let len = usize::from(u16::from_be_bytes([*l0, *l1]));
                match rest.get(..len) {
                    Some(data) => {
                        let code = u16::from_be_bytes([*c0, *c1]);
                        self.buf = &rest[len..];
                        return Some(Ok((code, data)));
                    }
                    None => Err(Error::Truncated),
                }
            }
            _ => Err(Error::Truncated),
        };
        // Stop after the first error: what follows a bad length cannot be trusted.
        self.buf = &[];
        Some(item)
    }
}

/// The position of a nested option started with [`OptionWriter::begin`]; hand it back to
/// [`OptionWriter::end`] to patch the length.
#[must_use = "a nested option must be closed with OptionWriter::end"]
#[derive(Debug)]
pub struct Nested {
    start: usize,
}

/// Writes options (and raw header bytes) into a caller's buffer. Every `put_*` either writes
/// all of its bytes or nothing and returns `Err(BufferTooSmall)`, so a caller can try to add an
/// item and, on failure, [`rollback`](Self::rollback) to a checkpoint and stop cleanly.
#[derive(Debug)]
pub struct OptionWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
    /// Writes stop here; at most `buf.len()`. Lowered to keep room for something written later.
    end: usize,
}

impl<'a> OptionWriter<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        let end = buf.len();
        OptionWriter { buf, pos: 0, end }
    }

    /// How far writes may go.
    pub fn capacity(&self) -> usize {
        self.end
    }

    /// Limit writes to the first `cap` bytes of the buffer (clamped to its length), e.g. to keep
    /// room at the end for an option that must be written after a variable-length part.
    pub fn set_capacity(&mut self, cap: usize) {
        self.end = cap.min(self.buf.len());
    }

    /// Bytes written so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }

    /// Forget everything written after `pos` (a value previously returned by `position`).
    pub fn rollback(&mut self, pos: usize) {
        debug_assert!(pos <= self.pos);
        self.pos = pos.min(self.pos);
    }

    /// The bytes written so far.
    pub fn written(&self) -> &[u8] {
        &self.buf[..self.pos]
    }

    fn reserve(&mut self, n: usize) -> Result<&mut [u8], Error> {
        let end = self.pos.checked_add(n).ok_or(Error::BufferTooSmall)?;
        if end > self.end {
            return Err(Error::BufferTooSmall);
        }
        let out = self
            .buf
            .get_mut(self.pos..end)
            .ok_or(Error::BufferTooSmall)?;
        self.pos = end;
        Ok(out)
    }

    pub fn put_raw(&mut self, data: &[u8]) -> Result<(), Error> {
        self.reserve(data.len())?.copy_from_slice(data);
        Ok(())
    }
    pub fn put_u8(&mut self, v: u8) -> Result<(), Error> {
        self.put_raw(&[v])
    }
    pub fn put_u16(&mut self, v: u16) -> Result<(), Error> {
        self.put_raw(&v.to_be_bytes())
    }
    pub fn put_u32(&mut self, v: u32) -> Result<(), Error> {
        self.put_raw(&v.to_be_bytes())
    }
    pub fn put_addr(&mut self, a: &Ipv6Addr) -> Result<(), Error> {
        self.put_raw(&a.octets())
    }

    /// Write option `code` with `data` as its payload.
    pub fn put(&mut self, code: u16, data: &[u8]) -> Result<(), Error> {
        let len = u16::try_from(data.len()).map_err(|_| Error::BufferTooSmall)?;
        let out = self.reserve(field::OPTION_HEADER_LEN + data.len())?;
        out[0..2].copy_from_slice(&code.to_be_bytes());
        out[2..4].copy_from_slice(&len.to_be_bytes());
        out[4..].copy_from_slice(data);
        Ok(())
    }
    pub fn put_empty(&mut self, code: u16) -> Result<(), Error> {
        self.put(code, &[])
    }
    pub fn put_u8_opt(&mut self, code: u16, v: u8) -> Result<(), Error> {
        self.put(code, &[v])
    }
    pub fn put_u16_opt(&mut self, code: u16, v: u16) -> Result<(), Error> {
        self.put(code, &v.to_be_bytes())
    }
    pub fn put_u32_opt(&mut self, code: u16, v: u32) -> Result<(), Error> {
        self.put(code, &v.to_be_bytes())
    }

    /// Start option `code` whose payload is written next; close it with [`end`](Self::end).
    pub fn begin(&mut self, code: u16) -> Result<Nested, Error> {
        let start = self.pos;
        let out = self.reserve(field::OPTION_HEADER_LEN)?;
        out[0..2].copy_from_slice(&code.to_be_bytes());
        out[2..4].copy_from_slice(&[0, 0]);
        Ok(Nested { start })
    }

    /// Patch the length of a nested option. Fails if the payload exceeds 65535 bytes (or the
    /// writer was rolled back before the option began, a caller bug).
    pub fn end(&mut self, n: Nested) -> Result<(), Error> {
        let body = self
            .pos
            .checked_sub(n.start + field::OPTION_HEADER_LEN)
            .ok_or(Error::BufferTooSmall)?;
        let len = u16::try_from(body).map_err(|_| Error::BufferTooSmall)?;
        self.buf[n.start + 2..n.start + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Typed option views.
// ---------------------------------------------------------------------------------------------

fn check_min(code: u16, data: &[u8], min: usize) -> Result<(), Error> {
    if data.len() < min {
        Err(Error::BadOptionLength(code))
    } else {
        Ok(())
    }
}

/// A DUID as carried in Client ID / Server ID (RFC 8415 §11): an opaque byte string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Duid<'a>(pub &'a [u8]);

impl<'a> Duid<'a> {
    /// Accepts 3..=130 bytes (RFC 8415 §11.1: type code plus 1..=128 bytes).
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        (DUID_MIN_LEN..=DUID_MAX_LEN)
            .contains(&data.len())
            .then_some(Duid(data))
    }
    pub fn bytes(&self) -> &'a [u8] {
        self.0
    }
    /// The DUID type (RFC 8415 §11.1).
    pub fn duid_type(&self) -> u16 {
        be16(self.0)
    }
}

/// Walk a nested option area, checking every option is complete and that the sub-options this
/// codec knows are not shorter than their fixed fields.
fn validate_sub_options(data: &[u8]) -> Result<(), Error> {
    for o in Options::new(data) {
        let (code, body) = o?;
        match code {
            opt::IAADDR => {
                IaAddr::parse(body)?;
            }
            opt::IAPREFIX => {
                IaPrefix::parse(body)?;
            }
            opt::STATUS_CODE => {
                StatusCode::parse(body)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// IA_NA (RFC 8415 §21.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IaNa<'a> {
    pub iaid: u32,
    pub t1: u32,
    pub t2: u32,
    /// Encapsulated options (IAADDR, Status Code, …).
    pub options: &'a [u8],
}

impl<'a> IaNa<'a> {
    pub const FIXED_LEN: usize = 12;

    pub fn parse(data: &'a [u8]) -> Result<Self, Error> {
        check_min(opt::IA_NA, data, Self::FIXED_LEN)?;
        let options = &data[12..];
        validate_sub_options(options)?;
        Ok(IaNa {
            iaid: be32(data),
            t1: be32(&data[4..]),
            t2: be32(&data[8..]),
            options,
        })
    }

    /// The IAADDR options inside (already validated by `parse`).
    pub fn addresses(&self) -> impl Iterator<Item = IaAddr<'a>> + 'a {
        sub_options(self.options, opt::IAADDR).filter_map(|d| IaAddr::parse(d).ok())
    }

    pub fn status(&self) -> Option<StatusCode<'a>> {
        sub_options(self.options, opt::STATUS_CODE).find_map(|d| StatusCode::parse(d).ok())
    }

    pub fn emit(&self, w: &mut OptionWriter<'_>) -> Result<(), Error> {
        let n = w.begin(opt::IA_NA)?;
        w.put_u32(self.iaid)?;
        w.put_u32(self.t1)?;
        w.put_u32(self.t2)?;
        w.put_raw(self.options)?;
        w.end(n)
    }
}

/// IA_TA (RFC 8415 §21.5). Parsed so that it can be declined (this server has no temporary
/// addresses; RFC 9915 deprecates IA_TA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IaTa<'a> {
    pub iaid: u32,
    pub options: &'a [u8],
}

impl<'a> IaTa<'a> {
    pub const FIXED_LEN: usize = 4;

    pub fn parse(data: &'a [u8]) -> Result<Self, Error> {
        check_min(opt::IA_TA, data, Self::FIXED_LEN)?;
        let options = &data[4..];
        validate_sub_options(options)?;
        Ok(IaTa {
            iaid: be32(data),
            options,
        })
    }

    pub fn addresses(&self) -> impl Iterator<Item = IaAddr<'a>> + 'a {
        sub_options(self.options, opt::IAADDR).filter_map(|d| IaAddr::parse(d).ok())
    }

    pub fn emit(&self, w: &mut OptionWriter<'_>) -> Result<(), Error> {
        let n = w.begin(opt::IA_TA)?;
        w.put_u32(self.iaid)?;
        w.put_raw(self.options)?;
        w.end(n)
    }
}

/// IA_PD (RFC 8415 §21.21).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IaPd<'a> {
    pub iaid: u32,
    pub t1: u32,
    pub t2: u32,
    pub options: &'a [u8],
}

impl<'a> IaPd<'a> {
    pub const FIXED_LEN: usize = 12;

    pub fn parse(data: &'a [u8]) -> Result<Self, Error> {
        check_min(opt::IA_PD, data, Self::FIXED_LEN)?;
        let options = &data[12..];
        validate_sub_options(options)?;
        Ok(IaPd {
            iaid: be32(data),
            t1: be32(&data[4..]),
            t2: be32(&data[8..]),
            options,
        })
    }

    pub fn prefixes(&self) -> impl Iterator<Item = IaPrefix<'a>> + 'a {
        sub_options(self.options, opt::IAPREFIX).filter_map(|d| IaPrefix::parse(d).ok())
    }

    pub fn status(&self) -> Option<StatusCode<'a>> {
        sub_options(self.options, opt::STATUS_CODE).find_map(|d| StatusCode::parse(d).ok())
    }

    pub fn emit(&self, w: &mut OptionWriter<'_>) -> Result<(), Error> {
        let n = w.begin(opt::IA_PD)?;
        w.put_u32(self.iaid)?;
        w.put_u32(self.t1)?;
        w.put_u32(self.t2)?;
        w.put_raw(self.options)?;
        w.end(n)
    }
}

/// The payloads of every option `code` in an option area, stopping at the first malformed one.
pub fn sub_options(area: &[u8], code: u16) -> impl Iterator<Item = &[u8]> + '_ {
    Options::new(area)
        .map_while(Result::ok)
        .filter(move |(c, _)| *c == code)
        .map(|(_, d)| d)
}

/// IAADDR (RFC 8415 §21.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IaAddr<'a> {
    pub addr: Ipv6Addr,
    pub preferred: u32,
    pub valid: u32,
    pub options: &'a [u8],
}

impl<'a> IaAddr<'a> {
    pub const FIXED_LEN: usize = 24;

    pub fn parse(data: &'a [u8]) -> Result<Self, Error> {
        check_min(opt::IAADDR, data, Self::FIXED_LEN)?;
        let options = &data[24..];
        // Only completeness matters here: an IAADDR may carry a Status Code.
        for o in Options::new(options) {
            let (code, body) = o?;
            if code == opt::STATUS_CODE {
                StatusCode::parse(body)?;
            }
        }
        Ok(IaAddr {
            addr: addr(data),
            preferred: be32(&data[16..]),
            valid: be32(&data[20..]),
            options,
        })
    }

    pub fn emit(&self, w: &mut OptionWriter<'_>) -> Result<(), Error> {
        let n = w.begin(opt::IAADDR)?;
        w.put_addr(&self.addr)?;
        w.put_u32(self.preferred)?;
        w.put_u32(self.valid)?;
        w.put_raw(self.options)?;
        w.end(n)
    }
}

/// IAPREFIX (RFC 8415 §21.22).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IaPrefix<'a> {
    pub preferred: u32,
    pub valid: u32,
    pub prefix_len: u8,
    pub prefix: Ipv6Addr,
    pub options: &'a [u8],
}

impl<'a> IaPrefix<'a> {
    pub const FIXED_LEN: usize = 25;

    pub fn parse(data: &'a [u8]) -> Result<Self, Error> {
        check_min(opt::IAPREFIX, data, Self::FIXED_LEN)?;
        let options = &data[25..];
        for o in Options::new(options) {
            let (code, body) = o?;
            if code == opt::STATUS_CODE {
                StatusCode::parse(body)?;
            }
        }
        Ok(IaPrefix {
            preferred: be32(data),
            valid: be32(&data[4..]),
            prefix_len: data[8],
            prefix: addr(&data[9..]),
            options,
        })
    }

    pub fn emit(&self, w: &mut OptionWriter<'_>) -> Result<(), Error> {
        let n = w.begin(opt::IAPREFIX)?;
        w.put_u32(self.preferred)?;
        w.put_u32(self.valid)?;
        w.put_u8(self.prefix_len)?;
        w.put_addr(&self.prefix)?;
        w.put_raw(self.options)?;
        w.end(n)
    }
}

/// Status Code (RFC 8415 §21.13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusCode<'a> {
    pub code: u16,
    /// UTF-8 text for humans; not interpreted.
    pub message: &'a [u8],
}

impl<'a> StatusCode<'a> {
    pub const FIXED_LEN: usize = 2;

    pub fn parse(data: &'a [u8]) -> Result<Self, Error> {
        check_min(opt::STATUS_CODE, data, Self::FIXED_LEN)?;
        Ok(StatusCode {
            code: be16(data),
            message: &data[2..],
        })
    }

    pub fn new(s: Status) -> StatusCode<'static> {
        StatusCode {
            code: s as u16,
            message: s.message().as_bytes(),
        }
    }

    pub fn status(&self) -> Option<Status> {
        Status::from_u16(self.code)
    }

    pub fn emit(&self, w: &mut OptionWriter<'_>) -> Result<(), Error> {
        let n = w.begin(opt::STATUS_CODE)?;
        w.put_u16(self.code)?;
        w.put_raw(self.message)?;
        w.end(n)
    }
}

/// Option Request Option (RFC 8415 §21.7): a list of option codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oro<'a>(pub &'a [u8]);

impl<'a> Oro<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Self, Error> {
        if data.len() % 2 != 0 {
            return Err(Error::BadOptionLength(opt::ORO));
        }
        Ok(Oro(data))
    }
    pub fn codes(&self) -> impl Iterator<Item = u16> + 'a {
        self.0.chunks_exact(2).map(be16)
    }
    pub fn contains(&self, code: u16) -> bool {
        self.codes().any(|c| c == code)
    }
}

/// OPTION_DNS_SERVERS (RFC 3646 §3): a list of IPv6 addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsServers<'a>(pub &'a [u8]);

impl<'a> DnsServers<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Self, Error> {
        if data.len() % 16 != 0 {
            return Err(Error::BadOptionLength(opt::DNS_SERVERS));
        }
        Ok(DnsServers(data))
    }
    pub fn addrs(&self) -> impl Iterator<Item = Ipv6Addr> + 'a {
        self.0.chunks_exact(16).map(addr)
    }
    /// Emit the option from a list of addresses.
    pub fn emit_list(list: &[Ipv6Addr], w: &mut OptionWriter<'_>) -> Result<(), Error> {
        let n = w.begin(opt::DNS_SERVERS)?;
        for a in list {
            w.put_addr(a)?;
        }
        w.end(n)
    }
}

/// Longest encoded DNS name (RFC 1035 §2.3.4).
pub const DNS_NAME_MAX_LEN: usize = 255;

/// One uncompressed DNS name in wire form, terminating zero included (RFC 8415 §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainName<'a>(&'a [u8]);

impl<'a> DomainName<'a> {
    /// The wire bytes, including the terminating root label.
    pub fn wire(&self) -> &'a [u8] {
        self.0
    }
    /// The labels, root excluded.
    pub fn labels(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut rest = self.0;
        core::iter::from_fn(move || {
            let (&len, tail) = rest.split_first()?;
            let len = usize::from(len);
            if len == 0 || tail.len() < len {
                return None;
            }
            let (label, after) = tail.split_at(len);
            rest = after;
            Some(label)
        })
    }
}

impl fmt::Display for DomainName<'_> {
    /// Dotted form without the trailing dot; bytes outside printable ASCII and dots inside
    /// labels are escaped as `\DDD` (RFC 4343 style) so the text cannot be misread.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for label in self.labels() {
            if !first {
                f.write_str(".")?;
            }
            first = false;
            for &b in label {
                if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                    fmt::Write::write_char(f, char::from(b))?;
                } else {
                    write!(f, "\\{b:03}")?;
                }
            }
        }
        if first {
            f.write_str(".")?;
        }
        Ok(())
    }
}

/// Split one name off the front of `buf`, validating it.
fn take_name(buf: &[u8]) -> Result<(DomainName<'_>, &[u8]), Error> {
    let mut i = 0usize;
    loop {
        let len = usize::from(*buf.get(i).ok_or(Error::BadName)?);
        if len == 0 {
            i += 1;
            break;
        }
        // 0xC0 and friends are compression pointers, which RFC 8415 §10 forbids.
        if len > 63 {
            return Err(Error::BadName);
        }
        i += 1 + len;
        if i >= buf.len() || i >= DNS_NAME_MAX_LEN {
            return Err(Error::BadName);
        }
    }
    Ok((DomainName(&buf[..i]), &buf[i..]))
}

/// Encode a dotted name (trailing dot optional) in uncompressed wire form (RFC 8415 §10).
pub fn encode_domain_name(name: &str, w: &mut OptionWriter<'_>) -> Result<(), Error> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mark = w.position();
    let mut total = 1usize;
    let result = (|| {
        if !name.is_empty() {
            for label in name.split('.') {
                let b = label.as_bytes();
                if b.is_empty() || b.len() > 63 {
                    return Err(Error::BadName);
                }
                total += 1 + b.len();
                if total > DNS_NAME_MAX_LEN {
                    return Err(Error::BadName);
                }
                w.put_u8(b.len() as u8)?;
                w.put_raw(b)?;
            }
        }
        w.put_u8(0)
    })();
    if result.is_err() {
        w.rollback(mark);
    }
    result
}

/// OPTION_DOMAIN_LIST (RFC 3646 §4): a sequence of uncompressed DNS names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainList<'a>(pub &'a [u8]);

impl<'a> DomainList<'a> {
    /// Validates every name.
    pub fn parse(data: &'a [u8]) -> Result<Self, Error> {
        let mut rest = data;
        while !rest.is_empty() {
            rest = take_name(rest)?.1;
        }
        Ok(DomainList(data))
    }

    pub fn names(&self) -> impl Iterator<Item = DomainName<'a>> + 'a {
        let mut rest = self.0;
        core::iter::from_fn(move || {
            let (n, after) = take_name(rest).ok()?;
            rest = after;
            Some(n)
        })
    }

    /// Emit the option from dotted names.
    pub fn emit_names<S: AsRef<str>>(names: &[S], w: &mut OptionWriter<'_>) -> Result<(), Error> {
        let mark = w.position();
        let result = (|| {
            let n = w.begin(opt::DOMAIN_LIST)?;
            for name in names {
                encode_domain_name(name.as_ref(), w)?;
            }
            w.end(n)
        })();
        if result.is_err() {
            w.rollback(mark);
        }
        result
    }
}

/// Parse a 4-byte scalar option (Information Refresh Time, SOL_MAX_RT, INF_MAX_RT).
pub fn parse_u32_option(code: u16, data: &[u8]) -> Result<u32, Error> {
    check_min(code, data, 4)?;
    Ok(be32(data))
}

/// Remote-ID (RFC 4649).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteId<'a> {
    pub enterprise: u32,
    pub id: &'a [u8],
}

impl<'a> RemoteId<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Self, Error> {
        check_min(opt::REMOTE_ID, data, 4)?;
        Ok(RemoteId {
            enterprise: be32(data),
            id: &data[4..],
        })
    }
    pub fn emit(&self, w: &mut OptionWriter<'_>) -> Result<(), Error> {
        let n = w.begin(opt::REMOTE_ID)?;
        w.put_u32(self.enterprise)?;
        w.put_raw(self.id)?;
        w.end(n)
    }
}

/// Client Link-Layer Address (RFC 6939).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLinkLayerAddr<'a> {
    pub hw_type: u16,
    pub addr: &'a [u8],
}

impl<'a> ClientLinkLayerAddr<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Self, Error> {
        check_min(opt::CLIENT_LINKLAYER_ADDR, data, 2)?;
        Ok(ClientLinkLayerAddr {
            hw_type: be16(data),
            addr: &data[2..],
        })
    }
    pub fn emit(&self, w: &mut OptionWriter<'_>) -> Result<(), Error> {
        let n = w.begin(opt::CLIENT_LINKLAYER_ADDR)?;
        w.put_u16(self.hw_type)?;
        w.put_raw(self.addr)?;
        w.end(n)
    }
}

/// Vendor Class (RFC 8415 §21.16): enterprise number and length-prefixed class data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VendorClass<'a> {
    pub enterprise: u32,
    pub data: &'a [u8],
}

impl<'a> VendorClass<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Self, Error> {
        check_min(opt::VENDOR_CLASS, data, 4)?;
        // Each vendor-class-data item is a 2-byte length and that many bytes.
        let mut rest = &data[4..];
        while !rest.is_empty() {
            let n = rest
                .get(..2)
                .map(be16)
                .ok_or(Error::BadOptionLength(opt::VENDOR_CLASS))?;
            rest = rest
                .get(2 + usize::from(n)..)
                .ok_or(Error::BadOptionLength(opt::VENDOR_CLASS))?;
        }
        Ok(VendorClass {
            enterprise: be32(data),
            data: &data[4..],
        })
    }
    /// The opaque class data items.
    pub fn classes(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut rest = self.data;
        core::iter::from_fn(move || {
            let n = usize::from(rest.get(..2).map(be16)?);
            let item = rest.get(2..2 + n)?;
            rest = &rest[2 + n..];
            Some(item)
        })
    }
    pub fn emit(&self, w: &mut OptionWriter<'_>) -> Result<(), Error> {
        let n = w.begin(opt::VENDOR_CLASS)?;
        w.put_u32(self.enterprise)?;
        w.put_raw(self.data)?;
        w.end(n)
    }
}

/// Vendor-specific Information (RFC 8415 §21.17): enterprise number and vendor options,
/// passed through uninterpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VendorOpts<'a> {
    pub enterprise: u32,
    pub options: &'a [u8],
}

impl<'a> VendorOpts<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Self, Error> {
        check_min(opt::VENDOR_OPTS, data, 4)?;
        Ok(VendorOpts {
            enterprise: be32(data),
            options: &data[4..],
        })
    }
    pub fn emit(&self, w: &mut OptionWriter<'_>) -> Result<(), Error> {
        let n = w.begin(opt::VENDOR_OPTS)?;
        w.put_u32(self.enterprise)?;
        w.put_raw(self.options)?;
        w.end(n)
    }
}

// ---------------------------------------------------------------------------------------------
// Message representations.
// ---------------------------------------------------------------------------------------------

/// A validated client/server message (RFC 8415 §8) borrowing its buffer.
///
/// `parse` rejects: a truncated header or option, an option shorter than its fixed fields
/// (also inside IAs), a Client/Server ID that is not 3..=130 bytes, and a second Client ID or
/// Server ID (RFC 8415 §16). Repeats of other singleton options keep the first. Unknown options
/// are skipped (§16: they are not a reason to discard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repr<'a> {
    pub msg_type: MessageType,
    /// 24-bit transaction ID.
    pub transaction_id: u32,
    pub client_id: Option<Duid<'a>>,
    pub server_id: Option<Duid<'a>>,
    pub ia_na: Vec<IaNa<'a>, MAX_IAS>,
    pub ia_ta: Vec<IaTa<'a>, MAX_IAS>,
    pub ia_pd: Vec<IaPd<'a>, MAX_IAS>,
    /// More IAs of some kind were present than `MAX_IAS`; the rest were not kept.
    pub ias_truncated: bool,
    pub oro: Option<Oro<'a>>,
    pub preference: Option<u8>,
    pub elapsed_time: Option<u16>,
    pub status: Option<StatusCode<'a>>,
    pub rapid_commit: bool,
    pub reconfigure_accept: bool,
    pub vendor_class: Option<VendorClass<'a>>,
    pub vendor_opts: Option<VendorOpts<'a>>,
    pub dns_servers: Option<DnsServers<'a>>,
    pub domain_list: Option<DomainList<'a>>,
    pub information_refresh_time: Option<u32>,
    pub sol_max_rt: Option<u32>,
    pub inf_max_rt: Option<u32>,
}

impl<'a> Repr<'a> {
    /// An empty message of `msg_type`.
    pub fn new(msg_type: MessageType, transaction_id: u32) -> Self {
        Repr {
            msg_type,
            transaction_id: transaction_id & 0x00ff_ffff,
            client_id: None,
            server_id: None,
            ia_na: Vec::new(),
            ia_ta: Vec::new(),
            ia_pd: Vec::new(),
            ias_truncated: false,
            oro: None,
            preference: None,
            elapsed_time: None,
            status: None,
            rapid_commit: false,
            reconfigure_accept: false,
            vendor_class: None,
            vendor_opts: None,
            dns_servers: None,
            domain_list: None,
            information_refresh_time: None,
            sol_max_rt: None,
            inf_max_rt: None,
        }
    }

    /// Parse a client/server message (not a relay message: see [`RelayRepr`]).
    pub fn parse(packet: &Packet<&'a [u8]>) -> Result<Self, Error> {
        let t = packet.msg_type();
        let msg_type = match MessageType::from_u8(t) {
            Some(m) if !m.is_relay() => m,
            _ => return Err(Error::UnknownMessageType(t)),
        };
        let mut r = Repr::new(msg_type, packet.transaction_id());
        // `packet` borrows a `&'a [u8]`; re-slice so the options live for 'a.
        let buf: &'a [u8] = packet.buffer;
        for o in Options::new(&buf[field::HEADER_LEN..]) {
            let (code, data) = o?;
            match code {
                opt::CLIENTID => {
                    if r.client_id.is_some() {
                        return Err(Error::DuplicateClientId);
                    }
                    r.client_id = Some(Duid::parse(data).ok_or(Error::BadClientId)?);
                }
                opt::SERVERID => {
                    if r.server_id.is_some() {
                        return Err(Error::DuplicateServerId);
                    }
                    r.server_id = Some(Duid::parse(data).ok_or(Error::BadServerId)?);
                }
                opt::IA_NA => {
                    let ia = IaNa::parse(data)?;
                    r.ias_truncated |= r.ia_na.push(ia).is_err();
                }
                opt::IA_TA => {
                    let ia = IaTa::parse(data)?;
                    r.ias_truncated |= r.ia_ta.push(ia).is_err();
                }
                opt::IA_PD => {
                    let ia = IaPd::parse(data)?;
                    r.ias_truncated |= r.ia_pd.push(ia).is_err();
                }
                opt::ORO => {
                    let v = Oro::parse(data)?;
                    r.oro.get_or_insert(v);
                }
                opt::PREFERENCE => {
                    check_min(code, data, 1)?;
                    r.preference.get_or_insert(data[0]);
                }
                opt::ELAPSED_TIME => {
                    check_min(code, data, 2)?;
                    r.elapsed_time.get_or_insert(be16(data));
                }
                opt::STATUS_CODE => {
                    let v = StatusCode::parse(data)?;
                    r.status.get_or_insert(v);
                }
                opt::RAPID_COMMIT => r.rapid_commit = true,
                opt::RECONF_ACCEPT => r.reconfigure_accept = true,
                opt::VENDOR_CLASS => {
                    let v = VendorClass::parse(data)?;
                    r.vendor_class.get_or_insert(v);
                }
                opt::VENDOR_OPTS => {
                    let v = VendorOpts::parse(data)?;
                    r.vendor_opts.get_or_insert(v);
                }
                opt::DNS_SERVERS => {
                    let v = DnsServers::parse(data)?;
                    r.dns_servers.get_or_insert(v);
                }
                opt::DOMAIN_LIST => {
                    let v = DomainList::parse(data)?;
                    r.domain_list.get_or_insert(v);
                }
                opt::INFORMATION_REFRESH_TIME => {
                    let v = parse_u32_option(code, data)?;
                    r.information_refresh_time.get_or_insert(v);
                }
                opt::SOL_MAX_RT => {
                    let v = parse_u32_option(code, data)?;
                    r.sol_max_rt.get_or_insert(v);
                }
                opt::INF_MAX_RT => {
                    let v = parse_u32_option(code, data)?;
                    r.inf_max_rt.get_or_insert(v);
                }
                _ => {}
            }
        }
        Ok(r)
    }

    /// Write the message into `buf`; returns the number of bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let mut w = OptionWriter::new(buf);
        self.emit_into(&mut w)?;
        Ok(w.position())
    }

    /// Write the message at the writer's position.
    pub fn emit_into(&self, w: &mut OptionWriter<'_>) -> Result<(), Error> {
        w.put_u8(self.msg_type as u8)?;
        w.put_raw(&self.transaction_id.to_be_bytes()[1..])?;
        if let Some(d) = self.client_id {
            w.put(opt::CLIENTID, d.0)?;
        }
        if let Some(d) = self.server_id {
            w.put(opt::SERVERID, d.0)?;
        }
        for ia in &self.ia_na {
            ia.emit(w)?;
        }
        for ia in &self.ia_ta {
            ia.emit(w)?;
        }
        for ia in &self.ia_pd {
            ia.emit(w)?;
        }
        if let Some(o) = self.oro {
            w.put(opt::ORO, o.0)?;
        }
        if let Some(p) = self.preference {
            w.put_u8_opt(opt::PREFERENCE, p)?;
        }
        if let Some(e) = self.elapsed_time {
            w.put_u16_opt(opt::ELAPSED_TIME, e)?;
        }
        if let Some(s) = self.status {
            s.emit(w)?;
        }
        if self.rapid_commit {
            w.put_empty(opt::RAPID_COMMIT)?;
        }
        if self.reconfigure_accept {
            w.put_empty(opt::RECONF_ACCEPT)?;
        }
        if let Some(v) = self.vendor_class {
            v.emit(w)?;
        }
        if let Some(v) = self.vendor_opts {
            v.emit(w)?;
        }
        if let Some(v) = self.dns_servers {
            w.put(opt::DNS_SERVERS, v.0)?;
        }
        if let Some(v) = self.domain_list {
            w.put(opt::DOMAIN_LIST, v.0)?;
        }
        if let Some(v) = self.information_refresh_time {
            w.put_u32_opt(opt::INFORMATION_REFRESH_TIME, v)?;
        }
        if let Some(v) = self.sol_max_rt {
            w.put_u32_opt(opt::SOL_MAX_RT, v)?;
        }
        if let Some(v) = self.inf_max_rt {
            w.put_u32_opt(opt::INF_MAX_RT, v)?;
        }
        Ok(())
    }

    /// Whether the message carries any IA option at all (kept or not).
    pub fn has_ias(&self) -> bool {
        !self.ia_na.is_empty() || !self.ia_ta.is_empty() || !self.ia_pd.is_empty()
    }
}

/// A validated relay message (RFC 8415 §9) borrowing its buffer.
///
/// `parse` rejects a truncated header or option, a second Relay Message option and options
/// shorter than their fixed fields. A missing Relay Message is not a parse error (a
/// Relay-reply being built has none yet); the server decides what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayRepr<'a> {
    pub msg_type: MessageType,
    pub hop_count: u8,
    pub link_address: Ipv6Addr,
    pub peer_address: Ipv6Addr,
    /// The encapsulated message (option 9).
    pub relay_message: Option<&'a [u8]>,
    pub interface_id: Option<&'a [u8]>,
    pub remote_id: Option<RemoteId<'a>>,
    pub subscriber_id: Option<&'a [u8]>,
    pub client_link_layer_addr: Option<ClientLinkLayerAddr<'a>>,
}

impl<'a> RelayRepr<'a> {
    pub fn parse(packet: &RelayPacket<&'a [u8]>) -> Result<Self, Error> {
        let t = packet.msg_type();
        let msg_type = match MessageType::from_u8(t) {
            Some(m) if m.is_relay() => m,
            _ => return Err(Error::UnknownMessageType(t)),
        };
        let buf: &'a [u8] = packet.buffer;
        let mut r = RelayRepr {
            msg_type,
            hop_count: packet.hop_count(),
            link_address: packet.link_address(),
            peer_address: packet.peer_address(),
            relay_message: None,
            interface_id: None,
            remote_id: None,
            subscriber_id: None,
            client_link_layer_addr: None,
        };
        for o in Options::new(&buf[field::RELAY_HEADER_LEN..]) {
            let (code, data) = o?;
            match code {
                opt::RELAY_MSG => {
                    if r.relay_message.is_some() {
                        return Err(Error::DuplicateRelayMessage);
                    }
                    r.relay_message = Some(data);
                }
                opt::INTERFACE_ID => {
                    r.interface_id.get_or_insert(data);
                }
                opt::REMOTE_ID => {
                    let v = RemoteId::parse(data)?;
                    r.remote_id.get_or_insert(v);
                }
                opt::SUBSCRIBER_ID => {
                    check_min(code, data, 1)?;
                    r.subscriber_id.get_or_insert(data);
                }
                opt::CLIENT_LINKLAYER_ADDR => {
                    let v = ClientLinkLayerAddr::parse(data)?;
                    r.client_link_layer_addr.get_or_insert(v);
                }
                _ => {}
            }
        }
        Ok(r)
    }

    /// Write the 34-byte relay header at the writer's position.
    pub fn emit_header(&self, w: &mut OptionWriter<'_>) -> Result<(), Error> {
        let mark = w.position();
        let r = (|| {
            w.put_u8(self.msg_type as u8)?;
            w.put_u8(self.hop_count)?;
            w.put_addr(&self.link_address)?;
            w.put_addr(&self.peer_address)
        })();
        if r.is_err() {
            w.rollback(mark);
        }
        r
    }

    /// Write the whole relay message.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let mut w = OptionWriter::new(buf);
        self.emit_header(&mut w)?;
        if let Some(i) = self.interface_id {
            w.put(opt::INTERFACE_ID, i)?;
        }
        if let Some(v) = self.remote_id {
            v.emit(&mut w)?;
        }
        if let Some(s) = self.subscriber_id {
            w.put(opt::SUBSCRIBER_ID, s)?;
        }
        if let Some(v) = self.client_link_layer_addr {
            v.emit(&mut w)?;
        }
        if let Some(m) = self.relay_message {
            w.put(opt::RELAY_MSG, m)?;
        }
        Ok(w.position())
    }
}

#[cfg(test)]
mod tests;
