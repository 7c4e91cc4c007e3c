//! What Portico knows about one request while it serves it (the parsed head plus what
//! the steps work out), and what was answered: the values `request_vars` reads.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::http1::request_head::{Method, Request};
use crate::routing::locations::Captures;

/// The request as the steps see it: the parsed head, plus what routing works out.
pub struct RequestInfo<'r> {
    pub req: Request<'r>,
    /// Serial number of the connection (`*N` in error logs, `$connection`).
    pub connection: u64,
    /// How many requests this connection has carried, this one included.
    pub connection_requests: u64,
    pub started: Instant,
    /// The method the steps act on: an `error_page` redirect makes it GET, as nginx.
    pub method: Method,
    /// `$request_method`.
    pub method_name: &'r [u8],
    /// `$request_uri` and uwsgi's `REQUEST_URI`: the target's raw path and query, an
    /// absolute-form target reduced to them as nginx does; empty until the target parsed.
    pub request_uri: Cow<'r, [u8]>,
    /// Raw query after the first `?` (`$args`).
    pub query: Option<&'r [u8]>,
    /// The current normalised URI (`$uri`); internal redirects change it. Borrowed from
    /// the target when it needed no normalising.
    pub uri: Cow<'r, [u8]>,
    /// `$host`: the normalised host, or the server's name when the request had none.
    pub host: Cow<'r, str>,
    pub remote: Option<SocketAddr>,
    pub local: Option<SocketAddr>,
    /// The request came over TLS (`$https`, `$scheme`, uWSGI's `HTTPS`).
    pub https: bool,
    /// The client's address in the connection's PROXY protocol header
    /// (`$proxy_protocol_addr`, `$proxy_protocol_port`).
    pub proxy_protocol: Option<SocketAddr>,
    /// The connection's peer is in `set_real_ip_from`.
    pub peer_trusted: bool,
    /// Captures from the regex location currently serving the request.
    pub captures: Captures<'r>,
    /// `$document_root` of the location serving the request.
    pub document_root: &'r [u8],
}

impl<'r> RequestInfo<'r> {
    /// A request as its head arrived, before the checks and routing fill in the rest.
    pub fn new(
        req: Request<'r>,
        connection: u64,
        connection_requests: u64,
        started: Instant,
        (remote, local): (Option<SocketAddr>, Option<SocketAddr>),
    ) -> RequestInfo<'r> {
        RequestInfo {
            req,
            connection,
            connection_requests,
            started,
            method: req.method(),
            method_name: req.method_name(),
            request_uri: Cow::Borrowed(&[]),
            query: None,
            uri: Cow::Borrowed(&[]),
            host: Cow::Borrowed(""),
            remote,
            local,
            https: false,
            proxy_protocol: None,
            peer_trusted: false,
            captures: Captures::default(),
            document_root: b"",
        }
    }

    /// `$scheme`.
    pub fn scheme(&self) -> &'static str {
        if self.https {
            "https"
        } else {
            "http"
        }
    }

    /// `$request`: the request line as nginx logs it.
    pub fn write_request_line(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.req.method_name());
        out.push(b' ');
        out.extend_from_slice(self.req.target());
        out.push(b' ');
        out.extend_from_slice(self.req.version().as_str().as_bytes());
    }

    /// The request line for the error log's `request: "..."`.
    pub fn request_line(&self) -> String {
        let mut line = Vec::new();
        self.write_request_line(&mut line);
        String::from_utf8_lossy(&line).into_owned()
    }
}

/// What the access log says about the backend.
#[derive(Default)]
pub struct UpstreamFields {
    pub addr: Option<String>,
    pub status: Option<u16>,
    pub time: Option<Duration>,
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
    pub content_type: Option<Cow<'static, str>>,
    pub location: Option<String>,
}
