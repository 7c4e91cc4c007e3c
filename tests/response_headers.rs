//! `expires` and `add_header` on real answers: files, Portico's own pages and a real
//! uWSGI's; nginx's status rule and `always`; a location with an `add_header` of its own
//! inherits none of its server's (while `expires` is inherited); variables in values; the
//! app's own `Expires`/`Cache-Control` replaced by `expires`.

mod common;

use common::uwsgi::Uwsgi;
use common::{Portico, Response, TempDir};

const SITE: &str = r#"
[[server]]
listen = ["127.0.0.1:{port}"]
server_name = ["localhost"]
root = "{dir}/html"
expires = "1h"
client_max_body_size = "1k"
add_header = { X-Frame-Options = "DENY", X-Served-For = { value = "$host$request_uri", always = true } }

[[server.location]]
match = "/"

[[server.location]]
match = "/static/"
expires = "max"

[[server.location]]
match = "/own/"
add_header = { X-Own = "yes" }

[[server.location]]
match = "/off/"
expires = "off"

[[server.location]]
match = "/echo/"
add_header = { X-Uri = { value = "$uri", always = true } }

[[server.location]]
match = "/app/"
uwsgi_pass = "unix:{dir}/app.sock"
expires = "epoch"
add_header = { X-App = "via portico", X-Always = { value = "on", always = true } }

[[server.location]]
match = "/dead/"
uwsgi_pass = "unix:{dir}/dead.sock"
add_header = { X-App = "via portico", X-Always = { value = "on", always = true } }
"#;

fn start() -> (Portico, Uwsgi) {
    let d = TempDir::new("headers");
    for f in ["a.txt", "static/s.css", "own/o.txt", "off/x.txt"] {
        d.write(&format!("html/{f}"), "x\n");
    }
    let app = Uwsgi::start(&d.path().join("app.sock"), &[]);
    let p = Portico::start_in(d, SITE, &[]);
    (p, app)
}

fn count(r: &Response, name: &str) -> usize {
    r.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).count()
}

#[test]
fn server_headers_on_files_and_the_status_rule() {
    let (p, _app) = start();
    let r = p.get("/a.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("max-age=3600"), "{}", r.head);
    let expires = r.header("expires").expect("Expires");
    let at = httpdate::parse_http_date(expires).unwrap();
    let ahead = at.duration_since(std::time::SystemTime::now()).unwrap().as_secs();
    assert!((3590..=3600).contains(&ahead), "{expires}");
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("x-served-for"), Some("localhost/a.txt"));
    // nginx's order: after ETag, before Accept-Ranges
    let etag = r.head.find("ETag:").unwrap();
    let exp = r.head.find("Expires:").unwrap();
    let ranges = r.head.find("Accept-Ranges:").unwrap();
    assert!(etag < exp && exp < ranges, "{}", r.head);

    // a 304 carries them too; a 404 only the `always` one
    let etag = r.header("etag").unwrap().to_string();
    let r = p.request(&format!("GET /a.txt HTTP/1.1\r\nHost: localhost\r\nIf-None-Match: {etag}\r\n\r\n"));
    assert_eq!((r.status, r.header("cache-control")), (304, Some("max-age=3600")));
    let r = p.get("/missing");
    assert_eq!(r.status, 404);
    assert_eq!((count(&r, "expires"), count(&r, "x-frame-options")), (0, 0), "{}", r.head);
    assert_eq!(r.header("x-served-for"), Some("localhost/missing"));
}

#[test]
fn locations_override_expires_and_replace_add_header_whole() {
    let (p, _app) = start();
    let r = p.get("/static/s.css");
    assert_eq!(r.header("expires"), Some("Thu, 31 Dec 2037 23:55:55 GMT"));
    assert_eq!(r.header("cache-control"), Some("max-age=315360000"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"), "no add_header of its own: the server's");
    let r = p.get("/own/o.txt");
    assert_eq!(r.header("x-own"), Some("yes"));
    assert_eq!((count(&r, "x-frame-options"), count(&r, "x-served-for")), (0, 0), "nginx's rule: {}", r.head);
    assert_eq!(r.header("cache-control"), Some("max-age=3600"), "expires is inherited");
    let r = p.get("/off/x.txt");
    assert_eq!((count(&r, "expires"), count(&r, "cache-control")), (0, 0), "{}", r.head);
}

#[test]
fn an_apps_answer_gets_them_and_expires_replaces_its_own() {
    let (p, _app) = start();
    // the test app answers /cookies with headers of its own; expires = "epoch" here
    let r = p.get("/app/cookies");
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.header("x-app"), Some("via portico"));
    assert_eq!(r.header("expires"), Some("Thu, 01 Jan 1970 00:00:01 GMT"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(count(&r, "set-cookie"), 3, "the app's headers still pass");
    let r = p.get("/app/cached");
    assert_eq!((count(&r, "cache-control"), count(&r, "expires")), (1, 1), "{}", r.head);
    assert_eq!(r.header("cache-control"), Some("no-cache"), "{}", r.head);
    // an app's error status: none of them (no `always`)
    let r = p.get("/app/status?code=500");
    assert_eq!(r.status, 500);
    assert_eq!((count(&r, "x-app"), count(&r, "expires")), (0, 0), "{}", r.head);
    assert_eq!(r.header("x-always"), Some("on"));
    // Portico's own 502 for the location: the `always` line only
    let r = p.get("/dead/x");
    assert_eq!((r.status, r.header("x-always"), count(&r, "x-app")), (502, Some("on"), 0), "{}", r.head);
    // and its 413 for a body over client_max_body_size
    let body = "x".repeat(2048);
    let r = p.request(&format!(
        "POST /app/echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n{body}\r\n0\r\n\r\n"
    ));
    assert_eq!((r.status, r.header("x-always"), count(&r, "x-app")), (413, Some("on"), 0), "{}", r.head);
}

#[test]
fn a_decoded_line_break_in_a_variable_cannot_add_a_header() {
    let (p, _app) = start();
    let r = p.get("/echo/a%0d%0aSet-Cookie:%20x=1%09%7fz");
    assert_eq!(r.status, 404);
    assert_eq!(count(&r, "set-cookie"), 0, "{}", r.head);
    assert_eq!(r.header("x-uri"), Some("/echo/a  Set-Cookie: x=1\t z"), "{}", r.head);
}
