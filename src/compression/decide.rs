//! Which answers are compressed on the fly, and with which coding: nginx's gzip filter
//! rules (status 200, 403 or 404; no `Content-Encoding` yet; a type in `gzip_types`; a
//! known length not under `gzip_min_length`; not HEAD), then the request's: HTTP/1.1
//! unless `gzip_http_version = "1.0"`, a request through a proxy (`Via`) only as
//! `gzip_proxied` allows, and the coding its `Accept-Encoding` prefers (brotli over gzip
//! when both are on and equally welcome). Stricter than nginx: `Cache-Control:
//! no-transform` is honoured. Pure.

use crate::content_coding::{choose, Coding};
use crate::http1::request_head::{Request, Version};

use super::config::{Compression, Proxied};
use super::encoder::Codec;

/// What an answer's head says that the decision looks at.
#[derive(Clone, Copy, Debug, Default)]
pub struct ResponseFacts<'a> {
    pub status: u16,
    pub content_type: Option<&'a [u8]>,
    pub content_length: Option<u64>,
    /// A `Content-Encoding` with a value: the body is coded already.
    pub content_encoding: bool,
    pub cache_control: CacheControl,
    pub expires: Option<&'a [u8]>,
    pub date: Option<&'a [u8]>,
    pub last_modified: bool,
    pub etag: bool,
}

/// The `Cache-Control` directives the decision cares about, from every line.
#[derive(Clone, Copy, Debug, Default)]
pub struct CacheControl {
    pub present: bool,
    pub no_transform: bool,
    pub no_cache: bool,
    pub no_store: bool,
    pub private: bool,
}

impl<'a> ResponseFacts<'a> {
    /// Notes one header of the answer.
    pub fn header(&mut self, name: &[u8], value: &'a [u8]) {
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is("content-type") {
            self.content_type = Some(value);
        } else if is("content-length") {
            self.content_length = std::str::from_utf8(value).ok().and_then(|v| v.trim().parse().ok());
        } else if is("content-encoding") {
            self.content_encoding |= !value.trim_ascii().is_empty();
        } else if is("cache-control") {
            let cc = &mut self.cache_control;
            cc.present = true;
            for directive in value.split(|&b| b == b',') {
                let d = directive.split(|&b| b == b'=').next().unwrap_or_default().trim_ascii();
                let d_is = |n: &str| d.eq_ignore_ascii_case(n.as_bytes());
                cc.no_transform |= d_is("no-transform");
                cc.no_cache |= d_is("no-cache");
                cc.no_store |= d_is("no-store");
                cc.private |= d_is("private");
            }
        } else if is("expires") {
            self.expires = Some(value);
        } else if is("date") {
            self.date = Some(value);
        } else if is("last-modified") {
            self.last_modified = true;
        } else if is("etag") {
            self.etag = true;
        }
    }

    /// Notes every header of `lines`, encoded `Name: value\r\n` lines.
    pub fn header_lines(&mut self, lines: &'a [u8]) {
        for line in lines.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(colon) = memchr::memchr(b':', line) {
                self.header(&line[..colon], line[colon + 1..].trim_ascii());
            }
        }
    }
}

/// The outcome for one answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// `Vary: Accept-Encoding` goes out: the answer would be compressed for some client.
    pub vary: bool,
    /// The coding and level to compress with; `None`: the body goes out as it is.
    pub coding: Option<(Codec, u32)>,
}

/// Decides for an answer with `resp`'s head to `req` (`head_only`: a HEAD request);
/// `now` in seconds since the epoch, for `gzip_proxied = ["expired"]`.
pub fn decide(cfg: &Compression, req: &Request, head_only: bool, resp: &ResponseFacts, now: i64) -> Decision {
    if !cfg.is_on()
        || !matches!(resp.status, 200 | 403 | 404)
        || resp.content_encoding
        || resp.content_length.is_some_and(|n| n < cfg.min_length)
        || !resp.content_type.is_some_and(|t| cfg.compresses_type(t))
        || head_only
        || resp.cache_control.no_transform
    {
        return Decision::default();
    }
    let vary = cfg.vary;
    if !may_code(cfg, req, resp, now) {
        return Decision { vary, coding: None };
    }
    let mut offered = [Coding::Br; 2];
    let mut n = 0;
    for (on, c) in [(cfg.brotli, Coding::Br), (cfg.gzip, Coding::Gzip)] {
        if on {
            offered[n] = c;
            n += 1;
        }
    }
    let coding = match choose(req.header_values(b"accept-encoding"), &offered[..n]) {
        Some(Coding::Br) => Some((Codec::Br, cfg.brotli_level)),
        Some(Coding::Gzip) => Some((Codec::Gzip, cfg.gzip_level)),
        Some(Coding::Zstd) | None => None,
    };
    Decision { vary, coding }
}

/// Whether the request may get a coded answer at all (also a precompressed file's):
/// its HTTP version, and through a proxy `gzip_proxied`'s conditions on the answer.
pub fn may_code(cfg: &Compression, req: &Request, resp: &ResponseFacts, now: i64) -> bool {
    if req.version() == Version::Http10 && !cfg.http10 {
        return false;
    }
    if req.header_values(b"via").next().is_none() {
        return true;
    }
    let Some(p) = cfg.proxied else {
        return false;
    };
    proxied_allows(&p, req.header_values(b"authorization").next().is_some(), resp, now)
}

/// nginx's `gzip_proxied` conditions, in its order.
fn proxied_allows(p: &Proxied, authorization: bool, resp: &ResponseFacts, now: i64) -> bool {
    if p.any || (p.auth && authorization) {
        return true;
    }
    if let Some(expires) = resp.expires {
        if !p.expired {
            return false;
        }
        let Some(at) = crate::clock::parse_http_date(expires) else {
            return false;
        };
        // the answer's own Date, as nginx: one it cannot read declines
        let date = match resp.date {
            Some(d) => match crate::clock::parse_http_date(d) {
                Some(d) => d,
                None => return false,
            },
            None => now,
        };
        return at < date;
    }
    let cc = resp.cache_control;
    if cc.present {
        return (p.no_cache && cc.no_cache) || (p.no_store && cc.no_store) || (p.private && cc.private);
    }
    !((p.no_last_modified && resp.last_modified) || (p.no_etag && resp.etag))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::request_head::{parse_head, HeadLimits};

    fn cfg() -> Compression {
        Compression { gzip: true, ..Compression::default() }
    }

    fn html() -> ResponseFacts<'static> {
        ResponseFacts {
            status: 200,
            content_type: Some(b"text/html"),
            content_length: Some(15_000),
            ..Default::default()
        }
    }

    fn with_request(head: &str, f: impl FnOnce(&Request) -> Decision) -> Decision {
        let raw = format!("{head}\r\n\r\n");
        let parsed = match parse_head(raw.as_bytes(), &HeadLimits::default(), Vec::new()) {
            Ok(Ok(h)) => h,
            other => panic!("not a whole valid head: {other:?}"),
        };
        f(&Request::new(&parsed, raw.as_bytes()))
    }

    fn decide_for(cfg: &Compression, head: &str, resp: &ResponseFacts) -> Decision {
        with_request(head, |r| decide(cfg, r, false, resp, 1_000_000_000))
    }

    const GZIP_11: &str = "GET / HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip, br";

    #[test]
    fn the_never_rules() {
        let c = cfg();
        assert_eq!(decide_for(&c, GZIP_11, &html()).coding, Some((Codec::Gzip, 1)));
        for (why, resp) in [
            ("206", ResponseFacts { status: 206, ..html() }),
            ("304", ResponseFacts { status: 304, ..html() }),
            ("204", ResponseFacts { status: 204, ..html() }),
            ("500", ResponseFacts { status: 500, ..html() }),
            ("coded", ResponseFacts { content_encoding: true, ..html() }),
            ("short", ResponseFacts { content_length: Some(19), ..html() }),
            ("type", ResponseFacts { content_type: Some(b"image/png"), ..html() }),
            ("no type", ResponseFacts { content_type: None, ..html() }),
        ] {
            assert_eq!(decide_for(&c, GZIP_11, &resp), Decision::default(), "{why}");
        }
        let mut nt = html();
        nt.header(b"Cache-Control", b"public, No-Transform");
        assert_eq!(decide_for(&c, GZIP_11, &nt), Decision::default(), "no-transform");
        let head = with_request(GZIP_11, |r| decide(&c, r, true, &html(), 0));
        assert_eq!(head, Decision::default(), "HEAD");
        assert_eq!(
            decide_for(&c, GZIP_11, &ResponseFacts { status: 404, ..html() }).coding,
            Some((Codec::Gzip, 1))
        );
        assert_eq!(
            decide_for(&c, GZIP_11, &ResponseFacts { content_length: None, ..html() }).coding,
            Some((Codec::Gzip, 1))
        );
        assert_eq!(decide_for(&Compression::default(), GZIP_11, &html()), Decision::default(), "gzip off");
    }

    #[test]
    fn vary_whenever_a_client_could_get_it() {
        let d = decide_for(&cfg(), "GET / HTTP/1.1\r\nHost: x", &html());
        assert_eq!(d, Decision { vary: true, coding: None });
        let d = decide_for(&cfg(), "GET / HTTP/1.0\r\nAccept-Encoding: gzip", &html());
        assert_eq!(d, Decision { vary: true, coding: None }, "HTTP/1.0: gzip_http_version 1.1");
        let c = Compression { http10: true, ..cfg() };
        assert!(decide_for(&c, "GET / HTTP/1.0\r\nAccept-Encoding: gzip", &html()).coding.is_some());
        let c = Compression { vary: false, ..cfg() };
        assert!(!decide_for(&c, GZIP_11, &html()).vary);
    }

    #[test]
    fn brotli_first_with_q_values() {
        let c = Compression { brotli: true, ..cfg() };
        assert_eq!(decide_for(&c, GZIP_11, &html()).coding, Some((Codec::Br, 4)));
        let q = "GET / HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br;q=0.5, gzip";
        assert_eq!(decide_for(&c, q, &html()).coding, Some((Codec::Gzip, 1)));
        let refused = "GET / HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br;q=0, gzip;q=0";
        assert_eq!(decide_for(&c, refused, &html()).coding, None);
        let only_br = Compression { gzip: false, brotli: true, ..Compression::default() };
        assert_eq!(
            decide_for(&only_br, "GET / HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip", &html()).coding,
            None
        );
    }

    #[test]
    fn gzip_proxied_as_nginx() {
        let via = "GET / HTTP/1.1\r\nHost: x\r\nVia: 1.1 cache\r\nAccept-Encoding: gzip";
        assert_eq!(decide_for(&cfg(), via, &html()).coding, None, "off by default");
        let with = |p: Proxied| Compression { proxied: Some(p), ..cfg() };
        let any = with(Proxied { any: true, ..Proxied::default() });
        assert!(decide_for(&any, via, &html()).coding.is_some());
        let expired = with(Proxied { expired: true, ..Proxied::default() });
        let mut past = html();
        past.header(b"Expires", b"Thu, 01 Jan 1970 00:00:01 GMT");
        assert!(decide_for(&expired, via, &past).coding.is_some());
        let mut now = html();
        now.header(b"Expires", b"Sun, 09 Sep 2001 01:46:40 GMT");
        assert!(decide_for(&expired, via, &now).coding.is_none(), "expired means before the answer's time");
        let mut bad_date = past;
        bad_date.header(b"Date", b"yesterday");
        assert!(decide_for(&expired, via, &bad_date).coding.is_none());
        let mut future = html();
        future.header(b"Expires", b"Thu, 31 Dec 2037 23:55:55 GMT");
        assert!(decide_for(&expired, via, &future).coding.is_none());
        let private = with(Proxied { private: true, ..Proxied::default() });
        let mut p = html();
        p.header(b"Cache-Control", b"private, max-age=0");
        assert!(decide_for(&private, via, &p).coding.is_some());
        let mut public = html();
        public.header(b"Cache-Control", b"public");
        assert!(decide_for(&private, via, &public).coding.is_none());
        let no_etag = with(Proxied { no_etag: true, ..Proxied::default() });
        assert!(decide_for(&no_etag, via, &html()).coding.is_some());
        assert!(decide_for(&no_etag, via, &ResponseFacts { etag: true, ..html() }).coding.is_none());
        let auth = with(Proxied { auth: true, ..Proxied::default() });
        let authorized = "GET / HTTP/1.1\r\nHost: x\r\nVia: 1.1 cache\r\nAuthorization: Basic eA==\r\nAccept-Encoding: gzip";
        assert!(decide_for(&auth, authorized, &future).coding.is_some());
    }
}
