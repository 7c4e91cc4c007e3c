//! Arbitrary request targets for static files against a real directory tree full of
//! symlinks, through the production steps: split and normalise the target, pick the
//! location, map the URI with its `root` or `alias`, open the file with `openat2` under
//! each `symlinks` policy. Never a panic, and a FIFO never blocks the opener. Whatever is
//! opened:
//!
//! - lies in the rule's region (see [`region`]): beneath the directory the configuration
//!   names, or, where a component the configuration writes (`static` in
//!   `themes/$1/static/$2`) is the operator's symlink out of it, beneath that symlink's
//!   target: the operator's link is followed, what the request names after it stays there;
//! - is never a file of the sibling directory `outside/`, where every link out points;
//! - under `deny`, was reached through no symlink among the request's components;
//! - `deny` opens nothing `inside` does not, `inside` nothing `follow` does not, and then
//!   the same file; `exists` (what `try_files` asks) agrees with `open_file`.
//!
//! These are the promises README's *Symlinks* section makes; a symlink out of the tree is
//! how a file the operator never meant to publish (a key, a `.env`) gets served.

#![no_main]

use std::ffi::OsStr;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portico::routing::locations::{Captures, LocationIndex, Matcher};
use portico::static_files::mapping::{MappedPath, Mapping};
use portico::static_files::open::{exists, open_file, Opened, SymlinkPolicy};
use portico::uri::{normalized, split_target};
use portico::variables::{Scope, Template, Var, VarSource};

/// What an entry of the tree is.
enum Entry {
    File,
    Dir,
    /// A symlink with this target, as written.
    Link(&'static str),
    /// A symlink to this path of the tree, made absolute.
    AbsoluteLink(&'static str),
    Fifo,
}

use Entry::{AbsoluteLink, Dir, Fifo, File, Link};

/// The tree, parents before children. `outside/` is the sibling no request may reach;
/// `current` is the operator's link to the release `www/` (the `root`); `site/` is
/// FlaskBB's git layout, where `themes/aurora/static -> ../../static` is the operator's
/// link that the regex alias writes as `static`.
const TREE: &[(&str, Entry)] = &[
    ("outside", Dir),
    ("outside/secret", File),
    // for a theme name that links out: `bad/static/secret` exists there
    ("outside/static", Dir),
    ("outside/static/secret", File),
    ("outside/static/css", Dir),
    ("outside/static/css/secret", File),
    ("www", Dir),
    ("www/index.html", File),
    ("www/a", Dir),
    ("www/a/b.css", File),
    ("www/a/deep", Dir),
    ("www/a/deep/c.txt", File),
    ("www/a/up", Link("../../outside")),
    ("www/link-in", Link("a/b.css")),
    ("www/dir-in", Link("a")),
    ("www/deep-in", Link("a/deep/../b.css")),
    ("www/up", Link("../outside/secret")),
    ("www/updir", Link("../outside")),
    ("www/abs", AbsoluteLink("outside/secret")),
    ("www/abs-in", AbsoluteLink("www/a/b.css")),
    ("www/out-and-back", Link("../www/a/b.css")),
    ("www/loop", Link("loop")),
    ("www/loop-a", Link("loop-b")),
    ("www/loop-b", Link("loop-a")),
    ("www/dangling", Link("nowhere")),
    ("www/fifo", Fifo),
    ("current", Link("www")),
    ("site", Dir),
    ("site/static", Dir),
    ("site/static/top.css", File),
    ("site/static/css", Dir),
    ("site/static/css/x.css", File),
    ("site/static/css/up", Link("../top.css")),
    ("site/static/leak", Link("../../outside/secret")),
    ("site/static/abs-leak", AbsoluteLink("outside/secret")),
    ("site/static/to-themes", Link("../themes/aurora/templates/t.html")),
    ("site/static/fifo", Fifo),
    ("site/themes", Dir),
    ("site/themes/aurora", Dir),
    ("site/themes/aurora/static", Link("../../static")),
    ("site/themes/aurora/templates", Dir),
    ("site/themes/aurora/templates/t.html", File),
    ("site/themes/aurora/up", Link("../../../outside")),
    ("site/themes/plain", Dir),
    ("site/themes/plain/static", Dir),
    ("site/themes/plain/static/p.css", File),
    ("site/themes/plain/static/up", Link("../../aurora/templates/t.html")),
    ("site/themes/plain/static/css", Dir),
    ("site/themes/plain/static/css/q.css", File),
    ("site/themes/bad", Link("../../outside")),
    ("site/themes/same", Link("aurora")),
    ("site/themes/abs", AbsoluteLink("site/themes/aurora")),
];

/// The locations, in file order, each with its `root` or `alias` (`{T}` is the tree).
/// `/w/` writes two components after its capture (`static/css`): the walk goes through
/// both, and its region is the second.
const LOCATIONS: &[(&str, Rule)] = &[
    ("/", Rule::Root("{T}/current")),
    ("/static", Rule::Alias("{T}/site/static/")),
    ("~ ^/_themes/([^/]+)/(.*)$", Rule::Alias("{T}/site/themes/$1/static/$2")),
    ("~ ^/w/([^/]+)/(.*)$", Rule::Alias("{T}/site/themes/$1/static/css/$2")),
    ("= /favicon.ico", Rule::Alias("{T}/www/a/b.css")),
];

enum Rule {
    Root(&'static str),
    Alias(&'static str),
}

/// The tree on disk and the locations that serve it.
struct Site {
    index: LocationIndex,
    mappings: Vec<Mapping>,
    /// `outside/`, canonical.
    outside: PathBuf,
}

fn site() -> &'static Site {
    static SITE: OnceLock<Site> = OnceLock::new();
    SITE.get_or_init(|| {
        let top = build_tree();
        let dir = top.to_str().expect("the temp dir is UTF-8 (the config is text)");
        assert!(!dir.contains('$'), "a `$` in {dir} would read as a variable");
        let matchers: Vec<Matcher> =
            LOCATIONS.iter().map(|(m, _)| Matcher::parse(m).expect("the fixed locations parse")).collect();
        let index = LocationIndex::build(&matchers).expect("no duplicate locations");
        let scope = Scope::Request { named_groups: &[] };
        let mappings = LOCATIONS
            .iter()
            .zip(&matchers)
            .map(|((_, rule), matcher)| {
                let prefix = match matcher {
                    Matcher::Prefix { path, .. } => Some(path.as_slice()),
                    _ => None,
                };
                match rule {
                    Rule::Root(r) => Mapping::new(Some(r.replace("{T}", dir).as_bytes()), None, prefix),
                    Rule::Alias(a) => {
                        let alias = Template::parse(&a.replace("{T}", dir), scope).expect("the alias parses");
                        Mapping::new(None, Some(&alias), prefix)
                    }
                }
            })
            .collect();
        let outside = top.join("outside").canonicalize().expect("outside/ was just made");
        Site { index, mappings, outside }
    })
}

/// Makes the tree under the temp dir, one per process (`-fork` and `-jobs` run several),
/// and first removes those whose process is gone.
fn build_tree() -> PathBuf {
    const NAME: &str = "portico-fuzz-static-";
    let tmp = std::env::temp_dir();
    for entry in fs::read_dir(&tmp).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let pid = name.to_str().and_then(|n| n.strip_prefix(NAME));
        if pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists()) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    let top = tmp.join(format!("{NAME}{}", std::process::id()));
    let _ = fs::remove_dir_all(&top);
    fs::create_dir(&top).unwrap_or_else(|e| panic!("cannot make {}: {e}", top.display()));
    let top = top.canonicalize().expect("the tree was just made");
    for (path, entry) in TREE {
        let at = top.join(path);
        let made = match entry {
            File => fs::write(&at, path.as_bytes()),
            Dir => fs::create_dir(&at),
            Link(target) => symlink(target, &at),
            AbsoluteLink(target) => symlink(top.join(target), &at),
            Fifo => nix::unistd::mkfifo(&at, nix::sys::stat::Mode::from_bits_truncate(0o644))
                .map_err(std::io::Error::from),
        };
        made.unwrap_or_else(|e| panic!("cannot make {}: {e}", at.display()));
    }
    top
}

/// Captures as the server's variables serve them to an alias template.
struct CaptureVars<'a>(&'a Captures<'a>);

impl VarSource for CaptureVars<'_> {
    fn write_var(&self, var: &Var, out: &mut Vec<u8>) -> bool {
        match var {
            Var::Capture(n) => out.extend_from_slice(self.0.get(*n)),
            _ => return false,
        }
        true
    }
}

/// What one policy opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// A regular file, by device and inode.
    File(u64, u64),
    Directory,
    Refused,
}

const POLICIES: [SymlinkPolicy; 3] = [SymlinkPolicy::Deny, SymlinkPolicy::Inside, SymlinkPolicy::Follow];

fuzz_target!(|data: &[u8]| {
    let site = site();
    let Ok(target) = split_target(data) else { return };
    let Ok(uri) = normalized(target.raw_path) else { return };
    let Some(found) = site.index.find(&uri) else { return };
    let Ok(path) = site.mappings[found.location].map(&uri, &CaptureVars(&found.captures)) else { return };
    let region = region(&path);
    let shown = || String::from_utf8_lossy(&path.full()).into_owned();

    let outcomes = POLICIES.map(|policy| {
        let outcome = match open_file(&path, policy) {
            Ok(Opened::File { file, .. }) => {
                let real = fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
                    .expect("an open file has a path in /proc/self/fd");
                if policy != SymlinkPolicy::Follow {
                    assert!(!real.starts_with(&site.outside), "{policy:?} opened {real:?} for {}", shown());
                    let inside = region.as_ref().is_some_and(|r| real.starts_with(r));
                    assert!(inside, "{policy:?} opened {real:?} for {}, outside {region:?}", shown());
                }
                if policy == SymlinkPolicy::Deny {
                    assert!(!through_requested_symlink(&path), "deny followed a symlink for {}", shown());
                }
                let meta = file.metadata().expect("fstat of an open file");
                Outcome::File(meta.dev(), meta.ino())
            }
            Ok(Opened::Directory) => Outcome::Directory,
            Err(_) => Outcome::Refused,
        };
        assert_eq!(
            exists(&path, false, policy),
            matches!(outcome, Outcome::File(..)),
            "{policy:?} {}",
            shown()
        );
        assert_eq!(exists(&path, true, policy), outcome == Outcome::Directory, "{policy:?} {}", shown());
        outcome
    });
    // each policy allows what the stricter one does (deny, inside, follow), the same file
    for pair in outcomes.windows(2) {
        if pair[0] != Outcome::Refused {
            assert_eq!(pair[0], pair[1], "{:?} then {:?} for {}", POLICIES, outcomes, shown());
        }
    }
});

/// The directory everything opened for `path` must lie beneath (`None`: nothing may be
/// opened), computed from the tree as it is with `canonicalize`, apart from the opener:
///
/// - while every directory the path goes through stays inside the base, the base (the
///   request's components resolve beneath it, as one `openat2` does);
/// - once a written component leads out of the base, the directory the last written
///   component reaches, provided each stretch of request components before a written one
///   stayed beneath the directory reached before it (the opener's walk).
fn region(path: &MappedPath) -> Option<PathBuf> {
    let base = Path::new(OsStr::from_bytes(path.base)).canonicalize().ok()?;
    let rel: &[u8] = &path.rel;
    let mut dir = base.clone();
    let mut left_base = false;
    let mut walk_stays_beneath = true;
    let mut pos = 0;
    for span in path.written.iter() {
        let reached = join(&dir, &rel[pos..span.start]).canonicalize().ok()?;
        walk_stays_beneath &= reached.starts_with(&dir);
        let through = join(&reached, &rel[span.clone()]).canonicalize().ok()?;
        left_base |= !reached.starts_with(&base) || !through.starts_with(&base);
        dir = through;
        pos = span.end;
    }
    match (left_base, walk_stays_beneath) {
        (false, _) => Some(base),
        (true, true) => Some(dir),
        (true, false) => None,
    }
}

/// `dir` and the components in `part` (slashes at either end dropped).
fn join(dir: &Path, part: &[u8]) -> PathBuf {
    let start = part.iter().position(|&b| b != b'/').unwrap_or(part.len());
    let end = part.iter().rposition(|&b| b != b'/').map_or(start, |e| e + 1);
    if start == end {
        dir.to_path_buf()
    } else {
        dir.join(OsStr::from_bytes(&part[start..end]))
    }
}

/// Whether a component of `path` that came from the request is a symlink: the path is
/// walked as written, each request component looked at with `lstat`, each written one
/// followed (the operator's).
fn through_requested_symlink(path: &MappedPath) -> bool {
    let mut at = PathBuf::from(OsStr::from_bytes(path.base));
    let mut start = 0;
    for component in path.rel.split(|&b| b == b'/') {
        let span = start..start + component.len();
        start = span.end + 1;
        if component.is_empty() {
            continue;
        }
        at.push(OsStr::from_bytes(component));
        let written = path.written.iter().any(|w| w == span);
        if !written && fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return true;
        }
    }
    false
}
