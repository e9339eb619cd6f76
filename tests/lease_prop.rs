//! Property test: random operation sequences against the lease table and a plain in-memory
//! model of the same rules, including close/reopen of the file.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use xdhcp6::lease::table::{read_all, LeaseTable, TableConfig};
use xdhcp6::lease::{
    AllocRequest, BindingKey, BindingState, IaType, LeaseStore, Lifetimes, PoolSpec, Reserved,
    Resource, StoreError,
};

const HOLD: u64 = 30;
const LT: Lifetimes = Lifetimes {
    preferred: 60,
    valid: 100,
};

fn pools() -> [PoolSpec; 2] {
    [
        PoolSpec {
            id: 10,
            ia_type: IaType::Na,
            base: "2001:db8::100".parse().unwrap(),
            len: 128,
            count: 12,
        },
        PoolSpec {
            id: 20,
            ia_type: IaType::Pd,
            base: "2001:db8:ff00::".parse().unwrap(),
            len: 60,
            count: 8,
        },
    ]
}

/// The first address of the NA pool is a host reservation for someone else.
struct FirstReserved(Resource);
impl Reserved for FirstReserved {
    fn is_reserved(&self, r: Resource) -> bool {
        r == self.0
    }
}

fn duid(c: u8) -> Vec<u8> {
    // Short, inline-length and long (extension records) DUIDs.
    match c % 3 {
        0 => vec![0, 3, 0, 1, 2, 0, 0, 0, 0, c],
        1 => (0..28).map(|i| i ^ c).collect(),
        _ => (0..130)
            .map(|i: u32| (i as u8).wrapping_mul(c | 1))
            .collect(),
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// `batch` (with `commit`): through `allocate_many`, the request given twice (the second
    /// must find the binding the first made).
    Alloc {
        c: u8,
        iaid: u32,
        pool: usize,
        commit: bool,
        batch: bool,
        dt: u64,
    },
    Renew {
        c: u8,
        iaid: u32,
        pool: usize,
        pick: u64,
    },
    /// Lookup-and-renew in one call (`renew`), or for every client at once (`renew_many`).
    Extend {
        c: u8,
        iaid: u32,
        pool: usize,
        batch: bool,
        dt: u64,
    },
    Release {
        c: u8,
        iaid: u32,
        pool: usize,
    },
    Decline {
        c: u8,
        iaid: u32,
        pool: usize,
        q: u32,
    },
    Reclaim {
        dt: u64,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..7, 0u32..2, 0usize..2, any::<bool>(), any::<bool>(), 0u64..20)
            .prop_map(|(c, iaid, pool, commit, batch, dt)| Op::Alloc { c, iaid, pool, commit, batch, dt }),
        3 => (0u8..7, 0u32..2, 0usize..2, 0u64..16)
            .prop_map(|(c, iaid, pool, pick)| Op::Renew { c, iaid, pool, pick }),
        3 => (0u8..7, 0u32..2, 0usize..2, any::<bool>(), 0u64..60)
            .prop_map(|(c, iaid, pool, batch, dt)| Op::Extend { c, iaid, pool, batch, dt }),
        2 => (0u8..7, 0u32..2, 0usize..2).prop_map(|(c, iaid, pool)| Op::Release { c, iaid, pool }),
        1 => (0u8..7, 0u32..2, 0usize..2, 1u32..80)
            .prop_map(|(c, iaid, pool, q)| Op::Decline { c, iaid, pool, q }),
        2 => (0u64..150).prop_map(|dt| Op::Reclaim { dt }),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Debug, Clone, Copy)]
struct MRec {
    c: u8,
    iaid: u32,
    pool: usize,
    state: BindingState,
    cltt: u64,
    valid: u32,
}

impl MRec {
    fn expires(&self) -> u64 {
        self.cltt + u64::from(self.valid)
    }
    fn keyed(&self) -> bool {
        matches!(
            self.state,
            BindingState::Active | BindingState::Expired | BindingState::Released
        )
    }
}

/// The model: every record by resource.
#[derive(Default)]
struct Model {
    recs: HashMap<Resource, MRec>,
}

impl Model {
    fn own(&self, c: u8, iaid: u32, pool: usize) -> Option<(Resource, MRec)> {
        self.recs
            .iter()
            .find(|(_, m)| m.c == c && m.iaid == iaid && m.pool == pool && m.keyed())
            .map(|(r, m)| (*r, *m))
    }
}

fn tmp(name: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!("xdhcp6-lease-prop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{name}-{}", N.fetch_add(1, Ordering::Relaxed)))
}

fn cfg(p: &PathBuf) -> TableConfig {
    TableConfig {
        shards: 4,
        chunk_records: 64,
        affinity_hold_secs: HOLD as u32,
        pools: vec![pools()[1]],
        ..TableConfig::new(p)
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let path = tmp("case");
    let pools = pools();
    let reserved = FirstReserved(pools[0].nth(0).unwrap());
    let mut t = Some(LeaseTable::open(cfg(&path)).unwrap());
    let mut m = Model::default();
    let mut now = 1000u64;
    let duids: Vec<Vec<u8>> = (0..7).map(duid).collect();
    for op in ops {
        let store = t.as_ref().unwrap();
        match op {
            Op::Alloc {
                c,
                iaid,
                pool,
                commit,
                batch,
                dt,
            } => {
                now += dt;
                let spec = &pools[pool];
                let key = BindingKey {
                    duid: &duids[c as usize],
                    iaid,
                    ia_type: spec.ia_type,
                };
                let req = AllocRequest {
                    key,
                    pool: spec,
                    hint: None,
                    reserved: &reserved,
                    lifetimes: LT,
                    now,
                };
                let got = if batch && commit {
                    let mut out = [None, None];
                    store.allocate_many(&[req, req], &mut out);
                    let [first, again] = out.map(|o| o.expect("a result per request"));
                    match (&first, &again) {
                        (Ok(a), Ok(b)) => prop_assert_eq!(a.resource, b.resource, "same key twice"),
                        _ => prop_assert_eq!(&first, &again, "same key twice"),
                    }
                    first
                } else {
                    store.allocate(&req, commit)
                };
                let avail: Vec<Resource> = (0..spec.count)
                    .map(|i| spec.nth(i).unwrap())
                    .filter(|r| !m.recs.contains_key(r) && !reserved.is_reserved(*r))
                    .collect();
                match m.own(c, iaid, pool) {
                    Some((r, _)) => {
                        let l = got.expect("affinity allocation");
                        prop_assert_eq!(l.resource, r, "affinity");
                        if commit {
                            m.recs.insert(
                                r,
                                MRec {
                                    c,
                                    iaid,
                                    pool,
                                    state: BindingState::Active,
                                    cltt: now,
                                    valid: LT.valid,
                                },
                            );
                        }
                    }
                    None if avail.is_empty() => {
                        prop_assert_eq!(got, Err(StoreError::PoolExhausted(spec.id)));
                    }
                    None => {
                        let l = got.expect("allocation with free resources");
                        prop_assert!(avail.contains(&l.resource), "{:?} not free", l.resource);
                        prop_assert_eq!(l.cltt, now);
                        prop_assert_eq!(l.expires_at, now + u64::from(LT.valid));
                        if commit {
                            m.recs.insert(
                                l.resource,
                                MRec {
                                    c,
                                    iaid,
                                    pool,
                                    state: BindingState::Active,
                                    cltt: now,
                                    valid: LT.valid,
                                },
                            );
                        }
                    }
                }
            }
            Op::Renew {
                c,
                iaid,
                pool,
                pick,
            } => {
                let spec = &pools[pool];
                let key = BindingKey {
                    duid: &duids[c as usize],
                    iaid,
                    ia_type: spec.ia_type,
                };
                let r = match m.own(c, iaid, pool) {
                    Some((r, _)) => r,
                    None => spec.nth(pick % spec.count).unwrap(),
                };
                let got = store.bind(&key, spec.id, r, LT, now);
                let mine = m
                    .recs
                    .get(&r)
                    .is_some_and(|x| x.c == c && x.iaid == iaid && x.pool == pool && x.keyed());
                if !mine && m.recs.contains_key(&r) {
                    prop_assert_eq!(got, Err(StoreError::Conflict));
                } else {
                    let l = got.expect("bind");
                    prop_assert_eq!(l.resource, r);
                    m.recs.insert(
                        r,
                        MRec {
                            c,
                            iaid,
                            pool,
                            state: BindingState::Active,
                            cltt: now,
                            valid: LT.valid,
                        },
                    );
                }
            }
            Op::Extend {
                c,
                iaid,
                pool,
                batch,
                dt,
            } => {
                now += dt;
                let spec = &pools[pool];
                // A batch holds every client, and `c` a second time (renewed twice, in order).
                let clients: Vec<u8> = if batch {
                    (0..7).chain([c]).collect()
                } else {
                    vec![c]
                };
                let keys: Vec<BindingKey<'_>> = clients
                    .iter()
                    .map(|&c| BindingKey {
                        duid: &duids[c as usize],
                        iaid,
                        ia_type: spec.ia_type,
                    })
                    .collect();
                let mut got = vec![None; keys.len()];
                if batch {
                    store.renew_many(&keys, spec, LT, now, &mut got);
                } else {
                    got[0] = store.renew(&keys[0], spec, LT, now);
                }
                for (&c, got) in clients.iter().zip(got) {
                    // The binding `lookup` would return, extended; nothing otherwise.
                    let want = m
                        .own(c, iaid, pool)
                        .filter(|(_, e)| e.state == BindingState::Active && e.expires() > now);
                    match want {
                        Some((r, _)) => {
                            let l = got.expect("renewal of a current binding").expect("renew");
                            prop_assert_eq!(l.resource, r);
                            prop_assert_eq!(l.cltt, now);
                            prop_assert_eq!(l.expires_at, now + u64::from(LT.valid));
                            let e = m.recs.get_mut(&r).unwrap();
                            e.cltt = now;
                            e.valid = LT.valid;
                        }
                        None => prop_assert_eq!(got, None, "renewed without a current binding"),
                    }
                }
            }
            Op::Release { c, iaid, pool } | Op::Decline { c, iaid, pool, .. } => {
                let spec = &pools[pool];
                let key = BindingKey {
                    duid: &duids[c as usize],
                    iaid,
                    ia_type: spec.ia_type,
                };
                let own = m.own(c, iaid, pool);
                let r = own.map(|(r, _)| r).unwrap_or(spec.nth(1).unwrap());
                let (got, to, valid) = match op {
                    Op::Decline { q, .. } => (
                        store.decline(&key, r, now, q),
                        BindingState::Abandoned,
                        Some(q),
                    ),
                    _ => (store.release(&key, r, now), BindingState::Released, None),
                };
                match own {
                    Some((r, mr)) if mr.state == BindingState::Active => {
                        prop_assert_eq!(got, Ok(()));
                        let e = m.recs.get_mut(&r).unwrap();
                        e.state = to;
                        e.cltt = now;
                        if let Some(q) = valid {
                            e.valid = q;
                        }
                    }
                    _ => prop_assert_eq!(got, Err(StoreError::NoBinding)),
                }
            }
            Op::Reclaim { dt } => {
                now += dt;
                store.reclaim_all(now);
                store.reclaim_all(now);
                m.recs.retain(|_, e| match e.state {
                    BindingState::Active | BindingState::Expired => e.expires() + HOLD > now,
                    BindingState::Released => e.cltt + HOLD > now,
                    BindingState::Abandoned => e.expires() > now,
                    _ => true,
                });
                for e in m.recs.values_mut() {
                    if e.state == BindingState::Active && e.expires() <= now {
                        e.state = BindingState::Expired;
                    }
                }
            }
            Op::Reopen => {
                drop(t.take());
                let (entries, sum) = read_all(&path).unwrap();
                prop_assert_eq!(sum.corrupt, 0);
                prop_assert_eq!(entries.len(), m.recs.len());
                for e in &entries {
                    let mr = m.recs.get(&e.resource).expect("exported record in model");
                    prop_assert_eq!(e.state, mr.state);
                    prop_assert_eq!(&e.duid, &duids[mr.c as usize]);
                }
                t = Some(LeaseTable::open(cfg(&path)).unwrap());
                prop_assert_eq!(t.as_ref().unwrap().open_report().corrupt, 0);
                prop_assert_eq!(
                    t.as_ref().unwrap().open_report().records,
                    m.recs.len() as u64
                );
            }
        }
        // After every step: lookups (one by one and batched) and counts agree.
        let store = t.as_ref().unwrap();
        for (pi, spec) in pools.iter().enumerate() {
            let mut keys = Vec::new();
            let mut wants = Vec::new();
            for c in 0..7u8 {
                for iaid in 0..2 {
                    let key = BindingKey {
                        duid: &duids[c as usize],
                        iaid,
                        ia_type: spec.ia_type,
                    };
                    let want = m
                        .own(c, iaid, pi)
                        .filter(|(_, e)| e.state == BindingState::Active && e.expires() > now)
                        .map(|(r, _)| r);
                    prop_assert_eq!(store.lookup(&key, spec, now).map(|l| l.resource), want);
                    keys.push(key);
                    wants.push(want);
                }
            }
            let mut got = vec![None; keys.len()];
            store.lookup_many(&keys, spec, now, &mut got);
            let got: Vec<_> = got.iter().map(|l| l.map(|l| l.resource)).collect();
            prop_assert_eq!(got, wants, "lookup_many");
        }
        for (pi, spec) in pools.iter().enumerate() {
            let active = m
                .recs
                .values()
                .filter(|e| e.pool == pi && e.state == BindingState::Active)
                .count();
            prop_assert_eq!(store.active_count(spec, now), active as u64);
        }
        prop_assert_eq!(store.len(), m.recs.len() as u64);
    }
    drop(t);
    let _ = std::fs::remove_file(&path);
    let _ = Ipv6Addr::UNSPECIFIED;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
    #[test]
    fn table_agrees_with_model(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}
