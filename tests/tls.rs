//! TLS over real sockets, with a CA and certificates made here: SNI chooses between two
//! servers exactly as Host does, a client without SNI (or with an unknown name) gets the
//! default server's certificate, curl verifies the chain, files and a real uWSGI are served
//! over TLS (uWSGI told HTTPS=on and UWSGI_SCHEME=https, a client's X-Forwarded-Proto not
//! passed), `ssl_protocols` holds, a reload re-reads the certificate without dropping a
//! connection and a bad one is refused while the old keeps serving, `check` names a bad
//! certificate with file and line.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::tls::{connect, connect_with, presented, Ca};
use common::uwsgi::Uwsgi;
use common::{portico_bin, Portico, TempDir};

const SITE: &str = r#"
error_log = "{dir}/error.log"
error_log_level = "info"

[[server]]
listen = ["127.0.0.1:{port} ssl"]
server_name = ["a.test"]
default_server = true
ssl_certificate = "{dir}/a.pem"
ssl_certificate_key = "{dir}/a.key"
root = "{dir}/a"
gzip = false

[[server.location]]
match = "/"

[[server.location]]
match = "/app/"
uwsgi_pass = "unix:{dir}/app.sock"

[[server.location]]
match = "= /where"
return = "302 /there"

[[server]]
listen = ["127.0.0.1:{port} ssl"]
server_name = ["b.test"]
ssl_certificate = "{dir}/b.pem"
ssl_certificate_key = "{dir}/b.key"
ssl_protocols = ["TLSv1.3"]
root = "{dir}/b"

[[server.location]]
match = "/"
"#;

struct Stack {
    portico: Portico,
    _uwsgi: Uwsgi,
    ca: Ca,
    cert_a: Vec<u8>,
    cert_b: Vec<u8>,
}

fn start() -> Stack {
    let d = TempDir::new("tls");
    let ca = Ca::new();
    ca.write_pem(d.path());
    let cert_a = ca.issue(d.path(), "a", &["a.test", "127.0.0.1"]);
    let cert_b = ca.issue(d.path(), "b", &["b.test"]);
    d.write("a/index.html", "site a\n");
    d.write("a/dir/index.html", "a dir\n");
    d.write("a/big.bin", (0..300_000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    d.write("b/index.html", "site b\n");
    let uwsgi = Uwsgi::start(&d.path().join("app.sock"), &[]);
    let portico = Portico::start_in(d, SITE, &[]);
    Stack { portico, _uwsgi: uwsgi, ca, cert_a, cert_b }
}

fn get(c: &mut common::tls::TlsConn, host: &str, path: &str) -> common::Response {
    c.send(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
    c.read_response(false)
}

#[test]
fn sni_chooses_the_server_and_its_certificate() {
    let s = start();
    let addr = s.portico.addr;
    let mut a = connect(addr, Some("a.test"));
    assert_eq!(presented(&a), s.cert_a);
    assert_eq!(get(&mut a, "a.test", "/").text(), "site a\n");
    let mut b = connect(addr, Some("b.test"));
    assert_eq!(presented(&b), s.cert_b);
    assert_eq!(get(&mut b, "b.test", "/").text(), "site b\n");
    // keep-alive goes on over TLS
    assert_eq!(get(&mut b, "b.test", "/").text(), "site b\n");
    // an unknown name, and no SNI at all: the address's default server's certificate
    assert_eq!(presented(&connect(addr, Some("unknown.test"))), s.cert_a);
    let mut none = connect(addr, None);
    assert_eq!(presented(&none), s.cert_a);
    assert_eq!(get(&mut none, "a.test", "/").text(), "site a\n");
}

#[test]
fn curl_verifies_the_chain_for_each_name() {
    if Command::new("curl").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "curl is missing under CI (.ci/run installs it)");
        eprintln!("SKIPPED: curl is not installed");
        return;
    }
    let s = start();
    let port = s.portico.addr.port();
    let ca = s.portico.dir.path().join("ca.pem");
    for (name, body) in [("a.test", "site a\n"), ("b.test", "site b\n")] {
        let out = Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(&ca)
            .args(["--resolve", &format!("{name}:{port}:127.0.0.1")])
            .arg(format!("https://{name}:{port}/"))
            .output()
            .expect("curl");
        assert!(out.status.success(), "curl {name}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout), body);
    }
    // b.test's certificate does not cover a.test's name on b's server: curl refuses
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "--cacert"])
        .arg(&ca)
        .args(["--resolve", &format!("c.test:{port}:127.0.0.1")])
        .arg(format!("https://c.test:{port}/"))
        .output()
        .expect("curl");
    assert!(!out.status.success(), "an unknown name gets the default certificate, which does not name it");
}

#[test]
fn files_redirects_and_uwsgi_over_tls() {
    let s = start();
    let mut c = connect(s.portico.addr, Some("a.test"));
    // bigger than one 64 KB read of the buffered path
    let r = get(&mut c, "a.test", "/big.bin");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, (0..300_000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let port = s.portico.addr.port();
    let r = get(&mut c, "a.test", "/dir");
    assert_eq!(r.header("location").map(str::to_string), Some(format!("https://a.test:{port}/dir/")));
    let r = get(&mut c, "a.test", "/where");
    assert_eq!(r.header("location").map(str::to_string), Some(format!("https://a.test:{port}/there")));
    c.send(
        b"POST /app/echo HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-Proto: http\r\nContent-Length: 5\r\n\r\nhello",
    );
    let r = c.read_response(false);
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    let env = |k: &str| v["environ"][k].as_str().map(str::to_string);
    assert_eq!(env("HTTPS").as_deref(), Some("on"));
    assert_eq!(env("REQUEST_SCHEME").as_deref(), Some("https"));
    assert_eq!(env("UWSGI_SCHEME").as_deref(), Some("https"));
    assert_eq!(env("wsgi.url_scheme").as_deref(), Some("https"), "uWSGI sets the WSGI scheme from it");
    assert_eq!(env("HTTP_X_FORWARDED_PROTO"), None, "a client's claim about the scheme is not passed");
    assert_eq!(v["body_len"], 5);
}

#[test]
fn ssl_protocols_are_the_servers() {
    let s = start();
    let addr = s.portico.addr;
    // b.test offers TLS 1.3 only; a.test both
    assert!(connect_with(addr, Some("b.test"), Some(&rustls::version::TLS12)).is_err());
    assert!(connect_with(addr, Some("b.test"), Some(&rustls::version::TLS13)).is_ok());
    assert!(connect_with(addr, Some("a.test"), Some(&rustls::version::TLS12)).is_ok());
}

#[test]
fn plain_http_to_a_tls_port_is_closed_and_logged() {
    let s = start();
    let mut c = s.portico.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("The plain HTTP request was sent to HTTPS port"),
        "nginx's words: {}",
        r.text()
    );
    assert!(c.is_closed());
    let log =
        s.portico.wait_for_log(&s.portico.dir.path().join("error.log"), "plain HTTP request to HTTPS port");
    assert!(log.contains("[info]") && log.contains("client: 127.0.0.1"), "{log}");
    // a client that sends nothing is closed at client_header_timeout, logged too; a broken
    // ClientHello is logged as a failed handshake
    let mut c = s.portico.connect();
    c.send(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]);
    assert!(c.closes_after_sending(), "an alert, then the close");
    s.portico.wait_for_log(&s.portico.dir.path().join("error.log"), "SSL handshake failed");
}

/// Polls `f` until it holds (a reload is asynchronous), at most 10 s.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < until, "{what} never happened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn reload_rereads_certificates_without_dropping_a_connection() {
    let s = start();
    let addr = s.portico.addr;
    let dir = s.portico.dir.path().to_path_buf();
    let mut kept = connect(addr, Some("a.test"));
    assert_eq!(get(&mut kept, "a.test", "/").text(), "site a\n");

    // certbot's renewal: new files in place, then `portico reload` (here SIGHUP)
    let renewed = s.ca.issue(&dir, "a", &["a.test", "127.0.0.1"]);
    s.portico.signal("HUP");
    eventually("the renewed certificate on new connections", || {
        presented(&connect(addr, Some("a.test"))) == renewed
    });
    assert_eq!(get(&mut kept, "a.test", "/").text(), "site a\n", "the open connection goes on");

    // a broken renewal is refused, naming the file; the renewed certificate keeps serving
    std::fs::write(dir.join("a.pem"), "not a certificate\n").unwrap();
    s.portico.signal("HUP");
    let log = s.portico.wait_for_log(&dir.join("error.log"), "holds no certificate");
    assert!(log.contains("a.pem") && log.contains("portico.toml:"), "{log}");
    assert_eq!(presented(&connect(addr, Some("a.test"))), renewed);
    assert_eq!(get(&mut kept, "a.test", "/").text(), "site a\n");
}

#[test]
fn check_names_a_missing_or_mismatched_certificate() {
    let d = TempDir::new("tls-check");
    let ca = Ca::new();
    ca.issue(d.path(), "a", &["a.test"]);
    ca.issue(d.path(), "b", &["b.test"]);
    let dir = d.path().display().to_string();
    let run = |config: String| {
        let path = d.write("site.toml", config);
        // (certificates are read with the configuration: --syntax-only reads them too)
        let out = Command::new(portico_bin())
            .args(["check", "--syntax-only", "-c"])
            .arg(path)
            .output()
            .expect("check");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let site = |cert: &str, key: &str| {
        format!(
            "[[server]]\nlisten = [\"127.0.0.1:8443 ssl\"]\nssl_certificate = \"{dir}/{cert}\"\nssl_certificate_key = \"{dir}/{key}\"\n[[server.location]]\nmatch = \"/\"\nreturn = 204\n"
        )
    };
    let (code, err) = run(site("missing.pem", "a.key"));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("site.toml:3:") && err.contains("cannot read it (2: No such file or directory)"),
        "{err}"
    );
    let (code, err) = run(site("a.pem", "b.key"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("site.toml:4:") && err.contains("is not the key of the certificate"), "{err}");
    let (code, err) = run(
        "[[server]]\nlisten = [\"127.0.0.1:8443 ssl\"]\n[[server.location]]\nmatch = \"/\"\nreturn = 204\n"
            .into(),
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("site.toml:2:") && err.contains("has no ssl_certificate"), "{err}");
    // one port, TLS for one server and plain for the other
    let mixed = format!(
        "{}[[server]]\nlisten = [\"127.0.0.1:8443\"]\nserver_name = [\"x\"]\n[[server.location]]\nmatch = \"/\"\nreturn = 204\n",
        site("a.pem", "a.key")
    );
    let (code, err) = run(mixed);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("site.toml:9:") && err.contains("`ssl` for one of servers #1 and #2"), "{err}");
    let (code, err) = run(site("a.pem", "a.key"));
    assert_eq!(code, Some(0), "{err}");
}
