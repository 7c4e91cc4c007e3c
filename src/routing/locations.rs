//! Location choice with nginx's precedence, and the `match` key that declares it.
//!
//! For a normalised URI: an exact (`= /p`) match wins at once; otherwise the longest
//! matching prefix is remembered, and if it is `^~` the search stops there; otherwise the
//! regex locations (`~` case-sensitive, `~*` case-insensitive) are tried in file order and
//! the first match wins; otherwise the remembered prefix is used. Named locations (`@name`)
//! are never matched by a URI, only reached through `try_files` or `error_page`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use regex::bytes::{CaptureLocations, Regex, RegexBuilder};

/// Most capture groups a regex location may have (`$0` included): they are kept in an
/// array, so matching allocates nothing.
pub const MAX_GROUPS: usize = 16;

/// How one location matches, parsed from its `match` key.
#[derive(Clone, Debug)]
pub enum Matcher {
    /// `= /path`
    Exact(Vec<u8>),
    /// `/path`, or `^~ /path` when `stops_regex` is set.
    Prefix { path: Vec<u8>, stops_regex: bool },
    /// `~ re` or `~* re`; `written` as the configuration has it, modifier included.
    Regex { regex: Regex, written: String },
    /// `@name`
    Named(String),
}

impl Matcher {
    /// Parses nginx's location syntax. The error says what is wrong and what to write.
    pub fn parse(text: &str) -> Result<Matcher, MatchError> {
        let text = text.trim();
        if let Some(name) = text.strip_prefix('@') {
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(MatchError::new(
                    format!("`{text}` is not a valid named location"),
                    "name it like \"@flaskbb\": an @ and a word",
                ));
            }
            return Ok(Matcher::Named(name.to_string()));
        }
        if let Some(rest) = text.strip_prefix("~*") {
            return Self::regex(rest.trim_start(), true, text);
        }
        if let Some(rest) = text.strip_prefix('~') {
            return Self::regex(rest.trim_start(), false, text);
        }
        if let Some(rest) = text.strip_prefix("^~") {
            return Ok(Matcher::Prefix { path: Self::path(rest.trim_start(), "^~ ")?, stops_regex: true });
        }
        if let Some(rest) = text.strip_prefix('=') {
            return Ok(Matcher::Exact(Self::path(rest.trim_start(), "= ")?));
        }
        Ok(Matcher::Prefix { path: Self::path(text, "")?, stops_regex: false })
    }

    fn path(path: &str, modifier: &str) -> Result<Vec<u8>, MatchError> {
        if !path.starts_with('/') {
            return Err(MatchError::new(
                format!("location path `{path}` does not start with /"),
                format!(
                    "write \"{modifier}/{}\": request paths always start with /",
                    path.trim_start_matches('/')
                ),
            ));
        }
        Ok(path.as_bytes().to_vec())
    }

    fn regex(source: &str, case_insensitive: bool, written: &str) -> Result<Matcher, MatchError> {
        if source.is_empty() {
            return Err(MatchError::new(
                "regex location has no pattern",
                "write it like \"~ ^/_themes/([^/]+)/(.*)$\"",
            ));
        }
        let regex = RegexBuilder::new(source)
            .case_insensitive(case_insensitive)
            // Request paths are bytes after percent-decoding, not necessarily UTF-8.
            .unicode(false)
            .build()
            .map_err(|e| {
                MatchError::new(
                    format!("bad regex `{source}`: {}", first_line(&e.to_string())),
                    "Portico uses Rust regex syntax (as PCRE, minus look-around and backreferences)",
                )
            })?;
        if regex.captures_len() > MAX_GROUPS {
            return Err(MatchError::new(
                format!("regex `{source}` has {} capture groups", regex.captures_len() - 1),
                format!("use at most {}; make groups that need no $n non-capturing: (?:...)", MAX_GROUPS - 1),
            ));
        }
        Ok(Matcher::Regex { regex, written: written.to_string() })
    }

    /// The regex, when captures (`$1`, `$name`) can come from this location.
    pub fn regex_ref(&self) -> Option<&Regex> {
        match self {
            Matcher::Regex { regex, .. } => Some(regex),
            _ => None,
        }
    }

    /// The names of the regex's named groups (`$name` in the location's templates).
    pub fn group_names(matcher: Option<&Matcher>) -> Vec<&str> {
        matcher
            .and_then(Matcher::regex_ref)
            .map(|r| r.capture_names().flatten().collect())
            .unwrap_or_default()
    }
}

impl std::fmt::Display for Matcher {
    /// As nginx's `location` line writes it: `= /x`, `^~ /x`, `~* \.css$`, `@name`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Matcher::Exact(p) => write!(f, "= {}", String::from_utf8_lossy(p)),
            Matcher::Prefix { path, stops_regex } => {
                write!(f, "{}{}", if *stops_regex { "^~ " } else { "" }, String::from_utf8_lossy(path))
            }
            Matcher::Regex { written, .. } => f.write_str(written),
            Matcher::Named(name) => write!(f, "@{name}"),
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(s).trim()
}

/// A `match` that could not be parsed: the message and what to write instead.
#[derive(Debug, PartialEq, Eq)]
pub struct MatchError {
    pub message: String,
    pub hint: String,
}

impl MatchError {
    fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        MatchError { message: message.into(), hint: hint.into() }
    }
}

/// Index of a location within its server block, in file order.
pub type LocationId = usize;

/// Regex captures from the location that matched, for `$1`..`$9` and named groups: the
/// URI they were taken from (borrowed) and the groups' positions in it.
#[derive(Clone, Debug, Default)]
pub struct Captures<'a> {
    subject: Cow<'a, [u8]>,
    groups: [Option<(u32, u32)>; MAX_GROUPS],
    /// The location's regex, for named groups (borrowed: a clone of a `Regex` makes it a
    /// new cache pool).
    regex: Option<&'a Regex>,
}

impl Captures<'_> {
    /// `$n`: group `n` (0 is the whole match); empty when absent, as in nginx.
    pub fn get(&self, n: usize) -> &[u8] {
        match self.groups.get(n) {
            Some(Some((s, e))) => &self.subject[*s as usize..*e as usize],
            _ => b"",
        }
    }

    /// A named group (`(?P<name>...)`); `None` when the regex has no such group.
    pub fn named(&self, name: &str) -> Option<&[u8]> {
        let regex = self.regex?;
        let index = regex.capture_names().position(|n| n == Some(name))?;
        Some(self.get(index))
    }
}

/// What the search made of one location (for `portico explain`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Considered {
    /// `= /path` equal to the URI: chosen, nothing else is looked at.
    Exact,
    /// A prefix the URI does not start with.
    PrefixMisses,
    /// The longest prefix the URI starts with: chosen at once with `^~`, else remembered
    /// while the regexes are tried.
    LongestPrefix {
        stops_regex: bool,
    },
    /// A regex that matches: the first one in file order is chosen.
    RegexMatches,
    RegexMisses,
}

/// The result of location search for one URI.
#[derive(Debug)]
pub struct Found<'a> {
    pub location: LocationId,
    pub captures: Captures<'a>,
}

/// A regex location's own number, for this thread's reusable capture slots.
static NEXT_REGEX: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Capture slots per regex (by number), reused: `captures_read` needs slots made by
    /// the same regex, and making them allocates.
    static SLOTS: RefCell<Vec<(usize, CaptureLocations)>> = const { RefCell::new(Vec::new()) };
}

/// All locations of one server block, indexed for nginx's search order.
#[derive(Debug, Default)]
pub struct LocationIndex {
    exact: HashMap<Vec<u8>, LocationId>,
    /// Longest first, so the first hit is the longest match.
    prefixes: Vec<(Vec<u8>, bool, LocationId)>,
    /// With the regex's number for [`SLOTS`].
    regexes: Vec<(Regex, LocationId, usize)>,
    named: HashMap<String, LocationId>,
}

/// Why two locations cannot live in one server block.
#[derive(Debug, PartialEq, Eq)]
pub struct DuplicateLocation {
    pub first: LocationId,
    pub second: LocationId,
}

impl fmt::Display for DuplicateLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "location {} repeats location {}", self.second, self.first)
    }
}

impl LocationIndex {
    /// Builds the index from locations in file order; duplicates (same exact path, same
    /// prefix, same name) are refused as nginx refuses them.
    pub fn build<'m>(
        matchers: impl IntoIterator<Item = &'m Matcher>,
    ) -> Result<Self, Vec<DuplicateLocation>> {
        let mut index = LocationIndex::default();
        let mut dups = Vec::new();
        let mut seen_prefix: HashMap<Vec<u8>, LocationId> = HashMap::new();
        for (id, m) in matchers.into_iter().enumerate() {
            match m {
                Matcher::Exact(p) => {
                    if let Some(&first) = index.exact.get(p) {
                        dups.push(DuplicateLocation { first, second: id });
                    } else {
                        index.exact.insert(p.clone(), id);
                    }
                }
                Matcher::Prefix { path, stops_regex } => {
                    if let Some(&first) = seen_prefix.get(path) {
                        dups.push(DuplicateLocation { first, second: id });
                    } else {
                        seen_prefix.insert(path.clone(), id);
                        index.prefixes.push((path.clone(), *stops_regex, id));
                    }
                }
                Matcher::Regex { regex, .. } => {
                    index.regexes.push((regex.clone(), id, NEXT_REGEX.fetch_add(1, Ordering::Relaxed)))
                }
                Matcher::Named(name) => {
                    if let Some(&first) = index.named.get(name) {
                        dups.push(DuplicateLocation { first, second: id });
                    } else {
                        index.named.insert(name.clone(), id);
                    }
                }
            }
        }
        index.prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        if dups.is_empty() {
            Ok(index)
        } else {
            Err(dups)
        }
    }

    /// The location serving `uri`, in nginx's precedence; `None` when nothing matches.
    pub fn find<'a>(&'a self, uri: &'a [u8]) -> Option<Found<'a>> {
        self.find_in(Cow::Borrowed(uri))
    }

    /// [`LocationIndex::find`] for a URI the captures keep (borrowed or owned).
    pub fn find_in<'a>(&'a self, subject: Cow<'a, [u8]>) -> Option<Found<'a>> {
        self.search(subject, &mut |_, _| {})
    }

    /// The search itself, telling `seen` what it made of each location it looked at, in
    /// the order it looked (`portico explain` listens; the server passes a no-op).
    pub fn search<'a>(
        &'a self,
        subject: Cow<'a, [u8]>,
        seen: &mut impl FnMut(LocationId, Considered),
    ) -> Option<Found<'a>> {
        let uri: &[u8] = &subject;
        if let Some(&location) = self.exact.get(uri) {
            seen(location, Considered::Exact);
            return Some(Found { location, captures: Captures::default() });
        }
        let prefix = self.prefixes.iter().find(|(p, _, id)| {
            let hit = uri.starts_with(p);
            if !hit {
                seen(*id, Considered::PrefixMisses);
            }
            hit
        });
        if let Some(&(_, stops, location)) = prefix {
            seen(location, Considered::LongestPrefix { stops_regex: stops });
            if stops {
                return Some(Found { location, captures: Captures::default() });
            }
        }
        for (regex, location, number) in &self.regexes {
            if let Some(groups) = captures_of(regex, *number, uri) {
                seen(*location, Considered::RegexMatches);
                return Some(Found {
                    location: *location,
                    captures: Captures { subject, groups, regex: Some(regex) },
                });
            }
            seen(*location, Considered::RegexMisses);
        }
        prefix.map(|&(_, _, location)| Found { location, captures: Captures::default() })
    }

    /// The named location `@name` (give the name without the @).
    pub fn named(&self, name: &str) -> Option<LocationId> {
        self.named.get(name).copied()
    }
}

/// The groups of `regex` (number `number`) in `uri`, if it matches, with this thread's
/// slots for it.
fn captures_of(regex: &Regex, number: usize, uri: &[u8]) -> Option<[Option<(u32, u32)>; MAX_GROUPS]> {
    SLOTS.with(|slots| {
        let mut slots = slots.borrow_mut();
        let i = match slots.iter().position(|(n, _)| *n == number) {
            Some(i) => i,
            None => {
                slots.push((number, regex.capture_locations()));
                slots.len() - 1
            }
        };
        let locs = &mut slots[i].1;
        regex.captures_read(locs, uri)?;
        let mut groups = [None; MAX_GROUPS];
        for (n, g) in groups.iter_mut().enumerate().take(locs.len()) {
            // URIs are at most a request head long: positions fit in u32
            *g = locs.get(n).map(|(s, e)| (s as u32, e as u32));
        }
        Some(groups)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(specs: &[&str]) -> LocationIndex {
        let ms: Vec<Matcher> = specs.iter().map(|s| Matcher::parse(s).unwrap()).collect();
        LocationIndex::build(&ms).unwrap()
    }

    fn pick(idx: &LocationIndex, uri: &str) -> Option<LocationId> {
        idx.find(uri.as_bytes()).map(|f| f.location)
    }

    #[test]
    fn nginx_documentation_example() {
        // The A..E example from nginx's `location` documentation.
        let idx = index(&["= /", "/", "/documents/", "^~ /images/", "~* \\.(gif|jpg|jpeg)$"]);
        assert_eq!(pick(&idx, "/"), Some(0));
        assert_eq!(pick(&idx, "/index.html"), Some(1));
        assert_eq!(pick(&idx, "/documents/document.html"), Some(2));
        assert_eq!(pick(&idx, "/images/1.gif"), Some(3));
        assert_eq!(pick(&idx, "/documents/1.jpg"), Some(4));
        assert_eq!(pick(&idx, "/documents/1.JPG"), Some(4));
    }

    #[test]
    fn the_flaskbb_site() {
        let idx = index(&["/", "/static", "~ ^/_themes/([^/]+)/(.*)$", "/robots.txt", "@flaskbb"]);
        assert_eq!(pick(&idx, "/"), Some(0));
        assert_eq!(pick(&idx, "/user/login"), Some(0));
        assert_eq!(pick(&idx, "/static/css/app.css"), Some(1));
        assert_eq!(pick(&idx, "/static../secret"), Some(1));
        assert_eq!(pick(&idx, "/robots.txt"), Some(3));
        let f = idx.find(b"/_themes/aurora/css/styles.css").unwrap();
        assert_eq!(f.location, 2);
        assert_eq!(f.captures.get(1), b"aurora");
        assert_eq!(f.captures.get(2), b"css/styles.css");
        assert_eq!(f.captures.get(3), b"");
        assert_eq!(idx.named("flaskbb"), Some(4));
        assert_eq!(pick(&idx, "@flaskbb"), None);
    }

    #[test]
    fn regex_beats_plain_prefix_but_not_caret_tilde() {
        let idx = index(&["/a", "^~ /b", "~ \\.css$"]);
        assert_eq!(pick(&idx, "/a/x.css"), Some(2));
        assert_eq!(pick(&idx, "/b/x.css"), Some(1));
        assert_eq!(pick(&idx, "/c/x.css"), Some(2));
        assert_eq!(pick(&idx, "/c/x.js"), None);
    }

    #[test]
    fn first_regex_in_file_order_wins() {
        let idx = index(&["~ /x", "~ /x/y"]);
        assert_eq!(pick(&idx, "/x/y"), Some(0));
    }

    #[test]
    fn exact_beats_everything_and_needs_equality() {
        let idx = index(&["^~ /a", "= /a", "~ a"]);
        assert_eq!(pick(&idx, "/a"), Some(1));
        assert_eq!(pick(&idx, "/a/"), Some(0));
    }

    #[test]
    fn named_captures() {
        let idx = index(&["~ ^/u/(?P<user>[^/]+)$"]);
        let f = idx.find(b"/u/bob").unwrap();
        assert_eq!(f.captures.named("user"), Some(&b"bob"[..]));
        assert_eq!(f.captures.named("nope"), None);
    }

    #[test]
    fn regexes_match_non_utf8_paths() {
        let idx = index(&["~ ^/f/(.*)$"]);
        let f = idx.find(b"/f/\xff\xfe").unwrap();
        assert_eq!(f.captures.get(1), b"\xff\xfe");
    }

    #[test]
    fn parse_errors_carry_hints() {
        assert!(Matcher::parse("static").unwrap_err().hint.contains("\"/static\""));
        assert!(Matcher::parse("~ (").unwrap_err().message.starts_with("bad regex"));
        assert!(Matcher::parse("@").is_err());
        assert!(Matcher::parse("=/x").is_ok());
        let fifteen = format!("~ ^{}$", "/(x)".repeat(15));
        assert!(Matcher::parse(&fifteen).is_ok());
        let sixteen = format!("~ ^{}$", "/(x)".repeat(16));
        let e = Matcher::parse(&sixteen).unwrap_err();
        assert!(e.message.contains("16 capture groups") && e.hint.contains("(?:...)"), "{e:?}");
    }

    #[test]
    fn duplicates_are_refused() {
        let ms: Vec<Matcher> =
            ["/a", "@n", "/a", "@n", "= /a"].iter().map(|s| Matcher::parse(s).unwrap()).collect();
        let dups = LocationIndex::build(&ms).unwrap_err();
        assert_eq!(
            dups,
            vec![DuplicateLocation { first: 0, second: 2 }, DuplicateLocation { first: 1, second: 3 }]
        );
    }
}
