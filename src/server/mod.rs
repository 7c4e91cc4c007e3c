//! The running server: pingora's lifecycle and listeners around our app (one connection's
//! life, one request's steps), the signals nginx operators expect, and start-up checks
//! that fail fast with a clear message instead of leaving a process that serves nothing.
//!
//! Everything here needs pingora and tokio: it is behind the `server` feature.

#[cfg(feature = "server")]
mod app;
#[cfg(feature = "server")]
mod content;
#[cfg(feature = "server")]
mod explain;
#[cfg(feature = "server")]
mod internal_redirects;
#[cfg(feature = "server")]
mod listeners;
#[cfg(feature = "server")]
mod pid_file;
#[cfg(feature = "server")]
mod pingora_log;
#[cfg(feature = "server")]
mod privileges;
#[cfg(feature = "server")]
mod recycled_box;
#[cfg(feature = "server")]
mod request_checks;
#[cfg(feature = "server")]
mod request_log;
#[cfg(feature = "server")]
mod request_state;
#[cfg(feature = "server")]
mod request_steps;
#[cfg(feature = "server")]
mod request_vars;
#[cfg(feature = "server")]
mod respond;
#[cfg(feature = "server")]
mod run;
#[cfg(feature = "server")]
mod uwsgi_step;

#[cfg(feature = "server")]
pub use explain::{explain, Question};
#[cfg(feature = "server")]
pub use run::run;
