//! nginx's `return` over a real socket: a server that only redirects (the :80 block that
//! sends everyone to HTTPS), location-level texts, bare statuses, an error status taken by
//! `error_page`, a relative redirect made absolute, and 444 closing without a word.

mod common;

use common::{Portico, TempDir};

const SITE: &str = r#"
access_log = "{dir}/access.log"

[[server]]
listen = ["127.0.0.1:{port}"]
server_name = ["old.example"]
return = "301 https://$host$request_uri"
add_header = { Strict-Transport-Security = "max-age=63072000" }

[[server]]
listen = ["127.0.0.1:{port}"]
server_name = ["localhost"]
default_server = true
root = "{dir}/html"
error_page = { 410 = "/gone.html" }

[[server.location]]
match = "/"

[[server.location]]
match = "= /health"
return = "200 all good on $host"

[[server.location]]
match = "= /empty"
return = 204

[[server.location]]
match = "/old/"
return = "302 /new/"

[[server.location]]
match = "/removed/"
return = 410

[[server.location]]
match = "/teapot"
return = "418 short and stout"

[[server.location]]
match = "/drop"
return = 444
"#;

fn start() -> Portico {
    let d = TempDir::new("returns");
    d.write("html/gone.html", "it is gone\n");
    Portico::start_in(d, SITE, &[])
}

#[test]
fn a_server_return_redirects_every_request_before_routing() {
    let p = start();
    let r = p.request("GET /forum/topic?id=3 HTTP/1.1\r\nHost: old.example\r\n\r\n");
    assert_eq!(r.status, 301, "{}", r.text());
    assert_eq!(r.header("location"), Some("https://old.example/forum/topic?id=3"));
    assert_eq!(r.header("strict-transport-security"), Some("max-age=63072000"));
    assert!(r.text().contains("301 Moved Permanently"), "nginx's page: {}", r.text());
    // HEAD gets the head alone
    let r = p.request("HEAD /x HTTP/1.1\r\nHost: old.example\r\n\r\n");
    assert_eq!((r.status, r.body.len()), (301, 0));
}

#[test]
fn location_returns_answer_texts_and_statuses() {
    let p = start();
    let r = p.get("/health");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "all good on localhost");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    let r = p.get("/empty");
    assert_eq!((r.status, r.body.len()), (204, 0));
    let r = p.get("/teapot");
    assert_eq!((r.status, r.text().as_str()), (418, "short and stout"));
    let r = p.get("/old/page");
    assert_eq!(r.status, 302);
    let port = p.addr.port();
    assert_eq!(r.header("location").map(str::to_string), Some(format!("http://localhost:{port}/new/")));
}

#[test]
fn an_error_status_goes_to_error_page() {
    let p = start();
    let r = p.get("/removed/thing");
    assert_eq!(r.status, 410);
    assert_eq!(r.text(), "it is gone\n");
}

#[test]
fn return_444_closes_without_an_answer_and_is_logged() {
    let p = start();
    let mut c = p.connect();
    c.send(b"GET /drop HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(c.is_closed(), "444 sends nothing and closes");
    let log = p.wait_for_log(&p.dir.path().join("access.log"), "\"GET /drop HTTP/1.1\" 444");
    assert!(log.contains(" 444 0 "), "{log}");
}
