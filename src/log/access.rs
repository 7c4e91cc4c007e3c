//! The access-log line: built from a compiled `log_format` with nginx's variable
//! escaping, in a buffer reused on the thread, and queued on the log's sink.

use std::cell::RefCell;

use super::writer::Sink;
use crate::variables::{Escape, Scope, Template, TemplateError, VarSource};

/// nginx's predefined `combined` format, the default.
pub const COMBINED: &str = "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\"";

/// A compiled access-log format.
#[derive(Clone, Debug)]
pub struct AccessFormat(Template);

impl AccessFormat {
    pub fn parse(text: &str) -> Result<AccessFormat, TemplateError> {
        Template::parse(text, Scope::Log).map(AccessFormat)
    }

    pub fn combined() -> AccessFormat {
        // COMBINED only names known variables
        AccessFormat(Template::parse(COMBINED, Scope::Log).unwrap_or_else(|_| unreachable!()))
    }

    /// Appends one log line, newline included, to `out`.
    pub fn line(&self, vars: &dyn VarSource, out: &mut Vec<u8>) {
        self.0.render(vars, Escape::Log, out);
        out.push(b'\n');
    }
}

/// An open access log: where its lines go and how they read.
pub struct AccessLog {
    sink: Sink,
    format: AccessFormat,
}

thread_local! {
    /// The line being built, reused by every request on this thread.
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl AccessLog {
    pub fn new(sink: Sink, format: AccessFormat) -> AccessLog {
        AccessLog { sink, format }
    }

    /// Builds the request's line from its variables and queues it.
    pub fn write(&self, vars: &dyn VarSource) {
        LINE.with(|line| {
            let mut line = line.borrow_mut();
            line.clear();
            self.format.line(vars, &mut line);
            self.sink.write(&line);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::variables::Var;

    struct Req;
    impl VarSource for Req {
        fn write_var(&self, var: &Var, out: &mut Vec<u8>) -> bool {
            let v: &[u8] = match var {
                Var::RemoteAddr => b"127.0.0.1",
                Var::TimeLocal => b"27/Nov/2026:02:14:11 +0000",
                Var::Request => b"GET /static/a.css HTTP/1.1",
                Var::Status => b"200",
                Var::BodyBytesSent => b"1234",
                Var::Http(h) if h == "user-agent" => b"curl/7.88.1",
                _ => return false,
            };
            out.extend_from_slice(v);
            true
        }
    }

    #[test]
    fn combined_line_as_nginx() {
        let mut line = Vec::new();
        AccessFormat::combined().line(&Req, &mut line);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "127.0.0.1 - - [27/Nov/2026:02:14:11 +0000] \"GET /static/a.css HTTP/1.1\" 200 1234 \"-\" \"curl/7.88.1\"\n"
        );
    }
}
