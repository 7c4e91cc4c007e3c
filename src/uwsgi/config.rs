//! The uwsgi keys: `uwsgi_pass`, `uwsgi_param`, `uwsgi_modifier1`/`uwsgi_modifier2` on a
//! location, and the top-level `[upstream.NAME]` pools with their servers, balancing,
//! passive health, timeouts and `uwsgi_buffer_size`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::diag::Diagnostics;
use crate::config::section::Section;
use crate::variables::{Scope, Template};

use super::codec::vars_block::Param;

/// Where a backend listens.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BackendAddr {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl std::fmt::Display for BackendAddr {
    /// As nginx's `$upstream_addr` shows it: `unix:/tmp/flaskbb.sock`, `127.0.0.1:3031`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackendAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            BackendAddr::Tcp(a) => write!(f, "{a}"),
        }
    }
}

impl BackendAddr {
    /// `"unix:/path.sock"` or `"host:port"` (an IP address and a port).
    pub fn parse(text: &str) -> Result<BackendAddr, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err(format!("`{text}`: the socket path must be absolute"));
            }
            return Ok(BackendAddr::Unix(PathBuf::from(path)));
        }
        let text =
            text.strip_prefix("localhost:").map_or_else(|| text.to_string(), |p| format!("127.0.0.1:{p}"));
        text.parse::<SocketAddr>()
            .map(BackendAddr::Tcp)
            .map_err(|_| format!("`{text}` is not \"unix:/path.sock\" or \"IP:port\""))
    }
}

/// How a pool picks a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// nginx's smooth weighted round robin.
    RoundRobin,
    /// Fewest requests in flight per unit of weight.
    LeastConn,
}

/// One server of a pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    pub addr: BackendAddr,
    pub weight: u32,
    /// Most requests in flight to this server at once (`None`: unlimited).
    pub max_conns: Option<u32>,
}

/// An `[upstream.NAME]` pool (or the implicit pool of one for `uwsgi_pass = "unix:..."`).
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    pub name: String,
    pub servers: Vec<ServerConfig>,
    pub balance: Balance,
    /// Failures within `fail_timeout` that mark a server down for `fail_timeout`; 0 never.
    pub max_fails: u32,
    pub fail_timeout: Duration,
    pub connect_timeout: Duration,
    pub send_timeout: Duration,
    pub read_timeout: Duration,
    /// uWSGI's `buffer-size` on these servers: a bigger vars block is answered 431 here
    /// instead of being dropped there.
    pub uwsgi_buffer_size: usize,
    /// Servers tried for one request when connecting fails (0: each server once).
    pub next_upstream_tries: u32,
}

impl UpstreamConfig {
    /// A pool of one server with nginx's defaults.
    pub fn implicit(addr: BackendAddr) -> UpstreamConfig {
        UpstreamConfig {
            name: addr.to_string(),
            servers: vec![ServerConfig { addr, weight: 1, max_conns: None }],
            balance: Balance::RoundRobin,
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            read_timeout: Duration::from_secs(60),
            uwsgi_buffer_size: 4096,
            next_upstream_tries: 0,
        }
    }

    /// Reads one `[upstream.NAME]` table.
    pub fn parse(name: &str, s: &mut Section, diags: &mut Diagnostics) -> Option<UpstreamConfig> {
        let mut up = UpstreamConfig::implicit(BackendAddr::Unix(PathBuf::from("/")));
        up.name = name.to_string();
        up.servers.clear();
        let example = "servers = [\"unix:/tmp/flaskbb.sock\", \"unix:/tmp/flaskbb2.sock weight=2 max_conns=64\", \"127.0.0.1:3031\"]";
        match s.get::<Vec<String>>("servers", example, diags) {
            Some(list) => {
                let span = list.span();
                for text in list.get_ref() {
                    match parse_server(text) {
                        Ok(server) => up.servers.push(server),
                        Err(e) => diags.error(
                            span.clone(),
                            format!("upstream `{name}`: {e}"),
                            Some(format!("write it like: {example}")),
                        ),
                    }
                }
                if list.get_ref().is_empty() {
                    diags.error(
                        span,
                        format!("upstream `{name}` has no servers"),
                        Some(format!("write it like: {example}")),
                    );
                }
            }
            None => {
                if s.key_span("servers").is_none() {
                    diags.error(
                        s.span(),
                        format!("upstream `{name}` has no `servers`"),
                        Some(format!("add {example}")),
                    );
                }
            }
        }
        if let Some(b) = s.get("balance", "balance = \"round_robin\"   # or \"least_conn\"", diags) {
            up.balance = b.into_inner();
        }
        if let Some(m) = s.get("max_fails", "max_fails = 1", diags) {
            up.max_fails = m.into_inner();
        }
        up.fail_timeout = s.duration("fail_timeout", "fail_timeout = \"10s\"", up.fail_timeout, diags);
        up.connect_timeout =
            s.duration("connect_timeout", "connect_timeout = \"1s\"", up.connect_timeout, diags);
        up.send_timeout = s.duration("send_timeout", "send_timeout = \"60s\"", up.send_timeout, diags);
        up.read_timeout = s.duration("read_timeout", "read_timeout = \"60s\"", up.read_timeout, diags);
        if let Some(b) =
            s.get::<usize>("uwsgi_buffer_size", "uwsgi_buffer_size = 4096   # uWSGI's buffer-size", diags)
        {
            if *b.get_ref() < 512 || *b.get_ref() > 65535 {
                diags.error(
                    b.span(),
                    format!("uwsgi_buffer_size {} is outside 512..65535", b.get_ref()),
                    Some(
                        "set it to uWSGI's buffer-size (4096 unless its ini says otherwise; at most 65535)"
                            .into(),
                    ),
                );
            } else {
                up.uwsgi_buffer_size = b.into_inner();
            }
        }
        if let Some(t) = s.get("next_upstream_tries", "next_upstream_tries = 2", diags) {
            up.next_upstream_tries = t.into_inner();
        }
        (!up.servers.is_empty()).then_some(up)
    }
}

/// `"unix:/x.sock weight=2 max_conns=64"`.
fn parse_server(text: &str) -> Result<ServerConfig, String> {
    let mut parts = text.split_whitespace();
    let addr = BackendAddr::parse(parts.next().ok_or("an empty server entry")?)?;
    let mut server = ServerConfig { addr, weight: 1, max_conns: None };
    for part in parts {
        let (key, value) = part.split_once('=').ok_or_else(|| format!("`{part}` is not key=value"))?;
        let n: u32 = value.parse().map_err(|_| format!("`{part}`: {value} is not a number"))?;
        match key {
            "weight" if n >= 1 => server.weight = n,
            "max_conns" if n >= 1 => server.max_conns = Some(n),
            "weight" | "max_conns" => return Err(format!("`{part}` must be at least 1")),
            _ => return Err(format!("unknown server parameter `{key}` (known: weight, max_conns)")),
        }
    }
    Ok(server)
}

/// What a location with `uwsgi_pass` says.
#[derive(Clone, Debug)]
pub struct UwsgiLocation {
    /// As written: `unix:/path.sock`, `host:port`, or a pool name.
    pub pass: String,
    pub pass_span: Range<usize>,
    /// Index into the configuration's upstreams, set when the configuration is assembled.
    pub upstream: usize,
    pub params: Vec<Param>,
    pub modifier1: u8,
    pub modifier2: u8,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawParam {
    Value(String),
    Full {
        value: String,
        #[serde(default)]
        if_not_empty: bool,
    },
}

impl UwsgiLocation {
    /// Reads a location's uwsgi keys; `None` when it has no `uwsgi_pass`.
    pub fn parse(s: &mut Section, named_groups: &[&str], diags: &mut Diagnostics) -> Option<UwsgiLocation> {
        let pass = s.get::<String>("uwsgi_pass", "uwsgi_pass = \"unix:/tmp/flaskbb.sock\"", diags);
        let params = s.get::<toml::Table>(
            "uwsgi_param",
            "uwsgi_param = { HTTP_HOST = \"$host\", X_APP = { value = \"$http_x_app\", if_not_empty = true } }",
            diags,
        );
        let modifier1 = s.get::<u8>("uwsgi_modifier1", "uwsgi_modifier1 = 0   # 0..255", diags);
        let modifier2 = s.get::<u8>("uwsgi_modifier2", "uwsgi_modifier2 = 0   # 0..255", diags);
        let Some(pass) = pass else {
            for (key, present) in [
                ("uwsgi_param", params.is_some()),
                ("uwsgi_modifier1", modifier1.is_some()),
                ("uwsgi_modifier2", modifier2.is_some()),
            ] {
                if present {
                    diags.error(
                        s.key_span(key).unwrap_or(s.span()),
                        format!("`{key}` without `uwsgi_pass` has no effect"),
                        Some("add uwsgi_pass to this location, or remove the key".into()),
                    );
                }
            }
            return None;
        };
        let scope = Scope::Request { named_groups };
        let mut out = Vec::new();
        if let Some(table) = params {
            let span = table.span();
            for (name, raw) in table.into_inner() {
                let raw: RawParam = match RawParam::deserialize(raw) {
                    Ok(r) => r,
                    Err(_) => {
                        diags.error(
                            span.clone(),
                            format!("uwsgi_param `{name}` must be a string or {{ value = \"...\", if_not_empty = true }}"),
                            Some(format!("write it like: {name} = \"$host\"")),
                        );
                        continue;
                    }
                };
                let (value, if_not_empty) = match raw {
                    RawParam::Value(v) => (v, false),
                    RawParam::Full { value, if_not_empty } => (value, if_not_empty),
                };
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    diags.error(
                        span.clone(),
                        format!("uwsgi_param name `{name}` is not a CGI variable name"),
                        Some("use letters, digits and _, like HTTP_HOST".into()),
                    );
                    continue;
                }
                if name.starts_with("UWSGI_") {
                    diags.warning(
                        span.clone(),
                        format!("uwsgi_param `{name}`: uWSGI acts on UWSGI_* vars (it may chdir, setenv or load code)"),
                        Some("make sure the value can never come from a client".into()),
                    );
                }
                match Template::parse(&value, scope) {
                    Ok(t) => out.push(Param { name, value: t, if_not_empty }),
                    Err(e) => diags.error(
                        span.clone(),
                        format!("uwsgi_param `{name}`: {}", e.message),
                        Some(e.hint),
                    ),
                }
            }
        }
        Some(UwsgiLocation {
            pass_span: pass.span(),
            pass: pass.into_inner(),
            upstream: 0,
            params: out,
            modifier1: modifier1.map_or(0, |m| m.into_inner()),
            modifier2: modifier2.map_or(0, |m| m.into_inner()),
        })
    }
}

/// Resolves every location's `uwsgi_pass` against the `[upstream.NAME]` pools, adding an
/// implicit pool for each distinct `unix:...`/`host:port` written directly.
pub fn resolve_passes<'l>(
    locations: impl Iterator<Item = &'l mut UwsgiLocation>,
    named: &HashMap<String, usize>,
    upstreams: &mut Vec<UpstreamConfig>,
    diags: &mut Diagnostics,
) {
    for loc in locations {
        if let Some(&i) = named.get(&loc.pass) {
            loc.upstream = i;
            continue;
        }
        if loc.pass.starts_with("unix:") || loc.pass.contains(':') {
            match BackendAddr::parse(&loc.pass) {
                Ok(addr) => {
                    let existing = upstreams
                        .iter()
                        .position(|u| u.name == addr.to_string() && !named.contains_key(&u.name));
                    loc.upstream = existing.unwrap_or_else(|| {
                        upstreams.push(UpstreamConfig::implicit(addr));
                        upstreams.len() - 1
                    });
                }
                Err(e) => diags.error(loc.pass_span.clone(), format!("uwsgi_pass: {e}"), Some("write \"unix:/tmp/flaskbb.sock\", \"127.0.0.1:3031\" or the name of an [upstream.NAME]".into())),
            }
            continue;
        }
        let mut known: Vec<&str> = named.keys().map(String::as_str).collect();
        known.sort_unstable();
        diags.error(
            loc.pass_span.clone(),
            format!("uwsgi_pass `{}` is neither a socket address nor a defined [upstream]", loc.pass),
            Some(if known.is_empty() {
                "write \"unix:/path.sock\", or define [upstream.NAME] with servers".to_string()
            } else {
                format!("defined upstreams: {}", known.join(", "))
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_entries() {
        assert_eq!(
            parse_server("unix:/tmp/a.sock weight=2 max_conns=64").unwrap(),
            ServerConfig { addr: BackendAddr::Unix("/tmp/a.sock".into()), weight: 2, max_conns: Some(64) }
        );
        assert_eq!(
            parse_server("127.0.0.1:3031").unwrap().addr,
            BackendAddr::Tcp("127.0.0.1:3031".parse().unwrap())
        );
        assert_eq!(
            parse_server("localhost:3031").unwrap().addr,
            BackendAddr::Tcp("127.0.0.1:3031".parse().unwrap())
        );
        assert!(parse_server("unix:relative.sock").is_err());
        assert!(parse_server("unix:/a weight=0").is_err());
        assert!(parse_server("unix:/a bogus=1").unwrap_err().contains("unknown server parameter"));
        assert!(parse_server("example.com:80").is_err());
    }

    #[test]
    fn addresses_show_like_nginx() {
        assert_eq!(BackendAddr::Unix("/tmp/flaskbb.sock".into()).to_string(), "unix:/tmp/flaskbb.sock");
    }
}
