//! The configuration file exactly as written: serde structs mirroring the TOML, with unknown
//! keys rejected. Nothing here is checked beyond TOML types; [`super::validate`] turns these into
//! the typed [`super::Config`].
//!
//! Every field is an `Option` (or a defaulted `Vec`) so that a missing key is reported by
//! validation with its full key path, the same way as every other mistake.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub server: Option<RawServer>,
    pub defaults: Option<RawDefaults>,
    #[serde(default)]
    pub link: Vec<RawLink>,
    pub xdp: Option<super::xdp::RawXdp>,
}

/// `[server]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub interfaces: Option<Vec<String>>,
    pub backend: Option<String>,
    pub workers: Option<i64>,
    pub duid_file: Option<String>,
    pub lease_file: Option<String>,
    pub control_socket: Option<String>,
    pub control_group: Option<String>,
    pub metrics_listen: Option<String>,
    pub decline_quarantine: Option<RawDuration>,
    pub lease_durability: Option<String>,
    pub lease_commit_window_usecs: Option<i64>,
    pub max_leases: Option<i64>,
    pub preallocate_leases: Option<i64>,
    pub lease_file_growth: Option<i64>,
}

/// `[defaults]`: per-link settings inherited by every `[[link]]` that does not set them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDefaults {
    pub preferred_lifetime: Option<RawDuration>,
    pub valid_lifetime: Option<RawDuration>,
    pub t1: Option<RawDuration>,
    pub t2: Option<RawDuration>,
    pub rapid_commit: Option<bool>,
    pub preference: Option<i64>,
    pub options: Option<RawOptions>,
}

/// `[[link]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLink {
    pub name: Option<String>,
    pub subnet: Option<String>,
    pub interface: Option<String>,
    #[serde(default)]
    pub interface_ids: Vec<String>,
    #[serde(default)]
    pub address_pools: Vec<RawAddressPool>,
    #[serde(default)]
    pub prefix_pools: Vec<RawPrefixPool>,
    pub preferred_lifetime: Option<RawDuration>,
    pub valid_lifetime: Option<RawDuration>,
    pub t1: Option<RawDuration>,
    pub t2: Option<RawDuration>,
    pub rapid_commit: Option<bool>,
    pub preference: Option<i64>,
    pub options: Option<RawOptions>,
    #[serde(default)]
    pub reservation: Vec<RawReservation>,
}

/// `{ first = "...", last = "..." }` in `address_pools`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAddressPool {
    pub first: Option<String>,
    pub last: Option<String>,
}

/// `{ prefix = "...", delegated_length = N }` in `prefix_pools`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPrefixPool {
    pub prefix: Option<String>,
    pub delegated_length: Option<i64>,
}

/// `[defaults.options]` and `[link.options]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOptions {
    pub dns_servers: Option<Vec<String>>,
    pub domain_search: Option<Vec<String>>,
    pub information_refresh_time: Option<RawDuration>,
    pub sol_max_rt: Option<RawDuration>,
    pub inf_max_rt: Option<RawDuration>,
}

/// `[[link.reservation]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReservation {
    pub duid: Option<String>,
    pub address: Option<String>,
    pub prefix: Option<String>,
}

/// A time span as written: an integer number of seconds, or a string such as `"4h"`, `"1h30m"`
/// or `"infinite"`. Parsed (and range-checked) during validation so the error names the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RawDuration {
    Secs(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "seconds as an integer, or a duration string such as \"4h\" or \"infinite\"",
                )
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawDuration, E> {
                Ok(RawDuration::Secs(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawDuration, E> {
                Ok(RawDuration::Secs(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDuration, E> {
                Ok(RawDuration::Text(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}
