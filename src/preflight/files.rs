//! The directories `root` and `alias` name, as the server will meet them: each exists and
//! may be searched and read by the user Portico serves as (and every directory above
//! it); and the symlinks under them that the symlink rule will refuse, found by a bounded
//! walk, each named with what to set to allow it.

use std::collections::VecDeque;
use std::path::{Component, Path, PathBuf};

use crate::permissions::{need_words, reach, Who, Why, READ, SEARCH};

/// Entries looked at under one directory before the walk stops (and says so).
pub const WALK_LIMIT: usize = 10_000;

/// Why files under `dir` (or `dir` itself, when an alias names one file) cannot be
/// served, in a sentence.
pub fn problem(dir: &Path, who: &Who) -> Option<String> {
    let need = if dir.is_file() { READ } else { READ | SEARCH };
    let blocked = reach(dir, who, need).err()?;
    let shown = dir.display();
    Some(match blocked.why {
        Why::Missing if blocked.at == dir => format!("{shown} does not exist"),
        Why::Missing => format!("{shown} does not exist ({} is missing)", blocked.at.display()),
        Why::Denied { need, mode, owner } => {
            let at = if blocked.at == dir {
                String::new()
            } else {
                format!(" ({} above it)", blocked.at.display())
            };
            format!(
                "{}{at} is {mode} {owner} and portico runs as {}, which needs {} on it",
                blocked.at.display(),
                who.name,
                need_words(need)
            )
        }
    })
}

/// A symlink under a directory that resolves outside it.
#[derive(Debug, PartialEq, Eq)]
pub struct Leaving {
    pub link: PathBuf,
    pub target: PathBuf,
}

/// The symlinks under `dir` that lead outside it (absolute ones too: the rule refuses
/// those wherever they point), skipping links named in `written` (components the
/// configuration writes, which are followed); whether the walk stopped at the limit.
pub fn leaving_links(dir: &Path, written: &[&str]) -> (Vec<Leaving>, bool) {
    let Ok(base) = std::fs::canonicalize(dir) else { return (Vec::new(), false) };
    let mut found = Vec::new();
    let mut queue = VecDeque::from([base.clone()]);
    let mut seen = 0;
    while let Some(d) = queue.pop_front() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            seen += 1;
            if seen > WALK_LIMIT {
                return (found, true);
            }
            let path = entry.path();
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                queue.push_back(path);
            } else if kind.is_symlink() {
                let named = entry.file_name().to_str().is_some_and(|n| written.contains(&n));
                let Ok(target) = std::fs::read_link(&path) else { continue };
                if !named && leaves(&base, &path, &target) {
                    found.push(Leaving { link: path, target });
                }
            }
        }
    }
    (found, false)
}

/// Whether following `target` from `link` leaves `base` at any step (as
/// `RESOLVE_BENEATH` refuses it), or starts from `/`.
fn leaves(base: &Path, link: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return true;
    }
    let mut at: PathBuf = link.parent().map(Path::to_path_buf).unwrap_or_default();
    for c in target.components() {
        match c {
            Component::ParentDir => {
                at.pop();
                if !at.starts_with(base) {
                    return true;
                }
            }
            Component::Normal(n) => at.push(n),
            _ => {}
        }
    }
    // a link inside may point at another link out: resolve what is there now
    std::fs::canonicalize(&at).is_ok_and(|real| !real.starts_with(base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_that_climb_out_or_start_at_root_leave() {
        let base = Path::new("/srv/site");
        assert!(leaves(base, Path::new("/srv/site/a/l"), Path::new("../../x")));
        assert!(leaves(base, Path::new("/srv/site/l"), Path::new("/srv/site/x")), "absolute");
        // out and back in still leaves on the way, as the kernel's rule sees it
        assert!(leaves(base, Path::new("/srv/site/l"), Path::new("../site/x")));
        assert!(!leaves(base, Path::new("/srv/site/a/l"), Path::new("../b")));
    }
}
