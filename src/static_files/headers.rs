//! What a static response says about its file, decided from values alone: `Content-Type`
//! by extension, nginx's `ETag` and `Last-Modified`, the conditional headers (`If-Match`,
//! `If-Unmodified-Since`, `If-None-Match`, `If-Modified-Since`) and `Range`/`If-Range`,
//! each following nginx's rules (`if_modified_since exact`, ranges parsed as
//! `ngx_http_range_filter_module` parses them).

use crate::ascii::trim_ows;
use crate::reply::ETag;

/// The facts about a file that its response headers are made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileFacts {
    pub size: u64,
    /// Modification time, whole seconds since the epoch (what HTTP dates can carry).
    pub mtime: i64,
}

impl FileFacts {
    /// nginx's strong ETag: `"<mtime hex>-<size hex>"`.
    pub fn etag(&self) -> ETag {
        ETag::strong(self.mtime, self.size)
    }

    /// The strong ETag of a precompressed file: nginx's, with the coding, so that the
    /// `.br` and `.gz` of one file (which may share a size and `gzip -k`'s mtime) differ.
    pub fn etag_coded(&self, coding: &str) -> ETag {
        ETag::strong_coded(self.mtime, self.size, coding)
    }
}

/// `Content-Type` for a file name, by its extension. Follows nginx's stock `mime.types`
/// where it differs from the `mime_guess` database; unknown types are
/// `application/octet-stream`, nginx's `default_type`.
pub fn content_type(file_name: &[u8]) -> &'static str {
    let name = match memchr::memrchr(b'/', file_name) {
        Some(i) => &file_name[i + 1..],
        None => file_name,
    };
    let Some(dot) = memchr::memrchr(b'.', name) else {
        return "application/octet-stream";
    };
    let Ok(ext) = std::str::from_utf8(&name[dot + 1..]) else {
        return "application/octet-stream";
    };
    let mut lower = [0u8; 16];
    let Some(slot) = lower.get_mut(..ext.len()) else {
        return "application/octet-stream";
    };
    slot.copy_from_slice(ext.as_bytes());
    slot.make_ascii_lowercase();
    let ext = std::str::from_utf8(slot).unwrap_or("");
    match ext {
        // the everyday ones first; nginx's mime.types (1.22) disagrees with mime_guess
        // on js, woff and map
        "css" => "text/css",
        "html" | "htm" => "text/html",
        "js" => "application/javascript",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "map" => "application/octet-stream",
        "txt" => "text/plain",
        "json" => "application/json",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "xml" => "text/xml",
        _ => mime_guess::from_ext(ext).first_raw().unwrap_or("application/octet-stream"),
    }
}

/// What the conditional request headers decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conditional {
    /// Send the file (possibly a range of it).
    Proceed,
    /// 304: the client's copy is current.
    NotModified,
    /// 412: `If-Match` or `If-Unmodified-Since` failed.
    PreconditionFailed,
}

/// The request's conditional headers, as raw values.
#[derive(Clone, Copy, Debug, Default)]
pub struct Conditions<'a> {
    pub if_match: Option<&'a [u8]>,
    pub if_unmodified_since: Option<&'a [u8]>,
    pub if_none_match: Option<&'a [u8]>,
    pub if_modified_since: Option<&'a [u8]>,
}

/// Evaluates conditional headers in nginx's order (`ngx_http_not_modified_filter_module`).
pub fn evaluate_conditions(c: &Conditions, facts: &FileFacts, etag: &str) -> Conditional {
    if let Some(ius) = c.if_unmodified_since {
        // an unparsable date is ignored, as nginx ignores it
        if let Some(t) = crate::clock::parse_http_date(ius) {
            if t < facts.mtime {
                return Conditional::PreconditionFailed;
            }
        }
    }
    if let Some(im) = c.if_match {
        if !etag_list_matches(im, etag, false) {
            return Conditional::PreconditionFailed;
        }
    }
    if c.if_modified_since.is_none() && c.if_none_match.is_none() {
        return Conditional::Proceed;
    }
    if let Some(ims) = c.if_modified_since {
        // `if_modified_since exact`: only the very same date means "not modified"
        if crate::clock::parse_http_date(ims) != Some(facts.mtime) {
            return Conditional::Proceed;
        }
    }
    if let Some(inm) = c.if_none_match {
        if !etag_list_matches(inm, etag, true) {
            return Conditional::Proceed;
        }
    }
    Conditional::NotModified
}

/// Whether a comma-separated ETag list (or `*`) names `etag`; `weak` allows `W/` tags.
fn etag_list_matches(list: &[u8], etag: &str, weak: bool) -> bool {
    let Ok(list) = std::str::from_utf8(list) else {
        return false;
    };
    let list = list.trim();
    if list == "*" {
        return true;
    }
    list.split(',').map(str::trim).any(|tag| {
        let tag = match tag.strip_prefix("W/") {
            Some(t) if weak => t,
            Some(_) => return false,
            None => tag,
        };
        tag == etag
    })
}

/// One byte range to send: `start..end` (end exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// The `Content-Range` value for this range of a file of `size` bytes.
    pub fn content_range(&self, size: u64) -> String {
        format!("bytes {}-{}/{}", self.start, self.end - 1, size)
    }
}

/// What the `Range` and `If-Range` headers decide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeDecision {
    /// 200 with the whole file.
    Full,
    /// 206 with one range.
    Single(ByteRange),
    /// 206 `multipart/byteranges`.
    Multiple(Vec<ByteRange>),
    /// 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// Decides the range response, as nginx's range filter does, allowing at most
/// `max_ranges` ranges; `0` turns ranges off (the whole file, whatever the header says,
/// as nginx's filter then does nothing).
pub fn evaluate_range(
    range: Option<&[u8]>,
    if_range: Option<&[u8]>,
    facts: &FileFacts,
    etag: &str,
    max_ranges: u32,
) -> RangeDecision {
    let Some(range) = range.filter(|_| max_ranges > 0) else {
        return RangeDecision::Full;
    };
    if range.len() < 6 || !range[..6].eq_ignore_ascii_case(b"bytes=") {
        return RangeDecision::Full;
    }
    if let Some(ir) = if_range {
        let ir_trim = trim_ows(ir);
        let matches = if ir_trim.first() == Some(&b'"') || ir_trim.starts_with(b"W/") {
            etag_list_matches(ir_trim, etag, false)
        } else {
            crate::clock::parse_http_date(ir_trim) == Some(facts.mtime)
        };
        if !matches {
            return RangeDecision::Full;
        }
    }
    parse_ranges(&range[6..], facts.size, max_ranges)
}

/// `ngx_http_range_parse`: syntax errors are 416; ranges starting past the end are
/// skipped; more than `max_ranges` ranges, or overlapping ranges adding up to more than
/// the file, send the whole file.
fn parse_ranges(spec: &[u8], size: u64, max_ranges: u32) -> RangeDecision {
    let mut ranges = Vec::new();
    // exact: the parts of a file near u64::MAX bytes can add up past u64 (and saturating
    // there would make them add up to the file)
    let mut total: u128 = 0;
    let mut p = 0;
    let at = |p: usize| spec.get(p).copied().unwrap_or(0);
    let skip_spaces = |p: &mut usize| {
        while at(*p) == b' ' {
            *p += 1;
        }
    };
    // one or more digits
    let number = |p: &mut usize| -> Option<u64> {
        if !at(*p).is_ascii_digit() {
            return None;
        }
        let mut n: u64 = 0;
        while at(*p).is_ascii_digit() {
            n = n.checked_mul(10)?.checked_add(u64::from(at(*p) - b'0'))?;
            *p += 1;
        }
        Some(n)
    };
    // a number that ends a range: only spaces may follow it before `,` or the end
    let last_number = |p: &mut usize| -> Option<u64> {
        let n = number(p)?;
        skip_spaces(p);
        matches!(at(*p), b',' | 0).then_some(n)
    };
    loop {
        skip_spaces(&mut p);
        let (start, end);
        if at(p) == b'-' {
            p += 1;
            let Some(suffix) = last_number(&mut p) else {
                return RangeDecision::Unsatisfiable;
            };
            start = size.saturating_sub(suffix);
            end = size;
        } else {
            let Some(s) = number(&mut p) else {
                return RangeDecision::Unsatisfiable;
            };
            skip_spaces(&mut p);
            if at(p) != b'-' {
                return RangeDecision::Unsatisfiable;
            }
            p += 1;
            skip_spaces(&mut p);
            start = s;
            end = if matches!(at(p), b',' | 0) {
                size
            } else {
                let Some(e) = last_number(&mut p) else {
                    return RangeDecision::Unsatisfiable;
                };
                if e >= size {
                    size
                } else {
                    e + 1
                }
            };
        }
        if start < end {
            if ranges.len() >= max_ranges as usize {
                return RangeDecision::Full;
            }
            ranges.push(ByteRange { start, end });
            total += u128::from(end - start);
        } else if start == 0 {
            return RangeDecision::Full;
        }
        if at(p) != b',' {
            break;
        }
        p += 1;
    }
    if ranges.is_empty() {
        return RangeDecision::Unsatisfiable;
    }
    if total > u128::from(size) {
        return RangeDecision::Full;
    }
    if ranges.len() == 1 {
        RangeDecision::Single(ranges[0])
    } else {
        RangeDecision::Multiple(ranges)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: FileFacts = FileFacts { size: 1000, mtime: 1_700_000_000 };

    fn range(spec: &str) -> RangeDecision {
        evaluate_range(Some(spec.as_bytes()), None, &F, &F.etag(), 16)
    }

    fn r(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    #[test]
    fn etag_and_date_as_nginx() {
        assert_eq!(&*F.etag(), "\"6553f100-3e8\"");
        assert_eq!(crate::clock::http_date(F.mtime).unwrap().to_string(), "Tue, 14 Nov 2023 22:13:20 GMT");
        let max = FileFacts { size: u64::MAX, mtime: i64::MAX };
        assert_eq!(max.etag().len(), 35);
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type(b"/x/index.html"), "text/html");
        assert_eq!(content_type(b"styles.CSS"), "text/css");
        assert_eq!(content_type(b"app.js"), "application/javascript");
        assert_eq!(content_type(b"a.png"), "image/png");
        assert_eq!(content_type(b"a.woff2"), "font/woff2");
        assert_eq!(content_type(b"a.woff"), "font/woff");
        assert_eq!(content_type(b"a.svg"), "image/svg+xml");
        assert_eq!(content_type(b"robots.txt"), "text/plain");
        assert_eq!(content_type(b"noext"), "application/octet-stream");
        assert_eq!(content_type(b"dir.d/noext"), "application/octet-stream");
        assert_eq!(content_type(b"x.unknownext"), "application/octet-stream");
    }

    #[test]
    fn ranges_single() {
        assert_eq!(range("bytes=0-499"), RangeDecision::Single(r(0, 500)));
        assert_eq!(range("bytes=500-"), RangeDecision::Single(r(500, 1000)));
        assert_eq!(range("bytes=-200"), RangeDecision::Single(r(800, 1000)));
        assert_eq!(range("bytes=-5000"), RangeDecision::Single(r(0, 1000)));
        assert_eq!(range("bytes=900-5000"), RangeDecision::Single(r(900, 1000)));
        assert_eq!(range("BYTES= 1 - 2 "), RangeDecision::Single(r(1, 3)));
        assert_eq!(r(0, 500).content_range(1000), "bytes 0-499/1000");
    }

    #[test]
    fn ranges_unsatisfiable_and_ignored() {
        assert_eq!(range("bytes=1000-"), RangeDecision::Unsatisfiable);
        assert_eq!(range("bytes=5-3"), RangeDecision::Unsatisfiable);
        assert_eq!(range("bytes=-0"), RangeDecision::Unsatisfiable);
        assert_eq!(range("bytes=abc"), RangeDecision::Unsatisfiable);
        assert_eq!(range("bytes=1-2x"), RangeDecision::Unsatisfiable);
        assert_eq!(range("bytes=99999999999999999999999-"), RangeDecision::Unsatisfiable);
        assert_eq!(range("items=0-1"), RangeDecision::Full);
        assert_eq!(evaluate_range(None, None, &F, "x", 16), RangeDecision::Full);
        // "0-" on an empty file sends the (empty) file, as nginx declines the range
        let empty = FileFacts { size: 0, mtime: 0 };
        assert_eq!(evaluate_range(Some(b"bytes=0-"), None, &empty, "x", 16), RangeDecision::Full);
    }

    #[test]
    fn ranges_multiple() {
        assert_eq!(range("bytes=0-1,5-9"), RangeDecision::Multiple(vec![r(0, 2), r(5, 10)]));
        // a range past the end is skipped
        assert_eq!(range("bytes=0-1,2000-3000"), RangeDecision::Single(r(0, 2)));
        // overlaps adding up to more than the file: whole file
        assert_eq!(range("bytes=0-999,0-999"), RangeDecision::Full);
        // more than max_ranges: whole file, however the parts add up
        let spec = |n: u64| (0..n).map(|i| format!("{0}-{0}", i * 2)).collect::<Vec<_>>().join(",");
        let many =
            |n, max| evaluate_range(Some(format!("bytes={}", spec(n)).as_bytes()), None, &F, &F.etag(), max);
        assert!(matches!(many(16, 16), RangeDecision::Multiple(r) if r.len() == 16));
        assert_eq!(many(17, 16), RangeDecision::Full);
        assert_eq!(many(1, 0), RangeDecision::Full);
    }

    #[test]
    fn parts_adding_up_past_u64_are_more_than_the_file() {
        // found by fuzz/fuzz_targets/range_parse.rs: the sum saturated at u64::MAX, the size
        let huge = FileFacts { size: u64::MAX, mtime: 0 };
        let spec = b"bytes=18446744073709551614-,0-";
        assert_eq!(evaluate_range(Some(spec), None, &huge, "x", 16), RangeDecision::Full);
    }

    #[test]
    fn max_ranges_zero_is_the_whole_file_even_for_a_bad_header() {
        // found by fuzz/fuzz_targets/range_parse.rs: these were 416 with ranges off
        for spec in [&b"bytes=0-\xa0"[..], b"bytes=abc", b"bytes=1000-", b"bytes=-0"] {
            let off = evaluate_range(Some(spec), None, &F, &F.etag(), 0);
            assert_eq!(off, RangeDecision::Full, "{}", String::from_utf8_lossy(spec));
        }
    }

    #[test]
    fn if_range() {
        let etag = F.etag();
        let lm = crate::clock::http_date(F.mtime).unwrap().to_string();
        let yes = evaluate_range(Some(b"bytes=0-1"), Some(etag.as_bytes()), &F, &etag, 16);
        assert_eq!(yes, RangeDecision::Single(r(0, 2)));
        let by_date = evaluate_range(Some(b"bytes=0-1"), Some(lm.as_bytes()), &F, &etag, 16);
        assert_eq!(by_date, RangeDecision::Single(r(0, 2)));
        let stale = evaluate_range(Some(b"bytes=0-1"), Some(b"\"other\""), &F, &etag, 16);
        assert_eq!(stale, RangeDecision::Full);
        let weak = evaluate_range(Some(b"bytes=0-1"), Some(format!("W/{etag}").as_bytes()), &F, &etag, 16);
        assert_eq!(weak, RangeDecision::Full);
        let old = evaluate_range(Some(b"bytes=0-1"), Some(b"Mon, 01 Jan 2001 00:00:00 GMT"), &F, &etag, 16);
        assert_eq!(old, RangeDecision::Full);
    }

    #[test]
    fn conditionals_as_nginx() {
        let etag = F.etag();
        let lm = crate::clock::http_date(F.mtime).unwrap().to_string();
        let eval = |c: Conditions| evaluate_conditions(&c, &F, &etag);
        assert_eq!(eval(Conditions::default()), Conditional::Proceed);
        assert_eq!(
            eval(Conditions { if_none_match: Some(etag.as_bytes()), ..Default::default() }),
            Conditional::NotModified
        );
        assert_eq!(
            eval(Conditions { if_none_match: Some(b"\"a\", W/\"6553f100-3e8\""), ..Default::default() }),
            Conditional::NotModified
        );
        assert_eq!(
            eval(Conditions { if_none_match: Some(b"*"), ..Default::default() }),
            Conditional::NotModified
        );
        assert_eq!(
            eval(Conditions { if_none_match: Some(b"\"other\""), ..Default::default() }),
            Conditional::Proceed
        );
        assert_eq!(
            eval(Conditions { if_modified_since: Some(lm.as_bytes()), ..Default::default() }),
            Conditional::NotModified
        );
        // exact: a later date is not "the same", nginx sends the file
        assert_eq!(
            eval(Conditions {
                if_modified_since: Some(b"Wed, 01 Jan 2031 00:00:00 GMT"),
                ..Default::default()
            }),
            Conditional::Proceed
        );
        assert_eq!(
            eval(Conditions { if_modified_since: Some(b"garbage"), ..Default::default() }),
            Conditional::Proceed
        );
        // both present: both must say "not modified"
        assert_eq!(
            eval(Conditions {
                if_modified_since: Some(lm.as_bytes()),
                if_none_match: Some(b"\"other\""),
                ..Default::default()
            }),
            Conditional::Proceed
        );
        assert_eq!(
            eval(Conditions { if_match: Some(b"\"other\""), ..Default::default() }),
            Conditional::PreconditionFailed
        );
        assert_eq!(
            eval(Conditions { if_match: Some(etag.as_bytes()), ..Default::default() }),
            Conditional::Proceed
        );
        assert_eq!(
            eval(Conditions {
                if_unmodified_since: Some(b"Mon, 01 Jan 2001 00:00:00 GMT"),
                ..Default::default()
            }),
            Conditional::PreconditionFailed
        );
        assert_eq!(
            eval(Conditions { if_unmodified_since: Some(lm.as_bytes()), ..Default::default() }),
            Conditional::Proceed
        );
    }
}
