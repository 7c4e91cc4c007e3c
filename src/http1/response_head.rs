//! Response heads on the wire: the status line and the headers every response carries,
//! in nginx's order (`Server`, `Date`, the content headers, `Connection`, the rest), and
//! chunked framing for bodies of unknown length. Pure: written into the connection's
//! reused buffer.

use std::io::Write;

/// What Portico calls itself in `Server:` and on error pages (no version, on purpose:
/// like nginx's `server_tokens off`).
pub const SERVER_NAME: &str = "portico";

/// `HTTP/1.1 STATUS REASON\r\n`, then `Server` (the relayed response's own, as name and
/// value, or Portico's) and `Date` (the relayed one's, or now).
pub fn start_head(status: u16, reason: &str, server: Option<(&[u8], &[u8])>, date: &[u8], out: &mut Vec<u8>) {
    let _ = write!(out, "HTTP/1.1 {status} {reason}\r\n");
    match server {
        Some((name, value)) => header(name, value, out),
        None => out.extend_from_slice(b"Server: portico\r\n"),
    }
    out.extend_from_slice(b"Date: ");
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\n");
}

/// One header line.
pub fn header(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The `Connection` header for the keep-alive decision.
pub fn connection(keep_alive: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(if keep_alive { b"Connection: keep-alive\r\n" } else { b"Connection: close\r\n" });
}

/// A chunk's size line (the data follows, then [`CHUNK_END`]).
pub fn chunk_start(len: usize, out: &mut Vec<u8>) {
    let _ = write!(out, "{len:x}\r\n");
}

/// What ends a chunk's data.
pub const CHUNK_END: &[u8] = b"\r\n";
/// The last chunk of a chunked body (no trailers).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Reason phrases as nginx writes them.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Time-out",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        415 => "Unsupported Media Type",
        416 => "Requested Range Not Satisfiable",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Temporarily Unavailable",
        504 => "Gateway Time-out",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_start_and_chunks() {
        let mut out = Vec::new();
        start_head(404, reason(404), None, b"Fri, 27 Nov 2026 02:00:00 GMT", &mut out);
        header(b"Content-Type", b"text/html", &mut out);
        connection(false, &mut out);
        assert_eq!(
            out,
            b"HTTP/1.1 404 Not Found\r\nServer: portico\r\nDate: Fri, 27 Nov 2026 02:00:00 GMT\r\nContent-Type: text/html\r\nConnection: close\r\n"
        );
        out.clear();
        chunk_start(0x1f40, &mut out);
        assert_eq!(out, b"1f40\r\n");
    }
}
