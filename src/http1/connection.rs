//! The connection shell: reads request heads, hands each parsed request and an
//! [`Exchange`] (its body in, its response out) to the server, and keeps the connection's
//! rules — keep-alive, pipelining, the header deadline, body and send timeouts,
//! `100 Continue`, lingering close.
//!
//! Memory: an idle connection holds no buffer. The head buffer is taken from a
//! per-thread pool only when bytes arrive (the read is polled with a pooled buffer that
//! goes straight back if nothing is there), and returned once the request is done and
//! no pipelined bytes remain, as nginx frees its request buffers between requests.

use std::cell::RefCell;
use std::fs::File;
use std::future::poll_fn;
use std::io;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use nix::errno::Errno;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, Interest, ReadBuf};
use tokio::time::{timeout_at, Instant};

use crate::errno::describe;

use super::body::BodyDecoder;
use super::chunked::ChunkError;
use super::request_head::{parse_head, BodyFraming, HeadError, HeadLimits, HeaderSpan, Request, RequestHead};

/// A byte stream a connection runs on (a TCP or Unix socket, later TLS).
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Transport for T {}

/// Size of a fresh head buffer: what nearly every request head fits in.
const HEAD_BUFFER: usize = 4 << 10;
/// Size of the buffer a request body is read into once the bytes that came with the
/// head are used up (nginx's `client_body_buffer_size` default).
const BODY_BUFFER: usize = 16 << 10;
/// Buffers kept per thread for reuse; beyond that they are freed.
const POOLED: usize = 256;
/// Largest single sendfile(2) call; bounds how long one call can hold the worker.
const SENDFILE_CHUNK: usize = 2 << 20;
/// Bytes read from a file at a time on the buffered path (`sendfile off`, no raw socket).
const COPY_CHUNK: usize = 64 << 10;
/// nginx's `lingering_time` and `lingering_timeout`.
const LINGERING_TIME: Duration = Duration::from_secs(30);
const LINGERING_TIMEOUT: Duration = Duration::from_secs(5);

/// The buffers one request in flight uses.
struct Buffers {
    /// Bytes read from the client: the head, then whatever came with it.
    read: Vec<u8>,
    /// The parsed header lines (positions into `read`).
    headers: Vec<HeaderSpan>,
    /// Response heads are encoded here.
    out: Vec<u8>,
}

thread_local! {
    static HEAD_POOL: RefCell<Vec<Buffers>> = const { RefCell::new(Vec::new()) };
}

fn take_buffers() -> Buffers {
    HEAD_POOL.with(|p| p.borrow_mut().pop()).unwrap_or_else(|| Buffers {
        read: Vec::with_capacity(HEAD_BUFFER),
        headers: Vec::with_capacity(32),
        out: Vec::with_capacity(1024),
    })
}

fn give_buffers(mut b: Buffers) {
    // a buffer grown for a rare large head is not kept
    if b.read.capacity() > HEAD_BUFFER || b.out.capacity() > 16 << 10 {
        return;
    }
    b.read.clear();
    b.headers.clear();
    b.out.clear();
    HEAD_POOL.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < POOLED {
            p.push(b);
        }
    });
}

fn take_body_buffer() -> Vec<u8> {
    crate::buffer_pool::take(BODY_BUFFER)
}

fn give_body_buffer(b: Vec<u8>) {
    crate::buffer_pool::give(b);
}

/// The connection's timeouts and limits (the address's default server's, as nginx uses
/// them before it knows the Host).
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// Deadline for a whole request head, from its first byte (the first request's from
    /// the accept).
    pub header: Duration,
    /// Idle time allowed before the next request's first byte.
    pub keepalive: Duration,
}

/// What waiting for the next request gave.
pub enum Next {
    Request(RequestHead),
    /// The client closed, the connection sat idle too long, or the server is stopping:
    /// close without a word.
    Close,
    /// The head is malformed: answer this status, then close.
    Refuse(HeadError),
    /// The head did not arrive in time: answer 408, then close.
    TimedOut,
}

/// One client connection.
pub struct Connection<S> {
    stream: S,
    /// The socket's fd when the stream is a plain socket: sendfile and MSG_MORE need it.
    fd: Option<RawFd>,
    /// A `dup` of `fd` registered for writability, made the first time a raw write
    /// would block (the stream's own registration cannot be reached).
    writable: Option<AsyncFd<OwnedFd>>,
    bufs: Option<Buffers>,
    /// Requests read on this connection.
    pub requests: u64,
}

impl<S: Transport> Connection<S> {
    pub fn new(stream: S, fd: Option<RawFd>) -> Connection<S> {
        Connection { stream, fd, writable: None, bufs: None, requests: 0 }
    }

    /// Whether bytes of a further request are already here (pipelining).
    fn has_pending(&self) -> bool {
        self.bufs.as_ref().is_some_and(|b| !b.read.is_empty())
    }

    /// Waits for and parses the next request head. `idle` is how long to wait for its
    /// first byte, `header_deadline` when the whole head must be in (`None`: from its
    /// first byte plus `timeouts.header`).
    pub async fn next_request(
        &mut self,
        idle_until: Instant,
        timeouts: &Timeouts,
        limits: &HeadLimits,
        first: bool,
    ) -> Next {
        let mut deadline = if first { Some(idle_until) } else { None };
        if !self.has_pending() {
            match timeout_at(idle_until, poll_fn(|cx| self.poll_first_bytes(cx))).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return Next::Close,
            }
        }
        let deadline =
            *deadline.get_or_insert_with(|| crate::clock::deadline(Instant::now(), timeouts.header));
        // a head trickling in is parsed again only when a line ends (or a limit is near),
        // so a slow client cannot make it cost quadratic time
        let shortest_line = limits.max_header_line.min(limits.max_request_line);
        let mut line_start = 0;
        let mut parse = true;
        loop {
            let Some(bufs) = self.bufs.as_mut() else { return Next::Close };
            if parse {
                let headers = std::mem::take(&mut bufs.headers);
                match parse_head(&bufs.read, limits, headers) {
                    Ok(Ok(head)) => {
                        self.requests += 1;
                        return Next::Request(head);
                    }
                    Ok(Err(headers)) => bufs.headers = headers,
                    Err(e) => return Next::Refuse(e),
                }
            }
            if bufs.read.len() == bufs.read.capacity() {
                // a head larger than the first buffer: room up to the limit
                bufs.read.reserve(
                    (limits.max_head + limits.max_request_line).saturating_sub(bufs.read.len()).max(1),
                );
            }
            let old = bufs.read.len();
            match timeout_at(deadline, read_into(&mut self.stream, &mut bufs.read)).await {
                Ok(Ok(n)) if n > 0 => {}
                Ok(_) => return Next::Close,
                Err(_) => return Next::TimedOut,
            }
            if let Some(lf) = memchr::memrchr(b'\n', &bufs.read[old..]) {
                line_start = old + lf + 1;
            }
            let len = bufs.read.len();
            parse = line_start > old || len - line_start > shortest_line || len > limits.max_head;
        }
    }

    /// Polls the first read of a request with a pooled buffer, which goes back to the
    /// pool if nothing is there: an idle connection holds no buffer.
    fn poll_first_bytes(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut bufs = self.bufs.take().unwrap_or_else(take_buffers);
        let spare = bufs.read.spare_capacity_mut();
        let start = spare.as_ptr().cast::<u8>();
        let mut rb = ReadBuf::uninit(spare);
        match Pin::new(&mut self.stream).poll_read(cx, &mut rb) {
            Poll::Pending => {
                give_buffers(bufs);
                Poll::Pending
            }
            Poll::Ready(Ok(())) if rb.filled().as_ptr() != start => {
                give_buffers(bufs);
                Poll::Ready(Err(replaced_buffer()))
            }
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                // SAFETY: poll_read initialised `n` bytes of the spare capacity
                unsafe { bufs.read.set_len(bufs.read.len() + n) };
                self.bufs = Some(bufs);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => {
                give_buffers(bufs);
                Poll::Ready(Err(e))
            }
        }
    }

    /// The request just parsed, and the exchange that reads its body and writes its
    /// response. `head` must come from [`Connection::next_request`].
    pub fn exchange<'c>(
        &'c mut self,
        head: &'c RequestHead,
        send_timeout: Duration,
        body_timeout: Duration,
    ) -> (Request<'c>, Exchange<'c>) {
        let bufs = self.bufs.get_or_insert_with(take_buffers);
        let read: &'c [u8] = &bufs.read;
        let request = Request::new(head, read);
        let exchange = Exchange {
            io: Io {
                stream: &mut self.stream,
                fd: self.fd,
                writable: &mut self.writable,
                send_timeout,
                sent: 0,
            },
            leftover: read.get(head.len..).unwrap_or(&[]),
            pos: 0,
            body: BodyDecoder::new(head.body),
            body_buf: None,
            body_pos: 0,
            body_timeout,
            body_read: 0,
            // nginx answers `Expect: 100-continue` from HTTP/1.1 clients only
            continue_wanted: head.expect_continue
                && head.body != BodyFraming::None
                && head.version == super::request_head::Version::Http11,
            out: &mut bufs.out,
            broken: false,
        };
        (request, exchange)
    }

    /// After a request: keeps the bytes of a pipelined request (if the body was read to
    /// its end) and gives the buffers back when nothing is pending.
    pub fn finish(&mut self, head: RequestHead, after: AfterBody) {
        let Some(mut bufs) = self.bufs.take() else { return };
        let consumed = head.len;
        bufs.headers = head.into_header_list();
        bufs.out.clear();
        match after {
            AfterBody::InHeadBuffer(pos, _) => {
                let start = consumed + pos;
                let end = bufs.read.len();
                bufs.read.copy_within(start.min(end)..end, 0);
                bufs.read.truncate(end - start.min(end));
            }
            AfterBody::InBodyBuffer(body, range) => {
                bufs.read.clear();
                bufs.read.extend_from_slice(&body[range]);
                give_body_buffer(body);
            }
        }
        if bufs.read.is_empty() {
            give_buffers(bufs);
        } else {
            self.bufs = Some(bufs);
        }
    }

    /// Answers a head that could not be parsed (or arrived too late): `bytes` is the
    /// whole response; `linger`: read what the client still sends before closing.
    pub async fn send_and_close(&mut self, bytes: &[u8], send_timeout: Duration, linger: bool) {
        let mut io =
            Io { stream: &mut self.stream, fd: self.fd, writable: &mut self.writable, send_timeout, sent: 0 };
        if io.write_all(bytes, false).await.is_ok() && linger {
            self.linger().await;
        }
        if let Some(b) = self.bufs.take() {
            give_buffers(b);
        }
    }

    /// nginx's lingering close: after answering a request whose body was not read, stop
    /// sending and read (and drop) what the client still sends for a while, so closing
    /// with unread data does not reset the connection before the client has read the
    /// answer.
    pub async fn linger(&mut self) {
        // the client sees the end of the response at once; we go on reading
        let _ = self.stream.shutdown().await;
        let until = Instant::now() + LINGERING_TIME;
        let mut scratch = take_body_buffer();
        loop {
            let wait = until.min(Instant::now() + LINGERING_TIMEOUT);
            scratch.clear();
            match timeout_at(wait, read_into(&mut self.stream, &mut scratch)).await {
                Ok(Ok(n)) if n > 0 && Instant::now() < until => {}
                _ => break,
            }
        }
        give_body_buffer(scratch);
    }
}

/// Reads once into the spare capacity of `buf`.
async fn read_into<S: AsyncRead + Unpin + ?Sized>(stream: &mut S, buf: &mut Vec<u8>) -> io::Result<usize> {
    if buf.len() == buf.capacity() {
        buf.reserve(BODY_BUFFER);
    }
    poll_fn(|cx| {
        let spare = buf.spare_capacity_mut();
        let start = spare.as_ptr().cast::<u8>();
        let mut rb = ReadBuf::uninit(spare);
        match Pin::new(&mut *stream).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) if rb.filled().as_ptr() != start => Poll::Ready(Err(replaced_buffer())),
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                // SAFETY: poll_read initialised `n` bytes of the spare capacity
                unsafe { buf.set_len(buf.len() + n) };
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// A stream that filled a buffer of its own instead of ours (the bytes would not be where
/// `set_len` says): refused rather than trusted.
fn replaced_buffer() -> io::Error {
    io::Error::other("the stream replaced the read buffer it was given")
}

/// Where the bytes after a request's body are, for [`Connection::finish`].
pub enum AfterBody {
    /// At this offset of what followed the head in the head buffer (and this many of
    /// them).
    InHeadBuffer(usize, usize),
    /// In the body buffer, at this range.
    InBodyBuffer(Vec<u8>, std::ops::Range<usize>),
}

impl AfterBody {
    /// Whether bytes of a further request are already here.
    pub fn has_bytes(&self) -> bool {
        match self {
            AfterBody::InHeadBuffer(_, n) => *n > 0,
            AfterBody::InBodyBuffer(_, range) => !range.is_empty(),
        }
    }
}

/// Why reading the request body stopped.
#[derive(Debug)]
pub enum BodyError {
    /// Bad chunked framing: 400.
    Framing(ChunkError),
    /// Nothing came for `client_body_timeout`: 408.
    TimedOut,
    /// The client closed the connection or it failed.
    Closed(Option<io::Error>),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Framing(e) => write!(f, "client sent invalid chunked body ({e})"),
            BodyError::TimedOut => {
                f.write_str("client timed out (110: Connection timed out) while reading client request body")
            }
            BodyError::Closed(None) => {
                f.write_str("client prematurely closed connection while reading client request body")
            }
            BodyError::Closed(Some(e)) => {
                write!(f, "recv() failed {} while reading client request body", describe(e))
            }
        }
    }
}

/// Why sending the response stopped.
#[derive(Debug)]
pub enum SendError {
    /// The client did not take bytes for `send_timeout`.
    TimedOut,
    Io(io::Error),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::TimedOut => {
                f.write_str("client timed out (110: Connection timed out) while sending response to client")
            }
            SendError::Io(e) => {
                write!(f, "writev() or sendfile() failed {} while sending response to client", describe(e))
            }
        }
    }
}

/// The writing half: the stream, and the raw socket when there is one.
struct Io<'c> {
    stream: &'c mut dyn Transport,
    fd: Option<RawFd>,
    writable: &'c mut Option<AsyncFd<OwnedFd>>,
    send_timeout: Duration,
    sent: u64,
}

impl Io<'_> {
    async fn write_all(&mut self, data: &[u8], more: bool) -> Result<(), SendError> {
        match self.fd {
            Some(fd) => {
                // MSG_MORE holds a short head back until the body follows (nginx's tcp_nopush)
                let flags = nix::libc::MSG_NOSIGNAL | if more { nix::libc::MSG_MORE } else { 0 };
                let mut rest = data;
                while !rest.is_empty() {
                    let n = self
                        .raw(fd, |fd| {
                            // SAFETY: `rest` is a valid slice for the duration of the call
                            let n = unsafe { nix::libc::send(fd, rest.as_ptr().cast(), rest.len(), flags) };
                            Errno::result(n).map(|n| n as usize)
                        })
                        .await?;
                    rest = &rest[n..];
                    self.sent += n as u64;
                }
                Ok(())
            }
            None => {
                let timeout = self.send_timeout;
                let stream = &mut *self.stream;
                let write = async {
                    stream.write_all(data).await?;
                    if !more {
                        stream.flush().await?;
                    }
                    Ok::<(), io::Error>(())
                };
                match tokio::time::timeout(timeout, write).await {
                    Ok(Ok(())) => {
                        self.sent += data.len() as u64;
                        Ok(())
                    }
                    Ok(Err(e)) => Err(SendError::Io(e)),
                    Err(_) => Err(SendError::TimedOut),
                }
            }
        }
    }

    /// Runs a raw socket call until it makes progress, waiting (up to `send_timeout`)
    /// while it would block.
    async fn raw(
        &mut self,
        fd: RawFd,
        mut op: impl FnMut(RawFd) -> nix::Result<usize>,
    ) -> Result<usize, SendError> {
        loop {
            match op(fd) {
                Ok(n) => return Ok(n),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => break,
                Err(e) => return Err(SendError::Io(e.into())),
            }
        }
        if self.writable.is_none() {
            // SAFETY: `fd` is the stream's open socket for the connection's life; the dup
            // is ours to register, closed when the connection drops
            let dup = nix::fcntl::fcntl(
                unsafe { BorrowedFd::borrow_raw(fd) },
                nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(0),
            )
            .map_err(|e| SendError::Io(e.into()))?;
            // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns
            let dup = unsafe { OwnedFd::from_raw_fd(dup) };
            // SAFETY: `dup` is an open fd we own; the AsyncFd owns it until it drops
            let afd = unsafe { AsyncFd::register_with_interest(dup, Interest::WRITABLE) }
                .map_err(|e| SendError::Io(e.into()))?;
            *self.writable = Some(afd);
        }
        let Some(afd) = self.writable.as_ref() else {
            return Err(SendError::Io(io::Error::other("socket not registered")));
        };
        let wait = async {
            loop {
                let mut guard = afd.writable().await.map_err(SendError::Io)?;
                let result = guard.try_io(|_| loop {
                    match op(fd) {
                        Err(Errno::EINTR) => continue,
                        r => break r.map_err(io::Error::from),
                    }
                });
                match result {
                    Ok(r) => return r.map_err(SendError::Io),
                    Err(_would_block) => continue,
                }
            }
        };
        tokio::time::timeout(self.send_timeout, wait).await.unwrap_or(Err(SendError::TimedOut))
    }

    /// Sends `len` bytes of `file` from `offset`: with sendfile(2) on a plain socket
    /// when `zero_copy`, else read and written in chunks.
    async fn send_file(
        &mut self,
        file: &File,
        offset: u64,
        len: u64,
        zero_copy: bool,
    ) -> Result<(), SendError> {
        let short =
            || SendError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "file truncated while sending"));
        match self.fd.filter(|_| zero_copy) {
            Some(fd) => {
                let mut off = i64::try_from(offset)
                    .map_err(|_| SendError::Io(io::Error::other("file offset too large")))?;
                let end = off.saturating_add(i64::try_from(len).unwrap_or(i64::MAX));
                while off < end {
                    let count = usize::try_from(end - off).unwrap_or(SENDFILE_CHUNK).min(SENDFILE_CHUNK);
                    let n = self
                        .raw(fd, |fd| {
                            // SAFETY: fd stays open for the duration of the call
                            let sock = unsafe { BorrowedFd::borrow_raw(fd) };
                            nix::sys::sendfile::sendfile(sock, file, Some(&mut off), count)
                        })
                        .await?;
                    if n == 0 {
                        // the file shrank under us: the promised length can no longer be sent
                        return Err(short());
                    }
                    self.sent += n as u64;
                    // a big file must not starve the other connections on this worker
                    tokio::task::consume_budget().await;
                }
                Ok(())
            }
            None => {
                let mut buf = take_body_buffer();
                buf.resize(COPY_CHUNK, 0);
                let mut pos = offset;
                let end = offset.saturating_add(len);
                let result = async {
                    while pos < end {
                        let want = usize::try_from(end - pos).unwrap_or(COPY_CHUNK).min(COPY_CHUNK);
                        let n = file.read_at(&mut buf[..want], pos).map_err(SendError::Io)?;
                        if n == 0 {
                            return Err(short());
                        }
                        self.write_all(&buf[..n], pos + (n as u64) < end).await?;
                        pos += n as u64;
                    }
                    Ok(())
                }
                .await;
                give_body_buffer(buf);
                result
            }
        }
    }
}

/// One request's body and response: what the server's request steps talk to.
pub struct Exchange<'c> {
    io: Io<'c>,
    /// What came after the head in the head buffer (body, maybe a pipelined request).
    leftover: &'c [u8],
    pos: usize,
    body: BodyDecoder,
    /// Where the body is read once `leftover` is used up.
    body_buf: Option<Vec<u8>>,
    body_pos: usize,
    body_timeout: Duration,
    /// Body bytes as they came on the wire (framing included), for `$request_length`.
    body_read: u64,
    /// The client waits for `100 Continue` before it sends the body.
    continue_wanted: bool,
    /// A reusable buffer for response heads.
    pub out: &'c mut Vec<u8>,
    /// The response broke off: the connection must be closed, not reused.
    pub broken: bool,
}

impl Exchange<'_> {
    /// The chosen server's `send_timeout` and `client_body_timeout` (the connection's
    /// defaults apply until the Host is known).
    pub fn set_timeouts(&mut self, send: Duration, body: Duration) {
        self.io.send_timeout = send;
        self.body_timeout = body;
    }

    /// Sends `100 Continue` now if the client waits for it (reading the body does it
    /// too; call this first where a read may be cancelled).
    pub async fn send_continue(&mut self) -> Result<(), SendError> {
        if !self.continue_wanted {
            return Ok(());
        }
        self.continue_wanted = false;
        if let Err(e) = self.io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n", false).await {
            // a half-written 100 leaves nothing else to say on this connection
            self.broken = true;
            return Err(e);
        }
        // the 100 is not part of the response's `$bytes_sent`
        self.io.sent = 0;
        Ok(())
    }

    /// Whether body bytes remain unread.
    pub fn body_pending(&self) -> bool {
        !self.body.is_done()
    }

    /// Whether the client still waits for `100 Continue`.
    pub fn awaits_continue(&self) -> bool {
        self.continue_wanted
    }

    /// Body bytes read so far, framing included.
    pub fn body_bytes_read(&self) -> u64 {
        self.body_read
    }

    /// Bytes written to the client so far.
    pub fn bytes_sent(&self) -> u64 {
        self.io.sent
    }

    /// Whether the response can go out with sendfile.
    pub fn has_raw_socket(&self) -> bool {
        self.io.fd.is_some()
    }

    /// The next piece of the body (`Ok(None)` at its end), with `100 Continue` sent first
    /// if the client waits for it. The slice is valid until the next call.
    pub async fn read_body(&mut self) -> Result<Option<&[u8]>, BodyError> {
        if self.body.is_done() {
            return Ok(None);
        }
        self.send_continue().await.map_err(|e| match e {
            SendError::Io(e) => BodyError::Closed(Some(e)),
            SendError::TimedOut => BodyError::TimedOut,
        })?;
        loop {
            // first what came with the head
            if self.body_buf.is_none() && self.pos < self.leftover.len() {
                let input = &self.leftover[self.pos..];
                let step = self.body.step(input).map_err(BodyError::Framing)?;
                self.pos += step.consumed;
                self.body_read += step.consumed as u64;
                if !step.data.is_empty() {
                    return Ok(Some(&input[step.data]));
                }
                if self.body.is_done() {
                    return Ok(None);
                }
                continue;
            }
            let buf = self.body_buf.get_or_insert_with(take_body_buffer);
            if self.body_pos < buf.len() {
                let step = self.body.step(&buf[self.body_pos..]).map_err(BodyError::Framing)?;
                let start = self.body_pos;
                self.body_pos += step.consumed;
                self.body_read += step.consumed as u64;
                if !step.data.is_empty() {
                    let buf = self.body_buf.as_ref().map_or(&[][..], Vec::as_slice);
                    return Ok(Some(&buf[start + step.data.start..start + step.data.end]));
                }
                if self.body.is_done() {
                    return Ok(None);
                }
                continue;
            }
            buf.clear();
            self.body_pos = 0;
            let until = crate::clock::deadline(Instant::now(), self.body_timeout);
            match timeout_at(until, read_into(&mut *self.io.stream, buf)).await {
                Ok(Ok(0)) => return Err(BodyError::Closed(None)),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(BodyError::Closed(Some(e))),
                Err(_) => return Err(BodyError::TimedOut),
            }
        }
    }

    /// Reads and drops what of the body already arrived with the head, without
    /// waiting: a framing error found here can still be answered with 400.
    pub fn discard_buffered(&mut self) -> Result<(), ChunkError> {
        while self.body_buf.is_none() && self.pos < self.leftover.len() && !self.body.is_done() {
            let step = self.body.step(&self.leftover[self.pos..])?;
            self.pos += step.consumed;
            self.body_read += step.consumed as u64;
        }
        Ok(())
    }

    /// Reads and drops the rest of the body, as nginx does after answering a request
    /// whose body nobody wanted: each read may wait `lingering_timeout`, all of them
    /// `lingering_time`. `false`: it was not read to its end (close the connection).
    pub async fn discard_body(&mut self) -> bool {
        if self.body.is_done() {
            return true;
        }
        // the client is not asked for the body: it sends it anyway, or not at all
        self.continue_wanted = false;
        let per_read = std::mem::replace(&mut self.body_timeout, LINGERING_TIMEOUT);
        let until = Instant::now() + LINGERING_TIME;
        let done = loop {
            match timeout_at(until, self.read_body()).await {
                Ok(Ok(Some(_))) => {}
                Ok(Ok(None)) => break true,
                _ => break false,
            }
        };
        self.body_timeout = per_read;
        done
    }

    /// Writes response bytes; `more`: further bytes follow at once (hold a short write
    /// back, as nginx's `tcp_nopush`).
    pub async fn write_all(&mut self, data: &[u8], more: bool) -> Result<(), SendError> {
        let r = self.io.write_all(data, more).await;
        self.broken |= r.is_err();
        r
    }

    /// Writes `self.out` (a head encoded there) and clears it.
    pub async fn write_out(&mut self, more: bool) -> Result<(), SendError> {
        let out = std::mem::take(self.out);
        let r = self.write_all(&out, more).await;
        *self.out = out;
        self.out.clear();
        r
    }

    /// Sends a range of a file (with sendfile when `zero_copy` and the stream is a plain
    /// socket).
    pub async fn send_file(
        &mut self,
        file: &File,
        offset: u64,
        len: u64,
        zero_copy: bool,
    ) -> Result<(), SendError> {
        let r = self.io.send_file(file, offset, len, zero_copy).await;
        self.broken |= r.is_err();
        r
    }

    /// Ends the exchange: where the bytes after the body are, if the body was read to
    /// its end (`None`: it was not, and the connection cannot carry another request).
    pub fn into_after(self) -> Option<AfterBody> {
        if !self.body.is_done() || self.broken {
            if let Some(b) = self.body_buf {
                give_body_buffer(b);
            }
            return None;
        }
        Some(match self.body_buf {
            Some(b) => {
                let range = self.body_pos..b.len();
                AfterBody::InBodyBuffer(b, range)
            }
            None => AfterBody::InHeadBuffer(self.pos, self.leftover.len().saturating_sub(self.pos)),
        })
    }
}
