//! Fault tests for the lease table: corrupt records and headers, a full disk, and concurrent
//! allocation from several threads.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use xdhcp6::lease::table::{read_all, LeaseTable, TableConfig, TableError, RECORD_SIZE};
use xdhcp6::lease::{
    AllocRequest, BindingKey, IaType, LeaseStore, Lifetimes, NoReservations, PoolSpec, Resource,
    StoreError,
};

const LT: Lifetimes = Lifetimes {
    preferred: 3600,
    valid: 7200,
};
const HEADER: usize = 4096;

fn na(count: u64) -> PoolSpec {
    PoolSpec {
        id: 1,
        ia_type: IaType::Na,
        base: "2001:db8::".parse().unwrap(),
        len: 128,
        count,
    }
}

fn pd() -> PoolSpec {
    PoolSpec {
        id: 2,
        ia_type: IaType::Pd,
        base: "2001:db8:4000::".parse().unwrap(),
        len: 56,
        count: 4096,
    }
}

fn tmpdir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("xdhcp6-lease-faults-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn cfg(p: &Path) -> TableConfig {
    TableConfig {
        shards: 8,
        chunk_records: 128,
        pools: vec![pd()],
        ..TableConfig::new(p)
    }
}

/// Open the table at `p`. Another test of this binary may fork (to run `mount`) while this
/// one holds the file: the child then holds a copy of the mapping, and with it the file's lock,
/// until it execs. So a `Locked` error is retried for a moment.
fn open(p: &Path) -> Result<LeaseTable, TableError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match LeaseTable::open(cfg(p)) {
            Err(TableError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            r => return r,
        }
    }
}

fn duid(i: u64) -> Vec<u8> {
    let mut d = format!("client-{i}").into_bytes();
    if i % 5 == 0 {
        d.resize(120, 0xee);
    }
    d
}

fn grant(t: &LeaseTable, pool: &PoolSpec, i: u64) -> Result<Resource, StoreError> {
    let d = duid(i);
    let req = AllocRequest {
        key: BindingKey {
            duid: &d,
            iaid: 1,
            ia_type: pool.ia_type,
        },
        pool,
        hint: None,
        reserved: &NoReservations,
        lifetimes: LT,
        now: 1000,
    };
    t.allocate(&req, true).map(|l| l.resource)
}

#[test]
fn corrupt_records_are_counted_and_skipped() {
    let dir = tmpdir("corrupt");
    let p = dir.join("leases");
    let pool = na(1 << 32);
    let pdp = pd();
    {
        let t = open(&p).unwrap();
        for i in 0..3000 {
            grant(&t, if i % 4 == 0 { &pdp } else { &pool }, i).unwrap();
        }
    }
    let (before, _) = read_all(&p).unwrap();
    assert_eq!(before.len(), 3000);
    let mut bytes = std::fs::read(&p).unwrap();
    let nslots = (bytes.len() - HEADER) / RECORD_SIZE;
    // Flip one byte in 40 distinct slots (some empty, most not).
    let mut x = 0x1234_5678_9abc_def0u64;
    let mut hit = HashSet::new();
    while hit.len() < 40 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let slot = (x % nslots as u64) as usize;
        if hit.insert(slot) {
            let at = HEADER + slot * RECORD_SIZE + (x >> 32) as usize % RECORD_SIZE;
            bytes[at] ^= 1 << ((x >> 40) % 8);
        }
    }
    // And tear one record in the middle, as a partial write would.
    let torn = HEADER + 5 * RECORD_SIZE;
    bytes[torn + 40..torn + RECORD_SIZE].fill(0);
    std::fs::write(&p, &bytes).unwrap();

    let (after, sum) = read_all(&p).unwrap();
    let before_set: HashSet<_> = before
        .iter()
        .map(|e| (e.resource, e.duid.clone()))
        .collect();
    for e in &after {
        assert!(
            before_set.contains(&(e.resource, e.duid.clone())),
            "garbage record {e:?}"
        );
    }
    let lost = before.len() - after.len();
    assert!(lost <= 41 + 40, "lost {lost}"); // a corrupt extension loses its binding too
    assert!(sum.corrupt > 0);

    let t = open(&p).unwrap();
    let rep = t.open_report().clone();
    assert!(
        rep.corrupt >= lost as u64 / 2 && rep.corrupt > 0,
        "{rep:?} lost {lost}"
    );
    assert_eq!(rep.records, after.len() as u64);
    // Every intact record is still served.
    for e in &after {
        let spec = if e.ia_type == IaType::Pd { pd() } else { pool };
        let key = BindingKey {
            duid: &e.duid,
            iaid: e.iaid,
            ia_type: e.ia_type,
        };
        assert_eq!(
            t.lookup(&key, &spec, 1000).map(|l| l.resource),
            Some(e.resource)
        );
    }
    // Slots of corrupt records are reused; new grants work and never collide.
    let mut seen: HashSet<Resource> = after.iter().map(|e| e.resource).collect();
    for i in 10_000..11_000 {
        assert!(seen.insert(grant(&t, &pool, i).unwrap()));
    }
    drop(t);
    assert_eq!(
        open(&p).unwrap().open_report().corrupt,
        0,
        "corrupt slots were cleared"
    );
}

#[test]
fn corrupt_header_is_a_clear_error_or_repaired() {
    let dir = tmpdir("header");
    let p = dir.join("leases");
    {
        let t = open(&p).unwrap();
        for i in 0..100 {
            grant(&t, &na(1000), i).unwrap();
        }
    }
    let good = std::fs::read(&p).unwrap();
    // Any single flipped byte in either header copy: repaired from the other copy.
    for off in [0usize, 7, 9, 20, 33, 60, 2048, 2048 + 25, 2048 + 63] {
        let mut b = good.clone();
        b[off] ^= 0x40;
        std::fs::write(&p, &b).unwrap();
        let t = open(&p).unwrap();
        assert_eq!(t.open_report().header_repaired, 1, "offset {off}");
        assert_eq!(t.len(), 100);
    }
    // Both copies bad: a clear error, and the file is left untouched.
    let mut b = good.clone();
    b[1] ^= 1;
    b[2048 + 1] ^= 1;
    std::fs::write(&p, &b).unwrap();
    match open(&p) {
        Err(e @ TableError::BadHeader { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("bad header") && msg.contains("leases"),
                "{msg}"
            );
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("opened a file with two bad headers"),
    }
    assert_eq!(
        std::fs::read(&p).unwrap(),
        b,
        "a failed open must not write"
    );
    // A file too short for its header, and one that is not a lease file at all.
    std::fs::write(&p, b"hello").unwrap();
    assert!(matches!(open(&p), Err(TableError::BadHeader { .. })));
    std::fs::write(&p, vec![0x5a; 10_000]).unwrap();
    assert!(matches!(open(&p), Err(TableError::BadHeader { .. })));
    // A truncated tail (crash during growth on another system): opens, keeps whole chunks.
    let mut b = good.clone();
    b.truncate(b.len() - 1000);
    std::fs::write(&p, &b).unwrap();
    let t = open(&p).unwrap();
    assert!(t.len() <= 100);
}

/// Mount a small tmpfs; `None` when not permitted (not root), so the test is skipped loudly.
fn small_tmpfs(dir: &Path, size: &str) -> Option<()> {
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs at {} (needs root)",
            dir.display()
        );
    }
    ok.then_some(())
}

struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_disk_fails_closed_and_loses_nothing() {
    let dir = tmpdir("fulldisk");
    if small_tmpfs(&dir, "1m").is_none() {
        return;
    }
    let _u = Unmount(dir.clone());
    let p = dir.join("leases");
    let pool = na(1 << 40);
    let mut granted = HashMap::new();
    {
        let t = open(&p).unwrap();
        // Grant until every shard is out of preallocated slots and the file cannot grow:
        // shards that still have room keep granting (their slots are already allocated on
        // disk), the others refuse.
        let mut i = 0;
        let mut refused_in_a_row = 0;
        let mut first_refusal = None;
        while refused_in_a_row < 500 {
            match grant(&t, &pool, i) {
                Ok(r) => {
                    granted.insert(i, r);
                    refused_in_a_row = 0;
                }
                Err(e) => {
                    assert_eq!(e, StoreError::Unavailable);
                    first_refusal.get_or_insert(i);
                    refused_in_a_row += 1;
                }
            }
            i += 1;
            assert!(i < 1_000_000, "the disk never filled");
        }
        assert!(first_refusal.is_some());
        assert!(granted.len() > 1000, "only {} grants fit", granted.len());
        assert!(!t.is_failed(), "ENOSPC on growth is not an I/O failure");
        for (&i, r) in granted.iter().take(100) {
            let d = duid(i);
            let key = BindingKey {
                duid: &d,
                iaid: 1,
                ia_type: IaType::Na,
            };
            assert_eq!(t.lookup(&key, &pool, 1000).map(|l| l.resource), Some(*r));
        }
    }
    let t = open(&p).unwrap();
    assert_eq!(t.open_report().corrupt, 0);
    assert_eq!(t.len(), granted.len() as u64);
    for (&i, r) in &granted {
        let d = duid(i);
        let key = BindingKey {
            duid: &d,
            iaid: 1,
            ia_type: IaType::Na,
        };
        assert_eq!(
            t.lookup(&key, &pool, 1000).map(|l| l.resource),
            Some(*r),
            "grant {i} lost"
        );
    }
    drop(t);
    // Space freed: the table grows again.
    let _ = std::fs::write(dir.join("filler"), b"");
}

/// A fresh 16-shard table for several threads, and its path.
fn shared_table(name: &str) -> (PathBuf, Arc<LeaseTable>) {
    let p = tmpdir(name).join("leases");
    let t = LeaseTable::open(TableConfig {
        shards: 16,
        ..cfg(&p)
    })
    .unwrap();
    (p, Arc::new(t))
}

/// Close the shared table and check its file holds no resource twice.
fn close_and_check_each_resource_once(p: &Path, t: Arc<LeaseTable>) {
    drop(Arc::try_unwrap(t).ok().expect("every thread has ended"));
    let (entries, _) = read_all(p).unwrap();
    let mut seen = HashSet::new();
    for e in &entries {
        assert!(
            seen.insert(e.resource),
            "{:?} twice in the file",
            e.resource
        );
    }
}

#[test]
fn threads_never_share_a_resource() {
    let (p, t) = shared_table("threads");
    let small_na = na(3000);
    // resource -> holder, updated after a grant and before a release.
    let holders: Arc<Mutex<HashMap<Resource, (u64, u32)>>> = Arc::default();
    let threads = 4u64;
    let hs: Vec<_> = (0..threads)
        .map(|th| {
            let t = t.clone();
            let holders = holders.clone();
            std::thread::spawn(move || {
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ th;
                let mut mine: Vec<(u64, u32, Resource, bool)> = Vec::new();
                for step in 0..20_000u64 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let now = 1000 + step;
                    let client = th * 1_000_000 + x % 350;
                    let pdp = x % 3 == 0;
                    let pool = if pdp { pd() } else { small_na };
                    let d = duid(client);
                    let key = BindingKey {
                        duid: &d,
                        iaid: (x >> 50) as u32 % 2,
                        ia_type: pool.ia_type,
                    };
                    if x % 11 == 0 && !mine.is_empty() {
                        let k = (x >> 20) as usize % mine.len();
                        let (c, iaid, r, is_pd) = mine.swap_remove(k);
                        holders.lock().unwrap().remove(&r);
                        let d = duid(c);
                        let ia_type = if is_pd { IaType::Pd } else { IaType::Na };
                        let key = BindingKey {
                            duid: &d,
                            iaid,
                            ia_type,
                        };
                        t.release(&key, r, now).unwrap();
                        continue;
                    }
                    let req = AllocRequest {
                        key,
                        pool: &pool,
                        hint: None,
                        reserved: &NoReservations,
                        lifetimes: LT,
                        now,
                    };
                    match t.allocate(&req, true) {
                        Ok(l) => {
                            let mut h = holders.lock().unwrap();
                            match h.get(&l.resource) {
                                Some(&who) => assert_eq!(
                                    who,
                                    (client, key.iaid),
                                    "{:?} given to two clients",
                                    l.resource
                                ),
                                None => {
                                    h.insert(l.resource, (client, key.iaid));
                                    mine.push((client, key.iaid, l.resource, pdp));
                                }
                            }
                        }
                        Err(StoreError::PoolExhausted(_)) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    close_and_check_each_resource_once(&p, t);
}

/// Batched renewals and lookups (which hold two key shards at once, in ascending order) racing
/// allocations and releases (key shard, then pool and resource locks) on other threads: nothing
/// deadlocks, and every batch result is exactly what its own thread's bindings say, in both
/// durability modes (in place through the journal; copy-on-write in group commit).
#[test]
fn batches_race_allocations_and_releases() {
    use std::sync::mpsc;
    use std::time::Duration;
    use xdhcp6::lease::table::Durability;

    for group in [false, true] {
        let dir = tmpdir(if group {
            "batches-group"
        } else {
            "batches-mapped"
        });
        let p = dir.join("leases");
        let t = Arc::new(
            LeaseTable::open(TableConfig {
                shards: 16,
                durability: if group {
                    Durability::GroupCommit {
                        batch_window: Duration::from_micros(100),
                        max_interval: Duration::from_millis(5),
                    }
                } else {
                    Durability::Mapped
                },
                ..cfg(&p)
            })
            .unwrap(),
        );
        let pool = na(4000);
        let (done, finished) = mpsc::channel();
        let threads = 4u64;
        for th in 0..threads {
            let (t, done) = (t.clone(), done.clone());
            std::thread::spawn(move || {
                let mut x = 0x2545_f491_4f6c_dd1du64 ^ (th << 32);
                let mut next = || {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x
                };
                // This thread's clients and what each holds.
                let clients: Vec<Vec<u8>> = (0..200).map(|i| duid(th * 1_000_000 + i)).collect();
                let mut held: HashMap<usize, Resource> = HashMap::new();
                fn key(d: &[u8]) -> BindingKey<'_> {
                    BindingKey {
                        duid: d,
                        iaid: 0,
                        ia_type: IaType::Na,
                    }
                }
                for step in 0..4000u64 {
                    let now = 1000 + step;
                    let r = next();
                    let c = (r >> 8) as usize % clients.len();
                    match r % 10 {
                        0..=3 if !held.contains_key(&c) => {
                            let req = AllocRequest {
                                key: key(&clients[c]),
                                pool: &pool,
                                hint: None,
                                reserved: &NoReservations,
                                lifetimes: LT,
                                now,
                            };
                            held.insert(c, t.allocate(&req, true).unwrap().resource);
                        }
                        4 if held.contains_key(&c) => {
                            let res = held.remove(&c).unwrap();
                            t.release(&key(&clients[c]), res, now).unwrap();
                        }
                        _ => {
                            // A batch of 64 (some listed twice) across every shard.
                            let picks: Vec<usize> = (0..64)
                                .map(|_| (next() >> 8) as usize % clients.len())
                                .collect();
                            let keys: Vec<BindingKey<'_>> =
                                picks.iter().map(|&c| key(&clients[c])).collect();
                            if r % 2 == 0 {
                                let mut out = vec![None; keys.len()];
                                t.renew_many(&keys, &pool, LT, now, &mut out);
                                for (c, o) in picks.iter().zip(out) {
                                    let got = o.map(|l| l.unwrap().resource);
                                    assert_eq!(got, held.get(c).copied(), "renewal of client {c}");
                                }
                            } else {
                                let mut out = vec![None; keys.len()];
                                t.lookup_many(&keys, &pool, now, &mut out);
                                for (c, o) in picks.iter().zip(out) {
                                    let got = o.map(|l| l.resource);
                                    assert_eq!(got, held.get(c).copied(), "lookup of client {c}");
                                }
                            }
                        }
                    }
                }
                let _ = done.send(());
            });
        }
        drop(done);
        for _ in 0..threads {
            finished
                .recv_timeout(Duration::from_secs(120))
                .expect("a thread panicked, or the batches deadlocked (no progress in 120 s)");
        }
    }
}

#[test]
fn threads_allocating_in_batches_never_share_a_resource() {
    // Four threads grant in batches (`allocate_many`) from one address pool smaller than
    // their clients together, and release some of what they hold: no address is ever held by
    // two clients, every grant is found by lookup, and the file holds each address once.
    let (p, t) = shared_table("threads-batched");
    let pool = na(1000);
    let holders: Arc<Mutex<HashMap<Resource, u64>>> = Arc::default();
    let hs: Vec<_> = (0..4u64)
        .map(|th| {
            let (t, holders) = (t.clone(), holders.clone());
            std::thread::spawn(move || {
                let mut x = 0x2545_f491_4f6c_dd1du64 ^ (th << 40);
                let mut mine: Vec<u64> = Vec::new();
                let (mut granted, mut exhausted) = (0u32, 0u32);
                for round in 0..400u64 {
                    let now = 1000 + round;
                    // Release a few of ours first.
                    for _ in 0..3 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        if mine.is_empty() {
                            break;
                        }
                        let c = mine.swap_remove(x as usize % mine.len());
                        let d = duid(c);
                        let key = BindingKey {
                            duid: &d,
                            iaid: 1,
                            ia_type: IaType::Na,
                        };
                        let r = t.lookup(&key, &pool, now).expect("held").resource;
                        holders.lock().unwrap().remove(&r);
                        t.release(&key, r, now).unwrap();
                    }
                    let clients: Vec<u64> = (0..16)
                        .map(|_| {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            th * 1_000_000 + x % 400
                        })
                        .collect();
                    let duids: Vec<Vec<u8>> = clients.iter().map(|&c| duid(c)).collect();
                    let reqs: Vec<AllocRequest<'_>> = duids
                        .iter()
                        .map(|d| AllocRequest {
                            key: BindingKey {
                                duid: d,
                                iaid: 1,
                                ia_type: IaType::Na,
                            },
                            pool: &pool,
                            hint: None,
                            reserved: &NoReservations,
                            lifetimes: LT,
                            now,
                        })
                        .collect();
                    let mut out = vec![None; reqs.len()];
                    t.allocate_many(&reqs, &mut out);
                    for ((&c, req), got) in clients.iter().zip(&reqs).zip(out) {
                        match got.expect("a result per request") {
                            Ok(l) => {
                                granted += 1;
                                let mut h = holders.lock().unwrap();
                                let who = *h.entry(l.resource).or_insert(c);
                                assert_eq!(who, c, "{:?} given to two clients", l.resource);
                                if !mine.contains(&c) {
                                    mine.push(c);
                                }
                                drop(h);
                                let seen = t.lookup(&req.key, &pool, now).map(|l| l.resource);
                                assert_eq!(seen, Some(l.resource));
                            }
                            Err(StoreError::PoolExhausted(_)) => exhausted += 1,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                (granted, exhausted)
            })
        })
        .collect();
    let (mut granted, mut exhausted) = (0, 0);
    for h in hs {
        let (g, e) = h.join().unwrap();
        granted += g;
        exhausted += e;
    }
    // The pool ran out at times and was granted from again after releases.
    assert!(
        granted > 1000 && exhausted > 0,
        "{granted} grants, {exhausted} refused"
    );
    close_and_check_each_resource_once(&p, t);
}
