//! Streaming answers: the upstream's SSE bytes are forwarded as they arrive, each whole
//! event peeked at for usage; the usage chunk the gateway asked for is removed again when
//! the client did not ask for it. The stream settles exactly once — at its end, on an
//! upstream failure, or when the client goes away (`Drop`).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokenrouter_core::{ErrorEnvelope, Usage};
use tokenrouter_providers::openai::{self, ChunkInfo};
use tokenrouter_providers::sse::{self, SseBuffer};

use crate::metering::{Measured, MeterContext, UsageWriter};

/// What settles the stream: the meter, the writer and the request body (kept only to
/// estimate prompt tokens if the upstream never reports usage).
pub struct Settlement {
    pub meter: MeterContext,
    pub writer: UsageWriter,
    pub request_body: Bytes,
}

pub struct MeteredSse {
    upstream: Incoming,
    buffer: SseBuffer,
    /// The client did not ask for usage: drop the usage chunk and `"usage":null` members.
    strip_usage: bool,
    usage: Option<Usage>,
    delivered_chunks: u64,
    done_seen: bool,
    tail: Option<Bytes>,
    ended: bool,
    settlement: Option<Settlement>,
}

impl MeteredSse {
    pub fn new(upstream: Incoming, strip_usage: bool, settlement: Settlement) -> MeteredSse {
        MeteredSse {
            upstream,
            buffer: SseBuffer::default(),
            strip_usage,
            usage: None,
            delivered_chunks: 0,
            done_seen: false,
            tail: None,
            ended: false,
            settlement: Some(settlement),
        }
    }

    /// Meters a run of whole events and returns what the client should receive.
    fn process(&mut self, events: Bytes) -> Bytes {
        let mut rewritten: Option<Vec<u8>> = None;
        let mut offset = 0;
        for event in sse::events(&events) {
            let start = offset;
            offset += event.len();
            let info = sse::data(event)
                .map(|d| openai::classify_chunk(&d))
                .unwrap_or_default();
            self.observe(info);
            if !self.strip_usage {
                continue;
            }
            let replacement: Option<Vec<u8>> = if info.usage_only {
                Some(Vec::new())
            } else {
                sse::data(event)
                    .and_then(|d| openai::strip_null_usage(&d))
                    .map(|data| {
                        let mut out = Vec::with_capacity(data.len() + 8);
                        out.extend_from_slice(b"data: ");
                        out.extend_from_slice(&data);
                        out.extend_from_slice(b"\n\n");
                        out
                    })
            };
            match (replacement, rewritten.as_mut()) {
                (Some(new), Some(out)) => out.extend_from_slice(&new),
                (Some(new), None) => {
                    let mut out = Vec::with_capacity(events.len());
                    out.extend_from_slice(&events[..start]);
                    out.extend_from_slice(&new);
                    rewritten = Some(out);
                }
                (None, Some(out)) => out.extend_from_slice(event),
                (None, None) => {}
            }
        }
        match rewritten {
            Some(out) => Bytes::from(out),
            None => events,
        }
    }

    /// Takes bytes from the upstream and returns the whole events among them, metered.
    fn accept(&mut self, data: Bytes) -> Bytes {
        if self.buffer.is_empty() && sse::complete_prefix_len(&data) == data.len() {
            return self.process(data);
        }
        self.buffer.push(&data);
        match self.buffer.take_complete() {
            Some(events) => self.process(Bytes::from(events)),
            None => Bytes::new(),
        }
    }

    /// The upstream is done, well (`Ok`) or not: settle, and queue an error event if the
    /// stream did not end properly.
    fn finish(&mut self, end: Result<(), String>) {
        self.ended = true;
        match end {
            Err(message) => self.tail = Some(self.fail(&message)),
            Ok(()) if !self.done_seen => {
                self.tail =
                    Some(self.fail("The upstream ended the stream before it was complete."));
            }
            Ok(()) => {}
        }
        self.settle(false);
    }

    fn observe(&mut self, info: ChunkInfo) {
        if let Some(usage) = info.usage {
            self.usage = Some(usage);
        }
        self.delivered_chunks += u64::from(info.delivers_tokens);
        self.done_seen |= info.done;
    }

    fn settle(&mut self, client_disconnected: bool) {
        let Some(s) = self.settlement.take() else {
            return;
        };
        let measured = match self.usage {
            Some(usage) => Measured::Reported(usage),
            None => Measured::Counted(Usage {
                prompt_tokens: openai::estimate_prompt_tokens(&s.request_body),
                completion_tokens: self.delivered_chunks,
                ..Usage::default()
            }),
        };
        s.writer
            .record_now(s.meter.usage_record(200, measured, client_disconnected));
    }

    /// Ends the stream with one error event (CONTRACTS.md §4) after an upstream failure.
    fn fail(&mut self, message: &str) -> Bytes {
        let envelope = ErrorEnvelope::new("upstream_error", "upstream_unavailable", message, None);
        let mut event = b"data: ".to_vec();
        event.extend_from_slice(&envelope.to_json());
        event.extend_from_slice(b"\n\n");
        Bytes::from(event)
    }
}

/// The most bytes gathered into one write to the client.
const GATHER_LIMIT: usize = 64 * 1024;

/// Frames that arrived together: the first kept as it is, copied only if more follow.
#[derive(Default)]
struct Gathered {
    first: Option<Bytes>,
    more: Option<BytesMut>,
}

impl Gathered {
    fn len(&self) -> usize {
        match (&self.first, &self.more) {
            (_, Some(more)) => more.len(),
            (Some(first), None) => first.len(),
            (None, None) => 0,
        }
    }

    fn push(&mut self, data: Bytes) {
        match (&self.first, &mut self.more) {
            (None, _) => self.first = Some(data),
            (Some(_), Some(more)) => more.extend_from_slice(&data),
            (Some(first), None) => {
                let mut more = BytesMut::with_capacity(first.len() + data.len());
                more.extend_from_slice(first);
                more.extend_from_slice(&data);
                self.more = Some(more);
            }
        }
    }

    fn into_bytes(self) -> Option<Bytes> {
        match self.more {
            Some(more) => Some(more.freeze()),
            None => self.first,
        }
    }
}

impl Body for MeteredSse {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        loop {
            if let Some(tail) = this.tail.take() {
                return Poll::Ready(Some(Ok(Frame::data(tail))));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            // Take everything that has already arrived, so that events which came
            // together leave in one write; never wait for more.
            let mut gathered = Gathered::default();
            let mut end = None;
            let mut waiting = false;
            while gathered.len() < GATHER_LIMIT {
                match Pin::new(&mut this.upstream).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Ok(data) = frame.into_data() {
                            gathered.push(data);
                        }
                    }
                    Poll::Ready(Some(Err(e))) => {
                        end = Some(Err(format!("The upstream stream broke off: {e}")));
                        break;
                    }
                    Poll::Ready(None) => {
                        end = Some(Ok(()));
                        break;
                    }
                    Poll::Pending => {
                        waiting = true;
                        break;
                    }
                }
            }
            let out = match gathered.into_bytes() {
                Some(data) => this.accept(data),
                None => Bytes::new(),
            };
            if let Some(end) = end {
                this.finish(end);
            }
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(out))));
            }
            if waiting && !this.ended {
                return Poll::Pending;
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.tail.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for MeteredSse {
    fn drop(&mut self) {
        // Still unsettled here means the client went away before the end.
        self.settle(true);
    }
}
