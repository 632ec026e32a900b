//! The `gemini_inbound` target: what a Gemini-native client sends
//! (`/v1beta/models/{model}:generateContent`, `:streamGenerateContent`, `:countTokens`,
//! `:embedContent`, `:batchEmbedContents`) and what it gets back: canonical answers, chunk
//! streams (as SSE with `alt=sse`, else a streamed JSON array), errors and embeddings
//! restated in Gemini's shape.
//!
//! The model of the path is split off by the route itself (`rsplit_once(':')`, then
//! `models/` stripped): no parser of its own, so the target feeds bodies only.

use tokenrouter_core::ErrorEnvelope;
use tokenrouter_core::chat::{ChatCompletion, ChatRequest, Message};
use tokenrouter_providers::adapter::{Adapter, Unsupported};
use tokenrouter_providers::embeddings;
use tokenrouter_providers::gemini::{GEMINI, SIGNATURE_BLOCK};
use tokenrouter_providers::generate_content::{self, Call, EmbedKind, StreamForm, Translated};
use tokenrouter_providers::responses::UnsupportedTools;
use tokenrouter_providers::sse;
use tokenrouter_providers::surface::{ChunkFeed, Surface};

use crate::assert_json;
use crate::pieces::{chunks, header};
use crate::requests::{TARGET, encode_everywhere};
use crate::surfaces::USAGE;

const MODEL: &str = "gemini-2.5-flash";
const EMBEDDING_MODEL: &str = "gemini-embedding-001";
const STATUSES: [u16; 8] = [400, 401, 403, 404, 413, 429, 500, 503];

/// The first byte: bit 0 asks for thought summaries, bit 1 picks the stream form (SSE or
/// the JSON array), all of it is the split seed and bits 2-4 an error status. The rest is
/// read as every request body and as every answer.
pub fn gemini_inbound(data: &[u8]) {
    let (flags, body) = header(data);
    generate(body);
    count_tokens(body);
    embed(body);
    answers(flags, body);
}

fn call(stream: Option<StreamForm>, unsupported_tools: UnsupportedTools) -> Call<'static> {
    Call { model: MODEL, response_id: "fuzz".to_owned(), stream, unsupported_tools }
}

/// `:generateContent` and `:streamGenerateContent` bodies: translated, then encoded for
/// every upstream. Streaming changes only the stream fields; `unsupported_tools =
/// "reject"` refuses exactly the requests that dropped one of Google's own tools.
fn generate(body: &[u8]) {
    let plain = generate_content::translate(body, call(None, UnsupportedTools::Drop));
    let streamed = generate_content::translate(body, call(Some(StreamForm::Array), UnsupportedTools::Reject));
    match (&plain, &streamed) {
        (Err(refusal), Err(_)) => named(refusal),
        (Ok(plain), Err(refusal)) => {
            named(refusal);
            assert!(
                !plain.dropped_tools.is_empty() && refusal.param.starts_with("tools["),
                "refused only when streamed or rejecting tools: {refusal:?}"
            );
        }
        (Err(refusal), Ok(_)) => panic!("refused only when not streamed: {refusal:?}"),
        (Ok(plain), Ok(streamed)) => same_but_streamed(plain, streamed),
    }
    if let Ok(translated) = plain {
        assert_eq!(translated.chat.model, MODEL);
        encode_everywhere(&translated.chat, body);
    }
}

/// A refusal says what is wrong (the route answers it as a 400 naming `param`).
fn named(refusal: &Unsupported) {
    assert!(!refusal.message.is_empty(), "a refusal without a message: {refusal:?}");
}

fn same_but_streamed(plain: &Translated, streamed: &Translated) {
    assert!(streamed.dropped_tools.is_empty(), "dropped under reject: {:?}", streamed.dropped_tools);
    assert!(plain.dropped_tools.is_empty(), "accepted under reject, dropped otherwise: {:?}", plain.dropped_tools);
    assert_eq!(streamed.chat.stream, Some(true));
    assert!(streamed.chat.stream_options.as_ref().is_some_and(|o| o.include_usage == Some(true)));
    let unstreamed = ChatRequest { stream: None, stream_options: None, ..streamed.chat.clone() };
    assert_eq!(unstreamed, plain.chat, "streaming changed more than the stream fields");
}

/// `:countTokens` bodies: the canonical request the server counts.
fn count_tokens(body: &[u8]) {
    match generate_content::count_tokens_request(body, MODEL) {
        Ok(chat) => {
            assert_eq!(chat.model, MODEL);
            let canonical = serde_json::to_vec(&chat);
            assert!(canonical.is_ok(), "the counted request cannot be encoded: {canonical:?}");
            let _ = tokenrouter::tokens::count_prompt(&canonical.unwrap_or_default());
        }
        Err(refusal) => named(&refusal),
    }
}

/// `:embedContent` and `:batchEmbedContents` bodies: the OpenAI embeddings body made of
/// them, read as the server reads it and encoded for a Gemini upstream.
fn embed(body: &[u8]) {
    for kind in [EmbedKind::One, EmbedKind::Batch] {
        let openai = match generate_content::embed_request(body, EMBEDDING_MODEL, kind) {
            Ok(openai) => openai,
            Err(refusal) => {
                named(&refusal);
                continue;
            }
        };
        assert_json(&openai, "an embeddings body made of a Gemini one");
        let Ok(request) = embeddings::parse(&openai) else { continue };
        assert_eq!(request.model, EMBEDDING_MODEL);
        if kind == EmbedKind::One {
            assert_eq!(request.input_count(), 1, "one content, one input");
        }
        if let Ok(encoded) = GEMINI.encode_embeddings(&request, &TARGET) {
            assert_json(&encoded.body, "a Gemini embeddings request");
        }
    }
}

/// The surface of a plain request, streamed in the form the flags pick.
fn surface(flags: u8) -> Option<Box<dyn Surface>> {
    let body: &[u8] = if flags & 1 == 1 {
        br#"{"contents":[{"parts":[{"text":"hi"}]}],"generationConfig":{"thinkingConfig":{"includeThoughts":true}}}"#
    } else {
        br#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#
    };
    let form = if flags & 2 == 0 { StreamForm::Sse } else { StreamForm::Array };
    let translated = generate_content::translate(body, call(Some(form), UnsupportedTools::Drop)).ok()?;
    Some(Box::new(translated.surface))
}

/// Canonical answers, chunk streams, error envelopes and embeddings answers restated as
/// Gemini's.
fn answers(flags: u8, body: &[u8]) {
    let Some(surface) = surface(flags) else { return };
    if let Ok(completion) = serde_json::from_slice::<ChatCompletion>(body) {
        let answer = surface.present(&completion, USAGE);
        assert_json(&answer, "an answer restated");
        signatures_come_back(&completion, &answer);
    }
    if let Ok(envelope) = serde_json::from_slice::<ErrorEnvelope>(body) {
        assert_json(&surface.error_body(&envelope), "an error restated");
        let status = STATUSES[usize::from((flags >> 2) % 8)];
        assert_json(&generate_content::error_body(status, &envelope), "an error restated by status");
    }
    for kind in [EmbedKind::One, EmbedKind::Batch] {
        if let Some(answer) = generate_content::embed_answer(body, kind) {
            assert_json(&answer, "an embeddings answer restated");
        }
    }
    let form = if flags & 2 == 0 { StreamForm::Sse } else { StreamForm::Array };
    let whole = stream(surface.as_ref(), form, &[body]);
    let split = stream(surface.as_ref(), form, &chunks(body, flags));
    assert_eq!(whole, split, "the stream is restated differently when split");
}

/// Another provider's reasoning blocks, restated on an answer, come back when the client
/// sends that answer's content as the model's turn.
fn signatures_come_back(completion: &ChatCompletion, answer: &[u8]) {
    let Some(choice) = completion.choices.first() else { return };
    let Some(blocks) = choice.message.thinking_blocks.as_ref().filter(|b| !b.is_empty()) else { return };
    if blocks.iter().any(|b| b.kind == SIGNATURE_BLOCK) {
        return;
    }
    let Ok(answer) = serde_json::from_slice::<serde_json::Value>(answer) else { return };
    let Some(content) = answer.pointer("/candidates/0/content") else { return };
    let again = serde_json::json!({"contents": [
        {"role": "user", "parts": [{"text": "x"}]},
        content,
        {"role": "user", "parts": [{"text": "and then?"}]},
    ]});
    let Ok(again) = generate_content::translate(again.to_string().as_bytes(), call(None, UnsupportedTools::Drop))
    else {
        return;
    };
    let Some(Message::Assistant(model)) = again.chat.messages.get(1) else { return };
    assert_eq!(model.thinking_blocks.as_ref(), Some(blocks), "the reasoning blocks did not come back");
}

/// What the Gemini surface's stream made of canonical SSE bytes.
#[derive(Debug, PartialEq)]
struct Stated {
    out: Vec<u8>,
    failure: Option<String>,
}

/// Feeds `pieces` and checks the framing: whole `data:` events of JSON objects, or one
/// JSON array of objects; either way the last one carries the usage or the error.
fn stream(surface: &dyn Surface, form: StreamForm, pieces: &[&[u8]]) -> Stated {
    let mut feed = ChunkFeed::new(surface.stream());
    let mut out = Vec::new();
    let mut failure = None;
    for piece in pieces {
        if let Err(message) = feed.feed(piece, &mut out) {
            failure = Some(message);
            break;
        }
    }
    if !feed.failed() {
        feed.finish(USAGE, &mut out);
    }
    let text = String::from_utf8_lossy(&out);
    let responses: Vec<serde_json::Value> = match form {
        StreamForm::Sse => {
            assert_eq!(sse::complete_prefix_len(&out), out.len(), "a partial event: {text}");
            sse::events(&out)
                .map(|event| {
                    let data = sse::data(event).unwrap_or_else(|| panic!("an event without data: {text}"));
                    serde_json::from_slice(&data).unwrap_or_else(|e| panic!("an event is not JSON ({e}): {text}"))
                })
                .collect()
        }
        StreamForm::Array => {
            serde_json::from_slice(&out).unwrap_or_else(|e| panic!("the stream is not one JSON array ({e}): {text}"))
        }
    };
    assert!(responses.iter().all(serde_json::Value::is_object), "an element is not an object: {text}");
    let last = responses.last().unwrap_or_else(|| panic!("an empty stream: {text}"));
    let ends = if failure.is_some() { "error" } else { "usageMetadata" };
    assert!(last.get(ends).is_some(), "the stream does not end with its {ends}: {text}");
    Stated { out, failure }
}
