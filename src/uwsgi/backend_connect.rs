//! A connection to one uWSGI server: opening it (a Unix socket or TCP, within
//! `connect_timeout`) and the readiness-based reads and writes the relay makes on it.
//! Not for choosing the server (`pool`, `forward`) nor for what goes over the connection
//! (`send_request`, `relay`).

use std::io;
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use tokio::net::{TcpStream, UnixStream};

use super::config::BackendAddr;
use super::failure::{connect_failure, timed_out, Failure};

/// A connection to one backend. Used through readiness (`try_read`/`try_write` first,
/// waiting only when the socket is not ready), so reading and writing can be watched at
/// once without splitting the stream, and the common case costs no timer at all.
pub(super) enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Conn {
    pub(super) fn try_write(&self, data: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.try_write(data),
            Conn::Tcp(s) => s.try_write(data),
        }
    }

    pub(super) fn try_read_buf(&self, buf: &mut Vec<u8>) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.try_read_buf(buf),
            Conn::Tcp(s) => s.try_read_buf(buf),
        }
    }

    pub(super) async fn readable(&self) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.readable().await,
            Conn::Tcp(s) => s.readable().await,
        }
    }

    pub(super) async fn writable(&self) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.writable().await,
            Conn::Tcp(s) => s.writable().await,
        }
    }

    /// Reads more into `buf`, waiting up to `timeout` for data; `Ok(0)` is end of stream.
    pub(super) async fn read_more(
        &self,
        buf: &mut Vec<u8>,
        timeout: Duration,
    ) -> Result<io::Result<usize>, Elapsed> {
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(8192);
        }
        loop {
            match self.try_read_buf(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return Ok(r),
            }
            match tokio::time::timeout(timeout, self.readable()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Ok(Err(e)),
                Err(_) => return Err(Elapsed),
            }
        }
    }
}

/// A wait that ran out.
pub(super) struct Elapsed;

/// Whether the backend hung up (it may do so once it has answered).
pub(super) fn is_peer_gone(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset)
}

/// Connects to `addr` within `timeout`; the failure says, in nginx's words, what to check.
pub(super) async fn connect(addr: &BackendAddr, timeout: Duration) -> Result<Conn, Failure> {
    let attempt = async {
        match addr {
            BackendAddr::Unix(path) => connect_unix(path).await.map(Conn::Unix),
            BackendAddr::Tcp(sa) => TcpStream::connect(sa).await.map(|s| {
                let _ = s.set_nodelay(true);
                Conn::Tcp(s)
            }),
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(connect_failure(addr, &e)),
        Err(_) => Err(timed_out(&format!("connecting to upstream {addr}"))),
    }
}

/// Connects a Unix socket. A local connect is done (or refused) at once: the socket is
/// registered with tokio only then, so no readiness wait and no SO_ERROR check follow
/// (tokio's own connect costs an epoll_wait and a getsockopt per request).
async fn connect_unix(path: &Path) -> io::Result<UnixStream> {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = UnixAddr::new(path)?;
    let pending = match connect(fd.as_raw_fd(), &addr) {
        Ok(()) => false,
        Err(Errno::EINPROGRESS) => true,
        Err(e) => return Err(e.into()),
    };
    let stream = UnixStream::from_std(std::os::unix::net::UnixStream::from(fd))?;
    if pending {
        stream.writable().await?;
        if let Some(e) = stream.take_error()? {
            return Err(e);
        }
    }
    Ok(stream)
}
