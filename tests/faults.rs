//! Failing parts, survived: a backend whose socket file is deleted and made again, a full
//! uWSGI listen queue, a static file cut short while it is being sent, clients that go
//! away mid-upload and mid-download (and the fds that must come back). A real uWSGI
//! runs tests/wsgi/test_app.py; every wait is for something observable.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::uwsgi::Uwsgi;
use common::{Portico, TempDir};

const SITE: &str = r#"
[upstream.one]
servers = ["unix:{dir}/app.sock"]

[[server]]
listen = ["127.0.0.1:{port}"]
server_name = ["localhost"]
root = "{dir}/html"
error_log = "{dir}/error.log"
error_log_level = "info"
client_max_body_size = "64m"

[[server.location]]
match = "/"

[[server.location]]
match = "/copied/"
alias = "{dir}/html/"
sendfile = false

[[server.location]]
match = "/app/"
uwsgi_pass = "one"
"#;

fn error_log(p: &Portico) -> std::path::PathBuf {
    p.dir.path().join("error.log")
}

/// Polls `done` for up to 10 s: the state a test waits for, never a fixed sleep.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Portico's open fds, from /proc, but for directories: each worker thread keeps its
/// base directories open (`O_PATH`, renewed every second), a number bounded by threads
/// times locations, whichever thread a connection lands on.
fn open_fds(p: &Portico) -> usize {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{}/fd", p.child.id())) else { return 0 };
    dir.filter_map(|e| e.ok()).filter(|e| !std::fs::read_link(e.path()).is_ok_and(|t| t.is_dir())).count()
}

/// What Portico's fds are, for a failure message.
fn fd_targets(p: &Portico) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{}/fd", p.child.id())) else { return Vec::new() };
    dir.filter_map(|e| e.ok())
        .map(|e| {
            format!(
                "{} -> {}",
                e.file_name().to_string_lossy(),
                std::fs::read_link(e.path()).map(|t| t.display().to_string()).unwrap_or_default()
            )
        })
        .collect()
}

#[test]
fn a_socket_file_deleted_and_made_again_recovers_without_a_restart() {
    let dir = TempDir::new("faults");
    let mut uwsgi = Uwsgi::start(&dir.path().join("app.sock"), &[]);
    let p = Portico::start_in(dir, SITE, &[]);
    assert_eq!(p.get("/app/echo").status, 200);

    // the file goes (a cleanup, a deploy script); uWSGI still listens on the unlinked one
    std::fs::remove_file(p.dir.path().join("app.sock")).unwrap();
    assert_eq!(p.get("/app/echo").status, 502);
    let log = p.wait_for_log(&error_log(&p), "No such file");
    assert!(log.contains("app.sock"), "{log}");

    // uWSGI makes its socket again: served at once, the same Portico
    uwsgi.restart();
    assert_eq!(p.get("/app/echo").status, 200);
}

#[test]
fn a_full_listen_queue_is_a_502_at_once_not_a_hang() {
    let dir = TempDir::new("faults");
    // one worker, the smallest queue: a second waiting connection does not fit
    let _uwsgi = Uwsgi::start(&dir.path().join("app.sock"), &["--processes", "1", "--listen", "1"]);
    let p = Portico::start_in(dir, SITE, &[]);
    let mark = p.dir.path().join("worker-busy");
    let busy_request =
        format!("GET /app/sleep?secs=3&mark={} HTTP/1.1\r\nHost: localhost\r\n\r\n", mark.display());
    let addr = p.addr;
    let busy = std::thread::spawn(move || {
        let mut c = common::Conn::new(TcpStream::connect(addr).unwrap());
        c.send(busy_request.as_bytes());
        c.read_response(false).status
    });
    wait_until("the only worker is busy", || mark.exists());

    // the queue fills; the request that finds it full is answered while the worker sleeps
    let waiting: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = common::Conn::new(TcpStream::connect(addr).unwrap());
                c.send(b"GET /app/echo HTTP/1.1\r\nHost: localhost\r\n\r\n");
                c.read_response(false).status
            })
        })
        .collect();
    let log = p.wait_for_log(&error_log(&p), "Resource temporarily unavailable");
    assert!(log.contains("app.sock"), "{log}");
    assert!(!busy.is_finished(), "the 502 came while the worker was still busy");
    let statuses: Vec<u16> = waiting.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(statuses.contains(&502), "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 502 || *s == 200), "{statuses:?}");
    assert_eq!(busy.join().unwrap(), 200);
}

/// Starts reading a big file's answer, then truncates the file and reads what is left.
fn truncated_while_sent(p: &Portico, path: &str, file: &Path, size: usize) -> (usize, Vec<u8>) {
    let mut s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes()).unwrap();
    let mut got = vec![0; 64 << 10];
    let n = s.read(&mut got).unwrap();
    got.truncate(n);
    std::fs::OpenOptions::new().write(true).open(file).unwrap().set_len(size as u64 / 8).unwrap();
    s.read_to_end(&mut got).unwrap();
    let split = got.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
    let head = String::from_utf8_lossy(&got[..split]).into_owned();
    assert!(head.contains(&format!("Content-Length: {size}")), "{head}");
    (split, got)
}

#[test]
fn a_file_cut_short_while_it_is_sent_ends_the_connection_with_an_alert() {
    const SIZE: usize = 64 << 20;
    let pattern = |i: usize| (i % 251) as u8;
    for (name, path) in
        [("big-sendfile.bin", "/big-sendfile.bin"), ("big-copied.bin", "/copied/big-copied.bin")]
    {
        let dir = TempDir::new("faults");
        let file = dir.write(&format!("html/{name}"), (0..SIZE).map(pattern).collect::<Vec<u8>>());
        let p = Portico::start_in(dir, SITE, &[]);
        let (split, got) = truncated_while_sent(&p, path, &file, SIZE);
        let body = &got[split..];
        assert!(body.len() < SIZE, "{path}: a cut file must not look complete");
        assert!(body.iter().enumerate().all(|(i, b)| *b == pattern(i)), "{path}: only the file's own bytes");
        let log = p.wait_for_log(&error_log(&p), "was truncated at");
        assert!(log.contains("[alert]") && log.contains(name), "{log}");
        // the server goes on
        assert_eq!(p.get("/nothing-here").status, 404);
    }
}

#[test]
fn clients_leaving_mid_upload_and_mid_download_give_every_fd_back() {
    let dir = TempDir::new("faults");
    dir.write("html/big.bin", vec![b'x'; 8 << 20]);
    let _uwsgi = Uwsgi::start(&dir.path().join("app.sock"), &[]);
    let p = Portico::start_in(dir, SITE, &[]);
    // warm every path once (pools, lazily opened files), then count
    assert_eq!(p.get("/app/echo").status, 200);
    assert_eq!(p.get("/big.bin").status, 200);
    // (a warm-up connection Portico has not closed yet only makes the count lenient)
    let before = open_fds(&p);
    let before_targets = fd_targets(&p);

    for _ in 0..100 {
        // an upload of 1 MiB that stops after 64 KiB
        let mut s = TcpStream::connect(p.addr).unwrap();
        s.write_all(b"POST /app/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1048576\r\n\r\n")
            .unwrap();
        s.write_all(&[b'u'; 64 << 10]).unwrap();
        drop(s);
    }
    for path in ["/app/big?n=50000000", "/big.bin"] {
        for _ in 0..100 {
            // a download read for its first bytes only
            let mut s = TcpStream::connect(p.addr).unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes()).unwrap();
            let mut first = [0; 4096];
            let _ = s.read(&mut first).unwrap();
            let _ = s.shutdown(Shutdown::Both);
        }
    }
    // every client and backend connection closed, no file left open
    let deadline = Instant::now() + Duration::from_secs(30);
    while open_fds(&p) > before {
        assert!(
            Instant::now() < deadline,
            "fds: {before} before, {} after:\nbefore: {before_targets:#?}\nafter: {:#?}",
            open_fds(&p),
            fd_targets(&p)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(p.get("/app/echo").status, 200, "the backend still serves");
}

#[test]
fn at_the_fd_limit_accepting_waits_then_resumes_with_one_log_line() {
    let dir = TempDir::new("faults");
    dir.write("html/a.txt", "a\n");
    // the file's fd kept open: the connection that is already there needs no new one
    let site = SITE.replace("match = \"/\"\n", "match = \"/\"\nopen_file_cache = \"max=10\"\n");
    let p = Portico::start_in(dir, &site, &[]);
    let get = b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let mut kept = p.connect();
    kept.send(get);
    assert_eq!(kept.read_response(false).status, 200);

    // a few fds left under the limit, then more connections than that
    let limit = open_fds(&p) + 6;
    let lowered = std::process::Command::new("prlimit")
        .args(["--pid", &p.child.id().to_string(), &format!("--nofile={limit}:{limit}")])
        .status()
        .expect("run prlimit (util-linux)");
    assert!(lowered.success(), "prlimit failed");
    let extra: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = TcpStream::connect(p.addr).unwrap();
            s.write_all(get).unwrap();
            s
        })
        .collect();
    p.wait_for_log(&error_log(&p), "Too many open files");

    // the connection already open is still served, across two of pingora's 1 s retries
    for _ in 0..3 {
        kept.send(get);
        assert_eq!(kept.read_response(false).status, 200);
        std::thread::sleep(Duration::from_millis(1000));
    }
    // connections close: accepting resumes, and the failures made one line
    drop(extra);
    let mut fresh = p.connect();
    fresh.set_read_timeout(Duration::from_secs(10));
    fresh.send(get);
    assert_eq!(fresh.read_response(false).status, 200);
    let log = std::fs::read_to_string(error_log(&p)).unwrap();
    assert_eq!(log.matches("accept4() failed").count(), 1, "{log}");
    assert!(log.contains("[alert]") && log.contains("LimitNOFILE="), "{log}");
}

#[test]
fn a_deleted_log_file_loses_no_request_and_comes_back_on_reopen() {
    let dir = TempDir::new("faults");
    dir.write("html/a.txt", "a\n");
    let site = SITE.replace("error_log = ", "access_log = \"{dir}/access.log\"\nerror_log = ");
    let p = Portico::start_in(dir, &site, &[]);
    let access = p.dir.path().join("access.log");
    assert_eq!(p.get("/a.txt?first").status, 200);
    p.wait_for_log(&access, "first");
    std::fs::remove_file(&access).unwrap();
    // served while the log is gone (its lines go to the deleted file, as with nginx)
    assert_eq!(p.get("/a.txt?unlinked").status, 200);
    // logrotate's postrotate: SIGUSR1 opens the file again
    p.signal("USR1");
    wait_until("the log file is made again", || access.exists());
    assert_eq!(p.get("/a.txt?after").status, 200);
    p.wait_for_log(&access, "after");
}
