//! Reading and writing big-endian fields at byte offsets (the Firecracker `dumbo::pdu::bytes`
//! approach): never cast bytes to a struct reference, never index.
//!
//! Every helper is total: a read outside the buffer yields zeros and a write outside the
//! buffer does nothing. The views only call them after `new_checked` has proved the range is
//! present, so the fallback is unreachable in practice; it exists so that no input, and no
//! odd `AsRef` implementation, can make an accessor panic.

#[inline(always)]
pub(crate) fn read_array<const N: usize>(buf: &[u8], offset: usize) -> [u8; N] {
    match offset.checked_add(N).and_then(|end| buf.get(offset..end)) {
        Some(bytes) => <[u8; N]>::try_from(bytes).unwrap_or([0; N]),
        None => [0; N],
    }
}

#[inline(always)]
pub(crate) fn read_u8(buf: &[u8], offset: usize) -> u8 {
    buf.get(offset).copied().unwrap_or(0)
}

#[inline(always)]
pub(crate) fn read_u16(buf: &[u8], offset: usize) -> u16 {
    u16::from_be_bytes(read_array(buf, offset))
}

#[inline(always)]
pub(crate) fn read_u32(buf: &[u8], offset: usize) -> u32 {
    u32::from_be_bytes(read_array(buf, offset))
}

#[inline(always)]
pub(crate) fn write_array<const N: usize>(buf: &mut [u8], offset: usize, value: [u8; N]) {
    if let Some(bytes) = offset
        .checked_add(N)
        .and_then(|end| buf.get_mut(offset..end))
    {
        bytes.copy_from_slice(&value);
    }
}

#[inline(always)]
pub(crate) fn write_u8(buf: &mut [u8], offset: usize, value: u8) {
    if let Some(byte) = buf.get_mut(offset) {
        *byte = value;
    }
}

#[inline(always)]
pub(crate) fn write_u16(buf: &mut [u8], offset: usize, value: u16) {
    write_array(buf, offset, value.to_be_bytes());
}

#[inline(always)]
pub(crate) fn write_u32(buf: &mut [u8], offset: usize, value: u32) {
    write_array(buf, offset, value.to_be_bytes());
}
