//! The request's uWSGI step: take in the request body (413/400/408 when it cannot be), build
//! the uwsgi vars block from the request, forward it to the location's pool and relay the
//! answer; failures before any response byte went out become Portico's own error pages.

use std::borrow::Cow;

use crate::http1::exchange::{BodyError, Exchange};
use crate::http1::request_head::Version;
use crate::http1::settings::ConnectionSettings;
use crate::log::{Level, Note};
use crate::reply::Reply;
use crate::routing::locations::LocationId;
use crate::uwsgi::codec::vars_block::{encode_request, CgiRequest, EncodeOptions, Routed};
use crate::uwsgi::forward::{forward, prepare_body, upstream_label, Exchange as UwsgiExchange};

use super::app::{Done, Runtime};
use super::request_state::{ResponseInfo, UpstreamFields};
use super::request_vars::Vars;
use super::respond::Answer;

/// How a request body that could not be taken in is answered.
enum BodyRefused {
    Status(u16),
    /// The client went away: nothing to answer (`499` in the access log).
    ClientGone,
}

impl Runtime {
    /// Forwards to the location's uWSGI pool and relays the answer.
    pub(super) async fn forward_to_uwsgi(
        &self,
        ex: &mut Exchange<'_>,
        answer: &Answer<'_, '_>,
        location: LocationId,
        mut notes: Vec<Note>,
    ) -> Done {
        let (rt, info) = (answer.rt, answer.info);
        let site = &rt.site;
        let settings = &site.connection;
        let none = UpstreamFields::default;
        let policy = &site.locations[location].headers;
        // Portico's own page for this location (413, 431, 502...): with its `always` lines
        let own_page = |status: u16| {
            let mut reply = Reply::error(status);
            if !policy.is_empty() {
                let vars = Vars::of_request(info, &site.name);
                policy.write(status, None, crate::clock::now().secs, &vars, reply.head.policy_lines());
            }
            reply
        };
        let Some(uw) = site.locations[location].uwsgi.as_ref() else {
            return self.respond(ex, answer, own_page(500), false, notes, none()).await;
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
                return match body_refused(e, settings, &mut notes) {
                    BodyRefused::Status(status) => {
                        let closing = Answer { keep_alive: false, ..*answer };
                        self.respond(ex, &closing, own_page(status), false, notes, none()).await
                    }
                    BodyRefused::ClientGone => {
                        let response = ResponseInfo { status: 499, ..ResponseInfo::default() };
                        super::request_log::log_request(rt, info, &notes, &response, ex.body_bytes_read());
                        Done { keep_alive: false, linger: false }
                    }
                };
            }
        };
        // the packet buffer is the thread's, not the connection's: idle connections hold none
        let mut packet = crate::buffer_pool::take(4096);
        let encoded = {
            let routed = Routed {
                method: info.method_name,
                request_uri: &info.request_uri,
                query: info.query,
                uri: &info.uri,
                document_root: info.document_root,
            };
            let port = info.local.map_or(0, |l| l.port());
            let mut cgi =
                CgiRequest::of(&req, routed, info.remote, port, site.name.as_bytes(), body.content_length());
            cgi.https = info.https;
            cgi.peer_trusted = info.peer_trusted;
            let opts = EncodeOptions {
                params: &uw.params,
                modifier1: uw.modifier1,
                modifier2: uw.modifier2,
                buffer_size: upstream.pool.config().uwsgi_buffer_size,
            };
            let vars = Vars::of_request(info, &site.name);
            encode_request(&cgi, || req.headers(), &opts, &vars, &mut packet)
        };
        if let Err(e) = encoded {
            crate::buffer_pool::give(packet);
            let label = upstream_label(&upstream.pool.config().name);
            notes.push(Note { level: Level::Error, message: e.to_string(), upstream: Some(label) });
            return self.respond(ex, answer, own_page(431), false, notes, none()).await;
        }
        let rendered = (!policy.is_empty()).then(|| policy.render_added(&Vars::of_request(info, &site.name)));
        let exchange = UwsgiExchange {
            packet: &packet,
            body,
            head_request: answer.head_only,
            client_http10: req.version() == Version::Http10,
            keep_alive: answer.keep_alive,
            headers: rendered.as_ref().map(|r| (policy, r)),
            compression: Some(&site.locations[location].compression).filter(|c| c.is_on()).map(|c| (c, req)),
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
                super::request_log::log_request(rt, info, &notes, &response, ex.body_bytes_read());
                Done { keep_alive: false, linger: false }
            }
            // an unread body is read and dropped before the connection is reused
            Err(status) => self.respond(ex, answer, own_page(status), false, notes, fields).await,
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
                super::request_log::log_request(rt, info, &notes, &response, ex.body_bytes_read());
                Done {
                    keep_alive: relayed.complete && relayed.keep_alive,
                    // an app that answered without reading the body: take in what the
                    // client still sends, or the close could destroy the response
                    linger: relayed.complete && ex.body_pending(),
                }
            }
        }
    }
}

/// The status for a body that could not be taken in, with its error-log note.
fn body_refused(
    e: crate::uwsgi::forward::BodyError,
    settings: &ConnectionSettings,
    notes: &mut Vec<Note>,
) -> BodyRefused {
    use crate::uwsgi::forward::BodyError as Refused;
    match e {
        Refused::TooLarge(n) => {
            notes.push(Note::new(
                Level::Error,
                format!(
                    "client intended to send too large chunked body: {n}+ bytes (client_max_body_size is {})",
                    settings.client_max_body_size
                ),
            ));
            BodyRefused::Status(413)
        }
        Refused::Client(e) => {
            notes.push(Note::new(Level::Info, e.to_string()));
            match e {
                BodyError::Framing(_) => BodyRefused::Status(400),
                BodyError::TimedOut => BodyRefused::Status(408),
                BodyError::Closed(_) => BodyRefused::ClientGone,
            }
        }
        Refused::TempFile(detail) => {
            notes.push(Note::new(
                Level::Crit,
                format!("buffering the request body failed: {detail}; check client_body_temp_path"),
            ));
            BodyRefused::Status(500)
        }
    }
}
