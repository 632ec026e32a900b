//! The one pipeline every inference route runs once it has parsed its surface into a
//! [`Inference`]: policy → limits → reservation → routing → attempts (retries and fallbacks)
//! → respond → settle. No surface can bypass a step.

mod answer;
mod outbound;

pub use answer::{json_response, usage_of};

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use tokenrouter_core::chat::ChatRequest;
use tokenrouter_core::{HostedCalls, NanoUsd, Usage};
use tokenrouter_providers::adapter::Unsupported;
use tokenrouter_providers::embeddings::EmbeddingsRequest;
use tokenrouter_providers::openai::{self, ChatView};
use tokenrouter_providers::passthrough::RawObject;
use tokenrouter_providers::surface::Surface;
use tokenrouter_store::{KeyRow, UsageRecord};

use crate::config::{Billing, Config, Deployment, Model, ProviderKind};
use crate::dispatch;
use crate::edge::json_error;
use crate::error::ApiError;
use crate::instances::routing::Catalog;
use crate::limits;
use crate::metering::{Measured, MeterContext, Unanswered};
use crate::metrics::AttemptOutcome;
use crate::retention::Keeper;
use crate::routing::Strategy;
use crate::settlement::{self, Holding, OnTheWay, Reservation};
use crate::state::AppState;
use crate::{policy, tokens};

static X_ATTEMPTS: HeaderName = HeaderName::from_static("x-tokenrouter-attempts");
static X_STRATEGY: HeaderName = HeaderName::from_static("x-tokenrouter-strategy");
static X_FALLBACK: HeaderName = HeaderName::from_static("x-tokenrouter-fallback");
/// Names the hosted tools removed from a request because no upstream here can run them.
static X_DROPPED_TOOLS: HeaderName = HeaderName::from_static("x-tokenrouter-dropped-tools");

/// One inference request, parsed by its route.
pub struct Inference {
    /// The usage row's endpoint (`chat.completions`, `responses`, …).
    pub endpoint: &'static str,
    /// The body the attempts are built from: the client's chat body, the canonical chat
    /// body a surface was translated into, or the embeddings body.
    pub body: Bytes,
    /// What the gateway needs to know of the request; `None` for a chat body, which the
    /// pipeline reads itself (so it is parsed once).
    pub view: Option<ChatView>,
    pub work: Work,
    /// Headers for a successful answer (e.g. the tools that were dropped).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The upstream holds a conversation this body does not show (a natively served
    /// `previous_response_id`): the reservation covers the model's whole context window.
    pub unseen_history: bool,
}

pub enum Work {
    /// Chat Completions, as the client sent them.
    Chat,
    /// Another surface, translated into chat.
    Surface(Translation),
    Embeddings(Box<EmbeddingsRequest>),
}

pub struct Translation {
    /// The surface, or why this request cannot be expressed as chat (then only the
    /// `native` path can serve it).
    pub surface: Result<Arc<dyn Surface>, Unsupported>,
    /// The client's own body, sent as it is to OpenAI-compatible upstreams, which speak
    /// this surface themselves (legacy completions).
    pub native: Option<Box<Native>>,
    /// Keeps the finished answer (Responses stored for `previous_response_id`).
    pub keeper: Option<Keeper>,
}

pub struct Native {
    pub api: NativeApi,
    pub body: Bytes,
    pub view: ChatView,
    /// The most calls of tools billed per call that the body's hosted tools may make where
    /// it is served natively (only there do they run): the hold covers them.
    pub hosted: HostedCalls,
    /// Client headers the upstream must see with the body (Anthropic's `anthropic-beta`,
    /// which some server tools need).
    pub headers: Vec<(&'static str, String)>,
    /// Headers for an answer served natively (the server tools left out of `body`).
    pub answer_headers: Vec<(HeaderName, HeaderValue)>,
}

/// An API that OpenAI-compatible upstreams may speak themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeApi {
    Chat,
    /// Legacy completions: every OpenAI-compatible upstream.
    Completions,
    /// The Responses API: upstreams configured with `responses_api`.
    Responses,
    /// Anthropic's Messages API: Anthropic upstreams, for a request offering server tools.
    Messages,
}

impl NativeApi {
    /// The path under the upstream's base URL.
    pub fn path(self) -> &'static str {
        match self {
            NativeApi::Chat => "/chat/completions",
            NativeApi::Completions => "/completions",
            NativeApi::Responses => "/responses",
            NativeApi::Messages => "/messages",
        }
    }

    pub fn served_by(self, provider: &crate::config::Provider) -> bool {
        let compatible = provider.kind == ProviderKind::OpenAi;
        match self {
            NativeApi::Chat | NativeApi::Completions => compatible,
            NativeApi::Responses => compatible && provider.responses_api,
            NativeApi::Messages => provider.kind == ProviderKind::Anthropic,
        }
    }
}

/// A request translated into chat: its canonical body and what the pipeline needs to
/// know of it. The client's fallback `models` (a gateway field, on every surface) are
/// carried over from its `original` body.
pub fn canonical(chat: &ChatRequest, original: &[u8]) -> Result<(Bytes, ChatView), ApiError> {
    let view = ChatView {
        model: chat.model.clone(),
        stream: chat.stream.unwrap_or(false),
        include_usage: chat.include_usage(),
        max_tokens: chat.max_output(),
    };
    let mut body =
        serde_json::to_vec(chat).map_err(|e| ApiError::invalid(format!("The request could not be translated: {e}")))?;
    if memchr::memmem::find(original, b"\"models\"").is_some()
        && let Ok(client) = RawObject::parse(original)
        && let Some(models) = client.get("models")
        && let Ok(mut translated) = RawObject::parse(&body)
    {
        translated.set("models", models.to_owned());
        body = translated.to_vec();
    }
    Ok((Bytes::from(body), view))
}

/// `X-TokenRouter-Dropped-Tools` naming the tools a translation removed, if any.
pub fn dropped_tools(tools: &[String]) -> Vec<(HeaderName, HeaderValue)> {
    let value = (!tools.is_empty()).then(|| HeaderValue::try_from(tools.join(", ")).ok()).flatten();
    value.map(|v| (X_DROPPED_TOOLS.clone(), v)).into_iter().collect()
}

/// What a request's run has learned so far, for its answer's headers and for the request
/// log when it ends in an error.
#[derive(Default)]
struct Progress {
    /// Upstream attempts made.
    attempts: u32,
    /// A usage record is written for this request whatever happens next.
    metered: bool,
    /// The model asked for, once the body was read.
    model: String,
    stream: bool,
    /// The output limit the client asked for.
    max_tokens: Option<u64>,
}

/// When an inference runs, and how it pays.
pub enum Mode {
    /// Now, answering this request: admitted, held, run.
    Now,
    /// Admitted and held only: the caller queues it as a job, which then owns the hold.
    Submit,
    /// A queued job running: admitted and held when it was submitted.
    Queued(Reservation),
}

/// A request admitted for later ([`Mode::Submit`]): what it holds.
pub struct Admitted {
    pub reservation: Reservation,
    /// The amount held: its cost ceiling.
    pub hold: tokenrouter_core::NanoUsd,
    /// The model as asked for.
    pub model: String,
    /// Its rate limits, counted at its estimate: the run settles them.
    pub admission: limits::Admission,
}

/// What [`serve`] came to.
enum Outcome {
    Answered(Response),
    Admitted(Box<Admitted>),
}

/// Runs an inference and stamps the headers every inference answer carries. A request refused
/// before it reached an upstream (400, 402, 403, 429, …) is recorded in the request log
/// at no cost, with its error's code.
pub async fn run(
    state: &AppState,
    endpoint: &'static str,
    request_id: String,
    key: Arc<KeyRow>,
    headers: &HeaderMap,
    inference: Result<Inference, ApiError>,
) -> Response {
    let mode = Mode::Now;
    match run_as(state, endpoint, request_id, key, headers, inference, mode).await {
        Ok(Outcome::Answered(response)) => response,
        Ok(Outcome::Admitted(_)) => unreachable!("only Mode::Submit stops at admission"),
        Err(response) => response,
    }
}

/// Runs every admission step of an inference (policy, scopes, rate limits, the hold) and
/// stops there: the request is to be queued. A refusal is the answer to send at once.
pub async fn submit(
    state: &AppState,
    endpoint: &'static str,
    request_id: String,
    key: Arc<KeyRow>,
    headers: &HeaderMap,
    inference: Result<Inference, ApiError>,
) -> Result<Admitted, Response> {
    match run_as(state, endpoint, request_id, key, headers, inference, Mode::Submit).await {
        Ok(Outcome::Admitted(admitted)) => Ok(*admitted),
        Ok(Outcome::Answered(response)) | Err(response) => Err(response),
    }
}

/// Runs a queued job's inference on the hold taken at its submission (its rate limits were
/// counted then too).
pub async fn run_queued(
    state: &AppState,
    endpoint: &'static str,
    request_id: String,
    key: Arc<KeyRow>,
    headers: &HeaderMap,
    inference: Result<Inference, ApiError>,
    reservation: Reservation,
) -> Response {
    let mode = Mode::Queued(reservation);
    match run_as(state, endpoint, request_id, key, headers, inference, mode).await {
        Ok(Outcome::Answered(response)) | Err(response) => response,
        Ok(Outcome::Admitted(_)) => unreachable!("only Mode::Submit stops at admission"),
    }
}

async fn run_as(
    state: &AppState,
    endpoint: &'static str,
    request_id: String,
    key: Arc<KeyRow>,
    headers: &HeaderMap,
    inference: Result<Inference, ApiError>,
    mode: Mode,
) -> Result<Outcome, Response> {
    let started = Instant::now();
    let mut progress = Progress::default();
    let traced = state.traces.as_ref().map(|traces| traces.request(headers, endpoint, &request_id));
    let result = match inference {
        Ok(inference) => {
            // Boxed: this future is kilobytes, and a future holding it inline is copied
            // whole each time it moves (created, awaited, boxed by axum): three copies per
            // request, 30 KB in all; boxed here, one of 6 KB (bench/README.md, sixth look).
            let serving =
                Box::pin(serve(state, request_id.clone(), key.clone(), headers, inference, mode, &mut progress));
            match &traced {
                Some(request) => opentelemetry::context::FutureExt::with_context(serving, request.context()).await,
                None => serving.await,
            }
        }
        Err(e) => Err(e),
    };
    let error_code = result.as_ref().err().map(ApiError::code);
    if let Err(error) = &result
        && !progress.metered
    {
        let record = refusal_record(request_id, &key, endpoint, &progress, error, started);
        state.usage.record_now(record);
    }
    let mut response = match result {
        Ok(Outcome::Answered(response)) => response,
        Ok(admitted) => return Ok(admitted),
        Err(e) => e.into_response(),
    };
    state.limits.stamp(&key, response.headers_mut(), Instant::now());
    if progress.attempts > 0 {
        response.headers_mut().insert(X_ATTEMPTS.clone(), HeaderValue::from(progress.attempts));
    }
    if let Some(request) = traced {
        let (model, stream, max_tokens) = (progress.model.as_str(), progress.stream, progress.max_tokens);
        let status = response.status().as_u16();
        request.outcome(crate::telemetry::Outcome { model, stream, max_tokens, status, error: error_code });
        response = crate::telemetry::traced(response, request);
    }
    if response.status().is_success() { Ok(Outcome::Answered(response)) } else { Err(response) }
}

/// The request log's row of a request refused before any upstream was tried.
fn refusal_record(
    request_id: String,
    key: &KeyRow,
    endpoint: &'static str,
    progress: &Progress,
    error: &ApiError,
    started: Instant,
) -> UsageRecord {
    UsageRecord {
        request_id,
        key_id: key.id.clone(),
        account_id: key.account_id,
        model: progress.model.chars().take(200).collect(),
        provider: String::new(),
        upstream_model: String::new(),
        endpoint: endpoint.to_owned(),
        stream: progress.stream,
        status: error.status().as_u16(),
        usage: tokenrouter_core::Usage::default(),
        cost: tokenrouter_core::NanoUsd::ZERO,
        usage_source: tokenrouter_store::UsageSource::None,
        client_disconnected: false,
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        created_at: tokenrouter_core::clock::now_unix(),
        error_code: Some(error.code().to_owned()),
        ttfb_ms: None,
        earning: None,
    }
}

async fn serve(
    state: &AppState,
    request_id: String,
    key: Arc<KeyRow>,
    headers: &HeaderMap,
    mut inference: Inference,
    mode: Mode,
    progress: &mut Progress,
) -> Result<Outcome, ApiError> {
    let started = Instant::now();
    let catalog = state.catalog();
    let config = catalog.config();
    let bytes = inference.body.clone();
    let mut request = RawObject::parse(&bytes).map_err(|e| json_error(&bytes, &e))?;
    let view = match inference.view.take() {
        Some(view) => view,
        None => openai::inspect_chat(&request).map_err(|e| ApiError::invalid_param(e.message, e.param))?,
    };
    let view = &view;
    progress.model.clone_from(&view.model);
    progress.stream = view.stream;
    progress.max_tokens = view.max_tokens;
    let primary = catalog.allowed_model(&key, &view.model)?;
    let strategy = strategy(headers, primary, config)?;
    let chain = fallback_chain(headers, &request, primary, &catalog, &key)?;
    request.remove("models");

    let embeddings = matches!(inference.work, Work::Embeddings(_));
    check_kind(primary, embeddings)?;
    // A client's own body sent natively may carry what its translation dropped (and the
    // upstream still bills): the request is measured by the larger of the two.
    let native_body = native_body(&inference);
    let measured = || std::iter::once(&bytes).chain(native_body.as_ref());
    if !embeddings {
        for body in measured() {
            policy::check_context(body, policy::clamp_output(view.max_tokens, primary), primary)?;
        }
    }
    let output_ceiling =
        |model: &Model| if embeddings { Some(0) } else { policy::clamp_output(view.max_tokens, model) };
    // The client's body is parsed already (`request`; removing "models" changes no count).
    let native_text = native_body.as_deref().map_or(0, tokens::prompt_estimate);
    let estimate = limits::estimate(tokens::prompt_estimate_of(&request).max(native_text), output_ceiling(primary));
    let (submit, adopted) = match mode {
        Mode::Now => (false, None),
        Mode::Submit => (true, None),
        Mode::Queued(reservation) => (false, Some(reservation)),
    };
    // From here until it asks for its hold, a batch of holds gathering waits for it.
    let on_the_way = state.holds.on_the_way();
    let admission = match adopted {
        Some(_) => limits::Admission::none(),
        None => state.limits.admit(&key, estimate, Instant::now()).await?,
    };
    let Some(first) = primary.deployments.first() else {
        admission.cancel();
        let why = if primary.instances { "no deployment online right now" } else { "no deployment" };
        return Err(ApiError::UpstreamUnavailable(format!("'{}' has {why}.", primary.id)));
    };
    let prompt =
        if inference.unseen_history { None } else { measured().map(|b| tokens::reservation_estimate(b)).max() };
    // Every choice asked for (`n`) may generate up to the output limit.
    let n = request.get("n").and_then(|n| n.get().parse::<u64>().ok()).unwrap_or(1).max(1);
    let hosted = native_hosted(&inference);
    let ceiling = ceiling(prompt, &chain, hosted, |m: &Model| {
        Some(output_ceiling(m).unwrap_or(m.max_output_tokens).saturating_mul(n))
    });
    let holding = Holding {
        request_id: &request_id,
        key: &key,
        model: &primary.id,
        endpoint: inference.endpoint,
        stream: view.stream,
    };
    let (reservation, ceiling) = match adopted {
        Some(reservation) => {
            // Its hold was taken when it was queued: nothing to wait for.
            drop(on_the_way);
            let held = reservation.amount();
            (reservation, held)
        }
        None => match reserve(state, on_the_way, holding, ceiling, config).await {
            Ok(reservation) => (reservation, ceiling),
            Err(e) => {
                // Refused (402) before anything was sent: the request costs no rate limit.
                admission.cancel();
                return Err(e);
            }
        },
    };
    if submit {
        let admitted = Admitted { reservation, hold: ceiling, model: primary.id.clone(), admission };
        return Ok(Outcome::Admitted(Box::new(admitted)));
    }
    let first = Served { model: primary, deployment: first, adapter: None, fallback: false };
    progress.metered = true;
    // An instance's prompt count is believed up to the estimate the hold was taken on.
    let measure = Measure { state, prompt_ceiling: prompt.unwrap_or(u64::MAX), hold: ceiling, started };
    let mut unanswered = Unanswered::new(
        meter(&request_id, &key, &first, &inference, view, &measure),
        reservation,
        state.usage.clone(),
        bytes.clone(),
    );

    let deadline = started + config.server.request_timeout;
    let mut last_error: Option<ApiError> = None;
    let mut refused_here: Option<ApiError> = None;
    let mut cooling: Option<Duration> = None;
    let mut disputed: Vec<&Deployment> = Vec::new();
    'models: for (position, model) in chain.iter().enumerate() {
        let max_out = output_ceiling(model);
        // The primary model passed this check before anything was reserved; a fallback
        // whose window is too small is skipped.
        if !embeddings && policy::check_context(&bytes, max_out, model).is_err() {
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
            if progress.attempts >= config.server.max_attempts || Instant::now() >= deadline {
                break 'models;
            }
            let prepared = match outbound::prepare(&mut request, &inference, view, model, deployment, max_out) {
                Ok(prepared) => prepared,
                Err(e) => {
                    refused_here.get_or_insert(e);
                    continue;
                }
            };
            let Some(attempt) = state.routing.begin(deployment, Instant::now()) else { continue };
            progress.attempts += 1;
            let sent = Instant::now();
            let adapter = dispatch::adapter(deployment.provider.kind);
            let tried = Served { model, deployment, adapter, fallback: position > 0 };
            unanswered.meter = meter(&request_id, &key, &tried, &inference, view, &measure);
            let stream = prepared.stream;
            let sent_answer = dispatch::send(&state.upstream, deployment, prepared.outbound, stream, deadline).await;
            let outcome = AttemptOutcome::of_result(&sent_answer);
            state.metrics.attempt(&deployment.provider.name, outcome);
            match sent_answer {
                Ok(answer) => {
                    if outcome != AttemptOutcome::Refused {
                        attempt.succeeded(sent.elapsed(), Instant::now());
                        crate::instances::routing::report(state, deployment, true);
                        // The request was answerable: the instances that refused it failed.
                        for refused in disputed.drain(..) {
                            crate::instances::routing::report(state, refused, false);
                        }
                    }
                    let mut meter = unanswered.meter.clone();
                    meter.ttfb_ms = Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
                    let reservation = unanswered.answered();
                    let held = answer::Held { reservation, admission, request_body: bytes };
                    let shape = (prepared.shape, prepared.one_tool_call);
                    let answered = answer::respond(state, answer, tried, shape, meter, held, inference).await;
                    return answered.map(Outcome::Answered);
                }
                Err(failed) => {
                    attempt.failed(failed.failure, Instant::now());
                    if failed.refusal {
                        // Counted against the instance only if another deployment answers:
                        // a consumer's bad requests cannot take honest instances offline.
                        disputed.push(deployment);
                    } else if !matches!(failed.failure, crate::routing::Failure::RateLimited { .. }) {
                        // A 429 cools the instance here but is no sign it is down.
                        crate::instances::routing::report(state, deployment, false);
                    }
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
    let mut record = unanswered.meter.usage_record(error.status().as_u16(), Measured::Nothing, false);
    record.error_code = Some(error.code().to_owned());
    finish(state, unanswered.answered(), record).await;
    admission.settle(0);
    Err(error)
}

/// An embeddings model answers only `/v1/embeddings`, and that route only them.
fn check_kind(model: &Model, embeddings: bool) -> Result<(), ApiError> {
    let embedding_model = model.capabilities.iter().any(|c| c == "embeddings");
    match (embeddings, embedding_model) {
        (true, false) => Err(ApiError::invalid_param(
            format!(
                "'{}' is not an embeddings model. (An operator can mark a model with the capability \"embeddings\".)",
                model.id
            ),
            "model",
        )),
        (false, true) => Err(ApiError::invalid_param(
            format!("'{}' is an embeddings model: send it to /v1/embeddings.", model.id),
            "model",
        )),
        _ => Ok(()),
    }
}

/// The request's cost ceiling: its estimated prompt and its output limit at the price of
/// the dearest model it may be served by, plus, where one of the model's deployments runs
/// the request's hosted tools (`hosted`: the most calls, and which API serves them), those
/// calls at the dearest such deployment's prices, and each web fetch's page as input
/// ([`HostedCalls::FETCH_CONTENT_TOKENS`], the `max_content_tokens` the gateway sets where
/// the client sets none). Saturating: never a wrap.
/// `prompt` is the body's estimate, `None` when only the model's window bounds it.
fn ceiling(
    prompt: Option<u64>,
    chain: &[&Arc<Model>],
    hosted: Option<(NativeApi, HostedCalls)>,
    output: impl Fn(&Model) -> Option<u64>,
) -> NanoUsd {
    chain
        .iter()
        .map(|m| {
            let output = output(m).unwrap_or(m.max_output_tokens);
            // Each fetched page is read as input, up to its `max_content_tokens`.
            let (calls, fetched) = hosted
                .and_then(|(api, calls)| {
                    let running = m.deployments.iter().filter(|d| api.served_by(&d.provider));
                    let cost = running.map(|d| d.tools.cost(&calls)).max()?;
                    Some((cost, calls.web_fetch.saturating_mul(HostedCalls::FETCH_CONTENT_TOKENS)))
                })
                .unwrap_or((NanoUsd::ZERO, 0));
            let prompt = prompt.unwrap_or(m.context_window).saturating_add(fetched);
            let tokens = m.price.cost(&Usage { prompt_tokens: prompt, completion_tokens: output, ..Usage::default() });
            NanoUsd(tokens.0.saturating_add(calls.0))
        })
        .max()
        .unwrap_or_default()
}

/// The client's own body where it may be sent upstream as it is (natively).
fn native_body(inference: &Inference) -> Option<Bytes> {
    match &inference.work {
        Work::Surface(Translation { native: Some(native), .. }) => Some(native.body.clone()),
        _ => None,
    }
}

/// The hosted tool calls the hold must cover, and the API whose upstreams run them: only a
/// request passed to an upstream natively keeps its hosted tools.
fn native_hosted(inference: &Inference) -> Option<(NativeApi, HostedCalls)> {
    match &inference.work {
        Work::Surface(Translation { native: Some(native), .. }) if !native.hosted.is_empty() => {
            Some((native.api, native.hosted))
        }
        _ => None,
    }
}

/// Holds the request's cost ceiling in the store (402 when it cannot be covered).
async fn reserve(
    state: &AppState,
    on_the_way: OnTheWay,
    holding: Holding<'_>,
    ceiling: tokenrouter_core::NanoUsd,
    config: &Config,
) -> Result<Reservation, ApiError> {
    let enforce = config.server.billing == Billing::Prepaid;
    settlement::reserve(&state.holds, on_the_way, &state.replica.id, holding, ceiling, enforce).await
}

/// Settles the request's reservation to its actual cost and records its usage.
async fn finish(state: &AppState, reservation: Option<Reservation>, record: UsageRecord) {
    // Room first: from here on nothing awaits, so a cancelled request cannot mark its
    // reservation settled without queueing the record that closes its hold (a reservation
    // dropped unsettled releases the hold instead).
    let slot = state.usage.slot().await;
    if let Some(reservation) = reservation {
        reservation.settle(record.cost);
    }
    crate::telemetry::record_usage(&record);
    if let Some(slot) = slot {
        slot.record(record);
    }
}

/// The deployment that answered, and how it was reached.
struct Served<'a> {
    model: &'a Model,
    deployment: &'a Deployment,
    adapter: Option<&'static dyn tokenrouter_providers::adapter::Adapter>,
    fallback: bool,
}

/// What every attempt's meter shares.
struct Measure<'s> {
    state: &'s AppState,
    /// The gateway's own estimate of the prompt's tokens (`u64::MAX`: none).
    prompt_ceiling: u64,
    /// The amount held for the request.
    hold: tokenrouter_core::NanoUsd,
    started: Instant,
}

fn meter(
    request_id: &str,
    key: &Arc<KeyRow>,
    served: &Served<'_>,
    inference: &Inference,
    view: &ChatView,
    measure: &Measure<'_>,
) -> MeterContext {
    let started = measure.started;
    let instance = served.deployment.provider.instance.as_ref().map(|serving| {
        let share = measure.state.config.load().instances.owner_share_ppb;
        let db = measure.state.db.clone();
        let output = match inference.work {
            Work::Embeddings(_) => 0,
            _ => policy::clamp_output(view.max_tokens, served.model).unwrap_or(served.model.max_output_tokens),
        };
        let ceilings = crate::instances::routing::Ceilings {
            prompt: measure.prompt_ceiling,
            completion: output.saturating_mul(choices(&inference.body)),
            charge: measure.hold,
        };
        crate::instances::routing::InstanceMeter::new(serving, share, ceilings, db)
    });
    MeterContext {
        request_id: request_id.to_owned(),
        key: key.clone(),
        model: served.model.id.clone(),
        provider: served.deployment.provider.name.clone(),
        upstream_model: served.deployment.upstream_model.clone(),
        endpoint: inference.endpoint,
        stream: view.stream,
        // Clients pay the model's price; a deployment's own price is what it costs us.
        // Hosted tool calls cost what they cost where they ran.
        price: tokenrouter_core::Price { tools: served.deployment.tools, ..served.model.price },
        token_cap: served.model.context_window,
        hosted_cap: hosted_cap(inference, served),
        started,
        ttfb_ms: None,
        instance,
    }
}

/// The most hosted tool calls charged for a request served by `served`: those it offered
/// where this deployment runs them (sent natively), none otherwise — an upstream's report
/// of more is not charged. Gemini is not capped: it grounds where its upstream is set up
/// to, no tool in the request.
fn hosted_cap(inference: &Inference, served: &Served<'_>) -> Option<HostedCalls> {
    let provider = &served.deployment.provider;
    if provider.kind == crate::config::ProviderKind::Gemini {
        return None;
    }
    let offered = native_hosted(inference).filter(|(api, _)| api.served_by(provider));
    Some(offered.map(|(_, calls)| calls).unwrap_or_default())
}

/// How many choices a request asks for (`n`, 1 when absent or unreadable).
fn choices(body: &[u8]) -> u64 {
    RawObject::parse(body).ok().and_then(|o| o.get("n").and_then(|n| n.get().parse().ok())).unwrap_or(1).max(1)
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
    catalog: &'c Catalog,
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
        let model = catalog.allowed_model(key, &id)?;
        if !chain.iter().any(|m| m.id == model.id) {
            chain.push(model);
        }
    }
    Ok(chain)
}
