//! The Gemini API: `POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent` (SSE with `alt=sse`, else a streamed JSON array): text,
//! function calls, thoughts, JSON mode, several candidates, the safety block, and
//! Google's error envelope; `:embedContent` and `:batchEmbedContents` in [`embeddings`].

use std::borrow::Cow;

use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use crate::embedding::base64;
use crate::format::Format;
use crate::knobs::{Fault, MockConfig};
use crate::reply::{count_tokens, tool_arguments};
use crate::server::Answer;
use crate::stats::Stats;
use crate::turn::{self, Body, Stop, Turn};

mod embeddings;
mod stream;
mod wire;

/// How a stream is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `data: <response>\n\n` events (`?alt=sse`).
    Sse,
    /// One JSON array whose elements arrive one by one (no `alt`).
    JsonArray,
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Generate,
    Stream(Framing),
    Embed,
    BatchEmbed,
}

/// Splits `/v1beta/models/{model}:{method}` (or `/v1/…`) into the percent-decoded model
/// and the method name; the model may carry knobs (`gemini@fault=cut:2`).
pub(crate) fn route(path: &str) -> Option<(String, String)> {
    let segment = path.strip_prefix("/v1beta/models/").or_else(|| path.strip_prefix("/v1/models/"))?;
    let segment = percent_decode(segment);
    let (model, method) = segment.rsplit_once(':')?;
    (!model.is_empty() && !model.contains('/')).then(|| (model.to_owned(), method.to_owned()))
}

/// The method named `name`, with the query deciding a stream's framing.
pub(crate) fn method(name: &str, query: Option<&str>) -> Option<Method> {
    match name {
        "generateContent" => Some(Method::Generate),
        "streamGenerateContent" => {
            let sse = query.is_some_and(|q| q.split('&').any(|p| p == "alt=sse"));
            Some(Method::Stream(if sse { Framing::Sse } else { Framing::JsonArray }))
        }
        "embedContent" => Some(Method::Embed),
        "batchEmbedContents" => Some(Method::BatchEmbed),
        _ => None,
    }
}

/// Google's error envelope `{"error":{"code","message","status"}}`.
pub(crate) fn error(status: StatusCode, message: &str) -> Bytes {
    let name = match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        500 => "INTERNAL",
        503 => "UNAVAILABLE",
        _ => "UNKNOWN",
    };
    let body = json!({"error": {"code": status.as_u16(), "message": message, "status": name}});
    to_json(&body)
}

/// A response, whether sent whole or streamed: `candidates` copies of one turn.
struct Response {
    id: String,
    model: String,
    turn: Turn,
    candidates: u32,
    prompt_tokens: u64,
    cached_tokens: u64,
    /// Google searches the grounding names (the `web_searches` knob).
    web_searches: u64,
}

impl Response {
    /// Tokens of the candidates, excluding thoughts.
    fn candidates_tokens(&self) -> u64 {
        u64::from(self.candidates) * self.turn.body_tokens()
    }

    fn thoughts_tokens(&self) -> u64 {
        u64::from(self.candidates) * self.turn.thinking_tokens()
    }
}

/// `POST …:{method}`; `model` is the model name without its knobs, `body` is `None` when
/// the request was not JSON.
pub(crate) fn answer(
    body: Option<&Value>,
    model: &str,
    method: Method,
    knobs: &MockConfig,
    seq: u64,
    stats: &Stats,
) -> Answer {
    match method {
        Method::Generate => generate(body, model, None, knobs, seq, stats),
        Method::Stream(framing) => generate(body, model, Some(framing), knobs, seq, stats),
        Method::Embed => embeddings::embed(body),
        Method::BatchEmbed => embeddings::batch_embed(body),
    }
}

/// `…:generateContent`, or `…:streamGenerateContent` framed as `framing` says.
fn generate(
    body: Option<&Value>,
    model: &str,
    framing: Option<Framing>,
    knobs: &MockConfig,
    seq: u64,
    stats: &Stats,
) -> Answer {
    let Some(body) = body.filter(|b| b.is_object()) else {
        return Format::Gemini.invalid_request("Invalid JSON payload received. Expected a JSON object.");
    };
    let Some(contents) = field(body, "contents", "contents").and_then(Value::as_array).filter(|c| !c.is_empty()) else {
        return Format::Gemini.invalid_request("* GenerateContentRequest.contents: contents is not specified\n");
    };
    let response = respond(body, contents, model, knobs, seq, stats);
    match framing {
        None => Answer::Json {
            status: StatusCode::OK,
            body: to_json(&wire::whole(&response)),
            tokens: response.candidates_tokens() + response.thoughts_tokens(),
        },
        Some(framing) => Answer::Stream(Box::new(stream::ContentStream::new(response, framing))),
    }
}

/// Decides the reply to a valid request.
fn respond(body: &Value, contents: &[Value], model: &str, knobs: &MockConfig, seq: u64, stats: &Stats) -> Response {
    let system_tokens = field(body, "systemInstruction", "system_instruction").map_or(0, |s| content_tokens(s) + 1);
    let prompt_tokens = system_tokens + contents.iter().map(|c| content_tokens(c) + 1).sum::<u64>();
    let config = field(body, "generationConfig", "generation_config").unwrap_or(&Value::Null);
    let function_response = contents
        .last()
        .and_then(|c| c.get("parts"))
        .and_then(Value::as_array)
        .and_then(|parts| parts.iter().find_map(|p| field(p, "functionResponse", "function_response")));
    let chosen = match function_response {
        Some(_) => Vec::new(),
        None => chosen_functions(body, knobs.calls),
    };

    let (turn_body, stop) = if knobs.fault == Some(Fault::Safety) {
        (Body::Blocked, Stop::Blocked)
    } else if chosen.is_empty() {
        let prompt = match function_response {
            Some(response) => Cow::Owned(response.get("response").unwrap_or(response).to_string()),
            None => contents
                .iter()
                .rev()
                .find(|c| c.get("role").and_then(Value::as_str).is_none_or(|r| r == "user"))
                .map_or(Cow::Borrowed(""), content_text),
        };
        let (text, stop) = reply(&prompt, config, knobs);
        (Body::Text(text), stop)
    } else {
        let calls = turn::calls(&chosen, "call_mock_", stats);
        (Body::Calls(calls), Stop::ToolUse)
    };
    let include_thoughts = field(config, "thinkingConfig", "thinking_config")
        .and_then(|t| field(t, "includeThoughts", "include_thoughts"))
        .and_then(Value::as_bool)
        == Some(true);
    let candidates =
        field(config, "candidateCount", "candidate_count").and_then(Value::as_u64).map_or(1, |n| n.clamp(1, 8) as u32);
    Response {
        id: format!("resp_mock_{seq}"),
        model: model.to_owned(),
        turn: Turn {
            thinking: include_thoughts.then(|| base64(format!("sig_mock_{seq}").as_bytes())),
            body: turn_body,
            stop,
        },
        candidates,
        prompt_tokens,
        cached_tokens: knobs.cached_tokens.min(prompt_tokens),
        web_searches: knobs.web_searches,
    }
}

/// The reply text: plain (cut by `maxOutputTokens` and `stopSequences`), or in JSON mode
/// an object built from the response schema's required properties, else
/// `{"answer":"<reply>"}`.
fn reply(prompt: &str, config: &Value, knobs: &MockConfig) -> (String, Stop) {
    let limit = field(config, "maxOutputTokens", "max_output_tokens").and_then(Value::as_u64);
    let json_mode =
        field(config, "responseMimeType", "response_mime_type").and_then(Value::as_str) == Some("application/json");
    if !json_mode {
        let stop_sequences: Vec<&str> = field(config, "stopSequences", "stop_sequences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        return turn::reply(prompt, knobs, limit, &stop_sequences);
    }
    let schema = [("responseJsonSchema", "response_json_schema"), ("responseSchema", "response_schema")]
        .iter()
        .find_map(|(camel, snake)| field(config, camel, snake));
    let object = schema.map(tool_arguments).filter(|o| o.as_object().is_some_and(|m| !m.is_empty()));
    match object {
        Some(object) => (object.to_string(), Stop::End),
        None => {
            let (text, stop) = turn::reply(prompt, knobs, limit, &[]);
            (json!({ "answer": text }).to_string(), stop)
        }
    }
}

/// The functions to call, as (name, parameters schema), following
/// `toolConfig.functionCallingConfig`: `NONE`, `ANY` (the first `max` of the allowed
/// ones), otherwise `AUTO` (the first).
fn chosen_functions(body: &Value, max: u64) -> Vec<(&str, &Value)> {
    let config = field(body, "toolConfig", "tool_config")
        .and_then(|c| field(c, "functionCallingConfig", "function_calling_config"));
    let mode = config.and_then(|c| c.get("mode")).and_then(Value::as_str).unwrap_or("AUTO");
    if mode.eq_ignore_ascii_case("NONE") {
        return Vec::new();
    }
    let allowed: Option<Vec<&str>> = config
        .and_then(|c| field(c, "allowedFunctionNames", "allowed_function_names"))
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect());
    let functions: Vec<(&str, &Value)> = field(body, "tools", "tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| field(t, "functionDeclarations", "function_declarations"))
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|d| {
            let name = d.get("name")?.as_str()?;
            let schema = field(d, "parametersJsonSchema", "parameters_json_schema")
                .or_else(|| d.get("parameters"))
                .unwrap_or(&Value::Null);
            Some((name, schema))
        })
        .filter(|(name, _)| allowed.as_ref().is_none_or(|a| a.contains(name)))
        .collect();
    turn::pick(functions, mode.eq_ignore_ascii_case("ANY"), true, max)
}

/// A field by its camelCase or snake_case name (Google's JSON parsing accepts both).
fn field<'a>(value: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
    value.get(camel).or_else(|| value.get(snake))
}

fn texts(content: &Value) -> impl Iterator<Item = &str> {
    content
        .get("parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
}

/// Tokens of a content's text parts.
fn content_tokens(content: &Value) -> u64 {
    texts(content).map(count_tokens).sum()
}

/// A content's text parts joined by spaces.
fn content_text(content: &Value) -> Cow<'_, str> {
    let mut texts = texts(content);
    match (texts.next(), texts.next()) {
        (None, _) => Cow::Borrowed(""),
        (Some(only), None) => Cow::Borrowed(only),
        (Some(first), Some(second)) => {
            let mut all = vec![first, second];
            all.extend(texts);
            Cow::Owned(all.join(" "))
        }
    }
}

/// Decodes `%XX` escapes (clients may escape the `@`, `=` and `,` of model knobs).
fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn to_json(value: &impl Serialize) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_split_model_and_method() {
        assert_eq!(
            route("/v1beta/models/gemini-2.0-flash:generateContent"),
            Some(("gemini-2.0-flash".into(), "generateContent".into()))
        );
        assert_eq!(
            route("/v1beta/models/g%40fault%3Dcut:2:streamGenerateContent"),
            Some(("g@fault=cut:2".into(), "streamGenerateContent".into()))
        );
        assert_eq!(route("/v1beta/models/gemini"), None);
        assert_eq!(route("/v1beta/tunedModels/x:generateContent"), None);
        assert_eq!(method("streamGenerateContent", Some("key=k&alt=sse")), Some(Method::Stream(Framing::Sse)));
        assert_eq!(method("streamGenerateContent", None), Some(Method::Stream(Framing::JsonArray)));
        assert_eq!(method("batchEmbedContents", None), Some(Method::BatchEmbed));
        assert_eq!(method("countTokens", None), None);
    }
}
