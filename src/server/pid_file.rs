//! `pid_file`: written once the process is about to serve, removed when it stops, so that
//! `portico reopen|stop` (and init systems) find it. Written as root before the switch to
//! `user` and given to that user; a directory the user may not write (`/run`) then keeps
//! the file at exit, emptied, which the controls read as "not running".

use std::path::{Path, PathBuf};

use super::privileges::Identity;

pub(super) struct PidFile(PathBuf);

impl PidFile {
    pub(super) fn write(path: &Path, owner: Option<&Identity>) -> Result<PidFile, String> {
        std::fs::write(path, format!("{}\n", std::process::id())).map_err(|e| {
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

    /// At exit: removed, or emptied where the directory is not ours to change.
    pub(super) fn remove(&self) {
        if std::fs::remove_file(&self.0).is_err() {
            let _ = std::fs::write(&self.0, "");
        }
    }
}
