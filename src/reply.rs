//! A response Portico generates itself (files, errors, redirects), as a value: status,
//! headers in nginx's order, and a body that is either bytes or ranges of an open file.
//! Encoding the head to HTTP/1.1 bytes is pure; sending it is the server's job.

use std::borrow::Cow;
use std::fmt::Display;
use std::io::Write as _;

use bytes::Bytes;

use crate::http1::response_head::{self, reason, SERVER_NAME};

/// A response head without the per-connection headers (`Date`, `Connection`), which are
/// added when it is encoded.
#[derive(Debug, Default)]
pub struct Head {
    pub status: u16,
    /// Headers nginx writes before `Connection`, in its order.
    pub content_type: Option<Cow<'static, str>>,
    pub content_length: Option<u64>,
    /// Modification time (seconds since the epoch), sent as `Last-Modified`.
    pub last_modified: Option<i64>,
    pub location: Option<String>,
    /// `Transfer-Encoding: chunked` (a body compressed on the fly, to an HTTP/1.1 client).
    pub chunked: bool,
    /// `Vary: Accept-Encoding`, right after `Connection` as nginx's `gzip_vary` writes it.
    pub vary_encoding: bool,
    /// `Content-Encoding`, last (as nginx's gzip filter adds it after the other headers).
    pub content_encoding: Option<&'static str>,
    /// `ETag` and `Accept-Ranges: bytes`, after `Connection` (typed: a file's usual
    /// headers cost no allocation).
    pub etag: Option<ETag>,
    /// `expires` and `add_header` lines, after `ETag` as nginx writes them.
    policy: Vec<u8>,
    pub accept_ranges: bool,
    /// Everything else, after those, already encoded as `Name: value\r\n` lines
    /// (written in place: no allocation per header).
    extra: Vec<u8>,
}

impl Head {
    pub fn new(status: u16) -> Head {
        Head { status, ..Head::default() }
    }

    /// Adds a header after `Connection`.
    pub fn header(&mut self, name: &str, value: impl Display) {
        let _ = write!(self.extra, "{name}: {value}\r\n");
    }

    /// Where the location's `expires` and `add_header` lines are written.
    pub fn policy_lines(&mut self) -> &mut Vec<u8> {
        &mut self.policy
    }

    /// The encoded header lines besides the typed ones: the location's, then the others.
    pub fn added_lines(&self) -> impl Iterator<Item = &[u8]> {
        [&self.policy[..], &self.extra[..]].into_iter()
    }

    pub fn with(mut self, name: &str, value: impl Display) -> Head {
        self.header(name, value);
        self
    }

    /// Encodes the head as HTTP/1.1, with `date` and the keep-alive decision.
    pub fn encode(&self, date: &str, keepalive: bool, out: &mut Vec<u8>) {
        response_head::start_head(self.status, reason(self.status), None, date.as_bytes(), out);
        if let Some(ct) = &self.content_type {
            let _ = write!(out, "Content-Type: {ct}\r\n");
        }
        if let Some(len) = self.content_length {
            let _ = write!(out, "Content-Length: {len}\r\n");
        }
        if let Some(mtime) = self.last_modified {
            if let Some(date) = crate::clock::http_date(mtime) {
                let _ = write!(out, "Last-Modified: {date}\r\n");
            }
        }
        if let Some(loc) = &self.location {
            let _ = write!(out, "Location: {loc}\r\n");
        }
        if self.chunked {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
        response_head::connection(keepalive, out);
        if self.vary_encoding {
            out.extend_from_slice(b"Vary: Accept-Encoding\r\n");
        }
        if let Some(etag) = &self.etag {
            response_head::header(b"ETag", etag.as_bytes(), out);
        }
        out.extend_from_slice(&self.policy);
        if self.accept_ranges {
            out.extend_from_slice(b"Accept-Ranges: bytes\r\n");
        }
        out.extend_from_slice(&self.extra);
        if let Some(coding) = self.content_encoding {
            let _ = write!(out, "Content-Encoding: {coding}\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// An ETag, formatted without allocating (at most 44 bytes: `W/`, two 64-bit hex numbers
/// and a coding's name).
#[derive(Clone, Copy)]
pub struct ETag {
    buf: [u8; 48],
    len: usize,
}

impl ETag {
    /// nginx's strong ETag of a file: `"<mtime hex>-<size hex>"`.
    pub fn strong(mtime: i64, size: u64) -> ETag {
        let mut e = ETag { buf: [0; 48], len: 0 };
        let _ = std::fmt::Write::write_fmt(&mut e, format_args!("\"{mtime:x}-{size:x}\""));
        e
    }

    /// [`ETag::strong`] of a precompressed file: `"<mtime hex>-<size hex>-<coding>"`.
    pub fn strong_coded(mtime: i64, size: u64, coding: &str) -> ETag {
        let mut e = ETag { buf: [0; 48], len: 0 };
        let _ = std::fmt::Write::write_fmt(&mut e, format_args!("\"{mtime:x}-{size:x}-{coding}\""));
        e
    }

    /// The same tag, weak (`W/"…"`), as nginx marks the ETag of an answer it changes
    /// on the way (compressed: not byte-for-byte the file).
    pub fn weak(self) -> ETag {
        if self.starts_with("W/") {
            return self;
        }
        let mut e = ETag { buf: [0; 48], len: 0 };
        let _ = std::fmt::Write::write_fmt(&mut e, format_args!("W/{self}"));
        e
    }
}

impl std::fmt::Write for ETag {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl std::ops::Deref for ETag {
    type Target = str;
    fn deref(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl std::fmt::Display for ETag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

impl std::fmt::Debug for ETag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

/// An open file: the request's own, or shared with the open file cache.
#[derive(Debug)]
pub enum OpenFile {
    Own(std::fs::File),
    Shared(std::sync::Arc<std::fs::File>),
}

impl std::ops::Deref for OpenFile {
    type Target = std::fs::File;
    fn deref(&self) -> &std::fs::File {
        match self {
            OpenFile::Own(f) => f,
            OpenFile::Shared(f) => f,
        }
    }
}

/// A file's body: one range of it (sent with sendfile), or several with multipart
/// boundaries between them.
#[derive(Clone, Debug)]
pub enum Parts {
    Range { offset: u64, len: u64 },
    Multipart(Vec<Part>),
}

/// One piece of a file-backed body.
#[derive(Clone, Debug)]
pub enum Part {
    /// Bytes written as they are (multipart boundaries).
    Bytes(Bytes),
    /// `len` bytes of the file from `offset`, sent with sendfile.
    File { offset: u64, len: u64 },
}

/// A response body.
#[derive(Debug, Default)]
pub enum Body {
    #[default]
    Empty,
    Bytes(Bytes),
    File {
        file: OpenFile,
        parts: Parts,
    },
}

/// A complete response Portico produces itself.
#[derive(Debug)]
pub struct Reply {
    pub head: Head,
    pub body: Body,
}

impl Reply {
    /// The standard error page for `status`, as nginx's special response handler makes it.
    pub fn error(status: u16) -> Reply {
        let body = error_page_body(status);
        let mut head = Head::new(status);
        head.content_type = Some(Cow::Borrowed("text/html"));
        head.content_length = Some(body.len() as u64);
        Reply { head, body: Body::Bytes(body) }
    }

    /// A 301 to `location` (already escaped), with nginx's little HTML page.
    pub fn moved_permanently(location: String) -> Reply {
        let mut r = Reply::error(301);
        r.head.location = Some(location);
        r
    }

    /// Body length on the wire, for `$body_bytes_sent` when the body goes out whole.
    pub fn body_len(&self) -> u64 {
        match &self.body {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::File { parts: Parts::Range { len, .. }, .. } => *len,
            Body::File { parts: Parts::Multipart(parts), .. } => parts
                .iter()
                .map(|p| match p {
                    Part::Bytes(b) => b.len() as u64,
                    Part::File { len, .. } => *len,
                })
                .sum(),
        }
    }
}

/// Whether nginx drops keep-alive after sending this status (the request may not have
/// been read completely, or the connection is in an unknown state).
pub fn closes_connection(status: u16) -> bool {
    matches!(status, 400 | 408 | 413 | 414 | 431 | 500 | 501)
}

/// nginx's HTML error page, made once per status (error answers cost no allocation).
fn error_page_body(status: u16) -> Bytes {
    static PAGES: std::sync::OnceLock<Vec<(u16, Bytes)>> = std::sync::OnceLock::new();
    let pages =
        PAGES.get_or_init(|| (300..600).filter(|&s| reason(s) != "Unknown").map(|s| (s, page(s))).collect());
    match pages.iter().find(|(s, _)| *s == status) {
        Some((_, page)) => page.clone(),
        None => page(status),
    }
}

fn page(status: u16) -> Bytes {
    let title = format!("{status} {}", reason(status));
    Bytes::from(format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>{SERVER_NAME}</center>\r\n</body>\r\n</html>\r\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtimes_an_http_date_cannot_express_leave_last_modified_out() {
        let mut h = Head::new(200);
        h.last_modified = Some(-1);
        let mut out = Vec::new();
        h.encode("Thu, 01 Jan 1970 00:00:00 GMT", true, &mut out);
        assert!(!String::from_utf8_lossy(&out).contains("Last-Modified"));
    }

    #[test]
    fn head_in_nginx_order() {
        let mut h = Head::new(200);
        h.content_type = Some("text/css".into());
        h.content_length = Some(12);
        h.last_modified = Some(1_700_000_000);
        h.etag = Some(crate::static_files::headers::FileFacts { size: 12, mtime: 1_700_000_000 }.etag());
        h.accept_ranges = true;
        let mut out = Vec::new();
        h.encode("Fri, 27 Nov 2026 02:00:00 GMT", true, &mut out);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "HTTP/1.1 200 OK\r\nServer: portico\r\nDate: Fri, 27 Nov 2026 02:00:00 GMT\r\n\
             Content-Type: text/css\r\nContent-Length: 12\r\n\
             Last-Modified: Tue, 14 Nov 2023 22:13:20 GMT\r\nConnection: keep-alive\r\n\
             ETag: \"6553f100-c\"\r\nAccept-Ranges: bytes\r\n\r\n"
        );
    }

    #[test]
    fn error_pages_as_nginx() {
        let r = Reply::error(404);
        let Body::Bytes(b) = &r.body else { panic!("bytes body") };
        assert_eq!(
            &b[..],
            &b"<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>portico</center>\r\n</body>\r\n</html>\r\n"[..]
        );
        assert_eq!(r.head.content_length, Some(b.len() as u64));
        assert_eq!(r.body_len(), b.len() as u64);
        assert!(closes_connection(400));
        assert!(!closes_connection(404));
    }
}
