//! Which client holds each address or prefix, to catch a server handing one to two clients.
//!
//! A fixed-capacity hash table split into shards with a lock each (workers rarely touch the
//! same shard at once). Keys are `(pool index, offset in pool)`, values are client indices.
//! Open addressing with linear probing and backward-shift deletion, so a released lease leaves
//! no tombstone. Nothing grows: when a shard is full, further leases are not tracked and
//! [`Ownership::overflowed`] says so in the report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::clients::mix64;

const SHARDS: usize = 256;

#[derive(Clone, Copy)]
struct Slot {
    off: u64,
    owner: u32,
    pool: u8,
    used: bool,
}

const EMPTY: Slot = Slot {
    off: 0,
    owner: 0,
    pool: 0,
    used: false,
};

struct Shard {
    slots: Vec<Slot>,
    len: usize,
}

/// The outcome of [`Ownership::claim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Now (or already) owned by the claimant.
    Ok,
    /// Owned by another client.
    Taken { owner: u32 },
    /// The table is full; the lease is not tracked.
    Untracked,
}

pub struct Ownership {
    shards: Vec<Mutex<Shard>>,
    mask: usize,
    overflowed: AtomicU64,
}

impl Ownership {
    /// A table sized for about `leases` simultaneous leases (load factor at most 2/3).
    pub fn with_capacity(leases: usize) -> Self {
        let per_shard = (leases.saturating_mul(3) / 2 / SHARDS + 1)
            .next_power_of_two()
            .max(16);
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    slots: vec![EMPTY; per_shard],
                    len: 0,
                })
            })
            .collect();
        Ownership {
            shards,
            mask: per_shard - 1,
            overflowed: AtomicU64::new(0),
        }
    }

    /// Bytes held by the table.
    pub fn bytes(&self) -> usize {
        SHARDS * (self.mask + 1) * core::mem::size_of::<Slot>()
    }

    /// Leases that could not be tracked because a shard was full.
    pub fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }

    fn hash(pool: u8, off: u64) -> u64 {
        mix64(off ^ (u64::from(pool) << 56).rotate_left(7))
    }

    fn shard(&self, h: u64) -> std::sync::MutexGuard<'_, Shard> {
        // A poisoned shard only means another worker panicked; its data is still consistent
        // because every mutation below completes without panicking.
        self.shards[(h >> 56) as usize % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Record that `client` holds `(pool, off)`.
    pub fn claim(&self, pool: u8, off: u64, client: u32) -> Claim {
        let h = Self::hash(pool, off);
        let mut s = self.shard(h);
        let cap = self.mask + 1;
        let mut i = h as usize & self.mask;
        for _ in 0..cap {
            let slot = &mut s.slots[i];
            if !slot.used {
                if s.len * 4 >= cap * 3 {
                    drop(s);
                    self.overflowed.fetch_add(1, Ordering::Relaxed);
                    return Claim::Untracked;
                }
                s.slots[i] = Slot {
                    off,
                    owner: client,
                    pool,
                    used: true,
                };
                s.len += 1;
                return Claim::Ok;
            }
            if slot.off == off && slot.pool == pool {
                return if slot.owner == client {
                    Claim::Ok
                } else {
                    Claim::Taken { owner: slot.owner }
                };
            }
            i = (i + 1) & self.mask;
        }
        self.overflowed.fetch_add(1, Ordering::Relaxed);
        Claim::Untracked
    }

    /// Forget `(pool, off)` if `client` holds it.
    pub fn release(&self, pool: u8, off: u64, client: u32) {
        let h = Self::hash(pool, off);
        let mut s = self.shard(h);
        let mask = self.mask;
        let mut i = h as usize & mask;
        for _ in 0..=mask {
            let slot = s.slots[i];
            if !slot.used {
                return;
            }
            if slot.off == off && slot.pool == pool {
                if slot.owner != client {
                    return;
                }
                // Backward-shift deletion: pull later members of the probe run into the hole
                // so that lookups never stop early at it.
                let mut hole = i;
                let mut j = (i + 1) & mask;
                loop {
                    let next = s.slots[j];
                    if !next.used {
                        break;
                    }
                    let home = Self::hash(next.pool, next.off) as usize & mask;
                    // `next` may move into `hole` unless its home lies cyclically in (hole, j].
                    let dist_home = j.wrapping_sub(home) & mask;
                    let dist_hole = j.wrapping_sub(hole) & mask;
                    if dist_home >= dist_hole {
                        s.slots[hole] = next;
                        hole = j;
                    }
                    j = (j + 1) & mask;
                }
                s.slots[hole] = EMPTY;
                s.len -= 1;
                return;
            }
            i = (i + 1) & mask;
        }
    }

    /// The owner of `(pool, off)`, if tracked.
    pub fn owner(&self, pool: u8, off: u64) -> Option<u32> {
        let h = Self::hash(pool, off);
        let s = self.shard(h);
        let mut i = h as usize & self.mask;
        for _ in 0..=self.mask {
            let slot = s.slots[i];
            if !slot.used {
                return None;
            }
            if slot.off == off && slot.pool == pool {
                return Some(slot.owner);
            }
            i = (i + 1) & self.mask;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_release_and_duplicates() {
        let m = Ownership::with_capacity(1000);
        assert_eq!(m.claim(0, 5, 1), Claim::Ok);
        assert_eq!(m.claim(0, 5, 1), Claim::Ok);
        assert_eq!(m.claim(0, 5, 2), Claim::Taken { owner: 1 });
        assert_eq!(m.claim(1, 5, 2), Claim::Ok, "another pool is another key");
        m.release(0, 5, 2);
        assert_eq!(m.owner(0, 5), Some(1), "only the owner releases");
        m.release(0, 5, 1);
        assert_eq!(m.owner(0, 5), None);
        assert_eq!(m.claim(0, 5, 2), Claim::Ok);
    }

    #[test]
    fn deletion_keeps_probe_runs_intact() {
        let m = Ownership::with_capacity(40_000);
        for off in 0..20_000u64 {
            assert_eq!(m.claim(0, off, off as u32), Claim::Ok);
        }
        for off in (0..20_000u64).step_by(3) {
            m.release(0, off, off as u32);
        }
        for off in 0..20_000u64 {
            let want = (off % 3 != 0).then_some(off as u32);
            assert_eq!(m.owner(0, off), want, "offset {off}");
        }
        assert_eq!(m.overflowed(), 0);
    }

    #[test]
    fn full_table_reports_untracked() {
        let m = Ownership::with_capacity(1);
        let mut untracked = 0;
        for off in 0..100_000u64 {
            if m.claim(0, off, 1) == Claim::Untracked {
                untracked += 1;
            }
        }
        assert!(untracked > 0);
        assert_eq!(m.overflowed(), untracked);
    }
}
