//! The lease store the daemon serves from: the memory-mapped [`LeaseTable`] at
//! `server.lease_file`, wrapped so the daemon can see what the protocol core cannot:
//! - writes the table refused (full disk, I/O error, table at `max_leases`): counted on the
//!   packet path with one relaxed atomic add, and reported in one log line by the housekeeping
//!   thread, never per packet ([`TableStore::watch`]);
//! - in group-commit mode, whether the batch a worker thread is handling wrote anything, so
//!   only batches that granted or changed a lease wait for `fdatasync`
//!   ([`TableStore::durable_barrier`]).
//!
//! Fail closed: the core gets `StoreError::Unavailable` for every write the table cannot make
//! durable. It then answers without the lease (NoAddrsAvail / NoPrefixAvail for a Solicit or
//! Request, UnspecFail for a Renew or Rebind it cannot record); it never tells a client of a
//! lease that is not in the file.

use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::config::{Config, LeaseDurability};
use crate::lease::table::{Durability, LeaseTable, OpenReport, TableConfig, TableError};
use crate::lease::{
    AllocRequest, BindingKey, Lease, LeaseInfo, LeaseStore, Lifetimes, PoolSpec, Resource,
    StoreError,
};

/// Record slots `reclaim` examines per housekeeping tick (one tick a second): a full pass
/// over 10 M leases takes about 40 s, and each shard lock is held for at most a few hundred
/// slots at a time, so workers never wait long.
pub const RECLAIM_SLOTS_PER_TICK: u64 = 256 * 1024;

/// Group commit: the flusher syncs at least this often while there are writes nobody waits
/// for (housekeeping's expiries).
const GROUP_COMMIT_MAX_INTERVAL: Duration = Duration::from_secs(1);

/// After this long without a refused write the fail-closed state is reported over.
const RECOVERY_QUIET: Duration = Duration::from_secs(30);

thread_local! {
    /// Whether this worker thread has written to the table since its last durability
    /// barrier (group-commit mode only).
    static UNSYNCED: Cell<bool> = const { Cell::new(false) };
}

/// The lease table as the daemon holds it. See the module docs.
pub struct TableStore {
    table: LeaseTable,
    group_commit: bool,
    /// Writes (grants, renewals, releases, declines) refused with `Unavailable`.
    refused: AtomicU64,
    /// Replies withheld because the batch that granted them could not be made durable.
    withheld: AtomicU64,
    expired: AtomicU64,
    freed: AtomicU64,
    /// Fail-closed state as last reported by [`TableStore::watch`].
    failing: AtomicBool,
}

/// What the housekeeping thread remembers between [`TableStore::watch`] calls.
#[derive(Debug)]
pub struct Watch {
    refused_seen: u64,
    last_refusal: Instant,
}

impl TableStore {
    /// Open (or create) the lease file the configuration names. Fails if the file cannot be
    /// opened, has a bad header, or is locked by another server.
    pub fn open(cfg: &Config) -> Result<TableStore, TableError> {
        let s = &cfg.server;
        let mut tc = TableConfig::new(&s.lease_file);
        tc.max_records = s.lease.max_leases;
        tc.initial_records = s.lease.preallocate_leases;
        // A new file's geometry: the growth step spread over the shards.
        tc.shards = crate::config::LEASE_FILE_SHARDS as u32;
        tc.chunk_records = u32::try_from(s.lease.file_growth / crate::config::LEASE_FILE_SHARDS)
            .expect("lease_file_growth validated");
        tc.durability = match s.lease.durability {
            LeaseDurability::Mapped => Durability::Mapped,
            LeaseDurability::GroupCommit { window_usecs } => Durability::GroupCommit {
                batch_window: Duration::from_micros(u64::from(window_usecs)),
                max_interval: GROUP_COMMIT_MAX_INTERVAL,
            },
        };
        // Prefix pools get their free bitmaps built during the open scan. Pools added by a
        // reload are registered by the table on first use, and a pool whose geometry changed
        // has its bitmap rebuilt then; so a reload needs nothing from here.
        tc.pools = pools(cfg);
        let table = LeaseTable::open(tc)?;
        Ok(TableStore {
            table,
            group_commit: matches!(s.lease.durability, LeaseDurability::GroupCommit { .. }),
            refused: AtomicU64::new(0),
            withheld: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            freed: AtomicU64::new(0),
            failing: AtomicBool::new(false),
        })
    }

    pub fn table(&self) -> &LeaseTable {
        &self.table
    }

    pub fn path(&self) -> &Path {
        self.table.path()
    }

    pub fn open_report(&self) -> &OpenReport {
        self.table.open_report()
    }

    /// Writes refused so far (fail closed).
    pub fn refused_writes(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// See [`crate::io::Handler::durable_barrier`]. Mapped mode: the records are in the
    /// mapping already, nothing to wait for. Group commit: wait for the `fdatasync` covering
    /// every write this thread made, if it made any since its last barrier.
    #[inline]
    pub fn durable_barrier(&self, replies: usize) -> bool {
        if !self.group_commit || !UNSYNCED.with(|c| c.replace(false)) {
            return true;
        }
        // The ticket is read after this thread's writes completed, so the sync that closes
        // its epoch covers them.
        match self.table.wait_durable(self.table.commit_ticket()) {
            Ok(()) => true,
            Err(_) => {
                self.withheld.fetch_add(replies as u64, Ordering::Relaxed);
                false
            }
        }
    }

    #[inline]
    fn wrote<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        match &r {
            Ok(_) => {
                if self.group_commit {
                    UNSYNCED.with(|c| c.set(true));
                }
            }
            Err(StoreError::Unavailable) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {}
        }
        r
    }

    /// One housekeeping tick: reclaim a budget of expired records, and report a change of the
    /// fail-closed state in one log line.
    pub fn housekeeping(&self, now: u64, watch: &mut Watch) {
        let st = self.table.reclaim(now, RECLAIM_SLOTS_PER_TICK);
        self.expired.fetch_add(st.expired, Ordering::Relaxed);
        self.freed.fetch_add(st.freed, Ordering::Relaxed);
        if st.expired + st.freed > 0 {
            tracing::debug!(
                examined = st.examined,
                expired = st.expired,
                freed = st.freed,
                "lease reclaim"
            );
        }
        self.watch(watch, Instant::now());
    }

    pub fn new_watch(&self) -> Watch {
        Watch {
            refused_seen: self.refused_writes(),
            last_refusal: Instant::now(),
        }
    }

    fn watch(&self, w: &mut Watch, now: Instant) {
        let refused = self.refused_writes();
        if refused > w.refused_seen {
            w.refused_seen = refused;
            w.last_refusal = now;
            if !self.failing.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    path = %self.path().display(),
                    refused_writes = refused,
                    failed = self.table.is_failed(),
                    "lease file cannot record leases (disk full, I/O error or max_leases reached): \
                     failing closed; new leases and renewals are refused until it can, existing \
                     leases are intact"
                );
            }
        } else if self.failing.load(Ordering::Relaxed)
            && !self.table.is_failed()
            && now.duration_since(w.last_refusal) >= RECOVERY_QUIET
        {
            self.failing.store(false, Ordering::Relaxed);
            tracing::info!(
                path = %self.path().display(),
                refused_writes = refused,
                "lease file: no write refused for {} s; leases are being recorded again",
                RECOVERY_QUIET.as_secs()
            );
        }
    }

    /// For `xdhcp6 status`.
    pub fn status_json(&self) -> serde_json::Value {
        let r = self.open_report();
        let st = self.table.stats();
        json!({
            "path": self.path().display().to_string(),
            "durability": if self.group_commit { "group-commit" } else { "mapped" },
            "records": st.records,
            "slots": st.slots,
            "file_bytes": st.file_bytes,
            "failing_closed": self.failing.load(Ordering::Relaxed) || self.table.is_failed(),
            "sync_failed": self.table.is_failed(),
            "refused_writes": self.refused_writes(),
            "replies_withheld": self.withheld.load(Ordering::Relaxed),
            "reclaimed_expired": self.expired.load(Ordering::Relaxed),
            "reclaimed_freed": self.freed.load(Ordering::Relaxed),
            "open_report": {
                "records": r.records,
                "corrupt": r.corrupt,
                "superseded": r.superseded,
                "orphans": r.orphans,
                "header_repaired": r.header_repaired,
                "open_ms": r.open_ms,
            },
        })
    }
}

/// Every pool of the configuration.
fn pools(cfg: &Config) -> Vec<PoolSpec> {
    cfg.links
        .iter()
        .flat_map(|l| l.address_pools.iter().chain(&l.prefix_pools))
        .copied()
        .collect()
}

impl LeaseStore for TableStore {
    #[inline]
    fn lookup(&self, key: &BindingKey<'_>, pool: &PoolSpec, now: u64) -> Option<Lease> {
        self.table.lookup(key, pool, now)
    }

    #[inline]
    fn allocate(&self, req: &AllocRequest<'_>, commit: bool) -> Result<Lease, StoreError> {
        let r = self.table.allocate(req, commit);
        if commit {
            self.wrote(r)
        } else {
            r
        }
    }

    #[inline]
    fn bind(
        &self,
        key: &BindingKey<'_>,
        pool_id: u32,
        resource: Resource,
        lifetimes: Lifetimes,
        now: u64,
    ) -> Result<Lease, StoreError> {
        self.wrote(self.table.bind(key, pool_id, resource, lifetimes, now))
    }

    #[inline]
    fn renew(
        &self,
        key: &BindingKey<'_>,
        pool: &PoolSpec,
        lifetimes: Lifetimes,
        now: u64,
    ) -> Option<Result<Lease, StoreError>> {
        self.table
            .renew(key, pool, lifetimes, now)
            .map(|r| self.wrote(r))
    }

    #[inline]
    fn release(
        &self,
        key: &BindingKey<'_>,
        resource: Resource,
        now: u64,
    ) -> Result<(), StoreError> {
        self.wrote(self.table.release(key, resource, now))
    }

    #[inline]
    fn decline(
        &self,
        key: &BindingKey<'_>,
        resource: Resource,
        now: u64,
        quarantine_secs: u32,
    ) -> Result<(), StoreError> {
        self.wrote(self.table.decline(key, resource, now, quarantine_secs))
    }

    fn active_count(&self, pool: &PoolSpec, now: u64) -> u64 {
        self.table.active_count(pool, now)
    }

    fn visit(&self, now: u64, f: &mut dyn FnMut(&LeaseInfo) -> bool) {
        self.table.visit(now, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::{IaType, NoReservations};

    fn cfg(dir: &Path, durability: &str) -> Config {
        let text = format!(
            "[server]\ninterfaces = [\"eth0\"]\nlease_file = \"{}/leases\"\n\
             lease_durability = \"{durability}\"\nmax_leases = 100000\n\
             [[link]]\nname = \"a\"\nsubnet = \"2001:db8:1::/64\"\ninterface = \"eth0\"\n\
             address_pools = [{{ first = \"2001:db8:1::1000\", last = \"2001:db8:1::1fff\" }}]\n",
            dir.display()
        );
        crate::config::parse_str(&text).expect("valid config")
    }

    fn tmpdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("xdhcp6-storage-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn grant(s: &TableStore, c: &Config, duid: &[u8]) -> Lease {
        let req = AllocRequest {
            key: BindingKey {
                duid,
                iaid: 1,
                ia_type: IaType::Na,
            },
            pool: &c.links[0].address_pools[0],
            hint: None,
            reserved: &NoReservations,
            lifetimes: Lifetimes {
                preferred: 100,
                valid: 200,
            },
            now: 1_000,
        };
        s.allocate(&req, true).expect("grant")
    }

    #[test]
    fn group_commit_barrier_waits_only_after_writes() {
        let dir = tmpdir("gc");
        let c = cfg(&dir, "group-commit");
        let s = TableStore::open(&c).unwrap();
        assert!(s.durable_barrier(1), "nothing written: released at once");
        grant(&s, &c, &[0, 3, 0, 1, 1, 2, 3, 4, 5, 6]);
        assert!(UNSYNCED.with(Cell::get));
        assert!(s.durable_barrier(1));
        assert!(!UNSYNCED.with(Cell::get), "the barrier consumed the write");
        drop(s);
        // A second server cannot open the file while the first has it.
        let a = TableStore::open(&c).unwrap();
        let b = TableStore::open(&c);
        assert!(matches!(b, Err(TableError::Locked { .. })), "{:?}", b.err());
        assert_eq!(a.table().len(), 1);
        drop(a);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn mapped_mode_never_waits_and_watch_reports_refusals() {
        let dir = tmpdir("mapped");
        let c = cfg(&dir, "mapped");
        let s = TableStore::open(&c).unwrap();
        grant(&s, &c, &[0, 3, 0, 1, 9, 9, 9, 9, 9, 9]);
        assert!(!UNSYNCED.with(Cell::get), "mapped mode tracks nothing");
        assert!(s.durable_barrier(3));
        let mut w = s.new_watch();
        let t0 = Instant::now();
        s.refused.fetch_add(2, Ordering::Relaxed);
        s.watch(&mut w, t0);
        assert!(s.failing.load(Ordering::Relaxed));
        s.watch(&mut w, t0 + Duration::from_secs(1));
        assert!(s.failing.load(Ordering::Relaxed), "not quiet long enough");
        s.watch(&mut w, t0 + RECOVERY_QUIET);
        assert!(!s.failing.load(Ordering::Relaxed), "recovered");
        assert_eq!(s.status_json()["refused_writes"], 2);
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
