//! An instance's usage report, believed only up to the gateway's own count — and, when it
//! said more, restated at what is charged in the answer the consumer reads (the whole
//! body's `usage`, or the streamed usage chunk as it passes), so the numbers a consumer
//! sees are the numbers they pay for.

use serde_json::Value;
use tokenrouter_core::Usage;

/// How far one request's instance is believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Belief {
    /// The most prompt tokens believed: the gateway's own estimate (the hold's).
    pub prompt_ceiling: u64,
    /// The most generated tokens believed: the request's output limit (`max_tokens`,
    /// else the model's `max_output_tokens`) for each choice asked for.
    pub completion_ceiling: u64,
    /// The model's context window: no count in a usage record exceeds it.
    pub token_cap: u64,
}

impl Belief {
    /// What is charged for `reported` when the gateway counted `own_completion`
    /// generated tokens (`None`: the report is charged as it is).
    pub fn charged(&self, reported: Usage, own_completion: u64) -> Option<Usage> {
        let own = own_completion.min(self.completion_ceiling);
        let charged = bounded(capped(reported, self.prompt_ceiling, own), self.token_cap);
        (charged != reported).then_some(charged)
    }
}

/// A report capped at the gateway's count: the prompt at `prompt_ceiling`, the
/// completion at `own_completion`, and their parts within them.
pub fn capped(reported: Usage, prompt_ceiling: u64, own_completion: u64) -> Usage {
    let prompt = reported.prompt_tokens.min(prompt_ceiling);
    let completion = reported.completion_tokens.min(own_completion);
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        cached_tokens: reported.cached_tokens.min(prompt),
        cache_write_tokens: reported.cache_write_tokens.min(prompt),
        reasoning_tokens: reported.reasoning_tokens.min(completion),
        // An instance runs no hosted tools: a report of such calls is never charged.
        hosted: Default::default(),
    }
}

/// Usage within what a model can do (`token_cap`, its context window), its parts within
/// their wholes: what every usage record holds.
pub fn bounded(mut usage: Usage, token_cap: u64) -> Usage {
    for count in [&mut usage.prompt_tokens, &mut usage.completion_tokens] {
        *count = (*count).min(token_cap);
    }
    usage.cached_tokens = usage.cached_tokens.min(usage.prompt_tokens);
    usage.cache_write_tokens = usage.cache_write_tokens.min(usage.prompt_tokens - usage.cached_tokens);
    usage.reasoning_tokens = usage.reasoning_tokens.min(usage.completion_tokens);
    usage
}

/// `json` (an OpenAI-shaped answer or stream chunk) with the counts of its `usage`
/// object restated as `usage`: only the members it has (an embeddings answer has no
/// `completion_tokens`), `total_tokens` their sum. `None` when it has no usage object.
pub fn restate(json: &[u8], usage: &Usage) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(json).ok()?;
    let object = value.get_mut("usage")?.as_object_mut()?;
    let set = |object: &mut serde_json::Map<String, Value>, name: &str, count: u64| {
        if let Some(member) = object.get_mut(name) {
            *member = Value::from(count);
        }
    };
    set(object, "prompt_tokens", usage.prompt_tokens);
    set(object, "completion_tokens", usage.completion_tokens);
    set(object, "total_tokens", usage.total());
    if let Some(details) = object.get_mut("prompt_tokens_details").and_then(Value::as_object_mut) {
        set(details, "cached_tokens", usage.cached_tokens);
    }
    if let Some(details) = object.get_mut("completion_tokens_details").and_then(Value::as_object_mut) {
        set(details, "reasoning_tokens", usage.reasoning_tokens);
    }
    serde_json::to_vec(&value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(prompt: u64, completion: u64) -> Usage {
        Usage { prompt_tokens: prompt, completion_tokens: completion, ..Usage::default() }
    }

    #[test]
    fn an_over_report_is_charged_at_the_gateways_count() {
        let belief = Belief { prompt_ceiling: 20, completion_ceiling: 1000, token_cap: 1000 };
        assert_eq!(belief.charged(usage(12, 30), 40), None, "an honest report stands");
        assert_eq!(belief.charged(usage(120, 300), 40), Some(usage(20, 40)));
        let reasoned = Usage { reasoning_tokens: 250, cached_tokens: 100, ..usage(120, 300) };
        let charged = belief.charged(reasoned, 40).unwrap();
        assert_eq!((charged.reasoning_tokens, charged.cached_tokens), (40, 20));
        let small = Belief { prompt_ceiling: u64::MAX, completion_ceiling: 1000, token_cap: 8 };
        assert_eq!(small.charged(usage(12, 3), 40), Some(usage(8, 3)), "within the context window");
        let short = Belief { prompt_ceiling: 20, completion_ceiling: 16, token_cap: 1000 };
        assert_eq!(short.charged(usage(12, 100_000), 100_001), Some(usage(12, 16)), "within the output limit");
    }

    #[test]
    fn usage_is_restated_member_by_member() {
        let body = br#"{"id":"x","choices":[],"usage":{"prompt_tokens":120,"completion_tokens":300,"total_tokens":420,"completion_tokens_details":{"reasoning_tokens":9}}}"#;
        let charged = Usage { reasoning_tokens: 4, ..usage(20, 40) };
        let out: Value = serde_json::from_slice(&restate(body, &charged).unwrap()).unwrap();
        assert_eq!(
            out["usage"],
            serde_json::json!({"prompt_tokens":20,"completion_tokens":40,"total_tokens":60,"completion_tokens_details":{"reasoning_tokens":4}})
        );
        assert_eq!((out["id"].as_str(), out["choices"].as_array().map(Vec::len)), (Some("x"), Some(0)));
        let embeddings = br#"{"data":[],"usage":{"prompt_tokens":90,"total_tokens":90}}"#;
        let out: Value = serde_json::from_slice(&restate(embeddings, &usage(7, 0)).unwrap()).unwrap();
        assert_eq!(out["usage"], serde_json::json!({"prompt_tokens":7,"total_tokens":7}));
        assert_eq!(restate(br#"{"usage":null}"#, &usage(1, 1)), None);
        assert_eq!(restate(b"not json", &usage(1, 1)), None);
    }
}
