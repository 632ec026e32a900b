//! Why an answer ended, read for the request's span (`gen_ai.response.finish_reasons`):
//! off a canonical answer (`choices[].finish_reason`, also legacy completions), off a
//! Responses API answer (`status`, or `incomplete_details.reason` when incomplete), and
//! off the canonical chunks (or Responses events) of a stream as they pass. Only a
//! tracing gateway reads anything here.

use serde_json::Value;
use tokenrouter_providers::sse;

/// The finish reasons of a whole answer, in choice order.
pub fn of_answer(body: &[u8]) -> Vec<String> {
    let mut reasons = Vec::new();
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        collect(&value, &mut reasons);
    }
    reasons
}

/// The finish reasons of a stream, gathered event by event.
#[derive(Debug, Default)]
pub struct StreamReasons {
    reasons: Vec<String>,
    /// An event split across two reads.
    pending: Vec<u8>,
}

impl StreamReasons {
    /// Reads the complete events among `bytes` (canonical chunks or Responses events).
    pub fn feed(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        let complete = sse::complete_prefix_len(&self.pending);
        for event in sse::events(&self.pending[..complete]) {
            // Only the events that can say why the answer ended are parsed.
            let Some(data) = sse::data(event) else { continue };
            if !contains(&data, b"finish_reason\":") && !contains(&data, b"\"response.") {
                continue;
            }
            if let Ok(value) = serde_json::from_slice::<Value>(&data) {
                match value.get("response") {
                    Some(response) => collect(response, &mut self.reasons),
                    None => collect(&value, &mut self.reasons),
                }
            }
        }
        self.pending.drain(..complete);
    }

    pub fn into_reasons(self) -> Vec<String> {
        self.reasons
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// Adds what one answer or chunk says about why it ended.
fn collect(value: &Value, reasons: &mut Vec<String>) {
    if let Some(choices) = value.get("choices").and_then(Value::as_array) {
        let stated = choices.iter().filter_map(|c| c.get("finish_reason").and_then(Value::as_str));
        reasons.extend(stated.map(str::to_owned));
        return;
    }
    // A Responses API answer: only a final one says how it ended.
    match value.get("status").and_then(Value::as_str) {
        Some("incomplete") => {
            let reason = value.pointer("/incomplete_details/reason").and_then(Value::as_str);
            reasons.push(reason.unwrap_or("incomplete").to_owned());
        }
        Some(status @ ("completed" | "failed" | "cancelled")) => reasons.push(status.to_owned()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_answer_gives_each_choices_reason() {
        let body = br#"{"choices":[{"index":0,"finish_reason":"stop"},{"index":1,"finish_reason":"length"}]}"#;
        assert_eq!(of_answer(body), ["stop", "length"]);
        assert_eq!(of_answer(br#"{"choices":[{"text":"x","finish_reason":"length"}]}"#), ["length"]);
        assert!(of_answer(b"not json").is_empty());
        assert!(of_answer(br#"{"data":[{"embedding":[0.1]}]}"#).is_empty());
    }

    #[test]
    fn a_responses_answer_gives_its_status_or_why_it_is_incomplete() {
        assert_eq!(of_answer(br#"{"object":"response","status":"completed"}"#), ["completed"]);
        let incomplete = br#"{"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"}}"#;
        assert_eq!(of_answer(incomplete), ["max_output_tokens"]);
        assert!(of_answer(br#"{"status":"in_progress"}"#).is_empty());
    }

    #[test]
    fn a_stream_gives_the_reasons_of_its_chunks_even_split_across_reads() {
        let stream = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n",
            "data: [DONE]\n\n",
        );
        let mut reasons = StreamReasons::default();
        for piece in stream.as_bytes().chunks(7) {
            reasons.feed(piece);
        }
        assert_eq!(reasons.into_reasons(), ["tool_calls"]);

        let mut reasons = StreamReasons::default();
        reasons.feed(b"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"status\":\"in_progress\"}}\n\n");
        reasons.feed(b"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"status\":\"completed\"}}\n\n");
        assert_eq!(reasons.into_reasons(), ["completed"]);
    }
}
