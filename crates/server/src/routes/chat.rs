//! `POST /v1/chat/completions`: auth → parse → policy → route → forward → respond → meter.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tokenrouter_core::Usage;
use tokenrouter_core::chat::ChatRequest;
use tokenrouter_providers::adapter::{Adapter, ResponseMeta, Target};
use tokenrouter_providers::openai;
use tokenrouter_providers::passthrough::RawObject;

use crate::auth::Authed;
use crate::config::{Deployment, Model};
use crate::dispatch::{self, Answer, Outbound};
use crate::edge::{RequestId, X_PROVIDER, json_error, read_body};
use crate::error::ApiError;
use crate::metering::{Measured, MeterContext};
use crate::policy::model_allowed;
use crate::state::AppState;
use crate::streaming::{MeteredSse, Settlement, Transform};

pub async fn completions(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Authed(key): Authed,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let config = state.config.load_full();
    let bytes = read_body(body, &headers, config.server.max_body_bytes).await?;
    let mut request = RawObject::parse(&bytes).map_err(|e| json_error(&bytes, &e))?;
    let view =
        openai::inspect_chat(&request).map_err(|e| ApiError::invalid_param(e.message, e.param))?;
    let model = config
        .model(&view.model)
        .ok_or_else(|| ApiError::ModelNotFound(view.model.clone()))?;
    if !model_allowed(&key, &model.id) {
        return Err(ApiError::ModelNotAllowed(model.id.clone()));
    }
    let deployment = model.live_deployments().next().ok_or_else(|| {
        ApiError::UpstreamUnavailable(format!(
            "No deployment of '{}' can serve requests.",
            model.id
        ))
    })?;
    let adapter = dispatch::adapter(deployment.provider.kind);
    let outbound = match adapter {
        None => {
            openai::prepare_upstream_chat(
                &mut request,
                &view,
                &deployment.upstream_model,
                deployment.provider.dialect,
            );
            Outbound::Raw {
                path: "/chat/completions",
                body: Bytes::from(request.to_vec()),
            }
        }
        Some(adapter) => translate(adapter, &bytes, model, deployment, view.stream)?,
    };
    drop(request);

    let meta = ResponseMeta {
        id: format!("chatcmpl-{}", request_id.trim_start_matches("req_")),
        model: model.id.clone(),
        created: tokenrouter_core::clock::now_unix(),
        include_usage: view.include_usage,
    };
    let meter = MeterContext {
        request_id,
        key,
        model: model.id.clone(),
        provider: deployment.provider.name.clone(),
        upstream_model: deployment.upstream_model.clone(),
        endpoint: "chat.completions",
        stream: view.stream,
        price: deployment.price.unwrap_or(model.price),
        started,
    };
    let answer = dispatch::send(&state.upstream, deployment, outbound, view.stream).await;
    let provider = HeaderValue::try_from(deployment.provider.name.as_str()).ok();
    let mut response = match answer {
        Err(error) => {
            state
                .usage
                .record(meter.usage_record(error.status().as_u16(), Measured::Nothing, false))
                .await;
            return Err(error);
        }
        Ok(Answer::Refused { status, body }) => {
            state
                .usage
                .record(meter.usage_record(status.as_u16(), Measured::Nothing, false))
                .await;
            json_response(status, body)
        }
        Ok(Answer::Complete(body)) => {
            let (body, measured) = complete(adapter, body, &bytes, &meta).inspect_err(|e| {
                let record = meter.usage_record(e.status().as_u16(), Measured::Nothing, false);
                state.usage.record_now(record);
            })?;
            state
                .usage
                .record(meter.usage_record(200, measured, false))
                .await;
            json_response(StatusCode::OK, body)
        }
        Ok(Answer::Stream(upstream)) => {
            let transform = match adapter {
                None => Transform::PassThrough(!view.include_usage),
                Some(adapter) => Transform::Decode(adapter.stream_decoder(meta)),
            };
            let settlement = Settlement {
                meter,
                writer: state.usage.clone(),
                request_body: bytes,
            };
            sse_response(MeteredSse::new(upstream, transform, settlement))
        }
    };
    if let Some(provider) = provider {
        response.headers_mut().insert(X_PROVIDER.clone(), provider);
    }
    Ok(response)
}

/// The typed request, encoded by the provider's adapter; what it cannot express is a 400
/// naming the field.
fn translate(
    adapter: &'static dyn Adapter,
    bytes: &[u8],
    model: &Model,
    deployment: &Deployment,
    stream: bool,
) -> Result<Outbound, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let typed: ChatRequest = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        ApiError::invalid_param(format!("Invalid value for '{path}': {}", e.inner()), path)
    })?;
    let target = Target {
        upstream_model: &deployment.upstream_model,
        max_output_tokens: model.max_output_tokens,
    };
    let encoded = adapter
        .encode_request(&typed, &target, stream)
        .map_err(|u| ApiError::invalid_param(u.message, u.param))?;
    Ok(Outbound::Translated { adapter, encoded })
}

/// A whole answer in OpenAI's shape, and its usage (reported, or counted when missing).
fn complete(
    adapter: Option<&'static dyn Adapter>,
    body: Bytes,
    request: &[u8],
    meta: &ResponseMeta,
) -> Result<(Bytes, Measured), ApiError> {
    let (body, usage) = match adapter {
        None => {
            let usage = openai::response_usage(&body);
            (body, usage)
        }
        Some(adapter) => {
            let decoded = adapter.decode_response(&body, meta).map_err(|f| {
                ApiError::UpstreamUnavailable(format!(
                    "The provider's answer could not be read: {}",
                    f.message
                ))
            })?;
            (Bytes::from(decoded.body), decoded.usage)
        }
    };
    let measured = match usage {
        Some(usage) => Measured::Reported(usage),
        None => Measured::Counted(Usage {
            prompt_tokens: openai::estimate_prompt_tokens(request),
            completion_tokens: openai::estimate_completion_tokens(&body),
            ..Usage::default()
        }),
    };
    Ok((body, measured))
}

fn sse_response(body: MeteredSse) -> Response {
    let mut response = Response::new(Body::new(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn json_response(status: StatusCode, body: Bytes) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}
