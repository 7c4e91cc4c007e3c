//! The checks nginx makes before routing: the request target (400), the Host header (400,
//! or the server's name for HTTP/1.0 without one), and a declared body over
//! `client_max_body_size` (413).

use std::borrow::Cow;
use std::net::SocketAddr;

use crate::config_file::Site;
use crate::http1::request_head::{BodyFraming, Version};
use crate::log::{Level, Note};
use crate::routing::servers::InvalidHost;
use crate::uri::{normalized, request_uri, split_target};

use super::request_state::RequestInfo;

/// Target and Host checks: 400 for what nginx refuses before routing, 413 for a body
/// over `client_max_body_size`.
pub(super) fn check_request<'r>(
    site: &'r Site,
    info: &mut RequestInfo<'r>,
    host: Option<Result<Cow<'r, str>, InvalidHost>>,
    notes: &mut Vec<Note>,
) -> Result<(), u16> {
    // the target before the Host header, in the order nginx reads them
    let target = split_target(info.req.target()).map_err(|e| {
        notes.push(Note::new(Level::Info, format!("client sent invalid request: {e}")));
        400u16
    })?;
    info.query = target.query;
    info.request_uri = request_uri(info.req.target(), target.raw_path, target.query);
    info.uri = normalized(target.raw_path).map_err(|e| {
        notes.push(Note::new(Level::Info, format!("client sent invalid request: {e}")));
        400u16
    })?;
    match host {
        Some(Ok(h)) => info.host = h,
        Some(Err(e)) => {
            notes.push(Note::new(Level::Info, e.to_string()));
            return Err(400);
        }
        None if info.req.version() != Version::Http10 => {
            notes.push(Note::new(Level::Info, "client sent HTTP/1.1 request without \"Host\" header"));
            return Err(400);
        }
        // HTTP/1.0 without Host: the server's name, else the address it was reached at
        // (redirects need a host to name)
        None if site.name.is_empty() => {
            info.host = Cow::Owned(match info.local {
                Some(SocketAddr::V6(a)) => format!("[{}]", a.ip()),
                Some(a) => a.ip().to_string(),
                None => String::new(),
            })
        }
        None => info.host = Cow::Borrowed(&site.name),
    }
    let max = site.connection.client_max_body_size;
    if let BodyFraming::Length(len) = info.req.head().body {
        if max > 0 && len > max {
            notes.push(Note::new(
                Level::Error,
                format!(
                    "client intended to send too large body: {len} bytes (client_max_body_size is {max})"
                ),
            ));
            return Err(413);
        }
    }
    Ok(())
}
