//! The static-file steps of a request: `try_files`, directory index, and turning an open
//! file plus the request's conditional and range headers into a [`Reply`].

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::compression::decide::may_code;
use crate::compression::{Compression, ResponseFacts};
use crate::content_coding::{choose, Coding};
use crate::http1::request_head::{Known, Method, Request};
use crate::log::{Level, Note};
use crate::reply::{Body, Head, Part, Parts, Reply};
use crate::uri::escape_path;
use crate::variables::{Escape, VarSource};

use super::config::{Fallback, FilesConfig, HiddenFiles};
use super::headers::{
    content_type, evaluate_conditions, evaluate_range, Conditional, Conditions, FileFacts, RangeDecision,
};
use super::mapping::{is_hidden, MappedPath, Unmappable};
use super::open::{FailureKind, Opened};
use super::open_file_cache::{exists_cached as exists_in, open as open_in};

/// The parts of a request the file steps look at.
pub struct FileRequest<'a> {
    pub method: Method,
    /// The current normalised URI.
    pub uri: &'a [u8],
    pub args: Option<&'a [u8]>,
    /// The request's headers (conditionals, ranges).
    pub request: Request<'a>,
    /// Request variables and the location's captures.
    pub vars: &'a dyn VarSource,
    /// The request's scheme and host and the port it arrived on, for the absolute
    /// `Location` of directory redirects (`http://host[:port]/dir/`, as nginx builds it).
    pub scheme: &'a str,
    pub host: &'a str,
    pub port: Option<u16>,
}

/// What the file steps decided (a value that lives for one step: boxing the reply would
/// cost an allocation per request).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    /// Send this response.
    Reply(Reply),
    /// Answer with this error status (an `error_page` may take over).
    Status(u16),
    /// Start over with this URI (index file, try_files URI fallback).
    Redirect(Vec<u8>),
    /// Continue in this named location.
    Named(String),
}

/// Runs `try_files`: `Ok(Some(uri))` is the entry that exists, when it is another URI
/// (the URI to serve from now on), `Ok(None)` leaves the URI as it is, `Err(outcome)` is
/// the fallback.
pub fn try_files(cfg: &FilesConfig, req: &FileRequest) -> Result<Option<Vec<u8>>, Box<Outcome>> {
    try_files_seen(cfg, req, &mut |_, _| {})
}

/// [`try_files`], telling `seen` each candidate URI, the path it maps to (`None`: none)
/// and whether it exists (`portico explain` listens; the server passes a no-op).
pub fn try_files_seen(
    cfg: &FilesConfig,
    req: &FileRequest,
    seen: &mut impl FnMut(&[u8], Option<(&MappedPath, bool)>),
) -> Result<Option<Vec<u8>>, Box<Outcome>> {
    let Some(tf) = &cfg.try_files else {
        return Ok(None);
    };
    let mut candidate = Vec::new();
    for check in &tf.checks {
        candidate.clear();
        check.path.render(req.vars, Escape::None, &mut candidate);
        let mapped = cfg.mapping.map(&candidate, req.vars).ok();
        let found = mapped
            .as_ref()
            .is_some_and(|p| exists_in(cfg.open_file_cache.as_ref(), p, check.directory, cfg.symlinks));
        seen(&candidate, mapped.as_ref().map(|p| (p, found)));
        if found {
            return Ok((candidate != req.uri).then_some(candidate));
        }
    }
    Err(Box::new(match &tf.fallback {
        Fallback::Named(name) => Outcome::Named(name.clone()),
        Fallback::Status(code) => Outcome::Status(*code),
        Fallback::Uri(t) => {
            let mut uri = Vec::new();
            t.render(req.vars, Escape::None, &mut uri);
            Outcome::Redirect(uri)
        }
    }))
}

/// Serves `req.uri` from the location's files (`coding`: its compression keys, which say
/// whether a precompressed file may be sent to this request).
pub fn serve(cfg: &FilesConfig, coding: &Compression, req: &FileRequest, notes: &mut Vec<Note>) -> Outcome {
    if !matches!(req.method, Method::Get | Method::Head | Method::Post) {
        return Outcome::Reply(not_allowed());
    }
    if cfg.hidden_files == HiddenFiles::Deny && is_hidden(req.uri) {
        if cfg.log_not_found {
            notes.push(Note::new(
                Level::Error,
                format!(
                    "access to hidden file \"{}\" denied (hidden_files = \"deny\")",
                    String::from_utf8_lossy(req.uri)
                ),
            ));
        }
        return Outcome::Status(404);
    }
    if req.uri.ends_with(b"/") {
        return serve_index(cfg, req, notes);
    }
    let path = match cfg.mapping.map(req.uri, req.vars) {
        Ok(p) => p,
        Err(why) => return unmappable(cfg, req, why, notes),
    };
    match open_in(cfg.open_file_cache.as_ref(), &path, cfg.symlinks) {
        Ok(Opened::Directory) => {
            let default_port = if req.scheme == "https" { 443 } else { 80 };
            let mut location = match req.port {
                Some(p) if p != default_port => format!("{}://{}:{p}", req.scheme, req.host),
                _ => format!("{}://{}", req.scheme, req.host),
            };
            escape_path(req.uri, &mut location);
            location.push('/');
            if let Some(args) = req.args {
                location.push('?');
                location.push_str(&String::from_utf8_lossy(args));
            }
            Outcome::Reply(Reply::moved_permanently(location))
        }
        Ok(Opened::File { file, facts }) => {
            if req.method == Method::Post {
                return Outcome::Reply(not_allowed());
            }
            if cfg.precompressed.is_empty() {
                return file_reply(file, facts, None, cfg.max_ranges, req);
            }
            precompressed_reply(cfg, coding, &path, file, facts, req)
        }
        Err(f) => {
            let (status, level) = match f.kind {
                FailureKind::NotFound => (404, Level::Error),
                FailureKind::Forbidden => (403, Level::Error),
                FailureKind::NotRegular => (404, Level::Crit),
                FailureKind::Internal => (500, Level::Crit),
            };
            if status != 404 || cfg.log_not_found || level == Level::Crit {
                notes.push(Note::new(level, f.log_message));
            }
            Outcome::Status(status)
        }
    }
}

fn not_allowed() -> Reply {
    let mut r = Reply::error(405);
    r.head.header("Allow", "GET, HEAD");
    r
}

fn unmappable(cfg: &FilesConfig, req: &FileRequest, why: Unmappable, notes: &mut Vec<Note>) -> Outcome {
    if cfg.log_not_found {
        let uri = String::from_utf8_lossy(req.uri);
        notes.push(Note::new(
            Level::Error,
            match why {
                Unmappable::NoRoot => {
                    format!("\"{uri}\" is not served: this location has no `root` or `alias`")
                }
                Unmappable::Outside => format!("\"{uri}\" refused: it maps outside the location's directory"),
            },
        ));
    }
    Outcome::Status(404)
}

/// A URI ending in `/`: the first index file that exists (by internal redirect, as nginx
/// does), else 403 for an existing directory, else 404.
fn serve_index(cfg: &FilesConfig, req: &FileRequest, notes: &mut Vec<Note>) -> Outcome {
    let dir = match cfg.mapping.map(req.uri, req.vars) {
        Ok(p) => p,
        Err(why) => return unmappable(cfg, req, why, notes),
    };
    let mut candidate = Vec::with_capacity(req.uri.len() + 16);
    for index in &cfg.index {
        candidate.clear();
        candidate.extend_from_slice(req.uri);
        candidate.extend_from_slice(index);
        let found = cfg
            .mapping
            .map(&candidate, req.vars)
            .is_ok_and(|p| exists_in(cfg.open_file_cache.as_ref(), &p, false, cfg.symlinks));
        if found {
            return Outcome::Redirect(candidate);
        }
    }
    let shown = String::from_utf8_lossy(&dir.full()).into_owned();
    if exists_in(cfg.open_file_cache.as_ref(), &dir, true, cfg.symlinks) {
        notes.push(Note::new(Level::Error, format!("directory index of \"{shown}\" is forbidden")));
        Outcome::Status(403)
    } else {
        if cfg.log_not_found {
            notes.push(Note::new(
                Level::Error,
                format!("\"{shown}\" is not found (2: No such file or directory)"),
            ));
        }
        Outcome::Status(404)
    }
}

/// With `precompressed`: the fresh precompressed file (not older than the file) of the
/// coding the client prefers, sent as the file with `Content-Encoding` and an ETag of its
/// own; else the file. `Vary: Accept-Encoding` whenever such a file exists (and
/// `gzip_vary` is on), so that caches keep both. Precompressed files are looked up in the
/// client's order of preference, the first fresh one ending the search; only for requests
/// that may get a coded answer (HTTP/1.1, `gzip_proxied` through a proxy).
fn precompressed_reply(
    cfg: &FilesConfig,
    coding: &Compression,
    path: &MappedPath,
    file: crate::reply::OpenFile,
    facts: FileFacts,
    req: &FileRequest,
) -> Outcome {
    // a location aliasing one file has no directory to look beside it in
    if path.rel.is_empty() {
        return file_reply(file, facts, None, cfg.max_ranges, req);
    }
    let fresh_beside = |c: Coding| {
        let mut rel = path.rel.to_vec();
        rel.extend_from_slice(c.suffix());
        let beside = MappedPath { base: path.base, rel: rel.into(), written: path.written };
        // the same rules as the file itself: beneath its directory, symlinks as configured
        match open_in(cfg.open_file_cache.as_ref(), &beside, cfg.symlinks) {
            Ok(Opened::File { file, facts: f }) if f.mtime >= facts.mtime => Some((file, f)),
            _ => None,
        }
    };
    let may_code = may_code(coding, &req.request, &ResponseFacts::default(), crate::clock::now().secs);
    // the codings not tried yet, in the configuration's order (at most the three there are)
    let mut left = [Coding::Br; 3];
    let mut n = 0;
    for &c in cfg.precompressed.iter().take(left.len()) {
        left[n] = c;
        n += 1;
    }
    // in the client's order of preference, the first fresh one ends the search
    while may_code && n > 0 {
        let Some(c) = choose(req.request.header_values(b"accept-encoding"), &left[..n]) else { break };
        let Some(i) = left[..n].iter().position(|&l| l == c) else { break };
        left.copy_within(i + 1..n, i);
        n -= 1;
        if let Some((sidecar, f)) = fresh_beside(c) {
            let mut o = file_reply(sidecar, f, Some(c), cfg.max_ranges, req);
            if let Outcome::Reply(r) = &mut o {
                if r.head.status != 304 && r.head.status != 416 {
                    r.head.content_encoding = Some(c.token());
                }
                r.head.vary_encoding = coding.vary;
            }
            return o;
        }
    }
    // the client gets the file; whether another client would get a coded one decides Vary
    let vary = coding.vary && left[..n].iter().any(|&c| fresh_beside(c).is_some());
    let mut o = file_reply(file, facts, None, cfg.max_ranges, req);
    if let Outcome::Reply(r) = &mut o {
        r.head.vary_encoding = vary;
    }
    o
}

static BOUNDARY: AtomicU64 = AtomicU64::new(0);

/// The 200/206/304/412/416 response for an open file; `coded` when it is the
/// precompressed file of that coding (its ETag names the coding, and several ranges of it
/// are answered with all of it: a multipart answer of coded bytes helps no client).
fn file_reply(
    file: crate::reply::OpenFile,
    facts: FileFacts,
    coded: Option<Coding>,
    max_ranges: u32,
    req: &FileRequest,
) -> Outcome {
    let etag = match coded {
        Some(c) => facts.etag_coded(c.token()),
        None => facts.etag(),
    };
    let header = |which| req.request.known(which);
    let conditions = Conditions {
        if_match: header(Known::IfMatch),
        if_unmodified_since: header(Known::IfUnmodifiedSince),
        if_none_match: header(Known::IfNoneMatch),
        if_modified_since: header(Known::IfModifiedSince),
    };
    match evaluate_conditions(&conditions, &facts, &etag) {
        Conditional::PreconditionFailed => return Outcome::Status(412),
        Conditional::NotModified => {
            let mut head = Head::new(304);
            head.last_modified = Some(facts.mtime);
            head.etag = Some(etag);
            return Outcome::Reply(Reply { head, body: Body::Empty });
        }
        Conditional::Proceed => {}
    }
    let ctype = content_type(req.uri);
    let mut head = Head::new(200);
    head.content_type = Some(ctype.into());
    head.last_modified = Some(facts.mtime);
    // max_ranges 0: ranges are off (the whole file), and not offered (as nginx)
    let mut decision =
        evaluate_range(header(Known::Range), header(Known::IfRange), &facts, &etag, max_ranges);
    if coded.is_some() && matches!(decision, RangeDecision::Multiple(_)) {
        decision = RangeDecision::Full;
    }
    let parts = match decision {
        RangeDecision::Full => {
            head.content_length = Some(facts.size);
            head.etag = Some(etag);
            head.accept_ranges = max_ranges > 0;
            Parts::Range { offset: 0, len: facts.size }
        }
        RangeDecision::Single(r) => {
            head.status = 206;
            head.content_length = Some(r.len());
            head.etag = Some(etag);
            head.header("Content-Range", r.content_range(facts.size));
            Parts::Range { offset: r.start, len: r.len() }
        }
        RangeDecision::Multiple(ranges) => {
            let boundary = format!("{:020}", BOUNDARY.fetch_add(1, Ordering::Relaxed) + 1);
            let mut parts = Vec::with_capacity(ranges.len() * 2 + 1);
            for r in &ranges {
                parts.push(Part::Bytes(Bytes::from(format!(
                    "\r\n--{boundary}\r\nContent-Type: {ctype}\r\nContent-Range: {}\r\n\r\n",
                    r.content_range(facts.size)
                ))));
                parts.push(Part::File { offset: r.start, len: r.len() });
            }
            parts.push(Part::Bytes(Bytes::from(format!("\r\n--{boundary}--\r\n"))));
            head.status = 206;
            head.content_type = Some(format!("multipart/byteranges; boundary={boundary}").into());
            head.etag = Some(etag);
            let mut reply = Reply { head, body: Body::File { file, parts: Parts::Multipart(parts) } };
            reply.head.content_length = Some(reply.body_len());
            return Outcome::Reply(reply);
        }
        RangeDecision::Unsatisfiable => {
            let mut r = Reply::error(416);
            r.head.header("Content-Range", format_args!("bytes */{}", facts.size));
            return Outcome::Reply(r);
        }
    };
    Outcome::Reply(Reply { head, body: Body::File { file, parts } })
}
