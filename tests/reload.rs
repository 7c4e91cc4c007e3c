//! SIGHUP and SIGUSR2 (and `portico reload|upgrade`): a valid configuration is served
//! from the next request on, included files too; an invalid one or an unbindable new
//! port changes nothing and is logged; a change of listen addresses or a new binary is
//! carried out by a new process that receives the listening sockets; and under a load of
//! keep-alive clients (static files and a real uWSGI), ten reloads fail no request.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::uwsgi::Uwsgi;
use common::{as_this_user, free_port, portico_bin, Portico, TempDir};

/// `{root}`, `{gen}` and `{listen}` are filled in per generation.
const SITE: &str = r#"
pid_file = "{dir}/portico.pid"
shutdown_timeout = "2s"
include = ["sites/*.toml"]

[[server]]
listen = [{listen}]
server_name = ["localhost"]
root = "{dir}/{root}"
access_log = "{dir}/access-{gen}.log"
error_log = "{dir}/error.log"

[[server.location]]
match = "/"

[[server.location]]
match = "/app"
uwsgi_pass = "unix:{dir}/app.sock"
uwsgi_param = { X_GEN = "{gen}" }
"#;

struct Site {
    dir: PathBuf,
    port: u16,
}

impl Site {
    fn config(&self, gen: u32, listen: &[u16]) -> String {
        let listen: Vec<String> = listen.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
        as_this_user(SITE)
            .replace("{listen}", &listen.join(", "))
            .replace("{root}", &format!("gen{gen}"))
            .replace("{gen}", &gen.to_string())
            .replace("{dir}", &self.dir.display().to_string())
    }

    fn write(&self, gen: u32, listen: &[u16]) {
        std::fs::create_dir_all(self.dir.join(format!("gen{gen}"))).unwrap();
        std::fs::write(self.dir.join(format!("gen{gen}/v.txt")), format!("gen {gen}\n")).unwrap();
        std::fs::write(self.dir.join("portico.toml"), self.config(gen, listen)).unwrap();
    }

    fn pid(&self) -> u32 {
        let text = std::fs::read_to_string(self.dir.join("portico.pid")).unwrap_or_default();
        text.trim().parse().unwrap_or(0)
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

/// Starts generation 0 on a leased port (the `{listen}` of the template).
fn start(tag: &str) -> (Portico, Site) {
    let d = TempDir::new(tag);
    let dir = d.path().to_path_buf();
    std::fs::create_dir_all(dir.join("sites")).unwrap();
    std::fs::create_dir_all(dir.join("gen0")).unwrap();
    std::fs::write(dir.join("gen0/v.txt"), "gen 0\n").unwrap();
    let template =
        SITE.replace("{listen}", "\"127.0.0.1:{port}\"").replace("{root}", "gen0").replace("{gen}", "0");
    let p = Portico::start_in(d, &template, &[]);
    p.wait_pid_file(&dir.join("portico.pid"));
    let site = Site { dir, port: p.addr.port() };
    (p, site)
}

fn kill(pid: u32, sig: &str) {
    let _ = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status();
}

/// A fresh connection's answer to `GET path` on `port`, or why there is none.
fn get(port: u16, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let (status, _, body) = read_response(&mut r)?;
    Ok((status, body))
}

/// Polls until `check` holds for a fresh request, or fails the test with what was seen.
fn eventually(what: &str, mut check: impl FnMut() -> Result<bool, String>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        match check() {
            Ok(true) => return,
            Ok(false) => last = "not yet".into(),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} never happened (last: {last})");
}

/// One response: status, whether it closes the connection, body (Content-Length only:
/// every answer here has one).
fn read_response(r: &mut BufReader<TcpStream>) -> Result<(u16, bool, String), String> {
    let mut status_line = String::new();
    if r.read_line(&mut status_line).map_err(|e| format!("reading the status line: {e}"))? == 0 {
        return Err("closed before the response".into());
    }
    let status: u16 = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or("bad status line")?;
    let (mut len, mut close) = (0usize, false);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).map_err(|e| format!("reading the head: {e}"))? == 0 {
            return Err("closed inside the head".into());
        }
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.strip_prefix("content-length:") {
            len = v.trim().parse().map_err(|_| "bad content-length")?;
        }
        if l == "connection: close" {
            close = true;
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).map_err(|e| format!("reading the body: {e}"))?;
    Ok((status, close, String::from_utf8_lossy(&body).into_owned()))
}

#[test]
fn an_invalid_configuration_keeps_the_old_one_and_every_error_is_logged() {
    let (p, site) = start("reload-bad");
    assert_eq!(p.get("/v.txt").text(), "gen 0\n");
    // two errors, one in an included file: both named with file and line
    std::fs::write(site.dir.join("sites/extra.toml"), "[[server]]\nlisten = [\"127.0.0.1:1\"]\nroot = 7\n")
        .unwrap();
    let main =
        site.config(1, &[site.port]).replace("shutdown_timeout = \"2s\"", "shutdown_timeout = \"soon\"");
    let line = main.lines().position(|l| l.starts_with("shutdown_timeout")).unwrap() + 1;
    std::fs::write(site.dir.join("portico.toml"), main).unwrap();
    std::fs::create_dir_all(site.dir.join("gen1")).unwrap();
    std::fs::write(site.dir.join("gen1/v.txt"), "gen 1\n").unwrap();
    p.signal("HUP");
    eventually("the refusal in the error log", || Ok(site.error_log().contains("not reloaded")));
    let log = site.error_log();
    assert!(log.contains(&format!("portico.toml:{line}:")) && log.contains("shutdown_timeout"), "{log}");
    assert!(log.contains("sites/extra.toml:3:"), "{log}");
    assert!(log.contains("[emerg]") && log.contains("has 2 error(s)"), "{log}");
    let stderr = p.stderr();
    assert!(stderr.contains("sites/extra.toml:3:") && stderr.contains("not reloaded"), "{stderr}");
    assert_eq!(p.get("/v.txt").text(), "gen 0\n", "the old configuration is still served");
    assert_eq!(site.pid(), p.child.id());
}

#[test]
fn reload_serves_the_new_configuration_and_rereads_included_files() {
    let (p, site) = start("reload-swap");
    let mut keep = p.connect();
    keep.send(b"GET /v.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(keep.read_response(false).text(), "gen 0\n");

    site.write(1, &[site.port]);
    std::fs::create_dir_all(site.dir.join("other")).unwrap();
    std::fs::write(site.dir.join("other/v.txt"), "other site\n").unwrap();
    let other = format!(
        "[[server]]\nlisten = [\"127.0.0.1:{}\"]\nserver_name = [\"other.test\"]\nroot = \"{}/other\"\n\n[[server.location]]\nmatch = \"/\"\n",
        site.port,
        site.dir.display()
    );
    std::fs::write(site.dir.join("sites/other.toml"), other).unwrap();
    let out = Command::new(portico_bin())
        .args(["reload", "-c"])
        .arg(site.dir.join("portico.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    eventually("generation 1 served", || Ok(get(site.port, "/v.txt")?.1 == "gen 1\n"));
    // the connection opened before the reload gets the new configuration too
    keep.send(b"GET /v.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(keep.read_response(false).text(), "gen 1\n");
    let r = p.request("GET /v.txt HTTP/1.1\r\nHost: other.test\r\n\r\n");
    assert_eq!(r.text(), "other site\n", "the newly included file is served");
    // the new access log is opened and written
    p.wait_for_log(&site.dir.join("access-1.log"), "GET /v.txt");
    assert!(p.stderr().contains("reloaded"), "{}", p.stderr());
    assert_eq!(site.pid(), p.child.id(), "reloaded in the same process");
}

#[test]
fn a_new_port_that_cannot_be_bound_fails_the_reload_not_the_server() {
    let (p, site) = start("reload-busy");
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    site.write(1, &[site.port, port]);
    p.signal("HUP");
    eventually("the refusal in the error log", || Ok(site.error_log().contains("not reloaded")));
    let log = site.error_log();
    assert!(log.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{log}");
    assert_eq!(p.get("/v.txt").text(), "gen 0\n");
    assert_eq!(site.pid(), p.child.id());
}

/// Whatever process the pid file names at the end of the test (one that took over),
/// stopped then, however the test ends.
struct Successor(PathBuf);

impl Drop for Successor {
    fn drop(&mut self) {
        let text = std::fs::read_to_string(self.0.join("portico.pid")).unwrap_or_default();
        if let Ok(pid) = text.trim().parse::<u32>() {
            kill(pid, "INT");
        }
    }
}

#[test]
fn upgrade_hands_the_listening_sockets_to_a_new_process() {
    let (mut p, site) = start("reload-upgrade");
    let _new = Successor(site.dir.clone());
    let old = p.child.id();
    let mut keep = p.connect();
    keep.send(b"GET /v.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(keep.read_response(false).status, 200);
    let out = Command::new(portico_bin())
        .args(["upgrade", "-c"])
        .arg(site.dir.join("portico.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    eventually("a new pid in the pid file", || Ok(site.pid() != old && site.pid() != 0));
    // the connection opened before is served to the end, then closed by the old process
    keep.send(b"GET /v.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let r = keep.read_response(false);
    assert_eq!(r.status, 200);
    let status = p.wait_exit(Duration::from_secs(30)).expect("the old process did not exit");
    assert!(status.success(), "{status}");
    assert_eq!(get(site.port, "/v.txt").unwrap().1, "gen 0\n", "the new process serves the port");
    assert!(p.stderr().contains(&format!("process {} takes over", site.pid())), "{}", p.stderr());
}

/// What the load clients saw.
#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    failures: Mutex<Vec<String>>,
}

/// Keep-alive requests alternating a static file and uWSGI until `stop`; a connection is
/// reopened only when an answer says `Connection: close`. Any error or non-200 is a
/// failure.
fn load(port: u16, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let fail = |what: String| tally.failures.lock().unwrap().push(what);
    let mut conn: Option<(TcpStream, BufReader<TcpStream>)> = None;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) && n < 200_000 {
        let (s, r) = match conn.as_mut() {
            Some(c) => c,
            None => match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => {
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let r = BufReader::new(s.try_clone().unwrap());
                    conn.insert((s, r))
                }
                Err(e) => {
                    fail(format!("connect: {e}"));
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        let path = if n % 2 == 0 { "/v.txt" } else { "/app" };
        n += 1;
        let sent = s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
        let answer = sent.map_err(|e| format!("send: {e}")).and_then(|()| read_response(r));
        tally.requests.fetch_add(1, Ordering::Relaxed);
        match answer {
            Ok((200, close, _)) => {
                if close {
                    conn = None;
                }
            }
            Ok((status, _, body)) => {
                fail(format!("{path}: status {status}: {body}"));
                conn = None;
            }
            Err(e) => {
                fail(format!("{path}: {e}"));
                conn = None;
            }
        }
    }
}

#[test]
fn ten_reloads_under_load_fail_no_request() {
    let (_p, site) = start("reload-load");
    let _app = Uwsgi::start(&site.dir.join("app.sock"), &[]);
    eventually("uWSGI answering", || Ok(get(site.port, "/app")?.0 == 200));
    let second = free_port();
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, tally, port) = (stop.clone(), tally.clone(), site.port);
            std::thread::spawn(move || load(port, stop, tally))
        })
        .collect();
    let mut listen = vec![site.port];
    let _successor = Successor(site.dir.clone());
    for gen in 1..=10 {
        let before = site.pid();
        if gen == 5 {
            // this one adds a listen address: carried out by a new process
            listen.push(second.port);
        }
        site.write(gen, &listen);
        kill(before, "HUP");
        let want_static = format!("gen {gen}\n");
        let want_app = format!("\"X_GEN\": \"{gen}\"");
        eventually(&format!("generation {gen} served"), || {
            Ok(get(site.port, "/v.txt")?.1 == want_static && get(site.port, "/app")?.1.contains(&want_app))
        });
        if gen == 5 {
            eventually("the new process in the pid file", || Ok(site.pid() != before && site.pid() != 0));
            let added: SocketAddr = format!("127.0.0.1:{}", second.port).parse().unwrap();
            eventually("the added address served", || Ok(get(added.port(), "/v.txt")?.1 == want_static));
        } else {
            assert_eq!(site.pid(), before, "generation {gen} reloaded in the same process");
        }
    }
    // a last stretch on the final configuration, so that thousands of requests ran
    let deadline = Instant::now() + Duration::from_secs(20);
    while tally.requests.load(Ordering::Relaxed) < 4000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let failures = tally.failures.lock().unwrap();
    let requests = tally.requests.load(Ordering::Relaxed);
    eprintln!("{requests} requests over ten reloads, {} failed", failures.len());
    assert!(
        failures.is_empty(),
        "{} of {requests} requests failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(requests >= 2000, "only {requests} requests ran");
}

#[test]
fn a_new_process_that_cannot_start_leaves_the_old_one_serving() {
    let (p, site) = start("reload-failed-successor");
    let _new = Successor(site.dir.clone());
    // SIGUSR2 with a configuration the new process refuses
    let good = std::fs::read_to_string(site.dir.join("portico.toml")).unwrap();
    std::fs::write(site.dir.join("portico.toml"), format!("{good}\nnot toml at all\n")).unwrap();
    p.signal("USR2");
    eventually("the refused upgrade in the error log", || {
        Ok(site.error_log().contains("SIGUSR2: not upgraded"))
    });
    assert!(site.error_log().contains("portico.toml:"), "{}", site.error_log());
    assert_eq!(p.get("/v.txt").text(), "gen 0\n");
    // a reload that needs a new process (a new pid_file) which fails before it is ready
    let moved = good.replace("/portico.pid", "/missing-dir/portico.pid");
    std::fs::write(site.dir.join("portico.toml"), moved).unwrap();
    p.signal("HUP");
    eventually("the failed new process in the error log", || {
        Ok(site.error_log().contains("the new process could not start"))
    });
    let log = site.error_log();
    assert!(log.contains("missing-dir/portico.pid"), "{log}");
    assert_eq!(p.get("/v.txt").text(), "gen 0\n");
    assert_eq!(site.pid(), p.child.id(), "still the only process");
}

#[test]
fn a_stopping_server_answers_a_keep_alive_request_sent_just_after_the_stop() {
    let (p, _site) = start("reload-drain");
    let mut keep = p.connect();
    keep.send(b"GET /v.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(keep.read_response(false).status, 200);
    p.signal("TERM");
    // the stop has reached the connections once the listener is gone
    eventually("the listener closed", || Ok(TcpStream::connect(p.addr).is_err()));
    keep.send(b"GET /v.txt HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let r = keep.read_response(false);
    assert_eq!((r.status, r.header("connection")), (200, Some("close")), "{}", r.head);
    assert!(keep.is_closed());
}
