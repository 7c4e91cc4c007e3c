//! Reading an nginx configuration and the files it includes: `include PATTERN` is replaced
//! by a block holding the directives of every file the glob matches (in sorted order, as
//! nginx's glob), so that the converter still knows where they came from. A relative
//! pattern is taken from the including file's directory, or from `--prefix DIR` when given
//! (nginx's rule: relative to its prefix, `/etc/nginx` on Debian). An include that matches
//! nothing is an error, but for the stock parameter files (`uwsgi_params`, `mime.types`...)
//! the converter knows without reading them; an include loop is an error.

use std::path::{Path, PathBuf};

use super::syntax::{parse, Directive};

/// One file read, as messages and comments name it.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub shown: String,
}

/// An error with the place it points at (`file` an index into the files read).
#[derive(Clone, Debug)]
pub struct LoadError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
    }
}

/// The stock files nginx ships beside `nginx.conf`, which the converter understands
/// without reading them.
const STOCK_FILES: &[&str] = &[
    "uwsgi_params",
    "mime.types",
    "fastcgi_params",
    "fastcgi.conf",
    "scgi_params",
    "proxy_params",
    "koi-utf",
    "win-utf",
];

/// Files and bytes read at most (a glob over a big tree is refused, not followed).
const MAX_FILES: usize = 1000;
const MAX_BYTES: usize = 16 << 20;

/// Reads `path` and everything it includes.
pub fn load(path: &Path, prefix: Option<&Path>) -> Result<(Vec<SourceFile>, Vec<Directive>), LoadError> {
    let mut l =
        Loader { files: Vec::new(), bytes: 0, prefix: prefix.map(Path::to_path_buf), stack: Vec::new() };
    let top = l.read(path, None)?;
    Ok((l.files, top))
}

struct Loader {
    files: Vec<SourceFile>,
    bytes: usize,
    prefix: Option<PathBuf>,
    /// The files being read, outermost first (an include of one of them is a loop).
    stack: Vec<PathBuf>,
}

/// Where an include directive is, to point errors at it.
struct At {
    file: usize,
    line: usize,
    column: usize,
}

impl Loader {
    fn error_at(&self, at: Option<&At>, path: &Path, message: String) -> LoadError {
        match at {
            Some(a) => {
                LoadError { file: self.files[a.file].shown.clone(), line: a.line, column: a.column, message }
            }
            None => LoadError { file: path.display().to_string(), line: 0, column: 0, message },
        }
    }

    fn read(&mut self, path: &Path, at: Option<&At>) -> Result<Vec<Directive>, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            self.error_at(
                at,
                path,
                format!("cannot read \"{}\": {}", path.display(), crate::errno::describe(&e)),
            )
        })?;
        self.bytes += text.len();
        if self.files.len() >= MAX_FILES || self.bytes > MAX_BYTES {
            return Err(self.error_at(
                at,
                path,
                format!("more than {MAX_FILES} files or {} MB included", MAX_BYTES >> 20),
            ));
        }
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let index = self.files.len();
        self.files.push(SourceFile { shown: path.display().to_string() });
        let mut tree = parse(&text, index).map_err(|e| LoadError {
            file: self.files[index].shown.clone(),
            line: e.line,
            column: e.column,
            message: e.message,
        })?;
        self.stack.push(canonical);
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let expanded = self.expand(&mut tree, &dir);
        self.stack.pop();
        expanded?;
        Ok(tree)
    }

    fn expand(&mut self, tree: &mut [Directive], dir: &Path) -> Result<(), LoadError> {
        for d in tree.iter_mut() {
            if let Some(block) = &mut d.block {
                self.expand(block, dir)?;
                continue;
            }
            if d.name != "include" || d.args.len() != 1 {
                continue;
            }
            let at = At { file: d.file, line: d.line, column: d.column };
            let pattern = &d.args[0];
            let base = self.prefix.clone().unwrap_or_else(|| dir.to_path_buf());
            let full =
                if Path::new(pattern).is_absolute() { PathBuf::from(pattern) } else { base.join(pattern) };
            let mut matched: Vec<PathBuf> = match glob::glob(&full.to_string_lossy()) {
                Ok(paths) => paths.filter_map(Result::ok).filter(|p| p.is_file()).collect(),
                Err(e) => {
                    return Err(self.error_at(
                        Some(&at),
                        &full,
                        format!("include \"{pattern}\" is not a valid pattern: {e}"),
                    ))
                }
            };
            matched.sort();
            let is_glob = pattern.contains(['*', '?', '[']);
            if matched.is_empty() {
                let name = Path::new(pattern).file_name().and_then(|n| n.to_str()).unwrap_or("");
                if STOCK_FILES.contains(&name) {
                    // the converter knows this one; left as an include with no block
                    continue;
                }
                if !is_glob {
                    return Err(self.error_at(
                        Some(&at),
                        &full,
                        format!(
                            "include \"{pattern}\": \"{}\" does not exist (relative includes are read from {}; give --prefix DIR for nginx's prefix, /etc/nginx on Debian)",
                            full.display(),
                            if self.prefix.is_some() { "the prefix" } else { "the including file's directory" }
                        ),
                    ));
                }
            }
            let mut included = Vec::new();
            for p in matched {
                let canonical = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
                if self.stack.contains(&canonical) {
                    return Err(self.error_at(
                        Some(&at),
                        &p,
                        format!("include loop: \"{}\" includes itself", p.display()),
                    ));
                }
                included.extend(self.read(&p, Some(&at))?);
            }
            d.block = Some(included);
        }
        Ok(())
    }
}
