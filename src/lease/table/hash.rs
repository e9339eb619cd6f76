//! Stable hashing. Everything hashed here must give the same value in every process, on every
//! build and on the failover partner (the IA_NA candidate is a function of the hash), so nothing
//! here may be seeded at random.

const K: u64 = 0x9e37_79b9_7f4a_7c15;

/// The 64-bit finaliser of MurmurHash3: every input bit affects every output bit.
#[inline]
pub fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Hash of a byte string, eight bytes at a time. Not cryptographic: it spreads keys over shards
/// and tables and detects torn or flipped record bytes.
#[inline]
pub fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = hash_start(seed, bytes.len());
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        h = hash_step(
            h,
            u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
        );
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        // The tail zero-padded to eight bytes, little-endian.
        h = hash_step(h, le_bytes(bytes, bytes.len() - rest.len(), bytes.len()));
    }
    fmix64(h)
}

/// `bytes[from..to]` (at most 8 bytes) as a little-endian number, zero-padded. One load where
/// it can: when the range ends 8 or more bytes into `bytes`, the 8 bytes ending at `to`,
/// shifted (no byte loop, and no copy into a padded buffer, which would be a call to memcpy).
#[inline]
pub fn le_bytes(bytes: &[u8], from: usize, to: usize) -> u64 {
    let n = to - from;
    debug_assert!(n <= 8 && to <= bytes.len());
    if n == 0 {
        0
    } else if to >= 8 {
        let w = &bytes[to - 8..to];
        u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]) >> (64 - 8 * n)
    } else {
        bytes[from..to]
            .iter()
            .rev()
            .fold(0u64, |t, &b| (t << 8) | u64::from(b))
    }
}

/// The state [`hash_bytes`] starts from for `len` bytes (then one [`hash_step`] per 8-byte
/// chunk, the tail zero-padded, then [`fmix64`]): for callers that hold the bytes as words.
#[inline]
pub fn hash_start(seed: u64, len: usize) -> u64 {
    seed ^ (len as u64).wrapping_mul(K)
}

/// One 8-byte chunk `w` (little-endian) into the state of [`hash_bytes`].
#[inline]
pub fn hash_step(h: u64, w: u64) -> u64 {
    (h ^ w).wrapping_mul(K).rotate_left(29)
}

/// Hash of a client's DUID: where its binding keys' hashes ([`key_hash_of`]) and its IA_NA
/// candidates ([`na_candidate`]) start from, so a grant hashes the DUID bytes once.
#[inline]
pub fn duid_hash(duid: &[u8]) -> u64 {
    hash_bytes(0x6475_6964, duid)
}

/// Hash of a binding key (DUID, IAID, IA type).
#[inline]
pub fn key_hash(duid: &[u8], iaid: u32, ia_type: u8) -> u64 {
    key_hash_of(duid_hash(duid), iaid, ia_type)
}

/// [`key_hash`] from the DUID's [`duid_hash`] `d`.
#[inline]
pub fn key_hash_of(d: u64, iaid: u32, ia_type: u8) -> u64 {
    fmix64(d ^ (u64::from(iaid) << 8 | u64::from(ia_type)).wrapping_mul(K))
}

/// Hash of a resource (address or prefix with its length).
#[inline]
pub fn resource_hash(addr: u128, len: u8) -> u64 {
    let lo = addr as u64;
    let hi = (addr >> 64) as u64;
    fmix64(hi.wrapping_mul(K) ^ lo.rotate_left(17) ^ u64::from(len))
}

/// The `probe`-th IA_NA candidate index for a client, out of `count`, from its DUID's
/// [`duid_hash`] `d` and its IAID (RFC 7031 independent allocation needs both partners to
/// compute the same sequence: it depends only on the DUID, the IAID and the pool size). The
/// hash is mapped onto `0..count` by a multiply and a shift (`⌊h·count / 2⁶⁴⌋`), not a
/// division.
#[inline]
pub fn na_candidate(d: u64, iaid: u32, probe: u64, count: u64) -> u64 {
    debug_assert!(count > 0);
    let h = fmix64(
        d ^ 0x6e61_5f63_616e_6469
            ^ u64::from(iaid).wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
            ^ probe.wrapping_mul(0xd6e8_feb8_6659_fd93),
    );
    ((u128::from(h) * u128::from(count)) >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const PINNED_CANDIDATES: [u64; 4] = [499_381, 193_044, 95_677, 768_369];

    #[test]
    fn candidates_spread_evenly_over_a_pool() {
        // 64,000 clients over a pool of 64: every address is some client's first candidate about
        // equally often (a mapping onto 0..count that favoured some would crowd them).
        let mut hits = [0u32; 64];
        for c in 0u32..64_000 {
            let d = duid_hash(&[&[0, 3, 0, 1][..], &c.to_be_bytes()].concat());
            hits[na_candidate(d, 1, 0, 64) as usize] += 1;
        }
        assert!(hits.iter().all(|&h| (800..1200).contains(&h)), "{hits:?}");
    }

    #[test]
    fn hashes_are_stable() {
        // Pinned values: a change here changes every client's IA_NA candidate and the shard of
        // every record, so it is a format change.
        assert_eq!(hash_bytes(0, b""), fmix64(0));
        let a = key_hash(b"\x00\x03\x00\x01\x02\x00\x00\x00\x00\x01", 7, 0);
        let b = key_hash(b"\x00\x03\x00\x01\x02\x00\x00\x00\x00\x01", 7, 1);
        assert_ne!(a, b);
        // Pinned: the candidate sequence is what both failover partners compute.
        let d = duid_hash(b"\x00\x01\x00\x01abcdefghij");
        let seq: Vec<u64> = (0..4).map(|p| na_candidate(d, 1, p, 1 << 20)).collect();
        assert_eq!(seq, PINNED_CANDIDATES);
        assert_ne!(
            na_candidate(d, 1, 0, u64::MAX),
            na_candidate(d, 2, 0, u64::MAX)
        );
        for count in [1, 2, 3, 1000, u64::MAX] {
            assert!((0..64).all(|p| na_candidate(d, 7, p, count) < count));
        }
        assert_ne!(resource_hash(1, 128), resource_hash(1, 64));
        // Pinned against the zero-padded little-endian reading of the tail, for every tail
        // length: the record checksum and every shard and candidate depend on these values.
        let bytes: Vec<u8> = (1..=23u8).map(|b| b.wrapping_mul(37)).collect();
        for len in 0..=bytes.len() {
            let b = &bytes[..len];
            let mut h = 7 ^ (len as u64).wrapping_mul(K);
            let mut chunks = b.chunks(8);
            for c in &mut chunks {
                let mut w = [0u8; 8];
                w[..c.len()].copy_from_slice(c);
                h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(29);
            }
            assert_eq!(hash_bytes(7, b), fmix64(h), "length {len}");
        }
        for to in 0..=bytes.len() {
            for from in to.saturating_sub(8)..=to {
                let mut w = [0u8; 8];
                w[..to - from].copy_from_slice(&bytes[from..to]);
                assert_eq!(
                    le_bytes(&bytes, from, to),
                    u64::from_le_bytes(w),
                    "{from}..{to}"
                );
            }
        }
        assert_eq!(
            key_hash(b"\x00\x01\x00\x01abcdefghij", 1, 0),
            0x7798_49d9_f497_f915
        );
    }
}
