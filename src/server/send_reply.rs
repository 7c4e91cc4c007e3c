//! Sending a [`Reply`] on the request's exchange: the head from the connection's reused
//! buffer (with `MSG_MORE` when a body follows), file ranges with sendfile(2) where the
//! stream is a plain socket and the location has `sendfile` on, else read and written.

use crate::http1::connection::{Exchange, SendError};
use crate::reply::{Body, Part, Parts, Reply};

/// What went out, for the access log.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sent {
    pub head_bytes: u64,
    pub body_bytes: u64,
}

/// Sends `reply` (only the head when `head_only`).
pub async fn send_reply(
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
            ex.send_file(file, *offset, *len, zero_copy).await?;
        }
        Body::File { file, parts: Parts::Multipart(parts) } => {
            ex.write_out(!parts.is_empty()).await?;
            for (i, part) in parts.iter().enumerate() {
                let more = i + 1 < parts.len();
                match part {
                    Part::Bytes(b) => ex.write_all(b, more).await?,
                    Part::File { offset, len } => ex.send_file(file, *offset, *len, zero_copy).await?,
                }
            }
        }
    }
    Ok(sent(ex))
}
