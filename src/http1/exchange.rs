//! One request's exchange with the client: its body in (Content-Length or chunked, with
//! `100 Continue` and `client_body_timeout`), what is left of it discarded after the
//! answer as nginx does, and the response out through the connection's writer.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::time::Duration;

use tokio::time::{timeout_at, Instant};

use crate::errno::describe;

use super::body::BodyDecoder;
use super::chunked::ChunkError;
use super::connection::{give_body_buffer, read_into, take_body_buffer, LINGERING_TIME, LINGERING_TIMEOUT};
use super::request_head::{BodyFraming, RequestHead, Version};
use super::send::Io;

/// Where the bytes after a request's body are, for [`super::connection::Connection::finish`].
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
    /// The file being sent became shorter than the length already announced: the
    /// response is cut there and the connection closed.
    FileTruncated {
        path: String,
        at: u64,
    },
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
            // nginx's words, at its level (alert)
            SendError::FileTruncated { path, at } => {
                write!(f, "sendfile() reported that \"{path}\" was truncated at {at}")
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

impl<'c> Exchange<'c> {
    pub(super) fn new(
        io: Io<'c>,
        head: &RequestHead,
        leftover: &'c [u8],
        body_timeout: Duration,
        out: &'c mut Vec<u8>,
    ) -> Exchange<'c> {
        Exchange {
            io,
            leftover,
            pos: 0,
            body: BodyDecoder::new(head.body),
            body_buf: None,
            body_pos: 0,
            body_timeout,
            body_read: 0,
            // nginx answers `Expect: 100-continue` from HTTP/1.1 (and HTTP/2) clients only
            continue_wanted: head.expect_continue
                && head.body != BodyFraming::None
                && head.version != Version::Http10,
            out,
            broken: false,
        }
    }

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
            // (a `100 Continue` sends no file)
            SendError::FileTruncated { .. } => BodyError::Closed(None),
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
        range: Range<u64>,
        zero_copy: bool,
    ) -> Result<(), SendError> {
        let r = self.io.send_file(file, range, zero_copy).await;
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
