//! `portico check` beyond syntax: the machine as the running server will meet it, as the
//! user it will serve as, and what a visitor would see — `@flaskbb would return 502:
//! /tmp/flaskbb.sock is srw------- www-data:www-data and portico runs as nobody`. Every
//! finding is a warning: the configuration is valid, the machine is not ready for it.
//!
//! It reads the configuration the assembler made and looks at files, sockets and units;
//! it changes nothing.

pub mod files;
mod sockets;
mod traps;

use std::path::{Path, PathBuf};

use nix::unistd::{Group, Uid, User};

use crate::config_file::{Config, Location, Site};
use crate::static_files::mapping::Mapping;
use crate::static_files::open::SymlinkPolicy;
use crate::uwsgi::config::BackendAddr;

use crate::permissions::Who;

/// Files around the configuration that `check` may be pointed at.
#[derive(Debug, Default)]
pub struct Options {
    /// The systemd unit Portico runs under (else the usual paths are looked at).
    pub unit: Option<PathBuf>,
    /// uWSGI's ini, for its `socket` and `buffer-size`.
    pub uwsgi_ini: Option<PathBuf>,
}

/// Something a visitor would meet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// What would answer: `server localhost, location @flaskbb`.
    pub subject: String,
    /// What it would answer, when it is a status.
    pub status: Option<u16>,
    pub problem: String,
    pub hint: Option<String>,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(f, "{} would return {s}: {}", self.subject, self.problem)?,
            None => write!(f, "{}: {}", self.subject, self.problem)?,
        }
        if let Some(h) = &self.hint {
            write!(f, "\n    hint: {h}")?;
        }
        Ok(())
    }
}

/// Looks at the machine for `config` (read from `file`).
pub fn check(config: &Config, file: &Path, options: &Options) -> Vec<Finding> {
    let mut found = Vec::new();
    let who = serving_user(config, file, &mut found);
    for site in &config.sites {
        for loc in &site.locations {
            location_findings(site, loc, config, &who, &mut found);
        }
    }
    symlink_findings(config, &mut found);
    trap_findings(config, options, &mut found);
    found.dedup();
    found
}

/// The user the server will serve as: `user` if it exists, else whoever runs this.
fn serving_user(config: &Config, file: &Path, found: &mut Vec<Finding>) -> Who {
    let me = || {
        let uid = Uid::effective();
        let user = User::from_uid(uid).ok().flatten();
        who_of(user.map_or_else(|| uid.to_string(), |u| u.name).as_str()).unwrap_or(Who {
            name: uid.to_string(),
            uid: uid.as_raw(),
            gid: nix::unistd::Gid::effective().as_raw(),
            groups: Vec::new(),
        })
    };
    let Some(name) = config.global.user.as_deref() else {
        if Uid::effective().is_root() {
            found.push(Finding {
                subject: "the process".into(),
                status: None,
                problem: "started as root without `user`, `portico run` refuses to serve".into(),
                hint: Some(format!("write user = \"www-data\" at the top of {}", file.display())),
            });
        }
        return me();
    };
    let mut who = match who_of(name) {
        Some(w) => w,
        None => {
            found.push(Finding {
                subject: "the process".into(),
                status: None,
                problem: format!("user `{name}` does not exist on this machine: `portico run` would stop"),
                hint: Some(format!("create it (adduser --system {name}) or change `user`")),
            });
            return me();
        }
    };
    if let Some(g) = config.global.group.as_deref() {
        match Group::from_name(g).ok().flatten() {
            Some(grp) => who.gid = grp.gid.as_raw(),
            None => found.push(Finding {
                subject: "the process".into(),
                status: None,
                problem: format!("group `{g}` does not exist on this machine: `portico run` would stop"),
                hint: Some("change `group`, or leave it out to use the user's".into()),
            }),
        }
    }
    who
}

fn who_of(name: &str) -> Option<Who> {
    let user = User::from_name(name).ok().flatten()?;
    let cname = std::ffi::CString::new(name).ok()?;
    let groups = nix::unistd::getgrouplist(&cname, user.gid).map(|g| g.iter().map(|g| g.as_raw()).collect());
    Some(Who {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        groups: groups.unwrap_or_default(),
    })
}

fn subject(site: &Site, loc: &Location) -> String {
    let server =
        if site.name.is_empty() { "the server".to_string() } else { format!("server {}", site.name) };
    format!("{server}, location {}", loc.matcher)
}

/// A location's files and upstream, as its requests would meet them.
fn location_findings(site: &Site, loc: &Location, config: &Config, who: &Who, found: &mut Vec<Finding>) {
    let mapping = &loc.files.mapping;
    if let Some(dir) = mapping.document_root() {
        let path = Path::new(std::str::from_utf8(dir).unwrap_or("/"));
        if let Some(problem) = files::problem(path, who) {
            let missing = problem.contains("does not exist");
            found.push(Finding {
                subject: subject(site, loc),
                status: Some(if missing { 404 } else { 403 }),
                problem,
                hint: Some(if missing {
                    "create it, or correct `root`/`alias`".into()
                } else {
                    format!("let {} search and read it (chmod/chgrp), or set `user`", who.name)
                }),
            });
        }
    }
    let Some(uw) = &loc.uwsgi else { return };
    let Some(upstream) = config.upstreams.get(uw.upstream) else { return };
    for server in &upstream.servers {
        if let Some(problem) = sockets::problem(&server.addr, who) {
            found.push(Finding { subject: subject(site, loc), status: Some(502), problem, hint: None });
        }
    }
}

/// Links under each served directory that the symlink rule refuses, once per directory.
fn symlink_findings(config: &Config, found: &mut Vec<Finding>) {
    const SHOWN: usize = 20;
    let mut walked: Vec<&[u8]> = Vec::new();
    for site in &config.sites {
        for loc in &site.locations {
            let files = &loc.files;
            let Some(dir) = files.mapping.document_root() else { continue };
            if files.symlinks == SymlinkPolicy::Follow
                || matches!(files.mapping, Mapping::AliasFixed(_))
                || walked.contains(&dir)
            {
                continue;
            }
            walked.push(dir);
            let path = Path::new(std::str::from_utf8(dir).unwrap_or("/"));
            let (links, stopped) = files::leaving_links(path, &files.mapping.written_components());
            for l in links.iter().take(SHOWN) {
                found.push(Finding {
                    subject: subject(site, loc),
                    status: Some(404),
                    problem: format!(
                        "{} -> {} leads outside {} and requests reaching it are refused (symlinks = \"{}\")",
                        l.link.display(),
                        l.target.display(),
                        path.display(),
                        if files.symlinks == SymlinkPolicy::Deny { "deny" } else { "inside" }
                    ),
                    hint: Some(format!(
                        "if the link is meant, set symlinks = \"follow\" on location {}, or write the link's path in the alias",
                        loc.matcher
                    )),
                });
            }
            if links.len() > SHOWN || stopped {
                found.push(Finding {
                    subject: subject(site, loc),
                    status: None,
                    problem: format!(
                        "{} more such links{} under {}",
                        links.len().saturating_sub(SHOWN),
                        if stopped {
                            format!(" (the walk stopped after {} entries)", files::WALK_LIMIT)
                        } else {
                            String::new()
                        },
                        path.display()
                    ),
                    hint: None,
                });
            }
        }
    }
}

fn trap_findings(config: &Config, options: &Options, found: &mut Vec<Finding>) {
    let unix_sockets = || {
        config.upstreams.iter().flat_map(|u| u.servers.iter()).filter_map(|s| match &s.addr {
            BackendAddr::Unix(p) => Some(p.as_path()),
            BackendAddr::Tcp(_) => None,
        })
    };
    let units: Vec<PathBuf> = match &options.unit {
        Some(u) => vec![u.clone()],
        None => traps::USUAL_UNITS.iter().map(PathBuf::from).collect(),
    };
    for unit in units {
        let Some(text) = traps::read(&unit) else { continue };
        if !traps::private_tmp(&text) {
            continue;
        }
        for sock in unix_sockets().filter(|p| p.starts_with("/tmp")) {
            found.push(Finding {
                subject: format!("the unit {}", unit.display()),
                status: Some(502),
                problem: format!(
                    "it sets PrivateTmp=, so Portico has a /tmp of its own and never sees uWSGI's {}",
                    sock.display()
                ),
                hint: Some(
                    "put the socket under /run (e.g. /run/uwsgi/app.sock, with RuntimeDirectory=) in both"
                        .into(),
                ),
            });
        }
    }
    let Some(ini_path) = &options.uwsgi_ini else { return };
    let Some(text) = traps::read(ini_path) else {
        found.push(Finding {
            subject: format!("the uWSGI ini {}", ini_path.display()),
            status: None,
            problem: "cannot be read".into(),
            hint: None,
        });
        return;
    };
    let ini = traps::uwsgi_ini(&text);
    for up in &config.upstreams {
        let served_by_ini = up.servers.iter().any(|s| match (&s.addr, &ini.socket) {
            (BackendAddr::Unix(p), Some(sock)) => Path::new(sock) == p,
            (BackendAddr::Tcp(a), Some(sock)) => {
                sock.trim_start_matches('*') == a.to_string() || sock.ends_with(&format!(":{}", a.port()))
            }
            (_, None) => true,
        });
        if served_by_ini && up.uwsgi_buffer_size > ini.buffer_size {
            found.push(Finding {
                subject: format!("upstream {}", up.name),
                status: Some(502),
                problem: format!(
                    "uwsgi_buffer_size is {} but uWSGI's buffer-size is {} ({}): requests whose vars are between the two are dropped by uWSGI",
                    up.uwsgi_buffer_size,
                    ini.buffer_size,
                    ini_path.display()
                ),
                hint: Some(format!(
                    "set uwsgi_buffer_size = {} (Portico then answers 431 with a reason) or buffer-size = {} in the ini",
                    ini.buffer_size, up.uwsgi_buffer_size
                )),
            });
        }
    }
}
