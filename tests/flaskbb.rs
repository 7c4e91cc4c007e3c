//! End to end: the seed deployment with Portico in nginx's place. FlaskBB 2.2.0 under a
//! real uWSGI exactly as in the seed (Unix socket, chmod-socket = 600, same user as
//! Portico), prepared by scripts/flaskbb-site, and Portico running conf/flaskbb.toml with
//! this machine's paths.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, portico_bin, Conn, Response, TempDir};

struct Deployment {
    dir: TempDir,
    uwsgi: Child,
    portico: Child,
    addr: std::net::SocketAddr,
    _port: common::PortLease,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for child in [&mut self.portico, &mut self.uwsgi] {
            let _ = Command::new("kill").arg("-INT").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && !matches!(child.try_wait(), Ok(Some(_))) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn deploy() -> Deployment {
    let dir = TempDir::new("flaskbb");
    let lease = free_port();
    let port = lease.port;
    let listen = format!("127.0.0.1:{port}");
    let status = Command::new(repo().join("scripts/flaskbb-site"))
        .arg(dir.path())
        .arg(&listen)
        .status()
        .expect("run scripts/flaskbb-site");
    assert!(status.success(), "scripts/flaskbb-site failed");

    let socket = dir.path().join("flaskbb.sock");
    let uwsgi = Command::new(repo().join(".venv/bin/uwsgi"))
        .arg("--ini")
        .arg(dir.path().join("uwsgi.ini"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start uwsgi");
    let deadline = Instant::now() + Duration::from_secs(60);
    while UnixStream::connect(&socket).is_err() {
        assert!(
            Instant::now() < deadline,
            "uWSGI did not come up; see {}/logs/uwsgi.log",
            dir.path().display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the seed's chmod-socket = 600");

    let stderr = std::fs::File::create(dir.path().join("portico.stderr")).unwrap();
    let portico = Command::new(portico_bin())
        .arg("run")
        .arg("-c")
        .arg(dir.path().join("portico.toml"))
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start portico");
    let addr: std::net::SocketAddr = listen.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "portico did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Deployment { dir, uwsgi, portico, addr, _port: lease }
}

impl Deployment {
    fn request(&self, raw: &str) -> Response {
        let mut c = Conn::new(std::net::TcpStream::connect(self.addr).unwrap());
        c.send(raw.as_bytes());
        c.read_response(false)
    }

    fn get(&self, path: &str, cookie: &str) -> Response {
        let cookie = if cookie.is_empty() { String::new() } else { format!("Cookie: {cookie}\r\n") };
        self.request(&format!("GET {path} HTTP/1.1\r\nHost: {}\r\n{cookie}\r\n", self.addr))
    }

    fn error_log(&self) -> PathBuf {
        self.dir.path().join("logs/error.forums.flaskbb.log")
    }
}

/// The `session=...` pair from a response's Set-Cookie, if any.
fn session_cookie(r: &Response) -> Option<String> {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, v)| v.split(';').next())
        .find(|c| c.starts_with("session="))
        .map(str::to_string)
}

fn form_value(html: &str, name: &str) -> String {
    let at = html.find(&format!("name=\"{name}\"")).unwrap_or_else(|| panic!("no {name} field"));
    let rest = &html[at..];
    let v = rest.find("value=\"").unwrap() + 7;
    let end = rest[v..].find('"').unwrap();
    rest[v..v + end].to_string()
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn flaskbb_behind_portico() {
    let d = deploy();

    // the forum index, from FlaskBB through the Unix socket
    let r = d.get("/", "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.text().contains("FlaskBB"), "not the forum index");

    // a theme stylesheet through the regex alias, a static file, robots.txt
    let css = d.get("/_themes/aurora/app.css", "");
    assert_eq!((css.status, css.header("content-type")), (200, Some("text/css")));
    assert!(css.body.len() > 1000);
    assert_eq!(d.get("/static/app.css", "").body, css.body);
    let robots = d.get("/robots.txt", "");
    assert_eq!((robots.status, robots.header("content-type")), (200, Some("text/plain")));

    // a missing path under / falls through try_files to FlaskBB's own 404 page; a missing
    // file under /static is Portico's 404, as with nginx
    let nope = d.get("/nope", "");
    assert_eq!(nope.status, 404);
    assert!(nope.header("content-type").unwrap().contains("charset=utf-8"), "FlaskBB's page");
    let missing = d.get("/static/nope.css", "");
    assert_eq!(missing.status, 404);
    assert!(missing.text().contains("<center>portico</center>"));

    // log in with the form's CSRF token and the session cookie, then see the user
    let form = d.get("/auth/login", "");
    assert_eq!(form.status, 200);
    let cookie = session_cookie(&form).expect("a session cookie with the login form");
    let token = form_value(&form.text(), "csrf_token");
    let body =
        format!("csrf_token={}&login=admin&password=Portico-admin-1&submit=Login", form_encode(&token));
    let login = d.request(&format!(
        "POST /auth/login HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        d.addr,
        body.len()
    ));
    assert_eq!(login.status, 302, "{}", login.text());
    let cookie = session_cookie(&login).unwrap_or(cookie);
    let home = d.get("/", &cookie);
    assert_eq!(home.status, 200);
    let page = home.text();
    assert!(page.contains("/auth/logout"), "not logged in");
    assert!(page.contains("/user/admin"));
}

#[test]
fn theme_assets_go_out_with_sendfile() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("SKIPPED: strace is not installed; the sendfile proof did not run");
        return;
    }
    let d = deploy();
    let pid = d.portico.id().to_string();
    let trace = d.dir.path().join("strace.out");
    let mut strace = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=sendfile", "-p", &pid, "-o"])
        .arg(&trace)
        .stderr(Stdio::null())
        .spawn()
        .expect("strace");
    // strace needs a moment to attach to every thread
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = d.get("/_themes/aurora/app.css", "");
        assert_eq!(r.status, 200);
        let seen = std::fs::read_to_string(&trace).unwrap_or_default();
        if seen.lines().any(|l| l.contains("sendfile(")) {
            break;
        }
        assert!(Instant::now() < deadline, "no sendfile seen for /_themes/...:\n{seen}");
    }
    let _ = strace.kill();
    let _ = strace.wait();
    assert!(d.error_log().exists());
}
