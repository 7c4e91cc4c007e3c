//! Every time Portico prints or reads: the current second as log lines and the `Date`
//! header print it, formatted once per second per thread (as nginx caches its time
//! strings) rather than once per line, and HTTP dates of file times (`Last-Modified`,
//! `If-Modified-Since`). chrono gives the local zone, httpdate HTTP's three date forms.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One second's time strings.
#[derive(Debug)]
pub struct TimeStrings {
    /// `$time_local`: `27/Nov/2026:02:14:11 +0000`
    pub time_local: String,
    /// `$time_iso8601`: `2026-11-27T02:14:11+00:00`
    pub iso8601: String,
    /// The error log's: `2026/11/27 02:14:11`
    pub error_log: String,
    /// The `Date` response header's (IMF-fixdate): `Fri, 27 Nov 2026 02:14:11 GMT`
    pub http_date: String,
}

/// The current time for one log line.
#[derive(Clone, Debug)]
pub struct Now {
    pub secs: i64,
    pub millis: u32,
    pub strings: Rc<TimeStrings>,
}

thread_local! {
    static CACHE: RefCell<Option<(i64, Rc<TimeStrings>)>> = const { RefCell::new(None) };
}

/// The current time, with its strings from this thread's cache when the second is the
/// same.
pub fn now() -> Now {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
    let strings = CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        match &*cache {
            Some((s, strings)) if *s == secs => strings.clone(),
            _ => {
                let strings = Rc::new(format_second(secs));
                *cache = Some((secs, strings.clone()));
                strings
            }
        }
    });
    Now { secs, millis: since.subsec_millis(), strings }
}

/// Calls `f` with the current `Date` header value (a borrowed string, so it is never held
/// across an await).
pub fn with_http_date<R>(f: impl FnOnce(&str) -> R) -> R {
    f(&now().strings.http_date)
}

fn format_second(secs: i64) -> TimeStrings {
    use chrono::TimeZone;
    let t = chrono::Local.timestamp_opt(secs, 0).single().unwrap_or_else(chrono::Local::now);
    TimeStrings {
        time_local: t.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
        iso8601: t.format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        error_log: t.format("%Y/%m/%d %H:%M:%S").to_string(),
        http_date: http_date(secs).map_or_else(String::new, |d| d.to_string()),
    }
}

/// An HTTP date (IMF-fixdate) for seconds since the epoch.
/// `None` for times an HTTP date cannot express (before 1970, after 9999), as a file's
/// mtime can be: the response then goes without `Last-Modified`.
pub fn http_date(secs: i64) -> Option<httpdate::HttpDate> {
    // 9999-12-31 23:59:59, the last second httpdate formats
    const LAST: u64 = 253_402_300_799;
    let secs = u64::try_from(secs).ok().filter(|&s| s <= LAST)?;
    Some(httpdate::HttpDate::from(UNIX_EPOCH + Duration::from_secs(secs)))
}

/// Seconds since the epoch of an HTTP date in any of its three forms (RFC 9110 §5.6.7).
pub fn parse_http_date(value: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(value).ok()?;
    let t = httpdate::parse_http_date(text.trim()).ok()?;
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).ok(),
        Err(e) => i64::try_from(e.duration().as_secs()).ok().map(|s| -s),
    }
}

/// An instant a deadline can be counted from (std's, or tokio's in the server).
pub trait Instant: Copy {
    fn checked_add(&self, d: Duration) -> Option<Self>;
}

impl Instant for std::time::Instant {
    fn checked_add(&self, d: Duration) -> Option<Self> {
        std::time::Instant::checked_add(self, d)
    }
}

#[cfg(feature = "server")]
impl Instant for tokio::time::Instant {
    fn checked_add(&self, d: Duration) -> Option<Self> {
        tokio::time::Instant::checked_add(self, d)
    }
}

/// `from + d` without the panic `+` has past what the clock can hold: configured
/// durations are bounded when the file is read, and this keeps any other sum from
/// taking a worker down (it saturates a year out, then at `from`).
pub fn deadline<I: Instant>(from: I, d: Duration) -> I {
    const YEAR: Duration = Duration::from_secs(365 * 86_400);
    from.checked_add(d).or_else(|| from.checked_add(YEAR)).unwrap_or(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_nginx() {
        let s = format_second(0);
        // the offset depends on the machine's zone; the shapes do not
        assert_eq!(s.time_local.len(), "01/Jan/1970:00:00:00 +0000".len());
        assert_eq!(&s.time_local[2..3], "/");
        assert_eq!(s.error_log.len(), "1970/01/01 00:00:00".len());
        assert!(s.iso8601.starts_with("19"));
    }

    #[test]
    fn http_dates_only_for_times_they_can_express() {
        assert_eq!(http_date(0).unwrap().to_string(), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert!(http_date(-17_280_000).is_none(), "1969");
        assert!(http_date(253_402_300_800).is_none(), "year 10000");
        assert!(http_date(i64::MAX).is_none());
        assert_eq!(parse_http_date(b" Thu, 01 Jan 1970 00:01:00 GMT"), Some(60));
        assert_eq!(parse_http_date(b"Thursday, 01-Jan-70 00:01:00 GMT"), Some(60));
        assert_eq!(parse_http_date(b"Thu Jan  1 00:01:00 1970"), Some(60));
        assert_eq!(parse_http_date(b"yesterday"), None);
    }

    #[test]
    fn deadlines_saturate() {
        let now = std::time::Instant::now();
        assert_eq!(deadline(now, Duration::from_secs(5)), now + Duration::from_secs(5));
        assert_eq!(deadline(now, Duration::MAX), now + Duration::from_secs(365 * 86_400));
    }

    #[test]
    fn same_second_shares_the_strings() {
        let a = now();
        let b = now();
        if a.secs == b.secs {
            assert!(Rc::ptr_eq(&a.strings, &b.strings));
        }
    }
}
