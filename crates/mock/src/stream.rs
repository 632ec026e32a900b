//! The streaming body every wire format uses: hands one event per body frame to the
//! connection, paces token events, injects a mid-stream cut or error event, and records
//! in [`Stats`] whether the stream completed or its client went away.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep, sleep_until};

use crate::stats::Stats;

/// One server-sent event, already framed (`data: …\n\n`, or a piece of a JSON array
/// for Gemini without `alt=sse`), and how many completion tokens it carries.
pub(crate) struct Event {
    pub(crate) data: Bytes,
    pub(crate) tokens: u64,
}

/// Produces a stream's events lazily, in order; `None` after the last one.
pub(crate) trait EventSource: Send + 'static {
    fn next_event(&mut self) -> Option<Event>;

    /// The wire format's in-stream error, sent by [`crate::Fault::StreamError`] as the
    /// stream's last event.
    fn error_event(&self) -> Bytes;

    /// The response's `Content-Type`.
    fn content_type(&self) -> &'static str {
        "text/event-stream"
    }
}

/// A failure injected into a stream once `after_tokens` token events were sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamFault {
    /// Half of the next event, then abort the connection.
    Cut { after_tokens: u64 },
    /// The source's error event, then end the stream cleanly.
    Error { after_tokens: u64 },
}

/// The body error that aborts the connection when [`crate::Fault::CutStream`] fires.
#[derive(Debug, thiserror::Error)]
#[error("stream cut by the mock's fault injection")]
pub(crate) struct StreamCut;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// Half an event was handed over; the next poll yields once so that the connection
    /// flushes what it buffered (hyper drops unflushed data on a body error).
    Cutting,
    /// The poll after this one aborts the connection.
    Aborting,
    Done,
}

/// An SSE response body. Dropped before its last event means the client went away.
pub(crate) struct SseBody {
    source: Box<dyn EventSource>,
    next: Option<Event>,
    interval: Option<Duration>,
    start: Instant,
    tokens_sent: u64,
    fault: Option<StreamFault>,
    sleep: Option<Pin<Box<Sleep>>>,
    phase: Phase,
    stats: Arc<Stats>,
}

impl SseBody {
    /// A body sending `source`'s events, one token event per `interval` if set, failing
    /// as `fault` says if set. A failed stream counts as neither completed nor cancelled.
    pub(crate) fn new(
        mut source: Box<dyn EventSource>,
        interval: Option<Duration>,
        fault: Option<StreamFault>,
        stats: Arc<Stats>,
    ) -> SseBody {
        let next = source.next_event();
        let phase = if next.is_some() { Phase::Running } else { Phase::Done };
        SseBody { source, next, interval, start: Instant::now(), tokens_sent: 0, fault, sleep: None, phase, stats }
    }

    /// Waits until the next token event is due.
    fn poll_pacing(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(interval) = self.interval else {
            return Poll::Ready(());
        };
        let due = self.start + interval.saturating_mul(u32::try_from(self.tokens_sent).unwrap_or(u32::MAX));
        if Instant::now() >= due {
            return Poll::Ready(());
        }
        let sleep = self.sleep.get_or_insert_with(|| Box::pin(sleep_until(due)));
        if sleep.deadline() != due {
            sleep.as_mut().reset(due);
        }
        sleep.as_mut().poll(cx)
    }
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = StreamCut;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, StreamCut>>> {
        let this = self.get_mut();
        match this.phase {
            Phase::Done => return Poll::Ready(None),
            Phase::Cutting => {
                this.phase = Phase::Aborting;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Phase::Aborting => {
                this.phase = Phase::Done;
                return Poll::Ready(Some(Err(StreamCut)));
            }
            Phase::Running => {}
        }
        let Some(event) = &this.next else {
            this.phase = Phase::Done;
            return Poll::Ready(None);
        };
        match this.fault {
            Some(StreamFault::Cut { after_tokens }) if this.tokens_sent >= after_tokens => {
                let half = event.data.slice(..event.data.len() / 2);
                this.next = None;
                this.phase = Phase::Cutting;
                return Poll::Ready(Some(Ok(Frame::data(half))));
            }
            Some(StreamFault::Error { after_tokens }) if this.tokens_sent >= after_tokens => {
                this.next = None;
                this.phase = Phase::Done;
                return Poll::Ready(Some(Ok(Frame::data(this.source.error_event()))));
            }
            _ => {}
        }
        if event.tokens > 0 {
            ready!(this.poll_pacing(cx));
        }
        let Some(event) = this.next.take() else {
            return Poll::Ready(None);
        };
        this.tokens_sent += event.tokens;
        this.stats.add_tokens(event.tokens);
        this.next = this.source.next_event();
        if this.next.is_none() {
            this.phase = Phase::Done;
            this.stats.stream_completed();
        }
        Poll::Ready(Some(Ok(Frame::data(event.data))))
    }

    fn is_end_stream(&self) -> bool {
        self.phase == Phase::Done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        if self.phase == Phase::Running {
            self.stats.stream_cancelled();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    struct Numbers(u64, u64);

    impl EventSource for Numbers {
        fn next_event(&mut self) -> Option<Event> {
            (self.0 < self.1).then(|| {
                self.0 += 1;
                Event { data: Bytes::from(format!("data: {}\n\n", self.0)), tokens: 1 }
            })
        }

        fn error_event(&self) -> Bytes {
            Bytes::from_static(b"data: error\n\n")
        }
    }

    #[tokio::test]
    async fn sends_every_event_and_counts_tokens() {
        let stats = Arc::new(Stats::default());
        let body = SseBody::new(Box::new(Numbers(0, 3)), None, None, stats.clone());
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"data: 1\n\ndata: 2\n\ndata: 3\n\n");
        assert_eq!((stats.tokens_generated(), stats.streams_completed(), stats.streams_cancelled()), (3, 1, 0));
    }

    #[tokio::test]
    async fn cut_sends_half_an_event_then_fails() {
        let stats = Arc::new(Stats::default());
        let cut = Some(StreamFault::Cut { after_tokens: 1 });
        let mut body = SseBody::new(Box::new(Numbers(0, 5)), None, cut, stats.clone());
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"data: 1\n\n");
        let half = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&half[..], b"data");
        assert!(body.frame().await.unwrap().is_err());
        drop(body);
        assert_eq!((stats.tokens_generated(), stats.streams_completed(), stats.streams_cancelled()), (1, 0, 0));
    }

    #[tokio::test]
    async fn stream_error_ends_with_the_error_event() {
        let stats = Arc::new(Stats::default());
        let fault = Some(StreamFault::Error { after_tokens: 2 });
        let body = SseBody::new(Box::new(Numbers(0, 5)), None, fault, stats.clone());
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"data: 1\n\ndata: 2\n\ndata: error\n\n");
        assert_eq!((stats.tokens_generated(), stats.streams_completed(), stats.streams_cancelled()), (2, 0, 0));
    }

    #[tokio::test]
    async fn dropping_mid_stream_counts_a_cancellation() {
        let stats = Arc::new(Stats::default());
        let mut body = SseBody::new(Box::new(Numbers(0, 5)), None, None, stats.clone());
        body.frame().await.unwrap().unwrap();
        drop(body);
        assert_eq!((stats.tokens_generated(), stats.streams_cancelled()), (1, 1));
    }
}
