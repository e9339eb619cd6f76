//! The `xdhcp6` binary run in the server namespace.
//!
//! The test reads the server's counters from the JSON file `serve --stats-file` rewrites every
//! second and at exit, the same `xdhcp6::stats::ServerSnapshot` the control socket answers:
//! `workers[i].rx`, `.tx`, `.drops.<reason>` (an `xdhcp6::stats::ServerSnapshot`).

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use xdhcp6::stats::{ServerSnapshot, WorkerSnapshot};

use super::config::TestConfig;
use super::netns::NetPair;
use super::{wait_for, TempDir};

pub struct ServerProcess {
    child: Option<Child>,
    pub dir: TempDir,
    pub config_file: PathBuf,
    pub stats_file: PathBuf,
    pub log_file: PathBuf,
}

/// The counters of one stats file (the control socket's `stats` answer), summed over workers.
#[derive(Debug, Clone)]
pub struct Stats(pub WorkerSnapshot);

impl Stats {
    pub fn received(&self) -> u64 {
        self.0.rx
    }
    pub fn answered(&self) -> u64 {
        self.0.tx
    }
    /// Drops by the core, all reasons.
    pub fn dropped(&self) -> u64 {
        self.0
            .drops
            .iter()
            .filter(|(k, _)| !k.starts_with("io_"))
            .map(|(_, n)| n)
            .sum()
    }
    /// Drops by the backend (truncated, send errors ...).
    pub fn io_dropped(&self) -> u64 {
        self.0
            .drops
            .iter()
            .filter(|(k, _)| k.starts_with("io_"))
            .map(|(_, n)| n)
            .sum()
    }
}

impl ServerProcess {
    /// Start `xdhcp6 serve` in the server namespace and wait until it writes its first stats
    /// file, i.e. until it has bound its sockets and its workers run.
    pub fn start(net: &NetPair, cfg: &TestConfig) -> Self {
        let dir = TempDir::new("server");
        let config_file = dir.join("xdhcp6.toml");
        std::fs::write(&config_file, cfg.to_toml(dir.path())).expect("write config");
        let stats_file = dir.join("stats.json");
        let log_file = dir.join("server.log");
        let mut s = ServerProcess {
            child: None,
            dir,
            config_file,
            stats_file,
            log_file,
        };
        s.spawn(net);
        s
    }

    /// Start the server again after [`kill9`](Self::kill9) or [`stop`](Self::stop): same
    /// directory, configuration, DUID file and lease file. The log is appended to.
    pub fn restart(&mut self, net: &NetPair) {
        assert!(self.child.is_none(), "the server is still running");
        let _ = std::fs::remove_file(&self.stats_file);
        self.spawn(net);
    }

    fn spawn(&mut self, net: &NetPair) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_file)
            .expect("open server log");
        let child = net
            .server_cmd(env!("CARGO_BIN_EXE_xdhcp6"))
            .arg("serve")
            .arg("--config")
            .arg(&self.config_file)
            .arg("--stats-file")
            .arg(&self.stats_file)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn xdhcp6");
        self.child = Some(child);
        let s = self;
        let up = wait_for(Duration::from_secs(10), || {
            if s.stats_file.exists() {
                return Some(true);
            }
            match s.child.as_mut().map(|c| c.try_wait()) {
                Some(Ok(Some(_))) => Some(false),
                _ => None,
            }
        });
        assert_eq!(
            up,
            Some(true),
            "xdhcp6 serve did not come up within 10 s; its log:\n{}",
            s.log()
        );
    }

    /// The control socket.
    pub fn control_socket(&self) -> PathBuf {
        self.dir.join("control.sock")
    }

    /// The lease file the configuration names.
    pub fn lease_file(&self) -> PathBuf {
        let text = std::fs::read_to_string(&self.config_file).expect("config file");
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("lease_file = "))
            .expect("lease_file in config");
        PathBuf::from(line.trim_matches('"'))
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    pub fn stats(&self) -> Stats {
        Stats(self.snapshot().total())
    }

    /// The whole stats file: backend, AF_XDP mode, per-worker counters.
    pub fn snapshot(&self) -> ServerSnapshot {
        let text = std::fs::read_to_string(&self.stats_file)
            .unwrap_or_else(|e| panic!("read stats file: {e}\n{}", self.log()));
        serde_json::from_str(&text).expect("stats file is a ServerSnapshot")
    }

    /// `xdhcp6 status` through the control socket, as JSON.
    pub fn status(&self) -> serde_json::Value {
        let out = Command::new(env!("CARGO_BIN_EXE_xdhcp6"))
            .arg("status")
            .arg("--socket")
            .arg(self.dir.join("control.sock"))
            .output()
            .expect("run xdhcp6 status");
        assert!(
            out.status.success(),
            "xdhcp6 status failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        serde_json::from_slice(&out.stdout).expect("status prints JSON")
    }

    /// SIGKILL: no clean shutdown, nothing written on the way out.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("server running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Wait (up to `timeout`) until the stats satisfy `pred`; return the last stats seen.
    pub fn wait_stats(&self, timeout: Duration, pred: impl Fn(&Stats) -> bool) -> Stats {
        wait_for(timeout, || Some(self.stats()).filter(|s| pred(s))).unwrap_or_else(|| self.stats())
    }

    /// The server DUID it wrote to its DUID file.
    pub fn duid(&self) -> Vec<u8> {
        let text = std::fs::read_to_string(self.dir.join("server-duid")).expect("server DUID file");
        xdhcp6::io::duid::parse(&text).expect("valid DUID file")
    }

    /// SIGTERM, then wait up to 5 s for a clean exit; returns the exit status and the final
    /// stats the server wrote on its way out.
    pub fn stop(&mut self) -> (ExitStatus, Stats) {
        let mut child = self.child.take().expect("server running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let status = wait_for(Duration::from_secs(5), || child.try_wait().ok().flatten());
        let status = status.unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "xdhcp6 did not exit within 5 s of SIGTERM; log:\n{}",
                self.log()
            )
        });
        (status, self.stats())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- xdhcp6 log ---\n{}", self.log());
        }
    }
}
