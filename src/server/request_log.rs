//! The request's logs, once it is answered: its error-log notes (with nginx's context:
//! client, server, request line, upstream, host, referrer) and its access-log line.

use crate::http1::request_head::Known;
use crate::log::error::ErrorContext;
use crate::log::Note;

use super::app::SiteRuntime;
use super::request_state::{RequestInfo, ResponseInfo};
use super::request_vars::Vars;

/// Writes the request's error-log notes and its access-log line.
pub(super) fn log_request(
    rt: &SiteRuntime,
    info: &RequestInfo,
    notes: &[Note],
    response: &ResponseInfo,
    body_read: u64,
) {
    let mut wanted = notes.iter().filter(|n| rt.error_log.wants(n.level)).peekable();
    if wanted.peek().is_some() {
        let client = info.remote.map(|r| r.ip().to_string());
        let request_line = info.request_line();
        let text = |v: Option<&[u8]>| v.map(|v| String::from_utf8_lossy(v).into_owned());
        let host = text(info.req.known(Known::Host));
        let referrer = text(info.req.known(Known::Referer));
        for note in wanted {
            let ctx = ErrorContext {
                connection: Some(info.connection),
                client: client.as_deref(),
                server: Some(&rt.site.name),
                request_line: Some(&request_line),
                upstream: note.upstream.as_deref(),
                host: host.as_deref(),
                referrer: referrer.as_deref(),
            };
            rt.error_log.write(note.level, &note.message, &ctx);
        }
    }
    if let Some(access_log) = &rt.access_log {
        let now = crate::clock::now();
        access_log.write(&Vars {
            info,
            server_name: &rt.site.name,
            response: Some(response),
            now: Some(&now),
            body_read,
        });
    }
}
