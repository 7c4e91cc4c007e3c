//! The streaming encoders: gzip (zlib's, through flate2) and brotli, fed a body chunk
//! by chunk, their output appended to the caller's buffer. Memory per answer is the
//! encoder's window and tables, sized down for a short body of known length as nginx
//! does (a 15 KB page gets a 16 KB window, not 32 KB), and the output of one chunk.

use brotli::enc::encode::{BrotliEncoderOperation as Op, BrotliEncoderParameter, BrotliEncoderStateStruct};
use brotli::enc::StandardAlloc;
use flate2::{Compress, Compression as Level, FlushCompress, Status};

/// A coding Portico compresses with on the fly (zstd is only sent precompressed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Gzip,
    Br,
}

impl Codec {
    /// Its name in `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Br => "br",
        }
    }
}

/// An encoder for one answer's body.
pub struct Encoder {
    kind: Kind,
}

enum Kind {
    Gzip(Box<Compress>),
    Br(Box<BrotliEncoderStateStruct<StandardAlloc>>),
}

/// The encoder failed (it should not, with the inputs it is given): the answer is cut.
#[derive(Debug)]
pub struct EncodeError(pub String);

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "compressing the response failed: {}", self.0)
    }
}

/// Output room reserved per encoder call.
const OUT_STEP: usize = 16 << 10;

impl Encoder {
    /// An encoder for `coding` at `level`; `length` the body's when known.
    pub fn new(codec: Codec, level: u32, length: Option<u64>) -> Encoder {
        let kind = match codec {
            Codec::Br => {
                let mut s = BrotliEncoderStateStruct::new(StandardAlloc::default());
                // ngx_brotli's default window, 512 KB; less for a short body
                let lgwin = window_bits(length, 10, 19);
                s.set_parameter(BrotliEncoderParameter::BROTLI_PARAM_QUALITY, level);
                s.set_parameter(BrotliEncoderParameter::BROTLI_PARAM_LGWIN, lgwin);
                if let Some(n) = length.and_then(|n| u32::try_from(n).ok()) {
                    s.set_parameter(BrotliEncoderParameter::BROTLI_PARAM_SIZE_HINT, n);
                }
                Kind::Br(Box::new(s))
            }
            Codec::Gzip => {
                let wbits = window_bits(length, 9, 15);
                Kind::Gzip(Box::new(Compress::new_gzip(Level::new(zlib_rs_level(level)), wbits as u8)))
            }
        };
        Encoder { kind }
    }

    /// Compresses `input`, appending what the encoder gives out now to `out`.
    pub fn write(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.run(input, Step::Process, out)
    }

    /// Gives out everything fed so far (the client is not kept waiting while the app is).
    pub fn flush(&mut self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.run(&[], Step::Flush, out)
    }

    /// Ends the stream.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.run(&[], Step::Finish, out)
    }

    fn run(&mut self, input: &[u8], step: Step, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match &mut self.kind {
            Kind::Gzip(c) => gzip(c, input, step, out),
            Kind::Br(s) => brotli(s, input, step, out),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Process,
    Flush,
    Finish,
}

/// zlib-rs's level for nginx's `gzip_comp_level`: the same, but for 1, whose zlib-rs
/// strategy (zlib-ng's "quick") gives out about a fifth more bytes than the C zlib nginx
/// links; zlib-rs's 2 gives out no more than zlib's 1 (measured on FlaskBB's CSS and JS
/// and the harness's stylesheet: BENCHMARKS.md).
fn zlib_rs_level(level: u32) -> u32 {
    if level == 1 {
        2
    } else {
        level
    }
}

/// nginx's window rule: the smallest window (within `min..=max` bits) that still holds
/// the whole body, for a body of known length (zlib's memory level stays at its 8).
fn window_bits(length: Option<u64>, min: u32, max: u32) -> u32 {
    let Some(n) = length else { return max };
    let mut bits = max;
    while bits > min && n < (1u64 << (bits - 1)) {
        bits -= 1;
    }
    bits
}

fn gzip(c: &mut Compress, mut input: &[u8], step: Step, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let flush = match step {
        Step::Process => FlushCompress::None,
        Step::Flush => FlushCompress::Sync,
        Step::Finish => FlushCompress::Finish,
    };
    loop {
        out.reserve(OUT_STEP.max(input.len() / 2));
        let (before_in, before_out) = (c.total_in(), c.total_out());
        let status = c.compress_vec(input, out, flush).map_err(|e| EncodeError(e.to_string()))?;
        let consumed = usize::try_from(c.total_in() - before_in).unwrap_or(input.len());
        input = &input[consumed.min(input.len())..];
        let room_left = out.len() < out.capacity();
        let done = match step {
            Step::Process => input.is_empty(),
            Step::Flush => input.is_empty() && room_left,
            Step::Finish => status == Status::StreamEnd,
        };
        if done {
            return Ok(());
        }
        if consumed == 0 && c.total_out() == before_out && room_left {
            return Err(EncodeError(format!("gzip made no progress ({status:?})")));
        }
    }
}

fn brotli(
    s: &mut BrotliEncoderStateStruct<StandardAlloc>,
    input: &[u8],
    step: Step,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let op = match step {
        Step::Process => Op::BROTLI_OPERATION_PROCESS,
        Step::Flush => Op::BROTLI_OPERATION_FLUSH,
        Step::Finish => Op::BROTLI_OPERATION_FINISH,
    };
    let mut nop = |_: &mut brotli::interface::PredictionModeContextMap<brotli::InputReferenceMut>,
                   _: &mut [brotli::interface::StaticCommand],
                   _: brotli::InputPair,
                   _: &mut StandardAlloc| ();
    let (mut avail_in, mut in_at) = (input.len(), 0);
    loop {
        let start = out.len();
        let before_in = in_at;
        out.resize(start + OUT_STEP, 0);
        let (mut avail_out, mut out_at) = (OUT_STEP, start);
        let ok = s.compress_stream(
            op,
            &mut avail_in,
            input,
            &mut in_at,
            &mut avail_out,
            out,
            &mut out_at,
            &mut None,
            &mut nop,
        );
        out.truncate(out_at);
        if !ok {
            return Err(EncodeError("brotli refused the input".into()));
        }
        let done = match step {
            Step::Finish => s.is_finished(),
            _ => avail_in == 0 && !s.has_more_output(),
        };
        if done {
            return Ok(());
        }
        if in_at == before_in && out_at == start {
            return Err(EncodeError("brotli made no progress".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn body() -> Vec<u8> {
        (0..200_000u32)
            .flat_map(|i| format!("<p>line {i} of a page</p>\n").into_bytes())
            .take(300_000)
            .collect()
    }

    fn encode(coding: Codec, level: u32, input: &[u8], chunk: usize, flush_every: bool) -> Vec<u8> {
        encode_known(coding, level, input, chunk, flush_every, None)
    }

    fn encode_known(
        coding: Codec,
        level: u32,
        input: &[u8],
        chunk: usize,
        flush_every: bool,
        length: Option<u64>,
    ) -> Vec<u8> {
        let mut e = Encoder::new(coding, level, length);
        let mut out = Vec::new();
        for part in input.chunks(chunk) {
            e.write(part, &mut out).unwrap();
            if flush_every {
                e.flush(&mut out).unwrap();
            }
        }
        e.finish(&mut out).unwrap();
        out
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data).read_to_end(&mut out).unwrap();
        out
    }

    fn unbrotli(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        brotli::Decompressor::new(data, 4096).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn round_trips_in_any_chunking() {
        let input = body();
        for (chunk, flush) in [(input.len(), false), (65_536, false), (1000, true), (1, false)] {
            let piece = &input[..input.len().min(if chunk == 1 { 5000 } else { input.len() })];
            let gz = encode(Codec::Gzip, 1, piece, chunk, flush);
            assert_eq!(gunzip(&gz), piece, "gzip, chunks of {chunk}");
            assert!(gz.len() < piece.len() / 3, "gzip compresses");
            let br = encode(Codec::Br, 4, piece, chunk, flush);
            assert_eq!(unbrotli(&br), piece, "brotli, chunks of {chunk}");
        }
        assert_eq!(gunzip(&encode(Codec::Gzip, 9, b"", 1, false)), b"", "an empty body is a valid stream");
        assert_eq!(unbrotli(&encode(Codec::Br, 11, b"", 1, false)), b"");
    }

    #[test]
    fn round_trips_with_the_window_sized_to_a_known_length() {
        let input = body();
        for n in [0usize, 1, 100, 600, 1500, 15_000, 70_000] {
            let piece = &input[..n];
            for level in [1, 9] {
                let gz = encode_known(Codec::Gzip, level, piece, 4096, false, Some(n as u64));
                assert_eq!(gunzip(&gz), piece, "gzip {level}, {n} bytes");
            }
            for level in [0, 4, 11] {
                let br = encode_known(Codec::Br, level, piece, 4096, false, Some(n as u64));
                assert_eq!(unbrotli(&br), piece, "brotli {level}, {n} bytes");
            }
        }
    }

    #[test]
    fn a_flush_gives_out_what_was_fed() {
        let mut e = Encoder::new(Codec::Gzip, 1, None);
        let mut out = Vec::new();
        e.write(b"hello, streaming world", &mut out).unwrap();
        e.flush(&mut out).unwrap();
        let mut d = flate2::read::GzDecoder::new(&out[..]);
        let mut got = [0u8; 22];
        d.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello, streaming world");
    }

    #[test]
    fn windows_as_nginx_sizes_them() {
        assert_eq!(window_bits(None, 9, 15), 15);
        assert_eq!(window_bits(Some(15_000), 9, 15), 14);
        assert_eq!(window_bits(Some(100), 9, 15), 9);
        assert_eq!(window_bits(Some(1 << 20), 9, 15), 15);
    }
}
