//! The legacy text completions API (`POST /v1/completions`): checking a body that passes
//! through to an OpenAI-compatible upstream, and for every other provider the request as a
//! single-turn chat, with the chat answer (whole or streamed) stated as `text_completion`s.

mod stream;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokenrouter_core::Usage;
use tokenrouter_core::chat::{ChatCompletion, ChatRequest, Content, Message, Stop, StreamOptions};

use crate::adapter::Unsupported;
// A legacy `prompt` has the shape of an embeddings `input`: one text, several, or token
// ids (one list, or one list per prompt).
use crate::embeddings::EmbeddingInput as Prompt;
use crate::openai::{ChatView, FieldError, expect_kind, optional_u64};
use crate::passthrough::{JsonKind, RawObject, kind_of};
use crate::surface::{Surface, SurfaceStream};

/// The legacy API's `max_tokens` when the request sets none.
pub const DEFAULT_MAX_TOKENS: u64 = 16;

/// What the gateway needs to know of a legacy completions request; the rest stays raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletionsView {
    pub model: String,
    pub stream: bool,
    /// The client asked for the usage chunk (`stream_options.include_usage: true`).
    pub include_usage: bool,
    pub max_tokens: Option<u64>,
}

impl CompletionsView {
    /// The same facts as a chat request's, for [`crate::openai::prepare_upstream_chat`]:
    /// the pass-through body is prepared the same way (model, usage chunk asked for).
    pub fn chat_view(&self) -> ChatView {
        ChatView {
            model: self.model.clone(),
            stream: self.stream,
            include_usage: self.include_usage,
            max_tokens: self.max_tokens,
        }
    }
}

const PROMPT_TYPES: &str = "a string, an array of strings, an array of tokens or an array of token arrays";

/// Checks the fields of a legacy completions body that the gateway relies on.
pub fn inspect(obj: &RawObject<'_>) -> Result<CompletionsView, FieldError> {
    let model = match obj.get("model") {
        None => return Err(FieldError::new("model", "Missing required parameter: 'model'.")),
        Some(v) if kind_of(v) != JsonKind::String => {
            return Err(FieldError::new("model", "Invalid type for 'model': expected a string."));
        }
        Some(v) => serde_json::from_str::<String>(v.get())
            .map_err(|_| FieldError::new("model", "Invalid value for 'model'."))?,
    };
    match obj.get("prompt") {
        None => return Err(FieldError::new("prompt", "Missing required parameter: 'prompt'.")),
        Some(v) if kind_of(v) == JsonKind::Null => {
            return Err(FieldError::new("prompt", "Missing required parameter: 'prompt'."));
        }
        Some(v) => match serde_json::from_str::<Prompt>(v.get()) {
            Err(_) => {
                return Err(FieldError::new("prompt", format!("Invalid type for 'prompt': expected {PROMPT_TYPES}.")));
            }
            Ok(Prompt::Texts(list)) if list.is_empty() => {
                return Err(FieldError::new(
                    "prompt",
                    "Invalid 'prompt': empty array. Expected an array with minimum length 1.",
                ));
            }
            Ok(_) => {}
        },
    }
    expect_kind(obj, "stream", &[JsonKind::Bool, JsonKind::Null], "a boolean")?;
    expect_kind(obj, "stream_options", &[JsonKind::Object, JsonKind::Null], "an object")?;
    expect_kind(obj, "temperature", &[JsonKind::Number, JsonKind::Null], "a number")?;
    expect_kind(obj, "top_p", &[JsonKind::Number, JsonKind::Null], "a number")?;
    let stream = obj.get("stream").is_some_and(|v| v.get() == "true");
    let include_usage = match obj.get("stream_options") {
        Some(v) if kind_of(v) == JsonKind::Object => {
            serde_json::from_str::<StreamOptions>(v.get())
                .map_err(|_| {
                    FieldError::new(
                        "stream_options",
                        "Invalid type for 'stream_options.include_usage': expected a boolean.",
                    )
                })?
                .include_usage
                == Some(true)
        }
        _ => false,
    };
    let max_tokens = optional_u64(obj, "max_tokens")?;
    if optional_u64(obj, "n")? == Some(0) {
        return Err(FieldError::new("n", "Invalid value for 'n': expected an integer of at least 1."));
    }
    Ok(CompletionsView { model, stream, include_usage, max_tokens })
}

#[derive(Deserialize)]
struct WithPrompt {
    prompt: Option<Prompt>,
}

/// An estimate of a legacy request's prompt tokens (token prompts count exactly, text
/// about four characters a token), for an upstream that does not report usage.
pub fn estimate_prompt_tokens(body: &[u8]) -> u64 {
    serde_json::from_slice::<WithPrompt>(body).ok().and_then(|r| r.prompt).map_or(0, |p| p.estimate_tokens())
}

/// The ids the gateway gives the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    /// `cmpl-…`
    pub id: String,
    pub created: i64,
}

/// A legacy request as the canonical chat request, and how to state its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    pub chat: ChatRequest,
    pub surface: CompletionsSurface,
}

/// The legacy request's fields; unknown ones are dropped, as adapters drop chat extras.
#[derive(Deserialize)]
struct LegacyRequest {
    model: Option<String>,
    prompt: Option<Prompt>,
    suffix: Option<String>,
    echo: Option<bool>,
    logprobs: Option<Value>,
    best_of: Option<u32>,
    max_tokens: Option<u64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    n: Option<u32>,
    stop: Option<Stop>,
    presence_penalty: Option<f64>,
    frequency_penalty: Option<f64>,
    logit_bias: Option<Map<String, Value>>,
    seed: Option<i64>,
    user: Option<String>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
}

/// What a legacy field must be, for the message refusing it.
fn expected(param: &str) -> Option<&'static str> {
    Some(match param {
        "prompt" => PROMPT_TYPES,
        "model" | "suffix" | "user" => "a string",
        "temperature" | "top_p" | "presence_penalty" | "frequency_penalty" => "a number",
        "max_tokens" | "n" | "best_of" => "a non-negative integer",
        "seed" => "an integer",
        "echo" | "stream" | "stream_options.include_usage" => "a boolean",
        "stream_options" | "logit_bias" => "an object",
        "stop" => "a string or an array of strings",
        _ => return None,
    })
}

const SINGLE_PROMPT: &str = "This provider only takes a single text prompt";

fn openai_only(param: &str) -> Unsupported {
    Unsupported::new(param, format!("'{param}' is only supported by OpenAI-compatible providers."))
}

/// The legacy request as a single-turn chat (one user message holding the prompt), for a
/// provider that has no legacy API; what it cannot express is refused, naming the field.
pub fn translate(body: &[u8], ids: Ids) -> Result<Translated, Unsupported> {
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(Unsupported::new("", "The request body must be a JSON object."));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let request: LegacyRequest = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let param = match e.path().to_string() {
            root if root == "." => String::new(),
            path => path,
        };
        // serde_json's message without its " at line 1 column 9".
        let reason = e.inner().to_string();
        let reason = reason.rsplit_once(" at line ").map_or(reason.as_str(), |(reason, _)| reason);
        let message = match expected(&param) {
            Some(what) => format!("Invalid '{param}': expected {what}."),
            None if param.is_empty() => format!("The request body is not a valid JSON object: {reason}."),
            None => format!("Invalid '{param}': {reason}."),
        };
        Unsupported::new(param, message)
    })?;
    let model = request.model.ok_or_else(|| Unsupported::new("model", "Missing required parameter: 'model'."))?;
    let prompt = match request.prompt {
        None => return Err(Unsupported::new("prompt", "Missing required parameter: 'prompt'.")),
        Some(Prompt::Text(text)) => text,
        Some(Prompt::Texts(texts)) => match <[String; 1]>::try_from(texts) {
            Ok([text]) => text,
            Err(texts) if texts.is_empty() => {
                return Err(Unsupported::new("prompt", "Invalid 'prompt': empty array. Expected one prompt."));
            }
            Err(_) => {
                return Err(Unsupported::new(
                    "prompt",
                    format!("{SINGLE_PROMPT}: several prompts are only supported by OpenAI-compatible providers."),
                ));
            }
        },
        Some(Prompt::Tokens(_) | Prompt::TokenLists(_)) => {
            return Err(Unsupported::new(
                "prompt",
                format!("{SINGLE_PROMPT}: token prompts are only supported by OpenAI-compatible providers."),
            ));
        }
    };
    if request.suffix.is_some_and(|s| !s.is_empty()) {
        return Err(openai_only("suffix"));
    }
    if request.echo == Some(true) {
        return Err(openai_only("echo"));
    }
    if request.logprobs.is_some() {
        return Err(openai_only("logprobs"));
    }
    if request.best_of.is_some_and(|n| n > 1) {
        return Err(openai_only("best_of"));
    }
    let stream = request.stream == Some(true);
    let include_usage = stream && request.stream_options.and_then(|o| o.include_usage) == Some(true);
    let mut extra = Map::new();
    for (key, value) in
        [("presence_penalty", request.presence_penalty), ("frequency_penalty", request.frequency_penalty)]
    {
        if let Some(value) = value {
            extra.insert(key.to_owned(), json!(value));
        }
    }
    if let Some(bias) = request.logit_bias {
        extra.insert("logit_bias".to_owned(), Value::Object(bias));
    }
    let chat = ChatRequest {
        model: model.clone(),
        messages: vec![Message::User { content: Content::Text(prompt), name: None }],
        stream: stream.then_some(true),
        stream_options: stream.then_some(StreamOptions { include_usage: Some(true) }),
        max_tokens: Some(request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)),
        max_completion_tokens: None,
        temperature: request.temperature,
        top_p: request.top_p,
        n: request.n,
        stop: request.stop,
        tools: None,
        tool_choice: None,
        parallel_tool_calls: None,
        response_format: None,
        reasoning_effort: None,
        seed: request.seed,
        user: request.user,
        extra,
    };
    let surface = CompletionsSurface { id: ids.id, created: ids.created, model, include_usage };
    Ok(Translated { chat, surface })
}

/// States the chat answer as legacy `text_completion`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletionsSurface {
    id: String,
    created: i64,
    /// The model the client asked for (used where no chat answer names one).
    model: String,
    /// The client's own `stream_options.include_usage`.
    include_usage: bool,
}

impl CompletionsSurface {
    pub fn include_usage(&self) -> bool {
        self.include_usage
    }
}

/// The legacy `finish_reason` for a chat one: `stop`, `length` or `content_filter`.
fn finish_reason(chat: Option<&str>) -> &'static str {
    match chat {
        Some("length") => "length",
        Some("content_filter") => "content_filter",
        _ => "stop",
    }
}

fn usage_json(usage: Usage) -> Value {
    json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total(),
    })
}

impl Surface for CompletionsSurface {
    fn present(&self, completion: &ChatCompletion, usage: Usage) -> Vec<u8> {
        let choices: Vec<Value> = completion
            .choices
            .iter()
            .map(|choice| {
                json!({
                    "text": choice.message.content.as_deref().unwrap_or_default(),
                    "index": choice.index,
                    "logprobs": null,
                    "finish_reason": finish_reason(choice.finish_reason.as_deref()),
                })
            })
            .collect();
        let model = if completion.model.is_empty() { &self.model } else { &completion.model };
        let answer = json!({
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": model,
            "choices": choices,
            "usage": usage_json(usage),
        });
        serde_json::to_vec(&answer).unwrap_or_default()
    }

    fn stream(&self) -> Box<dyn SurfaceStream> {
        Box::new(stream::CompletionsStream::new(self.clone()))
    }
}
