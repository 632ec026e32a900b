//! An upstream that serves the Responses API itself: its answers pass through as they
//! are, read only for what metering needs — the usage (with the web searches it ran: its
//! `web_search_call` output items, billed per call), whether the stream finished, and
//! whether it delivered anything.

use serde::Deserialize;
use serde_json::json;
use tokenrouter_core::{HostedCalls, Usage};

use super::ResponsesRequest;
use crate::surface::write_event;

/// The most hosted tool calls billed per call that `request` may make on an upstream that
/// runs its tools: with a web search tool (`web_search`, `web_search_preview`, dated
/// versions), its `max_tool_calls` (OpenAI: "the maximum number of total calls to built-in
/// tools"), else [`HostedCalls::HELD_WITHOUT_LIMIT`]; nothing without one.
pub fn hosted_ceiling(request: &ResponsesRequest) -> HostedCalls {
    let searches = request.tools.as_deref().unwrap_or_default().iter().any(|t| t.kind.starts_with("web_search"));
    if !searches {
        return HostedCalls::default();
    }
    let limit = request.extra.get("max_tool_calls").and_then(serde_json::Value::as_u64);
    HostedCalls { web_search: limit.unwrap_or(HostedCalls::HELD_WITHOUT_LIMIT), web_fetch: 0 }
}

/// What one streamed event means for metering.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventInfo {
    /// The usage a final event (`response.completed`, `.incomplete`, `.failed`) states.
    pub usage: Option<Usage>,
    /// The event adds generated content (`….delta`).
    pub delivers_tokens: bool,
    /// The stream ended as the API ends one (completed or incomplete).
    pub finished: bool,
    /// The event is a finished hosted tool call (`response.output_item.done` of a
    /// `web_search_call`): counted while a stream runs, in case it never states its usage.
    pub hosted: HostedCalls,
    /// The upstream reported a failure (`error` or `response.failed`).
    pub failed: bool,
    pub sequence_number: Option<u64>,
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    sequence_number: Option<u64>,
    response: Option<WithUsage>,
}

#[derive(Deserialize)]
struct WithUsage {
    usage: Option<WireUsage>,
}

impl WithUsage {
    /// The usage it states, with the hosted calls its `output` shows (`body`: the
    /// Response object it was read from).
    fn usage(self, body: &[u8]) -> Option<Usage> {
        let mut usage = Usage::from(self.usage?);
        usage.hosted = hosted_calls(body);
        Some(usage)
    }
}

/// An output item's type, the rest ignored.
#[derive(Deserialize)]
struct Kind<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
}

/// The hosted tool calls a Response object's `output` shows: one web search per
/// `web_search_call` item (what OpenAI bills per call).
fn hosted_calls(response: &[u8]) -> HostedCalls {
    #[derive(Deserialize)]
    struct Output<'a> {
        #[serde(borrow)]
        output: Option<Vec<Kind<'a>>>,
    }
    let items = serde_json::from_slice::<Output<'_>>(response).ok().and_then(|o| o.output).unwrap_or_default();
    let web_search = items.iter().filter(|item| is_web_search(item)).count();
    HostedCalls { web_search: u64::try_from(web_search).unwrap_or(u64::MAX), web_fetch: 0 }
}

fn is_web_search(item: &Kind<'_>) -> bool {
    item.kind.as_deref() == Some("web_search_call")
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    input_tokens_details: Option<InputDetails>,
    output_tokens_details: Option<OutputDetails>,
}

#[derive(Deserialize)]
struct InputDetails {
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct OutputDetails {
    reasoning_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    fn from(w: WireUsage) -> Usage {
        Usage {
            prompt_tokens: w.input_tokens,
            completion_tokens: w.output_tokens,
            cached_tokens: w.input_tokens_details.and_then(|d| d.cached_tokens).unwrap_or(0),
            cache_write_tokens: 0,
            reasoning_tokens: w.output_tokens_details.and_then(|d| d.reasoning_tokens).unwrap_or(0),
            hosted: Default::default(),
        }
    }
}

/// Classifies one event's `data`. Only the final events are parsed in full; the many
/// delta events are recognised by their type alone.
pub fn classify_event(data: &[u8]) -> EventInfo {
    #[derive(Deserialize)]
    struct Head<'a> {
        #[serde(rename = "type", borrow)]
        kind: std::borrow::Cow<'a, str>,
        sequence_number: Option<u64>,
    }
    let Ok(head) = serde_json::from_slice::<Head<'_>>(data) else { return EventInfo::default() };
    let mut info = EventInfo { sequence_number: head.sequence_number, ..EventInfo::default() };
    match head.kind.as_ref() {
        "response.completed" | "response.incomplete" | "response.failed" => {
            if let Ok(event) = serde_json::from_slice::<Event<'_>>(data) {
                let response = final_response(data).unwrap_or_default();
                info.usage = event.response.and_then(|r| r.usage(&response));
                info.finished = event.kind != "response.failed";
                info.failed = event.kind == "response.failed";
                info.sequence_number = event.sequence_number;
            }
        }
        "error" => info.failed = true,
        "response.output_item.done" => {
            #[derive(Deserialize)]
            struct Done<'a> {
                #[serde(borrow)]
                item: Option<Kind<'a>>,
            }
            let done = serde_json::from_slice::<Done<'_>>(data).ok().and_then(|d| d.item);
            info.hosted.web_search = u64::from(done.is_some_and(|item| is_web_search(&item)));
        }
        kind => info.delivers_tokens = kind.ends_with(".delta"),
    }
    info
}

/// The Response object a final event (`response.completed`, `.incomplete`) carries.
pub fn final_response(data: &[u8]) -> Option<Vec<u8>> {
    #[derive(Deserialize)]
    struct Final<'a> {
        #[serde(borrow)]
        response: &'a serde_json::value::RawValue,
    }
    serde_json::from_slice::<Final<'_>>(data).ok().map(|f| f.response.get().as_bytes().to_vec())
}

/// The `id` of a Response object.
pub fn response_id(response: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct WithId {
        id: String,
    }
    serde_json::from_slice::<WithId>(response).ok().map(|r| r.id)
}

/// The usage of a whole (non-streamed) Response object.
pub fn answer_usage(body: &[u8]) -> Option<Usage> {
    serde_json::from_slice::<WithUsage>(body).ok()?.usage(body)
}

/// The event that ends a stream the upstream broke off: an `error` event, numbered after
/// the last event the client received.
pub fn failure_event(message: &str, sequence_number: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let data = json!({
        "type": "error",
        "code": "upstream_error",
        "message": message,
        "param": null,
        "sequence_number": sequence_number,
    });
    write_event(&mut out, "error", &data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_events_carry_the_usage_and_deltas_deliver_tokens() {
        let completed = br#"{"type":"response.completed","sequence_number":9,"response":{"id":"resp_1","usage":{"input_tokens":12,"input_tokens_details":{"cached_tokens":4},"output_tokens":30,"output_tokens_details":{"reasoning_tokens":10},"total_tokens":42}}}"#;
        let info = classify_event(completed);
        assert!(info.finished && !info.failed && !info.delivers_tokens);
        assert_eq!(info.sequence_number, Some(9));
        assert_eq!(
            info.usage,
            Some(Usage {
                prompt_tokens: 12,
                completion_tokens: 30,
                cached_tokens: 4,
                cache_write_tokens: 0,
                reasoning_tokens: 10,
                hosted: Default::default(),
            })
        );
        let delta = classify_event(br#"{"type":"response.output_text.delta","sequence_number":4,"delta":"Hi"}"#);
        assert!(delta.delivers_tokens && !delta.finished);
        assert_eq!(delta.sequence_number, Some(4));
        let incomplete = classify_event(br#"{"type":"response.incomplete","response":{"usage":null}}"#);
        assert!(incomplete.finished && incomplete.usage.is_none());
        assert!(classify_event(br#"{"type":"error","message":"boom"}"#).failed);
        assert!(classify_event(br#"{"type":"response.failed","response":{"usage":null}}"#).failed);
        assert_eq!(classify_event(b"not json"), EventInfo::default());
    }

    #[test]
    fn a_web_search_tool_is_held_for_its_max_tool_calls_else_the_default() {
        let read = |body: serde_json::Value| hosted_ceiling(&serde_json::from_value::<ResponsesRequest>(body).unwrap());
        let searches = |n| HostedCalls { web_search: n, web_fetch: 0 };
        let tool = |kind: &str| json!([{"type": kind}, {"type": "function", "name": "f"}]);
        assert_eq!(read(json!({"model": "m", "input": "x", "tools": tool("web_search")})), searches(10));
        assert_eq!(read(json!({"model": "m", "tools": tool("web_search_preview_2025_03_11")})), searches(10));
        assert_eq!(read(json!({"model": "m", "tools": tool("web_search"), "max_tool_calls": 3})), searches(3));
        assert_eq!(read(json!({"model": "m", "tools": tool("web_search"), "max_tool_calls": 0})), searches(0));
        assert_eq!(read(json!({"model": "m", "tools": tool("file_search")})), HostedCalls::default());
        assert_eq!(read(json!({"model": "m", "max_tool_calls": 4})), HostedCalls::default());
    }

    #[test]
    fn web_search_calls_are_counted_as_hosted_web_searches() {
        let body = br#"{"id":"resp_1","output":[{"type":"web_search_call","id":"ws_1","status":"completed"},{"type":"web_search_call","id":"ws_2"},{"type":"message","content":[]}],"usage":{"input_tokens":3,"output_tokens":5}}"#;
        let usage = answer_usage(body).unwrap_or_default();
        assert_eq!(usage.hosted, HostedCalls { web_search: 2, web_fetch: 0 });
        let completed = br#"{"type":"response.completed","response":{"id":"resp_1","output":[{"type":"web_search_call","id":"ws_1"}],"usage":{"input_tokens":3,"output_tokens":5}}}"#;
        assert_eq!(classify_event(completed).usage.map(|u| u.hosted.web_search), Some(1));
        let done = br#"{"type":"response.output_item.done","output_index":0,"item":{"type":"web_search_call","id":"ws_1","status":"completed"}}"#;
        assert_eq!(classify_event(done).hosted.web_search, 1);
        let message = br#"{"type":"response.output_item.done","output_index":1,"item":{"type":"message"}}"#;
        assert!(classify_event(message).hosted.is_empty());
        assert!(answer_usage(br#"{"output":"odd","usage":{"input_tokens":1}}"#).is_some_and(|u| u.hosted.is_empty()));
    }

    #[test]
    fn whole_answers_and_failure_events() {
        let body =
            br#"{"id":"resp_1","object":"response","usage":{"input_tokens":3,"output_tokens":5,"total_tokens":8}}"#;
        assert_eq!(answer_usage(body), Some(Usage { prompt_tokens: 3, completion_tokens: 5, ..Usage::default() }));
        assert_eq!(answer_usage(br#"{"id":"resp_1"}"#), None);
        let completed = br#"{"type":"response.completed","response":{"id":"resp_9","usage":null}}"#;
        let response = final_response(completed).unwrap_or_default();
        assert_eq!(response, br#"{"id":"resp_9","usage":null}"#);
        assert_eq!(response_id(&response).as_deref(), Some("resp_9"));
        assert_eq!(final_response(br#"{"type":"response.output_text.delta"}"#), None);
        let event = String::from_utf8(failure_event("gone", 7)).unwrap_or_default();
        assert!(event.starts_with("event: error\ndata: {"), "{event}");
        assert!(event.contains("\"sequence_number\":7") && event.ends_with("\n\n"), "{event}");
    }
}
