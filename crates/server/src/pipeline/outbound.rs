//! What one attempt sends, and in which shape its answer reaches the client.

use std::sync::Arc;

use bytes::Bytes;
use tokenrouter_core::chat::ChatRequest;
use tokenrouter_providers::adapter::{Encoded, Target};
use tokenrouter_providers::anthropic;
use tokenrouter_providers::openai::{self, ChatView};
use tokenrouter_providers::passthrough::{RawObject, raw_from_vec, raw_string};
use tokenrouter_providers::surface::Surface;

use super::{Inference, NativeApi, Work};
use crate::config::{Deployment, Model};
use crate::dispatch::{self, Outbound};
use crate::edge::json_error;
use crate::error::ApiError;
use crate::policy;

pub struct Prepared {
    pub outbound: Outbound,
    pub stream: bool,
    pub shape: Shape,
    /// The client allows one tool call at most (told to the adapter's decoder).
    pub one_tool_call: bool,
}

/// How an attempt's answer reaches the client.
pub enum Shape {
    /// In the client's own format already (chat completions, or a surface an
    /// OpenAI-compatible upstream speaks natively); the usage chunk is removed again
    /// unless the client asked for it.
    Relayed {
        include_usage: bool,
        api: NativeApi,
    },
    /// Canonical chat, restated in the client's surface.
    Restated(Arc<dyn Surface>),
    Embeddings,
}

/// The request as this deployment takes it: the raw body for an OpenAI-compatible
/// upstream, or the typed request encoded by the provider's adapter (what it cannot
/// express is a 400 naming the field).
pub fn prepare(
    request: &mut RawObject<'_>,
    inference: &Inference,
    view: &ChatView,
    model: &Model,
    deployment: &Deployment,
    max_out: Option<u64>,
) -> Result<Prepared, ApiError> {
    let adapter = dispatch::adapter(deployment.provider.kind);
    let target = Target { upstream_model: &deployment.upstream_model, max_output_tokens: model.max_output_tokens };
    let shape = match &inference.work {
        Work::Embeddings(typed) => {
            let outbound = match adapter {
                None => {
                    let mut upstream = request.clone();
                    upstream.set("model", raw_string(&deployment.upstream_model));
                    Outbound::Raw { path: "/embeddings", body: Bytes::from(upstream.to_vec()) }
                }
                Some(adapter) => {
                    let encoded = adapter.encode_embeddings(typed, &target).map_err(ApiError::unsupported)?;
                    Outbound::Translated { adapter, encoded }
                }
            };
            return Ok(Prepared { outbound, stream: false, shape: Shape::Embeddings, one_tool_call: false });
        }
        Work::Surface(translation) => {
            if let Some(native) = &translation.native
                && native.api.served_by(&deployment.provider)
            {
                let mut upstream = RawObject::parse(&native.body).map_err(|e| json_error(&native.body, &e))?;
                upstream.remove("models");
                let limit_field = match native.api {
                    NativeApi::Responses => Some("max_output_tokens"),
                    NativeApi::Messages => Some("max_tokens"),
                    NativeApi::Chat | NativeApi::Completions => None,
                };
                if let Some(field) = limit_field {
                    upstream.set("model", raw_string(&deployment.upstream_model));
                    if let Some(limit) = max_out.filter(|m| Some(*m) != native.view.max_tokens) {
                        upstream.set(field, raw_from_vec(limit.to_string().into_bytes()));
                        if native.api == NativeApi::Messages {
                            fit_thinking(&mut upstream, limit);
                        }
                    }
                } else {
                    policy::apply_output_limit(&mut upstream, &native.view, max_out);
                    let dialect = deployment.provider.dialect;
                    openai::prepare_upstream_chat(&mut upstream, &native.view, &deployment.upstream_model, dialect);
                }
                let body = upstream.to_vec();
                let outbound = match adapter {
                    // The provider's own API, with the headers it wants (Anthropic's version).
                    Some(adapter) => {
                        let mut headers = vec![("anthropic-version", anthropic::API_VERSION.to_owned())];
                        headers.extend(native.headers.iter().cloned());
                        let encoded = Encoded { path: native.api.path().to_owned(), headers, body };
                        Outbound::Translated { adapter, encoded }
                    }
                    None => Outbound::Raw { path: native.api.path(), body: Bytes::from(body) },
                };
                let shape = Shape::Relayed { include_usage: native.view.include_usage, api: native.api };
                return Ok(Prepared { outbound, stream: native.view.stream, shape, one_tool_call: false });
            }
            let surface = translation.surface.clone().map_err(ApiError::unsupported)?;
            Shape::Restated(surface)
        }
        Work::Chat => Shape::Relayed { include_usage: view.include_usage, api: NativeApi::Chat },
    };
    policy::apply_output_limit(request, view, max_out);
    let Some(adapter) = adapter else {
        let mut upstream = request.clone();
        let dialect = deployment.provider.dialect;
        if matches!(shape, Shape::Restated(_)) {
            openai::strip_reasoning_history(&mut upstream, dialect);
        }
        openai::prepare_upstream_chat(&mut upstream, view, &deployment.upstream_model, dialect);
        let outbound = Outbound::Raw { path: NativeApi::Chat.path(), body: Bytes::from(upstream.to_vec()) };
        return Ok(Prepared { outbound, stream: view.stream, shape, one_tool_call: false });
    };
    let json = request.to_vec();
    let mut deserializer = serde_json::Deserializer::from_slice(&json);
    let typed: ChatRequest = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        ApiError::invalid_param(format!("Invalid value for '{path}': {}", e.inner()), path)
    })?;
    let encoded = adapter.encode_request(&typed, &target, view.stream).map_err(ApiError::unsupported)?;
    let one_tool_call = typed.parallel_tool_calls == Some(false);
    Ok(Prepared { outbound: Outbound::Translated { adapter, encoded }, stream: view.stream, shape, one_tool_call })
}

/// Anthropic wants `thinking.budget_tokens` below `max_tokens`: a budget the clamped
/// limit no longer leaves room for is lowered to just under it.
fn fit_thinking(upstream: &mut RawObject<'_>, max_tokens: u64) {
    let Some(mut thinking) =
        upstream.get("thinking").and_then(|t| serde_json::from_str::<serde_json::Value>(t.get()).ok())
    else {
        return;
    };
    let budget = thinking.get("budget_tokens").and_then(serde_json::Value::as_u64);
    if budget.is_some_and(|b| b >= max_tokens) {
        thinking["budget_tokens"] = serde_json::json!(max_tokens.saturating_sub(1));
        upstream.set("thinking", raw_from_vec(thinking.to_string().into_bytes()));
    }
}
