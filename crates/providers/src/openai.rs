//! The OpenAI Chat Completions wire format as the pass-through path needs it: checking the
//! fields the gateway relies on, preparing the upstream body, and reading usage from
//! answers and stream chunks.

use std::sync::LazyLock;

use memchr::memmem::Finder;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokenrouter_core::Usage;

use crate::passthrough::{JsonKind, RawObject, kind_of, raw_from_vec, raw_string};

/// A request field that is missing or of the wrong type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    pub param: &'static str,
    pub message: String,
}

impl FieldError {
    pub(crate) fn new(param: &'static str, message: impl Into<String>) -> Self {
        FieldError { param, message: message.into() }
    }
}

/// What the gateway needs to know of a chat request; the rest stays raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatView {
    pub model: String,
    pub stream: bool,
    /// The client asked for the usage chunk (`stream_options.include_usage: true`).
    pub include_usage: bool,
    /// `max_completion_tokens`, else `max_tokens`.
    pub max_tokens: Option<u64>,
}

pub(crate) fn expect_kind(
    obj: &RawObject<'_>,
    param: &'static str,
    allowed: &[JsonKind],
    what: &str,
) -> Result<(), FieldError> {
    match obj.get(param) {
        Some(v) if !allowed.contains(&kind_of(v)) => {
            Err(FieldError::new(param, format!("Invalid type for '{param}': expected {what}.")))
        }
        _ => Ok(()),
    }
}

pub(crate) fn optional_u64(obj: &RawObject<'_>, param: &'static str) -> Result<Option<u64>, FieldError> {
    match obj.get(param) {
        None => Ok(None),
        Some(v) if kind_of(v) == JsonKind::Null => Ok(None),
        Some(v) => v.get().parse::<u64>().map(Some).map_err(|_| {
            FieldError::new(param, format!("Invalid value for '{param}': expected a non-negative integer."))
        }),
    }
}

/// Checks the fields of a Chat Completions body that the gateway relies on.
pub fn inspect_chat(obj: &RawObject<'_>) -> Result<ChatView, FieldError> {
    let model = match obj.get("model") {
        None => {
            return Err(FieldError::new("model", "Missing required parameter: 'model'."));
        }
        Some(v) if kind_of(v) != JsonKind::String => {
            return Err(FieldError::new("model", "Invalid type for 'model': expected a string."));
        }
        Some(v) => serde_json::from_str::<String>(v.get())
            .map_err(|_| FieldError::new("model", "Invalid value for 'model'."))?,
    };
    match obj.get("messages") {
        None => {
            return Err(FieldError::new("messages", "Missing required parameter: 'messages'."));
        }
        Some(v) if kind_of(v) != JsonKind::Array => {
            return Err(FieldError::new("messages", "Invalid type for 'messages': expected an array of messages."));
        }
        Some(v) if v.get()[1..].trim_start().starts_with(']') => {
            return Err(FieldError::new(
                "messages",
                "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            ));
        }
        Some(_) => {}
    }
    expect_kind(obj, "stream", &[JsonKind::Bool, JsonKind::Null], "a boolean")?;
    expect_kind(obj, "stream_options", &[JsonKind::Object, JsonKind::Null], "an object")?;
    expect_kind(obj, "tools", &[JsonKind::Array, JsonKind::Null], "an array")?;
    expect_kind(obj, "temperature", &[JsonKind::Number, JsonKind::Null], "a number")?;
    expect_kind(obj, "top_p", &[JsonKind::Number, JsonKind::Null], "a number")?;
    let stream = obj.get("stream").is_some_and(|v| v.get() == "true");
    let include_usage = match obj.get("stream_options") {
        Some(v) if kind_of(v) == JsonKind::Object => {
            let options: StreamOptions = serde_json::from_str(v.get()).map_err(|_| {
                FieldError::new(
                    "stream_options",
                    "Invalid type for 'stream_options.include_usage': expected a boolean.",
                )
            })?;
            options.include_usage.unwrap_or(false)
        }
        _ => false,
    };
    let max_completion = optional_u64(obj, "max_completion_tokens")?;
    let max_tokens = optional_u64(obj, "max_tokens")?;
    if optional_u64(obj, "n")? == Some(0) {
        return Err(FieldError::new("n", "Invalid value for 'n': expected an integer of at least 1."));
    }
    Ok(ChatView { model, stream, include_usage, max_tokens: max_completion.or(max_tokens) })
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

/// The OpenAI-compatible dialect an upstream speaks: what it accepts beyond the standard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// OpenAI itself, vLLM, llama.cpp and the like: everything passes through.
    #[default]
    OpenAi,
    /// DeepSeek: `reasoning_content` in answers and in the assistant messages clients send
    /// back (its thinking mode requires them) passes through untouched.
    DeepSeek,
    /// Mistral: refuses fields it does not know (422), so those are removed; `seed` is
    /// `random_seed` there, and it reports stream usage without `stream_options`.
    Mistral,
}

/// Fields Mistral's chat API rejects as "extra inputs".
const MISTRAL_UNKNOWN: &[&str] = &[
    "stream_options",
    "user",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "store",
    "metadata",
    "service_tier",
    "reasoning_effort",
    "modalities",
    "audio",
    "prompt_cache_key",
    "safety_identifier",
    "verbosity",
    "web_search_options",
];

/// Rewrites the body for the upstream: its model name, its dialect's needs, and for
/// streams the usage chunk asked for (the gateway bills from it, and removes it again if
/// the client did not ask).
pub fn prepare_upstream_chat(obj: &mut RawObject<'_>, view: &ChatView, upstream_model: &str, dialect: Dialect) {
    obj.set("model", raw_string(upstream_model));
    if dialect == Dialect::Mistral {
        if let Some(seed) = obj.get("seed").map(|v| v.to_owned()) {
            obj.remove("seed");
            obj.set("random_seed", seed);
        }
        if obj.get("max_tokens").is_none()
            && let Some(max) = obj.get("max_completion_tokens").map(|v| v.to_owned())
        {
            obj.set("max_tokens", max);
        }
        obj.remove("max_completion_tokens");
        for field in MISTRAL_UNKNOWN {
            obj.remove(field);
        }
        return;
    }
    if view.stream && !view.include_usage {
        let mut options = obj
            .get("stream_options")
            .and_then(|v| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(v.get()).ok())
            .unwrap_or_default();
        options.insert("include_usage".to_owned(), serde_json::Value::Bool(true));
        let json = serde_json::to_vec(&options).unwrap_or_else(|_| b"{\"include_usage\":true}".to_vec());
        obj.set("stream_options", raw_from_vec(json));
    }
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    prompt_tokens_details: Option<PromptDetails>,
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    reasoning_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    fn from(w: WireUsage) -> Usage {
        Usage {
            prompt_tokens: w.prompt_tokens,
            completion_tokens: w.completion_tokens,
            cached_tokens: w.prompt_tokens_details.and_then(|d| d.cached_tokens).unwrap_or(0),
            cache_write_tokens: 0,
            reasoning_tokens: w.completion_tokens_details.and_then(|d| d.reasoning_tokens).unwrap_or(0),
            hosted: Default::default(),
        }
    }
}

#[derive(Deserialize)]
struct WithUsage<'a> {
    #[serde(borrow)]
    usage: Option<&'a RawValue>,
}

fn read_usage(json: &[u8]) -> Option<Usage> {
    let with: WithUsage<'_> = serde_json::from_slice(json).ok()?;
    let raw = with.usage?;
    serde_json::from_str::<Option<WireUsage>>(raw.get()).ok().flatten().map(Usage::from)
}

/// Usage of a non-streaming answer (`None` if the upstream did not report it).
pub fn response_usage(body: &[u8]) -> Option<Usage> {
    read_usage(body)
}

/// What one stream chunk (an event's `data` payload) means for metering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChunkInfo {
    /// The usage the chunk reports.
    pub usage: Option<Usage>,
    /// The chunk exists only to carry usage (`"choices": []`).
    pub usage_only: bool,
    /// The chunk delivers generated content (text, reasoning or tool-call arguments).
    pub delivers_tokens: bool,
    /// The chunk is the terminating `[DONE]`.
    pub done: bool,
    /// The chunk is an error the upstream sent in place of more content.
    pub error: bool,
}

/// Classifies a chunk by scanning its bytes; only a chunk that carries usage is parsed.
pub fn classify_chunk(data: &[u8]) -> ChunkInfo {
    if data == b"[DONE]" {
        return ChunkInfo { done: true, ..ChunkInfo::default() };
    }
    let mut info = ChunkInfo { error: data.trim_ascii_start().starts_with(b"{\"error\""), ..ChunkInfo::default() };
    if let Some((_, value)) = member(data, &USAGE)
        && data.get(value) == Some(&b'{')
    {
        info.usage = read_usage(data);
        info.usage_only = info.usage.is_some()
            && member(data, &CHOICES).is_some_and(|(_, at)| {
                data.get(at) == Some(&b'[') && data[at + 1..].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b']')
            });
    }
    info.delivers_tokens = !info.usage_only
        && DELIVERING.iter().any(|finder| {
            finder.find_iter(data).any(|at| {
                let value = skip_colon(data, at + finder.needle().len());
                data.get(value) == Some(&b'"') && data.get(value + 1) != Some(&b'"')
            })
        });
    info
}

static USAGE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"usage\""));
static CHOICES: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"choices\""));
static DELIVERING: LazyLock<[Finder<'static>; 5]> = LazyLock::new(|| {
    [
        Finder::new(b"\"content\""),
        // Legacy completions stream `choices[].text`.
        Finder::new(b"\"text\""),
        Finder::new(b"\"reasoning_content\""),
        Finder::new(b"\"arguments\""),
        Finder::new(b"\"refusal\""),
    ]
});

/// Index of the first non-blank byte after `at`, past one `:`.
fn skip_colon(data: &[u8], mut at: usize) -> usize {
    while data.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    if data.get(at) == Some(&b':') {
        at += 1;
    }
    while data.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

/// The first `"key":` member in `data`: where its key starts and where its value starts.
fn member(data: &[u8], key: &Finder<'_>) -> Option<(usize, usize)> {
    key.find_iter(data).find_map(|start| {
        let after = start + key.needle().len();
        let value = skip_colon(data, after);
        (value > after && data[after..value].contains(&b':')).then_some((start, value))
    })
}

/// Removes the `"usage":null` member that an upstream adds to every chunk once usage was
/// requested, for a client that did not request it. Returns `None` when there is none.
pub fn strip_null_usage(data: &[u8]) -> Option<Vec<u8>> {
    let (key, value) = member(data, &USAGE)?;
    let end = value + 4;
    if data.get(value..end) != Some(b"null") {
        return None;
    }
    let before = data[..key].iter().rposition(|b| !b.is_ascii_whitespace());
    let after = data[end..].iter().position(|b| !b.is_ascii_whitespace()).map(|i| end + i);
    let (cut_from, cut_to) = match (before, after) {
        (Some(comma), _) if data[comma] == b',' => (comma, end),
        (_, Some(comma)) if data[comma] == b',' => (key, comma + 1),
        _ => (key, end),
    };
    let mut out = Vec::with_capacity(data.len() - (cut_to - cut_from));
    out.extend_from_slice(&data[..cut_from]);
    out.extend_from_slice(&data[cut_to..]);
    Some(out)
}

/// A rough token count of text (about four characters a token), used only when an
/// upstream never reports usage.
pub fn estimate_text_tokens(text: &str) -> u64 {
    u64::try_from(text.chars().count().div_ceil(4)).unwrap_or(u64::MAX)
}

#[derive(Deserialize)]
struct EstimateRequest {
    #[serde(default)]
    messages: Vec<EstimateMessage>,
}

#[derive(Deserialize)]
struct EstimateMessage {
    #[serde(default)]
    content: serde_json::Value,
}

/// An estimate of a chat request's prompt tokens: its messages' text plus a few tokens of
/// framing per message. Only used when the upstream does not report usage.
pub fn estimate_prompt_tokens(body: &[u8]) -> u64 {
    let request = match serde_json::from_slice::<EstimateRequest>(body) {
        Ok(request) if !request.messages.is_empty() => request,
        // Another surface's body (a Responses `input`, a legacy `prompt`): its text, all
        // of it, is the best estimate there is.
        _ => return estimate_text_tokens(&String::from_utf8_lossy(body)),
    };
    request
        .messages
        .iter()
        .map(|m| {
            let text: u64 = match &m.content {
                serde_json::Value::String(s) => estimate_text_tokens(s),
                serde_json::Value::Array(parts) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(serde_json::Value::as_str))
                    .map(estimate_text_tokens)
                    .sum(),
                _ => 0,
            };
            text + 4
        })
        .sum()
}

#[derive(Deserialize)]
struct EstimateResponse {
    #[serde(default)]
    choices: Vec<EstimateChoice>,
}

#[derive(Deserialize)]
struct EstimateChoice {
    #[serde(default)]
    message: serde_json::Value,
}

/// An estimate of the completion tokens in a non-streaming answer without usage.
pub fn estimate_completion_tokens(body: &[u8]) -> u64 {
    let Ok(response) = serde_json::from_slice::<EstimateResponse>(body) else {
        return 0;
    };
    response
        .choices
        .iter()
        .map(|c| {
            let content = c.message.get("content").and_then(serde_json::Value::as_str).map_or(0, estimate_text_tokens);
            let calls = c.message.get("tool_calls").map_or(0, |t| estimate_text_tokens(&t.to_string()));
            content + calls
        })
        .sum()
}

#[cfg(test)]
mod tests;

/// Removes the reasoning a translated conversation carries in its assistant messages
/// (`thinking_blocks`, and `reasoning_content` except for DeepSeek, whose thinking mode
/// wants it back) before it goes to an OpenAI-compatible upstream, which would refuse
/// fields it does not know.
pub fn strip_reasoning_history(obj: &mut RawObject<'_>, dialect: Dialect) {
    let Some(messages) = obj.get("messages") else { return };
    let text = messages.get();
    if !text.contains("\"thinking_blocks\"") && !text.contains("\"reasoning_content\"") {
        return;
    }
    let Ok(mut list) = serde_json::from_str::<Vec<serde_json::Value>>(text) else { return };
    for message in &mut list {
        if let Some(fields) = message.as_object_mut() {
            fields.remove("thinking_blocks");
            if dialect != Dialect::DeepSeek {
                fields.remove("reasoning_content");
            }
        }
    }
    if let Ok(json) = serde_json::to_vec(&list) {
        obj.set("messages", raw_from_vec(json));
    }
}
