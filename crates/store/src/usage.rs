//! One request's usage record, as the metering writer hands it to the store.

use tokenrouter_core::{NanoUsd, Usage};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UsageRecord {
    /// Unique per request; recording the same id twice changes nothing.
    pub request_id: String,
    pub key_id: String,
    pub account_id: i64,
    /// The model the client asked for.
    pub model: String,
    pub provider: String,
    /// The model name sent upstream.
    pub upstream_model: String,
    pub endpoint: String,
    pub stream: bool,
    /// The HTTP status returned to the client.
    pub status: u16,
    pub usage: Usage,
    /// Charged to the account (and added to the key's spend) when positive.
    pub cost: NanoUsd,
    pub usage_source: UsageSource,
    pub client_disconnected: bool,
    pub latency_ms: u64,
    pub created_at: i64,
    /// Why the request failed or was refused (`None` when answered).
    #[serde(default)]
    pub error_code: Option<String>,
    /// Milliseconds until the answer's first byte was ready for the client (`None`: no
    /// answer came).
    #[serde(default)]
    pub ttfb_ms: Option<u64>,
}

/// Where the token counts came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum UsageSource {
    /// Reported by the upstream provider.
    Upstream,
    /// Counted by the gateway (the upstream reported nothing usable).
    Counted,
    /// No usage known (e.g. the request failed before any output).
    None,
}

impl UsageSource {
    /// The stored spelling: 'upstream', 'counted' or 'none'.
    pub fn as_str(self) -> &'static str {
        match self {
            UsageSource::Upstream => "upstream",
            UsageSource::Counted => "counted",
            UsageSource::None => "none",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(text: &str) -> Option<UsageSource> {
        match text {
            "upstream" => Some(UsageSource::Upstream),
            "counted" => Some(UsageSource::Counted),
            "none" => Some(UsageSource::None),
            _ => None,
        }
    }
}
