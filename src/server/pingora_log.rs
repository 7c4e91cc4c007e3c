//! What pingora reports only through the `log` facade, in Portico's error log. Its accept
//! loop logs a failed accept and, for EMFILE, retries every second — and at the fd limit
//! each closed connection lets one more in, so failures and accepts alternate for as long
//! as the limit is reached. Here a failed accept is written at most once a minute (with
//! what to do), not once per attempt.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::log::error::{ErrorContext, ErrorLog};
use crate::log::Level;

/// How often a failing accept is written while it lasts.
const ACCEPT_FAILURE_EVERY_SECS: u64 = 60;

/// When (seconds since the epoch) a failed accept was last written; 0: never.
static ACCEPT_FAILURE_LOGGED: AtomicU64 = AtomicU64::new(0);

/// Sends pingora's error records to `error_log` (the first server's).
pub(super) fn install(error_log: ErrorLog) -> Result<(), String> {
    log::set_boxed_logger(Box::new(PingoraLog { error_log }))
        .map_err(|e| format!("cannot install the logger for pingora's messages: {e}"))?;
    log::set_max_level(log::LevelFilter::Error);
    Ok(())
}

struct PingoraLog {
    error_log: ErrorLog,
}

impl log::Log for PingoraLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Error && metadata.target().starts_with("pingora")
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let text = record.args().to_string();
        if text.starts_with("No incoming socket transfer") {
            // the listener hand-off at start-up waits a second for its sender: routine
            return;
        }
        let message = if text.starts_with("Accept() failed") {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let last = ACCEPT_FAILURE_LOGGED.load(Ordering::Relaxed);
            let due = last == 0 || now.saturating_sub(last) >= ACCEPT_FAILURE_EVERY_SECS;
            // one writer per minute, even with an accept loop on each thread
            if !due
                || ACCEPT_FAILURE_LOGGED
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                return;
            }
            accept_failure(&text)
        } else {
            format!("pingora: {text}")
        };
        self.error_log.write(Level::Alert, &message, &ErrorContext::default());
    }

    fn flush(&self) {}
}

/// nginx's line for a failed accept, with the errno pingora's text carries.
fn accept_failure(text: &str) -> String {
    let errno = text
        .rsplit_once("os error ")
        .and_then(|(_, rest)| rest.trim_end_matches(|c: char| !c.is_ascii_digit()).parse::<i32>().ok())
        .unwrap_or(0);
    let described = crate::errno::describe_errno(nix::errno::Errno::from_raw(errno));
    let hint = if errno == nix::libc::EMFILE || errno == nix::libc::ENFILE {
        "; new connections wait in the listen queue until open ones close (raise the limit: LimitNOFILE= in the unit, or ulimit -n)"
    } else {
        ""
    };
    format!(
        "accept4() failed {described}{hint}; further failures are not logged until a connection is accepted"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_failures_read_as_nginx_with_a_hint() {
        let line =
            accept_failure("Accept() failed AcceptError context: x cause: Too many open files (os error 24)");
        assert!(
            line.starts_with("accept4() failed (24: Too many open files); new connections wait"),
            "{line}"
        );
        assert!(line.contains("LimitNOFILE="), "{line}");
        assert!(accept_failure("Accept() failed ?").starts_with("accept4() failed (0: "));
    }
}
