//! The TLS handshake of a connection to an `ssl` port: the ClientHello is read first and
//! the server chosen from its SNI exactly as a Host header picks one (the address's
//! default server when SNI is missing or names no server), then the handshake goes on
//! with that server's certificate and protocols. All of it within the default server's
//! `client_header_timeout`, as nginx bounds its handshake. A client speaking plain HTTP
//! to the port is told so in plain HTTP, as nginx does.

use std::net::SocketAddr;

use pingora_core::protocols::Stream;
use tokio::time::{timeout_at, Instant};
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

use crate::errno::describe;
use crate::routing::servers::normalize_host;

use super::app::Runtime;

/// How the handshake went.
pub(super) enum Handshake {
    /// (boxed: the TLS state is large, and a connection holds only a pointer to it)
    Done(Box<TlsStream<Stream>>),
    /// The client sent something other than a TLS record (a plain HTTP request): it gets
    /// nginx's 400, in plain HTTP.
    PlainHttp(Stream),
    /// The error-log line's text.
    Failed(String),
}

/// TLS records of a handshake start with this content type.
const HANDSHAKE_RECORD: u8 = 0x16;

/// nginx's answer to plain HTTP on an HTTPS port, whole.
pub(super) const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\nServer: portico\r\nContent-Type: text/html\r\nContent-Length: 250\r\nConnection: close\r\n\r\n<html>\r\n<head><title>400 The plain HTTP request was sent to HTTPS port</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<center>The plain HTTP request was sent to HTTPS port</center>\r\n<hr><center>portico</center>\r\n</body>\r\n</html>\r\n";

fn timed_out() -> String {
    "client timed out (110: Connection timed out) while SSL handshaking".into()
}

fn failed(e: std::io::Error) -> String {
    format!("SSL handshake failed {} while SSL handshaking", describe(&e))
}

/// Runs the handshake on `stream`.
pub(super) async fn accept(
    mut stream: Stream,
    rt: &Runtime,
    local: SocketAddr,
    deadline: Instant,
) -> Handshake {
    // the first byte tells a TLS client from a plain HTTP one (it stays in the stream)
    let mut first = [0u8; 1];
    match timeout_at(deadline, stream.try_peek(&mut first)).await {
        Err(_) => return Handshake::Failed(timed_out()),
        Ok(Err(e)) => return Handshake::Failed(failed(e)),
        Ok(Ok(true)) if first[0] != HANDSHAKE_RECORD => return Handshake::PlainHttp(stream),
        Ok(Ok(_)) => {}
    }
    let lazy = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
    let start = match timeout_at(deadline, lazy).await {
        Err(_) => return Handshake::Failed(timed_out()),
        Ok(Err(e)) => return Handshake::Failed(failed(e)),
        Ok(Ok(start)) => start,
    };
    let site = {
        let hello = start.client_hello();
        let sni = hello.server_name().and_then(|n| normalize_host(n.as_bytes()).ok());
        rt.servers.pick(local, sni.as_deref())
    };
    let default = rt.servers.default_for(local);
    // (every server on an `ssl` port has a certificate: the configuration requires it)
    let Some(config) = rt.sites[site].site.tls.clone().or_else(|| rt.sites[default].site.tls.clone()) else {
        return Handshake::Failed(format!("no ssl_certificate for {local} while SSL handshaking"));
    };
    match timeout_at(deadline, start.into_stream(config)).await {
        Err(_) => Handshake::Failed(timed_out()),
        Ok(Err(e)) => Handshake::Failed(failed(e)),
        Ok(Ok(tls)) => Handshake::Done(Box::new(tls)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_plain_http_answer_has_its_length() {
        let text = std::str::from_utf8(super::PLAIN_HTTP_ANSWER).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())), "{}", body.len());
    }
}
