//! Forwarding to a real uWSGI (tests/wsgi/test_app.py) over Unix sockets: the vars the app
//! receives, bodies both ways, error statuses with their log lines, pools (retry, passive
//! health, max_conns), a uWSGI restart, and framing of streamed responses.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use common::uwsgi::Uwsgi;
use common::{Portico, Response, TempDir};

const SITE: &str = r#"
log_format.up = "$status $upstream_addr $upstream_status $upstream_response_time $bytes_sent $body_bytes_sent \"$request\""

[upstream.pair]
servers = ["unix:{dir}/dead.sock", "unix:{dir}/app.sock"]
max_fails = 1
fail_timeout = "30s"

[upstream.capped]
servers = ["unix:{dir}/app.sock max_conns=1"]
connect_timeout = "500ms"

[upstream.slow]
servers = ["unix:{dir}/app.sock"]
read_timeout = "1s"

[upstream.big]
servers = ["unix:{dir}/app.sock"]
uwsgi_buffer_size = 32768

[[server]]
listen = ["127.0.0.1:{port}"]
server_name = ["localhost"]
access_log = "{dir}/access.log"
access_log_format = "up"
error_log = "{dir}/error.log"
error_log_level = "info"
client_max_body_size = "64m"
client_body_buffer_size = "16k"

[[server.location]]
match = "/"
uwsgi_pass = "unix:{dir}/app.sock"
uwsgi_param = { X_APP = "portico-test", X_REQUEST_URI = "$request_uri", X_OPTIONAL = { value = "$http_x_optional", if_not_empty = true } }

[[server.location]]
match = "/missing/"
uwsgi_pass = "unix:{dir}/missing.sock"

[[server.location]]
match = "/refused/"
uwsgi_pass = "unix:{dir}/refused.sock"

[[server.location]]
match = "/pair/"
uwsgi_pass = "pair"

[[server.location]]
match = "/capped/"
uwsgi_pass = "capped"

[[server.location]]
match = "/slow/"
uwsgi_pass = "slow"

[[server.location]]
match = "/big/"
uwsgi_pass = "big"
"#;

struct Stack {
    portico: Portico,
    uwsgi: Uwsgi,
}

fn stack() -> Stack {
    let dir = TempDir::new("fwd");
    let uwsgi = Uwsgi::start(&dir.path().join("app.sock"), &[]);
    let portico = Portico::start_in(dir, SITE, &[]);
    Stack { portico, uwsgi }
}

fn json(r: &Response) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.text()))
}

fn env<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    v["environ"][key].as_str()
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 256) as u8).collect()
}

fn post(p: &Portico, path: &str, body: &[u8]) -> Response {
    let mut c = p.connect();
    c.send(format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
    c.send(body);
    c.read_response(false)
}

#[test]
fn the_app_receives_nginx_vars() {
    let s = stack();
    let p = &s.portico;
    let r = p.request(
        "GET /echo/x%20y?a=1&b=%20 HTTP/1.1\r\nHost: localhost:8080\r\nCookie: a=1\r\nX_Spoof: no\r\nProxy: http://evil\r\nCookie: b=2\r\nX-Dup: one\r\nX-Dup: two\r\nUser-Agent: test/1\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = json(&r);
    let port = p.addr.port().to_string();
    for (k, want) in [
        ("REQUEST_METHOD", "GET"),
        ("QUERY_STRING", "a=1&b=%20"),
        ("REQUEST_URI", "/echo/x%20y?a=1&b=%20"),
        ("PATH_INFO", "/echo/x y"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_SCHEME", "http"),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", port.as_str()),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("CONTENT_TYPE", ""),
        ("CONTENT_LENGTH", ""),
        ("HTTP_HOST", "localhost:8080"),
        ("HTTP_COOKIE", "a=1; b=2"),
        ("HTTP_X_DUP", "one, two"),
        ("HTTP_USER_AGENT", "test/1"),
        ("X_APP", "portico-test"),
        ("X_REQUEST_URI", "/echo/x%20y?a=1&b=%20"),
    ] {
        assert_eq!(env(&v, k), Some(want), "{k} in {v}");
    }
    assert_eq!(env(&v, "HTTP_PROXY"), None);
    assert_eq!(env(&v, "HTTP_X_SPOOF"), None);
    assert_eq!(env(&v, "X_OPTIONAL"), None, "if_not_empty param with an empty value");
    assert_eq!(env(&v, "HTTPS"), None);

    let r = p.request("GET /echo HTTP/1.0\r\nX-Optional: set\r\n\r\n");
    let v = json(&r);
    assert_eq!(env(&v, "SERVER_PROTOCOL"), Some("HTTP/1.0"));
    assert_eq!(env(&v, "X_OPTIONAL"), Some("set"));
}

#[test]
fn absolute_form_targets_are_reduced_to_path_and_query() {
    let s = stack();
    let r = s.portico.request("GET http://localhost/echo/abs?q=1 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let v = json(&r);
    // nginx: both REQUEST_URI and $request_uri are the path and query, without scheme and host
    assert_eq!(env(&v, "REQUEST_URI"), Some("/echo/abs?q=1"), "{v}");
    assert_eq!(env(&v, "X_REQUEST_URI"), Some("/echo/abs?q=1"), "{v}");
    assert_eq!(env(&v, "PATH_INFO"), Some("/echo/abs"), "{v}");
    assert_eq!(env(&v, "QUERY_STRING"), Some("q=1"), "{v}");
}

#[test]
fn request_bodies_of_every_size_arrive_intact() {
    let s = stack();
    for size in [1usize, 100 << 10, 50 << 20] {
        let body = pattern(size);
        let r = post(&s.portico, "/echo", &body);
        assert_eq!(r.status, 200, "{size}: {}", r.text());
        let v = json(&r);
        assert_eq!(v["body_len"].as_u64(), Some(size as u64));
        assert_eq!(v["body_sha256"].as_str(), Some(sha256_hex(&body).as_str()), "{size}");
        assert_eq!(env(&v, "CONTENT_LENGTH"), Some(size.to_string().as_str()));
    }
}

fn chunked(body: &[u8], piece: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in body.chunks(piece) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[test]
fn chunked_request_bodies_are_sent_with_their_length() {
    let s = stack();
    // 10 KiB stays in memory, 300 KiB goes through a temporary file (client_body_buffer_size 16k)
    for size in [10usize << 10, 300 << 10, 0] {
        let body = pattern(size);
        let mut c = s.portico.connect();
        c.send(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n");
        c.send(&chunked(&body, 4000));
        let r = c.read_response(false);
        assert_eq!(r.status, 200, "{}", r.text());
        let v = json(&r);
        assert_eq!(env(&v, "CONTENT_LENGTH"), Some(size.to_string().as_str()));
        assert_eq!(env(&v, "HTTP_TRANSFER_ENCODING"), None);
        assert_eq!(v["body_sha256"].as_str(), Some(sha256_hex(&body).as_str()));
    }
}

#[test]
fn expect_100_continue_is_answered() {
    let s = stack();
    let mut c = s.portico.connect();
    c.send(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    let interim = c.read_response(true);
    assert_eq!(interim.status, 100);
    c.send(b"hello");
    let r = c.read_response(false);
    assert_eq!(json(&r)["body_len"].as_u64(), Some(5));
}

#[test]
fn response_bodies_of_every_size_arrive_intact() {
    let s = stack();
    for size in [1usize, 100 << 10, 50 << 20] {
        let r = s.portico.get(&format!("/big?n={size}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-length"), Some(size.to_string().as_str()));
        assert_eq!(r.body.len(), size);
        assert!(r.body == pattern(size), "{size}-byte body differs");
    }
}

#[test]
fn a_slow_client_does_not_make_portico_buffer_the_response() {
    let s = stack();
    let pid = s.portico.child.id();
    let rss = || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|k| k.parse().ok())
            .unwrap()
    };
    let before = rss();
    let mut sock = TcpStream::connect(s.portico.addr).unwrap();
    sock.write_all(b"GET /big?n=104857600 HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let _ = sock.read(&mut buf).unwrap();
    // stop reading: uWSGI produces 100 MiB, the client has taken almost nothing
    std::thread::sleep(Duration::from_secs(2));
    let grown_kib = rss().saturating_sub(before);
    assert!(grown_kib < 32 * 1024, "Portico's RSS grew by {grown_kib} KiB for a stalled client");
}

#[test]
fn streamed_responses_are_chunked_for_http11_and_close_delimited_for_http10() {
    let s = stack();
    let r = s.portico.get("/stream?n=4&size=3");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.text(), "AAABBBCCCDDD");
    let r = s.portico.request("GET /stream?n=2&size=2 HTTP/1.0\r\n\r\n");
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r.text(), "AABB");
}

#[test]
fn the_apps_own_chunking_is_decoded_once() {
    let s = stack();
    let r = s.portico.get("/te");
    assert_eq!(r.text(), "hello world");
}

#[test]
fn head_has_no_body_whatever_the_app_sends() {
    let s = stack();
    let mut c = s.portico.connect();
    c.send(b"HEAD /big?n=5000 HTTP/1.1\r\nHost: localhost\r\n\r\nGET /big?n=3 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let head = c.read_response(true);
    assert_eq!(head.header("content-length"), Some("5000"));
    let next = c.read_response(false);
    assert_eq!(next.body, [0, 1, 2]);
}

#[test]
fn app_headers_status_and_cookies_pass_through() {
    let s = stack();
    let r = s.portico.get("/cookies");
    let cookies: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(cookies, ["a=1; Path=/", "b=2; Path=/; HttpOnly", "c=3; Path=/"]);
    assert!(r.head.contains("X-Multi: one\r\nX-Multi: two\r\n"), "{}", r.head);
    let r = s.portico.get("/status?code=404");
    assert!(r.head.starts_with("HTTP/1.1 404 Custom Reason\r\n"), "{}", r.head);
    let r = s.portico.get("/status?code=204");
    assert_eq!(r.status, 204);
}

#[test]
fn an_app_that_does_not_read_the_body_still_gets_its_response_through() {
    let s = stack();
    let body = pattern(5 << 20);
    let r = post(&s.portico, "/noread", &body);
    assert_eq!((r.status, r.text().as_str()), (200, "ignored\n"));
}

#[test]
fn crash_before_start_response_is_502_with_a_log_line() {
    let s = stack();
    let r = s.portico.get("/crash");
    assert_eq!(r.status, 502);
    assert_eq!(r.header("connection"), Some("keep-alive"));
    let log = s.portico.wait_for_log(&s.portico.dir.path().join("error.log"), "prematurely closed");
    let line = log.lines().find(|l| l.contains("prematurely closed")).unwrap();
    assert!(line.contains("[error]"), "{line}");
    assert!(line.contains("while reading response header from upstream"), "{line}");
    assert!(line.contains(&format!("upstream: \"uwsgi://unix:{}\"", s.uwsgi.socket.display())), "{line}");
    assert!(line.contains("request: \"GET /crash HTTP/1.1\""), "{line}");
}

#[test]
fn missing_and_refused_sockets_are_502_with_errno_and_socket() {
    let s = stack();
    let r = s.portico.get("/missing/x");
    assert_eq!(r.status, 502);
    let dir = s.portico.dir.path();
    let log = s.portico.wait_for_log(&dir.join("error.log"), "missing.sock");
    let line = log.lines().find(|l| l.contains("missing.sock")).unwrap();
    assert!(line.contains("[crit]"), "{line}");
    assert!(
        line.contains(&format!(
            "connect() to unix:{}/missing.sock failed (2: No such file or directory)",
            dir.display()
        )),
        "{line}"
    );

    // a socket file nobody listens on, as a crashed uWSGI leaves it
    drop(std::os::unix::net::UnixListener::bind(dir.join("refused.sock")).unwrap());
    assert_eq!(s.portico.get("/refused/x").status, 502);
    let log = s.portico.wait_for_log(&dir.join("error.log"), "refused.sock failed");
    let line = log.lines().find(|l| l.contains("refused.sock failed")).unwrap();
    assert!(line.contains("[error]") && line.contains("(111: Connection refused)"), "{line}");
}

#[test]
fn read_timeout_is_504() {
    let s = stack();
    let r = s.portico.get("/slow/sleep?secs=3");
    assert_eq!(r.status, 504);
    let log = s.portico.wait_for_log(&s.portico.dir.path().join("error.log"), "timed out");
    assert!(
        log.contains(
            "upstream timed out (110: Connection timed out) while reading response header from upstream"
        ),
        "{log}"
    );
}

#[test]
fn uwsgi_dying_mid_body_aborts_the_client_connection() {
    let s = stack();
    let mut sock = TcpStream::connect(s.portico.addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    sock.write_all(b"GET /die?n=1000000 HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let _ = sock.read_to_end(&mut got);
    let split = got.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
    assert!(String::from_utf8_lossy(&got[..split]).contains("Content-Length: 1000000"));
    assert!(got.len() - split < 1_000_000, "the truncated body must not look complete");
    let log = s.portico.wait_for_log(&s.portico.dir.path().join("error.log"), "while reading upstream");
    assert!(log.contains("upstream prematurely closed connection while reading upstream"), "{log}");
    // uWSGI's master starts another worker; the next request is served
    assert_eq!(s.portico.get("/echo").status, 200);
}

#[test]
fn vars_over_the_backends_buffer_size_get_431_and_a_log_line_naming_both_sizes() {
    let s = stack();
    let cookie = "c".repeat(6000);
    let r =
        s.portico.request(&format!("GET /echo HTTP/1.1\r\nHost: localhost\r\nCookie: big={cookie}\r\n\r\n"));
    assert_eq!(r.status, 431);
    let log = s.portico.wait_for_log(&s.portico.dir.path().join("error.log"), "uwsgi_buffer_size");
    assert!(log.contains("over uwsgi_buffer_size 4096"), "{log}");
    assert!(log.contains("HTTP_COOKIE"), "{log}");
    assert!(log.contains("buffer-size"), "{log}");
    // the same request to a pool declared with uWSGI's buffer-size raised... is still
    // refused by this uWSGI (4096), which is why both must be raised together
    let r = s
        .portico
        .request(&format!("GET /big/echo HTTP/1.1\r\nHost: localhost\r\nCookie: big={cookie}\r\n\r\n"));
    assert_eq!(r.status, 502);
}

#[test]
fn vars_just_under_4096_are_accepted_by_a_default_uwsgi() {
    let s = stack();
    let probe = s.portico.get("/echo");
    assert_eq!(probe.status, 200);
    // grow one header until the block is a few bytes under 4096
    let mut size = 3000;
    loop {
        let r = s.portico.request(&format!(
            "GET /echo HTTP/1.1\r\nHost: localhost\r\nX-Pad: {}\r\n\r\n",
            "p".repeat(size)
        ));
        if r.status == 431 {
            break;
        }
        assert_eq!(r.status, 200, "a block under uwsgi_buffer_size must reach the app");
        size += 50;
    }
    assert!(size > 3200, "431 came too early, at a header of {size} bytes");
}

#[test]
fn two_sockets_one_down_retries_then_skips_it() {
    let s = stack();
    for _ in 0..6 {
        let r = s.portico.get("/pair/echo");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let log_path = s.portico.dir.path().join("error.log");
    let log = s.portico.wait_for_log(&log_path, "dead.sock");
    let failures = log.lines().filter(|l| l.contains("dead.sock failed")).count();
    assert_eq!(failures, 1, "after one failure the dead server is skipped for fail_timeout:\n{log}");
    let access = s.portico.wait_for_log(&s.portico.dir.path().join("access.log"), "/pair/echo");
    assert!(
        access.contains(&format!("unix:{0}/dead.sock, unix:{0}/app.sock", s.portico.dir.path().display())),
        "{access}"
    );
}

#[test]
fn max_conns_saturation_waits_then_answers_503() {
    let s = stack();
    let addr = s.portico.addr;
    let mark = s.portico.dir.path().join("slot-taken");
    let request =
        format!("GET /capped/sleep?secs=3&mark={} HTTP/1.1\r\nHost: localhost\r\n\r\n", mark.display());
    let busy = std::thread::spawn(move || {
        let mut c = common::Conn::new(TcpStream::connect(addr).unwrap());
        c.send(request.as_bytes());
        c.read_response(false).status
    });
    // the app has the request: the pool's only slot is taken
    let deadline = Instant::now() + Duration::from_secs(10);
    while !mark.exists() {
        assert!(Instant::now() < deadline, "the sleeping request never reached the app");
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = s.portico.get("/capped/echo");
    assert_eq!(r.status, 503);
    assert_eq!(busy.join().unwrap(), 200);
    let log = s.portico.wait_for_log(&s.portico.dir.path().join("error.log"), "max_conns");
    assert!(log.contains("every server of upstream \"capped\" is at max_conns"), "{log}");
    // once the slot is free the next request goes through
    assert_eq!(s.portico.get("/capped/echo").status, 200);
}

#[test]
fn uwsgi_restart_under_load_fails_fast_then_recovers() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let mut s = stack();
    assert_eq!(s.portico.get("/echo").status, 200);
    let running = Arc::new(AtomicBool::new(true));
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (running, statuses, addr) = (running.clone(), statuses.clone(), s.portico.addr);
            std::thread::spawn(move || {
                while running.load(Ordering::Relaxed) {
                    // the client's read timeout (10 s) bounds each request: a hang fails
                    let mut c = common::Conn::new(TcpStream::connect(addr).unwrap());
                    c.send(b"GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
                    let status = c.read_response(false).status;
                    statuses.lock().unwrap().push((Instant::now(), status));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    s.uwsgi.stop();
    let down_at = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    s.uwsgi.restart();
    let up_at = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    running.store(false, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    let statuses = statuses.lock().unwrap();
    assert!(statuses.iter().all(|(_, st)| *st == 200 || *st == 502), "only answers or 502s: {statuses:?}");
    let failed_while_down =
        statuses.iter().filter(|(t, st)| *t > down_at && *t < up_at && *st == 502).count();
    assert!(failed_while_down > 0, "requests during the restart should fail fast with 502");
    let last = statuses.iter().rev().take(20).filter(|(_, st)| *st == 200).count();
    assert_eq!(last, 20, "requests after the restart must succeed again");
}

#[test]
fn access_log_has_upstream_fields() {
    let s = stack();
    // everything the client receives, to hold $bytes_sent against
    let mut c = TcpStream::connect(s.portico.addr).unwrap();
    c.write_all(b"GET /echo?x=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut wire = Vec::new();
    c.read_to_end(&mut wire).unwrap();
    let head_len = wire.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let log = s.portico.wait_for_log(&s.portico.dir.path().join("access.log"), "/echo?x=1");
    let line = log.lines().find(|l| l.contains("/echo?x=1")).unwrap();
    let f: Vec<&str> = line.splitn(7, ' ').collect();
    assert_eq!(f[0], "200");
    assert_eq!(f[1], format!("unix:{}", s.uwsgi.socket.display()));
    assert_eq!(f[2], "200");
    assert!(f[3].contains('.') && f[3].parse::<f64>().is_ok(), "{line}");
    assert_eq!(f[4], wire.len().to_string(), "$bytes_sent is what the client got: {line}");
    assert_eq!(f[5], (wire.len() - head_len).to_string(), "{line}");
}

/// The seed's "Permission denied": a 0600 socket owned by another user.
#[test]
fn a_socket_portico_may_not_open_is_502_with_what_to_check() {
    let dir = TempDir::new("perm");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let socket = dir.path().join("app.sock");
    let _uwsgi = Uwsgi::start(&socket, &["--chmod-socket=600"]);
    let running_as_root = nix::unistd::geteuid().is_root();
    let prefix: Vec<&str> = if running_as_root {
        // root ignores file modes: run Portico as nobody, as nginx's workers run as www-data
        assert!(Command::new("setpriv").arg("--version").output().is_ok(), "setpriv (util-linux) is needed");
        vec!["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    } else {
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o000)).unwrap();
        Vec::new()
    };
    let p = Portico::start_in(dir, SITE, &prefix);
    let r = p.get("/echo");
    assert_eq!(r.status, 502);
    let log = p.wait_for_log(&p.dir.path().join("error.log"), "Permission denied");
    let line = log.lines().find(|l| l.contains("Permission denied")).unwrap();
    assert!(line.contains("[crit]"), "{line}");
    assert!(line.contains("(13: Permission denied)"), "{line}");
    assert!(line.contains("chown-socket"), "{line}");
    if running_as_root {
        assert!(line.contains("mode 600 and belongs to root:root, Portico runs as nobody"), "{line}");
    }
    assert!(Path::new(&socket).exists());
}
