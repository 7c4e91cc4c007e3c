//! Moving one request to uWSGI and its answer back: read (or de-chunk) the request body,
//! pick and connect a backend (retrying the next one only when connecting failed), write
//! the packet and stream the body, read and check the response head, and relay the body
//! to the client with backpressure. The bytes are the codec's business; this module only
//! moves them, and says in nginx's words what went wrong and what to check.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use nix::errno::Errno;
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::Notify;

use crate::http1::chunked::ChunkedDecoder;
use crate::http1::connection::{BodyError as ClientBodyError, Exchange as Client};
use crate::http1::request_head::BodyFraming;
use crate::http1::response_head::{self, reason, CHUNK_END, LAST_CHUNK};
use crate::log::{Level, Note};

use super::codec::app_response::{parse_head, Framing, ResponseHead};
use super::config::{BackendAddr, UpstreamConfig};
use super::pool::{Pick, Pool};

/// Largest response head accepted from uWSGI (nginx's default is one page, 4 KiB, which
/// apps setting several cookies exceed).
const MAX_RESPONSE_HEAD: usize = 32 << 10;
/// Bytes read from uWSGI at a time while relaying.
const READ_CHUNK: usize = 64 << 10;

/// A pool with the signal that a slot was freed.
pub struct Upstream {
    pub pool: Pool,
    freed: Arc<Notify>,
}

impl Upstream {
    pub fn new(config: UpstreamConfig) -> Upstream {
        let freed = Arc::new(Notify::new());
        let hook = freed.clone();
        Upstream { pool: Pool::new(config, Box::new(move || hook.notify_waiters())), freed }
    }
}

/// The request body, as it will be sent.
pub enum RequestBody {
    None,
    /// `Content-Length` bytes, streamed from the client as they arrive.
    Streaming(u64),
    /// A de-chunked body, in memory or in an unnamed temporary file.
    Memory(Bytes),
    File {
        file: File,
        len: u64,
    },
}

impl RequestBody {
    /// `CONTENT_LENGTH` for the packet.
    pub fn content_length(&self) -> Option<u64> {
        match self {
            RequestBody::None => None,
            RequestBody::Streaming(n) => Some(*n),
            RequestBody::Memory(b) => Some(b.len() as u64),
            RequestBody::File { len, .. } => Some(*len),
        }
    }
}

/// Why the client's body could not be read.
pub enum BodyError {
    /// Over `client_max_body_size`: 413.
    TooLarge(u64),
    /// Bad framing (400), the client stopped sending (408) or went away.
    Client(ClientBodyError),
    /// The temporary file could not be made or written: 500.
    TempFile(String),
}

/// Decides how the body will be sent; a chunked body is read and de-chunked completely
/// first (uWSGI needs `CONTENT_LENGTH`), in memory up to `buffer_size`, then in a file.
pub async fn prepare_body(
    client: &mut Client<'_>,
    framing: BodyFraming,
    max_size: u64,
    buffer_size: u64,
    temp_dir: &std::path::Path,
) -> Result<RequestBody, BodyError> {
    match framing {
        BodyFraming::None => return Ok(RequestBody::None),
        // `Content-Length: 0` is a body of length 0 (CONTENT_LENGTH "0"), as nginx sends
        BodyFraming::Length(0) => return Ok(RequestBody::Memory(Bytes::new())),
        BodyFraming::Length(n) => return Ok(RequestBody::Streaming(n)),
        BodyFraming::Chunked => {}
    }
    let mut memory = BytesMut::new();
    let mut file: Option<File> = None;
    let mut total: u64 = 0;
    loop {
        let chunk = match client.read_body().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => return Err(BodyError::Client(e)),
        };
        total += chunk.len() as u64;
        if max_size > 0 && total > max_size {
            return Err(BodyError::TooLarge(total));
        }
        match &mut file {
            Some(f) => f.write_all(chunk).map_err(|e| BodyError::TempFile(e.to_string()))?,
            None if memory.len() as u64 + chunk.len() as u64 > buffer_size => {
                let mut f = temp_file(temp_dir).map_err(|e| {
                    BodyError::TempFile(format!(
                        "cannot create a temporary file in {}: {e}",
                        temp_dir.display()
                    ))
                })?;
                f.write_all(&memory)
                    .and_then(|_| f.write_all(chunk))
                    .map_err(|e| BodyError::TempFile(e.to_string()))?;
                memory.clear();
                file = Some(f);
            }
            None => memory.extend_from_slice(chunk),
        }
    }
    Ok(match file {
        Some(file) => RequestBody::File { file, len: total },
        None => RequestBody::Memory(memory.freeze()),
    })
}

/// An unnamed file (O_TMPFILE): nothing to clean up, even after a crash.
fn temp_file(dir: &std::path::Path) -> io::Result<File> {
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::Mode;
    let fd = open(dir, OFlag::O_TMPFILE | OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::from_bits_truncate(0o600))?;
    Ok(File::from(fd))
}

/// A connection to one backend. Used through readiness (`try_read`/`try_write` first,
/// waiting only when the socket is not ready), so reading and writing can be watched at
/// once without splitting the stream, and the common case costs no timer at all.
enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Conn {
    fn try_write(&self, data: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.try_write(data),
            Conn::Tcp(s) => s.try_write(data),
        }
    }

    fn try_read_buf(&self, buf: &mut Vec<u8>) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.try_read_buf(buf),
            Conn::Tcp(s) => s.try_read_buf(buf),
        }
    }

    async fn readable(&self) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.readable().await,
            Conn::Tcp(s) => s.readable().await,
        }
    }

    async fn writable(&self) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.writable().await,
            Conn::Tcp(s) => s.writable().await,
        }
    }

    /// Reads more into `buf`, waiting up to `timeout` for data; `Ok(0)` is end of stream.
    async fn read_more(&self, buf: &mut Vec<u8>, timeout: Duration) -> Result<io::Result<usize>, Elapsed> {
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(8192);
        }
        loop {
            match self.try_read_buf(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return Ok(r),
            }
            match tokio::time::timeout(timeout, self.readable()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Ok(Err(e)),
                Err(_) => return Err(Elapsed),
            }
        }
    }
}

/// A wait that ran out.
struct Elapsed;

/// What happened, for the response and the logs.
pub struct Forwarded {
    /// `Ok` when a response was relayed; `Err(status)` when nothing was sent to the client
    /// and it should get this error page.
    pub result: Result<Relayed, u16>,
    pub notes: Vec<Note>,
    /// `$upstream_addr`: every server tried, comma-separated.
    pub upstream_addr: Option<String>,
    pub upstream_status: Option<u16>,
    pub upstream_time: Option<Duration>,
}

/// A response that went to the client.
pub struct Relayed {
    pub status: u16,
    /// Size of the response head sent.
    pub head_bytes: u64,
    pub body_bytes: u64,
    /// False when the relay broke off: the connection must be closed, not finished (a
    /// clean finish would make a truncated body look complete).
    pub complete: bool,
    /// The head said `Connection: keep-alive`: the connection may carry another request.
    pub keep_alive: bool,
    pub content_type: Option<String>,
    pub location: Option<String>,
}

/// The parts of the request the relay needs besides the client.
pub struct Exchange<'a> {
    pub packet: &'a [u8],
    pub body: RequestBody,
    pub head_request: bool,
    pub client_http10: bool,
    /// The connection may be kept alive, as far as the request goes.
    pub keep_alive: bool,
}

struct Failure {
    status: u16,
    level: Level,
    message: String,
    /// Counts against the server's passive health.
    health: bool,
}

/// How the error log names an upstream (a pool or one of its servers), as nginx does.
pub fn upstream_label(name: impl std::fmt::Display) -> String {
    format!("uwsgi://{name}")
}

/// Forwards one request through `upstream` and relays the answer.
pub async fn forward(client: &mut Client<'_>, upstream: &Upstream, exchange: Exchange<'_>) -> Forwarded {
    let pool = &upstream.pool;
    let cfg = pool.config();
    let started = Instant::now();
    let mut notes = Vec::new();
    let mut tried: Vec<usize> = Vec::new();
    let mut addrs: Vec<String> = Vec::new();
    let mut last_status = 502;
    let wait_deadline = Instant::now() + cfg.connect_timeout;

    let (stream, slot) = loop {
        if tried.len() >= pool.tries() {
            return failed(last_status, notes, addrs, started);
        }
        let mut pick = pool.acquire(Instant::now(), &tried);
        // the wait for a freed slot is set up only when every server is busy (it costs a
        // registration), then the pool looked at again so a slot freed meanwhile counts
        let freed = upstream.freed.notified();
        tokio::pin!(freed);
        if let Pick::AllBusy = pick {
            freed.as_mut().enable();
            pick = pool.acquire(Instant::now(), &tried);
        }
        let slot = match pick {
            Pick::Got(slot) => slot,
            Pick::AllBusy => {
                let left = wait_deadline.saturating_duration_since(Instant::now());
                if tokio::time::timeout(left, freed).await.is_err() {
                    notes.push(Note {
                        level: Level::Error,
                        message: format!(
                            "every server of upstream \"{}\" is at max_conns and no slot was freed within connect_timeout ({})",
                            cfg.name,
                            show_duration(cfg.connect_timeout)
                        ),
                        upstream: None,
                    });
                    return failed(503, notes, addrs, started);
                }
                continue;
            }
            Pick::NoneLeft => {
                if tried.is_empty() {
                    notes.push(Note {
                        level: Level::Error,
                        message: format!(
                            "no live upstreams while connecting to upstream: every server of \"{}\" failed recently and is skipped for fail_timeout ({})",
                            cfg.name,
                            show_duration(cfg.fail_timeout)
                        ),
                        upstream: Some(upstream_label(&cfg.name)),
                    });
                }
                return failed(last_status, notes, addrs, started);
            }
        };
        let addr = slot.addr();
        tried.push(slot.index());
        addrs.push(addr.to_string());
        match connect(addr, cfg.connect_timeout).await {
            Ok(s) => break (s, slot),
            Err(f) => {
                pool.record_failure(slot.index(), Instant::now());
                last_status = f.status;
                notes.push(Note { level: f.level, message: f.message, upstream: Some(upstream_label(addr)) });
            }
        }
    };

    let label = || upstream_label(slot.addr());
    let outcome = exchange_with(client, stream, cfg, exchange).await;
    let upstream_time = Some(started.elapsed());
    let addr_list = Some(join(addrs));
    match outcome {
        Ok((relayed, mut relay_notes)) => {
            pool.record_success(slot.index());
            for n in &mut relay_notes {
                n.upstream = Some(label());
            }
            notes.append(&mut relay_notes);
            Forwarded {
                upstream_status: Some(relayed.status),
                result: Ok(relayed),
                notes,
                upstream_addr: addr_list,
                upstream_time,
            }
        }
        Err(f) => {
            if f.health {
                pool.record_failure(slot.index(), Instant::now());
            }
            notes.push(Note { level: f.level, message: f.message, upstream: Some(label()) });
            Forwarded {
                result: Err(f.status),
                notes,
                upstream_addr: addr_list,
                upstream_status: Some(f.status),
                upstream_time,
            }
        }
    }
}

fn failed(status: u16, notes: Vec<Note>, addrs: Vec<String>, started: Instant) -> Forwarded {
    let tried = !addrs.is_empty();
    Forwarded {
        result: Err(status),
        notes,
        upstream_status: tried.then_some(status),
        upstream_addr: tried.then(|| join(addrs)),
        upstream_time: tried.then(|| started.elapsed()),
    }
}

/// `$upstream_addr`: the servers tried, as nginx lists them.
fn join(mut addrs: Vec<String>) -> String {
    if addrs.len() == 1 {
        return addrs.pop().unwrap_or_default();
    }
    addrs.join(", ")
}

fn show_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

async fn connect(addr: &BackendAddr, timeout: Duration) -> Result<Conn, Failure> {
    let attempt = async {
        match addr {
            BackendAddr::Unix(path) => connect_unix(path).await.map(Conn::Unix),
            BackendAddr::Tcp(sa) => TcpStream::connect(sa).await.map(|s| {
                let _ = s.set_nodelay(true);
                Conn::Tcp(s)
            }),
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(connect_failure(addr, &e)),
        Err(_) => Err(Failure {
            status: 504,
            level: Level::Error,
            message: format!(
                "upstream timed out (110: Connection timed out) while connecting to upstream {addr}"
            ),
            health: true,
        }),
    }
}

/// Connects a Unix socket. A local connect is done (or refused) at once: the socket is
/// registered with tokio only then, so no readiness wait and no SO_ERROR check follow
/// (tokio's own connect costs an epoll_wait and a getsockopt per request).
async fn connect_unix(path: &std::path::Path) -> io::Result<UnixStream> {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = UnixAddr::new(path)?;
    let pending = match connect(fd.as_raw_fd(), &addr) {
        Ok(()) => false,
        Err(Errno::EINPROGRESS) => true,
        Err(e) => return Err(e.into()),
    };
    let stream = UnixStream::from_std(std::os::unix::net::UnixStream::from(fd))?;
    if pending {
        stream.writable().await?;
        if let Some(e) = stream.take_error()? {
            return Err(e);
        }
    }
    Ok(stream)
}

/// nginx's connect() line, with what to check for each errno.
fn connect_failure(addr: &BackendAddr, e: &io::Error) -> Failure {
    let errno = e.raw_os_error().map(Errno::from_raw);
    let hint = match errno {
        Some(Errno::ENOENT) => " (is uWSGI running? its `socket` option must name this path)".to_string(),
        Some(Errno::ECONNREFUSED) => match addr {
            BackendAddr::Unix(_) => {
                " (the socket file exists but nothing listens on it: uWSGI stopped, or left a stale socket)"
                    .into()
            }
            BackendAddr::Tcp(_) => " (nothing listens there: is uWSGI running?)".into(),
        },
        Some(Errno::EAGAIN) => {
            " (uWSGI's listen queue is full: every worker is busy; raise uWSGI's `listen` or add workers)"
                .into()
        }
        Some(Errno::EACCES) => permission_hint(addr),
        _ => String::new(),
    };
    // nginx logs a missing or forbidden socket at crit, a refused or busy one at error
    let level = match errno {
        Some(
            Errno::ECONNREFUSED
            | Errno::EAGAIN
            | Errno::ECONNRESET
            | Errno::ENETDOWN
            | Errno::ENETUNREACH
            | Errno::EHOSTDOWN
            | Errno::EHOSTUNREACH,
        ) => Level::Error,
        _ => Level::Crit,
    };
    Failure {
        status: 502,
        level,
        message: format!(
            "connect() to {addr} failed {}{hint} while connecting to upstream",
            crate::errno::describe(e)
        ),
        health: true,
    }
}

/// Who owns the socket and who we are, for the classic chmod-socket=600 trap.
fn permission_hint(addr: &BackendAddr) -> String {
    let BackendAddr::Unix(path) = addr else {
        return String::new();
    };
    let me = nix::unistd::geteuid();
    let user = |uid: u32| {
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map_or_else(|| uid.to_string(), |u| u.name)
    };
    let group = |gid: u32| {
        nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
            .ok()
            .flatten()
            .map_or_else(|| gid.to_string(), |g| g.name)
    };
    match std::fs::metadata(path) {
        Ok(m) => format!(
            " (the socket has mode {:o} and belongs to {}:{}, Portico runs as {}: make uWSGI create it for this user, e.g. chown-socket = {} in its ini, or give a shared group chmod-socket = 660; also check the directories on the path)",
            m.permissions().mode() & 0o7777,
            user(m.uid()),
            group(m.gid()),
            user(me.as_raw()),
            user(me.as_raw())
        ),
        Err(_) => format!(
            " (a directory on the path is not searchable by {}, the user Portico runs as)",
            user(me.as_raw())
        ),
    }
}

fn is_peer_gone(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset)
}

fn io_failure(call: &str, action: &str, e: &io::Error) -> Failure {
    Failure {
        status: 502,
        level: Level::Error,
        message: format!("{call} failed {} while {action}", crate::errno::describe(e)),
        health: true,
    }
}

fn timed_out(action: &str) -> Failure {
    Failure {
        status: 504,
        level: Level::Error,
        message: format!("upstream timed out (110: Connection timed out) while {action}"),
        health: true,
    }
}

/// What nginx's log lines say the relay was doing while the request went out.
const SENDING: &str = "sending request to upstream";

/// How sending the request ended.
enum Sent {
    /// Packet and body written.
    All,
    /// uWSGI answered (or hung up) before taking the whole body.
    Early,
}

async fn exchange_with(
    client: &mut Client<'_>,
    conn: Conn,
    cfg: &UpstreamConfig,
    exchange: Exchange<'_>,
) -> Result<(Relayed, Vec<Note>), Failure> {
    let mut resp = crate::buffer_pool::take(READ_CHUNK);
    let result = relay(client, &conn, &mut resp, cfg, exchange).await;
    crate::buffer_pool::give(resp);
    result
}

/// The exchange proper, with `resp` the buffer uWSGI's answer is read into.
async fn relay(
    client: &mut Client<'_>,
    conn: &Conn,
    resp: &mut Vec<u8>,
    cfg: &UpstreamConfig,
    exchange: Exchange<'_>,
) -> Result<(Relayed, Vec<Note>), Failure> {
    let sent = send_request(client, conn, resp, &exchange, cfg).await?;
    let early = matches!(sent, Sent::Early);

    let head = read_head(conn, resp, exchange.head_request, cfg.read_timeout, early).await?;
    let mut notes = Vec::new();
    let value_of = |name: &str| head.header(resp, name).map(|v| String::from_utf8_lossy(v).into_owned());
    let content_type = value_of("content-type");
    let location = value_of("location");
    // a body the app did not read, or one delimited by the close, ends the connection
    let close_delimited =
        exchange.client_http10 && matches!(head.framing, Framing::Chunked | Framing::UntilClose);
    let keep_alive = exchange.keep_alive && !client.body_pending() && !close_delimited;
    let chunked = !exchange.client_http10 && matches!(head.framing, Framing::Chunked | Framing::UntilClose);
    crate::log::clock::with_http_date(|date| {
        client_head(&head, resp, exchange.head_request, chunked, keep_alive, date, client.out)
    });
    let mut relayed = Relayed {
        status: head.status,
        head_bytes: client.out.len() as u64,
        body_bytes: 0,
        complete: true,
        keep_alive,
        content_type,
        location,
    };
    // the head stays in the write buffer: the body bytes already here join it, so a small
    // response goes out in one write
    let before = client.bytes_sent();
    let relayed_body =
        relay_body(client, conn, resp, head.head_len, head.framing, chunked, cfg.read_timeout, early).await;
    // what is buffered goes out in any case: a broken body still ends after what came
    let body_result = relayed_body.and(flush(client).await);
    let sent = client.bytes_sent() - before;
    relayed.body_bytes = sent.saturating_sub(relayed.head_bytes);
    if sent < relayed.head_bytes {
        relayed.head_bytes = sent;
    }
    if let Err(note) = body_result {
        relayed.complete = false;
        notes.push(note);
    }
    Ok((relayed, notes))
}

async fn send_request(
    client: &mut Client<'_>,
    conn: &Conn,
    resp: &mut Vec<u8>,
    exchange: &Exchange<'_>,
    cfg: &UpstreamConfig,
) -> Result<Sent, Failure> {
    if !write_watching(conn, exchange.packet, resp, cfg.send_timeout).await? {
        return Ok(Sent::Early);
    }
    match &exchange.body {
        RequestBody::None => {}
        RequestBody::Memory(b) => {
            if !write_watching(conn, b, resp, cfg.send_timeout).await? {
                return Ok(Sent::Early);
            }
        }
        RequestBody::File { file, len } => {
            let mut pos = 0u64;
            let mut buf = vec![0u8; READ_CHUNK];
            while pos < *len {
                let want = usize::try_from(len - pos).unwrap_or(READ_CHUNK).min(READ_CHUNK);
                let n = file.read_at(&mut buf[..want], pos).map_err(|e| Failure {
                    status: 500,
                    level: Level::Crit,
                    message: format!("reading the buffered request body back failed: {e}"),
                    health: false,
                })?;
                if n == 0 {
                    break;
                }
                if !write_watching(conn, &buf[..n], resp, cfg.send_timeout).await? {
                    return Ok(Sent::Early);
                }
                pos += n as u64;
            }
        }
        RequestBody::Streaming(_) => {
            // before the loop: the read below may be cancelled, a half-written 100 may not
            if let Err(e) = client.send_continue().await {
                return Err(client_gone(&ClientBodyError::Closed(match e {
                    crate::http1::connection::SendError::Io(e) => Some(e),
                    crate::http1::connection::SendError::TimedOut => None,
                })));
            }
            loop {
                let chunk = tokio::select! {
                    biased;
                    r = conn.readable() => {
                        // uWSGI talks (or hangs up) before it has the whole body
                        if spoke_early(conn, resp, r)? {
                            return Ok(Sent::Early);
                        }
                        continue;
                    }
                    c = client.read_body() => c,
                };
                match chunk {
                    Ok(Some(bytes)) => {
                        if !write_watching(conn, bytes, resp, cfg.send_timeout).await? {
                            return Ok(Sent::Early);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return Err(client_gone(&e)),
                }
            }
        }
    }
    Ok(Sent::All)
}

/// The client's body broke off while it was being sent on: 408 for a timeout, 400 for
/// bad framing, else 499 (the client is gone).
fn client_gone(e: &ClientBodyError) -> Failure {
    Failure {
        status: match e {
            ClientBodyError::TimedOut => 408,
            ClientBodyError::Framing(_) => 400,
            ClientBodyError::Closed(_) => 499,
        },
        level: Level::Info,
        message: format!("{e} while sending request to upstream"),
        health: false,
    }
}

/// Writes `data` while watching for uWSGI to answer early. `Ok(false)`: it answered or
/// hung up first (the rest of the body is not wanted).
async fn write_watching(
    conn: &Conn,
    mut data: &[u8],
    resp: &mut Vec<u8>,
    timeout: Duration,
) -> Result<bool, Failure> {
    loop {
        match conn.try_write(data) {
            Ok(n) => {
                data = &data[n..];
                if data.is_empty() {
                    return Ok(true);
                }
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if is_peer_gone(&e) => return Ok(false),
            Err(e) => return Err(io_failure("writev()", SENDING, &e)),
        }
        tokio::select! {
            r = conn.writable() => {
                if let Err(e) = r {
                    return Err(io_failure("writev()", SENDING, &e));
                }
            }
            r = conn.readable() => {
                if spoke_early(conn, resp, r)? {
                    return Ok(false);
                }
            }
            _ = tokio::time::sleep(timeout) => return Err(timed_out(SENDING)),
        }
    }
}

/// After the backend's socket turned readable while the request was still going out:
/// whether uWSGI answered or hung up (its bytes are kept in `resp`), or the wake-up was
/// spurious.
fn spoke_early(conn: &Conn, resp: &mut Vec<u8>, ready: io::Result<()>) -> Result<bool, Failure> {
    ready.map_err(|e| io_failure("recv()", SENDING, &e))?;
    match conn.try_read_buf(resp) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Ok(_) => Ok(true),
        Err(e) if is_peer_gone(&e) => Ok(true),
        Err(e) => Err(io_failure("recv()", SENDING, &e)),
    }
}

async fn read_head(
    conn: &Conn,
    resp: &mut Vec<u8>,
    head_request: bool,
    timeout: Duration,
    early: bool,
) -> Result<ResponseHead, Failure> {
    let action = "reading response header from upstream";
    loop {
        match parse_head(resp, MAX_RESPONSE_HEAD, head_request) {
            Ok(Some(h)) => return Ok(h),
            Ok(None) => {}
            Err(e) => {
                return Err(Failure {
                    status: 502,
                    level: Level::Error,
                    message: format!("{e} while {action}"),
                    health: true,
                })
            }
        }
        match conn.read_more(resp, timeout).await {
            Ok(Ok(0)) => {
                return Err(Failure {
                    status: 502,
                    level: Level::Error,
                    message: if early {
                        format!("upstream closed the connection before reading the whole request body and without a response while {action}")
                    } else {
                        format!("upstream prematurely closed connection while {action} (an app that fails before start_response, or a request uWSGI refused: see its log)")
                    },
                    health: true,
                })
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                let mut f = io_failure("recv()", action, &e);
                if e.kind() == io::ErrorKind::ConnectionReset {
                    f.message.push_str(" (uWSGI drops requests it refuses, e.g. a vars block over its buffer-size: see its log)");
                }
                return Err(f);
            }
            Err(_) => return Err(timed_out(action)),
        }
    }
}

/// The response head for the client, in nginx's order: the app's status and headers,
/// framed for this client (Content-Length when known; chunked for HTTP/1.1; close-delimited
/// for 1.0).
fn client_head(
    head: &ResponseHead,
    buf: &[u8],
    head_request: bool,
    chunked: bool,
    keep_alive: bool,
    date: &str,
    out: &mut Vec<u8>,
) {
    let named =
        |name: &'static str| head.headers(buf).find(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()));
    let reason = head.reason(buf).unwrap_or_else(|| reason(head.status));
    response_head::start_head(head.status, reason, named("server"), date, out);
    if let Some((n, v)) = named("content-type") {
        response_head::header(n, v, out);
    }
    match head.framing {
        Framing::Length(n) => {
            let _ = write!(out, "Content-Length: {n}\r\n");
        }
        Framing::None => {
            if let (true, Some(n)) = (head_request, head.declared_length) {
                let _ = write!(out, "Content-Length: {n}\r\n");
            }
        }
        Framing::Chunked | Framing::UntilClose => {
            if chunked {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            }
        }
    }
    response_head::connection(keep_alive, out);
    for (name, value) in head.headers(buf) {
        if name.eq_ignore_ascii_case(b"server") || name.eq_ignore_ascii_case(b"content-type") {
            continue;
        }
        response_head::header(name, value, out);
    }
    out.extend_from_slice(b"\r\n");
}

/// Relays the body after the head waiting in the client's write buffer, which is written
/// whenever uWSGI has to be waited for and when it fills; the caller writes what is left.
#[allow(clippy::too_many_arguments)]
async fn relay_body(
    client: &mut Client<'_>,
    conn: &Conn,
    pending: &mut Vec<u8>,
    body_start: usize,
    framing: Framing,
    chunked: bool,
    timeout: Duration,
    early: bool,
) -> Result<(), Note> {
    let mut remaining = match framing {
        Framing::None => return Ok(()),
        Framing::Length(n) => Some(n),
        Framing::Chunked | Framing::UntilClose => None,
    };
    let mut decoder = (framing == Framing::Chunked).then(ChunkedDecoder::new);
    let broken = |message: String| Note { level: Level::Error, message, upstream: None };
    let mut start = body_start;
    loop {
        if start < pending.len() {
            let mut chunk = &pending[start..];
            if let Some(left) = remaining {
                if chunk.len() as u64 > left {
                    chunk = &chunk[..left as usize];
                }
                remaining = Some(left - chunk.len() as u64);
            }
            match &mut decoder {
                Some(d) => {
                    let mut pos = 0;
                    while pos < chunk.len() && !d.is_done() {
                        let step = d.step(&chunk[pos..]).map_err(|e| {
                            broken(format!(
                                "upstream sent an invalid chunked body ({e}) while reading upstream"
                            ))
                        })?;
                        if !step.data.is_empty() {
                            send_client(client, &chunk[pos + step.data.start..pos + step.data.end], chunked)
                                .await?;
                        }
                        pos += step.consumed;
                    }
                }
                None => send_client(client, chunk, chunked).await?,
            }
        }
        pending.clear();
        start = 0;
        let done = remaining == Some(0) || decoder.as_ref().is_some_and(ChunkedDecoder::is_done);
        if done {
            end_body(client, chunked);
            return Ok(());
        }
        // nothing may wait in our buffer while we wait for uWSGI
        flush(client).await?;
        pending.reserve(READ_CHUNK);
        match conn.read_more(pending, timeout).await {
            Ok(Ok(0)) => {
                return match framing {
                    Framing::UntilClose => {
                        end_body(client, chunked);
                        Ok(())
                    }
                    _ => Err(broken("upstream prematurely closed connection while reading upstream; the client connection is closed so the truncated response is not taken as complete".into())),
                }
            }
            Ok(Ok(_)) => {}
            // uWSGI resets the connection after answering without reading the body
            Ok(Err(e)) if early && framing == Framing::UntilClose && is_peer_gone(&e) => {
                end_body(client, chunked);
                return Ok(());
            }
            Ok(Err(e)) => return Err(broken(io_failure("recv()", "reading upstream", &e).message)),
            Err(_) => return Err(broken("upstream timed out (110: Connection timed out) while reading upstream".into())),
        }
    }
}

/// Bytes gathered in the client's write buffer before they are written.
const COALESCE: usize = 8 << 10;

/// Passes body bytes on (as one chunk when the client gets the body chunked): small ones
/// are gathered behind the head, large ones written as they are.
async fn send_client(client: &mut Client<'_>, data: &[u8], chunked: bool) -> Result<(), Note> {
    if chunked {
        response_head::chunk_start(data.len(), client.out);
    }
    if client.out.len() + data.len() <= COALESCE {
        client.out.extend_from_slice(data);
    } else {
        // never left corked (MSG_MORE) while uWSGI may be waited for next
        client.write_out(true).await.map_err(client_note)?;
        client.write_all(data, false).await.map_err(client_note)?;
    }
    if chunked {
        client.out.extend_from_slice(CHUNK_END);
    }
    Ok(())
}

/// Ends a chunked body with its last chunk (written with what is buffered).
fn end_body(client: &mut Client<'_>, chunked: bool) {
    if chunked {
        client.out.extend_from_slice(LAST_CHUNK);
    }
}

/// Writes what waits in the client's write buffer.
async fn flush(client: &mut Client<'_>) -> Result<(), Note> {
    if client.out.is_empty() {
        return Ok(());
    }
    client.write_out(false).await.map_err(client_note)
}

fn client_note(e: crate::http1::connection::SendError) -> Note {
    Note { level: Level::Info, message: e.to_string(), upstream: None }
}
