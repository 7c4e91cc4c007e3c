//! Start-up and the process lifecycle: checks that fail fast, pingora's server around
//! the app, and the signals.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::listeners::{L4BufferSettings, ListenerConfig, TcpSocketOptions};
use pingora_core::server::configuration::{Opt, ServerConf};
use pingora_core::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora_core::services::listening::Service;
use tokio::signal::unix::{signal, SignalKind};

use crate::config_file::Config;
use crate::log::access::AccessLog;
use crate::log::error::ErrorLog;
use crate::log::writer::{LogControl, LogWriter};
use crate::static_files::open::openat2_available;
use crate::uwsgi::forward::Upstream;

use super::app::{App, SiteRuntime};
use super::listeners;
use super::pid_file::PidFile;
use super::privileges::{self, Plan};

/// Serves `config` until a signal stops it. Errors are start-up failures, worded for the
/// operator.
pub fn run(config: Config, config_path: &str) -> Result<(), String> {
    ignore_sighup_until_handled()?;
    openat2_available()?;
    let (plan, warning) =
        privileges::plan(config.global.user.as_deref(), config.global.group.as_deref(), config_path)?;
    if let Some(w) = warning {
        eprintln!("portico: warning: {w}");
    }
    let addrs = config.servers.bind_addresses();
    // the listeners are bound here when root is given up (before the drop) or systemd
    // waits for READY (which must mean bound); otherwise pingora binds them as it starts
    let under_systemd = std::env::var_os("NOTIFY_SOCKET").is_some();
    let bound = match &plan {
        Plan::Stay if !under_systemd => {
            check_listen(&addrs)?;
            None
        }
        _ => Some(listeners::bind_all(&addrs)?),
    };

    let mut targets = Vec::new();
    for site in &config.sites {
        if let Some((t, _)) = &site.logs.access {
            targets.push(t.clone());
        }
        targets.push(site.logs.error.clone());
    }
    let logs = LogWriter::start(&targets)?;
    if let Plan::Become(id) = &plan {
        privileges::give_logs(&targets, id)?;
    }
    if let Some(first) = config.sites.first() {
        super::pingora_log::install(ErrorLog::new(logs.sink(&first.logs.error), first.logs.error_level))?;
    }
    let sites = config
        .sites
        .into_iter()
        .map(|site| SiteRuntime {
            access_log: site.logs.access.as_ref().map(|(t, f)| AccessLog::new(logs.sink(t), f.clone())),
            error_log: ErrorLog::new(logs.sink(&site.logs.error), site.logs.error_level),
            site,
        })
        .collect();
    let upstreams = config.upstreams.into_iter().map(Upstream::new).collect();
    let app = App::new(sites, config.servers, upstreams);

    let handoff = match bound {
        Some(listeners) => {
            let path = listeners::handoff_path()?;
            Some((path.clone(), listeners::hand_off(listeners, path)))
        }
        None => None,
    };
    let mut conf = ServerConf {
        threads: config.global.worker_threads,
        grace_period_seconds: Some(config.global.shutdown_timeout.as_secs()),
        graceful_shutdown_timeout_seconds: Some(1),
        // One single-threaded runtime per worker thread, each connection staying on the
        // thread that accepted it (nginx's worker model): with work stealing, 1024 busy
        // keep-alive connections were served unevenly (p99 20x nginx's, see BENCHMARKS.md).
        work_stealing: false,
        ..ServerConf::default()
    };
    let opt = handoff.as_ref().map(|(path, _)| {
        conf.upgrade_sock = path.display().to_string();
        Opt { upgrade: true, ..Opt::default() }
    });
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();
    if let Some((path, sender)) = handoff {
        sender.join().map_err(|_| "the listener hand-off thread failed".to_string())??;
        if let Some(dir) = path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    let owner = match &plan {
        Plan::Become(id) => Some(id),
        Plan::Stay => None,
    };
    let pid_file = match &config.global.pid_file {
        Some(path) => Some(Arc::new(PidFile::write(path, owner)?)),
        None => None,
    };
    if let Some(id) = owner {
        privileges::become_user(id)?;
    }
    let mut service = Service::new("portico".to_string(), app);
    for addr in &addrs {
        let mut options = TcpSocketOptions::default();
        if addr.is_ipv6() {
            // nginx's `listen [::]:80` is IPv6-only unless told otherwise
            options.ipv6_only = Some(true);
        }
        // No buffers in front of the socket: requests are parsed into buffers that exist
        // only while a request is in flight, and raw writes (sendfile, MSG_MORE) must
        // never be overtaken by bytes waiting in a write buffer.
        let listener = ListenerConfig::tcp(addr.to_string())
            .tcp_socket_options(options)
            .l4_buffer(L4BufferSettings::unbuffered());
        service.add_listener(listener);
    }
    server.add_service(service);
    let shown: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
    eprintln!(
        "portico {}: serving {config_path} on {} with {} worker thread(s); stop with SIGTERM (graceful) or SIGINT",
        env!("CARGO_PKG_VERSION"),
        shown.join(", "),
        config.global.worker_threads
    );
    server.run(RunArgs {
        shutdown_signal: Box::new(Signals { logs: logs.control(), pid_file: pid_file.clone() }),
    });
    if let Some(p) = &pid_file {
        p.remove();
    }
    logs.stop();
    Ok(())
}

/// Binds each address once before pingora does: pingora would retry a busy port for 30 s
/// and then leave a process with no listener.
fn check_listen(addrs: &[SocketAddr]) -> Result<(), String> {
    for &addr in addrs {
        TcpListener::bind(addr).map_err(|e| listen_failure(addr, e))?;
    }
    Ok(())
}

/// Why `addr` cannot be listened on, and what to do.
pub(super) fn listen_failure(addr: SocketAddr, e: std::io::Error) -> String {
    let hint = match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "another process is listening there (is nginx still running? `ss -ltnp 'sport = :{}'` shows who)",
            addr.port()
        ),
        std::io::ErrorKind::PermissionDenied => format!(
            "port {} is below 1024: start Portico as root (it then serves as `user`) or give it CAP_NET_BIND_SERVICE",
            addr.port()
        ),
        std::io::ErrorKind::AddrNotAvailable => "this machine has no such address; check `listen`".to_string(),
        _ => "check `listen` in the configuration".to_string(),
    };
    format!("cannot listen on {addr}: {e}; {hint}")
}

/// SIGHUP's default action kills the process; until the signal watcher is installed it is
/// ignored, and from then on it is logged and ignored.
fn ignore_sighup_until_handled() -> Result<(), String> {
    use nix::sys::signal::{signal as set_handler, SigHandler, Signal};
    // SAFETY: SIG_IGN installs no Rust code as a handler
    unsafe { set_handler(Signal::SIGHUP, SigHandler::SigIgn) }
        .map(|_| ())
        .map_err(|e| format!("cannot ignore SIGHUP {}", crate::errno::describe_errno(e)))
}

/// nginx's signal meanings on top of pingora's lifecycle: TERM and QUIT stop gracefully
/// (waiting up to `shutdown_timeout`), INT stops at once (logs written first), USR1 reopens
/// the log files, HUP is acknowledged and ignored (configuration reload does not exist
/// yet).
struct Signals {
    logs: LogControl,
    pid_file: Option<Arc<PidFile>>,
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let install = |kind| {
            signal(kind).unwrap_or_else(|e| {
                // Without handlers the server could not be stopped cleanly; refuse to run.
                eprintln!("portico: cannot install signal handlers ({e}); stopping");
                std::process::exit(1)
            })
        };
        let mut term = install(SignalKind::terminate());
        let mut quit = install(SignalKind::quit());
        let mut int = install(SignalKind::interrupt());
        let mut hup = install(SignalKind::hangup());
        let mut usr1 = install(SignalKind::user_defined1());
        // systemd (Type=notify): the listeners are bound (see `run`: under systemd they are
        // bound before pingora starts) and, from here on, a stop signal stops gracefully
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        let stopping = || {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
        };
        loop {
            tokio::select! {
                _ = term.recv() => {
                    stopping();
                    return ShutdownSignal::GracefulTerminate;
                }
                _ = quit.recv() => {
                    stopping();
                    return ShutdownSignal::GracefulTerminate;
                }
                _ = int.recv() => {
                    stopping();
                    // nginx's fast shutdown: the connections are dropped anyway, so exit
                    // here, after the logs are written. (pingora's own fast path can spin
                    // forever when its single-threaded runtimes stop in the wrong order.)
                    self.logs.flush_and_stop(Duration::from_secs(2));
                    if let Some(p) = &self.pid_file {
                        p.remove();
                    }
                    std::process::exit(0);
                }
                _ = hup.recv() => eprintln!(
                    "portico: SIGHUP received; configuration reload is not supported yet, still serving the configuration loaded at start"
                ),
                _ = usr1.recv() => self.logs.reopen(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_port_is_reported_with_a_hint() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let e = check_listen(&[addr]).unwrap_err();
        assert!(e.contains(&addr.to_string()), "{e}");
        assert!(e.contains("another process is listening there"), "{e}");
    }
}
