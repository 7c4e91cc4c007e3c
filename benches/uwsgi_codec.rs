//! The uwsgi codec on the hot path of every dynamic request: encoding a typical FlaskBB
//! request (15 headers with a 1 KB cookie) and parsing a typical response head.

use criterion::{black_box, criterion_group, criterion_main, Criterion};

use portico::http1::chunked::ChunkedDecoder;
use portico::uwsgi::codec::app_response::parse_head;
use portico::uwsgi::codec::vars_block::{encode_request, CgiRequest, EncodeOptions};
use portico::variables::{Var, VarSource};

struct NoVars;
impl VarSource for NoVars {
    fn write_var(&self, _: &Var, _: &mut Vec<u8>) -> bool {
        false
    }
}

fn flaskbb_headers(cookie: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Host", "forums.example.org".into()),
        ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0".into()),
        ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8".into()),
        ("Accept-Language", "en-GB,en;q=0.5".into()),
        ("Accept-Encoding", "gzip, deflate, br".into()),
        ("Referer", "https://forums.example.org/forum/1-general".into()),
        ("Connection", "keep-alive".into()),
        ("Cookie", cookie.into()),
        ("Upgrade-Insecure-Requests", "1".into()),
        ("Sec-Fetch-Dest", "document".into()),
        ("Sec-Fetch-Mode", "navigate".into()),
        ("Sec-Fetch-Site", "same-origin".into()),
        ("Sec-Fetch-User", "?1".into()),
        ("Priority", "u=0, i".into()),
        ("X-Forwarded-For", "203.0.113.9".into()),
    ]
}

fn bench_encode(c: &mut Criterion) {
    let cookie = format!("session={}; remember_token=1|{}; theme=aurora", "s".repeat(700), "r".repeat(280));
    let headers = flaskbb_headers(&cookie);
    let req = CgiRequest {
        method: b"GET",
        request_uri: b"/topic/12-hello-world?page=2",
        query: b"page=2",
        path_info: b"/topic/12-hello-world",
        document_root: b"",
        protocol: b"HTTP/1.1",
        https: false,
        remote: "203.0.113.9:51234".parse().ok(),
        server_port: 80,
        server_name: b"localhost",
        content_type: None,
        content_length: None,
        body_was_chunked: false,
        peer_trusted: false,
    };
    let opts = EncodeOptions { params: &[], modifier1: 0, modifier2: 0, buffer_size: 4096 };
    let mut buf = Vec::with_capacity(4096);
    c.bench_function("uwsgi/encode_flaskbb_request", |b| {
        b.iter(|| {
            let hs = || headers.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes()));
            let n = encode_request(black_box(&req), hs, &opts, &NoVars, &mut buf).expect("fits");
            black_box(n)
        })
    });
}

fn bench_response(c: &mut Criterion) {
    let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 18231\r\nVary: Cookie\r\nSet-Cookie: session=abcdef0123456789; HttpOnly; Path=/; SameSite=Lax\r\nX-Frame-Options: SAMEORIGIN\r\n\r\n<!DOCTYPE html>";
    c.bench_function("uwsgi/parse_response_head", |b| {
        b.iter(|| parse_head(black_box(head), 4096, false).expect("valid").expect("complete"))
    });
    let body: Vec<u8> = b"2000\r\n"
        .iter()
        .copied()
        .chain(std::iter::repeat_n(b'x', 0x2000))
        .chain(*b"\r\n0\r\n\r\n")
        .collect();
    let mut out = Vec::with_capacity(0x2000);
    c.bench_function("uwsgi/decode_chunked_8k", |b| {
        b.iter(|| {
            out.clear();
            let mut d = ChunkedDecoder::new();
            d.decode_into(black_box(&body), &mut out).expect("valid");
        })
    });
}

criterion_group!(benches, bench_encode, bench_response);
criterion_main!(benches);
