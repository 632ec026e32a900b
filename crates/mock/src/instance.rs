//! The knobs that make the mock act as a community instance (a vLLM / llama.cpp server an
//! account registers): a required API key, the model list it reports, the usage it
//! reports, and whole-server failures. Off by default; settable at runtime through
//! [`crate::MockServer::set_instance`] and [`crate::MockServer::update_instance`].

use bytes::Bytes;
use http::HeaderMap;
use http::header::AUTHORIZATION;
use serde_json::json;

/// How the mock behaves as an instance. The default changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceKnobs {
    /// Every request (any path, `/v1/models` included) must carry `Authorization: Bearer
    /// <key>`, or is answered 401 with an OpenAI error (`code: "invalid_api_key"`), as
    /// `vllm serve --api-key` does.
    pub api_key: Option<String>,
    /// The ids `GET /v1/models` lists instead of the mock's own.
    pub models: Option<Vec<String>>,
    /// Chat completions report exactly this `usage.prompt_tokens` (a canary check).
    pub prompt_tokens: Option<u64>,
    /// Chat completions report this many times the tokens they used (prompt, completion
    /// and total; streamed usage too); 0 and 1 report them as they are.
    pub usage_multiplier: u64,
    /// Every request (any path) fails this way, before the key is checked.
    pub failure: Option<InstanceFailure>,
}

/// A whole-server failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceFailure {
    /// Read the request and never answer, until the client goes away.
    Hang,
    /// Answer 500 with an OpenAI error body.
    Status500,
    /// Answer 200 with an HTML page (a web server or a login page, not an API).
    Html,
}

impl InstanceKnobs {
    /// Whether `headers` carry the key this server requires (always, when it requires none).
    pub(crate) fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(key) = &self.api_key else {
            return true;
        };
        headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| given.trim() == key)
    }

    /// The usage counts a chat completion reports for `used` tokens.
    pub(crate) fn reported(&self, used: u64) -> u64 {
        used.saturating_mul(self.usage_multiplier.max(1))
    }
}

/// The 401 body of a request without the right key (the key is never echoed).
pub(crate) fn unauthorized() -> Bytes {
    let body = json!({"error": {
        "message": "Invalid API key: send the server's key as `Authorization: Bearer <key>`.",
        "type": "invalid_request_error",
        "param": null,
        "code": "invalid_api_key",
    }});
    Bytes::from(body.to_string())
}

/// The page [`InstanceFailure::Html`] answers with.
pub(crate) const HTML_PAGE: &str =
    "<!DOCTYPE html>\n<html><head><title>Welcome</title></head><body><h1>It works!</h1></body></html>\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_checked_only_when_required() {
        let mut headers = HeaderMap::new();
        assert!(InstanceKnobs::default().authorized(&headers));
        let knobs = InstanceKnobs { api_key: Some("k1".into()), ..InstanceKnobs::default() };
        assert!(!knobs.authorized(&headers));
        headers.insert(AUTHORIZATION, "Bearer k2".parse().unwrap());
        assert!(!knobs.authorized(&headers));
        headers.insert(AUTHORIZATION, "Bearer k1".parse().unwrap());
        assert!(knobs.authorized(&headers));
    }

    #[test]
    fn usage_is_multiplied() {
        assert_eq!(InstanceKnobs::default().reported(7), 7);
        assert_eq!(InstanceKnobs { usage_multiplier: 3, ..InstanceKnobs::default() }.reported(7), 21);
    }
}
