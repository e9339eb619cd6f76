//! Test harness shared by the integration tests: network namespaces joined by a veth pair,
//! the server binary run inside one of them, real DHCPv6 clients run in the other, and a few
//! helpers to send hand-made packets.
//!
//! Everything needs root (namespaces, veth, port 547). Tests fail, not skip, without it: a
//! suite that silently skips its network tests proves nothing.
//!
//! Every test creates namespaces with names unique to its process and a counter, so tests run
//! in parallel; everything created is removed on drop, also when the test panics.
#![allow(dead_code)]

pub mod clients;
pub mod config;
pub mod netns;
pub mod server;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A per-test scratch directory, removed on drop (kept when `XDHCP6_KEEP_TEST_DIRS` is set,
/// for debugging a failure).
pub struct TempDir {
    path: PathBuf,
}

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A number unique within this test process.
pub fn unique_id() -> u32 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "xdhcp6-{tag}-{}-{}",
            std::process::id(),
            unique_id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create test directory");
        TempDir { path }
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("XDHCP6_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.path);
        } else {
            eprintln!("kept test directory {}", self.path.display());
        }
    }
}

/// Poll `f` every 50 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Panic with a clear message unless running as root.
pub fn require_root() {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective uid.
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX);
    assert_eq!(
        uid, 0,
        "these integration tests need root (network namespaces, veth pairs, UDP port 547): \
         run them with `sudo scripts/test.sh`"
    );
}

/// Panic with a clear message unless `tool` is on PATH.
pub fn require_tool(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
        || ["/usr/sbin", "/sbin"]
            .iter()
            .any(|d| Path::new(d).join(tool).is_file());
    assert!(found, "`{tool}` is not installed: run scripts/install-deps.sh (or `sudo scripts/test.sh`, which does)");
}
