//! The configuration file: TOML, a faithful equivalent of nginx `server` blocks.
//!
//! This module only assembles (with the process-wide keys of [`global`]). Each part is read by the module that acts on it (routing
//! reads `listen`/`server_name`/`match`, static_files reads `root`/`alias`/`try_files`,
//! log reads the log keys, uwsgi reads `uwsgi_pass`...), and every problem found anywhere
//! is reported with file, line and what to write instead.

pub mod global;
mod include;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::de::DeTable;

use crate::compression::Compression;
use crate::config::diag::{self, Diagnostic, Diagnostics};
use crate::config::section::Section;
use crate::error_pages::ErrorPages;
use crate::http1::settings::ConnectionSettings;
use crate::log::access::AccessFormat;
use crate::log::config::LogConfig;
use crate::real_ip::RealIp;
use crate::response_headers::ResponseHeaders;
use crate::return_directive::Return;
use crate::routing::locations::{LocationIndex, Matcher};
use crate::routing::servers::{
    parse_listen, parse_listen_entry, ListenOptions, ServerIdentity, ServerTable, ServerTableError,
};
use crate::static_files::config::{FileDefaults, FilesConfig};
use crate::tls::TlsSettings;
use crate::uwsgi::config::{resolve_passes, UpstreamConfig, UwsgiLocation};

use global::Global;

/// A loaded, validated configuration.
#[derive(Debug)]
pub struct Config {
    pub global: Global,
    pub sites: Vec<Site>,
    pub servers: ServerTable,
    /// `[upstream.NAME]` pools, then the implicit pools of `uwsgi_pass = "unix:..."`.
    pub upstreams: Vec<UpstreamConfig>,
    /// The ports whose connections are TLS.
    pub tls_ports: Vec<u16>,
    /// The ports whose connections start with a PROXY protocol header.
    pub proxy_ports: Vec<u16>,
}

/// One `[[server]]` block.
#[derive(Debug)]
pub struct Site {
    pub identity: ServerIdentity,
    /// What each `listen` entry (as `identity.listen`) says after its address.
    pub listen_options: Vec<ListenOptions>,
    /// The handshake configuration (certificate, protocols) of a server listening with
    /// `ssl`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// `set_real_ip_from`, `real_ip_header`, `real_ip_recursive`.
    pub real_ip: RealIp,
    /// The first `server_name`: `$server_name`, and `server:` in error-log lines.
    pub name: String,
    pub connection: ConnectionSettings,
    pub logs: LogConfig,
    pub locations: Vec<Location>,
    pub index: LocationIndex,
    /// The server's own `error_page`, for requests no location matches.
    pub error_pages: ErrorPages,
    /// The server's own `expires` and `add_header`, for requests no location matches.
    pub headers: ResponseHeaders,
    /// The server's own compression keys, for requests no location matches.
    pub compression: Compression,
    /// A server-level `return`: every request gets it before any location is looked up.
    pub ret: Option<Return>,
}

/// One `[[server.location]]` table.
#[derive(Debug)]
pub struct Location {
    pub matcher: Matcher,
    pub files: FilesConfig,
    pub uwsgi: Option<UwsgiLocation>,
    pub error_pages: ErrorPages,
    pub headers: ResponseHeaders,
    pub compression: Compression,
    /// The location's `return`, answered before try_files or the content.
    pub ret: Option<Return>,
}

/// The outcome of loading: the configuration and its warnings, or every diagnostic.
pub type Loaded = Result<(Config, Vec<Diagnostic>), Vec<Diagnostic>>;

/// Reads and validates a configuration file and the files it includes.
pub fn load(path: &Path) -> Loaded {
    match include::gather(path) {
        Ok((files, notes)) => parse_files(&files, notes),
        Err(message) => Err(vec![Diagnostic {
            severity: diag::Severity::Error,
            file: path.display().to_string(),
            line: 0,
            column: 0,
            message,
            hint: Some("pass the path of a Portico TOML file with -c".into()),
        }]),
    }
}

/// Validates configuration text; `file` names it in diagnostics. Relative paths are
/// resolved against `/` and `include` is not followed; use [`load`] for a file on disk.
pub fn parse(src: &str, file: &str) -> Loaded {
    let files =
        [include::SourceFile { shown: file.to_string(), dir: PathBuf::from("/"), src: src.to_string() }];
    parse_files(&files, Vec::new())
}

/// The main file's top-level settings, which every file's servers inherit.
struct TopLevel {
    formats: HashMap<String, AccessFormat>,
    logs: LogConfig,
    connection: ConnectionSettings,
    tls: TlsSettings,
    real_ip: RealIp,
}

/// Assembles `files` (the main one first, then what it includes) into one configuration.
fn parse_files(files: &[include::SourceFile], notes: Vec<include::Note>) -> Loaded {
    let mut diags: Vec<Diagnostics> =
        files.iter().map(|f| Diagnostics::new(f.shown.clone(), &f.src).with_dir(f.dir.clone())).collect();
    for n in notes {
        if n.error {
            diags[n.file].error(n.span, n.message, n.hint);
        } else {
            diags[n.file].warning(n.span, n.message, n.hint);
        }
    }
    let mut docs = Vec::new();
    for (i, f) in files.iter().enumerate() {
        match DeTable::parse(&f.src) {
            Ok(doc) => docs.push(Some(doc)),
            Err(e) => {
                diags[i].error(
                    e.span().unwrap_or(0..0),
                    format!("not valid TOML: {}", e.message().trim()),
                    Some("see https://toml.io for the syntax; strings need double quotes".into()),
                );
                docs.push(None);
            }
        }
    }
    let mut sections: Vec<Option<Section>> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            d.as_ref().map(|d| {
                Section::new(if i == 0 { "the top level" } else { "an included file" }, d.get_ref(), d.span())
            })
        })
        .collect();
    let (global, top) = {
        // the main file must be TOML for anything to be read
        let (Some(Some(top)), Some(d)) = (sections.first_mut(), diags.first_mut()) else {
            return Err(all(diags));
        };
        let global = Global::parse(top, d);
        let formats = LogConfig::parse_formats(top, d);
        let logs = LogConfig::parse(top, &LogConfig::builtin(), &formats, d);
        let connection = ConnectionSettings::parse(top, &ConnectionSettings::defaults(), d);
        let tls = TlsSettings::parse(top, &TlsSettings::default(), d);
        let real_ip = RealIp::parse(top, &RealIp::default(), d);
        (global, TopLevel { formats, logs, connection, tls, real_ip })
    };

    // the upstreams of every file first: a server in one file may use a pool of another
    let mut upstreams = Vec::new();
    let mut upstream_names = HashMap::new();
    for (i, section) in sections.iter_mut().enumerate() {
        let Some(section) = section else { continue };
        // (read, so that it is a known key; gather followed it)
        let _ = section.get::<Vec<String>>("include", "include = [\"sites/*.toml\"]", &mut diags[i]);
        for (name, mut us) in section.tables("upstream", "[upstream.NAME]", &mut diags[i]) {
            let name = name.map(|n| n.into_inner()).unwrap_or_default();
            if let Some(u) = UpstreamConfig::parse(&name, &mut us, &mut diags[i]) {
                upstream_names.insert(name, upstreams.len());
                upstreams.push(u);
            }
            us.finish(&mut diags[i]);
        }
    }
    let mut sites = Vec::new();
    // where each server's `default_server` and `server_name` are written (file, span),
    // for the errors only the whole table of servers shows
    let mut identity_spans = Vec::new();
    for (i, section) in sections.iter_mut().enumerate() {
        let Some(section) = section else { continue };
        let first = sites.len();
        for (_, mut s) in section.tables("server", "[[server]]", &mut diags[i]) {
            sites.push(parse_site(&mut s, &top, &mut diags[i]));
            let at = |key| s.key_span(key).unwrap_or_else(|| s.span());
            identity_spans.push((i, at("default_server"), at("server_name"), at("listen")));
            s.finish(&mut diags[i]);
        }
        resolve_passes(
            sites[first..].iter_mut().flat_map(|s| s.locations.iter_mut()).filter_map(|l| l.uwsgi.as_mut()),
            &upstream_names,
            &mut upstreams,
            &mut diags[i],
        );
    }
    for (i, section) in sections.into_iter().enumerate() {
        if let Some(section) = section {
            section.finish(&mut diags[i]);
        }
    }
    if sites.is_empty() {
        diags[0].error(
            0..0,
            "no [[server]] block: Portico would serve nothing",
            Some("add a [[server]] with `listen` and at least one [[server.location]]".into()),
        );
    }

    // `ssl` and `proxy_protocol` belong to the port's socket: every entry on a port says
    // them, or none does (nginx lets one entry decide for all; here they are said where
    // they apply)
    let mut ports: Vec<(u16, ListenOptions, usize)> = Vec::new();
    for (id, site) in sites.iter().enumerate() {
        for (addr, &options) in site.identity.listen.iter().zip(&site.listen_options) {
            match ports.iter().find(|(p, _, _)| *p == addr.port()) {
                Some(&(port, first_options, first)) if first_options != options => {
                    let (file, _, _, span) = &identity_spans[id];
                    let word = if first_options.ssl != options.ssl {
                        "ssl"
                    } else if first_options.http2 != options.http2 {
                        "http2"
                    } else {
                        "proxy_protocol"
                    };
                    diags[*file].error(
                        span.clone(),
                        format!(
                            "port {port} is `{word}` for one of servers #{} and #{} and not for the other: one socket cannot be both",
                            first + 1,
                            id + 1
                        ),
                        Some(format!("write \"{port} {word}\" in both, or use another port")),
                    );
                }
                Some(_) => {}
                None => ports.push((addr.port(), options, id)),
            }
        }
    }
    let tls_ports = ports.iter().filter(|(_, o, _)| o.ssl).map(|(p, _, _)| *p).collect();
    let proxy_ports = ports.iter().filter(|(_, o, _)| o.proxy_protocol).map(|(p, _, _)| *p).collect();

    let identities: Vec<ServerIdentity> = sites.iter().map(|s| s.identity.clone()).collect();
    let servers = match ServerTable::build(&identities) {
        Ok(t) => Some(t),
        Err(errors) => {
            for e in errors {
                match e {
                    ServerTableError::TwoDefaults { addr, first, second } => {
                        let (file, span, _, _) = &identity_spans[second];
                        diags[*file].error(
                            span.clone(),
                            format!(
                                "a second `default_server` for {addr} (server #{} already is, server #{} is too)",
                                first + 1,
                                second + 1
                            ),
                            Some("keep default_server = true on one of them".into()),
                        )
                    }
                    ServerTableError::BadRegex { server, name, error } => {
                        let (file, _, span, _) = &identity_spans[server];
                        diags[*file].error(
                            span.clone(),
                            format!(
                                "server #{}: server_name `{name}` is not a valid regex: {error}",
                                server + 1
                            ),
                            Some(
                                "regex names start with ~, like \"~^www\\\\d+\\\\.example\\\\.com$\"".into(),
                            ),
                        )
                    }
                }
            }
            None
        }
    };
    let failed = diags.iter().any(Diagnostics::has_errors);
    match servers {
        Some(servers) if !failed => {
            Ok((Config { global, sites, servers, upstreams, tls_ports, proxy_ports }, all(diags)))
        }
        _ => Err(all(diags)),
    }
}

/// Every file's diagnostics, the main file's first.
fn all(diags: Vec<Diagnostics>) -> Vec<Diagnostic> {
    diags.into_iter().flat_map(Diagnostics::into_vec).collect()
}

fn parse_site(s: &mut Section, top: &TopLevel, diags: &mut Diagnostics) -> Site {
    let listen = match s.get::<Vec<String>>("listen", "listen = [\"127.0.0.1:8080\"]", diags) {
        Some(l) => {
            let span = l.span();
            let texts = l.into_inner();
            if texts.is_empty() {
                diags.error(span.clone(), "listen is empty", Some("write listen = [\"80\"]".into()));
            }
            let mut entries = Vec::new();
            for text in texts {
                match parse_listen_entry(&text) {
                    Ok(a) => entries.push(a),
                    Err(e) => diags.error(
                        span.clone(),
                        format!("listen: {e}"),
                        Some("write \"80\", \"127.0.0.1:8080\", \"[::]:80\" or \"443 ssl\"".into()),
                    ),
                }
            }
            entries
        }
        None => vec![(parse_listen("80").unwrap_or_else(|_| unreachable!()), ListenOptions::default())],
    };
    let tls_settings = TlsSettings::parse(s, &top.tls, diags);
    // `http2 = true` as nginx ≥ 1.25's `http2 on`: this server's TLS handshakes offer it
    let http2_key = s.get::<bool>("http2", "http2 = true", diags);
    let http2 = http2_key.as_ref().is_some_and(|h| *h.get_ref()) || listen.iter().any(|(_, o)| o.http2);
    if let Some(h) = http2_key.filter(|h| *h.get_ref() && !listen.iter().any(|(_, o)| o.ssl)) {
        diags.warning(
            h.span(),
            "http2 = true but this server has no `ssl` listen entry: HTTP/2 is offered in TLS handshakes only",
            Some("add listen = [\"443 ssl\"] (with a certificate), or remove http2".into()),
        );
    }
    let tls = if listen.iter().any(|(_, o)| o.ssl) {
        let config = tls_settings.server_config(http2);
        if config.is_none() && s.key_span("ssl_certificate").is_none() {
            diags.error(
                s.key_span("listen").unwrap_or_else(|| s.span()),
                "this server listens with `ssl` but has no ssl_certificate",
                Some("add ssl_certificate = \"/etc/letsencrypt/live/NAME/fullchain.pem\" and ssl_certificate_key = \"…/privkey.pem\"".into()),
            );
        }
        config
    } else {
        None
    };
    let real_ip = RealIp::parse(s, &top.real_ip, diags);
    if real_ip.uses_proxy_protocol() && !listen.iter().any(|(_, o)| o.proxy_protocol) {
        diags.warning(
            s.key_span("real_ip_header").unwrap_or_else(|| s.span()),
            "real_ip_header = \"proxy_protocol\" but no listen entry of this server says `proxy_protocol`: the client's address stays the peer's",
            Some("write listen = [\"80 proxy_protocol\"] where the balancer connects".into()),
        );
    }
    let listen_options = listen.iter().map(|(_, o)| *o).collect();
    let listen = listen.into_iter().map(|(a, _)| a).collect();
    let names = s
        .get::<Vec<String>>("server_name", "server_name = [\"localhost\"]", diags)
        .map(|n| n.into_inner())
        .unwrap_or_else(|| vec![String::new()]);
    let default_server =
        s.get::<bool>("default_server", "default_server = true", diags).is_some_and(|d| d.into_inner());
    let connection = ConnectionSettings::parse(s, &top.connection, diags);
    let logs = LogConfig::parse(s, &top.logs, &top.formats, diags);
    let file_defaults = FileDefaults::parse(s, diags);
    let site_error_pages = ErrorPages::parse(s, &ErrorPages::default(), diags);
    let site_headers = ResponseHeaders::parse(s, &ResponseHeaders::default(), &[], diags);
    let site_compression = Compression::parse(s, &Compression::default(), diags);
    let site_return = Return::parse(s, &[], diags);

    let mut locations = Vec::new();
    let mut spans = Vec::new();
    for (_, mut ls) in s.tables("location", "[[server.location]]", diags) {
        let span = ls.span();
        if let Some(l) = parse_location(
            &mut ls,
            &file_defaults,
            &site_error_pages,
            &site_headers,
            &site_compression,
            diags,
        ) {
            locations.push(l);
            spans.push(span);
        }
        ls.finish(diags);
    }
    if locations.is_empty() && site_return.is_none() {
        diags.warning(
            s.span(),
            "this [[server]] has no locations: every request gets 404",
            Some("add [[server.location]] tables with `match = \"/\"`".into()),
        );
    }
    let index = match LocationIndex::build(locations.iter().map(|l| &l.matcher)) {
        Ok(i) => i,
        Err(dups) => {
            for d in dups {
                diags.error(
                    spans[d.second].clone(),
                    "this location's `match` repeats an earlier location's",
                    Some("merge the two [[server.location]] tables into one".into()),
                );
            }
            LocationIndex::default()
        }
    };
    // every `@name` a try_files or error_page refers to, once (locations inherit the
    // server's error_page, which would otherwise be reported for each of them)
    let mut referred: Vec<&(String, std::ops::Range<usize>)> = site_error_pages.named.iter().collect();
    for l in &locations {
        for r in l.files.named_fallback.iter().chain(l.error_pages.named.iter()) {
            if !referred.contains(&r) {
                referred.push(r);
            }
        }
    }
    for (name, at) in referred {
        if index.named(name).is_none() {
            diags.error(
                at.clone(),
                format!("there is no location `@{name}` in this server"),
                Some(format!("add a [[server.location]] with match = \"@{name}\"")),
            );
        }
    }
    for (l, span) in locations.iter().zip(&spans) {
        if l.files.serves_no_file() && l.uwsgi.is_none() && l.ret.is_none() && site_return.is_none() {
            diags.warning(
                span.clone(),
                "this location has no `root`, `alias`, `try_files` or `uwsgi_pass`: every request it matches gets 404",
                Some("set `root` on the server or give the location `alias` or `uwsgi_pass`".into()),
            );
        }
    }
    Site {
        identity: ServerIdentity { listen, names: names.clone(), default_server },
        listen_options,
        tls,
        real_ip,
        name: names.first().cloned().unwrap_or_default(),
        connection,
        logs,
        locations,
        index,
        error_pages: site_error_pages,
        headers: site_headers,
        compression: site_compression,
        ret: site_return,
    }
}

fn parse_location(
    s: &mut Section,
    file_defaults: &FileDefaults,
    site_error_pages: &ErrorPages,
    site_headers: &ResponseHeaders,
    site_compression: &Compression,
    diags: &mut Diagnostics,
) -> Option<Location> {
    let matcher = match s.get::<String>("match", "match = \"/static\"", diags) {
        Some(m) => match Matcher::parse(m.get_ref()) {
            Ok(matcher) => Some(matcher),
            Err(e) => {
                diags.error(m.span(), e.message, Some(e.hint));
                None
            }
        },
        None => {
            if s.key_span("match").is_none() {
                diags.error(
                    s.span(),
                    "this [[server.location]] has no `match`",
                    Some("add match = \"/path\" (prefix), \"= /path\", \"~ regex\" or \"@name\"".into()),
                );
            }
            None
        }
    };
    let files = FilesConfig::parse(s, file_defaults, matcher.as_ref(), diags);
    let named_groups = Matcher::group_names(matcher.as_ref());
    let uwsgi = UwsgiLocation::parse(s, &named_groups, diags);
    let error_pages = ErrorPages::parse(s, site_error_pages, diags);
    let headers = ResponseHeaders::parse(s, site_headers, &named_groups, diags);
    let compression = Compression::parse(s, site_compression, diags);
    let ret = Return::parse(s, &named_groups, diags);
    Some(Location { matcher: matcher?, files, uwsgi, error_pages, headers, compression, ret })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(src: &str) -> Vec<Diagnostic> {
        match parse(src, "t.toml") {
            Ok(_) => panic!("expected errors for:\n{src}"),
            Err(d) => d,
        }
    }

    #[test]
    fn minimal_config_loads() {
        let (c, warnings) = parse(
            "[[server]]\nlisten = [\"127.0.0.1:8080\"]\nroot = \"/srv\"\n[[server.location]]\nmatch = \"/\"\n",
            "t.toml",
        )
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(c.sites.len(), 1);
        assert_eq!(c.sites[0].locations.len(), 1);
    }

    #[test]
    fn every_error_is_reported_with_its_line() {
        let d = errors(
            "[[server]]\nlisten = [\"nope\"]\n[[server.location]]\nmatch = \"~ (\"\n[[server.location]]\nmatch = \"/\"\naliass = \"/x/\"\n",
        );
        let errors: Vec<&Diagnostic> = d.iter().filter(|d| d.severity == diag::Severity::Error).collect();
        let lines: Vec<usize> = errors.iter().map(|d| d.line).collect();
        assert_eq!(lines, vec![2, 4, 7], "{d:#?}");
        assert!(errors[2].hint.as_deref().unwrap().contains("alias"));
    }

    #[test]
    fn server_table_errors_point_at_their_keys() {
        let d = errors(
            "[[server]]\nlisten = [\"80\"]\ndefault_server = true\n[[server.location]]\nmatch = \"/\"\n\
             [[server]]\nlisten = [\"80\"]\nserver_name = [\"~(\"]\ndefault_server = true\n[[server.location]]\nmatch = \"/\"\n",
        );
        let at: Vec<(usize, &str)> = d
            .iter()
            .filter(|d| d.severity == diag::Severity::Error)
            .map(|d| (d.line, d.message.as_str()))
            .collect();
        assert_eq!(at.len(), 2, "{d:#?}");
        assert_eq!(at[0].0, 8, "the bad regex name: {d:#?}");
        assert!(at[0].1.contains("not a valid regex"));
        assert_eq!(at[1].0, 9, "the second default_server: {d:#?}");
        assert!(at[1].1.contains("default_server"));
    }
}
