//! The process-wide keys at the top of the file: `worker_threads` and
//! `shutdown_timeout`.

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
        Global {
            worker_threads,
            shutdown_timeout: s.duration(
                "shutdown_timeout",
                "shutdown_timeout = \"10s\"",
                Duration::from_secs(10),
                diags,
            ),
        }
    }
}
