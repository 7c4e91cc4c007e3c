//! The running server: pingora's lifecycle and listeners around our app (one request's
//! steps), the signals nginx operators expect, and start-up checks that fail fast with a
//! clear message instead of leaving a process that serves nothing.
//!
//! Everything here needs pingora and tokio: it is behind the `server` feature.

#[cfg(feature = "server")]
mod app;
#[cfg(feature = "server")]
mod recycled_box;
#[cfg(feature = "server")]
mod request;
#[cfg(feature = "server")]
mod run;
#[cfg(feature = "server")]
mod send_reply;

#[cfg(feature = "server")]
pub use run::run;
