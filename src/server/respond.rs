//! Answers Portico makes itself (files, errors, redirects): an unread request body read
//! and dropped first so the connection can be reused, the head from the connection's
//! reused buffer (with `MSG_MORE` when a body follows), file ranges with sendfile(2) where
//! the stream is a plain socket and the location has `sendfile` on (else read and
//! written), then the request's logs.

use crate::http1::exchange::{Exchange, SendError};
use crate::log::{Level, Note};
use crate::reply::{closes_connection, Body, Part, Parts, Reply};

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
        mut notes: Vec<Note>,
        upstream: UpstreamFields,
    ) -> Done {
        let mut reply = reply;
        let mut keep_alive = answer.keep_alive && !closes_connection(reply.head.status);
        if keep_alive && ex.body_pending() {
            // what came with the head is read now: bad framing there is still a 400
            if let Err(e) = ex.discard_buffered() {
                notes.push(Note::new(Level::Info, format!("client sent invalid chunked body ({e})")));
                reply = Reply::error(400);
                keep_alive = false;
            }
        }
        let linger = ex.body_pending();
        let result = send_reply(ex, &reply, answer.head_only, keep_alive, sendfile).await;
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
            Err(e) => {
                // a client going away is routine; a file shrinking under its answer is not
                let level =
                    if matches!(e, SendError::FileTruncated { .. }) { Level::Alert } else { Level::Info };
                notes.push(Note::new(level, e.to_string()));
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
