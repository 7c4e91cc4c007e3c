//! Mapping a URI to a file through `root` or `alias`, so that the file can never be
//! outside the configured directory.
//!
//! The result is a [`MappedPath`]: a base directory that the operator wrote, and a relative
//! part that came from the request. The relative part may not contain `.` or `..`
//! segments; the opener then resolves it beneath the base with `openat2(RESOLVE_BENEATH)`,
//! so neither a crafted path nor a symlink can leave the base. A regex alias's fixed
//! components after a capture (`static` in `themes/$1/static/$2`) are the operator's too:
//! they are marked, and a symlink there may lead anywhere (see `open`). This is where nginx's alias
//! trap is closed: `location /static` + `alias /srv/static/` maps `/static../secret` to
//! `/srv/static/` + `../secret`, which is refused here instead of served.
//!
//! Pure: no file is touched.

use crate::variables::{Escape, Template, Var, VarSource};

/// How a location maps URIs to files (from its `root` or `alias`).
#[derive(Clone, Debug)]
pub enum Mapping {
    /// `root`: the file is root + URI.
    Root(Vec<u8>),
    /// `alias` in a prefix location: the location prefix of the URI is replaced.
    AliasPrefix {
        /// Length of the location prefix to cut from the URI.
        prefix_len: usize,
        /// The alias without its trailing slash.
        base: Vec<u8>,
        /// Whether the alias ended with `/` (then what follows the prefix is inside it).
        dir: bool,
    },
    /// `alias` with captures in a regex location: the base is the alias up to the last `/`
    /// before the first variable.
    AliasTemplate { base: Vec<u8>, template: Template },
    /// `alias` naming one file or directory outright (exact or regex location, no captures).
    AliasFixed(Vec<u8>),
    /// Neither `root` nor `alias`: no URI maps to a file.
    Unmapped,
}

/// A file location: `base` (trusted, borrowed from the configuration) and `rel` (from the
/// request: empty for the base itself, otherwise starting with `/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappedPath<'c> {
    pub base: &'c [u8],
    /// Borrowed from the URI when it maps as it is (`root`, most aliases).
    pub rel: std::borrow::Cow<'c, [u8]>,
    /// The components of `rel` the configuration wrote (a regex alias's fixed parts).
    pub written: WrittenComponents,
}

/// Where in `rel` the components written in the configuration are, in order: held inline
/// (a path costs no allocation for them); a template with more than
/// [`WrittenComponents::MAX`] of them has the rest treated as the request's (stricter).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WrittenComponents {
    spans: [(u32, u32); WrittenComponents::MAX],
    len: u8,
}

impl WrittenComponents {
    pub const MAX: usize = 4;

    /// The components as byte ranges of `rel`.
    pub fn iter(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        self.spans[..usize::from(self.len)].iter().map(|&(s, e)| s as usize..e as usize)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole components of `rel` that lie inside one of the `literal` ranges.
    fn find(rel: &[u8], literals: &[std::ops::Range<usize>]) -> WrittenComponents {
        let mut found = WrittenComponents::default();
        let mut start = 0;
        for component in rel.split(|&b| b == b'/') {
            let span = start..start + component.len();
            start = span.end + 1;
            let inside = |l: &std::ops::Range<usize>| l.start <= span.start && span.end <= l.end;
            if component.is_empty() || !literals.iter().any(inside) {
                continue;
            }
            let (Ok(s), Ok(e)) = (u32::try_from(span.start), u32::try_from(span.end)) else { break };
            if usize::from(found.len) == WrittenComponents::MAX {
                break;
            }
            found.spans[usize::from(found.len)] = (s, e);
            found.len += 1;
        }
        found
    }
}

impl<'c> MappedPath<'c> {
    /// A path whose `rel` is all the request's.
    pub fn requested(base: &'c [u8], rel: std::borrow::Cow<'c, [u8]>) -> MappedPath<'c> {
        MappedPath { base, rel, written: WrittenComponents::default() }
    }

    /// The full path, for log lines and messages.
    pub fn full(&self) -> Vec<u8> {
        let mut p = self.base.to_vec();
        p.extend_from_slice(&self.rel);
        p
    }

    /// The path to give `openat2` beneath the base: `rel` without its leading slashes,
    /// `.` for the base itself.
    pub fn beneath(&self) -> &[u8] {
        let r: &[u8] = &self.rel;
        let start = r.iter().position(|&b| b != b'/').unwrap_or(r.len());
        if start == r.len() {
            b"."
        } else {
            &r[start..]
        }
    }
}

/// Why a URI maps to no file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unmappable {
    /// The location has neither `root` nor `alias`.
    NoRoot,
    /// The request part would climb out of the directory or name a sibling of it.
    Outside,
}

impl Mapping {
    /// Builds the mapping for a location: `root`, or `alias` given how the location
    /// matches (`prefix` is the location's prefix for prefix locations).
    pub fn new(root: Option<&[u8]>, alias: Option<&Template>, prefix: Option<&[u8]>) -> Mapping {
        if let Some(alias) = alias {
            if alias.has_vars() {
                let lit = alias.literal_prefix();
                let cut = memchr::memrchr(b'/', lit).unwrap_or(0);
                return Mapping::AliasTemplate { base: lit[..cut].to_vec(), template: alias.clone() };
            }
            let mut path = Vec::new();
            alias.render(&NoVars, Escape::None, &mut path);
            return match prefix {
                Some(prefix) => {
                    let dir = path.ends_with(b"/");
                    trim_trailing_slashes(&mut path);
                    Mapping::AliasPrefix { prefix_len: prefix.len(), base: path, dir }
                }
                None => Mapping::AliasFixed(path),
            };
        }
        match root {
            Some(root) => {
                let mut root = root.to_vec();
                trim_trailing_slashes(&mut root);
                Mapping::Root(root)
            }
            None => Mapping::Unmapped,
        }
    }

    /// The path components a regex alias writes after its first variable (`static` in
    /// `themes/$1/static/$2`): symlinks there are the operator's and followed.
    pub fn written_components(&self) -> Vec<&str> {
        let Mapping::AliasTemplate { template, .. } = self else { return Vec::new() };
        template
            .literals()
            .skip(1)
            .flat_map(|l| l.split(|&b| b == b'/'))
            .filter_map(|c| std::str::from_utf8(c).ok().filter(|c| !c.is_empty()))
            .collect()
    }

    /// The directory `$document_root` names for this location, if any.
    pub fn document_root(&self) -> Option<&[u8]> {
        match self {
            Mapping::Root(r) => Some(r),
            Mapping::AliasPrefix { base, .. } | Mapping::AliasTemplate { base, .. } => Some(base),
            Mapping::AliasFixed(p) => Some(p),
            Mapping::Unmapped => None,
        }
    }

    /// Maps a normalised `uri` (with the location's `captures`, for regex aliases).
    pub fn map<'a>(&'a self, uri: &'a [u8], vars: &dyn VarSource) -> Result<MappedPath<'a>, Unmappable> {
        use std::borrow::Cow;
        let mapped = match self {
            Mapping::Unmapped => return Err(Unmappable::NoRoot),
            Mapping::Root(root) => MappedPath::requested(root, Cow::Borrowed(uri)),
            Mapping::AliasPrefix { prefix_len, base, dir } => {
                let rest = uri.get(*prefix_len..).unwrap_or(b"");
                let rel = if *dir && !rest.starts_with(b"/") {
                    let mut rel = Vec::with_capacity(rest.len() + 1);
                    rel.push(b'/');
                    rel.extend_from_slice(rest);
                    Cow::Owned(rel)
                } else {
                    Cow::Borrowed(rest)
                };
                if !rel.is_empty() && !rel.starts_with(b"/") {
                    // `/robots.txtX` against `alias .../robots.txt`: a sibling, not inside
                    return Err(Unmappable::Outside);
                }
                MappedPath::requested(base, rel)
            }
            Mapping::AliasTemplate { base, template } => {
                // room for the base and a typical rest: rendering grows it at most once
                let mut rel = Vec::with_capacity(base.len() + 128);
                // where the template's fixed pieces land, counted from the end of the base
                // (the first piece starts with it); inline, as a path allocates nothing more
                let mut literals = [0..0, 0..0, 0..0, 0..0, 0..0, 0..0, 0..0, 0..0];
                let mut count = 0;
                template.render_marking_literals(vars, &mut rel, |at| {
                    if let Some(slot) = literals.get_mut(count) {
                        *slot = at.start.saturating_sub(base.len())..at.end.saturating_sub(base.len());
                        count += 1;
                    }
                });
                // the base is the fixed start; what follows came from the request, but for
                // the components the template writes
                rel.drain(..base.len().min(rel.len()));
                let written = WrittenComponents::find(&rel, &literals[..count]);
                MappedPath { base, rel: Cow::Owned(rel), written }
            }
            Mapping::AliasFixed(path) => MappedPath::requested(path, Cow::Borrowed(b"")),
        };
        if has_dot_segment(&mapped.rel) || mapped.rel.contains(&0) {
            return Err(Unmappable::Outside);
        }
        Ok(mapped)
    }
}

/// `/srv/static/` → `/srv/static` (`/` stays `/`).
fn trim_trailing_slashes(path: &mut Vec<u8>) {
    while path.len() > 1 && path.ends_with(b"/") {
        path.pop();
    }
}

struct NoVars;
impl VarSource for NoVars {
    fn write_var(&self, _: &Var, _: &mut Vec<u8>) -> bool {
        false
    }
}

fn has_dot_segment(path: &[u8]) -> bool {
    path.split(|&b| b == b'/').any(|s| s == b"." || s == b"..")
}

/// Whether a URI names a dot-file or dot-directory (`/.git/config`, `/a/.env`), which is
/// not served unless `hidden_files = "allow"`. `/.well-known/` is exempt (RFC 8615).
pub fn is_hidden(uri: &[u8]) -> bool {
    let mut segments = uri.split(|&b| b == b'/').filter(|s| !s.is_empty()).peekable();
    if segments.peek() == Some(&&b".well-known"[..]) {
        segments.next();
    }
    segments.any(|s| s.first() == Some(&b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::locations::Captures;

    /// Captures as variables, for rendering an alias template.
    struct CaptureVars<'a>(&'a Captures<'a>);

    impl VarSource for CaptureVars<'_> {
        fn write_var(&self, var: &Var, out: &mut Vec<u8>) -> bool {
            match var {
                Var::Capture(n) => out.extend_from_slice(self.0.get(*n)),
                Var::NamedCapture(name) => match self.0.named(name) {
                    Some(v) => out.extend_from_slice(v),
                    None => return false,
                },
                _ => return false,
            }
            true
        }
    }
    use crate::routing::locations::{LocationIndex, Matcher};
    use crate::variables::Scope;

    fn alias(t: &str) -> Template {
        Template::parse(t, Scope::Request { named_groups: &[] }).unwrap()
    }

    fn map(m: &Mapping, uri: &str) -> Result<(String, String), Unmappable> {
        m.map(uri.as_bytes(), &NoVars).map(|p| {
            (String::from_utf8(p.base.to_vec()).unwrap(), String::from_utf8(p.rel.into_owned()).unwrap())
        })
    }

    fn ok(base: &str, rel: &str) -> Result<(String, String), Unmappable> {
        Ok((base.to_string(), rel.to_string()))
    }

    #[test]
    fn root_appends_the_uri() {
        let m = Mapping::new(Some(b"/srv/www/"), None, Some(b"/"));
        assert_eq!(map(&m, "/a/b.css"), ok("/srv/www", "/a/b.css"));
        assert_eq!(m.document_root(), Some(&b"/srv/www"[..]));
    }

    #[test]
    fn the_seed_alias_trap_is_closed() {
        // location /static { alias /srv/www/flaskbb/flaskbb/static/; }
        let m = Mapping::new(None, Some(&alias("/srv/static/")), Some(b"/static"));
        assert_eq!(map(&m, "/static/css/a.css"), ok("/srv/static", "/css/a.css"));
        assert_eq!(map(&m, "/static"), ok("/srv/static", "/"));
        // nginx serves /srv/static/../secret for this one
        assert_eq!(map(&m, "/static../secret"), Err(Unmappable::Outside));
        // nginx's literal replacement, still inside the directory
        assert_eq!(map(&m, "/staticfoo"), ok("/srv/static", "/foo"));
    }

    #[test]
    fn alias_naming_a_file() {
        // location /robots.txt { alias /srv/static/robots.txt; }
        let m = Mapping::new(None, Some(&alias("/srv/static/robots.txt")), Some(b"/robots.txt"));
        assert_eq!(map(&m, "/robots.txt"), ok("/srv/static/robots.txt", ""));
        assert_eq!(map(&m, "/robots.txtx"), Err(Unmappable::Outside));
        assert_eq!(map(&m, "/robots.txt/x"), ok("/srv/static/robots.txt", "/x"));
    }

    #[test]
    fn regex_alias_keeps_captures_beneath_the_fixed_part() {
        let ms = [Matcher::parse("~ ^/_themes/([^/]+)/(.*)$").unwrap()];
        let idx = LocationIndex::build(&ms).unwrap();
        let m = Mapping::new(None, Some(&alias("/srv/themes/$1/static/$2")), None);
        let f = idx.find(b"/_themes/aurora/css/styles.css").unwrap();
        let p = m.map(b"/_themes/aurora/css/styles.css", &CaptureVars(&f.captures)).unwrap();
        assert_eq!(p.base, b"/srv/themes");
        assert_eq!(&*p.rel, b"/aurora/static/css/styles.css");
        assert_eq!(p.beneath(), b"aurora/static/css/styles.css");
        // `static` is written in the alias: a symlink there is the operator's
        let written: Vec<&[u8]> = p.written.iter().map(|r| &p.rel[r]).collect();
        assert_eq!(written, [&b"static"[..]]);
        // a component mixing a capture and fixed text is the request's
        let m = Mapping::new(None, Some(&alias("/srv/themes/t_$1/static/$2x/css")), None);
        let p = m.map(b"/_themes/aurora/css/styles.css", &CaptureVars(&f.captures)).unwrap();
        assert_eq!(&*p.rel, b"/t_aurora/static/css/styles.cssx/css");
        let written: Vec<&[u8]> = p.written.iter().map(|r| &p.rel[r]).collect();
        assert_eq!(written, [&b"static"[..], &b"css"[..]]);

        // `..` as a whole capture, as a crafted request could make it
        let ms = [Matcher::parse("~ ^/t/(.*)/x$").unwrap()];
        let idx = LocationIndex::build(&ms).unwrap();
        let m = Mapping::new(None, Some(&alias("/srv/themes/$1/static")), None);
        let f = idx.find(b"/t/../x").unwrap();
        assert_eq!(m.map(b"/t/../x", &CaptureVars(&f.captures)), Err(Unmappable::Outside));
    }

    #[test]
    fn no_root_maps_nothing() {
        let m = Mapping::new(None, None, Some(b"/"));
        assert_eq!(map(&m, "/x"), Err(Unmappable::NoRoot));
    }

    #[test]
    fn beneath_is_relative() {
        let p = MappedPath::requested(b"/b", b"//x/y".to_vec().into());
        assert_eq!(p.beneath(), b"x/y");
        let p = MappedPath::requested(b"/b", b"/".to_vec().into());
        assert_eq!(p.beneath(), b".");
        assert_eq!(p.full(), b"/b/");
    }

    #[test]
    fn hidden_files() {
        assert!(is_hidden(b"/.env"));
        assert!(is_hidden(b"/a/.git/config"));
        assert!(!is_hidden(b"/a/b.c"));
        assert!(!is_hidden(b"/.well-known/acme-challenge/x"));
        assert!(is_hidden(b"/.well-known/.x"));
        assert!(is_hidden(b"/a/.well-known/x"));
    }
}
