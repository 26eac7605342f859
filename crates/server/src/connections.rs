//! The HTTP edge under the router: the accept loop, what one client
//! connection may hold and for how long, and the drain at shutdown.
//!
//! `axum::serve` with graceful shutdown waits for every connection without
//! bound, so a client that sent half its headers, or stopped half way
//! through an upload, kept SIGTERM from ever finishing. Here every
//! connection is served by hyper directly and watched:
//!
//! - at most `max_connections` are open; one past it is answered 503
//!   (`Retry-After: 1`) and closed at once, so a flood of silent
//!   connections costs a socket for a moment, never a slot;
//! - a connection must send a request's complete headers within
//!   `header_timeout` of being accepted, or of its first byte after the
//!   previous response; between requests it may sit `idle_timeout`. hyper's
//!   own `header_read_timeout` starts as soon as it waits for a head, idle
//!   time included, so it cannot tell the two apart: a watchdog per
//!   connection does both;
//! - a request body must deliver a chunk every `body_timeout`, else reading
//!   it fails with [`TimeoutError`] (the handlers answer 408);
//! - at shutdown the listener closes, every connection is asked to finish
//!   the request it is in and close (an idle one closes at once), and what
//!   is still open at the drain deadline is dropped.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower_http::timeout::TimeoutBody;

pub use tower_http::timeout::TimeoutError;

use super::config::EdgeLimits;

/// How long aborted connections get to be dropped after the drain.
const ABORT_GRACE: Duration = Duration::from_secs(1);

/// The body of the answer to a connection past `max_connections`.
const TOO_MANY: &str = r#"{"error":{"code":"overloaded","message":"the server has too many open connections; retry in 1 s"}}"#;

/// The whole answer to a connection past `max_connections`.
fn too_many() -> &'static [u8] {
    static ANSWER: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\nretry-after: 1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{TOO_MANY}",
            TOO_MANY.len()
        )
    });
    ANSWER.as_bytes()
}

/// The edge's counters, registered with the other metrics.
#[derive(Debug, Clone, Default)]
pub(crate) struct EdgeMetrics {
    /// Connections open now.
    pub(crate) open: Gauge,
    /// Connections refused past `max_connections`.
    pub(crate) refused: Counter,
    /// Connections closed for silence, by what the client was late with.
    pub(crate) stalled: Family<StallLabels, Counter>,
}

/// What a closed stalled connection was late with.
#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub(crate) struct StallLabels {
    /// `headers` or `idle`.
    pub(crate) phase: &'static str,
}

/// Where a connection is, as the watchdog sees it.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for (the rest of) a request's headers since then.
    Headers(Instant),
    /// Between requests since then.
    Idle(Instant),
    /// A request is being served: its body and the handler bound it.
    Busy,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Headers(_) => "headers",
            Phase::Idle(_) => "idle",
            Phase::Busy => "busy",
        }
    }

    /// When the connection is stalled if nothing changes.
    fn deadline(self, limits: &EdgeLimits) -> Option<Instant> {
        match self {
            Phase::Headers(since) => Some(since + limits.header_timeout),
            Phase::Idle(since) => Some(since + limits.idle_timeout),
            Phase::Busy => None,
        }
    }
}

/// One connection's phase, shared by its socket, its service and its
/// watchdog.
#[derive(Debug)]
struct Activity {
    phase: Mutex<Phase>,
    changed: Notify,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            phase: Mutex::new(Phase::Headers(Instant::now())),
            changed: Notify::new(),
        }
    }

    fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, phase: Phase) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = phase;
        self.changed.notify_one();
    }

    /// Bytes arrived: an idle connection has started a request.
    fn bytes_arrived(&self) {
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        if let Phase::Idle(_) = *phase {
            *phase = Phase::Headers(Instant::now());
            drop(phase);
            self.changed.notify_one();
        }
    }
}

/// Marks a connection busy while a request is served, idle after.
struct Serving(Arc<Activity>);

impl Serving {
    fn start(activity: Arc<Activity>) -> Serving {
        activity.set(Phase::Busy);
        Serving(activity)
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.set(Phase::Idle(Instant::now()));
    }
}

/// The socket, telling the connection's [`Activity`] when bytes arrive.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Whether a body error (or any error in its chain) is the edge's body
/// timeout.
pub(crate) fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<TimeoutError>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// Serves `router` on `listener` until `stop` resolves to the drain
/// deadline; then stops accepting, drains, drops what is left at the
/// deadline, and returns it.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: EdgeLimits,
    metrics: EdgeMetrics,
    stop: impl Future<Output = Instant>,
) -> Instant {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (drain_tx, drain_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut stop = std::pin::pin!(stop);
    let deadline = loop {
        tokio::select! {
            deadline = &mut stop => break deadline,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        connections.spawn(connection(
                            stream,
                            peer,
                            router.clone(),
                            limits,
                            metrics.clone(),
                            drain_rx.clone(),
                            slot,
                        ));
                    }
                    Err(_) => {
                        metrics.refused.inc();
                        tracing::debug!(%peer, max = limits.max_connections, "refused a connection past max_connections");
                        // Best effort, never waits: the socket's send buffer
                        // is empty, so the answer fits.
                        let _ = stream.try_write(too_many());
                    }
                },
                Err(e) => {
                    // Out of file descriptors, typically: wait for some to
                    // close instead of spinning.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = joined
                    && e.is_panic()
                {
                    tracing::error!(error = %e, "a connection task panicked");
                }
            }
        }
    };
    drop(listener);
    let _ = drain_tx.send(true);
    if !connections.is_empty() {
        tracing::info!(connections = connections.len(), "draining open connections");
    }
    let drained = tokio::time::timeout_at(deadline, async {
        while connections.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if !drained {
        tracing::warn!(
            connections = connections.len(),
            "closing connections still open at the end of the drain"
        );
        connections.abort_all();
        let _ = tokio::time::timeout(ABORT_GRACE, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
    }
    deadline
}

/// One connection, to its end, a stall, or the drain.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: EdgeLimits,
    metrics: EdgeMetrics,
    mut drain: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    metrics.open.inc();
    let _open = OnDrop(|| {
        metrics.open.dec();
    });
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let serving = Serving::start(activity.clone());
            let mut request =
                request.map(|body| Body::new(TimeoutBody::new(limits.body_timeout, body)));
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move {
                let response = tower::ServiceExt::oneshot(router, request).await;
                drop(serving);
                response
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        // The watchdog below bounds headers and idle time separately.
        .header_read_timeout(None);
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let mut draining = *drain.borrow();
    if draining {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        let deadline = activity.phase().deadline(&limits);
        let stalled = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = drain.changed(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            () = activity.changed.notified() => {}
            () = stalled => {
                let phase = activity.phase();
                if phase.deadline(&limits).is_some_and(|at| at <= Instant::now()) {
                    tracing::debug!(%peer, phase = phase.name(), "closing a stalled connection");
                    metrics
                        .stalled
                        .get_or_create(&StallLabels { phase: phase.name() })
                        .inc();
                    return;
                }
            }
        }
    }
}

/// Runs a closure when dropped (a connection ends however it ends).
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn limits(header: u64, idle: u64, body: u64, max: usize) -> EdgeLimits {
        EdgeLimits {
            header_timeout: Duration::from_millis(header),
            idle_timeout: Duration::from_millis(idle),
            body_timeout: Duration::from_millis(body),
            max_connections: max,
        }
    }

    /// A router with a body-reading endpoint, served until the returned
    /// sender fires (with the drain deadline).
    async fn start(
        limits: EdgeLimits,
    ) -> (
        SocketAddr,
        tokio::sync::oneshot::Sender<Instant>,
        tokio::task::JoinHandle<Instant>,
    ) {
        let router = Router::new()
            .route("/", axum::routing::get(|| async { "ok" }))
            .route(
                "/peer",
                axum::routing::get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                    peer.ip().to_string()
                }),
            )
            .route(
                "/slow",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "done"
                }),
            )
            .route(
                "/body",
                axum::routing::post(|body: Body| async move {
                    match axum::body::to_bytes(body, 1 << 20).await {
                        Ok(bytes) => format!("{}", bytes.len()),
                        Err(e) if is_body_timeout(&e) => "timeout".to_string(),
                        Err(e) => format!("error {e}"),
                    }
                }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<Instant>();
        let stop = async move { rx.await.unwrap_or_else(|_| Instant::now()) };
        let task = tokio::spawn(serve(
            listener,
            router,
            limits,
            EdgeMetrics::default(),
            stop,
        ));
        (addr, tx, task)
    }

    /// Reads until EOF or error; how long it took and what came.
    async fn read_to_close(stream: &mut TcpStream) -> (Duration, String) {
        let start = Instant::now();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
        (start.elapsed(), String::from_utf8_lossy(&out).into_owned())
    }

    #[tokio::test]
    async fn half_sent_headers_are_cut_off_after_the_header_timeout() {
        let (addr, _stop, _task) = start(limits(300, 5_000, 5_000, 16)).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        let (took, text) = read_to_close(&mut stream).await;
        assert!(text.is_empty(), "no answer to half a request: {text}");
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(3),
            "closed after the header timeout, not the idle one: {took:?}"
        );
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_gets_the_idle_timeout_not_the_header_one() {
        let (addr, _stop, _task) = start(limits(200, 1_000, 5_000, 16)).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        // Idle well past the header timeout: still open.
        tokio::time::sleep(Duration::from_millis(500)).await;
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let n = stream.read(&mut buf).await.unwrap();
        assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
            "a second request on the kept-alive connection is served"
        );
        let (took, _) = read_to_close(&mut stream).await;
        assert!(
            took >= Duration::from_millis(800) && took < Duration::from_secs(3),
            "closed after the idle timeout: {took:?}"
        );
    }

    #[tokio::test]
    async fn every_request_carries_its_peer_address_for_the_failed_authentication_bound() {
        let (addr, _stop, _task) = start(limits(5_000, 5_000, 5_000, 16)).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /peer HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let (_, text) = read_to_close(&mut stream).await;
        assert!(
            text.starts_with("HTTP/1.1 200") && text.ends_with("127.0.0.1"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_stalled_body_fails_with_the_body_timeout() {
        let (addr, _stop, _task) = start(limits(5_000, 5_000, 300, 16)).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"POST /body HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nhalf")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf))
            .await
            .expect("answered within the body timeout")
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.ends_with("timeout"), "{text}");
    }

    #[tokio::test]
    async fn connections_past_the_cap_get_503_at_once() {
        let (addr, _stop, _task) = start(limits(5_000, 5_000, 5_000, 1)).await;
        let _first = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut second = TcpStream::connect(addr).await.unwrap();
        let (took, text) = read_to_close(&mut second).await;
        assert!(text.starts_with("HTTP/1.1 503"), "{text}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(body.trim_end()).expect(body);
        assert_eq!(json["error"]["code"], "overloaded");
    }

    #[tokio::test]
    async fn the_drain_finishes_a_request_closes_idle_ones_and_drops_stalled_ones_at_the_deadline()
    {
        let (addr, stop, task) = start(limits(60_000, 60_000, 60_000, 16)).await;
        // Half the headers, and half a body: neither would ever end alone.
        let mut half_headers = TcpStream::connect(addr).await.unwrap();
        half_headers
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        let mut half_body = TcpStream::connect(addr).await.unwrap();
        half_body
            .write_all(b"POST /body HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nhalf")
            .await
            .unwrap();
        let idle = TcpStream::connect(addr).await.unwrap();
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let began = Instant::now();
        stop.send(began + Duration::from_millis(500)).unwrap();
        let (_, answer) = read_to_close(&mut slow).await;
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("done"),
            "the request in flight is answered, then its connection closes: {answer}"
        );
        let deadline = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the drain is bounded")
            .unwrap();
        assert_eq!(deadline, began + Duration::from_millis(500));
        assert!(
            began.elapsed() < Duration::from_millis(500) + ABORT_GRACE + Duration::from_millis(500)
        );
        for mut stream in [half_headers, half_body, idle] {
            let (took, _) = read_to_close(&mut stream).await;
            assert!(took < Duration::from_millis(200), "closed: {took:?}");
        }
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "the listener is closed"
        );
    }
}
