use super::*;
use crate::lease::{BindingState, NoReservations, ReserveSet, Reserved};
use std::path::PathBuf;

pub(crate) fn tmp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xdhcp6-lease-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    let _ = std::fs::remove_file(&p);
    p
}

fn na_pool() -> PoolSpec {
    PoolSpec {
        id: 1,
        ia_type: IaType::Na,
        base: "2001:db8::1000".parse().unwrap(),
        len: 128,
        count: 1000,
    }
}

fn pd_pool() -> PoolSpec {
    PoolSpec {
        id: 2,
        ia_type: IaType::Pd,
        base: "2001:db8:100::".parse().unwrap(),
        len: 56,
        count: 256,
    }
}

/// `n` DUIDs of type `kind`, numbered 0..n.
fn numbered_duids(n: u32, kind: u8) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| [&[0, kind][..], &i.to_be_bytes()].concat())
        .collect()
}

const LT: Lifetimes = Lifetimes {
    preferred: 100,
    valid: 200,
};

fn req<'a>(duid: &'a [u8], iaid: u32, pool: &'a PoolSpec, now: u64) -> AllocRequest<'a> {
    AllocRequest {
        key: BindingKey {
            duid,
            iaid,
            ia_type: pool.ia_type,
        },
        pool,
        hint: None,
        reserved: &NoReservations,
        lifetimes: LT,
        now,
    }
}

fn small_cfg(p: PathBuf) -> TableConfig {
    TableConfig {
        shards: 4,
        chunk_records: 64,
        ..TableConfig::new(p)
    }
}

#[test]
fn allocate_lookup_reopen() {
    let p = tmp_path("basic");
    let na = na_pool();
    let pd = pd_pool();
    let long_duid = [0xabu8; 130];
    let (a, b, c);
    {
        let t = LeaseTable::open(small_cfg(p.clone())).unwrap();
        a = t
            .allocate(
                &req(b"\x00\x03\x00\x01\x02\x03\x04\x05\x06\x07", 1, &na, 1000),
                true,
            )
            .unwrap();
        b = t.allocate(&req(&long_duid, 9, &na, 1000), true).unwrap();
        c = t.allocate(&req(&long_duid, 9, &pd, 1000), true).unwrap();
        assert!(na.contains(a.resource) && na.contains(b.resource) && pd.contains(c.resource));
        assert_ne!(a.resource, b.resource);
        // Advertise gives the same answer as the committed allocation.
        let again = t
            .allocate(
                &req(b"\x00\x03\x00\x01\x02\x03\x04\x05\x06\x07", 1, &na, 1001),
                false,
            )
            .unwrap();
        assert_eq!(again.resource, a.resource);
        assert_eq!(
            t.lookup(&req(&long_duid, 9, &na, 0).key, &na, 1100)
                .unwrap()
                .resource,
            b.resource
        );
        assert_eq!(t.active_count(&na, 1000), 2);
        assert_eq!(t.len(), 3);
    }
    let t = LeaseTable::open(small_cfg(p.clone())).unwrap();
    assert_eq!(t.open_report().records, 3);
    assert_eq!(t.open_report().corrupt, 0);
    assert_eq!(
        t.lookup(&req(&long_duid, 9, &na, 0).key, &na, 1100)
            .unwrap()
            .resource,
        b.resource
    );
    assert_eq!(
        t.lookup(&req(&long_duid, 9, &pd, 0).key, &pd, 1100)
            .unwrap()
            .resource,
        c.resource
    );
    assert_eq!(
        t.lookup(&req(&long_duid, 9, &pd, 0).key, &pd, 1200),
        None,
        "expired"
    );
    // Expired but not reclaimed: the client gets its prefix back (affinity).
    assert_eq!(
        t.allocate(&req(&long_duid, 9, &pd, 5000), true)
            .unwrap()
            .resource,
        c.resource
    );
    let (entries, sum) = read_all(&p).unwrap();
    assert_eq!(sum.records, 3);
    assert!(entries.iter().any(|e| e.duid == long_duid
        && e.resource == c.resource
        && e.state == BindingState::Active));
}

#[test]
fn release_decline_reclaim() {
    let p = tmp_path("lifecycle");
    let na = na_pool();
    let t = LeaseTable::open(TableConfig {
        affinity_hold_secs: 10,
        ..small_cfg(p)
    })
    .unwrap();
    let k = b"client-1";
    let a = t.allocate(&req(k, 1, &na, 100), true).unwrap();
    t.release(&req(k, 1, &na, 0).key, a.resource, 150).unwrap();
    assert_eq!(t.lookup(&req(k, 1, &na, 0).key, &na, 151), None);
    assert_eq!(
        t.release(&req(k, 1, &na, 0).key, a.resource, 150),
        Err(StoreError::NoBinding)
    );
    // Affinity after release.
    assert_eq!(
        t.allocate(&req(k, 1, &na, 152), true).unwrap().resource,
        a.resource
    );
    t.decline(&req(k, 1, &na, 0).key, a.resource, 160, 50)
        .unwrap();
    let b = t.allocate(&req(k, 1, &na, 161), true).unwrap();
    assert_ne!(b.resource, a.resource, "declined address is quarantined");
    let other = BindingKey {
        duid: b"client-2",
        iaid: 1,
        ia_type: IaType::Na,
    };
    assert_eq!(
        t.bind(&other, 1, a.resource, LT, 170),
        Err(StoreError::Conflict)
    );
    let st = t.reclaim(205, 1_000_000);
    assert_eq!(st.freed, 0);
    let st = t.reclaim(211, 1_000_000);
    assert_eq!(st.freed, 1, "quarantine over");
    assert!(t.bind(&other, 1, a.resource, LT, 212).is_ok());
    // b expires at 161+200, then is held 10 s.
    assert_eq!(t.reclaim(362, 1_000_000).expired, 1);
    assert_eq!(t.active_count(&na, 362), 1);
    assert_eq!(t.reclaim(370, 1_000_000).freed, 0);
    assert_eq!(t.reclaim(371, 1_000_000).freed, 1);
    assert_eq!(t.reclaim(413, 1_000_000).expired, 1);
    assert_eq!(t.reclaim(423, 1_000_000).freed, 1);
    assert_eq!(t.len(), 0);
}

#[test]
fn pd_pool_fills_and_honours_length_hint() {
    let p = tmp_path("pd");
    let pd = pd_pool();
    let t = LeaseTable::open(small_cfg(p)).unwrap();
    let mut r = req(b"big", 1, &pd, 10);
    r.hint = Some(Resource::prefix(Ipv6Addr::UNSPECIFIED, 52));
    let big = t.allocate(&r, true).unwrap();
    assert_eq!(big.resource.len, 52);
    let mut seen = std::collections::HashSet::new();
    for i in 0..(256 - 16) {
        let d = format!("c{i}");
        let l = t.allocate(&req(d.as_bytes(), 1, &pd, 10), true).unwrap();
        assert_eq!(l.resource.len, 56);
        assert!(seen.insert(l.resource));
        assert!(pd_units(&pd, big.resource)
            .map(|(f, n)| {
                let i = pd.index_of(l.resource).unwrap();
                i < f || i >= f + n
            })
            .unwrap());
    }
    assert_eq!(
        t.allocate(&req(b"late", 1, &pd, 10), true),
        Err(StoreError::PoolExhausted(2))
    );
}

#[test]
fn corrupt_header_copy_is_repaired() {
    let p = tmp_path("hdr");
    drop(LeaseTable::open(small_cfg(p.clone())).unwrap());
    let mut b = std::fs::read(&p).unwrap();
    b[3] ^= 0xff;
    std::fs::write(&p, &b).unwrap();
    let t = LeaseTable::open(small_cfg(p.clone())).unwrap();
    assert_eq!(t.open_report().header_repaired, 1);
    drop(t);
    let mut b = std::fs::read(&p).unwrap();
    b[3] ^= 0xff;
    b[2048 + 9] ^= 0xff;
    std::fs::write(&p, &b).unwrap();
    assert!(matches!(
        LeaseTable::open(small_cfg(p)),
        Err(TableError::BadHeader { .. })
    ));
}

#[test]
fn export_json_and_csv_with_filters() {
    let p = tmp_path("export");
    let na = na_pool();
    let pd = pd_pool();
    {
        let t = LeaseTable::open(small_cfg(p.clone())).unwrap();
        t.allocate(&req(b"\x00\x01abc", 5, &na, 100), true).unwrap();
        t.allocate(&req(b"\x00\x01abc", 5, &pd, 100), true).unwrap();
        t.allocate(&req(b"\x00\x02xyz", 6, &na, 100), true).unwrap();
    }
    let mut out = Vec::new();
    let sum = export(&p, ExportFormat::JsonLines, &ExportFilter::All, &mut out).unwrap();
    assert_eq!((sum.records, sum.exported, sum.corrupt), (3, 3, 0));
    let text = String::from_utf8(out).unwrap();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["state"], "active");
        assert!(v["duid"].as_str().unwrap().starts_with("000"));
    }
    let mut out = Vec::new();
    let f = ExportFilter::Duid(b"\x00\x01abc".to_vec());
    assert_eq!(
        export(&p, ExportFormat::Csv, &f, &mut out)
            .unwrap()
            .exported,
        2
    );
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("duid,iaid,ia_type,resource,state"));
    assert_eq!(text.lines().count(), 3);
    let f = ExportFilter::Prefix(pd.base, 40);
    let mut out = Vec::new();
    assert_eq!(
        export(&p, ExportFormat::Csv, &f, &mut out)
            .unwrap()
            .exported,
        1
    );
    let (entries, _) = read_all(&p).unwrap();
    let a = entries
        .iter()
        .find(|e| e.ia_type == IaType::Na)
        .unwrap()
        .resource
        .addr;
    let mut out = Vec::new();
    assert_eq!(
        export(
            &p,
            ExportFormat::JsonLines,
            &ExportFilter::Address(a),
            &mut out
        )
        .unwrap()
        .exported,
        1
    );
}

#[test]
fn partner_ack_is_recorded_and_reset_by_updates() {
    let p = tmp_path("ack");
    let na = na_pool();
    let t = LeaseTable::open(TableConfig {
        server_id: 1,
        ..small_cfg(p.clone())
    })
    .unwrap();
    let r = req(b"acked", 3, &na, 100);
    let l = t.allocate(&r, true).unwrap();
    let e = t.entry(&r.key, l.resource).unwrap();
    assert!(!e.partner_acked);
    assert_eq!(e.alloc_server, 1);
    assert_eq!(
        t.partner_acked(&r.key, l.resource, e.seq + 1, 500),
        Ok(false)
    );
    assert_eq!(t.partner_acked(&r.key, l.resource, e.seq, 500), Ok(true));
    let e2 = t.entry(&r.key, l.resource).unwrap();
    assert!(e2.partner_acked && e2.partner_expires == 500 && e2.seq == e.seq);
    drop(t);
    let t = LeaseTable::open(small_cfg(p)).unwrap();
    assert_eq!(t.entry(&r.key, l.resource).unwrap(), e2, "survives reopen");
    t.bind(&r.key, 1, l.resource, LT, 150).unwrap();
    let e3 = t.entry(&r.key, l.resource).unwrap();
    assert!(!e3.partner_acked && e3.seq > e2.seq && e3.partner_expires == 500);
}

#[test]
fn visit_lists_every_record() {
    let p = tmp_path("visit");
    let na = na_pool();
    let t = LeaseTable::open(small_cfg(p)).unwrap();
    for i in 0..50u32 {
        t.allocate(&req(&i.to_be_bytes(), i, &na, 100), true)
            .unwrap();
    }
    let seven = 7u32.to_be_bytes();
    let r = req(&seven, 7, &na, 0);
    let l = t.lookup(&r.key, &na, 100).unwrap();
    t.decline(&r.key, l.resource, 120, 60).unwrap();
    let mut seen = Vec::new();
    t.visit(200, &mut |i| {
        seen.push((i.iaid, i.state));
        true
    });
    assert_eq!(seen.len(), 50);
    assert_eq!(
        seen.iter()
            .filter(|s| s.1 == BindingState::Abandoned)
            .count(),
        1
    );
    assert_eq!(
        seen.iter().filter(|s| s.1 == BindingState::Active).count(),
        49
    );
    assert!(seen.iter().all(|s| s.1 != BindingState::Expired));
    let mut n = 0;
    t.visit(400, &mut |i| {
        assert_ne!(i.state, BindingState::Active, "expired at 300");
        n += 1;
        n < 10
    });
    assert_eq!(n, 10);
}

/// An in-place update (Mapped mode) cut short at each step, as `kill -9` would: the reopened
/// table holds either the old or the new version, never a torn or corrupt record, and never
/// both.
#[test]
fn in_place_update_cut_at_each_step() {
    let na = na_pool();
    for (cut, long) in [(0, false), (1, false), (2, false), (3, false), (1, true)] {
        let p = tmp_path(&format!("inplace-{cut}-{long}"));
        let duid: Vec<u8> = if long {
            vec![0x5a; 120]
        } else {
            b"\x00\x03abc".to_vec()
        };
        let key = BindingKey {
            duid: &duid,
            iaid: 9,
            ia_type: IaType::Na,
        };
        let leased;
        {
            let t = LeaseTable::open(small_cfg(p.clone())).unwrap();
            leased = t.allocate(&req(&duid, 9, &na, 1000), true).unwrap();
            let inner = &t.inner;
            let (ktag, low) = split(hash::key_hash(&duid, 9, 0));
            let shard = shard_of(low, inner.kshards.len());
            let mut ks = lock(&inner.kshards[shard]);
            let (slot, old) = inner.find_key(&ks, ktag, &key, |_| true).unwrap();
            let mut new = Record {
                cltt: 5000,
                seq: inner.next_seq(),
                ..old
            };
            new.partner_acked = false;
            let bytes = new.encode();
            let j = inner.alloc_slot(&mut ks, shard).unwrap();
            // Step 0: the journal copy is complete.
            inner.write_record(j, &bytes);
            let rec = inner.region.span(inner.slot_offset(slot), RECORD_SIZE);
            if cut >= 1 {
                // Step 1: the slot is marked empty and partly rewritten.
                rec.write_u8_fenced(STATE_OFFSET, STATE_EMPTY);
                let r = &record::MUTABLE_RANGES[3];
                rec.write(r.start, &bytes[r.clone()]);
            }
            if cut >= 2 {
                // Step 2: the slot is complete again, the journal not yet emptied.
                for r in record::MUTABLE_RANGES {
                    rec.write(r.start, &bytes[r]);
                }
                rec.write_u8_release(STATE_OFFSET, bytes[STATE_OFFSET]);
            }
            if cut >= 3 {
                inner.invalidate(j);
            }
            drop(ks);
            // Dropped without the rest of the update: the file is as a kill would leave it.
        }
        let t = LeaseTable::open(small_cfg(p.clone())).unwrap();
        let rep = t.open_report().clone();
        assert_eq!(rep.corrupt, 0, "cut {cut}: {rep:?}");
        assert_eq!(rep.records, 1, "cut {cut}: {rep:?}");
        let l = t.lookup(&key, &na, 1001).unwrap();
        assert_eq!(l.resource, leased.resource);
        assert_eq!(
            l.cltt, 5000,
            "cut {cut}: the new version is complete somewhere"
        );
        assert_eq!(t.reclaim_all(1001).freed, 0);
        let (all, sum) = read_all(&p).unwrap();
        assert_eq!((all.len(), sum.corrupt), (1, 0), "cut {cut}");
        // And it keeps working: renew in place, reopen.
        t.bind(&key, 1, l.resource, LT, 6000).unwrap();
        drop(t);
        let t = LeaseTable::open(small_cfg(p)).unwrap();
        assert_eq!(t.open_report().superseded, 0);
        assert_eq!(t.lookup(&key, &na, 6001).unwrap().cltt, 6000);
    }
}

/// Two DUIDs (of the same length) whose binding keys share a hash tag: a birthday search.
fn tag_twins() -> (Vec<u8>, Vec<u8>) {
    let mut seen = HashMap::new();
    for i in 0u64.. {
        let d: Vec<u8> = [&[0u8, 3, 0, 1][..], &i.to_be_bytes()].concat();
        let (tag, _) = split(hash::key_hash(&d, 1, 0));
        if let Some(other) = seen.insert(tag, d.clone()) {
            return (other, d);
        }
    }
    unreachable!()
}

#[test]
fn batched_renewal_with_colliding_tags() {
    // One shard: both keys' index entries share a tag and a bucket chain. A batch learns a
    // key's only index entry from its probe; when that entry is another client's record, the
    // key has no binding, and when two entries share the tag the key is found by probing.
    let (x, y) = tag_twins();
    let p = tmp_path("tag-twins.leases");
    let t = LeaseTable::open(TableConfig {
        shards: 1,
        ..small_cfg(p)
    })
    .unwrap();
    let pool = na_pool();
    fn key(d: &[u8]) -> BindingKey<'_> {
        BindingKey {
            duid: d,
            iaid: 1,
            ia_type: IaType::Na,
        }
    }
    let lx = t.allocate(&req(&x, 1, &pool, 10), true).unwrap();
    let mut out = vec![None; 3];
    t.renew_many(&[key(&y), key(&x), key(&y)], &pool, LT, 20, &mut out);
    assert!(out[0].is_none() && out[2].is_none(), "{out:?}");
    assert_eq!(out[1].unwrap().unwrap().resource, lx.resource);
    let ly = t.allocate(&req(&y, 1, &pool, 30), true).unwrap();
    assert_ne!(lx.resource, ly.resource);
    let mut out = vec![None; 2];
    t.renew_many(&[key(&y), key(&x)], &pool, LT, 40, &mut out);
    let got: Vec<Resource> = out.iter().map(|o| o.unwrap().unwrap().resource).collect();
    assert_eq!(got, [ly.resource, lx.resource]);
    let mut out = vec![None; 2];
    t.lookup_many(&[key(&x), key(&y)], &pool, 50, &mut out);
    assert_eq!(out[0].unwrap().cltt, 40);
    assert_eq!(out[1].unwrap().resource, ly.resource);
}

#[test]
fn batched_allocation_grants_what_one_at_a_time_grants() {
    // `allocate_many` grants what `allocate` one at a time grants; a key given twice gets one
    // binding.
    let big = PoolSpec {
        count: 1 << 32,
        ..na_pool()
    };
    let pd = PoolSpec {
        base: "2001:db8:1000::".parse().unwrap(),
        count: 1 << 16,
        ..pd_pool()
    };
    let duids = numbered_duids(300, 4);
    let mut reqs: Vec<AllocRequest<'_>> = duids.iter().map(|d| req(d, 7, &big, 50)).collect();
    reqs.extend(duids[..40].iter().map(|d| req(d, 7, &pd, 50)));
    reqs.push(req(&duids[5], 7, &big, 50));
    let one = LeaseTable::open(small_cfg(tmp_path("batch-one"))).unwrap();
    let want: Vec<Resource> = reqs
        .iter()
        .map(|r| one.allocate(r, true).unwrap().resource)
        .collect();
    let many = LeaseTable::open(small_cfg(tmp_path("batch-many"))).unwrap();
    let mut out = vec![None; reqs.len()];
    many.allocate_many(&reqs, &mut out);
    let got: Vec<Resource> = out.iter().map(|o| o.unwrap().unwrap().resource).collect();
    // Addresses: each client's own candidate. Prefixes are probed linearly from each
    // client's start, so neighbours may swap blocks with the order; the blocks taken are the
    // same whatever the order.
    let (na_got, na_want) = (&got[..300], &want[..300]);
    assert_eq!(na_got, na_want);
    let pd_set = |v: &[Resource]| v.iter().copied().collect::<std::collections::BTreeSet<_>>();
    assert_eq!(pd_set(&got[300..340]), pd_set(&want[300..340]));
    assert_eq!(pd_set(&got[300..340]).len(), 40);
    assert_eq!(got[5], got[340]);
    assert_eq!(many.len(), 340);
}

#[test]
fn batched_allocation_from_a_small_pool_never_grants_twice() {
    // More clients than addresses in one batch, and a key no binding can have: every address
    // is granted once, the rest are refused as exhausted, the invalid key as unavailable, and
    // the grants survive a reopen.
    let p = tmp_path("batch-small");
    let pool = PoolSpec {
        count: 40,
        ..na_pool()
    };
    let duids = numbered_duids(60, 4);
    let mut reqs: Vec<AllocRequest<'_>> = duids.iter().map(|d| req(d, 1, &pool, 10)).collect();
    reqs.insert(17, req(b"", 1, &pool, 10));
    let mut out = vec![None; reqs.len()];
    let granted: HashMap<Resource, usize> = {
        let t = LeaseTable::open(small_cfg(p.clone())).unwrap();
        t.allocate_many(&reqs, &mut out);
        assert_eq!(out[17], Some(Err(StoreError::Unavailable)));
        let mut granted = HashMap::new();
        for (i, o) in out.iter().enumerate().filter(|&(i, _)| i != 17) {
            match o.unwrap() {
                Ok(l) => {
                    assert!(pool.contains(l.resource));
                    assert_eq!(
                        granted.insert(l.resource, i),
                        None,
                        "{:?} twice",
                        l.resource
                    );
                }
                Err(e) => assert_eq!(e, StoreError::PoolExhausted(pool.id)),
            }
        }
        granted
    };
    assert_eq!(granted.len(), 40);
    let t = LeaseTable::open(small_cfg(p)).unwrap();
    for (r, &i) in &granted {
        assert_eq!(
            t.lookup(&reqs[i].key, &pool, 20).map(|l| l.resource),
            Some(*r)
        );
    }
}

#[test]
fn a_preallocated_table_fills_without_growing() {
    // `initial_records`: the file and both indexes are sized at open, so granting that many
    // leases grows neither.
    let p = tmp_path("prealloc");
    let pool = PoolSpec {
        count: 1 << 32,
        ..na_pool()
    };
    let t = LeaseTable::open(TableConfig {
        initial_records: 5000,
        ..small_cfg(p.clone())
    })
    .unwrap();
    let before = t.stats();
    assert!(before.slots >= 5000);
    let duids = numbered_duids(5000, 4);
    let reqs: Vec<AllocRequest<'_>> = duids.iter().map(|d| req(d, 1, &pool, 10)).collect();
    let mut out = vec![None; reqs.len()];
    // Half, a reopen (fresh slots resume in the middle of a preallocated chunk), the rest.
    t.allocate_many(&reqs[..2500], &mut out[..2500]);
    drop(t);
    let t = LeaseTable::open(TableConfig {
        initial_records: 5000,
        ..small_cfg(p.clone())
    })
    .unwrap();
    t.allocate_many(&reqs[2500..], &mut out[2500..]);
    assert!(out.iter().all(|o| matches!(o, Some(Ok(_)))));
    let after = t.stats();
    assert_eq!(after.records, 5000);
    assert_eq!(
        (after.slots, after.index_bytes),
        (before.slots, before.index_bytes)
    );
    // Every grant is where it was said to be, distinct, and survives another reopen.
    drop(t);
    let t = LeaseTable::open(small_cfg(p)).unwrap();
    let mut seen = std::collections::HashSet::new();
    for (r, o) in reqs.iter().zip(&out) {
        let granted = o.unwrap().unwrap();
        let found = t.lookup(&r.key, &pool, 10).expect("lease kept");
        assert_eq!(found.resource, granted.resource);
        assert!(
            seen.insert(granted.resource),
            "{:?} granted twice",
            granted.resource
        );
    }
}

#[test]
fn a_table_beyond_32_bit_slot_numbers_is_refused() {
    // Slot numbers are 32 bits: a maximum that would need more slots is a clear error at open,
    // not a slot number that wraps (and overwrites slot 0) once the file gets that large.
    let p = tmp_path("slots32");
    let err = LeaseTable::open(TableConfig {
        max_records: 1 << 32,
        ..small_cfg(p.clone())
    })
    .err()
    .expect("refused");
    assert!(
        matches!(&err, TableError::Config(m) if m.contains("32 bits")),
        "{err}"
    );
    // Just below the limit opens (the mapping only reserves address space).
    let t = LeaseTable::open(TableConfig {
        max_records: (1 << 32) - 4 * 64,
        ..small_cfg(p)
    })
    .unwrap();
    assert_eq!(t.len(), 0);
}

#[test]
fn a_preallocation_beyond_memory_is_a_clear_error() {
    // 2^40 leases would need some 20 TiB of index memory: refused at open with a message
    // naming the setting, before the file is grown.
    let p = tmp_path("prealloc-huge");
    let err = LeaseTable::open(TableConfig {
        initial_records: 1 << 40,
        max_records: 1 << 40,
        ..small_cfg(p.clone())
    })
    .err()
    .expect("refused");
    let msg = err.to_string();
    assert!(msg.contains("preallocating 1099511627776 leases"), "{msg}");
    assert!(std::fs::metadata(&p).map_or(0, |m| m.len()) < 1 << 20);
}

#[test]
fn batched_allocation_takes_the_short_way_only_when_one_at_a_time_would() {
    // `allocate_many` claims a new client's first candidate straight away; everything else
    // (returning clients, reserved or bound first candidates, hints, long DUIDs, a key twice,
    // one DUID with two IAIDs) must come out as `allocate` one at a time gives it.
    let pool = PoolSpec {
        count: 1 << 40,
        ..na_pool()
    };
    let mut duids = numbered_duids(400, 4);
    for (i, d) in duids.iter_mut().enumerate().step_by(9) {
        d.resize(40, i as u8); // a long DUID: extension records
    }
    let first = |d: &[u8], iaid: u32| {
        pool.nth(hash::na_candidate(hash::duid_hash(d), iaid, 0, pool.count))
            .unwrap()
    };
    // Every 7th client's first candidate is reserved; client 3's first candidate is what
    // client 1 hints at, so client 1 takes it (hints go first) wherever the batch puts them.
    let reserved = ReserveSet((0..400).step_by(7).map(|i| first(&duids[i], 1)).collect());
    let mut reqs: Vec<AllocRequest<'_>> = Vec::new();
    let mut hinter = 0;
    for (i, d) in duids.iter().enumerate() {
        let mut r = req(d, 1, &pool, 50);
        r.reserved = &reserved;
        if i % 5 == 0 {
            // A hint in the pool, one outside it.
            r.hint = Some(if i % 10 == 0 {
                pool.nth(1_000_000 + i as u64).unwrap()
            } else {
                Resource::address("2001:db9::1".parse().unwrap())
            });
        }
        if i == 1 {
            r.hint = Some(first(&duids[3], 1));
            hinter = reqs.len();
        }
        reqs.push(r);
        if i % 13 == 0 {
            // The same key again, next to itself, after another address: it keeps the one
            // it was just given.
            let mut again = r;
            again.hint = match r.hint {
                Some(_) => None,
                None => Some(pool.nth(2_000_000 + i as u64).unwrap()),
            };
            reqs.push(again);
            // Its other IA (no hint: two keys after one address are served in key-shard
            // order by a batch, see docs/lease-table.md).
            let mut other = r;
            other.key.iaid = 2;
            other.hint = None;
            reqs.push(other);
        }
    }
    let open = |name: &str| {
        let t = LeaseTable::open(small_cfg(tmp_path(name))).unwrap();
        // Returning clients: bound before the batch.
        for r in reqs.iter().step_by(17) {
            t.allocate(r, true).unwrap();
        }
        t
    };
    let one = open("short-one");
    let want: Vec<_> = reqs.iter().map(|r| one.allocate(r, true)).collect();
    let many = open("short-many");
    let mut out = vec![None; reqs.len()];
    many.allocate_many(&reqs, &mut out);
    let got: Vec<_> = out.into_iter().map(Option::unwrap).collect();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "request {i}");
    }
    assert!(got
        .iter()
        .all(|g| g.as_ref().is_ok_and(|l| !reserved.is_reserved(l.resource))));
    assert_eq!(got[hinter].unwrap().resource, first(&duids[3], 1));
    assert_eq!(many.len(), one.len());
}

#[test]
fn batched_allocation_with_colliding_candidates_never_grants_twice() {
    // A pool small enough that many clients' candidates collide, a third of its addresses
    // reserved, some clients returning: whatever order the batch serves them in, no address
    // goes to two clients or to a reservation, a returning client keeps its address, and the
    // table after reopen holds exactly the grants.
    let p = tmp_path("batch-collide");
    let pool = PoolSpec {
        count: 600,
        ..na_pool()
    };
    let reserved = ReserveSet((0..600).step_by(3).map(|k| pool.nth(k).unwrap()).collect());
    let duids = numbered_duids(300, 3);
    let reqs: Vec<AllocRequest<'_>> = duids
        .iter()
        .map(|d| AllocRequest {
            reserved: &reserved,
            ..req(d, 1, &pool, 10)
        })
        .collect();
    let t = LeaseTable::open(small_cfg(p.clone())).unwrap();
    let before: HashMap<usize, Resource> = (0..300)
        .step_by(11)
        .map(|i| (i, t.allocate(&reqs[i], true).unwrap().resource))
        .collect();
    let mut out = vec![None; reqs.len()];
    t.allocate_many(&reqs, &mut out);
    let mut owner: HashMap<Resource, usize> = HashMap::new();
    for (i, o) in out.iter().enumerate() {
        let l = o.unwrap().unwrap_or_else(|e| panic!("request {i}: {e:?}"));
        assert!(pool.contains(l.resource) && !reserved.is_reserved(l.resource));
        assert_eq!(owner.insert(l.resource, i), None, "{:?} twice", l.resource);
        if let Some(r) = before.get(&i) {
            assert_eq!(l.resource, *r, "returning client {i}");
        }
    }
    drop(t);
    let t = LeaseTable::open(small_cfg(p)).unwrap();
    assert_eq!(t.len(), 300);
    for (r, &i) in &owner {
        assert_eq!(
            t.lookup(&reqs[i].key, &pool, 20).map(|l| l.resource),
            Some(*r)
        );
    }
}
