//! The traps an nginx site carries, found while converting it: each finding names the
//! nginx line, what nginx does there and what the converted configuration does instead.
//! Pure but for the symlink walk (`preflight::files::leaving_links`), which reads the
//! directories the site serves.

use super::convert::{Converted, Item, Location, Origin};
use super::syntax::Directive;

/// One trap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub origin: Origin,
    pub nginx: String,
    pub portico: String,
}

fn get<'a>(items: &'a [Item], key: &str) -> Option<&'a Item> {
    items.iter().find(|i| i.key == key)
}

fn text<'a>(items: &'a [Item], key: &str) -> Option<&'a str> {
    get(items, key).and_then(|i| i.value.as_str())
}

/// Every finding for the converted site (`tree` for directives the model leaves out).
pub fn lints(c: &Converted, tree: &[Directive]) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in &c.servers {
        let server_root = text(&s.items, "root");
        for l in &s.locations {
            let matcher = text(&l.items, "match").unwrap_or("");
            alias_slash(l, matcher, &mut out);
            if let Some(tf) = get(&l.items, "try_files") {
                let tries_uri = tf
                    .value
                    .as_array()
                    .is_some_and(|a| a.iter().any(|v| v.as_str().is_some_and(|s| s.contains("$uri"))));
                if tries_uri
                    && text(&l.items, "root").is_none()
                    && text(&l.items, "alias").is_none()
                    && server_root.is_none()
                {
                    out.push(Finding {
                        origin: tf.origin,
                        nginx: "no root is set here, so nginx looks for $uri in its compiled-in html directory (/usr/share/nginx/html on Debian) and may serve what it finds there".into(),
                        portico: "try_files never finds a file without a root and always takes its fallback (`portico check` warns); set root if files should be tried".into(),
                    });
                }
            }
            if let Some(pass) = get(&l.items, "uwsgi_pass") {
                if !l.includes_params {
                    out.push(Finding {
                        origin: pass.origin,
                        nginx: "uwsgi_pass without `include uwsgi_params`: nginx sends the app only the uwsgi_param lines written here (no REQUEST_METHOD, PATH_INFO...), which most apps cannot serve".into(),
                        portico: "the stock params (nginx's uwsgi_params) are always sent; uwsgi_param lines add to them".into(),
                    });
                }
                if let Some(sock) = pass.value.as_str().and_then(|p| p.strip_prefix("unix:")) {
                    if sock.starts_with("/tmp/") {
                        out.push(tmp_socket(pass.origin, sock));
                    }
                }
            }
        }
        shadowing(&s.locations, &mut out);
        if !s.items.iter().chain(s.locations.iter().flat_map(|l| l.items.iter())).any(|i| i.key == "symlinks")
        {
            symlinks(s.items.iter().chain(s.locations.iter().flat_map(|l| l.items.iter())), &mut out);
        }
    }
    for u in &c.upstreams {
        if let Some(servers) = get(&u.items, "servers") {
            for v in servers.value.as_array().into_iter().flatten() {
                if let Some(sock) = v.as_str().and_then(|p| p.strip_prefix("unix:")) {
                    if sock.starts_with("/tmp/") {
                        out.push(tmp_socket(servers.origin, sock.split_whitespace().next().unwrap_or(sock)));
                    }
                }
            }
        }
    }
    underscores(tree, &mut out);
    out
}

fn tmp_socket(origin: Origin, sock: &str) -> Finding {
    Finding {
        origin,
        nginx: format!("the uWSGI socket {sock} is under /tmp: a service with systemd's PrivateTmp= (Debian's units for several servers have it) sees a /tmp of its own, without the socket, and every request is a 502"),
        portico: "converted as it is; `portico check --unit portico.service` says when the unit has PrivateTmp. Better: put the socket under /run/uwsgi/ in both the uWSGI ini and here".into(),
    }
}

/// `location /static` with `alias /srv/static/`: `/static../x` maps beside the directory.
fn alias_slash(l: &Location, matcher: &str, out: &mut Vec<Finding>) {
    let prefix = matcher.strip_prefix("^~ ").unwrap_or(matcher);
    if prefix.starts_with(['=', '~', '@']) || prefix.ends_with('/') {
        return;
    }
    if let Some(alias) = get(&l.items, "alias") {
        if alias.value.as_str().is_some_and(|a| a.ends_with('/')) {
            out.push(Finding {
                origin: alias.origin,
                nginx: format!("`location {prefix}` (no trailing slash) with an alias that has one: nginx serves {prefix}../x from the directory beside the alias (a path traversal)"),
                portico: format!("the rest of the path is opened beneath the alias directory, so {prefix}../x is refused (404); write `location {prefix}/` to say what is meant"),
            });
        }
    }
}

/// A regex location that takes requests from a longer prefix location (nginx: the regex
/// wins unless the prefix is `^~`).
fn shadowing(locations: &[Location], out: &mut Vec<Finding>) {
    let regexes: Vec<(&Location, regex::Regex, &str)> = locations
        .iter()
        .filter_map(|l| {
            let m = text(&l.items, "match")?;
            let (insensitive, re) = match m.split_once(' ') {
                Some(("~", re)) => (false, re),
                Some(("~*", re)) => (true, re),
                _ => return None,
            };
            let compiled = regex::RegexBuilder::new(re)
                .case_insensitive(insensitive)
                .size_limit(1 << 20)
                .build()
                .ok()?;
            Some((l, compiled, m))
        })
        .collect();
    for l in locations {
        let Some(m) = text(&l.items, "match") else { continue };
        if m.starts_with(['=', '~', '@', '^']) || m == "/" {
            continue;
        }
        let base = m.trim_end_matches('/');
        let probes = [
            "", "/", "/x", "/x.css", "/x.js", "/x.php", "/x.html", "/x.png", "/x.jpg", "/x.svg", "/x.json",
            "x",
        ];
        for (r, re, rm) in &regexes {
            if let Some(p) =
                probes.iter().map(|p| format!("{base}{p}")).find(|p| p.starts_with(m) && re.is_match(p))
            {
                out.push(Finding {
                    origin: r.origin.or(l.origin).unwrap_or(Origin { file: 0, line: 0 }),
                    nginx: format!("the regex location `{rm}` takes requests the longer prefix location `{m}` would serve (e.g. {p}): nginx tries regexes after the prefixes and a matching one wins"),
                    portico: format!("the same in Portico (nginx's order is kept); write `^~ {m}` if the prefix should win"),
                });
            }
        }
    }
}

/// nginx follows every symlink (`disable_symlinks off`, its default); Portico's rule
/// refuses those that leave the directory: the ones that would stop being served.
fn symlinks<'a>(items: impl Iterator<Item = &'a Item>, out: &mut Vec<Finding>) {
    let mut seen = Vec::new();
    for item in items.filter(|i| i.key == "root" || i.key == "alias") {
        let Some(path) = item.value.as_str() else { continue };
        // the fixed part of the path; components written after a variable are followed
        let (base, rest) = match path.find('$') {
            Some(i) => match path[..i].rfind('/') {
                Some(j) => (&path[..j], &path[j..]),
                None => continue,
            },
            None => (path, ""),
        };
        if base.is_empty() || seen.contains(&base) {
            continue;
        }
        seen.push(base);
        let written: Vec<&str> = rest.split('/').filter(|c| !c.is_empty() && !c.contains('$')).collect();
        let (leaving, _) = crate::preflight::files::leaving_links(std::path::Path::new(base), &written);
        for link in leaving.iter().take(5) {
            out.push(Finding {
                origin: item.origin,
                nginx: format!("nginx (disable_symlinks off, its default) follows {} → {}, which leaves {base}", link.link.display(), link.target.display()),
                portico: "refused (403) by the default rule, symlinks = \"inside\": set symlinks = \"follow\" on this location if it is meant, or replace the link with what it points to".into(),
            });
        }
    }
}

/// `underscores_in_headers on`, wherever it is.
fn underscores(tree: &[Directive], out: &mut Vec<Finding>) {
    for d in tree {
        if d.name == "underscores_in_headers" && d.args.first().map(String::as_str) == Some("on") {
            out.push(Finding {
                origin: Origin { file: d.file, line: d.line },
                nginx: "underscores_in_headers on: nginx passes X_Api_Key to the app as HTTP_X_API_KEY, the same name as X-Api-Key".into(),
                portico: "no header with `_` in its name is passed to uWSGI (nginx's default): a client sending one must use `-`".into(),
            });
        }
        if let Some(b) = &d.block {
            underscores(b, out);
        }
    }
}
