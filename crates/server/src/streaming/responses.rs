//! A Responses API stream from an upstream that speaks it natively, forwarded as it is:
//! whole events are peeked at for usage, for the end of the answer, and for the last
//! sequence number (so that a failure event the gateway adds continues the count).

use bytes::Bytes;
use tokenrouter_core::{HostedCalls, Usage};
use tokenrouter_providers::responses::native;
use tokenrouter_providers::sse::{self, SseBuffer};

use super::passthrough::whole_events;

#[derive(Default)]
pub struct NativeResponses {
    buffer: SseBuffer,
    pub usage: Option<Usage>,
    pub delivered_chunks: u64,
    /// Hosted tool calls finished so far (billed even when the stream never states usage).
    pub hosted: HostedCalls,
    finished: bool,
    /// The upstream's own failure event, already forwarded to the client.
    pub error_relayed: bool,
    pub overflowed: bool,
    last_sequence: Option<u64>,
    /// The Response object the final event carried.
    pub final_response: Option<Vec<u8>>,
}

impl NativeResponses {
    /// Takes bytes from the upstream and returns the whole events among them.
    pub fn feed(&mut self, data: Bytes) -> Bytes {
        let Some(events) = whole_events(&mut self.buffer, data, &mut self.overflowed) else {
            return Bytes::new();
        };
        for event in sse::events(&events) {
            let Some(data) = sse::data(event) else { continue };
            let info = native::classify_event(&data);
            if info.usage.is_some() {
                self.usage = info.usage;
            }
            self.delivered_chunks += u64::from(info.delivers_tokens);
            self.hosted.web_search = self.hosted.web_search.saturating_add(info.hosted.web_search);
            if info.finished {
                self.finished = true;
                self.final_response = native::final_response(&data);
            }
            self.error_relayed |= info.failed;
            self.last_sequence = info.sequence_number.or(self.last_sequence);
        }
        events
    }

    /// The upstream closed the stream: complete only if the answer's final event came.
    pub fn finish(&mut self) -> Result<Bytes, String> {
        if self.finished {
            Ok(Bytes::new())
        } else {
            Err("The upstream ended the stream before it was complete.".to_owned())
        }
    }

    /// The event that ends a stream broken off after its first byte.
    pub fn failure_event(&self, message: &str) -> Bytes {
        let next = self.last_sequence.map_or(0, |n| n + 1);
        Bytes::from(native::failure_event(message, next))
    }
}
