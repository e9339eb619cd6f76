//! The lease store: where bindings live and where new addresses and prefixes come from.
//!
//! The protocol core reaches leases only through [`LeaseStore`], so the in-memory store
//! ([`memory::MemoryStore`]) and the memory-mapped table are interchangeable. Every method
//! takes `&self`: stores are shared by all worker threads and do their own (sharded) locking.
//! Time is passed in as seconds since the UNIX epoch; a store never reads the clock.

use std::net::Ipv6Addr;

pub mod memory;
pub mod table;

/// Which kind of identity association a binding belongs to (RFC 8415 §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IaType {
    /// IA_NA: non-temporary addresses.
    Na,
    /// IA_PD: delegated prefixes.
    Pd,
}

/// The key of a binding: the client's DUID, the IAID and the IA type (RFC 8415 §4.2 "binding").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BindingKey<'a> {
    pub duid: &'a [u8],
    pub iaid: u32,
    pub ia_type: IaType,
}

/// An address (`len == 128`) or a delegated prefix (`len < 128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Resource {
    pub addr: Ipv6Addr,
    pub len: u8,
}

impl Resource {
    pub const fn address(addr: Ipv6Addr) -> Self {
        Resource { addr, len: 128 }
    }
    pub const fn prefix(addr: Ipv6Addr, len: u8) -> Self {
        Resource { addr, len }
    }
}

/// A pool as the store sees it: `count` resources of length `len`, the i-th being
/// `base + (i << (128 - len))`. An IA_NA range `first..=last` is `base = first, len = 128,
/// count = last - first + 1`; an IA_PD pool 2001:db8::/40 cut into /56 is `len = 56,
/// count = 65536`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSpec {
    /// Stable identifier of the pool within the configuration.
    pub id: u32,
    pub ia_type: IaType,
    pub base: Ipv6Addr,
    pub len: u8,
    pub count: u64,
}

impl PoolSpec {
    /// The i-th resource of the pool, or `None` past the end.
    pub fn nth(&self, i: u64) -> Option<Resource> {
        if i >= self.count {
            return None;
        }
        let shift = 128 - u32::from(self.len);
        let off = u128::from(i).checked_shl(shift).unwrap_or(0);
        let addr = u128::from(self.base).wrapping_add(off);
        Some(Resource {
            addr: Ipv6Addr::from(addr),
            len: self.len,
        })
    }

    /// The index of `r` in the pool, if it belongs to it.
    pub fn index_of(&self, r: Resource) -> Option<u64> {
        if r.len != self.len {
            return None;
        }
        let shift = 128 - u32::from(self.len);
        let delta = u128::from(r.addr).checked_sub(u128::from(self.base))?;
        if shift < 128 && delta & ((1u128 << shift) - 1) != 0 {
            return None;
        }
        let i = if shift >= 128 { 0 } else { delta >> shift };
        (i < u128::from(self.count)).then_some(i as u64)
    }

    pub fn contains(&self, r: Resource) -> bool {
        self.index_of(r).is_some()
    }
}

/// Lifetimes granted with a binding, in seconds (RFC 8415 §7.7: 0xffffffff is infinity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    pub preferred: u32,
    pub valid: u32,
}

/// A binding as the store returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub resource: Resource,
    pub lifetimes: Lifetimes,
    /// Client last transaction time, seconds since the epoch.
    pub cltt: u64,
    /// When the valid lifetime ends, seconds since the epoch (`u64::MAX` for infinity).
    pub expires_at: u64,
}

/// Something that tells the allocator which resources belong to host reservations and so
/// must never be handed to anyone else.
pub trait Reserved {
    fn is_reserved(&self, r: Resource) -> bool;
}

/// No reservations.
pub struct NoReservations;
impl Reserved for NoReservations {
    fn is_reserved(&self, _: Resource) -> bool {
        false
    }
}

/// Reservations listed one by one (tests of the stores).
#[cfg(test)]
pub(crate) struct ReserveSet(pub Vec<Resource>);
#[cfg(test)]
impl Reserved for ReserveSet {
    fn is_reserved(&self, r: Resource) -> bool {
        self.0.contains(&r)
    }
}

/// A request to pick (and possibly bind) a resource for an IA from a pool.
#[derive(Clone, Copy)]
pub struct AllocRequest<'a> {
    pub key: BindingKey<'a>,
    pub pool: &'a PoolSpec,
    /// The resource the client asked for, honoured when it is free and in the pool. For IA_PD a
    /// hint with only a length (`addr` unspecified) asks for that prefix length.
    pub hint: Option<Resource>,
    pub reserved: &'a dyn Reserved,
    pub lifetimes: Lifetimes,
    pub now: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Every resource in the pool is bound, reserved or quarantined.
    #[error("pool {0} exhausted")]
    PoolExhausted(u32),
    /// The resource is bound to another client.
    #[error("resource bound to another client")]
    Conflict,
    /// No binding exists for this key and resource.
    #[error("no such binding")]
    NoBinding,
    /// The store refuses new grants (full disk, I/O error): fail closed.
    #[error("store unavailable for writes")]
    Unavailable,
}

/// The state of a stored binding, as listings show it (names follow RFC 8156 §4.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BindingState {
    /// Bound to its client and not expired.
    Active,
    /// Its valid lifetime has passed; not yet reclaimed.
    Expired,
    /// Released by the client.
    Released,
    /// Declined by the client and held in quarantine (RFC 8156 "abandoned").
    Abandoned,
    /// Free, may be allocated by this server.
    Free,
    /// Free, but belonging to the failover partner's share.
    FreeBackup,
}

impl BindingState {
    pub const fn name(self) -> &'static str {
        match self {
            BindingState::Active => "active",
            BindingState::Expired => "expired",
            BindingState::Released => "released",
            BindingState::Abandoned => "abandoned",
            BindingState::Free => "free",
            BindingState::FreeBackup => "free-backup",
        }
    }
}

/// One stored binding with its key, for listings and exports (control plane, not hot path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    pub duid: Vec<u8>,
    pub iaid: u32,
    pub ia_type: IaType,
    pub pool_id: u32,
    pub lease: Lease,
    pub state: BindingState,
}

/// The lease store used by the protocol core.
pub trait LeaseStore: Send + Sync {
    /// The client's current (not expired at `now`) binding for this IA in `pool`, if any.
    fn lookup(&self, key: &BindingKey<'_>, pool: &PoolSpec, now: u64) -> Option<Lease>;

    /// Pick a resource for a new binding: the client's previous resource while still free
    /// (affinity), else the hint, else a deterministic function of (DUID, IAID) with probing.
    /// With `commit` the binding is recorded before returning (it must be durable enough that
    /// the client may be told); without it nothing changes (an Advertise).
    fn allocate(&self, req: &AllocRequest<'_>, commit: bool) -> Result<Lease, StoreError>;

    /// Bind (or extend the binding of) exactly `resource` to `key`: used for Renew/Rebind of an
    /// existing binding and for host reservations. Fails with `Conflict` if another client holds it.
    fn bind(
        &self,
        key: &BindingKey<'_>,
        pool_id: u32,
        resource: Resource,
        lifetimes: Lifetimes,
        now: u64,
    ) -> Result<Lease, StoreError>;

    /// Lookup-and-renew in one step (Renew, Rebind, Request of a bound client): extend the
    /// binding `lookup` would return to `lifetimes` from `now`. `None` when the client has no
    /// current binding in `pool`; `Some(Err)` when the store refused the write. The same as
    /// `lookup` then `bind` of the resource found; stores override it to do both under one
    /// lock and one index probe.
    fn renew(
        &self,
        key: &BindingKey<'_>,
        pool: &PoolSpec,
        lifetimes: Lifetimes,
        now: u64,
    ) -> Option<Result<Lease, StoreError>> {
        let l = self.lookup(key, pool, now)?;
        Some(self.bind(key, pool.id, l.resource, lifetimes, now))
    }

    /// Release the client's binding of `resource` (RFC 8415 §18.3.7). `Err(NoBinding)` if the
    /// client does not hold it.
    fn release(&self, key: &BindingKey<'_>, resource: Resource, now: u64)
        -> Result<(), StoreError>;

    /// Mark `resource` declined by the client (RFC 8415 §18.3.8): not handed out again until
    /// `now + quarantine_secs`.
    fn decline(
        &self,
        key: &BindingKey<'_>,
        resource: Resource,
        now: u64,
        quarantine_secs: u32,
    ) -> Result<(), StoreError>;

    /// Number of active bindings in `pool` at `now` (for pool usage figures).
    fn active_count(&self, pool: &PoolSpec, now: u64) -> u64;

    /// Call `f` for every stored binding (any state) until it returns `false`. For listings;
    /// may take each shard's lock in turn, so never call it on the packet path.
    fn visit(&self, now: u64, f: &mut dyn FnMut(&LeaseInfo) -> bool);
}

/// Workers and the control plane share one store.
impl<T: LeaseStore + ?Sized> LeaseStore for std::sync::Arc<T> {
    #[inline]
    fn lookup(&self, key: &BindingKey<'_>, pool: &PoolSpec, now: u64) -> Option<Lease> {
        (**self).lookup(key, pool, now)
    }
    #[inline]
    fn allocate(&self, req: &AllocRequest<'_>, commit: bool) -> Result<Lease, StoreError> {
        (**self).allocate(req, commit)
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
        (**self).bind(key, pool_id, resource, lifetimes, now)
    }
    #[inline]
    fn renew(
        &self,
        key: &BindingKey<'_>,
        pool: &PoolSpec,
        lifetimes: Lifetimes,
        now: u64,
    ) -> Option<Result<Lease, StoreError>> {
        (**self).renew(key, pool, lifetimes, now)
    }
    #[inline]
    fn release(
        &self,
        key: &BindingKey<'_>,
        resource: Resource,
        now: u64,
    ) -> Result<(), StoreError> {
        (**self).release(key, resource, now)
    }
    #[inline]
    fn decline(
        &self,
        key: &BindingKey<'_>,
        resource: Resource,
        now: u64,
        quarantine_secs: u32,
    ) -> Result<(), StoreError> {
        (**self).decline(key, resource, now, quarantine_secs)
    }
    fn active_count(&self, pool: &PoolSpec, now: u64) -> u64 {
        (**self).active_count(pool, now)
    }
    fn visit(&self, now: u64, f: &mut dyn FnMut(&LeaseInfo) -> bool) {
        (**self).visit(now, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_spec_indexes_prefixes() {
        let p = PoolSpec {
            id: 1,
            ia_type: IaType::Pd,
            base: "2001:db8::".parse().unwrap(),
            len: 56,
            count: 1 << 16,
        };
        let r = p.nth(0x1234).unwrap();
        assert_eq!(r.addr, "2001:db8:12:3400::".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.index_of(r), Some(0x1234));
        assert_eq!(p.nth(1 << 16), None);
        assert_eq!(
            p.index_of(Resource::prefix("2001:db8:12:3401::".parse().unwrap(), 56)),
            None
        );
        assert_eq!(
            p.index_of(Resource::prefix("2001:db9::".parse().unwrap(), 56)),
            None
        );
    }

    #[test]
    fn pool_spec_indexes_addresses() {
        let p = PoolSpec {
            id: 2,
            ia_type: IaType::Na,
            base: "2001:db8::100".parse().unwrap(),
            len: 128,
            count: 256,
        };
        assert_eq!(
            p.nth(255).unwrap().addr,
            "2001:db8::1ff".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            p.index_of(Resource::address("2001:db8::200".parse().unwrap())),
            None
        );
        assert_eq!(
            p.index_of(Resource::address("2001:db8::ff".parse().unwrap())),
            None
        );
    }
}
