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
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::privileges::Identity;

/// The new process's environment: the hand-off socket's path, and the pipe to answer on.
const SOCK_VAR: &str = "PORTICO_UPGRADE_SOCK";
const PIPE_VAR: &str = "PORTICO_UPGRADE_PIPE";
const ADDRS_VAR: &str = "PORTICO_UPGRADE_ADDRS";

/// How long a new process may take to load its configuration and open its logs.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// pingora's hand-off carries at most this many listening sockets.
pub(super) const MAX_LISTENERS: usize = 32;

/// Where the listening sockets change hands, for this process and every one that
/// succeeds it: a 0700 directory of the serving user (the hand-off socket is bound by the
/// receiving process, after root was given up).
#[derive(Clone)]
pub(super) struct ControlDir {
    dir: PathBuf,
}

impl ControlDir {
    /// The directory the old process passed down, or a fresh one of a name no other
    /// process uses (made here, never taken over).
    pub(super) fn new(successor: Option<&Successor>, owner: Option<&Identity>) -> Result<ControlDir, String> {
        if let Some(dir) = successor.and_then(|s| s.sock.parent()) {
            return Ok(ControlDir { dir: dir.to_path_buf() });
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mut last = None;
        for attempt in 0..16u32 {
            let dir =
                std::env::temp_dir().join(format!("portico-{}-{:x}", std::process::id(), nanos ^ attempt));
            match make_private_dir(&dir) {
                Ok(()) => {
                    if let Some(id) = owner {
                        nix::unistd::chown(&dir, Some(id.uid), Some(id.gid)).map_err(|e| {
                            format!(
                                "cannot give {} to {}: {}",
                                dir.display(),
                                id.name,
                                crate::errno::describe_errno(e)
                            )
                        })?;
                    }
                    let made = ControlDir { dir };
                    // a Unix socket's path has room for 107 bytes
                    if made.sock().as_os_str().len() > 100 {
                        made.remove();
                        return Err(format!(
                            "the temporary directory {} has too long a path for the listener hand-off socket; set TMPDIR to a shorter one",
                            std::env::temp_dir().display()
                        ));
                    }
                    return Ok(made);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => {
                    return Err(format!("cannot make {} for the listener hand-off: {e}", dir.display()))
                }
            }
        }
        Err(format!(
            "cannot make a directory for the listener hand-off: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        ))
    }

    pub(super) fn sock(&self) -> PathBuf {
        self.dir.join("listeners.sock")
    }

    /// Before a hand-over: the directory made again if something (systemd-tmpfiles'
    /// ageing of /tmp) removed it; the receiving process binds its socket there.
    fn ensure(&self) -> Result<(), String> {
        match make_private_dir(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(format!("cannot make {} for the listener hand-off: {e}", self.dir.display())),
        }
    }

    /// When the last process of the line stops.
    pub(super) fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(dir)
}

/// The new process's side: started by an old one, which waits for its word.
pub(super) struct Successor {
    pub sock: PathBuf,
    /// The addresses the old process listens on (the sockets it will send).
    pub inherited: Vec<SocketAddr>,
    pipe: std::fs::File,
}

impl Successor {
    /// Set when this process was started to take over from an old one. The variables
    /// are removed, so that nothing this process starts sees them.
    pub(super) fn from_env() -> Option<Successor> {
        let sock = std::env::var_os(SOCK_VAR).map(PathBuf::from);
        let fd = std::env::var(PIPE_VAR).ok().and_then(|v| v.parse::<i32>().ok());
        let inherited = std::env::var(ADDRS_VAR).unwrap_or_default();
        for var in [SOCK_VAR, PIPE_VAR, ADDRS_VAR] {
            std::env::remove_var(var);
        }
        let (sock, fd) = (sock?, fd?);
        // only the pipe the old process opened for us: a FIFO (a number copied by hand
        // that names something else is ignored)
        let is_fifo = nix::sys::stat::fstat(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) })
            .is_ok_and(|st| st.st_mode & nix::libc::S_IFMT == nix::libc::S_IFIFO);
        if !is_fifo {
            return None;
        }
        // SAFETY: an open FIFO (checked above) that nothing else in this process owns
        let pipe = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let inherited = inherited.split_whitespace().filter_map(|a| a.parse().ok()).collect();
        Some(Successor { sock, inherited, pipe })
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

/// Starts `exe` with this process's arguments to take over from it (which listens on
/// `addrs`), and waits for its word: its pid once it is ready to receive the sockets.
pub(super) fn start_successor(exe: &Path, dir: &ControlDir, addrs: &[SocketAddr]) -> Result<u32, String> {
    dir.ensure()?;
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("cannot make a pipe {}", crate::errno::describe_errno(e)))?;
    let write_fd = write.as_raw_fd();
    let shown: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
    let mut command = Command::new(exe);
    command
        .args(std::env::args_os().skip(1))
        .env(SOCK_VAR, dir.sock())
        .env(PIPE_VAR, write_fd.to_string())
        .env(ADDRS_VAR, shown.join(" "))
        .stdin(Stdio::null());
    // SAFETY: only fcntl, which is async-signal-safe, runs between fork and exec
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(move || {
            // the write end survives the exec (it was opened close-on-exec for everyone else)
            let flags = fd_flags(write_fd)?;
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

fn fd_flags(fd: i32) -> std::io::Result<i32> {
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
