//! How long a connection may sit without a request: a new one has `header_timeout` to
//! send its first request; between requests a keep-alive connection may stay silent for
//! `keepalive_timeout`, and once the next request's first bytes arrive its headers have
//! `header_timeout` again.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::Load;

/// What the watchdog decided about an idle connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Silent past `keepalive_timeout` between requests: close it gracefully.
    Idle,
    /// No complete request head in `header_timeout`: drop it (nothing is in flight).
    TooSlow,
}

/// What a connection's reads tell its watchdog.
#[derive(Default)]
pub(super) struct Activity {
    /// Set while the watchdog waits for the first bytes of the next request.
    armed: AtomicBool,
    /// Whether bytes arrived since the watchdog armed.
    arrived: watch::Sender<bool>,
    /// The connection speaks HTTP/2 (pings and other frames are not requests).
    pub(super) http2: AtomicBool,
}

impl Activity {
    fn arm(&self) {
        self.arrived.send_replace(false);
        self.armed.store(true, Ordering::Release);
    }

    fn read(&self) {
        if self.armed.load(Ordering::Relaxed) && self.armed.swap(false, Ordering::AcqRel) {
            self.arrived.send_replace(true);
        }
    }
}

/// Resolves when the connection has been idle too long. Only resolves while no request
/// is in flight.
pub(super) async fn watchdog(
    requests: &mut watch::Receiver<Load>,
    activity: &Activity,
    header_timeout: Duration,
    keepalive_timeout: Duration,
) -> Verdict {
    let mut arrived = activity.arrived.subscribe();
    loop {
        let Some(started) = idle(requests).await else {
            return std::future::pending().await;
        };
        activity.arm();
        let served = started > 0;
        let (limit, verdict) =
            if served { (keepalive_timeout, Verdict::Idle) } else { (header_timeout, Verdict::TooSlow) };
        let watch_bytes = served && !activity.http2.load(Ordering::Acquire);
        tokio::select! {
            busy = busy(requests, started) => {
                if !busy {
                    return std::future::pending().await;
                }
                continue;
            }
            _ = async { arrived.wait_for(|b| *b).await.is_ok() }, if watch_bytes => {}
            () = tokio::time::sleep(limit) => return verdict,
        }
        // The next request's first bytes arrived: its head has `header_timeout`.
        match tokio::time::timeout(header_timeout, busy(requests, started)).await {
            Ok(true) => {}
            Ok(false) => return std::future::pending().await,
            Err(_) => return Verdict::TooSlow,
        }
    }
}

/// Waits for no request in flight; returns how many had started by then (`None`: the
/// connection is gone).
async fn idle(requests: &mut watch::Receiver<Load>) -> Option<u64> {
    requests.wait_for(|load| load.in_flight == 0).await.ok().map(|load| load.started)
}

/// Waits for a request after the first `started` (false: the connection is gone).
async fn busy(requests: &mut watch::Receiver<Load>, started: u64) -> bool {
    requests.wait_for(|load| load.started > started).await.is_ok()
}

/// A client's TCP stream that tells its [`Activity`] when bytes arrive.
pub(super) struct Watched {
    pub(super) tcp: TcpStream,
    pub(super) activity: std::sync::Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
