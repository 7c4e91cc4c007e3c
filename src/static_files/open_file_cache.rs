//! nginx's `open_file_cache`: per worker thread, what opening a file gave — the open fd
//! with its size and modification time, that it is a directory, or (with
//! `open_file_cache_errors`) why it failed — and what `try_files` found, kept for
//! `open_file_cache_valid` and dropped when unused for `inactive`. A hit costs no
//! syscall; a file replaced on disk is seen once its entry is older than `valid` (a file
//! truncated in place is sent short, and the connection closed, as nginx does).
//!
//! The results come from [`super::open`]; this module only keeps them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::mapping::MappedPath;
use super::open::{exists, open_file, FailureKind, OpenFailure, Opened, SymlinkPolicy};
use crate::reply::OpenFile;

/// The cache's settings (`open_file_cache`, `open_file_cache_valid`, `open_file_cache_errors`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheSettings {
    /// Most entries per worker thread; the least recently used goes first.
    pub max: usize,
    /// An entry unused this long is dropped (and its fd closed).
    pub inactive: Duration,
    /// An entry this old is looked up on disk again.
    pub valid: Duration,
    /// Failures (missing files, permissions) are kept too.
    pub errors: bool,
}

impl CacheSettings {
    /// Reads nginx's `max=N [inactive=TIME]`; `None` for `off`.
    pub fn parse(
        text: &str,
        parse_duration: impl Fn(&str) -> Option<Duration>,
    ) -> Result<Option<(usize, Duration)>, String> {
        let text = text.trim();
        if text == "off" {
            return Ok(None);
        }
        let mut max = None;
        let mut inactive = Duration::from_secs(60);
        for part in text.split_whitespace() {
            if let Some(n) = part.strip_prefix("max=") {
                max = Some(n.parse::<usize>().ok().filter(|n| (1..=MAX_ENTRIES).contains(n)).ok_or_else(
                    || format!("`{part}`: max must be a number of entries from 1 to {MAX_ENTRIES}"),
                )?);
            } else if let Some(t) = part.strip_prefix("inactive=") {
                inactive = parse_duration(t)
                    .ok_or_else(|| format!("`{part}`: inactive takes a time of at most 596h, such as 20s"))?;
            } else {
                return Err(format!("`{part}` is not part of open_file_cache"));
            }
        }
        max.map(|m| Some((m, inactive))).ok_or_else(|| "open_file_cache needs max=N".to_string())
    }
}

/// The largest `max`: a sweep of the whole cache (once a second, or when it is full)
/// stays well under a millisecond.
const MAX_ENTRIES: usize = 100_000;

/// What a lookup found out, as kept.
enum Cached {
    File {
        file: std::sync::Arc<std::fs::File>,
        facts: super::headers::FileFacts,
    },
    Directory,
    Failed {
        kind: FailureKind,
        log_message: String,
    },
    /// A `try_files` check.
    Exists(bool),
}

struct Entry {
    /// The base, the relative part, the symlink policy and the kind of lookup, as bytes.
    key: Vec<u8>,
    value: Cached,
    checked: Instant,
    used: Instant,
}

#[derive(Default)]
struct Cache {
    /// By key hash; a bucket holds the (rare) keys that share one.
    buckets: HashMap<u64, Vec<Entry>>,
    len: usize,
    swept: Option<Instant>,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// Which lookup an entry is for.
#[derive(Clone, Copy)]
enum Kind {
    Open,
    Exists { dir: bool },
}

/// The key: base, a NUL (which neither path can hold), the relative part, and a suffix
/// for the symlink policy and the kind of lookup.
fn key_parts<'a>(path: &'a MappedPath, policy: SymlinkPolicy, kind: Kind) -> [&'a [u8]; 4] {
    use Kind::{Exists, Open};
    use SymlinkPolicy::{Deny, Follow, Inside};
    let suffix: &'static [u8] = match (policy, kind) {
        (Inside, Open) => b"io",
        (Inside, Exists { dir: false }) => b"ie",
        (Inside, Exists { dir: true }) => b"id",
        (Follow, Open) => b"fo",
        (Follow, Exists { dir: false }) => b"fe",
        (Follow, Exists { dir: true }) => b"fd",
        (Deny, Open) => b"do",
        (Deny, Exists { dir: false }) => b"de",
        (Deny, Exists { dir: true }) => b"dd",
    };
    [path.base, b"\0", &path.rel, suffix]
}

/// FNV-1a over the key's parts: short keys, no allocation.
fn hash(parts: &[&[u8]; 4]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        h = (h ^ 0xff).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn same_key(key: &[u8], parts: &[&[u8]; 4]) -> bool {
    let mut rest = key;
    for part in parts {
        match rest.strip_prefix(*part) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

impl Cache {
    fn get(&mut self, h: u64, parts: &[&[u8]; 4], now: Instant, valid: Duration) -> Option<&Cached> {
        let bucket = self.buckets.get_mut(&h)?;
        let i = bucket.iter().position(|e| same_key(&e.key, parts))?;
        if now.saturating_duration_since(bucket[i].checked) >= valid {
            bucket.swap_remove(i);
            self.len -= 1;
            return None;
        }
        bucket[i].used = now;
        Some(&bucket[i].value)
    }

    fn insert(&mut self, h: u64, parts: &[&[u8]; 4], value: Cached, now: Instant, s: &CacheSettings) {
        self.sweep(now, s.inactive, self.len >= s.max);
        if self.len >= s.max {
            // an eighth at a time: a cache kept full by new names costs one scan per
            // max/8 misses, not one per miss
            self.evict_least_recent(s.max.div_ceil(8));
        }
        let key = parts.concat();
        self.buckets.entry(h).or_default().push(Entry { key, value, checked: now, used: now });
        self.len += 1;
    }

    /// Drops entries unused for `inactive`: when the cache is full, else once a second
    /// (so a deleted file's fd is not held long after its last use).
    fn sweep(&mut self, now: Instant, inactive: Duration, full: bool) {
        let due = self.swept.is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1));
        if !full && !due {
            return;
        }
        self.swept = Some(now);
        let mut removed = 0;
        self.buckets.retain(|_, bucket| {
            let before = bucket.len();
            bucket.retain(|e| now.saturating_duration_since(e.used) < inactive);
            removed += before - bucket.len();
            !bucket.is_empty()
        });
        self.len -= removed;
    }

    /// Drops the `count` least recently used entries.
    fn evict_least_recent(&mut self, count: usize) {
        let mut uses: Vec<Instant> = self.buckets.values().flatten().map(|e| e.used).collect();
        if uses.is_empty() {
            return;
        }
        let nth = count.min(uses.len()) - 1;
        let (_, &mut cutoff, _) = uses.select_nth_unstable(nth);
        let mut left = count;
        let mut removed = 0;
        self.buckets.retain(|_, bucket| {
            bucket.retain(|e| {
                let evict = left > 0 && e.used <= cutoff;
                if evict {
                    left -= 1;
                    removed += 1;
                }
                !evict
            });
            !bucket.is_empty()
        });
        self.len -= removed;
    }
}

/// [`open_file`], through the cache when the location has one.
pub fn open(
    cache: Option<&CacheSettings>,
    path: &MappedPath,
    policy: SymlinkPolicy,
) -> Result<Opened, OpenFailure> {
    let Some(s) = cache else {
        return open_file(path, policy);
    };
    let parts = key_parts(path, policy, Kind::Open);
    let h = hash(&parts);
    let now = Instant::now();
    let hit = CACHE.with(|c| {
        c.borrow_mut().get(h, &parts, now, s.valid).and_then(|v| match v {
            Cached::File { file, facts } => {
                Some(Ok(Opened::File { file: OpenFile::Shared(file.clone()), facts: *facts }))
            }
            Cached::Directory => Some(Ok(Opened::Directory)),
            Cached::Failed { kind, log_message } => {
                Some(Err(OpenFailure { kind: *kind, log_message: log_message.clone() }))
            }
            // (the kind of lookup is part of the key: an open never finds a check's entry)
            Cached::Exists(_) => None,
        })
    });
    if let Some(result) = hit {
        return result;
    }
    let (result, kept) = match open_file(path, policy) {
        Ok(Opened::File { file, facts }) => {
            // from now on the file is shared with the cache
            let shared = match file {
                OpenFile::Own(f) => std::sync::Arc::new(f),
                OpenFile::Shared(f) => f,
            };
            let kept = Cached::File { file: shared.clone(), facts };
            (Ok(Opened::File { file: OpenFile::Shared(shared), facts }), Some(kept))
        }
        other => {
            let kept = keep_other(&other, s);
            (other, kept)
        }
    };
    if let Some(value) = kept {
        CACHE.with(|c| c.borrow_mut().insert(h, &parts, value, now, s));
    }
    result
}

/// What of a directory or a failure is kept (failures only with `errors`).
fn keep_other(result: &Result<Opened, OpenFailure>, s: &CacheSettings) -> Option<Cached> {
    match result {
        Ok(Opened::File { .. }) => None,
        Ok(Opened::Directory) => Some(Cached::Directory),
        Err(f) if s.errors && f.kind != FailureKind::Internal => {
            Some(Cached::Failed { kind: f.kind, log_message: f.log_message.clone() })
        }
        Err(_) => None,
    }
}

/// [`exists`], through the cache when the location has one (a miss is kept only with
/// `open_file_cache_errors`, as nginx).
pub fn exists_cached(
    cache: Option<&CacheSettings>,
    path: &MappedPath,
    dir: bool,
    policy: SymlinkPolicy,
) -> bool {
    let Some(s) = cache else {
        return exists(path, dir, policy);
    };
    let parts = key_parts(path, policy, Kind::Exists { dir });
    let h = hash(&parts);
    let now = Instant::now();
    let hit = CACHE.with(|c| match c.borrow_mut().get(h, &parts, now, s.valid) {
        Some(Cached::Exists(found)) => Some(*found),
        _ => None,
    });
    if let Some(found) = hit {
        return found;
    }
    let found = exists(path, dir, policy);
    if found || s.errors {
        CACHE.with(|c| c.borrow_mut().insert(h, &parts, Cached::Exists(found), now, s));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;
    use std::sync::Arc;

    fn settings(valid: Duration, errors: bool) -> CacheSettings {
        CacheSettings { max: 100, inactive: Duration::from_secs(60), valid, errors }
    }

    fn dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("portico-ofc-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn path<'a>(base: &'a [u8], rel: &'a [u8]) -> MappedPath<'a> {
        MappedPath::requested(base, Cow::Borrowed(rel))
    }

    fn file_of(r: Result<Opened, OpenFailure>) -> Arc<std::fs::File> {
        match r {
            Ok(Opened::File { file: OpenFile::Shared(file), .. }) => file,
            _ => panic!("not a shared file"),
        }
    }

    #[test]
    fn settings_as_nginx_writes_them() {
        let d = |t: &str| crate::config::section::parse_duration(t);
        assert_eq!(
            CacheSettings::parse("max=1000 inactive=20s", d),
            Ok(Some((1000, Duration::from_secs(20))))
        );
        assert_eq!(CacheSettings::parse("max=10", d), Ok(Some((10, Duration::from_secs(60)))));
        assert_eq!(CacheSettings::parse("off", d), Ok(None));
        assert!(CacheSettings::parse("inactive=20s", d).unwrap_err().contains("max=N"));
        assert!(CacheSettings::parse("max=0", d).is_err());
        assert!(CacheSettings::parse("max=5 min_uses=2", d).unwrap_err().contains("min_uses"));
    }

    #[test]
    fn hits_share_the_open_file_until_valid_runs_out() {
        let d = dir("hit");
        std::fs::write(d.join("a.txt"), "one").unwrap();
        let base = d.to_str().unwrap().as_bytes().to_vec();
        let keep = settings(Duration::from_secs(60), false);
        let first = file_of(open(Some(&keep), &path(&base, b"/a.txt"), SymlinkPolicy::Inside));
        let second = file_of(open(Some(&keep), &path(&base, b"/a.txt"), SymlinkPolicy::Inside));
        assert!(Arc::ptr_eq(&first, &second), "the second open was not a hit");
        // another policy is another entry
        let other = file_of(open(Some(&keep), &path(&base, b"/a.txt"), SymlinkPolicy::Follow));
        assert!(!Arc::ptr_eq(&first, &other));
        // valid = 0: every lookup goes to disk again
        let fresh = settings(Duration::ZERO, false);
        let a = file_of(open(Some(&fresh), &path(&base, b"/a.txt"), SymlinkPolicy::Deny));
        let b = file_of(open(Some(&fresh), &path(&base, b"/a.txt"), SymlinkPolicy::Deny));
        assert!(!Arc::ptr_eq(&a, &b));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn errors_are_kept_only_when_asked() {
        let d = dir("err");
        let base = d.to_str().unwrap().as_bytes().to_vec();
        let p = path(&base, b"/late.txt");
        let plain = settings(Duration::from_secs(60), false);
        assert!(open(Some(&plain), &p, SymlinkPolicy::Inside).is_err());
        assert!(!exists_cached(Some(&plain), &p, false, SymlinkPolicy::Inside));
        let with_errors = settings(Duration::from_secs(60), true);
        let q = path(&base, b"/later.txt");
        assert!(open(Some(&with_errors), &q, SymlinkPolicy::Inside).is_err());
        assert!(!exists_cached(Some(&with_errors), &q, false, SymlinkPolicy::Inside));
        std::fs::write(d.join("late.txt"), "x").unwrap();
        std::fs::write(d.join("later.txt"), "x").unwrap();
        assert!(open(Some(&plain), &p, SymlinkPolicy::Inside).is_ok(), "a miss was kept without errors on");
        assert!(exists_cached(Some(&plain), &p, false, SymlinkPolicy::Inside));
        assert!(open(Some(&with_errors), &q, SymlinkPolicy::Inside).is_err(), "the kept miss was not used");
        assert!(!exists_cached(Some(&with_errors), &q, false, SymlinkPolicy::Inside));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_least_recently_used_entry_makes_room() {
        let d = dir("lru");
        for f in ["a", "b", "c"] {
            std::fs::write(d.join(f), f).unwrap();
        }
        let base = d.to_str().unwrap().as_bytes().to_vec();
        let s = CacheSettings { max: 2, ..settings(Duration::from_secs(60), false) };
        let a = file_of(open(Some(&s), &path(&base, b"/a"), SymlinkPolicy::Inside));
        let b = file_of(open(Some(&s), &path(&base, b"/b"), SymlinkPolicy::Inside));
        // a is used again, so b is the least recent when c needs room (max = 2)
        let _ = open(Some(&s), &path(&base, b"/a"), SymlinkPolicy::Inside);
        let _ = open(Some(&s), &path(&base, b"/c"), SymlinkPolicy::Inside);
        let a2 = file_of(open(Some(&s), &path(&base, b"/a"), SymlinkPolicy::Inside));
        let b2 = file_of(open(Some(&s), &path(&base, b"/b"), SymlinkPolicy::Inside));
        assert!(Arc::ptr_eq(&a, &a2), "a was evicted");
        assert!(!Arc::ptr_eq(&b, &b2), "b was kept past max");
        CACHE.with(|c| assert!(c.borrow().len <= 2));
        let _ = std::fs::remove_dir_all(&d);
    }
}
