//! nginx's `return`: a server or location that answers with a fixed status, a redirect or
//! a short text, before anything is looked up. Parsed here from the configuration, and
//! turned into an answer per request. Pure.
//!
//! ```toml
//! return = "301 https://$host$request_uri"   # a redirect: Location, nginx's page
//! return = 204                               # a bare status
//! return = "200 OK"                          # a status and a body (text/plain)
//! return = "https://example.com/"            # a URL alone: 302, as nginx
//! return = 444                               # close the connection, answer nothing
//! ```
//!
//! As in nginx, a status of 400 or more without text goes to `error_page` like any error,
//! a relative redirect (`"301 /new"`) is made absolute with the request's scheme, host
//! and port, and variables are expanded when the request comes.

use std::borrow::Cow;

use serde::Deserialize;

use crate::config::diag::Diagnostics;
use crate::config::section::Section;
use crate::reply::Reply;
use crate::variables::{Escape, Scope, Template, VarSource};

/// nginx's non-standard "close the connection without a response".
pub const CLOSE_WITHOUT_ANSWER: u16 = 444;

/// A parsed `return`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Return {
    pub status: u16,
    /// The redirect's URL, or the body's text.
    text: Option<Template>,
}

/// What a `return` answers a request with (a value of one step: boxing the reply would
/// cost an allocation per answer).
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Returned {
    /// Send this (a redirect, a text, a bare 1xx-3xx status).
    Reply(Reply),
    /// An error status with no text of its own: `error_page` may cover it.
    Status(u16),
    /// 444: close without a word.
    Close,
}

/// Where a relative redirect points: the request's own scheme, host and port.
pub struct Base<'a> {
    pub scheme: &'a str,
    pub host: &'a str,
    pub port: Option<u16>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Code(i64),
    Text(String),
}

/// Statuses whose text is a URL for `Location` (nginx's list).
fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

impl Return {
    /// Reads `return` from a server or location table; `named_groups` are the location
    /// regex's named captures a text may use.
    pub fn parse(s: &mut Section, named_groups: &[&str], diags: &mut Diagnostics) -> Option<Return> {
        let example = "return = \"301 https://$host$request_uri\"";
        let raw = s.get::<Raw>("return", example, diags)?;
        let span = raw.span();
        match Return::from_raw(raw.into_inner(), named_groups) {
            Ok(r) => Some(r),
            Err((message, hint)) => {
                diags.error(span, message, Some(hint));
                None
            }
        }
    }

    fn from_raw(raw: Raw, named_groups: &[&str]) -> Result<Return, (String, String)> {
        let bad_code = |code: &str| {
            (
                format!("return: `{code}` is not a status code (0-999)"),
                "write return = 204, return = \"301 https://$host$request_uri\" or return = \"200 text\""
                    .to_string(),
            )
        };
        let (status, text) = match raw {
            Raw::Code(c) => {
                (u16::try_from(c).ok().filter(|c| *c <= 999).ok_or_else(|| bad_code(&c.to_string()))?, None)
            }
            Raw::Text(t) => {
                let t = t.trim_start();
                // a URL alone is a 302, as nginx reads `return URL`
                if t.starts_with("http://") || t.starts_with("https://") || t.starts_with("$scheme") {
                    (302, Some(t.to_string()))
                } else {
                    let (code, rest) = t.split_once(' ').unwrap_or((t, ""));
                    let status =
                        code.parse::<u16>().ok().filter(|c| *c <= 999).ok_or_else(|| bad_code(code))?;
                    let rest = rest.trim_start();
                    (status, (!rest.is_empty()).then(|| rest.to_string()))
                }
            }
        };
        if status < 200 {
            return Err((
                format!("return: {status} is not a final status (200-999)"),
                "write return = 204, or a redirect or error status".into(),
            ));
        }
        if matches!(status, 204 | 304) && text.is_some() {
            return Err((
                format!("return: a {status} has no body, so no text"),
                format!("write return = {status}"),
            ));
        }
        if status == CLOSE_WITHOUT_ANSWER && text.is_some() {
            return Err((
                "return: 444 closes the connection, it cannot carry a text".into(),
                "write return = 444".into(),
            ));
        }
        if is_redirect(status) && text.is_none() {
            return Err((
                format!("return: a {status} needs the URL to redirect to"),
                format!("write return = \"{status} https://$host$request_uri\""),
            ));
        }
        let text = match text {
            Some(t) => Some(
                Template::parse(&t, Scope::Request { named_groups })
                    .map_err(|e| (format!("return: {}", e.message), e.hint))?,
            ),
            None => None,
        };
        Ok(Return { status, text })
    }

    /// The answer to a request, with its variables from `vars`.
    pub fn answer(&self, vars: &dyn VarSource, base: &Base) -> Returned {
        if self.status == CLOSE_WITHOUT_ANSWER {
            return Returned::Close;
        }
        let rendered = self.text.as_ref().map(|t| {
            let mut out = Vec::new();
            t.render(vars, Escape::None, &mut out);
            out
        });
        match rendered {
            Some(url) if is_redirect(self.status) => {
                let mut r = Reply::error(self.status);
                r.head.location = Some(absolute(&url, base));
                Returned::Reply(r)
            }
            Some(text) => Returned::Reply(text_reply(self.status, text)),
            None if self.status >= 400 => Returned::Status(self.status),
            // nginx answers a bare 1xx-3xx with an empty body
            None => Returned::Reply(text_reply(self.status, Vec::new())),
        }
    }
}

/// A status with `text` as its body. nginx would label it with `default_type`
/// (application/octet-stream in its stock configuration, which makes browsers download
/// it); Portico has no `default_type` and says text/plain.
fn text_reply(status: u16, text: Vec<u8>) -> Reply {
    let mut r = Reply { head: crate::reply::Head::new(status), body: crate::reply::Body::Empty };
    // a 204 or 304 has neither a body nor a length (RFC 9110)
    if matches!(status, 204 | 304) {
        return r;
    }
    r.head.content_type = Some(Cow::Borrowed("text/plain"));
    r.head.content_length = Some(text.len() as u64);
    if !text.is_empty() {
        r.body = crate::reply::Body::Bytes(text.into());
    }
    r
}

/// A redirect target as `Location`: a relative one (starting with `/`) prefixed with the
/// request's scheme, host and port (the port left out when it is the scheme's own), as
/// nginx's `absolute_redirect on`. Control characters a variable brought are escaped so
/// the header cannot be split.
fn absolute(url: &[u8], base: &Base) -> String {
    let mut out = String::with_capacity(url.len() + base.host.len() + 16);
    if url.first() == Some(&b'/') {
        out.push_str(base.scheme);
        out.push_str("://");
        out.push_str(base.host);
        let default_port = if base.scheme == "https" { 443 } else { 80 };
        if let Some(p) = base.port.filter(|p| *p != default_port) {
            out.push(':');
            out.push_str(&p.to_string());
        }
    }
    for &b in url {
        if b < 0x20 || b == 0x7f || b >= 0x80 {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::variables::Var;

    struct Fixed;
    impl VarSource for Fixed {
        fn write_var(&self, var: &Var, out: &mut Vec<u8>) -> bool {
            match var {
                Var::Host => out.extend_from_slice(b"example.com"),
                Var::RequestUri => out.extend_from_slice(b"/a?b=1"),
                Var::Http(_) => out.extend_from_slice(b"x\r\nSet-Cookie: y"),
                _ => return false,
            }
            true
        }
    }

    fn ret(raw: Raw) -> Result<Return, (String, String)> {
        Return::from_raw(raw, &[])
    }

    fn answer(raw: Raw, base: &Base) -> Returned {
        ret(raw).unwrap().answer(&Fixed, base)
    }

    const HTTP: Base = Base { scheme: "http", host: "example.com", port: Some(80) };

    #[test]
    fn redirects_expand_variables_and_become_absolute() {
        let Returned::Reply(r) = answer(Raw::Text("301 https://$host$request_uri".into()), &HTTP) else {
            panic!()
        };
        assert_eq!(r.head.status, 301);
        assert_eq!(r.head.location.as_deref(), Some("https://example.com/a?b=1"));
        let other_port = Base { port: Some(8080), ..HTTP };
        let Returned::Reply(r) = answer(Raw::Text("302 /login".into()), &other_port) else { panic!() };
        assert_eq!(r.head.location.as_deref(), Some("http://example.com:8080/login"));
        let tls = Base { scheme: "https", host: "example.com", port: Some(443) };
        let Returned::Reply(r) = answer(Raw::Text("307 /x".into()), &tls) else { panic!() };
        assert_eq!(r.head.location.as_deref(), Some("https://example.com/x"));
    }

    #[test]
    fn a_url_alone_is_a_302() {
        let Returned::Reply(r) = answer(Raw::Text("https://other.example/".into()), &HTTP) else { panic!() };
        assert_eq!((r.head.status, r.head.location.as_deref()), (302, Some("https://other.example/")));
    }

    #[test]
    fn texts_statuses_and_close() {
        let Returned::Reply(r) = answer(Raw::Text("200 all good".into()), &HTTP) else { panic!() };
        assert_eq!((r.head.status, r.head.content_length), (200, Some(8)));
        let Returned::Reply(r) = answer(Raw::Code(204), &HTTP) else { panic!() };
        assert_eq!((r.head.status, r.head.content_length, r.head.content_type), (204, None, None));
        let Returned::Reply(r) = answer(Raw::Code(200), &HTTP) else { panic!() };
        assert_eq!((r.head.status, r.head.content_length), (200, Some(0)));
        assert!(matches!(answer(Raw::Code(404), &HTTP), Returned::Status(404)));
        let Returned::Reply(r) = answer(Raw::Text("403 go away".into()), &HTTP) else { panic!() };
        assert_eq!(r.head.status, 403);
        assert!(matches!(answer(Raw::Code(444), &HTTP), Returned::Close));
    }

    #[test]
    fn a_variable_cannot_split_the_location_header() {
        let Returned::Reply(r) = answer(Raw::Text("302 /$http_x".into()), &HTTP) else { panic!() };
        assert_eq!(r.head.location.as_deref(), Some("http://example.com/x%0D%0ASet-Cookie: y"));
    }

    #[test]
    fn bad_returns_say_what_to_write() {
        for raw in [
            Raw::Code(1000),
            Raw::Code(-1),
            Raw::Text("abc".into()),
            Raw::Text("301".into()),
            Raw::Text("444 bye".into()),
            Raw::Code(101),
            Raw::Text("204 no content here".into()),
            Raw::Text("200 $nope".into()),
        ] {
            let (message, hint) = ret(raw).unwrap_err();
            assert!(message.starts_with("return"), "{message}");
            assert!(hint.contains("return") || hint.contains("variables"), "{hint}");
        }
    }
}
