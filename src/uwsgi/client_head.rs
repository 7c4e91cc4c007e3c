//! The head the client gets for the app's response: the app's status and headers, in
//! nginx's order, framed for this client. Pure: the relay writes what this produces.
//! Not for deciding which of the app's headers may pass (hop-by-hop ones, `Status`,
//! `X-Accel-*`): `codec::app_response` leaves those out when it parses the app's head.

use std::io::Write;

use crate::http1::response_head::{self, reason};

use super::codec::app_response::{Framing, ResponseHead};

/// How the answer goes to this client.
#[derive(Clone, Copy)]
pub(super) struct HeadFraming {
    pub head_request: bool,
    /// Chunked (an HTTP/1.1 client, the length unknown).
    pub chunked: bool,
    pub keep_alive: bool,
    /// `Vary: Accept-Encoding`: the answer is compressed for clients that accept it.
    pub vary: bool,
    /// The coding the body is compressed with on the way: no `Content-Length` nor
    /// `Accept-Ranges`, the ETag weak, `Content-Encoding` last.
    pub coding: Option<&'static str>,
}

/// The response head for the client, in nginx's order: the app's status and headers,
/// framed for this client (Content-Length when known; chunked for HTTP/1.1; close-delimited
/// for 1.0), then the location's `expires`/`add_header` lines (`policy`; `true`: they
/// replace the app's own `Expires` and `Cache-Control`).
pub(super) fn client_head(
    head: &ResponseHead,
    buf: &[u8],
    framing: &HeadFraming,
    policy: (&[u8], bool),
    date: &str,
    out: &mut Vec<u8>,
) {
    let HeadFraming { head_request, chunked, keep_alive, vary, coding } = *framing;
    let (policy, replaces_expires) = policy;
    let named =
        |name: &'static str| head.headers(buf).find(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()));
    let reason = head.reason(buf).unwrap_or_else(|| reason(head.status));
    // the app's Server and Date replace ours, as nginx's uwsgi module does (SPEC.md,
    // header pass-through)
    let date = named("date").map_or(date.as_bytes(), |(_, v)| v);
    response_head::start_head(head.status, reason, named("server"), date, out);
    if let Some((n, v)) = named("content-type") {
        response_head::header(n, v, out);
    }
    match head.framing {
        Framing::Length(_) if coding.is_some() => {
            if chunked {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            }
        }
        Framing::Length(n) => {
            let _ = write!(out, "Content-Length: {n}\r\n");
        }
        Framing::None => {
            if let (true, Some(n)) = (head_request, head.declared_length) {
                let _ = write!(out, "Content-Length: {n}\r\n");
            }
        }
        Framing::Chunked | Framing::UntilClose => {
            if chunked {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            }
        }
    }
    response_head::connection(keep_alive, out);
    if vary {
        out.extend_from_slice(b"Vary: Accept-Encoding\r\n");
    }
    for (name, value) in head.headers(buf) {
        if name.eq_ignore_ascii_case(b"server")
            || name.eq_ignore_ascii_case(b"date")
            || name.eq_ignore_ascii_case(b"content-type")
        {
            continue;
        }
        if replaces_expires
            && (name.eq_ignore_ascii_case(b"expires") || name.eq_ignore_ascii_case(b"cache-control"))
        {
            continue;
        }
        if coding.is_some() {
            if name.eq_ignore_ascii_case(b"accept-ranges") {
                continue;
            }
            if name.eq_ignore_ascii_case(b"etag") {
                // nginx's weak ETag: `W/` before a strong one; one it cannot read is dropped
                if value.starts_with(b"W/") {
                    response_head::header(name, value, out);
                } else if value.starts_with(b"\"") {
                    out.extend_from_slice(name);
                    out.extend_from_slice(b": W/");
                    out.extend_from_slice(value);
                    out.extend_from_slice(b"\r\n");
                }
                continue;
            }
        }
        response_head::header(name, value, out);
    }
    out.extend_from_slice(policy);
    if let Some(c) = coding {
        let _ = write!(out, "Content-Encoding: {c}\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uwsgi::codec::app_response::parse_head;

    const DATE: &str = "Thu, 01 Jan 2026 00:00:00 GMT";

    fn for_client(app: &[u8], head_request: bool, chunked: bool, keep_alive: bool) -> String {
        let head = parse_head(app, 4096, head_request).expect("valid head").expect("whole head");
        let mut out = Vec::new();
        let framing = HeadFraming { head_request, chunked, keep_alive, vary: false, coding: None };
        client_head(&head, app, &framing, (b"", false), DATE, &mut out);
        String::from_utf8(out).expect("ASCII head")
    }

    #[test]
    fn nginx_order_with_the_apps_server_and_type_first() {
        let app = b"HTTP/1.1 201 Made\r\nX-A: 1\r\nContent-Type: text/plain\r\nServer: app\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(
            for_client(app, false, false, true),
            format!("HTTP/1.1 201 Made\r\nServer: app\r\nDate: {DATE}\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\nX-A: 1\r\n\r\n")
        );
    }

    #[test]
    fn the_apps_date_replaces_ours_once() {
        let app = b"HTTP/1.1 200 OK\r\nDate: Mon, 01 Jan 2001 00:00:00 GMT\r\nContent-Length: 0\r\n\r\n";
        let head = for_client(app, false, false, true);
        assert_eq!(head.matches("Date:").count(), 1, "{head}");
        assert!(head.contains("\r\nDate: Mon, 01 Jan 2001 00:00:00 GMT\r\n"), "{head}");
    }

    #[test]
    fn unknown_length_is_chunked_for_1_1_and_close_delimited_for_1_0() {
        let app = b"Status: 200\r\nContent-Type: text/plain\r\n\r\n";
        let chunked = for_client(app, false, true, true);
        assert!(
            chunked.contains("\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n"),
            "{chunked}"
        );
        let close = for_client(app, false, false, false);
        assert!(
            !close.contains("Transfer-Encoding") && close.contains("\r\nConnection: close\r\n"),
            "{close}"
        );
    }

    #[test]
    fn a_compressed_answer_loses_its_length_and_ranges_and_weakens_its_etag() {
        let app = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 500\r\nETag: \"abc\"\r\nAccept-Ranges: bytes\r\nX-A: 1\r\n\r\n";
        let head = parse_head(app, 4096, false).expect("valid head").expect("whole head");
        let mut out = Vec::new();
        let framing = HeadFraming {
            head_request: false,
            chunked: true,
            keep_alive: true,
            vary: true,
            coding: Some("gzip"),
        };
        client_head(&head, app, &framing, (b"X-P: p\r\n", false), DATE, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("HTTP/1.1 200 OK\r\nServer: portico\r\nDate: {DATE}\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\nVary: Accept-Encoding\r\nETag: W/\"abc\"\r\nX-A: 1\r\nX-P: p\r\nContent-Encoding: gzip\r\n\r\n")
        );
    }
}
