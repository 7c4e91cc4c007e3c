//! Server block choice, as nginx makes it: first by the local address the connection
//! arrived on (`listen`), then by the request's host against `server_name` — exact name,
//! then the longest `*.example.com`, then the longest `www.example.*`, then the first
//! `~regex` — and otherwise the address's default server (`default_server = true`, or the
//! first block listening there). Also owns parsing `listen` and the `Host` header.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use regex::Regex;

/// Index of a `[[server]]` block, in file order.
pub type ServerId = usize;

/// Parses one `listen` value: `"80"`, `"*:80"`, `"127.0.0.1:8080"`, `"[::]:80"`,
/// `"localhost:8080"`. A bare address listens on port 80, as in nginx.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = text.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 80));
    }
    if let Some((host, port)) = text.rsplit_once(':') {
        let port: u16 = port.parse().map_err(|_| format!("`{port}` is not a port number (1-65535)"))?;
        let ip = match host {
            "*" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
            _ => return Err(format!("`{host}` is not an IP address")),
        };
        return Ok(SocketAddr::new(ip, port));
    }
    Err(format!("`{text}` is not a port or an address"))
}

/// What a `listen` entry says after its address, in nginx's words.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenOptions {
    /// `ssl`: connections to this port are TLS.
    pub ssl: bool,
    /// `proxy_protocol`: connections to this port start with a PROXY protocol header.
    pub proxy_protocol: bool,
    /// `http2`: TLS handshakes on this port offer HTTP/2 by ALPN.
    pub http2: bool,
}

/// Parses a whole `listen` entry: the address, then options (`"443 ssl"`,
/// `"[::]:443 ssl http2"`, `"80 proxy_protocol"`).
pub fn parse_listen_entry(text: &str) -> Result<(SocketAddr, ListenOptions), String> {
    let mut words = text.split_ascii_whitespace();
    let addr = parse_listen(words.next().unwrap_or(""))?;
    let mut options = ListenOptions::default();
    for word in words {
        match word {
            "ssl" => options.ssl = true,
            "http2" => options.http2 = true,
            "proxy_protocol" => options.proxy_protocol = true,
            "default_server" => {
                return Err("`default_server` is a key of the server here: write default_server = true".into())
            }
            other => {
                return Err(format!(
                    "`{other}` is not a listen option (`ssl`, `http2` and `proxy_protocol` are)"
                ))
            }
        }
    }
    if options.http2 && !options.ssl {
        // (nginx would speak HTTP/2 without TLS here, to clients that know it in advance:
        // browsers never do)
        return Err(
            "`http2` is negotiated in the TLS handshake: it needs `ssl` (write \"443 ssl http2\")".into()
        );
    }
    Ok((addr, options))
}

/// Why the `Host` header (or the host of an absolute-form target) was refused: a 400.
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidHost;

impl fmt::Display for InvalidHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("client sent invalid host header")
    }
}

/// Validates and normalises a host as nginx's `$host`: lower-cased, port and trailing dot
/// removed. Slashes, backslashes, control bytes and `..` are refused.
pub fn normalize_host(raw: &[u8]) -> Result<std::borrow::Cow<'_, str>, InvalidHost> {
    let host = if raw.first() == Some(&b'[') {
        let end = memchr::memchr(b']', raw).ok_or(InvalidHost)?;
        &raw[..=end]
    } else {
        match memchr::memchr(b':', raw) {
            Some(i) => &raw[..i],
            None => raw,
        }
    };
    let host = host.strip_suffix(b".").unwrap_or(host);
    if host.is_empty() || host.starts_with(b".") || memchr::memmem::find(host, b"..").is_some() {
        return Err(InvalidHost);
    }
    if host.iter().any(|&b| b <= b' ' || b == 0x7f || b == b'/' || b == b'\\') {
        return Err(InvalidHost);
    }
    let text = std::str::from_utf8(host).map_err(|_| InvalidHost)?;
    Ok(if text.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(text.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(text)
    })
}

/// What a `[[server]]` block says about which requests are its own.
#[derive(Clone, Debug)]
pub struct ServerIdentity {
    pub listen: Vec<SocketAddr>,
    pub names: Vec<String>,
    pub default_server: bool,
}

/// A refused combination of server blocks.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerTableError {
    /// Two blocks both claim `default_server` for one address.
    TwoDefaults { addr: SocketAddr, first: ServerId, second: ServerId },
    /// A `~regex` server name does not compile.
    BadRegex { server: ServerId, name: String, error: String },
}

/// Names of the servers sharing one listen address, indexed for nginx's order.
#[derive(Debug, Default)]
struct NameTable {
    exact: HashMap<String, ServerId>,
    /// `(".example.com", id)` for `*.example.com`, longest first.
    leading: Vec<(String, ServerId)>,
    /// `("www.example.", id)` for `www.example.*`, longest first.
    trailing: Vec<(String, ServerId)>,
    regexes: Vec<(Regex, ServerId)>,
    default: ServerId,
}

impl NameTable {
    fn add(&mut self, name: &str, id: ServerId) -> Result<(), String> {
        let name = name.to_ascii_lowercase();
        if let Some(re) = name.strip_prefix('~') {
            let regex = Regex::new(re).map_err(|e| e.to_string())?;
            self.regexes.push((regex, id));
        } else if let Some(suffix) = name.strip_prefix('*') {
            self.leading.push((suffix.to_string(), id));
        } else if let Some(bare) = name.strip_prefix('.') {
            // ".example.com" is nginx shorthand for "example.com" and "*.example.com"
            self.exact.entry(bare.to_string()).or_insert(id);
            self.leading.push((name.clone(), id));
        } else if let Some(prefix) = name.strip_suffix('*') {
            self.trailing.push((prefix.to_string(), id));
        } else {
            self.exact.entry(name).or_insert(id);
        }
        Ok(())
    }

    fn sort(&mut self) {
        self.leading.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        self.trailing.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
    }

    fn pick(&self, host: Option<&str>) -> (ServerId, NameMatch<'_>) {
        let host = host.unwrap_or("");
        if let Some(&id) = self.exact.get(host) {
            return (id, NameMatch::Exact);
        }
        if !host.is_empty() {
            if let Some((s, id)) = self.leading.iter().find(|(s, _)| host.ends_with(s.as_str())) {
                return (*id, NameMatch::Leading(s));
            }
            if let Some((p, id)) = self.trailing.iter().find(|(p, _)| host.starts_with(p.as_str())) {
                return (*id, NameMatch::Trailing(p));
            }
            if let Some((r, id)) = self.regexes.iter().find(|(r, _)| r.is_match(host)) {
                return (*id, NameMatch::Regex(r.as_str()));
            }
        }
        (self.default, NameMatch::Default)
    }
}

/// Why a server was chosen for a host, in nginx's order of the name searches.
#[derive(Debug, PartialEq, Eq)]
pub enum NameMatch<'a> {
    /// An exact `server_name` (or the bare name of `.example.com`).
    Exact,
    /// The longest leading wildcard, `*.example.com` (given as its suffix `.example.com`).
    Leading(&'a str),
    /// The longest trailing wildcard, `www.example.*` (given as its prefix `www.example.`).
    Trailing(&'a str),
    /// The first regex, in file order.
    Regex(&'a str),
    /// No name matched (or there was no host): the address's default server.
    Default,
}

impl std::fmt::Display for NameMatch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NameMatch::Exact => f.write_str("an exact server_name matched"),
            NameMatch::Leading(s) => write!(f, "no exact name; the longest leading wildcard *{s} matched"),
            NameMatch::Trailing(p) => {
                write!(f, "no exact name or leading wildcard; the longest trailing wildcard {p}* matched")
            }
            NameMatch::Regex(r) => write!(f, "no exact name or wildcard; the first regex ~{r} matched"),
            NameMatch::Default => f.write_str("no server_name matched: the default server of that address"),
        }
    }
}

/// Chooses the server block for a connection's local address and a request's host.
#[derive(Debug, Default)]
pub struct ServerTable {
    by_addr: Vec<(SocketAddr, NameTable)>,
}

impl ServerTable {
    pub fn build(servers: &[ServerIdentity]) -> Result<Self, Vec<ServerTableError>> {
        let mut errors = Vec::new();
        let mut by_addr: Vec<(SocketAddr, NameTable, Option<ServerId>)> = Vec::new();
        for (id, server) in servers.iter().enumerate() {
            for &addr in &server.listen {
                let slot = match by_addr.iter().position(|(a, _, _)| *a == addr) {
                    Some(i) => i,
                    None => {
                        by_addr.push((addr, NameTable { default: id, ..Default::default() }, None));
                        by_addr.len() - 1
                    }
                };
                let (_, table, explicit_default) = &mut by_addr[slot];
                if server.default_server {
                    match explicit_default {
                        Some(first) => {
                            errors.push(ServerTableError::TwoDefaults { addr, first: *first, second: id })
                        }
                        None => {
                            *explicit_default = Some(id);
                            table.default = id;
                        }
                    }
                }
                for name in &server.names {
                    if let Err(error) = table.add(name, id) {
                        errors.push(ServerTableError::BadRegex { server: id, name: name.clone(), error });
                    }
                }
            }
        }
        if !errors.is_empty() {
            errors.dedup();
            return Err(errors);
        }
        Ok(ServerTable {
            by_addr: by_addr
                .into_iter()
                .map(|(a, mut t, _)| {
                    t.sort();
                    (a, t)
                })
                .collect(),
        })
    }

    /// The server for a request that arrived at `local` with host `host` (already
    /// normalised; `None` when the request had no host).
    pub fn pick(&self, local: SocketAddr, host: Option<&str>) -> ServerId {
        self.pick_why(local, host).0
    }

    /// [`ServerTable::pick`], and why (for `portico explain`).
    pub fn pick_why(&self, local: SocketAddr, host: Option<&str>) -> (ServerId, NameMatch<'_>) {
        let table = self
            .by_addr
            .iter()
            .find(|(a, _)| *a == local)
            .or_else(|| {
                self.by_addr.iter().find(|(a, _)| {
                    a.port() == local.port() && a.ip().is_unspecified() && a.is_ipv4() == local.is_ipv4()
                })
            })
            .or_else(|| self.by_addr.iter().find(|(a, _)| a.port() == local.port()))
            .or_else(|| self.by_addr.first());
        table.map_or((0, NameMatch::Default), |(_, t)| t.pick(host))
    }

    /// The default server of the address a connection arrived on, before any request
    /// was read: its timeouts apply to the first request header.
    pub fn default_for(&self, local: SocketAddr) -> ServerId {
        self.pick(local, None)
    }

    /// The addresses to bind: a wildcard address covers the specific addresses on its
    /// port (they are told apart per connection by the local address), as nginx does.
    pub fn bind_addresses(&self) -> Vec<SocketAddr> {
        let mut out: Vec<SocketAddr> = Vec::new();
        for (addr, _) in &self.by_addr {
            let covered = !addr.ip().is_unspecified()
                && self.by_addr.iter().any(|(w, _)| {
                    w.ip().is_unspecified() && w.port() == addr.port() && w.is_ipv4() == addr.is_ipv4()
                });
            if !covered && !out.contains(addr) {
                out.push(*addr);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(listen: &[&str], names: &[&str], default_server: bool) -> ServerIdentity {
        ServerIdentity {
            listen: listen.iter().map(|l| parse_listen(l).unwrap()).collect(),
            names: names.iter().map(|s| s.to_string()).collect(),
            default_server,
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn listen_forms() {
        assert_eq!(parse_listen("80").unwrap(), addr("0.0.0.0:80"));
        assert_eq!(parse_listen("*:8080").unwrap(), addr("0.0.0.0:8080"));
        assert_eq!(parse_listen("127.0.0.1:8080").unwrap(), addr("127.0.0.1:8080"));
        assert_eq!(parse_listen("[::]:80").unwrap(), addr("[::]:80"));
        assert_eq!(parse_listen("localhost:81").unwrap(), addr("127.0.0.1:81"));
        assert_eq!(parse_listen("127.0.0.1").unwrap(), addr("127.0.0.1:80"));
        assert!(parse_listen("example.com:80").is_err());
        assert!(parse_listen("127.0.0.1:99999").is_err());
        assert!(parse_listen("eighty").is_err());
        let ssl = ListenOptions { ssl: true, ..ListenOptions::default() };
        assert_eq!(
            parse_listen_entry("443 ssl proxy_protocol").unwrap().1,
            ListenOptions { ssl: true, proxy_protocol: true, http2: false }
        );
        assert_eq!(
            parse_listen_entry("443 ssl http2").unwrap().1,
            ListenOptions { ssl: true, proxy_protocol: false, http2: true }
        );
        assert!(parse_listen_entry("80 http2").unwrap_err().contains("it needs `ssl`"));
        assert_eq!(parse_listen_entry("443 ssl").unwrap(), (addr("0.0.0.0:443"), ssl));
        assert_eq!(parse_listen_entry(" [::]:443  ssl ").unwrap(), (addr("[::]:443"), ssl));
        assert_eq!(parse_listen_entry("80").unwrap(), (addr("0.0.0.0:80"), ListenOptions::default()));
        assert!(parse_listen_entry("443 sll").unwrap_err().contains("`sll` is not a listen option"));
    }

    #[test]
    fn host_normalisation() {
        assert_eq!(normalize_host(b"LocalHost:18180").unwrap(), "localhost");
        assert_eq!(normalize_host(b"example.com.").unwrap(), "example.com");
        assert_eq!(normalize_host(b"[::1]:8080").unwrap(), "[::1]");
        assert_eq!(normalize_host(b"a..b"), Err(InvalidHost));
        assert_eq!(normalize_host(b"a/b"), Err(InvalidHost));
        assert_eq!(normalize_host(b"a\\b"), Err(InvalidHost));
        assert_eq!(normalize_host(b""), Err(InvalidHost));
        assert_eq!(normalize_host(b".a"), Err(InvalidHost));
        assert_eq!(normalize_host(b"a b"), Err(InvalidHost));
    }

    #[test]
    fn name_precedence_as_nginx() {
        let t = ServerTable::build(&[
            ident(&["80"], &["catchall"], false),
            ident(&["80"], &["~^www\\d+\\.example\\.com$"], false),
            ident(&["80"], &["*.example.com"], false),
            ident(&["80"], &["www.example.*"], false),
            ident(&["80"], &["www.example.com"], false),
            ident(&["80"], &["*.a.example.com"], false),
        ])
        .unwrap();
        let local = addr("127.0.0.1:80");
        assert_eq!(t.pick(local, Some("www.example.com")), 4);
        assert_eq!(t.pick(local, Some("x.a.example.com")), 5);
        assert_eq!(t.pick(local, Some("x.example.com")), 2);
        assert_eq!(t.pick(local, Some("www.example.org")), 3);
        assert_eq!(t.pick(local, Some("www1.example.org")), 0);
        assert_eq!(t.pick(local, Some("nothing.test")), 0);
        assert_eq!(t.pick(local, None), 0);
    }

    #[test]
    fn regex_names_beat_only_the_default() {
        let t = ServerTable::build(&[
            ident(&["80"], &["a"], false),
            ident(&["80"], &["~^www\\d+\\.test$"], false),
        ])
        .unwrap();
        assert_eq!(t.pick(addr("127.0.0.1:80"), Some("www1.test")), 1);
    }

    #[test]
    fn default_server_flag_and_listen_address() {
        let t = ServerTable::build(&[
            ident(&["80"], &["a"], false),
            ident(&["80"], &["b"], true),
            ident(&["127.0.0.2:80"], &["c"], false),
        ])
        .unwrap();
        assert_eq!(t.pick(addr("127.0.0.1:80"), Some("zzz")), 1);
        assert_eq!(t.pick(addr("127.0.0.1:80"), Some("a")), 0);
        // a specific address has its own server list: "a" is not listening there
        assert_eq!(t.pick(addr("127.0.0.2:80"), Some("a")), 2);
        assert_eq!(t.bind_addresses(), vec![addr("0.0.0.0:80")]);
    }

    #[test]
    fn dot_shorthand_covers_bare_and_subdomains() {
        let t = ServerTable::build(&[
            ident(&["80"], &["other"], false),
            ident(&["80"], &[".example.com"], false),
        ])
        .unwrap();
        let local = addr("127.0.0.1:80");
        assert_eq!(t.pick(local, Some("example.com")), 1);
        assert_eq!(t.pick(local, Some("a.example.com")), 1);
        assert_eq!(t.pick(local, Some("xexample.com")), 0);
    }

    #[test]
    fn two_defaults_are_refused() {
        let e = ServerTable::build(&[ident(&["80"], &[], true), ident(&["80"], &[], true)]).unwrap_err();
        assert_eq!(e, vec![ServerTableError::TwoDefaults { addr: addr("0.0.0.0:80"), first: 0, second: 1 }]);
    }
}
