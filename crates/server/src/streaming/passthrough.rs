//! An OpenAI-compatible upstream's stream, forwarded as it is: whole events are peeked at
//! for usage, and the usage chunk the gateway asked for is removed again when the client
//! did not ask for it. A community instance's usage is restated at what it is charged
//! when it reported more than was delivered.

use bytes::Bytes;
use tokenrouter_core::Usage;
use tokenrouter_providers::openai::{self, ChunkInfo};
use tokenrouter_providers::sse::{self, SseBuffer};

use crate::instances::usage::{self, Belief};

pub struct PassThrough {
    buffer: SseBuffer,
    /// The client did not ask for usage: drop the usage chunk and `"usage":null` members.
    strip_usage: bool,
    pub usage: Option<Usage>,
    pub delivered_chunks: u64,
    done_seen: bool,
    /// The upstream sent its own error event, already forwarded to the client.
    pub error_relayed: bool,
    /// An event grew past `MAX_EVENT` without ending.
    pub overflowed: bool,
    /// A community instance's stream: the generated text's bytes are counted, and a
    /// usage report above that count is restated at what is charged.
    pub belief: Option<Belief>,
    pub delivered_text_bytes: u64,
    /// A `/v1/completions` stream (its failure is told without a chat chunk).
    pub legacy_completions: bool,
}

/// The largest SSE event accepted from an upstream; a longer one ends the stream.
pub use tokenrouter_providers::sse::MAX_EVENT;

/// The whole events among what an upstream has sent so far: `data` itself when nothing was
/// pending and it ends where an event ends (no copy), else what `buffer` completes with it;
/// `None` while an event is still incomplete, flagging `overflowed` once it grew past
/// [`MAX_EVENT`].
pub fn whole_events(buffer: &mut SseBuffer, data: Bytes, overflowed: &mut bool) -> Option<Bytes> {
    if buffer.is_empty() && sse::complete_prefix_len(&data) == data.len() {
        return Some(data);
    }
    buffer.push(&data);
    let events = buffer.take_complete().map(Bytes::from);
    if events.is_none() {
        *overflowed = buffer.pending().len() > MAX_EVENT;
    }
    events
}

/// Generated tokens (by the gateway's count) past twice a request's output limit at which
/// a community instance's stream is ended: an honest server stops at the limit, and the
/// gateway's count of text may run up to about twice the real tokens.
const RUNAWAY_SLACK: u64 = 64;

impl PassThrough {
    pub fn new(strip_usage: bool) -> PassThrough {
        PassThrough {
            buffer: SseBuffer::default(),
            strip_usage,
            usage: None,
            delivered_chunks: 0,
            done_seen: false,
            error_relayed: false,
            overflowed: false,
            belief: None,
            delivered_text_bytes: 0,
            legacy_completions: false,
        }
    }

    /// Takes bytes from the upstream and returns the whole events among them, metered.
    pub fn feed(&mut self, data: Bytes) -> Bytes {
        match whole_events(&mut self.buffer, data, &mut self.overflowed) {
            Some(events) => self.process(events),
            None => Bytes::new(),
        }
    }

    /// The upstream closed the stream: it is complete only if `[DONE]` came.
    pub fn finish(&mut self) -> Result<Bytes, String> {
        if self.done_seen {
            Ok(Bytes::new())
        } else {
            Err("The upstream ended the stream before it was complete.".to_owned())
        }
    }

    /// Meters a run of whole events and returns what the client should receive.
    fn process(&mut self, events: Bytes) -> Bytes {
        let mut rewritten: Option<Vec<u8>> = None;
        let mut offset = 0;
        for event in sse::events(&events) {
            let start = offset;
            offset += event.len();
            let data = sse::data(event);
            let mut info = data.as_deref().map(openai::classify_chunk).unwrap_or_default();
            if self.belief.is_some() && info.delivers_tokens {
                // An instance's chunk delivers only the generated text it carries where a
                // client reads it (not a `"content"` member anywhere in its bytes).
                let bytes = data.as_deref().map_or(0, crate::instances::routing::chunk_text_bytes);
                self.delivered_text_bytes = self.delivered_text_bytes.saturating_add(bytes);
                info.delivers_tokens = bytes > 0;
            }
            self.observe(info);
            let replacement: Option<Vec<u8>> = if self.strip_usage && info.usage_only {
                Some(Vec::new())
            } else if self.strip_usage {
                data.as_deref().and_then(openai::strip_null_usage).map(|data| data_event(&data))
            } else {
                None
            };
            let replacement = replacement.or_else(|| self.charged(info, data.as_deref()));
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

    /// A community instance generating far past the request's output limit (a server
    /// that streams forever): the gateway ends the stream; nothing past the limit is paid.
    pub fn runaway(&self) -> bool {
        self.belief.is_some_and(|belief| {
            let own = crate::instances::routing::own_completion(self.delivered_text_bytes, self.delivered_chunks);
            own > belief.completion_ceiling.saturating_mul(2).saturating_add(RUNAWAY_SLACK)
        })
    }

    /// The event restating an instance's usage report at what is charged, when it
    /// reported more than the gateway counted so far.
    fn charged(&self, info: ChunkInfo, data: Option<&[u8]>) -> Option<Vec<u8>> {
        let (belief, reported, data) = (self.belief?, info.usage?, data?);
        let own = crate::instances::routing::own_completion(self.delivered_text_bytes, self.delivered_chunks);
        let charged = belief.charged(reported, own)?;
        usage::restate(data, &charged).map(|data| data_event(&data))
    }

    fn observe(&mut self, info: ChunkInfo) {
        if let Some(usage) = info.usage {
            self.usage = Some(usage);
        }
        self.delivered_chunks += u64::from(info.delivers_tokens);
        self.done_seen |= info.done;
        self.error_relayed |= info.error;
    }
}

/// One SSE event carrying `data`.
fn data_event(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
    out
}
