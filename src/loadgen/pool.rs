//! The pools replies are checked against (`--pool`, `--pd-pool`), and the compact encoding of a
//! lease as `(pool index, offset)` that the client table and the ownership map store.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

/// Most pools of each kind (a pool index must fit in a `u8`, and few are ever needed).
pub const MAX_POOLS: usize = 16;

/// An IA_NA address pool `base/len`; `len` ≥ 64 so every offset fits in a `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NaPool {
    pub base: Ipv6Addr,
    pub len: u8,
}

/// An IA_PD pool: prefixes of length `delegated_len` inside `base/len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdPool {
    pub base: Ipv6Addr,
    pub len: u8,
    pub delegated_len: u8,
}

fn host_mask(len: u8) -> u128 {
    if len >= 128 {
        0
    } else {
        u128::MAX >> len
    }
}

fn parse_prefix(s: &str) -> Result<(Ipv6Addr, u8), String> {
    let (a, l) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?}: expected ADDRESS/LENGTH"))?;
    let addr: Ipv6Addr = a.parse().map_err(|e| format!("{a:?}: {e}"))?;
    let len: u8 = l.parse().map_err(|e| format!("{l:?}: {e}"))?;
    if len > 128 {
        return Err(format!("prefix length {len} > 128"));
    }
    if u128::from(addr) & host_mask(len) != 0 {
        return Err(format!("{s}: host bits set"));
    }
    Ok((addr, len))
}

impl FromStr for NaPool {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (base, len) = parse_prefix(s)?;
        if len < 64 {
            return Err(format!("{s}: an address pool must be /64 or longer"));
        }
        Ok(NaPool { base, len })
    }
}

impl fmt::Display for NaPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.len)
    }
}

impl FromStr for PdPool {
    type Err = String;
    /// `PREFIX/LEN,DELEGATED_LEN`, e.g. `2001:db8:8000::/40,56`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (p, d) = s
            .split_once(',')
            .ok_or_else(|| format!("{s:?}: expected PREFIX/LEN,DELEGATED_LEN"))?;
        let (base, len) = parse_prefix(p)?;
        let delegated_len: u8 = d.parse().map_err(|e| format!("{d:?}: {e}"))?;
        if delegated_len < len || delegated_len > 128 || delegated_len - len > 64 {
            return Err(format!(
                "{s}: delegated length must be in {len}..={}",
                (len + 64).min(128)
            ));
        }
        Ok(PdPool {
            base,
            len,
            delegated_len,
        })
    }
}

impl fmt::Display for PdPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{},{}", self.base, self.len, self.delegated_len)
    }
}

impl NaPool {
    pub fn offset(&self, a: Ipv6Addr) -> Option<u64> {
        let (a, b) = (u128::from(a), u128::from(self.base));
        if (a ^ b) & !host_mask(self.len) != 0 {
            return None;
        }
        Some((a - b) as u64)
    }
    pub fn addr(&self, off: u64) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.base) + u128::from(off))
    }
}

impl PdPool {
    pub fn index(&self, prefix: Ipv6Addr, len: u8) -> Option<u64> {
        let (p, b) = (u128::from(prefix), u128::from(self.base));
        if len != self.delegated_len || (p ^ b) & !host_mask(self.len) != 0 {
            return None;
        }
        if p & host_mask(self.delegated_len) != 0 {
            return None;
        }
        Some(((p - b) >> (128 - u32::from(self.delegated_len))) as u64)
    }
    pub fn prefix(&self, idx: u64) -> Ipv6Addr {
        let shift = 128 - u32::from(self.delegated_len);
        let off = u128::from(idx).checked_shl(shift).unwrap_or(0);
        Ipv6Addr::from(u128::from(self.base) + off)
    }
}

/// Find the pool holding `a`: `(pool index, offset)`.
pub fn locate_addr(pools: &[NaPool], a: Ipv6Addr) -> Option<(u8, u64)> {
    pools
        .iter()
        .enumerate()
        .find_map(|(i, p)| p.offset(a).map(|o| (i as u8, o)))
}

/// Find the pool holding `prefix/len`: `(pool index, prefix number)`.
pub fn locate_prefix(pools: &[PdPool], prefix: Ipv6Addr, len: u8) -> Option<(u8, u64)> {
    pools
        .iter()
        .enumerate()
        .find_map(|(i, p)| p.index(prefix, len).map(|o| (i as u8, o)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn na_pool_offsets() {
        let p: NaPool = "2001:db8:1::/64".parse().unwrap();
        let a: Ipv6Addr = "2001:db8:1::ffff:1".parse().unwrap();
        let off = p.offset(a).unwrap();
        assert_eq!(p.addr(off), a);
        assert_eq!(p.offset("2001:db8:2::1".parse().unwrap()), None);
        assert!("2001:db8::/48".parse::<NaPool>().is_err());
        assert!("2001:db8::1/64".parse::<NaPool>().is_err());
    }

    #[test]
    fn pd_pool_indices() {
        let p: PdPool = "2001:db8:8000::/40,56".parse().unwrap();
        let q: Ipv6Addr = "2001:db8:8000:300::".parse().unwrap();
        let i = p.index(q, 56).unwrap();
        assert_eq!(i, 3);
        assert_eq!(p.prefix(i), q);
        assert_eq!(p.index(q, 64), None, "wrong length");
        assert_eq!(p.index("2001:db8:8000:301::".parse().unwrap(), 56), None);
        assert_eq!(p.index("2001:db9::".parse().unwrap(), 56), None);
        assert!("2001:db8::/40,32".parse::<PdPool>().is_err());
    }
}
