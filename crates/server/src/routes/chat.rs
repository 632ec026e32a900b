//! `POST /v1/chat/completions`: auth → parse → policy → route → attempts (retries and
//! fallbacks) → respond → meter.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use tokenrouter_core::Usage;
use tokenrouter_core::chat::ChatRequest;
use tokenrouter_providers::adapter::{Adapter, ResponseMeta, Target};
use tokenrouter_providers::openai::{self, ChatView};
use tokenrouter_providers::passthrough::RawObject;
use tokenrouter_store::{Hold, KeyRow, UsageRecord};

use crate::config::{Billing, Config, Deployment, Model};
use crate::dispatch::{self, Answer, Outbound};
use crate::edge::{RequestId, X_PROVIDER, json_error, read_body};
use crate::error::ApiError;
use crate::limits::{self, Admission};
use crate::metering::{Measured, MeterContext, Unanswered};
use crate::policy::Permitted;
use crate::routing::Strategy;
use crate::settlement::Reservation;
use crate::state::AppState;
use crate::streaming::{MeteredSse, Settlement, Transform, Upstream};
use crate::{policy, tokens};

static X_ATTEMPTS: HeaderName = HeaderName::from_static("x-tokenrouter-attempts");
static X_FALLBACK_MODEL: HeaderName = HeaderName::from_static("x-tokenrouter-fallback-model");
static X_STRATEGY: HeaderName = HeaderName::from_static("x-tokenrouter-strategy");
static X_FALLBACK: HeaderName = HeaderName::from_static("x-tokenrouter-fallback");

pub async fn completions(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Permitted(key): Permitted,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut attempts = 0;
    let result = serve(&state, request_id, key.clone(), &headers, body, &mut attempts).await;
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    state.limits.stamp(&key, response.headers_mut(), Instant::now());
    if attempts > 0 {
        response.headers_mut().insert(X_ATTEMPTS.clone(), HeaderValue::from(attempts));
    }
    response
}

async fn serve(
    state: &AppState,
    request_id: String,
    key: Arc<KeyRow>,
    headers: &HeaderMap,
    body: Body,
    attempts: &mut u32,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let config = state.config.load_full();
    let bytes = read_body(body, headers, config.server.max_body_bytes).await?;
    let mut request = RawObject::parse(&bytes).map_err(|e| json_error(&bytes, &e))?;
    let view = openai::inspect_chat(&request).map_err(|e| ApiError::invalid_param(e.message, e.param))?;
    let primary = policy::allowed_model(&config, &key, &view.model)?;
    let strategy = strategy(headers, primary, &config)?;
    let chain = fallback_chain(headers, &request, primary, &config, &key)?;
    request.remove("models");

    policy::check_context(&bytes, policy::clamp_output(view.max_tokens, primary), primary)?;
    let estimate = limits::estimate(&bytes, policy::clamp_output(view.max_tokens, primary));
    let admission = state.limits.admit(&key, estimate, Instant::now()).await?;
    let Some(first) = primary.deployments.first() else {
        admission.settle(0);
        return Err(ApiError::UpstreamUnavailable(format!("'{}' has no deployment.", primary.id)));
    };
    let reservation = match reserve(state, &request_id, &key, &bytes, &view, &chain, &config).await {
        Ok(reservation) => reservation,
        Err(e) => {
            admission.settle(0);
            return Err(e);
        }
    };
    let first = Served { model: primary, deployment: first, adapter: None, fallback: false };
    let mut unanswered = Unanswered::new(
        meter(&request_id, &key, &first, view.stream, started),
        reservation,
        state.usage.clone(),
        bytes.clone(),
    );

    let deadline = started + config.server.request_timeout;
    let mut last_error: Option<ApiError> = None;
    let mut refused_here: Option<ApiError> = None;
    let mut cooling: Option<Duration> = None;
    'models: for (position, model) in chain.iter().enumerate() {
        let max_out = policy::clamp_output(view.max_tokens, model);
        // The primary model passed this check before anything was reserved; a fallback
        // whose window is too small is skipped.
        if policy::check_context(&bytes, max_out, model).is_err() {
            continue;
        }
        let order = match state.routing.order(model, strategy, Instant::now()) {
            Ok(order) => order,
            Err(all) => {
                cooling = Some(cooling.map_or(all.retry_after, |c| c.min(all.retry_after)));
                continue;
            }
        };
        for deployment in order {
            if *attempts >= config.server.max_attempts || Instant::now() >= deadline {
                break 'models;
            }
            let outbound = match outbound(&mut request, &view, model, deployment, max_out) {
                Ok(outbound) => outbound,
                Err(e) => {
                    refused_here.get_or_insert(e);
                    continue;
                }
            };
            let Some(attempt) = state.routing.begin(deployment, Instant::now()) else { continue };
            *attempts += 1;
            let sent = Instant::now();
            let adapter = dispatch::adapter(deployment.provider.kind);
            let tried = Served { model, deployment, adapter, fallback: position > 0 };
            unanswered.meter = meter(&request_id, &key, &tried, view.stream, started);
            match dispatch::send(&state.upstream, deployment, outbound, view.stream, deadline).await {
                Ok(answer) => {
                    if !matches!(answer, Answer::Refused { .. }) {
                        attempt.succeeded(sent.elapsed(), Instant::now());
                    }
                    let meter = unanswered.meter.clone();
                    let reservation = unanswered.answered();
                    return respond(state, answer, tried, &view, meter, (reservation, admission), bytes).await;
                }
                Err(failed) => {
                    attempt.failed(failed.failure, Instant::now());
                    last_error = Some(failed.error);
                }
            }
        }
    }
    let error = match (last_error, refused_here, cooling) {
        (Some(error), _, _) => error,
        (None, Some(refused), _) => refused,
        (None, None, Some(retry_after)) => ApiError::AllCooling { model: primary.id.clone(), retry_after },
        (None, None, None) => {
            ApiError::UpstreamUnavailable(format!("No deployment of '{}' could be tried.", primary.id))
        }
    };
    let record = unanswered.meter.usage_record(error.status().as_u16(), Measured::Nothing, false);
    finish(state, unanswered.answered(), record).await;
    admission.settle(0);
    Err(error)
}

/// Holds the request's cost ceiling — its estimated prompt and its output limit at the
/// price of the dearest model it may be served by — and records the hold.
async fn reserve(
    state: &AppState,
    request_id: &str,
    key: &Arc<KeyRow>,
    body: &[u8],
    view: &ChatView,
    chain: &[&Arc<Model>],
    config: &Config,
) -> Result<Reservation, ApiError> {
    let prompt = tokens::reservation_estimate(body);
    let ceiling = chain
        .iter()
        .map(|m| {
            let output = policy::clamp_output(view.max_tokens, m).unwrap_or(m.max_output_tokens);
            m.price.cost(&Usage { prompt_tokens: prompt, completion_tokens: output, ..Usage::default() })
        })
        .max()
        .unwrap_or_default();
    let enforce = config.server.billing == Billing::Prepaid;
    let reservation = state.book.reserve(&state.db, key, ceiling, enforce).await?;
    let hold = Hold {
        request_id: request_id.to_owned(),
        account_id: key.account_id,
        key_id: key.id.clone(),
        amount: ceiling,
        created_at: tokenrouter_core::clock::now_unix(),
    };
    state.usage.hold(hold).await;
    Ok(reservation)
}

/// Settles the request's reservation to its actual cost and records its usage.
async fn finish(state: &AppState, reservation: Option<Reservation>, record: UsageRecord) {
    // Room first: from here on nothing awaits, so a cancelled request cannot settle the
    // book without writing the ledger, or the other way round.
    let slot = state.usage.slot().await;
    if let Some(reservation) = reservation {
        reservation.settle(record.cost);
    }
    if let Some(slot) = slot {
        slot.record(record);
    }
}

/// The deployment that answered, and how it was reached.
struct Served<'a> {
    model: &'a Model,
    deployment: &'a Deployment,
    adapter: Option<&'static dyn Adapter>,
    fallback: bool,
}

fn meter(request_id: &str, key: &Arc<KeyRow>, served: &Served<'_>, stream: bool, started: Instant) -> MeterContext {
    MeterContext {
        request_id: request_id.to_owned(),
        key: key.clone(),
        model: served.model.id.clone(),
        provider: served.deployment.provider.name.clone(),
        upstream_model: served.deployment.upstream_model.clone(),
        endpoint: "chat.completions",
        stream,
        // Clients pay the model's price; a deployment's own price is what it costs us.
        price: served.model.price,
        token_cap: served.model.context_window,
        started,
    }
}

/// `X-TokenRouter-Strategy`, else the model's, else the server's.
fn strategy(headers: &HeaderMap, model: &Model, config: &Config) -> Result<Strategy, ApiError> {
    match headers.get(&X_STRATEGY).map(|v| v.to_str().unwrap_or("")) {
        Some(text) => text.parse().map_err(|e: String| ApiError::invalid(format!("X-TokenRouter-Strategy: {e}"))),
        None => Ok(model.strategy.unwrap_or(config.server.strategy)),
    }
}

/// The primary model, then the fallbacks from `X-TokenRouter-Fallback`, else the body's
/// `models`, else the model's configured fallbacks. Each must exist and be allowed.
fn fallback_chain<'c>(
    headers: &HeaderMap,
    request: &RawObject<'_>,
    primary: &'c Arc<Model>,
    config: &'c Config,
    key: &KeyRow,
) -> Result<Vec<&'c Arc<Model>>, ApiError> {
    let named: Vec<String> = if let Some(value) = headers.get(&X_FALLBACK) {
        let text = value.to_str().map_err(|_| ApiError::invalid("X-TokenRouter-Fallback is not valid text."))?;
        text.split(',').map(str::trim).filter(|m| !m.is_empty()).map(str::to_owned).collect()
    } else if let Some(models) = request.get("models") {
        serde_json::from_str(models.get()).map_err(|_| {
            ApiError::invalid_param("Invalid type for 'models': expected an array of model ids.", "models")
        })?
    } else {
        primary.fallbacks.clone()
    };
    let mut chain = vec![primary];
    for id in named {
        let model = policy::allowed_model(config, key, &id)?;
        if !chain.iter().any(|m| m.id == model.id) {
            chain.push(model);
        }
    }
    Ok(chain)
}

/// The request as this deployment takes it: the raw body for an OpenAI-compatible
/// upstream, or the typed request encoded by the provider's adapter (what it cannot
/// express is a 400 naming the field).
fn outbound(
    request: &mut RawObject<'_>,
    view: &ChatView,
    model: &Model,
    deployment: &Deployment,
    max_out: Option<u64>,
) -> Result<Outbound, ApiError> {
    policy::apply_output_limit(request, view, max_out);
    let Some(adapter) = dispatch::adapter(deployment.provider.kind) else {
        let mut upstream = request.clone();
        openai::prepare_upstream_chat(&mut upstream, view, &deployment.upstream_model, deployment.provider.dialect);
        return Ok(Outbound::Raw { path: "/chat/completions", body: Bytes::from(upstream.to_vec()) });
    };
    let json = request.to_vec();
    let mut deserializer = serde_json::Deserializer::from_slice(&json);
    let typed: ChatRequest = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        ApiError::invalid_param(format!("Invalid value for '{path}': {}", e.inner()), path)
    })?;
    let target = Target { upstream_model: &deployment.upstream_model, max_output_tokens: model.max_output_tokens };
    let encoded = adapter
        .encode_request(&typed, &target, view.stream)
        .map_err(|u| ApiError::invalid_param(u.message, u.param))?;
    Ok(Outbound::Translated { adapter, encoded })
}

async fn respond(
    state: &AppState,
    answer: Answer,
    served: Served<'_>,
    view: &ChatView,
    meter: MeterContext,
    (reservation, admission): (Option<Reservation>, Admission),
    request_body: Bytes,
) -> Result<Response, ApiError> {
    let meta = ResponseMeta {
        id: format!("chatcmpl-{}", meter.request_id.trim_start_matches("req_")),
        model: served.model.id.clone(),
        created: tokenrouter_core::clock::now_unix(),
        include_usage: view.include_usage,
    };
    let mut response = match answer {
        Answer::Refused { status, body } => {
            admission.settle(0);
            finish(state, reservation, meter.usage_record(status.as_u16(), Measured::Nothing, false)).await;
            json_response(status, body)
        }
        Answer::Complete(body) => {
            let (body, measured) = match complete(served.adapter, body, &request_body, &meta) {
                Ok(done) => done,
                Err(e) => {
                    finish(state, reservation, meter.usage_record(e.status().as_u16(), Measured::Nothing, false)).await;
                    return Err(e);
                }
            };
            admission.settle(limits::used_tokens(measured));
            finish(state, reservation, meter.usage_record(200, measured, false)).await;
            json_response(StatusCode::OK, body)
        }
        Answer::Stream { first, rest } => {
            let transform = match served.adapter {
                None => Transform::PassThrough(!view.include_usage),
                Some(adapter) => Transform::Decode(adapter.stream_decoder(meta.clone())),
            };
            let upstream = Upstream { first, rest, idle_timeout: served.deployment.idle_timeout };
            let settlement = Settlement { meter, writer: state.usage.clone(), reservation, admission, request_body };
            sse_response(MeteredSse::new(upstream, transform, meta, settlement))
        }
    };
    let headers = response.headers_mut();
    if let Ok(provider) = HeaderValue::try_from(served.deployment.provider.name.as_str()) {
        headers.insert(X_PROVIDER.clone(), provider);
    }
    if served.fallback
        && let Ok(model) = HeaderValue::try_from(served.model.id.as_str())
    {
        headers.insert(X_FALLBACK_MODEL.clone(), model);
    }
    Ok(response)
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
                ApiError::UpstreamUnavailable(format!("The provider's answer could not be read: {}", f.message))
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
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn json_response(status: StatusCode, body: Bytes) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}
