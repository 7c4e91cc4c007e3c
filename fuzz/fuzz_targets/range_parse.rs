//! Arbitrary `Range` and `If-Range` headers against a file of arbitrary size, through the
//! decision a static response is made from (`evaluate_range`, nginx's range filter). It
//! never panics, and whatever it answers can be sent as it is:
//!
//! - never more parts than `max_ranges`, and no range answer at all when `max_ranges` is 0
//!   (README: `0` turns ranges off; the whole file is sent, never a 206 or a 416);
//! - every part is non-empty and inside the file, and the parts add up to at most the file
//!   (an answer larger than the file is the whole file instead); a multipart answer has at
//!   least two parts;
//! - a 416 only for a header in the `bytes` unit: any other unit is ignored (whole file);
//! - an `If-Range` only ever turns a range answer into the whole file;
//! - `max_ranges` only counts: a range answer of n parts is the same for any limit from n
//!   up, and the whole file below n; each part, asked for alone, is answered as itself.
//!
//! The input is text shaped like the headers it stands for: a first line `SIZE MAX`
//! (decimal; MAX is taken modulo 33), then the `Range` value up to the next LF, then the
//! `If-Range` value if there is one (header values never hold an LF).

#![no_main]

use libfuzzer_sys::fuzz_target;
use portico::static_files::headers::{evaluate_range, ByteRange, FileFacts, RangeDecision};

/// The file's modification time: any fixed one will do, its ETag and date are in the seeds.
const MTIME: i64 = 1_700_000_000;

/// The largest `max_ranges` tried; the default is 16.
const MAX_RANGES: u32 = 32;

fuzz_target!(|data: &[u8]| {
    let mut lines = data.splitn(3, |&b| b == b'\n');
    let (Some(first), Some(range)) = (lines.next(), lines.next()) else { return };
    let if_range = lines.next();
    let Some((size, max_ranges)) = size_and_limit(first) else { return };
    let facts = FileFacts { size, mtime: MTIME };
    let etag = facts.etag();
    let decide = |range: &[u8], if_range, max| evaluate_range(Some(range), if_range, &facts, &etag, max);

    let decision = decide(range, if_range, max_ranges);
    let parts = parts(&decision);
    if max_ranges == 0 {
        assert_eq!(decision, RangeDecision::Full, "max_ranges = 0 turns ranges off");
    }
    assert!(parts.len() <= max_ranges as usize, "{} parts over max_ranges {max_ranges}", parts.len());
    for r in parts {
        assert!(r.start < r.end && r.end <= size, "{r:?} of a {size}-byte file");
    }
    // u128: the parts of a file near u64::MAX bytes could add up past u64
    let total: u128 = parts.iter().map(|r| u128::from(r.len())).sum();
    assert!(total <= u128::from(size), "parts add up to {total} bytes of a {size}-byte file");
    let bytes_unit = range.len() >= 6 && range[..6].eq_ignore_ascii_case(b"bytes=");
    if !bytes_unit {
        assert_eq!(decision, RangeDecision::Full, "a unit other than bytes is ignored");
    }

    if if_range.is_some() {
        let without = decide(range, None, max_ranges);
        assert!(
            decision == without || decision == RangeDecision::Full,
            "If-Range turned {without:?} into {decision:?}"
        );
    }

    if !parts.is_empty() {
        let n = parts.len() as u32;
        for max in [n, MAX_RANGES.max(n)] {
            assert_eq!(decide(range, if_range, max), decision, "with max_ranges {max}");
        }
        assert_eq!(decide(range, if_range, n - 1), RangeDecision::Full, "with max_ranges {}", n - 1);
        for r in parts.iter().take(4) {
            let alone = format!("bytes={}-{}", r.start, r.end - 1);
            assert_eq!(decide(alone.as_bytes(), None, 1), RangeDecision::Single(*r), "{alone}");
        }
    }
});

/// `SIZE MAX` from the first line.
fn size_and_limit(line: &[u8]) -> Option<(u64, u32)> {
    let line = std::str::from_utf8(line).ok()?;
    let (size, max) = line.split_once(' ')?;
    Some((size.parse().ok()?, max.parse::<u32>().ok()? % (MAX_RANGES + 1)))
}

/// The parts a range answer sends (none for the whole file or a 416).
fn parts(decision: &RangeDecision) -> &[ByteRange] {
    match decision {
        RangeDecision::Single(r) => std::slice::from_ref(r),
        RangeDecision::Multiple(v) => {
            assert!(v.len() >= 2, "a multipart answer of {} part", v.len());
            v
        }
        RangeDecision::Full | RangeDecision::Unsatisfiable => &[],
    }
}
