//! Which wire format a request speaks, and how each format answers a failure: status,
//! error type and envelope.

use bytes::Bytes;
use http::StatusCode;

use crate::server::Answer;
use crate::{anthropic, gemini, openai};

/// A wire format the mock speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    OpenAi,
    Anthropic,
    Gemini,
}

/// A failure every format can report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    InvalidRequest,
    NotFound,
    Internal,
    RateLimited,
    Overloaded,
}

impl Format {
    /// The status and error body of `failure`, saying `message`.
    pub(crate) fn error(self, failure: Failure, message: &str) -> (StatusCode, Bytes) {
        use Failure::*;
        let status = match (self, failure) {
            (_, InvalidRequest) => StatusCode::BAD_REQUEST,
            (_, NotFound) => StatusCode::NOT_FOUND,
            (_, Internal) => StatusCode::INTERNAL_SERVER_ERROR,
            (_, RateLimited) => StatusCode::TOO_MANY_REQUESTS,
            (Format::Anthropic, Overloaded) => anthropic::overloaded(),
            (_, Overloaded) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let body = match self {
            Format::OpenAi => {
                let kind = match failure {
                    InvalidRequest | NotFound => "invalid_request_error",
                    Internal | Overloaded => "server_error",
                    RateLimited => "requests",
                };
                openai::error(kind, message)
            }
            Format::Anthropic => {
                let kind = match failure {
                    InvalidRequest => "invalid_request_error",
                    NotFound => "not_found_error",
                    Internal => "api_error",
                    RateLimited => "rate_limit_error",
                    Overloaded => "overloaded_error",
                };
                anthropic::error(kind, message)
            }
            Format::Gemini => gemini::error(status, message),
        };
        (status, body)
    }

    /// The answer to a fault that replaces the whole response.
    pub(crate) fn injected(self, failure: Failure) -> (StatusCode, Bytes) {
        let message = match failure {
            Failure::RateLimited => "The mock upstream injected a rate limit (fault 429).",
            Failure::Overloaded => "The mock upstream injected an overload (fault overloaded).",
            _ => "The mock upstream injected a server error (fault 500).",
        };
        self.error(failure, message)
    }

    /// The answer to fault `400`: an injected refusal whose message is padded to
    /// `message_bytes` bytes.
    pub(crate) fn refused(self, message_bytes: u64) -> (StatusCode, Bytes) {
        let mut message = "The mock upstream injected a refusal (fault 400).".to_owned();
        let padding = usize::try_from(message_bytes).unwrap_or(usize::MAX).saturating_sub(message.len());
        message.extend(std::iter::repeat_n('x', padding));
        self.error(Failure::InvalidRequest, &message)
    }

    /// A 400 answer in this format.
    pub(crate) fn invalid_request(self, message: &str) -> Answer {
        let (status, body) = self.error(Failure::InvalidRequest, message);
        Answer::Json { status, body, tokens: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn parsed(format: Format, failure: Failure) -> (u16, Value) {
        let (status, body) = format.injected(failure);
        (status.as_u16(), serde_json::from_slice(&body).unwrap())
    }

    #[test]
    fn each_format_has_its_envelope() {
        let (status, e) = parsed(Format::Anthropic, Failure::Overloaded);
        assert_eq!(status, 529);
        assert_eq!(e["type"], "error");
        assert_eq!(e["error"]["type"], "overloaded_error");
        let (status, e) = parsed(Format::Gemini, Failure::RateLimited);
        assert_eq!(status, 429);
        assert_eq!(e["error"]["code"], 429);
        assert_eq!(e["error"]["status"], "RESOURCE_EXHAUSTED");
        let (status, e) = parsed(Format::OpenAi, Failure::Overloaded);
        assert_eq!(status, 503);
        assert_eq!(e["error"]["type"], "server_error");
        let (_, e) = parsed(Format::Gemini, Failure::Internal);
        assert_eq!(
            e,
            json!({"error": {"code": 500, "status": "INTERNAL",
            "message": "The mock upstream injected a server error (fault 500)."}})
        );
    }
}
