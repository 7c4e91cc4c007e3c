//! Portico's HTTP/1.1 wire, built like the uwsgi codec: pure parts — the request-head
//! parser ([`request_head`]), body framing ([`body`]), the chunked decoder ([`chunked`],
//! for a client's request body and an app's own chunked response), the response-head
//! encoder ([`response_head`]) — and a thin shell: [`connection`] owns the socket, the
//! buffers (only while a request is in flight), the deadlines, keep-alive and
//! pipelining; [`exchange`] is one request's body in and response out, written by `send`
//! (MSG_MORE, sendfile, or the buffered path). [`settings`] holds its keys. It knows
//! nothing of routing, files or uWSGI; the server's request steps receive a parsed
//! [`request_head::Request`] and an [`exchange::Exchange`].

pub mod body;
pub mod chunked;
#[cfg(feature = "server")]
pub mod connection;
#[cfg(feature = "server")]
pub mod exchange;
pub mod request_head;
pub mod response_head;
#[cfg(feature = "server")]
mod send;
pub mod settings;
