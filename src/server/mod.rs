//! The running server: pingora's lifecycle and listeners around our app (one connection's
//! life, one request's steps), the signals nginx operators expect, and start-up checks
//! that fail fast with a clear message instead of leaving a process that serves nothing.
//!
//! Everything here needs pingora and tokio: the module is behind the `server` feature.

mod app;
mod compress_reply;
mod content;
mod explain;
mod internal_redirects;
mod listeners;
mod pid_file;
mod pingora_log;
mod privileges;
mod proxy_header;
mod recycled_box;
mod reload;
mod request_checks;
mod request_log;
mod request_state;
mod request_steps;
mod request_vars;
mod respond;
mod run;
mod tls_accept;
mod upgrade;
mod uwsgi_step;

pub use explain::{explain, Question};
pub use run::run;
