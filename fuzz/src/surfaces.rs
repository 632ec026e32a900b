//! The surfaces target: a canonical answer (a whole `ChatCompletion` or a stream of
//! chunks, which an OpenAI-compatible upstream hands over nearly as it sent them) restated
//! on the Responses, Messages and legacy completions surfaces; a kept response must be
//! continuable.

use tokenrouter_core::Usage;
use tokenrouter_core::chat::ChatCompletion;
use tokenrouter_providers::responses::{self, Options, UnsupportedTools};
use tokenrouter_providers::sse;
use tokenrouter_providers::surface::{ChunkFeed, Surface};
use tokenrouter_providers::{completions, messages};

use crate::assert_json;
use crate::pieces::{chunks, header};

/// The requests whose surfaces state the fuzzed answers: their shapes (tools in a
/// namespace, a JSON schema, streaming or not) change how an answer is stated.
const RESPONSES_PLAIN: &[u8] = br#"{"model":"m","input":"hi","stream":true}"#;
const RESPONSES_TOOLS: &[u8] = br#"{"model":"m","input":[{"role":"user","content":"hi"}],
    "tools":[{"type":"function","name":"get","parameters":{"type":"object"}},
             {"type":"namespace","name":"ns","tools":[{"type":"function","name":"look_up_a_rather_long_function_name_for_the_namespace","parameters":{}}]},
             {"type":"custom","name":"patch"}],
    "text":{"format":{"type":"json_schema","name":"s","schema":{"type":"object"}}},
    "reasoning":{"effort":"low","summary":"auto"},"include":["reasoning.encrypted_content"]}"#;
const MESSAGES: &[u8] = br#"{"model":"m","max_tokens":64,"stream":true,
    "messages":[{"role":"user","content":"hi"}],
    "tools":[{"name":"get","input_schema":{"type":"object"}}]}"#;
const COMPLETIONS: &[u8] = br#"{"model":"m","prompt":"hi","stream":true,"stream_options":{"include_usage":true}}"#;
const CONTINUATION: &[u8] = br#"{"model":"m","input":"and then?","previous_response_id":"resp_fuzz"}"#;

pub(crate) const USAGE: Usage = Usage {
    prompt_tokens: 11,
    completion_tokens: 7,
    cached_tokens: 2,
    cache_write_tokens: 0,
    reasoning_tokens: 3,
    hosted: tokenrouter_core::HostedCalls { web_search: 0, web_fetch: 0 },
};

/// The first byte: bits 0-1 pick the surface, all of it is the split seed.
pub fn surfaces(data: &[u8]) {
    let (flags, body) = header(data);
    let Some(surface) = surface(flags % 4) else { return };
    if let Ok(completion) = serde_json::from_slice::<ChatCompletion>(body) {
        let answer = surface.present(&completion, USAGE);
        assert_json(&answer, "an answer restated");
        if let Some((_, record)) = surface.keep(&answer) {
            continue_from(&record);
        }
    }
    let whole = stream(surface.as_ref(), &[body]);
    let split = stream(surface.as_ref(), &chunks(body, flags));
    assert_eq!(whole, split, "the stream is restated differently when split");
}

fn surface(which: u8) -> Option<Box<dyn Surface>> {
    let ids = || responses::Ids { response_id: "resp_fuzz".to_owned(), created_at: 1 };
    let options = Options { unsupported_tools: UnsupportedTools::Drop };
    let responses = |body| {
        let request = responses::parse(body).ok()?;
        let translated = responses::translate(request, None, ids(), &options).ok()?;
        Some(Box::new(translated.surface) as Box<dyn Surface>)
    };
    match which {
        0 => responses(RESPONSES_PLAIN),
        1 => responses(RESPONSES_TOOLS),
        2 => {
            let request = messages::parse(MESSAGES).ok()?;
            let ids = messages::Ids { message_id: "msg_fuzz".to_owned() };
            Some(Box::new(messages::translate(request, ids).ok()?.surface))
        }
        _ => {
            let ids = completions::Ids { id: "cmpl-fuzz".to_owned(), created: 1 };
            Some(Box::new(completions::translate(COMPLETIONS, ids).ok()?.surface))
        }
    }
}

/// A response kept from a fuzzed answer is continued, or refused naming
/// `previous_response_id` (an upstream's tool call without a name is kept as it came, and
/// cannot be sent on again).
fn continue_from(record: &[u8]) {
    let Ok(request) = responses::parse(CONTINUATION) else { return };
    let ids = responses::Ids { response_id: "resp_next".to_owned(), created_at: 2 };
    let options = Options { unsupported_tools: UnsupportedTools::Drop };
    let chain = [record.to_vec()];
    if let Err(refusal) = responses::translate(request, Some(&chain), ids, &options) {
        assert_eq!(refusal.param, "previous_response_id", "{refusal:?}\n{}", String::from_utf8_lossy(record));
    }
}

/// What a surface's stream made of canonical SSE bytes.
#[derive(Debug, PartialEq)]
struct Stated {
    out: Vec<u8>,
    failure: Option<String>,
    completed: Option<Vec<u8>>,
}

fn stream(surface: &dyn Surface, pieces: &[&[u8]]) -> Stated {
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
    let completed = feed.completed();
    assert_eq!(sse::complete_prefix_len(&out), out.len(), "a partial event: {}", String::from_utf8_lossy(&out));
    for event in sse::events(&out) {
        if let Some(data) = sse::data(event)
            && data.as_ref() != b"[DONE]"
        {
            assert_json(&data, "a restated event");
        }
    }
    if let Some(answer) = &completed {
        assert_json(answer, "a completed answer");
        if let Some((_, record)) = surface.keep(answer) {
            continue_from(&record);
        }
    }
    Stated { out, failure, completed }
}
