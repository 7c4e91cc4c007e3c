//! An HTTP/2 connection (negotiated by ALPN on a TLS port): the handshake within the
//! header timeout, nginx's limits (128 concurrent streams, the header list as large as
//! an HTTP/1.1 head may be, `keepalive_requests` streams, then GOAWAY), the idle
//! timeout (no stream open for `keepalive_timeout`: GOAWAY), the server's stop (GOAWAY,
//! streams in flight finish), and the flood bounds of `flood` on every byte read. Each
//! stream is served on a task of its own by the caller's `serve`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{sleep_until, timeout_at, Instant};

use super::flood::FrameCounter;
use super::stream::Http2Stream;

/// nginx's `http2_max_concurrent_streams` default.
pub const MAX_CONCURRENT_STREAMS: u32 = 128;
/// Each stream's receive window: what a client may send ahead on one stream before the
/// request steps read it (h2's default, nginx's `http2_body_preread_size` is 64k).
const STREAM_WINDOW: u32 = 64 << 10;
/// The connection's receive window: what all its streams together may have unread.
const CONNECTION_WINDOW: u32 = 1 << 20;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// For the client's preface and settings.
    pub handshake_timeout: Duration,
    /// With no stream open.
    pub idle_timeout: Duration,
    /// Streams one connection may carry.
    pub max_requests: u64,
    /// Largest header list (decoded, RFC 9113's size: names, values, 32 per field).
    pub max_header_list: u32,
}

/// How the connection ended, for the error log (`None` in `Err`: nothing worth a line).
pub enum Ended {
    Closed,
    /// The line to log, at info as nginx logs client errors.
    Failed(String),
}

/// Open streams and when the last one ended: the idle timer's facts.
struct Activity {
    open: usize,
    last_end: Instant,
}

/// Serves the connection until it ends.
pub async fn serve<T, F, Fut>(io: T, limits: Limits, stop: impl Future<Output = ()>, serve_stream: F) -> Ended
where
    T: AsyncRead + AsyncWrite + Unpin,
    F: Fn(Http2Stream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let started = Instant::now();
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(limits.max_header_list)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW);
    let handshake = builder.handshake::<_, bytes::Bytes>(Guarded { io, frames: FrameCounter::new() });
    let mut conn = match timeout_at(crate::clock::deadline(started, limits.handshake_timeout), handshake)
        .await
    {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Ended::Failed(format!("HTTP/2 handshake failed ({e})")),
        Err(_) => {
            return Ended::Failed(
                "client timed out (110: Connection timed out) while waiting for the HTTP/2 preface".into(),
            )
        }
    };
    let activity = Arc::new(Mutex::new(Activity { open: 0, last_end: Instant::now() }));
    let mut stop = std::pin::pin!(stop);
    let mut stopping = false;
    let mut going_away = false;
    let mut requests = 0u64;
    loop {
        let idle_until = {
            let a = activity.lock().unwrap_or_else(|p| p.into_inner());
            (a.open == 0).then(|| crate::clock::deadline(a.last_end, limits.idle_timeout))
        };
        tokio::select! {
            next = conn.accept() => match next {
                Some(Ok((request, respond))) => {
                    requests += 1;
                    if requests >= limits.max_requests && !going_away {
                        // the last stream this connection carries (nginx's keepalive_requests)
                        conn.graceful_shutdown();
                        going_away = true;
                    }
                    let Ok(stream) = Http2Stream::new(request, respond) else { continue };
                    let open = OpenStream::new(activity.clone());
                    let fut = serve_stream(stream);
                    tokio::spawn(async move {
                        fut.await;
                        drop(open);
                    });
                }
                Some(Err(e)) => return Ended::Failed(describe(&e)),
                None => return Ended::Closed,
            },
            _ = &mut stop, if !stopping => {
                stopping = true;
                if !going_away {
                    conn.graceful_shutdown();
                    going_away = true;
                }
            }
            // a stream opening or closing moves the deadline: look again every so often
            _ = sleep_until(idle_until.unwrap_or_else(|| Instant::now() + limits.idle_timeout)), if !going_away => {
                let idle = {
                    let a = activity.lock().unwrap_or_else(|p| p.into_inner());
                    a.open == 0 && Instant::now() >= crate::clock::deadline(a.last_end, limits.idle_timeout)
                };
                if idle {
                    conn.graceful_shutdown();
                    going_away = true;
                }
            }
        }
    }
}

fn describe(e: &h2::Error) -> String {
    match e.get_io() {
        Some(io) if io.kind() == io::ErrorKind::Other && io.raw_os_error().is_none() => {
            format!("http2 flood detected: {io}, closing connection")
        }
        Some(io) => format!("HTTP/2 connection failed {}", crate::errno::describe(io)),
        None => format!("HTTP/2 connection error ({e})"),
    }
}

/// One open stream, counted while it lives.
struct OpenStream(Arc<Mutex<Activity>>);

impl OpenStream {
    fn new(a: Arc<Mutex<Activity>>) -> OpenStream {
        a.lock().unwrap_or_else(|p| p.into_inner()).open += 1;
        OpenStream(a)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        let mut a = self.0.lock().unwrap_or_else(|p| p.into_inner());
        a.open -= 1;
        a.last_end = Instant::now();
    }
}

/// The connection's stream, every byte read counted by `flood`.
struct Guarded<T> {
    io: T,
    frames: FrameCounter,
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        match this.frames.observe(&buf.filled()[before..]) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(flood) => Poll::Ready(Err(io::Error::other(flood.0))),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
