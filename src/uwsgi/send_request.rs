//! Sending the request to uWSGI: the encoded packet, then the body (from memory, from the
//! temporary file, or streamed from the client after `100 Continue`), while watching for
//! uWSGI to answer or hang up before it has taken it all. Not for reading the answer:
//! `relay` does that once this is done.

use std::io;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use crate::http1::exchange::{BodyError as ClientBodyError, Exchange as Client, SendError};
use crate::log::Level;

use super::backend_connect::{is_peer_gone, Conn};
use super::config::UpstreamConfig;
use super::failure::{client_gone, io_failure, timed_out, Failure};
use super::forward::Exchange;
use super::relay::READ_CHUNK;
use super::request_body::RequestBody;

/// What nginx's log lines say the relay was doing while the request went out.
const SENDING: &str = "sending request to upstream";

/// How sending the request ended.
pub(super) enum Sent {
    /// Packet and body written.
    All,
    /// uWSGI answered (or hung up) before taking the whole body.
    Early,
}

/// Writes the packet and the body; what uWSGI says meanwhile is kept in `resp`.
pub(super) async fn send_request(
    client: &mut Client<'_>,
    conn: &Conn,
    resp: &mut Vec<u8>,
    exchange: &Exchange<'_>,
    cfg: &UpstreamConfig,
) -> Result<Sent, Failure> {
    if !write_watching(conn, exchange.packet, resp, cfg.send_timeout).await? {
        return Ok(Sent::Early);
    }
    match &exchange.body {
        RequestBody::None => {}
        RequestBody::Memory(b) => {
            if !write_watching(conn, b, resp, cfg.send_timeout).await? {
                return Ok(Sent::Early);
            }
        }
        RequestBody::File { file, len } => {
            let mut pos = 0u64;
            let mut buf = vec![0u8; READ_CHUNK];
            while pos < *len {
                let want = usize::try_from(len - pos).unwrap_or(READ_CHUNK).min(READ_CHUNK);
                let n = file.read_at(&mut buf[..want], pos).map_err(|e| Failure {
                    status: 500,
                    level: Level::Crit,
                    message: format!("reading the buffered request body back failed: {e}"),
                    health: false,
                })?;
                if n == 0 {
                    break;
                }
                if !write_watching(conn, &buf[..n], resp, cfg.send_timeout).await? {
                    return Ok(Sent::Early);
                }
                pos += n as u64;
            }
        }
        RequestBody::Streaming(_) => {
            // before the loop: the read below may be cancelled, a half-written 100 may not
            if let Err(e) = client.send_continue().await {
                return Err(client_gone(&ClientBodyError::Closed(match e {
                    SendError::Io(e) => Some(e),
                    SendError::TimedOut | SendError::FileTruncated { .. } => None,
                })));
            }
            loop {
                let chunk = tokio::select! {
                    biased;
                    r = conn.readable() => {
                        // uWSGI talks (or hangs up) before it has the whole body
                        if spoke_early(conn, resp, r)? {
                            return Ok(Sent::Early);
                        }
                        continue;
                    }
                    c = client.read_body() => c,
                };
                match chunk {
                    Ok(Some(bytes)) => {
                        if !write_watching(conn, bytes, resp, cfg.send_timeout).await? {
                            return Ok(Sent::Early);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return Err(client_gone(&e)),
                }
            }
        }
    }
    Ok(Sent::All)
}

/// Writes `data` while watching for uWSGI to answer early. `Ok(false)`: it answered or
/// hung up first (the rest of the body is not wanted).
async fn write_watching(
    conn: &Conn,
    mut data: &[u8],
    resp: &mut Vec<u8>,
    timeout: Duration,
) -> Result<bool, Failure> {
    loop {
        match conn.try_write(data) {
            Ok(n) => {
                data = &data[n..];
                if data.is_empty() {
                    return Ok(true);
                }
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if is_peer_gone(&e) => return Ok(false),
            Err(e) => return Err(io_failure("writev()", SENDING, &e)),
        }
        tokio::select! {
            r = conn.writable() => {
                if let Err(e) = r {
                    return Err(io_failure("writev()", SENDING, &e));
                }
            }
            r = conn.readable() => {
                if spoke_early(conn, resp, r)? {
                    return Ok(false);
                }
            }
            _ = tokio::time::sleep(timeout) => return Err(timed_out(SENDING)),
        }
    }
}

/// After the backend's socket turned readable while the request was still going out:
/// whether uWSGI answered or hung up (its bytes are kept in `resp`), or the wake-up was
/// spurious.
fn spoke_early(conn: &Conn, resp: &mut Vec<u8>, ready: io::Result<()>) -> Result<bool, Failure> {
    ready.map_err(|e| io_failure("recv()", SENDING, &e))?;
    match conn.try_read_buf(resp) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Ok(_) => Ok(true),
        Err(e) if is_peer_gone(&e) => Ok(true),
        Err(e) => Err(io_failure("recv()", SENDING, &e)),
    }
}
