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
    /// A community instance served the request: its owner earns a share of the charge,
    /// credited in the transaction that charges it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earning: Option<Earning>,
}

/// Who earns from a request served by a community instance, and how much of its charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Earning {
    /// The instance owner's account.
    pub account_id: i64,
    /// The owner's share in billionths of the charge (at most 1e9): the earning is
    /// `charge × share / 1e9`, rounded down to the nano-USD.
    pub share_ppb: u64,
}

impl Earning {
    /// What the owner earns on `charged` nano-USD: rounded down, never more than the
    /// charge, never negative; the rest of the charge is the operator's.
    pub fn of(&self, charged: i64) -> i64 {
        if charged <= 0 {
            return 0;
        }
        let share = i128::from(self.share_ppb.min(1_000_000_000));
        let earned = i128::from(charged) * share / 1_000_000_000;
        i64::try_from(earned).unwrap_or(0).clamp(0, charged)
    }
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
