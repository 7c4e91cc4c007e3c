//! `include = ["sites/*.toml"]`, as nginx's `include sites-enabled/*`: each pattern is a
//! glob relative to the including file's directory, its matches read in sorted order,
//! depth first (an included file may include too). A loop is an error, a pattern that
//! matches nothing a warning, both at the `include` that says it.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

/// One file of the configuration, read.
pub struct SourceFile {
    /// As diagnostics name it.
    pub shown: String,
    /// Its directory: relative paths in it are relative to this.
    pub dir: PathBuf,
    pub src: String,
}

/// A problem found while gathering, for the diagnostics of file `file`.
pub struct Note {
    pub file: usize,
    pub span: Range<usize>,
    pub error: bool,
    pub message: String,
    pub hint: Option<String>,
}

/// Reads `main` and everything it includes; `Err` when `main` itself cannot be read.
pub fn gather(main: &Path) -> Result<(Vec<SourceFile>, Vec<Note>), String> {
    let src =
        std::fs::read_to_string(main).map_err(|e| format!("cannot read the configuration file: {e}"))?;
    let mut files = vec![source(main, src)];
    let mut notes = Vec::new();
    let mut stack = vec![canonical(main)];
    follow(0, &mut stack, &mut files, &mut notes);
    Ok((files, notes))
}

fn source(path: &Path, src: String) -> SourceFile {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    SourceFile { shown: path.display().to_string(), dir, src }
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The `include` patterns of file `at` (with where each is written), then each match.
fn follow(at: usize, stack: &mut Vec<PathBuf>, files: &mut Vec<SourceFile>, notes: &mut Vec<Note>) {
    // a file that is not TOML is reported when it is parsed
    let Ok(doc) = DeTable::parse(&files[at].src) else { return };
    let patterns: Vec<(String, Range<usize>)> = match doc.get_ref().get("include").map(|v| v.get_ref()) {
        Some(DeValue::Array(items)) => items
            .iter()
            .filter_map(|i| match i.get_ref() {
                DeValue::String(s) => Some((s.to_string(), i.span())),
                _ => None,
            })
            .collect(),
        _ => return,
    };
    let dir = files[at].dir.clone();
    for (pattern, span) in patterns {
        let full =
            if Path::new(&pattern).is_absolute() { PathBuf::from(&pattern) } else { dir.join(&pattern) };
        let mut matches: Vec<PathBuf> = match glob::glob(&full.to_string_lossy()) {
            Ok(paths) => paths.filter_map(Result::ok).filter(|p| p.is_file()).collect(),
            Err(e) => {
                notes.push(Note {
                    file: at,
                    span,
                    error: true,
                    message: format!("include `{pattern}` is not a valid pattern: {e}"),
                    hint: Some("write a path or a glob such as \"sites/*.toml\"".into()),
                });
                continue;
            }
        };
        matches.sort();
        if matches.is_empty() {
            notes.push(Note {
                file: at,
                span: span.clone(),
                error: false,
                message: format!("include `{pattern}` matches no file (looked in {})", dir.display()),
                hint: Some("patterns are relative to the including file's directory".into()),
            });
        }
        for path in matches {
            let real = canonical(&path);
            if stack.contains(&real) {
                notes.push(Note {
                    file: at,
                    span: span.clone(),
                    error: true,
                    message: format!(
                        "include `{pattern}` includes {} again: an include loop",
                        path.display()
                    ),
                    hint: Some("remove the include that leads back".into()),
                });
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(src) => {
                    files.push(source(&path, src));
                    stack.push(real);
                    follow(files.len() - 1, stack, files, notes);
                    stack.pop();
                }
                Err(e) => notes.push(Note {
                    file: at,
                    span: span.clone(),
                    error: true,
                    message: format!("cannot read {}, included by `{pattern}`: {e}", path.display()),
                    hint: None,
                }),
            }
        }
    }
}
