//! Server configurations for the tests: as TOML for the binary (the schema of
//! docs/configuration.md) and as a typed `Config` for in-process tests.

use std::fmt::Write;
use std::path::Path;

use xdhcp6::config::{Backend, Config, ServerConfig};

/// What a test wants from the server; the rest is fixed: one link on 2001:db8:1::/64 served
/// directly on the server's veth, addresses ::1000–::1fff, prefixes /56 out of
/// 2001:db8:100::/40.
#[derive(Debug, Clone)]
pub struct TestConfig {
    pub interface: String,
    pub workers: usize,
    pub preferred_lifetime: u32,
    pub valid_lifetime: u32,
    pub t1: Option<u32>,
    pub t2: Option<u32>,
    pub rapid_commit: bool,
    /// Extra `key = value` lines for the `[server]` table.
    pub extra_server: Vec<String>,
    /// `server.backend`: "socket" (the default here), "xdp" or "auto".
    pub backend: String,
    /// Lines of an `[xdp]` section (none: no section).
    pub xdp: Vec<String>,
    /// `server.lease_file` (default: `leases` in the server's directory).
    pub lease_file: Option<std::path::PathBuf>,
}

pub const POOL_FIRST: &str = "2001:db8:1::1000";
pub const POOL_LAST: &str = "2001:db8:1::1fff";
pub const PD_POOL: &str = "2001:db8:100::/40";
pub const PD_LEN: u8 = 56;

impl TestConfig {
    pub fn new(interface: &str) -> Self {
        TestConfig {
            interface: interface.to_owned(),
            workers: 2,
            preferred_lifetime: 300,
            valid_lifetime: 600,
            t1: None,
            t2: None,
            rapid_commit: false,
            extra_server: Vec::new(),
            backend: "socket".to_owned(),
            xdp: Vec::new(),
            lease_file: None,
        }
    }

    /// The same on the XDP backend (`backend = "xdp"`, no fallback).
    pub fn xdp(interface: &str) -> Self {
        TestConfig {
            backend: "xdp".to_owned(),
            ..TestConfig::new(interface)
        }
    }

    /// The configuration file, with state files kept in `dir`.
    pub fn to_toml(&self, dir: &Path) -> String {
        let mut s = String::new();
        let d = dir.display();
        writeln!(s, "[server]").unwrap();
        writeln!(s, "interfaces = [\"{}\"]", self.interface).unwrap();
        writeln!(s, "backend = \"{}\"", self.backend).unwrap();
        writeln!(s, "workers = {}", self.workers).unwrap();
        writeln!(s, "duid_file = \"{d}/server-duid\"").unwrap();
        match &self.lease_file {
            Some(f) => writeln!(s, "lease_file = \"{}\"", f.display()).unwrap(),
            None => writeln!(s, "lease_file = \"{d}/leases\"").unwrap(),
        }
        writeln!(s, "control_socket = \"{d}/control.sock\"").unwrap();
        for line in &self.extra_server {
            writeln!(s, "{line}").unwrap();
        }
        writeln!(s).unwrap();
        writeln!(s, "[[link]]").unwrap();
        writeln!(s, "name = \"test-lan\"").unwrap();
        writeln!(s, "subnet = \"{}\"", super::netns::SUBNET).unwrap();
        writeln!(s, "interface = \"{}\"", self.interface).unwrap();
        writeln!(
            s,
            "address_pools = [{{ first = \"{POOL_FIRST}\", last = \"{POOL_LAST}\" }}]"
        )
        .unwrap();
        writeln!(
            s,
            "prefix_pools = [{{ prefix = \"{PD_POOL}\", delegated_length = {PD_LEN} }}]"
        )
        .unwrap();
        writeln!(s, "preferred_lifetime = {}", self.preferred_lifetime).unwrap();
        writeln!(s, "valid_lifetime = {}", self.valid_lifetime).unwrap();
        if let Some(t1) = self.t1 {
            writeln!(s, "t1 = {t1}").unwrap();
        }
        if let Some(t2) = self.t2 {
            writeln!(s, "t2 = {t2}").unwrap();
        }
        writeln!(s, "rapid_commit = {}", self.rapid_commit).unwrap();
        writeln!(s, "options = {{ dns_servers = [\"2001:db8:1::53\"] }}").unwrap();
        if !self.xdp.is_empty() {
            writeln!(s, "\n[xdp]").unwrap();
            for line in &self.xdp {
                writeln!(s, "{line}").unwrap();
            }
        }
        s
    }
}

/// A typed configuration listening on `interface` with no links: enough for the socket
/// backend, which only reads `server`.
pub fn backend_config(interface: &str, workers: usize, dir: &Path) -> Config {
    Config {
        server: ServerConfig {
            interfaces: vec![interface.to_owned()],
            backend: Backend::Socket,
            workers,
            duid_file: dir.join("server-duid"),
            lease_file: dir.join("leases"),
            control_socket: dir.join("control.sock"),
            control_group: None,
            metrics_listen: None,
            decline_quarantine_secs: 3600,
            lease: Default::default(),
        },
        links: Vec::new(),
        xdp: Default::default(),
    }
}
