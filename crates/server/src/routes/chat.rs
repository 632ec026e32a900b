//! `POST /v1/chat/completions`: auth → parse → policy → route → forward → respond → meter.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tokenrouter_core::Usage;
use tokenrouter_providers::openai;
use tokenrouter_providers::passthrough::RawObject;

use crate::auth::Authed;
use crate::dispatch::{self, Answer};
use crate::edge::{RequestId, X_PROVIDER, json_error, read_body};
use crate::error::ApiError;
use crate::metering::{Measured, MeterContext};
use crate::policy::model_allowed;
use crate::state::AppState;
use crate::streaming::{MeteredSse, Settlement};

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
        openai::inspect_chat(&request).map_err(|e| ApiError::invalid(e.message, Some(e.param)))?;
    let model = config
        .model(&view.model)
        .ok_or_else(|| ApiError::ModelNotFound(view.model.clone()))?;
    if !model_allowed(&key, &model.id) {
        return Err(ApiError::ModelNotAllowed(model.id.clone()));
    }
    let deployment = model.live_deployments().next().ok_or_else(|| {
        ApiError::UpstreamUnavailable(format!(
            "No deployment of '{}' can serve requests in this build.",
            model.id
        ))
    })?;
    openai::prepare_upstream_chat(&mut request, &view, &deployment.upstream_model);
    let upstream_body = Bytes::from(request.to_vec());
    drop(request);

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
    let answer = dispatch::send(
        &state.upstream,
        deployment,
        "/chat/completions",
        upstream_body,
        view.stream,
    )
    .await;
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
            let measured = match openai::response_usage(&body) {
                Some(usage) => Measured::Reported(usage),
                None => Measured::Counted(Usage {
                    prompt_tokens: openai::estimate_prompt_tokens(&bytes),
                    completion_tokens: openai::estimate_completion_tokens(&body),
                    ..Usage::default()
                }),
            };
            state
                .usage
                .record(meter.usage_record(200, measured, false))
                .await;
            json_response(StatusCode::OK, body)
        }
        Ok(Answer::Stream(upstream)) => {
            let settlement = Settlement {
                meter,
                writer: state.usage.clone(),
                request_body: bytes,
            };
            let body = MeteredSse::new(upstream, !view.include_usage, settlement);
            let mut response = Response::new(Body::new(body));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
    };
    if let Some(provider) = provider {
        response.headers_mut().insert(X_PROVIDER.clone(), provider);
    }
    Ok(response)
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
