//! Token estimates for admission. A request body's byte count bounds its prompt tokens
//! from above (every token is at least one byte), so the exact count — tiktoken's
//! o200k_base over the text of the messages and tools — is only computed for requests
//! whose bound comes near the model's context window. Rate limits count as OpenAI's
//! limiter does: the prompt's characters ÷ 4 ([`prompt_estimate`]).

use serde_json::Value;
use serde_json::value::RawValue;
use tokenrouter_providers::passthrough::RawObject;

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

/// The prompt tokens a request counts against its key's TPM limit, as OpenAI's rate
/// limiter counts them: the characters of the prompt's text ÷ 4, rounded up.
///
/// The text is every string value (not object keys, not JSON punctuation, numbers or
/// booleans) inside the body's `messages`, `tools` and (embeddings) `input` — so roles,
/// contents, tool names, descriptions and parameter schemas' string values — except
/// strings starting with `data:` (inline images and files). A JSON escape (`\n`,
/// `\u00e9`) is one character; characters are Unicode scalar values. An embeddings
/// `input` given as token ids adds one token per id. Other fields (`model`, `max_tokens`,
/// …) and a body that is not a JSON object count 0. No JSON tree is built: the raw
/// values are scanned byte by byte.
pub fn prompt_estimate(body: &[u8]) -> u64 {
    RawObject::parse(body).map_or(0, |object| prompt_estimate_of(&object))
}

/// [`prompt_estimate`] of a body already parsed (not parsed again).
pub fn prompt_estimate_of(object: &RawObject<'_>) -> u64 {
    let (mut prompt, mut input) = (Text::default(), Text::default());
    for value in [object.get("messages"), object.get("tools")].into_iter().flatten() {
        prompt.scan(value);
    }
    if let Some(value) = object.get("input") {
        input.scan(value);
    }
    prompt.chars.saturating_add(input.chars).div_ceil(4).saturating_add(input.numbers)
}

/// What [`prompt_estimate`] counts in raw JSON values.
#[derive(Debug, Default)]
struct Text {
    /// Characters of string values (keys and `data:` strings excepted).
    chars: u64,
    /// Numbers (token ids, in an embeddings `input`).
    numbers: u64,
}

impl Text {
    fn scan(&mut self, value: &RawValue) {
        let bytes = value.get().as_bytes();
        let mut at = 0;
        while at < bytes.len() {
            let Some(quote) = memchr::memchr(b'"', &bytes[at..]).map(|i| at + i) else {
                self.count_numbers(&bytes[at..]);
                break;
            };
            self.count_numbers(&bytes[at..quote]);
            let (chars, end) = string_chars(bytes, quote + 1);
            let is_key = bytes[end..].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b':');
            if !is_key && !bytes[quote + 1..].starts_with(b"data:") {
                self.chars = self.chars.saturating_add(chars);
            }
            at = end;
        }
    }

    /// Counts the numbers in JSON text between strings.
    fn count_numbers(&mut self, between: &[u8]) {
        let mut in_number = false;
        for b in between {
            in_number = if in_number {
                b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E')
            } else {
                let starts = b.is_ascii_digit() || *b == b'-';
                self.numbers += u64::from(starts);
                starts
            };
        }
    }
}

/// The characters of the JSON string whose text starts at `start` (just after its opening
/// quote), and the index just past its closing quote. Escapes count one character each.
fn string_chars(bytes: &[u8], start: usize) -> (u64, usize) {
    let mut chars = 0u64;
    let mut at = start;
    loop {
        let Some(stop) = memchr::memchr2(b'"', b'\\', &bytes[at..]).map(|i| at + i) else {
            return (chars + utf8_chars(&bytes[at..]), bytes.len());
        };
        chars += utf8_chars(&bytes[at..stop]);
        if bytes[stop] == b'"' {
            return (chars, stop + 1);
        }
        // An escape: `\uXXXX` or a backslash and one character.
        chars += 1;
        at = if bytes.get(stop + 1) == Some(&b'u') { stop + 6 } else { stop + 2 }.min(bytes.len());
    }
}

/// Unicode scalar values in valid UTF-8: the bytes that do not continue a character.
fn utf8_chars(bytes: &[u8]) -> u64 {
    let chars = bytes.iter().filter(|b| (**b & 0xC0) != 0x80).count();
    u64::try_from(chars).unwrap_or(u64::MAX)
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

    #[test]
    fn the_estimate_counts_the_characters_of_string_values_over_4() {
        // "user" (4) + "Hello, world!" (13) = 17 characters: 5 tokens. Keys, `model`,
        // `max_tokens` and punctuation are not text.
        let body = br#"{"model":"gpt-4o","max_tokens":900,"messages":[{"role":"user","content":"Hello, world!"}]}"#;
        assert_eq!(prompt_estimate(body), 5);
        // 4 + 396 = 400 characters: exactly 100 tokens; one more character makes 101.
        let exact = |n: usize| format!(r#"{{"messages":[{{"role":"user","content":"{}"}}]}}"#, "x".repeat(n));
        assert_eq!(prompt_estimate(exact(396).as_bytes()), 100);
        assert_eq!(prompt_estimate(exact(397).as_bytes()), 101);
        // Escapes are one character each; non-ASCII characters are one each, not their bytes.
        let escaped = r#"{"messages":[{"role":"user","content":"a\n\"b\u00e9\\ é日本"}]}"#.as_bytes();
        assert_eq!(prompt_estimate(escaped), (4 + 10_u64).div_ceil(4));
        // Content parts: the type tag is text, the image's data URL is not; whitespace
        // between values is not text either.
        let image = format!(
            r#"{{"messages": [ {{"role": "user", "content": [{{"type": "text", "text": "look"}}, {{"type": "image_url", "image_url": {{"url": "data:image/png;base64,{}"}}}}]}} ]}}"#,
            "A".repeat(10_000)
        );
        assert_eq!(prompt_estimate(image.as_bytes()), (4 + 4 + 4 + 9_u64).div_ceil(4));
        // Tools: names, descriptions and the schema's string values.
        let tools = br#"{"messages":[],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]}"#;
        assert_eq!(prompt_estimate(tools), (8 + 11 + 6 + 6_u64).div_ceil(4));
    }

    #[test]
    fn embeddings_count_their_input_and_token_ids() {
        assert_eq!(prompt_estimate(br#"{"model":"e","input":"twelve chars"}"#), 3);
        assert_eq!(prompt_estimate(br#"{"model":"e","input":["abcd","efgh","i"]}"#), 3);
        assert_eq!(prompt_estimate(br#"{"model":"e","input":[[1,22,-333],[4e2]],"dimensions":8}"#), 4);
        assert_eq!(prompt_estimate(b"not json"), 0);
        assert_eq!(prompt_estimate(b"[1,2,3]"), 0);
    }
}
