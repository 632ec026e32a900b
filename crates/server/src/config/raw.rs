//! The config file exactly as written: serde structs that refuse unknown fields. Each
//! section is deserialized on its own so that every mistake is reported at once.

use serde::{Deserialize, Deserializer, de};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub billing: Option<String>,
    /// Largest accepted request body, in bytes (default 32 MiB).
    pub max_body_bytes: Option<u64>,
    /// Default time to wait for an upstream's first byte, in milliseconds.
    pub upstream_timeout_ms: Option<u64>,
    /// Default longest silence between two chunks of a stream, in milliseconds.
    pub idle_timeout_ms: Option<u64>,
    /// Time to open a connection to an upstream, in milliseconds.
    pub connect_timeout_ms: Option<u64>,
    /// The longest a client waits for one request, retries and fallbacks included.
    pub request_timeout_ms: Option<u64>,
    /// Upstream attempts per request at most, fallbacks included.
    pub max_attempts: Option<u32>,
    /// Default routing strategy: cost | latency | availability | round-robin.
    pub strategy: Option<String>,
    /// Proxies (CIDRs or addresses) whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Option<Vec<String>>,
    /// Responses API tools an upstream cannot run (`web_search`, …): `drop` | `reject`.
    pub unsupported_tools: Option<String>,
    /// How long a response is kept for `previous_response_id`, in seconds (0: never kept).
    pub response_retention_secs: Option<u64>,
    /// How browsers reach the gateway (`https://gw.example.com`): sign-in links, the OAuth
    /// redirect, the cookie's `Secure` flag and the CSRF origin.
    pub public_url: Option<String>,
    /// How long SIGTERM/SIGINT waits for requests in flight, in seconds (default 30).
    pub shutdown_grace_secs: Option<u64>,
    /// A connection that has not sent its request headers by then is closed (default 10000).
    pub header_timeout_ms: Option<u64>,
    /// The longest a client may take to send a request body (default 60000).
    pub body_timeout_ms: Option<u64>,
    /// An idle keep-alive connection is closed after this long (default 75000).
    pub keepalive_timeout_ms: Option<u64>,
    /// The most client connections open at once (default 10000).
    pub max_connections: Option<u64>,
}

/// `[redis]`: rate limits shared by replicas.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    /// `redis://[user:password@]host:port[/db]` or `rediss://…` (TLS).
    pub url: Option<String>,
    /// Prefix of every Redis key the gateway writes (default `tokenrouter:`).
    pub key_prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub name: String,
    pub kind: String,
    pub base_url: Option<String>,
    pub api_key_env: Option<String>,
    pub api_key: Option<String>,
    pub timeout_ms: Option<u64>,
    /// For `kind = "openai"`: `openai` | `deepseek` | `mistral` (default: from the name or URL).
    pub dialect: Option<String>,
    /// For `kind = "openai"`: the upstream serves the Responses API itself, so
    /// `/v1/responses` passes through untranslated (default: only for api.openai.com).
    pub responses_api: Option<bool>,
}

/// `tool_prices = { web_search = "0.01", web_fetch = "0" }`: USD per call.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToolPrices {
    #[serde(default, deserialize_with = "usd")]
    pub web_search: Option<String>,
    #[serde(default, deserialize_with = "usd")]
    pub web_fetch: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub id: String,
    pub context_window: Option<u64>,
    pub max_output_tokens: Option<u64>,
    #[serde(default, deserialize_with = "usd")]
    pub input_price: Option<String>,
    #[serde(default, deserialize_with = "usd")]
    pub cached_input_price: Option<String>,
    #[serde(default, deserialize_with = "usd")]
    pub cache_write_price: Option<String>,
    #[serde(default, deserialize_with = "usd")]
    pub output_price: Option<String>,
    /// USD per call of each hosted tool the provider bills per call.
    pub tool_prices: Option<RawToolPrices>,
    pub capabilities: Option<Vec<String>>,
    /// This model's routing strategy (overrides the server's).
    pub strategy: Option<String>,
    /// Models to try, in order, when every deployment of this one failed.
    pub fallbacks: Option<Vec<String>>,
    /// Community instances may serve this model (then `deployments` may be empty).
    pub instances: Option<bool>,
    /// The prompt tokens this model's tokenizer counts for the probe's canary.
    pub canary_prompt_tokens: Option<u64>,
    #[serde(default)]
    pub deployments: Vec<RawDeployment>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeployment {
    pub provider: String,
    pub upstream_model: Option<String>,
    pub weight: Option<u32>,
    #[serde(default, deserialize_with = "usd")]
    pub input_price: Option<String>,
    #[serde(default, deserialize_with = "usd")]
    pub output_price: Option<String>,
    pub timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
}

/// A USD amount written as a number (`0.15`) or a string (`"0.15"`), kept as decimal text
/// so that no float ever holds it (a float's shortest text is the decimal that was written).
fn usd<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    struct UsdVisitor;
    impl de::Visitor<'_> for UsdVisitor {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a price in USD per 1M tokens, such as 0.15")
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(format!("{v}")))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }
    }
    deserializer.deserialize_any(UsdVisitor)
}
