//! nginx-style variables (`$uri`, `$http_user_agent`, `$1`...) and the templates that use
//! them: `alias` and `try_files` paths, `log_format` lines, `uwsgi_param` values.
//!
//! A template is compiled once from the configuration (unknown variables are refused there)
//! and rendered per request from a [`VarSource`], which whoever holds the request data
//! implements. Pure: no I/O, no clock.

use std::fmt;

/// One variable a template can name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Var {
    // Request line and URI
    Request,
    RequestMethod,
    RequestUri,
    Uri,
    Args,
    IsArgs,
    ServerProtocol,
    Scheme,
    /// `on` over TLS, else empty.
    Https,
    // Connection and server
    Host,
    RemoteAddr,
    RemotePort,
    RemoteUser,
    ProxyProtocolAddr,
    ProxyProtocolPort,
    ServerAddr,
    ServerPort,
    ServerName,
    DocumentRoot,
    Connection,
    ConnectionRequests,
    // Request headers
    ContentType,
    ContentLength,
    /// `$http_NAME`, stored as the header name (`user-agent` for `$http_user_agent`).
    Http(String),
    /// `$1`..`$9` from the regex location that matched.
    Capture(usize),
    /// `$name` for a `(?P<name>...)` group of the location's regex.
    NamedCapture(String),
    // Known only once the response is done: for log formats.
    Status,
    BodyBytesSent,
    BytesSent,
    RequestLength,
    RequestTime,
    TimeLocal,
    TimeIso8601,
    Msec,
    Pid,
    UpstreamAddr,
    UpstreamStatus,
    UpstreamResponseTime,
    /// `$sent_http_NAME`: a response header, stored as its lower-case name.
    SentHttp(String),
}

impl Var {
    /// Whether the value exists only after the response (so only log formats may use it).
    pub fn is_response_phase(&self) -> bool {
        matches!(
            self,
            Var::Status
                | Var::BodyBytesSent
                | Var::BytesSent
                | Var::RequestLength
                | Var::RequestTime
                | Var::TimeLocal
                | Var::TimeIso8601
                | Var::Msec
                | Var::UpstreamAddr
                | Var::UpstreamStatus
                | Var::UpstreamResponseTime
                | Var::SentHttp(_)
        )
    }

    fn from_name(name: &str, named_groups: &[&str]) -> Option<Var> {
        Some(match name {
            "request" => Var::Request,
            "request_method" => Var::RequestMethod,
            "request_uri" => Var::RequestUri,
            "uri" | "document_uri" => Var::Uri,
            "args" | "query_string" => Var::Args,
            "is_args" => Var::IsArgs,
            "server_protocol" => Var::ServerProtocol,
            "scheme" => Var::Scheme,
            "https" => Var::Https,
            "host" => Var::Host,
            "remote_addr" | "binary_remote_addr" => Var::RemoteAddr,
            "remote_port" => Var::RemotePort,
            "remote_user" => Var::RemoteUser,
            "proxy_protocol_addr" => Var::ProxyProtocolAddr,
            "proxy_protocol_port" => Var::ProxyProtocolPort,
            "server_addr" => Var::ServerAddr,
            "server_port" => Var::ServerPort,
            "server_name" => Var::ServerName,
            "document_root" => Var::DocumentRoot,
            "connection" => Var::Connection,
            "connection_requests" => Var::ConnectionRequests,
            "content_type" => Var::ContentType,
            "content_length" => Var::ContentLength,
            "status" => Var::Status,
            "body_bytes_sent" => Var::BodyBytesSent,
            "bytes_sent" => Var::BytesSent,
            "request_length" => Var::RequestLength,
            "request_time" => Var::RequestTime,
            "time_local" => Var::TimeLocal,
            "time_iso8601" => Var::TimeIso8601,
            "msec" => Var::Msec,
            "pid" => Var::Pid,
            "upstream_addr" => Var::UpstreamAddr,
            "upstream_status" => Var::UpstreamStatus,
            "upstream_response_time" => Var::UpstreamResponseTime,
            _ => {
                if let Some(h) = name.strip_prefix("http_") {
                    Var::Http(h.replace('_', "-"))
                } else if let Some(h) = name.strip_prefix("sent_http_") {
                    Var::SentHttp(h.replace('_', "-"))
                } else if named_groups.contains(&name) {
                    Var::NamedCapture(name.to_string())
                } else {
                    return None;
                }
            }
        })
    }
}

/// Supplies variable values for one request.
pub trait VarSource {
    /// Appends the value of `var` to `out`; returns false when it has no value (an empty
    /// string in paths, `-` in logs).
    fn write_var(&self, var: &Var, out: &mut Vec<u8>) -> bool;
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Literal(Vec<u8>),
    Var(Var),
}

/// How a rendered variable's bytes are written out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escape {
    /// As they are (paths, uwsgi params).
    None,
    /// nginx's access-log escaping: `"`, `\` and bytes outside 0x20..0x7e as `\xHH`, and
    /// `-` for a variable without a value.
    Log,
}

/// A string with variables, compiled once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// Where a template is used, which decides what it may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Paths and params evaluated before the response: request variables and captures
    /// (`named_groups` lists the location regex's named groups).
    Request { named_groups: &'a [&'a str] },
    /// Log formats: everything, including response-phase variables.
    Log,
}

/// A template that could not be compiled.
#[derive(Debug, PartialEq, Eq)]
pub struct TemplateError {
    pub message: String,
    pub hint: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Template {
    /// Compiles `text`, refusing variables unknown in `scope`.
    pub fn parse(text: &str, scope: Scope) -> Result<Template, TemplateError> {
        let named: &[&str] = match scope {
            Scope::Request { named_groups } => named_groups,
            Scope::Log => &[],
        };
        let bytes = text.as_bytes();
        let mut pieces = Vec::new();
        let mut literal = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] != b'$' {
                literal.push(bytes[i]);
                i += 1;
                continue;
            }
            let (name, next) = if bytes.get(i + 1) == Some(&b'{') {
                let end = text[i + 2..].find('}').ok_or_else(|| TemplateError {
                    message: format!("unclosed `${{` in `{text}`"),
                    hint: "write variables as $name or ${name}".into(),
                })?;
                (&text[i + 2..i + 2 + end], i + 3 + end)
            } else if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
                (&text[i + 1..i + 2], i + 2)
            } else {
                let len =
                    bytes[i + 1..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
                (&text[i + 1..i + 1 + len], i + 1 + len)
            };
            if name.is_empty() {
                return Err(TemplateError {
                    message: format!("a `$` without a variable name in `{text}`"),
                    hint: "write variables as $name or ${name}".into(),
                });
            }
            let var = if let Ok(n) = name.parse::<usize>() {
                Var::Capture(n)
            } else {
                Var::from_name(name, named).ok_or_else(|| TemplateError {
                    message: format!("unknown variable `${name}` in `{text}`"),
                    hint: "known variables include $uri, $args, $host, $remote_addr, $request_uri, $http_NAME, and $1..$9 in regex locations".into(),
                })?
            };
            if matches!(scope, Scope::Request { .. }) && var.is_response_phase() {
                return Err(TemplateError {
                    message: format!("`${name}` is only known once the response is sent"),
                    hint: "use it in a log_format".into(),
                });
            }
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Var(var));
            i = next;
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Template { pieces })
    }

    /// Whether the template names any variable at all.
    pub fn has_vars(&self) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Var(_)))
    }

    /// Whether the template names a regex capture.
    pub fn uses_captures(&self) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Var(Var::Capture(_) | Var::NamedCapture(_))))
    }

    /// The literal pieces, in order.
    pub fn literals(&self) -> impl Iterator<Item = &[u8]> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Literal(l) => Some(l.as_slice()),
            Piece::Var(_) => None,
        })
    }

    /// The literal text before the first variable.
    pub fn literal_prefix(&self) -> &[u8] {
        match self.pieces.first() {
            Some(Piece::Literal(l)) => l,
            _ => b"",
        }
    }

    /// Appends the rendered template to `out` as it is (no escaping), telling `literal`
    /// where in `out` each literal piece went: a path's fixed parts are the operator's.
    pub fn render_marking_literals(
        &self,
        src: &dyn VarSource,
        out: &mut Vec<u8>,
        mut literal: impl FnMut(std::ops::Range<usize>),
    ) {
        for piece in &self.pieces {
            match piece {
                Piece::Literal(l) => {
                    literal(out.len()..out.len() + l.len());
                    out.extend_from_slice(l);
                }
                Piece::Var(v) => {
                    src.write_var(v, out);
                }
            }
        }
    }

    /// Appends the rendered template to `out`.
    pub fn render(&self, src: &dyn VarSource, escape: Escape, out: &mut Vec<u8>) {
        for piece in &self.pieces {
            match piece {
                Piece::Literal(l) => out.extend_from_slice(l),
                Piece::Var(v) => match escape {
                    Escape::None => {
                        src.write_var(v, out);
                    }
                    Escape::Log => {
                        let start = out.len();
                        if !src.write_var(v, out) || out.len() == start {
                            out.truncate(start);
                            out.push(b'-');
                        } else {
                            escape_log_in_place(out, start);
                        }
                    }
                },
            }
        }
    }
}

/// Escapes `out[start..]` the way nginx escapes variables in access logs.
fn escape_log_in_place(out: &mut Vec<u8>, start: usize) {
    let needs = |b: u8| b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b);
    if !out[start..].iter().any(|&b| needs(b)) {
        return;
    }
    let raw = out.split_off(start);
    for b in raw {
        if needs(b) {
            let [hi, lo] = crate::ascii::hex_pair(b);
            out.extend_from_slice(&[b'\\', b'x', hi, lo]);
        } else {
            out.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl VarSource for Fixed {
        fn write_var(&self, var: &Var, out: &mut Vec<u8>) -> bool {
            match var {
                Var::Uri => out.extend_from_slice(b"/a b"),
                Var::Capture(1) => out.extend_from_slice(b"aurora"),
                Var::Capture(2) => out.extend_from_slice(b"css/x.css"),
                Var::Http(h) if h == "user-agent" => out.extend_from_slice(b"say \"hi\"\n"),
                Var::NamedCapture(n) if n == "user" => out.extend_from_slice(b"bob"),
                _ => return false,
            }
            true
        }
    }

    fn render(t: &str, scope: Scope, escape: Escape) -> String {
        let mut out = Vec::new();
        Template::parse(t, scope).unwrap().render(&Fixed, escape, &mut out);
        String::from_utf8(out).unwrap()
    }

    const REQ: Scope = Scope::Request { named_groups: &["user"] };

    #[test]
    fn alias_with_captures() {
        assert_eq!(
            render("/srv/themes/$1/static/$2", REQ, Escape::None),
            "/srv/themes/aurora/static/css/x.css"
        );
        assert_eq!(render("${uri}.html", REQ, Escape::None), "/a b.html");
        assert_eq!(render("/u/$user", REQ, Escape::None), "/u/bob");
    }

    #[test]
    fn log_escaping_and_dashes() {
        assert_eq!(
            render("\"$http_user_agent\" $http_referer", Scope::Log, Escape::Log),
            "\"say \\x22hi\\x22\\x0A\" -"
        );
    }

    #[test]
    fn unknown_and_misplaced_variables_are_refused() {
        let e = Template::parse("$nope", REQ).unwrap_err();
        assert!(e.message.contains("unknown variable `$nope`"));
        let e = Template::parse("$status", REQ).unwrap_err();
        assert!(e.hint.contains("log_format"));
        assert!(Template::parse("${uri", REQ).is_err());
        assert!(Template::parse("a$", REQ).is_err());
        assert!(Template::parse("$status", Scope::Log).is_ok());
    }

    #[test]
    fn literal_prefix_and_capture_detection() {
        let t = Template::parse("/srv/themes/$1/static/$2", REQ).unwrap();
        assert_eq!(t.literal_prefix(), b"/srv/themes/");
        assert!(t.uses_captures());
        assert!(!Template::parse("/plain", REQ).unwrap().has_vars());
    }
}
