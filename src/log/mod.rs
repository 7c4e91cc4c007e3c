//! Per-site logs as nginx writes them: the access log (`combined` or a named `log_format`)
//! and the error log (nginx's line format, with a level threshold). Lines are formatted on
//! the request's task and handed to one writer thread, so a slow or full disk never blocks
//! or fails a request.
//!
//! Owns the `access_log`, `access_log_format`, `error_log`, `error_log_level` and
//! `log_format` keys.

pub mod access;
pub mod config;
pub mod error;
pub mod writer;

use std::fmt;

/// An error-log line a request step wants written; the server adds the request context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub level: Level,
    pub message: String,
    /// `upstream: "uwsgi://..."` in the line, when it is about a backend.
    pub upstream: Option<String>,
}

impl Note {
    pub fn new(level: Level, message: impl Into<String>) -> Note {
        Note { level, message: message.into(), upstream: None }
    }
}

/// nginx's error-log levels, most severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Emerg,
    Alert,
    Crit,
    Error,
    Warn,
    Notice,
    Info,
    Debug,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Emerg => "emerg",
            Level::Alert => "alert",
            Level::Crit => "crit",
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Notice => "notice",
            Level::Info => "info",
            Level::Debug => "debug",
        })
    }
}
