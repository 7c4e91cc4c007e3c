//! Writing the converted model as Portico TOML: the top-level keys, then each
//! `[[server]]` with its `[[server.location]]`s, then the `[upstream.NAME]` pools; above
//! each key a comment naming the nginx file:line and the directive it came from. Pure.

use std::fmt::Write as _;

use super::convert::{toml_key, Converted, Item, Origin};
use super::includes::SourceFile;

/// The TOML text for `c`; `files` name the origins.
pub fn write(c: &Converted, files: &[SourceFile]) -> String {
    let place =
        |o: Origin| one_line(&format!("{}:{}", files.get(o.file).map_or("?", |f| f.shown.as_str()), o.line));
    let mut out = String::new();
    let main = one_line(files.first().map_or("?", |f| f.shown.as_str()));
    let _ =
        writeln!(out, "# Converted from {main} by `portico import-nginx`: each key names the nginx line it");
    let _ =
        writeln!(out, "# came from. Read the findings it printed, then run `portico check` on this file.");
    let items = |out: &mut String, items: &[Item]| {
        for i in items {
            // a location's `match` is its header's line, already named above it
            if i.key != "match" {
                let _ = writeln!(out, "# {}: {}", place(i.origin), one_line(&i.written));
            }
            let _ = writeln!(out, "{} = {}", key_path(&i.key), i.value);
        }
    };
    if !c.top.is_empty() {
        out.push('\n');
        items(&mut out, &c.top);
    }
    for s in &c.servers {
        out.push('\n');
        if let Some(o) = s.origin {
            let _ = writeln!(out, "# {}: server", place(o));
        }
        out.push_str("[[server]]\n");
        items(&mut out, &s.items);
        for l in &s.locations {
            out.push('\n');
            if let Some(o) = l.origin {
                let _ = writeln!(out, "# {}: {}", place(o), one_line(&l.written));
            }
            out.push_str("[[server.location]]\n");
            items(&mut out, &l.items);
        }
    }
    for u in &c.upstreams {
        out.push('\n');
        let _ = writeln!(out, "# {}: upstream {}", place(u.origin), one_line(&u.name));
        let _ = writeln!(out, "[upstream.{}]", toml_key(&u.name));
        items(&mut out, &u.items);
    }
    out
}

/// `log_format.main` stays a dotted key; anything else is one key.
fn key_path(key: &str) -> String {
    match key.split_once('.') {
        Some((head, rest)) if head == "log_format" => format!("{head}.{rest}"),
        _ => key.to_string(),
    }
}

/// A directive on one comment line: control characters (a line break would end the
/// comment, others TOML refuses in one) written as escapes.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() && c != '\t' { c.escape_default().to_string() } else { c.to_string() })
        .collect()
}
