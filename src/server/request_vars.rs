//! A request's nginx variables (`$uri`, `$host`, `$http_NAME`, `$status`...), read from
//! its state for paths, uwsgi params and access-log lines.

use crate::http1::request_head::Request;
use crate::variables::{Var, VarSource};

use super::request_state::{RequestInfo, ResponseInfo};

/// The request's variables, and once known, the response's.
pub struct Vars<'a, 'r> {
    pub info: &'a RequestInfo<'r>,
    pub server_name: &'a str,
    pub response: Option<&'a ResponseInfo>,
    /// The time for `$time_local`, `$time_iso8601`, `$msec`, taken once per log line.
    pub now: Option<&'a crate::clock::Now>,
    /// Request body bytes read, for `$request_length`.
    pub body_read: u64,
}

impl<'a, 'r> Vars<'a, 'r> {
    /// The request's variables while it is routed and served (no response yet).
    pub fn of_request(info: &'a RequestInfo<'r>, server_name: &'a str) -> Vars<'a, 'r> {
        Vars { info, server_name, response: None, now: None, body_read: 0 }
    }
}

impl VarSource for Vars<'_, '_> {
    fn write_var(&self, var: &Var, out: &mut Vec<u8>) -> bool {
        use std::io::Write;
        let info = self.info;
        match var {
            Var::Request => info.write_request_line(out),
            Var::RequestMethod => out.extend_from_slice(info.method_name),
            Var::RequestUri => out.extend_from_slice(&info.request_uri),
            Var::Uri => out.extend_from_slice(&info.uri),
            Var::Args => match info.query {
                Some(q) => out.extend_from_slice(q),
                None => return false,
            },
            Var::IsArgs => {
                if info.query.is_some() {
                    out.push(b'?');
                }
            }
            Var::ServerProtocol => out.extend_from_slice(info.req.version().as_str().as_bytes()),
            Var::Scheme => out.extend_from_slice(info.scheme().as_bytes()),
            Var::Https => {
                if info.https {
                    out.extend_from_slice(b"on");
                }
            }
            Var::Host => out.extend_from_slice(info.host.as_bytes()),
            Var::RemoteAddr => return shown(out, info.remote.map(|a| a.ip())),
            Var::RemotePort => return shown(out, info.remote.map(|a| a.port())),
            Var::RemoteUser => return false,
            Var::ProxyProtocolAddr => return shown(out, info.proxy_protocol.map(|a| a.ip())),
            Var::ProxyProtocolPort => return shown(out, info.proxy_protocol.map(|a| a.port())),
            Var::ServerAddr => return shown(out, info.local.map(|a| a.ip())),
            Var::ServerPort => return shown(out, info.local.map(|a| a.port())),
            Var::ServerName => out.extend_from_slice(self.server_name.as_bytes()),
            Var::DocumentRoot => out.extend_from_slice(info.document_root),
            Var::Connection => {
                let _ = write!(out, "{}", info.connection);
            }
            Var::ConnectionRequests => {
                let _ = write!(out, "{}", info.connection_requests);
            }
            Var::ContentType => return header(&info.req, b"content-type", out),
            Var::ContentLength => return header(&info.req, b"content-length", out),
            Var::Http(name) => return header(&info.req, name.as_bytes(), out),
            Var::Capture(n) => out.extend_from_slice(info.captures.get(*n)),
            Var::NamedCapture(name) => match info.captures.named(name) {
                Some(v) => out.extend_from_slice(v),
                None => return false,
            },
            Var::Pid => {
                let _ = write!(out, "{}", std::process::id());
            }
            Var::RequestLength => {
                let _ = write!(out, "{}", info.req.head_len() as u64 + self.body_read);
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
                let t = info.started.elapsed();
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
fn header(req: &Request, name: &[u8], out: &mut Vec<u8>) -> bool {
    let mut values = req.header_values(name);
    let Some(first) = values.next() else {
        return false;
    };
    out.extend_from_slice(first);
    let sep: &[u8] = if name.eq_ignore_ascii_case(b"cookie") { b"; " } else { b", " };
    for v in values {
        out.extend_from_slice(sep);
        out.extend_from_slice(v);
    }
    true
}
