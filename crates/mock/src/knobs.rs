//! The mock's knobs: server-wide [`MockConfig`], the [`Fault`] it can inject, and the
//! per-request overrides a client sends in the body's `"mock"` object.

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
}

/// A fault name that is not one of `500`, `429`, `hang`, `reset`, `cut`, `cut:N`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault {0:?}: expected 500, 429, hang, reset, cut or cut:N")]
pub struct ParseFaultError(String);

impl FromStr for Fault {
    type Err = ParseFaultError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "500" => Ok(Fault::Status500),
            "429" => Ok(Fault::Status429),
            "hang" => Ok(Fault::Hang),
            "reset" => Ok(Fault::Reset),
            "cut" => Ok(Fault::CutStream { after_tokens: 2 }),
            _ => s
                .strip_prefix("cut:")
                .and_then(|n| n.parse().ok())
                .map(|after_tokens| Fault::CutStream { after_tokens })
                .ok_or_else(|| ParseFaultError(s.to_owned())),
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
        }
    }
}

impl MockConfig {
    /// This config with the request body's `"mock"` object applied, if there is one.
    ///
    /// Keys: `latency_ms`, `tokens_per_second`, `reply_tokens`, `retry_after_secs`,
    /// `cached_tokens` (non-negative integers) and `fault` (a [`Fault`] string, or
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
            let number = || {
                value
                    .as_u64()
                    .ok_or_else(|| format!("`mock.{key}` must be a non-negative integer"))
            };
            match key.as_str() {
                "latency_ms" => knobs.latency_ms = number()?,
                "tokens_per_second" => knobs.tokens_per_second = number()?,
                "reply_tokens" => knobs.reply_tokens = number()?,
                "retry_after_secs" => knobs.retry_after_secs = number()?,
                "cached_tokens" => knobs.cached_tokens = number()?,
                "fault" => {
                    knobs.fault = match value {
                        Value::Null => None,
                        Value::String(s) if s == "none" => None,
                        Value::String(s) => {
                            Some(s.parse().map_err(|e| format!("`mock.fault`: {e}"))?)
                        }
                        _ => return Err("`mock.fault` must be a string".to_owned()),
                    }
                }
                _ => return Err(format!("unknown mock knob `mock.{key}`")),
            }
        }
        Ok(knobs)
    }

    /// The delay before the response head.
    pub(crate) fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms)
    }

    /// The time between two token chunks, if streams are paced.
    pub(crate) fn token_interval(&self) -> Option<Duration> {
        (self.tokens_per_second > 0).then(|| {
            Duration::from_secs(1) / u32::try_from(self.tokens_per_second).unwrap_or(u32::MAX)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fault_strings_round_trip() {
        for s in ["500", "429", "hang", "reset", "cut:2", "cut:0"] {
            assert_eq!(s.parse::<Fault>().unwrap().to_string(), s);
        }
        assert_eq!(
            "cut".parse::<Fault>().unwrap(),
            Fault::CutStream { after_tokens: 2 }
        );
        assert!("cut:x".parse::<Fault>().is_err());
        assert!("503".parse::<Fault>().is_err());
    }

    #[test]
    fn overrides_apply_and_reject_typos() {
        let base = MockConfig {
            fault: Some(Fault::Hang),
            ..MockConfig::default()
        };
        let k = base
            .with_overrides(&json!({"mock": {"reply_tokens": 3, "fault": null, "latency_ms": 5}}))
            .unwrap();
        assert_eq!((k.reply_tokens, k.fault, k.latency_ms), (3, None, 5));
        let k = base
            .with_overrides(&json!({"mock": {"fault": "cut:7"}}))
            .unwrap();
        assert_eq!(k.fault, Some(Fault::CutStream { after_tokens: 7 }));
        assert_eq!(base.with_overrides(&json!({"model": "x"})).unwrap(), base);
        assert!(
            base.with_overrides(&json!({"mock": {"reply_token": 3}}))
                .is_err()
        );
        assert!(
            base.with_overrides(&json!({"mock": {"reply_tokens": -1}}))
                .is_err()
        );
        assert!(base.with_overrides(&json!({"mock": "fast"})).is_err());
    }

    #[test]
    fn pacing_interval() {
        let k = MockConfig {
            tokens_per_second: 100,
            ..MockConfig::default()
        };
        assert_eq!(k.token_interval(), Some(Duration::from_millis(10)));
        assert_eq!(MockConfig::default().token_interval(), None);
    }
}
