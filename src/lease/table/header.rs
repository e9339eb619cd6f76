//! The file header: the first 4096 bytes of the file. Two copies of the same 64-byte block are
//! kept, at offsets 0 and 2048, each with its own checksum, so a single torn or flipped header
//! still opens (from the other copy, which is then rewritten).

use super::hash::hash_bytes;
use super::record::RECORD_SIZE;

pub const HEADER_BYTES: usize = 4096;
pub const COPY_OFFSETS: [usize; 2] = [0, 2048];
pub const MAGIC: [u8; 8] = *b"XDHCP6LT";
pub const VERSION: u32 = 1;
const BLOCK: usize = 64;

mod field {
    use std::ops::Range;
    pub const MAGIC: Range<usize> = 0..8;
    pub const VERSION: Range<usize> = 8..12;
    pub const HEADER_BYTES: Range<usize> = 12..16;
    pub const RECORD_SIZE: Range<usize> = 16..20;
    pub const SHARDS: Range<usize> = 20..24;
    pub const CHUNK_RECORDS: Range<usize> = 24..28;
    pub const SERVER_ID: usize = 28;
    // 29..32 zero
    pub const CREATED: Range<usize> = 32..40;
    // 40..56 zero
    pub const CHECKSUM: Range<usize> = 56..64;
}

/// The most key shards a file may have.
pub const MAX_SHARDS: u32 = 4096;

/// The geometry of a lease file, fixed when it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Number of key shards; chunk `c` of records belongs to shard `c % shards`.
    pub shards: u32,
    /// Records per chunk (the unit of growth per shard).
    pub chunk_records: u32,
    /// Server id recorded at creation (informational).
    pub server_id: u8,
    pub created_unix: u64,
}

impl Geometry {
    pub fn chunk_bytes(&self) -> u64 {
        u64::from(self.chunk_records) * RECORD_SIZE as u64
    }
    pub fn validate(&self) -> Result<(), String> {
        if self.shards == 0 || self.shards > MAX_SHARDS {
            return Err(format!(
                "shard count {} out of range 1..={MAX_SHARDS}",
                self.shards
            ));
        }
        if self.chunk_records < 64 || self.chunk_records > (1 << 20) {
            return Err(format!(
                "chunk size {} out of range 64..=1048576",
                self.chunk_records
            ));
        }
        Ok(())
    }
}

pub fn encode(g: &Geometry) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    b[field::MAGIC].copy_from_slice(&MAGIC);
    b[field::VERSION].copy_from_slice(&VERSION.to_le_bytes());
    b[field::HEADER_BYTES].copy_from_slice(&(HEADER_BYTES as u32).to_le_bytes());
    b[field::RECORD_SIZE].copy_from_slice(&(RECORD_SIZE as u32).to_le_bytes());
    b[field::SHARDS].copy_from_slice(&g.shards.to_le_bytes());
    b[field::CHUNK_RECORDS].copy_from_slice(&g.chunk_records.to_le_bytes());
    b[field::SERVER_ID] = g.server_id;
    b[field::CREATED].copy_from_slice(&g.created_unix.to_le_bytes());
    let c = hash_bytes(0x0068_6472, &b[..field::CHECKSUM.start]);
    b[field::CHECKSUM].copy_from_slice(&c.to_le_bytes());
    b
}

fn u32_at(b: &[u8], r: std::ops::Range<usize>) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[r]);
    u32::from_le_bytes(a)
}

/// Decode one header copy.
pub fn decode(b: &[u8]) -> Result<Geometry, String> {
    if b.len() < BLOCK {
        return Err("truncated".into());
    }
    let b = &b[..BLOCK];
    if b[field::MAGIC] != MAGIC {
        return Err("bad magic (not an xdhcp6 lease file)".into());
    }
    let mut c = [0u8; 8];
    c.copy_from_slice(&b[field::CHECKSUM]);
    if u64::from_le_bytes(c) != hash_bytes(0x0068_6472, &b[..field::CHECKSUM.start]) {
        return Err("checksum mismatch".into());
    }
    let version = u32_at(b, field::VERSION);
    if version != VERSION {
        return Err(format!(
            "unsupported format version {version} (this build reads {VERSION})"
        ));
    }
    if u32_at(b, field::HEADER_BYTES) as usize != HEADER_BYTES {
        return Err("unexpected header size".into());
    }
    if u32_at(b, field::RECORD_SIZE) as usize != RECORD_SIZE {
        return Err(format!(
            "record size {} (this build uses {RECORD_SIZE})",
            u32_at(b, field::RECORD_SIZE)
        ));
    }
    let mut created = [0u8; 8];
    created.copy_from_slice(&b[field::CREATED]);
    let g = Geometry {
        shards: u32_at(b, field::SHARDS),
        chunk_records: u32_at(b, field::CHUNK_RECORDS),
        server_id: b[field::SERVER_ID],
        created_unix: u64::from_le_bytes(created),
    };
    g.validate()?;
    Ok(g)
}

/// Outcome of reading both copies.
pub struct HeaderRead {
    pub geometry: Geometry,
    /// Copies that failed to decode (and must be rewritten), with the reason.
    pub bad_copies: Vec<(usize, String)>,
}

/// Read the header from the first `HEADER_BYTES` of a file. Both copies must agree when both
/// decode; a single bad copy is reported and repaired by the caller.
pub fn read(page: &[u8]) -> Result<HeaderRead, String> {
    if page.len() < HEADER_BYTES {
        return Err(format!("file shorter than its {HEADER_BYTES}-byte header"));
    }
    let copies: Vec<Result<Geometry, String>> = COPY_OFFSETS
        .iter()
        .map(|&o| decode(&page[o..o + BLOCK]))
        .collect();
    match (&copies[0], &copies[1]) {
        (Ok(a), Ok(b)) if a == b => Ok(HeaderRead {
            geometry: *a,
            bad_copies: vec![],
        }),
        (Ok(_), Ok(_)) => Err("the two header copies disagree".into()),
        (Ok(a), Err(e)) => Ok(HeaderRead {
            geometry: *a,
            bad_copies: vec![(COPY_OFFSETS[1], e.clone())],
        }),
        (Err(e), Ok(b)) => Ok(HeaderRead {
            geometry: *b,
            bad_copies: vec![(COPY_OFFSETS[0], e.clone())],
        }),
        (Err(a), Err(b)) => Err(format!("both header copies are bad: {a}; {b}")),
    }
}
