//! The memory mapping of the lease file, and the anonymous mapping the indexes sized at open
//! live in: the only module of the lease table with `unsafe`.
//!
//! The file is mapped once with a fixed *virtual* length (`max_bytes`, the configured maximum
//! size of the file), larger than the file itself. The file grows with `fallocate`, which both
//! extends it and allocates its blocks, so the pages the table writes always exist on disk: a
//! store into a mapped page can then never fault for lack of space (a store into a hole of a
//! sparse file on a full disk would raise SIGBUS). Growing never remaps, so no lock is needed
//! to keep the base address valid. `valid_len` is the part of the mapping backed by the file;
//! every access is checked against it, which turns a logic error into a panic instead of a
//! SIGBUS.
//!
//! Concurrency contract (upheld by the table, see `docs/lease-table.md`): a byte range is
//! written only by the thread that holds the lock of the key shard owning it. Other threads
//! (holding only a resource-shard lock) read just the *identity* bytes of an indexed record
//! (IA type, prefix length, pool id, address), which are never written while an index refers
//! to the record; in-place updates write only the other bytes. Reads of a range happen under a
//! lock that orders them after the write that filled it.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::record::{Words, RECORD_SIZE};

pub struct Region {
    /// Kept for its `Drop` (munmap); all access goes through `base`.
    _map: memmap2::MmapMut,
    base: *mut u8,
    max_len: usize,
    valid_len: AtomicUsize,
}

// SAFETY: `Region` is a raw view of a shared file mapping that lives as long as the `Region`.
// Moving it between threads is fine; concurrent access is governed by the contract in the
// module docs, enforced by the shard locks of the table.
unsafe impl Send for Region {}
// SAFETY: as above; every method takes `&self` and touches only ranges its caller owns.
unsafe impl Sync for Region {}

impl Region {
    /// Map `max_len` bytes of `file` read-write and shared. `file_len` bytes of it are backed.
    pub fn map(file: &File, max_len: usize, file_len: usize) -> io::Result<Region> {
        assert!(file_len <= max_len, "file longer than its mapping");
        // SAFETY: the mapping is shared with the file on disk. Another process modifying the
        // file while it is mapped would change memory under us; the lease file is owned by this
        // server (an exclusive `flock` is held for the lifetime of the table), and offline
        // readers map it read-only. Bytes beyond the end of the file are never touched (every
        // access is checked against `valid_len`).
        let mut map = unsafe { memmap2::MmapOptions::new().len(max_len).map_mut(file)? };
        let base = map.as_mut_ptr();
        Ok(Region {
            _map: map,
            base,
            max_len,
            valid_len: AtomicUsize::new(file_len),
        })
    }

    /// Ask the kernel to read ahead and map the first `len` bytes in one go, so the open scan
    /// does not take one page fault per 4 KiB. Advisory: errors (old kernels) are ignored.
    /// `off..off + len` (clamped to the backed part); the open scan calls it per chunk from
    /// each scan thread, so the page-table work is spread over the threads.
    pub fn prefault(&self, off: usize, len: usize) {
        let end = off.saturating_add(len).min(self.valid_len());
        if off >= end {
            return;
        }
        // `madvise` wants a page-aligned start.
        let start = off & !4095;
        let _ = self
            ._map
            .advise_range(memmap2::Advice::PopulateRead, start, end - start);
    }

    /// Ask for the mapping to be backed by large page-cache folios (2 MiB where the file system
    /// and the kernel allow it): one page fault and one TLB entry per folio instead of per
    /// 4 KiB page as new records are written. Dirty tracking and write-back then work per folio,
    /// so the table asks only where no write-back waits on it (`Durability::Mapped`). Advisory:
    /// an error (a kernel without transparent huge pages) leaves 4 KiB pages.
    pub fn advise_huge(&self) {
        let _ = self._map.advise(memmap2::Advice::HugePage);
    }

    /// Tell the kernel the whole backed file will be read in order (open scan), so read-ahead
    /// of a cold file is aggressive. Advisory.
    pub fn advise_sequential(&self) {
        let len = self.valid_len();
        let _ = self._map.advise_range(memmap2::Advice::Sequential, 0, len);
        let _ = self._map.advise_range(memmap2::Advice::WillNeed, 0, len);
    }

    /// Back to normal (random) access after the scan.
    pub fn advise_normal(&self) {
        let _ = self
            ._map
            .advise_range(memmap2::Advice::Normal, 0, self.valid_len());
    }

    pub fn valid_len(&self) -> usize {
        self.valid_len.load(Ordering::Acquire)
    }

    /// Declare that the file now backs `len` bytes (after a successful `fallocate`).
    pub fn set_valid_len(&self, len: usize) {
        assert!(len <= self.max_len);
        assert!(len >= self.valid_len());
        self.valid_len.store(len, Ordering::Release);
    }

    #[inline]
    fn check(&self, off: usize, n: usize) {
        let end = off.checked_add(n).expect("offset overflow");
        assert!(
            end <= self.valid_len.load(Ordering::Relaxed),
            "access past the backed file: {off}+{n}"
        );
    }

    /// Copy `N` bytes at `off` out of the mapping.
    #[inline]
    pub fn read<const N: usize>(&self, off: usize) -> [u8; N] {
        self.check(off, N);
        let mut out = [0u8; N];
        // SAFETY: `off..off+N` lies inside the backed part of the live mapping (checked above);
        // the caller owns the range per the module contract, so no write races this copy; `out`
        // is a distinct local buffer.
        unsafe { std::ptr::copy_nonoverlapping(self.base.add(off), out.as_mut_ptr(), N) };
        out
    }

    /// The record at `off` as [`Words`]: twelve 8-byte loads, one bounds check.
    #[inline]
    pub fn read_words(&self, off: usize) -> Words {
        self.check(off, RECORD_SIZE);
        // SAFETY: `off..off+RECORD_SIZE` lies inside the backed part of the live mapping
        // (checked above); the caller owns the range per the module contract, so no write races
        // these loads. Unaligned loads: no alignment is assumed.
        std::array::from_fn(|i| unsafe {
            u64::from_le(std::ptr::read_unaligned(
                self.base.add(off + i * 8) as *const u64
            ))
        })
    }

    /// The `len` bytes at `off`, for writing: one bounds check for all the writes through it
    /// (a record update writes a dozen pieces of one record).
    #[inline]
    pub fn span(&self, off: usize, len: usize) -> Span<'_> {
        self.check(off, len);
        Span {
            // SAFETY: `off..off+len` lies inside the live mapping (checked above), so the
            // pointer stays within the mapped allocation.
            base: unsafe { self.base.add(off) },
            len,
            _region: std::marker::PhantomData,
        }
    }

    /// Store one byte with release ordering, after the bytes written before it.
    #[inline]
    pub fn write_u8_release(&self, off: usize, v: u8) {
        self.span(off, 1).write_u8_release(0, v);
    }

    /// Hint that the `len` bytes at `off` (a record) will be read soon (batched lookups):
    /// prefetches, never a fault. Out-of-range offsets are ignored.
    #[inline]
    pub fn prefetch(&self, off: usize, len: usize) {
        if len == 0 || off.saturating_add(len) > self.valid_len.load(Ordering::Relaxed) {
            return;
        }
        // A record straddles two cache lines more often than not: fetch each line it touches.
        let first = self.base as usize + off;
        let last = first + len - 1;
        crate::cpu::prefetch(first);
        if last / 64 != first / 64 {
            crate::cpu::prefetch(last);
        }
    }

    /// Read one byte.
    #[inline]
    pub fn read_u8(&self, off: usize) -> u8 {
        self.check(off, 1);
        // SAFETY: in bounds (checked above); owned by the caller per the module contract.
        unsafe { std::ptr::read_volatile(self.base.add(off)) }
    }
}

/// A checked range of the mapping (see [`Region::span`]); writes at offsets inside it. The
/// caller owns the range per the module contract (it holds the lock of the shard the bytes
/// belong to, and no other thread reads what it writes, or only bytes written before).
pub struct Span<'a> {
    base: *mut u8,
    len: usize,
    _region: std::marker::PhantomData<&'a Region>,
}

impl Span<'_> {
    #[inline]
    fn at(&self, at: usize, n: usize) -> *mut u8 {
        assert!(at <= self.len && n <= self.len - at, "write past its span");
        // SAFETY: `at + n <= len` (asserted above) and the span lies inside the mapping.
        unsafe { self.base.add(at) }
    }

    /// Copy `bytes` in at `at`.
    #[inline]
    pub fn write(&self, at: usize, bytes: &[u8]) {
        let p = self.at(at, bytes.len());
        // SAFETY: in bounds (checked by `at`); the caller owns the range, so no other thread
        // reads or writes it concurrently; `bytes` is not in the mapping.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) };
    }

    /// Store one byte with release ordering, after the bytes written before it.
    #[inline]
    pub fn write_u8_release(&self, at: usize, v: u8) {
        let p = self.at(at, 1);
        std::sync::atomic::fence(Ordering::Release);
        // SAFETY: in bounds (checked by `at`) and owned by the caller. A single-byte volatile
        // store cannot tear.
        unsafe { std::ptr::write_volatile(p, v) };
    }

    /// Store one byte, then a release fence: the stores after it are not moved before it.
    #[inline]
    pub fn write_u8_fenced(&self, at: usize, v: u8) {
        let p = self.at(at, 1);
        // SAFETY: in bounds (checked by `at`) and owned by the caller. A single-byte volatile
        // store cannot tear.
        unsafe { std::ptr::write_volatile(p, v) };
        std::sync::atomic::fence(Ordering::Release);
    }
}

/// Read-only mapping of a whole file, for offline inspection.
pub struct ReadOnly {
    map: memmap2::Mmap,
}

impl ReadOnly {
    pub fn map(file: &File) -> io::Result<ReadOnly> {
        // SAFETY: a private read-only view. If a running server writes the file meanwhile, the
        // bytes we read may change under us: every record is copied out and checksummed before
        // it is used, so the worst case is a record reported as corrupt, never undefined
        // behaviour in safe code that holds only copies.
        let map = unsafe { memmap2::Mmap::map(file)? };
        Ok(ReadOnly { map })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.map
    }
}

/// Extend `file` to at least `off + len` bytes and allocate every block of that range, so that
/// later stores through the mapping cannot fail for lack of space.
pub fn fallocate(file: &File, off: u64, len: u64) -> io::Result<()> {
    let off =
        libc::off_t::try_from(off).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let len =
        libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    loop {
        // SAFETY: plain syscall on a valid, open file descriptor; no memory is passed.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, off, len) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Take an exclusive advisory lock on the file, so two servers never map one lease file.
pub fn lock_exclusive(file: &File) -> io::Result<()> {
    // SAFETY: plain syscall on a valid, open file descriptor.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Transparent huge page size.
const HUGE_PAGE: usize = 2 << 20;

/// Anonymous memory the indexes sized at open live in, asked to be backed by transparent huge
/// pages (`MADV_HUGEPAGE`): a batched call touches buckets all over every shard's index, and
/// with 4 KiB pages most of those touches also miss the TLB (an index per shard is far below
/// the 2 MiB a huge page needs, so one mapping holds them all). Where the kernel gives no huge
/// pages it is plain memory, as a `Vec` would be.
struct Arena {
    /// Kept for its `Drop` (munmap); the slices point into it.
    _map: memmap2::MmapMut,
}

/// One index's part of an [`Arena`]: `len` entries, owned exclusively.
pub struct ArenaSlice {
    _arena: Arc<Arena>,
    ptr: *mut u64,
    len: usize,
}

// SAFETY: a slice owns its range of the arena exclusively (ranges are carved once and never
// overlap; `ArenaSlice` is not `Clone`), like a `Vec<u64>` owns its buffer, and the arena
// lives as long as any slice of it.
unsafe impl Send for ArenaSlice {}
// SAFETY: as above; shared access only reads.
unsafe impl Sync for ArenaSlice {}

/// Carve one zeroed slice of `sizes[i]` entries per index out of one new arena.
pub fn carve(sizes: &[usize]) -> io::Result<Vec<ArenaSlice>> {
    let total = sizes
        .iter()
        .try_fold(0usize, |a, &n| a.checked_add(n))
        .and_then(|n| n.checked_mul(8))
        .and_then(|b| b.checked_add(HUGE_PAGE))
        .ok_or_else(|| io::Error::other("index arena too large"))?;
    // One huge page more than needed, so the slices can start on a huge-page boundary.
    let mut map = memmap2::MmapOptions::new().len(total).map_anon()?;
    let _ = map.advise(memmap2::Advice::HugePage);
    let base = map.as_mut_ptr();
    let skip = base.align_offset(HUGE_PAGE);
    let arena = Arc::new(Arena { _map: map });
    let mut at = skip;
    let mut out = Vec::with_capacity(sizes.len());
    for &n in sizes {
        out.push(ArenaSlice {
            _arena: arena.clone(),
            // SAFETY: `at + 8 * n` stays within the mapping: the sizes sum to `total` less the
            // huge page of slack, and `skip` is below a huge page.
            ptr: unsafe { base.add(at) }.cast::<u64>(),
            len: n,
        });
        at += 8 * n;
    }
    Ok(out)
}

impl std::ops::Deref for ArenaSlice {
    type Target = [u64];
    #[inline]
    fn deref(&self) -> &[u64] {
        // SAFETY: `ptr..ptr + len` lies in the live anonymous mapping (kept alive by
        // `_arena`), 8-byte aligned (huge-page-aligned start, whole entries), initialized (the
        // kernel zeroes anonymous memory), and owned by this slice alone.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl std::ops::DerefMut for ArenaSlice {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u64] {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference to the range.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for ArenaSlice {
    /// Give the slice's whole pages back to the kernel (an index that grew out of its slice,
    /// or a table being closed): the arena is not unmapped until its last slice goes.
    fn drop(&mut self) {
        let start = (self.ptr as usize).next_multiple_of(4096);
        let end = (self.ptr as usize + self.len * 8) & !4095;
        if end > start {
            // SAFETY: `start..end` lies within this slice's range, which no one else uses and
            // which is not used after this; MADV_DONTNEED on private anonymous memory only
            // drops its contents (reads would see zeroes).
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        }
    }
}
