//! `POST /v1/responses` (OpenAI's Responses API, what Codex CLI speaks): passed through to
//! upstreams that serve it themselves (`responses_api`), translated into chat for every
//! other one and answered in Responses' shape — kept for `previous_response_id` unless
//! `store: false`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tokenrouter_core::HostedCalls;
use tokenrouter_providers::adapter::Unsupported;
use tokenrouter_providers::openai::ChatView;
use tokenrouter_providers::passthrough::{RawObject, raw_from_vec};
use tokenrouter_providers::responses::{self, Ids, Options, ResponsesRequest, Translated};
use tokenrouter_providers::surface::Surface;
use tokenrouter_store::KeyRow;
use tokenrouter_store::{Job, JobKind, JobStatus};

use crate::config::{Config, ProviderKind};
use crate::edge::{RequestId, expect_json_object, json_error, read_body};
use crate::error::ApiError;
use crate::jobs::{self, Submission};
use crate::pipeline::{self, Inference, Native, NativeApi, Translation, Work};
use crate::policy::Permitted;
use crate::retention::{Keeper, SERVED_UPSTREAM};
use crate::state::AppState;

pub async fn create(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Permitted(key): Permitted,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let limit = state.config.load().server.max_body_bytes;
    let bytes = match read_body(body, &headers, limit).await {
        Ok(bytes) => bytes,
        Err(e) => return pipeline::run(&state, "responses", request_id, key, &headers, Err(e)).await,
    };
    if let Some(queued) = background(&bytes) {
        return submit(&state, request_id, key, &headers, queued).await;
    }
    let inference = inference_of(&state, &request_id, &key, bytes).await;
    pipeline::run(&state, "responses", request_id, key, &headers, inference).await
}

/// A `background: true` request's body without that field (the job runs it as an
/// ordinary request); `None` for any other body.
fn background(bytes: &Bytes) -> Option<Bytes> {
    let mut request = RawObject::parse(bytes).ok()?;
    if request.get("background")?.get() != "true" {
        return None;
    }
    request.remove("background");
    Some(Bytes::from(request.to_vec()))
}

/// Queues a background response: the response object, `queued`, under the id it will
/// keep (OpenAI's background mode).
async fn submit(state: &AppState, request_id: String, key: Arc<KeyRow>, headers: &HeaderMap, body: Bytes) -> Response {
    let streamed = RawObject::parse(&body).ok().and_then(|o| o.get("stream").map(|v| v.get() == "true"));
    if streamed == Some(true) {
        let refusal = ApiError::invalid_param(
            "A background response cannot stream through this gateway: poll GET /v1/responses/{id} instead.",
            "stream",
        );
        return refusal.into_response();
    }
    let inference = inference_of(state, &request_id, &key, body.clone()).await;
    let submission = Submission {
        id: response_id(&request_id),
        kind: JobKind::Response,
        endpoint: "responses",
        request_id,
        key,
        body: body.clone(),
    };
    // Boxed, as in chat completions: kept out of every request's handler future.
    match Box::pin(jobs::submit(state, submission, headers, inference)).await {
        Ok(job) => {
            let object = pending(&job.id, job.created_at, &job.model, JobStatus::Queued, &body, None);
            pipeline::json_response(StatusCode::OK, Bytes::from(object.to_string()))
        }
        Err(refusal) => refusal,
    }
}

/// The response object of a background response not completed: its request's settings
/// and its status (with the error of a failed one).
fn pending(id: &str, created_at: i64, model: &str, status: JobStatus, request: &[u8], error: Option<Value>) -> Value {
    let asked: Value = serde_json::from_slice(request).unwrap_or(Value::Null);
    let field = |name: &str, default: Value| asked.get(name).cloned().unwrap_or(default);
    let status = match status {
        JobStatus::Expired => "incomplete",
        other => other.as_str(),
    };
    json!({
        "id": id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": true,
        "error": error,
        "incomplete_details": null,
        "instructions": field("instructions", Value::Null),
        "max_output_tokens": field("max_output_tokens", Value::Null),
        "metadata": field("metadata", json!({})),
        "model": model,
        "output": [],
        "parallel_tool_calls": field("parallel_tool_calls", Value::Bool(true)),
        "previous_response_id": field("previous_response_id", Value::Null),
        "store": field("store", Value::Bool(true)),
        "temperature": field("temperature", Value::Null),
        "text": field("text", json!({"format": {"type": "text"}})),
        "tool_choice": field("tool_choice", json!("auto")),
        "tools": field("tools", json!([])),
        "top_p": field("top_p", Value::Null),
        "truncation": field("truncation", json!("disabled")),
        "usage": null,
    })
}

/// A background response as its poller sees it now.
fn background_object(job: &Job) -> Value {
    if job.status == JobStatus::Completed
        && let Some(result) = job.result.as_deref().and_then(|r| serde_json::from_str::<Value>(r).ok())
    {
        return result;
    }
    let error = job.error.as_deref().and_then(|e| serde_json::from_str::<Value>(e).ok()).map(|e| {
        json!({"code": e.get("code").cloned().unwrap_or(Value::Null), "message": e.get("message").cloned().unwrap_or(Value::Null)})
    });
    pending(&job.id, job.created_at, &job.model, job.status, &job.request, error)
}

/// The id a response gets from its request id.
fn response_id(request_id: &str) -> String {
    format!("resp_{}", request_id.trim_start_matches("req_"))
}

/// The inference of a Responses body: translated into chat, or passed to an upstream that
/// speaks the API itself (a job builds it again from the same body when it runs).
pub async fn inference_of(
    state: &AppState,
    request_id: &str,
    key: &KeyRow,
    bytes: Bytes,
) -> Result<Inference, ApiError> {
    let config = state.config.load_full();
    expect_json_object(&bytes)?;
    let request = responses::parse(&bytes).map_err(ApiError::unsupported)?;
    let native_view = ChatView {
        model: request.model().to_owned(),
        stream: request.stream(),
        include_usage: false,
        max_tokens: request.max_output_tokens,
    };
    let native_possible = served_natively(&config, &native_view.model);
    // Hosted tools run only where the body is passed on natively; there they are held for.
    let hosted = responses::native::hosted_ceiling(&request);
    // A web search without `max_tool_calls` is sent with the one it is held for, so the
    // hold bounds its calls.
    let bytes = if hosted.web_search > 0 && request.extra.get("max_tool_calls").is_none() {
        let mut body = RawObject::parse(&bytes).map_err(|e| json_error(&bytes, &e))?;
        body.set("max_tool_calls", raw_from_vec(HostedCalls::HELD_WITHOUT_LIMIT.to_string().into_bytes()));
        Bytes::from(body.to_vec())
    } else {
        bytes
    };
    let mut keeper = if request.store == Some(false) {
        None
    } else {
        Keeper::new(state.db.clone(), key.account_id, config.server.response_retention)
    };
    // Only responses this account has here can be continued (never an id merely passed
    // on to an upstream, which would answer for any account).
    let previous = match request.previous_response_id() {
        Some(id) => Some(state.retention.recall(&state.db, key.account_id, id).await?),
        None => None,
    };
    let served_upstream = previous.as_ref().and_then(|chain| chain.last()).map(Vec::as_slice) == Some(SERVED_UPSTREAM);
    if served_upstream {
        let refusal = Unsupported::new(
            "previous_response_id",
            "This response was served by a provider that keeps the conversation itself; only such a \
             provider can continue it.",
        );
        if !native_possible {
            return Err(ApiError::unsupported(refusal));
        }
        let mut inference = native_only(bytes, native_view, hosted, refusal, keeper);
        inference.unseen_history = true;
        return Ok(inference);
    }
    let continues = previous.is_some();
    if let Some(id) = request.previous_response_id().filter(|_| continues) {
        keeper = keeper.map(|keeper| keeper.continuing(id));
    }
    let translated = match translate(&config, request_id, request, previous.as_deref()) {
        Ok(translated) => translated,
        // Only an upstream that speaks the API itself can take what did not translate
        // (a hosted tool it runs, …).
        Err(refusal) if native_possible && !continues => {
            return Ok(native_only(bytes, native_view, hosted, refusal, keeper));
        }
        Err(refusal) => return Err(ApiError::unsupported(refusal)),
    };
    let (canonical, view) = pipeline::canonical(&translated.chat, &bytes)?;
    let answer_headers = pipeline::dropped_tools(&translated.dropped_tools);
    let native = (native_possible && !continues).then(|| {
        Box::new(Native {
            api: NativeApi::Responses,
            body: bytes,
            view: native_view,
            hosted,
            headers: Vec::new(),
            answer_headers: Vec::new(),
        })
    });
    let surface: Arc<dyn Surface> = Arc::new(translated.surface);
    Ok(Inference {
        endpoint: "responses",
        body: canonical,
        view: Some(view),
        work: Work::Surface(Translation { surface: Ok(surface), native, keeper }),
        headers: answer_headers,
        unseen_history: false,
    })
}

/// `GET /v1/responses/{id}`: a background response as it stands, or a kept response as
/// its client received it.
pub async fn retrieve(
    State(state): State<AppState>,
    Permitted(key): Permitted,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if let Some(job) = background_job(&state, &id, key.account_id).await? {
        return Ok(pipeline::json_response(StatusCode::OK, Bytes::from(background_object(&job).to_string())));
    }
    let answer = state.retention.answer(&state.db, key.account_id, &id).await?;
    Ok(pipeline::json_response(StatusCode::OK, Bytes::from(answer)))
}

/// `POST /v1/responses/{id}/cancel`: cancels a background response that has not finished
/// (409 when it has; only background responses can be cancelled).
pub async fn cancel(
    State(state): State<AppState>,
    Permitted(key): Permitted,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if background_job(&state, &id, key.account_id).await?.is_none() {
        return Err(ApiError::NotFound(format!(
            "No background response found with id '{id}' (only background responses can be cancelled)."
        )));
    }
    let mut job = crate::routes::jobs::cancel_job(&state, &id, key.account_id).await?;
    job.status = JobStatus::Cancelled;
    Ok(pipeline::json_response(StatusCode::OK, Bytes::from(background_object(&job).to_string())))
}

/// The account's background response `id`, with its request body.
async fn background_job(state: &AppState, id: &str, account: i64) -> Result<Option<Job>, ApiError> {
    let job = state.db.job(id, account).await.map_err(crate::signin::store_error)?;
    Ok(job.filter(|j| j.kind == JobKind::Response))
}

/// `DELETE /v1/responses/{id}`: forgets a kept response.
pub async fn delete(
    State(state): State<AppState>,
    Permitted(key): Permitted,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state.retention.forget(&state.db, key.account_id, &id).await?;
    let body = serde_json::json!({"id": id, "object": "response", "deleted": true});
    Ok(pipeline::json_response(StatusCode::OK, Bytes::from(body.to_string())))
}

/// The request as chat, with the conversation it continues.
fn translate(
    config: &Config,
    request_id: &str,
    request: ResponsesRequest,
    previous: Option<&[Vec<u8>]>,
) -> Result<Translated, Unsupported> {
    let ids = Ids { response_id: response_id(request_id), created_at: tokenrouter_core::clock::now_unix() };
    let options = Options { unsupported_tools: config.server.unsupported_tools };
    responses::translate(request, previous, ids, &options)
}

/// A request only native upstreams can serve: a translated one would be refused with
/// the translation's error.
fn native_only(
    bytes: Bytes,
    view: ChatView,
    hosted: HostedCalls,
    refusal: Unsupported,
    keeper: Option<Keeper>,
) -> Inference {
    Inference {
        endpoint: "responses",
        body: bytes.clone(),
        view: Some(view.clone()),
        work: Work::Surface(Translation {
            surface: Err(refusal),
            native: Some(Box::new(Native {
                api: NativeApi::Responses,
                body: bytes,
                view,
                hosted,
                headers: Vec::new(),
                answer_headers: Vec::new(),
            })),
            keeper,
        }),
        headers: Vec::new(),
        unseen_history: false,
    }
}

/// Whether some deployment of the model speaks the Responses API itself.
fn served_natively(config: &Config, model: &str) -> bool {
    config.model(model).is_some_and(|m| {
        m.deployments.iter().any(|d| d.provider.kind == ProviderKind::OpenAi && d.provider.responses_api)
    })
}
