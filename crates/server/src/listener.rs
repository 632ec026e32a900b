//! The accept loop: HTTP/1.1 and HTTP/2 (cleartext, prior knowledge) connections under
//! the `[server]` limits, and the graceful drain on shutdown.
//!
//! - A connection has `header_timeout` to send a complete request head (its first, or the
//!   next once its first bytes arrived); silent between requests, it is closed after
//!   `keepalive_timeout` (see `idle`).
//! - A request body not received in full within `body_timeout` of its head answers 408
//!   `request_timeout` (the JSON error shape) with `Connection: close`.
//! - At `max_connections` open, accepting pauses (new connections wait in the backlog).
//! - Shutdown: the listener closes, requests in flight finish for up to
//!   `shutdown_grace` (HTTP/1 answers meanwhile say `Connection: close`), idle
//!   connections close, and at the deadline what is left is cut (each cut stream settles
//!   what it delivered as its response body is dropped).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, Request, Version, header};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::config::ServerConfig;
use crate::error::ApiError;
use idle::{Activity, Verdict, Watched, watchdog};

mod idle;

/// Streams one HTTP/2 connection may carry at once.
const H2_MAX_STREAMS: u32 = 256;
/// Streams reset by the client before the server accepted them, at most at once.
const H2_MAX_PENDING_RESETS: usize = 20;
/// Streams the server had to reset because of the client's errors, at most per connection.
const H2_MAX_LOCAL_RESETS: usize = 1024;
/// The largest header list an HTTP/2 client may send (decoded).
const H2_MAX_HEADER_LIST: u32 = 64 * 1024;
/// How often an HTTP/2 connection is pinged, and how long the answer may take, before the
/// peer is considered gone.
const H2_PING_EVERY: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// After this long without a failed accept, the next failure is news again.
const FAILURES_FORGOTTEN: Duration = Duration::from_secs(60);
/// How long HTTP/2 streams get to notice that their cut connection is gone.
const STREAMS_AFTER_CUT: Duration = Duration::from_secs(1);
/// The wait after a failed accept (out of file descriptors, say) before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The listener's limits, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
}

impl Limits {
    pub fn from_config(server: &ServerConfig) -> Limits {
        Limits {
            header_timeout: server.header_timeout,
            body_timeout: server.body_timeout,
            keepalive_timeout: server.keepalive_timeout,
            max_connections: server.max_connections.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize)),
            shutdown_grace: server.shutdown_grace,
        }
    }
}

/// Where the server is in its life; connections watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serving,
    /// The listener is closed; requests in flight finish, keep-alive connections get
    /// `Connection: close` on their next response.
    Draining,
    /// No request is in flight (or the grace ran out): idle connections close now.
    Closing,
    /// The grace ran out: what is still open is cut.
    Cut,
}

/// Requests in flight on every connection (until their response body ends or is
/// dropped). The request path adds and subtracts; only a drain waits for zero.
#[derive(Default)]
struct InFlight {
    count: AtomicUsize,
    /// Set when the drain begins: from then on, reaching zero is announced.
    watched: AtomicBool,
    zero: Notify,
}

impl InFlight {
    fn enter(self: &Arc<Self>, connection: &Arc<Activity>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        connection.enter();
        InFlightGuard { all: self.clone(), connection: connection.clone() }
    }

    /// Waits until no request is in flight (the drain calls this once).
    async fn none(&self) {
        self.watched.store(true, Ordering::Release);
        loop {
            let notified = self.zero.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

struct InFlightGuard {
    all: Arc<InFlight>,
    connection: Arc<Activity>,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.connection.exit();
        if self.all.count.fetch_sub(1, Ordering::AcqRel) == 1 && self.all.watched.load(Ordering::Acquire) {
            self.all.zero.notify_waiters();
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains (see the module doc);
/// `on_drain` runs the moment the listener closes.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
    on_drain: impl FnOnce(),
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The watchdog of each connection enforces the header and keep-alive timeouts; hyper's
    // header timer (which starts when a connection goes idle) is only the backstop.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout + limits.keepalive_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_header_list_size(H2_MAX_HEADER_LIST)
        .keep_alive_interval(H2_PING_EVERY)
        .keep_alive_timeout(H2_PING_TIMEOUT)
        // Reset floods ("rapid reset"): streams the client opens and cancels at once, and
        // streams it makes the server reset, end the connection past these counts.
        .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
        .max_local_error_reset_streams(H2_MAX_LOCAL_RESETS);
    let builder = Arc::new(builder);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (phase, _) = watch::channel(Phase::Serving);
    let in_flight = Arc::new(InFlight::default());
    let mut accept_failures = 0u64;
    let mut last_failure: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        // At the limit, stop accepting: new connections wait in the kernel's backlog.
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors or memory: wait for some to be freed, and say
                // so once in a while (the 1st, 2nd, 4th, 8th… failure of an episode; an
                // episode ends after a quiet minute) rather than once per attempt.
                if last_failure.is_none_or(|at| at.elapsed() > FAILURES_FORGOTTEN) {
                    accept_failures = 0;
                }
                accept_failures += 1;
                last_failure = Some(Instant::now());
                if accept_failures.is_power_of_two() {
                    tracing::warn!(error = %e, failures = accept_failures, "cannot accept connections; backing off");
                }
                drop(permit);
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let connection = Connection {
            remote,
            app: app.clone(),
            limits,
            phase: phase.subscribe(),
            in_flight: in_flight.clone(),
            _permit: permit,
        };
        tokio::spawn(connection.run(tcp, builder.clone()));
    }
    drop(listener);
    on_drain();
    phase.send_replace(Phase::Draining);
    let deadline = Instant::now() + limits.shutdown_grace;
    let requests_done = tokio::time::timeout_at(deadline, in_flight.none()).await.is_ok();
    phase.send_replace(Phase::Closing);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let closed = requests_done && tokio::time::timeout_at(deadline, permits.acquire_many(all)).await.is_ok();
    if !closed {
        let left = limits.max_connections - permits.available_permits();
        tracing::warn!(connections = left, "shutdown grace over; cutting the connections still open");
        phase.send_replace(Phase::Cut);
        // Every connection task drops its connection (and the responses in it, which
        // settle what they delivered) on seeing `Cut`; HTTP/2 streams run in tasks of
        // their own, which end when their connection is gone.
        let _ = permits.acquire_many(all).await;
        let _ = tokio::time::timeout(STREAMS_AFTER_CUT, in_flight.none()).await;
    }
}

/// Errors of one connection attempt, not of the listener (the next accept may succeed).
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::Interrupted
    )
}

/// One client connection.
struct Connection {
    remote: SocketAddr,
    app: Router,
    limits: Limits,
    phase: watch::Receiver<Phase>,
    in_flight: Arc<InFlight>,
    /// Its place among `max_connections`, freed when the connection ends.
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    async fn run(mut self, tcp: TcpStream, builder: Arc<auto::Builder<TokioExecutor>>) {
        // Requests in flight on this connection, its reads and writes: the watchdog's view.
        let activity = Arc::new(Activity::new());
        let service = RequestService {
            remote: self.remote,
            app: self.app.clone(),
            body_timeout: self.limits.body_timeout,
            phase: self.phase.clone(),
            all: self.in_flight.clone(),
            activity: activity.clone(),
        };
        let io = TokioIo::new(Watched { tcp, activity: activity.clone() });
        let conn = builder.serve_connection(io, hyper::service::service_fn(move |r| service.call(r)));
        tokio::pin!(conn);
        let mut closing = false;
        loop {
            let phase = *self.phase.borrow_and_update();
            if phase == Phase::Cut {
                return;
            }
            let http2 = activity.http2.load(Ordering::Acquire);
            if phase == Phase::Closing && !closing {
                // An HTTP/1 connection with no request in flight has nothing to finish
                // (hyper would wait for the head of one that never started).
                if activity.in_flight() == 0 && !http2 {
                    return;
                }
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            if phase == Phase::Draining && http2 && !closing {
                // GOAWAY: the client opens no new streams here; those in flight finish.
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            let limits = &self.limits;
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, remote = %self.remote, "connection ended with an error");
                    }
                    return;
                }
                changed = self.phase.changed() => {
                    if changed.is_err() {
                        // The server is gone: nothing left to wait for.
                        return;
                    }
                }
                verdict = watchdog(&activity, limits.header_timeout, limits.keepalive_timeout, closing) => {
                    match verdict {
                        Verdict::Idle => {
                            closing = true;
                            conn.as_mut().graceful_shutdown();
                        }
                        // No request in flight: dropping the connection loses nothing.
                        Verdict::TooSlow => return,
                        Verdict::Stalled => {
                            tracing::debug!(remote = %self.remote, "client stopped reading; connection dropped");
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// Hands one request to the router, with its peer address and under the body timeout.
#[derive(Clone)]
struct RequestService {
    remote: SocketAddr,
    app: Router,
    body_timeout: Duration,
    phase: watch::Receiver<Phase>,
    all: Arc<InFlight>,
    activity: Arc<Activity>,
}

impl RequestService {
    fn call(&self, request: Request<Incoming>) -> impl Future<Output = Result<Response, Infallible>> + Send + use<> {
        let guard = self.all.enter(&self.activity);
        let http1 = request.version() < Version::HTTP_2;
        if !http1 {
            self.activity.http2.store(true, Ordering::Release);
        }
        let timed_out = Arc::new(AtomicBool::new(false));
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(ConnectInfo(self.remote));
        let body = TimedBody {
            inner: body,
            due: Instant::now() + self.body_timeout,
            deadline: None,
            timed_out: timed_out.clone(),
        };
        let request = Request::from_parts(parts, Body::new(body));
        let mut app = self.app.clone();
        let phase = self.phase.clone();
        let body_timeout = self.body_timeout;
        async move {
            let response = match app.call(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let mut response = if timed_out.load(Ordering::Acquire) {
                let mut late = ApiError::BodyTimeout(body_timeout.as_millis()).into_response();
                if let Some(id) = response.headers().get(&crate::edge::X_REQUEST_ID) {
                    late.headers_mut().insert(crate::edge::X_REQUEST_ID.clone(), id.clone());
                }
                // The rest of the body may still be on its way: the connection cannot be reused.
                late.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
                late
            } else {
                response
            };
            if http1 && *phase.borrow() != Phase::Serving {
                response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response.map(|body| Body::new(Counted { inner: body, _guard: guard })))
        }
    }
}

/// A request body that fails once `due` passes before it arrived in full. The timer is
/// set only if the body has to be waited for (most arrive with their head).
struct TimedBody {
    inner: Incoming,
    due: Instant,
    deadline: Option<Pin<Box<Sleep>>>,
    timed_out: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
#[error("the request body was not received in time")]
struct BodyTimedOut;

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let due = self.due;
        let deadline = self.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if deadline.as_mut().poll(cx).is_ready() {
            self.timed_out.store(true, Ordering::Release);
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request counted as in flight until it ends.
struct Counted {
    inner: Body,
    _guard: InFlightGuard,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
