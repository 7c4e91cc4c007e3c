//! Behind a load balancer, over real sockets: PROXY protocol v1 and v2 headers before
//! HTTP and before TLS, `$proxy_protocol_addr`, a missing or broken header closing the
//! connection with an error-log line, and the realip keys: the client's address from the
//! PROXY header or from X-Forwarded-For (recursive or not) only when the peer is trusted,
//! in uWSGI's REMOTE_ADDR and the access log.

mod common;

use std::io::Write;
use std::net::TcpStream;

use common::tls::{connect_over, Ca};
use common::uwsgi::Uwsgi;
use common::{Portico, Response, TempDir};

const SITE: &str = r#"
error_log = "{dir}/error.log"
access_log = "{dir}/access.log"
log_format.real = "$remote_addr pp=$proxy_protocol_addr:$proxy_protocol_port $host $request_uri"
access_log_format = "real"

[[server]]
listen = ["127.0.0.1:{port} proxy_protocol"]
server_name = ["trusted"]
default_server = true
set_real_ip_from = ["127.0.0.0/8"]
real_ip_header = "proxy_protocol"

[[server.location]]
match = "/"
uwsgi_pass = "unix:{dir}/app.sock"

[[server]]
listen = ["127.0.0.1:{port} proxy_protocol"]
server_name = ["untrusted"]
set_real_ip_from = ["10.0.0.0/8"]
real_ip_header = "proxy_protocol"

[[server.location]]
match = "/"
uwsgi_pass = "unix:{dir}/app.sock"

[[server]]
listen = ["127.0.0.1:{port} proxy_protocol"]
server_name = ["xff", "xff-recursive"]
set_real_ip_from = ["127.0.0.1", "10.0.0.0/8"]
real_ip_header = "X-Forwarded-For"

[[server.location]]
match = "/"
uwsgi_pass = "unix:{dir}/app.sock"
"#;

fn start(site: &str) -> (Portico, Uwsgi) {
    let d = TempDir::new("proxy");
    let app = Uwsgi::start(&d.path().join("app.sock"), &[]);
    let p = Portico::start_in(d, site, &[]);
    (p, app)
}

const V1: &[u8] = b"PROXY TCP4 203.0.113.9 198.51.100.2 4242 443\r\n";

fn v2() -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    h.extend_from_slice(&[198, 51, 100, 77, 198, 51, 100, 2]);
    h.extend_from_slice(&5151u16.to_be_bytes());
    h.extend_from_slice(&443u16.to_be_bytes());
    h
}

/// One request after `header`, both in one write (as a balancer sends them).
fn through(p: &Portico, header: &[u8], host: &str, extra: &str) -> Response {
    let mut c = p.connect();
    let mut bytes = header.to_vec();
    bytes.extend_from_slice(format!("GET /echo HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n").as_bytes());
    c.send(&bytes);
    c.read_response(false)
}

fn remote_addr(r: &Response) -> String {
    let v: serde_json::Value =
        serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()));
    v["environ"]["REMOTE_ADDR"].as_str().unwrap_or_default().to_string()
}

#[test]
fn v1_and_v2_headers_give_the_client_to_a_trusted_server() {
    let (p, _app) = start(SITE);
    assert_eq!(remote_addr(&through(&p, V1, "trusted", "")), "203.0.113.9");
    assert_eq!(remote_addr(&through(&p, &v2(), "trusted", "")), "198.51.100.77");
    // a health check's LOCAL header: the socket's own address
    assert_eq!(
        remote_addr(&through(&p, b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00", "trusted", "")),
        "127.0.0.1"
    );
    // the untrusted server keeps the peer, while $proxy_protocol_addr still says the header's
    assert_eq!(remote_addr(&through(&p, V1, "untrusted", "")), "127.0.0.1");
    let log = p.wait_for_log(&p.dir.path().join("access.log"), "untrusted");
    assert!(log.contains("203.0.113.9 pp=203.0.113.9:4242 trusted /echo"), "{log}");
    assert!(log.contains("127.0.0.1 pp=203.0.113.9:4242 untrusted /echo"), "{log}");
}

#[test]
fn x_forwarded_for_from_trusted_peers() {
    let (p, _app) = start(SITE);
    let xff = "X-Forwarded-For: 192.0.2.1, 203.0.113.50, 10.1.2.3\r\n";
    // not recursive: the last address, trusted or not
    assert_eq!(remote_addr(&through(&p, V1, "xff", xff)), "10.1.2.3");
    // no header: the peer
    assert_eq!(remote_addr(&through(&p, V1, "xff", "")), "127.0.0.1");
    // a trusted balancer's word on the scheme is passed on; an untrusted one's is not
    let proto = |host: &str| {
        let r = through(&p, V1, host, "X-Forwarded-Proto: https\r\n");
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        v["environ"]["HTTP_X_FORWARDED_PROTO"].as_str().map(str::to_string)
    };
    assert_eq!(proto("xff").as_deref(), Some("https"));
    assert_eq!(proto("untrusted"), None);
}

#[test]
fn a_missing_or_broken_header_closes_the_connection() {
    let (p, _app) = start(SITE);
    let mut c = p.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: trusted\r\n\r\n");
    assert!(c.is_closed(), "no answer without a PROXY header");
    let log = p.wait_for_log(&p.dir.path().join("error.log"), "while reading PROXY protocol");
    assert!(log.contains("broken header") && log.contains("GET / HTTP/1.1"), "{log}");
    let mut c = p.connect();
    c.send(b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n");
    assert!(c.is_closed());
    p.wait_for_log(&p.dir.path().join("error.log"), "bad port");
}

const RECURSIVE: &str = r#"
[[server]]
listen = ["127.0.0.1:{port}"]
set_real_ip_from = ["127.0.0.1", "10.0.0.0/8"]
real_ip_header = "X-Forwarded-For"
real_ip_recursive = true

[[server.location]]
match = "/"
uwsgi_pass = "unix:{dir}/app.sock"
"#;

#[test]
fn recursive_skips_trusted_hops_on_a_plain_port() {
    let (p, _app) = start(RECURSIVE);
    let r = through(
        &p,
        b"",
        "localhost",
        "X-Forwarded-For: 192.0.2.1, 203.0.113.50\r\nX-Forwarded-For: 10.1.2.3\r\n",
    );
    assert_eq!(remote_addr(&r), "203.0.113.50", "the first untrusted address from the right");
}

const TLS_SITE: &str = r#"
[[server]]
listen = ["127.0.0.1:{port} ssl proxy_protocol"]
ssl_certificate = "{dir}/a.pem"
ssl_certificate_key = "{dir}/a.key"
set_real_ip_from = ["127.0.0.1"]
real_ip_header = "proxy_protocol"

[[server.location]]
match = "/"
uwsgi_pass = "unix:{dir}/app.sock"
"#;

#[test]
fn the_header_comes_before_the_tls_handshake() {
    let d = TempDir::new("proxy-tls");
    Ca::new().issue(d.path(), "a", &["a.test"]);
    let app = Uwsgi::start(&d.path().join("app.sock"), &[]);
    let p = Portico::start_in(d, TLS_SITE, &[]);
    let mut tcp = TcpStream::connect(p.addr).expect("connect");
    tcp.write_all(V1).expect("header");
    let mut c: common::tls::TlsConn = connect_over(tcp, p.addr, Some("a.test"));
    c.send(b"GET /echo HTTP/1.1\r\nHost: a.test\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!(remote_addr(&r), "203.0.113.9");
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(v["environ"]["HTTPS"], "on");
    drop(app);
}
