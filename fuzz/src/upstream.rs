//! The upstream targets: what a provider or a community instance answers is untrusted.
//! Whole answers, error bodies and streams split at arbitrary points go through each
//! decoder; a stream must decode to the same events whatever its pieces.

use tokenrouter_core::{ErrorEnvelope, Usage};
use tokenrouter_providers::adapter::{Adapter, ResponseMeta, UpstreamFailure};
use tokenrouter_providers::anthropic::ANTHROPIC;
use tokenrouter_providers::gemini::GEMINI;
use tokenrouter_providers::responses::native;
use tokenrouter_providers::sse::{self, SseBuffer};
use tokenrouter_providers::{embeddings, messages, openai};

use crate::assert_json;
use crate::pieces::{chunks, header};

const STATUSES: [u16; 8] = [400, 401, 404, 413, 429, 500, 503, 529];

/// An OpenAI-compatible upstream (providers, community instances, native Responses).
pub fn openai(data: &[u8]) {
    let (seed, body) = header(data);
    let _ = openai::response_usage(body);
    let _ = openai::estimate_completion_tokens(body);
    let _ = embeddings::response_usage(body);
    let _ = native::answer_usage(body);
    let _ = native::response_id(body);
    if let Ok(envelope) = serde_json::from_slice::<ErrorEnvelope>(body) {
        let status = STATUSES[usize::from(seed % 8)];
        assert_json(&messages::error_body(status, &envelope), "an error restated for Messages");
    }
    chunk(body);
    let mut buffer = SseBuffer::default();
    for piece in chunks(body, seed) {
        buffer.push(piece);
        let Some(events) = buffer.take_complete() else { continue };
        for event in sse::events(&events) {
            if let Some(data) = sse::data(event) {
                chunk(&data);
            }
        }
    }
}

/// One event's `data` as the pass-through and native Responses streams read it.
fn chunk(data: &[u8]) {
    let is_json = serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok();
    let info = openai::classify_chunk(data);
    if info.usage_only {
        assert!(info.usage.is_some());
    }
    if let Some(stripped) = openai::strip_null_usage(data)
        && is_json
    {
        assert_json(&stripped, "a chunk without its null usage");
    }
    let _ = tokenrouter::instances::routing::chunk_text_bytes(data);
    let usage = Usage { prompt_tokens: 7, completion_tokens: 3, ..Usage::default() };
    if let Some(restated) = tokenrouter::instances::usage::restate(data, &usage)
        && is_json
    {
        assert_json(&restated, "a chunk with its usage restated");
    }
    let event = native::classify_event(data);
    let _ = event.usage;
    if let Some(response) = native::final_response(data) {
        let _ = native::response_id(&response);
    }
}

/// An Anthropic upstream.
pub fn anthropic(data: &[u8]) {
    adapter_upstream(&ANTHROPIC, data);
}

/// A Gemini upstream, embeddings included.
pub fn gemini(data: &[u8]) {
    adapter_upstream(&GEMINI, data);
    let (_, body) = header(data);
    let asked: &[u8] = br#"{"model":"text-embedding-004","input":["one","two"],"encoding_format":"base64"}"#;
    if let Ok(request) = embeddings::parse(asked)
        && let Ok(decoded) = GEMINI.decode_embeddings(body, &request, "fuzz-embeddings")
    {
        assert_json(&decoded.body, "decoded embeddings");
    }
}

/// The first byte: bit 0 `include_usage`, bit 1 `one_tool_call`, bits 2-4 the error status,
/// all of it the split seed.
fn adapter_upstream(adapter: &dyn Adapter, data: &[u8]) {
    let (flags, body) = header(data);
    let meta = ResponseMeta {
        id: "chatcmpl-fuzz".to_owned(),
        model: "fuzz-model".to_owned(),
        created: 1,
        include_usage: flags & 1 != 0,
        one_tool_call: flags & 2 != 0,
    };
    if let Ok(decoded) = adapter.decode_response(body, &meta) {
        assert_json(&decoded.body, "a decoded answer");
    }
    let failure = adapter.decode_error(STATUSES[usize::from((flags >> 2) % 8)], body);
    assert!(!failure.message.is_empty(), "a failure without a message");
    let whole = stream(adapter, &meta, &[body]);
    let split = stream(adapter, &meta, &chunks(body, flags));
    assert_eq!(whole, split, "the stream decodes differently when split");
}

/// What a stream decoder made of a stream: its output, how it ended, the usage and the
/// chunks it counted.
#[derive(Debug, PartialEq)]
struct Decoded {
    out: Vec<u8>,
    end: Result<(), UpstreamFailure>,
    usage: Option<Usage>,
    delivered: u64,
}

fn stream(adapter: &dyn Adapter, meta: &ResponseMeta, pieces: &[&[u8]]) -> Decoded {
    let mut decoder = adapter.stream_decoder(meta.clone());
    let mut out = Vec::new();
    let mut end = Ok(());
    for piece in pieces {
        end = decoder.feed(piece, &mut out);
        if end.is_err() {
            break;
        }
    }
    if end.is_ok() {
        end = decoder.finish(&mut out);
    }
    assert_eq!(sse::complete_prefix_len(&out), out.len(), "a partial event: {}", String::from_utf8_lossy(&out));
    for event in sse::events(&out) {
        let data = sse::data(event);
        let data = data.as_deref().unwrap_or_default();
        if data != b"[DONE]" {
            let chunk = serde_json::from_slice::<tokenrouter_core::chat::ChatCompletionChunk>(data);
            assert!(chunk.is_ok(), "not a chunk: {}", String::from_utf8_lossy(data));
        }
    }
    Decoded { out, end, usage: decoder.usage(), delivered: decoder.delivered_chunks() }
}
