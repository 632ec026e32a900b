//! An Anthropic upstream serving `/v1/messages` itself, for a request that offers Anthropic's
//! server tools (`web_search_…`, `web_fetch_…`, `code_execution_…`, …), which only Anthropic
//! runs: the client's body goes on as it is — its model renamed, its `max_tokens` clamped —
//! and the answer comes back as it is (with its `server_tool_use` and
//! `web_search_tool_result` blocks), read only for its usage: tokens and the server tool
//! calls billed per call (`usage.server_tool_use`).

use serde::Deserialize;
use serde_json::{Value, json};
use tokenrouter_core::{HostedCalls, Usage};

use crate::adapter::Unsupported;

use crate::anthropic::{usage_of, wire};

/// One tool the client offers, as far as metering cares.
#[derive(Deserialize)]
struct Tool {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    max_uses: Option<u64>,
}

#[derive(Deserialize)]
struct Tools {
    #[serde(default)]
    tools: Option<Vec<Tool>>,
}

fn tools(body: &[u8]) -> Vec<Tool> {
    serde_json::from_slice::<Tools>(body).ok().and_then(|t| t.tools).unwrap_or_default()
}

impl Tool {
    fn is_server_tool(&self) -> bool {
        !matches!(self.kind.as_deref(), None | Some("custom"))
    }
}

/// A server tool Anthropic bills per call, which the hold and the charge cover: the only
/// ones sent to Anthropic natively.
fn is_priced(kind: &str) -> bool {
    kind.starts_with("web_search_") || kind.starts_with("web_fetch_")
}

/// Whether the body offers one of Anthropic's server tools (a tool whose `type` is neither
/// absent nor `custom`): only an Anthropic upstream can run it.
pub fn offers_server_tools(body: &[u8]) -> bool {
    tools(body).iter().any(Tool::is_server_tool)
}

/// Whether the body offers a server tool billed per call (`web_search_…`, `web_fetch_…`):
/// such a request goes to an Anthropic upstream natively.
pub fn offers_priced_server_tools(body: &[u8]) -> bool {
    tools(body).iter().any(|t| t.kind.as_deref().is_some_and(is_priced))
}

/// The top-level fields a body sent to Anthropic as it is may carry: what the gateway
/// reads of a Messages request, and `top_k`. Anything else may change what Anthropic bills
/// (`speed`, `inference_geo`, …) or reach the operator's resources (`container`,
/// `mcp_servers`).
const FORWARDED_FIELDS: &[&str] = &[
    "model",
    "models",
    "messages",
    "max_tokens",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "output_config",
    "output_format",
    "stop_sequences",
    "temperature",
    "top_p",
    "top_k",
    "metadata",
    "stream",
];

/// The body sent to Anthropic natively, and the server tools left out of it.
#[derive(Debug)]
pub struct Forwarded {
    pub body: Vec<u8>,
    /// Server tools not billed per call (`code_execution_…`, `bash_…`, …): not sent, named.
    pub dropped: Vec<String>,
}

/// The client's body as it may go to Anthropic: only [`FORWARDED_FIELDS`] (another field
/// is refused, named); no `cache_control` with a `ttl` of `1h` (Anthropic bills its cache
/// writes at twice the input price, the gateway at 1.25×: refused); only the server tools
/// billed per call (the others are left out and named); each web search or fetch tool
/// without `max_uses` given [`HostedCalls::HELD_WITHOUT_LIMIT`] (so the hold's calls
/// bound them), each web fetch tool's `max_content_tokens` at most
/// [`HostedCalls::FETCH_CONTENT_TOKENS`] (so the hold's input allowance per fetch bounds it).
/// A refused body is sent the translated way instead.
pub fn forwarded(body: &[u8]) -> Result<Forwarded, Unsupported> {
    let mut value: Value = serde_json::from_slice(body).map_err(|e| Unsupported::new("", e.to_string()))?;
    let Some(object) = value.as_object_mut() else {
        return Err(Unsupported::new("", "The request body must be a JSON object."));
    };
    if let Some(field) = object.keys().find(|k| !FORWARDED_FIELDS.contains(&k.as_str())) {
        let message = format!("'{field}' is not supported with Anthropic's server tools on this gateway.");
        return Err(Unsupported::new(field.clone(), message));
    }
    if long_cache(&value) {
        let message = "A cache_control ttl of '1h' is not supported with Anthropic's server tools on this gateway.";
        return Err(Unsupported::new("cache_control.ttl", message));
    }
    let mut dropped = Vec::new();
    if let Some(tools) = value.get_mut("tools").and_then(Value::as_array_mut) {
        tools.retain(|tool| match tool.get("type").and_then(Value::as_str) {
            None | Some("custom") => true,
            Some(kind) if is_priced(kind) => true,
            Some(kind) => {
                let name = tool.get("name").and_then(Value::as_str).unwrap_or(kind);
                dropped.push(name.to_owned());
                false
            }
        });
        for tool in tools.iter_mut().filter_map(Value::as_object_mut) {
            let kind = tool.get("type").and_then(Value::as_str).unwrap_or_default().to_owned();
            if !is_priced(&kind) {
                continue;
            }
            tool.entry("max_uses").or_insert(json!(HostedCalls::HELD_WITHOUT_LIMIT));
            if kind.starts_with("web_fetch_") {
                let most = HostedCalls::FETCH_CONTENT_TOKENS;
                let asked = tool.get("max_content_tokens").and_then(Value::as_u64).unwrap_or(most);
                tool.insert("max_content_tokens".to_owned(), json!(asked.min(most)));
            }
        }
    }
    let body = serde_json::to_vec(&value).map_err(|e| Unsupported::new("", e.to_string()))?;
    Ok(Forwarded { body, dropped })
}

/// Whether some `cache_control` in the body asks for a one-hour cache.
fn long_cache(value: &Value) -> bool {
    match value {
        Value::Object(object) => object.iter().any(|(key, v)| {
            (key == "cache_control" && v.get("ttl").and_then(Value::as_str) == Some("1h")) || long_cache(v)
        }),
        Value::Array(items) => items.iter().any(long_cache),
        _ => false,
    }
}

/// The most calls billed per call that the body's server tools may make: each web search
/// or web fetch tool's `max_uses`, else [`HostedCalls::HELD_WITHOUT_LIMIT`] (Anthropic
/// documents no limit of its own). Nothing for a body without them.
pub fn hosted_ceiling(body: &[u8]) -> HostedCalls {
    let mut calls = HostedCalls::default();
    for tool in tools(body) {
        let Some(kind) = tool.kind.as_deref() else { continue };
        let most = tool.max_uses.unwrap_or(HostedCalls::HELD_WITHOUT_LIMIT);
        if kind.starts_with("web_search_") {
            calls.web_search = calls.web_search.saturating_add(most);
        } else if kind.starts_with("web_fetch_") {
            calls.web_fetch = calls.web_fetch.saturating_add(most);
        }
    }
    calls
}

/// The usage of a whole answer (a `Message`), with its server tool calls.
pub fn answer_usage(body: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
    struct Answer {
        usage: Option<wire::Usage>,
    }
    let usage = serde_json::from_slice::<Answer>(body).ok()?.usage?;
    Some(usage_of(&usage))
}

/// What one streamed event means for metering.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventInfo {
    /// The usage the event states (`message_start`'s, `message_delta`'s cumulative counts).
    pub usage: Option<wire::Usage>,
    /// The event adds generated content (`content_block_delta`).
    pub delivers_tokens: bool,
    /// The answer is complete (`message_stop`).
    pub finished: bool,
    /// The upstream reported a failure (`error`).
    pub failed: bool,
    /// A server tool's result began (`content_block_start` of a `web_search_tool_result` or
    /// `web_fetch_tool_result` that is not an error): a call Anthropic bills, counted while
    /// the stream runs in case it breaks off before stating its usage.
    pub hosted: HostedCalls,
}

/// Reads one event's data.
pub fn classify_event(data: &[u8]) -> EventInfo {
    #[derive(Deserialize)]
    struct Started {
        usage: Option<wire::Usage>,
    }
    #[derive(Deserialize)]
    struct Block {
        #[serde(rename = "type")]
        kind: String,
        /// A tool result's content: its results, or an error (`type` `…_error`).
        #[serde(default)]
        content: serde_json::Value,
    }
    #[derive(Deserialize)]
    struct Event<'a> {
        #[serde(rename = "type", borrow)]
        kind: std::borrow::Cow<'a, str>,
        message: Option<Started>,
        usage: Option<wire::Usage>,
        content_block: Option<Block>,
    }
    let Ok(event) = serde_json::from_slice::<Event<'_>>(data) else { return EventInfo::default() };
    let usage = match event.kind.as_ref() {
        "message_start" => event.message.and_then(|m| m.usage),
        "message_delta" => event.usage,
        _ => None,
    };
    // Anthropic bills a search or fetch that returned, not one that failed.
    let mut hosted = HostedCalls::default();
    let failed =
        |b: &Block| b.content.get("type").and_then(serde_json::Value::as_str).is_some_and(|t| t.ends_with("_error"));
    if let Some(block) = event.content_block.filter(|b| !failed(b)) {
        match block.kind.as_str() {
            "web_search_tool_result" => hosted.web_search = 1,
            "web_fetch_tool_result" => hosted.web_fetch = 1,
            _ => {}
        }
    }
    EventInfo {
        usage,
        delivers_tokens: event.kind == "content_block_delta",
        finished: event.kind == "message_stop",
        failed: event.kind == "error",
        hosted,
    }
}

/// The usage a stream's events stated so far (`None`: none yet).
pub fn stream_usage(usage: Option<&wire::Usage>) -> Option<Usage> {
    usage.map(usage_of)
}

/// The event that ends a stream broken off after its first byte, in Anthropic's shape.
pub fn failure_event(message: &str) -> Vec<u8> {
    let mut out = b"event: error\ndata: ".to_vec();
    out.extend_from_slice(&super::response::error_json("api_error", message));
    out.extend_from_slice(b"\n\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(tools: serde_json::Value) -> Vec<u8> {
        json!({"model": "m", "max_tokens": 10, "messages": [], "tools": tools}).to_string().into_bytes()
    }

    #[test]
    fn server_tools_are_held_for_their_max_uses_else_the_default() {
        let searches = body(json!([
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
            {"type": "web_fetch_20250910", "name": "web_fetch"},
            {"name": "get_weather", "input_schema": {"type": "object"}},
        ]));
        assert!(offers_server_tools(&searches));
        assert_eq!(hosted_ceiling(&searches), HostedCalls { web_search: 3, web_fetch: 10 });
        let unbounded = body(json!([{"type": "web_search_20250305", "name": "web_search"}]));
        assert_eq!(hosted_ceiling(&unbounded), HostedCalls { web_search: 10, web_fetch: 0 });
        let huge = body(json!([
            {"type": "web_search_20250305", "name": "a", "max_uses": u64::MAX},
            {"type": "web_search_20250305", "name": "b", "max_uses": 5},
        ]));
        assert_eq!(hosted_ceiling(&huge).web_search, u64::MAX, "saturates, never wraps");
        // A server tool billed only in tokens is still one only Anthropic runs.
        let bash = body(json!([{"type": "bash_20250124", "name": "bash"}]));
        assert!(offers_server_tools(&bash));
        assert!(hosted_ceiling(&bash).is_empty());
        let custom = body(json!([{"type": "custom", "name": "f"}, {"name": "g"}]));
        assert!(!offers_server_tools(&custom));
        assert!(hosted_ceiling(&custom).is_empty());
        assert!(!offers_server_tools(b"{\"model\": \"m\"}"));
    }

    #[test]
    fn a_forwarded_body_keeps_known_fields_and_priced_server_tools_bounded() {
        let searches = body(json!([
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
            {"type": "web_fetch_20250910", "name": "fetch", "max_content_tokens": 500},
            {"type": "bash_20250124", "name": "bash"},
            {"name": "get_weather", "input_schema": {"type": "object"}},
        ]));
        assert!(offers_priced_server_tools(&searches));
        let sent = forwarded(&searches).unwrap();
        assert_eq!(sent.dropped, ["bash"]);
        let tools: Value = serde_json::from_slice(&sent.body).unwrap();
        assert_eq!(tools["tools"].as_array().unwrap().len(), 3);
        assert_eq!(tools["tools"][0]["max_uses"], 3, "the client's own bound kept");
        assert_eq!(
            (tools["tools"][1]["max_uses"].as_u64(), tools["tools"][1]["max_content_tokens"].as_u64()),
            (Some(10), Some(500))
        );
        assert_eq!(hosted_ceiling(&sent.body), HostedCalls { web_search: 3, web_fetch: 10 });
        let mut speed: Value = serde_json::from_slice(&searches).unwrap();
        speed["speed"] = json!("fast");
        let refused = forwarded(speed.to_string().as_bytes()).unwrap_err();
        assert_eq!(refused.param, "speed");
        // A one-hour cache anywhere, however deep.
        let cached = json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "x", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}]});
        assert_eq!(forwarded(cached.to_string().as_bytes()).unwrap_err().param, "cache_control.ttl");
        let five = json!({"model": "m", "system": [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral", "ttl": "5m"}}]});
        assert!(forwarded(five.to_string().as_bytes()).is_ok());
        assert!(!offers_priced_server_tools(&body(json!([{"type": "bash_20250124", "name": "bash"}]))));
    }

    #[test]
    fn the_usage_of_an_answer_and_of_a_stream_counts_server_tool_calls() {
        let answer = br#"{"id":"msg_1","type":"message","content":[],"usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":7,"server_tool_use":{"web_search_requests":2,"web_fetch_requests":1}}}"#;
        let usage = answer_usage(answer).unwrap();
        assert_eq!((usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens), (15, 5, 7));
        assert_eq!(usage.hosted, HostedCalls { web_search: 2, web_fetch: 1 });
        assert_eq!(answer_usage(b"{}"), None);

        let start = classify_event(
            br#"{"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":10,"output_tokens":1}}}"#,
        );
        assert_eq!(start.usage.and_then(|u| u.input_tokens), Some(10));
        assert!(!start.finished && !start.delivers_tokens);
        let delta =
            classify_event(br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}"#);
        assert!(delta.delivers_tokens && delta.usage.is_none());
        let last = classify_event(
            br#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9,"server_tool_use":{"web_search_requests":3}}}"#,
        );
        let mut total = start.usage.unwrap();
        total.update(&last.usage.unwrap());
        let usage = stream_usage(Some(&total)).unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens, usage.hosted.web_search), (10, 9, 3));
        assert!(classify_event(br#"{"type":"message_stop"}"#).finished);
        let searched = classify_event(
            br#"{"type":"content_block_start","index":2,"content_block":{"type":"web_search_tool_result","tool_use_id":"srvtoolu_1","content":[{"type":"web_search_result","url":"https://example.com","title":"x"}]}}"#,
        );
        assert_eq!(searched.hosted, HostedCalls { web_search: 1, web_fetch: 0 });
        let fetched = classify_event(
            br#"{"type":"content_block_start","index":3,"content_block":{"type":"web_fetch_tool_result","tool_use_id":"srvtoolu_2","content":{"type":"web_fetch_result","url":"https://example.com"}}}"#,
        );
        assert_eq!(fetched.hosted, HostedCalls { web_search: 0, web_fetch: 1 });
        let failed_fetch = classify_event(
            br#"{"type":"content_block_start","index":3,"content_block":{"type":"web_fetch_tool_result","tool_use_id":"srvtoolu_4","content":{"type":"web_fetch_tool_error","error_code":"url_not_accessible"}}}"#,
        );
        assert!(failed_fetch.hosted.is_empty());
        let failed_search = classify_event(
            br#"{"type":"content_block_start","index":2,"content_block":{"type":"web_search_tool_result","tool_use_id":"srvtoolu_3","content":{"type":"web_search_tool_result_error","error_code":"max_uses_exceeded"}}}"#,
        );
        assert!(failed_search.hosted.is_empty(), "a failed search is not billed");
        let asked = classify_event(
            br#"{"type":"content_block_start","index":1,"content_block":{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{}}}"#,
        );
        assert!(asked.hosted.is_empty(), "counted when its result comes");
        assert!(classify_event(br#"{"type":"error","error":{"type":"overloaded_error","message":"x"}}"#).failed);
        assert_eq!(classify_event(b"not json"), EventInfo::default());
        let failure = String::from_utf8(failure_event("cut")).unwrap();
        assert!(failure.starts_with("event: error\ndata: {") && failure.contains("\"cut\""), "{failure}");
    }
}
