//! `pid_file`: holds the pid once the process handles its signals (so a `portico reload`
//! that found it is never lost), removed when it stops, so that `portico
//! reload|reopen|stop|upgrade` (and init systems) find the server. Created as root before
//! the switch to `user` and given to that user; a directory the user may not write
//! (`/run`) then keeps the file at exit, emptied, which the controls read as "not
//! running". A process that took over writes its own pid there; the old one then leaves
//! the file alone.

use std::path::{Path, PathBuf};

use super::privileges::Identity;

pub(super) struct PidFile(PathBuf);

impl PidFile {
    /// Creates the file (keeping what it holds: the pid of a process this one takes over
    /// from, until this one is ready) and gives it to `owner`.
    pub(super) fn create(path: &Path, owner: Option<&Identity>) -> Result<PidFile, String> {
        std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| {
            format!(
                "cannot write pid_file {}: {e}; create its directory or change `pid_file`",
                path.display()
            )
        })?;
        if let Some(id) = owner {
            nix::unistd::chown(path, Some(id.uid), Some(id.gid)).map_err(|e| {
                format!(
                    "cannot give pid_file {} to {}: {}",
                    path.display(),
                    id.name,
                    crate::errno::describe_errno(e)
                )
            })?;
        }
        Ok(PidFile(path.to_path_buf()))
    }

    /// Writes this process's pid: from now on its signals are handled.
    /// Written beside it and renamed over it where the directory is ours, so that a
    /// control never reads it half-written; in place where it is not (`/run` after the
    /// switch to `user`).
    pub(super) fn publish(&self) -> Result<(), String> {
        let text = format!("{}\n", std::process::id());
        let mut beside = self.0.clone().into_os_string();
        beside.push(".new");
        let beside = PathBuf::from(beside);
        if std::fs::write(&beside, &text).and_then(|()| std::fs::rename(&beside, &self.0)).is_ok() {
            return Ok(());
        }
        let _ = std::fs::remove_file(&beside);
        std::fs::write(&self.0, text).map_err(|e| format!("cannot write pid_file {}: {e}", self.0.display()))
    }

    /// At exit: removed, or emptied where the directory is not ours to change — unless a
    /// process that took over has written its own pid there.
    pub(super) fn remove(&self) {
        let ours = std::fs::read_to_string(&self.0)
            .is_ok_and(|s| s.trim().parse::<u32>().ok() == Some(std::process::id()));
        if !ours {
            return;
        }
        if std::fs::remove_file(&self.0).is_err() {
            let _ = std::fs::write(&self.0, "");
        }
    }
}
