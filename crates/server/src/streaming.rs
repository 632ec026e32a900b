//! Streaming answers: upstream bytes go to the client as they arrive — forwarded as they
//! are from an OpenAI-compatible upstream, or transcoded event by event from another
//! provider's format. The stream settles exactly once — at its end, on an upstream
//! failure, or when the client goes away (`Drop`).

mod messages;
mod passthrough;
mod responses;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokenrouter_core::chat::{ChatCompletionChunk, ChunkChoice, Delta};
use tokenrouter_core::{ErrorEnvelope, HostedCalls, Usage};
use tokenrouter_providers::adapter::ResponseMeta;
use tokenrouter_providers::adapter::StreamDecoder;
use tokenrouter_providers::openai;
use tokenrouter_providers::surface::{ChunkFeed, Surface};
use tokenrouter_store::Progress;
use tokio::time::Sleep;

use crate::limits::Admission;
use crate::metering::{Measured, MeterContext, UsageWriter};
use crate::retention::{Keeper, Writing};
use crate::settlement::Reservation;
use crate::telemetry::finish::StreamReasons;
use messages::NativeMessages;
use passthrough::PassThrough;
use responses::NativeResponses;

/// What settles the stream: the meter, the writer and the request body (kept only to
/// estimate prompt tokens if the upstream never reports usage).
pub struct Settlement {
    pub meter: MeterContext,
    pub writer: UsageWriter,
    pub reservation: Option<Reservation>,
    /// The request's rate-limit admission, settled to the tokens used.
    pub admission: Admission,
    pub request_body: Bytes,
}

/// How upstream bytes become client bytes.
pub enum Transform {
    /// OpenAI-compatible upstream: forward, stripping the usage chunk if `strip_usage`;
    /// `legacy` for `/v1/completions`, whose chunks are not chat chunks.
    PassThrough { strip_usage: bool, legacy: bool },
    /// Another provider: transcode into OpenAI chunks.
    Decode(Box<dyn StreamDecoder>),
    /// An upstream speaking the Responses API itself: forward its events.
    NativeResponses,
    /// An Anthropic upstream sent the client's own Messages body: forward its events.
    NativeMessages,
}

enum Transcoder {
    Pass(PassThrough),
    Decode(Box<dyn StreamDecoder>),
    Responses(NativeResponses),
    Messages(NativeMessages),
}

impl Transcoder {
    /// What to send for these upstream bytes, and the failure they revealed, if any (what
    /// was decoded before it is still sent).
    fn feed(&mut self, data: Bytes) -> (Bytes, Option<String>) {
        match self {
            Transcoder::Pass(p) => {
                let out = p.feed(data);
                let failure = if p.overflowed {
                    Some("The provider sent an event larger than 4 MiB.".to_owned())
                } else if p.runaway() {
                    Some("The community instance kept generating past the request's output limit.".to_owned())
                } else {
                    None
                };
                (out, failure)
            }
            Transcoder::Decode(d) => {
                let mut out = Vec::new();
                let failure = d.feed(&data, &mut out).err().map(|f| f.message);
                (Bytes::from(out), failure)
            }
            Transcoder::Responses(r) => {
                let out = r.feed(data);
                let failure = r.overflowed.then(|| "The provider sent an event larger than 4 MiB.".to_owned());
                (out, failure)
            }
            Transcoder::Messages(m) => {
                let out = m.feed(data);
                let failure = m.overflowed.then(|| "The provider sent an event larger than 4 MiB.".to_owned());
                (out, failure)
            }
        }
    }

    fn finish(&mut self) -> Result<Bytes, String> {
        match self {
            Transcoder::Pass(p) => p.finish(),
            Transcoder::Decode(d) => {
                let mut out = Vec::new();
                d.finish(&mut out).map_err(|f| f.message)?;
                Ok(Bytes::from(out))
            }
            Transcoder::Responses(r) => r.finish(),
            Transcoder::Messages(m) => m.finish(),
        }
    }

    fn usage(&self) -> Option<Usage> {
        match self {
            Transcoder::Pass(p) => p.usage,
            Transcoder::Decode(d) => d.usage(),
            // Its final answer may leave out the output items the stream showed finishing:
            // the searches are the more of the two counts.
            Transcoder::Responses(r) => r.usage.map(|mut usage| {
                usage.hosted.web_search = usage.hosted.web_search.max(r.hosted.web_search);
                usage
            }),
            Transcoder::Messages(m) => m.usage(),
        }
    }

    /// Hosted tool calls seen finishing in the stream (only a native Responses or Messages
    /// stream shows them before its end).
    fn hosted(&self) -> HostedCalls {
        match self {
            Transcoder::Responses(r) => r.hosted,
            Transcoder::Messages(m) => m.hosted,
            Transcoder::Pass(_) | Transcoder::Decode(_) => HostedCalls::default(),
        }
    }

    fn delivered_chunks(&self) -> u64 {
        match self {
            Transcoder::Pass(p) => p.delivered_chunks,
            Transcoder::Decode(d) => d.delivered_chunks(),
            Transcoder::Responses(r) => r.delivered_chunks,
            Transcoder::Messages(m) => m.delivered_chunks,
        }
    }
}

/// A canonical stream restated in the client's surface (Responses, Messages, …).
pub struct Restating {
    pub feed: ChunkFeed,
    pub surface: Arc<dyn Surface>,
}

/// The upstream stream and how long it may stay silent.
pub struct Upstream {
    /// Bytes already read while waiting for the first byte.
    pub first: Bytes,
    pub rest: Incoming,
    pub idle_timeout: Duration,
}

pub struct MeteredSse {
    upstream: Incoming,
    first: Option<Bytes>,
    transcoder: Transcoder,
    /// Names the final chunk of a stream that failed after its first byte.
    meta: ResponseMeta,
    idle_timeout: Duration,
    last_data: Instant,
    idle: Pin<Box<Sleep>>,
    tail: Option<Bytes>,
    ended: bool,
    /// The upstream finished the stream properly.
    completed: bool,
    settlement: Option<Settlement>,
    restating: Option<Restating>,
    /// Keeps the finished answer (a Responses one, restated or served natively).
    keeper: Option<Keeper>,
    /// The write of the kept answer: the stream's last bytes wait for it.
    writing: Option<Writing>,
    /// When to next record what the client has received (so that, should this process
    /// die, another one settles the hold at that).
    next_checkpoint: Instant,
    /// Why the answer ended, gathered for the request's span (only when tracing).
    reasons: Option<StreamReasons>,
}

/// How often a stream in flight records what it has delivered.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);

impl MeteredSse {
    pub fn new(
        upstream: Upstream,
        transform: Transform,
        meta: ResponseMeta,
        settlement: Settlement,
        restating: Option<Restating>,
        keeper: Option<Keeper>,
    ) -> MeteredSse {
        let transcoder = match transform {
            Transform::PassThrough { strip_usage, legacy } => {
                let mut pass = PassThrough::new(strip_usage);
                pass.legacy_completions = legacy;
                pass.belief = settlement.meter.belief();
                Transcoder::Pass(pass)
            }
            Transform::Decode(decoder) => Transcoder::Decode(decoder),
            Transform::NativeResponses => Transcoder::Responses(NativeResponses::default()),
            Transform::NativeMessages => Transcoder::Messages(NativeMessages::default()),
        };
        let now = Instant::now();
        MeteredSse {
            upstream: upstream.rest,
            first: Some(upstream.first).filter(|b| !b.is_empty()),
            transcoder,
            meta,
            idle_timeout: upstream.idle_timeout,
            last_data: now,
            idle: Box::pin(tokio::time::sleep_until((now + upstream.idle_timeout).into())),
            tail: None,
            ended: false,
            completed: false,
            settlement: Some(settlement),
            restating,
            keeper,
            next_checkpoint: now + CHECKPOINT_EVERY,
            writing: None,
            reasons: crate::telemetry::gathers_finish_reasons().then(StreamReasons::default),
        }
    }

    /// Records the cost of what the client has received so far, every few seconds.
    fn checkpoint(&mut self, now: Instant) {
        if now < self.next_checkpoint {
            return;
        }
        self.next_checkpoint = now + CHECKPOINT_EVERY;
        let Some(s) = &self.settlement else { return };
        let record = s.meter.usage_record(200, self.measured(&s.meter, &s.request_body, false), false);
        s.writer.progress(Progress {
            request_id: record.request_id,
            delivered: record.cost,
            provider: record.provider,
            earning: record.earning,
        });
    }

    /// Canonical chunks as the client's surface states them (as they are for chat).
    fn restate(&mut self, canonical: Bytes) -> Bytes {
        let Some(restating) = &mut self.restating else { return canonical };
        let mut out = Vec::new();
        // An error event in the canonical stream has become the surface's failure event.
        let _ = restating.feed.feed(&canonical, &mut out);
        Bytes::from(out)
    }

    fn accept(&mut self, data: Bytes) -> Bytes {
        let (out, failure) = self.transcoder.feed(data);
        if let Some(reasons) = &mut self.reasons {
            reasons.feed(&out);
        }
        let out = self.restate(out);
        if let Some(message) = failure {
            self.ended = true;
            self.tail = Some(self.failure_events(&message));
            self.settle(false);
        }
        out
    }

    /// The upstream is done, well (`Ok`) or not: settle, and queue what remains to send
    /// (final chunks, or an error event if the stream did not end properly).
    fn finish(&mut self, end: Result<(), String>) {
        if self.ended {
            return;
        }
        self.ended = true;
        let rest = end.and_then(|()| self.transcoder.finish());
        self.completed = rest.is_ok();
        // The upstream's own error event reached the client: as it was, or restated by
        // the surface (which then ended its stream).
        let relayed = match &self.transcoder {
            Transcoder::Pass(p) => p.error_relayed,
            Transcoder::Responses(r) => r.error_relayed,
            Transcoder::Messages(m) => m.error_relayed,
            Transcoder::Decode(_) => false,
        } && self.restating.as_ref().is_none_or(|r| r.feed.failed());
        self.tail = match rest {
            Ok(bytes) => {
                if let Transcoder::Responses(r) = &mut self.transcoder
                    && let (Some(answer), Some(keeper)) = (r.final_response.take(), self.keeper.take())
                {
                    self.writing = keeper.keep_native(&answer);
                }
                if let Some(reasons) = &mut self.reasons {
                    reasons.feed(&bytes);
                }
                let bytes = self.restate(bytes);
                Some(self.close_restated(bytes)).filter(|b| !b.is_empty())
            }
            // The upstream's own error event already told the client: no second one.
            Err(_) if relayed => None,
            Err(message) => Some(self.failure_events(&message)),
        };
        self.settle(false);
    }

    fn settle(&mut self, client_disconnected: bool) {
        let Some(s) = self.settlement.take() else {
            return;
        };
        if !self.completed && !client_disconnected && self.transcoder.delivered_chunks() == 0 {
            // The upstream failed before generating anything the client received.
            let record = s.meter.usage_record(502, Measured::Nothing, false);
            if let Some(reservation) = s.reservation {
                reservation.settle(record.cost);
            }
            s.admission.settle(0);
            crate::telemetry::record_usage(&record);
            s.writer.record_now(record);
            return;
        }
        if let Some(reasons) = self.reasons.take() {
            crate::telemetry::record_finish_reasons(|| reasons.into_reasons());
        }
        let measured = self.measured(&s.meter, &s.request_body, true);
        let record = s.meter.usage_record(200, measured, client_disconnected);
        s.admission.settle(record.usage.total());
        if let Some(reservation) = s.reservation {
            reservation.settle(record.cost);
        }
        crate::telemetry::record_usage(&record);
        s.writer.record_now(record);
    }
}

impl MeteredSse {
    /// What the stream is billed for (a community instance's report believed only up
    /// to the gateway's own count; an over-report flagged when `settling`).
    fn measured(&self, meter: &MeterContext, request_body: &[u8], settling: bool) -> Measured {
        let measured = self.reported(request_body);
        let Some(instance) = &meter.instance else { return measured };
        let text = match &self.transcoder {
            Transcoder::Pass(p) => p.delivered_text_bytes,
            _ => 0,
        };
        let own = crate::instances::routing::own_completion(text, self.transcoder.delivered_chunks());
        match measured {
            // It reported nothing: the gateway's count, within the request's bounds.
            Measured::Counted(usage) if self.transcoder.usage().is_none() => {
                Measured::Counted(instance.counted(usage, own))
            }
            // Its report, whether the stream finished or not (ended early, its prompt
            // count is still its own): believed up to the gateway's count.
            _ => meter.believed(measured, own, settling),
        }
    }

    /// What the upstream reported, or the gateway counted when it reported nothing.
    fn reported(&self, request_body: &[u8]) -> Measured {
        let delivered = self.transcoder.delivered_chunks();
        match self.transcoder.usage() {
            // A stream that ended early may carry only the usage known at its start
            // (Anthropic reports output tokens last): never bill less than was delivered.
            Some(usage) if !self.completed && usage.completion_tokens < delivered => {
                Measured::Counted(Usage { completion_tokens: delivered, ..usage })
            }
            Some(usage) => Measured::Reported(usage),
            None => Measured::Counted(Usage {
                prompt_tokens: openai::estimate_prompt_tokens(request_body),
                completion_tokens: delivered,
                hosted: self.transcoder.hosted(),
                ..Usage::default()
            }),
        }
    }

    /// The surface's closing events (they state the billed usage), and the answer kept
    /// for a later request before the client can see its end.
    fn close_restated(&mut self, bytes: Bytes) -> Bytes {
        if self.restating.is_none() {
            return bytes;
        }
        let usage = match &self.settlement {
            Some(s) => crate::pipeline::usage_of(self.measured(&s.meter, &s.request_body, false)),
            None => Usage::default(),
        };
        let Some(restating) = &mut self.restating else { return bytes };
        let mut out = bytes.to_vec();
        restating.feed.finish(usage, &mut out);
        if let (Some(answer), Some(keeper)) = (restating.feed.completed(), self.keeper.take()) {
            self.writing = keeper.keep(restating.surface.as_ref(), &answer);
        }
        Bytes::from(out)
    }

    /// Ends a stream that failed after its first byte: a final chunk whose
    /// `finish_reason` is `"error"`, then one error event (CONTRACTS.md §4) — or the
    /// surface's own failure events (legacy completions: the error event alone).
    fn failure_events(&mut self, message: &str) -> Bytes {
        if let Some(restating) = &mut self.restating {
            let mut out = Vec::new();
            restating.feed.fail(message, &mut out);
            return Bytes::from(out);
        }
        match &self.transcoder {
            Transcoder::Responses(r) => return r.failure_event(message),
            Transcoder::Messages(_) => return NativeMessages::failure_event(message),
            _ => {}
        }
        let envelope = ErrorEnvelope::new("upstream_error", "upstream_unavailable", message, None);
        if matches!(&self.transcoder, Transcoder::Pass(p) if p.legacy_completions) {
            // A legacy completions stream has no chat chunk to end with: the error event alone.
            let mut events = b"data: ".to_vec();
            events.extend_from_slice(&envelope.to_json());
            events.extend_from_slice(b"\n\n");
            return Bytes::from(events);
        }
        let chunk = ChatCompletionChunk {
            id: self.meta.id.clone(),
            object: "chat.completion.chunk".to_owned(),
            created: self.meta.created,
            model: self.meta.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta: Delta::default(),
                logprobs: None,
                finish_reason: Some("error".to_owned()),
                stop_reason: None,
            }],
            usage: None,
        };
        let mut events = b"data: ".to_vec();
        events.extend_from_slice(&serde_json::to_vec(&chunk).unwrap_or_default());
        events.extend_from_slice(b"\n\ndata: ");
        events.extend_from_slice(&envelope.to_json());
        events.extend_from_slice(b"\n\n");
        Bytes::from(events)
    }

    /// Whether the upstream has been silent for longer than allowed; re-arms the timer
    /// when data came since it was set (so no timer is touched per chunk).
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.idle.as_mut().poll(cx).is_pending() {
                return false;
            }
            let due = self.last_data + self.idle_timeout;
            if Instant::now() >= due {
                return true;
            }
            self.idle.as_mut().reset(due.into());
        }
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

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        loop {
            if this.tail.is_some()
                && let Some(writing) = &mut this.writing
            {
                if writing.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.writing = None;
            }
            if let Some(tail) = this.tail.take() {
                return Poll::Ready(Some(Ok(Frame::data(tail))));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            // Take everything that has already arrived, so that events which came
            // together leave in one write; never wait for more.
            let mut gathered = Gathered::default();
            if let Some(first) = this.first.take() {
                gathered.push(first);
            }
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
                Some(data) => {
                    this.last_data = Instant::now();
                    this.checkpoint(this.last_data);
                    this.accept(data)
                }
                None => Bytes::new(),
            };
            // Polled whenever the upstream is pending, so the timer is always armed while
            // this task waits (it re-arms itself from `last_data`).
            if waiting && end.is_none() && !this.ended && this.idle_expired(cx) {
                let seconds = this.idle_timeout.as_secs_f64();
                end = Some(Err(format!("The provider sent nothing for {seconds:.1} s.")));
            }
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
