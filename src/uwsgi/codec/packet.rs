//! The uwsgi packet: a 4-byte header (`u8 modifier1`, `u16 LE datasize`, `u8 modifier2`)
//! and a vars block of `u16 LE` length-prefixed key/value pairs. Written into one
//! caller-owned buffer with no allocation per var; every length is checked, never
//! truncated.

use std::fmt;

/// The largest vars block the 16-bit `datasize` can describe.
pub const MAX_VARS: usize = u16::MAX as usize;

/// Why a packet could not be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PacketError {
    /// The vars block would exceed 65535 bytes (or one key or value alone would).
    TooBig { size: usize },
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacketError::TooBig { size } => {
                write!(f, "uwsgi vars block of {size} bytes exceeds the protocol's 65535")
            }
        }
    }
}

/// Writes one packet into `buf`: header placeholder first, then pairs, then the header.
pub struct PacketWriter<'b> {
    buf: &'b mut Vec<u8>,
    start: usize,
}

impl<'b> PacketWriter<'b> {
    /// Starts a packet at the end of `buf`.
    pub fn new(buf: &'b mut Vec<u8>) -> Self {
        let start = buf.len();
        buf.extend_from_slice(&[0; 4]);
        PacketWriter { buf, start }
    }

    /// Size of the vars block so far.
    pub fn vars_len(&self) -> usize {
        self.buf.len() - self.start - 4
    }

    /// Appends a pair.
    pub fn push(&mut self, key: &[u8], value: &[u8]) {
        self.push_with(key, |out| out.extend_from_slice(value), false);
    }

    /// Appends a pair whose value `write` appends to the buffer in place (no temporary);
    /// with `skip_empty`, a pair whose value turns out empty is removed again. Returns the
    /// pair's encoded size (0 when skipped).
    pub fn push_with(&mut self, key: &[u8], write: impl FnOnce(&mut Vec<u8>), skip_empty: bool) -> usize {
        let pair_start = self.buf.len();
        put_len(self.buf, key.len());
        self.buf.extend_from_slice(key);
        let len_at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        let value_start = self.buf.len();
        write(self.buf);
        let value_len = self.buf.len() - value_start;
        if skip_empty && value_len == 0 {
            self.buf.truncate(pair_start);
            return 0;
        }
        // an over-long value makes the block over-long too, which `finish` refuses
        let le = (value_len.min(MAX_VARS) as u16).to_le_bytes();
        self.buf[len_at..len_at + 2].copy_from_slice(&le);
        self.buf.len() - pair_start
    }

    /// Writes the header and returns the whole packet's length, or refuses a block over
    /// 65535 bytes (leaving `buf` as it was before the packet).
    pub fn finish(self, modifier1: u8, modifier2: u8) -> Result<usize, PacketError> {
        let size = self.vars_len();
        if size > MAX_VARS {
            self.buf.truncate(self.start);
            return Err(PacketError::TooBig { size });
        }
        let le = (size as u16).to_le_bytes();
        self.buf[self.start..self.start + 4].copy_from_slice(&[modifier1, le[0], le[1], modifier2]);
        Ok(size + 4)
    }
}

fn put_len(buf: &mut Vec<u8>, len: usize) {
    buf.extend_from_slice(&(len.min(MAX_VARS) as u16).to_le_bytes());
}

/// Why bytes are not a valid packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer than 4 bytes, or fewer vars bytes than the header announces.
    Truncated,
    /// A length runs past the end of the block.
    Overrun,
    /// A zero-length key (uWSGI rejects the whole request).
    EmptyKey,
}

/// A decoded packet: modifiers, pairs in order, and the bytes after the vars block.
#[derive(Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    pub modifier1: u8,
    pub modifier2: u8,
    pub vars: Vec<(&'a [u8], &'a [u8])>,
    pub rest: &'a [u8],
}

/// Decodes a packet as uWSGI parses it (`core/protocol.c`): strict lengths, no empty keys.
pub fn decode(bytes: &[u8]) -> Result<Packet<'_>, DecodeError> {
    if bytes.len() < 4 {
        return Err(DecodeError::Truncated);
    }
    let size = usize::from(u16::from_le_bytes([bytes[1], bytes[2]]));
    let block = bytes.get(4..4 + size).ok_or(DecodeError::Truncated)?;
    let mut vars = Vec::new();
    let mut p = 0;
    let read = |p: &mut usize| -> Result<&[u8], DecodeError> {
        let len_bytes = block.get(*p..*p + 2).ok_or(DecodeError::Overrun)?;
        let len = usize::from(u16::from_le_bytes([len_bytes[0], len_bytes[1]]));
        let s = block.get(*p + 2..*p + 2 + len).ok_or(DecodeError::Overrun)?;
        *p += 2 + len;
        Ok(s)
    };
    while p < block.len() {
        let key = read(&mut p)?;
        if key.is_empty() {
            return Err(DecodeError::EmptyKey);
        }
        let value = read(&mut p)?;
        vars.push((key, value));
    }
    Ok(Packet { modifier1: bytes[0], modifier2: bytes[3], vars, rest: &bytes[4 + size..] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example_bytes() {
        // ../shared/uwsgi/SPEC.md §2.1
        let mut buf = Vec::new();
        let mut w = PacketWriter::new(&mut buf);
        w.push(b"REQUEST_METHOD", b"GET");
        w.push(b"PATH_INFO", b"/");
        assert_eq!(w.finish(0, 0), Ok(39));
        let mut expected = vec![0x00, 0x23, 0x00, 0x00, 0x0e, 0x00];
        expected.extend_from_slice(b"REQUEST_METHOD");
        expected.extend_from_slice(&[0x03, 0x00]);
        expected.extend_from_slice(b"GET");
        expected.extend_from_slice(&[0x09, 0x00]);
        expected.extend_from_slice(b"PATH_INFO");
        expected.extend_from_slice(&[0x01, 0x00, b'/']);
        assert_eq!(buf, expected);
    }

    #[test]
    fn modifiers_and_empty_values() {
        let mut buf = Vec::new();
        let mut w = PacketWriter::new(&mut buf);
        w.push(b"EMPTY", b"");
        assert_eq!(w.push_with(b"SKIPPED", |_| {}, true), 0);
        w.finish(30, 9).unwrap();
        let p = decode(&buf).unwrap();
        assert_eq!((p.modifier1, p.modifier2), (30, 9));
        assert_eq!(p.vars, vec![(&b"EMPTY"[..], &b""[..])]);
    }

    #[test]
    fn exactly_65535_is_accepted_65536_refused() {
        // key 1 byte + value v: pair = 2 + 1 + 2 + v
        let mut buf = Vec::new();
        let mut w = PacketWriter::new(&mut buf);
        w.push(b"K", &vec![b'x'; MAX_VARS - 5]);
        assert_eq!(w.finish(0, 0), Ok(MAX_VARS + 4));
        assert_eq!(&buf[1..3], &[0xff, 0xff]);

        let mut buf = b"keep".to_vec();
        let mut w = PacketWriter::new(&mut buf);
        w.push(b"K", &vec![b'x'; MAX_VARS - 4]);
        assert_eq!(w.finish(0, 0), Err(PacketError::TooBig { size: MAX_VARS + 1 }));
        assert_eq!(buf, b"keep", "a refused packet leaves the buffer as it was");
    }

    #[test]
    fn a_single_huge_value_is_refused_not_truncated() {
        let mut buf = Vec::new();
        let mut w = PacketWriter::new(&mut buf);
        w.push(b"K", &vec![b'x'; 70_000]);
        assert!(matches!(w.finish(0, 0), Err(PacketError::TooBig { .. })));
        assert!(buf.is_empty());
    }

    #[test]
    fn decode_refuses_bad_packets() {
        assert_eq!(decode(b"\x00\x05"), Err(DecodeError::Truncated));
        assert_eq!(decode(b"\x00\x05\x00\x00ab"), Err(DecodeError::Truncated));
        assert_eq!(decode(b"\x00\x04\x00\x00\x09\x00ab"), Err(DecodeError::Overrun));
        assert_eq!(decode(b"\x00\x04\x00\x00\x00\x00\x00\x00"), Err(DecodeError::EmptyKey));
        let p = decode(b"\x00\x00\x00\x00body").unwrap();
        assert_eq!(p.rest, b"body");
    }
}
