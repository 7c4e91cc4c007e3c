//! Answers Portico makes itself (files, errors, redirects): an unread request body read
//! and dropped first so the connection can be reused, the head from the connection's
//! reused buffer (with `MSG_MORE` when a body follows), file ranges with sendfile(2) where
//! the stream is a plain socket and the location has `sendfile` on (else read and
//! written), then the request's logs.

use std::os::unix::fs::FileExt;

use crate::compression::encoder::EncodeError;
use crate::compression::Encoder;
use crate::http1::exchange::{Exchange, SendError};
use crate::http1::response_head::{chunk_start, CHUNK_END, LAST_CHUNK};
use crate::log::{Level, Note};
use crate::reply::{closes_connection, Body, Part, Parts, Reply};
use crate::return_directive::CLOSE_WITHOUT_ANSWER;

use super::app::{Done, SiteRuntime};
use super::request_state::{RequestInfo, ResponseInfo, UpstreamFields};

/// What the answer depends on besides the reply itself.
pub(super) struct Answer<'a, 'r> {
    pub rt: &'a SiteRuntime,
    pub info: &'a RequestInfo<'r>,
    /// A HEAD request: the head only.
    pub head_only: bool,
    /// The connection may carry another request, as far as the request goes.
    pub keep_alive: bool,
}

impl super::app::Runtime {
    /// Sends a reply Portico made itself, then writes the logs.
    pub(super) async fn respond(
        &self,
        ex: &mut Exchange<'_>,
        answer: &Answer<'_, '_>,
        reply: Reply,
        sendfile: bool,
        notes: Vec<Note>,
        upstream: UpstreamFields,
    ) -> Done {
        self.respond_coded(ex, answer, (reply, None), sendfile, notes, upstream).await
    }

    /// [`Runtime::respond`] with the body compressed on the way when an encoder comes
    /// with the reply (its head already says so: `compress_reply::prepare`).
    pub(super) async fn respond_coded(
        &self,
        ex: &mut Exchange<'_>,
        answer: &Answer<'_, '_>,
        (reply, encoder): (Reply, Option<Encoder>),
        sendfile: bool,
        mut notes: Vec<Note>,
        upstream: UpstreamFields,
    ) -> Done {
        if reply.head.status == CLOSE_WITHOUT_ANSWER {
            // `return 444`: nothing is sent, the connection closes (logged with 444, as nginx)
            let response = ResponseInfo { status: reply.head.status, ..ResponseInfo::default() };
            super::request_log::log_request(answer.rt, answer.info, &notes, &response, ex.body_bytes_read());
            return Done { keep_alive: false, linger: false };
        }
        let mut reply = reply;
        let mut encoder = encoder;
        // a coded body without chunks ends with the connection (an HTTP/1.0 client)
        let close_delimited = encoder.is_some() && !reply.head.chunked;
        let mut keep_alive = answer.keep_alive && !closes_connection(reply.head.status) && !close_delimited;
        if keep_alive && ex.body_pending() {
            // what came with the head is read now: bad framing there is still a 400
            if let Err(e) = ex.discard_buffered() {
                notes.push(Note::new(Level::Info, format!("client sent invalid chunked body ({e})")));
                reply = Reply::error(400);
                keep_alive = false;
                encoder = None;
            }
        }
        let linger = ex.body_pending();
        let result = match encoder {
            Some(e) => send_coded(ex, &reply, e, keep_alive).await,
            None => send_reply(ex, &reply, answer.head_only, keep_alive, sendfile).await.map_err(Cut::Send),
        };
        let mut response = ResponseInfo {
            status: reply.head.status,
            content_type: reply.head.content_type.clone(),
            location: reply.head.location.clone(),
            upstream_addr: upstream.addr,
            upstream_status: upstream.status,
            upstream_time: upstream.time,
            ..ResponseInfo::default()
        };
        let done = match result {
            Ok(sent) => {
                response.head_bytes = sent.head_bytes;
                response.body_bytes = sent.body_bytes;
                // the rest of an unwanted body is read after the answer, as nginx does
                let clean = keep_alive && (!linger || ex.discard_body().await);
                Done { keep_alive: clean, linger: linger && !keep_alive }
            }
            Err(cut) => {
                notes.push(cut.note());
                Done { keep_alive: false, linger: false }
            }
        };
        super::request_log::log_request(answer.rt, answer.info, &notes, &response, ex.body_bytes_read());
        done
    }
}

/// What went out, for the access log.
#[derive(Clone, Copy, Debug, Default)]
struct Sent {
    pub head_bytes: u64,
    pub body_bytes: u64,
}

/// Sends `reply` (only the head when `head_only`).
async fn send_reply(
    ex: &mut Exchange<'_>,
    reply: &Reply,
    head_only: bool,
    keepalive: bool,
    zero_copy: bool,
) -> Result<Sent, SendError> {
    let before = ex.bytes_sent();
    crate::clock::with_http_date(|date| reply.head.encode(date, keepalive, ex.out));
    let head_bytes = ex.out.len() as u64;
    let sent = |ex: &Exchange| Sent { head_bytes, body_bytes: ex.bytes_sent() - before - head_bytes };
    if head_only {
        ex.write_out(false).await?;
        return Ok(sent(ex));
    }
    match &reply.body {
        Body::Empty => ex.write_out(false).await?,
        Body::Bytes(b) => {
            ex.out.extend_from_slice(b);
            ex.write_out(false).await?;
        }
        Body::File { file, parts: Parts::Range { offset, len } } => {
            ex.write_out(*len > 0).await?;
            ex.send_file(file, *offset..offset.saturating_add(*len), zero_copy).await?;
        }
        Body::File { file, parts: Parts::Multipart(parts) } => {
            ex.write_out(!parts.is_empty()).await?;
            for (i, part) in parts.iter().enumerate() {
                let more = i + 1 < parts.len();
                match part {
                    Part::Bytes(b) => ex.write_all(b, more).await?,
                    Part::File { offset, len } => {
                        ex.send_file(file, *offset..offset.saturating_add(*len), zero_copy).await?
                    }
                }
            }
        }
    }
    Ok(sent(ex))
}

/// Why an answer stopped part-way.
enum Cut {
    Send(SendError),
    /// Reading the file failed (the file system, not the client).
    Read(std::io::Error),
    /// The file became shorter than it was when the answer started.
    Truncated(u64),
    Encode(crate::compression::encoder::EncodeError),
}

impl Cut {
    fn note(&self) -> Note {
        match self {
            // a client going away is routine; a file shrinking under its answer is not
            Cut::Send(e @ SendError::FileTruncated { .. }) => Note::new(Level::Alert, e.to_string()),
            Cut::Send(e) => Note::new(Level::Info, e.to_string()),
            Cut::Read(e) => Note::new(
                Level::Crit,
                format!("pread() failed {} while compressing a file", crate::errno::describe(e)),
            ),
            Cut::Truncated(at) => {
                Note::new(Level::Alert, format!("the file was truncated at {at} while compressing it"))
            }
            Cut::Encode(e) => Note::new(Level::Alert, e.to_string()),
        }
    }
}

/// Bytes read from a file at a time while compressing it.
const READ_CHUNK: usize = 64 << 10;
/// Coded bytes gathered before they go out as one chunk.
const CHUNK: usize = 16 << 10;

/// Sends `reply` with its body through `encoder`: the head (which already says how),
/// then the coded body in chunks of about [`CHUNK`] (or as they come, to HTTP/1.0).
async fn send_coded(
    ex: &mut Exchange<'_>,
    reply: &Reply,
    mut encoder: Encoder,
    keepalive: bool,
) -> Result<Sent, Cut> {
    let before = ex.bytes_sent();
    crate::clock::with_http_date(|date| reply.head.encode(date, keepalive, ex.out));
    let head_bytes = ex.out.len() as u64;
    let chunked = reply.head.chunked;
    let mut coded = crate::buffer_pool::take(CHUNK * 2);
    let result = async {
        match &reply.body {
            Body::Empty => {}
            Body::Bytes(b) => encoder.write(b, &mut coded).map_err(Cut::Encode)?,
            Body::File { file, parts: Parts::Range { offset, len } } => {
                let mut buf = crate::buffer_pool::take(READ_CHUNK);
                buf.resize(READ_CHUNK, 0);
                let read = async {
                    let (mut pos, end) = (*offset, offset.saturating_add(*len));
                    while pos < end {
                        let want = usize::try_from(end - pos).unwrap_or(READ_CHUNK).min(READ_CHUNK);
                        let n = file.read_at(&mut buf[..want], pos).map_err(Cut::Read)?;
                        if n == 0 {
                            return Err(Cut::Truncated(pos));
                        }
                        pos += n as u64;
                        encoder.write(&buf[..n], &mut coded).map_err(Cut::Encode)?;
                        if coded.len() >= CHUNK {
                            emit(ex, &mut coded, chunked).await?;
                            // a big file must not starve the other connections here
                            tokio::task::consume_budget().await;
                        }
                    }
                    Ok(())
                }
                .await;
                crate::buffer_pool::give(buf);
                read?;
            }
            // ranges are never compressed (`compress_reply::prepare` leaves them alone)
            Body::File { parts: Parts::Multipart(_), .. } => {
                return Err(Cut::Encode(EncodeError("a multipart body cannot be compressed".into())))
            }
        }
        encoder.finish(&mut coded).map_err(Cut::Encode)?;
        if !coded.is_empty() {
            frame(ex, &coded, chunked);
            coded.clear();
        }
        if chunked {
            ex.out.extend_from_slice(LAST_CHUNK);
        }
        ex.write_out(false).await.map_err(Cut::Send)
    }
    .await;
    crate::buffer_pool::give(coded);
    result?;
    Ok(Sent { head_bytes, body_bytes: ex.bytes_sent() - before - head_bytes })
}

/// Appends `coded` to the write buffer, as one chunk when `chunked`.
fn frame(ex: &mut Exchange<'_>, coded: &[u8], chunked: bool) {
    if chunked {
        chunk_start(coded.len(), ex.out);
    }
    ex.out.extend_from_slice(coded);
    if chunked {
        ex.out.extend_from_slice(CHUNK_END);
    }
}

/// Sends what the encoder gave out so far (with the head, the first time).
async fn emit(ex: &mut Exchange<'_>, coded: &mut Vec<u8>, chunked: bool) -> Result<(), Cut> {
    frame(ex, coded, chunked);
    coded.clear();
    ex.write_out(true).await.map_err(Cut::Send)
}
