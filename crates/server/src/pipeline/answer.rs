//! The answer of the attempt that succeeded: restated in the client's shape, metered, and
//! settled — at once for a whole answer, at the stream's end for a stream.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode, header};
use tokenrouter_core::Usage;
use tokenrouter_core::chat::ChatCompletion;
use tokenrouter_providers::adapter::{Adapter, ResponseMeta};
use tokenrouter_providers::embeddings::{self, EmbeddingsRequest};
use tokenrouter_providers::surface::{ChunkFeed, Surface};
use tokenrouter_providers::{messages, openai, responses};

use super::outbound::Shape;
use super::{Inference, NativeApi, Served, Work, finish};
use crate::dispatch::Answer;
use crate::edge::X_PROVIDER;
use crate::error::ApiError;
use crate::limits::{self, Admission};
use crate::metering::{Measured, MeterContext};
use crate::retention::Writing;
use crate::settlement::Reservation;
use crate::state::AppState;
use crate::streaming::{MeteredSse, Restating, Settlement, Transform, Upstream};
use crate::tokens;

static X_FALLBACK_MODEL: HeaderName = HeaderName::from_static("x-tokenrouter-fallback-model");

/// What the request still holds when its answer arrives.
pub struct Held {
    pub reservation: Option<Reservation>,
    pub admission: Admission,
    pub request_body: Bytes,
}

pub(super) async fn respond(
    state: &AppState,
    answer: Answer,
    served: Served<'_>,
    (shape, one_tool_call): (Shape, bool),
    meter: MeterContext,
    held: Held,
    inference: Inference,
) -> Result<Response, ApiError> {
    let include_usage = match &shape {
        Shape::Relayed { include_usage, .. } => *include_usage,
        Shape::Restated(_) | Shape::Embeddings => true,
    };
    let meta = ResponseMeta {
        id: format!("chatcmpl-{}", meter.request_id.trim_start_matches("req_")),
        model: served.model.id.clone(),
        created: tokenrouter_core::clock::now_unix(),
        include_usage,
        one_tool_call,
    };
    // A surface's own headers describe its translation: not sent when it passed through.
    // A natively served answer has its own (the server tools left out of its body).
    let translated = !matches!((&inference.work, &shape), (Work::Surface(_), Shape::Relayed { .. }));
    let (mut keeper, embeddings, answer_headers) = match inference.work {
        Work::Surface(translation) => {
            let native = translation.native.map(|n| n.answer_headers).unwrap_or_default();
            (translation.keeper, None, if translated { inference.headers } else { native })
        }
        Work::Embeddings(request) => (None, Some(request), inference.headers),
        Work::Chat => (None, None, inference.headers),
    };
    let Held { reservation, admission, request_body } = held;
    // A kept response is in the store before the client sees its answer end.
    let mut writing: Option<Writing> = None;
    let mut response = match answer {
        Answer::Refused { status, body } => {
            admission.settle(0);
            finish(state, reservation, meter.usage_record(status.as_u16(), Measured::Nothing, false)).await;
            json_response(status, body)
        }
        Answer::Complete(body) => {
            let whole = match (&shape, &embeddings) {
                (Shape::Embeddings, Some(request)) => embedded(served.adapter, body, request, &meta),
                (Shape::Relayed { api: NativeApi::Responses, .. }, _) => {
                    writing = keeper.take().and_then(|keeper| keeper.keep_native(&body));
                    Ok(native_response(body, &request_body))
                }
                (Shape::Relayed { api: NativeApi::Messages, .. }, _) => Ok(native_message(body, &request_body)),
                _ => complete(served.adapter, body, &request_body, &meta),
            };
            // An instance is charged no more than the gateway counts it delivered (a restated
            // surface states the charged usage itself).
            let whole = whole.map(|(body, measured)| {
                let Some(instance) = &meter.instance else { return (body, measured) };
                let own = match shape {
                    Shape::Embeddings => 0,
                    _ => crate::instances::routing::own_completion(
                        crate::instances::routing::answer_text_bytes(&body),
                        0,
                    ),
                };
                // It reported nothing: the gateway's count (which also counts the tool
                // calls' JSON), within the request's bounds.
                if let Measured::Counted(usage) = measured {
                    return (body, Measured::Counted(instance.counted(usage, own)));
                }
                let believed = meter.believed(measured, own, true);
                if believed == measured {
                    return (body, measured);
                }
                // It over-reported: the consumer reads the usage they are charged for.
                let charged = crate::instances::usage::bounded(usage_of(believed), meter.token_cap);
                let states_usage = matches!(
                    shape,
                    Shape::Embeddings | Shape::Relayed { api: NativeApi::Chat | NativeApi::Completions, .. }
                );
                let restated = states_usage.then(|| crate::instances::usage::restate(&body, &charged)).flatten();
                let body = restated.map_or(body, Bytes::from);
                (body, Measured::Counted(charged))
            });
            if let Ok((body, _)) = &whole {
                crate::telemetry::record_finish_reasons(|| crate::telemetry::finish::of_answer(body));
            }
            let restated = whole.and_then(|(body, measured)| match &shape {
                Shape::Restated(surface) => {
                    let out = restate(surface.as_ref(), &body, measured)?;
                    writing = keeper.and_then(|keeper| keeper.keep(surface.as_ref(), &out));
                    Ok((Bytes::from(out), measured))
                }
                _ => Ok((body, measured)),
            });
            let (body, measured) = match restated {
                Ok(done) => done,
                Err(e) => {
                    finish(state, reservation, meter.usage_record(e.status().as_u16(), Measured::Nothing, false)).await;
                    return Err(e);
                }
            };
            admission.settle(limits::used_tokens(measured));
            finish(state, reservation, meter.usage_record(200, measured, false)).await;
            if let Some(writing) = writing {
                writing.await;
            }
            json_response(StatusCode::OK, body)
        }
        Answer::Stream { first, rest } => {
            let transform = match (served.adapter, &shape) {
                (None, Shape::Relayed { api: NativeApi::Responses, .. }) => Transform::NativeResponses,
                (Some(_), Shape::Relayed { api: NativeApi::Messages, .. }) => Transform::NativeMessages,
                (None, _) => Transform::PassThrough {
                    strip_usage: !include_usage,
                    legacy: matches!(shape, Shape::Relayed { api: NativeApi::Completions, .. }),
                },
                (Some(adapter), _) => Transform::Decode(adapter.stream_decoder(meta.clone())),
            };
            let restating = match shape {
                Shape::Restated(surface) => Some(Restating { feed: ChunkFeed::new(surface.stream()), surface }),
                _ => None,
            };
            let upstream = Upstream { first, rest, idle_timeout: served.deployment.idle_timeout };
            let settlement = Settlement { meter, writer: state.usage.clone(), reservation, admission, request_body };
            sse_response(MeteredSse::new(upstream, transform, meta, settlement, restating, keeper))
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
    for (name, value) in answer_headers {
        headers.insert(name, value);
    }
    Ok(response)
}

/// The usage a measurement stands for.
pub fn usage_of(measured: Measured) -> Usage {
    match measured {
        Measured::Reported(usage) | Measured::Counted(usage) => usage,
        Measured::Nothing => Usage::default(),
    }
}

/// A canonical ChatCompletion restated in the client's surface.
fn restate(surface: &dyn Surface, body: &[u8], measured: Measured) -> Result<Vec<u8>, ApiError> {
    // The usage object is read separately (and may lack fields some upstreams omit).
    let mut value: serde_json::Value = serde_json::from_slice(body).map_err(unreadable)?;
    if let Some(object) = value.as_object_mut() {
        object.remove("usage");
    }
    let completion: ChatCompletion = serde_json::from_value(value).map_err(unreadable)?;
    Ok(surface.present(&completion, usage_of(measured)))
}

fn unreadable(e: serde_json::Error) -> ApiError {
    ApiError::UpstreamUnavailable(format!("The provider's answer could not be read: {e}"))
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

/// A Responses API answer from an upstream that speaks it, and its usage.
fn native_response(body: Bytes, request: &[u8]) -> (Bytes, Measured) {
    let measured = match responses::native::answer_usage(&body) {
        Some(usage) => Measured::Reported(usage),
        None => Measured::Counted(Usage {
            prompt_tokens: tokens::reservation_estimate(request),
            completion_tokens: openai::estimate_text_tokens(&String::from_utf8_lossy(&body)),
            ..Usage::default()
        }),
    };
    (body, measured)
}

/// An Anthropic `Message` from an upstream that was sent the client's own body, and its
/// usage (with the server tool calls it ran).
fn native_message(body: Bytes, request: &[u8]) -> (Bytes, Measured) {
    let measured = match messages::native::answer_usage(&body) {
        Some(usage) => Measured::Reported(usage),
        None => Measured::Counted(Usage {
            prompt_tokens: tokens::reservation_estimate(request),
            completion_tokens: openai::estimate_text_tokens(&String::from_utf8_lossy(&body)),
            ..Usage::default()
        }),
    };
    (body, measured)
}

/// An embeddings answer in OpenAI's shape, billed by its input tokens.
fn embedded(
    adapter: Option<&'static dyn Adapter>,
    body: Bytes,
    request: &EmbeddingsRequest,
    meta: &ResponseMeta,
) -> Result<(Bytes, Measured), ApiError> {
    let (body, usage) = match adapter {
        None => {
            let usage = embeddings::response_usage(&body);
            (body, usage)
        }
        Some(adapter) => {
            let decoded = adapter.decode_embeddings(&body, request, &meta.model).map_err(|f| {
                ApiError::UpstreamUnavailable(format!("The provider's answer could not be read: {}", f.message))
            })?;
            (Bytes::from(decoded.body), decoded.usage)
        }
    };
    let measured = match usage {
        Some(usage) => Measured::Reported(Usage { completion_tokens: 0, ..usage }),
        None => {
            Measured::Counted(Usage { prompt_tokens: embeddings::estimate_input_tokens(request), ..Usage::default() })
        }
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

pub fn json_response(status: StatusCode, body: Bytes) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}
