//! The HTTP/1.1 wire rules, byte for byte over real TCP: the request line, header lines,
//! body framing, the head and body timeouts, lingering close, `Expect` and pipelining.
//!
//! Each rule is nginx 1.22's unless its comment says Portico is deliberately stricter; each
//! comment says what a real nginx 1.22.1 (Debian 12) answered to the same bytes. Every case
//! checks the status, whether the connection was closed or stays usable, and that a fresh
//! connection to the same server still gets a 200 afterwards.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Conn, Portico, Response, TempDir};

/// Two name-based servers on one port; `localhost` (first, so the default) serves `html/`,
/// `other` serves `other/`. Keep-alive is long so that a connection found closed was closed
/// by the rule under test, not by the idle timeout.
const SITE: &str = r#"
error_log = "{dir}/error.log"
error_log_level = "info"
keepalive_timeout = "60s"

[[server]]
listen = ["127.0.0.1:{port}"]
server_name = ["localhost"]
root = "{dir}/html"

[[server.location]]
match = "/"

[[server]]
listen = ["127.0.0.1:{port}"]
server_name = ["other"]
root = "{dir}/other"

[[server.location]]
match = "/"
"#;

fn fixture() -> TempDir {
    let d = TempDir::new("h1");
    d.write("html/a.txt", "aaa\n");
    d.write("other/a.txt", "other\n");
    d
}

fn start() -> Portico {
    Portico::start_in(fixture(), SITE, &[])
}

/// Starts the site with extra top-level settings (timeouts, limits).
fn start_with(settings: &str) -> Portico {
    Portico::start_in(fixture(), &format!("{settings}\n{SITE}"), &[])
}

/// A connection with a second handle on its socket, for raw writes that may fail and for
/// telling a reset from an open connection.
struct Client {
    conn: Conn,
    raw: TcpStream,
}

impl Client {
    fn open(p: &Portico) -> Client {
        let stream = TcpStream::connect(p.addr).expect("connect");
        let raw = stream.try_clone().expect("clone socket");
        Client { conn: Conn::new(stream), raw }
    }

    /// True when the server closed the connection within `limit`: EOF, or a reset (both
    /// end it; the response was read in full before this is asked).
    fn closed_within(&mut self, limit: Duration) -> bool {
        self.conn.set_read_timeout(limit);
        if self.conn.is_closed() {
            return true;
        }
        // is_closed() reports a reset as "not closed"; after a reset the socket reads EOF
        matches!(self.raw.read(&mut [0u8; 1]), Ok(0))
    }

    /// As [`Client::closed_within`], for a close that should come at once.
    fn closed(&mut self) -> bool {
        self.closed_within(Duration::from_secs(5))
    }
}

/// What the connection must do after the response.
#[derive(Clone, Copy, Debug, PartialEq)]
enum After {
    /// The server closes it.
    Closed,
    /// It stays usable: a second request on it gets the file.
    Usable,
}

struct Case {
    name: &'static str,
    raw: Vec<u8>,
    /// Acceptable statuses (one, except where nginx and the rule differ).
    status: &'static [u16],
    after: After,
}

fn case(name: &'static str, raw: impl AsRef<[u8]>, status: &'static [u16], after: After) -> Case {
    Case { name, raw: raw.as_ref().to_vec(), status, after }
}

/// A GET of the fixture file: the follow-up proving a connection is still usable.
const GET_A: &[u8] = b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// A response in one line, for failure messages: its status line and `Connection`.
fn brief(r: &Response) -> String {
    let status_line = r.head.lines().next().unwrap_or("");
    format!("{status_line:?}, Connection: {:?}", r.header("connection"))
}

/// The file again, on `c`: proof that the connection is still usable.
fn second_request(c: &mut Client) -> Result<(), String> {
    c.conn.send(GET_A);
    let r = c.conn.read_response(false);
    match (r.status, r.text().as_str()) {
        (200, "aaa\n") => Ok(()),
        _ => Err(format!("a second request on the connection got {}", brief(&r))),
    }
}

/// The file on a fresh connection: proof that the bad request hurt nobody else.
fn fresh_request(p: &Portico) -> Result<(), String> {
    let r = p.get("/a.txt");
    match (r.status, r.text().as_str()) {
        (200, "aaa\n") => Ok(()),
        _ => Err(format!("a fresh connection afterwards got {}", brief(&r))),
    }
}

fn assert_usable(c: &mut Client, name: &str) {
    second_request(c).unwrap_or_else(|e| panic!("{name}: {e}"));
}

fn assert_server_still_works(p: &Portico, name: &str) {
    fresh_request(p).unwrap_or_else(|e| panic!("{name}: {e}"));
}

fn check(p: &Portico, Case { raw, status, after, .. }: &Case) -> Result<(), String> {
    let mut c = Client::open(p);
    c.conn.send(raw);
    let r = c.conn.read_response(false);
    if !status.contains(&r.status) {
        return Err(format!("wanted {status:?}, got {}", brief(&r)));
    }
    match after {
        After::Closed if !c.closed() => return Err(format!("not closed after {}", brief(&r))),
        After::Closed => {}
        After::Usable => second_request(&mut c)?,
    }
    fresh_request(p)
}

/// Runs every case, each on its own connection, and fails once at the end naming every
/// case that failed (a case that fails does not hide the ones after it).
fn run(p: &Portico, cases: &[Case]) {
    let mut failed = Vec::new();
    for case in cases {
        // the harness panics on I/O errors (a close before any response): count those too
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(p, case)));
        let why = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(why)) => why,
            Err(panic) => panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panicked".to_string()),
        };
        failed.push(format!("  {}: {why}", case.name));
    }
    assert!(failed.is_empty(), "{} of {} cases failed:\n{}", failed.len(), cases.len(), failed.join("\n"));
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

// ---------------------------------------------------------------------------------------
// Request line
// ---------------------------------------------------------------------------------------

/// nginx's request-line parser (ngx_http_parse_request_line), with nginx 1.22.1's answers:
/// - `get` (lower case): 400, closed. nginx: 400, closed.
/// - `TRACE`: 405, closed. nginx: 405 "Not Allowed", closed (it refuses TRACE before
///   anything else and does not keep the connection).
/// - `CONNECT host:443`: 405 by the rule list, 400 accepted. nginx: 400, closed (its
///   request-line parser refuses CONNECT outright since 1.21.1: "client sent invalid
///   request").
/// - `OPTIONS *`: 400, closed. nginx: 400, closed.
/// - `HTTP/2.0`, `HTTP/3.0`: 505, closed. nginx: 505, closed.
/// - `HTTP/1.x`, `HTTP/1.1x`, `HTTX/1.1`, `HTTP/01.1`: 400, closed. nginx: 400, closed
///   (a major version may not start with 0).
/// - SP inside the target, or a CTL (0x01, 0x7f): 400, closed. nginx: 400, closed.
/// - a request line over 8 KiB (large_client_header_buffers 4 8k): 414, closed. nginx:
///   414 "Request-URI Too Large", closed.
#[test]
fn bad_request_lines_are_refused_and_closed() {
    use After::Closed;
    let host: &[u8] = b"Host: localhost\r\n\r\n";
    let long = cat(&[b"GET /", &[b'x'; 9000], b" HTTP/1.1\r\n", host]);
    let p = start();
    run(
        &p,
        &[
            case("lower-case method", cat(&[b"get / HTTP/1.1\r\n", host]), &[400], Closed),
            case("TRACE", cat(&[b"TRACE / HTTP/1.1\r\n", host]), &[405], Closed),
            case("CONNECT", cat(&[b"CONNECT host:443 HTTP/1.1\r\n", host]), &[405, 400], Closed),
            case("OPTIONS *", cat(&[b"OPTIONS * HTTP/1.1\r\n", host]), &[400], Closed),
            case("HTTP/2.0", cat(&[b"GET / HTTP/2.0\r\n", host]), &[505], Closed),
            case("HTTP/3.0", cat(&[b"GET / HTTP/3.0\r\n", host]), &[505], Closed),
            case("HTTP/1.x", cat(&[b"GET / HTTP/1.x\r\n", host]), &[400], Closed),
            case("HTTP/1.1x", cat(&[b"GET / HTTP/1.1x\r\n", host]), &[400], Closed),
            case("HTTX/1.1", cat(&[b"GET / HTTX/1.1\r\n", host]), &[400], Closed),
            case("HTTP/01.1", cat(&[b"GET / HTTP/01.1\r\n", host]), &[400], Closed),
            case("SP inside the target", cat(&[b"GET /a b HTTP/1.1\r\n", host]), &[400], Closed),
            case("0x01 inside the target", cat(&[b"GET /a\x01b HTTP/1.1\r\n", host]), &[400], Closed),
            case("0x7f inside the target", cat(&[b"GET /a\x7fb HTTP/1.1\r\n", host]), &[400], Closed),
            case("request line over 8 KiB", long, &[414], Closed),
        ],
    );
}

/// Stricter than nginx: a request line without a version (HTTP/0.9) gets a real HTTP/1.1
/// 400 status line and a close. nginx 1.22.1 answers HTTP/0.9 style: `GET /a.txt\r\n` got
/// the bare file (no status line, no headers) and `GET /\r\n` the bare 403 page, then closed.
#[test]
fn http09_requests_get_a_400_status_line() {
    let p = start();
    for (name, raw) in [("GET /", &b"GET /\r\n"[..]), ("GET /a.txt", b"GET /a.txt\r\n")] {
        let mut c = Client::open(&p);
        c.conn.send(raw);
        let r = c.conn.read_response(false);
        assert!(r.head.starts_with("HTTP/1.1 400 "), "{name}: wanted a 400 status line, got:\n{}", r.head);
        assert!(c.closed(), "{name}: the connection was not closed");
        assert_server_still_works(&p, name);
    }
}

/// RFC 9112 3.2.2, as nginx: with an absolute-form target the target's host chooses the
/// server and `Host` is ignored. nginx 1.22.1: `GET http://localhost/a.txt` with
/// `Host: other` got localhost's file (200, kept alive), and the reverse got other's.
#[test]
fn absolute_form_host_wins_over_the_host_header() {
    let p = start();
    for (name, raw, want) in [
        (
            "localhost target, Host other",
            "GET http://localhost/a.txt HTTP/1.1\r\nHost: other\r\n\r\n",
            "aaa\n",
        ),
        (
            "other target, Host localhost",
            "GET http://other/a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n",
            "other\n",
        ),
    ] {
        let mut c = Client::open(&p);
        c.conn.send(raw.as_bytes());
        let r = c.conn.read_response(false);
        assert_eq!((r.status, r.text().as_str()), (200, want), "{name}");
        assert_usable(&mut c, name);
        assert_server_still_works(&p, name);
    }
}

/// RFC 9112 2.2, as nginx: empty lines (CRLF or bare LF) before a request line are skipped,
/// and bare LF ends lines throughout. nginx 1.22.1: 200 and kept alive for both.
#[test]
fn leading_empty_lines_and_bare_lf_are_accepted() {
    use After::Usable;
    let p = start();
    run(
        &p,
        &[
            case("empty CRLF lines first", cat(&[b"\r\n\r\n", GET_A]), &[200], Usable),
            case("empty LF lines first", cat(&[b"\n\n", GET_A]), &[200], Usable),
            case("mixed empty lines first", cat(&[b"\r\n\n\r\n", GET_A]), &[200], Usable),
            case("bare LF throughout", "GET /a.txt HTTP/1.1\nHost: x\n\n", &[200], Usable),
        ],
    );
}

// ---------------------------------------------------------------------------------------
// Header lines
// ---------------------------------------------------------------------------------------

fn with_header(line: &[u8]) -> Vec<u8> {
    cat(&[b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\n", line, b"\r\n"])
}

/// nginx's header-line parser (ngx_http_parse_header_line) and its buffer limits
/// (large_client_header_buffers 4 8k), with nginx 1.22.1's answers:
/// - one header line over 8 KiB: 400, closed. nginx: 400 ("Request Header Or Cookie Too
///   Large" page, logged "client sent too long header line"), closed.
/// - a head over 32 KiB from 9 lines of 4000 bytes: 400, closed. nginx: 400, closed (the
///   four 8 KiB buffers are full).
/// - obs-fold (a line starting with SP or HTAB): 400, closed. nginx: 400, closed.
/// - whitespace before the colon: 400, closed. nginx: 400, closed.
/// - NUL or a bare CR inside a value: 400, closed. nginx: 400, closed.
#[test]
fn malformed_header_lines_are_400_and_closed() {
    use After::Closed;
    let big = cat(&[b"X-Big: ", &[b'b'; 9000], b"\r\n"]);
    let many: Vec<u8> =
        (0..9).flat_map(|i| cat(&[format!("X-H{i}: ").as_bytes(), &[b'v'; 4000], b"\r\n"])).collect();
    let p = start();
    run(
        &p,
        &[
            case("one header line over 8 KiB", with_header(&big), &[400], Closed),
            case("head over 32 KiB in lines under 8 KiB", with_header(&many), &[400], Closed),
            case("obs-fold with SP", with_header(b"X-A: 1\r\n continued\r\n"), &[400], Closed),
            case("obs-fold with HTAB", with_header(b"X-A: 1\r\n\tcontinued\r\n"), &[400], Closed),
            case("SP before the colon (Host)", "GET /a.txt HTTP/1.1\r\nHost : x\r\n\r\n", &[400], Closed),
            case("SP before the colon (X-A)", with_header(b"X-A : x\r\n"), &[400], Closed),
            case("NUL inside a value", with_header(b"X-A: a\x00b\r\n"), &[400], Closed),
            case("bare CR inside a value", with_header(b"X-A: a\rb\r\n"), &[400], Closed),
        ],
    );
}

/// Stricter than nginx, by decision: a header line without a colon, and a name with
/// characters outside RFC 9110's token set, are refused with 400 and a close. nginx 1.22.1
/// ignores such lines (ignore_invalid_headers on; it logs "client sent invalid header line"
/// at info) and answered 200, keeping the connection, for `X-A` (no colon), `X@Y: 1` and
/// `X{Y}: 1`; it answers 400 only for a colon-less line with a space in it (`X-A b`).
#[test]
fn header_lines_nginx_ignores_are_refused() {
    use After::Closed;
    let p = start();
    run(
        &p,
        &[
            case("line without a colon", with_header(b"X-A\r\n"), &[400], Closed),
            case("line without a colon, with a space", with_header(b"X-A b\r\n"), &[400], Closed),
            case("@ in a name", with_header(b"X@Y: 1\r\n"), &[400], Closed),
            case("braces in a name", with_header(b"X{Y}: 1\r\n"), &[400], Closed),
        ],
    );
}

// ---------------------------------------------------------------------------------------
// Body framing
// ---------------------------------------------------------------------------------------

fn post(headers: &[u8], body: &[u8]) -> Vec<u8> {
    cat(&[b"POST /a.txt HTTP/1.1\r\nHost: localhost\r\n", headers, b"\r\n", body])
}

/// Framing nginx refuses while reading the head (ngx_http_process_request_header), with
/// nginx 1.22.1's answers (the same for a static and a uwsgi_pass location):
/// - `Content-Length` with `Transfer-Encoding: chunked`: 400, closed. nginx: 400, closed.
/// - two `Content-Length` headers, equal or not: 400, closed. nginx: 400, closed.
/// - a `Content-Length` that is not all digits (`+5`, `5 5`, `0x5`, `-1`, empty): 400,
///   closed. nginx: 400, closed.
/// - a transfer coding other than exactly `chunked` (`gzip`, `chunked, gzip`, `identity`):
///   501, closed. nginx: 501, closed.
/// - `Transfer-Encoding: chunked` on HTTP/1.0: 400, closed. nginx: 400, closed.
#[test]
fn ambiguous_or_unknown_framing_is_refused_and_closed() {
    use After::Closed;
    let chunked: &[u8] = b"5\r\nhello\r\n0\r\n\r\n";
    let p = start();
    run(
        &p,
        &[
            case(
                "Content-Length and chunked",
                post(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", chunked),
                &[400],
                Closed,
            ),
            case(
                "two equal Content-Length",
                post(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"),
                &[400],
                Closed,
            ),
            case(
                "two different Content-Length",
                post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"),
                &[400],
                Closed,
            ),
            case("Content-Length +5", post(b"Content-Length: +5\r\n", b"hello"), &[400], Closed),
            case("Content-Length 5 5", post(b"Content-Length: 5 5\r\n", b"hello"), &[400], Closed),
            case("Content-Length 0x5", post(b"Content-Length: 0x5\r\n", b"hello"), &[400], Closed),
            case("Content-Length -1", post(b"Content-Length: -1\r\n", b"hello"), &[400], Closed),
            case("empty Content-Length", post(b"Content-Length: \r\n", b"hello"), &[400], Closed),
            case("Transfer-Encoding gzip", post(b"Transfer-Encoding: gzip\r\n", b""), &[501], Closed),
            case(
                "Transfer-Encoding chunked, gzip",
                post(b"Transfer-Encoding: chunked, gzip\r\n", b""),
                &[501],
                Closed,
            ),
            case("Transfer-Encoding identity", post(b"Transfer-Encoding: identity\r\n", b""), &[501], Closed),
            case(
                "chunked on HTTP/1.0",
                cat(&[b"POST /a.txt HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", chunked]),
                &[400],
                Closed,
            ),
        ],
    );
}

/// A chunked body that breaks the chunked syntax is answered 400 (a status line, not a
/// silent close), then the connection is closed: nginx's ngx_http_parse_chunked rule.
/// nginx 1.22.1 answered 400 and closed for a non-hex size, a size over 2^63
/// (`FFFFFFFFFFFFFFFFF`) and chunk data not followed by CRLF when the location reads the
/// body (a uwsgi_pass location: the body is read before the upstream is contacted). For a
/// POST to a static file it answered 405 and closed instead: the 405 is decided first and
/// the body is only discarded, the framing error just cancelling keep-alive. Portico
/// answers the framing error itself, 400, in both kinds of location.
#[test]
fn malformed_chunked_bodies_are_answered_400_then_closed() {
    use After::Closed;
    let te: &[u8] = b"Transfer-Encoding: chunked\r\n";
    let p = start();
    run(
        &p,
        &[
            case("non-hex chunk size", post(te, b"zz\r\nhello\r\n0\r\n\r\n"), &[400], Closed),
            case(
                "chunk size over 2^63",
                post(te, b"FFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n"),
                &[400],
                Closed,
            ),
            case("chunk data without its CRLF", post(te, b"5\r\nhelloXX0\r\n\r\n"), &[400], Closed),
        ],
    );
}

/// Chunk extensions and trailer fields are accepted and skipped, as by nginx: the POST is
/// answered normally (a POST to a static file is 405) and the connection carries the next
/// request, sent in the same write. nginx 1.22.1: 405 then 200 on the same connection, for
/// both.
#[test]
fn chunk_extensions_and_trailers_are_accepted() {
    let te: &[u8] = b"Transfer-Encoding: chunked\r\n";
    let p = start();
    for (name, body) in [
        ("chunk extension", &b"5;name=value\r\nhello\r\n0\r\n\r\n"[..]),
        ("chunk extension without a value", b"5;name\r\nhello\r\n0\r\n\r\n"),
        ("trailer field", b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"),
    ] {
        let mut c = Client::open(&p);
        c.conn.send(&cat(&[&post(te, body), GET_A]));
        let r = c.conn.read_response(false);
        assert_eq!(r.status, 405, "{name}: head:\n{}", r.head);
        let next = c.conn.read_response(false);
        assert_eq!((next.status, next.text().as_str()), (200, "aaa\n"), "{name}: the request after it");
        assert_server_still_works(&p, name);
    }
}

// ---------------------------------------------------------------------------------------
// Timeouts and lingering close
// ---------------------------------------------------------------------------------------

/// Reads until the server ends the connection (EOF or reset) or `limit` passes; returns what
/// arrived and whether it ended.
fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    s.set_read_timeout(Some(limit)).expect("timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (got, true),
            Err(_) => return (got, false),
        }
    }
}

/// client_header_timeout is a deadline for the whole head, not a limit per read: a client
/// trickling one byte every 400 ms (30 bytes would take 12 s) is answered 408 and closed
/// about 1 s after it connected. nginx 1.22.1 with client_header_timeout 1s also treats it
/// as a deadline (its timer is not re-armed by reads; it closed at 1.0 s after 3 bytes),
/// but closes silently, without a 408; Portico sends the 408 status line.
#[test]
fn client_header_timeout_is_a_deadline_for_the_whole_head() {
    let p = start_with("client_header_timeout = \"1s\"");
    let head = b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\nX-Trickle: 0123456789abcdef\r\n\r\n";
    let started = Instant::now();
    let stream = TcpStream::connect(p.addr).expect("connect");
    let mut writer = stream.try_clone().expect("clone socket");
    let stop = Arc::new(AtomicBool::new(false));
    let trickle = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            for byte in &head[..30] {
                if stop.load(Ordering::Relaxed) || writer.write_all(&[*byte]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(400));
            }
        })
    };
    let mut reader = stream;
    let (got, ended) = read_until_closed(&mut reader, Duration::from_secs(8));
    let closed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    trickle.join().expect("trickle thread");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408 "), "wanted a 408 status line, got {text:?} after {closed:?}");
    assert!(ended, "the connection was not closed after the 408");
    assert!(closed >= Duration::from_millis(800), "answered before the 1 s deadline: {closed:?}");
    assert!(closed < Duration::from_secs(5), "closed only after {closed:?}: the timeout is per read");
    assert_server_still_works(&p, "header trickle");
}

/// client_body_timeout: a body that stops arriving ends the request about 1 s later. A
/// static location only discards a body (nginx answers 405 at once, then waits
/// lingering_timeout, 5 s, not client_body_timeout), so this reads the body on its way to
/// a uwsgi_pass location whose backend, a socket in this test, reads everything and never
/// answers. nginx 1.22.1 (a uwsgi_pass location, 10 of 100 bytes sent) closed the
/// connection at 1.0 s without a response (its 408 is never sent); a 408 status line is
/// accepted as well, any other answer is not.
#[test]
fn client_body_timeout_ends_a_stalled_body() {
    let d = fixture();
    let listener = UnixListener::bind(d.path().join("fake.sock")).expect("bind the fake backend");
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    let config = r#"
error_log = "{dir}/error.log"
error_log_level = "info"
keepalive_timeout = "60s"
client_body_timeout = "1s"

[[server]]
listen = ["127.0.0.1:{port}"]
server_name = ["localhost"]
root = "{dir}/html"

[[server.location]]
match = "/"

[[server.location]]
match = "/app/"
uwsgi_pass = "unix:{dir}/fake.sock"
"#;
    let p = Portico::start_in(d, config, &[]);
    let mut s = TcpStream::connect(p.addr).expect("connect");
    s.write_all(b"POST /app/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n0123456789")
        .expect("send");
    let sent = Instant::now();
    let (got, ended) = read_until_closed(&mut s, Duration::from_secs(10));
    let after = sent.elapsed();
    assert!(ended, "the stalled body was not ended in 10 s; got {:?}", String::from_utf8_lossy(&got));
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 408 "),
        "only a 408 or nothing may answer a body timeout, got {:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(after >= Duration::from_millis(800), "ended before the 1 s timeout: {after:?}");
    assert!(after < Duration::from_secs(6), "ended only after {after:?}");
    assert_server_still_works(&p, "stalled body");
}

/// Lingering close (nginx's lingering_close): after an early 413 the server keeps reading
/// and discarding what the client is still sending before it closes, so no reset destroys
/// the response. The client sends the body for 1 s and only then reads: its writes must
/// not be refused during that second (a reset there is what loses responses on many
/// client stacks; Linux happens to keep the received bytes readable) and the 413 must be
/// there, whole. nginx 1.22.1: took all 1.6 MB the client sent in that second, then the 413
/// with `Connection: close` read intact; it closed 5 s (lingering_timeout) after the
/// client went quiet.
#[test]
fn an_early_413_survives_a_client_still_sending() {
    let p = start();
    let mut c = Client::open(&p);
    c.conn.send(b"POST /a.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2000000\r\n\r\n");
    c.raw.set_write_timeout(Some(Duration::from_millis(200))).expect("write timeout");
    let chunk = [b'x'; 16384];
    let started = Instant::now();
    let mut sent = 0usize;
    let mut refused = None;
    while started.elapsed() < Duration::from_secs(1) {
        match c.raw.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => {
                refused = Some(format!("sending the body failed after {sent} bytes: {e}"));
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let what = refused.clone().unwrap_or_else(|| format!("after sending {sent} body bytes for 1 s"));
    let r: Response = c.conn.read_response(false);
    assert_eq!(r.status, 413, "{what}; head:\n{}", r.head);
    assert!(r.text().contains("413"), "{what}: the 413 page is not whole: {:?}", r.text());
    assert_eq!(r.header("connection"), Some("close"), "{what}");
    assert!(
        refused.is_none(),
        "no lingering close: the server reset the connection while the body came: {what}"
    );
    // nginx closes lingering_timeout (5 s) after the client went quiet
    let quiet = c.closed_within(Duration::from_secs(12));
    assert!(quiet, "the connection was not closed after the client stopped sending");
    assert_server_still_works(&p, "early 413");
}

// ---------------------------------------------------------------------------------------
// Expect and pipelining
// ---------------------------------------------------------------------------------------

/// `Expect: 100-continue` on a request answered with an error gets the final answer without
/// a `100 Continue`: nginx marks the expectation met before discarding the body of an error
/// response (ngx_http_special_response_handler), so 100 goes out only when a body is really
/// read. nginx 1.22.1: a POST to a static file got 405 at once, with no 100, and kept the
/// connection: the 5 body bytes sent afterwards were discarded and the next request on it
/// got 200.
#[test]
fn expect_100_continue_on_a_static_post_gets_405_without_100() {
    let p = start();
    let mut c = Client::open(&p);
    c.conn.send(
        b"POST /a.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    );
    let r = c.conn.read_response(false);
    assert_eq!(r.status, 405, "wanted the final 405 without a 100 first; head:\n{}", r.head);
    assert_eq!(r.header("connection"), Some("keep-alive"), "nginx keeps the connection; head:\n{}", r.head);
    c.conn.send(b"hello");
    assert_usable(&mut c, "Expect: 100-continue");
    assert_server_still_works(&p, "Expect: 100-continue");
}

/// Pipelining with a body: a POST with `Content-Length: 5` and a GET in one write are
/// answered in order, the body consumed exactly. nginx 1.22.1: 405, then 200 with the file.
#[test]
fn a_pipelined_post_body_is_consumed_before_the_next_request() {
    let p = start();
    let mut c = Client::open(&p);
    c.conn.send(&cat(&[&post(b"Content-Length: 5\r\n", b"hello"), GET_A]));
    let first = c.conn.read_response(false);
    assert_eq!(first.status, 405, "the POST; head:\n{}", first.head);
    let second = c.conn.read_response(false);
    assert_eq!((second.status, second.text().as_str()), (200, "aaa\n"), "the GET after the POST");
    assert_server_still_works(&p, "pipelined POST");
}
