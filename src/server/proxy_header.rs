//! The PROXY protocol header of a connection to a `proxy_protocol` port, read before
//! anything else (before the TLS handshake on an `ssl` port): the bytes are parsed by
//! `proxy_protocol`, what came after the header is put back into the stream for TLS or
//! HTTP, and a missing or broken header closes the connection.

use std::net::SocketAddr;

use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::Stream;
use tokio::io::AsyncReadExt;
use tokio::time::{timeout_at, Instant};

use crate::errno::describe;
use crate::log::Level;
use crate::proxy_protocol::{parse, V2_MAX};

/// Why no header was read: the level and the error-log line's text.
pub(super) type Refused = (Level, String);

/// Reads the header within `deadline`: the stream (positioned after the header) and the
/// client's address the balancer gave (`None` for `UNKNOWN` and `LOCAL`).
pub(super) async fn read(stream: Stream, deadline: Instant) -> Result<(Stream, Option<SocketAddr>), Refused> {
    let Ok(mut l4) = stream.into_any().downcast::<L4Stream>() else {
        return Err((Level::Alert, "the PROXY protocol needs a TCP socket".into()));
    };
    let mut buf = Vec::with_capacity(256);
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.len().min(V2_MAX));
        }
        let read = timeout_at(deadline, l4.read_buf(&mut buf)).await;
        match read {
            Err(_) => {
                return Err((
                    Level::Info,
                    "client timed out (110: Connection timed out) while reading PROXY protocol".into(),
                ))
            }
            Ok(Err(e)) => {
                return Err((
                    Level::Info,
                    format!("recv() failed {} while reading PROXY protocol", describe(&e)),
                ))
            }
            Ok(Ok(0)) => {
                return Err((Level::Info, "client closed connection while reading PROXY protocol".into()))
            }
            Ok(Ok(_)) => {}
        }
        match parse(&buf) {
            Ok(None) => continue,
            Ok(Some(h)) => {
                l4.rewind(&buf[h.len..]);
                return Ok((l4, h.source));
            }
            Err(e) => {
                let shown = String::from_utf8_lossy(&buf[..buf.len().min(107)]).escape_debug().to_string();
                return Err((Level::Error, format!("{e}: \"{shown}\" while reading PROXY protocol")));
            }
        }
    }
}
