//! The server's DUID (RFC 8415 §11): generated once, written to disk, and reused for the life
//! of the installation, because clients and relays remember it.
//!
//! A new DUID is DUID-LLT (§11.2) from the first configured interface's MAC address when there
//! is one, else DUID-UUID (RFC 6355) from random bytes. The file holds the DUID as
//! colon-separated hex on one line, so an operator can read it or pin a DUID by hand.

use std::io::{self, Read};
use std::path::Path;

use crate::config::Config;

use super::sys;

/// DUID-LLT times count seconds from 2000-01-01T00:00:00Z (RFC 8415 §11.2).
pub const DUID_TIME_EPOCH_UNIX: u64 = 946_684_800;
/// A DUID is 2 bytes of type and at most 128 bytes of data (RFC 8415 §11.1).
pub const DUID_LEN_MAX: usize = 130;
const DUID_TYPE_LLT: u16 = 1;
const DUID_TYPE_UUID: u16 = 4;
/// Hardware type 1 (Ethernet), from the IANA ARP hardware types.
const HW_TYPE_ETHERNET: u16 = 1;

/// DUID-LLT for an Ethernet MAC at `now_unix_secs`.
pub fn llt(mac: [u8; 6], now_unix_secs: u64) -> Vec<u8> {
    // The field is 32 bits: "modulo 2^32" (RFC 8415 §11.2).
    let t = (now_unix_secs.saturating_sub(DUID_TIME_EPOCH_UNIX) & 0xffff_ffff) as u32;
    let mut d = Vec::with_capacity(14);
    d.extend_from_slice(&DUID_TYPE_LLT.to_be_bytes());
    d.extend_from_slice(&HW_TYPE_ETHERNET.to_be_bytes());
    d.extend_from_slice(&t.to_be_bytes());
    d.extend_from_slice(&mac);
    d
}

/// DUID-UUID (RFC 6355) from 16 random bytes, marked as a version-4 UUID (RFC 9562 §5.4).
pub fn uuid(mut random: [u8; 16]) -> Vec<u8> {
    random[6] = (random[6] & 0x0f) | 0x40;
    random[8] = (random[8] & 0x3f) | 0x80;
    let mut d = Vec::with_capacity(18);
    d.extend_from_slice(&DUID_TYPE_UUID.to_be_bytes());
    d.extend_from_slice(&random);
    d
}

/// Read the DUID from `path`, or create one there (DUID-LLT from `mac`, else DUID-UUID) and
/// write it atomically. A file that exists but does not hold a valid DUID is an error rather
/// than silently replaced: a server whose DUID changes strands every client bound to it.
pub fn load_or_create(
    path: &Path,
    now_unix_secs: u64,
    mac: Option<[u8; 6]>,
) -> io::Result<Vec<u8>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            return parse(&text).map_err(|why| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {why}", path.display()),
                )
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let duid = match mac {
        Some(mac) => llt(mac, now_unix_secs),
        None => uuid(random_bytes()?),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    super::write_atomically(path, format!("{}\n", format_hex(&duid)).as_bytes())?;
    Ok(duid)
}

/// [`load_or_create`] at `config.server.duid_file`, with the MAC of the first configured
/// interface that has one.
pub fn for_config(config: &Config, now_unix_secs: u64) -> io::Result<Vec<u8>> {
    let mac = config
        .server
        .interfaces
        .iter()
        .find_map(|name| sys::ethernet_address(name).ok().flatten());
    load_or_create(&config.server.duid_file, now_unix_secs, mac)
}

fn random_bytes() -> io::Result<[u8; 16]> {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b)
}

/// `00:01:00:01:...` lower-case hex.
pub fn format_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Parse colon-separated hex (surrounding whitespace ignored) into a DUID and check its size.
pub fn parse(text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim();
    let mut duid = Vec::new();
    for part in text.split(':') {
        if part.len() != 2 {
            return Err(format!(
                "expected colon-separated hex bytes, found {part:?}"
            ));
        }
        let b = u8::from_str_radix(part, 16).map_err(|_| format!("not a hex byte: {part:?}"))?;
        duid.push(b);
    }
    // Type plus at least one byte of data, and no more than 128 bytes of data.
    if duid.len() < 3 || duid.len() > DUID_LEN_MAX {
        return Err(format!(
            "a DUID is 3 to {DUID_LEN_MAX} bytes, found {}",
            duid.len()
        ));
    }
    Ok(duid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("xdhcp6-duid-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("sub").join("duid")
    }

    #[test]
    fn llt_layout() {
        let d = llt([2, 0, 0, 0, 0, 1], DUID_TIME_EPOCH_UNIX + 0x0102_0304);
        assert_eq!(d, [0, 1, 0, 1, 1, 2, 3, 4, 2, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn uuid_layout() {
        let d = uuid([0xff; 16]);
        assert_eq!(d.len(), 18);
        assert_eq!(&d[..2], &[0, 4]);
        assert_eq!(d[2 + 6] >> 4, 4);
        assert_eq!(d[2 + 8] >> 6, 2);
    }

    #[test]
    fn created_once_then_reused() {
        let p = temp_path("reuse");
        let a = load_or_create(&p, DUID_TIME_EPOCH_UNIX + 5, Some([2, 0, 0, 0, 0, 9])).unwrap();
        let b = load_or_create(&p, DUID_TIME_EPOCH_UNIX + 999, Some([2, 0, 0, 0, 0, 7])).unwrap();
        assert_eq!(a, b, "the DUID never changes once written");
        assert_eq!(std::fs::read_to_string(&p).unwrap().trim(), format_hex(&a));
        let _ = std::fs::remove_dir_all(p.parent().unwrap().parent().unwrap());
    }

    #[test]
    fn uuid_without_mac() {
        let p = temp_path("uuid");
        let a = load_or_create(&p, 0, None).unwrap();
        assert_eq!(&a[..2], &[0, 4]);
        assert_eq!(load_or_create(&p, 0, None).unwrap(), a);
        let _ = std::fs::remove_dir_all(p.parent().unwrap().parent().unwrap());
    }

    #[test]
    fn corrupt_file_is_an_error_not_replaced() {
        let p = temp_path("corrupt");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "zz:01\n").unwrap();
        let e = load_or_create(&p, 0, None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "zz:01\n");
        let _ = std::fs::remove_dir_all(p.parent().unwrap().parent().unwrap());
    }

    #[test]
    fn parse_limits() {
        assert!(parse("00:01").is_err());
        assert!(parse(&format_hex(&[0u8; 131])).is_err());
        assert_eq!(parse(" 00:04:ab \n").unwrap(), vec![0, 4, 0xab]);
    }
}
