//! The wire's keys: per-server connection limits and timeouts, with nginx's defaults
//! (`keepalive_*`, `send_timeout`, `client_*`, `large_client_header_buffers`).

use std::time::Duration;

use super::request_head::HeadLimits;
use crate::config::diag::Diagnostics;
use crate::config::section::{parse_size, Section};

/// Per-server connection handling.
#[derive(Clone, Debug)]
pub struct ConnectionSettings {
    /// Idle time allowed between requests on a keep-alive connection (nginx: 75 s).
    pub keepalive_timeout: Duration,
    /// Requests served on one connection before it is closed (nginx: 1000).
    pub keepalive_requests: u32,
    /// Longest wait for the client to accept more response bytes (nginx: 60 s).
    pub send_timeout: Duration,
    /// Longest wait for each read of the request header (nginx: 60 s).
    pub client_header_timeout: Duration,
    /// Longest wait for each read of the request body (nginx: 60 s).
    pub client_body_timeout: Duration,
    /// Largest request body accepted; larger gets 413 before it is read (nginx: 1m).
    pub client_max_body_size: u64,
    /// A chunked request body is de-chunked in memory up to this size, then in a temporary
    /// file (nginx: 16k).
    pub client_body_buffer_size: u64,
    /// Where those temporary files are made (unnamed, gone when closed).
    pub client_body_temp_path: std::path::PathBuf,
    /// Request head limits (nginx: `large_client_header_buffers 4 8k`).
    pub head_limits: HeadLimits,
}

impl ConnectionSettings {
    pub fn defaults() -> ConnectionSettings {
        ConnectionSettings {
            keepalive_timeout: Duration::from_secs(75),
            keepalive_requests: 1000,
            send_timeout: Duration::from_secs(60),
            client_header_timeout: Duration::from_secs(60),
            client_body_timeout: Duration::from_secs(60),
            client_max_body_size: 1 << 20,
            client_body_buffer_size: 16 << 10,
            client_body_temp_path: std::env::temp_dir(),
            head_limits: HeadLimits::default(),
        }
    }

    /// Reads a section's keys on top of `base` (the top level's, or the defaults).
    pub fn parse(s: &mut Section, base: &ConnectionSettings, diags: &mut Diagnostics) -> ConnectionSettings {
        ConnectionSettings {
            keepalive_timeout: s.duration(
                "keepalive_timeout",
                "keepalive_timeout = \"75s\"",
                base.keepalive_timeout,
                diags,
            ),
            keepalive_requests: s.get_or(
                "keepalive_requests",
                "keepalive_requests = 1000",
                base.keepalive_requests,
                diags,
            ),
            send_timeout: s.duration("send_timeout", "send_timeout = \"60s\"", base.send_timeout, diags),
            client_header_timeout: s.duration(
                "client_header_timeout",
                "client_header_timeout = \"60s\"",
                base.client_header_timeout,
                diags,
            ),
            client_body_timeout: s.duration(
                "client_body_timeout",
                "client_body_timeout = \"60s\"",
                base.client_body_timeout,
                diags,
            ),
            client_max_body_size: s.size(
                "client_max_body_size",
                "client_max_body_size = \"1m\"   # 0 for no limit",
                base.client_max_body_size,
                (1 << 40, "1024g"),
                diags,
            ),
            // held in memory per request: a bound keeps one upload from taking the machine
            client_body_buffer_size: s.size(
                "client_body_buffer_size",
                "client_body_buffer_size = \"16k\"",
                base.client_body_buffer_size,
                (64 << 20, "64m"),
                diags,
            ),
            client_body_temp_path: s
                .get::<String>(
                    "client_body_temp_path",
                    "client_body_temp_path = \"/var/cache/portico\"",
                    diags,
                )
                .map_or_else(|| base.client_body_temp_path.clone(), |v| diags.absolute(v.get_ref()).into()),
            head_limits: match s.get::<String>(
                "large_client_header_buffers",
                "large_client_header_buffers = \"4 8k\"",
                diags,
            ) {
                Some(v) => head_limits(v.get_ref()).unwrap_or_else(|| {
                    diags.error(
                        v.span(),
                        format!("large_client_header_buffers `{}` is not a count and a size", v.get_ref()),
                        Some("write a count of 1 to 16 and a size of 1k to 64k, as nginx: \"4 8k\"".into()),
                    );
                    base.head_limits
                }),
                None => base.head_limits,
            },
        }
    }
}

/// `"N SIZE"`: a request line or header line may take one buffer of SIZE, the head N.
fn head_limits(text: &str) -> Option<HeadLimits> {
    let (count, size) = text.trim().split_once(char::is_whitespace)?;
    let count: usize = count.parse().ok().filter(|n| (1..=16).contains(n))?;
    let size = usize::try_from(parse_size(size)?).ok().filter(|s| (1024..=65536).contains(s))?;
    Some(HeadLimits { max_request_line: size, max_header_line: size, max_head: count * size })
}
