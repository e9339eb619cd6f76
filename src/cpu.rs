//! CPU hints shared by the data paths: the one software prefetch.
#![allow(unsafe_code)]

/// Prefetch the cache line at address `addr` into all cache levels (index buckets and records
/// of the lease table's batched calls; received frames in the XDP workers). The address may be
/// stale or unmapped: a prefetch never faults. No effect on other architectures.
#[inline]
pub fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch has no architectural effect and cannot fault, whatever the address;
    // nothing is read through the pointer.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::without_provenance::<i8>(addr));
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}
