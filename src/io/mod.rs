//! The backends that move packets between the network and the protocol core.
//!
//! - [`socket`]: plain UDP sockets (works everywhere; the fallback when AF_XDP is not there).
//! - [`xdp`]: XDP steering into AF_XDP sockets drained by per-core workers.
//! - [`duid`]: the server DUID, generated once and persisted.
//! - [`shutdown`]: SIGINT/SIGTERM handling shared by all backends.
//!
//! Counters live in [`crate::stats`], shared with the control socket and the AF_XDP backend.
//!
//! Every backend drives the core through [`Handler`], so a backend can be tested with a
//! stand-in core (an echo) before or besides the real one.

pub mod duid;
pub mod shutdown;
pub mod socket;
#[allow(unsafe_code)]
mod sys;
pub mod xdp;

use crate::lease::LeaseStore;
use crate::proto::{DropReason, ReplyMeta, RxMeta, Server};

/// What a backend needs from the protocol core: one request in, one reply (written at the
/// start of `out`) or a drop reason out. `now` is seconds since the UNIX epoch.
pub trait Handler: Sync {
    fn handle(
        &self,
        request: &[u8],
        meta: &RxMeta,
        now: u64,
        out: &mut [u8],
    ) -> Result<ReplyMeta, DropReason>;

    /// Group commit: called by a worker after it has handled a batch of requests and before
    /// any of the batch's `replies` leaves, on the same thread. Returns when the leases the
    /// batch granted are on stable storage, `true` to send the replies, or `false` when they
    /// could not be made durable (the backend then discards the replies: a client must never
    /// be told of a lease that was not recorded). The default: nothing to wait for.
    #[inline]
    fn durable_barrier(&self, replies: usize) -> bool {
        let _ = replies;
        true
    }
}

impl<S: LeaseStore> Handler for Server<S> {
    #[inline]
    fn handle(
        &self,
        request: &[u8],
        meta: &RxMeta,
        now: u64,
        out: &mut [u8],
    ) -> Result<ReplyMeta, DropReason> {
        Server::handle(self, request, meta, now, out)
    }
}

/// Write `data` to a temporary file beside `path`, sync it, and rename it over `path`, so a
/// reader (or a crash) sees the old content or the new, never a mix.
pub fn write_atomically(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut tmp_name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    #[test]
    fn atomic_write_replaces_file() {
        let dir = std::env::temp_dir().join(format!("xdhcp6-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        super::write_atomically(&p, b"one").unwrap();
        super::write_atomically(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary left behind"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
