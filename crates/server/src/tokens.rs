//! Token estimates for admission. A request body's byte count bounds its prompt tokens
//! from above (every token is at least one byte), so the exact count — tiktoken's
//! o200k_base over the text of the messages and tools — is only computed for requests
//! whose bound comes near the model's context window.

use serde_json::Value;

/// Framing tokens each message costs beyond its text (OpenAI's documented estimate).
const PER_MESSAGE: u64 = 4;

/// A cheap upper bound on a chat body's prompt tokens.
pub fn prompt_upper_bound(body: &[u8]) -> u64 {
    u64::try_from(body.len()).unwrap_or(u64::MAX)
}

/// The prompt tokens to reserve for, without parsing: a third of the body's bytes
/// (text runs 3–4 bytes a token; JSON framing makes this an overestimate), not counting
/// inline `data:` payloads (images are billed by size class, not by their base64 length).
/// Usage above the estimate is still charged at settlement.
pub fn reservation_estimate(body: &[u8]) -> u64 {
    let mut skipped = 0;
    for start in memchr::memmem::find_iter(body, b"\"data:") {
        let rest = &body[start + 1..];
        skipped += memchr::memchr(b'"', rest).unwrap_or(rest.len());
    }
    u64::try_from(body.len().saturating_sub(skipped).div_ceil(3)).unwrap_or(u64::MAX)
}

/// The prompt tokens of a chat body, counted with o200k_base: every string of the
/// messages and tools except image data, plus framing per message.
pub fn count_prompt(body: &[u8]) -> u64 {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return prompt_upper_bound(body);
    };
    let mut text = String::new();
    let mut messages = 0;
    if let Some(list) = value.get("messages").and_then(Value::as_array) {
        messages = list.len();
        for message in list {
            collect_text(message, &mut text);
        }
    }
    if let Some(tools) = value.get("tools") {
        collect_text(tools, &mut text);
    }
    let bpe = tiktoken_rs::o200k_base_singleton();
    let tokens = bpe.encode_ordinary(&text).len();
    u64::try_from(tokens).unwrap_or(u64::MAX) + PER_MESSAGE * u64::try_from(messages).unwrap_or(0)
}

fn collect_text(value: &Value, out: &mut String) {
    match value {
        Value::String(s) if !s.starts_with("data:") => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(items) => items.iter().for_each(|v| collect_text(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_text(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_bounded_by_bytes_and_skip_image_data() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"Hello, world! How are you today?"}]}"#;
        let counted = count_prompt(body);
        assert!(counted > 4 && counted < 20, "{counted}");
        assert!(counted <= prompt_upper_bound(body));
        let image = format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"image_url","image_url":{{"url":"data:image/png;base64,{}"}}}}]}}]}}"#,
            "A".repeat(10_000)
        );
        assert!(count_prompt(image.as_bytes()) < 30, "image bytes are not text tokens");
        assert!(reservation_estimate(image.as_bytes()) < 100, "nor are they reserved for");
        assert_eq!(reservation_estimate(b"123456789"), 3);
    }
}
