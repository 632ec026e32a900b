//! A JSON object whose top-level values stay as raw text, so that a body forwarded to an
//! OpenAI-compatible upstream keeps every field the gateway does not model, byte for byte,
//! while the few it does model (`model`, `stream_options`) can be read and replaced.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

#[derive(Debug, Clone, Default)]
pub struct RawObject<'a> {
    fields: Vec<(Cow<'a, str>, Cow<'a, RawValue>)>,
}

/// The JSON type of a raw value, read from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

pub fn kind_of(value: &RawValue) -> JsonKind {
    match value.get().as_bytes().first() {
        Some(b'n') => JsonKind::Null,
        Some(b't' | b'f') => JsonKind::Bool,
        Some(b'"') => JsonKind::String,
        Some(b'[') => JsonKind::Array,
        Some(b'{') => JsonKind::Object,
        _ => JsonKind::Number,
    }
}

impl<'a> RawObject<'a> {
    /// Parses `bytes` as a JSON object; anything else (array, number, bad JSON) is an error.
    pub fn parse(bytes: &'a [u8]) -> Result<RawObject<'a>, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The value of `key` (the last one, if the key is repeated, as JSON parsers do).
    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.fields.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_ref())
    }

    /// Replaces every occurrence of `key`, or appends it when absent.
    pub fn set(&mut self, key: &'a str, value: Box<RawValue>) {
        self.fields.retain(|(k, _)| k != key);
        self.fields.push((Cow::Borrowed(key), Cow::Owned(value)));
    }

    pub fn remove(&mut self, key: &str) {
        self.fields.retain(|(k, _)| k != key);
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(k, _)| k.as_ref())
    }

    /// Serializes the object again; untouched values are copied verbatim.
    pub fn to_vec(&self) -> Vec<u8> {
        let size: usize = self.fields.iter().map(|(k, v)| k.len() + v.get().len() + 4).sum();
        let mut out = Vec::with_capacity(size + 2);
        out.push(b'{');
        for (i, (key, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json_string(&mut out, key);
            out.push(b':');
            out.extend_from_slice(value.get().as_bytes());
        }
        out.push(b'}');
        out
    }
}

/// Appends `text` as a JSON string literal.
pub fn write_json_string(out: &mut Vec<u8>, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else if let Ok(quoted) = serde_json::to_vec(text) {
        out.extend_from_slice(&quoted);
    }
}

/// JSON text without the whitespace between its tokens (strings untouched): how OpenAI
/// sends tool-call arguments, reached without reparsing (which would reorder keys and
/// round numbers).
pub fn compact_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

/// A raw JSON string literal for `text`.
pub fn raw_string(text: &str) -> Box<RawValue> {
    let mut out = Vec::with_capacity(text.len() + 2);
    write_json_string(&mut out, text);
    raw_from_vec(out)
}

/// Wraps serialized JSON produced by this crate; falls back to `null` if it is not JSON.
pub fn raw_from_vec(json: Vec<u8>) -> Box<RawValue> {
    String::from_utf8(json).ok().and_then(|s| RawValue::from_string(s).ok()).unwrap_or_else(null_raw)
}

fn null_raw() -> Box<RawValue> {
    serde_json::value::to_raw_value(&()).unwrap_or_default()
}

#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de> Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    fields.push((key, Cow::Borrowed(value)));
                }
                Ok(RawObject { fields })
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_unknown_fields_verbatim() {
        let body = br#"{"model":"a","weird":{"x":[1,2.50,"\u00e9"]},"n":1}"#;
        let mut obj = RawObject::parse(body).unwrap();
        obj.set("model", raw_string("upstream-a"));
        let out = String::from_utf8(obj.to_vec()).unwrap();
        assert_eq!(out, r#"{"weird":{"x":[1,2.50,"\u00e9"]},"n":1,"model":"upstream-a"}"#);
    }

    #[test]
    fn rejects_non_objects_and_reads_kinds() {
        assert!(RawObject::parse(b"[1]").is_err());
        assert!(RawObject::parse(b"{\"a\":").is_err());
        let obj = RawObject::parse(br#"{"a":null,"b":true,"c":1,"d":"s","e":[],"f":{},"a\"q":2}"#).unwrap();
        let kinds: Vec<_> = ["a", "b", "c", "d", "e", "f"].iter().map(|k| kind_of(obj.get(k).unwrap())).collect();
        use JsonKind as K;
        assert_eq!(kinds, vec![K::Null, K::Bool, K::Number, K::String, K::Array, K::Object]);
        assert!(obj.get("a\"q").is_some(), "escaped keys are decoded");
        assert!(obj.to_vec().starts_with(br#"{"a":null"#));
        assert!(String::from_utf8(obj.to_vec()).unwrap().contains(r#""a\"q":2"#));
    }
}
