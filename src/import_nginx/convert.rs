//! nginx directives to Portico keys, level by level (main and `http` → the top level and
//! every `[[server]]`; `server` → `[[server]]`; `location` → `[[server.location]]`;
//! `upstream` → `[upstream.NAME]`), each key remembering the nginx line it came from.
//! What has no meaning for Portico is *absorbed* (with why); what Portico cannot do is
//! *not converted* (with what to do); a directive in a block nginx does not allow it in is
//! an error, as nginx refuses it. Pure: a tree in, a model out.

use toml::Value;

use super::syntax::Directive;

/// Where something came from: a file index and a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: usize,
    pub line: usize,
}

/// One Portico key with its value and the nginx directive it came from.
#[derive(Clone, Debug)]
pub struct Item {
    pub key: String,
    pub value: Value,
    pub origin: Origin,
    /// The directive as nginx read it, for the comment above the key.
    pub written: String,
}

#[derive(Clone, Debug, Default)]
pub struct Location {
    pub origin: Option<Origin>,
    pub written: String,
    pub items: Vec<Item>,
    /// `uwsgi_param`s in this location (nginx: then none inherited), and whether it has
    /// `include uwsgi_params`.
    params: Vec<Item>,
    pub includes_params: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Server {
    pub origin: Option<Origin>,
    pub items: Vec<Item>,
    pub locations: Vec<Location>,
    params: Vec<Item>,
    includes_params: bool,
}

#[derive(Clone, Debug)]
pub struct Upstream {
    pub name: String,
    pub origin: Origin,
    pub items: Vec<Item>,
}

/// A directive left out, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub directive: String,
    pub origin: Origin,
    pub why: String,
}

/// A directive nginx itself would refuse here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextError {
    pub origin: Origin,
    pub column: usize,
    pub message: String,
}

/// The converted configuration, before it is written out.
#[derive(Clone, Debug, Default)]
pub struct Converted {
    pub top: Vec<Item>,
    pub servers: Vec<Server>,
    pub upstreams: Vec<Upstream>,
    pub absorbed: Vec<Skipped>,
    pub not_converted: Vec<Skipped>,
}

/// The levels of nginx's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ctx {
    /// The top of a file: `nginx.conf`'s main level, or a site file's (which nginx reads
    /// inside `http`): both are accepted there.
    Top,
    Http,
    Server,
    Location,
}

/// nginx's per-location uwsgi timeouts, which are a pool's keys in Portico: held under
/// these names until the pools are known.
const POOL_KEYS: [&str; 3] = ["pool.read_timeout", "pool.send_timeout", "pool.connect_timeout"];

/// The stock `uwsgi_params` lines, which Portico sends without being told.
const STOCK_PARAMS: &[(&str, &str)] = &[
    ("QUERY_STRING", "$query_string"),
    ("REQUEST_METHOD", "$request_method"),
    ("CONTENT_TYPE", "$content_type"),
    ("CONTENT_LENGTH", "$content_length"),
    ("REQUEST_URI", "$request_uri"),
    ("PATH_INFO", "$document_uri"),
    ("DOCUMENT_ROOT", "$document_root"),
    ("SERVER_PROTOCOL", "$server_protocol"),
    ("REQUEST_SCHEME", "$scheme"),
    ("HTTPS", "$https"),
    ("REMOTE_ADDR", "$remote_addr"),
    ("REMOTE_PORT", "$remote_port"),
    ("SERVER_PORT", "$server_port"),
    ("SERVER_NAME", "$server_name"),
];

/// Converts a whole tree.
pub fn convert(tree: &[Directive]) -> Result<Converted, ContextError> {
    let mut c = Converter {
        out: Converted::default(),
        in_params_file: false,
        http: Vec::new(),
        http_params: (Vec::new(), false),
    };
    let mut servers = Vec::new();
    c.level(tree, Ctx::Top, &mut servers)?;
    // http-level keys go into every server that does not set them (nginx's inheritance)
    for mut s in servers {
        if s.locations.is_empty() {
            // nginx serves the server's root for a server without locations
            let origin = s.origin.unwrap_or(Origin { file: 0, line: 0 });
            let written = "server (no location: nginx serves its root)".to_string();
            let m = Item { key: "match".into(), value: string("/"), origin, written: written.clone() };
            s.locations.push(Location {
                origin: Some(origin),
                written,
                items: vec![m],
                ..Location::default()
            });
        }
        for item in &c.http {
            if !s.items.iter().any(|i| i.key == item.key) {
                s.items.push(item.clone());
            }
        }
        let (params, includes) = if s.params.is_empty() && !s.includes_params {
            c.http_params.clone()
        } else {
            (s.params.clone(), s.includes_params)
        };
        for l in &mut s.locations {
            // uwsgi_param is inherited only by a level with none of its own, as add_header
            if l.params.is_empty() && !l.includes_params {
                l.params = params.clone();
                l.includes_params = includes;
            }
            if l.items.iter().any(|i| i.key == "uwsgi_pass") && !l.params.is_empty() {
                let mut table = toml::map::Map::new();
                let origin = l.params[0].origin;
                let mut written = Vec::new();
                for p in &l.params {
                    if let Value::Table(t) = &p.value {
                        for (k, v) in t {
                            table.insert(k.clone(), v.clone());
                        }
                    }
                    written.push(p.written.clone());
                }
                l.items.push(Item {
                    key: "uwsgi_param".into(),
                    value: Value::Table(table),
                    origin,
                    written: written.join("; "),
                });
            }
        }
        pool_settings(&mut c.out, &mut s);
        c.out.servers.push(s);
    }
    Ok(c.out)
}

/// Moves the uwsgi timeouts a location has (its own, else its server's, as nginx
/// inherits them) onto the pool it passes to: the `[upstream.NAME]` it names, or one made
/// for its socket (`uwsgi_pass` then names that pool).
fn pool_settings(out: &mut Converted, s: &mut Server) {
    let server_keys: Vec<Item> = s.items.iter().filter(|i| i.key.starts_with("pool.")).cloned().collect();
    s.items.retain(|i| !i.key.starts_with("pool."));
    for l in &mut s.locations {
        let own: Vec<Item> = l.items.iter().filter(|i| i.key.starts_with("pool.")).cloned().collect();
        l.items.retain(|i| !i.key.starts_with("pool."));
        let mut keys = own.clone();
        for k in &server_keys {
            if !keys.iter().any(|o| o.key == k.key) {
                keys.push(k.clone());
            }
        }
        let Some(pass) = l.items.iter_mut().find(|i| i.key == "uwsgi_pass") else {
            for k in own {
                out.not_converted.push(Skipped {
                    directive: k.written.clone(),
                    origin: k.origin,
                    why: "without uwsgi_pass in this location it has no effect".into(),
                });
            }
            continue;
        };
        if keys.is_empty() {
            continue;
        }
        let target = pass.value.as_str().unwrap_or("").to_string();
        let named = out.upstreams.iter().position(|u| u.name == target);
        let index = match named {
            Some(i) => i,
            None => {
                // a pool of its own for the socket, named after it
                let stem =
                    target.rsplit(['/', ':']).next().unwrap_or("app").split('.').next().unwrap_or("app");
                let base: String =
                    stem.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
                let base = if base.is_empty() { "app".to_string() } else { base };
                let same = |u: &Upstream| {
                    u.items
                        .iter()
                        .find(|i| i.key == "servers")
                        .and_then(|i| i.value.as_array())
                        .is_some_and(|a| a.len() == 1 && a[0].as_str() == Some(target.as_str()))
                };
                match out.upstreams.iter().position(|u| u.name.starts_with(&base) && same(u)) {
                    Some(i) => i,
                    None => {
                        let mut name = base.clone();
                        let mut n = 2;
                        while out.upstreams.iter().any(|u| u.name == name) {
                            name = format!("{base}_{n}");
                            n += 1;
                        }
                        let o = keys[0].origin;
                        out.upstreams.push(Upstream {
                            name,
                            origin: o,
                            items: vec![Item {
                                key: "servers".into(),
                                value: Value::Array(vec![string(&target)]),
                                origin: pass.origin,
                                written: pass.written.clone(),
                            }],
                        });
                        out.upstreams.len() - 1
                    }
                }
            }
        };
        let up = &mut out.upstreams[index];
        pass.value = string(&up.name);
        for k in keys {
            let key = k.key.trim_start_matches("pool.").to_string();
            match up.items.iter().find(|i| i.key == key) {
                Some(existing) if existing.value != k.value => out.not_converted.push(Skipped {
                    directive: k.written.clone(),
                    origin: k.origin,
                    why: format!("the pool `{}` already has {key} = {} from another location: Portico's timeouts are the pool's", up.name, existing.value),
                }),
                Some(_) => {}
                None => up.items.push(Item { key, ..k }),
            }
        }
    }
}

struct Converter {
    out: Converted,
    /// Inside a `uwsgi_params` file that was read: its stock lines are not noted one by one.
    in_params_file: bool,
    /// The keys set at the `http` (or a site file's top) level.
    http: Vec<Item>,
    http_params: (Vec<Item>, bool),
}

fn origin(d: &Directive) -> Origin {
    Origin { file: d.file, line: d.line }
}

fn written(d: &Directive) -> String {
    let mut w = d.name.clone();
    for a in &d.args {
        w.push(' ');
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == ';' || c == '{' || c == '}') {
            w.push_str(&format!("{a:?}"));
        } else {
            w.push_str(a);
        }
    }
    w
}

fn error(d: &Directive, message: String) -> ContextError {
    ContextError { origin: origin(d), column: d.column, message }
}

/// nginx's "invalid number of arguments" unless `d` has `n` of them.
fn args_n(d: &Directive, ok: impl Fn(usize) -> bool) -> Result<(), ContextError> {
    if ok(d.args.len()) {
        Ok(())
    } else {
        Err(error(d, format!("invalid number of arguments in \"{}\" directive", d.name)))
    }
}

fn on_off(d: &Directive) -> Result<bool, ContextError> {
    args_n(d, |n| n == 1)?;
    match d.args[0].as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        v => Err(error(
            d,
            format!("invalid value \"{v}\" in \"{}\" directive, it must be \"on\" or \"off\"", d.name),
        )),
    }
}

fn string(s: &str) -> Value {
    Value::String(s.to_string())
}

fn strings(v: &[String]) -> Value {
    Value::Array(v.iter().map(|s| string(s)).collect())
}

/// What one directive becomes.
enum Becomes {
    /// Keys at this level.
    Keys(Vec<(&'static str, Value)>),
    /// An entry of a table key (`add_header`, `error_page`).
    Entry(&'static str, String, Value),
    Absorbed(String),
    NotConverted(String),
}

impl Converter {
    fn skip(&mut self, d: &Directive, why: impl Into<String>, absorbed: bool) {
        let s = Skipped { directive: written(d), origin: origin(d), why: why.into() };
        if absorbed {
            self.out.absorbed.push(s);
        } else {
            self.out.not_converted.push(s);
        }
    }

    /// One block's directives at `ctx`: servers found are pushed to `servers`.
    fn level(&mut self, body: &[Directive], ctx: Ctx, servers: &mut Vec<Server>) -> Result<(), ContextError> {
        for d in body {
            match (d.name.as_str(), ctx) {
                ("include", _) => match &d.block {
                    Some(inner) => {
                        let params_file = self.enter_include(d);
                        if params_file {
                            self.http_params.1 = true;
                        }
                        self.level(inner, ctx, servers)?;
                        self.in_params_file = false;
                    }
                    None => self.stock_include(d, ctx, None)?,
                },
                ("http", Ctx::Top) => {
                    let inner = d.block.as_deref().ok_or_else(|| error(d, "directive \"http\" has no opening \"{\"".into()))?;
                    self.level(inner, Ctx::Http, servers)?;
                }
                ("events", Ctx::Top) => self.skip(d, "worker connections are not limited by a setting in Portico (its fd limit, raised at start, is the bound)", true),
                ("user", Ctx::Top) => {
                    args_n(d, |n| n == 1 || n == 2)?;
                    self.top(d, "user", string(&d.args[0]))?;
                    if let Some(g) = d.args.get(1) {
                        self.top(d, "group", string(g))?;
                    }
                }
                ("pid", Ctx::Top) => {
                    args_n(d, |n| n == 1)?;
                    self.top(d, "pid_file", string(&d.args[0]))?;
                }
                ("worker_processes", Ctx::Top) => {
                    args_n(d, |n| n == 1)?;
                    match d.args[0].parse::<i64>() {
                        Ok(n) => self.top(d, "worker_threads", Value::Integer(n))?,
                        Err(_) => self.skip(d, "Portico starts one worker thread per CPU unless worker_threads says otherwise", true),
                    }
                }
                ("worker_rlimit_nofile" | "load_module" | "worker_cpu_affinity" | "pcre_jit" | "thread_pool", Ctx::Top) => {
                    self.skip(d, "process-level tuning Portico does itself (fd limit raised at start; no modules)", true)
                }
                ("log_format", Ctx::Top | Ctx::Http) => self.log_format(d)?,
                ("server", Ctx::Top | Ctx::Http) => {
                    let inner = d.block.as_deref().ok_or_else(|| error(d, "directive \"server\" has no opening \"{\"".into()))?;
                    let mut s = Server { origin: Some(origin(d)), ..Server::default() };
                    self.server(inner, &mut s)?;
                    servers.push(s);
                }
                ("upstream", Ctx::Top | Ctx::Http) => self.upstream(d)?,
                ("location", Ctx::Top | Ctx::Http) | ("listen" | "server_name", Ctx::Top | Ctx::Http) => {
                    return Err(error(d, format!("\"{}\" directive is not allowed here", d.name)))
                }
                ("http" | "events" | "user" | "pid" | "worker_processes", _) => {
                    return Err(error(d, format!("\"{}\" directive is not allowed here", d.name)))
                }
                _ => {
                    let mut items = Vec::new();
                    let mut params = std::mem::take(&mut self.http_params);
                    self.setting(d, Ctx::Http, &mut items, &mut params)?;
                    self.http_params = params;
                    for i in items {
                        merge(&mut self.http, i, d)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Notes an include that was read; whether it is a `uwsgi_params` file.
    fn enter_include(&mut self, d: &Directive) -> bool {
        let params = include_name(d) == "uwsgi_params";
        if params {
            self.in_params_file = true;
            self.skip(d, "read: its stock lines are the params Portico sends built in; any other line is kept as a uwsgi_param", true);
        }
        params
    }

    fn top(&mut self, d: &Directive, key: &str, value: Value) -> Result<(), ContextError> {
        if self.out.top.iter().any(|i| i.key == key) {
            return Err(error(d, format!("\"{}\" directive is duplicate", d.name)));
        }
        self.out.top.push(Item { key: key.into(), value, origin: origin(d), written: written(d) });
        Ok(())
    }

    fn log_format(&mut self, d: &Directive) -> Result<(), ContextError> {
        args_n(d, |n| n >= 2)?;
        let mut parts = &d.args[1..];
        if let Some(esc) = parts.first().and_then(|p| p.strip_prefix("escape=")) {
            if esc != "default" {
                self.skip(
                    d,
                    format!(
                        "Portico escapes log values as nginx's escape=default; escape={esc} is not available"
                    ),
                    false,
                );
                return Ok(());
            }
            parts = &parts[1..];
        }
        let name = &d.args[0];
        if name == "combined" {
            self.skip(d, "\"combined\" is built in", true);
            return Ok(());
        }
        let key = format!("log_format.{}", toml_key(name));
        if self.out.top.iter().any(|i| i.key == key) {
            return Err(error(d, format!("duplicate \"log_format\" name \"{name}\"")));
        }
        self.top(d, &key, string(&parts.concat()))
    }

    fn server(&mut self, body: &[Directive], s: &mut Server) -> Result<(), ContextError> {
        for d in body {
            match d.name.as_str() {
                "include" => match &d.block {
                    Some(inner) => {
                        s.includes_params |= self.enter_include(d);
                        self.server(inner, s)?;
                        self.in_params_file = false;
                    }
                    None => {
                        let mut params = (std::mem::take(&mut s.params), s.includes_params);
                        self.stock_include(d, Ctx::Server, Some(&mut params))?;
                        (s.params, s.includes_params) = params;
                    }
                },
                "location" => {
                    let l = self.location(d)?;
                    s.locations.push(l);
                }
                "listen" => self.listen(d, s)?,
                "server_name" => {
                    args_n(d, |n| n >= 1)?;
                    let mut names: Vec<String> = s
                        .items
                        .iter()
                        .find(|i| i.key == "server_name")
                        .and_then(|i| i.value.as_array())
                        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                        .unwrap_or_default();
                    names.extend(d.args.iter().cloned());
                    s.items.retain(|i| i.key != "server_name");
                    s.items.push(Item {
                        key: "server_name".into(),
                        value: strings(&names),
                        origin: origin(d),
                        written: written(d),
                    });
                }
                "server" | "http" | "upstream" | "events" | "user" | "pid" | "log_format" => {
                    return Err(error(d, format!("\"{}\" directive is not allowed here", d.name)))
                }
                _ => {
                    let mut items = Vec::new();
                    let mut params = (std::mem::take(&mut s.params), s.includes_params);
                    self.setting(d, Ctx::Server, &mut items, &mut params)?;
                    (s.params, s.includes_params) = params;
                    for i in items {
                        merge(&mut s.items, i, d)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn listen(&mut self, d: &Directive, s: &mut Server) -> Result<(), ContextError> {
        args_n(d, |n| n >= 1)?;
        let addr = &d.args[0];
        if addr.starts_with("unix:") {
            self.skip(d, "Portico listens on TCP addresses only", false);
            return Ok(());
        }
        // a listener of another protocol is left out whole, never served as plain HTTP
        if let Some(f) = d.args[1..].iter().find(|f| f.as_str() == "quic") {
            self.skip(d, format!("`{f}` listeners are not available yet: this address is left out"), false);
            return Ok(());
        }
        let mut entry = addr.clone();
        for flag in &d.args[1..] {
            match flag.as_str() {
                "ssl" => entry.push_str(" ssl"),
                "proxy_protocol" => entry.push_str(" proxy_protocol"),
                // (written after the loop: nginx takes `http2 ssl` in either order)
                "http2" => {}
                "default_server" | "default" => {
                    s.items.retain(|i| i.key != "default_server");
                    s.items.push(Item {
                        key: "default_server".into(),
                        value: Value::Boolean(true),
                        origin: origin(d),
                        written: written(d),
                    })
                }
                "ipv6only=on" => {
                    self.skip(d, "Portico binds [::] addresses IPv6-only, nginx's default", true)
                }
                "ipv6only=off" => self.skip(
                    d,
                    "Portico binds [::] IPv6-only: write a second listen entry for the IPv4 address",
                    false,
                ),
                f if f.starts_with("backlog=")
                    || f == "reuseport"
                    || f.starts_with("so_keepalive")
                    || f == "deferred"
                    || f.starts_with("rcvbuf")
                    || f.starts_with("sndbuf") =>
                {
                    self.skip(d, format!("`{f}`: socket tuning Portico sets itself"), true)
                }
                f => self.skip(d, format!("`{f}` on listen is not available"), false),
            }
        }
        if d.args[1..].iter().any(|f| f == "http2") {
            if entry.contains(" ssl") {
                entry.push_str(" http2");
            } else {
                self.skip(
                    d,
                    "HTTP/2 without TLS (h2c, by prior knowledge) is not served: clients speak HTTP/1.1 here",
                    true,
                );
            }
        }
        let mut list: Vec<Value> = s
            .items
            .iter()
            .find(|i| i.key == "listen")
            .and_then(|i| i.value.as_array().cloned())
            .unwrap_or_default();
        list.push(string(&entry));
        let first = s.items.iter().find(|i| i.key == "listen").map(|i| (i.origin, i.written.clone()));
        s.items.retain(|i| i.key != "listen");
        let (o, w) = first.map_or((origin(d), written(d)), |(o, w)| (o, format!("{w}; {}", written(d))));
        s.items.push(Item { key: "listen".into(), value: Value::Array(list), origin: o, written: w });
        Ok(())
    }

    fn location(&mut self, d: &Directive) -> Result<Location, ContextError> {
        let inner = d
            .block
            .as_deref()
            .ok_or_else(|| error(d, "directive \"location\" has no opening \"{\"".into()))?;
        let matcher = match d.args.as_slice() {
            [m, path] if ["=", "~", "~*", "^~"].contains(&m.as_str()) => format!("{m} {path}"),
            [_, _] => return Err(error(d, format!("invalid location modifier \"{}\"", d.args[0]))),
            [one] => {
                let (m, rest) = if let Some(r) = one.strip_prefix("^~") {
                    ("^~", r)
                } else if let Some(r) = one.strip_prefix("~*") {
                    ("~*", r)
                } else if let Some(r) = one.strip_prefix('~') {
                    ("~", r)
                } else if let Some(r) = one.strip_prefix('=') {
                    ("=", r)
                } else {
                    ("", one.as_str())
                };
                if m.is_empty() {
                    rest.to_string()
                } else {
                    format!("{m} {rest}")
                }
            }
            _ => return Err(error(d, "invalid number of arguments in \"location\" directive".into())),
        };
        let mut l = Location { origin: Some(origin(d)), written: written(d), ..Location::default() };
        l.items.push(Item {
            key: "match".into(),
            value: string(&matcher),
            origin: origin(d),
            written: written(d),
        });
        self.location_body(inner, &mut l)?;
        Ok(l)
    }

    fn location_body(&mut self, body: &[Directive], l: &mut Location) -> Result<(), ContextError> {
        for d in body {
            match d.name.as_str() {
                "include" => match &d.block {
                    Some(inner) => {
                        l.includes_params |= self.enter_include(d);
                        self.location_body(inner, l)?;
                        self.in_params_file = false;
                    }
                    None => {
                        let mut params = (std::mem::take(&mut l.params), l.includes_params);
                        self.stock_include(d, Ctx::Location, Some(&mut params))?;
                        (l.params, l.includes_params) = params;
                    }
                },
                "location" => self.skip(d, "nested locations are not supported: write it as a location of its own in the server (the outer one's keys repeated)", false),
                "server" | "http" | "upstream" | "listen" | "server_name" | "events" | "user" | "pid" | "log_format" => {
                    return Err(error(d, format!("\"{}\" directive is not allowed here", d.name)))
                }
                _ => {
                    let mut items = Vec::new();
                    let mut params = (std::mem::take(&mut l.params), l.includes_params);
                    self.setting(d, Ctx::Location, &mut items, &mut params)?;
                    (l.params, l.includes_params) = params;
                    for i in items {
                        merge(&mut l.items, i, d)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// `include uwsgi_params` (and the other stock files) where nginx's file was not read.
    fn stock_include(
        &mut self,
        d: &Directive,
        ctx: Ctx,
        params: Option<&mut (Vec<Item>, bool)>,
    ) -> Result<(), ContextError> {
        let name = include_name(d);
        match name {
            "uwsgi_params" => {
                let target = match (ctx, params) {
                    (_, Some(p)) => p,
                    (Ctx::Top | Ctx::Http, None) => &mut self.http_params,
                    _ => return Ok(()),
                };
                target.1 = true;
                self.skip(d, "not found beside the file (give --prefix /etc/nginx to read it): taken as nginx's stock uwsgi_params, which Portico sends built in", true);
            }
            "mime.types" => self.skip(d, "Portico's types follow nginx's stock mime.types", true),
            _ => self.skip(d, format!("{name} is for a protocol Portico does not speak"), false),
        }
        Ok(())
    }

    fn upstream(&mut self, d: &Directive) -> Result<(), ContextError> {
        args_n(d, |n| n == 1)?;
        let inner = d
            .block
            .as_deref()
            .ok_or_else(|| error(d, "directive \"upstream\" has no opening \"{\"".into()))?;
        let mut up = Upstream { name: d.args[0].clone(), origin: origin(d), items: Vec::new() };
        let mut servers = Vec::new();
        let mut first_server: Option<&Directive> = None;
        let mut fails: Option<(String, String)> = None;
        for s in flatten(inner) {
            match s.name.as_str() {
                "server" => {
                    args_n(s, |n| n >= 1)?;
                    if let Some(flag) = s.args[1..].iter().find(|p| *p == "backup" || *p == "down") {
                        self.skip(
                            s,
                            format!("`{flag}` servers are not supported: this one is left out of the pool"),
                            false,
                        );
                        continue;
                    }
                    let mut entry = s.args[0].clone();
                    let mut max_fails = "1".to_string();
                    let mut fail_timeout = "10s".to_string();
                    let mut ok = true;
                    for p in &s.args[1..] {
                        match p.split_once('=') {
                            Some(("weight" | "max_conns", _)) => {
                                entry.push(' ');
                                entry.push_str(p);
                            }
                            Some(("max_fails", v)) => max_fails = v.to_string(),
                            Some(("fail_timeout", v)) => fail_timeout = v.to_string(),
                            _ => {
                                self.skip(s, format!("`{p}` is not a server parameter Portico has: this server is left out"), false);
                                ok = false;
                            }
                        }
                    }
                    if !ok {
                        continue;
                    }
                    match &fails {
                        None => fails = Some((max_fails, fail_timeout)),
                        Some(f) if *f != (max_fails.clone(), fail_timeout.clone()) => self.skip(
                            s,
                            "Portico's max_fails and fail_timeout are the pool's: the first server's are used",
                            false,
                        ),
                        Some(_) => {}
                    }
                    first_server.get_or_insert(s);
                    servers.push(string(&entry));
                }
                "least_conn" => up.items.push(Item {
                    key: "balance".into(),
                    value: string("least_conn"),
                    origin: origin(s),
                    written: written(s),
                }),
                "keepalive" | "keepalive_timeout" | "keepalive_requests" => self.skip(
                    s,
                    "uWSGI closes its connection after each response: there is nothing to keep alive",
                    true,
                ),
                _ => self.skip(
                    s,
                    "not an upstream setting Portico has (round robin and least_conn only)",
                    false,
                ),
            }
        }
        let Some(first) = first_server else {
            return Err(error(d, "no servers are inside upstream".into()));
        };
        up.items.insert(
            0,
            Item {
                key: "servers".into(),
                value: Value::Array(servers),
                origin: origin(first),
                written: written(first),
            },
        );
        if let Some((max_fails, fail_timeout)) = fails {
            if let Ok(n) = max_fails.parse::<i64>() {
                up.items.push(Item {
                    key: "max_fails".into(),
                    value: Value::Integer(n),
                    origin: origin(first),
                    written: written(first),
                });
            }
            up.items.push(Item {
                key: "fail_timeout".into(),
                value: string(&fail_timeout),
                origin: origin(first),
                written: written(first),
            });
        }
        self.out.upstreams.push(up);
        Ok(())
    }

    /// A directive that sets keys at the current level (server-level ones at `http` are
    /// inherited by every server).
    fn setting(
        &mut self,
        d: &Directive,
        ctx: Ctx,
        items: &mut Vec<Item>,
        params: &mut (Vec<Item>, bool),
    ) -> Result<(), ContextError> {
        let becomes = self.becomes(d, ctx, params)?;
        match becomes {
            Becomes::Keys(keys) => {
                for (k, v) in keys {
                    items.push(Item { key: k.into(), value: v, origin: origin(d), written: written(d) });
                }
            }
            Becomes::Entry(key, name, value) => {
                let mut t = toml::map::Map::new();
                t.insert(name, value);
                items.push(Item {
                    key: key.into(),
                    value: Value::Table(t),
                    origin: origin(d),
                    written: written(d),
                });
            }
            Becomes::Absorbed(why) => self.skip(d, why, true),
            Becomes::NotConverted(why) => self.skip(d, why, false),
        }
        Ok(())
    }

    fn becomes(
        &mut self,
        d: &Directive,
        ctx: Ctx,
        params: &mut (Vec<Item>, bool),
    ) -> Result<Becomes, ContextError> {
        let in_location = ctx == Ctx::Location;
        let one = |d: &Directive| -> Result<String, ContextError> {
            args_n(d, |n| n == 1)?;
            Ok(d.args[0].clone())
        };
        use Becomes::*;
        Ok(match d.name.as_str() {
            "root" => Keys(vec![("root", string(&one(d)?))]),
            "alias" if in_location => Keys(vec![("alias", string(&one(d)?))]),
            "index" => {
                args_n(d, |n| n >= 1)?;
                Keys(vec![("index", strings(&d.args))])
            }
            "try_files" if in_location => {
                args_n(d, |n| n >= 2)?;
                Keys(vec![("try_files", strings(&d.args))])
            }
            "try_files" => NotConverted("try_files outside a location: write it in `location /`".into()),
            "uwsgi_pass" if in_location => {
                let target = one(d)?;
                if target.contains('$') {
                    NotConverted("uwsgi_pass with variables: Portico's pools are fixed; write the socket or an [upstream.NAME]".into())
                } else {
                    Keys(vec![("uwsgi_pass", string(target.strip_prefix("uwsgi://").unwrap_or(&target)))])
                }
            }
            "uwsgi_param" => {
                args_n(d, |n| n == 2 || n == 3)?;
                let if_not_empty = d.args.get(2).map(String::as_str) == Some("if_not_empty");
                if d.args.len() == 3 && !if_not_empty {
                    return Err(error(d, format!("invalid parameter \"{}\"", d.args[2])));
                }
                let stock = STOCK_PARAMS.iter().any(|(n, v)| d.args[0] == *n && d.args[1] == *v);
                if stock && self.in_params_file {
                    return Ok(Keys(Vec::new()));
                }
                if stock {
                    return Ok(Absorbed("one of nginx's stock uwsgi_params, which Portico sends built in".into()));
                }
                let value = if if_not_empty {
                    let mut t = toml::map::Map::new();
                    t.insert("value".into(), string(&d.args[1]));
                    t.insert("if_not_empty".into(), Value::Boolean(true));
                    Value::Table(t)
                } else {
                    string(&d.args[1])
                };
                let mut t = toml::map::Map::new();
                t.insert(d.args[0].clone(), value);
                params.0.push(Item { key: "uwsgi_param".into(), value: Value::Table(t), origin: origin(d), written: written(d) });
                return Ok(Keys(Vec::new()));
            }
            "uwsgi_modifier1" | "uwsgi_modifier2" if in_location => {
                let v = one(d)?;
                match v.parse::<i64>() {
                    Ok(n) => Keys(vec![(if d.name == "uwsgi_modifier1" { "uwsgi_modifier1" } else { "uwsgi_modifier2" }, Value::Integer(n))]),
                    Err(_) => return Err(error(d, format!("invalid value \"{v}\""))),
                }
            }
            "uwsgi_read_timeout" | "uwsgi_send_timeout" | "uwsgi_connect_timeout" => {
                let key = match d.name.as_str() {
                    "uwsgi_read_timeout" => "read_timeout",
                    "uwsgi_send_timeout" => "send_timeout",
                    _ => "connect_timeout",
                };
                // a pool's key in Portico: put on the pool the locations pass to, at the end
                Keys(vec![(POOL_KEYS.iter().find(|k| k.ends_with(key)).copied().unwrap_or("pool.read_timeout"), duration(&one(d)?))])
            }
            "uwsgi_buffer_size" | "uwsgi_buffers" | "uwsgi_busy_buffers_size" | "uwsgi_buffering" | "uwsgi_max_temp_file_size" => {
                Absorbed("nginx's response buffering from uWSGI: Portico relays with backpressure and buffers nothing (its uwsgi_buffer_size key is uWSGI's buffer-size, another thing)".into())
            }
            "uwsgi_intercept_errors" | "uwsgi_cache" | "uwsgi_hide_header" | "uwsgi_pass_header" | "uwsgi_ignore_headers" | "uwsgi_next_upstream" => {
                NotConverted("not available in Portico".into())
            }
            "error_page" => {
                args_n(d, |n| n >= 2)?;
                let uri = d.args[d.args.len() - 1].clone();
                let mut codes: Vec<&str> = d.args[..d.args.len() - 1].iter().map(String::as_str).collect();
                let mut value = uri;
                if let Some(last) = codes.last().copied() {
                    if last.starts_with('=') {
                        value = format!("{last} {value}");
                        codes.pop();
                    }
                }
                if codes.is_empty() {
                    return Err(error(d, "invalid number of arguments in \"error_page\" directive".into()));
                }
                Entry("error_page", codes.join(" "), string(&value))
            }
            "expires" => {
                args_n(d, |n| n == 1 || n == 2)?;
                Keys(vec![("expires", string(&d.args.join(" ")))])
            }
            "add_header" => {
                args_n(d, |n| n == 2 || n == 3)?;
                let always = match d.args.get(2).map(String::as_str) {
                    None => false,
                    Some("always") => true,
                    Some(other) => return Err(error(d, format!("invalid parameter \"{other}\""))),
                };
                let value = if always {
                    let mut t = toml::map::Map::new();
                    t.insert("value".into(), string(&d.args[1]));
                    t.insert("always".into(), Value::Boolean(true));
                    Value::Table(t)
                } else {
                    string(&d.args[1])
                };
                Entry("add_header", d.args[0].clone(), value)
            }
            "gzip" => Keys(vec![("gzip", Value::Boolean(on_off(d)?))]),
            "gzip_vary" => Keys(vec![("gzip_vary", Value::Boolean(on_off(d)?))]),
            "gzip_types" => {
                args_n(d, |n| n >= 1)?;
                Keys(vec![("gzip_types", strings(&d.args))])
            }
            "gzip_min_length" => Keys(vec![("gzip_min_length", int_or_string(&one(d)?))]),
            "gzip_comp_level" => Keys(vec![("gzip_comp_level", int_or_string(&one(d)?))]),
            "gzip_proxied" => {
                args_n(d, |n| n >= 1)?;
                Keys(vec![("gzip_proxied", strings(&d.args))])
            }
            "gzip_http_version" => Keys(vec![("gzip_http_version", string(&one(d)?))]),
            "gzip_static" => match one(d)?.as_str() {
                "on" => Keys(vec![("gzip_static", Value::Boolean(true))]),
                "off" => Keys(vec![("gzip_static", Value::Boolean(false))]),
                _ => NotConverted("gzip_static always (sending .gz to every client) is not available: gzip_static = true sends it to clients that accept gzip".into()),
            },
            "gzip_buffers" => Absorbed("Portico's coder writes its output as it goes".into()),
            "gzip_disable" => Absorbed("for MSIE 6, which no longer visits".into()),
            "brotli" => Keys(vec![("brotli", Value::Boolean(on_off(d)?))]),
            "brotli_comp_level" => Keys(vec![("brotli_comp_level", int_or_string(&one(d)?))]),
            "brotli_types" => NotConverted("Portico's brotli uses gzip_types: list these there".into()),
            "brotli_static" => NotConverted("write precompressed = [\"br\", \"gzip\"] (the .br files beside the originals)".into()),
            "sendfile" => {
                if on_off(d)? {
                    Absorbed("Portico sends files with sendfile by default".into())
                } else {
                    Keys(vec![("sendfile", Value::Boolean(false))])
                }
            }
            "tcp_nopush" | "tcp_nodelay" => Absorbed("Portico corks a head that a file follows (MSG_MORE) and never delays the rest".into()),
            "open_file_cache" => Keys(vec![("open_file_cache", string(&d.args.join(" ")))]),
            "open_file_cache_valid" => Keys(vec![("open_file_cache_valid", duration(&one(d)?))]),
            "open_file_cache_errors" => Keys(vec![("open_file_cache_errors", Value::Boolean(on_off(d)?))]),
            "open_file_cache_min_uses" => NotConverted("Portico caches a file from its first use".into()),
            "max_ranges" => Keys(vec![("max_ranges", int_or_string(&one(d)?))]),
            "access_log" | "error_log" if in_location => {
                NotConverted("logs are the server's in Portico: this location logs where its server does".into())
            }
            "access_log" => {
                args_n(d, |n| n >= 1)?;
                if d.args[0] == "off" {
                    Keys(vec![("access_log", string("off"))])
                } else if d.args[0].starts_with("syslog:") {
                    NotConverted("syslog is not available: log to a file".into())
                } else {
                    let mut keys = vec![("access_log", string(&d.args[0]))];
                    if let Some(f) = d.args.get(1) {
                        keys.push(("access_log_format", string(f)));
                    }
                    for extra in d.args.iter().skip(2) {
                        self.skip(d, format!("`{extra}`: Portico writes its log in batches of its own"), true);
                    }
                    Keys(keys)
                }
            }
            "error_log" => {
                args_n(d, |n| n == 1 || n == 2)?;
                if d.args[0].starts_with("syslog:") || d.args[0].starts_with("memory:") {
                    NotConverted("syslog and memory error logs are not available: log to a file or stderr".into())
                } else {
                    let mut keys = vec![("error_log", string(if d.args[0] == "/dev/stderr" { "stderr" } else { &d.args[0] }))];
                    if let Some(level) = d.args.get(1) {
                        keys.push(("error_log_level", string(level)));
                    }
                    Keys(keys)
                }
            }
            "client_max_body_size" => Keys(vec![("client_max_body_size", string(&one(d)?))]),
            "client_body_buffer_size" => Keys(vec![("client_body_buffer_size", string(&one(d)?))]),
            "client_body_temp_path" => {
                args_n(d, |n| n >= 1)?;
                Keys(vec![("client_body_temp_path", string(&d.args[0]))])
            }
            "client_body_timeout" | "client_header_timeout" | "send_timeout" => {
                let key = match d.name.as_str() {
                    "client_body_timeout" => "client_body_timeout",
                    "client_header_timeout" => "client_header_timeout",
                    _ => "send_timeout",
                };
                Keys(vec![(key, duration(&one(d)?))])
            }
            "keepalive_timeout" => {
                args_n(d, |n| n == 1 || n == 2)?;
                if d.args.len() == 2 {
                    self.skip(d, "the second value (a Keep-Alive: timeout= header) is not sent", true);
                }
                Keys(vec![("keepalive_timeout", duration(&d.args[0]))])
            }
            "keepalive_requests" => Keys(vec![("keepalive_requests", int_or_string(&one(d)?))]),
            "large_client_header_buffers" => {
                args_n(d, |n| n == 2)?;
                Keys(vec![("large_client_header_buffers", string(&d.args.join(" ")))])
            }
            "disable_symlinks" => match d.args.first().map(String::as_str) {
                Some("on") => Keys(vec![("symlinks", string("deny"))]),
                Some("off") => Absorbed("nginx follows every symlink; Portico's default (symlinks = \"inside\") follows those that stay inside the directory: see the findings".into()),
                _ => NotConverted("if_not_owner is not available: symlinks = \"inside\" (the default) or \"deny\"".into()),
            },
            "log_not_found" => Keys(vec![("log_not_found", Value::Boolean(on_off(d)?))]),
            "server_tokens" => Absorbed("Portico never sends its version".into()),
            "default_type" if d.args.first().map(String::as_str) == Some("application/octet-stream") => {
                Absorbed("Portico's default type is application/octet-stream".into())
            }
            "types" => Absorbed("Portico's types follow nginx's stock mime.types".into()),
            "types_hash_max_size" | "types_hash_bucket_size" | "server_names_hash_bucket_size" | "server_names_hash_max_size" | "variables_hash_max_size" | "variables_hash_bucket_size" => {
                Absorbed("nginx's hash table sizes: Portico has none to size".into())
            }
            "ignore_invalid_headers" if d.args.first().map(String::as_str) == Some("on") => {
                Absorbed("Portico refuses invalid header lines with 400 (stricter)".into())
            }
            "underscores_in_headers" => NotConverted("Portico never passes header names with `_` to uWSGI (X-A_B and X-A-B would both be HTTP_X_A_B): rename the header in the client".into()),
            "ssl_certificate" | "ssl_certificate_key" => {
                let key = if d.name == "ssl_certificate" { "ssl_certificate" } else { "ssl_certificate_key" };
                Keys(vec![(key, string(&one(d)?))])
            }
            "ssl_protocols" => {
                args_n(d, |n| n >= 1)?;
                let kept: Vec<String> = d.args.iter().filter(|p| ["TLSv1.2", "TLSv1.3"].contains(&p.as_str())).cloned().collect();
                if kept.is_empty() {
                    NotConverted("only TLSv1.2 and TLSv1.3 are available (rustls)".into())
                } else {
                    if kept.len() < d.args.len() {
                        self.skip(d, "older versions left out: only TLSv1.2 and TLSv1.3 are available (rustls)", true);
                    }
                    Keys(vec![("ssl_protocols", strings(&kept))])
                }
            }
            "set_real_ip_from" => {
                let from = one(d)?;
                if from == "unix:" {
                    NotConverted("Portico listens on TCP only: there are no unix: peers to trust".into())
                } else {
                    Keys(vec![("set_real_ip_from", Value::Array(vec![string(&from)]))])
                }
            }
            "real_ip_header" => Keys(vec![("real_ip_header", string(&one(d)?))]),
            "real_ip_recursive" => Keys(vec![("real_ip_recursive", Value::Boolean(on_off(d)?))]),
            "http2" => Keys(vec![("http2", Value::Boolean(on_off(d)?))]),
            name if name.starts_with("ssl_") => {
                Absorbed("rustls's own choices (cipher suites, session tickets and resumption; no OCSP stapling, no DH parameters)".into())
            }
            "return" => {
                args_n(d, |n| n == 1 || n == 2)?;
                match d.args.as_slice() {
                    [code] => Keys(vec![("return", int_or_string(code))]),
                    _ => Keys(vec![("return", string(&d.args.join(" ")))]),
                }
            }
            "rewrite" | "if" | "set" | "map" => {
                NotConverted("rewriting is not available: express it with locations, try_files and error_page".into())
            }
            "proxy_pass" | "fastcgi_pass" | "scgi_pass" | "grpc_pass" | "memcached_pass" => {
                NotConverted("Portico forwards to uWSGI only (uwsgi_pass)".into())
            }
            "internal" => NotConverted("internal locations are not available: a named location (@name) is reached only internally".into()),
            "autoindex" => NotConverted("directory listings are not available (a directory without an index file is 403)".into()),
            "allow" | "deny" | "auth_basic" | "auth_basic_user_file" | "auth_request" | "satisfy" => {
                NotConverted("access control is not available: keep it in the app".into())
            }
            "limit_req" | "limit_conn" | "limit_rate" | "limit_req_zone" | "limit_conn_zone" | "limit_except" => {
                NotConverted("rate and connection limits are not available".into())
            }
            "charset" | "source_charset" => NotConverted("charset conversion is not available: the app's Content-Type says its charset".into()),
            "resolver" | "resolver_timeout" => Absorbed("Portico resolves nothing at run time: addresses are IPs or Unix sockets".into()),
            // nginx refuses these outside a location, and so does the converter
            "alias" | "uwsgi_pass" | "uwsgi_modifier1" | "uwsgi_modifier2" => {
                return Err(error(d, format!("\"{}\" directive is not allowed here", d.name)))
            }
            other => NotConverted(format!("`{other}` is not a directive Portico knows")),
        })
    }
}

/// Adds `item` to a level: table keys merge their entries; a scalar key set twice is
/// nginx's "is duplicate" error.
fn merge(items: &mut Vec<Item>, item: Item, d: &Directive) -> Result<(), ContextError> {
    match items.iter_mut().find(|i| i.key == item.key) {
        Some(existing) => match (&mut existing.value, item.value) {
            (Value::Table(t), Value::Table(new)) => {
                for (k, v) in new {
                    t.insert(k, v);
                }
                existing.written.push_str("; ");
                existing.written.push_str(&item.written);
                Ok(())
            }
            // each `set_real_ip_from` adds one block, as in nginx
            (Value::Array(list), Value::Array(new)) if item.key == "set_real_ip_from" => {
                list.extend(new);
                existing.written.push_str("; ");
                existing.written.push_str(&item.written);
                Ok(())
            }
            _ => Err(error(d, format!("\"{}\" directive is duplicate", d.name))),
        },
        None => {
            items.push(item);
            Ok(())
        }
    }
}

/// The file name an `include` names (`uwsgi_params` for `/etc/nginx/uwsgi_params`).
fn include_name(d: &Directive) -> &str {
    std::path::Path::new(d.args.first().map_or("", String::as_str))
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
}

/// An nginx time as Portico writes durations: a bare number is seconds, days are hours.
fn duration(s: &str) -> Value {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return string(&format!("{s}s"));
    }
    match s.strip_suffix('d').and_then(|n| n.parse::<u64>().ok()) {
        Some(days) => string(&format!("{}h", days * 24)),
        None => string(s),
    }
}

/// A number as TOML's integer, else the text (the validation says what is wrong with it).
fn int_or_string(s: &str) -> Value {
    s.parse::<i64>().map_or_else(|_| string(s), Value::Integer)
}

/// A TOML bare key, quoted when it needs to be.
pub fn toml_key(name: &str) -> String {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        name.to_string()
    } else {
        Value::String(name.to_string()).to_string()
    }
}

/// The directives of a block with its includes' contents in their place.
fn flatten(body: &[Directive]) -> Vec<&Directive> {
    let mut out = Vec::new();
    for d in body {
        match (&d.block, d.name.as_str()) {
            (Some(inner), "include") => out.extend(flatten(inner)),
            _ => out.push(d),
        }
    }
    out
}
