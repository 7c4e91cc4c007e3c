//! `portico reload|reopen|stop|upgrade`: nginx's `-s reload|reopen|stop|quit` (and its
//! binary upgrade), as signals to the pid in the
//! configuration's `pid_file`, with errors that say which file and what was found there.

use std::path::Path;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::config_file::Config;

/// What to ask of the running server.
#[derive(Clone, Copy, Debug)]
pub enum Control {
    /// SIGHUP: read the configuration again (the outcome is in the error log and stderr).
    Reload,
    /// SIGUSR2: hand the server to a new process started from the binary's path.
    Upgrade,
    /// SIGUSR1: reopen the log files (after logrotate moved them).
    Reopen,
    /// SIGINT: stop at once.
    Stop,
    /// SIGQUIT: stop accepting, let requests in flight finish.
    StopGracefully,
}

impl Control {
    fn signal(self) -> Signal {
        match self {
            Control::Reload => Signal::SIGHUP,
            Control::Upgrade => Signal::SIGUSR2,
            Control::Reopen => Signal::SIGUSR1,
            Control::Stop => Signal::SIGINT,
            Control::StopGracefully => Signal::SIGQUIT,
        }
    }
}

/// Sends `what` to the server `config` (read from `file`) describes; the pid it reached.
pub fn send(what: Control, config: &Config, file: &Path) -> Result<i32, String> {
    let Some(path) = &config.global.pid_file else {
        return Err(format!(
            "{} sets no pid_file, so there is no way to find the server: add pid_file = \"/run/portico.pid\" (and restart it once)",
            file.display()
        ));
    };
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!("cannot read pid_file {shown} ({e}): is Portico running with {}?", file.display())
    })?;
    if text.trim().is_empty() {
        return Err(format!("pid_file {shown} is empty: Portico has stopped (or is still starting)"));
    }
    let pid: i32 = text
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("pid_file {shown} holds `{}`, not a process id", text.trim()))?;
    kill(Pid::from_raw(pid), what.signal()).map_err(|e| match e {
        nix::errno::Errno::ESRCH => {
            format!("no process {pid} (from {shown}): Portico is not running; the pid file is stale")
        }
        nix::errno::Errno::EPERM => {
            format!("process {pid} (from {shown}) is not ours to signal: run this as root or as its user")
        }
        e => format!("cannot signal process {pid} (from {shown}) {}", crate::errno::describe_errno(e)),
    })?;
    Ok(pid)
}
