//! Opening a mapped file beneath its base directory with `openat2(2)`: the kernel, not a
//! string check, guarantees that the request part of the path (and any symlink in it)
//! stays inside the base, according to the location's `symlinks` policy.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use crate::errno::describe_errno;

use super::headers::FileFacts;
use super::mapping::MappedPath;
use crate::reply::OpenFile;

/// Which symlinks in the request part of a path may be followed (`symlinks` key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SymlinkPolicy {
    /// Only those whose target stays inside the base directory (the default).
    Inside,
    /// All of them, wherever they lead (nginx's default `disable_symlinks off`).
    Follow,
    /// None: a symlink anywhere in the request part is refused (403).
    Deny,
}

/// A file or directory that was opened.
pub enum Opened {
    File { file: OpenFile, facts: FileFacts },
    Directory,
}

/// Why a mapped path could not be served, with what the error log says about it.
#[derive(Debug)]
pub struct OpenFailure {
    pub kind: FailureKind,
    /// The message for the error log, in nginx's words: `open() "/x" failed (2: ...)`.
    pub log_message: String,
}

/// How an open failure is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// 404: nothing there (or a path that only exists outside the base).
    NotFound,
    /// 403: there, but not for us (permissions, or a symlink the policy refuses).
    Forbidden,
    /// 404 logged at `crit`, as nginx: a FIFO, socket or device where a file was expected.
    NotRegular,
    /// 500: anything else the kernel said.
    Internal,
}

fn resolve_flags(policy: SymlinkPolicy) -> ResolveFlag {
    match policy {
        SymlinkPolicy::Inside => ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        SymlinkPolicy::Deny => ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS,
        // `rel` was already refused if it has `..` segments; symlinks may go anywhere
        SymlinkPolicy::Follow => ResolveFlag::empty(),
    }
}

fn open_base(base: &[u8], flags: OFlag) -> nix::Result<OwnedFd> {
    let path = if base.is_empty() { &b"/"[..] } else { base };
    nix::fcntl::open(path, flags | OFlag::O_CLOEXEC, Mode::empty())
}

/// How long an opened base directory is reused before it is opened again by path: a
/// directory that is replaced (renamed, or a `current` symlink switched to a new release)
/// is picked up within this time.
pub const DIR_CACHE_TTL: Duration = Duration::from_secs(1);

/// Open base directories by path, with when they were opened.
type DirCache = HashMap<Vec<u8>, (Rc<OwnedFd>, Instant)>;

thread_local! {
    /// Base directories opened with O_PATH, per worker thread: every static request opens
    /// its file beneath one, and opening it each time would cost two more syscalls.
    static DIRS: RefCell<DirCache> = RefCell::new(HashMap::new());
}

/// The base directory's O_PATH fd, from this thread's cache when fresh.
fn base_dir(base: &[u8]) -> nix::Result<Rc<OwnedFd>> {
    let now = Instant::now();
    let cached = DIRS.with(|d| {
        d.borrow()
            .get(base)
            .filter(|(_, at)| now.duration_since(*at) < DIR_CACHE_TTL)
            .map(|(fd, _)| fd.clone())
    });
    if let Some(fd) = cached {
        return Ok(fd);
    }
    let fd = Rc::new(open_base(base, OFlag::O_PATH | OFlag::O_DIRECTORY)?);
    DIRS.with(|d| d.borrow_mut().insert(base.to_vec(), (fd.clone(), now)));
    Ok(fd)
}

/// Opens `path` with `flags`: the base itself, or the request part beneath it by `policy`.
fn open_beneath(path: &MappedPath, flags: OFlag, policy: SymlinkPolicy) -> nix::Result<OwnedFd> {
    if path.rel.is_empty() {
        return open_base(path.base, flags);
    }
    let dir = base_dir(path.base)?;
    let how = OpenHow::new().flags(flags).resolve(resolve_flags(policy));
    match openat2(dir.as_fd(), path.beneath(), how) {
        // a symlink the policy refused may be one the configuration wrote: look again,
        // component by component (the usual path costs one call, as before)
        Err(Errno::EXDEV | Errno::ELOOP) if !path.written.is_empty() => {
            open_through_written(dir.as_fd(), path, flags, policy)
        }
        result => result,
    }
}

/// Opens `path` one stretch at a time: what came from the request beneath the directory
/// reached so far (by `policy`), each component the configuration wrote followed wherever
/// its symlink leads, as the operator's own. `rel` has no `.` or `..` (mapping refused it).
fn open_through_written(
    base: BorrowedFd,
    path: &MappedPath,
    flags: OFlag,
    policy: SymlinkPolicy,
) -> nix::Result<OwnedFd> {
    let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let requested = OpenHow::new().resolve(resolve_flags(policy));
    let written = OpenHow::new().resolve(ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let rel: &[u8] = &path.rel;
    let mut dir: Option<OwnedFd> = None;
    let mut pos = 0;
    for span in path.written.iter() {
        let part = without_leading_slashes(&rel[pos..span.start]);
        if !part.is_empty() {
            let at = dir.as_ref().map_or(base, AsFd::as_fd);
            dir = Some(openat2(at, part, requested.flags(dir_flags))?);
        }
        let at = dir.as_ref().map_or(base, AsFd::as_fd);
        if rel[span.end..].iter().all(|&b| b == b'/') {
            // the written component is what is opened: with its trailing slash, if any,
            // which (as in the one-call path) only a directory satisfies
            return openat2(at, &rel[span.start..], written.flags(flags));
        }
        dir = Some(openat2(at, &rel[span.clone()], written.flags(dir_flags))?);
        pos = span.end;
    }
    let at = dir.as_ref().map_or(base, AsFd::as_fd);
    // a trailing slash stays: `x.css/` names no file, as in the one-call path
    let rest = without_leading_slashes(&rel[pos..]);
    openat2(at, if rest.is_empty() { &b"."[..] } else { rest }, requested.flags(flags))
}

fn without_leading_slashes(p: &[u8]) -> &[u8] {
    &p[p.iter().position(|&b| b != b'/').unwrap_or(p.len())..]
}

/// Opens `path` for reading. Directories are reported, not opened; non-regular files fail.
pub fn open_file(path: &MappedPath, policy: SymlinkPolicy) -> Result<Opened, OpenFailure> {
    // O_NONBLOCK: opening a FIFO must not hang the worker
    let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let fd = open_beneath(path, flags, policy).map_err(|e| failure(path, e, policy))?;
    let file = File::from(fd);
    let meta = file
        .metadata()
        .map_err(|e| failure_io(path, "fstat()", Errno::from_raw(e.raw_os_error().unwrap_or(0))))?;
    if meta.is_dir() {
        return Ok(Opened::Directory);
    }
    if !meta.is_file() {
        return Err(OpenFailure {
            kind: FailureKind::NotRegular,
            log_message: format!("\"{}\" is not a regular file", show(&path.full())),
        });
    }
    Ok(Opened::File { facts: FileFacts { size: meta.len(), mtime: meta.mtime() }, file: OpenFile::Own(file) })
}

/// Whether `path` exists as a regular file (or as a directory when `dir`), for
/// `try_files`. Follows the same policy as [`open_file`].
pub fn exists(path: &MappedPath, dir: bool, policy: SymlinkPolicy) -> bool {
    let Ok(fd) = open_beneath(path, OFlag::O_PATH | OFlag::O_CLOEXEC, policy) else {
        return false;
    };
    match nix::sys::stat::fstat(fd.as_fd()) {
        Ok(st) => {
            let kind = nix::sys::stat::SFlag::from_bits_truncate(st.st_mode) & nix::sys::stat::SFlag::S_IFMT;
            if dir {
                kind == nix::sys::stat::SFlag::S_IFDIR
            } else {
                kind == nix::sys::stat::SFlag::S_IFREG
            }
        }
        Err(_) => false,
    }
}

/// Checks at start-up that the kernel has `openat2` (Linux 5.6+), without which no path
/// could be opened safely.
pub fn openat2_available() -> Result<(), String> {
    let dir = open_base(b"/", OFlag::O_PATH | OFlag::O_DIRECTORY)
        .map_err(|e| format!("cannot open / {}", describe_errno(e)))?;
    match openat2(
        dir.as_fd(),
        ".",
        OpenHow::new().flags(OFlag::O_PATH | OFlag::O_CLOEXEC).resolve(ResolveFlag::RESOLVE_BENEATH),
    ) {
        Ok(_) => Ok(()),
        Err(Errno::ENOSYS) => {
            Err("this kernel has no openat2(2) (Linux 5.6 or later is needed to serve files safely)".into())
        }
        Err(e) => Err(format!("openat2(2) probe failed {}", describe_errno(e))),
    }
}

fn show(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

fn failure(path: &MappedPath, errno: Errno, policy: SymlinkPolicy) -> OpenFailure {
    match errno {
        // EXDEV: resolution tried to leave the base (a `..` or a symlink pointing out)
        Errno::EXDEV => OpenFailure {
            kind: FailureKind::NotFound,
            log_message: format!(
                "open() \"{}\" refused: it resolves outside \"{}\" (symlinks = \"{}\"; set symlinks = \"follow\" on this location to allow it)",
                show(&path.full()),
                show(path.base),
                policy_name(policy)
            ),
        },
        // ELOOP under "deny": a symlink was met
        Errno::ELOOP if policy == SymlinkPolicy::Deny => OpenFailure {
            kind: FailureKind::Forbidden,
            log_message: format!(
                "open() \"{}\" refused: the path contains a symlink (symlinks = \"deny\")",
                show(&path.full())
            ),
        },
        e => failure_io(path, "open()", e),
    }
}

fn failure_io(path: &MappedPath, call: &str, errno: Errno) -> OpenFailure {
    let kind = match errno {
        Errno::ENOENT | Errno::ENOTDIR | Errno::ENAMETOOLONG => FailureKind::NotFound,
        Errno::EACCES | Errno::EPERM | Errno::ELOOP => FailureKind::Forbidden,
        _ => FailureKind::Internal,
    };
    OpenFailure {
        kind,
        log_message: format!("{call} \"{}\" failed {}", show(&path.full()), describe_errno(errno)),
    }
}

fn policy_name(p: SymlinkPolicy) -> &'static str {
    match p {
        SymlinkPolicy::Inside => "inside",
        SymlinkPolicy::Follow => "follow",
        SymlinkPolicy::Deny => "deny",
    }
}
