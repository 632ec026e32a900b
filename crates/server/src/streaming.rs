//! Streaming answers: the upstream's SSE bytes are forwarded as they arrive, each whole
//! event peeked at for usage; the usage chunk the gateway asked for is removed again when
//! the client did not ask for it. The stream settles exactly once — at its end, on an
//! upstream failure, or when the client goes away (`Drop`).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
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
        s.meter
            .record(&s.writer, 200, measured, client_disconnected);
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
            match ready!(Pin::new(&mut this.upstream).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let out = if this.buffer.is_empty()
                        && sse::complete_prefix_len(&data) == data.len()
                    {
                        this.process(data)
                    } else {
                        this.buffer.push(&data);
                        match this.buffer.take_complete() {
                            Some(events) => this.process(Bytes::from(events)),
                            None => continue,
                        }
                    };
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                }
                Some(Err(e)) => {
                    this.ended = true;
                    this.tail = Some(this.fail(&format!("The upstream stream broke off: {e}")));
                    this.settle(false);
                }
                None => {
                    this.ended = true;
                    if !this.done_seen {
                        this.tail = Some(
                            this.fail("The upstream ended the stream before it was complete."),
                        );
                    }
                    this.settle(false);
                }
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
