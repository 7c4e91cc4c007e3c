//! One request's steps, in order: pick the server → check the target and Host → route
//! (location search with its internal redirects) → answer it ourselves or forward it to
//! uWSGI → log. Each step is a function of its own file; this one only calls them.

use crate::http1::exchange::Exchange;
use crate::http1::request_head::{Method, Request};
use crate::log::Note;
use crate::reply::Reply;
use crate::routing::servers::normalize_host;

use super::app::{Done, Peer, Runtime};
use super::internal_redirects::Routed;
use super::request_state::{RequestInfo, UpstreamFields};
use super::request_vars::Vars;
use super::respond::Answer;

impl Runtime {
    /// Serves one parsed request; says how the connection goes on, and the chosen
    /// server's keep-alive timeout.
    pub(super) async fn serve_request(
        &self,
        req: Request<'_>,
        ex: &mut Exchange<'_>,
        peer: Peer,
        requests: u64,
        stopping: bool,
    ) -> (Done, std::time::Duration) {
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
        let mut info = RequestInfo::new(req, peer.id, requests, started, (peer.remote, peer.local));
        info.https = peer.tls;
        info.proxy_protocol = peer.proxy;
        if let Some(peer_ip) = peer.remote.map(|r| r.ip()) {
            info.peer_trusted = site.real_ip.trusts(peer_ip);
            let name = site.real_ip.header_name().map(str::as_bytes);
            let values = req
                .headers()
                .filter(|(n, _)| name.is_some_and(|h| n.eq_ignore_ascii_case(h)))
                .map(|(_, v)| v);
            if let Some(client) = site.real_ip.client(peer_ip, values, peer.proxy) {
                info.remote = Some(client);
            }
        }
        let mut notes: Vec<Note> = Vec::new();

        let routed = match super::request_checks::check_request(site, &mut info, host, &mut notes) {
            Err(status) => Routed::Reply(Reply::error(status), None),
            Ok(()) => {
                super::internal_redirects::route(site, &mut info, &mut notes, super::content::run_location)
            }
        };
        let answer = Answer { rt, info: &info, head_only: req.method() == Method::Head, keep_alive };
        let done = match routed {
            Routed::Reply(mut r, location) => {
                let sendfile = location.is_some_and(|id| site.locations[id].files.sendfile);
                let policy = location.map_or(&site.headers, |id| &site.locations[id].headers);
                if !policy.is_empty() {
                    let vars = Vars::of_request(&info, &site.name);
                    let (status, modified) = (r.head.status, r.head.last_modified);
                    policy.write(status, modified, crate::clock::now().secs, &vars, r.head.policy_lines());
                }
                let compression = location.map_or(&site.compression, |id| &site.locations[id].compression);
                let encoder = super::compress_reply::prepare(compression, &req, answer.head_only, &mut r);
                self.respond_coded(ex, &answer, (r, encoder), sendfile, notes, UpstreamFields::default())
                    .await
            }
            Routed::Forward(location) => self.forward_to_uwsgi(ex, &answer, location, notes).await,
        };
        (done, settings.keepalive_timeout)
    }
}
