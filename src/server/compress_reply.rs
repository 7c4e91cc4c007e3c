//! Compressing an answer Portico makes itself (a file, its own pages): the location's
//! decision (`compression::decide`), and the head changed to match — no Content-Length
//! (chunked to HTTP/1.1 clients, close-delimited to HTTP/1.0 ones), the ETag weak, no
//! Accept-Ranges, `Content-Encoding`, `Vary`. The body is encoded as it goes out
//! (`respond`).

use crate::compression::{decide, Compression, Encoder, ResponseFacts};
use crate::http1::request_head::{Request, Version};
use crate::reply::{Body, Parts, Reply};

/// Decides for `reply` and rewrites its head; the encoder when its body is to be coded.
pub(super) fn prepare(
    cfg: &Compression,
    req: &Request,
    head_only: bool,
    reply: &mut Reply,
) -> Option<Encoder> {
    if !cfg.is_on() {
        return None;
    }
    let head = &reply.head;
    let mut facts = ResponseFacts {
        status: head.status,
        content_type: head.content_type.as_deref().map(str::as_bytes),
        content_length: head.content_length,
        content_encoding: head.content_encoding.is_some(),
        last_modified: head.last_modified.is_some(),
        etag: head.etag.is_some(),
        ..ResponseFacts::default()
    };
    for lines in head.added_lines() {
        facts.header_lines(lines);
    }
    // a range of a file is never compressed, but varies as the whole file would
    let range = head.status == 206;
    if range {
        facts.status = 200;
        facts.content_length = None;
    }
    let decision = decide(cfg, req, head_only, &facts, crate::clock::now().secs);
    // only a body that is all there: bytes, or one range of a file (a 200's is all of it)
    let whole =
        matches!(reply.body, Body::Bytes(_) | Body::Empty | Body::File { parts: Parts::Range { .. }, .. });
    let head = &mut reply.head;
    head.vary_encoding |= decision.vary;
    let (codec, level) = decision.coding.filter(|_| whole && !range)?;
    let length = head.content_length.take();
    head.etag = head.etag.map(|e| e.weak());
    head.accept_ranges = false;
    head.content_encoding = Some(codec.token());
    head.chunked = req.version() != Version::Http10;
    Some(Encoder::new(codec, level, length))
}
