//! The static-file keys of the configuration: `root`, `alias`, `try_files`, `index`,
//! `symlinks`, `hidden_files`, `log_not_found`. `root`, `index` and the policies may be
//! set on the server and are inherited by its locations, as in nginx.

use crate::config::diag::Diagnostics;
use crate::config::section::Section;
use crate::content_coding::Coding;
use crate::routing::locations::Matcher;
use crate::variables::{Scope, Template};

use std::time::Duration;

use super::mapping::Mapping;
use super::open::SymlinkPolicy;
use super::open_file_cache::CacheSettings;

/// Whether dot-files may be served (`hidden_files` key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HiddenFiles {
    /// `/.git/config`, `/.env`... answer 404 (the default); `/.well-known/` is exempt.
    Deny,
    Allow,
}

/// `max_ranges` unless configured. nginx has no limit; one request for 20 000 one-byte
/// ranges would build a 20 000-part answer, and no real client asks for more than a few.
const DEFAULT_MAX_RANGES: u32 = 16;

/// Server-level file settings that locations inherit.
#[derive(Clone, Debug)]
pub struct FileDefaults {
    root: Option<Vec<u8>>,
    index: Vec<Vec<u8>>,
    symlinks: SymlinkPolicy,
    hidden_files: HiddenFiles,
    log_not_found: bool,
    sendfile: bool,
    max_ranges: u32,
    open_file_cache: Option<CacheSettings>,
    precompressed: Vec<Coding>,
}

impl FileDefaults {
    /// Reads the inheritable keys of a `[[server]]` block.
    pub fn parse(s: &mut Section, diags: &mut Diagnostics) -> FileDefaults {
        let base = FileDefaults {
            root: None,
            index: vec![b"index.html".to_vec()],
            symlinks: SymlinkPolicy::Inside,
            hidden_files: HiddenFiles::Deny,
            log_not_found: true,
            sendfile: true,
            max_ranges: DEFAULT_MAX_RANGES,
            open_file_cache: None,
            precompressed: Vec::new(),
        };
        read_inheritable(s, &base, diags)
    }
}

fn read_inheritable(s: &mut Section, base: &FileDefaults, diags: &mut Diagnostics) -> FileDefaults {
    let root = s
        .get::<String>("root", "root = \"/srv/www/html\"", diags)
        .map(|r| diags.absolute(r.get_ref()).into_bytes())
        .or_else(|| base.root.clone());
    let index = match s.get::<Vec<String>>("index", "index = [\"index.html\"]", diags) {
        Some(v) => {
            for name in v.get_ref() {
                if name.is_empty() || name.contains('/') {
                    diags.error(
                        v.span(),
                        format!("index `{name}` is not a file name"),
                        Some("list file names to look for in a directory, such as \"index.html\"".into()),
                    );
                }
            }
            v.into_inner().into_iter().map(String::into_bytes).collect()
        }
        None => base.index.clone(),
    };
    FileDefaults {
        root,
        index,
        symlinks: s.get_or(
            "symlinks",
            "symlinks = \"inside\"   # or \"follow\", \"deny\"",
            base.symlinks,
            diags,
        ),
        hidden_files: s.get_or(
            "hidden_files",
            "hidden_files = \"deny\"   # or \"allow\"",
            base.hidden_files,
            diags,
        ),
        log_not_found: s.get_or("log_not_found", "log_not_found = false", base.log_not_found, diags),
        sendfile: s.get_or("sendfile", "sendfile = false", base.sendfile, diags),
        max_ranges: s.get_or(
            "max_ranges",
            "max_ranges = 16   # 0 turns byte ranges off",
            base.max_ranges,
            diags,
        ),
        open_file_cache: read_open_file_cache(s, base.open_file_cache, diags),
        precompressed: read_precompressed(s, &base.precompressed, diags),
    }
}

/// `precompressed = ["br", "gzip", "zstd"]` (Caddy's idea; the order is the preference
/// between codings a client accepts equally) and nginx's `gzip_static = true`, which is
/// `precompressed = ["gzip"]`.
fn read_precompressed(s: &mut Section, base: &[Coding], diags: &mut Diagnostics) -> Vec<Coding> {
    let gzip_static = s.get::<bool>("gzip_static", "gzip_static = true", diags);
    let list = s.get::<Vec<String>>("precompressed", "precompressed = [\"br\", \"gzip\"]", diags);
    match (gzip_static, list) {
        (Some(g), Some(l)) => {
            diags.error(
                g.span(),
                "`gzip_static` and `precompressed` in one block",
                Some(format!(
                    "keep one: gzip_static = true is precompressed = [\"gzip\"] (here: {:?})",
                    l.get_ref()
                )),
            );
            base.to_vec()
        }
        (Some(g), None) => {
            if g.into_inner() {
                vec![Coding::Gzip]
            } else {
                Vec::new()
            }
        }
        (None, Some(l)) => {
            let span = l.span();
            let mut out = Vec::new();
            for name in l.into_inner() {
                match Coding::from_name(&name) {
                    Some(c) if !out.contains(&c) => out.push(c),
                    Some(_) => {}
                    None => diags.error(
                        span.clone(),
                        format!("`{name}` in precompressed is not a coding Portico sends"),
                        Some("list \"br\", \"gzip\" or \"zstd\" (files NAME.br, NAME.gz, NAME.zst)".into()),
                    ),
                }
            }
            out
        }
        (None, None) => base.to_vec(),
    }
}

/// nginx's `open_file_cache`, `open_file_cache_valid` and `open_file_cache_errors`.
fn read_open_file_cache(
    s: &mut Section,
    base: Option<CacheSettings>,
    diags: &mut Diagnostics,
) -> Option<CacheSettings> {
    let example = "open_file_cache = \"max=1000 inactive=20s\"   # or \"off\"";
    let sized = match s.get::<String>("open_file_cache", example, diags) {
        Some(v) => match CacheSettings::parse(v.get_ref(), crate::config::section::parse_duration) {
            Ok(sized) => sized,
            Err(e) => {
                diags.error(v.span(), e, Some(format!("write it as nginx does: {example}")));
                None
            }
        },
        None => base.map(|b| (b.max, b.inactive)),
    };
    let valid = s.duration(
        "open_file_cache_valid",
        "open_file_cache_valid = \"60s\"",
        base.map_or(Duration::from_secs(60), |b| b.valid),
        diags,
    );
    let errors = s.get_or(
        "open_file_cache_errors",
        "open_file_cache_errors = true",
        base.is_some_and(|b| b.errors),
        diags,
    );
    sized.map(|(max, inactive)| CacheSettings { max, inactive, valid, errors })
}

/// The last `try_files` entry: where to go when no earlier entry exists.
#[derive(Clone, Debug)]
pub enum Fallback {
    /// `@name`: a named location.
    Named(String),
    /// `=404`: answer with this status.
    Status(u16),
    /// `/path?$args`: an internal redirect.
    Uri(Template),
}

/// One path `try_files` tests.
#[derive(Clone, Debug)]
pub struct TryCheck {
    /// The path, without the trailing `/` of a directory check: as in nginx, `$uri/`
    /// tests the directory `$uri` and continues with that URI.
    pub path: Template,
    /// Written with a trailing `/`: a directory must exist, not a file.
    pub directory: bool,
}

/// `try_files`: paths to test in order, then the fallback.
#[derive(Clone, Debug)]
pub struct TryFiles {
    pub checks: Vec<TryCheck>,
    pub fallback: Fallback,
}

/// The file-serving settings of one location, inheritance applied.
#[derive(Clone, Debug)]
pub struct FilesConfig {
    pub mapping: Mapping,
    pub try_files: Option<TryFiles>,
    pub index: Vec<Vec<u8>>,
    pub symlinks: SymlinkPolicy,
    pub hidden_files: HiddenFiles,
    pub log_not_found: bool,
    /// Bodies go out with sendfile(2) (nginx's `sendfile on`); off, they are read and
    /// written, as over TLS.
    pub sendfile: bool,
    /// Most byte ranges one request may ask for (nginx's `max_ranges`); a request for
    /// more gets the whole file, and 0 turns ranges off.
    pub max_ranges: u32,
    /// nginx's `open_file_cache`, off unless configured (as nginx).
    pub open_file_cache: Option<CacheSettings>,
    /// Codings whose precompressed files (`NAME.br`, `NAME.gz`, `NAME.zst`) are sent
    /// instead of the file when the client accepts them, in order of preference.
    pub precompressed: Vec<Coding>,
    /// The `@name` of the try_files fallback and where it is written, for validation.
    pub named_fallback: Option<(String, std::ops::Range<usize>)>,
}

impl FilesConfig {
    /// No `root`, `alias` or `try_files`: this location serves no file.
    pub fn serves_no_file(&self) -> bool {
        matches!(self.mapping, Mapping::Unmapped) && self.try_files.is_none()
    }

    /// Reads a location's file keys on top of its server's `defaults`.
    pub fn parse(
        s: &mut Section,
        defaults: &FileDefaults,
        matcher: Option<&Matcher>,
        diags: &mut Diagnostics,
    ) -> FilesConfig {
        let inherited = read_inheritable(s, defaults, diags);
        let named_groups = Matcher::group_names(matcher);
        let scope = Scope::Request { named_groups: &named_groups };
        let is_regex = matcher.and_then(Matcher::regex_ref).is_some();

        let alias = s
            .get::<String>("alias", "alias = \"/srv/www/flaskbb/flaskbb/static/\"", diags)
            .and_then(|a| {
                if let Some(root_span) = s.key_span("root") {
                    diags.error(
                        root_span,
                        "`alias` and `root` in one location",
                        Some("keep one: `alias` replaces the location's prefix, `root` is prepended to the whole URI".into()),
                    );
                }
                if a.get_ref().starts_with('$') {
                    diags.error(
                        a.span(),
                        format!("alias `{}` starts with a variable", a.get_ref()),
                        Some("start with the fixed directory the files are in, such as \"/srv/themes/$1/static/$2\"".into()),
                    );
                    return None;
                }
                match Template::parse(&diags.absolute(a.get_ref()), scope) {
                    Ok(t) if t.uses_captures() && !is_regex => {
                        diags.error(
                            a.span(),
                            "alias uses $1..$9 but this location is not a regex location",
                            Some("captures come from `match = \"~ ^/prefix/(.*)$\"`".into()),
                        );
                        None
                    }
                    Ok(t) => Some(t),
                    Err(e) => {
                        diags.error(a.span(), e.message, Some(e.hint));
                        None
                    }
                }
            });

        let prefix = match matcher {
            Some(Matcher::Prefix { path, .. }) => Some(path.as_slice()),
            _ => None,
        };
        let root = if alias.is_some() { None } else { inherited.root.as_deref() };
        let mapping = Mapping::new(root, alias.as_ref(), prefix);

        let mut named_fallback = None;
        let try_files = s
            .get::<Vec<String>>("try_files", "try_files = [\"$uri\", \"@flaskbb\"]", diags)
            .and_then(|tf| {
                let span = tf.span();
                let entries = tf.into_inner();
                let Some((last, checks)) = entries.split_last().filter(|(_, c)| !c.is_empty()) else {
                    diags.error(
                        span,
                        "try_files needs at least one path to try and a fallback",
                        Some("write it like: try_files = [\"$uri\", \"$uri/\", \"@app\"]".into()),
                    );
                    return None;
                };
                let mut templates = Vec::new();
                for c in checks {
                    let directory = c.len() > 1 && c.ends_with('/');
                    let text = if directory { &c[..c.len() - 1] } else { c.as_str() };
                    match Template::parse(text, scope) {
                        Ok(path) => templates.push(TryCheck { path, directory }),
                        Err(e) => diags.error(span.clone(), e.message, Some(e.hint)),
                    }
                }
                let fallback = if let Some(name) = last.strip_prefix('@') {
                    named_fallback = Some((name.to_string(), span.clone()));
                    Fallback::Named(name.to_string())
                } else if let Some(code) = last.strip_prefix('=') {
                    match code.parse::<u16>() {
                        Ok(c) if (100..=599).contains(&c) => Fallback::Status(c),
                        _ => {
                            diags.error(
                                span.clone(),
                                format!("`{last}` is not a status code"),
                                Some("write a final \"=404\" (any code from 100 to 599)".into()),
                            );
                            return None;
                        }
                    }
                } else if last.starts_with('/') {
                    match Template::parse(last, scope) {
                        Ok(t) => Fallback::Uri(t),
                        Err(e) => {
                            diags.error(span.clone(), e.message, Some(e.hint));
                            return None;
                        }
                    }
                } else {
                    diags.error(
                        span.clone(),
                        format!("the last try_files entry `{last}` is not a fallback"),
                        Some("end with a named location \"@name\", a status \"=404\" or a URI \"/index.html\"".into()),
                    );
                    return None;
                };
                if matches!(mapping, Mapping::Unmapped) {
                    diags.warning(
                        span.clone(),
                        "no `root` is set, so try_files never finds a file here and always uses its fallback (nginx would silently look in its compiled-in html directory)",
                        Some("set `root = \"/srv/www/html\"` on the server or this location if files should be tried".into()),
                    );
                }
                Some(TryFiles {
                    checks: templates,
                    fallback,
                })
            });

        FilesConfig {
            mapping,
            try_files,
            index: inherited.index,
            symlinks: inherited.symlinks,
            hidden_files: inherited.hidden_files,
            log_not_found: inherited.log_not_found,
            sendfile: inherited.sendfile,
            max_ranges: inherited.max_ranges,
            open_file_cache: inherited.open_file_cache,
            precompressed: inherited.precompressed,
            named_fallback,
        }
    }
}
