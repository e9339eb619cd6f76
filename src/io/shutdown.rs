//! Shutdown signalling for the backends: SIGINT/SIGTERM or [`Shutdown::trigger`] set a flag
//! and make a socket readable, so workers sleeping in `epoll_wait` wake at once.
//!
//! The signal handler (installed through `signal-hook`, which keeps the handler
//! async-signal-safe) only stores the flag and writes one byte; everything else happens on
//! ordinary threads. A second SIGINT/SIGTERM while shutdown is already under way exits the
//! process immediately, for an operator whose clean shutdown is stuck.

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::sys;

/// Exit status used when a second signal forces the process out (128 + SIGINT, by custom).
const FORCED_EXIT_STATUS: i32 = 130;

/// A shutdown flag shared by the main thread, the workers and the signal handler.
#[derive(Debug)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    /// Becomes readable (and stays readable: the byte is never consumed) on shutdown.
    wake_rx: UnixStream,
    wake_tx: UnixStream,
}

impl Shutdown {
    pub fn new() -> io::Result<Self> {
        let (wake_rx, wake_tx) = UnixStream::pair()?;
        wake_tx.set_nonblocking(true)?;
        Ok(Shutdown {
            flag: Arc::new(AtomicBool::new(false)),
            wake_rx,
            wake_tx,
        })
    }

    /// Install SIGINT and SIGTERM handlers that trigger this shutdown. Call once per process.
    pub fn install_signal_handlers(&self) -> io::Result<()> {
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // Registered first so it sees the flag as it was before this signal: only a
            // second signal finds it set and exits.
            signal_hook::flag::register_conditional_shutdown(
                sig,
                FORCED_EXIT_STATUS,
                Arc::clone(&self.flag),
            )?;
            signal_hook::flag::register(sig, Arc::clone(&self.flag))?;
            signal_hook::low_level::pipe::register(sig, self.wake_tx.try_clone()?)?;
        }
        Ok(())
    }

    /// Ask everything to stop.
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        // A full socket buffer already means "readable", so a failed write loses nothing.
        let _ = (&self.wake_tx).write(&[1]);
    }

    pub fn is_triggered(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Sleep until shutdown is triggered or `timeout` passes; returns whether it was triggered.
    pub fn wait(&self, timeout: Duration) -> bool {
        if self.is_triggered() {
            return true;
        }
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // An error from poll (never expected on a socketpair) falls back to the flag.
        let _ = sys::poll_readable(&self.wake_rx, ms);
        self.is_triggered()
    }

    /// A descriptor that becomes readable on shutdown, for an event loop to watch.
    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake_rx.as_fd()
    }
}

impl AsRawFd for Shutdown {
    fn as_raw_fd(&self) -> RawFd {
        self.wake_rx.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn trigger_wakes_waiter() {
        let s = Shutdown::new().unwrap();
        assert!(!s.wait(Duration::from_millis(10)));
        std::thread::scope(|sc| {
            sc.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                s.trigger();
            });
            let t = Instant::now();
            assert!(s.wait(Duration::from_secs(10)));
            assert!(t.elapsed() < Duration::from_secs(5));
        });
        assert!(
            sys::poll_readable(&s.wake_fd(), 0).unwrap(),
            "stays readable for every worker"
        );
    }
}
