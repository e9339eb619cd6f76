//! The fixed-size record: layout, encoding and decoding. Fields are read and written at fixed
//! offsets in little-endian order; bytes are never cast to a struct (see `docs/lease-table.md`).
//!
//! A slot holds one of: nothing (state byte 0), a *main* record (one binding or one quarantined
//! resource), or an *extension* record holding DUID bytes that did not fit inline.

use std::net::Ipv6Addr;

use super::hash::{fmix64, hash_bytes, hash_start, hash_step, le_bytes};
use crate::lease::{BindingState, IaType, Lifetimes, Resource};

pub const RECORD_SIZE: usize = 96;
/// DUIDs up to this length are stored inside the main record.
pub const DUID_INLINE_MAX: usize = 28;
/// With a longer DUID the inline area holds two extension slot numbers and the first bytes.
pub const DUID_INLINE_PREFIX: usize = 20;
/// DUID bytes per extension record.
pub const EXT_DATA: usize = 88;
/// RFC 8415 §11.1: a DUID is at most 128 bytes plus its 2-byte type.
pub const DUID_MAX: usize = 130;
const _: () = assert!(DUID_INLINE_PREFIX + 2 * EXT_DATA >= DUID_MAX);

/// Slot holds nothing.
pub const STATE_EMPTY: u8 = 0;
/// Slot holds DUID bytes of a long DUID.
pub const STATE_EXT: u8 = 0x10;

mod field {
    use std::ops::Range;
    pub const CHECKSUM: Range<usize> = 0..4;
    pub const STATE: usize = 4;
    pub const IA_TYPE: usize = 5;
    pub const PREFIX_LEN: usize = 6;
    pub const FLAGS: usize = 7;
    pub const DUID_LEN: usize = 8;
    pub const ALLOC_SERVER: usize = 9;
    // 10..12 zero
    pub const IAID: Range<usize> = 12..16;
    pub const POOL: Range<usize> = 16..20;
    pub const PREFERRED: Range<usize> = 20..24;
    pub const VALID: Range<usize> = 24..28;
    pub const ADDR: Range<usize> = 28..44;
    pub const CLTT: Range<usize> = 44..52;
    pub const PARTNER_EXPIRES: Range<usize> = 52..60;
    pub const SEQ: Range<usize> = 60..68;
    pub const DUID: Range<usize> = 68..96;
    // Extension record.
    pub const EXT_LEN: usize = 5;
    pub const EXT_DATA: Range<usize> = 8..96;
}
pub use field::STATE as STATE_OFFSET;

/// The bytes an in-place update of a record may change (the state byte apart): checksum,
/// flags, allocating server, lifetimes, cltt, partner lifetime, sequence number. Everything
/// else is the record's identity (binding key, pool, resource), which other shards may read
/// while the record is indexed, so it is never written in place.
pub const MUTABLE_RANGES: [std::ops::Range<usize>; 5] = [
    field::CHECKSUM,
    field::FLAGS..field::FLAGS + 1,
    field::ALLOC_SERVER..field::ALLOC_SERVER + 1,
    field::PREFERRED.start..field::VALID.end,
    field::CLTT.start..field::SEQ.end,
];

/// Offsets of the identity fields read across shards: prefix length, pool id, address.
pub const PREFIX_LEN_OFFSET: usize = field::PREFIX_LEN;
pub const POOL_OFFSET: usize = field::POOL.start;
pub const ADDR_OFFSET: usize = field::ADDR.start;

/// The state byte of a main record. The values are part of the file format.
pub fn state_code(s: BindingState) -> u8 {
    match s {
        BindingState::Active => 1,
        BindingState::Expired => 2,
        BindingState::Released => 3,
        BindingState::Free => 4,
        BindingState::FreeBackup => 5,
        BindingState::Abandoned => 6,
    }
}

pub fn state_from_code(v: u8) -> Option<BindingState> {
    Some(match v {
        1 => BindingState::Active,
        2 => BindingState::Expired,
        3 => BindingState::Released,
        4 => BindingState::Free,
        5 => BindingState::FreeBackup,
        6 => BindingState::Abandoned,
        _ => return None,
    })
}

/// When background reclaim next has work on a record in `state`: an active binding expires
/// and an abandoned one is deleted at its expiry, an expired one is deleted `hold` seconds after
/// it, a released one `hold` seconds after its last transaction; `None`: never (free states).
pub fn reclaim_deadline(state: BindingState, expires_at: u64, cltt: u64, hold: u64) -> Option<u64> {
    match state {
        BindingState::Active | BindingState::Abandoned => Some(expires_at),
        BindingState::Expired => Some(expires_at.saturating_add(hold)),
        BindingState::Released => Some(cltt.saturating_add(hold)),
        BindingState::Free | BindingState::FreeBackup => None,
    }
}

/// States in which a record is still its client's binding (found by its key).
pub trait StateExt {
    fn is_keyed(&self) -> bool;
}

impl StateExt for BindingState {
    fn is_keyed(&self) -> bool {
        matches!(
            self,
            BindingState::Active | BindingState::Expired | BindingState::Released
        )
    }
}

const FLAG_PARTNER_ACKED: u8 = 1;
const FLAG_DUID_EXT: u8 = 2;

/// A main record, decoded. `duid` holds the raw inline area: the DUID itself when
/// `duid_len <= DUID_INLINE_MAX`, else two extension slot numbers and the DUID's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub state: BindingState,
    pub ia_type: IaType,
    pub resource: Resource,
    pub pool_id: u32,
    pub iaid: u32,
    pub lifetimes: Lifetimes,
    /// Client last transaction time.
    pub cltt: u64,
    /// The expiry time the failover partner has acknowledged (RFC 8156 "partner lifetime").
    pub partner_expires: u64,
    /// Update sequence number: unique within one file, and larger than that of every update
    /// that completed before this one was made (numbers are drawn, or reserved in blocks by a
    /// batch, from one counter before the update is written).
    pub seq: u64,
    pub partner_acked: bool,
    /// Which server of the failover pair allocated the binding.
    pub alloc_server: u8,
    pub duid_len: u8,
    pub duid_inline: [u8; DUID_INLINE_MAX],
}

/// When a lease granted at `cltt` for `valid` seconds ends (`u64::MAX`: never, RFC 8415 §7.7).
pub fn expiry(cltt: u64, valid: u32) -> u64 {
    if valid == u32::MAX {
        u64::MAX
    } else {
        cltt.saturating_add(u64::from(valid))
    }
}

impl Record {
    pub fn expires_at(&self) -> u64 {
        expiry(self.cltt, self.lifetimes.valid)
    }

    pub fn has_ext(&self) -> bool {
        usize::from(self.duid_len) > DUID_INLINE_MAX
    }

    /// Extension slots (long DUIDs only): the second is `u32::MAX` when unused.
    pub fn ext_slots(&self) -> [u32; 2] {
        debug_assert!(self.has_ext());
        [
            rd_u32(&self.duid_inline[0..4]),
            rd_u32(&self.duid_inline[4..8]),
        ]
    }

    /// Build the inline DUID area for `duid` (whose extension slots, if any, are `ext`).
    #[cfg(test)]
    pub fn inline_duid(duid: &[u8], ext: [u32; 2]) -> [u8; DUID_INLINE_MAX] {
        let mut out = [0u8; DUID_INLINE_MAX];
        Self::fill_inline_duid(&mut out, duid, ext);
        out
    }

    /// [`Record::inline_duid`] into `out`. A short DUID is stored in the pieces
    /// [`Record::words`] reads back (4 bytes at 0, then 8 at 4, 12 and 20), each read from
    /// `duid` with one load where it can: no call to `memcpy`, and each of `words`' loads is
    /// served by the one store that wrote its bytes (a load spanning several stores waits for
    /// them to reach the cache).
    #[inline]
    pub fn fill_inline_duid(out: &mut [u8; DUID_INLINE_MAX], duid: &[u8], ext: [u32; 2]) {
        let len = duid.len();
        if len <= DUID_INLINE_MAX {
            let word = |at: usize| le_bytes(duid, at.min(len), (at + 8).min(len));
            out[0..4].copy_from_slice(&(word(0) as u32).to_le_bytes());
            out[4..12].copy_from_slice(&word(4).to_le_bytes());
            out[12..20].copy_from_slice(&word(12).to_le_bytes());
            out[20..28].copy_from_slice(&word(20).to_le_bytes());
        } else {
            out[0..4].copy_from_slice(&ext[0].to_le_bytes());
            out[4..8].copy_from_slice(&ext[1].to_le_bytes());
            out[8..8 + DUID_INLINE_PREFIX].copy_from_slice(&duid[..DUID_INLINE_PREFIX]);
        }
    }

    /// The DUID bytes held inline (all of it, or its prefix for a long DUID).
    pub fn inline_bytes(&self) -> &[u8] {
        if self.has_ext() {
            &self.duid_inline[8..8 + DUID_INLINE_PREFIX]
        } else {
            &self.duid_inline[..usize::from(self.duid_len)]
        }
    }

    #[cfg(test)]
    pub fn encode(&self) -> [u8; RECORD_SIZE] {
        from_words(&self.words())
    }

    /// The record encoded and sealed, as [`Words`]: built in registers, word by word (a new
    /// record is written to its slot from here; building the bytes and reading them back as
    /// words would make every read wait for the smaller stores it spans).
    #[inline]
    pub fn words(&self) -> Words {
        const LOW: u64 = 0xffff_ffff;
        let ia_type: u64 = match self.ia_type {
            IaType::Na => 0,
            IaType::Pd => 1,
        };
        let mut flags = 0u64;
        if self.partner_acked {
            flags |= u64::from(FLAG_PARTNER_ACKED);
        }
        if self.has_ext() {
            flags |= u64::from(FLAG_DUID_EXT);
        }
        // The address as the 16 bytes at ADDR (network order) read little-endian.
        let addr = u128::from_le_bytes(self.resource.addr.octets());
        let d = &self.duid_inline;
        let duid_word = |at: usize| rd_u64(&d[at..at + 8]);
        let duid_head = u64::from(rd_u32(&d[0..4]));
        let (cltt, partner, seq) = (self.cltt, self.partner_expires, self.seq);
        let mut w: Words = [
            // 0..4 checksum, 4 state, 5 ia type, 6 prefix length, 7 flags.
            u64::from(state_code(self.state)) << 32
                | ia_type << 40
                | u64::from(self.resource.len) << 48
                | flags << 56,
            // 8 duid length, 9 allocating server, 10..12 zero, 12..16 iaid.
            u64::from(self.duid_len)
                | u64::from(self.alloc_server) << 8
                | u64::from(self.iaid) << 32,
            // 16..20 pool, 20..24 preferred.
            u64::from(self.pool_id) | u64::from(self.lifetimes.preferred) << 32,
            // 24..28 valid, 28..32 address bytes 0..4.
            u64::from(self.lifetimes.valid) | (addr as u64) << 32,
            (addr >> 32) as u64,
            // 40..44 address bytes 12..16, 44..48 cltt low half.
            (addr >> 96) as u64 | (cltt & LOW) << 32,
            // 48..52 cltt high half, 52..56 partner lifetime low half.
            cltt >> 32 | (partner & LOW) << 32,
            // 56..60 partner lifetime high half, 60..64 sequence number low half.
            partner >> 32 | (seq & LOW) << 32,
            // 64..68 sequence number high half, 68..72 DUID bytes 0..4.
            seq >> 32 | duid_head << 32,
            duid_word(4),
            duid_word(12),
            duid_word(20),
        ];
        w[0] |= u64::from(checksum_words(&w));
        w
    }
}

/// A record as twelve little-endian 64-bit words, at record offsets 0, 8, …, 88. The renew
/// fast path works on words: read and written as whole words, nothing on it reloads a value
/// from a buffer it has just stored in pieces (a store the CPU cannot forward stalls the load).
pub const WORDS: usize = RECORD_SIZE / 8;
pub type Words = [u64; WORDS];

pub fn to_words(b: &[u8; RECORD_SIZE]) -> Words {
    std::array::from_fn(|i| rd_u64(&b[i * 8..i * 8 + 8]))
}

pub fn from_words(w: &Words) -> [u8; RECORD_SIZE] {
    let mut b = [0u8; RECORD_SIZE];
    for (c, w) in b.chunks_exact_mut(8).zip(w) {
        c.copy_from_slice(&w.to_le_bytes());
    }
    b
}

/// The `n` bytes (1 to 8) at record offset `at`, little-endian.
#[inline]
pub fn le_at(w: &Words, at: usize, n: usize) -> u64 {
    debug_assert!((1..=8).contains(&n) && at + n <= RECORD_SIZE);
    let (i, sh) = (at / 8, (at % 8) * 8);
    let mut v = w[i] >> sh;
    if sh != 0 && i + 1 < WORDS {
        v |= w[i + 1] << (64 - sh);
    }
    v & ones(n)
}

/// A mask of the low `n` bytes (`n` ≤ 8).
#[inline]
pub fn ones(n: usize) -> u64 {
    if n >= 8 {
        u64::MAX
    } else {
        (1u64 << (n * 8)) - 1
    }
}

/// The main record `w` renewed: new lifetimes, client last transaction time and sequence
/// number, not yet acknowledged by the partner, resealed. Word for word what `Record::encode`
/// gives for the decoded record with those fields changed, without decoding (the renew fast
/// path).
#[inline]
pub fn renewed(w: &Words, lifetimes: Lifetimes, cltt: u64, seq: u64) -> Words {
    const LOW: u64 = 0xffff_ffff;
    let mut n = *w;
    // FLAGS (byte 7) of word 0; PREFERRED (20..24) and VALID (24..28); CLTT (44..52) and SEQ
    // (60..68) each straddle two words.
    n[0] &= !(u64::from(FLAG_PARTNER_ACKED) << 56);
    n[2] = (n[2] & LOW) | u64::from(lifetimes.preferred) << 32;
    n[3] = (n[3] & !LOW) | u64::from(lifetimes.valid);
    n[5] = (n[5] & LOW) | cltt << 32;
    n[6] = (n[6] & !LOW) | cltt >> 32;
    n[7] = (n[7] & LOW) | seq << 32;
    n[8] = (n[8] & !LOW) | seq >> 32;
    n[0] = (n[0] & !LOW) | u64::from(checksum_words(&n));
    n
}

/// [`checksum`] of the record given as words, from registers: the same value.
#[inline]
pub fn checksum_words(w: &Words) -> u32 {
    // The checksum hashes bytes 4..96: eleven 8-byte chunks at 4, 12, …, 84, each the high half
    // of one word and the low half of the next, then the 4-byte tail (the high half of the
    // last word).
    let mut h = hash_start(CHECKSUM_SEED, RECORD_SIZE - 4);
    for i in 0..WORDS - 1 {
        h = hash_step(h, w[i] >> 32 | w[i + 1] << 32);
    }
    h = hash_step(h, w[WORDS - 1] >> 32);
    let h = fmix64(h);
    (h ^ (h >> 32)) as u32
}

/// An extension record: `len` DUID bytes.
pub fn encode_ext(data: &[u8]) -> [u8; RECORD_SIZE] {
    assert!(!data.is_empty() && data.len() <= EXT_DATA);
    let mut b = [0u8; RECORD_SIZE];
    b[field::STATE] = STATE_EXT;
    b[field::EXT_LEN] = data.len() as u8;
    b[field::EXT_DATA.start..field::EXT_DATA.start + data.len()].copy_from_slice(data);
    seal(&mut b);
    b
}

const CHECKSUM_SEED: u64 = 0x7864_6863_7036;

fn seal(b: &mut [u8; RECORD_SIZE]) {
    let c = checksum(b);
    b[field::CHECKSUM].copy_from_slice(&c.to_le_bytes());
}

/// Checksum of everything after the checksum field (the state byte included).
pub fn checksum(b: &[u8; RECORD_SIZE]) -> u32 {
    let h = hash_bytes(CHECKSUM_SEED, &b[4..]);
    (h ^ (h >> 32)) as u32
}

/// What a slot holds, decoded and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Empty,
    Main(Record),
    Ext { len: u8, data: [u8; EXT_DATA] },
}

/// Why a non-empty slot was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corrupt {
    Checksum,
    Field(&'static str),
}

pub fn decode(b: &[u8; RECORD_SIZE]) -> Result<Slot, Corrupt> {
    decode_inner(b, true)
}

/// As [`decode`] without verifying the checksum: for records that were verified at open or
/// written by this process and are immutable while indexed (the hot path reads them often).
pub fn decode_trusted(b: &[u8; RECORD_SIZE]) -> Result<Slot, Corrupt> {
    decode_inner(b, false)
}

fn decode_inner(b: &[u8; RECORD_SIZE], verify: bool) -> Result<Slot, Corrupt> {
    let state = b[field::STATE];
    if state == STATE_EMPTY {
        return Ok(Slot::Empty);
    }
    if verify && rd_u32(&b[field::CHECKSUM]) != checksum(b) {
        return Err(Corrupt::Checksum);
    }
    if state == STATE_EXT {
        let len = b[field::EXT_LEN];
        if len == 0 || usize::from(len) > EXT_DATA {
            return Err(Corrupt::Field("extension length"));
        }
        let mut data = [0u8; EXT_DATA];
        data.copy_from_slice(&b[field::EXT_DATA]);
        return Ok(Slot::Ext { len, data });
    }
    let state = state_from_code(state).ok_or(Corrupt::Field("state"))?;
    let ia_type = match b[field::IA_TYPE] {
        0 => IaType::Na,
        1 => IaType::Pd,
        _ => return Err(Corrupt::Field("ia type")),
    };
    let len = b[field::PREFIX_LEN];
    if len > 128 || (ia_type == IaType::Na && len != 128) || (ia_type == IaType::Pd && len == 128) {
        return Err(Corrupt::Field("prefix length"));
    }
    let duid_len = b[field::DUID_LEN];
    if duid_len == 0 || usize::from(duid_len) > DUID_MAX {
        return Err(Corrupt::Field("duid length"));
    }
    let flags = b[field::FLAGS];
    if flags & !(FLAG_PARTNER_ACKED | FLAG_DUID_EXT) != 0
        || (flags & FLAG_DUID_EXT != 0) != (usize::from(duid_len) > DUID_INLINE_MAX)
    {
        return Err(Corrupt::Field("flags"));
    }
    let mut addr = [0u8; 16];
    addr.copy_from_slice(&b[field::ADDR]);
    let mut duid_inline = [0u8; DUID_INLINE_MAX];
    duid_inline.copy_from_slice(&b[field::DUID]);
    Ok(Slot::Main(Record {
        state,
        ia_type,
        resource: Resource {
            addr: Ipv6Addr::from(addr),
            len,
        },
        pool_id: rd_u32(&b[field::POOL]),
        iaid: rd_u32(&b[field::IAID]),
        lifetimes: Lifetimes {
            preferred: rd_u32(&b[field::PREFERRED]),
            valid: rd_u32(&b[field::VALID]),
        },
        cltt: rd_u64(&b[field::CLTT]),
        partner_expires: rd_u64(&b[field::PARTNER_EXPIRES]),
        seq: rd_u64(&b[field::SEQ]),
        partner_acked: flags & FLAG_PARTNER_ACKED != 0,
        alloc_server: b[field::ALLOC_SERVER],
        duid_len,
        duid_inline,
    }))
}

/// Does the main record in `b` belong to this binding key? Compares the inline DUID bytes only
/// (the caller compares extension bytes of a long DUID).
#[inline]
pub fn raw_key_matches(b: &[u8; RECORD_SIZE], duid: &[u8], iaid: u32, ia_type: u8) -> bool {
    if b[field::IA_TYPE] != ia_type
        || usize::from(b[field::DUID_LEN]) != duid.len()
        || rd_u32(&b[field::IAID]) != iaid
    {
        return false;
    }
    if duid.len() <= DUID_INLINE_MAX {
        b[field::DUID.start..field::DUID.start + duid.len()] == *duid
    } else {
        b[field::DUID.start + 8..field::DUID.end] == duid[..DUID_INLINE_PREFIX]
    }
}

/// Fields of a main record held as [`Words`], read where they are (the renew fast path, which
/// neither decodes nor re-encodes a record).
pub mod raw {
    use super::{field, le_at, ones, Words, DUID_INLINE_MAX, WORDS};
    use crate::lease::table::hash::le_bytes;
    use crate::lease::Resource;
    use std::net::Ipv6Addr;

    pub fn expires_at(w: &Words) -> u64 {
        super::expiry(
            le_at(w, field::CLTT.start, 8),
            le_at(w, field::VALID.start, 4) as u32,
        )
    }
    pub fn seq(w: &Words) -> u64 {
        le_at(w, field::SEQ.start, 8)
    }

    /// [`reclaim_deadline`](super::reclaim_deadline) of the main record in `w`, read from the
    /// words alone (nothing decoded or verified): the reclaim scan passes over the records not
    /// yet due this way. `None` for an empty or extension slot.
    pub fn reclaim_due(w: &Words, hold: u64) -> Option<u64> {
        let state = super::state_from_code(le_at(w, field::STATE, 1) as u8)?;
        super::reclaim_deadline(state, expires_at(w), le_at(w, field::CLTT.start, 8), hold)
    }
    pub fn resource(w: &Words) -> Resource {
        let a = field::ADDR.start;
        let addr = u128::from(le_at(w, a, 8)) | u128::from(le_at(w, a + 8, 8)) << 64;
        Resource {
            addr: Ipv6Addr::from(addr.swap_bytes()),
            len: le_at(w, field::PREFIX_LEN, 1) as u8,
        }
    }

    /// The words that decide whether a record is a given client's current binding: its state,
    /// IA type, DUID length, IAID and pool (words 0 to 2), and its DUID (held inline, bytes
    /// 68..96: words 8 to 11).
    const KEY_WORDS: [usize; 7] = [0, 1, 2, 8, 9, 10, 11];

    /// A binding key whose DUID is held inline, with its pool and a wanted state, as the bits
    /// a matching record has in [`KEY_WORDS`]: a match is seven masked word comparisons.
    /// Padding bytes after the DUID are masked out, so the comparison is exact.
    pub struct InlineKey {
        want: [u64; KEY_WORDS.len()],
        mask: [u64; KEY_WORDS.len()],
    }

    impl InlineKey {
        pub fn new(duid: &[u8], iaid: u32, ia_type: u8, pool: u32, state: u8) -> InlineKey {
            assert!(duid.len() <= DUID_INLINE_MAX);
            // The DUID's bytes `from..from + n` (fewer past its end) and their mask.
            let part = |from: usize, n: usize| {
                let (from, to) = (from.min(duid.len()), (from + n).min(duid.len()));
                (le_bytes(duid, from, to), ones(to - from))
            };
            // Field offsets: state 4 and IA type 5 (word 0), DUID length 8 and IAID 12..16
            // (word 1), pool 16..20 (word 2); the DUID from 68: 4 bytes in word 8, then 8 in
            // each of words 9 to 11.
            const _: () = assert!(
                field::STATE == 4
                    && field::IA_TYPE == 5
                    && field::DUID_LEN == 8
                    && field::IAID.start == 12
                    && field::POOL.start == 16
                    && field::DUID.start == 68
            );
            let (d0, m0) = part(0, 4);
            let (d1, m1) = part(4, 8);
            let (d2, m2) = part(12, 8);
            let (d3, m3) = part(20, 8);
            InlineKey {
                want: [
                    u64::from(state) << 32 | u64::from(ia_type) << 40,
                    duid.len() as u64 | u64::from(iaid) << 32,
                    u64::from(pool),
                    d0 << 32,
                    d1,
                    d2,
                    d3,
                ],
                mask: [
                    0xffff << 32,
                    0xff | ones(4) << 32,
                    ones(4),
                    m0 << 32,
                    m1,
                    m2,
                    m3,
                ],
            }
        }

        /// Does the record whose word `i` is `word(i)` match?
        #[inline]
        pub fn matches(&self, word: impl Fn(usize) -> u64) -> bool {
            KEY_WORDS
                .iter()
                .zip(self.want.iter().zip(&self.mask))
                .fold(0, |diff, (&i, (&want, &mask))| {
                    diff | ((word(i) & mask) ^ want)
                })
                == 0
        }
    }

    const _: () = assert!(KEY_WORDS[KEY_WORDS.len() - 1] == WORDS - 1);
}

pub fn rd_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn rd_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(duid: &[u8]) -> Record {
        Record {
            state: BindingState::Active,
            ia_type: IaType::Pd,
            resource: Resource::prefix("2001:db8:1200::".parse().unwrap(), 56),
            pool_id: 9,
            iaid: 0xdead_beef,
            lifetimes: Lifetimes {
                preferred: 100,
                valid: 200,
            },
            cltt: 1_700_000_000,
            partner_expires: 1_700_000_150,
            seq: 42,
            partner_acked: true,
            alloc_server: 1,
            duid_len: duid.len() as u8,
            duid_inline: Record::inline_duid(duid, [3, u32::MAX]),
        }
    }

    #[test]
    fn inline_key_matches_exactly_its_own_records() {
        let duid: Vec<u8> = (1..=DUID_INLINE_MAX as u8)
            .map(|b| b.wrapping_mul(41))
            .collect();
        for len in 1..=DUID_INLINE_MAX {
            let d = &duid[..len];
            let r = sample(d);
            let key =
                |d: &[u8], iaid, ia, pool, state| raw::InlineKey::new(d, iaid, ia, pool, state);
            let active = state_code(BindingState::Active);
            let w = to_words(&r.encode());
            assert!(key(d, r.iaid, 1, 9, active).matches(|i| w[i]), "len {len}");
            // Any one field different: no match.
            assert!(!key(d, r.iaid ^ 1, 1, 9, active).matches(|i| w[i]));
            assert!(!key(d, r.iaid, 0, 9, active).matches(|i| w[i]));
            assert!(!key(d, r.iaid, 1, 8, active).matches(|i| w[i]));
            assert!(!key(d, r.iaid, 1, 9, state_code(BindingState::Released)).matches(|i| w[i]));
            assert!(!key(&d[..len - 1], r.iaid, 1, 9, active).matches(|i| w[i]));
            for j in 0..len {
                let mut other = d.to_vec();
                other[j] ^= 0x80;
                assert!(
                    !key(&other, r.iaid, 1, 9, active).matches(|i| w[i]),
                    "byte {j}"
                );
            }
            // Bytes after the DUID are not part of it (a record whose padding is not zero).
            if len < DUID_INLINE_MAX {
                let mut b = r.encode();
                b[field::DUID.start + len] = 0xff;
                let w = to_words(&b);
                assert!(key(d, r.iaid, 1, 9, active).matches(|i| w[i]));
            }
        }
    }

    #[test]
    fn mutable_ranges_cover_every_changing_field() {
        // Every field an update may change lies in MUTABLE_RANGES; nothing else differs.
        let a = sample(b"\x00\x03\x00\x01abcdef");
        let b = Record {
            state: BindingState::Expired,
            lifetimes: Lifetimes {
                preferred: 7,
                valid: 9,
            },
            cltt: 5,
            partner_expires: 6,
            seq: 77,
            partner_acked: false,
            alloc_server: 3,
            ..a
        };
        let (ea, eb) = (a.encode(), b.encode());
        for i in 0..RECORD_SIZE {
            if i != field::STATE && !MUTABLE_RANGES.iter().any(|r| r.contains(&i)) {
                assert_eq!(ea[i], eb[i], "byte {i} changed outside MUTABLE_RANGES");
            }
        }
    }

    #[test]
    fn renewed_equals_encoding_the_renewed_record() {
        for duid in [&b"\x00\x03\x00\x01abcdef"[..], &[7u8; 100][..]] {
            let r = sample(duid);
            let lt = Lifetimes {
                preferred: 1234,
                valid: 5678,
            };
            let want = Record {
                lifetimes: lt,
                cltt: 1_800_000_000,
                seq: 4242,
                partner_acked: false,
                ..r
            };
            let got = renewed(&to_words(&r.encode()), lt, 1_800_000_000, 4242);
            assert_eq!(from_words(&got), want.encode());
        }
    }

    #[test]
    fn reclaim_due_reads_each_state_s_deadline_from_the_words() {
        let hold = 3600;
        for valid in [200, u32::MAX] {
            let r = Record {
                lifetimes: Lifetimes {
                    preferred: 100,
                    valid,
                },
                ..sample(b"\x00\x03\x00\x01abcdef")
            };
            let exp = r.expires_at();
            for (state, want) in [
                (BindingState::Active, Some(exp)),
                (BindingState::Abandoned, Some(exp)),
                (BindingState::Expired, Some(exp.saturating_add(hold))),
                (BindingState::Released, Some(r.cltt + hold)),
                (BindingState::Free, None),
                (BindingState::FreeBackup, None),
            ] {
                let w = to_words(&Record { state, ..r }.encode());
                assert_eq!(raw::reclaim_due(&w, hold), want, "{state:?}, valid {valid}");
            }
        }
        assert_eq!(raw::reclaim_due(&[0; WORDS], hold), None, "an empty slot");
    }

    #[test]
    fn words_give_the_same_checksum_and_bytes() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let b: [u8; RECORD_SIZE] = std::array::from_fn(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            });
            let w = to_words(&b);
            assert_eq!(from_words(&w), b);
            assert_eq!(checksum_words(&w), checksum(&b));
            for at in 0..RECORD_SIZE {
                for n in 1..=(RECORD_SIZE - at).min(8) {
                    let mut want = [0u8; 8];
                    want[..n].copy_from_slice(&b[at..at + n]);
                    assert_eq!(le_at(&w, at, n), u64::from_le_bytes(want), "{at}+{n}");
                }
            }
        }
    }

    #[test]
    fn every_field_lands_at_its_offset() {
        // The file format, byte by byte, from values whose bytes all differ (independent of
        // `decode`, which reads the same offsets).
        for (ia_type, len, flags) in [(IaType::Na, 128u8, 1u8), (IaType::Pd, 44, 0)] {
            let addr: [u8; 16] = std::array::from_fn(|i| 0xa0 + i as u8);
            let duid: Vec<u8> = (0..DUID_INLINE_MAX as u8).map(|i| 0x40 + i).collect();
            let r = Record {
                state: BindingState::Released,
                ia_type,
                resource: Resource {
                    addr: Ipv6Addr::from(addr),
                    len,
                },
                pool_id: 0x1312_1110,
                iaid: 0x0f0e_0d0c,
                lifetimes: Lifetimes {
                    preferred: 0x1716_1514,
                    valid: 0x1b1a_1918,
                },
                cltt: 0x2726_2524_2322_2120,
                partner_expires: 0x2f2e_2d2c_2b2a_2928,
                seq: 0x3736_3534_3332_3130,
                partner_acked: flags == 1,
                alloc_server: 0x09,
                duid_len: duid.len() as u8,
                duid_inline: Record::inline_duid(&duid, [u32::MAX; 2]),
            };
            let b = r.encode();
            assert_eq!(rd_u32(&b[field::CHECKSUM]), checksum(&b));
            assert_eq!(b[field::STATE], 3);
            assert_eq!(b[field::IA_TYPE], u8::from(ia_type == IaType::Pd));
            assert_eq!(b[field::PREFIX_LEN], len);
            assert_eq!(b[field::FLAGS], flags);
            assert_eq!(b[field::DUID_LEN], DUID_INLINE_MAX as u8);
            assert_eq!(b[field::ALLOC_SERVER], 0x09);
            assert_eq!(b[10..12], [0, 0]);
            assert_eq!(b[field::IAID], [0x0c, 0x0d, 0x0e, 0x0f]);
            assert_eq!(b[field::POOL], [0x10, 0x11, 0x12, 0x13]);
            assert_eq!(b[field::PREFERRED], [0x14, 0x15, 0x16, 0x17]);
            assert_eq!(b[field::VALID], [0x18, 0x19, 0x1a, 0x1b]);
            assert_eq!(b[field::ADDR], addr);
            assert_eq!(
                b[field::CLTT],
                std::array::from_fn::<u8, 8, _>(|i| 0x20 + i as u8)
            );
            assert_eq!(
                b[field::PARTNER_EXPIRES],
                std::array::from_fn::<u8, 8, _>(|i| 0x28 + i as u8)
            );
            assert_eq!(
                b[field::SEQ],
                std::array::from_fn::<u8, 8, _>(|i| 0x30 + i as u8)
            );
            assert_eq!(b[field::DUID], duid[..]);
        }
    }

    #[test]
    fn round_trips_and_detects_flips() {
        for duid in [&b"\x00\x03\x00\x01abcdef"[..], &[7u8; 100][..]] {
            let r = sample(duid);
            let b = r.encode();
            assert_eq!(decode(&b), Ok(Slot::Main(r)));
            for i in 0..RECORD_SIZE {
                if i == field::STATE {
                    continue;
                }
                for bit in 0..8 {
                    let mut c = b;
                    c[i] ^= 1 << bit;
                    assert!(
                        decode(&c).is_err(),
                        "flip of byte {i} bit {bit} not detected"
                    );
                }
            }
        }
        let e = encode_ext(&[1, 2, 3]);
        assert!(matches!(decode(&e), Ok(Slot::Ext { len: 3, .. })));
        assert_eq!(decode(&[0u8; RECORD_SIZE]), Ok(Slot::Empty));
    }
}
