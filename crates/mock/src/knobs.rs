//! The mock's knobs: server-wide [`MockConfig`], the [`Fault`] it can inject, and the
//! per-request overrides a client sends in the body's `"mock"` object or in the model
//! name (`name@key=value,key=value`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;

/// How the mock behaves. Every field can be overridden per request (see [`MockConfig::with_overrides`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockConfig {
    /// Delay before the response head, in milliseconds.
    pub latency_ms: u64,
    /// Pacing of stream chunks (one token per chunk); 0 = as fast as possible.
    pub tokens_per_second: u64,
    /// Length of the reply in tokens (words), unless the request's `max_tokens` is smaller.
    pub reply_tokens: u64,
    /// A failure to inject instead of (or in the middle of) the answer.
    pub fault: Option<Fault>,
    /// The `Retry-After` header sent with [`Fault::Status429`], in seconds.
    pub retry_after_secs: u64,
    /// Reported as `usage.prompt_tokens_details.cached_tokens` (capped at the prompt's tokens).
    pub cached_tokens: u64,
    /// Reported as Anthropic's `usage.cache_creation_input_tokens` (capped at the prompt's
    /// tokens not read from the cache); the other wire formats have no such field.
    pub cache_write_tokens: u64,
    /// The most tool calls in one turn: a forced call (`required`, `any`, `ANY`) with parallel
    /// calls allowed calls the first `calls` functions, any other call the first one; 0 means
    /// the model never calls a tool.
    pub calls: u64,
    /// Web searches the answer reports as run and billed (Anthropic
    /// `usage.server_tool_use.web_search_requests`, OpenAI Responses `web_search_call`
    /// output items, Gemini `groundingMetadata.webSearchQueries`); 0 reports none.
    pub web_searches: u64,
    /// Acting as a community instance (required key, model list, usage, whole-server
    /// failures); off by default, changeable while the server runs. Not a per-request knob.
    pub instance: crate::instance::InstanceKnobs,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            latency_ms: 0,
            tokens_per_second: 0,
            reply_tokens: 16,
            fault: None,
            retry_after_secs: 1,
            cached_tokens: 0,
            cache_write_tokens: 0,
            calls: 2,
            web_searches: 0,
            instance: crate::instance::InstanceKnobs::default(),
        }
    }
}

/// A failure the mock injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer 500 with the wire format's error body.
    Status500,
    /// Answer 429 with a `Retry-After` header.
    Status429,
    /// Read the request and never answer, until the client goes away.
    Hang,
    /// Close the connection without a response.
    Reset,
    /// Stream `after_tokens` token chunks, then half of the next event, then abort the
    /// connection. Non-stream requests are treated like [`Fault::Reset`].
    CutStream { after_tokens: u64 },
    /// Answer "overloaded": 529 `overloaded_error` (Anthropic), 503 (OpenAI, Gemini).
    Overloaded,
    /// Stream one token, then the wire format's in-stream error event, then end the
    /// stream. Non-stream requests are treated like [`Fault::Overloaded`].
    StreamError,
    /// Answer without content as if a safety filter blocked it: Gemini `finishReason:
    /// "SAFETY"`, Anthropic `stop_reason: "refusal"`, OpenAI `finish_reason: "content_filter"`.
    Safety,
    /// Answer 400 with the wire format's `invalid_request_error` body, its message padded
    /// to `message_bytes` bytes (`400`: a short message; `400:N`: N bytes).
    Status400 { message_bytes: u64 },
}

/// A fault name that is not one of `500`, `429`, `400`, `400:N`, `overloaded`, `hang`,
/// `reset`, `cut`, `cut:N`, `stream_error`, `safety`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown fault {0:?}: expected 500, 429, 400, 400:N, overloaded, hang, reset, cut, cut:N, stream_error or safety"
)]
pub struct ParseFaultError(String);

impl FromStr for Fault {
    type Err = ParseFaultError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "500" => Ok(Fault::Status500),
            "429" => Ok(Fault::Status429),
            "hang" => Ok(Fault::Hang),
            "reset" => Ok(Fault::Reset),
            "overloaded" => Ok(Fault::Overloaded),
            "stream_error" => Ok(Fault::StreamError),
            "safety" => Ok(Fault::Safety),
            "cut" => Ok(Fault::CutStream { after_tokens: 2 }),
            "400" => Ok(Fault::Status400 { message_bytes: 0 }),
            _ => {
                let cut = s.strip_prefix("cut:").and_then(|n| n.parse().ok());
                let big = s.strip_prefix("400:").and_then(|n| n.parse().ok());
                match (cut, big) {
                    (Some(after_tokens), _) => Ok(Fault::CutStream { after_tokens }),
                    (_, Some(message_bytes)) => Ok(Fault::Status400 { message_bytes }),
                    _ => Err(ParseFaultError(s.to_owned())),
                }
            }
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Status500 => f.write_str("500"),
            Fault::Status429 => f.write_str("429"),
            Fault::Hang => f.write_str("hang"),
            Fault::Reset => f.write_str("reset"),
            Fault::CutStream { after_tokens } => write!(f, "cut:{after_tokens}"),
            Fault::Overloaded => f.write_str("overloaded"),
            Fault::StreamError => f.write_str("stream_error"),
            Fault::Safety => f.write_str("safety"),
            Fault::Status400 { message_bytes: 0 } => f.write_str("400"),
            Fault::Status400 { message_bytes } => write!(f, "400:{message_bytes}"),
        }
    }
}

impl MockConfig {
    /// This config with the request body's `"mock"` object applied, if there is one.
    ///
    /// Keys: `latency_ms`, `tokens_per_second`, `reply_tokens`, `retry_after_secs`,
    /// `cached_tokens`, `cache_write_tokens`, `calls`, `web_searches` (non-negative integers) and `fault` (a [`Fault`] string, or
    /// `null`/`"none"` to clear a configured fault). Anything else is an error whose
    /// message names the offending key.
    pub fn with_overrides(&self, body: &Value) -> Result<MockConfig, String> {
        let mut knobs = self.clone();
        let overrides = match body.get("mock") {
            None | Some(Value::Null) => return Ok(knobs),
            Some(Value::Object(map)) => map,
            Some(_) => return Err("`mock` must be an object of knob overrides".to_owned()),
        };
        for (key, value) in overrides {
            knobs.set(&format!("mock.{key}"), key, value)?;
        }
        Ok(knobs)
    }

    /// This config with the knobs of a model name `name@key=value,key=value` applied
    /// (the keys and values of [`MockConfig::with_overrides`], e.g.
    /// `mock-gpt@fault=500,latency_ms=20`); a name without such a suffix changes nothing.
    pub fn with_model_knobs(&self, model: &str) -> Result<MockConfig, String> {
        let mut knobs = self.clone();
        let Some(list) = split_model(model).1 else {
            return Ok(knobs);
        };
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let Some((key, raw)) = item.split_once('=') else {
                return Err(format!("mock knob `{item}` in model name {model:?} must be key=value"));
            };
            let (key, raw) = (key.trim(), raw.trim());
            let value = raw.parse::<u64>().map_or_else(|_| Value::from(raw), Value::from);
            knobs.set(key, key, &value).map_err(|e| format!("model name {model:?}: {e}"))?;
        }
        Ok(knobs)
    }

    /// Sets knob `key` (called `name` in error messages).
    fn set(&mut self, name: &str, key: &str, value: &Value) -> Result<(), String> {
        let number = || value.as_u64().ok_or_else(|| format!("`{name}` must be a non-negative integer"));
        match key {
            "latency_ms" => self.latency_ms = number()?,
            "tokens_per_second" => self.tokens_per_second = number()?,
            "reply_tokens" => self.reply_tokens = number()?,
            "retry_after_secs" => self.retry_after_secs = number()?,
            "cached_tokens" => self.cached_tokens = number()?,
            "cache_write_tokens" => self.cache_write_tokens = number()?,
            "calls" => self.calls = number()?,
            "web_searches" => self.web_searches = number()?,
            "fault" => {
                self.fault = match value {
                    Value::Null => None,
                    Value::String(s) if s == "none" => None,
                    Value::String(s) => Some(s.parse().map_err(|e| format!("`{name}`: {e}"))?),
                    // `fault=500` in a model name, or `"fault": 500` in a body.
                    Value::Number(n) => Some(n.to_string().parse().map_err(|e| format!("`{name}`: {e}"))?),
                    _ => return Err(format!("`{name}` must be a string")),
                }
            }
            _ => return Err(format!("unknown mock knob `{name}`")),
        }
        Ok(())
    }

    /// The delay before the response head.
    pub(crate) fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms)
    }

    /// The time between two token chunks, if streams are paced.
    pub(crate) fn token_interval(&self) -> Option<Duration> {
        (self.tokens_per_second > 0)
            .then(|| Duration::from_secs(1) / u32::try_from(self.tokens_per_second).unwrap_or(u32::MAX))
    }
}

/// Splits a model name into the model it reports and its knob list: `claude@fault=500`
/// is `("claude", Some("fault=500"))`. A suffix without `=` is part of the name
/// (`claude-3-5-sonnet@20240620` has no knobs).
pub(crate) fn split_model(model: &str) -> (&str, Option<&str>) {
    match model.rsplit_once('@') {
        Some((name, list)) if list.contains('=') => (name, Some(list)),
        _ => (model, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fault_strings_round_trip() {
        for s in [
            "500",
            "429",
            "400",
            "400:70000",
            "hang",
            "reset",
            "cut:2",
            "cut:0",
            "overloaded",
            "stream_error",
            "safety",
        ] {
            assert_eq!(s.parse::<Fault>().unwrap().to_string(), s);
        }
        assert_eq!("cut".parse::<Fault>().unwrap(), Fault::CutStream { after_tokens: 2 });
        assert!("cut:x".parse::<Fault>().is_err());
        assert!("503".parse::<Fault>().is_err());
    }

    #[test]
    fn overrides_apply_and_reject_typos() {
        let base = MockConfig { fault: Some(Fault::Hang), ..MockConfig::default() };
        let k = base.with_overrides(&json!({"mock": {"reply_tokens": 3, "fault": null, "latency_ms": 5}})).unwrap();
        assert_eq!((k.reply_tokens, k.fault, k.latency_ms), (3, None, 5));
        let k = base.with_overrides(&json!({"mock": {"fault": "cut:7"}})).unwrap();
        assert_eq!(k.fault, Some(Fault::CutStream { after_tokens: 7 }));
        assert_eq!(base.with_overrides(&json!({"model": "x"})).unwrap(), base);
        assert!(base.with_overrides(&json!({"mock": {"reply_token": 3}})).is_err());
        assert!(base.with_overrides(&json!({"mock": {"reply_tokens": -1}})).is_err());
        assert!(base.with_overrides(&json!({"mock": "fast"})).is_err());
    }

    #[test]
    fn model_name_knobs() {
        let base = MockConfig::default();
        assert_eq!(split_model("mock-gpt"), ("mock-gpt", None));
        assert_eq!(split_model("claude@20240620"), ("claude@20240620", None));
        assert_eq!(split_model("claude@v1@fault=cut:3,latency_ms=2"), ("claude@v1", Some("fault=cut:3,latency_ms=2")));
        let k = base.with_model_knobs("m@fault=cut:3, latency_ms=20,tokens_per_second=50").unwrap();
        assert_eq!((k.fault, k.latency_ms, k.tokens_per_second), (Some(Fault::CutStream { after_tokens: 3 }), 20, 50));
        assert_eq!(base.with_model_knobs("claude@20240620").unwrap(), base);
        assert_eq!(base.with_model_knobs("m@calls=1").unwrap().calls, 1);
        assert_eq!(base.with_model_knobs("m@cache_write_tokens=7").unwrap().cache_write_tokens, 7);
        let k = base.with_model_knobs("m@fault=500").unwrap();
        assert_eq!(k.fault, Some(Fault::Status500));
        let cleared = MockConfig { fault: Some(Fault::Hang), ..MockConfig::default() };
        assert_eq!(cleared.with_model_knobs("m@fault=none").unwrap().fault, None);
        for bad in ["m@speed=3", "m@latency_ms=fast", "m@fault=9", "m@x=1,latency_ms"] {
            assert!(base.with_model_knobs(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pacing_interval() {
        let k = MockConfig { tokens_per_second: 100, ..MockConfig::default() };
        assert_eq!(k.token_interval(), Some(Duration::from_millis(10)));
        assert_eq!(MockConfig::default().token_interval(), None);
    }
}
