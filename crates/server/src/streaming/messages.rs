//! An Anthropic Messages stream from an upstream that was sent the client's own body (a
//! request offering server tools), forwarded as it is: whole events are peeked at for the
//! usage (with the server tool calls, billed per call) and for the end of the answer.

use bytes::Bytes;
use tokenrouter_core::Usage;
use tokenrouter_providers::anthropic::wire;
use tokenrouter_providers::messages::native;
use tokenrouter_providers::sse::{self, SseBuffer};

use super::passthrough::MAX_EVENT;

#[derive(Default)]
pub struct NativeMessages {
    buffer: SseBuffer,
    /// The counts the events stated so far (cumulative: later ones win).
    usage: Option<wire::Usage>,
    pub delivered_chunks: u64,
    finished: bool,
    /// The upstream's own error event, already forwarded to the client.
    pub error_relayed: bool,
    pub overflowed: bool,
}

impl NativeMessages {
    /// Takes bytes from the upstream and returns the whole events among them.
    pub fn feed(&mut self, data: Bytes) -> Bytes {
        let events = if self.buffer.is_empty() && sse::complete_prefix_len(&data) == data.len() {
            data
        } else {
            self.buffer.push(&data);
            match self.buffer.take_complete() {
                Some(events) => Bytes::from(events),
                None => {
                    self.overflowed = self.buffer.pending().len() > MAX_EVENT;
                    return Bytes::new();
                }
            }
        };
        for event in sse::events(&events) {
            let Some(data) = sse::data(event) else { continue };
            let info = native::classify_event(&data);
            if let Some(stated) = info.usage {
                self.usage.get_or_insert_with(wire::Usage::default).update(&stated);
            }
            self.delivered_chunks += u64::from(info.delivers_tokens);
            self.finished |= info.finished;
            self.error_relayed |= info.failed;
        }
        events
    }

    /// The usage stated so far, with the server tool calls.
    pub fn usage(&self) -> Option<Usage> {
        native::stream_usage(self.usage.as_ref())
    }

    /// The upstream closed the stream: complete only if the answer's last event came.
    pub fn finish(&mut self) -> Result<Bytes, String> {
        if self.finished {
            Ok(Bytes::new())
        } else {
            Err("The upstream ended the stream before it was complete.".to_owned())
        }
    }

    /// The event that ends a stream broken off after its first byte.
    pub fn failure_event(message: &str) -> Bytes {
        Bytes::from(native::failure_event(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_pass_as_they_are_and_their_usage_adds_up_with_the_server_tool_calls() {
        let mut stream = NativeMessages::default();
        let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n";
        let delta = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n";
        let end = "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"output_tokens\":8,\"server_tool_use\":{\"web_search_requests\":2}}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        assert_eq!(stream.feed(Bytes::from(start)), Bytes::from(start));
        // An event split across reads is forwarded once whole.
        let (head, tail) = delta.split_at(30);
        assert!(stream.feed(Bytes::from(head)).is_empty());
        assert_eq!(stream.feed(Bytes::from(tail)), Bytes::from(delta));
        assert!(stream.finish().is_err(), "not complete before message_stop");
        assert_eq!(stream.feed(Bytes::from(end)), Bytes::from(end));
        let usage = stream.usage().unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens, usage.hosted.web_search), (12, 8, 2));
        assert_eq!(stream.delivered_chunks, 1);
        assert!(stream.finish().is_ok() && !stream.error_relayed);
    }
}
