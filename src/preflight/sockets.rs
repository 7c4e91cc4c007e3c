//! The upstreams as the server will meet them: each Unix socket exists, is a socket, and
//! may be connected to by the user Portico serves as (write on the socket, search on every
//! directory above it); something listens; and it answers uWSGI's ping (a packet with
//! modifier1 100 is answered with one). TCP servers: something accepts.

use std::io::{Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::uwsgi::config::BackendAddr;

use crate::permissions::{need_words, reach, Blocked, Who, Why, WRITE};

/// How long a connect or the ping's answer may take.
const PATIENCE: Duration = Duration::from_secs(2);

/// Why a request sent to `addr` would fail now, in a sentence (after "would return 502:").
pub fn problem(addr: &BackendAddr, who: &Who) -> Option<String> {
    match addr {
        BackendAddr::Unix(path) => unix_problem(path, who),
        BackendAddr::Tcp(sa) => match std::net::TcpStream::connect_timeout(sa, PATIENCE) {
            Ok(s) => ping(s).err(),
            Err(e) => Some(format!("connecting to {sa} fails ({e}): is uWSGI running with `socket = {sa}`?")),
        },
    }
}

fn unix_problem(path: &Path, who: &Who) -> Option<String> {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(_) => {
            return Some(match reach(path, who, WRITE) {
                Err(Blocked { at, why: Why::Denied { .. } }) if at != path => {
                    format!("{shown} is behind {}, which {} may not search", at.display(), who.name)
                }
                _ => format!("{shown} does not exist: is uWSGI running, with `socket = {shown}`?"),
            });
        }
    };
    if !meta.file_type().is_socket() {
        return Some(format!("{shown} is not a socket (uWSGI's `socket` is what uwsgi_pass names)"));
    }
    if let Err(b) = reach(path, who, WRITE) {
        if let Why::Denied { need, mode, owner } = b.why {
            let what =
                if b.at == path { shown.to_string() } else { format!("{} (above {shown})", b.at.display()) };
            return Some(format!(
                "{what} is {mode} {owner} and portico runs as {}, which needs {} on it; \
                 set uWSGI's chmod-socket/chown-socket (or uid/gid) to match `user`, or `user` to match",
                who.name,
                need_words(need)
            ));
        }
    }
    match UnixStream::connect(path) {
        Ok(s) => ping(s).err(),
        Err(e) if e.raw_os_error() == Some(nix::libc::ECONNREFUSED) => {
            Some(format!("nothing listens on {shown}: uWSGI stopped and left its socket file behind"))
        }
        Err(e) => Some(format!("connecting to {shown} fails {}", crate::errno::describe(&e))),
    }
}

/// uWSGI's ping: `100 0 0 0` is answered with a packet of modifier1 100.
fn ping<S: Read + Write + SetTimeouts>(mut s: S) -> Result<(), String> {
    s.timeouts(PATIENCE);
    let mut answer = [0u8; 4];
    match s.write_all(&[100, 0, 0, 0]).and_then(|()| s.read_exact(&mut answer)) {
        Ok(()) if answer[0] == 100 => Ok(()),
        _ => Err("it accepts connections but does not answer uWSGI's ping: is it uWSGI with `socket =` \
                  (the uwsgi protocol), not `http-socket =`?"
            .into()),
    }
}

trait SetTimeouts {
    fn timeouts(&self, d: Duration);
}

impl SetTimeouts for UnixStream {
    fn timeouts(&self, d: Duration) {
        let _ = self.set_read_timeout(Some(d));
        let _ = self.set_write_timeout(Some(d));
    }
}

impl SetTimeouts for std::net::TcpStream {
    fn timeouts(&self, d: Duration) {
        let _ = self.set_read_timeout(Some(d));
        let _ = self.set_write_timeout(Some(d));
    }
}
