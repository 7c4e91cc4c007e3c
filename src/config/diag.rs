//! Configuration diagnostics: what is wrong, where (file:line:column), and what to write
//! instead. Every module that reads part of the configuration reports through
//! [`Diagnostics`], so `portico check` can list every problem at once.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

/// How serious a diagnostic is: errors refuse the configuration, warnings do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// What to write instead, when there is something useful to say.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}:{}:{}: {level}: {}", self.file, self.line, self.column, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n    hint: {hint}")?;
        }
        Ok(())
    }
}

/// The file being read: its name and text (to turn byte spans into line and column), its
/// directory (relative paths in it are resolved against that), and what was found so far.
pub struct Diagnostics<'s> {
    file: String,
    source: &'s str,
    dir: PathBuf,
    items: Vec<Diagnostic>,
}

impl<'s> Diagnostics<'s> {
    pub fn new(file: impl Into<String>, source: &'s str) -> Self {
        Diagnostics { file: file.into(), source, dir: PathBuf::from("/"), items: Vec::new() }
    }

    /// Sets the directory that relative paths in the file are resolved against.
    pub fn with_dir(mut self, dir: PathBuf) -> Self {
        self.dir = dir;
        self
    }

    /// `path` as written if absolute, else joined to the configuration file's directory.
    pub fn absolute(&self, path: &str) -> String {
        if path.starts_with('/') {
            path.to_string()
        } else {
            let mut p = self.dir.to_string_lossy().trim_end_matches('/').to_string();
            p.push('/');
            p.push_str(path);
            p
        }
    }

    /// Records an error at `span` (byte offsets into the source).
    pub fn error(&mut self, span: Range<usize>, message: impl Into<String>, hint: Option<String>) {
        self.push(Severity::Error, span, message.into(), hint);
    }

    /// Records a warning at `span`: the configuration still loads.
    pub fn warning(&mut self, span: Range<usize>, message: impl Into<String>, hint: Option<String>) {
        self.push(Severity::Warning, span, message.into(), hint);
    }

    fn push(&mut self, severity: Severity, span: Range<usize>, message: String, hint: Option<String>) {
        let (line, column) = line_column(self.source, span.start);
        self.items.push(Diagnostic { severity, file: self.file.clone(), line, column, message, hint });
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn into_vec(mut self) -> Vec<Diagnostic> {
        self.items.sort_by_key(|d| (d.line, d.column));
        self.items
    }
}

/// 1-based line and column (in characters) of byte `offset` in `source`.
fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The known name closest to `unknown`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(unknown: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (edit_distance(unknown, k), k))
        .filter(|(d, k)| *d <= (k.len().max(unknown.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb { prev } else { 1 + prev.min(row[j]).min(row[j + 1]) };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let src = "a = 1\nbb = 2\n";
        assert_eq!(line_column(src, 0), (1, 1));
        assert_eq!(line_column(src, 6), (2, 1));
        assert_eq!(line_column(src, 9), (2, 4));
    }

    #[test]
    fn suggests_close_names_only() {
        let known = ["alias", "root", "try_files"];
        assert_eq!(did_you_mean("aliass", known), Some("alias"));
        assert_eq!(did_you_mean("try-files", known), Some("try_files"));
        assert_eq!(did_you_mean("listen", known), None);
    }

    #[test]
    fn diagnostics_render_file_line_and_hint() {
        let mut d = Diagnostics::new("site.toml", "x = 1\ny = 2\n");
        d.error(6..7, "unknown key `y`", Some("remove it".into()));
        let v = d.into_vec();
        assert_eq!(v[0].to_string(), "site.toml:2:1: error: unknown key `y`\n    hint: remove it");
    }
}
