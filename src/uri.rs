//! The request target, as nginx sees it: the raw path and query split apart, the path
//! percent-decoded, slashes merged and `.`/`..` segments resolved. Location matching,
//! file mapping, `$uri` and uwsgi's `PATH_INFO` all work on the normalised path; the raw
//! target stays available for `$request_uri`.
//!
//! Pure: bytes in, bytes out. A target that cannot be normalised is a 400.

use std::fmt;

use crate::ascii::{hex_digit, hex_pair};

/// Why a request target was refused (each is a 400 Bad Request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UriError {
    /// The path does not start with `/` (and is not an absolute URL).
    NotAbsolutePath,
    /// A `%` not followed by two hex digits.
    BadPercentEncoding,
    /// A NUL byte, raw or as `%00`: it can never name a file and only serves to confuse C code.
    NulByte,
    /// `..` segments climb above `/`.
    AboveRoot,
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UriError::NotAbsolutePath => "request target is not an absolute path",
            UriError::BadPercentEncoding => "invalid percent-encoding in request target",
            UriError::NulByte => "request target contains an encoded NUL byte",
            UriError::AboveRoot => "request target climbs above the root with ..",
        })
    }
}

/// A request target split into its raw path and raw query.
#[derive(Debug, PartialEq, Eq)]
pub struct Target<'a> {
    /// The path exactly as sent (absolute-form targets reduced to their path).
    pub raw_path: &'a [u8],
    /// The bytes after the first literal `?`, undecoded; `None` when there was no `?`.
    pub query: Option<&'a [u8]>,
}

/// Splits a request target into raw path and query. Absolute-form targets
/// (`http://host/path?q`) are reduced to their path part, as nginx does.
pub fn split_target(target: &[u8]) -> Result<Target<'_>, UriError> {
    let target = match memchr::memchr(b'#', target) {
        Some(i) => &target[..i],
        None => target,
    };
    let origin = if target.first() == Some(&b'/') {
        target
    } else if let Some(rest) = strip_scheme(target) {
        // authority runs to the first '/', '?' or end; the path starts there
        match rest.iter().position(|&b| b == b'/' || b == b'?') {
            Some(i) if rest[i] == b'/' => &rest[i..],
            Some(i) => return Ok(Target { raw_path: b"/", query: Some(&rest[i + 1..]) }),
            None => b"/",
        }
    } else {
        return Err(UriError::NotAbsolutePath);
    };
    Ok(match memchr::memchr(b'?', origin) {
        Some(i) => Target { raw_path: &origin[..i], query: Some(&origin[i + 1..]) },
        None => Target { raw_path: origin, query: None },
    })
}

fn strip_scheme(target: &[u8]) -> Option<&[u8]> {
    let lower_starts =
        |prefix: &[u8]| target.len() >= prefix.len() && target[..prefix.len()].eq_ignore_ascii_case(prefix);
    if lower_starts(b"http://") {
        Some(&target[7..])
    } else if lower_starts(b"https://") {
        Some(&target[8..])
    } else {
        None
    }
}

/// Decodes and normalises a raw path into `out` (cleared first): `%XX` decoded (a decoded
/// `/` separates segments like a literal one), runs of `/` merged, `.` removed and `..`
/// resolved. A trailing `/`, `/.` or `/..` leaves a trailing slash.
pub fn normalize_path(raw: &[u8], out: &mut Vec<u8>) -> Result<(), UriError> {
    out.clear();
    if raw.first() != Some(&b'/') {
        return Err(UriError::NotAbsolutePath);
    }
    if memchr::memchr(0, raw).is_some() {
        return Err(UriError::NulByte);
    }
    if is_already_normal(raw) {
        out.extend_from_slice(raw);
        return Ok(());
    }
    let decoded = percent_decode(raw)?;
    out.reserve(decoded.len());
    for segment in decoded.split(|&b| b == b'/').skip(1) {
        match segment {
            b"" | b"." => {}
            b".." => {
                if out.is_empty() {
                    return Err(UriError::AboveRoot);
                }
                let cut = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
                out.truncate(cut);
            }
            s => {
                out.push(b'/');
                out.extend_from_slice(s);
            }
        }
    }
    // `/a/`, `/a/.` and `/a/b/..` all name the directory `/a/`; keep its slash.
    let last = decoded.rsplit(|&b| b == b'/').next().unwrap_or(b"");
    if matches!(last, b"" | b"." | b"..") || out.is_empty() {
        out.push(b'/');
    }
    Ok(())
}

/// [`normalize_path`] without a copy when the path is already normal (the common case).
pub fn normalized(raw: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, UriError> {
    if raw.first() == Some(&b'/') && memchr::memchr(0, raw).is_none() && is_already_normal(raw) {
        return Ok(std::borrow::Cow::Borrowed(raw));
    }
    let mut out = Vec::new();
    normalize_path(raw, &mut out)?;
    Ok(std::borrow::Cow::Owned(out))
}

/// True when the path has nothing to decode, merge or resolve: the common case, copied as is.
fn is_already_normal(raw: &[u8]) -> bool {
    memchr::memchr(b'%', raw).is_none()
        && memchr::memmem::find(raw, b"//").is_none()
        && !raw.split(|&b| b == b'/').any(|s| s == b"." || s == b"..")
}

fn percent_decode(raw: &[u8]) -> Result<Vec<u8>, UriError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'%' {
            let hi = raw.get(i + 1).and_then(|&c| hex_digit(c));
            let lo = raw.get(i + 2).and_then(|&c| hex_digit(c));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(UriError::BadPercentEncoding);
            };
            let byte = (hi << 4) | lo;
            if byte == 0 {
                return Err(UriError::NulByte);
            }
            out.push(byte);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Ok(out)
}

/// `$request_uri` (uwsgi's `REQUEST_URI`) of `target`, given its [`split_target`] parts:
/// the raw path and query. They are one run of the target, except for
/// an absolute-form target without a path.
pub fn request_uri<'r>(
    target: &'r [u8],
    path: &'r [u8],
    query: Option<&'r [u8]>,
) -> std::borrow::Cow<'r, [u8]> {
    let start = path.as_ptr() as usize;
    let base = target.as_ptr() as usize;
    let contiguous = start >= base && start + path.len() <= base + target.len();
    match query {
        None => std::borrow::Cow::Borrowed(path),
        Some(q) if contiguous => {
            let from = start - base;
            let to = (q.as_ptr() as usize - base) + q.len();
            std::borrow::Cow::Borrowed(&target[from..to])
        }
        Some(q) => {
            let mut uri = path.to_vec();
            uri.push(b'?');
            uri.extend_from_slice(q);
            std::borrow::Cow::Owned(uri)
        }
    }
}

/// Percent-encodes a decoded path for use in a `Location` header: bytes that may not
/// appear in a URI path are escaped, everything else is kept.
pub fn escape_path(path: &[u8], out: &mut String) {
    for &b in path {
        let keep = b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b);
        if keep {
            out.push(b as char);
        } else {
            let [hi, lo] = hex_pair(b);
            out.push('%');
            out.push(char::from(hi));
            out.push(char::from(lo));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> Result<String, UriError> {
        let mut out = Vec::new();
        normalize_path(raw.as_bytes(), &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    #[test]
    fn nginx_capture_06_path_normalization() {
        // ../shared/uwsgi/captures/nginx_to_upstream/06_get_path_normalization
        let t = split_target(b"/recu//a%20b/./c/../d%2Fe%3Fnot-query?q=%20+1").unwrap();
        assert_eq!(t.query, Some(&b"q=%20+1"[..]));
        let mut out = Vec::new();
        normalize_path(t.raw_path, &mut out).unwrap();
        assert_eq!(out, b"/recu/a b/d/e?not-query");
    }

    #[test]
    fn dot_segments_and_slashes() {
        assert_eq!(norm("/").unwrap(), "/");
        assert_eq!(norm("/a/b").unwrap(), "/a/b");
        assert_eq!(norm("/a/b/").unwrap(), "/a/b/");
        assert_eq!(norm("/a/.").unwrap(), "/a/");
        assert_eq!(norm("/a/b/..").unwrap(), "/a/");
        assert_eq!(norm("/a/..").unwrap(), "/");
        assert_eq!(norm("//a///b").unwrap(), "/a/b");
        assert_eq!(norm("/a/./b/../c").unwrap(), "/a/c");
        assert_eq!(norm("/static../secret").unwrap(), "/static../secret");
        assert_eq!(norm("/.well-known/x").unwrap(), "/.well-known/x");
    }

    #[test]
    fn encoded_dots_and_slashes_are_resolved_too() {
        assert_eq!(norm("/a/%2e%2e/b").unwrap(), "/b");
        assert_eq!(norm("/a%2f..%2fb").unwrap(), "/b");
        assert_eq!(norm("/%2E/x").unwrap(), "/x");
    }

    #[test]
    fn climbing_above_root_is_refused() {
        assert_eq!(norm("/.."), Err(UriError::AboveRoot));
        assert_eq!(norm("/a/../.."), Err(UriError::AboveRoot));
        assert_eq!(norm("/%2e%2e/etc/passwd"), Err(UriError::AboveRoot));
    }

    #[test]
    fn bad_escapes_and_nul_are_refused() {
        assert_eq!(norm("/a%zz"), Err(UriError::BadPercentEncoding));
        assert_eq!(norm("/a%2"), Err(UriError::BadPercentEncoding));
        assert_eq!(norm("/a%00b"), Err(UriError::NulByte));
        assert_eq!(norm("/a\0b"), Err(UriError::NulByte));
        assert_eq!(norm("a"), Err(UriError::NotAbsolutePath));
    }

    #[test]
    fn absolute_form_targets_keep_only_path_and_query() {
        let t = split_target(b"http://other.example:8080/rec/abs?x=1").unwrap();
        assert_eq!(t.raw_path, b"/rec/abs");
        assert_eq!(t.query, Some(&b"x=1"[..]));
        let t = split_target(b"HTTP://h").unwrap();
        assert_eq!(t.raw_path, b"/");
        assert_eq!(t.query, None);
        assert_eq!(split_target(b"*"), Err(UriError::NotAbsolutePath));
    }

    #[test]
    fn fragments_are_dropped() {
        let t = split_target(b"/a#frag?x").unwrap();
        assert_eq!(t.raw_path, b"/a");
        assert_eq!(t.query, None);
    }

    #[test]
    fn escape_path_keeps_safe_bytes() {
        let mut s = String::new();
        escape_path(b"/a b/\xc3\xa9?\"", &mut s);
        assert_eq!(s, "/a%20b/%C3%A9%3F%22");
    }
}
