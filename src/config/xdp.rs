//! `[xdp]`: settings of the XDP/AF_XDP backend, read as written ([`RawXdp`]) and validated into
//! [`XdpSettings`]. Every key is optional; the defaults suit one NIC queue per core. The
//! section is read whatever `server.backend` says, so a typo is caught before the day the
//! backend changes.
//!
//! Kept apart from `validate.rs` so the backend's settings can change without touching the
//! rest of the configuration.

use serde::Deserialize;

use super::ConfigError;

type Result<T> = std::result::Result<T, ConfigError>;

/// `[xdp]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawXdp {
    pub queues: Option<RawQueues>,
    pub frame_size: Option<i64>,
    pub frame_count: Option<i64>,
    pub fill_ring: Option<i64>,
    pub completion_ring: Option<i64>,
    pub rx_ring: Option<i64>,
    pub tx_ring: Option<i64>,
    pub batch_size: Option<i64>,
    pub zero_copy: Option<String>,
    pub attach_mode: Option<String>,
    pub rx_checksum: Option<String>,
    pub busy_poll: Option<bool>,
    pub busy_poll_usecs: Option<i64>,
    pub busy_poll_budget: Option<i64>,
    pub idle_spin_usecs: Option<i64>,
    pub cpus: Option<Vec<i64>>,
    pub replace_foreign_program: Option<bool>,
}

/// `queues = "all"` or `queues = [0, 1]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawQueues {
    Word(String),
    List(Vec<i64>),
}

/// Whether AF_XDP sockets bind in zero-copy mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ZeroCopyPolicy {
    /// Try zero-copy, fall back to copy mode (veth, drivers without AF_XDP zero-copy).
    #[default]
    Auto,
    /// Zero-copy or refuse to start.
    Require,
    /// Copy mode only.
    Off,
}

/// How the XDP program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpAttachMode {
    /// Native (driver) mode, falling back to generic (SKB) mode with a log line.
    #[default]
    Auto,
    /// Native mode or refuse to start.
    Native,
    /// Generic (SKB) mode: works on any interface, slower.
    Generic,
}

/// What the workers do with the UDP checksum of a received request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RxChecksumPolicy {
    /// Verify it; drop (and count as `io_bad_checksum`) a wrong or zero one (RFC 8200 §8.1).
    #[default]
    Verify,
    /// Accept any checksum. Only for senders that leave checksums to an offload that never
    /// happens on the XDP path (veth peers with `tx` offload on).
    Ignore,
}

/// Busy polling of the AF_XDP sockets (SO_PREFER_BUSY_POLL, SO_BUSY_POLL, SO_BUSY_POLL_BUDGET).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyPollSettings {
    pub usecs: u32,
    pub budget: u32,
}

/// The typed `[xdp]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpSettings {
    /// Queues to bind on every interface; `None` binds every RX queue.
    pub queues: Option<Vec<u32>>,
    /// UMEM frame size: 2048 or 4096 bytes.
    pub frame_size: u32,
    /// UMEM frames per socket (power of two).
    pub frame_count: u32,
    pub fill_ring: u32,
    pub completion_ring: u32,
    pub rx_ring: u32,
    pub tx_ring: u32,
    /// Frames a worker takes off an RX ring at once.
    pub batch_size: usize,
    pub zero_copy: ZeroCopyPolicy,
    pub attach_mode: XdpAttachMode,
    pub rx_checksum: RxChecksumPolicy,
    pub busy_poll: Option<BusyPollSettings>,
    /// How long an idle worker watches its RX rings before it sleeps in `poll()` (0: never).
    pub idle_spin_usecs: u32,
    /// CPUs to pin workers to, in order; empty means every CPU the process may use.
    pub cpus: Vec<usize>,
    /// Detach any XDP program found on a served interface, not only a stale one of ours.
    pub replace_foreign_program: bool,
}

/// Default ring sizes: 2048 entries each, 4096 frames of 2048 bytes (8 MiB) per socket.
pub const DEFAULT_XDP_RING: u32 = 2048;
pub const DEFAULT_XDP_FRAME_COUNT: u32 = 4096;
pub const DEFAULT_XDP_FRAME_SIZE: u32 = 2048;
pub const DEFAULT_XDP_BATCH: usize = 64;
/// An idle worker spins this long on its RX rings before it sleeps (`xdp.idle_spin_usecs`).
pub const DEFAULT_XDP_IDLE_SPIN_USECS: u32 = 50;
/// Largest `batch_size` (the workers' descriptor arrays are this long).
pub const MAX_XDP_BATCH: usize = 256;
/// Ring and UMEM sizes: powers of two in this range.
pub const XDP_RING_RANGE: (u32, u32) = (64, 1 << 16);
/// Highest queue index accepted (far above any NIC's queue count).
pub const MAX_XDP_QUEUE: u32 = 4095;

impl Default for XdpSettings {
    fn default() -> Self {
        XdpSettings {
            queues: None,
            frame_size: DEFAULT_XDP_FRAME_SIZE,
            frame_count: DEFAULT_XDP_FRAME_COUNT,
            fill_ring: DEFAULT_XDP_RING,
            completion_ring: DEFAULT_XDP_RING,
            rx_ring: DEFAULT_XDP_RING,
            tx_ring: DEFAULT_XDP_RING,
            batch_size: DEFAULT_XDP_BATCH,
            zero_copy: ZeroCopyPolicy::Auto,
            attach_mode: XdpAttachMode::Auto,
            rx_checksum: RxChecksumPolicy::Verify,
            busy_poll: None,
            idle_spin_usecs: DEFAULT_XDP_IDLE_SPIN_USECS,
            cpus: Vec::new(),
            replace_foreign_program: false,
        }
    }
}

fn ring(key: &str, v: Option<i64>, default: u32) -> Result<u32> {
    let Some(v) = v else { return Ok(default) };
    let (lo, hi) = XDP_RING_RANGE;
    u32::try_from(v)
        .ok()
        .filter(|v| v.is_power_of_two() && (lo..=hi).contains(v))
        .ok_or_else(|| {
            ConfigError::invalid(
                format!("xdp.{key}"),
                format!("{v} is not a power of two from {lo} to {hi} (AF_XDP ring sizes must be)"),
            )
        })
}

fn word<T: Copy>(key: &str, v: Option<&str>, choices: &[(&str, T)], default: T) -> Result<T> {
    let Some(v) = v else { return Ok(default) };
    choices
        .iter()
        .find(|(name, _)| *name == v)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<String> = choices.iter().map(|(n, _)| format!("\"{n}\"")).collect();
            ConfigError::invalid(
                format!("xdp.{key}"),
                format!("unknown value \"{v}\"; expected {}", names.join(", ")),
            )
        })
}

pub(crate) fn validate(raw: Option<RawXdp>) -> Result<XdpSettings> {
    let raw = raw.unwrap_or_default();
    let d = XdpSettings::default();

    let queues = match raw.queues {
        None => None,
        Some(RawQueues::Word(w)) if w == "all" => None,
        Some(RawQueues::Word(w)) => {
            return Err(ConfigError::invalid(
                "xdp.queues",
                format!("\"{w}\" is not \"all\" or a list of queue numbers such as [0, 1]"),
            ))
        }
        Some(RawQueues::List(list)) => {
            if list.is_empty() {
                return Err(ConfigError::invalid(
                    "xdp.queues",
                    "an empty list binds nothing; leave the key out (or write \"all\") to bind every queue",
                ));
            }
            let mut out: Vec<u32> = Vec::with_capacity(list.len());
            for (i, q) in list.iter().enumerate() {
                let key = format!("xdp.queues[{i}]");
                let q = u32::try_from(*q)
                    .ok()
                    .filter(|q| *q <= MAX_XDP_QUEUE)
                    .ok_or_else(|| {
                        ConfigError::invalid(
                            &key,
                            format!("{q} is not a queue number (0 to {MAX_XDP_QUEUE})"),
                        )
                    })?;
                if out.contains(&q) {
                    return Err(ConfigError::invalid(
                        key,
                        format!("queue {q} is listed twice"),
                    ));
                }
                out.push(q);
            }
            Some(out)
        }
    };

    let frame_size = match raw.frame_size {
        None => d.frame_size,
        Some(v @ (2048 | 4096)) => v as u32,
        Some(v) => {
            return Err(ConfigError::invalid(
                "xdp.frame_size",
                format!("{v} is not a supported UMEM frame size; expected 2048 or 4096"),
            ))
        }
    };
    let frame_count = ring("frame_count", raw.frame_count, d.frame_count)?;
    let fill_ring = ring("fill_ring", raw.fill_ring, d.fill_ring)?;
    let completion_ring = ring("completion_ring", raw.completion_ring, d.completion_ring)?;
    let rx_ring = ring("rx_ring", raw.rx_ring, d.rx_ring)?;
    let tx_ring = ring("tx_ring", raw.tx_ring, d.tx_ring)?;
    if fill_ring > frame_count {
        return Err(ConfigError::invalid(
            "xdp.fill_ring",
            format!("{fill_ring} exceeds xdp.frame_count ({frame_count}): the fill ring can never be full"),
        ));
    }
    // 1 GiB per socket is far beyond any sensible setting and would pin that much memory.
    if u64::from(frame_size) * u64::from(frame_count) > 1 << 30 {
        return Err(ConfigError::invalid(
            "xdp.frame_count",
            format!(
                "{frame_count} frames of {frame_size} bytes is more than 1 GiB of locked memory per socket"
            ),
        ));
    }

    let batch_size = match raw.batch_size {
        None => d.batch_size,
        Some(b) => usize::try_from(b)
            .ok()
            .filter(|b| (1..=MAX_XDP_BATCH).contains(b))
            .ok_or_else(|| {
                ConfigError::invalid(
                    "xdp.batch_size",
                    format!("{b} is out of range; expected 1 to {MAX_XDP_BATCH}"),
                )
            })?,
    };

    let zero_copy = word(
        "zero_copy",
        raw.zero_copy.as_deref(),
        &[
            ("auto", ZeroCopyPolicy::Auto),
            ("require", ZeroCopyPolicy::Require),
            ("off", ZeroCopyPolicy::Off),
        ],
        d.zero_copy,
    )?;
    let attach_mode = word(
        "attach_mode",
        raw.attach_mode.as_deref(),
        &[
            ("auto", XdpAttachMode::Auto),
            ("native", XdpAttachMode::Native),
            ("generic", XdpAttachMode::Generic),
        ],
        d.attach_mode,
    )?;
    let rx_checksum = word(
        "rx_checksum",
        raw.rx_checksum.as_deref(),
        &[
            ("verify", RxChecksumPolicy::Verify),
            ("ignore", RxChecksumPolicy::Ignore),
        ],
        d.rx_checksum,
    )?;

    let usecs = match raw.busy_poll_usecs {
        None => 20,
        Some(u) => u32::try_from(u)
            .ok()
            .filter(|u| (1..=1_000_000).contains(u))
            .ok_or_else(|| {
                ConfigError::invalid(
                    "xdp.busy_poll_usecs",
                    format!("{u} is out of range; expected 1 to 1000000 microseconds"),
                )
            })?,
    };
    let budget = match raw.busy_poll_budget {
        None => 64,
        Some(b) => u32::try_from(b)
            .ok()
            .filter(|b| (1..=1024).contains(b))
            .ok_or_else(|| {
                ConfigError::invalid(
                    "xdp.busy_poll_budget",
                    format!("{b} is out of range; expected 1 to 1024 packets"),
                )
            })?,
    };
    let idle_spin_usecs = match raw.idle_spin_usecs {
        None => d.idle_spin_usecs,
        Some(u) => u32::try_from(u)
            .ok()
            .filter(|u| *u <= 10_000)
            .ok_or_else(|| {
                ConfigError::invalid(
                    "xdp.idle_spin_usecs",
                    format!("{u} is out of range; expected 0 to 10000 microseconds"),
                )
            })?,
    };
    let busy_poll = match raw.busy_poll {
        Some(true) => Some(BusyPollSettings { usecs, budget }),
        Some(false) | None => {
            if raw.busy_poll_usecs.is_some() || raw.busy_poll_budget.is_some() {
                let key = if raw.busy_poll_usecs.is_some() {
                    "xdp.busy_poll_usecs"
                } else {
                    "xdp.busy_poll_budget"
                };
                return Err(ConfigError::invalid(
                    key,
                    "has no effect unless xdp.busy_poll = true",
                ));
            }
            None
        }
    };

    let mut cpus = Vec::new();
    for (i, c) in raw.cpus.unwrap_or_default().iter().enumerate() {
        let key = format!("xdp.cpus[{i}]");
        let c = usize::try_from(*c)
            .ok()
            .filter(|c| *c < 4096)
            .ok_or_else(|| {
                ConfigError::invalid(&key, format!("{c} is not a CPU number (0 to 4095)"))
            })?;
        if cpus.contains(&c) {
            return Err(ConfigError::invalid(
                key,
                format!("CPU {c} is listed twice"),
            ));
        }
        cpus.push(c);
    }

    Ok(XdpSettings {
        queues,
        frame_size,
        frame_count,
        fill_ring,
        completion_ring,
        rx_ring,
        tx_ring,
        batch_size,
        zero_copy,
        attach_mode,
        rx_checksum,
        busy_poll,
        idle_spin_usecs,
        cpus,
        replace_foreign_program: raw.replace_foreign_program.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use crate::config::parse_str;

    const BASE: &str = r#"
[server]
interfaces = ["eth0"]
[[link]]
name = "lan"
subnet = "2001:db8:1::/64"
interface = "eth0"
address_pools = [{ first = "2001:db8:1::1000", last = "2001:db8:1::1fff" }]
"#;

    fn with(xdp: &str) -> Result<super::XdpSettings, String> {
        parse_str(&format!("{BASE}\n[xdp]\n{xdp}\n"))
            .map(|c| c.xdp)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_full_section() {
        assert_eq!(parse_str(BASE).unwrap().xdp, super::XdpSettings::default());
        let x = with(
            "queues = [0, 2]\nframe_size = 4096\nframe_count = 8192\nrx_ring = 1024\n\
             zero_copy = \"off\"\nattach_mode = \"generic\"\nrx_checksum = \"ignore\"\n\
             busy_poll = true\nbusy_poll_usecs = 50\ncpus = [1]\nbatch_size = 32\n\
             idle_spin_usecs = 0",
        )
        .unwrap();
        assert_eq!(x.queues, Some(vec![0, 2]));
        assert_eq!((x.frame_size, x.frame_count, x.rx_ring), (4096, 8192, 1024));
        assert_eq!(x.zero_copy, super::ZeroCopyPolicy::Off);
        assert_eq!(x.attach_mode, super::XdpAttachMode::Generic);
        assert_eq!(x.rx_checksum, super::RxChecksumPolicy::Ignore);
        assert_eq!(
            x.busy_poll,
            Some(super::BusyPollSettings {
                usecs: 50,
                budget: 64
            })
        );
        assert_eq!(x.idle_spin_usecs, 0);
        assert_eq!(with("queues = \"all\"").unwrap().queues, None);
    }

    #[test]
    fn errors_name_the_key() {
        for (text, key) in [
            ("frame_size = 3000", "xdp.frame_size:"),
            ("idle_spin_usecs = 10001", "xdp.idle_spin_usecs:"),
            ("idle_spin_usecs = -1", "xdp.idle_spin_usecs:"),
            ("rx_ring = 1000", "xdp.rx_ring:"),
            ("fill_ring = 8192", "xdp.fill_ring:"),
            ("queues = []", "xdp.queues:"),
            ("queues = [0, 0]", "xdp.queues[1]:"),
            ("queues = \"some\"", "xdp.queues:"),
            ("zero_copy = \"yes\"", "xdp.zero_copy:"),
            ("attach_mode = \"hw\"", "xdp.attach_mode:"),
            ("rx_checksum = \"drop\"", "xdp.rx_checksum:"),
            ("batch_size = 0", "xdp.batch_size:"),
            ("busy_poll_usecs = 10", "xdp.busy_poll_usecs:"),
            ("cpus = [-1]", "xdp.cpus[0]:"),
            ("ring = 64", "xdp.ring"),
        ] {
            let e = with(text).expect_err(text);
            assert!(e.starts_with(key), "{text}: {e}");
        }
    }
}
