//! An open-addressing multimap from a 32-bit hash tag to a slot number, used for both indexes
//! (binding key → slot, resource → slot). Entries are 8 bytes: the tag, which also fixes the
//! home bucket, and the slot. The full key is compared by the caller against the record in the
//! mapping, so the index stays small (bytes per lease is a target). Linear probing in Robin
//! Hood order (each cluster sorted by home bucket), with backward-shift deletion: no
//! tombstones, so lookups never degrade with churn, and a probe stops as soon as it meets an
//! entry whose home lies after its own, a few buckets in, instead of walking to the end of the
//! cluster (at 85 % load an average cluster tail is some twenty buckets). The capacity is
//! not a power of two (home bucket by multiply-shift), so a table sized at open is exactly 80 %
//! full and growth is by half: memory per entry stays near 10-13 bytes.

use super::map::ArenaSlice;

const EMPTY: u64 = u64::MAX;
const MIN_CAPACITY: usize = 16;

pub struct Index {
    entries: Entries,
    len: usize,
}

/// Where an index's entries live: the heap, or (an index sized at open) the table's arena
/// (`map::carve`).
enum Entries {
    Heap(Vec<u64>),
    Arena(ArenaSlice),
}

impl std::ops::Deref for Entries {
    type Target = [u64];
    #[inline]
    fn deref(&self) -> &[u64] {
        match self {
            Entries::Heap(v) => v,
            Entries::Arena(a) => a,
        }
    }
}

impl std::ops::DerefMut for Entries {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u64] {
        match self {
            Entries::Heap(v) => v,
            Entries::Arena(a) => a,
        }
    }
}

#[inline]
fn pack(tag: u32, slot: u32) -> u64 {
    (u64::from(tag) << 32) | u64::from(slot)
}

/// The home bucket of `tag` in a table of `capacity` entries: Fibonacci mixing, then
/// multiply-shift onto 0..capacity.
#[inline]
fn home(tag: u32, capacity: usize) -> usize {
    ((u64::from(tag.wrapping_mul(0x9e37_79b1)) * capacity as u64) >> 32) as usize
}

/// Prefetch the home bucket of `tag` in the entries at `raw_parts` (as [`Index::raw_parts`]
/// returned them, possibly since replaced by a growth: then the prefetch is merely useless; a
/// prefetch never faults).
#[inline]
pub fn prefetch_bucket((base, capacity): (usize, usize), tag: u32) {
    let addr = base.wrapping_add(home(tag, capacity).wrapping_mul(8));
    crate::cpu::prefetch(addr);
    // A probe reads a few buckets on from home: from the second half of a cache line it
    // usually runs into the next line.
    if addr % 64 >= 32 {
        crate::cpu::prefetch(addr.wrapping_add(32));
    }
}

impl Default for Index {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl Index {
    pub fn with_capacity(n: usize) -> Self {
        Index {
            entries: Entries::Heap(vec![EMPTY; Self::capacity_for(n)]),
            len: 0,
        }
    }

    /// An empty index in `slice` (carved for [`Index::capacity_for`] of what it is sized
    /// for). It moves to the heap if it ever grows.
    pub fn in_arena(mut slice: ArenaSlice) -> Self {
        slice.fill(EMPTY);
        Index {
            entries: Entries::Arena(slice),
            len: 0,
        }
    }

    /// Entries (8 bytes each) of an index sized at open for `n`: 80 % full.
    pub fn capacity_for(n: usize) -> usize {
        (n + n / 4 + 1).max(MIN_CAPACITY)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn heap_bytes(&self) -> usize {
        self.entries.len() * 8
    }

    #[inline]
    fn home(&self, tag: u32) -> usize {
        home(tag, self.entries.len())
    }

    #[inline]
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.entries.len() {
            0
        } else {
            i + 1
        }
    }

    /// Cyclic distance from `from` forward to `to`.
    #[inline]
    fn dist(&self, from: usize, to: usize) -> usize {
        if to >= from {
            to - from
        } else {
            to + self.entries.len() - from
        }
    }

    /// Every slot filed under `tag`, in probe order, until `f` returns `Some`.
    #[inline]
    pub fn find<T>(&self, tag: u32, mut f: impl FnMut(u32) -> Option<T>) -> Option<T> {
        self.probe(tag, |_, e| f(e as u32))
    }

    /// Walk the entries that may carry `tag`, from its home bucket to the end of the cluster
    /// or the first entry whose home lies after it (clusters are sorted by home bucket), and
    /// call `f(bucket, entry)` on those that carry it until `f` returns `Some`.
    #[inline]
    fn probe<T>(&self, tag: u32, mut f: impl FnMut(usize, u64) -> Option<T>) -> Option<T> {
        let mut i = self.home(tag);
        let mut d = 0;
        loop {
            let e = self.entries[i];
            if e == EMPTY {
                return None;
            }
            if (e >> 32) as u32 == tag {
                if let Some(t) = f(i, e) {
                    return Some(t);
                }
            } else if self.displacement(e, i) < d {
                // `e` and every entry after it in the cluster belong to later home buckets.
                return None;
            }
            i = self.next(i);
            d += 1;
        }
    }

    /// How far the entry `e`, stored at `i`, sits from its home bucket.
    #[inline]
    fn displacement(&self, e: u64, i: usize) -> usize {
        self.dist(self.home((e >> 32) as u32), i)
    }

    /// Where the entries live: (address, capacity), for [`prefetch_bucket`] without the lock.
    pub fn raw_parts(&self) -> (usize, usize) {
        (self.entries.as_ptr() as usize, self.entries.len())
    }

    pub fn insert(&mut self, tag: u32, slot: u32) {
        assert!(slot != u32::MAX);
        self.reserve_one();
        self.insert_no_grow(pack(tag, slot));
        self.len += 1;
    }

    /// Insert (`tag`, `slot`) unless `exists` is true of a slot already filed under `tag`:
    /// the absence check and the insertion in one walk (a probe for `tag` stops exactly where
    /// Robin Hood insertion places it). Returns whether it inserted.
    #[inline]
    pub fn insert_unless(
        &mut self,
        tag: u32,
        slot: u32,
        mut exists: impl FnMut(u32) -> bool,
    ) -> bool {
        assert!(slot != u32::MAX);
        self.reserve_one();
        let mut i = self.home(tag);
        let mut d = 0;
        loop {
            let e = self.entries[i];
            if e == EMPTY {
                break;
            }
            if (e >> 32) as u32 == tag {
                if exists(e as u32) {
                    return false;
                }
            } else if self.displacement(e, i) < d {
                break;
            }
            i = self.next(i);
            d += 1;
        }
        self.insert_from(i, d, pack(tag, slot));
        self.len += 1;
        true
    }

    /// Room for one more entry within the load limit (85 %).
    #[inline]
    fn reserve_one(&mut self) {
        if (self.len + 1) * 20 > self.entries.len() * 17 {
            self.grow();
        }
    }

    /// Robin Hood insertion: walk from the home bucket past every entry at least as far from
    /// its home as `e` would be, take the first bucket whose entry is nearer its home (or
    /// empty), and carry that entry on the same way. Clusters stay sorted by home bucket, and
    /// entries of one tag stay in insertion order.
    fn insert_no_grow(&mut self, e: u64) {
        self.insert_from(self.home((e >> 32) as u32), 0, e);
    }

    /// [`Index::insert_no_grow`] from bucket `i`, which `e` would reach `d` buckets from its
    /// home, every bucket before it having been walked past.
    #[inline]
    fn insert_from(&mut self, mut i: usize, mut d: usize, mut e: u64) {
        loop {
            let cur = self.entries[i];
            if cur == EMPTY {
                self.entries[i] = e;
                return;
            }
            debug_assert!(cur != e, "duplicate index entry");
            let dc = self.displacement(cur, i);
            if dc < d {
                self.entries[i] = e;
                e = cur;
                d = dc;
            }
            i = self.next(i);
            d += 1;
        }
    }

    fn grow(&mut self) {
        let new_cap = self.entries.len() + self.entries.len() / 2;
        let old = std::mem::replace(&mut self.entries, Entries::Heap(vec![EMPTY; new_cap]));
        for &e in old.iter() {
            if e != EMPTY {
                self.insert_no_grow(e);
            }
        }
    }

    fn position(&self, e: u64) -> Option<usize> {
        self.probe((e >> 32) as u32, |i, cur| (cur == e).then_some(i))
    }

    /// Point the entry (`tag`, `old`) at `new`. Returns false if there is no such entry.
    pub fn replace(&mut self, tag: u32, old: u32, new: u32) -> bool {
        match self.position(pack(tag, old)) {
            Some(i) => {
                self.entries[i] = pack(tag, new);
                true
            }
            None => false,
        }
    }

    /// Remove the entry (`tag`, `slot`). Returns false if there is no such entry.
    pub fn remove(&mut self, tag: u32, slot: u32) -> bool {
        let Some(mut hole) = self.position(pack(tag, slot)) else {
            return false;
        };
        // Backward shift: the entries after the hole that are not in their home bucket move
        // back by one, up to the end of the cluster or the first entry that is at home. The
        // cluster stays sorted by home bucket.
        loop {
            let i = self.next(hole);
            let e = self.entries[i];
            if e == EMPTY || self.displacement(e, i) == 0 {
                break;
            }
            self.entries[hole] = e;
            hole = i;
        }
        self.entries[hole] = EMPTY;
        self.len -= 1;
        true
    }

    /// All (tag, slot) pairs.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.entries
            .iter()
            .filter(|&&e| e != EMPTY)
            .map(|&e| ((e >> 32) as u32, e as u32))
    }
}

#[cfg(test)]
impl Index {
    /// The Robin Hood invariant: along a cluster, each entry sits at most one bucket further
    /// from its home than the entry before it (so clusters are sorted by home bucket).
    fn check_order(&self) {
        let n = self.entries.len();
        for i in 0..n {
            let (a, b) = (self.entries[i], self.entries[(i + 1) % n]);
            if b == EMPTY {
                continue;
            }
            let db = self.displacement(b, (i + 1) % n);
            if a == EMPTY {
                assert_eq!(db, 0, "entry after an empty bucket not at home");
            } else {
                assert!(db <= self.displacement(a, i) + 1, "order broken at {i}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn matches_a_set_under_churn() {
        let mut ix = Index::default();
        let mut model = HashSet::new();
        let mut x = 12345u64;
        for _ in 0..200_000 {
            x = super::super::hash::fmix64(x);
            let tag = (x % 64) as u32; // many collisions on purpose
            let slot = ((x >> 20) % 5000) as u32;
            if x & (1 << 40) != 0 {
                if x & (1 << 41) != 0 {
                    // The absence check and the insertion in one walk.
                    let fresh = !model.contains(&(tag, slot));
                    assert_eq!(ix.insert_unless(tag, slot, |c| c == slot), fresh);
                    model.insert((tag, slot));
                } else if model.insert((tag, slot)) {
                    ix.insert(tag, slot);
                }
            } else {
                assert_eq!(ix.remove(tag, slot), model.remove(&(tag, slot)));
            }
            assert_eq!(ix.len(), model.len());
        }
        for &(t, s) in &model {
            assert_eq!(ix.find(t, |c| (c == s).then_some(())), Some(()));
        }
        assert_eq!(ix.iter().count(), model.len());
        ix.check_order();
        // Every tag's slots, found by an exhaustive scan, equal what `find` visits.
        for t in 0..64u32 {
            let mut seen = Vec::new();
            ix.find(t, |c| {
                seen.push(c);
                None::<()>
            });
            seen.sort_unstable();
            let mut want: Vec<u32> = model.iter().filter(|e| e.0 == t).map(|e| e.1).collect();
            want.sort_unstable();
            assert_eq!(seen, want, "tag {t}");
        }
    }

    #[test]
    fn indexes_in_one_arena_keep_apart_and_grow_out_of_it() {
        // Three indexes carved from one arena: each holds only its own entries, and one that
        // outgrows its slice moves to the heap with all of them.
        let sizes = [Index::capacity_for(100), Index::capacity_for(5000), 16];
        let mut ixs: Vec<Index> = super::super::map::carve(&sizes)
            .unwrap()
            .into_iter()
            .map(Index::in_arena)
            .collect();
        for (k, ix) in ixs.iter_mut().enumerate() {
            assert_eq!(ix.heap_bytes(), sizes[k] * 8);
            for slot in 0..(1000 * (k as u32 + 1)) {
                ix.insert(
                    super::super::hash::fmix64(u64::from(slot)) as u32,
                    slot + 1_000_000 * k as u32,
                );
            }
        }
        for (k, ix) in ixs.iter().enumerate() {
            let n = 1000 * (k as u32 + 1);
            assert_eq!(ix.len(), n as usize);
            for slot in 0..n {
                let tag = super::super::hash::fmix64(u64::from(slot)) as u32;
                let want = slot + 1_000_000 * k as u32;
                assert_eq!(ix.find(tag, |c| (c == want).then_some(())), Some(()));
            }
            assert!(ix.iter().all(|(_, s)| s / 1_000_000 == k as u32));
            ix.check_order();
        }
        // The first and last grew out of their slices; the middle one did not.
        assert!(ixs[0].heap_bytes() > sizes[0] * 8 && ixs[2].heap_bytes() > sizes[2] * 8);
        assert_eq!(ixs[1].heap_bytes(), sizes[1] * 8);
    }

    #[test]
    fn stays_in_robin_hood_order_through_growth_and_churn() {
        let mut ix = Index::with_capacity(100);
        let mut model = HashSet::new();
        let mut x = 99u64;
        for step in 0..100_000u32 {
            x = super::super::hash::fmix64(x);
            let tag = x as u32;
            if x & (1 << 40) != 0 || model.len() < 50 {
                if model.insert((tag, step)) {
                    ix.insert(tag, step);
                }
            } else if let Some(&e) = model.iter().next() {
                model.remove(&e);
                assert!(ix.remove(e.0, e.1));
                assert!(!ix.remove(e.0, e.1));
            }
            if step % 997 == 0 {
                ix.check_order();
            }
        }
        ix.check_order();
        for &(t, s) in &model {
            assert!(ix.replace(t, s, s ^ 1));
            assert_eq!(ix.find(t, |c| (c == s ^ 1).then_some(())), Some(()));
        }
    }
}
