//! Parsing what uWSGI answers: a status line (`HTTP/1.x NNN reason`) or, without one, CGI
//! headers with `Status:`/`Location:` deciding the status (as nginx: `Status` → that code,
//! else `Location` → 302, else 200); then the headers (httparse), then how the body is
//! framed. Strict where nginx 1.22 is lax: a response with both `Content-Length` and
//! `Transfer-Encoding`, two `Content-Length`s, or a malformed one is refused (→ 502), and
//! an app's own chunked body is decoded once instead of being chunked again.
//!
//! Hop-by-hop headers (`Connection` and what it names, `Keep-Alive`, `Transfer-Encoding`,
//! `Upgrade`, `TE`, `Trailer`, `Proxy-Connection`), `Content-Length` (the front server
//! frames the body itself), nginx's `X-Accel-*` and the CGI `Status` header are not
//! passed to the client.

use std::fmt;
use std::ops::Range;

use crate::ascii::{parse_decimal, trim_ows as trim};

/// Most headers a response may carry.
const MAX_HEADERS: usize = 128;

/// How the response body is delimited on the upstream connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 204, 304): anything uWSGI sends after the head is ignored.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// The app's own chunked encoding, to decode.
    Chunked,
    /// Until uWSGI closes the connection.
    UntilClose,
}

/// A reason phrase: the app's (a position in the buffer), or one Portico supplies.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Reason {
    App(Range<usize>),
    Fixed(&'static str),
}

/// A parsed response head: positions into the buffer it was parsed from (no copy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    reason: Option<Reason>,
    /// End-to-end headers as (name, value) positions, in the app's order and spelling
    /// (repeated ones kept as separate entries), values trimmed.
    headers: Vec<(Range<usize>, Range<usize>)>,
    pub framing: Framing,
    /// The app's `Content-Length`, also when there is no body to frame (a HEAD response
    /// still tells the client the length).
    pub declared_length: Option<u64>,
    /// Bytes of the head, including the blank line; the body starts here.
    pub head_len: usize,
}

impl ResponseHead {
    /// The app's reason phrase, if it gave one; `buf` is what the head was parsed from.
    pub fn reason<'b>(&self, buf: &'b [u8]) -> Option<&'b str> {
        match &self.reason {
            Some(Reason::App(r)) => std::str::from_utf8(&buf[r.clone()]).ok(),
            Some(Reason::Fixed(r)) => Some(r),
            None => None,
        }
    }

    /// The end-to-end headers as (name, value); `buf` is what the head was parsed from.
    pub fn headers<'b>(&'b self, buf: &'b [u8]) -> impl Iterator<Item = (&'b [u8], &'b [u8])> + 'b {
        self.headers.iter().map(move |(n, v)| (&buf[n.clone()], &buf[v.clone()]))
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header<'b>(&'b self, buf: &'b [u8], name: &str) -> Option<&'b [u8]> {
        self.headers(buf).find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v)
    }
}

/// Why a response cannot be relayed (each is a 502 with this in the error log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// The head did not end within the limit.
    TooBig { limit: usize },
    /// Not HTTP: garbage, a bad header line, a bad status.
    Invalid { detail: String },
    /// Both `Content-Length` and `Transfer-Encoding`.
    LengthAndChunked,
    /// A `Content-Length` that is not one decimal number.
    BadContentLength,
    /// A `Transfer-Encoding` that does not end in `chunked`.
    BadTransferEncoding,
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::TooBig { limit } => write!(f, "upstream sent too big header (over {limit} bytes)"),
            HeadError::Invalid { detail } => write!(f, "upstream sent invalid header: {detail}"),
            HeadError::LengthAndChunked => {
                f.write_str("upstream sent both Content-Length and Transfer-Encoding")
            }
            HeadError::BadContentLength => f.write_str("upstream sent invalid or duplicate Content-Length"),
            HeadError::BadTransferEncoding => {
                f.write_str("upstream sent a Transfer-Encoding other than chunked")
            }
        }
    }
}

/// Parses a response head from the start of `buf`. `Ok(None)`: not complete yet (read
/// more). `limit` bounds the head's size; `head_request` makes the body empty whatever
/// the app sends.
pub fn parse_head(buf: &[u8], limit: usize, head_request: bool) -> Result<Option<ResponseHead>, HeadError> {
    let window = &buf[..buf.len().min(limit)];
    let at = |part: &[u8]| {
        let start = part.as_ptr() as usize - window.as_ptr() as usize;
        start..start + part.len()
    };
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let (status, reason, headers, head_len) = if let Some(rest) = later_version(window) {
        // uWSGI echoes SERVER_PROTOCOL in its status line: `HTTP/2.0 200 OK` for a request
        // that came over HTTP/2, which httparse does not read (nginx does)
        let Some(lf) = memchr::memchr(b'\n', rest) else { return incomplete(buf, limit) };
        let line = rest[..lf].strip_suffix(b"\r").unwrap_or(&rest[..lf]);
        let (code, reason) = match line {
            [a, b, c, tail @ ..]
                if [a, b, c].iter().all(|d| d.is_ascii_digit()) && (tail.is_empty() || tail[0] == b' ') =>
            {
                let code = u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
                let reason = tail.get(1..).filter(|r| !r.is_empty()).map(|r| Reason::App(at(r)));
                (code, reason)
            }
            _ => return Err(HeadError::Invalid { detail: "invalid status line".into() }),
        };
        let after = &rest[lf + 1..];
        match httparse::parse_headers(after, &mut storage) {
            Ok(httparse::Status::Complete((n, hs))) => (code, reason, hs, window.len() - after.len() + n),
            Ok(httparse::Status::Partial) => return incomplete(buf, limit),
            Err(e) => return Err(invalid(window, e)),
        }
    } else if looks_like_status_line(window) {
        let mut resp = httparse::Response::new(&mut storage);
        match resp.parse(window) {
            Ok(httparse::Status::Complete(n)) => {
                let code = resp.code.unwrap_or(0);
                let reason = resp.reason.filter(|r| !r.is_empty()).map(|r| Reason::App(at(r.as_bytes())));
                (code, reason, &*resp.headers, n)
            }
            Ok(httparse::Status::Partial) => return incomplete(buf, limit),
            Err(e) => return Err(invalid(window, e)),
        }
    } else {
        if window.len() < 5 && b"HTTP/".starts_with(window) {
            return incomplete(buf, limit);
        }
        match httparse::parse_headers(window, &mut storage) {
            Ok(httparse::Status::Complete((n, hs))) => {
                let (code, reason) = cgi_status(hs)?;
                let reason = reason.map(|r| match r {
                    CgiReason::Given(r) => Reason::App(at(r)),
                    CgiReason::Fixed(r) => Reason::Fixed(r),
                });
                (code, reason, hs, n)
            }
            Ok(httparse::Status::Partial) => return incomplete(buf, limit),
            Err(e) => return Err(invalid(window, e)),
        }
    };
    if !(200..=599).contains(&status) {
        return Err(HeadError::Invalid { detail: format!("status {status} cannot be relayed") });
    }
    let (framing, declared_length) = framing(headers, status, head_request)?;
    // headers named by `Connection` are hop-by-hop too
    let named_by_connection = |name: &str| {
        headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("connection"))
            .flat_map(|h| h.value.split(|&b| b == b','))
            .any(|t| trim(t).eq_ignore_ascii_case(name.as_bytes()))
    };
    let mut out = Vec::with_capacity(headers.len());
    for h in headers {
        if is_hop_by_hop(h.name) || named_by_connection(h.name) {
            continue;
        }
        // httparse checked the name's token characters; a value may not carry controls
        // other than tab (obs-text is passed on as nginx does)
        let value = trim(h.value);
        if value.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
            return Err(HeadError::Invalid { detail: format!("value of {}", h.name) });
        }
        out.push((at(h.name.as_bytes()), at(value)));
    }
    Ok(Some(ResponseHead { status, reason, headers: out, framing, declared_length, head_len }))
}

/// After `HTTP/2.0 ` (or `HTTP/2 `, `HTTP/3 `...), the rest of the status line: a version
/// httparse does not take.
fn later_version(buf: &[u8]) -> Option<&[u8]> {
    let rest = buf.strip_prefix(b"HTTP/")?;
    match rest {
        [major, b'.', minor, b' ', rest @ ..] if (b'2'..=b'9').contains(major) && minor.is_ascii_digit() => {
            Some(rest)
        }
        [major, b' ', rest @ ..] if (b'2'..=b'9').contains(major) => Some(rest),
        _ => None,
    }
}

fn looks_like_status_line(buf: &[u8]) -> bool {
    buf.len() >= 5 && &buf[..5] == b"HTTP/"
}

fn incomplete<T>(buf: &[u8], limit: usize) -> Result<Option<T>, HeadError> {
    if buf.len() >= limit {
        Err(HeadError::TooBig { limit })
    } else {
        Ok(None)
    }
}

fn invalid(buf: &[u8], e: httparse::Error) -> HeadError {
    let shown: String =
        buf.iter().take(32).flat_map(|b| std::ascii::escape_default(*b)).map(char::from).collect();
    HeadError::Invalid { detail: format!("\"{shown}...\" ({e})") }
}

/// The reason phrase a CGI head gives, or the one its status implies.
enum CgiReason<'a> {
    Given(&'a [u8]),
    Fixed(&'static str),
}

/// The status of a head without a status line: `Status: NNN reason`, else `Location` →
/// 302, else 200.
fn cgi_status<'a>(headers: &[httparse::Header<'a>]) -> Result<(u16, Option<CgiReason<'a>>), HeadError> {
    if let Some(h) = headers.iter().find(|h| h.name.eq_ignore_ascii_case("status")) {
        let v = trim(h.value);
        let code = v
            .get(..3)
            .filter(|d| d.iter().all(u8::is_ascii_digit) && (v.len() == 3 || v[3] == b' '))
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| d.parse::<u16>().ok())
            .ok_or_else(|| HeadError::Invalid {
                detail: format!("Status: {}", String::from_utf8_lossy(v)),
            })?;
        let reason = Some(trim(&v[3..])).filter(|r| !r.is_empty() && std::str::from_utf8(r).is_ok());
        return Ok((code, reason.map(CgiReason::Given)));
    }
    if headers.iter().any(|h| h.name.eq_ignore_ascii_case("location")) {
        return Ok((302, Some(CgiReason::Fixed("Moved Temporarily"))));
    }
    Ok((200, None))
}

fn framing(
    headers: &[httparse::Header],
    status: u16,
    head_request: bool,
) -> Result<(Framing, Option<u64>), HeadError> {
    let mut lengths = headers.iter().filter(|h| h.name.eq_ignore_ascii_case("content-length"));
    let length = lengths.next();
    if length.is_some() && lengths.next().is_some() {
        return Err(HeadError::BadContentLength);
    }
    let te = headers.iter().rev().find(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
    if te.is_some() && length.is_some() {
        return Err(HeadError::LengthAndChunked);
    }
    let length = match length {
        Some(h) => Some(parse_decimal(trim(h.value)).ok_or(HeadError::BadContentLength)?),
        None => None,
    };
    if let Some(te) = te {
        let last = te.value.rsplit(|&b| b == b',').next().map(trim).unwrap_or(b"");
        if !last.eq_ignore_ascii_case(b"chunked") {
            return Err(HeadError::BadTransferEncoding);
        }
    }
    if head_request || status == 204 || status == 304 {
        return Ok((Framing::None, length));
    }
    let framing = match (length, te) {
        (Some(n), _) => Framing::Length(n),
        (None, Some(_)) => Framing::Chunked,
        (None, None) => Framing::UntilClose,
    };
    Ok((framing, length))
}

fn is_hop_by_hop(name: &str) -> bool {
    const HOP: [&str; 9] = [
        "connection",
        "keep-alive",
        "transfer-encoding",
        "upgrade",
        "te",
        "trailer",
        "proxy-connection",
        "content-length",
        "status",
    ];
    HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
        || name.len() >= 8 && name[..8].eq_ignore_ascii_case("x-accel-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<Option<ResponseHead>, HeadError> {
        parse_head(raw, 4096, false)
    }

    /// The headers of `raw`'s head, as `name: value` lines.
    fn lines(raw: &[u8]) -> Vec<String> {
        let h = parse(raw).unwrap().unwrap();
        h.headers(raw)
            .map(|(n, v)| {
                format!("{}: {}", String::from_utf8_lossy(n).to_ascii_lowercase(), String::from_utf8_lossy(v))
            })
            .collect()
    }

    #[test]
    fn flask_response() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 602\r\n\r\n{";
        let h = parse(raw).unwrap().unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.reason(raw), Some("OK"));
        assert_eq!(h.framing, Framing::Length(602));
        assert_eq!(h.head_len, 72);
        assert_eq!(lines(raw), ["content-type: application/json"]);
    }

    #[test]
    fn partial_heads_ask_for_more() {
        assert_eq!(parse(b""), Ok(None));
        assert_eq!(parse(b"HT"), Ok(None));
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\nContent-"), Ok(None));
        assert_eq!(parse(b"Status: 404\r\n"), Ok(None));
    }

    #[test]
    fn cgi_heads_as_nginx() {
        // ../shared/uwsgi/captures/nginx_to_upstream/23_resp_cgi-status, 24_resp_no-status, 25_resp_location
        let raw = b"Status: 404 Not Here\r\nContent-Type: text/plain\r\n\r\n";
        let h = parse(raw).unwrap().unwrap();
        assert_eq!((h.status, h.reason(raw)), (404, Some("Not Here")));
        assert_eq!(lines(raw), ["content-type: text/plain"]);
        let h = parse(b"Content-Type: text/plain\r\n\r\nbody").unwrap().unwrap();
        assert_eq!((h.status, h.framing), (200, Framing::UntilClose));
        let raw = b"Location: /elsewhere\r\n\r\n";
        let h = parse(raw).unwrap().unwrap();
        assert_eq!((h.status, h.reason(raw)), (302, Some("Moved Temporarily")));
        assert_eq!(h.header(raw, "LOCATION"), Some(&b"/elsewhere"[..]));
    }

    #[test]
    fn lf_only_heads() {
        // 30_resp_lf-only
        // uWSGI answers a request that came over HTTP/2 in HTTP/2.0's words
        let raw = b"HTTP/2.0 201 Made\r\nContent-Length: 2\r\nX-A: 1\r\n\r\nok";
        let h = parse(raw).unwrap().unwrap();
        assert_eq!((h.status, h.head_len, h.headers.len()), (201, raw.len() - 2, 1));
        assert!(matches!(h.reason, Some(Reason::App(ref r)) if &raw[r.clone()] == b"Made"));
        assert_eq!(parse(b"HTTP/2.0 200 OK\r\nX-"), Ok(None));
        assert!(parse(b"HTTP/2.0 2000 OK\r\n\r\n").is_err());
        let h = parse(b"HTTP/1.1 201 Created\nContent-Length: 2\n\nok").unwrap().unwrap();
        assert_eq!((h.status, h.framing), (201, Framing::Length(2)));
    }

    #[test]
    fn framing_rules() {
        let h = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        assert_eq!(h.headers(b"").count(), 0);
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(HeadError::LengthAndChunked)
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n"),
            Err(HeadError::BadContentLength)
        );
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 3x\r\n\r\n"), Err(HeadError::BadContentLength));
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"), Err(HeadError::BadContentLength));
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Err(HeadError::BadTransferEncoding)
        );
        let h = parse(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.framing, Framing::None);
        let h = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", 4096, true).unwrap().unwrap();
        assert_eq!((h.framing, h.declared_length), (Framing::None, Some(1000)));
    }

    #[test]
    fn hop_by_hop_headers_are_dropped_others_kept_in_order() {
        // 27_resp_hop-headers
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close, X-Drop-Me\r\nKeep-Alive: timeout=5\r\nServer: recorder/1\r\nDate: Mon, 01 Jan 2001 00:00:00 GMT\r\nX-Accel-Redirect: /x\r\nStatus: 299 Weird\r\nX-Drop-Me: 1\r\nX-Custom: a\r\nX-Custom: b\r\nSet-Cookie: a=1; Path=/\r\nSet-Cookie: b=2; Path=/\r\n\r\nabc";
        assert_eq!(
            lines(raw),
            [
                "content-type: text/plain",
                "server: recorder/1",
                "date: Mon, 01 Jan 2001 00:00:00 GMT",
                "x-custom: a",
                "x-custom: b",
                "set-cookie: a=1; Path=/",
                "set-cookie: b=2; Path=/"
            ]
        );
    }

    #[test]
    fn garbage_and_oversize() {
        // 22_resp_garbage, 29_resp_big-header
        assert!(matches!(parse(b"\x00\x01\x02garbage\r\n\r\n"), Err(HeadError::Invalid { .. })));
        let mut big = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
        big.extend(std::iter::repeat_n(b'x', 5000));
        assert_eq!(parse(&big), Err(HeadError::TooBig { limit: 4096 }));
        assert!(matches!(parse(b"HTTP/1.1 999 Nope\r\n\r\n"), Err(HeadError::Invalid { .. })));
        assert!(matches!(parse(b"Status: abc\r\n\r\n"), Err(HeadError::Invalid { .. })));
    }
}
