//! The request targets: inbound bodies as clients send them, through the views the
//! gateway checks, the pass-through rewrites, the inbound translations into the canonical
//! chat request, and from there every provider's request encoder.

use tokenrouter_core::chat::ChatRequest;
use tokenrouter_providers::adapter::{Adapter, Target};
use tokenrouter_providers::anthropic::ANTHROPIC;
use tokenrouter_providers::gemini::GEMINI;
use tokenrouter_providers::openai::{self, Dialect};
use tokenrouter_providers::passthrough::RawObject;
use tokenrouter_providers::responses::{Options, UnsupportedTools};
use tokenrouter_providers::{completions, embeddings, messages, responses};

use crate::assert_json;

pub(crate) const TARGET: Target<'static> = Target { upstream_model: "upstream-model", max_output_tokens: 4096 };

/// `/v1/chat/completions`, `/v1/completions` and `/v1/embeddings` bodies: each parser
/// reads every input (a seed of one is a mutation away from the others).
pub fn requests(data: &[u8]) {
    if let Ok(obj) = RawObject::parse(data) {
        assert_json(&obj.to_vec(), "a re-serialized body");
        if let Ok(view) = openai::inspect_chat(&obj) {
            for dialect in [Dialect::OpenAi, Dialect::DeepSeek, Dialect::Mistral] {
                let mut upstream = obj.clone();
                openai::prepare_upstream_chat(&mut upstream, &view, "upstream-model", dialect);
                openai::strip_reasoning_history(&mut upstream, dialect);
                assert_json(&upstream.to_vec(), "a prepared chat body");
            }
        }
        if let Ok(view) = completions::inspect(&obj) {
            let mut upstream = obj.clone();
            openai::prepare_upstream_chat(&mut upstream, &view.chat_view(), "upstream-model", Dialect::OpenAi);
            assert_json(&upstream.to_vec(), "a prepared completions body");
        }
    }
    let _ = openai::estimate_prompt_tokens(data);
    let _ = completions::estimate_prompt_tokens(data);
    if let Ok(chat) = serde_json::from_slice::<ChatRequest>(data) {
        encode_everywhere(&chat, data);
    }
    let ids = completions::Ids { id: "cmpl-fuzz".to_owned(), created: 1 };
    if let Ok(translated) = completions::translate(data, ids) {
        encode_everywhere(&translated.chat, data);
    }
    if let Ok(request) = embeddings::parse(data) {
        let _ = (request.input.texts(), request.input.estimate_tokens(), request.encoding(), request.input_count());
        let _ = embeddings::estimate_input_tokens(&request);
        if let Ok(encoded) = GEMINI.encode_embeddings(&request, &TARGET) {
            assert_json(&encoded.body, "a Gemini embeddings request");
        }
    }
}

/// `/v1/responses` bodies.
pub fn responses(data: &[u8]) {
    let Ok(request) = responses::parse(data) else { return };
    let _ = (request.model(), request.stream(), request.previous_response_id());
    for unsupported_tools in [UnsupportedTools::Drop, UnsupportedTools::Reject] {
        let ids = responses::Ids { response_id: "resp_fuzz".to_owned(), created_at: 1 };
        if let Ok(translated) = responses::translate(request.clone(), None, ids, &Options { unsupported_tools }) {
            encode_everywhere(&translated.chat, data);
        }
    }
}

/// `/v1/messages` and `/v1/messages/count_tokens` bodies.
pub fn messages(data: &[u8]) {
    if let Ok(chat) = messages::count_tokens_request(data) {
        let _ = openai::estimate_prompt_tokens(&serde_json::to_vec(&chat).unwrap_or_default());
    }
    let Ok(request) = messages::parse(data) else { return };
    let _ = (request.model(), request.stream(), request.max_tokens());
    if let Ok(translated) = messages::translate(request, messages::Ids { message_id: "msg_fuzz".to_owned() }) {
        encode_everywhere(&translated.chat, data);
    }
}

/// A canonical request as the gateway sends it on: to an OpenAI-compatible upstream (the
/// canonical body) and through each translating adapter, streamed or not.
pub(crate) fn encode_everywhere(chat: &ChatRequest, original: &[u8]) {
    if let Ok((body, view)) = tokenrouter::pipeline::canonical(chat, original) {
        let obj = RawObject::parse(&body);
        assert!(obj.is_ok(), "the canonical body is not a JSON object: {}", String::from_utf8_lossy(&body));
        assert_eq!(view.model, chat.model);
    }
    for adapter in [&ANTHROPIC as &dyn Adapter, &GEMINI] {
        for stream in [false, true] {
            if let Ok(encoded) = adapter.encode_request(chat, &TARGET, stream) {
                assert_json(&encoded.body, "an encoded provider request");
            }
        }
    }
}
