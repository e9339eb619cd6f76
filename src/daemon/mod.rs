//! The running server: ties the configuration, the lease store, the protocol core, a packet
//! backend and the control plane (control socket, metrics, reload) together.
//!
//! The protocol core is immutable once built; a reload builds a new [`Server`] from the new
//! configuration around the same lease store and swaps it in atomically ([`ArcSwap`]). Workers
//! pick the new one up on their next packet; a packet in flight finishes on the old one. No
//! lease is lost because the store is shared, not rebuilt.
//!
//! The store `serve` uses is the memory-mapped lease table ([`storage::TableStore`]); the
//! housekeeping thread reclaims its expired records and reports when it fails closed.

pub mod storage;

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use serde_json::json;

use crate::config::{self, Config};
use crate::control::{self, Request, Response};
use crate::io::Handler;
use crate::lease::{IaType, LeaseInfo, LeaseStore, Resource};
use crate::proto::{DropReason, ReplyMeta, RxMeta, Server};
use crate::stats::{PoolUsage, ServerSnapshot, WorkerStats};
use storage::TableStore;

/// The store as the daemon holds it: chosen at start-up, shared by the core and the control
/// plane.
pub type DynStore = Arc<dyn LeaseStore>;

/// Seconds since the UNIX epoch (the core's notion of time).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A backend's own status for `xdhcp6 status` (see [`Runtime::set_backend_status`]).
pub type BackendStatus = Box<dyn Fn() -> serde_json::Value + Send + Sync>;

/// What the packet path and the control plane share.
pub struct Runtime {
    config_path: PathBuf,
    config: ArcSwap<Config>,
    server: ArcSwap<Server<DynStore>>,
    store: DynStore,
    /// The same store when it is the lease table: reclaim, durability barrier, status.
    table: Option<Arc<TableStore>>,
    duid: Vec<u8>,
    /// (OS ifindex, name) of every interface the backend serves, re-applied to each rebuilt core.
    interfaces: Vec<(u32, String)>,
    stats: Arc<[WorkerStats]>,
    started: Instant,
    backend: String,
    xdp_mode: Mutex<String>,
    /// The backend's own status (XDP: program counters, sockets), shown by `status`.
    backend_status: std::sync::OnceLock<BackendStatus>,
    /// Serialises reloads (the control socket and SIGHUP may race).
    reload_lock: Mutex<()>,
}

impl Runtime {
    /// Build the runtime. `interfaces` are the backend's (ifindex, name) pairs; `workers` the
    /// number of worker threads, each of which gets a stats block.
    pub fn new(
        config_path: &Path,
        config: Config,
        store: DynStore,
        duid: Vec<u8>,
        interfaces: Vec<(u32, String)>,
        workers: usize,
        backend: &str,
    ) -> Self {
        let server = Self::build_server(&config, &store, &duid, &interfaces);
        Runtime {
            config_path: config_path.to_owned(),
            config: ArcSwap::from_pointee(config),
            server: ArcSwap::from_pointee(server),
            store,
            table: None,
            duid,
            interfaces,
            stats: (0..workers).map(|_| WorkerStats::new()).collect(),
            started: Instant::now(),
            backend: backend.to_owned(),
            xdp_mode: Mutex::new(String::new()),
            backend_status: std::sync::OnceLock::new(),
            reload_lock: Mutex::new(()),
        }
    }

    /// [`Runtime::new`] serving from the lease table.
    pub fn with_table(
        config_path: &Path,
        config: Config,
        table: Arc<TableStore>,
        duid: Vec<u8>,
        interfaces: Vec<(u32, String)>,
        workers: usize,
        backend: &str,
    ) -> Self {
        let store: DynStore = table.clone();
        let mut rt = Self::new(
            config_path,
            config,
            store,
            duid,
            interfaces,
            workers,
            backend,
        );
        rt.table = Some(table);
        rt
    }

    /// The lease table, when the runtime serves from one.
    pub fn table(&self) -> Option<&Arc<TableStore>> {
        self.table.as_ref()
    }

    fn build_server(
        config: &Config,
        store: &DynStore,
        duid: &[u8],
        interfaces: &[(u32, String)],
    ) -> Server<DynStore> {
        let mut server = Server::new(config, store.clone(), duid.to_vec());
        for (ifindex, name) in interfaces {
            server.set_interface(*ifindex, name);
        }
        server
    }

    /// The per-worker stats blocks (worker `i` writes `stats()[i]`).
    pub fn stats(&self) -> &[WorkerStats] {
        &self.stats
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    pub fn store(&self) -> &DynStore {
        &self.store
    }

    /// Record the AF_XDP mode the backend got ("zero-copy" or "copy").
    pub fn set_xdp_mode(&self, mode: &str) {
        *self.xdp_mode.lock().unwrap_or_else(|e| e.into_inner()) = mode.to_owned();
    }

    /// Show `f()` under the backend's name in `status` (the XDP backend's program counters
    /// and sockets). Set once, before serving; later calls are ignored.
    pub fn set_backend_status(&self, f: BackendStatus) {
        let _ = self.backend_status.set(f);
    }

    /// Re-read the configuration file and apply it. A file that fails validation, or that
    /// changes settings only a restart can apply, is refused and the running configuration
    /// stays.
    pub fn reload(&self) -> Result<String, String> {
        let _guard = self.reload_lock.lock().unwrap_or_else(|e| e.into_inner());
        let new = config::load_file(&self.config_path).map_err(|e| {
            format!(
                "{}: {e}; keeping the running configuration",
                self.config_path.display()
            )
        })?;
        let old = self.config.load();
        let (a, b) = (&old.server, &new.server);
        let restart_only = [
            ("server.interfaces", a.interfaces != b.interfaces),
            ("server.backend", a.backend != b.backend),
            ("server.workers", a.workers != b.workers),
            ("server.duid_file", a.duid_file != b.duid_file),
            ("server.lease_file", a.lease_file != b.lease_file),
            (
                "server.lease_durability",
                a.lease.durability != b.lease.durability,
            ),
            (
                "server.max_leases",
                a.lease.max_leases != b.lease.max_leases,
            ),
            (
                "server.preallocate_leases",
                a.lease.preallocate_leases != b.lease.preallocate_leases,
            ),
            (
                "server.lease_file_growth",
                a.lease.file_growth != b.lease.file_growth,
            ),
            (
                "server.control_socket",
                a.control_socket != b.control_socket,
            ),
            ("server.control_group", a.control_group != b.control_group),
            (
                "server.metrics_listen",
                a.metrics_listen != b.metrics_listen,
            ),
        ];
        let xdp_changed = [("xdp", old.xdp != new.xdp)];
        if let Some((key, _)) = restart_only
            .iter()
            .chain(&xdp_changed)
            .find(|(_, changed)| *changed)
        {
            return Err(format!(
                "{key} changed; it takes effect only on restart. Keeping the running configuration"
            ));
        }
        // The store is kept. The lease table needs no pool list: pools new in this file are
        // registered on first use and a prefix pool whose geometry changed gets its free
        // bitmap rebuilt then (see `storage::TableStore::open`).
        let server = Self::build_server(&new, &self.store, &self.duid, &self.interfaces);
        let summary = format!(
            "reloaded {}: {} links, {} address pools, {} prefix pools",
            self.config_path.display(),
            new.links.len(),
            new.links
                .iter()
                .map(|l| l.address_pools.len())
                .sum::<usize>(),
            new.links
                .iter()
                .map(|l| l.prefix_pools.len())
                .sum::<usize>()
        );
        self.server.store(Arc::new(server));
        self.config.store(Arc::new(new));
        tracing::info!("{summary}");
        Ok(summary)
    }

    /// Everything `xdhcp6 stats` shows.
    pub fn snapshot(&self) -> ServerSnapshot {
        let now = unix_now();
        let cfg = self.config.load();
        let mut pools = Vec::new();
        let mut leases_active = 0;
        for link in &cfg.links {
            for (kind, list) in [("na", &link.address_pools), ("pd", &link.prefix_pools)] {
                for p in list.iter() {
                    let used = self.store.active_count(p, now);
                    leases_active += used;
                    let pool = match p.ia_type {
                        IaType::Na => format!(
                            "{}-{}",
                            p.base,
                            p.nth(p.count.saturating_sub(1)).map_or(p.base, |r| r.addr)
                        ),
                        IaType::Pd => {
                            // A PD pool of 2^k prefixes of length `len` spans a /(len - k).
                            let k = 63 - p.count.max(1).leading_zeros() as u8;
                            format!("{}/{} as /{}", p.base, p.len.saturating_sub(k), p.len)
                        }
                    };
                    pools.push(PoolUsage {
                        link: link.name.clone(),
                        pool,
                        kind: kind.into(),
                        total: p.count,
                        used,
                    });
                }
            }
        }
        ServerSnapshot {
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_secs: self.started.elapsed().as_secs(),
            monotonic_ns: self.started.elapsed().as_nanos() as u64,
            backend: self.backend.clone(),
            xdp_mode: self
                .xdp_mode
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            workers: self
                .stats
                .iter()
                .enumerate()
                .map(|(i, s)| s.snapshot(i))
                .collect(),
            pools,
            leases_active,
            lease_writes_refused: self.table.as_ref().map_or(0, |t| t.refused_writes()),
            failover: None,
        }
    }

    fn status(&self) -> serde_json::Value {
        let cfg = self.config.load();
        let mut status = json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_secs": self.started.elapsed().as_secs(),
            "backend": self.backend,
            "xdp_mode": *self.xdp_mode.lock().unwrap_or_else(|e| e.into_inner()),
            "workers": self.stats.len(),
            "interfaces": self.interfaces.iter().map(|(i, n)| json!({"name": n, "ifindex": i})).collect::<Vec<_>>(),
            "config_file": self.config_path.display().to_string(),
            "server_duid": hex(&self.duid),
            "links": cfg.links.iter().map(|l| l.name.clone()).collect::<Vec<_>>(),
            "lease_file": cfg.server.lease_file.display().to_string(),
        });
        if let Some(f) = self.backend_status.get() {
            status[self.backend.as_str()] = f();
        }
        if let Some(t) = &self.table {
            status["lease_table"] = t.status_json();
        }
        status
    }

    fn leases(&self, filter: &LeaseFilter, offset: u64, limit: u64) -> serde_json::Value {
        let now = unix_now();
        let limit = limit.min(100_000);
        let mut out = Vec::new();
        let mut matched = 0u64;
        self.store.visit(now, &mut |info| {
            if filter.matches(info) {
                if matched >= offset && (out.len() as u64) < limit {
                    out.push(lease_json(info));
                }
                matched += 1;
            }
            true
        });
        json!({ "total": matched, "offset": offset, "leases": out })
    }
}

/// `xdhcp6 leases --file`: the leases of a lease file, read without a server and without
/// taking its lock (safe while one runs), as the same JSON objects the control socket answers
/// plus the failover fields of each record. An active lease past its lifetime is shown as
/// expired, as the online listing does.
pub fn offline_leases(
    path: &Path,
    filter: &LeaseFilter,
    offset: u64,
    limit: u64,
) -> Result<
    (Vec<serde_json::Value>, crate::lease::table::ExportSummary),
    crate::lease::table::TableError,
> {
    let now = unix_now();
    let (entries, summary) = crate::lease::table::read_all(path)?;
    let leases = entries
        .into_iter()
        .map(|e| {
            let state = if e.state == crate::lease::BindingState::Active && e.expires_at <= now {
                crate::lease::BindingState::Expired
            } else {
                e.state
            };
            let info = LeaseInfo {
                duid: e.duid,
                iaid: e.iaid,
                ia_type: e.ia_type,
                pool_id: e.pool_id,
                lease: crate::lease::Lease {
                    resource: e.resource,
                    lifetimes: e.lifetimes,
                    cltt: e.cltt,
                    expires_at: e.expires_at,
                },
                state,
            };
            (
                info,
                e.seq,
                e.partner_expires,
                e.partner_acked,
                e.alloc_server,
            )
        })
        .filter(|(info, ..)| filter.matches(info))
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .map(
            |(info, seq, partner_expires, partner_acked, alloc_server)| {
                let mut v = lease_json(&info);
                v["seq"] = seq.into();
                v["partner_expires"] = partner_expires.into();
                v["partner_acked"] = partner_acked.into();
                v["alloc_server"] = alloc_server.into();
                v
            },
        )
        .collect();
    Ok((leases, summary))
}

/// Lowercase hex with colons, the usual DUID notation.
pub fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// One lease as JSON (the same fields as the offline `leases` export).
pub fn lease_json(i: &LeaseInfo) -> serde_json::Value {
    let r = i.lease.resource;
    json!({
        "duid": hex(&i.duid),
        "iaid": i.iaid,
        "type": match i.ia_type { IaType::Na => "na", IaType::Pd => "pd" },
        "address": if r.len == 128 { r.addr.to_string() } else { format!("{}/{}", r.addr, r.len) },
        "preferred_lifetime": i.lease.lifetimes.preferred,
        "valid_lifetime": i.lease.lifetimes.valid,
        "cltt": i.lease.cltt,
        "expires_at": i.lease.expires_at,
        "state": i.state.name(),
        "pool_id": i.pool_id,
    })
}

/// Which leases a query wants.
#[derive(Debug, Default, Clone)]
pub struct LeaseFilter {
    pub duid: Option<Vec<u8>>,
    pub address: Option<Ipv6Addr>,
    /// A prefix: matches delegated prefixes inside it and addresses inside it.
    pub prefix: Option<(Ipv6Addr, u8)>,
}

impl LeaseFilter {
    /// Parse the textual filters of a control request or the CLI.
    pub fn parse(
        duid: Option<&str>,
        address: Option<&str>,
        prefix: Option<&str>,
    ) -> Result<Self, String> {
        let duid = duid
            .map(|d| crate::io::duid::parse(d).map_err(|e| format!("bad DUID {d:?}: {e}")))
            .transpose()?;
        let address = address
            .map(|a| {
                a.parse::<Ipv6Addr>()
                    .map_err(|_| format!("bad IPv6 address {a:?}"))
            })
            .transpose()?;
        let prefix = prefix
            .map(|p| {
                let (a, l) = p
                    .split_once('/')
                    .ok_or_else(|| format!("bad prefix {p:?}: expected ADDR/LEN"))?;
                let a = a
                    .parse::<Ipv6Addr>()
                    .map_err(|_| format!("bad prefix {p:?}"))?;
                let l = l
                    .parse::<u8>()
                    .ok()
                    .filter(|l| *l <= 128)
                    .ok_or_else(|| format!("bad prefix length in {p:?}"))?;
                Ok::<_, String>((a, l))
            })
            .transpose()?;
        Ok(LeaseFilter {
            duid,
            address,
            prefix,
        })
    }

    pub fn matches(&self, i: &LeaseInfo) -> bool {
        let r: Resource = i.lease.resource;
        if self.duid.as_ref().is_some_and(|d| *d != i.duid) {
            return false;
        }
        if let Some(a) = self.address {
            // An address matches the lease that is it, or the delegated prefix containing it.
            if !net_contains(r.addr, r.len, a) {
                return false;
            }
        }
        if let Some((p, l)) = self.prefix {
            if r.len < l || !net_contains(p, l, r.addr) {
                return false;
            }
        }
        true
    }
}

fn net_contains(net: Ipv6Addr, len: u8, a: Ipv6Addr) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len.min(128)))
    };
    u128::from(net) & mask == u128::from(a) & mask
}

impl Handler for Runtime {
    #[inline]
    fn handle(
        &self,
        request: &[u8],
        meta: &RxMeta,
        now: u64,
        out: &mut [u8],
    ) -> Result<ReplyMeta, DropReason> {
        self.server.load().handle(request, meta, now, out)
    }

    #[inline]
    fn durable_barrier(&self, replies: usize) -> bool {
        self.table
            .as_ref()
            .is_none_or(|t| t.durable_barrier(replies))
    }
}

/// The control socket's view of the runtime.
pub struct ControlHandler(pub Arc<Runtime>);

impl control::Handler for ControlHandler {
    fn handle(&self, request: &Request) -> Response {
        let rt = &self.0;
        match request {
            Request::Status => Response::ok(rt.status()),
            Request::Stats => match serde_json::to_value(rt.snapshot()) {
                Ok(v) => Response::ok(v),
                Err(e) => Response::err(format!("stats: {e}")),
            },
            Request::Leases {
                duid,
                address,
                prefix,
                offset,
                limit,
            } => match LeaseFilter::parse(duid.as_deref(), address.as_deref(), prefix.as_deref()) {
                Ok(f) => Response::ok(rt.leases(&f, *offset, *limit)),
                Err(e) => Response::err(e),
            },
            Request::Reload => match rt.reload() {
                Ok(msg) => Response::ok(json!({ "message": msg })),
                Err(e) => {
                    tracing::warn!("reload refused: {e}");
                    Response::err(e)
                }
            },
        }
    }
}

/// Watches for SIGHUP and reloads; about once a second reclaims expired leases from the lease
/// table (a bounded budget, so workers never wait on it long) and reports a change of its
/// fail-closed state. Runs until `stop` is set.
pub fn spawn_housekeeping(
    rt: Arc<Runtime>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())?;
    std::thread::Builder::new()
        .name("housekeeping".into())
        .spawn(move || {
            const TICK: std::time::Duration = std::time::Duration::from_secs(1);
            let mut watch = rt.table.as_ref().map(|t| t.new_watch());
            let mut next_tick = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                if hup.swap(false, Ordering::Relaxed) {
                    tracing::info!("SIGHUP: reloading configuration");
                    if let Err(e) = rt.reload() {
                        tracing::warn!("reload refused: {e}");
                    }
                }
                if Instant::now() >= next_tick {
                    next_tick = Instant::now() + TICK;
                    if let (Some(t), Some(w)) = (&rt.table, watch.as_mut()) {
                        t.housekeeping(unix_now(), w);
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        })
}
