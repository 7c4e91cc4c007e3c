//! The request packet nginx's `uwsgi_pass` would send, made right where nginx 1.22 is
//! wrong (see ../shared/uwsgi/SPEC.md §3 and §7):
//!
//! 1. the 14 stock `uwsgi_params` in nginx's order (`HTTPS` only when on), any of which a
//!    configured `uwsgi_param` of the same name replaces in place;
//! 2. the other configured `uwsgi_param`s, in configuration order (`if_not_empty` skips an
//!    empty one; an `HTTP_*` param hides the client header of that name);
//! 3. one `HTTP_*` var per request header name, in first-seen order, repeated headers
//!    joined (`"; "` for Cookie, `", "` otherwise, as nginx ≥ 1.23), values trimmed of
//!    spaces and tabs. Dropped: names with `_` or anything outside `[A-Za-z0-9-]` (as nginx:
//!    `X_Forwarded_For` must not pose as `X-Forwarded-For`), `Proxy` (httpoxy),
//!    `X-Forwarded-Proto` (the scheme is ours to tell: `UWSGI_SCHEME=https` after the stock
//!    params on TLS), and `Transfer-Encoding` once a chunked body was de-chunked.
//!
//! Pure: the caller passes the request's facts, its headers and its variables.

use std::fmt;
use std::net::SocketAddr;

use crate::http1::request_head::{BodyFraming, Known, Request};

use crate::ascii::trim_ows;
use crate::variables::{Escape, Template, VarSource};

use super::packet::{PacketError, PacketWriter, MAX_VARS};

/// The request facts that become the stock params.
#[derive(Clone, Debug)]
pub struct CgiRequest<'a> {
    pub method: &'a [u8],
    /// `REQUEST_URI`: the raw target's path and query, undecoded.
    pub request_uri: &'a [u8],
    /// `QUERY_STRING`: the raw query, `b""` when there is none.
    pub query: &'a [u8],
    /// `PATH_INFO`: the decoded, normalised path.
    pub path_info: &'a [u8],
    pub document_root: &'a [u8],
    /// `SERVER_PROTOCOL`: `HTTP/1.0`, `HTTP/1.1`.
    pub protocol: &'a [u8],
    pub https: bool,
    pub remote: Option<SocketAddr>,
    pub server_port: u16,
    /// `SERVER_NAME`: the first `server_name` of the server block.
    pub server_name: &'a [u8],
    pub content_type: Option<&'a [u8]>,
    /// The body length sent after the vars (`None`: no body, `CONTENT_LENGTH` empty).
    pub content_length: Option<u64>,
    /// The client's body was chunked and has been de-chunked: its `Transfer-Encoding`
    /// header is not forwarded next to the computed `CONTENT_LENGTH`.
    pub body_was_chunked: bool,
    /// The peer is a trusted balancer (`set_real_ip_from`): its `X-Forwarded-Proto` is passed.
    pub peer_trusted: bool,
}

/// Where a request stands when it is forwarded, beside its head: what its target and
/// routing made of it.
#[derive(Clone, Copy, Debug)]
pub struct Routed<'a> {
    /// `$request_method`: the client's, or GET after an `error_page` redirect.
    pub method: &'a [u8],
    /// `$request_uri`: [`crate::uri::request_uri`].
    pub request_uri: &'a [u8],
    pub query: Option<&'a [u8]>,
    /// `$uri`: the normalised path, as internal redirects left it.
    pub uri: &'a [u8],
    pub document_root: &'a [u8],
}

impl<'a> CgiRequest<'a> {
    /// The facts nginx's uwsgi module sends for `req`: protocol, content type and framing
    /// from its head, the rest from where it was routed; `server_port` is the port it
    /// arrived on, `content_length` the length of the body that follows the vars.
    pub fn of(
        req: &Request<'a>,
        routed: Routed<'a>,
        remote: Option<SocketAddr>,
        server_port: u16,
        server_name: &'a [u8],
        content_length: Option<u64>,
    ) -> CgiRequest<'a> {
        CgiRequest {
            method: routed.method,
            request_uri: routed.request_uri,
            query: routed.query.unwrap_or(b""),
            path_info: routed.uri,
            document_root: routed.document_root,
            protocol: req.version().as_str().as_bytes(),
            https: false,
            remote,
            server_port,
            server_name,
            content_type: req.known(Known::ContentType),
            content_length,
            body_was_chunked: req.head().body == BodyFraming::Chunked,
            peer_trusted: false,
        }
    }
}

/// A configured `uwsgi_param`.
#[derive(Clone, Debug)]
pub struct Param {
    /// The var name, as written (`HTTP_HOST`, `X_APP`).
    pub name: String,
    pub value: Template,
    pub if_not_empty: bool,
}

/// How to encode: configured params, modifiers, and uWSGI's `buffer-size`.
#[derive(Clone, Debug)]
pub struct EncodeOptions<'a> {
    pub params: &'a [Param],
    pub modifier1: u8,
    pub modifier2: u8,
    /// The backend's `buffer-size`: uWSGI silently drops a bigger vars block.
    pub buffer_size: usize,
}

/// The largest header var, for telling the operator which header made a block too big.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LargestHeader {
    /// The var name, e.g. `HTTP_COOKIE`.
    pub var: String,
    /// Its encoded size (key and value with their length prefixes).
    pub size: usize,
}

/// A request that cannot be sent: both become 431 for the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// Over the protocol's 65535-byte vars block.
    TooBig { size: usize, largest: LargestHeader },
    /// Over the backend's `buffer-size`, which uWSGI would answer by closing the socket.
    OverBufferSize { size: usize, buffer_size: usize, largest: LargestHeader },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::TooBig { size, largest } => write!(
                f,
                "uwsgi request is too big: the vars block would be {size} bytes, over the protocol's limit of 65535; the largest header is {} ({} bytes)",
                largest.var, largest.size
            ),
            EncodeError::OverBufferSize { size, buffer_size, largest } => write!(
                f,
                "uwsgi request vars block is {size} bytes, over uwsgi_buffer_size {buffer_size}: uWSGI would drop it; the largest header is {} ({} bytes). Raise uWSGI's buffer-size and this upstream's uwsgi_buffer_size together (both up to 65535)",
                largest.var, largest.size
            ),
        }
    }
}

const STOCK: [&str; 14] = [
    "QUERY_STRING",
    "REQUEST_METHOD",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "REQUEST_URI",
    "PATH_INFO",
    "DOCUMENT_ROOT",
    "SERVER_PROTOCOL",
    "REQUEST_SCHEME",
    "HTTPS",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "SERVER_PORT",
    "SERVER_NAME",
];

/// Whether `name` is one of the stock params (a `uwsgi_param` of that name replaces it).
fn is_stock_param(name: &str) -> bool {
    STOCK.contains(&name)
}

/// Encodes the packet (header and vars, not the body) into `buf`, which is cleared first
/// and may be reused across requests. Returns the packet's length. `headers` yields the
/// request headers in arrival order each time it is called (it is walked more than once
/// to join repeated names without allocating).
pub fn encode_request<'h, H, I>(
    req: &CgiRequest,
    headers: H,
    opts: &EncodeOptions,
    vars: &dyn VarSource,
    buf: &mut Vec<u8>,
) -> Result<usize, EncodeError>
where
    H: Fn() -> I,
    I: Iterator<Item = (&'h [u8], &'h [u8])>,
{
    buf.clear();
    let mut w = PacketWriter::new(buf);
    for name in STOCK {
        if let Some(p) = opts.params.iter().find(|p| p.name == name) {
            push_param(&mut w, p, vars);
        } else {
            push_stock(&mut w, name, req);
        }
    }
    // uWSGI sets `wsgi.url_scheme` from UWSGI_SCHEME (SPEC §3.6): the app builds https://
    // URLs for a TLS request without trusting any header
    if req.https && !opts.params.iter().any(|p| p.name == "UWSGI_SCHEME") {
        w.push(b"UWSGI_SCHEME", b"https");
    }
    for p in opts.params.iter().filter(|p| !is_stock_param(&p.name)) {
        push_param(&mut w, p, vars);
    }

    // the largest header var, named only if the block is refused
    let mut largest: (&[u8], usize) = (b"", 0);
    let mut key = Vec::with_capacity(64);
    for (i, (name, value)) in headers().enumerate() {
        if !forwardable(name, req)
            || headers().take(i).any(|(earlier, _)| earlier.eq_ignore_ascii_case(name))
            || opts.params.iter().any(|p| is_header_var(p.name.as_bytes(), name))
        {
            continue;
        }
        header_var_name(name, &mut key);
        let later = headers().skip(i + 1).filter(|(n, _)| n.eq_ignore_ascii_case(name));
        let sep: &[u8] = if name.eq_ignore_ascii_case(b"cookie") { b"; " } else { b", " };
        let size = w.push_with(
            &key,
            |out| {
                out.extend_from_slice(trim_ows(value));
                for (_, v) in later {
                    out.extend_from_slice(sep);
                    out.extend_from_slice(trim_ows(v));
                }
            },
            false,
        );
        if size > largest.1 {
            largest = (name, size);
        }
    }
    let size = w.vars_len();
    if size > MAX_VARS {
        // checked first: the protocol limit is the harder one to fix
        return Err(EncodeError::TooBig { size, largest: largest_header(largest) });
    }
    if size > opts.buffer_size {
        return Err(EncodeError::OverBufferSize {
            size,
            buffer_size: opts.buffer_size,
            largest: largest_header(largest),
        });
    }
    w.finish(opts.modifier1, opts.modifier2).map_err(|PacketError::TooBig { size }| EncodeError::TooBig {
        size,
        largest: largest_header(largest),
    })
}

fn largest_header((name, size): (&[u8], usize)) -> LargestHeader {
    if size == 0 {
        return LargestHeader::default();
    }
    let mut var = Vec::new();
    header_var_name(name, &mut var);
    LargestHeader { var: String::from_utf8_lossy(&var).into_owned(), size }
}

fn push_param(w: &mut PacketWriter, p: &Param, vars: &dyn VarSource) {
    w.push_with(p.name.as_bytes(), |out| p.value.render(vars, Escape::None, out), p.if_not_empty);
}

fn push_stock(w: &mut PacketWriter, name: &'static str, req: &CgiRequest) {
    let key = name.as_bytes();
    match name {
        "QUERY_STRING" => w.push(key, req.query),
        "REQUEST_METHOD" => w.push(key, req.method),
        "CONTENT_TYPE" => w.push(key, req.content_type.map_or(&b""[..], trim_ows)),
        "CONTENT_LENGTH" => push_shown(w, key, req.content_length),
        "REQUEST_URI" => w.push(key, req.request_uri),
        "PATH_INFO" => w.push(key, req.path_info),
        "DOCUMENT_ROOT" => w.push(key, req.document_root),
        "SERVER_PROTOCOL" => w.push(key, req.protocol),
        "REQUEST_SCHEME" => w.push(key, if req.https { b"https" } else { b"http" }),
        "HTTPS" => {
            if req.https {
                w.push(key, b"on");
            }
        }
        "REMOTE_ADDR" => push_shown(w, key, req.remote.map(|r| r.ip())),
        "REMOTE_PORT" => push_shown(w, key, req.remote.map(|r| r.port())),
        "SERVER_PORT" => push_shown(w, key, Some(req.server_port)),
        _ => w.push(key, req.server_name),
    }
}

/// A var written with `Display`, empty when there is no value (nginx sends those empty).
fn push_shown(w: &mut PacketWriter, key: &[u8], value: Option<impl fmt::Display>) {
    use std::io::Write;
    w.push_with(
        key,
        |out| {
            if let Some(v) = value {
                let _ = write!(out, "{v}");
            }
        },
        false,
    );
}

/// Whether a request header may become an `HTTP_*` var.
fn forwardable(name: &[u8], req: &CgiRequest) -> bool {
    !name.is_empty()
        && name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && !name.eq_ignore_ascii_case(b"proxy")
        // the scheme is Portico's to tell (REQUEST_SCHEME, HTTPS, UWSGI_SCHEME): a client's
        // own claim would let a ProxyFix'd app take plain HTTP for HTTPS; a trusted
        // balancer that ended TLS itself says it
        && (req.peer_trusted || !name.eq_ignore_ascii_case(b"x-forwarded-proto"))
        && (!req.body_was_chunked || !name.eq_ignore_ascii_case(b"transfer-encoding"))
}

/// `HTTP_` + the name upper-cased with `-` as `_`.
fn header_var_name(name: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(b"HTTP_");
    out.extend(name.iter().map(|&b| if b == b'-' { b'_' } else { b.to_ascii_uppercase() }));
}

/// Whether the param name `param` is the var header `name` would produce.
fn is_header_var(param: &[u8], name: &[u8]) -> bool {
    param.len() == name.len() + 5
        && param.starts_with(b"HTTP_")
        && param[5..]
            .iter()
            .zip(name)
            .all(|(&p, &n)| p == if n == b'-' { b'_' } else { n.to_ascii_uppercase() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uwsgi::codec::packet::decode;
    use crate::variables::{Scope, Var};

    struct HostVar;
    impl VarSource for HostVar {
        fn write_var(&self, var: &Var, out: &mut Vec<u8>) -> bool {
            match var {
                Var::Host => out.extend_from_slice(b"localhost"),
                _ => return false,
            }
            true
        }
    }

    fn request() -> CgiRequest<'static> {
        CgiRequest {
            method: b"GET",
            request_uri: b"/p?q=1",
            query: b"q=1",
            path_info: b"/p",
            document_root: b"",
            protocol: b"HTTP/1.1",
            https: false,
            remote: "127.0.0.1:5555".parse().ok(),
            server_port: 8080,
            server_name: b"localhost",
            content_type: None,
            content_length: None,
            body_was_chunked: false,
            peer_trusted: false,
        }
    }

    fn encode(
        req: &CgiRequest,
        headers: &[(&str, &str)],
        params: &[Param],
        buffer_size: usize,
    ) -> Result<Vec<(String, String)>, EncodeError> {
        let mut buf = Vec::new();
        let opts = EncodeOptions { params, modifier1: 0, modifier2: 0, buffer_size };
        let it = || headers.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes()));
        encode_request(req, it, &opts, &HostVar, &mut buf)?;
        let p = decode(&buf).expect("our packets decode");
        Ok(p.vars
            .iter()
            .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), String::from_utf8_lossy(v).into_owned()))
            .collect())
    }

    fn param(name: &str, value: &str, if_not_empty: bool) -> Param {
        Param {
            name: name.into(),
            value: Template::parse(value, Scope::Request { named_groups: &[] }).unwrap(),
            if_not_empty,
        }
    }

    fn get<'a>(vars: &'a [(String, String)], key: &str) -> Vec<&'a str> {
        vars.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    #[test]
    fn stock_params_in_nginx_order() {
        let v = encode(&request(), &[("Host", "localhost:8080")], &[], 4096).unwrap();
        let keys: Vec<&str> = v.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "QUERY_STRING",
                "REQUEST_METHOD",
                "CONTENT_TYPE",
                "CONTENT_LENGTH",
                "REQUEST_URI",
                "PATH_INFO",
                "DOCUMENT_ROOT",
                "SERVER_PROTOCOL",
                "REQUEST_SCHEME",
                "REMOTE_ADDR",
                "REMOTE_PORT",
                "SERVER_PORT",
                "SERVER_NAME",
                "HTTP_HOST"
            ]
        );
        assert_eq!(get(&v, "CONTENT_TYPE"), [""]);
        assert_eq!(get(&v, "CONTENT_LENGTH"), [""]);
        assert_eq!(get(&v, "REMOTE_PORT"), ["5555"]);
        assert_eq!(get(&v, "HTTP_HOST"), ["localhost:8080"]);
    }

    #[test]
    fn https_only_when_on() {
        let mut r = request();
        r.https = true;
        let v = encode(&r, &[], &[], 4096).unwrap();
        assert_eq!(get(&v, "HTTPS"), ["on"]);
        assert_eq!(get(&v, "REQUEST_SCHEME"), ["https"]);
        assert_eq!(get(&v, "UWSGI_SCHEME"), ["https"]);
        let v = encode(&request(), &[], &[], 4096).unwrap();
        assert!(get(&v, "HTTPS").is_empty() && get(&v, "UWSGI_SCHEME").is_empty());
    }

    #[test]
    fn repeated_headers_are_joined_in_first_seen_order() {
        let v = encode(
            &request(),
            &[("Cookie", "a=1"), ("X-Dup", "one"), ("cookie", "b=2"), ("X-DUP", " two\t")],
            &[],
            4096,
        )
        .unwrap();
        assert_eq!(get(&v, "HTTP_COOKIE"), ["a=1; b=2"]);
        assert_eq!(get(&v, "HTTP_X_DUP"), ["one, two"]);
        let keys: Vec<&str> = v.iter().skip(13).map(|(k, _)| k.as_str()).collect();
        assert_eq!(v[12].0, "SERVER_NAME");
        assert_eq!(keys, ["HTTP_COOKIE", "HTTP_X_DUP"]);
    }

    #[test]
    fn dropped_headers() {
        let mut r = request();
        r.body_was_chunked = true;
        r.content_length = Some(3);
        let v = encode(
            &r,
            &[
                ("X_Forwarded_For", "spoof"),
                ("X-Forwarded-For", "203.0.113.9"),
                ("Proxy", "http://evil"),
                ("Transfer-Encoding", "chunked"),
                ("Bad.Name", "x"),
            ],
            &[],
            4096,
        )
        .unwrap();
        assert_eq!(get(&v, "HTTP_X_FORWARDED_FOR"), ["203.0.113.9"]);
        assert!(get(&v, "HTTP_PROXY").is_empty());
        assert!(get(&v, "HTTP_TRANSFER_ENCODING").is_empty());
        assert!(v.iter().all(|(k, _)| !k.contains('.')));
        assert_eq!(get(&v, "CONTENT_LENGTH"), ["3"]);
    }

    #[test]
    fn params_override_in_place_and_shadow_headers() {
        let params = [
            param("SERVER_NAME", "example.org", false),
            param("HTTP_HOST", "$host", false),
            param("X_EMPTY", "$http_x_nope", true),
            param("X_KEPT", "", false),
        ];
        let v = encode(&request(), &[("Host", "LocalHost:8080"), ("Accept", "*/*")], &params, 4096).unwrap();
        assert_eq!(v[12], ("SERVER_NAME".to_string(), "example.org".to_string()));
        assert_eq!(get(&v, "SERVER_NAME").len(), 1);
        assert_eq!(get(&v, "HTTP_HOST"), ["localhost"]);
        assert_eq!(v[13].0, "HTTP_HOST");
        assert!(get(&v, "X_EMPTY").is_empty());
        assert_eq!(get(&v, "X_KEPT"), [""]);
        assert_eq!(v.last().unwrap().0, "HTTP_ACCEPT");
    }

    #[test]
    fn configured_order_matters_only_among_the_other_params() {
        let stock_last =
            [param("X_ONE", "1", false), param("X_TWO", "2", false), param("SERVER_NAME", "s", false)];
        let stock_first =
            [param("SERVER_NAME", "s", false), param("X_ONE", "1", false), param("X_TWO", "2", false)];
        let v = encode(&request(), &[], &stock_last, 4096).unwrap();
        assert_eq!(v, encode(&request(), &[], &stock_first, 4096).unwrap());
        assert_eq!(v[12], ("SERVER_NAME".to_string(), "s".to_string()));
        let rest: Vec<&str> = v.iter().skip(13).map(|(k, _)| k.as_str()).collect();
        assert_eq!(rest, ["X_ONE", "X_TWO"]);
    }

    #[test]
    fn over_buffer_size_names_both_sizes_and_the_header() {
        let cookie = "c".repeat(5000);
        let e = encode(&request(), &[("Cookie", &cookie), ("Accept", "*/*")], &[], 4096).unwrap_err();
        match &e {
            EncodeError::OverBufferSize { size, buffer_size, largest } => {
                assert!(*size > 5000);
                assert_eq!(*buffer_size, 4096);
                assert_eq!(largest.var, "HTTP_COOKIE");
            }
            other => panic!("{other:?}"),
        }
        let text = e.to_string();
        assert!(text.contains("uwsgi_buffer_size 4096") && text.contains("buffer-size"), "{text}");
        // the same request fits a 32k backend
        assert!(encode(&request(), &[("Cookie", &cookie)], &[], 32768).is_ok());
    }

    #[test]
    fn over_65535_is_refused_with_the_culprit() {
        let big = "b".repeat(40_000);
        let e = encode(&request(), &[("X-A", &big), ("X-B", &big)], &[], 65535).unwrap_err();
        match e {
            EncodeError::TooBig { size, largest } => {
                assert!(size > 80_000);
                assert_eq!(largest.var, "HTTP_X_A");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn header_var_matching() {
        assert!(is_header_var(b"HTTP_X_FROM_PARAM", b"x-from-param"));
        assert!(!is_header_var(b"HTTP_X_FROM", b"x-from-param"));
        assert!(!is_header_var(b"X_FROM_PARAM", b"x-from-param"));
    }
}
