//! An in-memory [`LeaseStore`]: sharded `Mutex<HashMap>`s, nothing persisted.
//!
//! Two maps, each split into shards with their own lock, never held at the same time (so no
//! lock ordering and no deadlock):
//! - resources: resource → slot (who holds it, until when, or quarantined until when). The
//!   resource shard's lock is what makes claiming a resource atomic between workers.
//! - clients: hash of (DUID, IAID, IA type) → the resource last given to that IA in each pool,
//!   which is what gives affinity (the same client gets the same address back, RFC 8415 §18.3
//!   "lease stability") even after its binding expired or was released.
//!
//! Allocation is deterministic: affinity first, then the client's hint, then a linear probe
//! that starts at `hash(DUID, IAID, type) mod pool size`, skipping reserved, quarantined and
//! bound resources. An Advertise (no commit) therefore predicts exactly what the Request will
//! commit, as long as nobody else takes that resource in between.
//!
//! Allocation-wise, a client that already has entries (a renewing or re-requesting client)
//! costs no heap allocation: the maps are looked up by borrowed keys and updated in place. Only
//! the first binding of a new IA or of a new resource allocates.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::Ipv6Addr;
use std::sync::{Mutex, MutexGuard};

use super::{
    AllocRequest, BindingKey, BindingState, IaType, Lease, LeaseInfo, LeaseStore, Lifetimes,
    PoolSpec, Resource, StoreError,
};

/// Number of shards per map; a power of two well above the worker count keeps contention low.
const SHARDS: usize = 64;
/// The most candidates one allocation examines before declaring the pool exhausted. Bounds the
/// work one packet can cause in a huge, nearly full pool (a /64 range has 2^64 entries).
pub const MAX_PROBES: u64 = 1 << 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    /// Bound to `owner` until `lease.expires_at`.
    Bound,
    /// Released by its owner; free for anyone, remembered for the owner's affinity.
    Released,
    /// Declined (RFC 8415 §18.3.8): nobody gets it before `until`.
    Quarantined { until: u64 },
}

/// Longest DUID kept inline (RFC 8415 §11.1); longer ones (which the wire layer never lets
/// through) go to the heap rather than being refused.
const DUID_INLINE: usize = 130;

/// A DUID stored inline, so that checking ownership touches the slot's own cache lines rather
/// than chasing a pointer (the store's cost is dominated by cache misses).
#[derive(Debug)]
enum DuidBuf {
    Inline(heapless::Vec<u8, DUID_INLINE>),
    Heap(Box<[u8]>),
}

impl DuidBuf {
    fn new(d: &[u8]) -> Self {
        match heapless::Vec::from_slice(d) {
            Ok(v) => DuidBuf::Inline(v),
            Err(_) => DuidBuf::Heap(d.into()),
        }
    }
    fn as_slice(&self) -> &[u8] {
        match self {
            DuidBuf::Inline(v) => v,
            DuidBuf::Heap(b) => b,
        }
    }
}

#[derive(Debug)]
struct Owner {
    duid: DuidBuf,
    iaid: u32,
    ia_type: IaType,
}

impl Owner {
    fn new(k: &BindingKey<'_>) -> Self {
        Owner {
            duid: DuidBuf::new(k.duid),
            iaid: k.iaid,
            ia_type: k.ia_type,
        }
    }
    fn is(&self, k: &BindingKey<'_>) -> bool {
        self.iaid == k.iaid && self.ia_type == k.ia_type && self.duid.as_slice() == k.duid
    }
}

/// Hasher for keys that are already well mixed (the client map's key is `key_hash`) or that a
/// multiply-fold plus a final mix hashes well (resources): SipHash was a measurable part of
/// each packet.
#[derive(Default)]
struct FoldHasher(u64);

impl Hasher for FoldHasher {
    fn finish(&self) -> u64 {
        // fmix64 (MurmurHash3): the fold alone leaves the low bits, which pick the bucket,
        // depending on few input bits (pool addresses differ only in their last bytes).
        let mut z = self.0;
        z = (z ^ (z >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        z = (z ^ (z >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        z ^ (z >> 33)
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    fn write_u8(&mut self, v: u8) {
        self.write_u64(u64::from(v));
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

type Fold = BuildHasherDefault<FoldHasher>;

#[derive(Debug)]
struct Slot {
    owner: Option<Owner>,
    pool_id: u32,
    lease: Lease,
    state: SlotState,
}

impl Slot {
    /// Whether `k` may take this resource at `now`.
    fn free_for(&self, k: &BindingKey<'_>, now: u64) -> bool {
        match self.state {
            SlotState::Quarantined { until } => now >= until,
            SlotState::Released => true,
            SlotState::Bound => {
                self.lease.expires_at <= now || self.owner.as_ref().is_some_and(|o| o.is(k))
            }
        }
    }

    fn bound_to(&self, k: &BindingKey<'_>, now: u64) -> bool {
        self.state == SlotState::Bound
            && self.lease.expires_at > now
            && self.owner.as_ref().is_some_and(|o| o.is(k))
    }

    /// Record `k` as the holder, reusing the owner's storage when it is already `k`.
    fn take(&mut self, k: &BindingKey<'_>, pool_id: u32, lease: Lease) {
        if !self.owner.as_ref().is_some_and(|o| o.is(k)) {
            self.owner = Some(Owner::new(k));
        }
        self.pool_id = pool_id;
        self.lease = lease;
        self.state = SlotState::Bound;
    }
}

/// Pools remembered per IA for affinity; a link rarely has more pools of one type than this,
/// and forgetting the oldest only costs affinity.
const LAST_PER_CLIENT: usize = 4;

#[derive(Debug)]
struct ClientEntry {
    owner: Owner,
    /// (pool id, last resource given from that pool).
    last: heapless::Vec<(u32, Resource), LAST_PER_CLIENT>,
}

type ResourceShard = HashMap<Resource, Slot, Fold>;
/// Keyed by `key_hash`; the (astronomically rare) collision of two keys' hashes is resolved by
/// probing `hash + 1, + 2, …`. Entries are never removed, so probe chains never break.
type ClientShard = HashMap<u64, ClientEntry, Fold>;

/// The in-memory lease store.
pub struct MemoryStore {
    resources: Box<[Mutex<ResourceShard>]>,
    clients: Box<[Mutex<ClientShard>]>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

/// FNV-1a: deterministic across runs and builds (unlike `RandomState`), so allocation results
/// are stable across restarts too.
fn fnv1a(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Deterministic hash of a binding key.
pub fn key_hash(k: &BindingKey<'_>) -> u64 {
    let h = fnv1a(0xcbf2_9ce4_8422_2325, k.duid);
    let h = fnv1a(h, &k.iaid.to_be_bytes());
    let h = fnv1a(h, &[k.ia_type as u8]);
    // Final avalanche (splitmix64) so that nearby keys spread over the whole pool.
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn resource_shard(r: &Resource) -> usize {
    let v = u128::from(r.addr);
    let x = (v as u64) ^ ((v >> 64) as u64) ^ u64::from(r.len);
    (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58) as usize % SHARDS
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a shard cannot leave a map half-updated in a way that matters more
    // than losing the whole store would, so keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn make_lease(r: Resource, lifetimes: Lifetimes, now: u64) -> Lease {
    let expires_at = if lifetimes.valid == u32::MAX {
        u64::MAX
    } else {
        now.saturating_add(u64::from(lifetimes.valid))
    };
    Lease {
        resource: r,
        lifetimes,
        cltt: now,
        expires_at,
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        MemoryStore {
            resources: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::default()))
                .collect(),
            clients: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::default()))
                .collect(),
        }
    }

    fn client_shard(&self, h: u64) -> MutexGuard<'_, ClientShard> {
        lock(&self.clients[(h >> 58) as usize % SHARDS])
    }

    fn res_shard(&self, r: &Resource) -> MutexGuard<'_, ResourceShard> {
        lock(&self.resources[resource_shard(r)])
    }

    /// The resource last given to `k` from `pool_id`, if any.
    fn last_resource(&self, k: &BindingKey<'_>, pool_id: u32) -> Option<Resource> {
        let mut h = key_hash(k);
        let shard = self.client_shard(h);
        loop {
            let e = shard.get(&h)?;
            if e.owner.is(k) {
                return e.last.iter().find(|(p, _)| *p == pool_id).map(|(_, r)| *r);
            }
            h = h.wrapping_add(1);
        }
    }

    fn remember(&self, k: &BindingKey<'_>, pool_id: u32, r: Resource) {
        let h0 = key_hash(k);
        let mut shard = self.client_shard(h0);
        let mut h = h0;
        while shard.get(&h).is_some_and(|e| !e.owner.is(k)) {
            h = h.wrapping_add(1);
        }
        let entry = shard.entry(h).or_insert_with(|| ClientEntry {
            owner: Owner::new(k),
            last: heapless::Vec::new(),
        });
        if let Some(slot) = entry.last.iter_mut().find(|(p, _)| *p == pool_id) {
            slot.1 = r;
        } else if let Err(x) = entry.last.push((pool_id, r)) {
            entry.last.remove(0);
            let _ = entry.last.push(x);
        }
    }

    /// Check (and with `commit`, claim) `r` for `k` under the resource shard's lock.
    /// `require_owner` restricts it to a resource `k` held before (the affinity case).
    fn try_take(
        &self,
        req: &AllocRequest<'_>,
        r: Resource,
        commit: bool,
        require_owner: bool,
    ) -> Option<Lease> {
        let k = &req.key;
        let mut shard = self.res_shard(&r);
        match shard.get_mut(&r) {
            Some(slot) => {
                if require_owner && !slot.owner.as_ref().is_some_and(|o| o.is(k)) {
                    return None;
                }
                if matches!(slot.state, SlotState::Quarantined { .. }) && require_owner {
                    return None;
                }
                if !slot.free_for(k, req.now) {
                    return None;
                }
                let lease = make_lease(r, req.lifetimes, req.now);
                if commit {
                    slot.take(k, req.pool.id, lease);
                }
                Some(lease)
            }
            None if require_owner => None,
            None => {
                let lease = make_lease(r, req.lifetimes, req.now);
                if commit {
                    let owner = Some(Owner::new(k));
                    let slot = Slot {
                        owner,
                        pool_id: req.pool.id,
                        lease,
                        state: SlotState::Bound,
                    };
                    shard.insert(r, slot);
                }
                Some(lease)
            }
        }
    }

    fn finish(&self, req: &AllocRequest<'_>, lease: Lease, commit: bool) -> Lease {
        if commit {
            self.remember(&req.key, req.pool.id, lease.resource);
        }
        lease
    }
}

impl LeaseStore for MemoryStore {
    fn lookup(&self, key: &BindingKey<'_>, pool: &PoolSpec, now: u64) -> Option<Lease> {
        let r = self.last_resource(key, pool.id)?;
        let shard = self.res_shard(&r);
        let slot = shard.get(&r)?;
        (slot.pool_id == pool.id && slot.bound_to(key, now)).then_some(slot.lease)
    }

    fn allocate(&self, req: &AllocRequest<'_>, commit: bool) -> Result<Lease, StoreError> {
        let pool = req.pool;
        if pool.count == 0 {
            return Err(StoreError::PoolExhausted(pool.id));
        }
        // 1. Affinity: the resource this IA had from this pool, bound or not, while free.
        if let Some(r) = self.last_resource(&req.key, pool.id) {
            if pool.contains(r) && !req.reserved.is_reserved(r) {
                if let Some(l) = self.try_take(req, r, commit, true) {
                    return Ok(self.finish(req, l, commit));
                }
            }
        }
        // 2. The client's hint (RFC 8415 §18.3.2: a preference, honoured when possible). A
        //    prefix hint with an unspecified address only states a length; pools have one.
        if let Some(h) = req.hint {
            if h.addr != Ipv6Addr::UNSPECIFIED && pool.contains(h) && !req.reserved.is_reserved(h) {
                if let Some(l) = self.try_take(req, h, commit, false) {
                    return Ok(self.finish(req, l, commit));
                }
            }
        }
        // 3. Deterministic probe.
        let start = key_hash(&req.key) % pool.count;
        for i in 0..pool.count.min(MAX_PROBES) {
            let idx = (start + i) % pool.count;
            let Some(r) = pool.nth(idx) else { continue };
            if req.reserved.is_reserved(r) {
                continue;
            }
            if let Some(l) = self.try_take(req, r, commit, false) {
                return Ok(self.finish(req, l, commit));
            }
        }
        Err(StoreError::PoolExhausted(pool.id))
    }

    fn bind(
        &self,
        key: &BindingKey<'_>,
        pool_id: u32,
        resource: Resource,
        lifetimes: Lifetimes,
        now: u64,
    ) -> Result<Lease, StoreError> {
        let lease = make_lease(resource, lifetimes, now);
        {
            let mut shard = self.res_shard(&resource);
            match shard.get_mut(&resource) {
                Some(slot) => {
                    let quarantined =
                        matches!(slot.state, SlotState::Quarantined { until } if now < until);
                    if quarantined || !slot.free_for(key, now) {
                        return Err(StoreError::Conflict);
                    }
                    slot.take(key, pool_id, lease);
                }
                None => {
                    let owner = Some(Owner::new(key));
                    shard.insert(
                        resource,
                        Slot {
                            owner,
                            pool_id,
                            lease,
                            state: SlotState::Bound,
                        },
                    );
                }
            }
        }
        self.remember(key, pool_id, resource);
        Ok(lease)
    }

    fn release(
        &self,
        key: &BindingKey<'_>,
        resource: Resource,
        now: u64,
    ) -> Result<(), StoreError> {
        let mut shard = self.res_shard(&resource);
        match shard.get_mut(&resource) {
            Some(slot) if slot.bound_to(key, now) => {
                slot.state = SlotState::Released;
                slot.lease.expires_at = now;
                Ok(())
            }
            _ => Err(StoreError::NoBinding),
        }
    }

    fn decline(
        &self,
        key: &BindingKey<'_>,
        resource: Resource,
        now: u64,
        quarantine_secs: u32,
    ) -> Result<(), StoreError> {
        let mut shard = self.res_shard(&resource);
        match shard.get_mut(&resource) {
            Some(slot) if slot.bound_to(key, now) => {
                // The address is in use by someone else on the link (RFC 8415 §18.2.8): nobody,
                // including this client, gets it before the quarantine ends. The owner is kept
                // for listings; affinity never returns a quarantined slot to it.
                slot.state = SlotState::Quarantined {
                    until: now.saturating_add(u64::from(quarantine_secs)),
                };
                slot.lease.expires_at = now;
                Ok(())
            }
            _ => Err(StoreError::NoBinding),
        }
    }

    fn active_count(&self, pool: &PoolSpec, now: u64) -> u64 {
        self.resources
            .iter()
            .map(|m| {
                lock(m)
                    .values()
                    .filter(|s| {
                        s.pool_id == pool.id
                            && s.state == SlotState::Bound
                            && s.lease.expires_at > now
                    })
                    .count() as u64
            })
            .sum()
    }

    fn visit(&self, now: u64, f: &mut dyn FnMut(&LeaseInfo) -> bool) {
        for shard in self.resources.iter() {
            // Copy the shard out first so `f` never runs under a lock.
            let infos: Vec<LeaseInfo> = lock(shard)
                .values()
                .filter_map(|s| {
                    let o = s.owner.as_ref()?;
                    let state = match s.state {
                        SlotState::Bound if s.lease.expires_at > now => BindingState::Active,
                        SlotState::Bound => BindingState::Expired,
                        SlotState::Released => BindingState::Released,
                        SlotState::Quarantined { .. } => BindingState::Abandoned,
                    };
                    Some(LeaseInfo {
                        duid: o.duid.as_slice().to_vec(),
                        iaid: o.iaid,
                        ia_type: o.ia_type,
                        pool_id: s.pool_id,
                        lease: s.lease,
                        state,
                    })
                })
                .collect();
            for i in &infos {
                if !f(i) {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::{NoReservations, ReserveSet, Reserved};

    const LT: Lifetimes = Lifetimes {
        preferred: 100,
        valid: 200,
    };

    fn na_pool(count: u64) -> PoolSpec {
        PoolSpec {
            id: 1,
            ia_type: IaType::Na,
            base: "2001:db8::1000".parse().unwrap(),
            len: 128,
            count,
        }
    }

    fn key(duid: &[u8], iaid: u32) -> BindingKey<'_> {
        BindingKey {
            duid,
            iaid,
            ia_type: IaType::Na,
        }
    }

    fn req<'a>(
        k: BindingKey<'a>,
        pool: &'a PoolSpec,
        hint: Option<Resource>,
        reserved: &'a dyn Reserved,
        now: u64,
    ) -> AllocRequest<'a> {
        AllocRequest {
            key: k,
            pool,
            hint,
            reserved,
            lifetimes: LT,
            now,
        }
    }

    #[test]
    fn advertise_predicts_commit_and_is_stable() {
        let s = MemoryStore::new();
        let p = na_pool(1000);
        let k = key(b"\0\x01client-a", 1);
        let adv = s
            .allocate(&req(k, &p, None, &NoReservations, 10), false)
            .unwrap();
        assert_eq!(s.lookup(&k, &p, 10), None, "advertise commits nothing");
        let got = s
            .allocate(&req(k, &p, None, &NoReservations, 11), true)
            .unwrap();
        assert_eq!(adv.resource, got.resource);
        assert_eq!(got.expires_at, 211);
        assert_eq!(s.lookup(&k, &p, 12).unwrap().resource, got.resource);
        // A fresh store computes the same address for the same DUID+IAID (deterministic hash).
        let s2 = MemoryStore::new();
        let again = s2
            .allocate(&req(k, &p, None, &NoReservations, 50), true)
            .unwrap();
        assert_eq!(again.resource, got.resource);
        // A different IAID gets a different address.
        let other = s
            .allocate(
                &req(key(b"\0\x01client-a", 2), &p, None, &NoReservations, 12),
                true,
            )
            .unwrap();
        assert_ne!(other.resource, got.resource);
        assert_eq!(s.active_count(&p, 12), 2);
    }

    #[test]
    fn affinity_survives_release_and_expiry() {
        let s = MemoryStore::new();
        let p = na_pool(1000);
        let k = key(b"\0\x01client-b", 7);
        let first = s
            .allocate(&req(k, &p, None, &NoReservations, 0), true)
            .unwrap();
        s.release(&k, first.resource, 5).unwrap();
        assert_eq!(s.lookup(&k, &p, 6), None);
        assert_eq!(s.release(&k, first.resource, 6), Err(StoreError::NoBinding));
        let back = s
            .allocate(&req(k, &p, None, &NoReservations, 7), true)
            .unwrap();
        assert_eq!(back.resource, first.resource);
        // Expired (valid 200): still comes back to the same client.
        let later = s
            .allocate(&req(k, &p, None, &NoReservations, 1000), true)
            .unwrap();
        assert_eq!(later.resource, first.resource);
    }

    #[test]
    fn hints_are_honoured_when_free_and_in_pool() {
        let s = MemoryStore::new();
        let p = na_pool(100);
        let want = Resource::address("2001:db8::1010".parse().unwrap());
        let k = key(b"\0\x01hinter", 1);
        let l = s
            .allocate(&req(k, &p, Some(want), &NoReservations, 0), true)
            .unwrap();
        assert_eq!(l.resource, want);
        // Someone else hinting the same address gets another one.
        let k2 = key(b"\0\x01other", 1);
        let l2 = s
            .allocate(&req(k2, &p, Some(want), &NoReservations, 0), true)
            .unwrap();
        assert_ne!(l2.resource, want);
        // Out-of-pool hint is ignored.
        let out = Resource::address("2001:db8::9".parse().unwrap());
        let k3 = key(b"\0\x01third", 1);
        let l3 = s
            .allocate(&req(k3, &p, Some(out), &NoReservations, 0), true)
            .unwrap();
        assert!(p.contains(l3.resource));
    }

    #[test]
    fn skips_bound_reserved_and_quarantined_and_exhausts() {
        let s = MemoryStore::new();
        let p = na_pool(3);
        let reserved = ReserveSet(vec![p.nth(1).unwrap()]);
        let a = key(b"\0\x01aaa", 1);
        let b = key(b"\0\x01bbb", 1);
        let c = key(b"\0\x01ccc", 1);
        let la = s.allocate(&req(a, &p, None, &reserved, 0), true).unwrap();
        let lb = s.allocate(&req(b, &p, None, &reserved, 0), true).unwrap();
        assert_ne!(la.resource, lb.resource);
        assert!(la.resource != p.nth(1).unwrap() && lb.resource != p.nth(1).unwrap());
        assert_eq!(
            s.allocate(&req(c, &p, None, &reserved, 0), true),
            Err(StoreError::PoolExhausted(1))
        );
        // a declines its address: quarantined for 50 s, then reusable by c.
        s.decline(&a, la.resource, 10, 50).unwrap();
        assert_eq!(
            s.allocate(&req(c, &p, None, &reserved, 20), true),
            Err(StoreError::PoolExhausted(1))
        );
        assert_eq!(
            s.bind(&c, 1, la.resource, LT, 20),
            Err(StoreError::Conflict)
        );
        let lc = s.allocate(&req(c, &p, None, &reserved, 60), true).unwrap();
        assert_eq!(lc.resource, la.resource);
        // b's binding expires at 200: then it is reusable by others.
        assert_eq!(
            s.allocate(&req(a, &p, None, &reserved, 150), true),
            Err(StoreError::PoolExhausted(1))
        );
        let la2 = s.allocate(&req(a, &p, None, &reserved, 250), true).unwrap();
        assert_eq!(la2.resource, lb.resource);
    }

    #[test]
    fn bind_conflicts_and_extends() {
        let s = MemoryStore::new();
        let p = na_pool(10);
        let a = key(b"\0\x01aaa", 1);
        let b = key(b"\0\x01bbb", 1);
        let r = p.nth(4).unwrap();
        s.bind(&a, 1, r, LT, 0).unwrap();
        assert_eq!(s.bind(&b, 1, r, LT, 10), Err(StoreError::Conflict));
        let ext = s.bind(&a, 1, r, LT, 100).unwrap();
        assert_eq!(ext.expires_at, 300);
        assert_eq!(s.lookup(&a, &p, 250).unwrap().resource, r);
        assert_eq!(s.release(&b, r, 250), Err(StoreError::NoBinding));
        assert_eq!(s.decline(&b, r, 250, 10), Err(StoreError::NoBinding));
        // Infinite valid lifetime never expires.
        let inf = Lifetimes {
            preferred: u32::MAX,
            valid: u32::MAX,
        };
        assert_eq!(s.bind(&a, 1, r, inf, 5).unwrap().expires_at, u64::MAX);
    }

    #[test]
    fn prefix_pools() {
        let s = MemoryStore::new();
        let p = PoolSpec {
            id: 9,
            ia_type: IaType::Pd,
            base: "2001:db8:100::".parse().unwrap(),
            len: 56,
            count: 256,
        };
        let k = BindingKey {
            duid: b"\0\x01pd",
            iaid: 1,
            ia_type: IaType::Pd,
        };
        let len_only = Resource::prefix(Ipv6Addr::UNSPECIFIED, 56);
        let l = s
            .allocate(&req(k, &p, Some(len_only), &NoReservations, 0), true)
            .unwrap();
        assert_eq!(l.resource.len, 56);
        assert!(p.contains(l.resource));
        assert_eq!(s.lookup(&k, &p, 1).unwrap(), l);
    }

    #[test]
    fn visit_lists_bindings_with_their_state() {
        let s = MemoryStore::new();
        let pool = na_pool(16);
        let a = s
            .allocate(
                &req(key(b"\x00\x03aaaa", 1), &pool, None, &NoReservations, 10),
                true,
            )
            .unwrap();
        let b = s
            .allocate(
                &req(key(b"\x00\x03bbbb", 2), &pool, None, &NoReservations, 10),
                true,
            )
            .unwrap();
        s.release(&key(b"\x00\x03bbbb", 2), b.resource, 11).unwrap();
        let mut seen = Vec::new();
        s.visit(12, &mut |i| {
            seen.push((i.duid.clone(), i.iaid, i.lease.resource, i.state));
            true
        });
        seen.sort();
        assert_eq!(
            seen,
            vec![
                (
                    b"\x00\x03aaaa".to_vec(),
                    1,
                    a.resource,
                    BindingState::Active
                ),
                (
                    b"\x00\x03bbbb".to_vec(),
                    2,
                    b.resource,
                    BindingState::Released
                ),
            ]
        );
        // Past the valid lifetime the binding shows as expired; `false` stops the walk.
        let mut n = 0;
        s.visit(10_000, &mut |i| {
            assert_ne!(i.state, BindingState::Active);
            n += 1;
            false
        });
        assert_eq!(n, 1);
    }

    #[test]
    fn concurrent_allocations_never_share() {
        let s = std::sync::Arc::new(MemoryStore::new());
        let p = na_pool(64);
        let handles: Vec<_> = (0..4u8)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    (0..16u8)
                        .map(|i| {
                            let duid = [0, 1, t, i];
                            let k = key(&duid, 1);
                            let r = req(k, &p, None, &NoReservations, 0);
                            s.allocate(&r, true).unwrap().resource
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<_> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 64);
        assert_eq!(s.active_count(&p, 0), 64);
    }
}
