//! One connection's life on pingora's lifecycle: its own task, the wait for each request
//! head (with the header and keep-alive deadlines and the server's stop), one request
//! step at a time (`request_steps`), and the close, lingering when the client may still
//! be sending. Heads that cannot be read are answered and logged here.
//!
//! Each request is served by the configuration running when its head arrived (a
//! [`Runtime`], swapped whole by a reload): requests in flight finish on the one they
//! started with.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::Stream;
use pingora_core::server::ShutdownWatch;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;

use crate::clock::deadline;
use crate::config_file::Site;
use crate::http1::connection::{Connection, Next, Timeouts, Transport};
use crate::http1::exchange::AfterBody;
use crate::http1::request_head::{RequestHead, Version, MAX_HEADERS};
use crate::http2::connection as http2;
use crate::http2::stream::Http2Stream;
use crate::log::access::AccessLog;
use crate::log::error::{ErrorContext, ErrorLog};
use crate::log::Level;
use crate::reply::Reply;
use crate::routing::servers::ServerTable;
use crate::uwsgi::forward::Upstream;

use super::recycled_box::RecycledBox;
use super::tls_accept::{Handshake, PLAIN_HTTP_ANSWER};

/// A site with its open log sinks.
pub struct SiteRuntime {
    pub site: Site,
    pub access_log: Option<AccessLog>,
    pub error_log: ErrorLog,
}

/// One configuration, running: its sites with their log sinks, the server table, and
/// the upstream pools.
pub struct Runtime {
    pub(super) sites: Vec<SiteRuntime>,
    pub(super) servers: ServerTable,
    pub(super) upstreams: Vec<Upstream>,
    /// Ports whose connections start with a TLS handshake.
    pub(super) tls_ports: Vec<u16>,
    /// Ports whose connections start with a PROXY protocol header.
    pub(super) proxy_ports: Vec<u16>,
}

/// The configuration being served; a reload stores a new one.
pub type Current = Arc<ArcSwap<Runtime>>;

/// The application pingora runs: every connection goes through here.
pub struct App {
    current: Current,
    next_connection: AtomicU64,
}

/// How long a keep-alive connection may still bring its next request once the server is
/// stopping (or handing over to a new process): a client that read its answer a moment
/// ago may be sending already, and closing under it would fail that request. The answer
/// then closes the connection.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// How a request ended for the connection.
pub(super) struct Done {
    /// The connection may carry another request.
    pub keep_alive: bool,
    /// The client may still be sending a body nobody read: close lingering.
    pub linger: bool,
}

/// What one connection knows about itself.
#[derive(Clone, Copy)]
pub(super) struct Peer {
    pub id: u64,
    pub local: Option<SocketAddr>,
    pub remote: Option<SocketAddr>,
    /// The connection is TLS.
    pub tls: bool,
    /// The client's address from the connection's PROXY protocol header
    /// (`$proxy_protocol_addr`).
    pub proxy: Option<SocketAddr>,
}

impl App {
    pub fn new(current: Current) -> App {
        App { current, next_connection: AtomicU64::new(1) }
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
        let (tls, proxied) = {
            let rt = self.current.load();
            let on = |ports: &[u16]| local.is_some_and(|l| ports.contains(&l.port()));
            (on(&rt.tls_ports), on(&rt.proxy_ports))
        };
        let mut peer = Peer {
            id: self.next_connection.fetch_add(1, Ordering::Relaxed),
            local,
            remote,
            tls,
            proxy: None,
        };
        // The connection gets a task of its own, sized for our loop alone: pingora's
        // connection task (its accept, handshake and reuse states, some KiB) ends here
        // instead of living as long as the connection. The task stays on this thread.
        // (The task owns the connection and serve_connection borrows it: an async fn's
        // arguments would be stored twice in its state.)
        let app = self.clone();
        let shutdown = shutdown.clone();
        let f = async move {
            let mut stream = stream;
            if proxied {
                // boxed, as the handshake below: plain connections do not carry its state
                match Box::pin(app.proxy_header(stream, &peer)).await {
                    Some((s, source)) => (stream, peer.proxy) = (s, source),
                    None => return,
                }
            }
            match (peer.tls, peer.local) {
                (true, Some(local)) => {
                    // boxed: a plain connection's task does not carry the handshake's state
                    let Some(tls) = Box::pin(app.handshake(stream, local, &peer)).await else { return };
                    if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                        return Box::pin(app.serve_http2(tls, &peer, &shutdown)).await;
                    }
                    let mut conn = Connection::new(tls, None);
                    app.serve_connection(&mut conn, &peer, &shutdown).await
                }
                _ => {
                    let mut conn = Connection::new(stream, fd);
                    app.serve_connection(&mut conn, &peer, &shutdown).await
                }
            }
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
    /// The PROXY protocol header of a connection to a `proxy_protocol` port, or `None`
    /// (logged) when it is missing or broken.
    async fn proxy_header(&self, stream: Stream, peer: &Peer) -> Option<(Stream, Option<SocketAddr>)> {
        let rt = self.current.load_full();
        let default = &rt.sites[peer.local.map_or(0, |l| rt.servers.default_for(l))];
        let deadline = deadline(Instant::now(), default.site.connection.client_header_timeout);
        match super::proxy_header::read(stream, deadline).await {
            Ok(read) => Some(read),
            Err((level, why)) => {
                let client = peer.remote.map(|r| r.ip().to_string());
                let context = ErrorContext {
                    connection: Some(peer.id),
                    client: client.as_deref(),
                    ..ErrorContext::default()
                };
                default.error_log.write(level, &why, &context);
                None
            }
        }
    }

    /// The TLS handshake of a connection to an `ssl` port, or `None` (logged) when it
    /// failed.
    async fn handshake(
        &self,
        stream: Stream,
        local: SocketAddr,
        peer: &Peer,
    ) -> Option<Box<TlsStream<Stream>>> {
        let rt = self.current.load_full();
        let default = &rt.sites[rt.servers.default_for(local)];
        let deadline = deadline(Instant::now(), default.site.connection.client_header_timeout);
        let (why, plain) = match super::tls_accept::accept(stream, &rt, local, deadline).await {
            Handshake::Done(tls) => return Some(tls),
            Handshake::Failed(why) => (why, None),
            Handshake::PlainHttp(stream) => {
                ("client sent plain HTTP request to HTTPS port while SSL handshaking".into(), Some(stream))
            }
        };
        let client = peer.remote.map(|r| r.ip().to_string());
        let server = local.to_string();
        let context = ErrorContext {
            connection: Some(peer.id),
            client: client.as_deref(),
            server: Some(&server),
            ..ErrorContext::default()
        };
        default.error_log.write(Level::Info, &why, &context);
        if let Some(stream) = plain {
            let mut conn = Connection::new(stream, None);
            conn.send_and_close(PLAIN_HTTP_ANSWER, default.site.connection.send_timeout, true).await;
        }
        None
    }

    /// Serves an HTTP/2 connection: each stream on a task of its own, through the same
    /// request step as an HTTP/1.1 request.
    async fn serve_http2<S: Transport + 'static>(
        self: &Arc<Self>,
        io: S,
        peer: &Peer,
        shutdown: &ShutdownWatch,
    ) {
        let peer = *peer;
        let limits = {
            let rt = self.current.load();
            let d = &rt.sites[peer.local.map_or(0, |l| rt.servers.default_for(l))].site.connection;
            http2::Limits {
                handshake_timeout: d.client_header_timeout,
                idle_timeout: d.keepalive_timeout,
                max_requests: u64::from(d.keepalive_requests),
                // what an HTTP/1.1 head may hold, with HPACK's 32 bytes per field
                max_header_list: u32::try_from(d.head_limits.max_head + 32 * MAX_HEADERS).unwrap_or(u32::MAX),
            }
        };
        let app = self.clone();
        let watch = shutdown.clone();
        let serve_stream = move |stream| {
            let (app, watch) = (app.clone(), watch.clone());
            async move { app.serve_stream(stream, peer, &watch).await }
        };
        let ended = http2::serve(io, limits, stopping(shutdown.clone()), serve_stream).await;
        if let http2::Ended::Failed(why) = ended {
            let rt = self.current.load();
            let default = &rt.sites[peer.local.map_or(0, |l| rt.servers.default_for(l))];
            let client = peer.remote.map(|r| r.ip().to_string());
            let context = ErrorContext {
                connection: Some(peer.id),
                client: client.as_deref(),
                ..ErrorContext::default()
            };
            default.error_log.write(Level::Info, &why, &context);
        }
    }

    /// One HTTP/2 stream: its head read and answered as an HTTP/1.1 request's, by the
    /// configuration running when it arrived.
    async fn serve_stream(&self, stream: Http2Stream, peer: Peer, shutdown: &ShutdownWatch) {
        let rt = self.current.load_full();
        let defaults = &rt.sites[peer.local.map_or(0, |l| rt.servers.default_for(l))].site.connection;
        let timeouts =
            Timeouts { header: defaults.client_header_timeout, keepalive: defaults.keepalive_timeout };
        let limits = defaults.head_limits;
        let mut conn = Connection::new(stream, None);
        // (the head is already here: the HEADERS frames were read whole)
        match conn.next_request(deadline(Instant::now(), timeouts.header), &timeouts, &limits, true).await {
            Next::Request(mut head) => {
                head.version = Version::Http2;
                let stopping_now = *shutdown.borrow();
                rt.request_step(&mut conn, head, peer, stopping_now).await;
            }
            Next::Refuse(e) => rt.refuse(&mut conn, peer, e.status, e.reason).await,
            Next::TimedOut | Next::Close => {}
        }
    }

    /// Serves the connection's requests until it closes.
    async fn serve_connection<S: Transport>(
        &self,
        conn: &mut Connection<S>,
        peer: &Peer,
        shutdown: &ShutdownWatch,
    ) {
        let peer = *peer;
        let accepted = Instant::now();
        let mut keepalive_timeout = None;
        // one wait for the stop for the connection's life, not one registration per request
        let mut stop = std::pin::pin!(stopping(shutdown.clone()));
        let mut draining = false;
        loop {
            // the head is read with the limits of the configuration running now (copied: an
            // idle connection does not keep an old configuration alive)
            let (timeouts, limits, default_keepalive) = {
                let rt = self.current.load();
                let defaults = &rt.sites[peer.local.map_or(0, |l| rt.servers.default_for(l))].site.connection;
                let timeouts = Timeouts {
                    header: defaults.client_header_timeout,
                    keepalive: defaults.keepalive_timeout,
                };
                (timeouts, defaults.head_limits, defaults.keepalive_timeout)
            };
            let first = conn.requests == 0;
            let mut idle_until = if first {
                deadline(accepted, timeouts.header)
            } else {
                deadline(Instant::now(), keepalive_timeout.unwrap_or(default_keepalive))
            };
            if draining {
                idle_until = idle_until.min(deadline(Instant::now(), DRAIN_GRACE));
            }
            let next = loop {
                tokio::select! {
                    biased;
                    next = conn.next_request(idle_until, &timeouts, &limits, first) => break next,
                    _ = &mut stop, if !draining => {
                        draining = true;
                        idle_until = idle_until.min(deadline(Instant::now(), DRAIN_GRACE));
                    }
                }
            };
            // the request is served by the configuration running when its head arrived
            let rt = self.current.load_full();
            let head = match next {
                Next::Request(head) => head,
                Next::Close => return,
                Next::TimedOut => {
                    let message =
                        "client timed out (110: Connection timed out) while reading client request headers";
                    // the ends of a connection are boxed: their state would otherwise sit in
                    // every idle connection's future
                    let refused = Box::pin(rt.refuse(conn, peer, 408, message));
                    refused.await;
                    return;
                }
                Next::Refuse(e) => {
                    let refused = Box::pin(rt.refuse(conn, peer, e.status, e.reason));
                    refused.await;
                    return;
                }
            };
            let stopping_now = draining || *shutdown.borrow();
            // boxed: an idle keep-alive connection waits above with only a pointer to spare,
            // not the whole state of a request being served; the slot is reused
            let step = RecycledBox::new(rt.request_step(conn, head, peer, stopping_now));
            match step.await {
                Some(site_keepalive) => keepalive_timeout = Some(site_keepalive),
                None => return,
            }
        }
    }
}

impl Runtime {
    /// One request on the connection, from its parsed head to the connection ready for
    /// the next: the chosen server's keep-alive timeout, or `None` when the connection
    /// is done (closed lingering if the client may still be sending).
    async fn request_step<S: Transport>(
        &self,
        conn: &mut Connection<S>,
        head: RequestHead,
        peer: Peer,
        stopping: bool,
    ) -> Option<Duration> {
        let defaults = &self.sites[peer.local.map_or(0, |l| self.servers.default_for(l))].site.connection;
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
    async fn refuse<S: Transport>(&self, conn: &mut Connection<S>, peer: Peer, status: u16, why: &str) {
        let rt = &self.sites[peer.local.map_or(0, |l| self.servers.default_for(l))];
        let client = peer.remote.map(|r| r.ip().to_string());
        rt.error_log.write(
            Level::Info,
            why,
            &ErrorContext { connection: Some(peer.id), client: client.as_deref(), ..ErrorContext::default() },
        );
        let reply = Reply::error(status);
        let mut bytes = Vec::new();
        crate::clock::with_http_date(|date| reply.head.encode(date, false, &mut bytes));
        if let crate::reply::Body::Bytes(b) = &reply.body {
            bytes.extend_from_slice(b);
        }
        // a client too slow with its head is not waited for any longer
        conn.send_and_close(&bytes, rt.site.connection.send_timeout, status != 408).await;
    }
}
