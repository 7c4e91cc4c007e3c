//! `portico explain`: the route a request would take, told by the server's own steps — the
//! server choice (`ServerTable::pick`), the checks before routing, the location search
//! (`LocationIndex::search`, which reports each location it looks at), the internal
//! redirects (`internal_redirects::route`) with each location's content step
//! (`content::run_location`, and `try_files_seen` for its candidates), and the answer:
//! the file that would be sent, Portico's own page, or the upstream. Nothing is sent or
//! logged; files are only opened.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt::Write as _;
use std::net::SocketAddr;

use crate::config_file::{Config, Location, Site};
use crate::http1::request_head::{parse_head, HeadLimits, Request};
use crate::log::Note;
use crate::reply::Body;
use crate::routing::locations::Considered;
use crate::routing::servers::normalize_host;
use crate::static_files::serve::{try_files_seen, Outcome};

use super::internal_redirects::{route, Routed};
use super::request_state::RequestInfo;
use super::request_vars::Vars;

/// The request to explain.
pub struct Question<'a> {
    pub method: &'a str,
    /// A path (`/static/app.css?v=1`) or an absolute URL (`http://localhost:8080/x`).
    pub url: &'a str,
    pub host: Option<&'a str>,
}

/// One round of the routing: the location, the URI it was given, its try_files trail.
struct Round {
    location: usize,
    uri: Vec<u8>,
    candidates: Vec<String>,
    outcome: String,
}

thread_local! {
    /// What the content steps of this explanation saw (the step is a plain function).
    static ROUNDS: RefCell<Vec<Round>> = const { RefCell::new(Vec::new()) };
}

/// Explains `question` against `config`, as the server would answer it.
pub fn explain(config: &Config, question: &Question) -> Result<String, String> {
    let (url_host, port, target) = split_url(question.url)?;
    let host = question.host.or(url_host).map_or_else(|| default_host(config), str::to_string);
    let addrs = config.servers.bind_addresses();
    let local = port
        .and_then(|p| addrs.iter().find(|a| a.port() == p))
        .or(addrs.first())
        .copied()
        .ok_or("the configuration listens nowhere")?;
    let local = if local.ip().is_unspecified() {
        SocketAddr::new([127, 0, 0, 1].into(), local.port())
    } else {
        local
    };
    let raw = format!("{} {target} HTTP/1.1\r\nHost: {host}\r\n\r\n", question.method);
    let head = match parse_head(raw.as_bytes(), &HeadLimits::default(), Vec::new()) {
        Ok(Ok(head)) => head,
        Ok(Err(_)) => return Err("the request is incomplete".into()),
        Err(e) => return Err(format!("the server would answer {}: {}", e.status, e.reason)),
    };
    let req = Request::new(&head, raw.as_bytes());
    let mut out = String::new();

    let normalized = req.host().map(normalize_host);
    let (site_id, why) = match &normalized {
        Some(Ok(h)) => config.servers.pick_why(local, Some(h.as_ref())),
        _ => config.servers.pick_why(local, None),
    };
    let site = &config.sites[site_id];
    let _ = writeln!(
        out,
        "server: #{} (server_name {:?}) for Host \"{host}\" on {local}: {why}",
        site_id + 1,
        site.identity.names,
    );

    let client = SocketAddr::new([127, 0, 0, 1].into(), 40000);
    let mut info = RequestInfo::new(req, 0, 1, std::time::Instant::now(), (Some(client), Some(local)));
    let mut notes: Vec<Note> = Vec::new();
    if let Err(status) = super::request_checks::check_request(site, &mut info, normalized, &mut notes) {
        let _ = writeln!(out, "answer: {status}, before any location ({})", messages(&notes));
        return Ok(out);
    }
    let _ = writeln!(out, "uri: {} (normalised)", String::from_utf8_lossy(&info.uri));
    ROUNDS.with(|r| r.borrow_mut().clear());
    let routed = route(site, &mut info, &mut notes, explained_content);
    let rounds = ROUNDS.with(|r| std::mem::take(&mut *r.borrow_mut()));
    for round in &rounds {
        locations_searched(site, round, &mut out);
        for c in &round.candidates {
            let _ = writeln!(out, "    try_files {c}");
        }
        let _ = writeln!(out, "    then: {}", round.outcome);
    }
    if rounds.is_empty() {
        let _ = writeln!(out, "location: none matches");
    }
    match routed {
        Routed::Reply(reply, _) => {
            let ctype = reply.head.content_type.as_deref().unwrap_or("-").to_string();
            let what = match &reply.body {
                Body::File { file, .. } => format!("the file {}", file_path(file)),
                Body::Bytes(_) => "Portico's own page".into(),
                Body::Empty => "no body".into(),
            };
            let length = reply.body_len();
            let _ = writeln!(out, "answer: {} with {what} ({ctype}, {length} bytes)", reply.head.status);
            if let Some(loc) = &reply.head.location {
                let _ = writeln!(out, "    Location: {loc}");
            }
        }
        Routed::Forward(id) => {
            let up = site.locations[id].uwsgi.as_ref().and_then(|u| config.upstreams.get(u.upstream));
            match up {
                Some(up) => {
                    let servers: Vec<String> = up.servers.iter().map(|s| s.addr.to_string()).collect();
                    let _ = writeln!(
                        out,
                        "answer: forwarded to upstream {} — {} (a fresh pool picks {} first)",
                        up.name,
                        servers.join(", "),
                        servers.first().map_or("-", String::as_str)
                    );
                }
                None => {
                    let _ = writeln!(out, "answer: 500, the location's upstream is missing");
                }
            }
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(out, "error log: {}", messages(&notes));
    }
    Ok(out)
}

/// The content step, watched: the try_files candidates, then the server's own step.
fn explained_content<'r>(
    site: &'r Site,
    loc: &'r Location,
    info: &mut RequestInfo<'r>,
    notes: &mut Vec<Note>,
) -> Option<Outcome> {
    let mut candidates = Vec::new();
    {
        let vars = Vars::of_request(info, &site.name);
        let req = super::content::file_request(info, &vars);
        let _ = try_files_seen(&loc.files, &req, &mut |uri, mapped| {
            let uri = String::from_utf8_lossy(uri);
            candidates.push(match mapped {
                None => format!("{uri}: maps to no file (outside the directory, or no root)"),
                Some((p, true)) => format!("{uri} -> {}: exists", String::from_utf8_lossy(&p.full())),
                Some((p, false)) => format!(
                    "{uri} -> {}: missing, unreadable, hidden or a refused symlink",
                    String::from_utf8_lossy(&p.full())
                ),
            });
        });
    }
    let uri = info.uri.to_vec();
    let outcome = super::content::run_location(site, loc, info, notes);
    let shown = match &outcome {
        None => "forward to uWSGI".to_string(),
        Some(Outcome::Reply(r)) => format!("answer {}", r.head.status),
        Some(Outcome::Status(s)) => format!("status {s} (an error_page may take it)"),
        Some(Outcome::Redirect(u)) => format!("internal redirect to {}", String::from_utf8_lossy(u)),
        Some(Outcome::Named(n)) => format!("go to @{n}"),
    };
    let location = site.locations.iter().position(|l| std::ptr::eq(l, loc)).unwrap_or(0);
    ROUNDS.with(|r| r.borrow_mut().push(Round { location, uri, candidates, outcome: shown }));
    outcome
}

/// The search for one round's URI, each location as the search saw it.
fn locations_searched(site: &Site, round: &Round, out: &mut String) {
    let chosen = &site.locations[round.location];
    if matches!(chosen.matcher, crate::routing::locations::Matcher::Named(_)) {
        let _ = writeln!(out, "location {} (named: reached from try_files or error_page)", chosen.matcher);
        return;
    }
    let _ = writeln!(out, "search for {}:", String::from_utf8_lossy(&round.uri));
    let _ = site.index.search(Cow::Borrowed(&round.uri), &mut |id, seen| {
        let why = match seen {
            Considered::Exact => "equal: chosen",
            Considered::PrefixMisses => "prefix does not match",
            Considered::LongestPrefix { stops_regex: true } => {
                "the longest matching prefix, ^~: chosen, no regex tried"
            }
            Considered::LongestPrefix { stops_regex: false } => {
                "the longest matching prefix, kept while regexes are tried"
            }
            Considered::RegexMatches => "regex matches: chosen (the first in file order)",
            Considered::RegexMisses => "regex does not match",
        };
        let _ = writeln!(out, "    {}: {why}", site.locations[id].matcher);
    });
    let _ = writeln!(out, "location {} serves it", chosen.matcher);
}

/// `http://host:port/path` → (host, port, `/path`); a bare path stays as it is.
fn split_url(url: &str) -> Result<(Option<&str>, Option<u16>, &str), String> {
    let Some(rest) = url.strip_prefix("http://") else {
        return if url.starts_with('/') {
            Ok((None, None, url))
        } else {
            Err(format!("`{url}` is not a path or an http:// URL"))
        };
    };
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    match authority.rsplit_once(':') {
        Some((h, p)) => Ok((Some(h), Some(p.parse().map_err(|_| format!("`{p}` is not a port"))?), path)),
        None => Ok((Some(authority), None, path)),
    }
}

fn default_host(config: &Config) -> String {
    config
        .sites
        .first()
        .and_then(|s| s.identity.names.first())
        .filter(|n| !n.is_empty())
        .cloned()
        .unwrap_or("localhost".into())
}

fn messages(notes: &[Note]) -> String {
    notes.iter().map(|n| n.message.as_str()).collect::<Vec<_>>().join("; ")
}

/// The path of an opened file, from /proc.
fn file_path(file: &crate::reply::OpenFile) -> String {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_or_else(|_| "?".into(), |p| p.display().to_string())
}
