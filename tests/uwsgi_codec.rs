//! The uwsgi codec against golden vectors: the exact packets nginx 1.22 sent for known
//! HTTP requests (tests/vectors/nginx_to_upstream, copied from ../shared/uwsgi/captures),
//! and uWSGI's own response bytes (tests/vectors/uwsgi_direct). Our vars must equal
//! nginx's except where Portico deliberately differs, and each test says where.
//!
//! SPEC.md §9 checklist, request encoding, and the tests covering each item:
//! - header `00 <len lo> <len hi> 00`, vars per §7: every golden test (byte-level header
//!   check in `packet_header_matches_nginx`), modifiers in `modifiers_and_params_as_configured`;
//! - refuse a block over 65535 (Portico: 431, not 500): `over_65535_is_refused`;
//! - the 14 stock params in order with the empty/omitted rules: `get_with_cookie_stock_params`,
//!   `http10_and_head`, `post_form_content_headers`;
//! - `HTTP_*` mangling, `_` names dropped: `underscore_and_lower_case_headers`;
//! - duplicates joined: `duplicate_headers_are_joined`;
//! - HTTP_HOST policy switch (`uwsgi_param HTTP_HOST = "$host"` for Debian's):
//!   `debian_http_host_via_uwsgi_param`, `absolute_form_targets`;
//! - PATH_INFO decoded and normalised, REQUEST_URI raw: `path_normalisation`;
//! - CONTENT_LENGTH exact for a de-chunked body, Transfer-Encoding not forwarded:
//!   `chunked_post_sends_the_decoded_length`, `empty_chunked_post`.

use std::net::SocketAddr;

use portico::http1::chunked::ChunkedDecoder;
use portico::http1::request_head::{parse_head as parse_request_head, HeadLimits, Request};
use portico::uri::{normalized, request_uri, split_target};
use portico::uwsgi::codec::app_response::{parse_head, Framing};
use portico::uwsgi::codec::packet::{decode, PacketWriter};
use portico::uwsgi::codec::vars_block::{
    encode_request, CgiRequest, EncodeError, EncodeOptions, Param, Routed,
};
use portico::variables::{Scope, Template, Var, VarSource};

type Vars = Vec<(String, String)>;

/// nginx's vars from a captured packet.
fn captured(name: &str) -> (Vars, Vec<u8>) {
    let bytes = std::fs::read(format!("tests/vectors/nginx_to_upstream/{name}.req.bin")).expect("vector");
    let p = decode(&bytes).expect("nginx's packet decodes");
    (to_strings(&p.vars), p.rest.to_vec())
}

fn to_strings(vars: &[(&[u8], &[u8])]) -> Vars {
    vars.iter()
        .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), String::from_utf8_lossy(v).into_owned()))
        .collect()
}

fn value<'a>(vars: &'a Vars, key: &str) -> &'a str {
    vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("no {key}"))
}

/// `$host` for the `uwsgi_param HTTP_HOST = "$host"` cases.
struct HostVar(String);
impl VarSource for HostVar {
    fn write_var(&self, var: &Var, out: &mut Vec<u8>) -> bool {
        match var {
            Var::Host => out.extend_from_slice(self.0.as_bytes()),
            _ => return false,
        }
        true
    }
}

struct Case<'a> {
    /// The HTTP request as the client sent it (head only).
    http: &'a str,
    params: Vec<Param>,
    modifiers: (u8, u8),
    /// `Some(len)` when a body of that length follows (after de-chunking).
    body_len: Option<u64>,
    chunked: bool,
    /// Facts the capture has that depend on the run: client port, `$host`.
    remote_port: u16,
    host_var: &'a str,
}

impl Case<'_> {
    fn new(http: &str, remote_port: u16) -> Case<'_> {
        Case {
            http,
            params: Vec::new(),
            modifiers: (0, 0),
            body_len: None,
            chunked: false,
            remote_port,
            host_var: "",
        }
    }
}

/// Encodes `case` with Portico's own steps — the head parser, the target split, the
/// normalisation and `CgiRequest::of` — and returns the packet.
fn ours(case: &Case) -> Vec<u8> {
    let raw = case.http.as_bytes();
    let head = match parse_request_head(raw, &HeadLimits::default(), Vec::new()) {
        Ok(Ok(head)) => head,
        _ => panic!("test request parses: {:?}", case.http),
    };
    let req = Request::new(&head, raw);
    let target = split_target(req.target()).expect("target");
    let path_info = normalized(target.raw_path).expect("path");
    let request_uri = request_uri(req.target(), target.raw_path, target.query);
    let routed = Routed {
        method: req.method_name(),
        request_uri: &request_uri,
        query: target.query,
        uri: &path_info,
        document_root: b"/srv/www/flask/nginx/html",
    };
    let remote: SocketAddr = format!("127.0.0.1:{}", case.remote_port).parse().unwrap();
    let cgi = CgiRequest::of(&req, routed, Some(remote), 18180, b"localhost", case.body_len);
    assert_eq!(cgi.body_was_chunked, case.chunked, "the head's framing");
    let opts = EncodeOptions {
        params: &case.params,
        modifier1: case.modifiers.0,
        modifier2: case.modifiers.1,
        buffer_size: 65535,
    };
    let mut buf = Vec::new();
    encode_request(&cgi, || req.headers(), &opts, &HostVar(case.host_var.to_string()), &mut buf)
        .expect("encodes");
    buf
}

fn ours_vars(case: &Case) -> Vars {
    let packet = ours(case);
    let p = decode(&packet).expect("ours decodes");
    to_strings(&p.vars)
}

fn param(name: &str, value: &str, if_not_empty: bool) -> Param {
    Param {
        name: name.to_string(),
        value: Template::parse(value, Scope::Request { named_groups: &[] }).unwrap(),
        if_not_empty,
    }
}

const CURL_HEADERS: &str = "User-Agent: curl-test/1\r\nAccept: */*\r\n";

#[test]
fn get_with_cookie_stock_params() {
    let (nginx, _) = captured("03_get_headers_upstream");
    let http = format!(
        "GET /recu/page?q=1&x=%20y HTTP/1.1\r\nHost: 127.0.0.1:18180\r\n{CURL_HEADERS}X-Case: get_headers_upstream\r\nAccept-Language: en-GB,en;q=0.8\r\nCookie: session=abc123; theme=dark\r\nX-Forwarded-For: 203.0.113.9\r\nX-Requested-With: XMLHttpRequest\r\n\r\n"
    );
    assert_eq!(ours_vars(&Case::new(&http, 54394)), nginx);
}

#[test]
fn packet_header_matches_nginx() {
    let bytes = std::fs::read("tests/vectors/nginx_to_upstream/03_get_headers_upstream.req.bin").unwrap();
    let http = format!(
        "GET /recu/page?q=1&x=%20y HTTP/1.1\r\nHost: 127.0.0.1:18180\r\n{CURL_HEADERS}X-Case: get_headers_upstream\r\nAccept-Language: en-GB,en;q=0.8\r\nCookie: session=abc123; theme=dark\r\nX-Forwarded-For: 203.0.113.9\r\nX-Requested-With: XMLHttpRequest\r\n\r\n"
    );
    // byte for byte, header included: 00 47 02 00
    assert_eq!(ours(&Case::new(&http, 54394)), bytes);
}

#[test]
fn debian_http_host_via_uwsgi_param() {
    let (nginx, _) = captured("02_get_headers_debian");
    let http = format!(
        "GET /rec/page?q=1&x=%20y HTTP/1.1\r\nHost: 127.0.0.1:18180\r\n{CURL_HEADERS}X-Case: get_headers_debian\r\nAccept-Language: en-GB,en;q=0.8\r\nCookie: session=abc123; theme=dark\r\nX-Forwarded-For: 203.0.113.9\r\nX-Requested-With: XMLHttpRequest\r\n\r\n"
    );
    let mut case = Case::new(&http, 54382);
    case.params = vec![param("HTTP_HOST", "$host", false)];
    case.host_var = "127.0.0.1";
    assert_eq!(ours_vars(&case), nginx);

    let (nginx, _) = captured("18_host_with_port_debian");
    let mut case =
        Case::new("GET /rec/port HTTP/1.1\r\nHost: LocalHost:18180\r\nConnection: close\r\n\r\n", 48378);
    case.params = vec![param("HTTP_HOST", "$host", false)];
    case.host_var = "localhost";
    assert_eq!(ours_vars(&case), nginx);
}

#[test]
fn absolute_form_targets() {
    let raw =
        "GET http://other.example:8080/recu/abs HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n";
    let (nginx, _) = captured("17_absolute_form_host_upstream");
    assert_eq!(ours_vars(&Case::new(raw, 48362)), nginx);

    let raw =
        "GET http://other.example:8080/rec/abs HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n";
    let (nginx, _) = captured("16_absolute_form_host_debian");
    let mut case = Case::new(raw, 48348);
    case.params = vec![param("HTTP_HOST", "$host", false)];
    case.host_var = "other.example";
    assert_eq!(ours_vars(&case), nginx);
}

#[test]
fn duplicate_headers_are_joined() {
    let (nginx, _) = captured("04_get_dup_headers");
    let http = "GET /recu/dup HTTP/1.1\r\nHost: 127.0.0.1:18180\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\nX-Case: get_dup_headers\r\nCookie: a=1\r\nCookie: b=2\r\nX-Dup: one\r\nX-Dup: two\r\n\r\n";
    let ours = ours_vars(&Case::new(http, 54400));
    // nginx 1.22 sends HTTP_COOKIE twice (the app keeps only b=2); Portico joins them as
    // nginx >= 1.23 does
    let mut expected: Vars =
        nginx.into_iter().filter(|(k, _)| k != "HTTP_COOKIE" && k != "HTTP_X_DUP").collect();
    expected.push(("HTTP_COOKIE".into(), "a=1; b=2".into()));
    expected.push(("HTTP_X_DUP".into(), "one, two".into()));
    assert_eq!(ours, expected);
}

#[test]
fn underscore_and_lower_case_headers() {
    let (nginx, _) = captured("05_get_underscore_header");
    let http = "GET /recu/under HTTP/1.1\r\nHost: 127.0.0.1:18180\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\nX-Case: get_underscore_header\r\nX_Under: dropped?\r\nX-Ok: kept\r\nx-lower-case: v\r\n\r\n";
    assert_eq!(ours_vars(&Case::new(http, 54414)), nginx);
}

#[test]
fn path_normalisation() {
    let (nginx, _) = captured("06_get_path_normalization");
    let http = "GET /recu//a%20b/./c/../d%2Fe%3Fnot-query?q=%20+1 HTTP/1.1\r\nHost: 127.0.0.1:18180\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\nX-Case: get_path_normalization\r\n\r\n";
    let port: u16 = value(&nginx, "REMOTE_PORT").parse().unwrap();
    assert_eq!(ours_vars(&Case::new(http, port)), nginx);
    assert_eq!(value(&nginx, "PATH_INFO"), "/recu/a b/d/e?not-query");
}

#[test]
fn http10_and_head() {
    let (nginx, _) = captured("07_get_http10");
    let http = "GET /recu/http10 HTTP/1.0\r\nHost: 127.0.0.1:18180\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\nX-Case: get_http10\r\n\r\n";
    assert_eq!(ours_vars(&Case::new(http, 54432)), nginx);

    let (nginx, _) = captured("08_head_request");
    let http = "HEAD /recu/head HTTP/1.1\r\nHost: 127.0.0.1:18180\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\nX-Case: head_request\r\n\r\n";
    assert_eq!(ours_vars(&Case::new(http, 48264)), nginx);
}

#[test]
fn modifiers_and_params_as_configured() {
    let bytes = std::fs::read("tests/vectors/nginx_to_upstream/10_get_modifiers_params.req.bin").unwrap();
    let (nginx, _) = captured("10_get_modifiers_params");
    let http = "GET /recu-mod/y HTTP/1.1\r\nHost: 127.0.0.1:18180\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\nX-Case: get_modifiers_params\r\nX-From-Param: header value\r\nCookie: c=1\r\n\r\n";
    let mut case = Case::new(http, 48292);
    case.modifiers = (30, 9);
    case.params = vec![
        param("SCRIPT_NAME", "/recu-mod", false),
        param("HTTP_X_FROM_PARAM", "param wins", false),
        param("EMPTY_SKIPPED", "$http_x_nonexistent", true),
        param("EMPTY_SENT", "$http_x_nonexistent", false),
    ];
    let packet = ours(&case);
    assert_eq!((packet[0], packet[3]), (bytes[0], bytes[3]));
    assert_eq!((packet[0], packet[3]), (30, 9));
    assert_eq!(to_strings(&decode(&packet).unwrap().vars), nginx);
}

#[test]
fn post_form_content_headers() {
    let (nginx, body) = captured("11_post_form");
    let http = "POST /recu/form HTTP/1.1\r\nHost: 127.0.0.1:18180\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\nX-Case: post_form\r\nContent-Length: 25\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n";
    let mut case = Case::new(http, 48298);
    case.body_len = Some(25);
    assert_eq!(ours_vars(&case), nginx);
    assert_eq!(body, b"user=alice&pass=s3cret%21");
}

#[test]
fn chunked_post_sends_the_decoded_length() {
    let (nginx, body) = captured("12_post_chunked");
    let http = "POST /recu/chunked HTTP/1.1\r\nHost: 127.0.0.1:18180\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\nX-Case: post_chunked\r\nTransfer-Encoding: chunked\r\nContent-Type: application/octet-stream\r\n\r\n";
    let mut case = Case::new(http, 48306);
    case.body_len = Some(body.len() as u64);
    case.chunked = true;
    // nginx 1.22 forwards HTTP_TRANSFER_ENCODING=chunked next to the computed length;
    // Portico does not (the body it sends is not chunked)
    let expected: Vars = nginx.into_iter().filter(|(k, _)| k != "HTTP_TRANSFER_ENCODING").collect();
    assert_eq!(ours_vars(&case), expected);
    assert_eq!(value(&expected, "CONTENT_LENGTH"), "102400");
    let reference: Vec<u8> = (0..102_400u32).map(|i| (i * 7 % 256) as u8).collect();
    assert!(body == reference, "the capture's body is the de-chunked body_100k.bin");
}

#[test]
fn empty_chunked_post() {
    let (nginx, _) = captured("15_post_empty_chunked");
    let http = "POST /recu/emptychunked HTTP/1.1\r\nHost: 127.0.0.1:18180\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\nX-Case: post_empty_chunked\r\nTransfer-Encoding: chunked\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n";
    let mut case = Case::new(http, 48336);
    case.body_len = Some(0);
    case.chunked = true;
    let expected: Vars = nginx.into_iter().filter(|(k, _)| k != "HTTP_TRANSFER_ENCODING").collect();
    assert_eq!(ours_vars(&case), expected);
}

#[test]
fn over_65535_is_refused() {
    let big = "a".repeat(30_000);
    let http = format!("GET /toobig HTTP/1.1\r\nHost: big\r\nX-A: {big}\r\nX-B: {big}\r\nX-C: {big}\r\n\r\n");
    let mut headers = [httparse::EMPTY_HEADER; 8];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(http.as_bytes()).unwrap();
    let cgi = CgiRequest {
        method: b"GET",
        request_uri: b"/toobig",
        query: b"",
        path_info: b"/toobig",
        document_root: b"",
        protocol: b"HTTP/1.1",
        https: false,
        remote: None,
        server_port: 80,
        server_name: b"big",
        content_type: None,
        content_length: None,
        body_was_chunked: false,
        peer_trusted: false,
    };
    let opts = EncodeOptions { params: &[], modifier1: 0, modifier2: 0, buffer_size: 65535 };
    let mut buf = Vec::new();
    let e = encode_request(
        &cgi,
        || req.headers.iter().map(|h| (h.name.as_bytes(), h.value)),
        &opts,
        &HostVar(String::new()),
        &mut buf,
    )
    .unwrap_err();
    match e {
        EncodeError::TooBig { size, largest } => {
            assert!(size > 90_000, "{size}");
            assert_eq!(largest.var, "HTTP_X_A");
        }
        other => panic!("{other:?}"),
    }
}

/// A small deterministic generator: property tests without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn round_trip_arbitrary_vars() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2000 {
        let n = rng.below(40);
        let mut pairs = Vec::new();
        for _ in 0..n {
            let mut key = rng.bytes(64);
            if key.is_empty() {
                key.push(b'K');
            }
            let value_max = if rng.below(10) == 0 { 3000 } else { 100 };
            pairs.push((key, rng.bytes(value_max)));
        }
        let (m1, m2) = (rng.next() as u8, rng.next() as u8);
        let mut buf = Vec::new();
        let mut w = PacketWriter::new(&mut buf);
        for (k, v) in &pairs {
            w.push(k, v);
        }
        let size: usize = pairs.iter().map(|(k, v)| 4 + k.len() + v.len()).sum();
        match w.finish(m1, m2) {
            Ok(len) => {
                assert!(size <= 65535);
                assert_eq!(len, size + 4);
                let p = decode(&buf).expect("round trip");
                assert_eq!((p.modifier1, p.modifier2), (m1, m2));
                let got: Vec<(Vec<u8>, Vec<u8>)> =
                    p.vars.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
                assert_eq!(got, pairs);
                assert!(p.rest.is_empty());
            }
            Err(_) => assert!(size > 65535),
        }
    }
}

fn response(name: &str) -> Vec<u8> {
    std::fs::read(format!("tests/vectors/uwsgi_direct/{name}.resp.bin")).expect("vector")
}

#[test]
fn uwsgi_responses_parse() {
    let raw = response("get_basic");
    let h = parse_head(&raw, 4096, false).unwrap().unwrap();
    assert_eq!((h.status, h.framing), (200, Framing::Length(689)));
    assert_eq!(raw.len() - h.head_len, 689);

    let raw = response("flask_get_basic");
    let h = parse_head(&raw, 4096, false).unwrap().unwrap();
    assert_eq!(h.status, 200);
    let Framing::Length(n) = h.framing else { panic!("{:?}", h.framing) };
    assert_eq!(raw.len() - h.head_len, n as usize);

    let raw = response("resp_stream");
    let h = parse_head(&raw, 4096, false).unwrap().unwrap();
    assert_eq!(h.framing, Framing::UntilClose);
    assert_eq!(&raw[h.head_len..], b"chunk-0\nchunk-1\nchunk-2\n");

    let raw = response("head_bigresp");
    assert_eq!(parse_head(&raw, 4096, true).unwrap().unwrap().framing, Framing::None);

    let raw = response("resp_204");
    assert_eq!(parse_head(&raw, 4096, false).unwrap().unwrap().framing, Framing::None);

    let raw = response("resp_nocl");
    assert_eq!(parse_head(&raw, 4096, false).unwrap().unwrap().framing, Framing::UntilClose);
}

#[test]
fn app_chunked_body_is_decoded_once() {
    let raw = response("resp_app_te_chunked");
    let h = parse_head(&raw, 4096, false).unwrap().unwrap();
    assert_eq!(h.framing, Framing::Chunked);
    assert!(h.headers(&raw).all(|(n, _)| !n.eq_ignore_ascii_case(b"transfer-encoding")));
    let mut d = ChunkedDecoder::new();
    let mut body = Vec::new();
    d.decode_into(&raw[h.head_len..], &mut body).unwrap();
    assert!(d.is_done());
    // nginx 1.22 would send this to the client chunked twice
    assert_eq!(body, b"hello");
}
