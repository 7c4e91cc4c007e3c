//! Forwarding to uWSGI over the binary uwsgi protocol, as nginx's `uwsgi_pass` does.
//!
//! `codec` turns requests into packets and uWSGI's answers into heads and bodies (pure);
//! `config` owns `uwsgi_pass`, `uwsgi_param` and `[upstream.NAME]`; `pool` chooses a
//! backend and keeps its passive health (no I/O); `forward` moves the bytes between the
//! client, the codec and the backend's socket.

pub mod codec;
pub mod config;
#[cfg(feature = "server")]
pub mod forward;
pub mod pool;
