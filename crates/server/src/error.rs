//! Every way a request can fail, mapped once to HTTP status, OpenAI error type and code
//! (CONTRACTS.md §4).

use std::borrow::Cow;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use tokenrouter_core::ErrorEnvelope;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    InvalidRequest { message: String, param: Option<Cow<'static, str>> },
    #[error(
        "This model's maximum context length is {window} tokens. However, you requested {} tokens ({prompt} in the messages, {completion} in the completion). Please reduce the length of the messages or completion.",
        prompt + completion
    )]
    ContextLengthExceeded { window: u64, prompt: u64, completion: u64 },
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    InsufficientQuota(String),
    #[error("The model '{0}' does not exist or you do not have access to it.")]
    ModelNotFound(String),
    #[error("The key is not allowed to use the model '{0}'.")]
    ModelNotAllowed(String),
    #[error("This key does not accept requests from {0}.")]
    IpNotAllowed(String),
    #[error("Rate limit reached for {limit} per minute on this key. Please try again in {} s.", whole_seconds(*retry_after))]
    RateLimited { retry_after: std::time::Duration, limit: &'static str },
    #[error("The request body is larger than the limit of {0} bytes.")]
    TooLarge(usize),
    /// The request body did not arrive in full within `[server] body_timeout_ms`.
    #[error("The request body was not received in full within {0} ms.")]
    BodyTimeout(u128),
    #[error("{0}")]
    UpstreamUnavailable(String),
    #[error("{0}")]
    UpstreamTimeout(String),
    #[error("Every deployment of '{model}' is cooling down after failures; retry in {} s.", retry_after.as_secs().max(1))]
    AllCooling { model: String, retry_after: std::time::Duration },
    #[error("Unknown request URL: {method} {path}. Please check the URL and method.")]
    UnknownRoute { method: String, path: String },
    #[error("The method {method} is not allowed for {path}.")]
    MethodNotAllowed { method: String, path: String },
    /// A stored object (a kept response) this key's account does not have.
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Internal(String),
    /// The database that decides whether money may be spent could not be reached: the
    /// request is refused rather than served unbilled.
    #[error("The gateway cannot reach its database to hold this request's funds; try again shortly.")]
    StoreUnavailable,
    /// Authenticated, but this caller may not do this (an admin route, a key of the wrong scope).
    #[error("{0}")]
    Forbidden(String),
    /// An `/api` route without a valid session or management key.
    #[error("{0}")]
    NotSignedIn(&'static str),
    /// A cookie-authenticated change whose `Origin` is not the gateway's own.
    #[error("This change did not come from the gateway's own pages (its Origin or Referer is missing or foreign).")]
    CsrfFailed,
    /// The change is no longer possible (revoking a revoked key, editing one).
    #[error("{0}")]
    Conflict(String),
    /// Too many sign-in attempts or redemptions from one address.
    #[error("Too many {what} from this address. Please try again in {} s.", whole_seconds(*retry_after))]
    TooManyAttempts { what: &'static str, retry_after: std::time::Duration },
    /// A redemption code that is unknown, used or expired (one message for all three).
    #[error("This code is not valid: it may be mistyped, already redeemed or expired.")]
    InvalidCode,
    /// The account has as many jobs queued or running as `[jobs] max_queued_per_account`.
    #[error("This account has {0} jobs queued or running, the most allowed; wait for some to finish.")]
    TooManyJobs(u64),
    /// An instance `base_url` the address policy refuses (§7), with the reason.
    #[error("{0}")]
    UnsafeUrl(String),
    /// A config reload refused: what `tokenrouter config check` says of the file.
    #[error("{0}")]
    InvalidConfig(String),
}

impl ApiError {
    /// A malformed request, not tied to one field.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::InvalidRequest { message: message.into(), param: None }
    }

    /// A request whose field `param` is wrong.
    pub fn invalid_param(message: impl Into<String>, param: impl Into<Cow<'static, str>>) -> ApiError {
        ApiError::InvalidRequest { message: message.into(), param: Some(param.into()) }
    }

    /// A request a translation cannot express (the field named when there is one).
    pub fn unsupported(u: tokenrouter_providers::adapter::Unsupported) -> ApiError {
        if u.param.is_empty() { ApiError::invalid(u.message) } else { ApiError::invalid_param(u.message, u.param) }
    }

    /// Status, `type` and `code` of each failure: the single table of CONTRACTS.md §4.
    fn table(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::InvalidRequest { .. } => (StatusCode::BAD_REQUEST, "invalid_request_error", "invalid_request"),
            ApiError::ContextLengthExceeded { .. } => {
                (StatusCode::BAD_REQUEST, "invalid_request_error", "context_length_exceeded")
            }
            ApiError::AllCooling { .. } => (StatusCode::SERVICE_UNAVAILABLE, "upstream_error", "upstream_unavailable"),
            ApiError::InsufficientQuota(_) => {
                (StatusCode::PAYMENT_REQUIRED, "insufficient_quota", "insufficient_quota")
            }
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "authentication_error", "invalid_api_key"),
            ApiError::ModelNotFound(_) => (StatusCode::NOT_FOUND, "invalid_request_error", "model_not_found"),
            ApiError::ModelNotAllowed(_) => (StatusCode::FORBIDDEN, "permission_error", "model_not_allowed"),
            ApiError::IpNotAllowed(_) => (StatusCode::FORBIDDEN, "permission_error", "ip_not_allowed"),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", "rate_limited"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error", "request_too_large"),
            ApiError::BodyTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "invalid_request_error", "request_timeout"),
            ApiError::UpstreamUnavailable(_) => (StatusCode::BAD_GATEWAY, "upstream_error", "upstream_unavailable"),
            ApiError::UpstreamTimeout(_) => (StatusCode::GATEWAY_TIMEOUT, "upstream_error", "upstream_timeout"),
            ApiError::UnknownRoute { .. } => (StatusCode::NOT_FOUND, "invalid_request_error", "unknown_url"),
            ApiError::MethodNotAllowed { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error", "method_not_allowed")
            }
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "invalid_request_error", "not_found"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal_error"),
            ApiError::StoreUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "server_error", "store_unavailable"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "permission_error", "forbidden"),
            ApiError::NotSignedIn(_) => (StatusCode::UNAUTHORIZED, "authentication_error", "not_signed_in"),
            ApiError::CsrfFailed => (StatusCode::FORBIDDEN, "permission_error", "csrf_failed"),
            ApiError::InvalidCode => (StatusCode::BAD_REQUEST, "invalid_request_error", "invalid_code"),
            ApiError::UnsafeUrl(_) => (StatusCode::BAD_REQUEST, "invalid_request_error", "unsafe_url"),
            ApiError::InvalidConfig(_) => (StatusCode::BAD_REQUEST, "invalid_request_error", "invalid_config"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "invalid_request_error", "conflict"),
            ApiError::TooManyAttempts { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", "rate_limited"),
            ApiError::TooManyJobs(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", "rate_limited"),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.table().0
    }

    /// The error's `code` (CONTRACTS.md §4).
    pub fn code(&self) -> &'static str {
        self.table().2
    }

    pub fn envelope(&self) -> ErrorEnvelope {
        let (_, kind, code) = self.table();
        let param = match self {
            ApiError::InvalidRequest { param, .. } => param.as_deref(),
            ApiError::ModelNotFound(_) | ApiError::ModelNotAllowed(_) => Some("model"),
            ApiError::ContextLengthExceeded { .. } => Some("messages"),
            ApiError::InvalidCode => Some("code"),
            ApiError::UnsafeUrl(_) => Some("base_url"),
            _ => None,
        };
        ErrorEnvelope::new(kind, code, self.to_string(), param)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), self.envelope().to_json()).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let ApiError::AllCooling { retry_after, .. }
        | ApiError::RateLimited { retry_after, .. }
        | ApiError::TooManyAttempts { retry_after, .. } = &self
        {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(whole_seconds(*retry_after)));
        }
        if let ApiError::StoreUnavailable = &self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
        }
        if self.status() == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// A wait in whole seconds, rounded up (at least 1): what `Retry-After` says.
pub fn whole_seconds(wait: std::time::Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}
