//! `expires` and `add_header`: the caching and extra headers a server or location puts on
//! its answers, with nginx's rules. Both apply only to 200, 201, 204, 206, 301, 302, 303,
//! 304, 307 and 308 answers (an `add_header` with `always = true` to every answer).
//! `expires` is inherited like any key; `add_header` is inherited only by a location that
//! writes none of its own (nginx's rule: one `add_header` in a location drops all of the
//! server's). Pure: the server writes the lines this produces.
//!
//! ```toml
//! expires = "30d"          # "max", "epoch", "off", "-1h", "modified +1h"
//! add_header = { X-Frame-Options = "DENY", Strict-Transport-Security = { value = "max-age=63072000", always = true } }
//! ```

use std::io::Write as _;

use serde::Deserialize;

use crate::config::diag::Diagnostics;
use crate::config::section::Section;
use crate::variables::{Escape, Scope, Template, VarSource};

/// nginx's `expires`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Expires {
    #[default]
    Off,
    /// `Expires: Thu, 01 Jan 1970 00:00:01 GMT`, `Cache-Control: no-cache`.
    Epoch,
    /// `Expires: Thu, 31 Dec 2037 23:55:55 GMT`, `Cache-Control: max-age=315360000`.
    Max,
    /// Seconds after the answer (negative: in the past, `no-cache`).
    After(i64),
    /// Seconds after the file's modification time (the answer's time when it has none).
    Modified(i64),
}

/// One `add_header` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Added {
    name: String,
    value: Template,
    always: bool,
}

/// The headers policy of a server or location.
#[derive(Clone, Debug, Default)]
pub struct ResponseHeaders {
    pub expires: Expires,
    added: Vec<Added>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawHeader {
    Value(String),
    Full(FullHeader),
}

// a misspelt `alway` is an error, not a silent `false`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FullHeader {
    value: String,
    #[serde(default)]
    always: bool,
}

/// Headers `add_header` may not write: they frame or describe the body or the connection,
/// or Portico writes them itself from the answer (two of them would contradict each
/// other, and a client or cache may pick either).
const NOT_ADDABLE: &[(&str, &str)] = &[
    ("content-length", "the body's length is Portico's to state"),
    ("content-range", "the range sent is Portico's to state"),
    ("accept-ranges", "whether ranges are served is Portico's to state (max_ranges = 0 turns them off)"),
    ("transfer-encoding", "the body's framing is Portico's to state"),
    ("connection", "keep-alive is decided per connection"),
    ("keep-alive", "keep-alive is decided per connection"),
    ("upgrade", "it is a hop-by-hop header"),
    ("te", "it is a request header, hop-by-hop"),
    ("trailer", "Portico sends no trailers"),
    ("content-encoding", "it must name how the body is really coded: use gzip/brotli or precompressed"),
    ("date", "Portico writes the answer's time"),
    ("server", "Portico writes it"),
    ("etag", "files and the app have their own; a second one contradicts it"),
    ("last-modified", "files and the app have their own; a second one contradicts it"),
];

fn check_name(name: &str) -> Result<(), (String, String)> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)) {
        return Err((
            format!("`{name}` in add_header is not a header name"),
            "header names are letters, digits and `-`, such as X-Frame-Options".into(),
        ));
    }
    match NOT_ADDABLE.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
        Some((_, why)) => {
            Err((format!("add_header may not set `{name}`: {why}"), "remove this entry".into()))
        }
        None => Ok(()),
    }
}

/// Bytes a header value may not hold: controls other than HTAB (CR and LF would end the
/// line; the others are refused by strict clients) and DEL.
fn is_forbidden_in_value(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

impl ResponseHeaders {
    /// Reads `expires` and `add_header` of a server (`inherited` the defaults) or of a
    /// location (`inherited` its server's; `named_groups` its regex's, for the values).
    pub fn parse(
        s: &mut Section,
        inherited: &ResponseHeaders,
        named_groups: &[&str],
        diags: &mut Diagnostics,
    ) -> ResponseHeaders {
        let mut out = inherited.clone();
        if let Some(text) = s.get::<String>("expires", "expires = \"30d\"", diags) {
            let span = text.span();
            match parse_expires(text.get_ref()) {
                Ok(e) => out.expires = e,
                Err(message) => diags.error(
                    span,
                    message,
                    Some("write a time such as \"30d\", \"12h\", \"-1\", or \"max\", \"epoch\", \"off\", \"modified +1h\"".into()),
                ),
            }
        }
        let example = "add_header = { X-Frame-Options = \"DENY\", X-Served-By = { value = \"$hostname\", always = true } }";
        if let Some(table) = s.get::<toml::Table>("add_header", example, diags) {
            let span = table.span();
            let mut added = Vec::new();
            // a table keeps the file's order: the lines go out as written
            for (name, raw) in table.into_inner() {
                let raw: RawHeader = match RawHeader::deserialize(raw) {
                    Ok(r) => r,
                    Err(_) => {
                        diags.error(
                            span.clone(),
                            format!("add_header `{name}` must be a string or {{ value = \"...\", always = true }}"),
                            Some(format!("write it like: {name} = \"value\"")),
                        );
                        continue;
                    }
                };
                if let Err((message, hint)) = check_name(&name) {
                    diags.error(span.clone(), message, Some(hint));
                    continue;
                }
                let (value, always) = match raw {
                    RawHeader::Value(v) => (v, false),
                    RawHeader::Full(FullHeader { value, always }) => (value, always),
                };
                if value.bytes().any(is_forbidden_in_value) {
                    diags.error(
                        span.clone(),
                        format!(
                            "the add_header value of `{name}` holds a control character (a line break, say)"
                        ),
                        Some("a header value is one line of printable text; tabs are allowed".into()),
                    );
                    continue;
                }
                match Template::parse(&value, Scope::Request { named_groups }) {
                    Ok(value) => added.push(Added { name, value, always }),
                    Err(e) => diags.error(span.clone(), format!("add_header `{name}`: {e}"), Some(e.hint)),
                }
            }
            // nginx's rule: a level with add_header of its own inherits none
            out.added = added;
        }
        out
    }

    /// Whether anything is to be added at all (most locations: nothing, at no cost).
    pub fn is_empty(&self) -> bool {
        self.expires == Expires::Off && self.added.is_empty()
    }

    /// Whether the answer replaces the app's own `Expires` and `Cache-Control`.
    pub fn sets_expires(&self, status: u16) -> bool {
        self.expires != Expires::Off && safe_status(status)
    }

    /// Appends the lines for an answer with `status`: `Expires` and `Cache-Control` (for
    /// a file modified at `last_modified`, answered at `now`, seconds since the epoch),
    /// then the `add_header` lines, their variables from `vars`.
    pub fn write(
        &self,
        status: u16,
        last_modified: Option<i64>,
        now: i64,
        vars: &dyn VarSource,
        out: &mut Vec<u8>,
    ) {
        let safe = safe_status(status);
        if safe {
            write_expires(self.expires, last_modified, now, out);
        }
        self.write_added(safe, vars, out);
    }

    /// The `add_header` lines rendered before the status is known (an app's answer): one
    /// set for the statuses they apply to, one for the others (`always` only).
    pub fn render_added(&self, vars: &dyn VarSource) -> Rendered {
        let mut r = Rendered::default();
        self.write_added(true, vars, &mut r.safe);
        self.write_added(false, vars, &mut r.other);
        r
    }

    /// [`ResponseHeaders::write`] for an app's answer, the lines rendered beforehand.
    pub fn write_rendered(
        &self,
        status: u16,
        last_modified: Option<i64>,
        now: i64,
        r: &Rendered,
        out: &mut Vec<u8>,
    ) {
        if safe_status(status) {
            write_expires(self.expires, last_modified, now, out);
            out.extend_from_slice(&r.safe);
        } else {
            out.extend_from_slice(&r.other);
        }
    }

    fn write_added(&self, safe: bool, vars: &dyn VarSource, out: &mut Vec<u8>) {
        for a in self.added.iter().filter(|a| safe || a.always) {
            let start = out.len();
            out.extend_from_slice(a.name.as_bytes());
            out.extend_from_slice(b": ");
            let value_at = out.len();
            a.value.render(vars, Escape::None, out);
            // nginx sends no header whose value is empty
            if out.len() == value_at {
                out.truncate(start);
                continue;
            }
            // a variable's value (a client's bytes, say) never ends the line early nor
            // puts a control character in it
            for b in &mut out[value_at..] {
                if is_forbidden_in_value(*b) {
                    *b = b' ';
                }
            }
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// `add_header` lines rendered ahead of the status.
#[derive(Debug, Default)]
pub struct Rendered {
    safe: Vec<u8>,
    other: Vec<u8>,
}

/// The answers nginx's headers filter adds to (`always` aside).
fn safe_status(status: u16) -> bool {
    matches!(status, 200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308)
}

fn write_expires(expires: Expires, last_modified: Option<i64>, now: i64, out: &mut Vec<u8>) {
    let (at, offset) = match expires {
        Expires::Off => return,
        Expires::Epoch => {
            out.extend_from_slice(b"Expires: Thu, 01 Jan 1970 00:00:01 GMT\r\nCache-Control: no-cache\r\n");
            return;
        }
        Expires::Max => {
            out.extend_from_slice(
                b"Expires: Thu, 31 Dec 2037 23:55:55 GMT\r\nCache-Control: max-age=315360000\r\n",
            );
            return;
        }
        // nginx: a zero time is "now, max-age=0", also after `modified`
        Expires::After(0) | Expires::Modified(0) => (now, 0),
        Expires::After(s) => (now.saturating_add(s), s),
        Expires::Modified(s) => (last_modified.unwrap_or(now).saturating_add(s), s),
    };
    let max_age = at.saturating_sub(now);
    // an HTTP date says years 1970 to 9999: a time past either end is written as the end
    if let Some(date) = crate::clock::http_date(at.clamp(0, LAST_HTTP_DATE)) {
        let _ = write!(out, "Expires: {date}\r\n");
    }
    if offset < 0 || max_age < 0 {
        out.extend_from_slice(b"Cache-Control: no-cache\r\n");
    } else {
        let _ = write!(out, "Cache-Control: max-age={max_age}\r\n");
    }
}

/// 9999-12-31 23:59:59 UTC.
const LAST_HTTP_DATE: i64 = 253_402_300_799;

/// The most `expires` may say: 68 years, as nginx's time_t arithmetic allows.
const MAX_EXPIRES: i64 = i32::MAX as i64;

/// nginx's `expires` argument: `off`, `epoch`, `max`, a time (`30d`, `1h 30m`, `-1`), or
/// `modified` and a time.
pub fn parse_expires(text: &str) -> Result<Expires, String> {
    let text = text.trim();
    match text {
        "off" => return Ok(Expires::Off),
        "epoch" => return Ok(Expires::Epoch),
        "max" => return Ok(Expires::Max),
        _ => {}
    }
    if text.starts_with('@') {
        return Err(format!("`expires = \"{text}\"` (a time of day) is not supported"));
    }
    let (modified, time) = match text.strip_prefix("modified") {
        Some(rest) if rest.starts_with(char::is_whitespace) => (true, rest.trim()),
        _ => (false, text),
    };
    let secs = parse_time(time).ok_or_else(|| format!("`{text}` is not a time for expires"))?;
    Ok(if modified { Expires::Modified(secs) } else { Expires::After(secs) })
}

/// nginx's time syntax in seconds: an optional sign, then numbers with units (`y` 365
/// days, `M` 30 days, `w`, `d`, `h`, `m`, `s`; none: seconds) from the largest down, each
/// at most once (`1h 30m`, not `30m 1h`), spaces allowed between.
fn parse_time(text: &str) -> Option<i64> {
    let (negative, mut rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    const UNITS: [(char, i64); 7] = [
        ('y', 365 * 86_400),
        ('M', 30 * 86_400),
        ('w', 7 * 86_400),
        ('d', 86_400),
        ('h', 3600),
        ('m', 60),
        ('s', 1),
    ];
    let mut total: i64 = 0;
    let mut any = false;
    // the units still allowed: those after the last one used
    let mut next_unit = 0;
    while !rest.trim_start().is_empty() {
        rest = rest.trim_start();
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_char = match rest.chars().next() {
            Some(c) if c.is_ascii_alphabetic() => {
                rest = &rest[1..];
                c
            }
            _ => 's',
        };
        let at = UNITS.iter().position(|(c, _)| *c == unit_char)?;
        if at < next_unit {
            return None;
        }
        next_unit = at + 1;
        total = total.checked_add(n.checked_mul(UNITS[at].1)?)?;
        any = true;
    }
    (any && total <= MAX_EXPIRES).then_some(if negative { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::variables::Var;

    struct NoVars;
    impl VarSource for NoVars {
        fn write_var(&self, _: &Var, _: &mut Vec<u8>) -> bool {
            false
        }
    }

    fn lines(e: Expires, status: u16, last_modified: Option<i64>) -> String {
        let policy = ResponseHeaders { expires: e, added: Vec::new() };
        let mut out = Vec::new();
        policy.write(status, last_modified, 1_000_000_000, &NoVars, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn expires_as_nginx_writes_it() {
        assert_eq!(parse_expires("30d"), Ok(Expires::After(30 * 86_400)));
        assert_eq!(parse_expires("1h 30m"), Ok(Expires::After(5400)));
        assert_eq!(parse_expires("-1"), Ok(Expires::After(-1)));
        assert_eq!(parse_expires("modified +1h"), Ok(Expires::Modified(3600)));
        assert_eq!(parse_expires("max"), Ok(Expires::Max));
        assert!(parse_expires("@15h").is_err());
        assert!(parse_expires("soon").is_err());
        assert!(parse_expires("99999999999d").is_err());
        assert!(parse_expires("30m 1h").is_err(), "units from the largest down, as nginx");
        assert!(parse_expires("1d1d").is_err());
        assert!(parse_expires("5ms").is_err(), "no milliseconds in expires");
        assert_eq!(parse_expires("1d 12h"), Ok(Expires::After(129_600)));
        assert_eq!(
            lines(Expires::Modified(0), 200, Some(999_000_000)),
            "Expires: Sun, 09 Sep 2001 01:46:40 GMT\r\nCache-Control: max-age=0\r\n",
            "zero: now and max-age=0, as nginx"
        );
        assert!(
            lines(Expires::After(-MAX_EXPIRES), 200, None).contains("Expires: Thu, 01 Jan 1970 00:00:00 GMT")
        );
        assert_eq!(
            lines(Expires::After(3600), 200, None),
            "Expires: Sun, 09 Sep 2001 02:46:40 GMT\r\nCache-Control: max-age=3600\r\n"
        );
        assert_eq!(
            lines(Expires::After(-1), 200, None),
            "Expires: Sun, 09 Sep 2001 01:46:39 GMT\r\nCache-Control: no-cache\r\n"
        );
        assert_eq!(
            lines(Expires::Modified(3600), 200, Some(999_999_000)),
            "Expires: Sun, 09 Sep 2001 02:30:00 GMT\r\nCache-Control: max-age=2600\r\n"
        );
        assert!(lines(Expires::Epoch, 304, None).contains("Cache-Control: no-cache"));
        assert!(lines(Expires::Max, 200, None).contains("max-age=315360000"));
        assert_eq!(lines(Expires::Max, 404, None), "", "not on a 404");
    }

    #[test]
    fn added_headers_follow_the_status_rule_unless_always() {
        let t = |s: &str| Template::parse(s, Scope::Request { named_groups: &[] }).unwrap();
        let policy = ResponseHeaders {
            expires: Expires::Off,
            added: vec![
                Added { name: "X-A".into(), value: t("a"), always: false },
                Added { name: "X-B".into(), value: t("b"), always: true },
                Added { name: "X-Empty".into(), value: t("$http_x_nothing"), always: true },
            ],
        };
        let mut out = Vec::new();
        policy.write(200, None, 0, &NoVars, &mut out);
        assert_eq!(out, b"X-A: a\r\nX-B: b\r\n");
        out.clear();
        policy.write(404, None, 0, &NoVars, &mut out);
        assert_eq!(out, b"X-B: b\r\n");
    }

    fn server_headers(add_header: &str) -> Result<ResponseHeaders, String> {
        let src = format!(
            "[[server]]\nroot = \"/srv\"\nadd_header = {add_header}\n[[server.location]]\nmatch = \"/\"\n"
        );
        match crate::config_file::parse(&src, "t.toml") {
            Ok((c, _)) => Ok(c.sites[0].headers.clone()),
            Err(d) => {
                Err(d.iter().map(|d| format!("{}: {}", d.line, d.message)).collect::<Vec<_>>().join("; "))
            }
        }
    }

    #[test]
    fn added_headers_keep_the_files_order() {
        let h =
            server_headers("{ X-Zulu = \"z\", X-Alpha = \"a\", X-Mike = { value = \"m\", always = true } }")
                .expect("valid");
        let names: Vec<&str> = h.added.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["X-Zulu", "X-Alpha", "X-Mike"]);
    }

    #[test]
    fn framing_and_own_headers_and_control_characters_are_refused() {
        for name in [
            "Content-Length",
            "transfer-encoding",
            "Connection",
            "Keep-Alive",
            "Upgrade",
            "TE",
            "Trailer",
            "Content-Encoding",
            "Date",
            "Server",
            "ETag",
            "Last-Modified",
        ] {
            let e = server_headers(&format!("{{ {name} = \"x\" }}")).expect_err(name);
            assert!(e.contains("may not set"), "{name}: {e}");
        }
        let e = server_headers("{ X-A = \"a\\u0007b\" }").expect_err("BEL");
        assert!(e.contains("control character"), "{e}");
        let e = server_headers("{ X-A = \"a\\r\\nX-B: b\" }").expect_err("CRLF");
        assert!(e.contains("control character"), "{e}");
        assert!(server_headers("{ X-A = \"a\\tb\" }").is_ok(), "a tab is allowed");
        let e = server_headers("{ X-A = { value = \"a\", alway = true } }").expect_err("typo");
        assert!(e.contains("must be a string or"), "{e}");
        assert!(server_headers("{ Cache-Control = \"public\" }").is_ok());
    }

    #[test]
    fn a_variables_control_characters_become_spaces() {
        struct Evil;
        impl VarSource for Evil {
            fn write_var(&self, _: &Var, out: &mut Vec<u8>) -> bool {
                out.extend_from_slice(b"a\r\nSet-Cookie: x\x00\x7f\tz");
                true
            }
        }
        let t = Template::parse("$uri", Scope::Request { named_groups: &[] }).unwrap();
        let policy = ResponseHeaders {
            expires: Expires::Off,
            added: vec![Added { name: "X-U".into(), value: t, always: true }],
        };
        let mut out = Vec::new();
        policy.write(200, None, 0, &Evil, &mut out);
        assert_eq!(out, b"X-U: a  Set-Cookie: x  \tz\r\n");
    }
}
