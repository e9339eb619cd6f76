//! The lease table: a sharded, memory-mapped, crash-safe [`LeaseStore`].
//!
//! File format, growth, lock order and durability are described in `docs/lease-table.md`; in
//! short:
//! - The file is a 4 KiB header (two checksummed copies) followed by 96-byte records, each with
//!   its own checksum. Records are grouped in chunks; chunk `c` belongs to key shard
//!   `c % shards`. A shard that runs out of slots claims its next chunk, growing the file with
//!   `fallocate` (the mapping is reserved once at its maximum size and never moves).
//! - A binding lives in the key shard of its (DUID, IAID, IA type). Each key shard has a mutex
//!   and an index of its bindings; each resource shard has a mutex and an index from address or
//!   prefix to slot; each prefix pool has a free bitmap with a hierarchical summary. Indexes are
//!   rebuilt from the records at open.
//! - Lock order: key shard → pool registry (read or write) → pool bitmap → resource shard. At
//!   most one lock of each kind is held at a time, but for batches, which may hold two key
//!   shards, lower shard first (`run_batch`).
//! - Updates: in `Mapped` mode a record is updated in place, its new version first written to
//!   the shard's journal slot (see `rewrite_in_place`); in group-commit mode copy-on-write (a
//!   new record in a free slot of the same shard, indexes repointed, the old slot freed once
//!   the new one is durable). A `kill -9` at any moment leaves either the old or the new record
//!   intact (both, at worst, and the higher update sequence number wins at open). The identity
//!   bytes of an indexed record (key, pool, resource) are never written.
#![allow(clippy::too_many_arguments)]

mod bitmap;
mod export;
mod hash;
mod header;
mod index;
mod map;
mod record;

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::Ipv6Addr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use export::{export, read_all, ExportFilter, ExportFormat, ExportSummary, LeaseEntry};
pub use header::Geometry;
pub use record::{DUID_MAX, RECORD_SIZE};

use self::bitmap::FreeBitmap;
use self::header::HEADER_BYTES;
use self::index::Index;
use self::map::Region;
use self::record::{
    Record, Slot, StateExt, Words, DUID_INLINE_MAX, DUID_INLINE_PREFIX, EXT_DATA, STATE_EMPTY,
    STATE_OFFSET,
};
use super::{
    AllocRequest, BindingKey, BindingState, IaType, Lease, LeaseInfo, LeaseStore, Lifetimes,
    PoolSpec, Resource, StoreError,
};

/// IA_NA candidates tried by hashing before a linear scan (small pools) or giving up (large).
const NA_HASH_PROBES: u64 = 64;
/// Pools up to this size are scanned linearly after the hashed probes, so a nearly full small
/// pool still finds its last free address.
const NA_LINEAR_SCAN_MAX: u64 = 1 << 20;
/// Largest block of pool units one IA_PD hint may ask for (a /48 hint in a /64 pool).
const PD_BLOCK_MAX_LOG2: u8 = 16;
/// Slots examined per key-shard lock hold in `reclaim`, so workers never wait long.
const RECLAIM_SLOTS_PER_LOCK: usize = 256;

/// When a committed grant counts as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The record is in the shared mapping (the page cache) before the call returns: survives
    /// `kill -9` of the server, not a power loss.
    Mapped,
    /// As `Mapped`, plus a flusher thread calls `fdatasync` in batches; a caller that must
    /// survive power loss takes [`LeaseTable::commit_ticket`] after its grants and waits in
    /// [`LeaseTable::wait_durable`]. The flusher syncs as soon as someone waits, after
    /// gathering for `batch_window`, and at least every `max_interval` while there are writes.
    GroupCommit {
        batch_window: Duration,
        max_interval: Duration,
    },
}

/// How to open (or create) a lease table.
#[derive(Debug, Clone)]
pub struct TableConfig {
    pub path: PathBuf,
    /// Key shards for a new file (an existing file keeps its own). More than cores.
    pub shards: u32,
    /// Records per growth chunk for a new file (an existing file keeps its own).
    pub chunk_records: u32,
    /// Records the file is pre-sized to hold when created (rounded up to whole chunks per shard).
    pub initial_records: u64,
    /// The most records the file may ever hold: the size of the address-space reservation
    /// (96 bytes per record, virtual only; nothing is allocated until the file grows).
    pub max_records: u64,
    pub durability: Durability,
    /// This server's id in its failover pair, stored in every record it allocates.
    pub server_id: u8,
    /// How long an expired or released binding keeps its resource for the same client
    /// (affinity) before `reclaim` frees it.
    pub affinity_hold_secs: u32,
    /// Prefix pools known at open; their free bitmaps are built during the scan. Pools first
    /// seen in an [`AllocRequest`] are registered then (one scan of the resource index).
    pub pools: Vec<PoolSpec>,
}

impl TableConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        TableConfig {
            path: path.into(),
            shards: 64,
            chunk_records: 4096,
            initial_records: 0,
            max_records: 64 << 20,
            durability: Durability::Mapped,
            server_id: 0,
            affinity_hold_secs: 3600,
            pools: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("lease file {path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    #[error("lease file {path}: bad header: {reason}")]
    BadHeader { path: PathBuf, reason: String },
    #[error("lease file {path}: in use by another process")]
    Locked { path: PathBuf },
    #[error("lease table configuration: {0}")]
    Config(String),
}

/// What opening the file found.
#[derive(Debug, Clone, Default)]
pub struct OpenReport {
    /// Records loaded (bindings and quarantined resources).
    pub records: u64,
    /// Slots whose checksum or fields were wrong (torn or corrupt), skipped and reused.
    pub corrupt: u64,
    /// Older copies of a record superseded by a newer one (interrupted updates).
    pub superseded: u64,
    /// DUID extension records no binding referred to.
    pub orphans: u64,
    /// Header copies that were bad and have been rewritten.
    pub header_repaired: u32,
    pub slots: u64,
    pub open_ms: u64,
}

/// What one `reclaim` call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReclaimStats {
    pub examined: u64,
    /// Active bindings past their valid lifetime, moved to `expired`.
    pub expired: u64,
    /// Records deleted: expired or released past the affinity hold, quarantine over.
    pub freed: u64,
}

/// Sizes, for benchmarks and monitoring.
#[derive(Debug, Clone, Copy, Default)]
pub struct TableStats {
    pub records: u64,
    pub slots: u64,
    pub file_bytes: u64,
    pub index_bytes: u64,
    pub bitmap_bytes: u64,
}

/// Proof of position in the commit order: pass to [`LeaseTable::wait_durable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CommitTicket(pub u64);

#[repr(align(128))]
struct Padded<T>(T);
impl<T> Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// A shard's lock, and where the shard's index lives: readable without the lock, so a batch
/// can prefetch index buckets before it takes any lock (a stale value costs a useless prefetch,
/// nothing more). Key shards and resource shards both sit in one.
struct ShardCell<T> {
    lock: Mutex<T>,
    index_base: AtomicUsize,
    index_capacity: AtomicUsize,
}

/// A shard whose index a [`ShardCell`] publishes.
trait Indexed {
    fn index(&self) -> &Index;
}

impl Indexed for KeyShard {
    fn index(&self) -> &Index {
        &self.keys
    }
}

impl Indexed for ResShard {
    fn index(&self) -> &Index {
        &self.res
    }
}

impl<T> Deref for ShardCell<T> {
    type Target = Mutex<T>;
    fn deref(&self) -> &Mutex<T> {
        &self.lock
    }
}

impl<T: Indexed> ShardCell<T> {
    fn new(shard: T) -> Self {
        let (base, cap) = shard.index().raw_parts();
        ShardCell {
            lock: Mutex::new(shard),
            index_base: AtomicUsize::new(base),
            index_capacity: AtomicUsize::new(cap),
        }
    }

    /// Record where the index lives now (after an insert, which may have grown it).
    fn publish(&self, shard: &T) {
        let (base, cap) = shard.index().raw_parts();
        self.index_base.store(base, Ordering::Relaxed);
        self.index_capacity.store(cap, Ordering::Relaxed);
    }

    fn prefetch_bucket(&self, tag: u32) {
        index::prefetch_bucket(
            (
                self.index_base.load(Ordering::Relaxed),
                self.index_capacity.load(Ordering::Relaxed),
            ),
            tag,
        );
    }
}

struct KeyShard {
    /// Key hash tag → slot, for records in a keyed state (active, expired, released).
    keys: Index,
    /// Free slots of this shard (popped from the end: lowest first).
    free: Vec<u32>,
    /// Chunks of this shard claimed so far (chunk `k` of the shard is file chunk
    /// `shard + k * shards`).
    chunks: u64,
    /// Shard-local position of the first never-used slot: every position from here to the end
    /// of the claimed chunks is empty, so fresh slots need no free-list entry.
    fresh: u64,
    /// The slot number of position `fresh` while `fresh < fresh_end`, the end of the chunk
    /// it lies in (positions of one chunk are consecutive slots): handing out fresh slots
    /// needs no division. `fresh == fresh_end` means "work it out again".
    fresh_slot: u32,
    fresh_end: u64,
    /// Group commit: superseded slots to free once their epoch is durable.
    deferred: std::collections::VecDeque<(u64, u32)>,
    /// Active records per pool.
    active: PoolCounts,
    /// Mapped mode: the slot an in-place update first writes its new record to (empty between
    /// updates), so a `kill -9` in the middle of the in-place write loses nothing.
    journal: Option<u32>,
    /// Next position (in shard-local slot order) for `reclaim`.
    reclaim_pos: u64,
    records: u64,
}

/// Counters per pool id: a short list (a server has a handful of pools), cheaper than hashing.
#[derive(Default)]
struct PoolCounts(Vec<(u32, u64)>);

impl PoolCounts {
    #[inline]
    fn get_mut(&mut self, pool: u32) -> &mut u64 {
        let i = match self.0.iter().position(|&(p, _)| p == pool) {
            Some(i) => i,
            None => {
                self.0.push((pool, 0));
                self.0.len() - 1
            }
        };
        &mut self.0[i].1
    }

    fn get(&self, pool: u32) -> u64 {
        self.0
            .iter()
            .find(|&&(p, _)| p == pool)
            .map_or(0, |&(_, c)| c)
    }
}

struct ResShard {
    /// Resource hash tag → slot, for every record (bindings and quarantined resources).
    res: Index,
}

struct PdPool {
    spec: PoolSpec,
    bits: Mutex<FreeBitmap>,
}

struct GroupState {
    requested: u64,
    stop: bool,
}

struct Durable {
    group: Option<(Duration, Duration)>,
    /// Current commit epoch; writes done before reading it are covered by closing it.
    epoch: AtomicU64,
    /// Every epoch below this is on disk.
    durable_epoch: AtomicU64,
    state: Mutex<GroupState>,
    wake_flusher: Condvar,
    wake_waiters: Condvar,
}

struct Inner {
    path: PathBuf,
    file: File,
    region: Region,
    geo: Geometry,
    max_chunks: u64,
    server_id: u8,
    hold_secs: u32,
    kshards: Box<[Padded<ShardCell<KeyShard>>]>,
    rshards: Box<[Padded<ShardCell<ResShard>>]>,
    pools: RwLock<HashMap<u32, Arc<PdPool>>>,
    grow_lock: Mutex<()>,
    nchunks: AtomicU64,
    next_seq: AtomicU64,
    /// Fail-closed latch: set on an I/O error whose effect on the file is unknown.
    failed: AtomicBool,
    /// Rate limit for the "cannot grow" log line.
    grow_failures: AtomicU64,
    durable: Durable,
    reclaim_shard: AtomicUsize,
}

/// The memory-mapped lease table. See the module docs.
pub struct LeaseTable {
    inner: Arc<Inner>,
    flusher: Option<JoinHandle<()>>,
    report: OpenReport,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a shard lock is a broken invariant; the data behind the lock is
    // plain indexes that the panicking thread may have left half-updated, so we do not go on.
    m.lock().expect("lease table lock poisoned")
}

#[inline]
fn split(h: u64) -> (u32, u32) {
    ((h >> 32) as u32, h as u32)
}

#[inline]
fn shard_of(low: u32, n: usize) -> usize {
    ((u64::from(low) * n as u64) >> 32) as usize
}

/// The key index tag of a binding key, and its shard out of `n` key shards.
#[inline]
fn key_slot(key: &BindingKey<'_>, n: usize) -> (u32, usize) {
    key_slot_of(hash::duid_hash(key.duid), key, n)
}

/// [`key_slot`] from the [`hash::duid_hash`] `d` of the key's DUID.
#[inline]
fn key_slot_of(d: u64, key: &BindingKey<'_>, n: usize) -> (u32, usize) {
    let (tag, low) = split(hash::key_hash_of(d, key.iaid, ia_code(key.ia_type)));
    (tag, shard_of(low, n))
}

/// Batched calls work on chunks of up to this many keys: enough that most shards of a chunk
/// hold several of its keys (one lock round trip serves them all), few enough that the index
/// buckets and records it prefetches (three cache lines a key, 192 KiB) stay in the L2 cache.
const BATCH: usize = 1024;

/// One chunk of a batched call: its keys grouped by key shard, and what `allocate_many` works
/// out for them before taking locks. Large (64 KiB): each thread keeps one and reuses it
/// ([`with_batch`]), so a call neither zeroes nor moves it.
struct ShardBatch {
    keys: KeyBatch,
    /// By position, for `allocate_many`: the address an IA_NA request tries first, with its
    /// resource index tag and shard.
    first: [Option<(Resource, u32, u32)>; BATCH],
}

/// The keys of a chunk, grouped by key shard (see [`Inner::prepare_batch`]).
struct KeyBatch {
    /// Key hash tag of each key, by position in the chunk.
    tags: [u32; BATCH],
    /// [`hash::duid_hash`] of each key's DUID, by position (IA_NA candidates start from it).
    duid_hashes: [u64; BATCH],
    /// (shard, position in the chunk) of the valid keys, by shard, in key order within one.
    order: [(u32, u32); BATCH],
    len: usize,
    /// By position: what the key's shard index held under its tag when [`Inner::run_batch`]
    /// probed it.
    probed: [Probed; BATCH],
    /// Scratch of the counting sort: the valid keys in key order, and where each shard's
    /// group starts.
    unsorted: [(u32, u32); BATCH],
    starts: [u16; header::MAX_SHARDS as usize + 1],
}

/// What a key shard's index held under a key's tag when [`Inner::run_batch`] probed it, the
/// shard locked from the probe to the key's turn. A key whose tag an earlier key of its group
/// also carries is `Several`: the earlier key's turn may file a record under the tag.
#[derive(Debug, Clone, Copy)]
enum Probed {
    /// No record: the key has no binding in the table.
    None,
    /// Exactly one record, in this slot.
    Only(u32),
    /// More than one (or unknown, see above): probe again.
    Several,
}

/// A shard group of a batch whose shard is locked: the guard, the shard, its keys.
type HeldGroup<'a> = (MutexGuard<'a, KeyShard>, usize, &'a [(u32, u32)]);

thread_local! {
    static BATCH_SCRATCH: std::cell::RefCell<Option<Box<ShardBatch>>> =
        const { std::cell::RefCell::new(None) };
}

/// Run `f` with this thread's [`ShardBatch`] (a fresh one if it is in use further up the
/// stack).
fn with_batch<R>(f: impl FnOnce(&mut ShardBatch) -> R) -> R {
    fn fresh() -> Box<ShardBatch> {
        Box::new(ShardBatch {
            keys: KeyBatch {
                tags: [0; BATCH],
                duid_hashes: [0; BATCH],
                order: [(0, 0); BATCH],
                len: 0,
                probed: [Probed::Several; BATCH],
                unsorted: [(0, 0); BATCH],
                starts: [0; header::MAX_SHARDS as usize + 1],
            },
            first: [None; BATCH],
        })
    }
    BATCH_SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => f(slot.get_or_insert_with(fresh)),
        Err(_) => f(&mut fresh()),
    })
}

/// The records `lookup` and `renew` find: active, in `pool`, not expired at `now`.
fn current_in(pool: &PoolSpec, now: u64) -> impl Fn(&Record) -> bool + '_ {
    move |r| r.pool_id == pool.id && r.state == BindingState::Active && r.expires_at() > now
}

/// The address an IA_NA request hints at, when it is one of its pool's: tried first.
fn na_hint(req: &AllocRequest<'_>) -> Option<Resource> {
    req.hint.filter(|h| h.len == 128 && req.pool.contains(*h))
}

/// The address `allocate_na` tries first for an IA_NA request (its hint, else its first hash
/// candidate; `d` is the [`hash::duid_hash`] of its DUID); `None` for a prefix request.
#[inline]
fn na_first(req: &AllocRequest<'_>, d: u64) -> Option<Resource> {
    if req.pool.ia_type != IaType::Na || req.pool.count == 0 {
        return None;
    }
    na_hint(req).or_else(|| {
        let k = hash::na_candidate(d, req.key.iaid, 0, req.pool.count);
        req.pool.nth(k)
    })
}

/// Can a binding with this key exist at all? (A DUID is 1..=130 bytes.)
#[inline]
fn valid_key(key: &BindingKey<'_>) -> bool {
    !key.duid.is_empty() && key.duid.len() <= DUID_MAX
}

fn ia_code(t: IaType) -> u8 {
    match t {
        IaType::Na => 0,
        IaType::Pd => 1,
    }
}

/// The pool units covered by prefix `r` in PD pool `spec`: (first, count).
fn pd_units(spec: &PoolSpec, r: Resource) -> Option<(u64, u64)> {
    if r.len > spec.len || spec.len - r.len > PD_BLOCK_MAX_LOG2 {
        return None;
    }
    let size = 1u64 << (spec.len - r.len);
    let first = spec.index_of(Resource::prefix(r.addr, spec.len))?;
    if first % size != 0 || first + size > spec.count {
        return None;
    }
    // Host bits below `r.len` must be zero.
    let host_mask = if r.len == 0 {
        u128::MAX
    } else {
        u128::MAX >> r.len
    };
    if u128::from(r.addr) & host_mask != 0 {
        return None;
    }
    Some((first, size))
}

/// A DUID copied out of a record (inline part plus extension records).
struct DuidBuf {
    len: usize,
    bytes: [u8; DUID_MAX],
}

impl DuidBuf {
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Inner {
    #[inline]
    fn slot_offset(&self, slot: u32) -> usize {
        HEADER_BYTES + slot as usize * RECORD_SIZE
    }

    #[inline]
    fn shard_of_slot(&self, slot: u32) -> usize {
        ((u64::from(slot) / u64::from(self.geo.chunk_records)) % u64::from(self.geo.shards))
            as usize
    }

    fn read_slot(&self, slot: u32) -> Result<Slot, record::Corrupt> {
        record::decode(&self.region.read::<RECORD_SIZE>(self.slot_offset(slot)))
    }

    /// A record an index refers to. It was validated at open or written by us, and records an
    /// index refers to are never modified, so a failure here is a broken invariant.
    fn read_main(&self, slot: u32) -> Record {
        match record::decode_trusted(&self.region.read::<RECORD_SIZE>(self.slot_offset(slot))) {
            Ok(Slot::Main(r)) => r,
            other => panic!("indexed slot {slot} holds {other:?}"),
        }
    }

    fn duid_of(&self, r: &Record) -> DuidBuf {
        let mut d = DuidBuf {
            len: usize::from(r.duid_len),
            bytes: [0; DUID_MAX],
        };
        if !r.has_ext() {
            d.bytes[..d.len].copy_from_slice(r.inline_bytes());
            return d;
        }
        d.bytes[..DUID_INLINE_PREFIX].copy_from_slice(r.inline_bytes());
        let mut at = DUID_INLINE_PREFIX;
        for ext in r.ext_slots() {
            if at == d.len {
                break;
            }
            match self.read_slot(ext) {
                Ok(Slot::Ext { len, data }) => {
                    let n = usize::from(len);
                    assert!(at + n <= d.len, "extension record longer than its DUID");
                    d.bytes[at..at + n].copy_from_slice(&data[..n]);
                    at += n;
                }
                other => panic!("extension slot {ext} holds {other:?}"),
            }
        }
        assert_eq!(at, d.len);
        d
    }

    fn key_matches(&self, r: &Record, key: &BindingKey<'_>) -> bool {
        if r.iaid != key.iaid
            || r.ia_type != key.ia_type
            || usize::from(r.duid_len) != key.duid.len()
        {
            return false;
        }
        if !r.has_ext() {
            return r.inline_bytes() == key.duid;
        }
        r.inline_bytes() == &key.duid[..DUID_INLINE_PREFIX]
            && self.duid_of(r).as_slice() == key.duid
    }

    /// The client's record in `pool_id` (any keyed state), newest first.
    fn find_key(
        &self,
        ks: &KeyShard,
        tag: u32,
        key: &BindingKey<'_>,
        want: impl FnMut(&Record) -> bool,
    ) -> Option<(u32, Record)> {
        self.find_key_raw(ks, tag, key, want)
            .map(|(slot, r, _)| (slot, r))
    }

    /// [`Inner::find_key`], with the record's bytes as they are in the mapping.
    fn find_key_raw(
        &self,
        ks: &KeyShard,
        tag: u32,
        key: &BindingKey<'_>,
        mut want: impl FnMut(&Record) -> bool,
    ) -> Option<(u32, Record, [u8; RECORD_SIZE])> {
        let mut best: Option<(u32, Record, [u8; RECORD_SIZE])> = None;
        let ia = ia_code(key.ia_type);
        ks.keys.find(tag, |slot| {
            let raw = self.region.read::<RECORD_SIZE>(self.slot_offset(slot));
            // Cheap check on the raw bytes first; decode only the client's own records.
            if !record::raw_key_matches(&raw, key.duid, key.iaid, ia) {
                return None;
            }
            let r = match record::decode_trusted(&raw) {
                Ok(Slot::Main(r)) => r,
                other => panic!("indexed slot {slot} holds {other:?}"),
            };
            if (!r.has_ext() || self.key_matches(&r, key))
                && want(&r)
                && best.is_none_or(|(_, b, _)| r.seq > b.seq)
            {
                best = Some((slot, r, raw));
            }
            None::<()>
        });
        best
    }

    /// The slot holding `res`. Reads only the identity bytes of records (which may belong to
    /// other key shards, updated in place meanwhile: see `map.rs`).
    fn find_res(&self, rs: &ResShard, tag: u32, res: Resource) -> Option<u32> {
        rs.res
            .find(tag, |slot| (self.identity(slot).1 == res).then_some(slot))
    }

    /// Pool id and resource of an indexed record, read from its identity bytes only.
    fn identity(&self, slot: u32) -> (u32, Resource) {
        let off = self.slot_offset(slot);
        let len = self.region.read_u8(off + record::PREFIX_LEN_OFFSET);
        let pool = record::rd_u32(&self.region.read::<4>(off + record::POOL_OFFSET));
        let addr = self.region.read::<16>(off + record::ADDR_OFFSET);
        (
            pool,
            Resource {
                addr: Ipv6Addr::from(addr),
                len,
            },
        )
    }

    /// The key index tag of a binding key, and its key shard.
    fn kshard(&self, key: &BindingKey<'_>) -> (u32, usize) {
        key_slot(key, self.kshards.len())
    }

    fn rshard(&self, res: Resource) -> (u32, usize) {
        let (tag, low) = split(hash::resource_hash(u128::from(res.addr), res.len));
        (tag, shard_of(low, self.rshards.len()))
    }

    fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        if self.failed.load(Ordering::Relaxed) {
            Err(StoreError::Unavailable)
        } else {
            Ok(())
        }
    }

    // ----- slots ---------------------------------------------------------------------------

    #[inline]
    fn release_deferred(&self, ks: &mut KeyShard) {
        if !ks.deferred.is_empty() {
            self.release_durable(ks);
        }
    }

    /// [`Inner::release_deferred`] of a non-empty queue (group-commit mode only).
    #[cold]
    fn release_durable(&self, ks: &mut KeyShard) {
        let durable = self.durable.durable_epoch.load(Ordering::Acquire);
        while let Some(&(epoch, slot)) = ks.deferred.front() {
            if epoch >= durable {
                break;
            }
            ks.deferred.pop_front();
            self.invalidate(slot);
            ks.free.push(slot);
        }
    }

    #[inline(always)]
    fn alloc_slot(&self, ks: &mut KeyShard, shard: usize) -> Result<u32, StoreError> {
        if ks.free.is_empty() {
            self.release_deferred(ks);
        }
        if let Some(s) = ks.free.pop() {
            return Ok(s);
        }
        if ks.fresh == ks.fresh_end {
            let c = u64::from(self.geo.chunk_records);
            if ks.fresh == ks.chunks * c {
                let chunk = shard as u64 + ks.chunks * u64::from(self.geo.shards);
                if chunk >= self.nchunks.load(Ordering::Acquire) {
                    self.grow(chunk)?;
                }
                ks.chunks += 1;
            }
            ks.fresh_slot = self.local_slot(shard, ks.fresh);
            ks.fresh_end = (ks.fresh / c + 1) * c;
        }
        debug_assert_eq!(ks.fresh_slot, self.local_slot(shard, ks.fresh));
        let slot = ks.fresh_slot;
        ks.fresh += 1;
        ks.fresh_slot += 1;
        Ok(slot)
    }

    /// Prefetch the next `n` slots [`Inner::alloc_slot`] will hand out in the shard (the tail
    /// of its free list, then never-used slots up to the end of the chunk it is filling), so
    /// new records are written to lines already in the cache.
    fn prefetch_free_slots(&self, ks: &KeyShard, n: usize) {
        let from_free = n.min(ks.free.len());
        for &slot in ks.free.iter().rev().take(from_free) {
            self.region.prefetch(self.slot_offset(slot), RECORD_SIZE);
        }
        // Fresh positions up to the end of the chunk `fresh` lies in: consecutive slots.
        let fresh = ks.fresh_end.min(ks.fresh + (n - from_free) as u64) - ks.fresh;
        for slot in ks.fresh_slot..ks.fresh_slot + fresh as u32 {
            self.region.prefetch(self.slot_offset(slot), RECORD_SIZE);
        }
    }

    /// The slot at shard-local position `pos` of `shard`.
    #[inline]
    fn local_slot(&self, shard: usize, pos: u64) -> u32 {
        // Positions are below slot numbers, so they fit 32 bits: a 32-bit division (a 64-bit
        // one costs several times more on some cores).
        let pos = u32::try_from(pos).expect("slot position fits 32 bits");
        let c = self.geo.chunk_records;
        let slot = (shard as u64 + u64::from(pos / c) * u64::from(self.geo.shards)) * u64::from(c)
            + u64::from(pos % c);
        u32::try_from(slot).expect("slot number fits 32 bits")
    }

    /// Make chunk `want` exist: extend and allocate the file by whole rounds of chunks.
    fn grow(&self, want: u64) -> Result<(), StoreError> {
        let _g = lock(&self.grow_lock);
        let have = self.nchunks.load(Ordering::Acquire);
        if want < have {
            return Ok(());
        }
        let shards = u64::from(self.geo.shards);
        let new = (want / shards + 1) * shards;
        if new > self.max_chunks {
            if self.grow_failures.fetch_add(1, Ordering::Relaxed) % 10_000 == 0 {
                tracing::error!(path = %self.path.display(), max_records = self.max_chunks * u64::from(self.geo.chunk_records),
                    "lease file is at its configured maximum size: refusing new grants (raise max_records)");
            }
            return Err(StoreError::Unavailable);
        }
        let off = (HEADER_BYTES as u64) + have * self.geo.chunk_bytes();
        let len = (new - have) * self.geo.chunk_bytes();
        if let Err(e) = map::fallocate(&self.file, off, len) {
            if self.grow_failures.fetch_add(1, Ordering::Relaxed) % 10_000 == 0 {
                tracing::error!(path = %self.path.display(), error = %e, bytes = len,
                    "cannot grow the lease file: refusing new grants until space is available; existing leases are intact");
            }
            // Leave the file as it was: a partly allocated tail is beyond `nchunks` and is
            // ignored (and trimmed to whole chunks) at the next open.
            return Err(StoreError::Unavailable);
        }
        self.region
            .set_valid_len(HEADER_BYTES + (new * self.geo.chunk_bytes()) as usize);
        self.nchunks.store(new, Ordering::Release);
        tracing::debug!(chunks = new, "lease file grown");
        Ok(())
    }

    fn invalidate(&self, slot: u32) {
        self.region
            .write_u8_release(self.slot_offset(slot) + STATE_OFFSET, STATE_EMPTY);
    }

    /// Write a whole record into an unreferenced slot: everything but the state byte first,
    /// then the state byte, so a write cut short by `kill -9` leaves an empty slot.
    fn write_record(&self, slot: u32, bytes: &[u8; RECORD_SIZE]) {
        self.write_record_words(slot, &record::to_words(bytes));
    }

    /// [`Inner::write_record`] of a record held as words.
    #[inline]
    fn write_record_words(&self, slot: u32, w: &Words) {
        let off = self.slot_offset(slot);
        debug_assert_eq!(
            self.region.read_u8(off + STATE_OFFSET),
            STATE_EMPTY,
            "slot {slot} not empty"
        );
        let rec = self.region.span(off, RECORD_SIZE);
        for (i, w) in w.iter().enumerate().skip(1) {
            rec.write(i * 8, &w.to_le_bytes());
        }
        // Word 0 with the state byte still empty, then the state byte.
        let state = record::le_at(w, STATE_OFFSET, 1);
        rec.write(0, &(w[0] & !(0xff << (STATE_OFFSET * 8))).to_le_bytes());
        rec.write_u8_release(STATE_OFFSET, state as u8);
    }

    /// Write extension records for a long DUID, and the inline area of its main record into
    /// `inline`.
    fn write_duid(
        &self,
        ks: &mut KeyShard,
        shard: usize,
        duid: &[u8],
        inline: &mut [u8; DUID_INLINE_MAX],
    ) -> Result<(), StoreError> {
        if duid.len() <= DUID_INLINE_MAX {
            Record::fill_inline_duid(inline, duid, [u32::MAX; 2]);
            return Ok(());
        }
        let rest = &duid[DUID_INLINE_PREFIX..];
        let mut ext = [u32::MAX; 2];
        for (i, part) in rest.chunks(EXT_DATA).enumerate() {
            let slot = match self.alloc_slot(ks, shard) {
                Ok(s) => s,
                Err(e) => {
                    for &s in ext.iter().filter(|&&s| s != u32::MAX) {
                        self.invalidate(s);
                        ks.free.push(s);
                    }
                    return Err(e);
                }
            };
            self.write_record(slot, &record::encode_ext(part));
            ext[i] = slot;
        }
        Record::fill_inline_duid(inline, duid, ext);
        Ok(())
    }

    fn free_ext(&self, ks: &mut KeyShard, r: &Record) {
        if r.has_ext() {
            for s in r.ext_slots() {
                if s != u32::MAX {
                    self.invalidate(s);
                    ks.free.push(s);
                }
            }
        }
    }

    /// Retire a superseded slot: at once in `Mapped` mode; after the new version is durable
    /// in group-commit mode (so a power loss cannot lose both).
    fn retire(&self, ks: &mut KeyShard, slot: u32) {
        if self.durable.group.is_some() {
            let epoch = self.durable.epoch.load(Ordering::SeqCst);
            ks.deferred.push_back((epoch, slot));
        } else {
            self.invalidate(slot);
            ks.free.push(slot);
        }
    }

    #[inline]
    fn account(ks: &mut KeyShard, pool: u32, old: Option<BindingState>, new: Option<BindingState>) {
        let was = old == Some(BindingState::Active);
        let is = new == Some(BindingState::Active);
        if was != is {
            let c = ks.active.get_mut(pool);
            if is {
                *c += 1;
            } else {
                assert!(*c > 0, "active count underflow");
                *c -= 1;
            }
        }
        match (old.is_some(), new.is_some()) {
            (false, true) => ks.records += 1,
            (true, false) => ks.records -= 1,
            _ => {}
        }
    }

    /// Update of the record in `old_slot` (referenced by both indexes): in place in `Mapped`
    /// mode, copy-on-write in group-commit mode.
    fn update(
        &self,
        ks: &mut KeyShard,
        shard: usize,
        ktag: u32,
        old_slot: u32,
        old: &Record,
        new: &mut Record,
    ) -> Result<(), StoreError> {
        // A new version of the binding: the partner has not seen it yet (RFC 8156 §5.2.2).
        new.seq = self.next_seq();
        new.partner_acked = false;
        self.rewrite(ks, shard, ktag, old_slot, old, new)
    }

    /// Rewrite `old_slot` as `new`, sequence number as set by the caller.
    fn rewrite(
        &self,
        ks: &mut KeyShard,
        shard: usize,
        ktag: u32,
        old_slot: u32,
        old: &Record,
        new: &mut Record,
    ) -> Result<(), StoreError> {
        debug_assert_eq!(old.resource, new.resource);
        debug_assert_eq!(old.pool_id, new.pool_id);
        new.duid_inline = old.duid_inline;
        new.duid_len = old.duid_len;
        if self.durable.group.is_none() {
            return self.rewrite_in_place(ks, shard, ktag, old_slot, old, new);
        }
        let slot = self.alloc_slot(ks, shard)?;
        self.write_record_words(slot, &new.words());
        let was_keyed = old.state.is_keyed();
        let is_keyed = new.state.is_keyed();
        match (was_keyed, is_keyed) {
            (true, true) => assert!(ks.keys.replace(ktag, old_slot, slot)),
            (true, false) => assert!(ks.keys.remove(ktag, old_slot)),
            (false, true) => {
                ks.keys.insert(ktag, slot);
                self.kshards[shard].publish(ks);
            }
            (false, false) => {}
        }
        let (rtag, rsi) = self.rshard(new.resource);
        assert!(
            lock(&self.rshards[rsi]).res.replace(rtag, old_slot, slot),
            "resource index lost a record"
        );
        self.retire(ks, old_slot);
        Self::account(ks, new.pool_id, Some(old.state), Some(new.state));
        Ok(())
    }

    /// `Mapped` mode: update the record in `slot` where it is. The new record is first written
    /// to the shard's journal slot (state byte last), then the slot is marked empty, its
    /// mutable bytes rewritten and its state byte set, then the journal is emptied again. A
    /// `kill -9` at any point leaves a complete copy (old in place, or new in the journal, or
    /// both: open keeps the higher sequence number) and no torn record. The resource index is
    /// not touched (same slot), nor the key index unless the record enters or leaves a keyed
    /// state. Not for group commit: a power loss may write back the journal and the slot's page
    /// in any order, so that mode keeps copy-on-write.
    fn rewrite_in_place(
        &self,
        ks: &mut KeyShard,
        shard: usize,
        ktag: u32,
        slot: u32,
        old: &Record,
        new: &Record,
    ) -> Result<(), StoreError> {
        self.write_in_place(ks, shard, slot, &new.words())?;
        match (old.state.is_keyed(), new.state.is_keyed()) {
            (true, false) => assert!(ks.keys.remove(ktag, slot), "key index lost a record"),
            (false, true) => {
                ks.keys.insert(ktag, slot);
                self.kshards[shard].publish(ks);
            }
            _ => {}
        }
        Self::account(ks, new.pool_id, Some(old.state), Some(new.state));
        Ok(())
    }

    /// The journal protocol of [`Inner::rewrite_in_place`]: the record `w` (same identity bytes
    /// as the record in `slot`) to the journal slot, then into `slot`, then the journal emptied.
    #[inline]
    fn write_in_place(
        &self,
        ks: &mut KeyShard,
        shard: usize,
        slot: u32,
        w: &Words,
    ) -> Result<(), StoreError> {
        let journal = match ks.journal {
            Some(j) => j,
            None => {
                let j = self.alloc_slot(ks, shard)?;
                ks.journal = Some(j);
                j
            }
        };
        self.write_record_words(journal, w);
        let off = self.slot_offset(slot);
        let rec = self.region.span(off, RECORD_SIZE);
        rec.write_u8_fenced(STATE_OFFSET, STATE_EMPTY);
        for r in record::MUTABLE_RANGES {
            let mut at = r.start;
            while at < r.end {
                let n = (r.end - at).min(8);
                let v = record::le_at(w, at, n);
                rec.write(at, &v.to_le_bytes()[..n]);
                at += n;
            }
        }
        debug_assert_eq!(
            {
                let mut b = self.region.read::<RECORD_SIZE>(off);
                b[STATE_OFFSET] = record::le_at(w, STATE_OFFSET, 1) as u8;
                b
            },
            record::from_words(w),
            "identity bytes changed by an in-place update"
        );
        rec.write_u8_release(STATE_OFFSET, record::le_at(w, STATE_OFFSET, 1) as u8);
        self.invalidate(journal);
        Ok(())
    }

    /// Delete the record in `slot` and free its resource.
    fn delete(&self, ks: &mut KeyShard, ktag: Option<u32>, slot: u32, r: &Record) {
        if r.state.is_keyed() {
            let ktag = ktag.unwrap_or_else(|| {
                let d = self.duid_of(r);
                split(hash::key_hash(d.as_slice(), r.iaid, ia_code(r.ia_type))).0
            });
            assert!(ks.keys.remove(ktag, slot), "key index lost a record");
        }
        let pools = self.pools.read().expect("pool registry poisoned");
        if r.ia_type == IaType::Pd {
            if let Some(p) = pools.get(&r.pool_id) {
                if let Some((first, n)) = pd_units(&p.spec, r.resource) {
                    let mut bits = lock(&p.bits);
                    for u in first..first + n {
                        bits.set_free(u);
                    }
                }
            }
        }
        let (rtag, rsi) = self.rshard(r.resource);
        assert!(
            lock(&self.rshards[rsi]).res.remove(rtag, slot),
            "resource index lost a record"
        );
        drop(pools);
        self.invalidate(slot);
        ks.free.push(slot);
        self.free_ext(ks, r);
        Self::account(ks, r.pool_id, Some(r.state), None);
    }

    fn new_record(
        &self,
        key: &BindingKey<'_>,
        pool_id: u32,
        resource: Resource,
        lifetimes: Lifetimes,
        now: u64,
    ) -> Record {
        Record {
            state: BindingState::Active,
            ia_type: key.ia_type,
            resource,
            pool_id,
            iaid: key.iaid,
            lifetimes,
            cltt: now,
            partner_expires: 0,
            seq: 0,
            partner_acked: false,
            alloc_server: self.server_id,
            duid_len: key.duid.len() as u8,
            duid_inline: [0; DUID_INLINE_MAX],
        }
    }

    /// Insert a new binding of `rec.resource`, which the caller has checked is free of
    /// bindings (under the resource shard lock that `claim` takes) or reserved in a bitmap.
    /// Returns false (and writes nothing) if the resource index has it after all.
    fn claim(
        &self,
        ks: &mut KeyShard,
        shard: usize,
        ktag: u32,
        rec: &mut Record,
        duid: &[u8],
    ) -> Result<bool, StoreError> {
        let rloc = self.rshard(rec.resource);
        let seq = self.next_seq();
        self.claim_at(ks, shard, ktag, rec, duid, rloc, seq)
    }

    /// [`Inner::claim`] with the resource's [`Inner::rshard`] (`rloc`) and the update's
    /// sequence number already known (a batch computes the one and reserves the other).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn claim_at(
        &self,
        ks: &mut KeyShard,
        shard: usize,
        ktag: u32,
        rec: &mut Record,
        duid: &[u8],
        (rtag, rsi): (u32, usize),
        seq: u64,
    ) -> Result<bool, StoreError> {
        let slot = self.alloc_slot(ks, shard)?;
        if let Err(e) = self.write_duid(ks, shard, duid, &mut rec.duid_inline) {
            ks.free.push(slot);
            return Err(e);
        }
        rec.seq = seq;
        {
            let mut rs = lock(&self.rshards[rsi]);
            // Encoded under the lock: the locked instruction that takes it waits for everything
            // before it, the checksum's long dependency chain included, while after it the
            // chain overlaps the index walk below.
            let words = rec.words();
            // The absence check and the index entry in one walk; the record is written while
            // the resource shard is still locked (before anyone can read the entry), so no one
            // else can bind the resource between the check and the record reaching the
            // mapping.
            let res = rec.resource;
            if !rs
                .res
                .insert_unless(rtag, slot, |s| self.identity(s).1 == res)
            {
                drop(rs);
                self.free_ext(ks, rec);
                ks.free.push(slot);
                return Ok(false);
            }
            self.write_record_words(slot, &words);
            self.rshards[rsi].publish(&rs);
        }
        ks.keys.insert(ktag, slot);
        self.kshards[shard].publish(ks);
        Self::account(ks, rec.pool_id, None, Some(rec.state));
        Ok(true)
    }

    fn is_bound(&self, res: Resource) -> bool {
        let (rtag, rsi) = self.rshard(res);
        self.find_res(&lock(&self.rshards[rsi]), rtag, res)
            .is_some()
    }

    // ----- prefix pools --------------------------------------------------------------------

    /// The registered prefix pool `spec`, registering it (one scan of the resource index) if
    /// it is new. Called with a key shard held (lock order: key shard → registry → resource).
    fn pd_pool(&self, spec: &PoolSpec) -> Arc<PdPool> {
        if let Some(p) = self
            .pools
            .read()
            .expect("pool registry poisoned")
            .get(&spec.id)
        {
            if p.spec == *spec {
                return p.clone();
            }
        }
        let mut pools = self.pools.write().expect("pool registry poisoned");
        if let Some(p) = pools.get(&spec.id) {
            if p.spec == *spec {
                return p.clone();
            }
            tracing::warn!(
                pool = spec.id,
                "prefix pool geometry changed: rebuilding its free bitmap"
            );
        }
        let mut bits = FreeBitmap::new_all_free(spec.count);
        for rs in self.rshards.iter() {
            let rs = lock(rs);
            for (_, slot) in rs.res.iter() {
                let (pool_id, res) = self.identity(slot);
                if pool_id == spec.id && res.len != 128 {
                    mark_used(&mut bits, spec, res);
                }
            }
        }
        let p = Arc::new(PdPool {
            spec: *spec,
            bits: Mutex::new(bits),
        });
        pools.insert(spec.id, p.clone());
        p
    }

    // ----- operations ----------------------------------------------------------------------

    /// Refuse a request no store could serve (an invalid key, a pool of another type or of no
    /// size) and, for a grant, a table that has failed closed.
    fn check_request(&self, req: &AllocRequest<'_>, commit: bool) -> Result<(), StoreError> {
        let (key, pool) = (&req.key, req.pool);
        if !valid_key(key) || key.ia_type != pool.ia_type || pool.count == 0 {
            debug_assert!(false, "invalid allocation request");
            return Err(StoreError::Unavailable);
        }
        if commit {
            self.check_writable()?;
        }
        Ok(())
    }

    fn allocate(&self, req: &AllocRequest<'_>, commit: bool) -> Result<Lease, StoreError> {
        self.check_request(req, commit)?;
        let d = hash::duid_hash(req.key.duid);
        let (ktag, shard) = key_slot_of(d, &req.key, self.kshards.len());
        // The grant's cache misses overlap instead of following one another: the key's index
        // bucket and its first candidate's resource-index bucket now (no lock: a stale guess
        // costs a useless prefetch), the slot a new record would take once the shard is
        // locked, all before the probe that waits for the first of them.
        self.kshards[shard].prefetch_bucket(ktag);
        if let Some(first) = na_first(req, d) {
            let (rtag, rsi) = self.rshard(first);
            self.rshards[rsi].prefetch_bucket(rtag);
        }
        let mut ks = lock(&self.kshards[shard]);
        if commit {
            self.prefetch_free_slots(&ks, 1);
        }
        self.allocate_locked(&mut ks, shard, ktag, d, req, commit)
    }

    /// [`Inner::allocate`] of a checked request, its key shard locked; `d` is the
    /// [`hash::duid_hash`] of its DUID (the caller hashed the key with it).
    #[allow(clippy::too_many_arguments)]
    fn allocate_locked(
        &self,
        ks: &mut KeyShard,
        shard: usize,
        ktag: u32,
        d: u64,
        req: &AllocRequest<'_>,
        commit: bool,
    ) -> Result<Lease, StoreError> {
        let key = &req.key;
        let pool = req.pool;
        // Affinity: the client's own record in this pool, whatever its state, still holds its
        // resource (the resource index points at it).
        if let Some((slot, old)) = self.find_key(ks, ktag, key, |r| r.pool_id == pool.id) {
            let lease_rec = Record {
                state: BindingState::Active,
                lifetimes: req.lifetimes,
                cltt: req.now,
                ..old
            };
            if commit {
                let mut new = lease_rec;
                new.alloc_server = if old.state == BindingState::Active {
                    old.alloc_server
                } else {
                    self.server_id
                };
                self.update(ks, shard, ktag, slot, &old, &mut new)?;
            }
            return Ok(lease_of(&lease_rec));
        }

        let mut rec = self.new_record(
            key,
            pool.id,
            Resource::address(Ipv6Addr::UNSPECIFIED),
            req.lifetimes,
            req.now,
        );
        match pool.ia_type {
            IaType::Na => self.allocate_na(ks, shard, ktag, d, req, &mut rec, commit)?,
            IaType::Pd => self.allocate_pd(ks, shard, ktag, d, req, &mut rec, commit)?,
        }
        Ok(lease_of(&rec))
    }

    #[allow(clippy::too_many_arguments)]
    fn allocate_na(
        &self,
        ks: &mut KeyShard,
        shard: usize,
        ktag: u32,
        d: u64,
        req: &AllocRequest<'_>,
        rec: &mut Record,
        commit: bool,
    ) -> Result<(), StoreError> {
        let pool = req.pool;
        let mut try_one = |ks: &mut KeyShard, r: Resource| -> Result<bool, StoreError> {
            if req.reserved.is_reserved(r) {
                return Ok(false);
            }
            rec.resource = r;
            if commit {
                self.claim(ks, shard, ktag, rec, req.key.duid)
            } else {
                Ok(!self.is_bound(r))
            }
        };
        if let Some(h) = na_hint(req) {
            if try_one(ks, h)? {
                return Ok(());
            }
        }
        for probe in 0..NA_HASH_PROBES.min(pool.count) {
            let i = hash::na_candidate(d, req.key.iaid, probe, pool.count);
            if try_one(ks, pool.nth(i).expect("candidate in pool"))? {
                return Ok(());
            }
        }
        if pool.count <= NA_LINEAR_SCAN_MAX {
            let start = hash::na_candidate(d, req.key.iaid, 0, pool.count);
            for k in 1..pool.count {
                if try_one(ks, pool.nth((start + k) % pool.count).expect("in pool"))? {
                    return Ok(());
                }
            }
        }
        Err(StoreError::PoolExhausted(pool.id))
    }

    #[allow(clippy::too_many_arguments)]
    fn allocate_pd(
        &self,
        ks: &mut KeyShard,
        shard: usize,
        ktag: u32,
        d: u64,
        req: &AllocRequest<'_>,
        rec: &mut Record,
        commit: bool,
    ) -> Result<(), StoreError> {
        let spec = req.pool;
        let p = self.pd_pool(spec);
        // Prefix length: the pool's, or a shorter hinted one (a block of aligned pool units)
        // when the pool has room for it (RFC 8415 §18.3.1: the hint is advisory).
        let mut want_len = spec.len;
        let mut exact = None;
        if let Some(h) = req.hint {
            if h.len < spec.len
                && spec.len - h.len <= PD_BLOCK_MAX_LOG2
                && (1u64 << (spec.len - h.len)) <= spec.count
            {
                want_len = h.len;
            }
            if !h.addr.is_unspecified() && pd_units(spec, h).is_some() {
                want_len = h.len;
                exact = Some(h);
            }
        }
        let size = 1u64 << (spec.len - want_len);
        let pools = self.pools.read().expect("pool registry poisoned");
        let mut bits = lock(&p.bits);
        let block_ok = |bits: &FreeBitmap, first: u64| -> bool {
            (first..first + size).all(|u| bits.is_free(u))
                && !(0..size).any(|k| {
                    req.reserved
                        .is_reserved(spec.nth(first + k).expect("in pool"))
                })
                && !req
                    .reserved
                    .is_reserved(block_resource(spec, first, want_len))
        };
        // An exact hinted prefix when it is free; otherwise a block of the hinted length.
        let mut chosen = exact
            .and_then(|h| pd_units(spec, h))
            .map(|(f, _)| f)
            .filter(|&f| block_ok(&bits, f));
        if chosen.is_none() {
            let start = hash::na_candidate(d, req.key.iaid, 0, spec.count);
            let mut pos = start;
            // Bounded: every step moves past one block; reservations are few.
            for _ in 0..spec.count / size + 1 {
                match bits.find_free_block(pos, size) {
                    None => break,
                    Some(f) if block_ok(&bits, f) => {
                        chosen = Some(f);
                        break;
                    }
                    Some(f) => pos = f + size,
                }
            }
        }
        let Some(first) = chosen else {
            return Err(StoreError::PoolExhausted(spec.id));
        };
        rec.resource = block_resource(spec, first, want_len);
        if !commit {
            return Ok(());
        }
        for u in first..first + size {
            bits.set_used(u);
        }
        match self.claim(ks, shard, ktag, rec, req.key.duid) {
            Ok(true) => Ok(()),
            Ok(false) => {
                // The bitmap said free but the resource index has it: the bitmap is the
                // authority for registered pools, so this is a broken invariant.
                panic!("prefix {:?} free in bitmap but bound", rec.resource);
            }
            Err(e) => {
                for u in first..first + size {
                    bits.set_free(u);
                }
                drop(pools);
                Err(e)
            }
        }
    }

    fn bind(
        &self,
        key: &BindingKey<'_>,
        pool_id: u32,
        resource: Resource,
        lifetimes: Lifetimes,
        now: u64,
    ) -> Result<Lease, StoreError> {
        if !valid_key(key) || (key.ia_type == IaType::Na) != (resource.len == 128) {
            debug_assert!(false, "invalid bind request");
            return Err(StoreError::Unavailable);
        }
        self.check_writable()?;
        let (ktag, shard) = self.kshard(key);
        let mut ks = lock(&self.kshards[shard]);
        let ks = &mut *ks;
        if let Some((slot, old)) = self.find_key(ks, ktag, key, |r| r.resource == resource) {
            let mut new = Record {
                state: BindingState::Active,
                lifetimes,
                cltt: now,
                pool_id,
                ..old
            };
            if new.pool_id != old.pool_id {
                // The resource moved to another pool id (reconfiguration): keep the record's.
                new.pool_id = old.pool_id;
            }
            self.update(ks, shard, ktag, slot, &old, &mut new)?;
            return Ok(lease_of(&new));
        }
        let mut rec = self.new_record(key, pool_id, resource, lifetimes, now);
        // Prefix pools: the bitmap must agree. Hold the registry (read) so a pool being
        // registered cannot miss this binding.
        let pools = self.pools.read().expect("pool registry poisoned");
        let pd = if key.ia_type == IaType::Pd {
            pools.get(&pool_id).cloned()
        } else {
            None
        };
        let units = pd
            .as_ref()
            .and_then(|p| pd_units(&p.spec, resource).map(|u| (p, u)));
        let mut bits = units.as_ref().map(|(p, _)| lock(&p.bits));
        if let (Some(bits), Some((_, (first, n)))) = (bits.as_mut(), units.as_ref()) {
            if !(*first..first + n).all(|u| bits.is_free(u)) {
                return Err(StoreError::Conflict);
            }
        }
        if !self.claim(ks, shard, ktag, &mut rec, key.duid)? {
            return Err(StoreError::Conflict);
        }
        if let (Some(bits), Some((_, (first, n)))) = (bits.as_mut(), units.as_ref()) {
            for u in *first..first + n {
                bits.set_used(u);
            }
        }
        Ok(lease_of(&rec))
    }

    fn transition(
        &self,
        key: &BindingKey<'_>,
        resource: Resource,
        now: u64,
        to: BindingState,
        quarantine_secs: u32,
    ) -> Result<(), StoreError> {
        if !valid_key(key) {
            return Err(StoreError::NoBinding);
        }
        self.check_writable()?;
        let (ktag, shard) = self.kshard(key);
        let mut ks = lock(&self.kshards[shard]);
        let ks = &mut *ks;
        // RFC 8415 §18.3.7/§18.3.8: only a binding the client holds can be released or declined.
        let Some((slot, old)) = self.find_key(ks, ktag, key, |r| {
            r.resource == resource && r.state == BindingState::Active
        }) else {
            return Err(StoreError::NoBinding);
        };
        let mut new = Record {
            state: to,
            cltt: now,
            ..old
        };
        if to == BindingState::Abandoned {
            new.lifetimes = Lifetimes {
                preferred: 0,
                valid: quarantine_secs,
            };
        }
        self.update(ks, shard, ktag, slot, &old, &mut new)
    }

    fn lookup(&self, key: &BindingKey<'_>, pool: &PoolSpec, now: u64) -> Option<Lease> {
        if !valid_key(key) {
            return None;
        }
        let (ktag, shard) = self.kshard(key);
        let ks = lock(&self.kshards[shard]);
        self.find_key(&ks, ktag, key, current_in(pool, now))
            .map(|(_, r)| lease_of(&r))
    }

    /// Lookup-and-renew under one lock and one index probe (see [`LeaseStore::renew`]), the
    /// shard already locked. `seq` is a sequence number reserved for this update, used if it
    /// is newer than the record's. `only`, when known, is the only slot the shard's index holds
    /// under `ktag` (the in-place path then needs no probe).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn renew_locked(
        &self,
        ks: &mut KeyShard,
        shard: usize,
        key: &BindingKey<'_>,
        ktag: u32,
        pool: &PoolSpec,
        lifetimes: Lifetimes,
        now: u64,
        seq: Option<u64>,
        only: Option<u32>,
    ) -> Option<Result<Lease, StoreError>> {
        if self.durable.group.is_some() {
            // Copy-on-write (see `rewrite`).
            let (slot, old) = self.find_key(ks, ktag, key, current_in(pool, now))?;
            if let Err(e) = self.check_writable() {
                return Some(Err(e));
            }
            let mut new = Record {
                lifetimes,
                cltt: now,
                ..old
            };
            return Some(
                self.update(ks, shard, ktag, slot, &old, &mut new)
                    .map(|()| lease_of(&new)),
            );
        }
        // In place, patching the record's words: the state stays active, so neither index nor
        // the counters change.
        let (slot, w) = if key.duid.len() <= DUID_INLINE_MAX {
            self.find_current_inline(ks, ktag, key, pool, now, only)
        } else {
            self.find_key_raw(ks, ktag, key, current_in(pool, now))
                .map(|(slot, _, raw)| (slot, record::to_words(&raw)))
        }?;
        if let Err(e) = self.check_writable() {
            return Some(Err(e));
        }
        // The new version must sort after the old one (open keeps the higher sequence number
        // of a record and its journal copy).
        let seq = match seq {
            Some(s) if s > record::raw::seq(&w) => s,
            _ => self.next_seq(),
        };
        let w = record::renewed(&w, lifetimes, now, seq);
        Some(self.write_in_place(ks, shard, slot, &w).map(|()| Lease {
            resource: record::raw::resource(&w),
            lifetimes,
            cltt: now,
            expires_at: record::expiry(now, lifetimes.valid),
        }))
    }

    /// [`Inner::find_key_raw`] with [`current_in`], for a DUID held inline, from the records'
    /// words alone (nothing is decoded): the renew fast path. `only`: the only slot under
    /// `ktag`, when the caller knows it (no index probe).
    fn find_current_inline(
        &self,
        ks: &KeyShard,
        ktag: u32,
        key: &BindingKey<'_>,
        pool: &PoolSpec,
        now: u64,
        only: Option<u32>,
    ) -> Option<(u32, Words)> {
        let want = record::raw::InlineKey::new(
            key.duid,
            key.iaid,
            ia_code(key.ia_type),
            pool.id,
            record::state_code(BindingState::Active),
        );
        let current = |slot: u32| {
            let w = self.region.read_words(self.slot_offset(slot));
            (want.matches(|i| w[i]) && record::raw::expires_at(&w) > now).then_some((slot, w))
        };
        if let Some(slot) = only {
            return current(slot);
        }
        let mut best: Option<(u32, Words)> = None;
        ks.keys.find(ktag, |slot| {
            if let Some((slot, w)) = current(slot) {
                if best.is_none_or(|(_, b)| record::raw::seq(&w) > record::raw::seq(&b)) {
                    best = Some((slot, w));
                }
            }
            None::<()>
        });
        best
    }

    fn renew(
        &self,
        key: &BindingKey<'_>,
        pool: &PoolSpec,
        lifetimes: Lifetimes,
        now: u64,
    ) -> Option<Result<Lease, StoreError>> {
        if !valid_key(key) {
            return None;
        }
        let (ktag, shard) = self.kshard(key);
        let mut ks = lock(&self.kshards[shard]);
        self.renew_locked(&mut ks, shard, key, ktag, pool, lifetimes, now, None, None)
    }

    /// Prepare one chunk (at most [`BATCH`] keys) of a batched call: hash every key and
    /// prefetch its index bucket (no lock), then group the keys by shard. Invalid keys are left
    /// out.
    fn prepare_batch<'k>(
        &self,
        keys: impl ExactSizeIterator<Item = &'k BindingKey<'k>>,
        b: &mut KeyBatch,
        prefetch: bool,
    ) {
        assert!(keys.len() <= BATCH);
        let n = self.kshards.len();
        b.len = 0;
        for (i, key) in keys.enumerate() {
            if !valid_key(key) {
                continue;
            }
            let d = hash::duid_hash(key.duid);
            let (tag, shard) = key_slot_of(d, key, n);
            if prefetch {
                self.kshards[shard].prefetch_bucket(tag);
            }
            b.tags[i] = tag;
            b.duid_hashes[i] = d;
            b.unsorted[b.len] = (shard as u32, i as u32);
            b.len += 1;
        }
        // A stable counting sort by shard: keys of one shard keep their order.
        let starts = &mut b.starts[..=n];
        starts.fill(0);
        for &(shard, _) in &b.unsorted[..b.len] {
            starts[shard as usize + 1] += 1;
        }
        for s in 1..=n {
            starts[s] += starts[s - 1];
        }
        for &e in &b.unsorted[..b.len] {
            let at = &mut starts[e.0 as usize];
            b.order[usize::from(*at)] = e;
            *at += 1;
        }
    }

    /// Run `act(shard, position, tag, probed)` on every key of a prepared chunk, in shard order
    /// and key order within a shard, with one lock per shard: under the lock of a group's
    /// shard its keys are probed and their records prefetched, then the previous group, whose
    /// shard is still locked, is acted on. The cache misses of one group so overlap the work
    /// on the one before. `probed` is the key's [`KeyBatch::probed`]: the probe and `act`
    /// run under one lock hold, and a key whose tag an earlier key of the group carries is
    /// [`Probed::Several`], so it stays true whatever `act` files under other keys' tags.
    /// This is the only place that holds two key shards at once, and it takes them in
    /// ascending order (see the lock order in `docs/lease-table.md`).
    fn run_batch(
        &self,
        b: &mut KeyBatch,
        mut ahead: impl FnMut(usize, usize, u32),
        mut locked: impl FnMut(&KeyShard, usize, usize),
        mut act: impl FnMut(&mut KeyShard, usize, usize, u32, Probed),
    ) {
        let (order, tags, probed) = (&b.order[..b.len], &b.tags, &mut b.probed);
        let mut run = |held: HeldGroup<'_>, probed: &[Probed; BATCH]| {
            let (mut ks, shard, group) = held;
            for &(_, i) in group {
                let i = i as usize;
                act(&mut ks, shard, i, tags[i], probed[i]);
            }
        };
        let mut prev: Option<HeldGroup<'_>> = None;
        let mut groups = order.chunk_by(|a, b| a.0 == b.0).peekable();
        let mut ahead = |group: &[(u32, u32)]| {
            for &(shard, i) in group {
                ahead(shard as usize, i as usize, tags[i as usize]);
            }
        };
        if let Some(first) = groups.peek() {
            ahead(first);
        }
        while let Some(group) = groups.next() {
            if let Some(next) = groups.peek() {
                ahead(next);
            }
            let shard = group[0].0 as usize;
            let ks = lock(&self.kshards[shard]);
            // Tags seen earlier in the group (a filter: a false hit only costs a probe).
            let mut seen = [0u64; 16];
            for &(_, i) in group {
                let i = i as usize;
                let bit = tags[i] as usize % 1024;
                let repeated = seen[bit / 64] & (1 << (bit % 64)) != 0;
                seen[bit / 64] |= 1 << (bit % 64);
                let mut found = 0;
                let mut slot0 = 0;
                ks.keys.find(tags[i], |slot| {
                    self.region.prefetch(self.slot_offset(slot), RECORD_SIZE);
                    found += 1;
                    slot0 = slot;
                    None::<()>
                });
                probed[i] = match found {
                    _ if repeated => Probed::Several,
                    0 => Probed::None,
                    1 => Probed::Only(slot0),
                    _ => Probed::Several,
                };
            }
            locked(&ks, shard, group.len());
            if let Some(held) = prev.take() {
                run(held, probed);
            }
            prev = Some((ks, shard, group));
        }
        if let Some(held) = prev {
            run(held, probed);
        }
    }

    /// [`LeaseTable::renew_many`]: per chunk, [`Inner::prepare_batch`], then
    /// [`Inner::run_batch`] renews each shard's keys. A chunk's sequence numbers are reserved
    /// with one atomic add. A key listed twice is renewed twice, in order, as by `renew` one
    /// key at a time.
    fn renew_many(
        &self,
        keys: &[BindingKey<'_>],
        pool: &PoolSpec,
        lifetimes: Lifetimes,
        now: u64,
        out: &mut [Option<Result<Lease, StoreError>>],
    ) {
        assert_eq!(keys.len(), out.len(), "one result per key");
        for (keys, out) in keys.chunks(BATCH).zip(out.chunks_mut(BATCH)) {
            out.fill(None);
            with_batch(|b| {
                let b = &mut b.keys;
                self.prepare_batch(keys.iter(), b, true);
                let mut seq = self.next_seq.fetch_add(b.len as u64, Ordering::Relaxed);
                self.run_batch(
                    b,
                    |_, _, _| {},
                    |_, _, _| {},
                    |ks, shard, i, tag, probed| {
                        let only = match probed {
                            Probed::Only(slot) => Some(slot),
                            Probed::None | Probed::Several => None,
                        };
                        out[i] = self.renew_locked(
                            ks,
                            shard,
                            &keys[i],
                            tag,
                            pool,
                            lifetimes,
                            now,
                            Some(seq),
                            only,
                        );
                        seq += 1;
                    },
                );
            });
        }
    }

    /// [`LeaseTable::lookup_many`]: per chunk, [`Inner::prepare_batch`], then
    /// [`Inner::run_batch`] looks each shard's keys up.
    fn lookup_many(
        &self,
        keys: &[BindingKey<'_>],
        pool: &PoolSpec,
        now: u64,
        out: &mut [Option<Lease>],
    ) {
        assert_eq!(keys.len(), out.len(), "one result per key");
        for (keys, out) in keys.chunks(BATCH).zip(out.chunks_mut(BATCH)) {
            out.fill(None);
            with_batch(|b| {
                let b = &mut b.keys;
                self.prepare_batch(keys.iter(), b, true);
                self.run_batch(
                    b,
                    |_, _, _| {},
                    |_, _, _| {},
                    |ks, _, i, tag, _| {
                        out[i] = self
                            .find_key(ks, tag, &keys[i], current_in(pool, now))
                            .map(|(_, r)| lease_of(&r));
                    },
                );
            });
        }
    }

    /// [`LeaseTable::allocate_many`]: per chunk, [`Inner::prepare_batch`] hashes the keys and
    /// each address request's first candidate is worked out, then [`Inner::run_batch`]
    /// allocates each shard's requests in order, prefetching the next group's key-index and
    /// resource-index buckets as it goes, so the misses of a chunk overlap instead of adding
    /// up. A new client's first candidate (the common case: its key probed absent, the
    /// address not reserved) is claimed straight away ([`Inner::claim_first`]); anything
    /// else, or a first candidate found bound, goes the way of [`Inner::allocate`].
    fn allocate_many(
        &self,
        reqs: &[AllocRequest<'_>],
        out: &mut [Option<Result<Lease, StoreError>>],
    ) {
        assert_eq!(reqs.len(), out.len(), "one result per request");
        for (reqs, out) in reqs.chunks(BATCH).zip(out.chunks_mut(BATCH)) {
            out.fill(None);
            with_batch(|b| {
                let ShardBatch {
                    keys: b,
                    first: firsts,
                } = b;
                self.prepare_batch(reqs.iter().map(|r| &r.key), b, false);
                for &(_, i) in &b.unsorted[..b.len] {
                    let req = &reqs[i as usize];
                    firsts[i as usize] = na_first(req, b.duid_hashes[i as usize]).map(|res| {
                        let (rtag, rsi) = self.rshard(res);
                        (res, rtag, rsi as u32)
                    });
                }
                let mut seq = self.next_seq.fetch_add(b.len as u64, Ordering::Relaxed);
                // A group ahead of its turn: its key-index buckets and its first candidates'
                // resource-index buckets (spread over the batch, these misses overlap the
                // grants of the groups before instead of queueing up front).
                let ahead = |shard: usize, i: usize, tag| {
                    self.kshards[shard].prefetch_bucket(tag);
                    if let Some((_, rtag, rsi)) = firsts[i] {
                        self.rshards[rsi as usize].prefetch_bucket(rtag);
                    }
                };
                let fresh = |ks: &KeyShard, _, n| self.prefetch_free_slots(ks, n);
                self.run_batch(b, ahead, fresh, |ks, shard, i, tag, probed| {
                    let req = &reqs[i];
                    let reserved_seq = seq;
                    seq += 1;
                    out[i] = Some(self.check_request(req, true).and_then(|()| {
                        if let (Probed::None, Some(first)) = (probed, firsts[i]) {
                            if let Some(lease) =
                                self.claim_first(ks, shard, tag, req, first, reserved_seq)?
                            {
                                return Ok(lease);
                            }
                        }
                        // The other way (rare for addresses): the DUID hashed again, as the
                        // batch's hashes are held by `run_batch`.
                        let d = hash::duid_hash(req.key.duid);
                        self.allocate_locked(ks, shard, tag, d, req, true)
                    }));
                });
            });
            for o in out.iter_mut().filter(|o| o.is_none()) {
                // An invalid key (`prepare_batch` leaves it out).
                *o = Some(Err(StoreError::Unavailable));
            }
        }
    }

    /// The short way of [`Inner::allocate_many`] for a new client (its key has no record):
    /// claim its first candidate `first` (resource, resource tag and shard, as the prepare pass
    /// computed them) with a reserved sequence number. `None` when that candidate is reserved
    /// or bound: the request then goes the way of [`Inner::allocate`].
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn claim_first(
        &self,
        ks: &mut KeyShard,
        shard: usize,
        ktag: u32,
        req: &AllocRequest<'_>,
        (res, rtag, rsi): (Resource, u32, u32),
        seq: u64,
    ) -> Result<Option<Lease>, StoreError> {
        if req.reserved.is_reserved(res) {
            return Ok(None);
        }
        let mut rec = self.new_record(&req.key, req.pool.id, res, req.lifetimes, req.now);
        let rloc = (rtag, rsi as usize);
        let claimed = self.claim_at(ks, shard, ktag, &mut rec, req.key.duid, rloc, seq)?;
        Ok(claimed.then(|| lease_of(&rec)))
    }

    fn partner_acked(
        &self,
        key: &BindingKey<'_>,
        resource: Resource,
        seq: u64,
        partner_expires: u64,
    ) -> Result<bool, StoreError> {
        self.check_writable()?;
        let (ktag, shard) = self.kshard(key);
        let mut ks = lock(&self.kshards[shard]);
        let ks = &mut *ks;
        let Some((slot, old)) =
            self.find_key(ks, ktag, key, |r| r.resource == resource && r.seq == seq)
        else {
            return Ok(false); // changed since: the newer update will be acknowledged instead
        };
        let mut new = Record {
            partner_acked: true,
            partner_expires,
            ..old
        };
        self.rewrite(ks, shard, ktag, slot, &old, &mut new)?;
        Ok(true)
    }

    fn entry(&self, key: &BindingKey<'_>, resource: Resource) -> Option<LeaseEntry> {
        if !valid_key(key) {
            return None;
        }
        let (ktag, shard) = self.kshard(key);
        let ks = lock(&self.kshards[shard]);
        self.find_key(&ks, ktag, key, |r| r.resource == resource)
            .map(|(_, r)| LeaseEntry {
                duid: key.duid.to_vec(),
                iaid: r.iaid,
                ia_type: r.ia_type,
                resource: r.resource,
                state: r.state,
                pool_id: r.pool_id,
                lifetimes: r.lifetimes,
                cltt: r.cltt,
                expires_at: r.expires_at(),
                partner_expires: r.partner_expires,
                partner_acked: r.partner_acked,
                seq: r.seq,
                alloc_server: r.alloc_server,
            })
    }

    /// Every record, shard by shard (control plane: holds one key shard lock at a time while
    /// calling `f`). An active binding past its lifetime is shown as expired.
    fn visit(&self, now: u64, f: &mut dyn FnMut(&LeaseInfo) -> bool) {
        for shard in 0..self.kshards.len() {
            let ks = lock(&self.kshards[shard]);
            for pos in 0..ks.fresh {
                let slot = self.local_slot(shard, pos);
                let Ok(Slot::Main(r)) = self.read_slot(slot) else {
                    continue;
                };
                if !self.is_indexed(&r, slot) {
                    continue; // superseded copy awaiting group commit
                }
                let state = if r.state == BindingState::Active && r.expires_at() <= now {
                    BindingState::Expired
                } else {
                    r.state
                };
                let info = LeaseInfo {
                    duid: self.duid_of(&r).as_slice().to_vec(),
                    iaid: r.iaid,
                    ia_type: r.ia_type,
                    pool_id: r.pool_id,
                    lease: lease_of(&r),
                    state,
                };
                if !f(&info) {
                    return;
                }
            }
        }
    }

    /// [`LeaseTable::reclaim`]: up to [`RECLAIM_SLOTS_PER_LOCK`] slots per lock hold, shards in
    /// turn. After each hold the thread yields its CPU. Without that, a worker woken on the same
    /// CPU (a request after a pause) waited for the scheduler to preempt this scan, which took
    /// up to a time slice (~1 ms); now it waits at most one hold (tens of µs).
    fn reclaim(&self, now: u64, budget: u64) -> ReclaimStats {
        let mut st = ReclaimStats::default();
        // One pass over the file at most per call.
        let budget =
            budget.min(self.nchunks.load(Ordering::Acquire) * u64::from(self.geo.chunk_records));
        let nshards = self.kshards.len();
        let mut empty_shards = 0;
        while st.examined < budget && empty_shards < nshards {
            let shard = self.reclaim_shard.fetch_add(1, Ordering::Relaxed) % nshards;
            if self.reclaim_hold(shard, budget, now, &mut st) {
                empty_shards = 0;
                std::thread::yield_now();
            } else {
                empty_shards += 1;
            }
        }
        st
    }

    /// One lock hold of [`Inner::reclaim`]: up to [`RECLAIM_SLOTS_PER_LOCK`] slots of `shard`
    /// from where its last hold stopped, within `budget`. False if the shard holds no record.
    fn reclaim_hold(&self, shard: usize, budget: u64, now: u64, st: &mut ReclaimStats) -> bool {
        let mut ks = lock(&self.kshards[shard]);
        let ks = &mut *ks;
        self.release_deferred(ks);
        let total = ks.fresh;
        if total == 0 || ks.records == 0 {
            return false;
        }
        for _ in 0..RECLAIM_SLOTS_PER_LOCK.min((budget - st.examined) as usize) {
            if ks.reclaim_pos >= total {
                ks.reclaim_pos = 0;
            }
            let pos = ks.reclaim_pos;
            ks.reclaim_pos += 1;
            let slot = self.local_slot(shard, pos);
            st.examined += 1;
            self.reclaim_slot(ks, shard, slot, now, st);
        }
        true
    }

    fn reclaim_slot(
        &self,
        ks: &mut KeyShard,
        shard: usize,
        slot: u32,
        now: u64,
        st: &mut ReclaimStats,
    ) {
        // Most records are not due: tell from the raw words, before a decode, a checksum and
        // an index probe. A record whose words lie (torn, corrupt) fails the decode below; one
        // that decodes has the words just read, so it is due.
        let w = self.region.read_words(self.slot_offset(slot));
        let hold = u64::from(self.hold_secs);
        if record::raw::reclaim_due(&w, hold).is_none_or(|due| due > now) {
            return;
        }
        let Ok(Slot::Main(r)) = self.read_slot(slot) else {
            return;
        };
        if !self.is_indexed(&r, slot) {
            return; // a superseded copy waiting for group commit
        }
        match r.state {
            BindingState::Active => {
                let mut new = Record {
                    state: BindingState::Expired,
                    ..r
                };
                let d = self.duid_of(&r);
                let ktag = split(hash::key_hash(d.as_slice(), r.iaid, ia_code(r.ia_type))).0;
                if self.update(ks, shard, ktag, slot, &r, &mut new).is_ok() {
                    st.expired += 1;
                }
            }
            BindingState::Expired | BindingState::Released | BindingState::Abandoned => {
                self.delete(ks, None, slot, &r);
                st.freed += 1;
            }
            BindingState::Free | BindingState::FreeBackup => {}
        }
    }

    /// A complete pass over every shard (startup, tests); same lock granularity as `reclaim`.
    fn reclaim_all(&self, now: u64) -> ReclaimStats {
        let mut st = ReclaimStats::default();
        for shard in 0..self.kshards.len() {
            let mut pos = 0;
            loop {
                let mut ks = lock(&self.kshards[shard]);
                let ks = &mut *ks;
                self.release_deferred(ks);
                let total = ks.fresh;
                if pos >= total {
                    break;
                }
                for p in pos..(pos + RECLAIM_SLOTS_PER_LOCK as u64).min(total) {
                    let slot = self.local_slot(shard, p);
                    st.examined += 1;
                    self.reclaim_slot(ks, shard, slot, now, &mut st);
                }
                pos += RECLAIM_SLOTS_PER_LOCK as u64;
            }
        }
        st
    }

    fn is_indexed(&self, r: &Record, slot: u32) -> bool {
        if self.durable.group.is_none() {
            // Superseded copies exist only in group-commit mode (deferred retirement).
            return true;
        }
        let (rtag, rsi) = self.rshard(r.resource);
        lock(&self.rshards[rsi])
            .res
            .find(rtag, |s| (s == slot).then_some(()))
            .is_some()
    }
}

fn block_resource(spec: &PoolSpec, first: u64, len: u8) -> Resource {
    Resource::prefix(spec.nth(first).expect("in pool").addr, len)
}

fn mark_used(bits: &mut FreeBitmap, spec: &PoolSpec, r: Resource) {
    if let Some((first, n)) = pd_units(spec, r) {
        for u in first..first + n {
            if bits.is_free(u) {
                bits.set_used(u);
            }
        }
    }
}

fn lease_of(r: &Record) -> Lease {
    Lease {
        resource: r.resource,
        lifetimes: r.lifetimes,
        cltt: r.cltt,
        expires_at: r.expires_at(),
    }
}

impl LeaseTable {
    /// Open the lease file at `cfg.path`, creating it if it does not exist, and rebuild the
    /// indexes. Corrupt records are counted in [`LeaseTable::open_report`] and skipped.
    pub fn open(cfg: TableConfig) -> Result<LeaseTable, TableError> {
        open::open(cfg)
    }

    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    pub fn geometry(&self) -> Geometry {
        self.inner.geo
    }

    /// Background reclaim: examine up to `budget` record slots, moving active bindings past
    /// their lifetime to `expired` and deleting records whose hold or quarantine is over.
    /// Holds one shard lock for at most a few hundred slots at a time and yields the CPU between
    /// holds; call it from a housekeeping thread, e.g. every second with a budget of a few
    /// hundred thousand.
    pub fn reclaim(&self, now: u64, budget: u64) -> ReclaimStats {
        self.inner.reclaim(now, budget)
    }

    /// One complete reclaim pass over the whole table (for startup and tests). Two passes
    /// take a binding past its lifetime and hold from `active` to deleted.
    pub fn reclaim_all(&self, now: u64) -> ReclaimStats {
        self.inner.reclaim_all(now)
    }

    /// A ticket covering every grant this thread has committed so far.
    pub fn commit_ticket(&self) -> CommitTicket {
        CommitTicket(self.inner.durable.epoch.load(Ordering::SeqCst))
    }

    /// Wait until everything covered by `t` is on stable storage (group-commit mode), or
    /// return at once (`Mapped` mode: committed grants are already in the mapping).
    /// `Err(Unavailable)` if a sync failed: the table then refuses all further grants.
    pub fn wait_durable(&self, t: CommitTicket) -> Result<(), StoreError> {
        let d = &self.inner.durable;
        if d.group.is_none() {
            return self.inner.check_writable();
        }
        if d.durable_epoch.load(Ordering::Acquire) > t.0 {
            return Ok(());
        }
        let mut st = lock(&d.state);
        st.requested = st.requested.max(t.0);
        d.wake_flusher.notify_one();
        while d.durable_epoch.load(Ordering::Acquire) <= t.0 {
            if self.inner.failed.load(Ordering::Relaxed) || st.stop {
                return Err(StoreError::Unavailable);
            }
            st = d.wake_waiters.wait(st).expect("lease table lock poisoned");
        }
        Ok(())
    }

    /// [`LeaseStore::lookup`] for a whole batch of keys (e.g. the Solicit/Request/Renew
    /// messages of one RX batch): `out[i]` is the lookup of `keys[i]`. Hashes all keys and
    /// prefetches their index buckets and records before the lookups, so their cache misses
    /// overlap; the records are then in cache for a following renew (`bind`) of the same
    /// clients. Same results as calling `lookup` on each key.
    pub fn lookup_many(
        &self,
        keys: &[BindingKey<'_>],
        pool: &PoolSpec,
        now: u64,
        out: &mut [Option<Lease>],
    ) {
        self.inner.lookup_many(keys, pool, now, out)
    }

    /// [`LeaseStore::renew`] for a whole batch of keys in one pool (the renewals of one RX
    /// batch): `out[i]` is the renewal of `keys[i]`. Hashes all keys and prefetches their index
    /// buckets and records first, so the cache misses of the batch overlap. Same results as
    /// calling `renew` on each key in order.
    pub fn renew_many(
        &self,
        keys: &[BindingKey<'_>],
        pool: &PoolSpec,
        lifetimes: Lifetimes,
        now: u64,
        out: &mut [Option<Result<Lease, StoreError>>],
    ) {
        self.inner.renew_many(keys, pool, lifetimes, now, out)
    }

    /// [`LeaseStore::allocate`] (a grant, `commit`) for a whole batch of requests (the new
    /// clients of one RX batch): `out[i]` is the grant for `reqs[i]`. Hashes every key and
    /// works out its first candidate before any lock, and prefetches a shard group's index
    /// buckets while the group before it is granted, so the cache misses of the batch
    /// overlap. Requests with different keys may be served in another order than given (by
    /// key shard), so two of them whose candidates collide may get each other's address
    /// compared with one `allocate` at a time; requests with one key are served in order. No
    /// resource is ever granted twice.
    pub fn allocate_many(
        &self,
        reqs: &[AllocRequest<'_>],
        out: &mut [Option<Result<Lease, StoreError>>],
    ) {
        self.inner.allocate_many(reqs, out)
    }

    /// Force every write so far to stable storage.
    pub fn sync(&self) -> Result<(), StoreError> {
        sync_now(&self.inner)
    }

    /// Number of records (bindings and quarantined resources).
    pub fn len(&self) -> u64 {
        self.inner.kshards.iter().map(|k| lock(k).records).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn stats(&self) -> TableStats {
        let mut s = TableStats {
            file_bytes: HEADER_BYTES as u64
                + self.inner.nchunks.load(Ordering::Acquire) * self.inner.geo.chunk_bytes(),
            ..Default::default()
        };
        for k in self.inner.kshards.iter() {
            let k = lock(k);
            s.records += k.records;
            s.slots += k.chunks * u64::from(self.inner.geo.chunk_records);
            s.index_bytes += (k.keys.heap_bytes() + k.free.capacity() * 4) as u64;
        }
        for r in self.inner.rshards.iter() {
            s.index_bytes += lock(r).res.heap_bytes() as u64;
        }
        for p in self
            .inner
            .pools
            .read()
            .expect("pool registry poisoned")
            .values()
        {
            s.bitmap_bytes += lock(&p.bits).heap_bytes() as u64;
        }
        s
    }

    /// Has the table failed closed (I/O error)?
    /// Failover: the full record of `key`'s binding of `resource` (any keyed state), with its
    /// update sequence number and partner fields.
    pub fn entry(&self, key: &BindingKey<'_>, resource: Resource) -> Option<LeaseEntry> {
        self.inner.entry(key, resource)
    }

    /// Failover: the partner acknowledged update `seq` of `key`'s binding of `resource` with
    /// partner lifetime `partner_expires` (RFC 8156 BNDREPLY). Returns `Ok(false)` when the
    /// binding has changed since (a newer update is then pending acknowledgement).
    pub fn partner_acked(
        &self,
        key: &BindingKey<'_>,
        resource: Resource,
        seq: u64,
        partner_expires: u64,
    ) -> Result<bool, StoreError> {
        self.inner
            .partner_acked(key, resource, seq, partner_expires)
    }

    pub fn is_failed(&self) -> bool {
        self.inner.failed.load(Ordering::Relaxed)
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }
}

fn sync_now(inner: &Inner) -> Result<(), StoreError> {
    let e = inner.durable.epoch.fetch_add(1, Ordering::SeqCst);
    match inner.file.sync_data() {
        Ok(()) => {
            inner
                .durable
                .durable_epoch
                .fetch_max(e + 1, Ordering::AcqRel);
            Ok(())
        }
        Err(err) => {
            // After a failed fsync the state of the written pages is unknown: stop granting.
            inner.failed.store(true, Ordering::SeqCst);
            tracing::error!(path = %inner.path.display(), error = %err, "lease file sync failed: refusing all new grants (fail closed)");
            Err(StoreError::Unavailable)
        }
    }
}

fn flusher(inner: Arc<Inner>, batch_window: Duration, max_interval: Duration) {
    let d = &inner.durable;
    let mut last_seq = inner.next_seq.load(Ordering::Relaxed);
    loop {
        {
            let mut st = lock(&d.state);
            let deadline = Instant::now() + max_interval;
            loop {
                if st.stop {
                    return;
                }
                if st.requested >= d.durable_epoch.load(Ordering::Acquire) {
                    break;
                }
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                st = d
                    .wake_flusher
                    .wait_timeout(st, deadline - now)
                    .expect("lease table lock poisoned")
                    .0;
            }
        }
        let seq = inner.next_seq.load(Ordering::Relaxed);
        let requested = lock(&d.state).requested >= d.durable_epoch.load(Ordering::Acquire);
        if !requested && seq == last_seq {
            continue; // periodic wake-up with nothing written
        }
        if !batch_window.is_zero() {
            std::thread::sleep(batch_window);
        }
        last_seq = inner.next_seq.load(Ordering::Relaxed);
        let _ = sync_now(&inner);
        let _st = lock(&d.state);
        d.wake_waiters.notify_all();
        if inner.failed.load(Ordering::Relaxed) {
            return;
        }
    }
}

impl Drop for LeaseTable {
    fn drop(&mut self) {
        {
            let mut st = lock(&self.inner.durable.state);
            st.stop = true;
            self.inner.durable.wake_flusher.notify_all();
            self.inner.durable.wake_waiters.notify_all();
        }
        if let Some(h) = self.flusher.take() {
            let _ = h.join();
        }
        if !self.inner.failed.load(Ordering::Relaxed) {
            let _ = sync_now(&self.inner);
        }
    }
}

impl LeaseStore for LeaseTable {
    fn lookup(&self, key: &BindingKey<'_>, pool: &PoolSpec, now: u64) -> Option<Lease> {
        self.inner.lookup(key, pool, now)
    }

    fn allocate(&self, req: &AllocRequest<'_>, commit: bool) -> Result<Lease, StoreError> {
        self.inner.allocate(req, commit)
    }

    fn bind(
        &self,
        key: &BindingKey<'_>,
        pool_id: u32,
        resource: Resource,
        lifetimes: Lifetimes,
        now: u64,
    ) -> Result<Lease, StoreError> {
        self.inner.bind(key, pool_id, resource, lifetimes, now)
    }

    fn renew(
        &self,
        key: &BindingKey<'_>,
        pool: &PoolSpec,
        lifetimes: Lifetimes,
        now: u64,
    ) -> Option<Result<Lease, StoreError>> {
        self.inner.renew(key, pool, lifetimes, now)
    }

    fn release(
        &self,
        key: &BindingKey<'_>,
        resource: Resource,
        now: u64,
    ) -> Result<(), StoreError> {
        self.inner
            .transition(key, resource, now, BindingState::Released, 0)
    }

    fn decline(
        &self,
        key: &BindingKey<'_>,
        resource: Resource,
        now: u64,
        quarantine_secs: u32,
    ) -> Result<(), StoreError> {
        self.inner
            .transition(key, resource, now, BindingState::Abandoned, quarantine_secs)
    }

    fn visit(&self, now: u64, f: &mut dyn FnMut(&LeaseInfo) -> bool) {
        self.inner.visit(now, f)
    }

    fn active_count(&self, pool: &PoolSpec, _now: u64) -> u64 {
        // Counts records in state `active`; those past their lifetime leave it at the next
        // reclaim pass (so the figure lags expiry by at most one pass).
        self.inner
            .kshards
            .iter()
            .map(|k| lock(k).active.get(pool.id))
            .sum()
    }
}

mod open;

#[cfg(test)]
mod tests;
