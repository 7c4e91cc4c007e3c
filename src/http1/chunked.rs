//! A streaming decoder for HTTP/1.1 chunked bodies, both ways through the server: a
//! client's chunked request body (through [`super::body`]) and an app's own chunked
//! response (the uwsgi relay decodes it once instead of chunking it again). Fed whatever
//! bytes arrived, it says how many it consumed and where the data in them is, without
//! copying. Sizes, extensions and trailers are bounded. Decoding only: the chunks
//! Portico writes are framed in [`super::response_head`].

use std::fmt;
use std::ops::Range;

use crate::ascii::hex_digit;

/// Longest chunk-size line (size, extensions) or trailer line accepted.
const MAX_LINE: usize = 4096;
/// Most trailer bytes accepted after the last chunk (they are dropped anyway).
const MAX_TRAILERS: usize = 8192;

/// Why a chunked body is malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkError {
    /// A size that is not hex, or has no digits.
    BadSize,
    /// A size over 2^63 - 1 (the largest file offset).
    SizeOverflow,
    /// Chunk data not followed by CRLF.
    MissingCrlf,
    /// A size line or trailer line over the limit.
    LineTooLong,
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChunkError::BadSize => "invalid chunk size",
            ChunkError::SizeOverflow => "chunk size overflows",
            ChunkError::MissingCrlf => "chunk data not followed by CRLF",
            ChunkError::LineTooLong => "chunk size line or trailers too long",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a size.
    Size {
        digits: usize,
    },
    /// After the digits: extensions or whitespace until LF.
    SizeRest {
        extension: bool,
        cr: bool,
    },
    /// `remaining` bytes of data to pass through.
    Data,
    /// After data: expecting CR or LF.
    DataEnd {
        seen_cr: bool,
    },
    /// After the last chunk: trailer lines until an empty one.
    Trailer {
        line_len: usize,
    },
    Done,
}

/// One step's result: input consumed, and the data bytes within it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub consumed: usize,
    pub data: Range<usize>,
}

/// Decoder state, fed input as it arrives.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    remaining: u64,
    line_len: usize,
    trailer_len: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        ChunkedDecoder {
            state: State::Size { digits: 0 },
            size: 0,
            remaining: 0,
            line_len: 0,
            trailer_len: 0,
        }
    }

    /// Whether the last chunk and the trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes framing from `input` up to and including the next run of data, which is
    /// returned as a range of `input`. Call again with the rest until all is consumed or
    /// the body is done.
    pub fn step(&mut self, input: &[u8]) -> Result<Step, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Size { digits } => {
                    if let Some(v) = hex_digit(b) {
                        if digits >= 16 && self.size >> 60 != 0 {
                            return Err(ChunkError::SizeOverflow);
                        }
                        self.size = self.size.checked_mul(16).ok_or(ChunkError::SizeOverflow)? | u64::from(v);
                        if self.size > i64::MAX as u64 {
                            return Err(ChunkError::SizeOverflow);
                        }
                        self.state = State::Size { digits: digits + 1 };
                        self.bump_line()?;
                        i += 1;
                    } else if digits == 0 {
                        return Err(ChunkError::BadSize);
                    } else {
                        self.state = State::SizeRest { extension: false, cr: false };
                    }
                }
                // as nginx: after the digits `;`, SP or HTAB start an extension (anything
                // up to the line end), CR must be followed by LF
                State::SizeRest { extension, cr } => {
                    i += 1;
                    match b {
                        b'\n' => {
                            self.line_len = 0;
                            if self.size == 0 {
                                self.state = State::Trailer { line_len: 0 };
                            } else {
                                self.remaining = self.size;
                                self.state = State::Data;
                            }
                        }
                        _ if cr => return Err(ChunkError::BadSize),
                        b'\r' => self.state = State::SizeRest { extension, cr: true },
                        b';' | b' ' | b'\t' => self.state = State::SizeRest { extension: true, cr: false },
                        _ if extension => {}
                        _ => return Err(ChunkError::BadSize),
                    }
                    self.bump_line()?;
                }
                State::Data => {
                    let take = usize::try_from(self.remaining).unwrap_or(usize::MAX).min(input.len() - i);
                    self.remaining -= take as u64;
                    if self.remaining == 0 {
                        self.state = State::DataEnd { seen_cr: false };
                    }
                    return Ok(Step { consumed: i + take, data: i..i + take });
                }
                State::DataEnd { seen_cr } => {
                    i += 1;
                    match b {
                        b'\r' if !seen_cr => self.state = State::DataEnd { seen_cr: true },
                        b'\n' => {
                            self.size = 0;
                            self.state = State::Size { digits: 0 };
                        }
                        _ => return Err(ChunkError::MissingCrlf),
                    }
                }
                State::Trailer { line_len } => {
                    i += 1;
                    self.trailer_len += 1;
                    if self.trailer_len > MAX_TRAILERS {
                        return Err(ChunkError::LineTooLong);
                    }
                    if b == b'\n' {
                        if line_len == 0 {
                            self.state = State::Done;
                            return Ok(Step { consumed: i, data: i..i });
                        }
                        self.state = State::Trailer { line_len: 0 };
                    } else if b != b'\r' {
                        if line_len >= MAX_LINE {
                            return Err(ChunkError::LineTooLong);
                        }
                        self.state = State::Trailer { line_len: line_len + 1 };
                    }
                }
                State::Done => return Ok(Step { consumed: i, data: i..i }),
            }
        }
        Ok(Step { consumed: input.len(), data: input.len()..input.len() })
    }

    fn bump_line(&mut self) -> Result<(), ChunkError> {
        self.line_len += 1;
        if self.line_len > MAX_LINE {
            Err(ChunkError::LineTooLong)
        } else {
            Ok(())
        }
    }

    /// Decodes all of `input` into `out`; returns the bytes consumed (less than
    /// `input.len()` only when the body ended before the input did).
    pub fn decode_into(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ChunkError> {
        let mut pos = 0;
        while pos < input.len() && !self.is_done() {
            let step = self.step(&input[pos..])?;
            out.extend_from_slice(&input[pos + step.data.start..pos + step.data.end]);
            pos += step.consumed;
        }
        Ok(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize, bool), ChunkError> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let n = d.decode_into(input, &mut out)?;
        Ok((out, n, d.is_done()))
    }

    #[test]
    fn app_chunked_body() {
        // ../shared/uwsgi/captures/nginx_to_upstream/26_resp_te-chunked: "5\r\nhello\r\n0\r\n\r\n"
        let (out, n, done) = decode_all(b"5\r\nhello\r\n0\r\n\r\n").unwrap();
        assert_eq!((out.as_slice(), n, done), (&b"hello"[..], 15, true));
    }

    #[test]
    fn byte_by_byte_equals_all_at_once() {
        let input = b"3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
        let (whole, n, done) = decode_all(input).unwrap();
        assert_eq!((whole.as_slice(), n, done), (&b"abc0123456789"[..], input.len() - 4, true));
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        for b in &input[..input.len() - 4] {
            assert_eq!(d.decode_into(std::slice::from_ref(b), &mut out).unwrap(), 1);
        }
        assert!(d.is_done());
        assert_eq!(out, whole);
    }

    #[test]
    fn lf_only_and_uppercase_hex() {
        let (out, _, done) = decode_all(b"B\nhello world\n0\n\n").unwrap();
        assert_eq!((out.as_slice(), done), (&b"hello world"[..], true));
    }

    #[test]
    fn malformed() {
        assert_eq!(decode_all(b"zz\r\n").unwrap_err(), ChunkError::BadSize);
        assert_eq!(decode_all(b"\r\n").unwrap_err(), ChunkError::BadSize);
        assert_eq!(decode_all(b"3\r\nabcX").unwrap_err(), ChunkError::MissingCrlf);
        // nginx's chunk-size line: junk after the digits, or a CR not before LF, is refused
        assert_eq!(decode_all(b"5xyz\r\nhello\r\n").unwrap_err(), ChunkError::BadSize);
        assert_eq!(decode_all(b"5\rX\nhello\r\n").unwrap_err(), ChunkError::BadSize);
        assert_eq!(decode_all(b"5 ;a=b c\r\nhello\r\n0\r\n\r\n").unwrap().0, b"hello");
        assert_eq!(decode_all(b"10000000000000000\r\n").unwrap_err(), ChunkError::SizeOverflow);
        assert_eq!(decode_all(b"8000000000000000\r\n").unwrap_err(), ChunkError::SizeOverflow);
        assert!(!decode_all(b"7fffffffffffffff\r\n").unwrap().2, "a size of 2^63 - 1 is valid");
        let mut trailers = b"0\r\n".to_vec();
        for _ in 0..1000 {
            trailers.extend_from_slice(b"X-T: 1234567\r\n");
        }
        assert_eq!(decode_all(&trailers).unwrap_err(), ChunkError::LineTooLong);
        let mut long = b"1;".to_vec();
        long.extend(std::iter::repeat_n(b'e', 5000));
        assert_eq!(decode_all(&long).unwrap_err(), ChunkError::LineTooLong);
    }

    #[test]
    fn incomplete_is_not_done() {
        let (out, n, done) = decode_all(b"5\r\nhel").unwrap();
        assert_eq!((out.as_slice(), n, done), (&b"hel"[..], 6, false));
    }
}
