//! The connection shell: reads request heads, hands each parsed request and an
//! [`Exchange`] (its body in, its response out; `exchange.rs`, writes in `send.rs`) to
//! the server, and keeps the connection's rules — keep-alive, pipelining, the header
//! deadline, lingering close.
//!
//! Memory: an idle connection holds no buffer. The head buffer is taken from a
//! per-thread pool only when bytes arrive (the read is polled with a pooled buffer that
//! goes straight back if nothing is there), and returned once the request is done and
//! no pipelined bytes remain, as nginx frees its request buffers between requests.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{timeout_at, Instant};

use super::exchange::{AfterBody, Exchange};
use super::request_head::{parse_head, HeadError, HeadLimits, HeaderSpan, Request, RequestHead};
use super::send::Io;

/// A byte stream a connection runs on (a TCP or Unix socket, later TLS).
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Transport for T {}

/// Size of a fresh head buffer: what nearly every request head fits in.
const HEAD_BUFFER: usize = 4 << 10;
/// Size of the buffer a request body is read into once the bytes that came with the
/// head are used up (nginx's `client_body_buffer_size` default).
pub(super) const BODY_BUFFER: usize = 16 << 10;
/// Buffers kept per thread for reuse; beyond that they are freed.
const POOLED: usize = 256;
/// nginx's `lingering_time` and `lingering_timeout`.
pub(super) const LINGERING_TIME: Duration = Duration::from_secs(30);
pub(super) const LINGERING_TIMEOUT: Duration = Duration::from_secs(5);

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

pub(super) fn take_body_buffer() -> Vec<u8> {
    crate::buffer_pool::take(BODY_BUFFER)
}

pub(super) fn give_body_buffer(b: Vec<u8>) {
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
        let io = Io::new(&mut self.stream, self.fd, &mut self.writable, send_timeout);
        let leftover = read.get(head.len..).unwrap_or(&[]);
        (request, Exchange::new(io, head, leftover, body_timeout, &mut bufs.out))
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
        let mut io = Io::new(&mut self.stream, self.fd, &mut self.writable, send_timeout);
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
pub(super) async fn read_into<S: AsyncRead + Unpin + ?Sized>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> io::Result<usize> {
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
