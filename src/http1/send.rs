//! Writing a response to the client: `send(MSG_MORE)` and sendfile(2) on a plain socket,
//! waiting for writability on a `dup` of it registered only when a write would block;
//! the stream's own buffered path otherwise (TLS later). Every write is under
//! `send_timeout`, and `$bytes_sent` is counted here.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::time::Duration;

use nix::errno::Errno;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncWriteExt, Interest};

use super::connection::{give_body_buffer, take_body_buffer, Transport};
use super::exchange::SendError;

/// Largest single sendfile(2) call; bounds how long one call can hold the worker.
const SENDFILE_CHUNK: usize = 2 << 20;
/// Bytes read from a file at a time on the buffered path (`sendfile off`, no raw socket).
const COPY_CHUNK: usize = 64 << 10;
/// The most a buffered write holds back for the bytes that follow it at once: a TLS
/// record's payload, so a head and a small body go out as one record and one send.
const HOLD: usize = 16 << 10;

/// The writing half: the stream, and the raw socket when there is one.
pub(super) struct Io<'c> {
    pub(super) stream: &'c mut dyn Transport,
    pub(super) fd: Option<RawFd>,
    pub(super) writable: &'c mut Option<AsyncFd<OwnedFd>>,
    pub(super) send_timeout: Duration,
    pub(super) sent: u64,
    /// Bytes of the buffered path waiting for those that follow at once.
    held: Vec<u8>,
}

impl<'c> Io<'c> {
    pub(super) fn new(
        stream: &'c mut dyn Transport,
        fd: Option<RawFd>,
        writable: &'c mut Option<AsyncFd<OwnedFd>>,
        send_timeout: Duration,
    ) -> Io<'c> {
        Io { stream, fd, writable, send_timeout, sent: 0, held: Vec::new() }
    }

    pub(super) async fn write_all(&mut self, data: &[u8], more: bool) -> Result<(), SendError> {
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
            // the stream's own writes (TLS): each one is a record and a send, so what more
            // bytes follow at once (a head before its body) waits for them, as MSG_MORE
            None if more && self.held.len() + data.len() <= HOLD => {
                self.held.extend_from_slice(data);
                Ok(())
            }
            None if self.held.is_empty() => self.write_stream(data, more).await,
            None => {
                let mut held = std::mem::take(&mut self.held);
                let n = data.len().min(HOLD.saturating_sub(held.len()));
                held.extend_from_slice(&data[..n]);
                let rest = &data[n..];
                let r = self.write_stream(&held, more || !rest.is_empty()).await;
                held.clear();
                self.held = held;
                r?;
                if rest.is_empty() {
                    Ok(())
                } else {
                    self.write_stream(rest, more).await
                }
            }
        }
    }

    /// Writes through the stream (flushed unless `more`), under `send_timeout`.
    async fn write_stream(&mut self, data: &[u8], more: bool) -> Result<(), SendError> {
        let stream = &mut *self.stream;
        let write = async {
            stream.write_all(data).await?;
            if !more {
                stream.flush().await?;
            }
            Ok::<(), io::Error>(())
        };
        match tokio::time::timeout(self.send_timeout, write).await {
            Ok(Ok(())) => {
                self.sent += data.len() as u64;
                Ok(())
            }
            Ok(Err(e)) => Err(SendError::Io(e)),
            Err(_) => Err(SendError::TimedOut),
        }
    }

    /// Runs a raw socket call until it makes progress, waiting (up to `send_timeout`)
    /// while it would block.
    pub(super) async fn raw(
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
    pub(super) async fn send_file(
        &mut self,
        file: &File,
        range: Range<u64>,
        zero_copy: bool,
    ) -> Result<(), SendError> {
        let Range { start: offset, end: range_end } = range;
        // the file shrank under us: the promised length can no longer be sent
        let short = |at: u64| SendError::FileTruncated { path: path_of(file), at };
        match self.fd.filter(|_| zero_copy) {
            Some(fd) => {
                let mut off = i64::try_from(offset)
                    .map_err(|_| SendError::Io(io::Error::other("file offset too large")))?;
                let end = i64::try_from(range_end).unwrap_or(i64::MAX);
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
                        return Err(short(u64::try_from(off).unwrap_or(0)));
                    }
                    self.sent += n as u64;
                    // a big file must not starve the other connections on this worker
                    tokio::task::consume_budget().await;
                }
                Ok(())
            }
            None => {
                let mut buf = take_body_buffer();
                // (zeroed only as far as this range needs: a small file is most of them)
                let len = usize::try_from(range_end.saturating_sub(offset)).unwrap_or(COPY_CHUNK);
                buf.resize(COPY_CHUNK.min(len), 0);
                let mut pos = offset;
                let end = range_end;
                let result = async {
                    while pos < end {
                        let want = usize::try_from(end - pos).unwrap_or(COPY_CHUNK).min(COPY_CHUNK);
                        let n = file.read_at(&mut buf[..want], pos).map_err(SendError::Io)?;
                        if n == 0 {
                            return Err(short(pos));
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

/// The path an open file was opened by, for the error log (only when something went
/// wrong: the reply carries no path, so a file hit costs no allocation for it).
fn path_of(file: &File) -> String {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_or_else(|_| "(unknown)".into(), |p| p.display().to_string())
}
