//! One HTTP/2 stream as the byte stream the HTTP/1.1 connection shell runs on: reading
//! gives the request's head (`request_head`) and then its body from the DATA frames
//! (chunked when its length is unknown); writing takes the HTTP/1.1 response the
//! request steps produce and sends it as HEADERS and DATA (`response_reader`), within
//! the stream's flow-control window. So the steps, the static files, uWSGI, compression
//! and the logs are the same code for both protocols.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::request_head::{write_head, Malformed};
use super::response_reader::{Event, ResponseReader};

pub struct Http2Stream {
    head: Vec<u8>,
    head_pos: usize,
    /// The request body still to come (`None`: there is none, or it ended).
    body: Option<RecvStream>,
    chunked: bool,
    /// Body bytes (framed) waiting to be read.
    inbound: Vec<u8>,
    inbound_pos: usize,
    respond: Option<SendResponse<Bytes>>,
    send: Option<SendStream<Bytes>>,
    reader: ResponseReader,
    /// Response data taken from a write, waiting for window.
    outbound: Bytes,
    /// END_STREAM goes with the end of `outbound`.
    end_after: bool,
    /// The stream is ended (END_STREAM sent or reset).
    ended: bool,
    /// Shut down: reading gives the end at once.
    shut: bool,
}

fn h2_error(e: h2::Error) -> io::Error {
    if let (true, Some(reason)) = (e.is_remote(), e.reason()) {
        return io::Error::new(
            io::ErrorKind::ConnectionReset,
            format!("client reset the stream ({reason:?})"),
        );
    }
    if e.is_io() {
        return e.into_io().unwrap_or_else(|| io::Error::other("HTTP/2 connection error"));
    }
    io::Error::new(io::ErrorKind::BrokenPipe, e)
}

impl Http2Stream {
    /// The stream of an accepted request; a malformed one is reset here (PROTOCOL_ERROR).
    pub fn new(
        request: http::Request<RecvStream>,
        mut respond: SendResponse<Bytes>,
    ) -> Result<Http2Stream, Malformed> {
        let (parts, body) = request.into_parts();
        let has_body = !body.is_end_stream();
        let head = match write_head(&parts, has_body) {
            Ok(h) => h,
            Err(e) => {
                respond.send_reset(Reason::PROTOCOL_ERROR);
                return Err(e);
            }
        };
        Ok(Http2Stream {
            head: head.bytes,
            head_pos: 0,
            body: has_body.then_some(body),
            chunked: head.chunked,
            inbound: Vec::new(),
            inbound_pos: 0,
            respond: Some(respond),
            send: None,
            reader: ResponseReader::new(parts.method == http::Method::HEAD),
            outbound: Bytes::new(),
            end_after: false,
            ended: false,
            shut: false,
        })
    }

    /// The client's RST_STREAM, if it sent one: why a send failed.
    fn reset_by_client(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        let reset = match (self.send.as_mut(), self.respond.as_mut()) {
            (Some(send), _) => send.poll_reset(cx),
            (None, Some(respond)) => respond.poll_reset(cx),
            (None, None) => return None,
        };
        match reset {
            Poll::Ready(Ok(reason)) => Some(io::Error::new(
                io::ErrorKind::ConnectionReset,
                format!("client reset the stream ({reason:?})"),
            )),
            _ => None,
        }
    }

    /// Sends what waits in `outbound` as the window allows, then END_STREAM if due.
    fn poll_send_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.outbound.is_empty() {
            let Some(send) = self.send.as_mut() else {
                self.outbound = Bytes::new();
                break;
            };
            send.reserve_capacity(self.outbound.len());
            match ready!(send.poll_capacity(cx)) {
                Some(Ok(n)) => {
                    let chunk = self.outbound.split_to(n.min(self.outbound.len()));
                    let last = self.outbound.is_empty() && self.end_after;
                    send.send_data(chunk, last).map_err(h2_error)?;
                    if last {
                        (self.ended, self.end_after) = (true, false);
                    }
                }
                Some(Err(e)) => return Poll::Ready(Err(h2_error(e))),
                None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
        }
        if self.end_after {
            if let Some(send) = self.send.as_mut() {
                send.send_data(Bytes::new(), true).map_err(h2_error)?;
            }
            (self.ended, self.end_after) = (true, false);
        }
        Poll::Ready(Ok(()))
    }

    /// Ends the stream however the response stands: complete, a body that runs to the
    /// end, or cut short (reset, as a closed HTTP/1.1 connection would tell).
    fn finish(&mut self) {
        // (a whole answer is left alone even when the client is still sending a body no
        // one reads: a RST_STREAM now would drop response frames still queued in h2, and
        // h2 drops the DATA of a stream nobody holds)
        if self.ended {
            return;
        }
        self.ended = true;
        match (self.send.as_mut(), self.respond.as_mut()) {
            (Some(send), _) if self.reader.ends_with_stream() && self.outbound.is_empty() => {
                let _ = send.send_data(Bytes::new(), true);
            }
            (Some(send), _) => send.send_reset(Reason::INTERNAL_ERROR),
            (None, Some(respond)) => respond.send_reset(Reason::INTERNAL_ERROR),
            (None, None) => {}
        }
    }
}

impl AsyncRead for Http2Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.head_pos < this.head.len() {
            let n = (this.head.len() - this.head_pos).min(buf.remaining());
            buf.put_slice(&this.head[this.head_pos..this.head_pos + n]);
            this.head_pos += n;
            return Poll::Ready(Ok(()));
        }
        loop {
            if this.inbound_pos < this.inbound.len() {
                let n = (this.inbound.len() - this.inbound_pos).min(buf.remaining());
                buf.put_slice(&this.inbound[this.inbound_pos..this.inbound_pos + n]);
                this.inbound_pos += n;
                return Poll::Ready(Ok(()));
            }
            let Some(body) = this.body.as_mut().filter(|_| !this.shut) else {
                return Poll::Ready(Ok(()));
            };
            this.inbound.clear();
            this.inbound_pos = 0;
            match ready!(body.poll_data(cx)) {
                Some(Ok(data)) => {
                    // the window reopens as the data is taken: at most a frame waits here
                    let _ = body.flow_control().release_capacity(data.len());
                    if data.is_empty() {
                        continue;
                    }
                    if this.chunked {
                        this.inbound.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                        this.inbound.extend_from_slice(&data);
                        this.inbound.extend_from_slice(b"\r\n");
                    } else {
                        this.inbound.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => return Poll::Ready(Err(h2_error(e))),
                None => {
                    this.body = None;
                    if this.chunked {
                        this.inbound.extend_from_slice(b"0\r\n\r\n");
                    }
                }
            }
        }
    }
}

impl AsyncWrite for Http2Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.poll_write_response(cx, data) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(this.reset_by_client(cx).unwrap_or(e))),
            other => other,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_send_pending(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(this.reset_by_client(cx).unwrap_or(e))),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_pending(cx))?;
        this.finish();
        this.shut = true;
        Poll::Ready(Ok(()))
    }
}

impl Http2Stream {
    /// Takes response bytes: the head to HEADERS, the body to DATA as the window allows.
    fn poll_write_response(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self;
        ready!(this.poll_send_pending(cx))?;
        let mut used = 0;
        while used < data.len() {
            let input = &data[used..];
            let (n, event) =
                this.reader.feed(input).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.0))?;
            used += n;
            match event {
                Event::Nothing if n == 0 => break,
                Event::Nothing => {}
                Event::Informational(r) => {
                    if let Some(respond) = this.respond.as_mut() {
                        respond.send_informational(r).map_err(h2_error)?;
                    }
                }
                Event::Head { head, body } => {
                    let Some(respond) = this.respond.as_mut() else {
                        return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
                    };
                    this.send = Some(respond.send_response(head, !body).map_err(h2_error)?);
                    this.respond = None;
                    this.ended = !body;
                }
                Event::Data(range) => {
                    this.outbound = Bytes::copy_from_slice(&input[range]);
                    this.end_after = this.reader.is_done();
                    // sent as far as the window allows now; the next write or flush waits
                    // for the rest
                    if let Poll::Ready(Err(e)) = this.poll_send_pending(cx) {
                        return Poll::Ready(Err(e));
                    }
                    break;
                }
                Event::End => {
                    this.end_after = true;
                    if let Poll::Ready(Err(e)) = this.poll_send_pending(cx) {
                        return Poll::Ready(Err(e));
                    }
                }
            }
        }
        Poll::Ready(Ok(used))
    }
}

impl Drop for Http2Stream {
    fn drop(&mut self) {
        self.finish();
    }
}
