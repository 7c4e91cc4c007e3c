//! HTTP/2 (RFC 9113, the h2 crate's framing and HPACK) served through the HTTP/1.1
//! request steps: each stream is a byte stream ([`stream`]) that reads as an HTTP/1.1
//! request ([`request_head`]: the header block written as a head, the same parser and
//! rules) and takes the HTTP/1.1 response the steps write ([`response_reader`]: back to
//! a status, fields and DATA). [`connection`] runs the connection: limits, timeouts,
//! GOAWAY; [`flood`] bounds what a client's control frames may cost.

#[cfg(feature = "server")]
pub mod connection;
pub mod flood;
pub mod request_head;
pub mod response_reader;
#[cfg(feature = "server")]
pub mod stream;
