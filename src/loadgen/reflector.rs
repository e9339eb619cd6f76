//! The in-kernel reference responder (`ebpf/xdp_reflector.c`, `xdhcp6-bench respond
//! --xdp-iface IFACE --xdp-reflect`): an XDP program that answers Solicit with Advertise and
//! Request with Reply by rewriting the frame and sending it back with XDP_TX. No socket, no
//! copy to user space and no lease state: the fastest responder this machine can have, so a
//! run against it measures the generator. See the C file for what it answers and how.

use std::io;

use aya::maps::{Array, PerCpuArray};
use aya::{Ebpf, EbpfLoader};

use crate::io::xdp::InterfaceInfo;

use super::pool::NaPool;
use super::xdp::{attach_program, mode_name, other};

/// Name of the program function in `ebpf/xdp_reflector.c`.
pub const PROGRAM_NAME: &str = "xdp_reflector";

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdp_reflector.o"));

/// Longest Server ID the program copies (`MAX_DUID` in the C file).
pub const MAX_SERVER_ID: usize = 128;

/// `struct config` of the C file, byte for byte: mac[6], pad[2], src_ip[16], pool[16],
/// host_mask[16], then t1, t2, preferred, valid, server_id_len (host-order u32), server_id.
const CONFIG_LEN: usize = 8 + 16 * 3 + 4 * 5 + MAX_SERVER_ID;

/// Lifetimes the reflector grants (T1 ≤ T2, preferred ≤ valid: RFC 8415 §21.4).
pub const LIFETIMES: [u32; 4] = [1000, 2000, 3000, 4000];

/// Counter slots (`enum counter` in the C file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    pub advertise: u64,
    pub reply: u64,
    pub passed: u64,
    pub malformed: u64,
    /// Requests whose frame could not be grown to the reply (no tailroom).
    pub no_room: u64,
}

/// The bytes of `struct config`.
pub fn config_bytes(
    mac: [u8; 6],
    src_ip: std::net::Ipv6Addr,
    pool: &NaPool,
    server_id: &[u8],
) -> io::Result<[u8; CONFIG_LEN]> {
    if server_id.is_empty() || server_id.len() > MAX_SERVER_ID {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "Server ID of {} bytes (1..={MAX_SERVER_ID})",
                server_id.len()
            ),
        ));
    }
    let mut c = [0u8; CONFIG_LEN];
    c[..6].copy_from_slice(&mac);
    c[8..24].copy_from_slice(&src_ip.octets());
    c[24..40].copy_from_slice(&pool.base.octets());
    let mask = if pool.len >= 128 {
        0
    } else {
        u128::MAX >> pool.len
    };
    c[40..56].copy_from_slice(&mask.to_be_bytes());
    let mut at = 56;
    for v in LIFETIMES.into_iter().chain([server_id.len() as u32]) {
        c[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        at += 4;
    }
    c[at..at + server_id.len()].copy_from_slice(server_id);
    Ok(c)
}

/// The program attached to an interface; dropping it detaches it.
pub struct Reflector {
    ebpf: Ebpf,
    native: bool,
}

impl Reflector {
    /// Load, configure and attach (native mode, else generic) to `iface`, answering from its
    /// MAC and first link-local address with addresses from `pool`.
    pub fn attach(iface: &InterfaceInfo, pool: &NaPool, server_id: &[u8]) -> io::Result<Self> {
        let src = *iface.link_local.first().ok_or_else(|| {
            other(format!(
                "{} has no link-local address to answer from",
                iface.name
            ))
        })?;
        let cfg = config_bytes(iface.mac, src, pool, server_id)?;
        let mut ebpf = EbpfLoader::new().load(OBJECT).map_err(other)?;
        {
            let map = ebpf
                .map_mut("config")
                .ok_or_else(|| other("object has no map config"))?;
            let mut arr: Array<_, [u8; CONFIG_LEN]> = Array::try_from(map).map_err(other)?;
            arr.set(0, cfg, 0).map_err(other)?;
        }
        let native = attach_program(&mut ebpf, PROGRAM_NAME, iface.index)?;
        Ok(Reflector { ebpf, native })
    }

    pub fn attach_mode(&self) -> &'static str {
        mode_name(self.native)
    }

    pub fn counters(&self) -> Counters {
        let sum = |slot: u32| -> u64 {
            self.ebpf
                .map("counters")
                .and_then(|m| PerCpuArray::<_, u64>::try_from(m).ok())
                .and_then(|a| a.get(&slot, 0).ok())
                .map_or(0, |v| v.iter().sum())
        };
        Counters {
            advertise: sum(0),
            reply: sum(1),
            passed: sum(2),
            malformed: sum(3),
            no_room: sum(4),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_layout_matches_the_c_struct() {
        let pool: NaPool = "2001:db8:1::/64".parse().unwrap();
        let c = config_bytes(
            [2, 0, 0, 0, 0, 1],
            "fe80::1".parse().unwrap(),
            &pool,
            &[0, 3, 0, 1, 2, 0xff],
        )
        .unwrap();
        assert_eq!(c.len(), 204, "sizeof(struct config)");
        assert_eq!(&c[..6], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(c[8], 0xfe);
        assert_eq!(&c[24..28], &[0x20, 0x01, 0x0d, 0xb8]);
        assert_eq!(&c[40..48], &[0; 8], "network bits");
        assert_eq!(&c[48..56], &[0xff; 8], "host bits");
        assert_eq!(u32::from_ne_bytes(c[56..60].try_into().unwrap()), 1000);
        assert_eq!(u32::from_ne_bytes(c[72..76].try_into().unwrap()), 6);
        assert_eq!(&c[76..82], &[0, 3, 0, 1, 2, 0xff]);
        assert!(config_bytes([0; 6], "fe80::1".parse().unwrap(), &pool, &[]).is_err());
        assert!(config_bytes([0; 6], "fe80::1".parse().unwrap(), &pool, &[1; 129]).is_err());
    }
}
