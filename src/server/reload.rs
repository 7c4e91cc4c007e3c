//! SIGHUP: the configuration and every file it includes read again, and, when valid,
//! served from the next request on. Sites, routing, upstream pools and log sinks make one
//! [`Runtime`], stored whole, so a request sees either the old configuration or the new
//! one. What the process was started with (listen addresses, threads, shutdown timeout,
//! pid file) cannot change inside it: such a reload is carried out by a new process
//! (`upgrade`), once the new addresses are known to be bindable. An invalid
//! configuration changes nothing; each error is written to the error log and stderr.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::diag::{Diagnostic, Severity};
use crate::config_file::global::Global;
use crate::config_file::{self, Config, Site};
use crate::log::access::AccessLog;
use crate::log::error::{ErrorContext, ErrorLog};
use crate::log::writer::{LogControl, Target};
use crate::log::Level;
use crate::routing::servers::ServerTable;
use crate::uwsgi::config::UpstreamConfig;
use crate::uwsgi::forward::Upstream;

use super::app::{Current, Runtime, SiteRuntime};

/// What the process was started with: what a reload can only change in a new process.
pub(super) struct Started {
    pub addrs: Vec<SocketAddr>,
    pub global: Global,
}

/// How a reload went.
pub(super) enum Outcome {
    /// Served from the next request on.
    Swapped,
    /// Valid, but it needs a new process: why.
    HandOver(String),
    /// Nothing changed: every reason (and the warnings that came with them).
    Refused(Vec<(Level, String)>),
}

pub(super) struct Reloader {
    pub config_path: PathBuf,
    pub current: Current,
    pub logs: LogControl,
    pub started: Started,
}

impl Reloader {
    pub(super) fn reload(&self) -> Outcome {
        let config = match self.load() {
            Ok(config) => config,
            Err(reasons) => return Outcome::Refused(reasons),
        };
        let (old, new) = (&self.started.global, &config.global);
        if old.user != new.user || old.group != new.group {
            return Outcome::Refused(vec![(
                Level::Emerg,
                format!(
                    "{}: `user`/`group` changed: the running server cannot become another user; restart it to apply",
                    self.config_path.display()
                ),
            )]);
        }
        let addrs = config.servers.bind_addresses();
        if let Some(why) = needs_new_process(&self.started, new, &addrs) {
            // a port that cannot be bound fails the reload here, not the new process
            for &addr in addrs.iter().filter(|a| !self.started.addrs.contains(a)) {
                if let Err(e) = super::listeners::bind_one(addr) {
                    let mut why = super::run::listen_failure(addr, e);
                    if !nix::unistd::Uid::effective().is_root() && addr.port() < 1024 {
                        why.push_str(
                            "; the running server has given up root, so a new port below 1024 takes a restart",
                        );
                    }
                    return Outcome::Refused(vec![(Level::Emerg, why)]);
                }
            }
            return Outcome::HandOver(why);
        }
        let Config { sites, servers, upstreams, tls_ports, proxy_ports, .. } = config;
        match build(sites, servers, upstreams, (tls_ports, proxy_ports), &self.logs) {
            Ok((runtime, targets)) => {
                self.current.store(Arc::new(runtime));
                self.logs.keep_only(&targets);
                Outcome::Swapped
            }
            Err(e) => Outcome::Refused(vec![(Level::Emerg, e)]),
        }
    }

    /// The configuration as it is on disk now (its warnings noted), or every diagnostic.
    pub(super) fn load(&self) -> Result<Config, Vec<(Level, String)>> {
        match config_file::load(&self.config_path) {
            Ok((config, warnings)) => {
                for w in &warnings {
                    self.note(Level::Warn, &w.to_string());
                }
                Ok(config)
            }
            Err(diags) => {
                let level = |d: &Diagnostic| match d.severity {
                    Severity::Error => Level::Emerg,
                    _ => Level::Warn,
                };
                Err(diags.iter().map(|d| (level(d), d.to_string())).collect())
            }
        }
    }

    /// Every reason a configuration was not taken, then what that means.
    pub(super) fn refused(&self, what: &str, reasons: &[(Level, String)]) {
        for (level, e) in reasons {
            self.note(*level, e);
        }
        let errors = reasons.iter().filter(|(l, _)| *l == Level::Emerg).count();
        self.note(
            Level::Emerg,
            &format!(
                "{what}: {} has {errors} error(s) (above); still serving the running configuration",
                self.config_path.display()
            ),
        );
    }

    /// A line for the running configuration's main error log (at its level), and for
    /// stderr (always: the operator who sent the signal looks there, or in the journal).
    pub(super) fn note(&self, level: Level, message: &str) {
        let rt = self.current.load();
        if let Some(first) = rt.sites.first() {
            first.error_log.write(level, message, &ErrorContext::default());
            if first.site.logs.error == Target::Stderr && first.error_log.wants(level) {
                return;
            }
        }
        eprintln!("portico: {message}");
    }
}

/// Why `global` and `addrs` cannot be served by the running process, if they cannot.
fn needs_new_process(started: &Started, global: &Global, addrs: &[SocketAddr]) -> Option<String> {
    let mut old = started.addrs.clone();
    let mut new = addrs.to_vec();
    old.sort();
    new.sort();
    let old_g = &started.global;
    if old != new {
        Some("the listen addresses changed".into())
    } else if old_g.worker_threads != global.worker_threads {
        Some("worker_threads changed".into())
    } else if old_g.shutdown_timeout != global.shutdown_timeout {
        Some("shutdown_timeout changed".into())
    } else if old_g.pid_file != global.pid_file {
        Some("pid_file changed".into())
    } else {
        None
    }
}

/// The running form of a configuration: its log files opened (those already open are
/// shared), and every target it writes to.
pub(super) fn build(
    sites: Vec<Site>,
    servers: ServerTable,
    upstreams: Vec<UpstreamConfig>,
    (tls_ports, proxy_ports): (Vec<u16>, Vec<u16>),
    logs: &LogControl,
) -> Result<(Runtime, Vec<Target>), String> {
    let targets = log_targets(&sites);
    logs.open(&targets)?;
    let sites = sites
        .into_iter()
        .map(|site| SiteRuntime {
            access_log: site.logs.access.as_ref().map(|(t, f)| AccessLog::new(logs.sink(t), f.clone())),
            error_log: ErrorLog::new(logs.sink(&site.logs.error), site.logs.error_level),
            site,
        })
        .collect();
    let upstreams = upstreams.into_iter().map(Upstream::new).collect();
    Ok((Runtime { sites, servers, upstreams, tls_ports, proxy_ports }, targets))
}

/// Every file (or stderr) the sites' access and error logs write to.
pub(super) fn log_targets(sites: &[Site]) -> Vec<Target> {
    let mut targets = Vec::new();
    for site in sites {
        if let Some((t, _)) = &site.logs.access {
            targets.push(t.clone());
        }
        targets.push(site.logs.error.clone());
    }
    targets
}
