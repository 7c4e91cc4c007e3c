//! Arbitrary bytes as what a client sends on one connection: request heads, each followed by
//! its body, pipelined. For every head:
//!
//! - parsing and every accessor never panic, and the body decoder fed the bytes after the
//!   head in arbitrary pieces never panics, always makes progress, and ends as it does fed
//!   everything at once;
//! - the answer does not depend on how the bytes were split into reads: a strict prefix of
//!   an accepted head is incomplete, and tighter limits never accept what looser ones don't;
//! - whatever Portico accepts, httparse reads the same way: same method, target, version,
//!   header lines and head length. Portico is lenient where nginx is (see `lenient`); there
//!   the request line is rewritten to the strict form and httparse must then agree.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portico::http1::body::BodyDecoder;
use portico::http1::chunked::ChunkError;
use portico::http1::request_head::{
    parse_head, BodyFraming, HeadError, HeadLimits, HeaderSpan, Known, Request, RequestHead, Version,
};

/// Heads read from one input, one after the other when each body ends.
const MAX_PIPELINED: usize = 8;

/// Every [`Known`] header with its name, to check `Request::known` against the list.
const KNOWN: [(Known, &[u8]); 13] = [
    (Known::Host, b"host"),
    (Known::ContentLength, b"content-length"),
    (Known::TransferEncoding, b"transfer-encoding"),
    (Known::Connection, b"connection"),
    (Known::Expect, b"expect"),
    (Known::ContentType, b"content-type"),
    (Known::IfMatch, b"if-match"),
    (Known::IfNoneMatch, b"if-none-match"),
    (Known::IfModifiedSince, b"if-modified-since"),
    (Known::IfUnmodifiedSince, b"if-unmodified-since"),
    (Known::Range, b"range"),
    (Known::IfRange, b"if-range"),
    (Known::Referer, b"referer"),
];

type Parsed = Result<Result<RequestHead, Vec<HeaderSpan>>, HeadError>;

fuzz_target!(|data: &[u8]| {
    // Small limits too, so that the size checks are reached by short inputs: the shape of
    // `large_client_header_buffers N SIZE` (lines at most one buffer, the head N of them).
    let b = data.first().copied().unwrap_or(0);
    let max_head = 64 + usize::from(b >> 2) * 64; // 64..=4096
    let line = max_head / (usize::from(b & 3) + 1);
    let small = HeadLimits { max_request_line: line, max_header_line: line, max_head };
    let default = HeadLimits::default();

    let mut off = 0;
    for _ in 0..MAX_PIPELINED {
        let buf = &data[off..];
        let loose = parse(buf, &default);
        let tight = parse(buf, &small);
        // limits only ever add refusals
        match (&tight, &loose) {
            (Ok(Ok(t)), Ok(Ok(l))) => assert_same(t, l),
            (Ok(Err(_)), Ok(Err(_))) | (Err(_), _) => {}
            _ => panic!("accepted or incomplete under {small:?} but not under the default limits"),
        }
        if let Ok(Ok(head)) = &tight {
            check_prefixes(buf, head, &small);
        }
        let Ok(Ok(head)) = loose else { break };
        check_prefixes(buf, &head, &default);
        check_accessors(buf, &head);
        check_against_httparse(buf, &head);
        match check_body(&buf[head.len..], head.body) {
            Some(n) => off += head.len + n,
            None => break,
        }
    }
});

fn parse(buf: &[u8], limits: &HeadLimits) -> Parsed {
    parse_head(buf, limits, Vec::new())
}

fn assert_same(a: &RequestHead, b: &RequestHead) {
    assert_eq!(
        (a.method, a.version, a.len, a.body, a.keep_alive, a.expect_continue),
        (b.method, b.version, b.len, b.body, b.keep_alive, b.expect_continue)
    );
}

/// Where `part`, a subslice of `buf`, starts in it.
fn offset(buf: &[u8], part: &[u8]) -> usize {
    let start = (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
    assert!(start <= buf.len() && part.len() <= buf.len() - start, "not a subslice");
    start
}

/// A head does not depend on what follows it, and a connection that got only part of it
/// (a shorter read) is told to read more, not refused.
fn check_prefixes(buf: &[u8], head: &RequestHead, limits: &HeadLimits) {
    assert!(head.len <= buf.len() && head.len <= limits.max_head);
    match parse(&buf[..head.len], limits) {
        Ok(Ok(again)) => assert_same(&again, head),
        other => panic!("the head alone is not the same head: {:?}", other.map(|r| r.is_ok())),
    }
    // cut just before each LF (a line as long as it gets without being complete; the
    // last one is the head less its final byte), and at one point chosen by the input
    let split = (usize::from(buf[0]) * 131 + buf.len()) % head.len;
    let lfs = (0..head.len).filter(|&k| buf[k] == b'\n');
    for k in lfs.chain([split]) {
        match parse(&buf[..k], limits) {
            Ok(Err(_)) => {}
            Ok(Ok(_)) => panic!("the first {k} bytes of a {}-byte head are a head", head.len),
            Err(e) => panic!("the first {k} bytes of an accepted head are refused: {e:?}"),
        }
    }
}

/// Every accessor, and that the ones derived from the header list agree with it.
fn check_accessors(buf: &[u8], head: &RequestHead) {
    let req = Request::new(head, buf);
    let _ = (req.method(), req.head().len, req.head_len());
    let method = req.method_name();
    let target = req.target();
    assert!(!method.is_empty() && !target.is_empty());
    assert!(offset(buf, method) + method.len() <= offset(buf, target));
    assert!(offset(buf, target) + target.len() < head.len);
    for (name, value) in req.headers() {
        let (n, v) = (offset(buf, name), offset(buf, value));
        assert!(!name.is_empty() && n + name.len() < v && v + value.len() < head.len);
        assert!(!value.starts_with(b" ") && !value.starts_with(b"\t"));
        assert!(!value.ends_with(b" ") && !value.ends_with(b"\t"));
    }
    for (which, name) in KNOWN {
        assert_eq!(req.known(which), req.header_values(name).next(), "{name:?}");
    }
    match target[0] {
        b'/' => assert_eq!(req.host(), req.known(Known::Host)),
        _ => {
            // absolute form: the authority, right after `scheme://`
            let host = req.host().expect("absolute-form target without a host");
            let at = offset(target, host);
            assert!(at >= 4 && &target[at - 3..at] == b"://" && !host.is_empty());
        }
    }
}

/// The request line as Portico split it, from the positions of its parts in `buf`.
struct Line<'a> {
    /// Empty lines before it.
    leading: &'a [u8],
    method: &'a [u8],
    target: &'a [u8],
    /// Spaces between method and target, and between target and version.
    gaps: [usize; 2],
    version: &'a [u8],
    /// Where the header lines start (just after the request line's LF).
    headers_at: usize,
}

fn request_line<'a>(buf: &'a [u8], req: &Request<'a>) -> Line<'a> {
    let (method, target) = (req.method_name(), req.target());
    let (m, t) = (offset(buf, method), offset(buf, target));
    let (method_end, target_end) = (m + method.len(), t + target.len());
    let lf = target_end + buf[target_end..].iter().position(|&b| b == b'\n').expect("no LF");
    let after = buf[target_end..lf].strip_suffix(b"\r").unwrap_or(&buf[target_end..lf]);
    let gap2 = after.iter().take_while(|&&b| b == b' ').count();
    let line = Line {
        leading: &buf[..m],
        method,
        target,
        gaps: [t - method_end, gap2],
        version: &after[gap2..],
        headers_at: lf + 1,
    };
    // what Portico's split must look like, whatever it accepts
    assert!(line.leading.iter().all(|&b| b == b'\r' || b == b'\n'));
    assert!(buf[method_end..t].iter().all(|&b| b == b' '));
    assert!(line.gaps[0] > 0 && line.gaps[1] > 0);
    assert!(line.version.len() == 8 && line.version.starts_with(b"HTTP/1."), "{:?}", line.version);
    line
}

/// Why httparse (its default, strict configuration) may refuse a head Portico accepts;
/// each is nginx's reading too. `None`: no reason, httparse must agree.
fn lenient(line: &Line) -> Option<&'static str> {
    if line.gaps != [1, 1] {
        return Some("more than one space between request-line parts");
    }
    if line.version != b"HTTP/1.0" && line.version != b"HTTP/1.1" {
        return Some("HTTP/1.2 and later minors, as HTTP/1.1");
    }
    // httparse wants CR LF or LF; Portico, as nginx, skips any CR and LF bytes there
    let mut leading = line.leading;
    while !leading.is_empty() {
        leading = match leading.strip_prefix(b"\r\n") {
            Some(rest) => rest,
            None if leading[0] == b'\n' => &leading[1..],
            None => return Some("a lone CR before the request line"),
        };
    }
    // httparse's path is a &str; nginx passes bytes over 0x7f through as they are
    if std::str::from_utf8(line.target).is_err() {
        return Some("a target that is not UTF-8");
    }
    None
}

fn check_against_httparse(buf: &[u8], head: &RequestHead) {
    let req = Request::new(head, buf);
    let line = request_line(buf, &req);
    let mut headers = [httparse::EMPTY_HEADER; 256];
    let mut theirs = httparse::Request::new(&mut headers);
    match theirs.parse(buf) {
        Ok(httparse::Status::Complete(len)) => {
            assert_eq!(theirs.method.map(str::as_bytes), Some(req.method_name()), "method");
            assert_eq!(theirs.path.map(str::as_bytes), Some(req.target()), "target");
            if line.version == b"HTTP/1.0" || line.version == b"HTTP/1.1" {
                let want = match req.version() {
                    Version::Http10 => 0,
                    Version::Http11 => 1,
                    Version::Http2 => panic!("a request line parsed as HTTP/2 (only the HTTP/2 wire sets it)"),
                };
                assert_eq!(theirs.version, Some(want), "version");
            }
            assert_same_headers(&req, theirs.headers);
            assert_eq!(len, head.len, "head length");
        }
        other => {
            let why = lenient(&line);
            assert!(why.is_some(), "Portico accepts, httparse says {other:?}");
        }
    }

    // The same head with the request line in the strict form (one space, a 1.0 or 1.1
    // version, no stray CR, bytes over 0x7f in the target as `~`): httparse must read the
    // header lines exactly as Portico did.
    let mapped: Vec<u8> = line.target.iter().map(|&b| if b > 0x7f { b'~' } else { b }).collect();
    let mut strict = Vec::with_capacity(head.len + 16);
    strict.extend_from_slice(line.method);
    strict.push(b' ');
    strict.extend_from_slice(&mapped);
    strict.push(b' ');
    strict.extend_from_slice(req.version().as_str().as_bytes());
    strict.extend_from_slice(b"\r\n");
    let line_len = strict.len();
    strict.extend_from_slice(&buf[line.headers_at..head.len]);
    let mut headers = [httparse::EMPTY_HEADER; 256];
    let mut theirs = httparse::Request::new(&mut headers);
    match theirs.parse(&strict) {
        Ok(httparse::Status::Complete(len)) => {
            assert_eq!(theirs.method.map(str::as_bytes), Some(req.method_name()), "method");
            assert_eq!(theirs.path.map(str::as_bytes), Some(&mapped[..]), "target");
            assert_same_headers(&req, theirs.headers);
            assert_eq!(len - line_len, head.len - line.headers_at, "header block length");
        }
        other => panic!("the strict form of an accepted head: httparse says {other:?}"),
    }
}

/// Same lines, same names; values the same once httparse's are trimmed as Portico's are.
fn assert_same_headers(req: &Request, theirs: &[httparse::Header]) {
    let ours: Vec<_> = req.headers().collect();
    assert_eq!(ours.len(), theirs.len(), "header count");
    for ((name, value), h) in ours.iter().zip(theirs) {
        assert_eq!(*name, h.name.as_bytes(), "header name");
        assert_eq!(*value, trim_ows(h.value), "value of {:?}", h.name);
    }
}

fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(v.len());
    let end = v.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(start, |e| e + 1);
    &v[start..end]
}

/// Decodes the body in `input` twice: all of it offered at each step, and in pieces of
/// sizes chosen by the input. Both must end the same way. `Some(consumed)`: the body
/// ended, and the next request starts after `consumed` bytes.
fn check_body(input: &[u8], framing: BodyFraming) -> Option<usize> {
    let whole = decode(input, framing, |_| usize::MAX);
    // a small xorshift seeded by the input: piece sizes from 1 to 16
    let mut seed = input.len() as u32 ^ 0x9e37_79b9;
    let pieces = decode(input, framing, |_| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        1 + (seed % 16) as usize
    });
    assert_eq!(whole, pieces, "the body decodes differently when split");
    if let BodyFraming::Length(n) = framing {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        assert_eq!(whole.data.len(), n.min(input.len()));
        assert_eq!(whole.end, if input.len() >= n { End::Done } else { End::RanOut });
    }
    (whole.end == End::Done).then_some(whole.consumed)
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    Done,
    Error(ChunkError),
    RanOut,
}

#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    data: Vec<u8>,
    consumed: usize,
    end: End,
}

fn decode(input: &[u8], framing: BodyFraming, mut piece: impl FnMut(usize) -> usize) -> Decoded {
    let mut decoder = BodyDecoder::new(framing);
    let mut out = Decoded { data: Vec::new(), consumed: 0, end: End::RanOut };
    // each step consumes a byte or more, or ends the body: this many always suffice
    for _ in 0..input.len() + 2 {
        if decoder.is_done() {
            out.end = End::Done;
            return out;
        }
        let pos = out.consumed;
        if pos == input.len() {
            return out;
        }
        let chunk = &input[pos..pos.saturating_add(piece(pos)).min(input.len())];
        match decoder.step(chunk) {
            Ok(step) => {
                assert!(step.consumed <= chunk.len(), "consumed more than it was given");
                assert!(step.data.start <= step.data.end && step.data.end <= step.consumed);
                assert!(step.consumed > 0 || decoder.is_done(), "no progress");
                out.data.extend_from_slice(&chunk[step.data]);
                out.consumed += step.consumed;
            }
            Err(e) => {
                // what an erring step had consumed is not told (the connection closes):
                // only the data before the error and the error itself are compared
                out.end = End::Error(e);
                out.consumed = 0;
                return out;
            }
        }
    }
    panic!("the body decoder made no progress");
}
