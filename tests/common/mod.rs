//! Test harness: runs the real `portico` binary on a free loopback port with a generated
//! configuration, and speaks HTTP/1.1 to it over real sockets.

#![allow(dead_code)] // each test file uses a different part of the harness

pub mod tls;
pub mod uwsgi;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A scratch directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("portico-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `content` at `rel`, creating parent directories.
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create parent dir");
        }
        std::fs::write(&p, content).expect("write file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port reserved for one test: below the kernel's ephemeral range (so no
/// client socket can take it between the reservation and the server's bind), and held
/// with an exclusive lock on a file named for it, so that parallel tests in other
/// processes never pick the same one. The reservation ends when the lease is dropped.
pub struct PortLease {
    pub port: u16,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

/// Ports tests may use (the ephemeral range starts at 32768 on Linux).
const TEST_PORTS: std::ops::Range<u16> = 20000..32000;

/// A port no other test holds and nothing listens on.
pub fn free_port() -> PortLease {
    let dir = std::env::temp_dir().join("portico-test-ports");
    std::fs::create_dir_all(&dir).expect("create the port lock directory");
    let span = TEST_PORTS.end - TEST_PORTS.start;
    // start where this process is unlikely to meet another, then walk the range
    let first = (std::process::id() as u16).wrapping_mul(31) % span;
    for i in 0..span {
        let port = TEST_PORTS.start + (first + i) % span;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{port}.lock")))
            .expect("open a port lock file");
        let Ok(lock) = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return PortLease { port, _lock: lock };
        }
    }
    panic!("no free test port in {TEST_PORTS:?}");
}

/// `config` as the tests run it: started by root (as CI is), Portico refuses to serve
/// without `user`; tests that are not about privileges say `user = "root"`.
pub fn as_this_user(config: &str) -> String {
    let has_user = config.lines().any(|l| l.trim_start().starts_with("user ="));
    if nix::unistd::Uid::effective().is_root() && !has_user {
        format!("user = \"root\"\n{config}")
    } else {
        config.to_string()
    }
}

pub fn portico_bin() -> &'static str {
    env!("CARGO_BIN_EXE_portico")
}

/// A running `portico run`, stopped (SIGINT, then kill) when dropped.
pub struct Portico {
    pub child: Child,
    pub addr: SocketAddr,
    pub stderr_path: PathBuf,
    pub dir: TempDir,
    _port: PortLease,
}

impl Portico {
    /// Starts Portico with `config`, in which `{port}` is replaced by a free port and
    /// `{dir}` by a scratch directory (also available as `self.dir`).
    pub fn start(config: &str) -> Portico {
        Self::start_in(TempDir::new("srv"), config, &[])
    }

    /// As [`Portico::start`], with files already in `dir` and a command prefix (e.g.
    /// `strace`) placed before the binary.
    pub fn start_in(dir: TempDir, config: &str, prefix: &[&str]) -> Portico {
        let lease = free_port();
        let port = lease.port;
        let text = as_this_user(config)
            .replace("{port}", &port.to_string())
            .replace("{dir}", &dir.path().display().to_string());
        let conf = dir.write("portico.toml", text);
        let stderr_path = dir.path().join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut cmd = if prefix.is_empty() {
            Command::new(portico_bin())
        } else {
            let mut c = Command::new(prefix[0]);
            c.args(&prefix[1..]).arg(portico_bin());
            c
        };
        let child = cmd
            .arg("run")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn portico");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let mut p = Portico { child, addr, stderr_path, dir, _port: lease };
        p.wait_ready();
        p
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("portico exited early ({status}):\n{}", self.stderr());
            }
            if TcpStream::connect(self.addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("portico did not start listening on {}:\n{}", self.addr, self.stderr());
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn connect(&self) -> Conn {
        Conn::new(TcpStream::connect(self.addr).expect("connect"))
    }

    /// One request on a fresh connection.
    pub fn get(&self, path: &str) -> Response {
        self.request(&format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"))
    }

    /// A raw request on a fresh connection; `HEAD` requests are read without a body.
    pub fn request(&self, raw: &str) -> Response {
        let mut c = self.connect();
        c.send(raw.as_bytes());
        c.read_response(raw.starts_with("HEAD "))
    }

    /// Sends a signal to the server process.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits up to `limit` for the process to exit and returns whether it did.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits until `pid_file` names this process: from then on it handles its signals.
    pub fn wait_pid_file(&self, pid_file: &Path) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let me = self.child.id().to_string();
        while std::fs::read_to_string(pid_file).unwrap_or_default().trim() != me {
            assert!(Instant::now() < deadline, "{} never named {me}:\n{}", pid_file.display(), self.stderr());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until `file` contains `needle` (log lines are written off the request path).
    pub fn wait_for_log(&self, file: &Path, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            if text.contains(needle) {
                return text;
            }
            if Instant::now() > deadline {
                panic!("{} never contained {needle:?}; it holds:\n{text}", file.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Portico {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill").arg("-INT").arg(self.child.id().to_string()).status();
        if self.wait_exit(Duration::from_secs(5)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One client connection, for keep-alive and pipelining tests.
pub struct Conn<S = TcpStream> {
    reader: BufReader<S>,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
        Conn { reader: BufReader::new(stream) }
    }

    pub fn set_read_timeout(&mut self, d: Duration) {
        self.reader.get_ref().set_read_timeout(Some(d)).expect("timeout");
    }
}

impl<S: Read + Write> Conn<S> {
    /// A connection over another stream (TLS), its read timeout already set.
    pub fn over(stream: S) -> Conn<S> {
        Conn { reader: BufReader::new(stream) }
    }

    /// The stream under the reader.
    pub fn stream(&self) -> &S {
        self.reader.get_ref()
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("send");
    }

    /// Reads one response; the body by Content-Length, chunked, or to EOF.
    pub fn read_response(&mut self, head_only: bool) -> Response {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("read head line");
            assert!(n > 0, "connection closed before a full response head; got:\n{head}");
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap_or((l, ""));
                (k.to_string(), v.trim().to_string())
            })
            .collect();
        let mut r = Response { status, head: head.clone(), headers, body: Vec::new() };
        if head_only || status == 304 || status == 204 {
            return r;
        }
        if let Some(len) = r.header("content-length") {
            let len: usize = len.parse().expect("content-length");
            let mut body = vec![0; len];
            self.reader.read_exact(&mut body).expect("read body");
            r.body = body;
        } else if r.header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
            r.body = self.read_chunked();
        } else {
            self.reader.read_to_end(&mut r.body).expect("read to close");
        }
        r
    }

    fn read_chunked(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("chunk size");
            let size =
                usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16).expect("hex size");
            if size == 0 {
                let mut end = String::new();
                self.reader.read_line(&mut end).expect("final crlf");
                return body;
            }
            let mut chunk = vec![0; size + 2];
            self.reader.read_exact(&mut chunk).expect("chunk");
            body.extend_from_slice(&chunk[..size]);
        }
    }

    /// True when the server closed the connection within the read timeout, whatever it
    /// sent before (a TLS alert).
    pub fn closes_after_sending(&mut self) -> bool {
        let mut scratch = [0u8; 512];
        loop {
            match self.reader.read(&mut scratch) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }

    /// True when the server closed the connection (EOF) within the read timeout.
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.reader.read(&mut byte), Ok(0))
    }
}
