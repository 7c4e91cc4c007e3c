//! Compression on the fly (`gzip`, `brotli`) over real sockets: every coded answer is
//! decoded and compared with the bytes it stands for — files and a real uWSGI's answers,
//! gzip and brotli, chunked to HTTP/1.1 and close-delimited to HTTP/1.0 — and each rule
//! that leaves an answer alone (HEAD, ranges, 304, short bodies, other types, a body
//! already coded, `no-transform`, statuses, a proxy's `Via`), q-values, the weak ETag
//! with `If-None-Match`, and the keys' inheritance.

mod common;

use std::io::Read;

use common::uwsgi::Uwsgi;
use common::{Portico, Response, TempDir};

const SITE: &str = r#"
[[server]]
listen = ["127.0.0.1:{port}"]
server_name = ["localhost"]
root = "{dir}/html"
gzip = true
gzip_types = ["text/css", "text/plain"]
brotli = true

[[server.location]]
match = "/"

[[server.location]]
match = "/plain/"
gzip = false
brotli = false

[[server.location]]
match = "/old/"
gzip_http_version = "1.0"
brotli = false

[[server.location]]
match = "/proxied/"
gzip_proxied = ["expired", "auth"]
expires = "epoch"

[[server.location]]
match = "/pre/"
precompressed = ["gzip"]

[[server.location]]
match = "/nt/"
add_header = { Cache-Control = "public, no-transform" }

[[server.location]]
match = "/app/"
uwsgi_pass = "unix:{dir}/app.sock"

[[server.location]]
match = "/app10/"
uwsgi_pass = "unix:{dir}/app.sock"
gzip_http_version = "1.0"
add_header = { X-Added = "yes" }
"#;

/// The test app's `/page?n=N` body.
fn page_text(n: usize) -> Vec<u8> {
    let mut b = Vec::new();
    for i in 0..=n / 20 {
        b.extend_from_slice(format!("<p>line {i} of the page</p>\n").as_bytes());
    }
    b.truncate(n);
    b
}

fn css(n: usize) -> Vec<u8> {
    (0..)
        .map(|i| format!(".c{i} {{ color: #{:06x} }}\n", i * 7919 % 0xffffff))
        .take(n / 20)
        .collect::<String>()
        .into_bytes()
}

struct Site {
    p: Portico,
    _app: Uwsgi,
    page: Vec<u8>,
    big_css: Vec<u8>,
}

fn start() -> Site {
    let d = TempDir::new("compression");
    let page = page_text(50_000);
    let big_css = css(300_000);
    for f in ["page.html", "plain/page.html", "old/page.html", "proxied/page.html", "nt/page.html"] {
        d.write(&format!("html/{f}"), &page);
    }
    d.write("html/big.css", &big_css);
    d.write("html/tiny.css", "a{b:c}\n");
    d.write("html/image.png", vec![7u8; 30_000]);
    d.write("html/pre/p.css", &big_css);
    d.write("html/pre/p.css.gz", gzip(&big_css));
    d.write("html/pre/nosidecar.css", &big_css);
    let app = Uwsgi::start(&d.path().join("app.sock"), &[]);
    let p = Portico::start_in(d, SITE, &[]);
    Site { p, _app: app, page, big_css }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    std::io::Write::write_all(&mut e, data).unwrap();
    e.finish().unwrap()
}

/// The body as it stands, decoded by its `Content-Encoding` (with the real decoders).
fn decoded(r: &Response) -> Vec<u8> {
    let mut out = Vec::new();
    match r.header("content-encoding") {
        None => return r.body.clone(),
        Some("gzip") => flate2::read::GzDecoder::new(&r.body[..]).read_to_end(&mut out).expect("valid gzip"),
        Some("br") => {
            brotli::Decompressor::new(&r.body[..], 4096).read_to_end(&mut out).expect("valid brotli")
        }
        Some(other) => panic!("unexpected Content-Encoding {other}"),
    };
    out
}

fn get(p: &Portico, path: &str, extra: &str) -> Response {
    p.request(&format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n"))
}

/// A compressed answer: framing, headers, and its bytes decoded back to `original`.
fn assert_coded(r: &Response, coding: &str, original: &[u8]) {
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.header("content-encoding"), Some(coding), "{}", r.head);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"), "{}", r.head);
    assert_eq!(r.header("content-length"), None, "{}", r.head);
    assert_eq!(r.header("accept-ranges"), None, "{}", r.head);
    assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{}", r.head);
    assert!(r.body.len() < original.len() / 2, "{coding}: {} of {} bytes", r.body.len(), original.len());
    assert!(decoded(r) == original, "{coding}: the decoded body differs from the original");
}

fn assert_plain(r: &Response, original: &[u8], vary: bool) {
    assert_eq!(r.header("content-encoding"), None, "{}", r.head);
    assert_eq!(r.body, original);
    assert_eq!(r.header("vary").is_some(), vary, "Vary: {}", r.head);
}

#[test]
fn files_in_gzip_and_brotli_as_the_client_prefers() {
    let s = start();
    let (p, page) = (&s.p, &s.page);
    let gz = get(p, "/page.html", "Accept-Encoding: gzip\r\n");
    assert_coded(&gz, "gzip", page);
    let etag = gz.header("etag").expect("ETag");
    assert!(etag.starts_with("W/\""), "a weak ETag, as nginx: {etag}");
    assert_coded(&get(p, "/page.html", "Accept-Encoding: gzip, deflate, br\r\n"), "br", page);
    assert_coded(&get(p, "/page.html", "Accept-Encoding: br;q=0.5, gzip\r\n"), "gzip", page);
    assert_coded(&get(p, "/page.html", "Accept-Encoding: *\r\n"), "br", page);
    // a file over the read chunk, and a type from gzip_types
    assert_coded(&get(p, "/big.css", "Accept-Encoding: gzip\r\n"), "gzip", &s.big_css);
    assert_coded(&get(p, "/big.css", "Accept-Encoding: br\r\n"), "br", &s.big_css);

    // refused or not asked: the file as it is, which still varies
    let plain = get(p, "/page.html", "Accept-Encoding: br;q=0, gzip;q=0, identity;q=0\r\n");
    assert_plain(&plain, page, true);
    let plain = get(p, "/page.html", "");
    assert_plain(&plain, page, true);
    assert_eq!(plain.header("content-length"), Some(page.len().to_string().as_str()));
    assert_eq!(plain.header("accept-ranges"), Some("bytes"));
    assert_eq!(
        Some(format!("W/{}", plain.header("etag").unwrap()).as_str()),
        Some(etag),
        "the strong one behind it"
    );
}

#[test]
fn the_weak_etag_revalidates() {
    let s = start();
    let gz = get(&s.p, "/page.html", "Accept-Encoding: gzip\r\n");
    let etag = gz.header("etag").unwrap().to_string();
    let r = get(&s.p, "/page.html", &format!("Accept-Encoding: gzip\r\nIf-None-Match: {etag}\r\n"));
    assert_eq!(r.status, 304, "{}", r.head);
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-encoding"), None);
    // nginx's 304: the strong ETag, no Vary (the gzip filter leaves a 304 alone)
    assert_eq!(r.header("etag").map(|e| format!("W/{e}")), Some(etag), "{}", r.head);
    assert_eq!(r.header("vary"), None, "{}", r.head);
}

#[test]
fn a_connection_goes_on_after_coded_files() {
    let s = start();
    let mut c = s.p.connect();
    for ae in ["gzip", "br", "identity"] {
        c.send(
            format!("GET /page.html HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: {ae}\r\n\r\n").as_bytes(),
        );
        let r = c.read_response(false);
        assert_eq!(r.header("connection"), Some("keep-alive"), "{}", r.head);
        assert!(decoded(&r) == s.page, "{ae}");
    }
}

#[test]
fn http_1_0_gets_a_close_delimited_coded_body_only_when_allowed() {
    let s = start();
    let r = s.p.request("GET /old/page.html HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n");
    assert_eq!((r.status, r.header("content-encoding")), (200, Some("gzip")), "{}", r.head);
    assert_eq!((r.header("transfer-encoding"), r.header("content-length")), (None, None), "{}", r.head);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(decoded(&r) == s.page, "close-delimited gzip decodes to the file");
    // nginx's gzip_http_version 1.1 elsewhere: the file, varying
    let r = s.p.request("GET /page.html HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n");
    assert_plain(&r, &s.page, true);
}

#[test]
fn what_is_never_compressed() {
    let s = start();
    let p = &s.p;
    let ae = "Accept-Encoding: gzip, br\r\n";
    // HEAD: the identity head, as nginx (no Vary either)
    let mut c = p.connect();
    c.send(format!("HEAD /page.html HTTP/1.1\r\nHost: localhost\r\n{ae}\r\n").as_bytes());
    let r = c.read_response(true);
    assert_eq!((r.header("content-encoding"), r.header("vary")), (None, None), "{}", r.head);
    assert_eq!(r.header("content-length"), Some(s.page.len().to_string().as_str()));
    // a range answer
    let r = get(p, "/page.html", &format!("{ae}Range: bytes=0-99\r\n"));
    assert_eq!((r.status, r.header("content-encoding")), (206, None), "{}", r.head);
    assert_eq!(r.body, &s.page[..100]);
    assert_eq!(r.header("vary"), Some("Accept-Encoding"), "the whole file would be coded: {}", r.head);
    // Cache-Control: no-transform (here from add_header)
    assert_plain(&get(p, "/nt/page.html", ae), &s.page, false);
    // under gzip_min_length, another type, compression off here
    assert_plain(&get(p, "/tiny.css", ae), b"a{b:c}\n", false);
    assert_plain(&get(p, "/image.png", ae), &[7u8; 30_000], false);
    assert_plain(&get(p, "/plain/page.html", ae), &s.page, false);
    // a 304 for the strong ETag
    let etag = get(p, "/page.html", "").header("etag").unwrap().to_string();
    let r = get(p, "/page.html", &format!("{ae}If-None-Match: {etag}\r\n"));
    assert_eq!((r.status, r.header("content-encoding")), (304, None));
    // a precompressed file is sent as it is, never compressed again
    let r = get(p, "/pre/p.css", ae);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str()),
        "the sidecar, with its length"
    );
    assert!(decoded(&r) == s.big_css);
    // no sidecar there: compressed on the fly
    assert_coded(&get(p, "/pre/nosidecar.css", "Accept-Encoding: gzip\r\n"), "gzip", &s.big_css);
    // nginx compresses its 404 page too (text/html, status 404)
    let r = get(p, "/missing.html", "Accept-Encoding: gzip\r\n");
    assert_eq!((r.status, r.header("content-encoding")), (404, Some("gzip")), "{}", r.head);
    assert!(String::from_utf8(decoded(&r)).unwrap().contains("<h1>404 Not Found</h1>"));
}

#[test]
fn through_a_proxy_only_as_gzip_proxied_allows() {
    let s = start();
    let via = "Accept-Encoding: gzip\r\nVia: 1.1 cache\r\n";
    // nginx's default off: no coded answer through a proxy, but it still varies
    assert_plain(&get(&s.p, "/page.html", via), &s.page, true);
    // `expired`: the answer's Expires (expires = "epoch" there) is in the past
    let r = get(&s.p, "/proxied/page.html", via);
    assert_eq!(r.header("content-encoding"), Some("gzip"), "{}", r.head);
    assert!(decoded(&r) == s.page);
}

#[test]
fn an_apps_answers_coded_with_content_length_or_streamed() {
    let s = start();
    let p = &s.p;
    let page = page_text(50_000);
    assert_coded(&get(p, "/app/page?n=50000", "Accept-Encoding: gzip\r\n"), "gzip", &page);
    assert_coded(&get(p, "/app/page?n=50000", "Accept-Encoding: br\r\n"), "br", &page);
    // the app streams it in 4 KiB pieces, no length: coded chunk by chunk
    let big = page_text(400_000);
    assert_coded(&get(p, "/app/page?n=400000&stream=1", "Accept-Encoding: gzip\r\n"), "gzip", &big);
    assert_coded(&get(p, "/app/page?n=400000&stream=1", "Accept-Encoding: br\r\n"), "br", &big);
    // the app's ETag weakened, its Accept-Ranges dropped
    let r = get(p, "/app/page?n=5000&h=ETag:\"abc\"&h=Accept-Ranges:bytes", "Accept-Encoding: gzip\r\n");
    assert_eq!((r.header("etag"), r.header("accept-ranges")), (Some("W/\"abc\""), None), "{}", r.head);
    // its 404 is coded, its 500 is not
    let r = get(p, "/app/page?n=5000&status=404%20Not%20Found", "Accept-Encoding: gzip\r\n");
    assert_eq!((r.status, r.header("content-encoding")), (404, Some("gzip")));
    assert!(decoded(&r) == page_text(5000));
    let r = get(p, "/app/page?n=5000&status=500%20Oops", "Accept-Encoding: gzip\r\n");
    assert_eq!((r.status, r.header("content-encoding"), r.header("vary")), (500, None, None));
    // two coded answers on one keep-alive connection
    let mut c = p.connect();
    for _ in 0..2 {
        c.send(b"GET /app/page?n=30000 HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: gzip\r\n\r\n");
        let r = c.read_response(false);
        assert_eq!(r.header("connection"), Some("keep-alive"));
        assert!(decoded(&r) == page_text(30_000));
    }
}

#[test]
fn an_apps_answers_left_alone() {
    let s = start();
    let p = &s.p;
    let ae = "Accept-Encoding: gzip, br\r\n";
    let r = get(p, "/app/page?n=5000&h=Cache-Control:public,%20no-transform", ae);
    assert_eq!(r.header("content-encoding"), None, "no-transform: {}", r.head);
    assert!(r.body == page_text(5000));
    let r = get(p, "/app/page?n=5000&h=Content-Encoding:x-own", ae);
    assert_eq!(r.header("content-encoding"), Some("x-own"), "coded already: {}", r.head);
    assert!(r.body == page_text(5000));
    let r = get(p, "/app/status?code=204", ae);
    assert_eq!((r.status, r.header("content-encoding")), (204, None), "{}", r.head);
    let r = get(p, "/app/page?n=10", ae);
    assert_eq!((r.header("content-encoding"), r.header("vary")), (None, None), "under gzip_min_length");
    let r = get(p, "/app/page?n=5000&type=application/octet-stream", ae);
    assert_eq!(r.header("content-encoding"), None);
    let r = get(p, "/app/page?n=5000", "Accept-Encoding: gzip\r\nVia: 1.1 cache\r\n");
    assert_eq!((r.header("content-encoding"), r.header("vary")), (None, Some("Accept-Encoding")));
    let mut c = p.connect();
    c.send(format!("HEAD /app/page?n=5000 HTTP/1.1\r\nHost: localhost\r\n{ae}\r\n").as_bytes());
    let r = c.read_response(true);
    assert_eq!(r.header("content-encoding"), None, "{}", r.head);
}

#[test]
fn an_apps_answer_to_http_1_0_is_close_delimited() {
    let s = start();
    let r = s.p.request("GET /app10/page?n=50000&stream=1 HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n");
    assert_eq!((r.status, r.header("content-encoding")), (200, Some("gzip")), "{}", r.head);
    assert_eq!((r.header("transfer-encoding"), r.header("content-length")), (None, None), "{}", r.head);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r.header("x-added"), Some("yes"), "add_header with compression");
    assert!(decoded(&r) == page_text(50_000));
}

#[test]
fn an_apps_answer_with_a_length_to_http_1_0_loses_it() {
    let s = start();
    let r = s.p.request("GET /app10/page?n=50000 HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n");
    assert_eq!((r.status, r.header("content-encoding")), (200, Some("gzip")), "{}", r.head);
    assert_eq!((r.header("transfer-encoding"), r.header("content-length")), (None, None), "{}", r.head);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(decoded(&r) == page_text(50_000));
}
