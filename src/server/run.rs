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

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;

use crate::config_file::global::Global;
use crate::config_file::Config;
use crate::log::error::ErrorLog;
use crate::log::writer::{LogControl, LogWriter};
use crate::log::Level;
use crate::static_files::open::openat2_available;

use super::app::{App, Current};
use super::listeners;
use super::pid_file::PidFile;
use super::privileges::{self, Plan};
use super::reload::{self, Outcome, Reloader, Started};
use super::upgrade::{self, ControlDir, Successor};

/// Serves `config` until a signal stops it. Errors are start-up failures, worded for the
/// operator. A process started by an old one to take over (`upgrade`) tells it how its
/// start went before it receives the listening sockets.
pub fn run(config: Config, config_path: &str) -> Result<(), String> {
    let successor = Successor::from_env();
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program's path: {e}"))?;
    let prepared = prepare(config, config_path, successor.as_ref());
    let prepared = match (prepared, successor) {
        (Ok(p), Some(s)) => {
            s.ready();
            p
        }
        (Ok(p), None) => p,
        (Err(e), Some(s)) => {
            s.failed(&e);
            return Err(e);
        }
        (Err(e), None) => return Err(e),
    };
    serve(prepared, exe)
}

/// Everything before the listening sockets: privileges, logs, the runtime, pingora's
/// server configured (and, when Portico binds, the sockets bound).
struct Prepared {
    config_path: PathBuf,
    plan: Plan,
    addrs: Vec<SocketAddr>,
    bound: Option<Vec<(SocketAddr, OwnedFd)>>,
    logs: LogWriter,
    current: Current,
    control_dir: ControlDir,
    pid_file: Option<Arc<PidFile>>,
    global: Global,
    from_old: bool,
}

fn prepare(config: Config, config_path: &str, successor: Option<&Successor>) -> Result<Prepared, String> {
    ignore_sighup_until_handled()?;
    openat2_available()?;
    let (plan, warning) =
        privileges::plan(config.global.user.as_deref(), config.global.group.as_deref(), config_path)?;
    if let Some(w) = warning {
        if successor.is_some() && !nix::unistd::Uid::effective().is_root() {
            // the old process gave up root: this one cannot become another user
            return Err(format!("{w}: `user`/`group` changed, which takes a restart"));
        }
        eprintln!("portico: warning: {w}");
    }
    let addrs = config.servers.bind_addresses();
    if addrs.len() > upgrade::MAX_LISTENERS {
        return Err(format!(
            "{} listen addresses: at most {} can be handed from process to process; listen on 0.0.0.0:PORT to cover several addresses of a port",
            addrs.len(),
            upgrade::MAX_LISTENERS
        ));
    }
    if let Some(s) = successor {
        // a new address is bound by pingora after the hand-over: found unbindable now,
        // the old process keeps serving
        for &addr in addrs.iter().filter(|a| !s.inherited.contains(a)) {
            listeners::bind_one(addr).map_err(|e| listen_failure(addr, e))?;
        }
    }
    // the listeners are bound here when root is given up (before the drop) or systemd
    // waits for READY (which must mean bound); otherwise pingora binds them as it starts.
    // A process taking over receives them from the old one.
    let under_systemd = std::env::var_os("NOTIFY_SOCKET").is_some();
    let bound = match &plan {
        _ if successor.is_some() => None,
        Plan::Stay if !under_systemd => {
            check_listen(&addrs)?;
            None
        }
        _ => Some(listeners::bind_all(&addrs)?),
    };
    let owner = match &plan {
        Plan::Become(id) => Some(id),
        Plan::Stay => None,
    };
    let control_dir = ControlDir::new(successor, owner)?;
    let pid_file = match &config.global.pid_file {
        Some(path) => Some(Arc::new(PidFile::create(path, owner)?)),
        None => None,
    };

    let targets = reload::log_targets(&config.sites);
    let logs = LogWriter::start(&targets)?;
    if let Some(id) = owner {
        privileges::give_logs(&targets, id)?;
    }
    if let Some(first) = config.sites.first() {
        super::pingora_log::install(ErrorLog::new(logs.sink(&first.logs.error), first.logs.error_level))?;
    }
    let Config { global, sites, servers, upstreams, tls_ports, proxy_ports } = config;
    let (runtime, _) = reload::build(sites, servers, upstreams, (tls_ports, proxy_ports), &logs.control())?;
    Ok(Prepared {
        config_path: PathBuf::from(config_path),
        plan,
        addrs,
        bound,
        logs,
        current: Arc::new(ArcSwap::from_pointee(runtime)),
        control_dir,
        pid_file,
        global,
        from_old: successor.is_some(),
    })
}

fn serve(p: Prepared, exe: PathBuf) -> Result<(), String> {
    let sock = p.control_dir.sock();
    let handoff = p.bound.map(|listeners| listeners::hand_off(listeners, sock.clone()));
    let conf = ServerConf {
        threads: p.global.worker_threads,
        grace_period_seconds: Some(p.global.shutdown_timeout.as_secs()),
        graceful_shutdown_timeout_seconds: Some(1),
        // One single-threaded runtime per worker thread, each connection staying on the
        // thread that accepted it (nginx's worker model): with work stealing, 1024 busy
        // keep-alive connections were served unevenly (p99 20x nginx's, see BENCHMARKS.md).
        work_stealing: false,
        // where the listening sockets arrive: from our own binding thread, or from the
        // process this one takes over from; and where they go at the next hand-over
        upgrade_sock: sock.display().to_string(),
        ..ServerConf::default()
    };
    let receives = handoff.is_some() || p.from_old;
    let opt = receives.then(|| Opt { upgrade: true, ..Opt::default() });
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();
    if let Some(sender) = handoff {
        sender.join().map_err(|_| "the listener hand-off thread failed".to_string())??;
    }
    let owner = match &p.plan {
        Plan::Become(id) => Some(id),
        Plan::Stay => None,
    };
    let pid_file = p.pid_file.clone();
    if let Some(id) = owner {
        privileges::become_user(id)?;
    }
    let mut service = Service::new("portico".to_string(), App::new(p.current.clone()));
    for addr in &p.addrs {
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
    let shown: Vec<String> = p.addrs.iter().map(SocketAddr::to_string).collect();
    let shown_path = p.config_path.display().to_string();
    eprintln!(
        "portico {}: serving {shown_path} on {} with {} worker thread(s); stop with SIGTERM (graceful) or SIGINT, reload with SIGHUP",
        env!("CARGO_PKG_VERSION"),
        shown.join(", "),
        p.global.worker_threads
    );
    let handed_over = Arc::new(AtomicBool::new(false));
    let signals = Signals {
        logs: p.logs.control(),
        pid_file: pid_file.clone(),
        reloader: Reloader {
            config_path: p.config_path.clone(),
            current: p.current.clone(),
            logs: p.logs.control(),
            started: Started { addrs: p.addrs.clone(), global: p.global.clone() },
        },
        exe,
        control_dir: p.control_dir.clone(),
        handed_over: handed_over.clone(),
    };
    server.run(RunArgs { shutdown_signal: Box::new(signals) });
    if let Some(pf) = &pid_file {
        pf.remove();
    }
    // the line of processes ends here unless a new one took over
    if !handed_over.load(Ordering::Acquire) {
        p.control_dir.remove();
    }
    p.logs.stop();
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

/// SIGHUP's default action kills the process: it is ignored until the signal watcher is
/// installed.
fn ignore_sighup_until_handled() -> Result<(), String> {
    use nix::sys::signal::{signal as set_handler, SigHandler, Signal};
    // SAFETY: SIG_IGN installs no Rust code as a handler
    unsafe { set_handler(Signal::SIGHUP, SigHandler::SigIgn) }
        .map(|_| ())
        .map_err(|e| format!("cannot ignore SIGHUP {}", crate::errno::describe_errno(e)))
}

/// nginx's signal meanings on top of pingora's lifecycle: TERM and QUIT stop gracefully
/// (waiting up to `shutdown_timeout`), INT stops at once (logs written first), USR1 reopens
/// the log files, HUP reloads the configuration, USR2 hands the server to a new process
/// started from the binary's path (a new binary, same configuration file).
struct Signals {
    logs: LogControl,
    pid_file: Option<Arc<PidFile>>,
    reloader: Reloader,
    exe: PathBuf,
    control_dir: ControlDir,
    /// Set when a new process took over: it owns the control directory from then on.
    handed_over: Arc<AtomicBool>,
}

impl Signals {
    /// Starts the process to take over; its pid once it is ready for the sockets.
    async fn hand_over(&self, why: &str) -> Option<u32> {
        let (exe, dir) = (self.exe.clone(), self.control_dir.clone());
        let addrs = self.reloader.started.addrs.clone();
        let started = tokio::task::spawn_blocking(move || upgrade::start_successor(&exe, &dir, &addrs)).await;
        let failed = match started {
            Ok(Ok(pid)) => {
                self.reloader.note(
                    Level::Notice,
                    &format!("{why}: process {pid} takes over; this one stops accepting and drains"),
                );
                self.handed_over.store(true, Ordering::Release);
                // systemd: the new process is the service from now on (it says so too,
                // which NotifyAccess=all lets through)
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::MainPid(pid)]);
                return Some(pid);
            }
            Ok(Err(e)) => e,
            Err(e) => e.to_string(),
        };
        self.reloader.note(
            Level::Emerg,
            &format!("{why}, but the new process failed; still serving the running configuration: {failed}"),
        );
        None
    }

    /// Exits at once, after the logs are written (nginx's fast shutdown: the connections
    /// are dropped anyway). pingora's own fast path can spin forever when its
    /// single-threaded runtimes stop in the wrong order.
    fn exit_now(logs: &LogControl, pid_file: Option<&PidFile>, dir: Option<&ControlDir>) -> ! {
        logs.flush_and_stop(Duration::from_secs(2));
        if let Some(p) = pid_file {
            p.remove();
        }
        if let Some(d) = dir {
            d.remove();
        }
        std::process::exit(0);
    }
}

/// The signals the watcher acts on.
enum Event {
    Stop,
    StopNow,
    Reload,
    Upgrade,
    Reopen,
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
        let mut usr2 = install(SignalKind::user_defined2());
        // The signals are handled from here on: the pid file may name this process.
        // systemd (Type=notify): the listeners are bound (see `run`: under systemd they are
        // bound before pingora starts, or received from the old process) and a stop
        // signal stops gracefully. A process that took over says it is the main one.
        if let Some(p) = &self.pid_file {
            if let Err(e) = p.publish() {
                self.reloader.note(Level::Emerg, &e);
            }
        }
        let _ = sd_notify::notify(
            false,
            &[sd_notify::NotifyState::MainPid(std::process::id()), sd_notify::NotifyState::Ready],
        );
        let stopping = || {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
        };
        let ready = || {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        };
        let successor = loop {
            let event = tokio::select! {
                _ = term.recv() => Event::Stop,
                _ = quit.recv() => Event::Stop,
                _ = int.recv() => Event::StopNow,
                _ = hup.recv() => Event::Reload,
                _ = usr2.recv() => Event::Upgrade,
                _ = usr1.recv() => Event::Reopen,
            };
            match event {
                Event::Stop => {
                    stopping();
                    return ShutdownSignal::GracefulTerminate;
                }
                Event::StopNow => {
                    stopping();
                    let dir = (!self.handed_over.load(Ordering::Acquire)).then_some(&self.control_dir);
                    Self::exit_now(&self.logs, self.pid_file.as_deref(), dir);
                }
                Event::Reopen => self.logs.reopen(),
                Event::Reload => {
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Reloading]);
                    let shown = self.reloader.config_path.display().to_string();
                    match self.reloader.reload() {
                        Outcome::Swapped => {
                            self.reloader.note(
                                Level::Notice,
                                &format!("SIGHUP: reloaded {shown}; new requests use it"),
                            );
                            ready();
                        }
                        Outcome::HandOver(why) => {
                            if let Some(pid) =
                                self.hand_over(&format!("SIGHUP: {shown} is valid; {why}")).await
                            {
                                break pid;
                            }
                            ready();
                        }
                        Outcome::Refused(reasons) => {
                            self.reloader.refused("SIGHUP: not reloaded", &reasons);
                            ready();
                        }
                    }
                }
                Event::Upgrade => {
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Reloading]);
                    // the new process reads the configuration as it is now: checked here
                    // first, so that its errors are logged as a reload's are
                    match self.reloader.load() {
                        Err(reasons) => self.reloader.refused("SIGUSR2: not upgraded", &reasons),
                        Ok(_) => {
                            if let Some(pid) =
                                self.hand_over("SIGUSR2: upgrading to the binary at its path").await
                            {
                                break pid;
                            }
                        }
                    }
                    ready();
                }
            }
        };
        // Draining from here on. A reload or upgrade that still reached this process (sent
        // before the new one wrote its pid) is passed on to the new one; INT still stops
        // at once; TERM and QUIT have nothing left to do.
        let (logs, pid_file) = (self.logs.clone(), self.pid_file.clone());
        tokio::spawn(async move {
            let new = nix::unistd::Pid::from_raw(successor as i32);
            loop {
                tokio::select! {
                    _ = hup.recv() => { let _ = nix::sys::signal::kill(new, nix::sys::signal::Signal::SIGHUP); }
                    _ = usr2.recv() => { let _ = nix::sys::signal::kill(new, nix::sys::signal::Signal::SIGUSR2); }
                    _ = usr1.recv() => logs.reopen(),
                    _ = int.recv() => Self::exit_now(&logs, pid_file.as_deref(), None),
                    _ = term.recv() => {}
                    _ = quit.recv() => {}
                }
            }
        });
        ShutdownSignal::GracefulUpgrade
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
