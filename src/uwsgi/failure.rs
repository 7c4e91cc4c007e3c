//! What went wrong on the way to uWSGI and back, in nginx's words and with what to
//! check: the status the client gets, the error log's level and line, and whether it
//! counts against the server's passive health. Wording only: the steps that fail decide
//! when to say it, and the errno's own text is `crate::errno`'s.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use nix::errno::Errno;

use crate::errno::describe;
use crate::http1::exchange::BodyError as ClientBodyError;
use crate::log::{Level, Note};

use super::config::{BackendAddr, UpstreamConfig};

/// A forward that went wrong before a response reached the client.
pub(super) struct Failure {
    pub(super) status: u16,
    pub(super) level: Level,
    pub(super) message: String,
    /// Counts against the server's passive health.
    pub(super) health: bool,
}

impl Failure {
    /// The error log's line, about the upstream `label` names.
    pub(super) fn into_note(self, label: String) -> Note {
        Note { level: self.level, message: self.message, upstream: Some(label) }
    }
}

/// How the error log names an upstream (a pool or one of its servers), as nginx does.
pub fn upstream_label(name: impl std::fmt::Display) -> String {
    format!("uwsgi://{name}")
}

/// nginx's connect() line, with what to check for each errno.
pub(super) fn connect_failure(addr: &BackendAddr, e: &io::Error) -> Failure {
    let errno = e.raw_os_error().map(Errno::from_raw);
    let hint = match errno {
        Some(Errno::ENOENT) => " (is uWSGI running? its `socket` option must name this path)".to_string(),
        Some(Errno::ECONNREFUSED) => match addr {
            BackendAddr::Unix(_) => {
                " (the socket file exists but nothing listens on it: uWSGI stopped, or left a stale socket)"
                    .into()
            }
            BackendAddr::Tcp(_) => " (nothing listens there: is uWSGI running?)".into(),
        },
        Some(Errno::EAGAIN) => {
            " (uWSGI's listen queue is full: every worker is busy; raise uWSGI's `listen` or add workers)"
                .into()
        }
        Some(Errno::EACCES) => permission_hint(addr),
        _ => String::new(),
    };
    // nginx logs a missing or forbidden socket at crit, a refused or busy one at error
    let level = match errno {
        Some(
            Errno::ECONNREFUSED
            | Errno::EAGAIN
            | Errno::ECONNRESET
            | Errno::ENETDOWN
            | Errno::ENETUNREACH
            | Errno::EHOSTDOWN
            | Errno::EHOSTUNREACH,
        ) => Level::Error,
        _ => Level::Crit,
    };
    Failure {
        status: 502,
        level,
        message: format!("connect() to {addr} failed {}{hint} while connecting to upstream", describe(e)),
        health: true,
    }
}

/// Who owns the socket and who we are, for the classic chmod-socket=600 trap.
fn permission_hint(addr: &BackendAddr) -> String {
    let BackendAddr::Unix(path) = addr else {
        return String::new();
    };
    let me = crate::permissions::user_name(nix::unistd::geteuid().as_raw());
    match std::fs::metadata(path) {
        Ok(m) => format!(
            " (the socket has mode {:o} and belongs to {}, Portico runs as {}: make uWSGI create it for this user, e.g. chown-socket = {} in its ini, or give a shared group chmod-socket = 660; also check the directories on the path)",
            m.permissions().mode() & 0o7777,
            crate::permissions::owner(m.uid(), m.gid()),
            me,
            me
        ),
        Err(_) => format!(
            " (a directory on the path is not searchable by {}, the user Portico runs as)",
            me
        ),
    }
}

/// A failed read or write on the backend's socket (`call` as nginx names it).
pub(super) fn io_failure(call: &str, action: &str, e: &io::Error) -> Failure {
    Failure {
        status: 502,
        level: Level::Error,
        message: format!("{call} failed {} while {action}", describe(e)),
        health: true,
    }
}

/// uWSGI did not connect, take or send bytes in time.
pub(super) fn timed_out(action: &str) -> Failure {
    Failure {
        status: 504,
        level: Level::Error,
        message: format!("upstream timed out (110: Connection timed out) while {action}"),
        health: true,
    }
}

/// The client's body broke off while it was being sent on: 408 for a timeout, 400 for
/// bad framing, else 499 (the client is gone).
pub(super) fn client_gone(e: &ClientBodyError) -> Failure {
    Failure {
        status: match e {
            ClientBodyError::TimedOut => 408,
            ClientBodyError::Framing(_) => 400,
            ClientBodyError::Closed(_) => 499,
        },
        level: Level::Info,
        message: format!("{e} while sending request to upstream"),
        health: false,
    }
}

/// Every server stayed at `max_conns` for the whole wait (the client gets 503).
pub(super) fn all_busy(cfg: &UpstreamConfig) -> Note {
    Note {
        level: Level::Error,
        message: format!(
            "every server of upstream \"{}\" is at max_conns and no slot was freed within connect_timeout ({})",
            cfg.name,
            show_duration(cfg.connect_timeout)
        ),
        upstream: None,
    }
}

/// Every server is skipped for its recent failures, before any was tried.
pub(super) fn no_live_upstreams(cfg: &UpstreamConfig) -> Note {
    Note {
        level: Level::Error,
        message: format!(
            "no live upstreams while connecting to upstream: every server of \"{}\" failed recently and is skipped for fail_timeout ({})",
            cfg.name,
            show_duration(cfg.fail_timeout)
        ),
        upstream: Some(upstream_label(&cfg.name)),
    }
}

/// A timeout as it is written in the configuration: `5s`, `500ms`.
fn show_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
