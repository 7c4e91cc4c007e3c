//! Location choice for arbitrary URIs against a fixed configuration holding every kind of
//! location, compared with a slow reference written here from nginx's rule as its
//! documentation states it: an exact `=` match wins; otherwise the longest matching
//! prefix is remembered, and wins at once if it is `^~`; otherwise the regexes in file
//! order (`~`, `~*`), the first that matches; otherwise the remembered prefix. A named
//! `@location` is never chosen for a URI.
//!
//! The index (`LocationIndex`) gets there another way (a hash for exact matches, prefixes
//! sorted longest first, capture slots reused per thread), so both must agree on every
//! input; and a regex location's captures must be the regex's own.
//!
//! The URI is the input's raw bytes: the index matches bytes (its regexes are built
//! without Unicode), and the server hands it decoded paths that need not be UTF-8.

#![no_main]

use std::borrow::Cow;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portico::routing::locations::{Found, LocationId, LocationIndex, Matcher, MAX_GROUPS};

/// A server's locations in file order: overlapping prefixes, `/`, an exact match equal to
/// a prefix, `^~` shorter and longer than plain prefixes, regexes overlapping them (one of
/// them after a `^~` that hides it), case-insensitive ones, one for a byte that is not
/// UTF-8, named groups, and a named location.
const LOCATIONS: [&str; 16] = [
    "= /",
    "/",
    "/static",
    "= /static",
    "/static/img/",
    "^~ /static/fonts/",
    "~ ^/_themes/([^/]+)/(.*)$",
    "~* \\.(gif|jpe?g|png)$",
    "~ \\.css$",
    "^~ /media",
    "/media/private/",
    "~* ^/api/(?P<version>v[0-9]+)/",
    "~ ^/static/(.*)\\.map$",
    "~ ^/bin/\\xff",
    "= /robots.txt",
    "@flaskbb",
];

struct Config {
    matchers: Vec<Matcher>,
    index: LocationIndex,
    /// The same locations indexed again: its regexes have their own capture slots.
    again: LocationIndex,
}

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let matchers: Vec<Matcher> =
            LOCATIONS.iter().map(|l| Matcher::parse(l).expect("the fixed locations parse")).collect();
        let build = || LocationIndex::build(&matchers).expect("the fixed locations have no duplicates");
        let (index, again) = (build(), build());
        assert_eq!(index.named("flaskbb"), Some(LOCATIONS.len() - 1));
        Config { matchers, index, again }
    })
}

fuzz_target!(|uri: &[u8]| {
    let config = config();
    let want = reference(&config.matchers, uri);
    let found = config.index.find(uri);
    assert_eq!(found.as_ref().map(|f| f.location), want, "{:?}", String::from_utf8_lossy(uri));
    if let Some(found) = &found {
        check_captures(&config.matchers[found.location], found, uri);
    }
    // the server hands an owned URI when it decoded or normalised one
    let owned = config.again.find_in(Cow::Owned(uri.to_vec()));
    assert_eq!(owned.as_ref().map(|f| f.location), want, "owned, second index");
    if let Some(found) = &owned {
        check_captures(&config.matchers[found.location], found, uri);
    }
});

/// nginx's rule, one location at a time.
fn reference(matchers: &[Matcher], uri: &[u8]) -> Option<LocationId> {
    for (id, m) in matchers.iter().enumerate() {
        if let Matcher::Exact(path) = m {
            if path == uri {
                return Some(id);
            }
        }
    }
    let mut longest: Option<(usize, bool, LocationId)> = None;
    for (id, m) in matchers.iter().enumerate() {
        if let Matcher::Prefix { path, stops_regex } = m {
            if uri.starts_with(path) && longest.is_none_or(|(len, _, _)| path.len() > len) {
                longest = Some((path.len(), *stops_regex, id));
            }
        }
    }
    if let Some((_, true, id)) = longest {
        return Some(id);
    }
    for (id, m) in matchers.iter().enumerate() {
        if let Matcher::Regex { regex, .. } = m {
            if regex.is_match(uri) {
                return Some(id);
            }
        }
    }
    longest.map(|(_, _, id)| id)
}

/// `$0`..`$15` and the named groups are the regex's own groups in `uri` (empty when a
/// group did not take part); locations other than regexes have none.
fn check_captures(m: &Matcher, found: &Found, uri: &[u8]) {
    let Matcher::Regex { regex, written: source } = m else {
        for n in 0..MAX_GROUPS {
            assert_eq!(found.captures.get(n), b"", "${n} of a location that is no regex");
        }
        return;
    };
    let caps = regex.captures(uri).expect("the chosen regex matches");
    for n in 0..MAX_GROUPS + 1 {
        let want = caps.get(n).map_or(&b""[..], |g| g.as_bytes());
        assert_eq!(found.captures.get(n), want, "${n} of `{source}`");
    }
    for name in regex.capture_names().flatten() {
        let want = caps.name(name).map_or(&b""[..], |g| g.as_bytes());
        assert_eq!(found.captures.named(name), Some(want), "${name} of `{source}`");
    }
}
