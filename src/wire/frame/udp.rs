//! UDP header (RFC 768) as carried over IPv6 (RFC 8200 §8.1).

use super::bytes::{read_u16, write_u16};
use super::FrameError;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
    pub const HEADER_LEN: usize = 8;
}

/// Length of the UDP header.
pub const UDP_HEADER_LEN: usize = field::HEADER_LEN;

/// A checked view of a UDP datagram.
#[derive(Debug, Clone, Copy)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps `buffer` without checking it: for emitting into a buffer whose fields are not
    /// yet valid. Accessors still never panic; out-of-range reads yield zeros and
    /// out-of-range writes are ignored.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer`, which must hold the 8-byte header ([`FrameError::Truncated`]) and a
    /// Length field between 8 and the buffer's length ([`FrameError::UdpLength`]). Bytes past
    /// Length are ignored, as Linux does.
    pub fn new_checked(buffer: T) -> Result<Self, FrameError> {
        let view = Self { buffer };
        let buf_len = view.buffer.as_ref().len();
        if buf_len < field::HEADER_LEN {
            return Err(FrameError::Truncated);
        }
        let len = usize::from(view.len());
        if len < field::HEADER_LEN || len > buf_len {
            return Err(FrameError::UdpLength);
        }
        Ok(view)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Length of header plus payload.
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// True when the Length field says there is no payload.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= field::HEADER_LEN
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The payload, as long as the Length field says.
    pub fn payload(&self) -> &[u8] {
        let end = usize::from(self.len());
        self.buffer
            .as_ref()
            .get(field::HEADER_LEN..end)
            .unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    pub fn set_src_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, port);
    }

    pub fn set_dst_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, port);
    }

    pub fn set_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    pub fn set_checksum(&mut self, checksum: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, checksum);
    }
}
