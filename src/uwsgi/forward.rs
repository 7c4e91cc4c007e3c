//! Forwarding one request to an upstream, as a short list of steps: pick a server (waiting
//! for a slot when every one is at `max_conns`), connect, exchange the request and the
//! answer, and on a failed connect try the next server; then record the outcome in the
//! pool's passive health. The steps live next door: `request_body` (made ready before
//! this is called), `backend_connect`, `relay` with `send_request` and `client_head`, and
//! `failure` for nginx's wording. Not for the bytes themselves (`codec`) nor for the
//! choice of server (`pool`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::http1::exchange::Exchange as Client;
use crate::log::Note;

use super::backend_connect::{connect, Conn};
use super::config::UpstreamConfig;
use super::failure::{all_busy, no_live_upstreams, Failure};
use super::pool::{Pick, Pool, Slot};
use super::relay::exchange_with;
use crate::compression::Compression;
use crate::http1::request_head::Request;
use crate::response_headers::{Rendered, ResponseHeaders};

// what the request step uses besides `forward`, so it has one place to import from
pub use super::failure::upstream_label;
pub use super::request_body::{prepare_body, BodyError, RequestBody};

/// A pool with the signal that a slot was freed.
pub struct Upstream {
    pub pool: Pool,
    freed: Arc<Notify>,
}

impl Upstream {
    pub fn new(config: UpstreamConfig) -> Upstream {
        let freed = Arc::new(Notify::new());
        let hook = freed.clone();
        Upstream { pool: Pool::new(config, Box::new(move || hook.notify_waiters())), freed }
    }
}

/// The parts of the request the relay needs besides the client.
pub struct Exchange<'a> {
    pub packet: &'a [u8],
    pub body: RequestBody,
    pub head_request: bool,
    pub client_http10: bool,
    /// The connection may be kept alive, as far as the request goes.
    pub keep_alive: bool,
    /// The location's `expires` and `add_header`, its lines rendered with the request's
    /// variables (`None`: it sets neither).
    pub headers: Option<(&'a ResponseHeaders, &'a Rendered)>,
    /// The location's compression keys and the request they are decided for (`None`:
    /// nothing is compressed there).
    pub compression: Option<(&'a Compression, Request<'a>)>,
}

/// What happened, for the response and the logs.
pub struct Forwarded {
    /// `Ok` when a response was relayed; `Err(status)` when nothing was sent to the client
    /// and it should get this error page.
    pub result: Result<Relayed, u16>,
    pub notes: Vec<Note>,
    /// `$upstream_addr`: every server tried, comma-separated.
    pub upstream_addr: Option<String>,
    pub upstream_status: Option<u16>,
    pub upstream_time: Option<Duration>,
}

/// A response that went to the client.
pub struct Relayed {
    pub status: u16,
    /// Size of the response head sent.
    pub head_bytes: u64,
    pub body_bytes: u64,
    /// False when the relay broke off: the connection must be closed, not finished (a
    /// clean finish would make a truncated body look complete).
    pub complete: bool,
    /// The head said `Connection: keep-alive`: the connection may carry another request.
    pub keep_alive: bool,
    pub content_type: Option<String>,
    pub location: Option<String>,
}

/// Forwards one request through `upstream` and relays the answer.
pub async fn forward(client: &mut Client<'_>, upstream: &Upstream, exchange: Exchange<'_>) -> Forwarded {
    let started = Instant::now();
    let mut tries = Tries::default();
    let (conn, slot) = match connect_a_server(upstream, &mut tries).await {
        Ok(connected) => connected,
        Err(status) => return tries.failed(status, started),
    };
    let outcome = exchange_with(client, conn, upstream.pool.config(), exchange).await;
    let upstream_time = started.elapsed();
    record(&upstream.pool, &slot, outcome, tries, upstream_time)
}

/// The servers tried so far, and what was noted on the way.
#[derive(Default)]
struct Tries {
    /// Their indices in the pool, which the next pick skips.
    servers: Vec<usize>,
    addrs: Vec<String>,
    notes: Vec<Note>,
}

impl Tries {
    /// Nothing was relayed: the client gets `status`.
    fn failed(self, status: u16, started: Instant) -> Forwarded {
        let tried = !self.addrs.is_empty();
        Forwarded {
            result: Err(status),
            notes: self.notes,
            upstream_status: tried.then_some(status),
            upstream_addr: tried.then(|| join(self.addrs)),
            upstream_time: tried.then(|| started.elapsed()),
        }
    }
}

/// Picks servers in turn until one connects; the next one is tried only when connecting
/// failed (once the request went out, retrying could run it twice). `Err`: the status
/// for the client.
async fn connect_a_server<'p>(upstream: &'p Upstream, tries: &mut Tries) -> Result<(Conn, Slot<'p>), u16> {
    let pool = &upstream.pool;
    let cfg = pool.config();
    let wait_deadline = crate::clock::deadline(Instant::now(), cfg.connect_timeout);
    let mut last_status = 502;
    while tries.servers.len() < pool.tries() {
        let slot = match wait_for_slot(upstream, &tries.servers, wait_deadline).await {
            Pick::Got(slot) => slot,
            Pick::AllBusy => {
                tries.notes.push(all_busy(cfg));
                return Err(503);
            }
            Pick::NoneLeft => {
                if tries.servers.is_empty() {
                    tries.notes.push(no_live_upstreams(cfg));
                }
                return Err(last_status);
            }
        };
        let addr = slot.addr();
        tries.servers.push(slot.index());
        tries.addrs.push(addr.to_string());
        match connect(addr, cfg.connect_timeout).await {
            Ok(conn) => return Ok((conn, slot)),
            Err(f) => {
                pool.record_failure(slot.index(), Instant::now());
                last_status = f.status;
                tries.notes.push(f.into_note(upstream_label(addr)));
            }
        }
    }
    Err(last_status)
}

/// A server not in `tried` with a free slot, waiting for one to be freed (up to
/// `deadline`) while every server is at `max_conns`. `Pick::AllBusy`: still all busy at
/// the deadline.
async fn wait_for_slot<'p>(upstream: &'p Upstream, tried: &[usize], deadline: Instant) -> Pick<'p> {
    let pool = &upstream.pool;
    loop {
        let mut pick = pool.acquire(Instant::now(), tried);
        // the wait for a freed slot is set up only when every server is busy (it costs a
        // registration), then the pool looked at again so a slot freed meanwhile counts
        let freed = upstream.freed.notified();
        tokio::pin!(freed);
        if let Pick::AllBusy = pick {
            freed.as_mut().enable();
            pick = pool.acquire(Instant::now(), tried);
        }
        if !matches!(pick, Pick::AllBusy) {
            return pick;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left, freed).await.is_err() {
            return Pick::AllBusy;
        }
    }
}

/// Counts the exchange for or against the server, and says what happened.
fn record(
    pool: &Pool,
    slot: &Slot<'_>,
    outcome: Result<(Relayed, Vec<Note>), Failure>,
    mut tries: Tries,
    upstream_time: Duration,
) -> Forwarded {
    let label = || upstream_label(slot.addr());
    let (result, status) = match outcome {
        Ok((relayed, relay_notes)) => {
            pool.record_success(slot.index());
            tries.notes.extend(relay_notes.into_iter().map(|n| Note { upstream: Some(label()), ..n }));
            let status = relayed.status;
            (Ok(relayed), status)
        }
        Err(f) => {
            if f.health {
                pool.record_failure(slot.index(), Instant::now());
            }
            let status = f.status;
            tries.notes.push(f.into_note(label()));
            (Err(status), status)
        }
    };
    Forwarded {
        result,
        notes: tries.notes,
        upstream_addr: Some(join(tries.addrs)),
        upstream_status: Some(status),
        upstream_time: Some(upstream_time),
    }
}

/// `$upstream_addr`: the servers tried, as nginx lists them.
fn join(mut addrs: Vec<String>) -> String {
    if addrs.len() == 1 {
        return addrs.pop().unwrap_or_default();
    }
    addrs.join(", ")
}
