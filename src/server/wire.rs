//! Sending a [`Reply`] to the client: straight on the connection's socket when there is
//! one (the head with `send(MSG_MORE)`, file ranges with `sendfile(2)`, zero-copy), or
//! through pingora's buffered writer when the stream has no raw fd.
//!
//! The raw path never mixes with pingora's writes within one response, so pingora's own
//! write buffer stays empty; `session.finish()` afterwards still decides keep-alive.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use nix::errno::Errno;
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_http::ResponseHeader;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::response::{Body, Head, Part, Reply};

/// Largest single sendfile(2) call; bounds how long one call can hold the worker.
const SENDFILE_CHUNK: usize = 2 << 20;

/// What went out, for the access log.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sent {
    pub head_bytes: u64,
    pub body_bytes: u64,
}

/// Why sending stopped early.
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
            SendError::Io(e) => write!(
                f,
                "sendfile() or send() failed ({}: {e}) while sending response to client",
                e.raw_os_error().unwrap_or(0)
            ),
        }
    }
}

/// The raw fd of a plain TCP/Unix connection, if the session has one.
pub fn raw_fd(session: &ServerSession) -> Option<RawFd> {
    session.stream().and_then(|s| s.as_any().downcast_ref::<L4Stream>()).map(|s| s.as_raw_fd())
}

/// Sends `reply` (only the head when `head_only`); `date` is the `Date` value.
pub async fn send_reply(
    session: &mut ServerSession,
    reply: &Reply,
    head_only: bool,
    keepalive: bool,
    send_timeout: Duration,
    date: &[u8],
) -> Result<Sent, SendError> {
    match raw_fd(session) {
        Some(fd) => {
            let mut w = SocketWriter::new(fd, send_timeout);
            send_raw(&mut w, reply, head_only, keepalive, date).await
        }
        None => send_buffered(session, reply, head_only).await,
    }
}

async fn send_raw(
    w: &mut SocketWriter,
    reply: &Reply,
    head_only: bool,
    keepalive: bool,
    date: &[u8],
) -> Result<Sent, SendError> {
    let mut head = BytesMut::with_capacity(320);
    reply.head.encode(date, keepalive, &mut head);
    let mut sent = Sent { head_bytes: head.len() as u64, body_bytes: 0 };
    if head_only {
        w.send_all(&head, false).await?;
        return Ok(sent);
    }
    match &reply.body {
        Body::Empty => w.send_all(&head, false).await?,
        Body::Bytes(b) => {
            head.extend_from_slice(b);
            w.send_all(&head, false).await?;
            sent.body_bytes = b.len() as u64;
        }
        Body::File { file, parts } => {
            w.send_all(&head, !parts.is_empty()).await?;
            for (i, part) in parts.iter().enumerate() {
                let more = i + 1 < parts.len();
                match part {
                    Part::Bytes(b) => {
                        w.send_all(b, more).await?;
                        sent.body_bytes += b.len() as u64;
                    }
                    Part::File { offset, len } => {
                        w.send_file(file, *offset, *len, &mut sent.body_bytes).await?;
                    }
                }
            }
        }
    }
    Ok(sent)
}

/// Writes on a raw socket fd owned by pingora's stream, waiting for writability through
/// a `dup` registered with tokio (the original fd is registered already; registering it
/// twice fails with EEXIST).
struct SocketWriter {
    fd: RawFd,
    ready: Option<AsyncFd<OwnedFd>>,
    timeout: Duration,
}

impl SocketWriter {
    fn new(fd: RawFd, timeout: Duration) -> SocketWriter {
        SocketWriter { fd, ready: None, timeout }
    }

    /// Runs `op` until it makes progress, waiting (up to the timeout) while it would block.
    async fn io(&mut self, mut op: impl FnMut(RawFd) -> nix::Result<usize>) -> Result<usize, SendError> {
        loop {
            match op(self.fd) {
                Ok(n) => return Ok(n),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => break,
                Err(e) => return Err(SendError::Io(e.into())),
            }
        }
        if self.ready.is_none() {
            // SAFETY: `fd` is pingora's open socket for the whole response; dup gives us
            // our own descriptor to register, closed when the writer drops.
            let dup = nix::unistd::dup(unsafe { BorrowedFd::borrow_raw(self.fd) })
                .map_err(|e| SendError::Io(e.into()))?;
            // SAFETY: `dup` is an open fd we own; the AsyncFd owns it until it drops
            let afd = unsafe { AsyncFd::register_with_interest(dup, Interest::WRITABLE) }
                .map_err(|e| SendError::Io(e.into()))?;
            self.ready = Some(afd);
        }
        let fd = self.fd;
        let timeout = self.timeout;
        let Some(afd) = self.ready.as_ref() else {
            return Err(SendError::Io(io::Error::other("writer not registered")));
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
        tokio::time::timeout(timeout, wait).await.unwrap_or(Err(SendError::TimedOut))
    }

    async fn send_all(&mut self, mut buf: &[u8], more: bool) -> Result<(), SendError> {
        // MSG_MORE holds a short head back until the body follows (nginx's tcp_nopush)
        let flags = nix::libc::MSG_NOSIGNAL | if more { nix::libc::MSG_MORE } else { 0 };
        while !buf.is_empty() {
            let n = self
                .io(|fd| {
                    // SAFETY: buf is a valid slice for the duration of the call
                    let n = unsafe { nix::libc::send(fd, buf.as_ptr().cast(), buf.len(), flags) };
                    Errno::result(n).map(|n| n as usize)
                })
                .await?;
            buf = &buf[n..];
        }
        Ok(())
    }

    async fn send_file(
        &mut self,
        file: &File,
        offset: u64,
        len: u64,
        counter: &mut u64,
    ) -> Result<(), SendError> {
        let mut off =
            i64::try_from(offset).map_err(|_| SendError::Io(io::Error::other("file offset too large")))?;
        let end = off.saturating_add(i64::try_from(len).unwrap_or(i64::MAX));
        while off < end {
            let count = usize::try_from(end - off).unwrap_or(SENDFILE_CHUNK).min(SENDFILE_CHUNK);
            let n = self
                .io(|fd| {
                    // SAFETY: fd stays open for the duration of the call (see `io`)
                    let sock = unsafe { BorrowedFd::borrow_raw(fd) };
                    nix::sys::sendfile::sendfile(sock, file, Some(&mut off), count)
                })
                .await?;
            if n == 0 {
                // the file shrank under us: the promised length can no longer be sent
                return Err(SendError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file truncated while sending",
                )));
            }
            *counter += n as u64;
            // a big file must not starve the other connections on this worker
            tokio::task::consume_budget().await;
        }
        Ok(())
    }
}

/// The fallback for streams without a raw fd: pingora's writer, file read in chunks.
async fn send_buffered(
    session: &mut ServerSession,
    reply: &Reply,
    head_only: bool,
) -> Result<Sent, SendError> {
    let header = to_pingora_head(&reply.head).map_err(|e| SendError::Io(io::Error::other(e.to_string())))?;
    let io_err = |e: Box<pingora_core::Error>| SendError::Io(io::Error::other(e.to_string()));
    session.write_response_header(Box::new(header)).await.map_err(io_err)?;
    let mut sent = Sent::default();
    if !head_only {
        match &reply.body {
            Body::Empty => {}
            Body::Bytes(b) => {
                session.write_response_body(b.clone(), true).await.map_err(io_err)?;
                sent.body_bytes = b.len() as u64;
            }
            Body::File { file, parts } => {
                for part in parts {
                    match part {
                        Part::Bytes(b) => {
                            session.write_response_body(b.clone(), false).await.map_err(io_err)?;
                            sent.body_bytes += b.len() as u64;
                        }
                        Part::File { offset, len } => {
                            let mut pos = *offset;
                            let end = offset + len;
                            while pos < end {
                                let want = usize::try_from(end - pos).unwrap_or(usize::MAX).min(64 << 10);
                                let mut buf = vec![0; want];
                                let n = file.read_at(&mut buf, pos).map_err(SendError::Io)?;
                                if n == 0 {
                                    return Err(SendError::Io(io::ErrorKind::UnexpectedEof.into()));
                                }
                                buf.truncate(n);
                                session.write_response_body(Bytes::from(buf), false).await.map_err(io_err)?;
                                pos += n as u64;
                                sent.body_bytes += n as u64;
                            }
                        }
                    }
                }
            }
        }
    }
    session.finish_body().await.map_err(io_err)?;
    Ok(sent)
}

fn to_pingora_head(head: &Head) -> pingora_core::Result<ResponseHeader> {
    let mut h = ResponseHeader::build(head.status, Some(12))?;
    h.insert_header("Server", crate::response::SERVER_NAME)?;
    if let Some(ct) = &head.content_type {
        h.insert_header("Content-Type", ct.as_ref())?;
    }
    if let Some(len) = head.content_length {
        h.insert_header("Content-Length", len)?;
    }
    if let Some(mtime) = head.last_modified {
        h.insert_header("Last-Modified", crate::response::http_date(mtime).to_string())?;
    }
    if let Some(loc) = &head.location {
        h.insert_header("Location", loc.as_str())?;
    }
    for (name, value) in head.extra_headers() {
        h.append_header(name.to_string(), value)?;
    }
    Ok(h)
}

/// Writes a minimal response on a session whose request could not be parsed (pingora
/// has no request header then, so its writer cannot be used).
pub async fn send_raw_error(session: &ServerSession, status: u16, send_timeout: Duration, date: &[u8]) {
    if let Some(fd) = raw_fd(session) {
        let reply = Reply::error(status);
        let mut w = SocketWriter::new(fd, send_timeout);
        let _ = send_raw(&mut w, &reply, false, false, date).await;
    }
}
