//! Deterministic content shared by every wire format: the tokenizer, the reply text,
//! tool-call arguments built from a JSON schema, and how text and arguments are split
//! for streaming.

use std::ops::Range;

use serde_json::{Map, Value};

/// The mock's tokenizer: the number of whitespace-separated words in `text`.
pub fn count_tokens(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The words replies are made of, cycled.
const VOCABULARY: &[&str] = &[
    "Hello",
    "from",
    "the",
    "mock",
    "upstream",
    "this",
    "reply",
    "is",
    "deterministic",
    "and",
    "cheap",
    "to",
    "produce",
    "so",
    "benchmarks",
    "measure",
    "only",
    "gateway",
    "overhead",
    "with",
    "every",
    "token",
];

/// A reply of `len` words: a seed word taken from the prompt, then the vocabulary cycled
/// from an offset that also depends on the prompt. Words never contain whitespace, so
/// `count_tokens(&reply.text()) == reply.len()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    seed: String,
    offset: usize,
    len: u64,
}

impl Reply {
    /// A reply to `prompt` (the text the reply should react to), `len` words long.
    pub(crate) fn new(prompt: &str, len: u64) -> Reply {
        let seed: String = prompt
            .split_whitespace()
            .map(|w| w.chars().filter(|c| c.is_alphanumeric()).collect::<String>())
            .find(|w| !w.is_empty())
            .unwrap_or_else(|| VOCABULARY[0].to_owned());
        let offset = (fnv1a(prompt.as_bytes()) % VOCABULARY.len() as u64) as usize;
        Reply { seed, offset, len }
    }

    /// Number of words (tokens).
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The `i`-th word (0-based; `i < len`).
    pub(crate) fn word(&self, i: u64) -> &str {
        match i {
            0 => &self.seed,
            _ => VOCABULARY[(self.offset + (i as usize - 1)) % VOCABULARY.len()],
        }
    }

    /// The words joined by single spaces.
    pub(crate) fn text(&self) -> String {
        let mut text = String::with_capacity(self.len as usize * 8);
        for i in 0..self.len {
            if i > 0 {
                text.push(' ');
            }
            text.push_str(self.word(i));
        }
        text
    }
}

/// 64-bit FNV-1a: a stable hash, so replies do not change between Rust releases.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Arguments for a function whose parameters follow JSON `schema`: an object with every
/// `required` property set to a deterministic value of its type (string `"mock"` or the
/// first `enum` value, number 1, boolean true, array `[]`, nested objects likewise).
/// Type names are case-insensitive (Gemini's schemas say `OBJECT`, `STRING`). Always an
/// object, even when the schema is missing or not an object schema.
pub(crate) fn tool_arguments(schema: &Value) -> Value {
    match value_for(schema, 0) {
        object @ Value::Object(_) => object,
        _ => Value::Object(Map::new()),
    }
}

fn value_for(schema: &Value, depth: u32) -> Value {
    if let Some(first) = schema.get("enum").and_then(Value::as_array).and_then(|e| e.first()) {
        return first.clone();
    }
    let kind = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(types)) => {
            types.iter().filter_map(Value::as_str).find(|t| !t.eq_ignore_ascii_case("null")).unwrap_or("null")
        }
        _ if schema.get("properties").is_some() => "object",
        _ => "string",
    };
    match kind.to_ascii_lowercase().as_str() {
        "object" if depth < 8 => {
            let properties = schema.get("properties");
            let required = schema.get("required").and_then(Value::as_array);
            let map: Map<String, Value> = required
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|name| {
                    let property = properties.and_then(|p| p.get(name)).unwrap_or(&Value::Null);
                    (name.to_owned(), value_for(property, depth + 1))
                })
                .collect();
            Value::Object(map)
        }
        "object" => Value::Object(Map::new()),
        "number" | "integer" => Value::from(1),
        "boolean" => Value::Bool(true),
        "array" => Value::Array(Vec::new()),
        "null" => Value::Null,
        _ => Value::from("mock"),
    }
}

/// Splits serialized arguments into the byte ranges a stream sends as fragments: pieces
/// of at most 12 bytes, and always at least two (arguments are at least `{}`).
pub(crate) fn argument_fragments(arguments: &str) -> Vec<Range<usize>> {
    const FRAGMENT_BYTES: usize = 12;
    let size = FRAGMENT_BYTES.min(arguments.len().div_ceil(2)).max(1);
    let mut fragments = Vec::with_capacity(arguments.len() / size + 1);
    let mut start = 0;
    while start < arguments.len() {
        let mut end = (start + size).min(arguments.len());
        while !arguments.is_char_boundary(end) {
            end += 1;
        }
        fragments.push(start..end);
        start = end;
    }
    fragments
}

/// The next piece a stream sends of `text`, starting at byte `from`: the whitespace
/// before a word and the word, with the number of tokens it holds (1, or 0 for trailing
/// whitespace). `None` at the end. The pieces concatenate back to `text`.
pub(crate) fn next_piece(text: &str, from: usize) -> Option<(Range<usize>, u64)> {
    let rest = text.get(from..).filter(|r| !r.is_empty())?;
    let Some(word) = rest.find(|c: char| !c.is_whitespace()) else {
        return Some((from..text.len(), 0));
    };
    let end = rest[word..].find(char::is_whitespace).map_or(text.len(), |e| from + word + e);
    Some((from..end, 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_whitespace_separated_words() {
        assert_eq!(count_tokens(""), 0);
        assert_eq!(count_tokens("  Hello,\n world \t again "), 3);
    }

    #[test]
    fn replies_are_deterministic_and_prompt_dependent() {
        let a = Reply::new("Why is the sky blue?", 16);
        assert_eq!(a, Reply::new("Why is the sky blue?", 16));
        assert_eq!(a.word(0), "Why");
        assert_eq!(count_tokens(&a.text()), 16);
        assert_ne!(a.text(), Reply::new("Tell me a joke", 16).text());
        assert_eq!(Reply::new("", 2).word(0), "Hello");
        assert_eq!(Reply::new("  ?? ", 0).text(), "");
    }

    #[test]
    fn arguments_follow_the_schema() {
        let schema = json!({
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
                "exact": {"type": ["boolean", "null"]},
                "tags": {"type": "array", "items": {"type": "string"}},
                "where": {"type": "object", "properties": {"lat": {"type": "number"}}, "required": ["lat"]},
                "optional": {"type": "string"}
            },
            "required": ["city", "unit", "days", "exact", "tags", "where"]
        });
        assert_eq!(
            tool_arguments(&schema),
            json!({"city": "mock", "unit": "celsius", "days": 1, "exact": true, "tags": [], "where": {"lat": 1}})
        );
        assert_eq!(tool_arguments(&json!({"type": "object"})), json!({}));
        let gemini = json!({"type": "OBJECT", "properties": {"n": {"type": "INTEGER"}}, "required": ["n"]});
        assert_eq!(tool_arguments(&gemini), json!({"n": 1}));
        assert_eq!(tool_arguments(&Value::Null), json!({}));
    }

    #[test]
    fn fragments_concatenate_back() {
        for args in ["{}", r#"{"city":"mock","days":1}"#, r#"{"naïve":"é"}"#] {
            let parts: Vec<&str> = argument_fragments(args).into_iter().map(|r| &args[r]).collect();
            assert!(parts.len() >= 2, "{args}: {parts:?}");
            assert_eq!(parts.concat(), args);
        }
    }

    #[test]
    fn pieces_are_words_with_leading_whitespace() {
        fn pieces(text: &str) -> Vec<(&str, u64)> {
            let mut out = Vec::new();
            let mut at = 0;
            while let Some((range, tokens)) = next_piece(text, at) {
                at = range.end;
                out.push((&text[range], tokens));
            }
            out
        }
        assert_eq!(pieces("Hello from  the"), [("Hello", 1), (" from", 1), ("  the", 1)]);
        assert_eq!(pieces(" é x "), [(" é", 1), (" x", 1), (" ", 0)]);
        assert!(pieces("").is_empty());
    }
}
