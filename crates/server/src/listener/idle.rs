//! How long a connection may sit without a request, or with its writes stuck: a new one
//! has `header_timeout` to send its first request; between requests a keep-alive
//! connection may stay silent for `keepalive_timeout`, and once the next request's first
//! bytes arrive its headers have `header_timeout` again; a response whose bytes the
//! client stops taking for `keepalive_timeout` ends the connection.
//!
//! The request path only touches a few atomics of its connection's [`Activity`]; one
//! coarse timer per connection (a quarter of the shorter timeout) looks at them.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The watchdog's tick is never shorter than this.
const MIN_TICK: Duration = Duration::from_millis(10);

/// What the watchdog decided about a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Silent past `keepalive_timeout` between requests: close it gracefully.
    Idle,
    /// No complete request head in `header_timeout`: drop it (nothing is in flight).
    TooSlow,
    /// The client took none of the response's bytes for `keepalive_timeout`: drop it
    /// (its responses settle what they delivered as they are dropped).
    Stalled,
}

/// What a connection's requests, reads and writes tell its watchdog. Times are
/// milliseconds since `epoch`, plus one (0: not set).
pub(super) struct Activity {
    epoch: Instant,
    /// Requests in flight on this connection (until their response body ends).
    in_flight: AtomicUsize,
    /// Requests ever started on it.
    started: AtomicU64,
    /// When the connection last became idle (opened, or its last request ended).
    idle_since: AtomicU64,
    /// Set while idle, until the next request's first bytes arrive.
    armed: AtomicBool,
    /// When bytes first arrived after the connection became idle.
    bytes_at: AtomicU64,
    /// Since when a write has been waiting for the client to take bytes.
    write_blocked_since: AtomicU64,
    /// The connection speaks HTTP/2 (pings and other frames are not requests).
    pub(super) http2: AtomicBool,
}

impl Activity {
    pub(super) fn new() -> Activity {
        Activity {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            idle_since: AtomicU64::new(1),
            armed: AtomicBool::new(true),
            bytes_at: AtomicU64::new(0),
            write_blocked_since: AtomicU64::new(0),
            http2: AtomicBool::new(false),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// A request began.
    pub(super) fn enter(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.started.fetch_add(1, Ordering::AcqRel);
    }

    /// A request's response ended (or was dropped).
    pub(super) fn exit(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.bytes_at.store(0, Ordering::Release);
            self.idle_since.store(self.now(), Ordering::Release);
            self.armed.store(true, Ordering::Release);
        }
    }

    fn read(&self) {
        if self.armed.load(Ordering::Relaxed) && self.armed.swap(false, Ordering::AcqRel) {
            self.bytes_at.store(self.now(), Ordering::Release);
        }
    }

    fn write_polled(&self, ready: bool) {
        let blocked = self.write_blocked_since.load(Ordering::Relaxed);
        match (ready, blocked) {
            (true, 0) | (false, 1..) => {}
            (true, _) => self.write_blocked_since.store(0, Ordering::Relaxed),
            (false, 0) => self.write_blocked_since.store(self.now(), Ordering::Relaxed),
        }
    }

    /// The verdict at this moment, if any.
    fn verdict(&self, header_timeout: Duration, keepalive_timeout: Duration) -> Option<Verdict> {
        self.verdict_at(self.now(), header_timeout, keepalive_timeout)
    }

    fn verdict_at(&self, now: u64, header_timeout: Duration, keepalive_timeout: Duration) -> Option<Verdict> {
        let past =
            |since: u64, limit: Duration| since != 0 && u128::from(now.saturating_sub(since)) >= limit.as_millis();
        if past(self.write_blocked_since.load(Ordering::Relaxed), keepalive_timeout) {
            return Some(Verdict::Stalled);
        }
        let started = self.started.load(Ordering::Acquire);
        if self.in_flight() > 0 {
            return None;
        }
        let verdict = if started == 0 {
            past(self.idle_since.load(Ordering::Acquire), header_timeout).then_some(Verdict::TooSlow)
        } else if !self.http2.load(Ordering::Acquire) && self.bytes_at.load(Ordering::Acquire) != 0 {
            // The next request's first bytes arrived: its head has `header_timeout`.
            past(self.bytes_at.load(Ordering::Acquire), header_timeout).then_some(Verdict::TooSlow)
        } else {
            past(self.idle_since.load(Ordering::Acquire), keepalive_timeout).then_some(Verdict::Idle)
        };
        // A request that began while this looked is not idle.
        let unchanged = self.started.load(Ordering::Acquire) == started && self.in_flight() == 0;
        verdict.filter(|_| unchanged)
    }
}

/// Resolves when the connection has been idle too long, or its writes stuck. `Idle` is
/// not reported once the connection is already closing (`closing`).
pub(super) async fn watchdog(
    activity: &Activity,
    header_timeout: Duration,
    keepalive_timeout: Duration,
    closing: bool,
) -> Verdict {
    let tick = (header_timeout.min(keepalive_timeout) / 4).max(MIN_TICK);
    let mut timer = tokio::time::interval_at(Instant::now() + tick, tick);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        timer.tick().await;
        match activity.verdict(header_timeout, keepalive_timeout) {
            Some(Verdict::Idle) if closing => {}
            Some(verdict) => return verdict,
            None => {}
        }
    }
}

/// A client's TCP stream that tells its [`Activity`] when bytes arrive and whether
/// writes go through.
pub(super) struct Watched {
    pub(super) tcp: TcpStream,
    pub(super) activity: Arc<Activity>,
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
        let polled = Pin::new(&mut self.tcp).poll_write(cx, buf);
        self.activity.write_polled(polled.is_ready());
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        self.activity.write_polled(polled.is_ready());
        polled
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

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: Duration = Duration::from_millis(100);
    const KEEPALIVE: Duration = Duration::from_millis(300);

    /// Its verdict `ms` milliseconds after the connection opened.
    fn at(activity: &Activity, ms: u64) -> Option<Verdict> {
        activity.verdict_at(ms + 1, HEADER, KEEPALIVE)
    }

    /// Stamps what happened `ms` milliseconds after the connection opened.
    fn stamp(field: &AtomicU64, ms: u64) {
        field.store(ms + 1, Ordering::Release);
    }

    #[test]
    fn verdicts_follow_the_connections_life() {
        let activity = Activity::new();
        assert_eq!(at(&activity, 90), None);
        assert_eq!(at(&activity, 120), Some(Verdict::TooSlow), "no first request in time");

        let activity = Activity::new();
        activity.enter();
        assert_eq!(at(&activity, 5_000), None, "a request in flight is never idle");
        activity.exit();
        stamp(&activity.idle_since, 1_000);
        assert_eq!(at(&activity, 1_200), None, "between requests: the keep-alive timeout");
        assert_eq!(at(&activity, 1_320), Some(Verdict::Idle));
        activity.read();
        stamp(&activity.bytes_at, 1_250);
        assert_eq!(at(&activity, 1_320), None, "the next head has the header timeout from its first bytes");
        assert_eq!(at(&activity, 1_360), Some(Verdict::TooSlow), "a next head that never completes");
        activity.enter();
        assert_eq!(at(&activity, 9_000), None, "it did complete");

        let activity = Activity::new();
        activity.http2.store(true, Ordering::Release);
        activity.enter();
        activity.exit();
        activity.read();
        stamp(&activity.idle_since, 0);
        assert_eq!(at(&activity, 200), None, "HTTP/2 frames are not a request's head");
        assert_eq!(at(&activity, 320), Some(Verdict::Idle));

        let activity = Activity::new();
        activity.enter();
        activity.write_polled(false);
        stamp(&activity.write_blocked_since, 0);
        activity.write_polled(false);
        assert_eq!(at(&activity, 200), None);
        assert_eq!(at(&activity, 320), Some(Verdict::Stalled), "a client that stopped reading");
        activity.write_polled(true);
        assert_eq!(at(&activity, 320), None, "writes went through again");
    }
}
