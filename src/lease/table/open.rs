//! Opening a lease file: header, geometry, and the parallel scan that validates every record
//! and rebuilds the indexes and prefix-pool bitmaps.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::bitmap::FreeBitmap;
use super::header::{self, Geometry, HEADER_BYTES};
use super::index::Index;
use super::map::{self, Region};
use super::record::{self, Record, Slot, DUID_INLINE_MAX, EXT_DATA, RECORD_SIZE};
use super::*;

/// Log at most this many individual corrupt slots (the rest are only counted).
const CORRUPT_LOG_MAX: u64 = 16;

struct MainInfo {
    slot: u32,
    ktag: u32,
    keyed: bool,
    active: bool,
    pool_id: u32,
    ext: [u32; 2],
}

#[derive(Default)]
struct ShardScan {
    mains: Vec<MainInfo>,
    corrupt: Vec<u32>,
    max_seq: u64,
}

pub(super) fn open(cfg: TableConfig) -> Result<LeaseTable, TableError> {
    let t0 = Instant::now();
    let path = cfg.path.clone();
    let io_err = |op: &'static str| {
        let path = path.clone();
        move |source| TableError::Io { path, op, source }
    };
    if cfg.max_records == 0 {
        return Err(TableError::Config("max_records must be positive".into()));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err("open"))?;
    map::lock_exclusive(&file).map_err(|e| {
        if e.kind() == io::ErrorKind::WouldBlock {
            TableError::Locked { path: path.clone() }
        } else {
            TableError::Io {
                path: path.clone(),
                op: "flock",
                source: e,
            }
        }
    })?;
    let mut report = OpenReport::default();
    let file_len = file.metadata().map_err(io_err("stat"))?.len();
    let geo = if file_len == 0 {
        let geo = Geometry {
            shards: cfg.shards,
            chunk_records: cfg.chunk_records,
            server_id: cfg.server_id,
            created_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        geo.validate().map_err(TableError::Config)?;
        let mut page = vec![0u8; HEADER_BYTES];
        for o in header::COPY_OFFSETS {
            page[o..o + 64].copy_from_slice(&header::encode(&geo));
        }
        map::fallocate(&file, 0, HEADER_BYTES as u64).map_err(io_err("allocate header"))?;
        file.write_all_at(&page, 0)
            .map_err(io_err("write header"))?;
        file.sync_all().map_err(io_err("sync header"))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        tracing::info!(path = %path.display(), shards = geo.shards, chunk_records = geo.chunk_records, "created lease file");
        geo
    } else {
        let mut page = vec![0u8; HEADER_BYTES.min(file_len as usize)];
        file.read_exact_at(&mut page, 0)
            .map_err(io_err("read header"))?;
        let h = header::read(&page).map_err(|reason| TableError::BadHeader {
            path: path.clone(),
            reason,
        })?;
        for (off, why) in &h.bad_copies {
            tracing::warn!(path = %path.display(), offset = off, reason = %why, "lease file header copy is bad: rewriting it from the good copy");
            file.write_all_at(&header::encode(&h.geometry), *off as u64)
                .map_err(io_err("repair header"))?;
            report.header_repaired += 1;
        }
        if !h.bad_copies.is_empty() {
            file.sync_data().map_err(io_err("sync header"))?;
        }
        if h.geometry.shards != cfg.shards || h.geometry.chunk_records != cfg.chunk_records {
            tracing::info!(
                shards = h.geometry.shards,
                chunk_records = h.geometry.chunk_records,
                "using the lease file's own geometry"
            );
        }
        h.geometry
    };

    let chunk_bytes = geo.chunk_bytes();
    let shards = u64::from(geo.shards);
    check_index_memory(cfg.initial_records, shards)?;
    let file_len = file.metadata().map_err(io_err("stat"))?.len();
    let mut nchunks = (file_len - HEADER_BYTES as u64) / chunk_bytes;
    let initial_chunks =
        shard_share(cfg.initial_records, shards).div_ceil(u64::from(geo.chunk_records)) * shards;
    let max_chunks = (cfg
        .max_records
        .div_ceil(u64::from(geo.chunk_records))
        .div_ceil(shards)
        * shards)
        .max(nchunks)
        .max(initial_chunks);
    // Slot numbers are 32 bits and `u32::MAX` means "no slot": every slot the file may ever
    // hold must number below it.
    let max_slots = max_chunks.saturating_mul(u64::from(geo.chunk_records));
    if max_slots >= u64::from(u32::MAX) {
        return Err(TableError::Config(format!(
            "max_records {} needs {max_slots} slots ({} shards of {}-record chunks); slot numbers \
             are 32 bits, so at most {} slots",
            cfg.max_records,
            geo.shards,
            geo.chunk_records,
            u32::MAX - 1
        )));
    }
    // Make sure every page of the file has its blocks (a file copied sparse, or created by a
    // growth cut short), so stores through the mapping cannot fault on a full disk; and pre-size.
    let want = nchunks.max(initial_chunks);
    if want > 0 {
        map::fallocate(&file, 0, HEADER_BYTES as u64 + want * chunk_bytes)
            .map_err(io_err("allocate"))?;
        nchunks = want;
    }
    let max_len = usize::try_from(HEADER_BYTES as u64 + max_chunks * chunk_bytes)
        .map_err(|_| TableError::Config("max_records too large".into()))?;
    let region = Region::map(
        &file,
        max_len,
        HEADER_BYTES + (nchunks * chunk_bytes) as usize,
    )
    .map_err(io_err("mmap"))?;
    if cfg.durability == Durability::Mapped {
        region.advise_huge();
    }

    let nr = geo.shards as usize;
    let pools: HashMap<u32, Arc<PdPool>> = cfg
        .pools
        .iter()
        .filter(|p| p.ia_type == IaType::Pd && p.count > 0)
        .map(|p| {
            (
                p.id,
                Arc::new(PdPool {
                    spec: *p,
                    bits: Mutex::new(FreeBitmap::new_all_free(p.count)),
                }),
            )
        })
        .collect();
    let group = match cfg.durability {
        Durability::Mapped => None,
        Durability::GroupCommit {
            batch_window,
            max_interval,
        } => Some((batch_window, max_interval.max(Duration::from_millis(1)))),
    };
    let mut inner = Inner {
        path: path.clone(),
        file,
        region,
        geo,
        max_chunks,
        server_id: cfg.server_id,
        hold_secs: cfg.affinity_hold_secs,
        kshards: (0..geo.shards)
            .map(|_| Padded(ShardCell::new(new_key_shard())))
            .collect(),
        rshards: (0..nr)
            .map(|_| {
                Padded(ShardCell::new(ResShard {
                    res: Index::default(),
                }))
            })
            .collect(),
        pools: RwLock::new(pools),
        grow_lock: Mutex::new(()),
        nchunks: AtomicU64::new(nchunks),
        next_seq: AtomicU64::new(1),
        failed: AtomicBool::new(false),
        grow_failures: AtomicU64::new(0),
        durable: Durable {
            group,
            epoch: AtomicU64::new(1),
            durable_epoch: AtomicU64::new(1),
            state: Mutex::new(GroupState {
                requested: 0,
                stop: false,
            }),
            wake_flusher: Condvar::new(),
            wake_waiters: Condvar::new(),
        },
        reclaim_shard: AtomicUsize::new(0),
    };
    scan(&mut inner, nchunks, cfg.initial_records, &mut report);
    report.slots = nchunks * u64::from(geo.chunk_records);
    report.open_ms = t0.elapsed().as_millis() as u64;
    if report.corrupt > 0 {
        tracing::warn!(path = %path.display(), corrupt = report.corrupt, "lease file had corrupt or torn records: skipped them");
    }
    tracing::info!(path = %path.display(), records = report.records, corrupt = report.corrupt, superseded = report.superseded,
        orphans = report.orphans, ms = report.open_ms, "lease table open");

    let inner = Arc::new(inner);
    let flusher = group.map(|(window, interval)| {
        let i = inner.clone();
        std::thread::Builder::new()
            .name("lease-flush".into())
            .spawn(move || flusher(i, window, interval))
            .expect("spawn lease flusher")
    });
    Ok(LeaseTable {
        inner,
        flusher,
        report,
    })
}

fn new_key_shard() -> KeyShard {
    KeyShard {
        keys: Index::default(),
        free: Vec::new(),
        chunks: 0,
        fresh: 0,
        fresh_slot: 0,
        fresh_end: 0,
        deferred: VecDeque::new(),
        active: PoolCounts::default(),
        journal: None,
        reclaim_pos: 0,
        records: 0,
    }
}

/// Shard-local slot numbers of shard `s`.
fn shard_slots(geo: &Geometry, nchunks: u64, s: usize) -> impl Iterator<Item = u32> {
    let c = u64::from(geo.chunk_records);
    let n = u64::from(geo.shards);
    (0..)
        .map(move |k| s as u64 + k * n)
        .take_while(move |&chunk| chunk < nchunks)
        .flat_map(move |chunk| (chunk * c..(chunk + 1) * c).map(|x| x as u32))
}

/// Validate a main record's DUID extension slots; returns the full DUID length check result.
fn check_ext(
    inner: &Inner,
    shard: usize,
    r: &Record,
    nslots: u64,
) -> Result<[u32; 2], &'static str> {
    if !r.has_ext() {
        return Ok([u32::MAX; 2]);
    }
    let need = usize::from(r.duid_len) - super::record::DUID_INLINE_PREFIX;
    let slots = r.ext_slots();
    let mut got = 0;
    for (i, &s) in slots.iter().enumerate() {
        let expected = need.saturating_sub(i * EXT_DATA).min(EXT_DATA);
        if expected == 0 {
            if s != u32::MAX {
                return Err("unexpected extension slot");
            }
            continue;
        }
        if u64::from(s) >= nslots || inner.shard_of_slot(s) != shard {
            return Err("extension slot out of range");
        }
        match inner.read_slot(s) {
            Ok(Slot::Ext { len, .. }) if usize::from(len) == expected => got += expected,
            _ => return Err("bad extension record"),
        }
    }
    debug_assert_eq!(got, need);
    let _ = DUID_INLINE_MAX;
    Ok(slots)
}

/// Refuse a preallocation whose indexes (two of them, `shards` shards each, each shard's sized
/// for its [`shard_share`] as the scan sizes it) this machine cannot allocate, with a clear error rather than an
/// allocation failure in the middle of the open scan. Nothing is touched: the reservation is
/// returned at once.
fn check_index_memory(records: u64, shards: u64) -> Result<(), TableError> {
    if records == 0 {
        return Ok(());
    }
    let bytes = usize::try_from(shard_share(records, shards))
        .ok()
        .and_then(|share| Index::capacity_for(share).checked_mul(8 * 2 * shards as usize));
    let fits = bytes.is_some_and(|b| Vec::<u8>::new().try_reserve_exact(b).is_ok());
    if fits {
        Ok(())
    } else {
        Err(TableError::Config(format!(
            "preallocating {records} leases needs {} of index memory, which cannot be allocated here",
            bytes.map_or("more than the address space".to_string(), |b| format!("{} MiB", b >> 20))
        )))
    }
}

/// The most of `records` hashed keys one of `shards` shards can be expected to hold: the mean
/// plus four standard deviations (a shard's count is near Poisson), so that preallocating this
/// much per shard leaves no shard short in practice.
fn shard_share(records: u64, shards: u64) -> u64 {
    if records == 0 {
        return 0;
    }
    let mean = records.div_ceil(shards.max(1));
    mean.saturating_add(4 * (mean as f64).sqrt().ceil() as u64 + 1)
}

/// Scan the file and build the indexes, each sized for its share of `records` at least (the
/// preallocation: serving up to that many then never grows an index).
fn scan(inner: &mut Inner, nchunks: u64, records: u64, report: &mut OpenReport) {
    let geo = inner.geo;
    let nk = inner.kshards.len();
    let nr = inner.rshards.len();
    let floor = |shards: usize| usize::try_from(shard_share(records, shards as u64)).unwrap_or(0);
    let (key_floor, res_floor) = (floor(nk), floor(nr));
    let nslots = nchunks * u64::from(geo.chunk_records);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let logged = AtomicU64::new(0);
    inner.region.advise_sequential();
    let inner_ref: &Inner = inner;

    // Phase 1: decode every slot of every shard; bucket mains by resource shard.
    type Buckets = Vec<Vec<(u32, u32)>>;
    let results: Vec<(Vec<(usize, ShardScan)>, Buckets)> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let logged = &logged;
                sc.spawn(move || {
                    let mut out = Vec::new();
                    let mut buckets: Buckets = vec![Vec::new(); nr];
                    let c = u64::from(geo.chunk_records);
                    for s in (t..nk).step_by(threads) {
                        let mut sh = ShardScan::default();
                        for slot in shard_slots(&geo, nchunks, s) {
                            if u64::from(slot) % c == 0 {
                                // First slot of a chunk: map the whole chunk in one call.
                                inner_ref.region.prefault(
                                    inner_ref.slot_offset(slot),
                                    geo.chunk_bytes() as usize,
                                );
                            }
                            match inner_ref.read_slot(slot) {
                                Ok(Slot::Empty) | Ok(Slot::Ext { .. }) => {}
                                Ok(Slot::Main(r)) => match check_ext(inner_ref, s, &r, nslots) {
                                    Ok(ext) => {
                                        let h = if r.has_ext() {
                                            let d = inner_ref.duid_of(&r);
                                            hash::key_hash(d.as_slice(), r.iaid, ia_code(r.ia_type))
                                        } else {
                                            hash::key_hash(
                                                r.inline_bytes(),
                                                r.iaid,
                                                ia_code(r.ia_type),
                                            )
                                        };
                                        let (ktag, _) = split(h);
                                        let (rtag, rsi) = inner_ref.rshard(r.resource);
                                        buckets[rsi].push((rtag, slot));
                                        sh.max_seq = sh.max_seq.max(r.seq);
                                        sh.mains.push(MainInfo {
                                            slot,
                                            ktag,
                                            keyed: r.state.is_keyed(),
                                            active: r.state == BindingState::Active,
                                            pool_id: r.pool_id,
                                            ext,
                                        });
                                    }
                                    Err(why) => {
                                        log_corrupt(logged, slot, why);
                                        sh.corrupt.push(slot);
                                    }
                                },
                                Err(e) => {
                                    log_corrupt(
                                        logged,
                                        slot,
                                        match e {
                                            record::Corrupt::Checksum => "checksum mismatch",
                                            record::Corrupt::Field(f) => f,
                                        },
                                    );
                                    sh.corrupt.push(slot);
                                }
                            }
                        }
                        out.push((s, sh));
                    }
                    (out, buckets)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("scan thread panicked"))
            .collect()
    });
    let mut per_shard: Vec<Option<ShardScan>> = (0..nk).map(|_| None).collect();
    let mut all_buckets = Vec::with_capacity(threads);
    for (shards, buckets) in results {
        for (s, sh) in shards {
            per_shard[s] = Some(sh);
        }
        all_buckets.push(buckets);
    }

    // Every index's size is known now: one arena holds them all (see `map::carve`); where
    // it cannot be had, each index is allocated on its own as before.
    let res_sizes = (0..nr).map(|r| {
        all_buckets
            .iter()
            .map(|b| b[r].len())
            .sum::<usize>()
            .max(res_floor)
    });
    let key_sizes = per_shard.iter().map(|sh| {
        let sh = sh.as_ref().expect("scanned");
        sh.mains.iter().filter(|m| m.keyed).count().max(key_floor)
    });
    // What each index is sized for: resource shards first, then key shards.
    let sized_for: Vec<usize> = res_sizes.chain(key_sizes).collect();
    let capacities: Vec<usize> = sized_for.iter().map(|&n| Index::capacity_for(n)).collect();
    let slices: Vec<Mutex<Option<map::ArenaSlice>>> = match map::carve(&capacities) {
        Ok(v) => v.into_iter().map(|s| Mutex::new(Some(s))).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "lease table: no arena for the indexes, allocating each on its own");
            Vec::new()
        }
    };
    let index_of = |i: usize| match slices
        .get(i)
        .and_then(|m| m.lock().expect("poisoned").take())
    {
        Some(slice) => Index::in_arena(slice),
        None => Index::with_capacity(sized_for[i]),
    };

    // Phase 2: build the resource indexes; of two records of one resource the newer wins.
    let losers: Vec<Vec<u32>> = std::thread::scope(|sc| {
        let all_buckets = &all_buckets;
        let index_of = &index_of;
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                sc.spawn(move || {
                    let mut losers = Vec::new();
                    for r in (t..nr).step_by(threads) {
                        let mut ix = index_of(r);
                        for b in all_buckets {
                            for &(tag, slot) in &b[r] {
                                // Records are read only on a tag match (rare): the build
                                // stays a sequential pass over the buckets.
                                let mut rec = None;
                                let dup = ix.find(tag, |s| {
                                    let me = *rec.get_or_insert_with(|| inner_ref.read_main(slot));
                                    let o = inner_ref.read_main(s);
                                    // Newer wins; on a tie (a partner-ack rewrite) the acknowledged copy.
                                    (o.resource == me.resource).then_some((
                                        s,
                                        (o.seq, o.partner_acked),
                                        (me.seq, me.partner_acked),
                                    ))
                                });
                                match dup {
                                    None => ix.insert(tag, slot),
                                    Some((old, old_seq, seq)) if old_seq < seq => {
                                        assert!(ix.replace(tag, old, slot));
                                        losers.push(old);
                                    }
                                    Some(_) => losers.push(slot),
                                }
                            }
                        }
                        // Each resource shard is built by exactly one thread.
                        let cell = &inner_ref.rshards[r];
                        let mut rs = cell.lock().expect("poisoned");
                        *rs = ResShard { res: ix };
                        cell.publish(&rs);
                    }
                    losers
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("scan thread panicked"))
            .collect()
    });
    drop(all_buckets);
    let losers: HashSet<u32> = losers.into_iter().flatten().collect();

    // Phase 3: key indexes, free lists, bitmaps; clear dead slots.
    let counts: Vec<(u64, u64, u64, u64)> = std::thread::scope(|sc| {
        let per_shard = &per_shard;
        let index_of = &index_of;
        let losers = &losers;
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                sc.spawn(move || {
                    let mut totals = (0u64, 0u64, 0u64, 0u64); // records, corrupt, superseded, orphans
                    let pools = inner_ref.pools.read().expect("poisoned");
                    for s in (t..nk).step_by(threads) {
                        let sh = per_shard[s].as_ref().expect("scanned");
                        let slots: Vec<u32> = shard_slots(&geo, nchunks, s).collect();
                        let base_of = |slot: u32| -> usize {
                            // Position of `slot` in `slots`.
                            let c = u64::from(geo.chunk_records);
                            let k = (u64::from(slot) / c - s as u64) / u64::from(geo.shards);
                            (k * c + u64::from(slot) % c) as usize
                        };
                        let mut live = vec![false; slots.len()];
                        let mut ks = new_key_shard();
                        ks.keys = index_of(nr + s);
                        ks.chunks = slots.len() as u64 / u64::from(geo.chunk_records);
                        for m in &sh.mains {
                            if !losers.is_empty() && losers.contains(&m.slot) {
                                inner_ref.invalidate(m.slot);
                                totals.2 += 1;
                                continue;
                            }
                            live[base_of(m.slot)] = true;
                            for e in m.ext {
                                if e != u32::MAX {
                                    live[base_of(e)] = true;
                                }
                            }
                            if m.keyed {
                                ks.keys.insert(m.ktag, m.slot);
                            }
                            if m.active {
                                *ks.active.get_mut(m.pool_id) += 1;
                            }
                            ks.records += 1;
                            if let Some(p) = pools.get(&m.pool_id) {
                                let r = inner_ref.read_main(m.slot);
                                if r.ia_type == IaType::Pd {
                                    mark_used(
                                        &mut p.bits.lock().expect("poisoned"),
                                        &p.spec,
                                        r.resource,
                                    );
                                }
                            }
                        }
                        totals.0 += ks.records;
                        totals.1 += sh.corrupt.len() as u64;
                        ks.fresh = live.iter().rposition(|&l| l).map_or(0, |p| p as u64 + 1);
                        ks.fresh_end = ks.fresh; // `alloc_slot` works out the slot
                        for (i, &slot) in slots.iter().enumerate().rev() {
                            if live[i] {
                                continue;
                            }
                            let st = inner_ref
                                .region
                                .read_u8(inner_ref.slot_offset(slot) + record::STATE_OFFSET);
                            if st != record::STATE_EMPTY {
                                if st == record::STATE_EXT && !sh.corrupt.contains(&slot) {
                                    totals.3 += 1;
                                }
                                inner_ref.invalidate(slot);
                            }
                            if (i as u64) < ks.fresh {
                                ks.free.push(slot);
                            }
                        }
                        let cell = &inner_ref.kshards[s];
                        cell.publish(&ks);
                        *cell.lock.lock().expect("poisoned") = ks;
                    }
                    totals
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("scan thread panicked"))
            .collect()
    });
    for (r, c, s, o) in counts {
        report.records += r;
        report.corrupt += c;
        report.superseded += s;
        report.orphans += o;
    }
    let max_seq = per_shard
        .iter()
        .flatten()
        .map(|s| s.max_seq)
        .max()
        .unwrap_or(0);
    inner
        .next_seq
        .store(max_seq + 1, std::sync::atomic::Ordering::Relaxed);
    inner.region.advise_normal();
    let _ = RECORD_SIZE;
}

fn log_corrupt(logged: &AtomicU64, slot: u32, why: &str) {
    if logged.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < CORRUPT_LOG_MAX {
        tracing::warn!(slot, reason = why, "lease file: skipping corrupt record");
    }
}
