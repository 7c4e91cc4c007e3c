//! The exchange with one connected uWSGI server: send the request (`send_request`), read
//! and check the response head the app sends, write the client's head (`client_head`) and
//! relay the body with backpressure, de-chunking an app's own chunked body once. Not for
//! choosing or connecting the server (`forward`, `backend_connect`) nor for the wording
//! of what went wrong (`failure`).

use std::io;
use std::time::Duration;

use crate::compression::{decide, Encoder, ResponseFacts};
use crate::http1::chunked::ChunkedDecoder;
use crate::http1::exchange::{Exchange as Client, SendError};
use crate::http1::response_head::{chunk_start, CHUNK_END, LAST_CHUNK};
use crate::log::{Level, Note};

use super::backend_connect::{is_peer_gone, Conn};
use super::client_head::{client_head, HeadFraming};
use super::codec::app_response::{parse_head, Framing, ResponseHead};
use super::config::UpstreamConfig;
use super::failure::{io_failure, timed_out, Failure};
use super::forward::{Exchange, Relayed};
use super::send_request::{send_request, Sent};

/// Largest response head accepted from uWSGI (nginx's default is one page, 4 KiB, which
/// apps setting several cookies exceed).
const MAX_RESPONSE_HEAD: usize = 32 << 10;
/// Bytes read from uWSGI at a time while relaying.
pub(super) const READ_CHUNK: usize = 64 << 10;
/// Bytes gathered in the client's write buffer before they are written.
const COALESCE: usize = 8 << 10;

/// Sends the request over `conn` and relays the answer, reading uWSGI's bytes into a
/// buffer from the thread's pool.
pub(super) async fn exchange_with(
    client: &mut Client<'_>,
    conn: Conn,
    cfg: &UpstreamConfig,
    exchange: Exchange<'_>,
) -> Result<(Relayed, Vec<Note>), Failure> {
    let mut resp = crate::buffer_pool::take(READ_CHUNK);
    let result = relay(client, &conn, &mut resp, cfg, exchange).await;
    crate::buffer_pool::give(resp);
    result
}

/// The exchange proper, with `resp` the buffer uWSGI's answer is read into.
async fn relay(
    client: &mut Client<'_>,
    conn: &Conn,
    resp: &mut Vec<u8>,
    cfg: &UpstreamConfig,
    exchange: Exchange<'_>,
) -> Result<(Relayed, Vec<Note>), Failure> {
    let sent = send_request(client, conn, resp, &exchange, cfg).await?;
    let early = matches!(sent, Sent::Early);

    let head = read_head(conn, resp, exchange.head_request, cfg.read_timeout, early).await?;
    let mut notes = Vec::new();
    let value_of = |name: &str| head.header(resp, name).map(|v| String::from_utf8_lossy(v).into_owned());
    let content_type = value_of("content-type");
    let location = value_of("location");
    // the location's expires and add_header: their lines, and whether they replace the
    // app's Expires and Cache-Control (as nginx's `expires` does)
    let mut policy = Vec::new();
    let mut replaces_expires = false;
    if let Some((headers, rendered)) = exchange.headers {
        let modified = head.header(resp, "last-modified").and_then(crate::clock::parse_http_date);
        headers.write_rendered(head.status, modified, crate::clock::now().secs, rendered, &mut policy);
        replaces_expires = headers.sets_expires(head.status);
    }
    // compression, decided on the head the client would get
    let mut decision = crate::compression::Decision::default();
    if let Some((cfg, req)) = exchange.compression {
        let mut facts = ResponseFacts { status: head.status, ..ResponseFacts::default() };
        for (name, value) in head.headers(resp) {
            let replaced =
                name.eq_ignore_ascii_case(b"expires") || name.eq_ignore_ascii_case(b"cache-control");
            if !(replaces_expires && replaced) {
                facts.header(name, value);
            }
        }
        facts.header_lines(&policy);
        if let Framing::Length(n) = head.framing {
            facts.content_length = Some(n);
        }
        decision = decide(cfg, &req, exchange.head_request, &facts, crate::clock::now().secs);
    }
    let has_body = head.framing != Framing::None;
    let coding = decision.coding.filter(|_| has_body);
    let coded = coding.is_some();
    let unknown_length = coded || matches!(head.framing, Framing::Chunked | Framing::UntilClose);
    // a body the app did not read, or one delimited by the close, ends the connection
    let close_delimited = exchange.client_http10 && unknown_length;
    let keep_alive = exchange.keep_alive && !client.body_pending() && !close_delimited;
    let chunked = !exchange.client_http10 && unknown_length;
    let framing = HeadFraming {
        head_request: exchange.head_request,
        chunked,
        keep_alive,
        vary: decision.vary,
        coding: coding.map(|(c, _)| c.token()),
    };
    crate::clock::with_http_date(|date| {
        client_head(&head, resp, &framing, (&policy, replaces_expires), date, client.out)
    });
    let known = match head.framing {
        Framing::Length(n) => Some(n),
        _ => None,
    };
    let mut out = BodyOut {
        chunked,
        coder: coding.map(|(c, level)| Coder {
            encoder: Encoder::new(c, level, known),
            coded: crate::buffer_pool::take(CODED_CHUNK * 2),
            fed: false,
        }),
    };
    let mut relayed = Relayed {
        status: head.status,
        head_bytes: client.out.len() as u64,
        body_bytes: 0,
        complete: true,
        keep_alive,
        content_type,
        location,
    };
    // the head stays in the write buffer: the body bytes already here join it, so a small
    // response goes out in one write
    let before = client.bytes_sent();
    let relayed_body =
        relay_body(client, conn, resp, head.head_len, head.framing, &mut out, cfg.read_timeout, early).await;
    if let Some(c) = out.coder.take() {
        crate::buffer_pool::give(c.coded);
    }
    // what is buffered goes out in any case: a broken body still ends after what came
    let body_result = relayed_body.and(flush(client).await);
    let sent = client.bytes_sent() - before;
    relayed.body_bytes = sent.saturating_sub(relayed.head_bytes);
    if sent < relayed.head_bytes {
        relayed.head_bytes = sent;
    }
    if let Err(note) = body_result {
        relayed.complete = false;
        notes.push(note);
    }
    Ok((relayed, notes))
}

/// Reads until the app's response head is whole and checks it; what follows it in `resp`
/// is the start of the body.
async fn read_head(
    conn: &Conn,
    resp: &mut Vec<u8>,
    head_request: bool,
    timeout: Duration,
    early: bool,
) -> Result<ResponseHead, Failure> {
    let action = "reading response header from upstream";
    loop {
        match parse_head(resp, MAX_RESPONSE_HEAD, head_request) {
            Ok(Some(h)) => return Ok(h),
            Ok(None) => {}
            Err(e) => {
                return Err(Failure {
                    status: 502,
                    level: Level::Error,
                    message: format!("{e} while {action}"),
                    health: true,
                })
            }
        }
        match conn.read_more(resp, timeout).await {
            Ok(Ok(0)) => {
                return Err(Failure {
                    status: 502,
                    level: Level::Error,
                    message: if early {
                        format!("upstream closed the connection before reading the whole request body and without a response while {action}")
                    } else {
                        format!("upstream prematurely closed connection while {action} (an app that fails before start_response, or a request uWSGI refused: see its log)")
                    },
                    health: true,
                })
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                let mut f = io_failure("recv()", action, &e);
                if e.kind() == io::ErrorKind::ConnectionReset {
                    f.message.push_str(" (uWSGI drops requests it refuses, e.g. a vars block over its buffer-size: see its log)");
                }
                return Err(f);
            }
            Err(_) => return Err(timed_out(action)),
        }
    }
}

/// Relays the body after the head waiting in the client's write buffer, which is written
/// whenever uWSGI has to be waited for and when it fills; the caller writes what is left.
#[allow(clippy::too_many_arguments)]
async fn relay_body(
    client: &mut Client<'_>,
    conn: &Conn,
    pending: &mut Vec<u8>,
    body_start: usize,
    framing: Framing,
    out: &mut BodyOut,
    timeout: Duration,
    early: bool,
) -> Result<(), Note> {
    let mut remaining = match framing {
        Framing::None => return Ok(()),
        Framing::Length(n) => Some(n),
        Framing::Chunked | Framing::UntilClose => None,
    };
    let mut decoder = (framing == Framing::Chunked).then(ChunkedDecoder::new);
    let broken = |message: String| Note { level: Level::Error, message, upstream: None };
    let mut start = body_start;
    loop {
        if start < pending.len() {
            let mut chunk = &pending[start..];
            if let Some(left) = remaining {
                if chunk.len() as u64 > left {
                    chunk = &chunk[..left as usize];
                }
                remaining = Some(left - chunk.len() as u64);
            }
            match &mut decoder {
                Some(d) => {
                    let mut pos = 0;
                    while pos < chunk.len() && !d.is_done() {
                        let step = d.step(&chunk[pos..]).map_err(|e| {
                            broken(format!(
                                "upstream sent an invalid chunked body ({e}) while reading upstream"
                            ))
                        })?;
                        if !step.data.is_empty() {
                            out.send(client, &chunk[pos + step.data.start..pos + step.data.end]).await?;
                        }
                        pos += step.consumed;
                    }
                }
                None => out.send(client, chunk).await?,
            }
        }
        pending.clear();
        start = 0;
        let done = remaining == Some(0) || decoder.as_ref().is_some_and(ChunkedDecoder::is_done);
        if done {
            return out.end(client).await;
        }
        // nothing may wait in our buffer (nor in the encoder) while we wait for uWSGI
        out.flush(client).await?;
        flush(client).await?;
        pending.reserve(READ_CHUNK);
        match conn.read_more(pending, timeout).await {
            Ok(Ok(0)) => {
                return match framing {
                    Framing::UntilClose => out.end(client).await,
                    _ => Err(broken("upstream prematurely closed connection while reading upstream; the client connection is closed so the truncated response is not taken as complete".into())),
                }
            }
            Ok(Ok(_)) => {}
            // uWSGI resets the connection after answering without reading the body
            Ok(Err(e)) if early && framing == Framing::UntilClose && is_peer_gone(&e) => {
                return out.end(client).await;
            }
            Ok(Err(e)) => return Err(broken(io_failure("recv()", "reading upstream", &e).message)),
            Err(_) => return Err(broken(timed_out("reading upstream").message)),
        }
    }
}

/// Passes body bytes on (as one chunk when the client gets the body chunked): small ones
/// are gathered behind the head, large ones written as they are.
async fn send_client(client: &mut Client<'_>, data: &[u8], chunked: bool) -> Result<(), Note> {
    if chunked {
        chunk_start(data.len(), client.out);
    }
    if client.out.len() + data.len() <= COALESCE {
        client.out.extend_from_slice(data);
    } else {
        // never left corked (MSG_MORE) while uWSGI may be waited for next
        client.write_out(true).await.map_err(client_note)?;
        client.write_all(data, false).await.map_err(client_note)?;
    }
    if chunked {
        client.out.extend_from_slice(CHUNK_END);
    }
    Ok(())
}

/// Coded bytes gathered before they go to the client as one chunk.
const CODED_CHUNK: usize = 16 << 10;

/// How the body goes to the client: as it came, or through an encoder; in chunks or not.
struct BodyOut {
    chunked: bool,
    coder: Option<Coder>,
}

/// The encoder of a body compressed on the way, and what it gave out not sent yet.
struct Coder {
    encoder: Encoder,
    coded: Vec<u8>,
    /// Bytes went in since the last flush (a flush with none would send an empty block).
    fed: bool,
}

impl BodyOut {
    async fn send(&mut self, client: &mut Client<'_>, data: &[u8]) -> Result<(), Note> {
        let Some(c) = &mut self.coder else {
            return send_client(client, data, self.chunked).await;
        };
        c.encoder.write(data, &mut c.coded).map_err(encode_note)?;
        c.fed = true;
        if c.coded.len() >= CODED_CHUNK {
            send_client(client, &c.coded, self.chunked).await?;
            c.coded.clear();
        }
        Ok(())
    }

    /// Before waiting for uWSGI: what was fed goes to the client now (a streaming app's
    /// output is not held back by the encoder).
    async fn flush(&mut self, client: &mut Client<'_>) -> Result<(), Note> {
        let Some(c) = self.coder.as_mut().filter(|c| c.fed) else {
            return Ok(());
        };
        c.encoder.flush(&mut c.coded).map_err(encode_note)?;
        c.fed = false;
        if !c.coded.is_empty() {
            send_client(client, &c.coded, self.chunked).await?;
            c.coded.clear();
        }
        Ok(())
    }

    /// Ends the body: the encoder's last bytes, then the last chunk (written with what is
    /// buffered).
    async fn end(&mut self, client: &mut Client<'_>) -> Result<(), Note> {
        if let Some(c) = &mut self.coder {
            c.encoder.finish(&mut c.coded).map_err(encode_note)?;
            if !c.coded.is_empty() {
                send_client(client, &c.coded, self.chunked).await?;
                c.coded.clear();
            }
        }
        if self.chunked {
            client.out.extend_from_slice(LAST_CHUNK);
        }
        Ok(())
    }
}

fn encode_note(e: crate::compression::encoder::EncodeError) -> Note {
    Note { level: Level::Alert, message: e.to_string(), upstream: None }
}

/// Writes what waits in the client's write buffer.
async fn flush(client: &mut Client<'_>) -> Result<(), Note> {
    if client.out.is_empty() {
        return Ok(());
    }
    client.write_out(false).await.map_err(client_note)
}

/// The client stopped taking the body: noted at info, as nginx does.
fn client_note(e: SendError) -> Note {
    Note { level: Level::Info, message: e.to_string(), upstream: None }
}
