//! `POST /v1/completions` (legacy text completions): passed through to OpenAI-compatible
//! upstreams, expressed as a single-turn chat for the others.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::HeaderMap;
use tokenrouter_providers::completions::{self, Ids};
use tokenrouter_providers::openai::ChatView;
use tokenrouter_providers::passthrough::RawObject;
use tokenrouter_providers::surface::Surface;

use crate::edge::{RequestId, json_error, read_body};
use crate::error::ApiError;
use crate::pipeline::{self, Inference, Native, NativeApi, Translation, Work};
use crate::policy::Permitted;
use crate::state::AppState;

pub async fn create(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Permitted(key): Permitted,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let inference = inference(&state, &request_id, &headers, body).await;
    pipeline::run(&state, "completions", request_id, key, &headers, inference).await
}

async fn inference(state: &AppState, request_id: &str, headers: &HeaderMap, body: Body) -> Result<Inference, ApiError> {
    let limit = state.config.load().server.max_body_bytes;
    let bytes = read_body(body, headers, limit).await?;
    let request = RawObject::parse(&bytes).map_err(|e| json_error(&bytes, &e))?;
    let legacy = completions::inspect(&request).map_err(|e| ApiError::invalid_param(e.message, e.param))?;
    let native_view = ChatView {
        model: legacy.model,
        stream: legacy.stream,
        include_usage: legacy.include_usage,
        max_tokens: legacy.max_tokens,
    };
    let ids = Ids {
        id: format!("cmpl-{}", request_id.trim_start_matches("req_")),
        created: tokenrouter_core::clock::now_unix(),
    };
    // A prompt chat cannot express (several prompts, token ids, echo, …) can still go to
    // an OpenAI-compatible upstream as it is.
    let (canonical, view, surface) = match completions::translate(&bytes, ids) {
        Ok(translated) => {
            let (canonical, view) = pipeline::canonical(&translated.chat, &bytes)?;
            let surface: Arc<dyn Surface> = Arc::new(translated.surface);
            (canonical, view, Ok(surface))
        }
        Err(unsupported) => (bytes.clone(), native_view.clone(), Err(unsupported)),
    };
    let native = Native {
        api: NativeApi::Completions,
        body: bytes,
        view: native_view,
        hosted: Default::default(),
        headers: Vec::new(),
        answer_headers: Vec::new(),
    };
    Ok(Inference {
        endpoint: "completions",
        body: canonical,
        view: Some(view),
        work: Work::Surface(Translation { surface, native: Some(Box::new(native)), keeper: None }),
        headers: Vec::new(),
        unseen_history: false,
    })
}
