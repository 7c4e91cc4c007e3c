//! Precompressed files (`precompressed`, nginx's `gzip_static`): the sidecar of the coding
//! the client prefers, when it is not older than the file, sent as the file (ranges and
//! validators included) with `Content-Encoding`, an ETag of its own and `Vary`.

mod common;

use std::time::{Duration, SystemTime};

use common::{Portico, Response, TempDir};

const SITE: &str = r#"
[[server]]
listen = ["127.0.0.1:{port}"]
server_name = ["localhost"]
root = "{dir}/html"
precompressed = ["br", "gzip"]

[[server.location]]
match = "/"

[[server.location]]
match = "/gz/"
gzip_static = true

[[server.location]]
match = "/novary/"
gzip_vary = false
"#;

const CSS: &str = "body { color: red }\n";
const GZ: &[u8] = b"\x1f\x8b pretend gzip";
const BR: &[u8] = b"pretend brotli";

fn start() -> Portico {
    let d = TempDir::new("precompressed");
    for dir in ["html", "html/gz"] {
        d.write(&format!("{dir}/app.css"), CSS);
        d.write(&format!("{dir}/app.css.gz"), GZ);
        d.write(&format!("{dir}/app.css.br"), BR);
    }
    // .br and .gz of one size with one mtime, as `gzip -k` and `brotli -k` can leave them
    d.write("html/same.css", CSS);
    let gz = d.write("html/same.css.gz", b"0123456789");
    let br = d.write("html/same.css.br", b"abcdefghij");
    let t = SystemTime::now();
    for f in [gz, br] {
        std::fs::File::options().write(true).open(f).unwrap().set_modified(t).unwrap();
    }
    d.write("html/novary/app.css", CSS);
    d.write("html/novary/app.css.gz", GZ);
    d.write("html/plain.css", CSS);
    d.write("html/stale.css", CSS);
    let stale = d.write("html/stale.css.gz", GZ);
    let old = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options().write(true).open(stale).unwrap().set_modified(old).unwrap();
    Portico::start_in(d, SITE, &[])
}

fn get(p: &Portico, path: &str, extra: &str) -> Response {
    p.request(&format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n"))
}

#[test]
fn the_preferred_fresh_sidecar_is_sent_with_its_own_headers() {
    let p = start();
    let plain = get(&p, "/app.css", "");
    assert_eq!(plain.body, CSS.as_bytes());
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"), "a cache must keep both: {}", plain.head);
    assert_eq!(plain.header("content-encoding"), None);

    let gz = get(&p, "/app.css", "Accept-Encoding: gzip\r\n");
    assert_eq!(gz.body, GZ);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gz.header("content-type"), Some("text/css"), "the original's type");
    assert_eq!(gz.header("content-length"), Some(GZ.len().to_string().as_str()));
    assert_eq!(gz.header("vary"), Some("Accept-Encoding"));
    assert_ne!(gz.header("etag"), plain.header("etag"), "an ETag of its own");

    // br first in the configuration; q-values still rule
    assert_eq!(get(&p, "/app.css", "Accept-Encoding: gzip, br\r\n").body, BR);
    assert_eq!(get(&p, "/app.css", "Accept-Encoding: br;q=0.1, gzip\r\n").body, GZ);
    assert_eq!(get(&p, "/app.css", "Accept-Encoding: br;q=0, gzip;q=0\r\n").body, CSS.as_bytes());
    // gzip_static offers only .gz
    assert_eq!(get(&p, "/gz/app.css", "Accept-Encoding: br, gzip\r\n").body, GZ);
}

#[test]
fn stale_or_missing_sidecars_are_not_sent() {
    let p = start();
    let r = get(&p, "/stale.css", "Accept-Encoding: gzip\r\n");
    assert_eq!((r.body.as_slice(), r.header("content-encoding")), (CSS.as_bytes(), None));
    assert_eq!(r.header("vary"), None, "no fresh sidecar: nothing varies");
    let r = get(&p, "/plain.css", "Accept-Encoding: gzip\r\n");
    assert_eq!((r.body.as_slice(), r.header("vary")), (CSS.as_bytes(), None));
}

#[test]
fn ranges_and_validators_work_on_the_sidecar() {
    let p = start();
    let r = get(&p, "/app.css", "Accept-Encoding: gzip\r\nRange: bytes=0-1\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &GZ[..2]);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let etag = get(&p, "/app.css", "Accept-Encoding: gzip\r\n").header("etag").unwrap().to_string();
    let r = get(&p, "/app.css", &format!("Accept-Encoding: gzip\r\nIf-None-Match: {etag}\r\n"));
    assert_eq!(r.status, 304);
    // the identity file's ETag does not match the sidecar's
    let plain = get(&p, "/app.css", "").header("etag").unwrap().to_string();
    let r = get(&p, "/app.css", &format!("Accept-Encoding: gzip\r\nIf-None-Match: {plain}\r\n"));
    assert_eq!(r.status, 200);
}

#[test]
fn unknown_codings_and_both_keys_are_refused_with_a_hint() {
    let d = TempDir::new("precompressed-bad");
    let conf = d.write(
        "p.toml",
        "[[server]]\nroot = \"/srv\"\nprecompressed = [\"gzip\", \"deflate\"]\n\n[[server.location]]\nmatch = \"/\"\ngzip_static = true\nprecompressed = [\"br\"]\n",
    );
    let out = std::process::Command::new(common::portico_bin())
        .args(["check", "--syntax-only", "-c"])
        .arg(&conf)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("p.toml:3:") && stderr.contains("`deflate` in precompressed"), "{stderr}");
    assert!(stderr.contains("p.toml:7:") && stderr.contains("`gzip_static` and `precompressed`"), "{stderr}");
}

#[test]
fn each_sidecar_has_an_etag_naming_its_coding() {
    let p = start();
    let gz = get(&p, "/same.css", "Accept-Encoding: gzip\r\n");
    let br = get(&p, "/same.css", "Accept-Encoding: br\r\n");
    assert_eq!((gz.body.as_slice(), br.body.as_slice()), (&b"0123456789"[..], &b"abcdefghij"[..]));
    let (g, b) = (gz.header("etag").unwrap(), br.header("etag").unwrap());
    assert!(g.ends_with("-gzip\"") && b.ends_with("-br\""), "{g} {b}");
    let r = get(&p, "/same.css", &format!("Accept-Encoding: br\r\nIf-None-Match: {g}\r\n"));
    assert_eq!(r.status, 200, "the gzip copy's tag does not validate the brotli copy");
}

#[test]
fn no_sidecar_for_http_1_0_or_through_a_proxy_but_vary_still() {
    let p = start();
    let r = p.request("GET /app.css HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n");
    assert_eq!((r.body.as_slice(), r.header("content-encoding")), (CSS.as_bytes(), None), "{}", r.head);
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    let r = get(&p, "/app.css", "Accept-Encoding: gzip\r\nVia: 1.1 squid\r\n");
    assert_eq!(
        (r.body.as_slice(), r.header("vary")),
        (CSS.as_bytes(), Some("Accept-Encoding")),
        "{}",
        r.head
    );
    let r = get(&p, "/novary/app.css", "Accept-Encoding: gzip\r\n");
    assert_eq!((r.body.as_slice(), r.header("vary")), (GZ, None), "gzip_vary = false: {}", r.head);
}

#[test]
fn several_ranges_of_a_sidecar_get_all_of_it_and_a_416_varies() {
    let p = start();
    let r = get(&p, "/app.css", "Accept-Encoding: gzip\r\nRange: bytes=0-1,4-5\r\n");
    assert_eq!((r.status, r.body.as_slice()), (200, GZ), "{}", r.head);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let r = get(&p, "/app.css", "Accept-Encoding: gzip\r\nRange: bytes=9000-\r\n");
    assert_eq!((r.status, r.header("vary")), (416, Some("Accept-Encoding")), "{}", r.head);
    assert_eq!(r.header("content-encoding"), None);
}
