//! Listening sockets bound by Portico itself, for when the process gives up root before it
//! serves, or systemd waits for READY (which must mean bound): bound here (IPv6 addresses
//! IPv6-only, as nginx's `listen [::]:80`), then handed to pingora through its own
//! listener hand-off (the mechanism of its graceful upgrade, within one process), so that
//! pingora never binds after the drop. The hand-off socket lives in the process's
//! control directory (`upgrade`), as for a hand-over to a new process.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use nix::sys::socket::{
    bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage,
};
use pingora_core::server::Fds;

/// nginx's default listen backlog on Linux.
const BACKLOG: i32 = 511;

/// Binds and listens on each address; the error says what to do.
pub(super) fn bind_all(addrs: &[SocketAddr]) -> Result<Vec<(SocketAddr, OwnedFd)>, String> {
    addrs
        .iter()
        .map(|&addr| bind_one(addr).map(|fd| (addr, fd)).map_err(|e| super::run::listen_failure(addr, e)))
        .collect()
}

pub(super) fn bind_one(addr: SocketAddr) -> Result<OwnedFd, std::io::Error> {
    let family = if addr.is_ipv6() { AddressFamily::Inet6 } else { AddressFamily::Inet };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if addr.is_ipv6() {
        setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    listen(&fd, Backlog::new(BACKLOG).map_err(std::io::Error::from)?)?;
    Ok(fd)
}

/// Sends the listeners to `path` from a thread of its own (pingora's bootstrap, on the
/// calling thread, receives them), keyed by the address strings the listener
/// configurations use.
pub(super) fn hand_off(
    listeners: Vec<(SocketAddr, OwnedFd)>,
    path: PathBuf,
) -> std::thread::JoinHandle<Result<(), String>> {
    std::thread::spawn(move || {
        let mut fds = Fds::new();
        for (addr, fd) in &listeners {
            fds.add(addr.to_string(), fd.as_raw_fd());
        }
        let shown = path.display().to_string();
        let sent = fds
            .send_to_sock(shown.as_str())
            .map(|_| ())
            .map_err(|e| format!("handing the listeners to pingora failed: {e}"));
        // the receiver holds its own copies now (pingora removes its socket; the control
        // directory stays for the next hand-over)
        drop(listeners);
        sent
    })
}
