//! Raw (as written) → typed configuration. Every check that can fail names the key path it is
//! about, e.g. `link[1].address_pools[0].last`, with indices counted from 0 in file order.
//!
//! Checks that concern one key are done where the key is read; checks across links (overlaps,
//! duplicates) run once everything is typed, in [`cross_checks`].

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use super::raw::{
    RawAddressPool, RawConfig, RawDefaults, RawDuration, RawLink, RawOptions, RawPrefixPool,
    RawReservation, RawServer,
};
use super::{
    Backend, Config, ConfigError, DhcpOptions, Ipv6Net, LeaseDurability, LeaseSettings, Link,
    Reservation, ServerConfig, INFINITE,
};
use crate::lease::{IaType, PoolSpec};

type Result<T> = std::result::Result<T, ConfigError>;

/// Default of `server.duid_file`.
pub const DEFAULT_DUID_FILE: &str = "/var/lib/xdhcp6/server-duid";
/// Default of `server.lease_file`.
pub const DEFAULT_LEASE_FILE: &str = "/var/lib/xdhcp6/leases";
/// Default of `server.control_socket`.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/xdhcp6/control.sock";
/// Default of `server.decline_quarantine`: one day, long enough for an operator to notice a
/// duplicate address and short enough that a pool does not silently drain.
pub const DEFAULT_DECLINE_QUARANTINE_SECS: u32 = 86_400;
/// Default of `server.max_leases`: 64 Mi records, a 6 GiB address-space reservation (virtual;
/// the file and memory grow only with the leases actually held).
pub const DEFAULT_MAX_LEASES: u64 = 64 << 20;
/// Smallest `server.max_leases`: below this the reservation is not worth configuring.
pub const MIN_MAX_LEASES: u64 = 1024;
/// Largest `server.max_leases`: record slots are numbered with 32 bits, and the table rounds
/// the reservation up to whole rounds of chunks.
pub const MAX_MAX_LEASES: u64 = 1 << 31;
/// Default of `server.lease_commit_window_usecs`: how long the flusher gathers grants before
/// a shared `fdatasync` in group-commit mode.
pub const DEFAULT_LEASE_COMMIT_WINDOW_USECS: u32 = 200;
/// Largest `server.lease_commit_window_usecs` (every reply of a batch waits this long at least).
pub const MAX_LEASE_COMMIT_WINDOW_USECS: u32 = 100_000;
/// Key shards of a new lease file (more than cores; the table's own default).
pub const LEASE_FILE_SHARDS: u64 = 64;
/// `server.lease_file_growth` is rounded up to a multiple of this: one chunk of the table's
/// smallest size (64 records) per shard.
pub const LEASE_FILE_GROWTH_UNIT: u64 = LEASE_FILE_SHARDS * 64;
/// Default of `server.lease_file_growth`: 4096 records per shard, 24 MiB a step.
pub const DEFAULT_LEASE_FILE_GROWTH: u64 = LEASE_FILE_SHARDS * 4096;
/// Largest `server.lease_file_growth` (the table's largest chunk in every shard).
pub const MAX_LEASE_FILE_GROWTH: u64 = LEASE_FILE_SHARDS * (1 << 20);
/// Default valid lifetime of addresses and prefixes.
pub const DEFAULT_VALID_LIFETIME_SECS: u32 = 7_200;
/// Default preferred lifetime (capped at the valid lifetime when that is set lower).
pub const DEFAULT_PREFERRED_LIFETIME_SECS: u32 = 3_600;

/// Upper bound of `server.workers`.
pub const MAX_WORKERS: usize = 1024;
/// Upper bound on `options.dns_servers` entries: the reply must still fit one frame.
pub const MAX_DNS_SERVERS: usize = 16;
/// Upper bound on `options.domain_search` entries, for the same reason.
pub const MAX_DOMAIN_SEARCH: usize = 16;
/// Longest Interface-ID accepted, bytes.
pub const MAX_INTERFACE_ID_LEN: usize = 255;
/// DUIDs are at most 128 octets plus the 2-octet type (RFC 8415 §11.1).
pub const MAX_DUID_LEN: usize = 130;
/// IRT_MINIMUM (RFC 8415 §7.6, §21.23).
pub const IRT_MINIMUM_SECS: u32 = 600;
/// Allowed range of SOL_MAX_RT and INF_MAX_RT (RFC 8415 §21.24, §21.25).
pub const MAX_RT_RANGE_SECS: (u32, u32) = (60, 86_400);
/// `sun_path` holds 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH_LEN: usize = 107;

pub(crate) fn validate(raw: RawConfig, base_dir: Option<&Path>) -> Result<Config> {
    let server = server(raw.server.unwrap_or_default(), base_dir)?;
    let defaults = raw.defaults.unwrap_or_default();
    if raw.link.is_empty() {
        return Err(ConfigError::invalid(
            "link",
            "no [[link]] is defined; at least one is required",
        ));
    }

    let mut next_pool_id: u32 = 1;
    let mut links = Vec::with_capacity(raw.link.len());
    for (i, rl) in raw.link.iter().enumerate() {
        links.push(link(i, rl, &defaults, &server, &mut next_pool_id)?);
    }
    cross_checks(&raw.link, &links)?;
    assign_pool_ids(&mut links);
    let xdp = super::xdp::validate(raw.xdp)?;
    Ok(Config { server, links, xdp })
}

// ---------------------------------------------------------------------------------------------
// [server]

fn server(raw: RawServer, base_dir: Option<&Path>) -> Result<ServerConfig> {
    let lease = lease_settings(&raw)?;
    let interfaces = match raw.interfaces {
        None => {
            return Err(ConfigError::invalid(
                "server.interfaces",
                "required key is missing; list the interfaces to listen on, e.g. [\"eth0\"]",
            ))
        }
        Some(v) if v.is_empty() => {
            return Err(ConfigError::invalid(
                "server.interfaces",
                "must list at least one interface to listen on",
            ))
        }
        Some(v) => v,
    };
    let mut seen = HashMap::new();
    for (i, name) in interfaces.iter().enumerate() {
        let key = format!("server.interfaces[{i}]");
        check_ifname(name).map_err(|r| ConfigError::invalid(&key, r))?;
        if let Some(j) = seen.insert(name.as_str(), i) {
            return Err(ConfigError::invalid(
                key,
                format!("interface \"{name}\" is already listed at server.interfaces[{j}]"),
            ));
        }
    }

    let backend = match raw.backend.as_deref() {
        None | Some("auto") => Backend::Auto,
        Some("socket") => Backend::Socket,
        Some("xdp") => Backend::Xdp,
        Some(other) => {
            return Err(ConfigError::invalid(
                "server.backend",
                format!("unknown backend \"{other}\"; expected \"socket\", \"xdp\" or \"auto\""),
            ))
        }
    };

    let workers = match raw.workers {
        None => 0,
        Some(w) => usize::try_from(w)
            .ok()
            .filter(|&w| w <= MAX_WORKERS)
            .ok_or_else(|| {
                ConfigError::invalid(
                    "server.workers",
                    format!("{w} is out of range; expected 0 (one per core) to {MAX_WORKERS}"),
                )
            })?,
    };

    let duid_file = path(
        "server.duid_file",
        raw.duid_file,
        DEFAULT_DUID_FILE,
        base_dir,
    )?;
    let lease_file = path(
        "server.lease_file",
        raw.lease_file,
        DEFAULT_LEASE_FILE,
        base_dir,
    )?;
    let control_socket = path(
        "server.control_socket",
        raw.control_socket,
        DEFAULT_CONTROL_SOCKET,
        base_dir,
    )?;
    if control_socket.as_os_str().len() > MAX_SOCKET_PATH_LEN {
        return Err(ConfigError::invalid(
            "server.control_socket",
            format!(
                "path is {} bytes long; a Unix socket path is at most {MAX_SOCKET_PATH_LEN}",
                control_socket.as_os_str().len()
            ),
        ));
    }
    if lease_file == duid_file {
        return Err(ConfigError::invalid(
            "server.lease_file",
            "must differ from server.duid_file (the same file cannot hold both)",
        ));
    }
    if control_socket == lease_file || control_socket == duid_file {
        return Err(ConfigError::invalid(
            "server.control_socket",
            "must differ from server.lease_file and server.duid_file",
        ));
    }

    let control_group = match raw.control_group {
        None => None,
        Some(g) if g.is_empty() || g.contains([':', '\n', '\0']) => {
            return Err(ConfigError::invalid(
                "server.control_group",
                format!("{g:?} is not a valid group name"),
            ))
        }
        Some(g) => Some(g),
    };
    let metrics_listen = match raw.metrics_listen.as_deref() {
        None => None,
        Some(text) => {
            // A bare port means loopback: metrics are not for the world unless asked.
            let parsed = text.parse::<std::net::SocketAddr>().or_else(|_| {
                text.parse::<u16>()
                    .map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], p)))
            });
            match parsed {
                Ok(a) if a.port() != 0 => Some(a),
                _ => {
                    return Err(ConfigError::invalid(
                        "server.metrics_listen",
                        format!(
                            "{text:?} is not an address and port such as \"127.0.0.1:9547\", \"[::1]:9547\" or a port number"
                        ),
                    ))
                }
            }
        }
    };

    let decline_quarantine_secs = match &raw.decline_quarantine {
        None => DEFAULT_DECLINE_QUARANTINE_SECS,
        Some(d) => {
            let key = "server.decline_quarantine";
            let secs = duration(d, key)?;
            if secs == 0 || secs == INFINITE {
                return Err(ConfigError::invalid(
                    key,
                    "must be a finite time above 0 (RFC 8415 §18.3.8: a declined address must \
                     not be handed out again at once)",
                ));
            }
            secs
        }
    };

    Ok(ServerConfig {
        interfaces,
        backend,
        workers,
        duid_file,
        lease_file,
        control_socket,
        control_group,
        metrics_listen,
        decline_quarantine_secs,
        lease,
    })
}

/// `lease_durability`, `lease_commit_window_usecs`, `max_leases`, `preallocate_leases`.
fn lease_settings(raw: &RawServer) -> Result<LeaseSettings> {
    let window_usecs = match raw.lease_commit_window_usecs {
        None => DEFAULT_LEASE_COMMIT_WINDOW_USECS,
        Some(u) => u32::try_from(u)
            .ok()
            .filter(|u| *u <= MAX_LEASE_COMMIT_WINDOW_USECS)
            .ok_or_else(|| {
                ConfigError::invalid(
                    "server.lease_commit_window_usecs",
                    format!(
                        "{u} is out of range; expected 0 to {MAX_LEASE_COMMIT_WINDOW_USECS} \
                         microseconds"
                    ),
                )
            })?,
    };
    let durability = match raw.lease_durability.as_deref() {
        None | Some("mapped") => {
            if raw.lease_commit_window_usecs.is_some() {
                return Err(ConfigError::invalid(
                    "server.lease_commit_window_usecs",
                    "has no effect unless server.lease_durability = \"group-commit\"",
                ));
            }
            LeaseDurability::Mapped
        }
        Some("group-commit") => LeaseDurability::GroupCommit { window_usecs },
        Some(other) => {
            return Err(ConfigError::invalid(
                "server.lease_durability",
                format!("unknown mode \"{other}\"; expected \"mapped\" or \"group-commit\""),
            ))
        }
    };
    let max_leases = match raw.max_leases {
        None => DEFAULT_MAX_LEASES,
        Some(n) => u64::try_from(n)
            .ok()
            .filter(|n| (MIN_MAX_LEASES..=MAX_MAX_LEASES).contains(n))
            .ok_or_else(|| {
                ConfigError::invalid(
                    "server.max_leases",
                    format!("{n} is out of range; expected {MIN_MAX_LEASES} to {MAX_MAX_LEASES}"),
                )
            })?,
    };
    let preallocate_leases = match raw.preallocate_leases {
        None => 0,
        Some(n) => u64::try_from(n)
            .ok()
            .filter(|n| *n <= max_leases)
            .ok_or_else(|| {
                ConfigError::invalid(
                    "server.preallocate_leases",
                    format!("{n} is out of range; expected 0 to server.max_leases ({max_leases})"),
                )
            })?,
    };
    let file_growth = match raw.lease_file_growth {
        None => DEFAULT_LEASE_FILE_GROWTH,
        Some(n) => u64::try_from(n)
            .ok()
            .filter(|n| (1..=MAX_LEASE_FILE_GROWTH).contains(n))
            .map(|n| n.div_ceil(LEASE_FILE_GROWTH_UNIT) * LEASE_FILE_GROWTH_UNIT)
            .ok_or_else(|| {
                ConfigError::invalid(
                    "server.lease_file_growth",
                    format!(
                        "{n} is out of range; expected 1 to {MAX_LEASE_FILE_GROWTH} records \
                         (rounded up to a multiple of {LEASE_FILE_GROWTH_UNIT})"
                    ),
                )
            })?,
    };
    Ok(LeaseSettings {
        durability,
        max_leases,
        preallocate_leases,
        file_growth,
    })
}

fn path(key: &str, raw: Option<String>, default: &str, base_dir: Option<&Path>) -> Result<PathBuf> {
    let s = raw.unwrap_or_else(|| default.to_owned());
    if s.is_empty() {
        return Err(ConfigError::invalid(key, "must not be empty"));
    }
    if s.contains('\0') {
        return Err(ConfigError::invalid(
            key,
            "must not contain a NUL character",
        ));
    }
    let p = PathBuf::from(s);
    Ok(match base_dir {
        Some(base) if p.is_relative() => base.join(p),
        _ => p,
    })
}

/// Linux accepts an interface name of 1 to 15 bytes without '/', ':' or white space, and not
/// "." or ".." (`dev_valid_name`).
fn check_ifname(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err(format!(
            "interface name \"{name}\" must be 1 to 15 bytes long"
        ));
    }
    if name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(format!(
            "\"{name}\" is not a valid interface name (no '/', ':' or white space, not . or ..)"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// [[link]]

/// A setting taken from the link, else from `[defaults]`, with the key it came from.
fn pick<'a, T>(
    link_val: &'a Option<T>,
    default_val: &'a Option<T>,
    link_key: String,
    default_key: &str,
) -> Option<(&'a T, String)> {
    match (link_val, default_val) {
        (Some(v), _) => Some((v, link_key)),
        (None, Some(v)) => Some((v, default_key.to_owned())),
        (None, None) => None,
    }
}

fn link(
    i: usize,
    rl: &RawLink,
    defaults: &RawDefaults,
    server: &ServerConfig,
    next_pool_id: &mut u32,
) -> Result<Link> {
    let lk = format!("link[{i}]");

    let name = rl
        .name
        .clone()
        .ok_or_else(|| ConfigError::invalid(format!("{lk}.name"), "required key is missing"))?;
    check_link_name(&name).map_err(|r| ConfigError::invalid(format!("{lk}.name"), r))?;

    let subnet_key = format!("{lk}.subnet");
    let subnet = rl
        .subnet
        .as_deref()
        .ok_or_else(|| ConfigError::invalid(&subnet_key, "required key is missing"))?;
    let subnet = parse_net(subnet).map_err(|r| ConfigError::invalid(&subnet_key, r))?;
    if subnet.len == 0 || subnet.len == 128 {
        return Err(ConfigError::invalid(
            &subnet_key,
            format!(
                "prefix length /{} cannot be a link's subnet (use /1 to /127, usually /64)",
                subnet.len
            ),
        ));
    }
    check_unicast_net(&subnet).map_err(|r| ConfigError::invalid(&subnet_key, r))?;

    let interface = match &rl.interface {
        None => None,
        Some(ifname) => {
            let key = format!("{lk}.interface");
            check_ifname(ifname).map_err(|r| ConfigError::invalid(&key, r))?;
            if !server.interfaces.iter().any(|s| s == ifname) {
                return Err(ConfigError::invalid(
                    key,
                    format!(
                        "interface \"{ifname}\" is not listed in server.interfaces, so no \
                         client could arrive on it; add it there"
                    ),
                ));
            }
            Some(ifname.clone())
        }
    };

    let mut interface_ids = Vec::with_capacity(rl.interface_ids.len());
    for (j, s) in rl.interface_ids.iter().enumerate() {
        let key = format!("{lk}.interface_ids[{j}]");
        let id = parse_interface_id(s).map_err(|r| ConfigError::invalid(&key, r))?;
        if let Some(k) = interface_ids.iter().position(|x| *x == id) {
            return Err(ConfigError::invalid(
                key,
                format!("duplicates {lk}.interface_ids[{k}]"),
            ));
        }
        interface_ids.push(id);
    }

    let mut address_pools = Vec::with_capacity(rl.address_pools.len());
    for (j, p) in rl.address_pools.iter().enumerate() {
        let key = format!("{lk}.address_pools[{j}]");
        address_pools.push(address_pool(
            &key,
            p,
            &subnet,
            take_id(next_pool_id, &key)?,
        )?);
    }
    let mut prefix_pools = Vec::with_capacity(rl.prefix_pools.len());
    for (j, p) in rl.prefix_pools.iter().enumerate() {
        let key = format!("{lk}.prefix_pools[{j}]");
        prefix_pools.push(prefix_pool(&key, p, take_id(next_pool_id, &key)?)?);
    }

    // Lifetimes and timers (RFC 8415 §7.7, §21.4, §21.6, §21.22).
    let valid = pick(
        &rl.valid_lifetime,
        &defaults.valid_lifetime,
        format!("{lk}.valid_lifetime"),
        "defaults.valid_lifetime",
    );
    let (valid_lifetime, valid_key) = match valid {
        Some((d, key)) => (duration(d, &key)?, key),
        None => (
            DEFAULT_VALID_LIFETIME_SECS,
            format!("{lk}.valid_lifetime (default)"),
        ),
    };
    let preferred = pick(
        &rl.preferred_lifetime,
        &defaults.preferred_lifetime,
        format!("{lk}.preferred_lifetime"),
        "defaults.preferred_lifetime",
    );
    let (preferred_lifetime, preferred_key) = match preferred {
        Some((d, key)) => (duration(d, &key)?, key),
        None => (
            DEFAULT_PREFERRED_LIFETIME_SECS.min(valid_lifetime),
            format!("{lk}.preferred_lifetime (default)"),
        ),
    };
    if valid_lifetime == 0 {
        return Err(ConfigError::invalid(valid_key, "must be above 0"));
    }
    if preferred_lifetime == 0 {
        return Err(ConfigError::invalid(preferred_key, "must be above 0"));
    }
    if preferred_lifetime > valid_lifetime {
        return Err(ConfigError::invalid(
            preferred_key,
            format!(
                "preferred lifetime {} exceeds the valid lifetime {} set at {valid_key}; \
                 clients discard such addresses (RFC 8415 §21.6)",
                secs(preferred_lifetime),
                secs(valid_lifetime)
            ),
        ));
    }

    let t1 = pick(&rl.t1, &defaults.t1, format!("{lk}.t1"), "defaults.t1");
    let t2 = pick(&rl.t2, &defaults.t2, format!("{lk}.t2"), "defaults.t2");
    let (t1, t2) = match (t1, t2) {
        (None, None) => (None, None),
        (Some((_, k1)), None) => {
            return Err(ConfigError::invalid(
                format!("{lk}.t2"),
                format!("{k1} is set, so t2 must be set too (or leave both out to derive them)"),
            ))
        }
        (None, Some((_, k2))) => {
            return Err(ConfigError::invalid(
                format!("{lk}.t1"),
                format!("{k2} is set, so t1 must be set too (or leave both out to derive them)"),
            ))
        }
        (Some((d1, k1)), Some((d2, k2))) => {
            let t1 = duration(d1, &k1)?;
            let t2 = duration(d2, &k2)?;
            check_timers(t1, &k1, t2, &k2, preferred_lifetime, &preferred_key)?;
            (Some(t1), Some(t2))
        }
    };

    let rapid_commit = rl.rapid_commit.or(defaults.rapid_commit).unwrap_or(false);

    let preference = match pick(
        &rl.preference,
        &defaults.preference,
        format!("{lk}.preference"),
        "defaults.preference",
    ) {
        None => None,
        Some((&v, key)) => Some(u8::try_from(v).map_err(|_| {
            ConfigError::invalid(
                key,
                format!("{v} is out of range; expected 0 to 255 (RFC 8415 §21.8)"),
            )
        })?),
    };

    let options = options(&lk, rl.options.as_ref(), defaults.options.as_ref())?;

    // Hash maps, not pairwise scans: an ISP link may carry many thousands of reservations.
    let mut reservations: Vec<Reservation> = Vec::with_capacity(rl.reservation.len());
    let mut by_duid: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut by_address: HashMap<Ipv6Addr, usize> = HashMap::new();
    for (k, r) in rl.reservation.iter().enumerate() {
        let key = format!("{lk}.reservation[{k}]");
        let res = reservation(&key, r, &subnet)?;
        if let Some(m) = by_duid.insert(res.duid.clone(), k) {
            return Err(ConfigError::invalid(
                format!("{key}.duid"),
                format!("DUID is already reserved by {lk}.reservation[{m}] on this link"),
            ));
        }
        if let Some(a) = res.address {
            if let Some(m) = by_address.insert(a, k) {
                return Err(ConfigError::invalid(
                    format!("{key}.address"),
                    format!("address is already reserved by {lk}.reservation[{m}]"),
                ));
            }
        }
        reservations.push(res);
    }

    Ok(Link {
        name,
        subnet,
        interface,
        interface_ids,
        address_pools,
        prefix_pools,
        preferred_lifetime,
        valid_lifetime,
        t1,
        t2,
        rapid_commit,
        preference,
        options,
        reservations,
    })
}

/// RFC 8415 §21.4: T1 ≤ T2 when both are non-zero (a client discards an IA with T1 > T2), and
/// 0 for both leaves the timing to the client. We also require T2 ≤ the preferred lifetime:
/// the timers exist to renew before addresses deprecate, and the RFC's recommended values are
/// 0.5 and 0.8 of it.
fn check_timers(t1: u32, k1: &str, t2: u32, k2: &str, preferred: u32, kp: &str) -> Result<()> {
    if (t1 == 0) != (t2 == 0) {
        return Err(ConfigError::invalid(
            if t1 == 0 { k1 } else { k2 },
            "t1 and t2 must both be 0 (client's choice, RFC 8415 §21.4) or both above 0",
        ));
    }
    if t1 > t2 {
        return Err(ConfigError::invalid(
            k1,
            format!(
                "t1 {} exceeds t2 {} set at {k2}; clients discard such IAs (RFC 8415 §21.4)",
                secs(t1),
                secs(t2)
            ),
        ));
    }
    if preferred != INFINITE && t2 > preferred {
        return Err(ConfigError::invalid(
            k2,
            format!(
                "t2 {} exceeds the preferred lifetime {} set at {kp}; clients would renew only \
                 after their addresses are deprecated (RFC 8415 §21.4 recommends 0.8 of it)",
                secs(t2),
                secs(preferred)
            ),
        ));
    }
    Ok(())
}

/// Give every pool an id derived from what it is (type, first address or prefix, length), not
/// from where it stands in the file: leases in the lease file name their pool by id, so
/// reordering pools, inserting one, or moving a range's last address must not strand them.
/// Pools never overlap (checked above), so (type, base, len) is unique; the rare 32-bit hash
/// collision is resolved by probing in address order, which again does not depend on the file.
fn assign_pool_ids(links: &mut [super::Link]) {
    let mut pools: Vec<&mut PoolSpec> = links
        .iter_mut()
        .flat_map(|l| l.address_pools.iter_mut().chain(l.prefix_pools.iter_mut()))
        .collect();
    pools.sort_by_key(|p| (u128::from(p.base), p.len, p.ia_type));
    let mut used = std::collections::HashSet::with_capacity(pools.len());
    for p in pools {
        let mut h: u32 = 0x811c_9dc5;
        let kind = match p.ia_type {
            crate::lease::IaType::Na => 3u8,
            crate::lease::IaType::Pd => 25u8,
        };
        for b in [kind, p.len].iter().chain(p.base.octets().iter()) {
            h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
        }
        // 0 is never a pool id.
        let mut id = h.max(1);
        while !used.insert(id) {
            id = id.wrapping_add(1).max(1);
        }
        p.id = id;
    }
}

fn take_id(next: &mut u32, key: &str) -> Result<u32> {
    let id = *next;
    *next = next
        .checked_add(1)
        .ok_or_else(|| ConfigError::invalid(key, "too many pools in one configuration"))?;
    Ok(id)
}

fn check_link_name(name: &str) -> std::result::Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > 64 || !name.chars().all(ok_char) {
        return Err(format!(
            "\"{name}\" is not a valid link name: use 1 to 64 of A-Z a-z 0-9 - _ ."
        ));
    }
    Ok(())
}

fn address_pool(key: &str, p: &RawAddressPool, subnet: &Ipv6Net, id: u32) -> Result<PoolSpec> {
    let addr = |field: &str, v: &Option<String>| -> Result<Ipv6Addr> {
        let k = format!("{key}.{field}");
        let s = v
            .as_deref()
            .ok_or_else(|| ConfigError::invalid(&k, "required key is missing"))?;
        let a = parse_addr(s).map_err(|r| ConfigError::invalid(&k, r))?;
        if !subnet.contains(a) {
            return Err(ConfigError::invalid(
                k,
                format!("{a} is outside the link subnet {}", net(subnet)),
            ));
        }
        Ok(a)
    };
    let first = addr("first", &p.first)?;
    let last = addr("last", &p.last)?;
    if first > last {
        return Err(ConfigError::invalid(
            format!("{key}.last"),
            format!("{last} is below first {first}; a pool runs from first up to last"),
        ));
    }
    // RFC 4291 §2.6.1: the all-zeros host part is the Subnet-Router anycast address. (A /127
    // has no such address, RFC 6164.)
    if subnet.len < 127 && first == subnet.addr {
        return Err(ConfigError::invalid(
            format!("{key}.first"),
            format!("{first} is the Subnet-Router anycast address of {} (RFC 4291 §2.6.1); start the pool above it", net(subnet)),
        ));
    }
    let span = u128::from(last) - u128::from(first);
    let count = u64::try_from(span)
        .ok()
        .and_then(|s| s.checked_add(1))
        .ok_or_else(|| {
            ConfigError::invalid(
                format!("{key}.last"),
                "pool holds 2^64 addresses or more; the limit is 2^64 - 1, split it",
            )
        })?;
    Ok(PoolSpec {
        id,
        ia_type: IaType::Na,
        base: first,
        len: 128,
        count,
    })
}

fn prefix_pool(key: &str, p: &RawPrefixPool, id: u32) -> Result<PoolSpec> {
    let pk = format!("{key}.prefix");
    let s = p
        .prefix
        .as_deref()
        .ok_or_else(|| ConfigError::invalid(&pk, "required key is missing"))?;
    let prefix = parse_net(s).map_err(|r| ConfigError::invalid(&pk, r))?;
    if prefix.len == 0 {
        return Err(ConfigError::invalid(
            &pk,
            "a /0 pool would delegate the whole address space",
        ));
    }
    check_unicast_net(&prefix).map_err(|r| ConfigError::invalid(&pk, r))?;

    let dk = format!("{key}.delegated_length");
    let dl = p
        .delegated_length
        .ok_or_else(|| ConfigError::invalid(&dk, "required key is missing"))?;
    if dl <= i64::from(prefix.len) || dl > 128 {
        return Err(ConfigError::invalid(
            &dk,
            format!(
                "{dl} is out of range; it must be longer than the pool prefix /{} and at most 128",
                prefix.len
            ),
        ));
    }
    let dl = dl as u8; // in (prefix.len, 128], checked above
    let bits = u32::from(dl - prefix.len);
    if bits > 63 {
        return Err(ConfigError::invalid(
            &dk,
            format!(
                "cutting /{} into /{dl} gives 2^{bits} prefixes; the limit is 2^63, use a longer \
                 pool prefix or a shorter delegated length",
                prefix.len
            ),
        ));
    }
    Ok(PoolSpec {
        id,
        ia_type: IaType::Pd,
        base: prefix.addr,
        len: dl,
        count: 1u64 << bits,
    })
}

fn options(
    lk: &str,
    link: Option<&RawOptions>,
    defaults: Option<&RawOptions>,
) -> Result<DhcpOptions> {
    let none = RawOptions::default();
    let l = link.unwrap_or(&none);
    let d = defaults.unwrap_or(&none);
    let lo = format!("{lk}.options");
    let pk = |field: &str| format!("{lo}.{field}");
    let dk = |field: &str| format!("defaults.options.{field}");

    let mut dns_servers = Vec::new();
    if let Some((list, key)) = pick(
        &l.dns_servers,
        &d.dns_servers,
        pk("dns_servers"),
        &dk("dns_servers"),
    ) {
        if list.len() > MAX_DNS_SERVERS {
            return Err(ConfigError::invalid(
                key,
                format!("{} servers listed; at most {MAX_DNS_SERVERS}", list.len()),
            ));
        }
        for (i, s) in list.iter().enumerate() {
            let k = format!("{key}[{i}]");
            let a = parse_addr(s).map_err(|r| ConfigError::invalid(&k, r))?;
            if a.is_unspecified() || a.is_multicast() {
                return Err(ConfigError::invalid(
                    k,
                    format!("{a} is not a unicast address"),
                ));
            }
            if dns_servers.contains(&a) {
                return Err(ConfigError::invalid(k, format!("{a} is listed twice")));
            }
            dns_servers.push(a);
        }
    }

    let mut domain_search: Vec<String> = Vec::new();
    if let Some((list, key)) = pick(
        &l.domain_search,
        &d.domain_search,
        pk("domain_search"),
        &dk("domain_search"),
    ) {
        if list.len() > MAX_DOMAIN_SEARCH {
            return Err(ConfigError::invalid(
                key,
                format!("{} domains listed; at most {MAX_DOMAIN_SEARCH}", list.len()),
            ));
        }
        for (i, s) in list.iter().enumerate() {
            let k = format!("{key}[{i}]");
            let name = check_domain(s).map_err(|r| ConfigError::invalid(&k, r))?;
            if domain_search.iter().any(|x| x.eq_ignore_ascii_case(&name)) {
                return Err(ConfigError::invalid(
                    k,
                    format!("\"{name}\" is listed twice"),
                ));
            }
            domain_search.push(name);
        }
    }

    let information_refresh_time = match pick(
        &l.information_refresh_time,
        &d.information_refresh_time,
        pk("information_refresh_time"),
        &dk("information_refresh_time"),
    ) {
        None => None,
        Some((v, key)) => {
            let s = duration(v, &key)?;
            if s < IRT_MINIMUM_SECS {
                return Err(ConfigError::invalid(
                    key,
                    format!(
                        "{} is below IRT_MINIMUM, {IRT_MINIMUM_SECS} s (RFC 8415 §21.23)",
                        secs(s)
                    ),
                ));
            }
            Some(s)
        }
    };

    let max_rt =
        |field: &str, rv: &Option<RawDuration>, dv: &Option<RawDuration>, rfc: &str| match pick(
            rv,
            dv,
            pk(field),
            &dk(field),
        ) {
            None => Ok(None),
            Some((v, key)) => {
                let s = duration(v, &key)?;
                let (lo, hi) = MAX_RT_RANGE_SECS;
                if !(lo..=hi).contains(&s) {
                    return Err(ConfigError::invalid(
                        key,
                        format!(
                            "{} is out of range; expected {lo} to {hi} s (RFC 8415 {rfc})",
                            secs(s)
                        ),
                    ));
                }
                Ok(Some(s))
            }
        };
    let sol_max_rt = max_rt("sol_max_rt", &l.sol_max_rt, &d.sol_max_rt, "§21.24")?;
    let inf_max_rt = max_rt("inf_max_rt", &l.inf_max_rt, &d.inf_max_rt, "§21.25")?;

    Ok(DhcpOptions {
        dns_servers,
        domain_search,
        information_refresh_time,
        sol_max_rt,
        inf_max_rt,
    })
}

fn reservation(key: &str, r: &RawReservation, subnet: &Ipv6Net) -> Result<Reservation> {
    let dk = format!("{key}.duid");
    let s = r
        .duid
        .as_deref()
        .ok_or_else(|| ConfigError::invalid(&dk, "required key is missing"))?;
    let duid = parse_hex(s).map_err(|r| ConfigError::invalid(&dk, format!("DUID {r}")))?;
    if duid.is_empty() || duid.len() > MAX_DUID_LEN {
        return Err(ConfigError::invalid(
            dk,
            format!(
                "DUID is {} bytes; expected 1 to {MAX_DUID_LEN} (RFC 8415 §11.1)",
                duid.len()
            ),
        ));
    }

    let address = match r.address.as_deref() {
        None => None,
        Some(s) => {
            let k = format!("{key}.address");
            let a = parse_addr(s).map_err(|r| ConfigError::invalid(&k, r))?;
            if !subnet.contains(a) {
                return Err(ConfigError::invalid(
                    k,
                    format!("{a} is outside the link subnet {}", net(subnet)),
                ));
            }
            if subnet.len < 127 && a == subnet.addr {
                return Err(ConfigError::invalid(
                    k,
                    format!("{a} is the Subnet-Router anycast address (RFC 4291 §2.6.1)"),
                ));
            }
            Some(a)
        }
    };
    let prefix = match r.prefix.as_deref() {
        None => None,
        Some(s) => {
            let k = format!("{key}.prefix");
            let p = parse_net(s).map_err(|r| ConfigError::invalid(&k, r))?;
            if p.len == 0 {
                return Err(ConfigError::invalid(k, "a /0 prefix cannot be delegated"));
            }
            check_unicast_net(&p).map_err(|r| ConfigError::invalid(&k, r))?;
            Some(p)
        }
    };
    if address.is_none() && prefix.is_none() {
        return Err(ConfigError::invalid(
            key,
            "a reservation needs an address, a prefix or both",
        ));
    }
    Ok(Reservation {
        duid,
        address,
        prefix,
    })
}

// ---------------------------------------------------------------------------------------------
// Checks across links

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    AddressPool,
    /// A prefix pool, with its delegated length.
    PrefixPool(u8),
}

/// A span of address space with the key it came from.
#[derive(Debug, Clone)]
struct Span {
    start: u128,
    end: u128,
    /// Position in file order, for reporting the later of two overlapping spans.
    seq: usize,
    link: usize,
    kind: Kind,
    key: String,
    what: String,
}

fn net_span(n: &Ipv6Net) -> (u128, u128) {
    let start = u128::from(n.addr);
    let host = u128::MAX.checked_shr(u32::from(n.len)).unwrap_or(0);
    (start, start | host)
}

/// Sorts `spans` by start and returns the first pair found to overlap, later-in-file second.
fn find_overlap(spans: &mut [Span]) -> Option<(&Span, &Span)> {
    spans.sort_by_key(|s| s.start);
    // Sweep keeping the span reaching furthest: any span overlapping an earlier one overlaps it.
    let mut reach = 0;
    for i in 1..spans.len() {
        if spans[i].start <= spans[reach].end {
            let (a, b) = (&spans[reach], &spans[i]);
            return Some(if a.seq <= b.seq { (a, b) } else { (b, a) });
        }
        if spans[i].end > spans[reach].end {
            reach = i;
        }
    }
    None
}

/// In `sorted` (sorted by start, pairwise disjoint), the span overlapping `[start, end]`.
fn overlapping(sorted: &[Span], start: u128, end: u128) -> Option<&Span> {
    let idx = sorted.partition_point(|s| s.start <= end);
    idx.checked_sub(1)
        .map(|i| &sorted[i])
        .filter(|s| s.end >= start)
}

fn cross_checks(raw: &[RawLink], links: &[Link]) -> Result<()> {
    debug_assert_eq!(raw.len(), links.len());

    // Link names, interfaces and Interface-IDs select a link, so each must be unique.
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut ifaces: HashMap<&str, usize> = HashMap::new();
    let mut ids: HashMap<&[u8], String> = HashMap::new();
    for (i, l) in links.iter().enumerate() {
        if let Some(j) = names.insert(&l.name, i) {
            return Err(ConfigError::invalid(
                format!("link[{i}].name"),
                format!("link name \"{}\" is already used by link[{j}]", l.name),
            ));
        }
        if let Some(ifname) = &l.interface {
            if let Some(j) = ifaces.insert(ifname, i) {
                return Err(ConfigError::invalid(
                    format!("link[{i}].interface"),
                    format!("interface \"{ifname}\" already selects link[{j}]; direct clients on it would be ambiguous"),
                ));
            }
        }
        for (k, id) in l.interface_ids.iter().enumerate() {
            let key = format!("link[{i}].interface_ids[{k}]");
            if let Some(other) = ids.get(id.as_slice()) {
                return Err(ConfigError::invalid(
                    key,
                    format!("Interface-ID already selects the link at {other}"),
                ));
            }
            ids.insert(id, key);
        }
    }

    // Subnets: a relay's link-address must select exactly one link (RFC 8415 §13.1).
    let mut subnets: Vec<Span> = links
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let (start, end) = net_span(&l.subnet);
            Span {
                start,
                end,
                seq: i,
                link: i,
                kind: Kind::AddressPool,
                key: format!("link[{i}].subnet"),
                what: net(&l.subnet),
            }
        })
        .collect();
    if let Some((a, b)) = find_overlap(&mut subnets) {
        return Err(ConfigError::invalid(
            &b.key,
            format!(
                "{} overlaps {} at {}; a relay link-address would match both links",
                b.what, a.what, a.key
            ),
        ));
    }

    // Pools: every address or prefix belongs to at most one pool (BRIEF §3 req. 2: a pool is in
    // at most one failover relationship, so overlap is an error, across links too).
    let mut pools = Vec::new();
    for (i, l) in links.iter().enumerate() {
        for (j, p) in l.address_pools.iter().enumerate() {
            let start = u128::from(p.base);
            let end = start + u128::from(p.count - 1);
            pools.push(Span {
                start,
                end,
                seq: pools.len(),
                link: i,
                kind: Kind::AddressPool,
                key: format!("link[{i}].address_pools[{j}]"),
                what: format!("{}-{}", p.base, Ipv6Addr::from(end)),
            });
        }
        for (j, p) in l.prefix_pools.iter().enumerate() {
            // count is 2^(len - pool prefix length), see prefix_pool().
            let pnet = Ipv6Net {
                addr: p.base,
                len: p.len - p.count.trailing_zeros() as u8,
            };
            let (start, end) = net_span(&pnet);
            pools.push(Span {
                start,
                end,
                seq: pools.len(),
                link: i,
                kind: Kind::PrefixPool(p.len),
                key: format!("link[{i}].prefix_pools[{j}]"),
                what: net(&pnet),
            });
        }
    }
    if let Some((a, b)) = find_overlap(&mut pools) {
        return Err(ConfigError::invalid(
            &b.key,
            format!(
                "pool {} overlaps pool {} at {}; a pool may not overlap another",
                b.what, a.what, a.key
            ),
        ));
    }

    // Delegated prefixes are routed to the requesting router, so none may cover an on-link
    // subnet. (Address pools are inside their own subnet, checked when read.)
    for p in pools
        .iter()
        .filter(|p| matches!(p.kind, Kind::PrefixPool(_)))
    {
        if let Some(s) = overlapping(&subnets, p.start, p.end) {
            return Err(ConfigError::invalid(
                format!("{}.prefix", p.key),
                format!("prefix pool {} overlaps the subnet {} at {}; delegated prefixes must not cover an on-link subnet", p.what, s.what, s.key),
            ));
        }
    }

    // Reserved prefixes: each is either exactly one prefix of a prefix pool of its own link, or
    // outside every pool; no two overlap; none covers a subnet.
    let mut reserved = Vec::new();
    for (i, l) in links.iter().enumerate() {
        for (k, r) in l.reservations.iter().enumerate() {
            let Some(p) = r.prefix else { continue };
            let key = format!("link[{i}].reservation[{k}].prefix");
            let (start, end) = net_span(&p);
            if let Some(s) = overlapping(&subnets, start, end) {
                return Err(ConfigError::invalid(
                    key,
                    format!("{} overlaps the subnet {} at {}; delegated prefixes must not cover an on-link subnet", net(&p), s.what, s.key),
                ));
            }
            if let Some(pool) = overlapping(&pools, start, end) {
                let fits = pool.link == i
                    && pool.kind == Kind::PrefixPool(p.len)
                    && pool.start <= start
                    && end <= pool.end;
                if !fits {
                    return Err(ConfigError::invalid(
                        key,
                        format!(
                            "{} overlaps pool {} at {}; a reserved prefix must be outside every \
                             pool or exactly one delegated prefix of a prefix pool of its own link",
                            net(&p),
                            pool.what,
                            pool.key
                        ),
                    ));
                }
            }
            let seq = reserved.len();
            let kind = Kind::PrefixPool(p.len);
            reserved.push(Span {
                start,
                end,
                seq,
                link: i,
                kind,
                key,
                what: net(&p),
            });
        }
    }
    if let Some((a, b)) = find_overlap(&mut reserved) {
        return Err(ConfigError::invalid(
            &b.key,
            format!(
                "reserved prefix {} overlaps reserved prefix {} at {}",
                b.what, a.what, a.key
            ),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Value parsers. They return the reason only; callers attach the key.

fn parse_addr(s: &str) -> std::result::Result<Ipv6Addr, String> {
    s.parse()
        .map_err(|_| format!("\"{s}\" is not an IPv6 address"))
}

/// `addr/len` with no host bits set.
fn parse_net(s: &str) -> std::result::Result<Ipv6Net, String> {
    let Some((a, l)) = s.split_once('/') else {
        return Err(format!(
            "\"{s}\" is not a prefix; expected address/length, e.g. 2001:db8::/48"
        ));
    };
    let addr = parse_addr(a)?;
    let len = l
        .parse::<u8>()
        .ok()
        .filter(|&l| l <= 128)
        .ok_or_else(|| format!("\"{l}\" in \"{s}\" is not a prefix length (0 to 128)"))?;
    let n = Ipv6Net { addr, len };
    let (start, _) = net_span(&n);
    let masked = if len == 0 {
        0
    } else {
        start & (u128::MAX << (128 - u32::from(len)))
    };
    if masked != start {
        return Err(format!(
            "host bits are set in {s}; did you mean {}/{len}?",
            Ipv6Addr::from(masked)
        ));
    }
    Ok(n)
}

/// Rejects prefixes that cannot be handed to clients: multicast (ff00::/8), link-local
/// (fe80::/10), and the unspecified and loopback addresses.
fn check_unicast_net(n: &Ipv6Net) -> std::result::Result<(), String> {
    let (start, end) = net_span(n);
    let special = [
        (
            Ipv6Net {
                addr: Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
                len: 8,
            },
            "multicast",
        ),
        (
            Ipv6Net {
                addr: Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
                len: 10,
            },
            "link-local",
        ),
        (
            Ipv6Net {
                addr: Ipv6Addr::UNSPECIFIED,
                len: 128,
            },
            "the unspecified address",
        ),
        (
            Ipv6Net {
                addr: Ipv6Addr::LOCALHOST,
                len: 128,
            },
            "the loopback address",
        ),
    ];
    for (sp, what) in special {
        let (s2, e2) = net_span(&sp);
        if start <= e2 && s2 <= end {
            return Err(format!(
                "{} covers {what} space ({}); use a global or ULA prefix",
                net(n),
                net(&sp)
            ));
        }
    }
    Ok(())
}

/// Hex bytes, either `00:01:0a` (two digits per colon-separated group) or `00010a` / `0x00010a`.
fn parse_hex(s: &str) -> std::result::Result<Vec<u8>, String> {
    fn digit(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    let bad = |c: char| format!("\"{s}\" contains '{c}', which is not a hex digit");
    if s.contains(':') {
        let mut out = Vec::with_capacity(s.len() / 3 + 1);
        for group in s.split(':') {
            let b = group.as_bytes();
            if b.len() != 2 {
                return Err(format!(
                    "\"{s}\": each colon-separated group must be two hex digits"
                ));
            }
            let hi = digit(b[0]).ok_or_else(|| bad(b[0] as char))?;
            let lo = digit(b[1]).ok_or_else(|| bad(b[1] as char))?;
            out.push(hi << 4 | lo);
        }
        return Ok(out);
    }
    let body = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if let Some(c) = body.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(bad(c));
    }
    if body.len() % 2 != 0 {
        return Err(format!("\"{s}\" has an odd number of hex digits"));
    }
    Ok(body
        .as_bytes()
        .chunks(2)
        .map(|p| (digit(p[0]).unwrap_or(0) << 4) | digit(p[1]).unwrap_or(0))
        .collect())
}

/// An Interface-ID (RFC 8415 §21.18) as the relay sends it: `0x…` is hex, anything else is the
/// bytes of the string itself (what most relays send, e.g. "ge-0/0/1.100").
fn parse_interface_id(s: &str) -> std::result::Result<Vec<u8>, String> {
    let id = if s.starts_with("0x") || s.starts_with("0X") {
        parse_hex(s).map_err(|r| format!("Interface-ID {r}"))?
    } else {
        s.as_bytes().to_vec()
    };
    if id.is_empty() || id.len() > MAX_INTERFACE_ID_LEN {
        return Err(format!(
            "Interface-ID is {} bytes; expected 1 to {MAX_INTERFACE_ID_LEN}",
            id.len()
        ));
    }
    Ok(id)
}

/// A domain name for the search list (RFC 3646 §4, RFC 1035 §2.3.4): labels of 1 to 63
/// letters, digits, '-' (not first or last) or '_', 255 bytes at most in wire form. A trailing
/// dot is accepted and dropped.
fn check_domain(s: &str) -> std::result::Result<String, String> {
    let name = s.strip_suffix('.').unwrap_or(s);
    if name.is_empty() {
        return Err(format!("\"{s}\" is not a domain name"));
    }
    let mut wire_len = 1; // root label
    for label in name.split('.') {
        if label.is_empty() {
            return Err(format!("\"{s}\" has an empty label"));
        }
        if label.len() > 63 {
            return Err(format!(
                "label \"{label}\" in \"{s}\" is {} bytes; at most 63",
                label.len()
            ));
        }
        if !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "label \"{label}\" in \"{s}\" may hold only letters, digits, '-' and '_'"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "label \"{label}\" in \"{s}\" starts or ends with '-'"
            ));
        }
        wire_len += 1 + label.len();
    }
    if wire_len > 255 {
        return Err(format!(
            "\"{s}\" is {wire_len} bytes in wire form; at most 255"
        ));
    }
    Ok(name.to_owned())
}

/// Seconds from an integer or a string such as "90", "90s", "45m", "4h", "7d", "1w", "1h30m" or
/// "infinite" (0xffffffff, RFC 8415 §7.7). Finite values must be below 0xffffffff.
fn duration(d: &RawDuration, key: &str) -> Result<u32> {
    parse_duration(d).map_err(|r| ConfigError::invalid(key, r))
}

fn parse_duration(d: &RawDuration) -> std::result::Result<u32, String> {
    let too_long = || {
        format!(
            "too long; finite times are at most {} s, or write \"infinite\"",
            INFINITE - 1
        )
    };
    let total: u64 = match d {
        RawDuration::Secs(n) => {
            u64::try_from(*n).map_err(|_| format!("{n} is negative; a time must be 0 or more"))?
        }
        RawDuration::Text(t) => {
            let t = t.trim();
            if t == "infinite" || t == "infinity" {
                return Ok(INFINITE);
            }
            let bad = || {
                format!(
                    "\"{t}\" is not a duration; write seconds, e.g. 3600, or a string such as \
                     \"90s\", \"45m\", \"4h\", \"7d\", \"1w\", \"1h30m\" or \"infinite\""
                )
            };
            if t.is_empty() {
                return Err(bad());
            }
            if t.bytes().all(|b| b.is_ascii_digit()) {
                t.parse::<u64>().map_err(|_| too_long())?
            } else {
                let mut total: u64 = 0;
                let mut rest = t;
                while !rest.is_empty() {
                    let n_end = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
                    if n_end == 0 {
                        return Err(bad());
                    }
                    let n: u64 = rest[..n_end].parse().map_err(|_| too_long())?;
                    let unit = match rest.as_bytes()[n_end] {
                        b's' => 1,
                        b'm' => 60,
                        b'h' => 3_600,
                        b'd' => 86_400,
                        b'w' => 604_800,
                        _ => return Err(bad()),
                    };
                    total = n
                        .checked_mul(unit)
                        .and_then(|x| total.checked_add(x))
                        .ok_or_else(too_long)?;
                    rest = &rest[n_end + 1..];
                }
                total
            }
        }
    };
    u32::try_from(total)
        .ok()
        .filter(|&s| s != INFINITE)
        .ok_or_else(too_long)
}

/// "3600 s" or "infinite", for messages.
fn secs(s: u32) -> String {
    if s == INFINITE {
        "infinite".to_owned()
    } else {
        format!("{s} s")
    }
}

fn net(n: &Ipv6Net) -> String {
    format!("{}/{}", n.addr, n.len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease_cfg(extra: &str) -> std::result::Result<LeaseSettings, ConfigError> {
        let text = format!(
            "[server]\ninterfaces = [\"eth0\"]\n{extra}\n[[link]]\nname = \"a\"\nsubnet = \"2001:db8:1::/64\"\n"
        );
        crate::config::parse_str(&text).map(|c| c.server.lease)
    }

    #[test]
    fn lease_settings() {
        assert_eq!(lease_cfg("").unwrap(), LeaseSettings::default());
        let c = lease_cfg(
            "lease_durability = \"group-commit\"\nlease_commit_window_usecs = 0\n\
             max_leases = 100000\npreallocate_leases = 100000",
        )
        .unwrap();
        assert_eq!(
            c.durability,
            LeaseDurability::GroupCommit { window_usecs: 0 }
        );
        assert_eq!((c.max_leases, c.preallocate_leases), (100_000, 100_000));
        assert_eq!(
            lease_cfg("lease_durability = \"group-commit\"")
                .unwrap()
                .durability,
            LeaseDurability::GroupCommit {
                window_usecs: DEFAULT_LEASE_COMMIT_WINDOW_USECS
            }
        );
        let err = |extra: &str| lease_cfg(extra).unwrap_err().to_string();
        assert!(err("lease_durability = \"fsync\"")
            .starts_with("server.lease_durability: unknown mode"));
        assert!(err("lease_commit_window_usecs = 10")
            .starts_with("server.lease_commit_window_usecs: has no effect unless"));
        assert!(
            err("lease_durability = \"group-commit\"\nlease_commit_window_usecs = 100001")
                .starts_with("server.lease_commit_window_usecs: 100001 is out of range")
        );
        assert!(err("max_leases = 10").starts_with("server.max_leases: 10 is out of range"));
        assert!(err("max_leases = 4294967296").starts_with("server.max_leases:"));
        assert!(err("max_leases = 2000\npreallocate_leases = 2001")
            .starts_with("server.preallocate_leases: 2001 is out of range"));
        assert!(err("preallocate_leases = -1").starts_with("server.preallocate_leases:"));
        assert_eq!(
            lease_cfg("lease_file_growth = 1").unwrap().file_growth,
            LEASE_FILE_GROWTH_UNIT
        );
        assert_eq!(
            lease_cfg("lease_file_growth = 4097").unwrap().file_growth,
            2 * LEASE_FILE_GROWTH_UNIT
        );
        assert!(err("lease_file_growth = 0").starts_with("server.lease_file_growth: 0 is out"));
    }

    #[test]
    fn durations() {
        let t = |s: &str| parse_duration(&RawDuration::Text(s.to_owned()));
        assert_eq!(t("90"), Ok(90));
        assert_eq!(t("90s"), Ok(90));
        assert_eq!(t("1h30m"), Ok(5_400));
        assert_eq!(t("7d"), Ok(604_800));
        assert_eq!(t("1w1s"), Ok(604_801));
        assert_eq!(t("infinite"), Ok(INFINITE));
        assert!(t("").is_err());
        assert!(t("h").is_err());
        assert!(t("10x").is_err());
        assert!(t("10").is_ok());
        assert!(t("1h 30m").is_err());
        assert!(t("99999999999999999999999s").is_err());
        assert!(t("100000w").is_err());
        assert_eq!(parse_duration(&RawDuration::Secs(0)), Ok(0));
        assert!(parse_duration(&RawDuration::Secs(-1)).is_err());
        assert!(parse_duration(&RawDuration::Secs(i64::from(INFINITE))).is_err());
        assert_eq!(
            parse_duration(&RawDuration::Secs(i64::from(INFINITE) - 1)),
            Ok(INFINITE - 1)
        );
    }

    #[test]
    fn hex() {
        assert_eq!(parse_hex("00:01:0a"), Ok(vec![0, 1, 10]));
        assert_eq!(parse_hex("00010A"), Ok(vec![0, 1, 10]));
        assert_eq!(parse_hex("0x0a0b"), Ok(vec![10, 11]));
        assert!(parse_hex("0:1").is_err());
        assert!(parse_hex("001").is_err());
        assert!(parse_hex("00:zz").is_err());
        assert!(parse_hex("0g").is_err());
        assert_eq!(
            parse_interface_id("ge-0/0/1.100"),
            Ok(b"ge-0/0/1.100".to_vec())
        );
        assert_eq!(parse_interface_id("0x0a0b"), Ok(vec![10, 11]));
        assert!(parse_interface_id("").is_err());
    }

    #[test]
    fn nets() {
        assert_eq!(parse_net("2001:db8::/32").unwrap().len, 32);
        assert!(parse_net("2001:db8::1/64")
            .unwrap_err()
            .contains("did you mean 2001:db8::/64"));
        assert!(parse_net("2001:db8::").is_err());
        assert!(parse_net("2001:db8::/129").is_err());
        assert!(parse_net("::/0").is_ok());
        assert!(check_unicast_net(&parse_net("ff02::/16").unwrap()).is_err());
        assert!(check_unicast_net(&parse_net("fe80::/64").unwrap()).is_err());
        assert!(check_unicast_net(&parse_net("::/1").unwrap()).is_err());
        assert!(check_unicast_net(&parse_net("fd00::/8").unwrap()).is_ok());
    }

    #[test]
    fn domains() {
        assert_eq!(check_domain("example.com."), Ok("example.com".to_owned()));
        assert!(check_domain("a..b").is_err());
        assert!(check_domain(".").is_err());
        assert!(check_domain("-a.b").is_err());
        assert!(check_domain("a b.c").is_err());
        assert!(check_domain(&format!("{}.com", "a".repeat(64))).is_err());
        let long = vec!["a".repeat(63); 4].join(".");
        assert!(check_domain(&long).is_err()); // 4 * 64 + 1 = 257 bytes
        let ok = vec!["a".repeat(62); 4].join(".");
        assert!(check_domain(&ok).is_ok()); // 4 * 63 + 1 = 253 bytes
    }
}
