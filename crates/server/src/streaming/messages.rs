//! An Anthropic Messages stream from an upstream that was sent the client's own body (a
//! request offering server tools), forwarded as it is: whole events are peeked at for the
//! usage (with the server tool calls, billed per call) and for the end of the answer.

use bytes::Bytes;
use tokenrouter_core::{HostedCalls, Usage};
use tokenrouter_providers::anthropic::wire;
use tokenrouter_providers::messages::native;
use tokenrouter_providers::sse::{self, SseBuffer};

use super::passthrough::whole_events;

#[derive(Default)]
pub struct NativeMessages {
    buffer: SseBuffer,
    /// The counts the events stated so far (cumulative: later ones win).
    usage: Option<wire::Usage>,
    pub delivered_chunks: u64,
    /// Server tool calls whose results came (billed even when the stream never states usage).
    pub hosted: HostedCalls,
    /// Bytes of the server tool results the stream delivered (their events' data).
    result_bytes: u64,
    /// The answer's last usage (`message_delta`'s) came.
    stated_last: bool,
    finished: bool,
    /// The upstream's own error event, already forwarded to the client.
    pub error_relayed: bool,
    pub overflowed: bool,
}

impl NativeMessages {
    /// Takes bytes from the upstream and returns the whole events among them.
    pub fn feed(&mut self, data: Bytes) -> Bytes {
        let Some(events) = whole_events(&mut self.buffer, data, &mut self.overflowed) else {
            return Bytes::new();
        };
        for event in sse::events(&events) {
            let Some(data) = sse::data(event) else { continue };
            let info = native::classify_event(&data);
            if let Some(stated) = info.usage {
                self.usage.get_or_insert_with(wire::Usage::default).update(&stated);
                self.stated_last |= !matches!(native_start(&data), Some(true));
            }
            if !info.hosted.is_empty() {
                self.result_bytes = self.result_bytes.saturating_add(u64::try_from(data.len()).unwrap_or(u64::MAX));
            }
            self.delivered_chunks += u64::from(info.delivers_tokens);
            self.hosted.web_search = self.hosted.web_search.saturating_add(info.hosted.web_search);
            self.hosted.web_fetch = self.hosted.web_fetch.saturating_add(info.hosted.web_fetch);
            self.finished |= info.finished;
            self.error_relayed |= info.failed;
        }
        events
    }

    /// The usage stated so far, with the server tool calls: the more of those it states
    /// and those whose results the stream showed (a stream broken off before its last
    /// usage still bills the searches that ran).
    ///
    /// Broken off before its last usage, after server tool results, a stream's input is
    /// estimated: Anthropic reads the prompt again for each step after a result, so the
    /// first step's input (`message_start`'s) once more per result shown, plus the results
    /// themselves (their bytes ÷ 3, as the hold estimates a prompt) — never less than
    /// stated.
    pub fn usage(&self) -> Option<Usage> {
        native::stream_usage(self.usage.as_ref()).map(|mut usage| {
            usage.hosted.web_search = usage.hosted.web_search.max(self.hosted.web_search);
            usage.hosted.web_fetch = usage.hosted.web_fetch.max(self.hosted.web_fetch);
            let results = self.hosted.web_search.saturating_add(self.hosted.web_fetch);
            if !self.stated_last && results > 0 {
                let steps = usage.prompt_tokens.saturating_mul(results.saturating_add(1));
                let estimate = steps.saturating_add(self.result_bytes.div_ceil(3));
                usage.prompt_tokens = usage.prompt_tokens.max(estimate);
            }
            usage
        })
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

/// Whether an event's data is a `message_start` (`None`: unreadable).
fn native_start(data: &[u8]) -> Option<bool> {
    #[derive(serde::Deserialize)]
    struct Kind<'a> {
        #[serde(rename = "type", borrow)]
        kind: std::borrow::Cow<'a, str>,
    }
    serde_json::from_slice::<Kind<'_>>(data).ok().map(|k| k.kind == "message_start")
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

    #[test]
    fn a_stream_broken_off_before_its_usage_still_counts_the_searches_that_returned() {
        let mut stream = NativeMessages::default();
        let events = concat!(
            "event: message_start\n",
            r#"data: {"type":"message_start","message":{"usage":{"input_tokens":12,"output_tokens":1}}}"#,
            "\n\nevent: content_block_start\n",
            r#"data: {"type":"content_block_start","index":1,"content_block":{"type":"web_search_tool_result","tool_use_id":"srvtoolu_1","content":[]}}"#,
            "\n\nevent: content_block_start\n",
            r#"data: {"type":"content_block_start","index":3,"content_block":{"type":"web_search_tool_result","tool_use_id":"srvtoolu_2","content":[]}}"#,
            "\n\n",
        );
        stream.feed(Bytes::from(events));
        assert!(stream.finish().is_err());
        assert_eq!(stream.usage().unwrap().hosted, HostedCalls { web_search: 2, web_fetch: 0 });
        assert_eq!(stream.hosted.web_search, 2);
    }

    #[test]
    fn a_stream_broken_off_after_results_bills_its_input_as_read_again_per_result() {
        let start = concat!(
            "event: message_start\n",
            r#"data: {"type":"message_start","message":{"usage":{"input_tokens":1000,"output_tokens":1}}}"#,
            "\n\n",
        );
        let result = r#"{"type":"content_block_start","index":1,"content_block":{"type":"web_fetch_tool_result","tool_use_id":"srvtoolu_1","content":{"type":"web_fetch_result","url":"https://example.com","content":"lorem ipsum"}}}"#;
        let results = format!("event: content_block_start\ndata: {result}\n\n").repeat(2);
        let mut cut = NativeMessages::default();
        cut.feed(Bytes::from(start));
        cut.feed(Bytes::from(results.clone()));
        assert!(cut.finish().is_err());
        let usage = cut.usage().unwrap();
        // The first step's 1,000 once more per result (3 steps), and the results' bytes ÷ 3.
        let shown = u64::try_from(2 * result.len()).unwrap().div_ceil(3);
        assert_eq!(usage.prompt_tokens, 3 * 1000 + shown);
        assert_eq!(usage.hosted.web_fetch, 2);

        // The last usage came: what it states stands.
        let mut whole = NativeMessages::default();
        whole.feed(Bytes::from(start));
        whole.feed(Bytes::from(results));
        let end = concat!(
            "event: message_delta\n",
            r#"data: {"type":"message_delta","delta":{},"usage":{"input_tokens":2500,"output_tokens":9,"server_tool_use":{"web_fetch_requests":2}}}"#,
            "\n\n",
        );
        whole.feed(Bytes::from(end));
        assert_eq!(whole.usage().unwrap().prompt_tokens, 2500);

        // No result shown: the first step's input is all there was.
        let mut plain = NativeMessages::default();
        plain.feed(Bytes::from(start));
        assert_eq!(plain.usage().unwrap().prompt_tokens, 1000);
    }
}
