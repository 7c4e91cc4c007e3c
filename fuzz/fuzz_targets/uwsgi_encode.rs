//! An arbitrary HTTP request head (parsed as pingora parses it) through the uwsgi request
//! encoder: it never panics, what it produces decodes back, and every length is consistent.
//! The first input byte picks the backend's buffer-size and whether the body was chunked.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portico::uri::{normalize_path, split_target};
use portico::uwsgi::codec::packet::decode;
use portico::uwsgi::codec::vars_block::{encode_request, CgiRequest, EncodeError, EncodeOptions, Param};
use portico::variables::{Scope, Template, Var, VarSource};

struct Vars<'a>(&'a [httparse::Header<'a>]);

impl VarSource for Vars<'_> {
    fn write_var(&self, var: &Var, out: &mut Vec<u8>) -> bool {
        match var {
            Var::Http(name) => match self.0.iter().find(|h| h.name.eq_ignore_ascii_case(name)) {
                Some(h) => out.extend_from_slice(h.value),
                None => return false,
            },
            Var::Host => out.extend_from_slice(b"localhost"),
            _ => return false,
        }
        true
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, http)) = data.split_first() else { return };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = req.parse(http) else { return };
    let (Some(method), Some(path)) = (req.method, req.path) else { return };
    let Ok(target) = split_target(path.as_bytes()) else { return };
    let mut path_info = Vec::new();
    if normalize_path(target.raw_path, &mut path_info).is_err() {
        return;
    }
    let scope = Scope::Request { named_groups: &[] };
    let params = [
        Param {
            name: "HTTP_HOST".into(),
            value: Template::parse("$host", scope).unwrap(),
            if_not_empty: false,
        },
        Param {
            name: "X_APP".into(),
            value: Template::parse("$http_x_app", scope).unwrap(),
            if_not_empty: true,
        },
    ];
    let params = if control & 1 == 1 { &params[..] } else { &params[..0] };
    let buffer_size = [4096, 8192, 32768, 65535][usize::from(control >> 1 & 3)];
    let chunked = control & 8 != 0;
    let cgi = CgiRequest {
        method: method.as_bytes(),
        request_uri: path.as_bytes(),
        query: target.query.unwrap_or(b""),
        path_info: &path_info,
        document_root: b"/srv/www",
        protocol: b"HTTP/1.1",
        https: control & 16 != 0,
        remote: "127.0.0.1:4000".parse().ok(),
        server_port: 80,
        server_name: b"localhost",
        content_type: None,
        content_length: chunked.then_some(u64::from(control)),
        body_was_chunked: chunked,
        peer_trusted: control & 32 != 0,
    };
    let opts = EncodeOptions { params, modifier1: control, modifier2: !control, buffer_size };
    let hs = || req.headers.iter().map(|h| (h.name.as_bytes(), h.value));
    let mut buf = Vec::new();
    match encode_request(&cgi, hs, &opts, &Vars(req.headers), &mut buf) {
        Ok(len) => {
            assert_eq!(len, buf.len());
            let size = usize::from(u16::from_le_bytes([buf[1], buf[2]]));
            assert_eq!(size + 4, len);
            assert!(size <= buffer_size);
            let p = decode(&buf).expect("our packet decodes");
            assert!(p.rest.is_empty());
            assert!(p.vars.len() >= 13);
            assert!(p.vars.iter().all(|(k, _)| !k.is_empty()));
            assert_eq!(p.vars[0].0, b"QUERY_STRING");
            assert!(p.vars.iter().all(|(k, _)| k != b"HTTP_PROXY"));
        }
        Err(EncodeError::TooBig { size, .. }) => assert!(size > 65535),
        Err(EncodeError::OverBufferSize { size, buffer_size: b, .. }) => assert!(size > b && size <= 65535),
    }
});
