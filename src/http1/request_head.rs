//! The request head as nginx 1.22 reads it, stricter where nginx is lax: the request line
//! is parsed here byte by byte (method, target and version each have their own answer
//! when wrong: 400, 405, 414, 505), the header block by httparse into a stack array, and
//! the framing headers are checked before anything else sees the request.
//!
//! Pure: bytes in, a [`RequestHead`] of positions into those bytes out (no copy, no
//! allocation beyond the caller's reused header list), or the status to answer with.

use std::fmt;

use crate::ascii::{parse_decimal, trim_ows};

/// Size limits, nginx's `large_client_header_buffers` (4 buffers of 8k by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLimits {
    /// Longest request line; longer is 414 (one large buffer).
    pub max_request_line: usize,
    /// Longest header line; longer is 400.
    pub max_header_line: usize,
    /// Largest head in all; larger is 400.
    pub max_head: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits { max_request_line: 8 << 10, max_header_line: 8 << 10, max_head: 32 << 10 }
    }
}

/// Most header lines one head may have (nginx sets no count, only the size; 256 lines is
/// more than any browser sends, and bounds the stack array the parser fills).
pub const MAX_HEADERS: usize = 256;
/// Header lines parsed without the large array: what browsers send, with room.
const FEW_HEADERS: usize = 48;

/// The request methods Portico tells apart; any other uppercase token is `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Patch,
    Other,
}

impl Method {
    fn from_name(name: &[u8]) -> Method {
        match name {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"PATCH" => Method::Patch,
            _ => Method::Other,
        }
    }
}

/// The protocol versions served; HTTP/1.2 and later minors are treated as 1.1 (RFC 9112
/// §2.3), HTTP/2 and later in a request line get 505. `Http2` is set by the HTTP/2
/// wire on the head it writes for a stream (`http2::request_head`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
    Http2,
}

impl Version {
    /// `$server_protocol` and uwsgi's `SERVER_PROTOCOL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
            Version::Http2 => "HTTP/2.0",
        }
    }
}

/// A byte range of the buffer the head was parsed from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn of(buf: &[u8], part: &[u8]) -> Span {
        // `part` is a subslice of `buf`; heads are at most a few tens of KiB
        let start = part.as_ptr() as usize - buf.as_ptr() as usize;
        Span { start: start as u32, end: (start + part.len()) as u32 }
    }

    fn get(self, buf: &[u8]) -> &[u8] {
        &buf[self.start as usize..self.end as usize]
    }
}

/// One header line: its name and its value (trimmed of optional whitespace).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeaderSpan {
    name: Span,
    value: Span,
}

/// How the request body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body (no `Content-Length`, no `Transfer-Encoding`).
    None,
    /// `Content-Length` bytes (possibly 0).
    Length(u64),
    Chunked,
}

/// The headers the server itself acts on, found once while parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Known {
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    Expect,
    ContentType,
    IfMatch,
    IfNoneMatch,
    IfModifiedSince,
    IfUnmodifiedSince,
    Range,
    IfRange,
    Referer,
}

const KNOWN: [(&[u8], Known); 13] = [
    (b"host", Known::Host),
    (b"content-length", Known::ContentLength),
    (b"transfer-encoding", Known::TransferEncoding),
    (b"connection", Known::Connection),
    (b"expect", Known::Expect),
    (b"content-type", Known::ContentType),
    (b"if-match", Known::IfMatch),
    (b"if-none-match", Known::IfNoneMatch),
    (b"if-modified-since", Known::IfModifiedSince),
    (b"if-unmodified-since", Known::IfUnmodifiedSince),
    (b"range", Known::Range),
    (b"if-range", Known::IfRange),
    (b"referer", Known::Referer),
];

/// A parsed request head: positions into the buffer it came from.
#[derive(Clone, Debug)]
pub struct RequestHead {
    pub method: Method,
    method_name: Span,
    target: Span,
    /// The authority of an absolute-form target (`GET http://host/p`), which wins over
    /// `Host` as RFC 9112 §3.2.2 says.
    target_host: Option<Span>,
    pub version: Version,
    /// Bytes the head took, leading empty lines and the final blank line included.
    pub len: usize,
    pub body: BodyFraming,
    /// What the client asked for: HTTP/1.1 unless `Connection: close`, HTTP/1.0 only
    /// with `Connection: keep-alive`.
    pub keep_alive: bool,
    pub expect_continue: bool,
    headers: Vec<HeaderSpan>,
    /// Index + 1 into `headers` of the first line of each [`Known`] header; 0 if absent.
    known: [u16; KNOWN.len()],
}

impl RequestHead {
    /// Gives back the header list for reuse by the next request.
    pub fn into_header_list(self) -> Vec<HeaderSpan> {
        self.headers
    }
}

/// A parsed head together with the bytes it points into.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    head: &'a RequestHead,
    buf: &'a [u8],
}

impl<'a> Request<'a> {
    pub fn new(head: &'a RequestHead, buf: &'a [u8]) -> Request<'a> {
        Request { head, buf }
    }

    pub fn head(&self) -> &'a RequestHead {
        self.head
    }

    pub fn method(&self) -> Method {
        self.head.method
    }

    /// The method as sent (`$request_method`, `REQUEST_METHOD`).
    pub fn method_name(&self) -> &'a [u8] {
        self.head.method_name.get(self.buf)
    }

    /// The request target as sent.
    pub fn target(&self) -> &'a [u8] {
        self.head.target.get(self.buf)
    }

    pub fn version(&self) -> Version {
        self.head.version
    }

    /// The host the request names: an absolute-form target's authority, else `Host`.
    pub fn host(&self) -> Option<&'a [u8]> {
        match self.head.target_host {
            Some(span) => Some(span.get(self.buf)),
            None => self.known(Known::Host),
        }
    }

    /// The first value of a header the server acts on.
    pub fn known(&self, which: Known) -> Option<&'a [u8]> {
        let i = self.head.known[which as usize];
        (i > 0).then(|| self.head.headers[usize::from(i) - 1].value.get(self.buf))
    }

    /// Every header line as (name, value), in the order sent.
    pub fn headers(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let buf = self.buf;
        self.head.headers.iter().map(move |h| (h.name.get(buf), h.value.get(buf)))
    }

    /// The values of every line of header `name` (case-insensitive), in order.
    pub fn header_values<'n>(&self, name: &'n [u8]) -> impl Iterator<Item = &'a [u8]> + 'n
    where
        'a: 'n,
    {
        self.headers().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// Bytes the header lines take on the wire, `Name: value\r\n` each (for
    /// `$request_length` of a head that arrived with bare LFs this is an estimate).
    pub fn head_len(&self) -> usize {
        self.head.len
    }
}

/// Why a head was refused: the status to answer (the connection is closed after it) and
/// nginx's words for the error log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadError {
    pub status: u16,
    pub reason: &'static str,
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason)
    }
}

const fn refuse(status: u16, reason: &'static str) -> HeadError {
    HeadError { status, reason }
}

/// Parses the head at the start of `buf`. `Ok(None)`: not complete yet (read more).
/// `headers` is a cleared list to fill; it comes back inside the head.
pub fn parse_head(
    buf: &[u8],
    limits: &HeadLimits,
    mut headers: Vec<HeaderSpan>,
) -> Result<Result<RequestHead, Vec<HeaderSpan>>, HeadError> {
    headers.clear();
    // empty lines before the request line are skipped (RFC 9112 §2.2), as nginx does
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(buf.len());
    if start > limits.max_request_line {
        // endless empty lines: they count against the request line
        return Err(refuse(400, "client sent invalid request"));
    }
    let rest = &buf[start..];
    let Some(lf) = memchr::memchr(b'\n', rest) else {
        if rest.len() > limits.max_request_line {
            return Err(refuse(414, "client sent too long URI"));
        }
        // a request line can already be refused before its end arrives
        check_partial_line(rest)?;
        return Ok(Err(headers));
    };
    if lf > limits.max_request_line {
        return Err(refuse(414, "client sent too long URI"));
    }
    let line = rest[..lf].strip_suffix(b"\r").unwrap_or(&rest[..lf]);
    let parsed = parse_request_line(line)?;

    let header_block = &rest[lf + 1..];
    // a small array first (clearing it is per-request work), a large one for rare heads
    let mut few = [httparse::EMPTY_HEADER; FEW_HEADERS];
    let mut many;
    let mut parsed_block = httparse::parse_headers(header_block, &mut few);
    if let Err(httparse::Error::TooManyHeaders) = parsed_block {
        many = [httparse::EMPTY_HEADER; MAX_HEADERS];
        parsed_block = httparse::parse_headers(header_block, &mut many);
    }
    let (block_len, lines) = match parsed_block {
        Ok(httparse::Status::Complete((n, lines))) => (n, lines),
        Ok(httparse::Status::Partial) => {
            if start + lf + 1 + header_block.len() > limits.max_head {
                return Err(refuse(400, "client sent too large request"));
            }
            let last_line = header_block.rsplit(|&b| b == b'\n').next().unwrap_or(b"");
            if line_length(last_line) > limits.max_header_line {
                return Err(refuse(400, "client sent too long header line"));
            }
            return Ok(Err(headers));
        }
        Err(httparse::Error::TooManyHeaders) => return Err(refuse(400, "client sent too many header lines")),
        Err(_) => return Err(refuse(400, "client sent invalid header line")),
    };
    let len = start + lf + 1 + block_len;
    if len > limits.max_head {
        return Err(refuse(400, "client sent too large request"));
    }

    let mut head = RequestHead {
        method: Method::from_name(parsed.method),
        method_name: Span::of(buf, parsed.method),
        target: Span::of(buf, parsed.target),
        target_host: parsed.target_host.map(|h| Span::of(buf, h)),
        version: parsed.version,
        len,
        body: BodyFraming::None,
        keep_alive: parsed.version == Version::Http11,
        expect_continue: false,
        headers: Vec::new(),
        known: [0; KNOWN.len()],
    };
    // `close` wins over `keep-alive`, wherever each is written
    let mut closed = false;
    for line in lines.iter() {
        let name = line.name.as_bytes();
        let value = trim_ows(line.value);
        // the line as sent, from its name to its line end, however the reads fell
        let name_at = name.as_ptr() as usize - header_block.as_ptr() as usize;
        let value_end = line.value.as_ptr() as usize - header_block.as_ptr() as usize + line.value.len();
        let line_end =
            memchr::memchr(b'\n', &header_block[value_end..]).map_or(header_block.len(), |i| value_end + i);
        if line_length(&header_block[name_at..line_end]) > limits.max_header_line {
            return Err(refuse(400, "client sent too long header line"));
        }
        if let Some(which) = KNOWN.iter().position(|(n, _)| n.eq_ignore_ascii_case(name)) {
            if head.known[which] == 0 {
                head.known[which] = (headers.len() + 1) as u16;
            } else if matches!(KNOWN[which].1, Known::Host | Known::ContentLength | Known::TransferEncoding) {
                return Err(refuse(
                    400,
                    match KNOWN[which].1 {
                        Known::Host => "client sent duplicate host header",
                        Known::ContentLength => "client sent duplicate \"Content-Length\" header",
                        _ => "client sent duplicate \"Transfer-Encoding\" header",
                    },
                ));
            }
            match KNOWN[which].1 {
                Known::Connection => {
                    for token in value.split(|&b| b == b',').map(trim_ows) {
                        if token.eq_ignore_ascii_case(b"close") {
                            closed = true;
                        } else if token.eq_ignore_ascii_case(b"keep-alive") && head.version == Version::Http10
                        {
                            head.keep_alive = true;
                        }
                    }
                }
                Known::Expect => {
                    head.expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
                }
                _ => {}
            }
        }
        headers.push(HeaderSpan { name: Span::of(buf, name), value: Span::of(buf, value) });
    }
    head.keep_alive &= !closed;
    head.headers = headers;
    head.body = framing(&head, buf)?;
    match parsed.method {
        b"TRACE" => return Err(refuse(405, "client sent TRACE method")),
        b"CONNECT" => return Err(refuse(405, "client sent CONNECT method")),
        _ => {}
    }
    Ok(Ok(head))
}

/// A header line's length without its line end (a CR already here, its LF not yet,
/// counts as the line end).
fn line_length(line: &[u8]) -> usize {
    line.strip_suffix(b"\r").unwrap_or(line).len()
}

/// The body's framing from `Content-Length` and `Transfer-Encoding`, refusing the
/// combinations request smuggling is made of.
fn framing(head: &RequestHead, buf: &[u8]) -> Result<BodyFraming, HeadError> {
    let req = Request::new(head, buf);
    let length = req.known(Known::ContentLength);
    match req.known(Known::TransferEncoding) {
        Some(te) => {
            if length.is_some() {
                return Err(refuse(
                    400,
                    "client sent \"Content-Length\" and \"Transfer-Encoding\" headers at the same time",
                ));
            }
            if head.version == Version::Http10 {
                return Err(refuse(400, "client sent HTTP/1.0 request with \"Transfer-Encoding\" header"));
            }
            if !te.eq_ignore_ascii_case(b"chunked") {
                return Err(refuse(501, "client sent unknown \"Transfer-Encoding\""));
            }
            Ok(BodyFraming::Chunked)
        }
        None => match length {
            Some(v) => match parse_decimal(v) {
                Some(n) if n <= i64::MAX as u64 => Ok(BodyFraming::Length(n)),
                _ => Err(refuse(400, "client sent invalid \"Content-Length\" header")),
            },
            None => Ok(BodyFraming::None),
        },
    }
}

struct RequestLine<'a> {
    method: &'a [u8],
    target: &'a [u8],
    target_host: Option<&'a [u8]>,
    version: Version,
}

/// `METHOD SP target SP HTTP/d.d`; nginx's answers for each part that is wrong.
fn parse_request_line(line: &[u8]) -> Result<RequestLine<'_>, HeadError> {
    let method_end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let method = &line[..method_end];
    if method.is_empty() || !method.iter().all(|&b| b.is_ascii_uppercase() || b == b'_' || b == b'-') {
        return Err(refuse(400, "client sent invalid method"));
    }
    let rest = skip_spaces(&line[method_end..]);
    let target_end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    let target = &rest[..target_end];
    if target.is_empty() {
        return Err(refuse(400, "client sent invalid request"));
    }
    if target.iter().any(|&b| b < 0x21 || b == 0x7f) {
        return Err(refuse(400, "client sent invalid request"));
    }
    let target_host = match target[0] {
        b'/' => None,
        _ => Some(absolute_form_host(target)?),
    };
    let version_text = skip_spaces(&rest[target_end..]);
    if version_text.is_empty() {
        // HTTP/0.9 (no version) is not served: stricter than nginx
        return Err(refuse(400, "client sent HTTP/0.9 request"));
    }
    let version = parse_version(version_text)?;
    Ok(RequestLine { method, target, target_host, version })
}

fn skip_spaces(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ').count();
    &s[n..]
}

/// The host of `scheme://host[:port][/...]`; anything else is a 400 (`OPTIONS *` too:
/// Portico has no server-wide options to describe).
fn absolute_form_host(target: &[u8]) -> Result<&[u8], HeadError> {
    let bad = || refuse(400, "client sent invalid request");
    let colon = target.iter().position(|&b| !b.is_ascii_alphabetic()).ok_or_else(bad)?;
    if colon == 0 || !target[colon..].starts_with(b"://") {
        return Err(bad());
    }
    let authority = &target[colon + 3..];
    let end = authority.iter().position(|&b| b == b'/' || b == b'?').unwrap_or(authority.len());
    let host = &authority[..end];
    let valid = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']');
    if host.is_empty() || !host.iter().all(|&b| valid(b)) {
        return Err(bad());
    }
    Ok(host)
}

/// `HTTP/1.0`, `HTTP/1.1` (and later 1.x minors, as 1.1); a major of 2 or more is 505.
fn parse_version(v: &[u8]) -> Result<Version, HeadError> {
    let bad = refuse(400, "client sent invalid request");
    let numbers = v.strip_prefix(b"HTTP/").ok_or(bad.clone())?;
    let dot = numbers.iter().position(|&b| b == b'.').ok_or(bad.clone())?;
    let (major, minor) = (&numbers[..dot], &numbers[dot + 1..]);
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if !digits(major) || !digits(minor) || major.len() > 1 && major[0] == b'0' {
        return Err(bad);
    }
    if major.len() > 1 || major[0] >= b'2' {
        return Err(refuse(505, "client sent unsupported HTTP version"));
    }
    if major[0] != b'1' || minor.len() > 1 {
        return Err(bad);
    }
    Ok(if minor[0] == b'0' { Version::Http10 } else { Version::Http11 })
}

/// Refuses what is already wrong in a request line whose end has not arrived: a method
/// that is not an uppercase token, or a control byte.
fn check_partial_line(line: &[u8]) -> Result<(), HeadError> {
    let method_end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    if !line[..method_end].iter().all(|&b| b.is_ascii_uppercase() || b == b'_' || b == b'-') {
        return Err(refuse(400, "client sent invalid method"));
    }
    if line.iter().any(|&b| (b < 0x20 && b != b'\r') || b == 0x7f) {
        return Err(refuse(400, "client sent invalid request"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<Option<RequestHead>, HeadError> {
        parse_head(raw, &HeadLimits::default(), Vec::new()).map(Result::ok)
    }

    fn status(raw: &[u8]) -> u16 {
        match parse(raw) {
            Ok(Some(_)) => 200,
            Ok(None) => 0,
            Err(e) => e.status,
        }
    }

    #[test]
    fn a_browser_request() {
        let raw = b"GET /static/app.css?v=2 HTTP/1.1\r\nHost: Example.com\r\nAccept: */*\r\nCookie: a=1\r\nCookie: b=2\r\n\r\nNEXT";
        let head = parse(raw).unwrap().unwrap();
        let req = Request::new(&head, raw);
        assert_eq!(req.method(), Method::Get);
        assert_eq!(req.method_name(), b"GET");
        assert_eq!(req.target(), b"/static/app.css?v=2");
        assert_eq!(req.version(), Version::Http11);
        assert_eq!(req.host(), Some(&b"Example.com"[..]));
        assert_eq!(head.len, raw.len() - 4);
        assert!(head.keep_alive);
        assert_eq!(head.body, BodyFraming::None);
        assert_eq!(req.header_values(b"cookie").collect::<Vec<_>>(), vec![&b"a=1"[..], b"b=2"]);
        assert_eq!(req.headers().count(), 4);
    }

    #[test]
    fn incomplete_heads_ask_for_more() {
        for raw in [&b""[..], b"GET", b"GET / HTTP/1.1\r\n", b"GET / HTTP/1.1\r\nHost: x\r\n", b"\r\n\r\n"] {
            assert_eq!(status(raw), 0, "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn request_line_rules() {
        let cases: &[(&[u8], u16)] = &[
            (b"get / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (b"TRACE / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
            (b"CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (b"GET /\r\n\r\n", 400),
            (b"GET / HTTP/2.0\r\n\r\n", 505),
            (b"GET / HTTP/3.0\r\n\r\n", 505),
            (b"GET / HTTP/1.x\r\n\r\n", 400),
            (b"GET / HTTP/1.1x\r\n\r\n", 400),
            (b"GET / HTTX/1.1\r\n\r\n", 400),
            (b"GET / HTTP/01.1\r\n\r\n", 400),
            (b"GET / http/1.1\r\n\r\n", 400),
            (b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (b"GET /a\x7fb HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (b"GET /a\x01", 400),
            (b"ge", 400),
            (b"GET http://localhost/a HTTP/1.1\r\nHost: other\r\n\r\n", 200),
            (b"\r\n\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 200),
            (b"GET / HTTP/1.1\nHost: x\n\n", 200),
            (b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", 200),
        ];
        for (raw, want) in cases {
            assert_eq!(status(raw), *want, "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn connect_is_not_allowed() {
        // (its usual authority-form target is refused as a bad request line, above)
        assert_eq!(status(b"CONNECT /x HTTP/1.1\r\nHost: x\r\n\r\n"), 405);
    }

    #[test]
    fn absolute_form_host_wins() {
        let raw = b"GET http://localhost:8080/a?q HTTP/1.1\r\nHost: other\r\n\r\n";
        let head = parse(raw).unwrap().unwrap();
        assert_eq!(Request::new(&head, raw).host(), Some(&b"localhost:8080"[..]));
        assert_eq!(status(b"GET http:///a HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status(b"GET ftp//x/ HTTP/1.1\r\n\r\n"), 400);
    }

    #[test]
    fn size_limits() {
        assert_eq!(status(&vec![b'\n'; 9000]), 400, "empty lines without end");
        let mut long_line = b"GET /".to_vec();
        long_line.extend(std::iter::repeat_n(b'x', 9000));
        assert_eq!(status(&long_line), 414, "without its end");
        long_line.extend_from_slice(b" HTTP/1.1\r\n\r\n");
        assert_eq!(status(&long_line), 414);

        let mut big_header = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        big_header.extend(std::iter::repeat_n(b'y', 9000));
        assert_eq!(status(&big_header), 400, "without its end");
        big_header.extend_from_slice(b"\r\n\r\n");
        assert_eq!(status(&big_header), 400);

        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..10 {
            many.extend_from_slice(format!("X-{i}: ").as_bytes());
            many.extend(std::iter::repeat_n(b'z', 4000));
            many.extend_from_slice(b"\r\n");
        }
        assert_eq!(status(&many), 400, "over 32k without its end");
        many.extend_from_slice(b"\r\n");
        assert_eq!(status(&many), 400);

        // the same verdict whether a line arrives whole or its CR and LF in two reads
        for spaces in [0, 9000] {
            let mut exact = b"GET / HTTP/1.1\r\nX:".to_vec();
            exact.extend(std::iter::repeat_n(b' ', spaces));
            exact.extend(std::iter::repeat_n(b'a', 8192 - 2 - spaces.min(8190)));
            exact.extend_from_slice(b"\r\n\r\n");
            let whole = status(&exact);
            let split = status(&exact[..exact.len() - 3]);
            assert_eq!((whole, split), if spaces == 0 { (200, 0) } else { (400, 400) }, "{spaces} spaces");
        }

        let mut count = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..300 {
            count.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
        }
        count.extend_from_slice(b"\r\n");
        assert_eq!(status(&count), 400);
    }

    #[test]
    fn header_rules() {
        let cases: &[(&[u8], u16)] = &[
            (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nX@Y: 1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nX{Y}: 1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nX_Y: 1\r\n\r\n", 200),
        ];
        for (raw, want) in cases {
            assert_eq!(status(raw), *want, "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn framing_rules() {
        let cases: &[(&[u8], u16)] = &[
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5 5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ];
        for (raw, want) in cases {
            assert_eq!(status(raw), *want, "{:?}", String::from_utf8_lossy(raw));
        }
        let head =
            parse(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.body, BodyFraming::Chunked);
        let head = parse(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length:  12 \r\n\r\n").unwrap().unwrap();
        assert_eq!(head.body, BodyFraming::Length(12));
    }

    #[test]
    fn keep_alive_and_expect() {
        let ka = |raw: &[u8]| parse(raw).unwrap().unwrap().keep_alive;
        assert!(ka(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.0\r\nConnection: close, keep-alive\r\n\r\n"));
        let head = parse(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(head.expect_continue);
    }
}
