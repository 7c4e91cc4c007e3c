//! Forwarding to uWSGI over the binary uwsgi protocol, as nginx's `uwsgi_pass` does.
//!
//! Pure: `codec` turns a request into the vars block and parses the response head the app
//! sends; `config` owns `uwsgi_pass`, `uwsgi_param` and `[upstream.NAME]`; `pool` chooses
//! a backend and keeps its passive health; `client_head` frames the app's head for the
//! client. The socket side: `forward` runs the steps (pick, connect, exchange, retry) of
//! `request_body` (the client's body made ready), `backend_connect`, `send_request` and
//! `relay` (the bytes between the client, the codec and the backend), with `failure`
//! saying in nginx's words what went wrong.

#[cfg(feature = "server")]
mod backend_connect;
#[cfg(feature = "server")]
mod client_head;
pub mod codec;
pub mod config;
#[cfg(feature = "server")]
mod failure;
#[cfg(feature = "server")]
pub mod forward;
pub mod pool;
#[cfg(feature = "server")]
mod relay;
#[cfg(feature = "server")]
mod request_body;
#[cfg(feature = "server")]
mod send_request;
