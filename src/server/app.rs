//! One request's life, in order: read it → pick the server → normalise the URI → pick the
//! location (with try_files, index and error_page redirects) → serve the file or forward
//! to uWSGI → log → hand the connection back to pingora for keep-alive.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use http::{HeaderMap, Method, Version};
use pingora_core::apps::{HttpPersistentSettings, HttpServerApp, HttpServerOptions, ReusedHttpStream};
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::ShutdownWatch;

use crate::config::{Location, Site};
use crate::error_pages::ErrorTarget;
use crate::log::access::AccessFormat;
use crate::log::error::{format_line, ErrorContext};
use crate::log::writer::Sink;
use crate::log::{Level, Note};
use crate::response::{closes_connection, Reply};
use crate::routing::locations::{Captures, LocationId};
use crate::routing::servers::{normalize_host, ServerTable};
use crate::static_files::serve::{serve, try_files, FileRequest, Outcome};
use crate::uri::{normalize_path, split_target};
use crate::uwsgi::codec::request::{encode_request, CgiRequest, EncodeOptions};
use crate::uwsgi::forward::{
    forward, prepare_body, upstream_label, BodyError, Exchange, RequestBody, Upstream,
};

use super::request::{version_str, RequestInfo, ResponseInfo, Vars};
use super::wire::{send_raw_error, send_reply};

/// nginx stops after this many internal redirects (index, try_files, error_page).
const MAX_INTERNAL_REDIRECTS: usize = 10;
thread_local! {
    /// The access-log line being formatted, reused by every request on this thread.
    static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Longest time spent reading a request body nobody wants before closing (nginx's
/// `lingering_time`).
const LINGERING_TIME: Duration = Duration::from_secs(30);

/// A site with its open log sinks.
pub struct SiteRuntime {
    pub site: Site,
    pub access: Option<(Sink, AccessFormat)>,
    pub error_log: Sink,
    pub error_level: Level,
}

/// The pingora application: every connection's requests go through here.
pub struct App {
    sites: Vec<SiteRuntime>,
    servers: ServerTable,
    upstreams: Vec<Upstream>,
    next_connection: AtomicU64,
    options: HttpServerOptions,
}

/// Per-connection state carried across keep-alive requests.
struct ConnectionState {
    id: u64,
    requests: u64,
    /// The uwsgi packet buffer, reused by every request on the connection.
    packet: Vec<u8>,
}

/// How a request ended for the connection.
enum Done {
    /// The response is out: let pingora finish it and decide keep-alive.
    Finish,
    /// The response broke off (or never started): close without finishing, so a
    /// truncated body is never framed as complete.
    Abort,
}

/// What the access log says about the backend.
#[derive(Default)]
struct UpstreamFields {
    addr: Option<String>,
    status: Option<u16>,
    time: Option<Duration>,
}

/// What routing decided.
enum Action {
    Reply(Reply),
    /// Forward to the location's uWSGI.
    Forward(LocationId),
}

impl App {
    pub fn new(sites: Vec<SiteRuntime>, servers: ServerTable, upstreams: Vec<Upstream>) -> App {
        App {
            sites,
            servers,
            upstreams,
            next_connection: AtomicU64::new(1),
            options: HttpServerOptions::default(),
        }
    }
}

#[async_trait]
impl HttpServerApp for App {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let mut conn = session
            .take_connection_user_context()
            .and_then(|c| c.downcast::<ConnectionState>().ok())
            .map(|b| *b)
            .unwrap_or_else(|| ConnectionState {
                id: self.next_connection.fetch_add(1, Ordering::Relaxed),
                requests: 0,
                packet: Vec::new(),
            });
        let local = session.server_addr().and_then(|a| a.as_inet()).copied();
        let remote = session.client_addr().and_then(|a| a.as_inet()).copied();
        let first_site = &self.sites[local.map_or(0, |l| self.servers.default_for(l))];
        let settings = &first_site.site.connection;
        if conn.requests == 0 {
            // pingora waits 60 s for the first request; nginx's client_header_timeout applies
            session.set_keepalive(Some(secs(settings.client_header_timeout)));
        }
        session.set_read_timeout(Some(settings.client_header_timeout));
        session.set_write_timeout(Some(settings.send_timeout));
        session.set_pipelining_enabled(true);

        match session.read_request().await {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                if matches!(e.etype(), pingora_core::ErrorType::InvalidHTTPHeader) {
                    let date = pingora_core::protocols::http::date::get_cached_date();
                    send_raw_error(&session, 400, settings.send_timeout, date.as_bytes()).await;
                    self.log_error(
                        first_site,
                        Level::Info,
                        &format!(
                            "client sent invalid request: {}",
                            e.context.as_ref().map_or(String::new(), |c| c.as_str().to_string())
                        ),
                        &ErrorContext {
                            connection: Some(conn.id),
                            client: remote.map(|r| r.ip().to_string()).as_deref(),
                            ..ErrorContext::default()
                        },
                    );
                }
                return None;
            }
        }
        conn.requests += 1;

        // boxed: an idle keep-alive connection waits above with only a pointer to spare,
        // not the whole (several KiB) state of a request being served
        let served = Box::pin(self.serve_request(&mut session, &mut conn, local, remote, shutdown)).await;
        if let Done::Abort = served {
            return None;
        }
        let mut persist = HttpPersistentSettings::for_session(&session);
        persist.set_user_context(Box::new(conn));
        // boxed for the same reason as serving: pingora's finish() future is ~3.7 KiB
        match Box::pin(session.finish()).await {
            Ok(Some(stream)) => Some(ReusedHttpStream::from_reusable_stream(stream, persist)),
            _ => None,
        }
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        Some(&self.options)
    }
}

fn secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}

impl App {
    /// Serves one parsed request and says how the connection goes on.
    async fn serve_request(
        &self,
        session: &mut ServerSession,
        conn: &mut ConnectionState,
        local: Option<SocketAddr>,
        remote: Option<SocketAddr>,
        shutdown: &ShutdownWatch,
    ) -> Done {
        let started = Instant::now();
        let header = session.req_header();
        let method = header.method.clone();
        let version = header.version;
        let raw_target = header.raw_path().to_vec();
        let host_raw = header
            .uri
            .authority()
            .map(|a| a.as_str().as_bytes().to_vec())
            .or_else(|| header.headers.get(http::header::HOST).map(|h| h.as_bytes().to_vec()));
        let host = host_raw.as_deref().map(normalize_host);

        let site_id = match (&host, local) {
            (Some(Ok(h)), Some(l)) => self.servers.pick(l, Some(h)),
            (_, Some(l)) => self.servers.default_for(l),
            _ => 0,
        };
        let rt = &self.sites[site_id];
        let site = &rt.site;
        let settings = &site.connection;

        let keepalive_asked = session.get_keepalive().is_some();
        let keepalive_allowed =
            keepalive_asked && !*shutdown.borrow() && conn.requests < u64::from(settings.keepalive_requests);
        // pingora leaves the idle timeout infinite after a request; never re-enable it for
        // HTTP/1.0 or `Connection: close` requests
        session.set_keepalive(keepalive_allowed.then(|| secs(settings.keepalive_timeout)));
        session.set_read_timeout(Some(settings.client_body_timeout));
        session.set_write_timeout(Some(settings.send_timeout));

        let mut info = RequestInfo {
            connection: conn.id,
            connection_requests: conn.requests,
            started,
            method: method.clone(),
            version,
            raw_target,
            request_uri: Vec::new(),
            query: None,
            uri: Vec::new(),
            host: String::new(),
            remote,
            local,
            captures: Captures::default(),
            document_root: Vec::new(),
        };
        let mut notes: Vec<Note> = Vec::new();

        let action = match self.check_request(session, site, &mut info, host, &mut notes) {
            Err(status) => Action::Reply(Reply::error(status)),
            Ok(()) => self.route(site, &mut info, &session.req_header().headers, &mut notes),
        };

        let head_only = method == Method::HEAD;
        match action {
            Action::Reply(r) => {
                self.respond(session, rt, &info, r, notes, head_only, UpstreamFields::default()).await
            }
            Action::Forward(location) => {
                self.forward_to_uwsgi(session, rt, &info, location, notes, head_only, &mut conn.packet).await
            }
        }
    }

    /// Host and URI checks: 400 for what nginx refuses before routing, 413 for a body
    /// over `client_max_body_size`.
    fn check_request(
        &self,
        session: &ServerSession,
        site: &Site,
        info: &mut RequestInfo,
        host: Option<Result<String, crate::routing::servers::InvalidHost>>,
        notes: &mut Vec<Note>,
    ) -> Result<(), u16> {
        // the target before the Host header, in the order nginx reads them
        let target = split_target(&info.raw_target).map_err(|e| {
            notes.push(Note::new(Level::Info, format!("client sent invalid request: {e}")));
            400u16
        })?;
        info.query = target.query.map(<[u8]>::to_vec);
        info.request_uri = target.raw_path.to_vec();
        if let Some(q) = target.query {
            info.request_uri.push(b'?');
            info.request_uri.extend_from_slice(q);
        }
        let mut uri = Vec::new();
        normalize_path(target.raw_path, &mut uri).map_err(|e| {
            notes.push(Note::new(Level::Info, format!("client sent invalid request: {e}")));
            400u16
        })?;
        info.uri = uri;
        match host {
            Some(Ok(h)) => info.host = h,
            Some(Err(e)) => {
                notes.push(Note::new(Level::Info, e.to_string()));
                return Err(400);
            }
            None if info.version == Version::HTTP_11 => {
                notes.push(Note::new(Level::Info, "client sent HTTP/1.1 request without \"Host\" header"));
                return Err(400);
            }
            // HTTP/1.0 without Host: the server's name, else the address it was reached at
            // (redirects need a host to name)
            None if site.name.is_empty() => {
                info.host = match info.local {
                    Some(SocketAddr::V6(a)) => format!("[{}]", a.ip()),
                    Some(a) => a.ip().to_string(),
                    None => String::new(),
                }
            }
            None => info.host = site.name.clone(),
        }
        let max = site.connection.client_max_body_size;
        if max > 0 {
            let length = crate::text::content_length(&session.req_header().headers);
            if let Some(len) = length.filter(|&l| l > max) {
                notes.push(Note::new(
                    Level::Error,
                    format!(
                        "client intended to send too large body: {len} bytes (client_max_body_size is {max})"
                    ),
                ));
                return Err(413);
            }
        }
        Ok(())
    }

    /// Location search and the internal redirects that follow from it.
    fn route(
        &self,
        site: &Site,
        info: &mut RequestInfo,
        headers: &HeaderMap,
        notes: &mut Vec<Note>,
    ) -> Action {
        enum Next {
            Uri,
            Named(LocationId),
        }
        let mut next = Next::Uri;
        let mut forced_status: Option<u16> = None;
        let mut error_page_used = false;
        for _ in 0..MAX_INTERNAL_REDIRECTS {
            let (loc_id, captures) = match next {
                Next::Uri => match site.index.find(&info.uri) {
                    Some(found) => (Some(found.location), found.captures),
                    None => (None, Captures::default()),
                },
                Next::Named(id) => (Some(id), Captures::default()),
            };
            info.captures = captures;
            let outcome = match loc_id {
                Some(id) => {
                    let loc = &site.locations[id];
                    info.document_root = loc.files.mapping.document_root().unwrap_or(b"").to_vec();
                    match self.run_location(site, loc, info, headers, notes) {
                        Some(o) => o,
                        None => return Action::Forward(id),
                    }
                }
                None => Outcome::Status(404),
            };
            match outcome {
                Outcome::Reply(mut r) => {
                    if let Some(s) = forced_status.filter(|_| r.head.status == 200) {
                        r.head.status = s;
                    }
                    return Action::Reply(r);
                }
                Outcome::Redirect(uri) => {
                    info.uri = uri;
                    next = Next::Uri;
                }
                Outcome::Named(name) => match site.index.named(&name) {
                    Some(id) => next = Next::Named(id),
                    None => return Action::Reply(Reply::error(500)),
                },
                Outcome::Status(code) => {
                    let pages = loc_id.map_or(&site.error_pages, |id| &site.locations[id].error_pages);
                    let target = pages.get(code).filter(|_| !error_page_used);
                    match target {
                        Some(ErrorTarget::Uri { uri, status }) => {
                            error_page_used = true;
                            forced_status = Some(status.unwrap_or(code));
                            if info.method != Method::HEAD {
                                info.method = Method::GET;
                            }
                            info.uri = uri.clone();
                            next = Next::Uri;
                        }
                        Some(ErrorTarget::Named { name, status }) => {
                            error_page_used = true;
                            forced_status = *status;
                            match site.index.named(name) {
                                Some(id) => next = Next::Named(id),
                                None => return Action::Reply(Reply::error(code)),
                            }
                        }
                        None => return Action::Reply(Reply::error(code)),
                    }
                }
            }
        }
        notes.push(Note::new(
            Level::Error,
            format!(
                "rewrite or internal redirection cycle while internally redirecting to \"{}\"",
                String::from_utf8_lossy(&info.uri)
            ),
        ));
        Action::Reply(Reply::error(500))
    }

    /// A location's content step; `None` means "forward to uWSGI".
    fn run_location(
        &self,
        site: &Site,
        loc: &Location,
        info: &mut RequestInfo,
        headers: &HeaderMap,
        notes: &mut Vec<Note>,
    ) -> Option<Outcome> {
        let tried = {
            let vars = request_vars(info, headers, &site.name);
            try_files(&loc.files, &file_request(info, headers, &vars))
        };
        match tried {
            Ok(uri) => info.uri = uri,
            Err(fallback) => return Some(*fallback),
        }
        if loc.uwsgi.is_some() {
            return None;
        }
        let vars = request_vars(info, headers, &site.name);
        Some(serve(&loc.files, &file_request(info, headers, &vars), notes))
    }

    /// Sends a reply Portico made itself, then writes the logs.
    #[allow(clippy::too_many_arguments)]
    async fn respond(
        &self,
        session: &mut ServerSession,
        rt: &SiteRuntime,
        info: &RequestInfo,
        reply: Reply,
        notes: Vec<Note>,
        head_only: bool,
        upstream: UpstreamFields,
    ) -> Done {
        let settings = &rt.site.connection;
        if closes_connection(reply.head.status) {
            session.set_keepalive(None);
        }
        let body_read = self.discard_body(session, settings.client_max_body_size).await;
        let keepalive = session.as_http1().is_some_and(|h| h.will_keepalive());
        let date = pingora_core::protocols::http::date::get_cached_date();
        let result =
            send_reply(session, &reply, head_only, keepalive, settings.send_timeout, date.as_bytes()).await;
        let mut response = ResponseInfo {
            status: reply.head.status,
            content_type: reply.head.content_type.as_deref().map(str::to_string),
            location: reply.head.location.clone(),
            upstream_addr: upstream.addr,
            upstream_status: upstream.status,
            upstream_time: upstream.time,
            ..ResponseInfo::default()
        };
        let mut notes = notes;
        let done = match result {
            Ok(sent) => {
                response.head_bytes = sent.head_bytes;
                response.body_bytes = sent.body_bytes;
                Done::Finish
            }
            Err(e) => {
                notes.push(Note::new(Level::Info, e.to_string()));
                Done::Abort
            }
        };
        self.log_request(rt, info, &session.req_header().headers, &notes, &response, body_read);
        done
    }

    /// Forwards to the location's uWSGI pool and relays the answer; errors before any
    /// response byte went out become Portico's own error pages.
    #[allow(clippy::too_many_arguments)]
    async fn forward_to_uwsgi(
        &self,
        session: &mut ServerSession,
        rt: &SiteRuntime,
        info: &RequestInfo,
        location: LocationId,
        mut notes: Vec<Note>,
        head_only: bool,
        packet: &mut Vec<u8>,
    ) -> Done {
        let site = &rt.site;
        let settings = &site.connection;
        let Some(uw) = site.locations[location].uwsgi.as_ref() else {
            return self
                .respond(session, rt, info, Reply::error(500), notes, head_only, UpstreamFields::default())
                .await;
        };
        let upstream = &self.upstreams[uw.upstream];
        let chunked = session.req_header().headers.contains_key(http::header::TRANSFER_ENCODING);
        let body = match prepare_body(
            session,
            settings.client_max_body_size,
            settings.client_body_buffer_size,
            &settings.client_body_temp_path,
        )
        .await
        {
            Ok(b) => b,
            Err(e) => {
                let status = match e {
                    BodyError::TooLarge(n) => {
                        notes.push(Note::new(
                            Level::Error,
                            format!("client intended to send too large chunked body: {n}+ bytes (client_max_body_size is {})", settings.client_max_body_size),
                        ));
                        413
                    }
                    BodyError::Client { timed_out, detail } => {
                        notes.push(Note::new(
                            Level::Info,
                            format!("client stopped sending the request body: {detail}"),
                        ));
                        if !timed_out {
                            let response = ResponseInfo { status: 499, ..ResponseInfo::default() };
                            self.log_request(rt, info, &session.req_header().headers, &notes, &response, 0);
                            return Done::Abort;
                        }
                        408
                    }
                    BodyError::TempFile(detail) => {
                        notes.push(Note::new(
                            Level::Crit,
                            format!(
                                "buffering the request body failed: {detail}; check client_body_temp_path"
                            ),
                        ));
                        500
                    }
                };
                session.set_keepalive(None);
                return self
                    .respond(
                        session,
                        rt,
                        info,
                        Reply::error(status),
                        notes,
                        head_only,
                        UpstreamFields::default(),
                    )
                    .await;
            }
        };
        let encoded = {
            let headers = &session.req_header().headers;
            let cgi = CgiRequest {
                method: info.method.as_str().as_bytes(),
                request_uri: &info.request_uri,
                query: info.query.as_deref().unwrap_or(b""),
                path_info: &info.uri,
                document_root: &info.document_root,
                protocol: version_str(info.version).as_bytes(),
                https: false,
                remote: info.remote,
                server_port: info.local.map_or(0, |l| l.port()),
                server_name: site.name.as_bytes(),
                content_type: headers.get(http::header::CONTENT_TYPE).map(|v| v.as_bytes()),
                content_length: body.content_length(),
                body_was_chunked: chunked && !matches!(body, RequestBody::Streaming(_)),
            };
            let opts = EncodeOptions {
                params: &uw.params,
                modifier1: uw.modifier1,
                modifier2: uw.modifier2,
                buffer_size: upstream.pool.config().uwsgi_buffer_size,
            };
            let vars = request_vars(info, headers, &site.name);
            let pairs = || headers.iter().map(|(k, v)| (k.as_str().as_bytes(), v.as_bytes()));
            encode_request(&cgi, pairs, &opts, &vars, packet)
        };
        if let Err(e) = encoded {
            let label = upstream_label(&upstream.pool.config().name);
            notes.push(Note { level: Level::Error, message: e.to_string(), upstream: Some(label) });
            return self
                .respond(session, rt, info, Reply::error(431), notes, head_only, UpstreamFields::default())
                .await;
        }
        let exchange = Exchange {
            packet,
            body,
            head_request: head_only,
            client_http10: info.version == Version::HTTP_10,
        };
        let forwarded = forward(session, upstream, exchange).await;
        notes.extend(forwarded.notes);
        let fields = UpstreamFields {
            addr: forwarded.upstream_addr,
            status: forwarded.upstream_status,
            time: forwarded.upstream_time,
        };
        match forwarded.result {
            Err(499) => {
                let response = ResponseInfo {
                    status: 499,
                    upstream_addr: fields.addr,
                    upstream_time: fields.time,
                    ..ResponseInfo::default()
                };
                self.log_request(rt, info, &session.req_header().headers, &notes, &response, 0);
                Done::Abort
            }
            Err(status) => {
                self.respond(session, rt, info, Reply::error(status), notes, head_only, fields).await
            }
            Ok(relayed) => {
                let response = ResponseInfo {
                    status: relayed.status,
                    head_bytes: relayed.head_bytes,
                    body_bytes: relayed.body_bytes,
                    upstream_addr: fields.addr,
                    upstream_status: fields.status,
                    upstream_time: fields.time,
                    content_type: relayed.content_type,
                    location: relayed.location,
                };
                if relayed.complete && !relayed.request_consumed {
                    // nginx's lingering close: take in what the client still sends, or
                    // closing with unread data would reset the connection and could destroy
                    // the response before the client reads it
                    let _ = tokio::time::timeout(LINGERING_TIME, session.drain_request_body()).await;
                }
                let body_read = session.body_bytes_read() as u64;
                self.log_request(rt, info, &session.req_header().headers, &notes, &response, body_read);
                if relayed.complete {
                    Done::Finish
                } else {
                    Done::Abort
                }
            }
        }
    }

    /// Reads and drops a request body nobody will use, so the connection can be reused;
    /// gives up on keep-alive instead when that would mean reading a lot or waiting for a
    /// client that expects `100 Continue`.
    async fn discard_body(&self, session: &mut ServerSession, limit: u64) -> u64 {
        if session.is_body_empty() {
            return 0;
        }
        if crate::text::expects_continue(&session.req_header().headers) {
            session.set_keepalive(None);
            return 0;
        }
        let cap = if limit == 0 { u64::MAX } else { limit };
        let mut read = 0u64;
        let drained = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match session.read_request_body().await {
                    Ok(Some(chunk)) => {
                        read += chunk.len() as u64;
                        if read > cap {
                            return false;
                        }
                    }
                    Ok(None) => return true,
                    Err(_) => return false,
                }
            }
        })
        .await
        .unwrap_or(false);
        if !drained {
            session.set_keepalive(None);
        }
        read
    }

    /// Writes the request's error-log notes and its access-log line.
    fn log_request(
        &self,
        rt: &SiteRuntime,
        info: &RequestInfo,
        headers: &HeaderMap,
        notes: &[Note],
        response: &ResponseInfo,
        body_read: u64,
    ) {
        let wanted: Vec<&Note> = notes.iter().filter(|n| n.level <= rt.error_level).collect();
        if !wanted.is_empty() {
            let client = info.remote.map(|r| r.ip().to_string());
            let request_line = info.request_line();
            let host =
                headers.get(http::header::HOST).map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned());
            let referrer = headers
                .get(http::header::REFERER)
                .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned());
            for note in wanted {
                let ctx = ErrorContext {
                    connection: Some(info.connection),
                    client: client.as_deref(),
                    server: Some(&rt.site.name),
                    request_line: Some(&request_line),
                    upstream: note.upstream.as_deref(),
                    host: host.as_deref(),
                    referrer: referrer.as_deref(),
                };
                self.log_error(rt, note.level, &note.message, &ctx);
            }
        }
        let Some((sink, format)) = &rt.access else { return };
        let now = crate::log::clock::now();
        let vars = Vars {
            req: info,
            headers,
            server_name: &rt.site.name,
            response: Some(response),
            now: Some(&now),
            body_read,
        };
        LINE.with(|line| {
            let mut line = line.borrow_mut();
            line.clear();
            format.line(&vars, &mut line);
            sink.write(&line);
        });
    }

    fn log_error(&self, rt: &SiteRuntime, level: Level, message: &str, ctx: &ErrorContext) {
        if level > rt.error_level {
            return;
        }
        let now = crate::log::clock::now();
        let tid = nix::unistd::gettid().as_raw();
        rt.error_log.write(&format_line(
            &now.strings.error_log,
            level,
            std::process::id(),
            i64::from(tid),
            message,
            ctx,
        ));
    }
}

fn file_request<'a>(info: &'a RequestInfo, headers: &'a HeaderMap, vars: &'a Vars<'a>) -> FileRequest<'a> {
    FileRequest {
        method: &info.method,
        uri: &info.uri,
        args: info.query.as_deref(),
        headers,
        vars,
        host: &info.host,
        port: info.local.map(|l| l.port()),
    }
}

fn request_vars<'a>(info: &'a RequestInfo, headers: &'a HeaderMap, server_name: &'a str) -> Vars<'a> {
    Vars { req: info, headers, server_name, response: None, now: None, body_read: 0 }
}
