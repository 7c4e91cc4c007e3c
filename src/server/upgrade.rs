//! Handing the server to a new process without dropping a connection: for SIGUSR2 (a new
//! binary) and for a reload that changes what the process itself was started with (its
//! listen addresses, threads, shutdown timeout, pid file). The old process starts the
//! binary at its own path again with the same arguments; the new one loads the
//! configuration, opens its logs and says "ready" over a pipe, or says why it cannot
//! start. Only then does the old one give up: its listening sockets go over pingora's
//! hand-off socket (SCM_RIGHTS, the socket in the process line's control directory),
//! both accept for pingora's 5 s, and the old one drains. Until "ready" nothing is
//! committed: a new process that fails leaves the old one serving.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::privileges::Identity;

/// The new process's environment: the hand-off socket's path, and the pipe to answer on.
const SOCK_VAR: &str = "PORTICO_UPGRADE_SOCK";
const PIPE_VAR: &str = "PORTICO_UPGRADE_PIPE";

/// How long a new process may take to load its configuration and open its logs.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// Where the listening sockets change hands, for this process and every one that
/// succeeds it: a 0700 directory of the serving user (the hand-off socket is bound by the
/// receiving process, after root was given up).
#[derive(Clone)]
pub(super) struct ControlDir {
    dir: PathBuf,
}

impl ControlDir {
    /// The directory the old process passed down, or a fresh one.
    pub(super) fn new(successor: Option<&Successor>, owner: Option<&Identity>) -> Result<ControlDir, String> {
        if let Some(dir) = successor.and_then(|s| s.sock.parent()) {
            return Ok(ControlDir { dir: dir.to_path_buf() });
        }
        use std::os::unix::fs::DirBuilderExt;
        let dir = std::env::temp_dir().join(format!("portico-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("cannot make {} for the listener hand-off: {e}", dir.display()))?;
        if let Some(id) = owner {
            nix::unistd::chown(&dir, Some(id.uid), Some(id.gid)).map_err(|e| {
                format!("cannot give {} to {}: {}", dir.display(), id.name, crate::errno::describe_errno(e))
            })?;
        }
        Ok(ControlDir { dir })
    }

    pub(super) fn sock(&self) -> PathBuf {
        self.dir.join("listeners.sock")
    }

    /// When the last process of the line stops.
    pub(super) fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The new process's side: started by an old one, which waits for its word.
pub(super) struct Successor {
    pub sock: PathBuf,
    pipe: std::fs::File,
}

impl Successor {
    /// Set when this process was started to take over from an old one.
    pub(super) fn from_env() -> Option<Successor> {
        let sock = PathBuf::from(std::env::var_os(SOCK_VAR)?);
        let fd: i32 = std::env::var(PIPE_VAR).ok()?.parse().ok()?;
        // the pipe is ours: the old process opened it for us alone (a number that is not
        // an open descriptor, the variables copied by hand, is ignored)
        libc_fd_flags(fd).ok()?;
        // SAFETY: checked open above; nothing else in this process owns it
        let pipe = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        Some(Successor { sock, pipe })
    }

    /// Everything that can fail before the sockets arrive has been done.
    pub(super) fn ready(mut self) {
        let _ = self.pipe.write_all(b"ready\n");
    }

    /// This process cannot take over; the old one goes on serving.
    pub(super) fn failed(mut self, why: &str) {
        let _ = writeln!(self.pipe, "error: {}", why.replace('\n', " "));
    }
}

/// Starts `exe` with this process's arguments to take over, and waits for its word:
/// `Ok` once it is ready to receive the listening sockets.
pub(super) fn start_successor(exe: &Path, dir: &ControlDir) -> Result<u32, String> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("cannot make a pipe {}", crate::errno::describe_errno(e)))?;
    let write_fd = write.as_raw_fd();
    let mut command = Command::new(exe);
    command
        .args(std::env::args_os().skip(1))
        .env(SOCK_VAR, dir.sock())
        .env(PIPE_VAR, write_fd.to_string())
        .stdin(Stdio::null());
    // SAFETY: only fcntl, which is async-signal-safe, runs between fork and exec
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(move || {
            // the write end survives the exec (it was opened close-on-exec for everyone else)
            let flags = libc_fd_flags(write_fd)?;
            set_fd_flags(write_fd, flags & !nix::libc::FD_CLOEXEC)
        });
    }
    let mut child =
        command.spawn().map_err(|e| format!("cannot start {} for the hand-over: {e}", exe.display()))?;
    drop(write);
    let pid = child.id();
    // the answer, or the end of the pipe when the new process dies before answering
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(std::fs::File::from(read)).read_line(&mut line);
        let _ = tx.send(line);
    });
    let answer = rx.recv_timeout(READY_WITHIN);
    if answer.as_deref() == Ok("ready\n") {
        // it outlives this process, which drains and exits (init reaps it)
        std::mem::forget(child);
        return Ok(pid);
    }
    let _ = child.kill();
    let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
    Err(match answer {
        Err(_) => format!("the new process (pid {pid}) gave no answer within {} s", READY_WITHIN.as_secs()),
        Ok(line) => match line.strip_prefix("error: ") {
            Some(why) => format!("the new process could not start: {}", why.trim_end()),
            None => {
                format!("the new process ended before it was ready ({status}); see its messages on stderr")
            }
        },
    })
}

fn libc_fd_flags(fd: i32) -> std::io::Result<i32> {
    // SAFETY: F_GETFD on a descriptor number; no memory is touched
    let flags = unsafe { nix::libc::fcntl(fd, nix::libc::F_GETFD) };
    if flags < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(flags)
    }
}

fn set_fd_flags(fd: i32, flags: i32) -> std::io::Result<()> {
    // SAFETY: F_SETFD on a descriptor number; no memory is touched
    if unsafe { nix::libc::fcntl(fd, nix::libc::F_SETFD, flags) } < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}
