//! One connection's life on pingora's lifecycle, and one request's, in order: read the
//! head → pick the server → normalise the URI → pick the location (with try_files, index
//! and error_page redirects) → serve the file or forward to uWSGI → log → next request
//! on the same connection, or close (lingering when the client may still be sending).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::Stream;
use pingora_core::server::ShutdownWatch;
use tokio::time::Instant;

use crate::config::{Location, Site};
use crate::error_pages::ErrorTarget;
use crate::http1::connection::{AfterBody, BodyError, Connection, Exchange, Next, Timeouts};
use crate::http1::request_head::{BodyFraming, Method, Request, RequestHead, Version};
use crate::log::access::AccessFormat;
use crate::log::error::{format_line, ErrorContext};
use crate::log::writer::Sink;
use crate::log::{Level, Note};
use crate::response::{closes_connection, Reply};
use crate::routing::locations::{Captures, LocationId};
use crate::routing::servers::{normalize_host, InvalidHost, ServerTable};
use crate::server::settings::ConnectionSettings;
use crate::static_files::serve::{serve, try_files, FileRequest, Outcome};
use crate::uri::{normalized, split_target};
use crate::uwsgi::codec::vars_block::{encode_request, CgiRequest, EncodeOptions};
use crate::uwsgi::forward::{forward, prepare_body, upstream_label, Exchange as UwsgiExchange, Upstream};

use super::recycled_box::RecycledBox;
use super::reply::send_reply;
use super::request::{RequestInfo, ResponseInfo, Vars};

/// nginx stops after this many internal redirects (index, try_files, error_page).
const MAX_INTERNAL_REDIRECTS: usize = 10;

thread_local! {
    /// The access-log line being formatted, reused by every request on this thread.
    static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A site with its open log sinks.
pub struct SiteRuntime {
    pub site: Site,
    pub access: Option<(Sink, AccessFormat)>,
    pub error_log: Sink,
    pub error_level: Level,
}

/// The application pingora runs: every connection goes through here.
pub struct App {
    sites: Vec<SiteRuntime>,
    servers: ServerTable,
    upstreams: Vec<Upstream>,
    next_connection: AtomicU64,
}

/// How a request ended for the connection.
struct Done {
    /// The connection may carry another request.
    keep_alive: bool,
    /// The client may still be sending a body nobody read: close lingering.
    linger: bool,
}

/// What the access log says about the backend.
#[derive(Default)]
struct UpstreamFields {
    addr: Option<String>,
    status: Option<u16>,
    time: Option<Duration>,
}

/// What routing decided (a value that lives for one step: boxing the reply would cost an
/// allocation per request).
#[allow(clippy::large_enum_variant)]
enum Action {
    /// Send this reply; `sendfile`: the serving location's setting.
    Reply(Reply, bool),
    /// Forward to the location's uWSGI.
    Forward(LocationId),
}

/// What one connection knows about itself.
#[derive(Clone, Copy)]
struct Peer {
    id: u64,
    local: Option<SocketAddr>,
    remote: Option<SocketAddr>,
}

impl App {
    pub fn new(sites: Vec<SiteRuntime>, servers: ServerTable, upstreams: Vec<Upstream>) -> App {
        App { sites, servers, upstreams, next_connection: AtomicU64::new(1) }
    }
}

#[async_trait]
impl ServerApp for App {
    async fn process_new(self: &Arc<Self>, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        // the raw fd exists only for a plain socket: sendfile and MSG_MORE need it
        let fd = stream.as_any().downcast_ref::<L4Stream>().map(AsRawFd::as_raw_fd);
        let (local, remote) = match stream.get_socket_digest() {
            Some(d) => (
                d.local_addr().and_then(|a| a.as_inet()).copied(),
                d.peer_addr().and_then(|a| a.as_inet()).copied(),
            ),
            None => (None, None),
        };
        let peer = Peer { id: self.next_connection.fetch_add(1, Ordering::Relaxed), local, remote };
        // The connection gets a task of its own, sized for our loop alone: pingora's
        // connection task (its accept, handshake and reuse states, some KiB) ends here
        // instead of living as long as the connection. The task stays on this thread.
        // (The task owns the connection and serve_connection borrows it: an async fn's
        // arguments would be stored twice in its state.)
        let app = self.clone();
        let shutdown = shutdown.clone();
        let f = async move {
            let mut conn = Connection::new(stream, fd);
            app.serve_connection(&mut conn, &peer, &shutdown).await
        };
        tokio::spawn(f);
        None
    }
}

/// Resolves once the server is stopping (at once if it is already).
async fn stopping(mut watch: ShutdownWatch) {
    while !*watch.borrow_and_update() {
        if watch.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl App {
    /// Serves the connection's requests until it closes.
    async fn serve_connection(&self, conn: &mut Connection<Stream>, peer: &Peer, shutdown: &ShutdownWatch) {
        let peer = *peer;
        let accepted = Instant::now();
        let default_site = &self.sites[peer.local.map_or(0, |l| self.servers.default_for(l))];
        let defaults = &default_site.site.connection;
        let timeouts =
            Timeouts { header: defaults.client_header_timeout, keepalive: defaults.keepalive_timeout };
        let mut keepalive_timeout = defaults.keepalive_timeout;
        // one wait for the stop for the connection's life, not one registration per request
        let mut stop = std::pin::pin!(stopping(shutdown.clone()));
        loop {
            let first = conn.requests == 0;
            let idle_until =
                if first { accepted + timeouts.header } else { Instant::now() + keepalive_timeout };
            let next = tokio::select! {
                biased;
                next = conn.next_request(idle_until, &timeouts, &defaults.head_limits, first) => next,
                _ = &mut stop => return,
            };
            let head = match next {
                Next::Request(head) => head,
                Next::Close => return,
                Next::TimedOut => {
                    let message =
                        "client timed out (110: Connection timed out) while reading client request headers";
                    // the ends of a connection are boxed: their state would otherwise sit in
                    // every idle connection's future
                    let refused = Box::pin(self.refuse(conn, default_site, peer, 408, message));
                    refused.await;
                    return;
                }
                Next::Refuse(e) => {
                    let refused = Box::pin(self.refuse(conn, default_site, peer, e.status, e.reason));
                    refused.await;
                    return;
                }
            };
            let stopping_now = *shutdown.borrow();
            // boxed: an idle keep-alive connection waits above with only a pointer to spare,
            // not the whole state of a request being served; the slot is reused
            let step = RecycledBox::new(self.request_step(conn, head, defaults, peer, stopping_now));
            match step.await {
                Some(site_keepalive) => keepalive_timeout = site_keepalive,
                None => return,
            }
        }
    }

    /// One request on the connection, from its parsed head to the connection ready for
    /// the next: the chosen server's keep-alive timeout, or `None` when the connection
    /// is done (closed lingering if the client may still be sending).
    async fn request_step(
        &self,
        conn: &mut Connection<Stream>,
        head: RequestHead,
        defaults: &ConnectionSettings,
        peer: Peer,
        stopping: bool,
    ) -> Option<Duration> {
        let requests = conn.requests;
        let (req, mut ex) = conn.exchange(&head, defaults.send_timeout, defaults.client_body_timeout);
        let (done, site_keepalive) = self.serve_request(req, &mut ex, peer, requests, stopping).await;
        let after = ex.into_after();
        // closing with bytes of a further request unread (pipelined past `keepalive_requests`
        // or `Connection: close`) would reset the connection under the answer: linger, as nginx
        let pipelined = after.as_ref().is_some_and(AfterBody::has_bytes);
        match after.filter(|_| done.keep_alive) {
            Some(after) => {
                conn.finish(head, after);
                Some(site_keepalive)
            }
            None => {
                if done.linger || pipelined {
                    conn.linger().await;
                }
                None
            }
        }
    }

    /// Answers a head that could not be read, logs why, and closes.
    async fn refuse(
        &self,
        conn: &mut Connection<Stream>,
        rt: &SiteRuntime,
        peer: Peer,
        status: u16,
        why: &str,
    ) {
        let client = peer.remote.map(|r| r.ip().to_string());
        self.log_error(
            rt,
            Level::Info,
            why,
            &ErrorContext { connection: Some(peer.id), client: client.as_deref(), ..ErrorContext::default() },
        );
        let reply = Reply::error(status);
        let mut bytes = Vec::new();
        crate::log::clock::with_http_date(|date| reply.head.encode(date, false, &mut bytes));
        if let crate::response::Body::Bytes(b) = &reply.body {
            bytes.extend_from_slice(b);
        }
        // a client too slow with its head is not waited for any longer
        conn.send_and_close(&bytes, rt.site.connection.send_timeout, status != 408).await;
    }

    /// Serves one parsed request; says how the connection goes on, and the chosen
    /// server's keep-alive timeout.
    async fn serve_request(
        &self,
        req: Request<'_>,
        ex: &mut Exchange<'_>,
        peer: Peer,
        requests: u64,
        stopping: bool,
    ) -> (Done, Duration) {
        let started = std::time::Instant::now();
        let host = req.host().map(normalize_host);
        let site_id = match (&host, peer.local) {
            (Some(Ok(h)), Some(l)) => self.servers.pick(l, Some(h.as_ref())),
            (_, Some(l)) => self.servers.default_for(l),
            _ => 0,
        };
        let rt = &self.sites[site_id];
        let site = &rt.site;
        let settings = &site.connection;
        ex.set_timeouts(settings.send_timeout, settings.client_body_timeout);

        let keep_alive =
            req.head().keep_alive && !stopping && requests < u64::from(settings.keepalive_requests);
        let mut info = RequestInfo {
            req,
            connection: peer.id,
            connection_requests: requests,
            started,
            method: req.method(),
            method_name: req.method_name(),
            request_uri: Cow::Borrowed(&[]),
            query: None,
            uri: Cow::Borrowed(&[]),
            host: Cow::Borrowed(""),
            remote: peer.remote,
            local: peer.local,
            captures: Captures::default(),
            document_root: b"",
        };
        let mut notes: Vec<Note> = Vec::new();

        let action = match check_request(site, &mut info, host, &mut notes) {
            Err(status) => Action::Reply(Reply::error(status), false),
            Ok(()) => self.route(site, &mut info, &mut notes),
        };
        let head_only = req.method() == Method::Head;
        let done = match action {
            Action::Reply(r, sendfile) => {
                self.respond(
                    ex,
                    rt,
                    &info,
                    r,
                    sendfile,
                    notes,
                    head_only,
                    keep_alive,
                    UpstreamFields::default(),
                )
                .await
            }
            Action::Forward(location) => {
                self.forward_to_uwsgi(ex, rt, &info, location, notes, head_only, keep_alive).await
            }
        };
        (done, settings.keepalive_timeout)
    }

    /// Location search and the internal redirects that follow from it.
    fn route<'r>(&self, site: &'r Site, info: &mut RequestInfo<'r>, notes: &mut Vec<Note>) -> Action {
        enum Next {
            Uri,
            Named(LocationId),
        }
        let mut next = Next::Uri;
        let mut forced_status: Option<u16> = None;
        let mut error_page_used = false;
        for _ in 0..MAX_INTERNAL_REDIRECTS {
            let (loc_id, captures) = match next {
                Next::Uri => {
                    // captures borrow the URI when it is the request's own bytes
                    let subject = match &info.uri {
                        Cow::Borrowed(uri) => Cow::Borrowed(*uri),
                        Cow::Owned(uri) => Cow::Owned(uri.clone()),
                    };
                    let found = site.index.find_in(subject);
                    match found {
                        Some(found) => (Some(found.location), found.captures),
                        None => (None, Captures::default()),
                    }
                }
                Next::Named(id) => (Some(id), Captures::default()),
            };
            info.captures = captures;
            let outcome = match loc_id {
                Some(id) => {
                    let loc = &site.locations[id];
                    info.document_root = loc.files.mapping.document_root().unwrap_or(b"");
                    match self.run_location(site, loc, info, notes) {
                        Some(o) => o,
                        None => return Action::Forward(id),
                    }
                }
                None => Outcome::Status(404),
            };
            let sendfile = loc_id.is_some_and(|id| site.locations[id].files.sendfile);
            match outcome {
                Outcome::Reply(mut r) => {
                    if let Some(s) = forced_status.filter(|_| r.head.status == 200) {
                        r.head.status = s;
                    }
                    return Action::Reply(r, sendfile);
                }
                Outcome::Redirect(uri) => {
                    info.uri = Cow::Owned(uri);
                    next = Next::Uri;
                }
                Outcome::Named(name) => match site.index.named(&name) {
                    Some(id) => next = Next::Named(id),
                    None => return Action::Reply(Reply::error(500), false),
                },
                Outcome::Status(code) => {
                    let pages = loc_id.map_or(&site.error_pages, |id| &site.locations[id].error_pages);
                    let target = pages.get(code).filter(|_| !error_page_used);
                    match target {
                        Some(ErrorTarget::Uri { uri, status }) => {
                            error_page_used = true;
                            forced_status = Some(status.unwrap_or(code));
                            if info.method != Method::Head {
                                info.method = Method::Get;
                                info.method_name = b"GET";
                            }
                            info.uri = Cow::Owned(uri.clone());
                            next = Next::Uri;
                        }
                        Some(ErrorTarget::Named { name, status }) => {
                            error_page_used = true;
                            forced_status = *status;
                            match site.index.named(name) {
                                Some(id) => next = Next::Named(id),
                                None => return Action::Reply(Reply::error(code), false),
                            }
                        }
                        None => return Action::Reply(Reply::error(code), false),
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
        Action::Reply(Reply::error(500), false)
    }

    /// A location's content step; `None` means "forward to uWSGI".
    fn run_location(
        &self,
        site: &Site,
        loc: &Location,
        info: &mut RequestInfo,
        notes: &mut Vec<Note>,
    ) -> Option<Outcome> {
        let tried = {
            let vars = request_vars(info, &site.name);
            try_files(&loc.files, &file_request(info, &vars))
        };
        match tried {
            Ok(Some(uri)) => info.uri = Cow::Owned(uri),
            Ok(None) => {}
            Err(fallback) => return Some(*fallback),
        }
        if loc.uwsgi.is_some() {
            return None;
        }
        let vars = request_vars(info, &site.name);
        Some(serve(&loc.files, &file_request(info, &vars), notes))
    }

    /// Sends a reply Portico made itself (reading and dropping an unread body first, so
    /// the connection can be reused), then writes the logs.
    #[allow(clippy::too_many_arguments)]
    async fn respond(
        &self,
        ex: &mut Exchange<'_>,
        rt: &SiteRuntime,
        info: &RequestInfo<'_>,
        reply: Reply,
        sendfile: bool,
        mut notes: Vec<Note>,
        head_only: bool,
        keep_alive: bool,
        upstream: UpstreamFields,
    ) -> Done {
        let mut reply = reply;
        let mut keep_alive = keep_alive && !closes_connection(reply.head.status);
        if keep_alive && ex.body_pending() {
            // what came with the head is read now: bad framing there is still a 400
            if let Err(e) = ex.discard_buffered() {
                notes.push(Note::new(Level::Info, format!("client sent invalid chunked body ({e})")));
                reply = Reply::error(400);
                keep_alive = false;
            }
        }
        let linger = ex.body_pending();
        let result = send_reply(ex, &reply, head_only, keep_alive, sendfile).await;
        let mut response = ResponseInfo {
            status: reply.head.status,
            content_type: reply.head.content_type.clone(),
            location: reply.head.location.clone(),
            upstream_addr: upstream.addr,
            upstream_status: upstream.status,
            upstream_time: upstream.time,
            ..ResponseInfo::default()
        };
        let done = match result {
            Ok(sent) => {
                response.head_bytes = sent.head_bytes;
                response.body_bytes = sent.body_bytes;
                // the rest of an unwanted body is read after the answer, as nginx does
                let clean = keep_alive && (!linger || ex.discard_body().await);
                Done { keep_alive: clean, linger: linger && !keep_alive }
            }
            Err(e) => {
                notes.push(Note::new(Level::Info, e.to_string()));
                Done { keep_alive: false, linger: false }
            }
        };
        self.log_request(rt, info, &notes, &response, ex.body_bytes_read());
        done
    }

    /// Forwards to the location's uWSGI pool and relays the answer; errors before any
    /// response byte went out become Portico's own error pages.
    #[allow(clippy::too_many_arguments)]
    async fn forward_to_uwsgi(
        &self,
        ex: &mut Exchange<'_>,
        rt: &SiteRuntime,
        info: &RequestInfo<'_>,
        location: LocationId,
        mut notes: Vec<Note>,
        head_only: bool,
        keep_alive: bool,
    ) -> Done {
        let site = &rt.site;
        let settings = &site.connection;
        let none = UpstreamFields::default;
        let Some(uw) = site.locations[location].uwsgi.as_ref() else {
            return self
                .respond(ex, rt, info, Reply::error(500), false, notes, head_only, keep_alive, none())
                .await;
        };
        let upstream = &self.upstreams[uw.upstream];
        let req = info.req;
        let body = match prepare_body(
            ex,
            req.head().body,
            settings.client_max_body_size,
            settings.client_body_buffer_size,
            &settings.client_body_temp_path,
        )
        .await
        {
            Ok(b) => b,
            Err(e) => {
                let status = match e {
                    crate::uwsgi::forward::BodyError::TooLarge(n) => {
                        notes.push(Note::new(
                            Level::Error,
                            format!("client intended to send too large chunked body: {n}+ bytes (client_max_body_size is {})", settings.client_max_body_size),
                        ));
                        413
                    }
                    crate::uwsgi::forward::BodyError::Client(e) => {
                        notes.push(Note::new(Level::Info, e.to_string()));
                        match e {
                            BodyError::Framing(_) => 400,
                            BodyError::TimedOut => 408,
                            BodyError::Closed(_) => {
                                let response = ResponseInfo { status: 499, ..ResponseInfo::default() };
                                self.log_request(rt, info, &notes, &response, ex.body_bytes_read());
                                return Done { keep_alive: false, linger: false };
                            }
                        }
                    }
                    crate::uwsgi::forward::BodyError::TempFile(detail) => {
                        notes.push(Note::new(
                            Level::Crit,
                            format!(
                                "buffering the request body failed: {detail}; check client_body_temp_path"
                            ),
                        ));
                        500
                    }
                };
                return self
                    .respond(ex, rt, info, Reply::error(status), false, notes, head_only, false, none())
                    .await;
            }
        };
        // the packet buffer is the thread's, not the connection's: idle connections hold none
        let mut packet = crate::buffer_pool::take(4096);
        let encoded = {
            let cgi = CgiRequest {
                method: info.method_name,
                request_uri: &info.request_uri,
                query: info.query.unwrap_or(b""),
                path_info: &info.uri,
                document_root: info.document_root,
                protocol: req.version().as_str().as_bytes(),
                https: false,
                remote: info.remote,
                server_port: info.local.map_or(0, |l| l.port()),
                server_name: site.name.as_bytes(),
                content_type: req.known(crate::http1::request_head::Known::ContentType),
                content_length: body.content_length(),
                body_was_chunked: req.head().body == BodyFraming::Chunked,
            };
            let opts = EncodeOptions {
                params: &uw.params,
                modifier1: uw.modifier1,
                modifier2: uw.modifier2,
                buffer_size: upstream.pool.config().uwsgi_buffer_size,
            };
            let vars = request_vars(info, &site.name);
            encode_request(&cgi, || req.headers(), &opts, &vars, &mut packet)
        };
        if let Err(e) = encoded {
            crate::buffer_pool::give(packet);
            let label = upstream_label(&upstream.pool.config().name);
            notes.push(Note { level: Level::Error, message: e.to_string(), upstream: Some(label) });
            return self
                .respond(ex, rt, info, Reply::error(431), false, notes, head_only, keep_alive, none())
                .await;
        }
        let exchange = UwsgiExchange {
            packet: &packet,
            body,
            head_request: head_only,
            client_http10: req.version() == Version::Http10,
            keep_alive,
        };
        let forwarded = forward(ex, upstream, exchange).await;
        crate::buffer_pool::give(packet);
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
                self.log_request(rt, info, &notes, &response, ex.body_bytes_read());
                Done { keep_alive: false, linger: false }
            }
            Err(status) => {
                // an unread body is read and dropped before the connection is reused
                self.respond(ex, rt, info, Reply::error(status), false, notes, head_only, keep_alive, fields)
                    .await
            }
            Ok(relayed) => {
                let response = ResponseInfo {
                    status: relayed.status,
                    head_bytes: relayed.head_bytes,
                    body_bytes: relayed.body_bytes,
                    upstream_addr: fields.addr,
                    upstream_status: fields.status,
                    upstream_time: fields.time,
                    content_type: relayed.content_type.map(Cow::Owned),
                    location: relayed.location,
                };
                self.log_request(rt, info, &notes, &response, ex.body_bytes_read());
                Done {
                    keep_alive: relayed.complete && relayed.keep_alive,
                    // an app that answered without reading the body: take in what the
                    // client still sends, or the close could destroy the response
                    linger: relayed.complete && ex.body_pending(),
                }
            }
        }
    }

    /// Writes the request's error-log notes and its access-log line.
    fn log_request(
        &self,
        rt: &SiteRuntime,
        info: &RequestInfo,
        notes: &[Note],
        response: &ResponseInfo,
        body_read: u64,
    ) {
        let mut wanted = notes.iter().filter(|n| n.level <= rt.error_level).peekable();
        if wanted.peek().is_some() {
            let client = info.remote.map(|r| r.ip().to_string());
            let request_line = info.request_line();
            let text = |v: Option<&[u8]>| v.map(|v| String::from_utf8_lossy(v).into_owned());
            let host = text(info.req.known(crate::http1::request_head::Known::Host));
            let referrer = text(info.req.known(crate::http1::request_head::Known::Referer));
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
        let vars =
            Vars { info, server_name: &rt.site.name, response: Some(response), now: Some(&now), body_read };
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

/// Target and Host checks: 400 for what nginx refuses before routing, 413 for a body
/// over `client_max_body_size`.
fn check_request<'r>(
    site: &'r Site,
    info: &mut RequestInfo<'r>,
    host: Option<Result<Cow<'r, str>, InvalidHost>>,
    notes: &mut Vec<Note>,
) -> Result<(), u16> {
    // the target before the Host header, in the order nginx reads them
    let target = split_target(info.req.target()).map_err(|e| {
        notes.push(Note::new(Level::Info, format!("client sent invalid request: {e}")));
        400u16
    })?;
    info.query = target.query;
    info.request_uri = request_uri(info.req.target(), target.raw_path, target.query);
    info.uri = normalized(target.raw_path).map_err(|e| {
        notes.push(Note::new(Level::Info, format!("client sent invalid request: {e}")));
        400u16
    })?;
    match host {
        Some(Ok(h)) => info.host = h,
        Some(Err(e)) => {
            notes.push(Note::new(Level::Info, e.to_string()));
            return Err(400);
        }
        None if info.req.version() == Version::Http11 => {
            notes.push(Note::new(Level::Info, "client sent HTTP/1.1 request without \"Host\" header"));
            return Err(400);
        }
        // HTTP/1.0 without Host: the server's name, else the address it was reached at
        // (redirects need a host to name)
        None if site.name.is_empty() => {
            info.host = Cow::Owned(match info.local {
                Some(SocketAddr::V6(a)) => format!("[{}]", a.ip()),
                Some(a) => a.ip().to_string(),
                None => String::new(),
            })
        }
        None => info.host = Cow::Borrowed(&site.name),
    }
    let max = site.connection.client_max_body_size;
    if let BodyFraming::Length(len) = info.req.head().body {
        if max > 0 && len > max {
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

/// `$request_uri`: the raw path and query. They are one run of the target, except for
/// an absolute-form target without a path.
fn request_uri<'r>(target: &'r [u8], path: &'r [u8], query: Option<&'r [u8]>) -> Cow<'r, [u8]> {
    let start = path.as_ptr() as usize;
    let base = target.as_ptr() as usize;
    let contiguous = start >= base && start + path.len() <= base + target.len();
    match query {
        None => Cow::Borrowed(path),
        Some(q) if contiguous => {
            let from = start - base;
            let to = (q.as_ptr() as usize - base) + q.len();
            Cow::Borrowed(&target[from..to])
        }
        Some(q) => {
            let mut uri = path.to_vec();
            uri.push(b'?');
            uri.extend_from_slice(q);
            Cow::Owned(uri)
        }
    }
}

fn file_request<'a>(info: &'a RequestInfo, vars: &'a Vars<'a, 'a>) -> FileRequest<'a> {
    FileRequest {
        method: info.method,
        uri: &info.uri,
        args: info.query,
        request: info.req,
        vars,
        host: &info.host,
        port: info.local.map(|l| l.port()),
    }
}

fn request_vars<'a, 'r>(info: &'a RequestInfo<'r>, server_name: &'a str) -> Vars<'a, 'r> {
    Vars { info, server_name, response: None, now: None, body_read: 0 }
}
