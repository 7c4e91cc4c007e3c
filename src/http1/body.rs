//! Request body framing: how many bytes of what arrives after the head are body, and
//! where the data is in a chunked body. Pure: fed bytes, it says what it consumed and
//! which of them are data; the connection does the reading.

use std::ops::Range;

use super::chunked::{ChunkError, ChunkedDecoder};
use super::request_head::BodyFraming;

/// Where a request body stands.
#[derive(Clone, Debug)]
pub enum BodyDecoder {
    /// `remaining` bytes of a `Content-Length` body still to come.
    Length {
        remaining: u64,
    },
    Chunked(ChunkedDecoder),
    /// No body, or all of it was read.
    Done,
}

/// One step: input consumed, and the data within it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodyStep {
    pub consumed: usize,
    pub data: Range<usize>,
}

impl BodyDecoder {
    pub fn new(framing: BodyFraming) -> BodyDecoder {
        match framing {
            BodyFraming::None | BodyFraming::Length(0) => BodyDecoder::Done,
            BodyFraming::Length(n) => BodyDecoder::Length { remaining: n },
            BodyFraming::Chunked => BodyDecoder::Chunked(ChunkedDecoder::new()),
        }
    }

    pub fn is_done(&self) -> bool {
        match self {
            BodyDecoder::Done => true,
            BodyDecoder::Chunked(d) => d.is_done(),
            BodyDecoder::Length { .. } => false,
        }
    }

    /// Consumes framing from `input` up to and including the next run of data. Bytes
    /// after the body (a pipelined request) are never consumed.
    pub fn step(&mut self, input: &[u8]) -> Result<BodyStep, ChunkError> {
        match self {
            BodyDecoder::Done => Ok(BodyStep { consumed: 0, data: 0..0 }),
            BodyDecoder::Length { remaining } => {
                let take = usize::try_from(*remaining).unwrap_or(usize::MAX).min(input.len());
                *remaining -= take as u64;
                if *remaining == 0 {
                    *self = BodyDecoder::Done;
                }
                Ok(BodyStep { consumed: take, data: 0..take })
            }
            BodyDecoder::Chunked(d) => {
                let step = d.step(input)?;
                Ok(BodyStep { consumed: step.consumed, data: step.data })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_body_stops_at_its_end() {
        let mut d = BodyDecoder::new(BodyFraming::Length(5));
        assert_eq!(d.step(b"hel").unwrap(), BodyStep { consumed: 3, data: 0..3 });
        assert_eq!(d.step(b"loGET /").unwrap(), BodyStep { consumed: 2, data: 0..2 });
        assert!(d.is_done());
        assert_eq!(d.step(b"GET /").unwrap().consumed, 0);
    }

    #[test]
    fn chunked_body_stops_at_its_end() {
        let mut d = BodyDecoder::new(BodyFraming::Chunked);
        let input = b"5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\nGET /";
        let mut pos = 0;
        let mut data = Vec::new();
        while !d.is_done() {
            let s = d.step(&input[pos..]).unwrap();
            data.extend_from_slice(&input[pos + s.data.start..pos + s.data.end]);
            pos += s.consumed;
        }
        assert_eq!((data.as_slice(), &input[pos..]), (&b"hello"[..], &b"GET /"[..]));
    }

    #[test]
    fn no_body() {
        assert!(BodyDecoder::new(BodyFraming::None).is_done());
        assert!(BodyDecoder::new(BodyFraming::Length(0)).is_done());
    }
}
