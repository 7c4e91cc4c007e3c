//! Connection handling over real TCP: keep-alive rules, pipelining, timeouts, request
//! validation, large and slow transfers, the sendfile proof, and process lifecycle
//! (signals, busy port).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::{free_port, portico_bin, Portico, TempDir};

const SITE: &str = r#"
[[server]]
listen = ["127.0.0.1:{port}"]
server_name = ["localhost"]
root = "{dir}/html"
keepalive_timeout = "1s"
error_log = "{dir}/error.log"
error_log_level = "info"

[[server.location]]
match = "/"
"#;

fn fixture() -> TempDir {
    let d = TempDir::new("conn");
    d.write("html/a.txt", "aaa\n");
    d.write("html/b.txt", "bbbb\n");
    d
}

fn start() -> Portico {
    Portico::start_in(fixture(), SITE, &[])
}

#[test]
fn http11_keeps_the_connection_open() {
    let p = start();
    let mut c = p.connect();
    for _ in 0..3 {
        c.send(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
        let r = c.read_response(false);
        assert_eq!((r.status, r.text().as_str()), (200, "aaa\n"));
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
}

#[test]
fn http10_and_connection_close_are_not_kept_alive() {
    let p = start();
    let mut c = p.connect();
    c.send(b"GET /a.txt HTTP/1.0\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed());

    let mut c = p.connect();
    c.send(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(c.read_response(false).header("connection"), Some("close"));
    assert!(c.is_closed());

    // HTTP/1.0 asking for keep-alive gets it, as from nginx
    let mut c = p.connect();
    c.send(b"GET /a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(c.read_response(false).header("connection"), Some("keep-alive"));
    c.send(b"GET /b.txt HTTP/1.0\r\n\r\n");
    assert_eq!(c.read_response(false).text(), "bbbb\n");
}

#[test]
fn idle_keepalive_connections_are_closed_after_keepalive_timeout() {
    let p = start();
    let mut c = p.connect();
    c.send(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    c.read_response(false);
    // keepalive_timeout is 1s here; the read timeout of the client is 10s
    assert!(c.is_closed(), "the idle connection was not closed");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let p = start();
    let mut c = p.connect();
    c.send(
        b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n\
          HEAD /b.txt HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /b.txt HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /missing HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(c.read_response(false).text(), "aaa\n");
    let head = c.read_response(true);
    assert_eq!(head.header("content-length"), Some("5"));
    assert_eq!(c.read_response(false).text(), "bbbb\n");
    assert_eq!(c.read_response(false).status, 404);
    let last = c.read_response(false);
    assert_eq!((last.status, last.text().as_str()), (200, "aaa\n"));
    assert!(c.is_closed());
}

#[test]
fn bad_requests_get_400_and_a_closed_connection() {
    let p = start();
    for raw in [
        "GET /a.txt HTTP/1.1\r\n\r\n",
        "GET /a.txt HTTP/1.1\r\nHost: a/b\r\n\r\n",
        "GET /a.txt HTTP/1.1\r\nHost: a..b\r\n\r\n",
        "GET /../a.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        "GARBAGE\r\n\r\n",
    ] {
        let mut c = p.connect();
        c.send(raw.as_bytes());
        let r = c.read_response(false);
        assert_eq!(r.status, 400, "{raw:?}");
        assert!(c.is_closed(), "{raw:?}");
    }
    let log = p.wait_for_log(&p.dir.path().join("error.log"), "without \"Host\" header");
    assert!(log.contains("[info]"), "{log}");
}

#[test]
fn http10_without_host_uses_the_default_server() {
    let p = start();
    let mut c = p.connect();
    c.send(b"GET /a.txt HTTP/1.0\r\n\r\n");
    assert_eq!(c.read_response(false).text(), "aaa\n");
}

#[test]
fn body_over_client_max_body_size_is_413() {
    let p = start();
    let mut c = p.connect();
    c.send(b"POST /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!(r.status, 413);
    assert_eq!(r.header("connection"), Some("close"));
    let log = p.wait_for_log(&p.dir.path().join("error.log"), "too large body");
    assert!(log.contains("client intended to send too large body: 2000000 bytes"), "{log}");
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn large_file_to_a_slow_reader_arrives_intact() {
    let d = fixture();
    let data = pattern(8 << 20);
    d.write("html/big.bin", &data);
    let p = Portico::start_in(d, SITE, &[]);
    let mut s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    // let the socket buffers fill so the server has to wait for writability
    std::thread::sleep(Duration::from_millis(300));
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let split = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&got[..split]);
    assert!(head.contains(&format!("Content-Length: {}", data.len())), "{head}");
    assert!(got[split..] == data[..], "body differs from the file");
}

/// The proof that static bodies go out with sendfile(2): under strace, the bytes counted
/// by sendfile calls add up to the file, and the body still arrives intact.
#[test]
fn static_bodies_are_sent_with_sendfile() {
    let data = pattern(3 << 20);
    let Some(text) = sendfile_trace(SITE, &data, "the sendfile proof") else { return };
    let sent: u64 = text
        .lines()
        .filter(|l| l.contains("sendfile("))
        .filter_map(|l| l.rsplit("= ").next())
        .filter_map(|n| n.trim().parse::<u64>().ok())
        .sum();
    assert_eq!(sent, data.len() as u64, "sendfile did not carry the whole body:\n{text}");
}

/// Serves `data` as a file under `strace -e trace=sendfile` with `site`, checks the body
/// arrives intact, and returns the trace; `None` (said loudly) when strace is missing,
/// which fails under CI, where .ci/run installs it.
fn sendfile_trace(site: &str, data: &[u8], what: &str) -> Option<String> {
    if Command::new("strace").arg("-V").output().is_err() {
        assert!(
            std::env::var("CI").is_err(),
            "strace is missing under CI: .ci/run installs it (apt-get install strace)"
        );
        eprintln!("SKIPPED: strace is not installed (apt-get install strace); {what} did not run");
        return None;
    }
    let d = fixture();
    d.write("html/big.bin", data);
    let trace = d.path().join("strace.out");
    let trace_arg = trace.display().to_string();
    let mut p =
        Portico::start_in(d, site, &["strace", "-f", "-qq", "-e", "trace=sendfile", "-o", &trace_arg]);
    let r = p.request("GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(r.body == data, "body differs from the file");
    // strace does not pass signals on: stop portico itself, then strace exits with it
    Command::new("pkill").args(["-INT", "-P", &p.child.id().to_string()]).status().unwrap();
    p.wait_exit(Duration::from_secs(10)).expect("portico under strace did not stop");
    Some(std::fs::read_to_string(&trace).unwrap())
}

#[test]
fn a_sighup_as_soon_as_it_listens_does_not_kill_portico() {
    // before its handlers are installed SIGHUP is ignored, after them it reloads: either
    // way the server lives (tests/reload.rs covers what a reload does)
    let mut p = start();
    p.signal("HUP");
    assert_eq!(p.get("/a.txt").text(), "aaa\n");
    p.signal("HUP");
    assert_eq!(p.get("/b.txt").text(), "bbbb\n");
    assert!(p.child.try_wait().unwrap().is_none(), "{}", p.stderr());
}

#[test]
fn sigterm_stops_gracefully_within_shutdown_timeout() {
    let site = format!("shutdown_timeout = \"1s\"\n{SITE}");
    let mut p = Portico::start_in(fixture(), &site, &[]);
    assert_eq!(p.get("/a.txt").status, 200);
    p.signal("TERM");
    let status = p.wait_exit(Duration::from_secs(15)).expect("portico did not exit after SIGTERM");
    assert!(status.success(), "{status}");
}

#[test]
fn sigint_stops_at_once_after_writing_the_logs() {
    let site = SITE.replacen("keepalive_timeout", "access_log = \"{dir}/access.log\"\nkeepalive_timeout", 1);
    let mut p = Portico::start_in(fixture(), &site, &[]);
    // an idle keep-alive connection must not hold the stop up
    let mut idle = p.connect();
    idle.send(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(idle.read_response(false).status, 200);
    assert_eq!(p.get("/b.txt?last").status, 200);
    p.signal("INT");
    let status = p.wait_exit(Duration::from_secs(5)).expect("portico did not exit after SIGINT");
    assert!(status.success(), "{status}");
    let log = std::fs::read_to_string(p.dir.path().join("access.log")).unwrap_or_default();
    assert!(log.contains("GET /b.txt?last HTTP/1.1"), "the last request was not logged before exit:\n{log}");
}

#[test]
fn sigusr1_reopens_the_log_files() {
    let site = SITE.replacen("keepalive_timeout", "access_log = \"{dir}/access.log\"\nkeepalive_timeout", 1);
    let p = Portico::start_in(fixture(), &site, &[]);
    let log = p.dir.path().join("access.log");
    assert_eq!(p.get("/a.txt?before").status, 200);
    p.wait_for_log(&log, "before");
    // what logrotate does: move the file away, then ask for a reopen
    let rotated = p.dir.path().join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    p.signal("USR1");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !log.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(p.get("/a.txt?after").status, 200);
    let fresh = p.wait_for_log(&log, "after");
    assert!(!fresh.contains("before"), "{fresh}");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(old.contains("before") && !old.contains("after"), "{old}");
}

#[test]
fn a_busy_port_fails_fast_with_a_clear_error() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let d = fixture();
    let conf = d.write(
        "p.toml",
        common::as_this_user(SITE)
            .replace("{port}", &port.to_string())
            .replace("{dir}", &d.path().display().to_string()),
    );
    let out = Command::new(portico_bin()).args(["run", "-c"]).arg(&conf).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{err}");
    assert!(err.contains("another process is listening there"), "{err}");
}

#[test]
fn unwritable_log_directory_fails_fast() {
    let d = fixture();
    let conf = d.write(
        "p.toml",
        common::as_this_user(SITE)
            .replace("{port}", &free_port().port.to_string())
            .replace("{dir}/error.log", "{dir}/no-such-dir/error.log")
            .replace("{dir}", &d.path().display().to_string()),
    );
    let out = Command::new(portico_bin()).args(["run", "-c"]).arg(&conf).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-dir/error.log"), "{err}");
}

#[test]
fn server_blocks_are_chosen_by_host_as_nginx_chooses() {
    let d = TempDir::new("hosts");
    d.write("a/who.txt", "site a\n");
    d.write("b/who.txt", "site b\n");
    d.write("c/who.txt", "site c\n");
    let config = r#"
[[server]]
listen = ["127.0.0.1:{port}"]
server_name = ["a.example"]
root = "{dir}/a"
[[server.location]]
match = "/"

[[server]]
listen = ["127.0.0.1:{port}"]
server_name = ["*.b.example", "b.example"]
root = "{dir}/b"
[[server.location]]
match = "/"

[[server]]
listen = ["127.0.0.1:{port}"]
server_name = ["c.example"]
default_server = true
root = "{dir}/c"
[[server.location]]
match = "/"
"#;
    let p = Portico::start_in(d, config, &[]);
    let who = |host: &str| p.request(&format!("GET /who.txt HTTP/1.1\r\nHost: {host}\r\n\r\n")).text();
    assert_eq!(who("a.example"), "site a\n");
    assert_eq!(who("A.Example:8080"), "site a\n");
    assert_eq!(who("www.b.example"), "site b\n");
    assert_eq!(who("b.example"), "site b\n");
    assert_eq!(who("c.example"), "site c\n");
    // no match: the default_server, not the first block
    assert_eq!(who("unknown.example"), "site c\n");
    let r = p.request("GET /who.txt HTTP/1.0\r\n\r\n");
    assert_eq!(r.text(), "site c\n");
}

#[test]
fn a_failing_log_disk_does_not_fail_requests_and_is_reported_once() {
    let site = SITE.replace(
        "error_log = \"{dir}/error.log\"",
        "error_log = \"{dir}/error.log\"\naccess_log = \"/dev/full\"",
    );
    let p = Portico::start_in(fixture(), &site, &[]);
    for _ in 0..20 {
        assert_eq!(p.get("/a.txt").status, 200);
        std::thread::sleep(Duration::from_millis(10));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !p.stderr().contains("/dev/full") {
        assert!(std::time::Instant::now() < deadline, "the failing log was not reported:\n{}", p.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(p.get("/b.txt").status, 200);
    let reports = p.stderr().matches("writing log /dev/full failed").count();
    assert_eq!(reports, 1, "{}", p.stderr());
}

#[test]
fn a_redirect_without_host_names_the_address() {
    let d = fixture();
    d.write("html/dir/index.html", "x");
    let p = Portico::start_in(d, &SITE.replace("server_name = [\"localhost\"]\n", ""), &[]);
    let r = p.request("GET /dir HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some(format!("http://127.0.0.1:{}/dir/", p.addr.port()).as_str()));
}

#[test]
fn keepalive_requests_closes_the_connection_after_the_last_one() {
    let site =
        SITE.replace("keepalive_timeout = \"1s\"", "keepalive_timeout = \"1s\"\nkeepalive_requests = 3");
    let p = Portico::start_in(fixture(), &site, &[]);
    let mut c = p.connect();
    for (i, want) in ["keep-alive", "keep-alive", "close"].iter().enumerate() {
        c.send(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
        let r = c.read_response(false);
        assert_eq!((r.status, r.header("connection")), (200, Some(*want)), "request {}", i + 1);
    }
    assert!(c.is_closed(), "the connection outlived keepalive_requests");
}

#[test]
fn send_timeout_cuts_a_client_that_stops_reading() {
    let d = fixture();
    // more than the socket buffers of both ends hold, so the server's writes block while
    // the client does not read
    let data = pattern(32 << 20);
    d.write("html/big.bin", &data);
    let site = SITE.replace("keepalive_timeout = \"1s\"", "send_timeout = \"1s\"");
    let p = Portico::start_in(d, &site, &[]);
    let mut s = TcpStream::connect(p.addr).unwrap();
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let log = p.wait_for_log(&p.dir.path().join("error.log"), "while sending response to client");
    assert!(log.contains("client timed out (110: Connection timed out)"), "{log}");
    // the server has given up and closed: what was queued arrives, then the end, short of
    // the file
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = 0usize;
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    assert!(got < data.len(), "the whole file arrived ({got} bytes) though the client stalled");
}

/// `sendfile = false` (nginx's `sendfile off`): the body is read and written, not sent with
/// sendfile(2), and arrives intact — the path TLS streams will take.
#[test]
fn sendfile_off_reads_and_writes_the_file() {
    let site = SITE.replace("match = \"/\"", "match = \"/\"\nsendfile = false");
    let Some(text) = sendfile_trace(&site, &pattern(3 << 20), "the sendfile-off proof") else { return };
    assert!(!text.contains("sendfile("), "sendfile was used with sendfile = false:\n{text}");
}

/// `open_file_cache` (nginx's): a file replaced on disk is served new once its entry is
/// older than `open_file_cache_valid`; one truncated in place while it is cached is sent
/// short and the connection closed, never left open with less than its Content-Length.
#[test]
fn the_open_file_cache_sees_replaced_files_and_never_frames_a_short_one() {
    let site = SITE.replace(
        "keepalive_timeout = \"1s\"",
        "keepalive_timeout = \"1s\"\nopen_file_cache = \"max=100 inactive=20s\"\nopen_file_cache_valid = \"1s\"",
    );
    let p = Portico::start_in(fixture(), &site, &[]);
    let html = p.dir.path().join("html");
    assert_eq!(p.get("/a.txt").text(), "aaa\n");
    // replaced the way deployments do it: a new file renamed over the old one
    std::fs::write(html.join("a.txt.new"), "new content\n").unwrap();
    std::fs::rename(html.join("a.txt.new"), html.join("a.txt")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while p.get("/a.txt").text() != "new content\n" {
        assert!(std::time::Instant::now() < deadline, "the replaced file was still served after 5 s");
        std::thread::sleep(Duration::from_millis(50));
    }

    let big = pattern(1 << 20);
    std::fs::write(html.join("big.bin"), &big).unwrap();
    assert_eq!(p.get("/big.bin").body.len(), big.len());
    // truncated in place: the cached entry still says 1 MiB
    std::fs::OpenOptions::new().write(true).open(html.join("big.bin")).unwrap().set_len(1000).unwrap();
    let mut s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut got = Vec::new();
    // Ok only at the end of the stream: a read timeout would be an error
    let closed = s.read_to_end(&mut got).is_ok();
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").map_or(0, |i| i + 4);
    let head = String::from_utf8_lossy(&got[..head_end]);
    if head.contains(&format!("Content-Length: {}", big.len())) {
        assert!(got.len() - head_end < big.len(), "a truncated file was sent whole?");
        assert!(closed, "the connection was left open after a short body");
    } else {
        // the entry was already stale: the new size was served whole
        assert!(head.contains("Content-Length: 1000"), "{head}");
    }
}

/// A request pipelined past the last one the connection may carry is not answered, but
/// its bytes do not reset the connection under the last answer (lingering close, as nginx).
#[test]
fn a_request_pipelined_past_the_last_one_does_not_reset_the_connection() {
    let site =
        SITE.replace("keepalive_timeout = \"1s\"", "keepalive_timeout = \"1s\"\nkeepalive_requests = 1");
    let p = Portico::start_in(fixture(), &site, &[]);
    let mut c = p.connect();
    c.send(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /b.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!((r.status, r.header("connection"), r.text().as_str()), (200, Some("close"), "aaa\n"));
    // an orderly end of the stream, not a reset
    assert!(c.is_closed(), "the connection was reset or left open");
}

#[test]
fn servers_in_included_files_are_served() {
    let d = fixture();
    d.write(
        "sites/extra.toml",
        "[[server]]\nlisten = [\"127.0.0.1:{port}\"]\nserver_name = [\"extra.test\"]\nroot = \"{dir}/extra\"\n[[server.location]]\nmatch = \"/\"\n",
    );
    d.write("extra/x.txt", "from the included site\n");
    let port_and_dir = |text: &str, p: u16, dir: &std::path::Path| {
        text.replace("{port}", &p.to_string()).replace("{dir}", &dir.display().to_string())
    };
    let lease = free_port();
    let extra = std::fs::read_to_string(d.path().join("sites/extra.toml")).unwrap();
    d.write("sites/extra.toml", port_and_dir(&extra, lease.port, d.path()));
    let p = Portico::start_in(d, &format!("include = [\"sites/*.toml\"]\n{SITE}"), &[]);
    // the included server listens on a port of its own
    let mut c = common::Conn::new(std::net::TcpStream::connect(("127.0.0.1", lease.port)).unwrap());
    c.send(b"GET /x.txt HTTP/1.1\r\nHost: extra.test\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!((r.status, r.text().as_str()), (200, "from the included site\n"));
    assert_eq!(p.get("/a.txt").status, 200, "the main file's server still answers");
}
