//! What Portico knows about one request while it serves it, and how that becomes nginx
//! variables for paths, params and log lines.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::{HeaderMap, Method, Version};

use crate::routing::locations::Captures;
use crate::variables::{Var, VarSource};

/// The request as Portico sees it after parsing (copied out of pingora's session so the
/// session stays free for writing).
#[derive(Debug)]
pub struct RequestInfo {
    /// Serial number of the connection (`*N` in error logs, `$connection`).
    pub connection: u64,
    /// How many requests this connection has carried, this one included.
    pub connection_requests: u64,
    pub started: Instant,
    pub method: Method,
    pub version: Version,
    /// The request target as sent (in `$request`).
    pub raw_target: Vec<u8>,
    /// `$request_uri` and uwsgi's `REQUEST_URI`: the target's raw path and query, an
    /// absolute-form target reduced to them as nginx does; empty until the target parsed.
    pub request_uri: Vec<u8>,
    /// Raw query after the first `?` (`$args`).
    pub query: Option<Vec<u8>>,
    /// The current normalised URI (`$uri`); internal redirects change it.
    pub uri: Vec<u8>,
    /// `$host`: the normalised host, or the server's name when the request had none.
    pub host: String,
    pub remote: Option<SocketAddr>,
    pub local: Option<SocketAddr>,
    /// Captures from the regex location currently serving the request.
    pub captures: Captures,
    /// `$document_root` of the location serving the request.
    pub document_root: Vec<u8>,
}

impl RequestInfo {
    /// `$request`: the request line as nginx logs it.
    pub fn write_request_line(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(&self.raw_target);
        out.push(b' ');
        out.extend_from_slice(version_str(self.version).as_bytes());
    }

    /// The request line for the error log's `request: "..."`.
    pub fn request_line(&self) -> String {
        let mut line = Vec::new();
        self.write_request_line(&mut line);
        String::from_utf8_lossy(&line).into_owned()
    }
}

pub fn version_str(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// What was answered, for the log.
#[derive(Clone, Debug, Default)]
pub struct ResponseInfo {
    pub status: u16,
    pub head_bytes: u64,
    pub body_bytes: u64,
    pub upstream_addr: Option<String>,
    pub upstream_status: Option<u16>,
    pub upstream_time: Option<Duration>,
    /// Response headers worth `$sent_http_NAME`: content type and location.
    pub content_type: Option<String>,
    pub location: Option<String>,
}

/// The request's variables, and once known, the response's.
pub struct Vars<'a> {
    pub req: &'a RequestInfo,
    pub headers: &'a HeaderMap,
    pub server_name: &'a str,
    pub response: Option<&'a ResponseInfo>,
    /// The time for `$time_local`, `$time_iso8601`, `$msec`, taken once per log line.
    pub now: Option<&'a crate::log::clock::Now>,
    /// Request body bytes read, for `$request_length`.
    pub body_read: u64,
}

impl VarSource for Vars<'_> {
    fn write_var(&self, var: &Var, out: &mut Vec<u8>) -> bool {
        use std::io::Write;
        let req = self.req;
        match var {
            Var::Request => req.write_request_line(out),
            Var::RequestMethod => out.extend_from_slice(req.method.as_str().as_bytes()),
            Var::RequestUri => out.extend_from_slice(&req.request_uri),
            Var::Uri => out.extend_from_slice(&req.uri),
            Var::Args => match &req.query {
                Some(q) => out.extend_from_slice(q),
                None => return false,
            },
            Var::IsArgs => {
                if req.query.is_some() {
                    out.push(b'?');
                }
            }
            Var::ServerProtocol => out.extend_from_slice(version_str(req.version).as_bytes()),
            Var::Scheme => out.extend_from_slice(b"http"),
            Var::Host => out.extend_from_slice(req.host.as_bytes()),
            Var::RemoteAddr => return shown(out, req.remote.map(|a| a.ip())),
            Var::RemotePort => return shown(out, req.remote.map(|a| a.port())),
            Var::RemoteUser => return false,
            Var::ServerAddr => return shown(out, req.local.map(|a| a.ip())),
            Var::ServerPort => return shown(out, req.local.map(|a| a.port())),
            Var::ServerName => out.extend_from_slice(self.server_name.as_bytes()),
            Var::DocumentRoot => out.extend_from_slice(&req.document_root),
            Var::Connection => {
                let _ = write!(out, "{}", req.connection);
            }
            Var::ConnectionRequests => {
                let _ = write!(out, "{}", req.connection_requests);
            }
            Var::ContentType => return header(self.headers, "content-type", out),
            Var::ContentLength => return header(self.headers, "content-length", out),
            Var::Http(name) => return header(self.headers, name, out),
            Var::Capture(n) => out.extend_from_slice(req.captures.get(*n)),
            Var::NamedCapture(name) => match req.captures.named(name) {
                Some(v) => out.extend_from_slice(v),
                None => return false,
            },
            Var::Pid => {
                let _ = write!(out, "{}", std::process::id());
            }
            Var::RequestLength => {
                // estimated from the parsed head: pingora does not report its size
                let line = req.method.as_str().len() + req.raw_target.len() + 12;
                let head = line + crate::text::header_lines_len(self.headers) + 2;
                let _ = write!(out, "{}", head as u64 + self.body_read);
            }
            Var::TimeLocal | Var::TimeIso8601 | Var::Msec => {
                let Some(now) = self.now else { return false };
                match var {
                    Var::TimeLocal => out.extend_from_slice(now.strings.time_local.as_bytes()),
                    Var::TimeIso8601 => out.extend_from_slice(now.strings.iso8601.as_bytes()),
                    _ => {
                        let _ = write!(out, "{}.{:03}", now.secs, now.millis);
                    }
                }
            }
            Var::RequestTime => {
                let t = req.started.elapsed();
                let _ = write!(out, "{}.{:03}", t.as_secs(), t.subsec_millis());
            }
            Var::Status
            | Var::BodyBytesSent
            | Var::BytesSent
            | Var::UpstreamAddr
            | Var::UpstreamStatus
            | Var::UpstreamResponseTime
            | Var::SentHttp(_) => {
                let Some(r) = self.response else { return false };
                match var {
                    Var::Status => {
                        let _ = write!(out, "{}", r.status);
                    }
                    Var::BodyBytesSent => {
                        let _ = write!(out, "{}", r.body_bytes);
                    }
                    Var::BytesSent => {
                        let _ = write!(out, "{}", r.head_bytes + r.body_bytes);
                    }
                    Var::UpstreamAddr => match &r.upstream_addr {
                        Some(a) => out.extend_from_slice(a.as_bytes()),
                        None => return false,
                    },
                    Var::UpstreamStatus => return shown(out, r.upstream_status),
                    Var::UpstreamResponseTime => match r.upstream_time {
                        Some(t) => {
                            let _ = write!(out, "{}.{:03}", t.as_secs(), t.subsec_millis());
                        }
                        None => return false,
                    },
                    Var::SentHttp(name) => {
                        let v = match name.as_str() {
                            "content-type" => r.content_type.as_deref(),
                            "location" => r.location.as_deref(),
                            _ => None,
                        };
                        match v {
                            Some(v) => out.extend_from_slice(v.as_bytes()),
                            None => return false,
                        }
                    }
                    _ => return false,
                }
            }
        }
        true
    }
}

/// Appends `value` if there is one; `false` (the variable is unset) if not.
fn shown(out: &mut Vec<u8>, value: Option<impl std::fmt::Display>) -> bool {
    use std::io::Write;
    value.is_some_and(|v| write!(out, "{v}").is_ok())
}

/// Appends a request header's value(s); repeated headers joined as nginx joins them.
fn header(headers: &HeaderMap, name: &str, out: &mut Vec<u8>) -> bool {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return false;
    };
    out.extend_from_slice(first.as_bytes());
    let sep: &[u8] = if name.eq_ignore_ascii_case("cookie") { b"; " } else { b", " };
    for v in values {
        out.extend_from_slice(sep);
        out.extend_from_slice(v.as_bytes());
    }
    true
}
