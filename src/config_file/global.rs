//! The process-wide keys at the top of the file: `user` and `group`, `pid_file`,
//! `worker_threads` and `shutdown_timeout`.

use std::time::Duration;

use crate::config::diag::Diagnostics;
use crate::config::section::Section;

/// More threads than this is a typo, not a machine: each one is a runtime with its own
/// pools.
const MAX_WORKER_THREADS: usize = 1024;

/// Process-wide settings (top level of the file).
#[derive(Clone, Debug)]
pub struct Global {
    /// Worker threads serving connections (nginx: `worker_processes`).
    pub worker_threads: usize,
    /// How long in-flight requests get to finish after SIGTERM/SIGQUIT.
    pub shutdown_timeout: Duration,
    /// Who serves (nginx's `user`): started as root, Portico becomes this user once its
    /// listeners are bound and its logs open.
    pub user: Option<String>,
    /// Its group; the user's own group when unset.
    pub group: Option<String>,
    /// Where the serving process writes its pid (nginx's `pid`), for `portico reopen` and
    /// `portico stop`; none by default.
    pub pid_file: Option<std::path::PathBuf>,
}

impl Global {
    pub fn parse(s: &mut Section, diags: &mut Diagnostics) -> Global {
        let worker_threads = match s.get::<usize>("worker_threads", "worker_threads = 2", diags) {
            Some(n) if !(1..=MAX_WORKER_THREADS).contains(n.get_ref()) => {
                diags.error(
                    n.span(),
                    format!("worker_threads must be from 1 to {MAX_WORKER_THREADS}"),
                    Some("write worker_threads = 2, or leave it out to use one per CPU".into()),
                );
                1
            }
            Some(n) => n.into_inner(),
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let mut name = |key: &'static str, example: &str| {
            let v = s.get::<String>(key, example, diags)?;
            if v.get_ref().trim().is_empty() {
                diags.error(v.span(), format!("`{key}` is empty"), Some(format!("write {example}")));
                return None;
            }
            Some(v.into_inner())
        };
        let user = name("user", "user = \"www-data\"");
        let group = name("group", "group = \"www-data\"");
        let pid_file = s
            .get::<String>("pid_file", "pid_file = \"/run/portico.pid\"", diags)
            .map(|p| std::path::PathBuf::from(diags.absolute(p.get_ref())));
        Global {
            worker_threads,
            user,
            group,
            pid_file,
            shutdown_timeout: s.duration(
                "shutdown_timeout",
                "shutdown_timeout = \"10s\"",
                Duration::from_secs(10),
                diags,
            ),
        }
    }
}
