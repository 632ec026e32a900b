//! `[telemetry]`: traces to an OTLP/HTTP collector, the log format, and who may read
//! `/metrics` (and where).

use std::net::SocketAddr;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    /// `http://host:4318`: spans are posted to `{endpoint}/v1/traces`; empty = off.
    pub otlp_endpoint: Option<String>,
    /// Fraction of requests traced, 0.0–1.0 (default 1.0); a sampled `traceparent`
    /// from the client is always followed.
    pub trace_sample_ratio: Option<f64>,
    /// `text` | `json`.
    pub log_format: Option<String>,
    /// Non-empty: `/metrics` wants `Authorization: Bearer <metrics_token>`.
    pub metrics_token: Option<String>,
    /// Also (only) serve `/metrics` on this address, e.g. `127.0.0.1:9464`.
    pub metrics_listen: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, PartialEq)]
pub struct TelemetryConfig {
    /// The collector's base URL (no trailing slash); `None`: no traces.
    pub otlp_endpoint: Option<String>,
    pub trace_sample_ratio: f64,
    pub log_format: LogFormat,
    /// `None`: `/metrics` is open.
    pub metrics_token: Option<String>,
    /// `Some`: `/metrics` is served on this address and not on the main listener.
    pub metrics_listen: Option<SocketAddr>,
}

/// The metrics token is a secret: never printed.
impl std::fmt::Debug for TelemetryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryConfig")
            .field("otlp_endpoint", &self.otlp_endpoint)
            .field("trace_sample_ratio", &self.trace_sample_ratio)
            .field("log_format", &self.log_format)
            .field("metrics_token", &self.metrics_token.as_ref().map(|_| "<redacted>"))
            .field("metrics_listen", &self.metrics_listen)
            .finish()
    }
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            trace_sample_ratio: 1.0,
            log_format: LogFormat::Text,
            metrics_token: None,
            metrics_listen: None,
        }
    }
}

impl TelemetryConfig {
    pub fn build(raw: RawTelemetry, errors: &mut Vec<String>) -> TelemetryConfig {
        let otlp_endpoint = match raw.otlp_endpoint.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => match text.parse::<http::Uri>() {
                Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => {
                    Some(text.trim_end_matches('/').to_owned())
                }
                _ => {
                    errors.push(format!(
                        "telemetry.otlp_endpoint: '{text}' is not an http(s) URL such as http://127.0.0.1:4318"
                    ));
                    None
                }
            },
        };
        let trace_sample_ratio = match raw.trace_sample_ratio {
            None => 1.0,
            Some(r) if (0.0..=1.0).contains(&r) => r,
            Some(r) => {
                errors.push(format!("telemetry.trace_sample_ratio: {r} is not between 0.0 and 1.0"));
                1.0
            }
        };
        let log_format = match raw.log_format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                errors.push(format!("telemetry.log_format: '{other}' is not one of text, json"));
                LogFormat::Text
            }
        };
        let metrics_token = raw.metrics_token.filter(|t| !t.is_empty());
        let metrics_listen = raw.metrics_listen.as_deref().and_then(|text| match text.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                errors.push(format!("telemetry.metrics_listen: '{text}' is not an address such as 127.0.0.1:9464"));
                None
            }
        });
        TelemetryConfig { otlp_endpoint, trace_sample_ratio, log_format, metrics_token, metrics_listen }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_refusals() {
        let mut errors = Vec::new();
        let config = TelemetryConfig::build(RawTelemetry::default(), &mut errors);
        assert_eq!(config, TelemetryConfig::default());
        let raw = RawTelemetry {
            otlp_endpoint: Some("http://127.0.0.1:4318/".into()),
            trace_sample_ratio: Some(0.25),
            log_format: Some("json".into()),
            metrics_token: Some("s3cret".into()),
            metrics_listen: Some("127.0.0.1:9464".into()),
        };
        let config = TelemetryConfig::build(raw, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(config.otlp_endpoint.as_deref(), Some("http://127.0.0.1:4318"));
        assert_eq!((config.log_format, config.trace_sample_ratio), (LogFormat::Json, 0.25));
        assert_eq!(config.metrics_listen, Some("127.0.0.1:9464".parse().unwrap()));
        assert!(!format!("{config:?}").contains("s3cret"), "the token is never printed");
        let raw = RawTelemetry {
            otlp_endpoint: Some("ftp://x".into()),
            trace_sample_ratio: Some(2.0),
            log_format: Some("yaml".into()),
            metrics_token: Some(String::new()),
            metrics_listen: Some("nine".into()),
        };
        let config = TelemetryConfig::build(raw, &mut errors);
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert_eq!(config.metrics_token, None);
    }
}
