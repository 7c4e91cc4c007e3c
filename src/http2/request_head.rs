//! An HTTP/2 request's header block written as the HTTP/1.1 head the request steps
//! parse, so both protocols go through one parser and one set of rules
//! (`http1::request_head`): `:method` and `:path` make the request line, `:authority`
//! the `Host` when the client sent none, split `cookie` fields are joined with `"; "`
//! (RFC 9113 §8.2.3, as nginx does), and a body of unknown length is framed chunked.
//!
//! Pure: the request's parts in, the head's bytes out.

use http::request::Parts;

/// Why a header block cannot be written as a head: the stream is reset with
/// PROTOCOL_ERROR (RFC 9113 §8.1.1, a malformed request).
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// The head, and whether the body that follows must be framed chunked.
pub struct Head {
    pub bytes: Vec<u8>,
    pub chunked: bool,
}

/// Writes `parts` as an HTTP/1.1 request head; `body`: DATA frames follow the headers.
pub fn write_head(parts: &Parts, body: bool) -> Result<Head, Malformed> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    match parts.uri.path_and_query() {
        Some(p) if !p.as_str().is_empty() => out.extend_from_slice(p.as_str().as_bytes()),
        // CONNECT names an authority, not a path; the request steps refuse it as HTTP/1.1's
        _ => out.extend_from_slice(parts.uri.authority().map_or("/", |a| a.as_str()).as_bytes()),
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut has_host = false;
    let mut has_length = false;
    let mut cookies: Vec<&[u8]> = Vec::new();
    for (name, value) in &parts.headers {
        let value = value.as_bytes();
        // (the h2 crate refuses these already; a line break would start a header of its own)
        if value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(Malformed("a header value holds a line break or NUL"));
        }
        match name.as_str() {
            "host" => has_host = true,
            "content-length" => has_length = true,
            "cookie" => {
                cookies.push(value);
                continue;
            }
            // connection-specific fields do not exist in HTTP/2 (RFC 9113 §8.2.2)
            "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade" => {
                return Err(Malformed("connection-specific header field"))
            }
            _ => {}
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if !has_host {
        if let Some(authority) = parts.uri.authority() {
            out.extend_from_slice(b"host: ");
            out.extend_from_slice(authority.as_str().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    if !cookies.is_empty() {
        out.extend_from_slice(b"cookie: ");
        for (i, c) in cookies.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b"; ");
            }
            out.extend_from_slice(c);
        }
        out.extend_from_slice(b"\r\n");
    }
    let chunked = body && !has_length;
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Head { bytes: out, chunked })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(req: http::Request<()>, body: bool) -> (String, bool) {
        let (parts, ()) = req.into_parts();
        let h = write_head(&parts, body).unwrap();
        (String::from_utf8(h.bytes).unwrap(), h.chunked)
    }

    #[test]
    fn pseudo_headers_make_the_request_line_and_host() {
        let req = http::Request::get("https://example.com:8443/a/b?x=1")
            .header("accept-encoding", "gzip")
            .body(())
            .unwrap();
        assert_eq!(
            head(req, false),
            (
                "GET /a/b?x=1 HTTP/1.1\r\naccept-encoding: gzip\r\nhost: example.com:8443\r\n\r\n".into(),
                false
            )
        );
    }

    #[test]
    fn a_host_field_wins_over_the_authority() {
        let req = http::Request::get("https://a.example/").header("host", "b.example").body(()).unwrap();
        assert_eq!(head(req, false).0, "GET / HTTP/1.1\r\nhost: b.example\r\n\r\n");
    }

    #[test]
    fn cookies_are_joined_into_one_field() {
        let req = http::Request::get("https://a/")
            .header("cookie", "a=1")
            .header("x", "y")
            .header("cookie", "b=2")
            .body(())
            .unwrap();
        assert_eq!(head(req, false).0, "GET / HTTP/1.1\r\nx: y\r\nhost: a\r\ncookie: a=1; b=2\r\n\r\n");
    }

    #[test]
    fn a_body_without_a_length_is_chunked() {
        let req = http::Request::post("https://a/p").body(()).unwrap();
        assert_eq!(
            head(req, true),
            ("POST /p HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n".into(), true)
        );
        let req = http::Request::post("https://a/p").header("content-length", "3").body(()).unwrap();
        assert_eq!(
            head(req, true),
            ("POST /p HTTP/1.1\r\ncontent-length: 3\r\nhost: a\r\n\r\n".into(), false)
        );
    }

    #[test]
    fn connection_specific_fields_are_malformed() {
        let (parts, ()) =
            http::Request::get("https://a/").header("connection", "close").body(()).unwrap().into_parts();
        assert_eq!(write_head(&parts, false).err(), Some(Malformed("connection-specific header field")));
    }
}
