//! The error-log line, in nginx's format, so existing log tooling keeps working:
//!
//! `YYYY/MM/DD HH:MM:SS [level] PID#TID: *CONN message, client: ADDR, server: NAME,
//! request: "LINE", upstream: "...", host: "HOST", referrer: "..."`

use std::fmt::Write as _;

use super::writer::Sink;
use super::Level;

/// An open error log: where its lines go, and the least severe level it takes.
pub struct ErrorLog {
    sink: Sink,
    level: Level,
}

impl ErrorLog {
    pub fn new(sink: Sink, level: Level) -> ErrorLog {
        ErrorLog { sink, level }
    }

    /// Whether lines of `level` are written (lower is more severe, as nginx's levels).
    pub fn wants(&self, level: Level) -> bool {
        level <= self.level
    }

    /// Writes one line at the current time, if its level is wanted.
    pub fn write(&self, level: Level, message: &str, ctx: &ErrorContext) {
        if !self.wants(level) {
            return;
        }
        let now = crate::clock::now();
        let tid = nix::unistd::gettid().as_raw();
        self.sink.write(&format_line(
            &now.strings.error_log,
            level,
            std::process::id(),
            i64::from(tid),
            message,
            ctx,
        ));
    }
}

/// What is known about the request an error-log line is about.
#[derive(Clone, Debug, Default)]
pub struct ErrorContext<'a> {
    pub connection: Option<u64>,
    pub client: Option<&'a str>,
    pub server: Option<&'a str>,
    pub request_line: Option<&'a str>,
    pub upstream: Option<&'a str>,
    pub host: Option<&'a str>,
    pub referrer: Option<&'a str>,
}

/// Formats one line (with its newline). `time` is the local time already formatted as
/// `YYYY/MM/DD HH:MM:SS`; the caller supplies it so this stays pure.
pub fn format_line(
    time: &str,
    level: Level,
    pid: u32,
    tid: i64,
    message: &str,
    ctx: &ErrorContext,
) -> Vec<u8> {
    let mut s = String::with_capacity(160 + message.len());
    let _ = write!(s, "{time} [{level}] {pid}#{tid}: ");
    if let Some(c) = ctx.connection {
        let _ = write!(s, "*{c} ");
    }
    s.push_str(message);
    if let Some(client) = ctx.client {
        let _ = write!(s, ", client: {client}");
        let _ = write!(s, ", server: {}", ctx.server.unwrap_or(""));
    }
    if let Some(r) = ctx.request_line {
        let _ = write!(s, ", request: \"{}\"", r.escape_debug());
    }
    if let Some(u) = ctx.upstream {
        let _ = write!(s, ", upstream: \"{u}\"");
    }
    if let Some(h) = ctx.host {
        let _ = write!(s, ", host: \"{}\"", h.escape_debug());
    }
    if let Some(r) = ctx.referrer {
        let _ = write!(s, ", referrer: \"{}\"", r.escape_debug());
    }
    s.push('\n');
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_nginx_capture() {
        // ../shared/uwsgi/SPEC.md §6.2, first verbatim example
        let ctx = ErrorContext {
            connection: Some(85),
            client: Some("127.0.0.1"),
            server: Some("localhost"),
            request_line: Some("GET /missing/x HTTP/1.1"),
            upstream: Some("uwsgi://unix:/srv/www/flask/missing.sock:"),
            host: Some("127.0.0.1:18180"),
            referrer: None,
        };
        let line = format_line(
            "2026/11/27 00:01:35",
            Level::Crit,
            10795,
            10795,
            "connect() to unix:/srv/www/flask/missing.sock failed (2: No such file or directory) while connecting to upstream",
            &ctx,
        );
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "2026/11/27 00:01:35 [crit] 10795#10795: *85 connect() to unix:/srv/www/flask/missing.sock failed (2: No such file or directory) while connecting to upstream, client: 127.0.0.1, server: localhost, request: \"GET /missing/x HTTP/1.1\", upstream: \"uwsgi://unix:/srv/www/flask/missing.sock:\", host: \"127.0.0.1:18180\"\n"
        );
    }

    #[test]
    fn without_request_context() {
        let line = format_line("2026/11/27 00:00:00", Level::Warn, 1, 2, "started", &ErrorContext::default());
        assert_eq!(line, b"2026/11/27 00:00:00 [warn] 1#2: started\n");
    }

    #[test]
    fn quotes_in_the_request_are_escaped() {
        let ctx = ErrorContext {
            client: Some("::1"),
            request_line: Some("GET /\"x HTTP/1.1"),
            ..Default::default()
        };
        let line = format_line("t", Level::Error, 1, 1, "m", &ctx);
        assert!(String::from_utf8(line).unwrap().contains("server: , request: \"GET /\\\"x HTTP/1.1\""));
    }
}
