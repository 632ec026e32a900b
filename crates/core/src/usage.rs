//! Token usage of one request, as the upstream reported it (or as the gateway counted it).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Prompt tokens served from the provider's cache (a subset of `prompt_tokens`).
    pub cached_tokens: u64,
    /// Prompt tokens written to the provider's cache (Anthropic's cache creation; a subset
    /// of `prompt_tokens`, disjoint from `cached_tokens`), priced at the cache-write price.
    #[serde(default)]
    pub cache_write_tokens: u64,
    /// Completion tokens spent on reasoning (a subset of `completion_tokens`).
    pub reasoning_tokens: u64,
    /// Hosted (server-side) tool calls the provider ran and bills per call.
    #[serde(default, skip_serializing_if = "HostedCalls::is_empty")]
    pub hosted: HostedCalls,
}

/// Calls of a provider's hosted tools in one request, as the provider reported them
/// (Anthropic's `usage.server_tool_use`), each priced per call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostedCalls {
    /// Web searches (Anthropic `web_search_requests`).
    #[serde(default)]
    pub web_search: u64,
    /// Web fetches (Anthropic `web_fetch_requests`).
    #[serde(default)]
    pub web_fetch: u64,
}

impl HostedCalls {
    /// How many calls of a hosted tool a request is held for when nothing in it bounds them
    /// (an Anthropic server tool without `max_uses`, an OpenAI Responses request without
    /// `max_tool_calls`). Neither provider documents a limit of its own: the gateway sends
    /// this one with such a tool, and charges no more calls than a request allowed.
    pub const HELD_WITHOUT_LIMIT: u64 = 10;
    /// The most tokens of a fetched page a web fetch adds to the prompt, where the client
    /// sets no `max_content_tokens`: the gateway sets this one, and holds input for it
    /// per fetch.
    pub const FETCH_CONTENT_TOKENS: u64 = 20_000;

    pub fn is_empty(&self) -> bool {
        self.web_search == 0 && self.web_fetch == 0
    }
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}
