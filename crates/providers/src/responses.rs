//! OpenAI's Responses API (`POST /v1/responses`) as an inbound surface: the request read
//! and translated into the canonical chat request, and the canonical answer stated back
//! as a Response object, a stream of Responses events, and a record for
//! `previous_response_id`.
//!
//! A `namespace` tool's functions are flattened to chat functions named
//! `<namespace>__<name>`; their calls come back as `function_call` items with the inner
//! `name` and the `namespace`. A `custom` (freeform) tool, such as Codex's `apply_patch`,
//! becomes a function taking `{"input": "<raw text>"}`; its calls come back as
//! `custom_tool_call` items with that raw `input`. Tools only OpenAI's servers can run
//! (`web_search`, `file_search`, …) are dropped and named, or refused, as [`Options`] says.

pub mod native;
mod request;
mod response;
mod stream;
mod tools;
pub mod wire;

use std::sync::Arc;

use serde_json::Map;
use tokenrouter_core::Usage;
use tokenrouter_core::chat::{
    ChatCompletion, ChatRequest, Content, JsonSchema, Message, ResponseFormat, StreamOptions,
};

use self::request::Place;
use self::response::{Echo, Shape};
use self::wire::{Item, Record, TextOr};
use crate::adapter::Unsupported;
use crate::surface::{Surface, SurfaceStream};

pub use self::wire::ResponsesRequest;

/// What to do with a tool no chat upstream can run (config `unsupported_tools`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UnsupportedTools {
    /// Remove it and name its type in [`Translated::dropped_tools`].
    #[default]
    Drop,
    /// Refuse the request (400 naming `tools[i].type`).
    Reject,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    pub unsupported_tools: UnsupportedTools,
}

/// The facts the server gives the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    /// `resp_…`; output item ids are derived from it.
    pub response_id: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// Reads a request body. A field of the wrong type is refused naming its path
/// (`input[2].content`); fields the gateway does not know are accepted.
pub fn parse(body: &[u8]) -> Result<ResponsesRequest, Unsupported> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let request: ResponsesRequest = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let param = join_path("", e.path());
        if param.is_empty() || !e.inner().is_data() {
            Unsupported::new("", format!("The request body is not a valid JSON object: {}", e.inner()))
        } else {
            Unsupported::new(param.clone(), format!("Invalid value for '{param}': {}", e.inner()))
        }
    })?;
    deserializer
        .end()
        .map_err(|e| Unsupported::new("", format!("The request body is not a valid JSON object: {e}")))?;
    if request.model.is_empty() {
        return Err(Unsupported::new("model", "Missing required parameter: 'model'."));
    }
    Ok(request)
}

impl ResponsesRequest {
    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn stream(&self) -> bool {
        self.stream == Some(true)
    }

    pub fn previous_response_id(&self) -> Option<&str> {
        self.previous_response_id.as_deref().filter(|id| !id.is_empty())
    }
}

/// A request translated: the chat request to run, and how to state its answer.
#[derive(Debug)]
pub struct Translated {
    pub chat: ChatRequest,
    pub surface: ResponsesSurface,
    /// Tool types removed under [`UnsupportedTools::Drop`], once each, in order.
    pub dropped_tools: Vec<String>,
}

/// Translates a request. `previous` holds the records [`Surface::keep`] made of the
/// response named by `previous_response_id` and of each response it continued, the
/// oldest first (the server stores and walks them; they are opaque there): that
/// conversation comes before this request's input. Its `instructions` are not carried
/// over, as OpenAI does.
pub fn translate(
    mut request: ResponsesRequest,
    previous: Option<&[Vec<u8>]>,
    ids: Ids,
    options: &Options,
) -> Result<Translated, Unsupported> {
    let earlier = match (request.previous_response_id(), previous) {
        (None, _) => Vec::new(),
        (Some(id), None) => {
            return Err(Unsupported::new(
                "previous_response_id",
                format!("Previous response with id '{id}' not found."),
            ));
        }
        (Some(_), Some(records)) => {
            let mut items = Vec::new();
            for record in records {
                items.extend(read_record(record)?);
            }
            items
        }
    };
    let input = match request.input.take() {
        None => Vec::new(),
        Some(TextOr::Text(text)) => vec![Item {
            kind: Some("message".to_owned()),
            role: Some("user".to_owned()),
            content: Some(TextOr::Text(text)),
            ..Item::default()
        }],
        Some(TextOr::List(items)) => items,
    };
    let tools = tools::read(request.tools.as_deref().unwrap_or_default(), options.unsupported_tools)?;
    let mut messages = Vec::new();
    if let Some(instructions) = request.instructions.as_ref().filter(|i| !i.is_empty()) {
        messages.push(Message::System { content: Content::Text(instructions.clone()), name: None });
    }
    let items = earlier.iter().map(|item| (Place::Previous, item));
    messages.extend(request::messages(items.chain(input.iter().enumerate().map(|(i, item)| (Place::Input(i), item))))?);
    if messages.is_empty() {
        return Err(Unsupported::new("input", "The request has no input: 'input' needs at least one item."));
    }
    let mut chat = ChatRequest {
        model: request.model.clone(),
        messages,
        stream: None,
        stream_options: None,
        max_tokens: None,
        max_completion_tokens: None,
        temperature: None,
        top_p: None,
        n: None,
        stop: None,
        tools: None,
        tool_choice: None,
        parallel_tool_calls: None,
        response_format: None,
        reasoning_effort: None,
        seed: None,
        user: None,
        extra: Map::new(),
    };
    parameters(&request, &mut chat)?;
    let tool_choice = tools::choice(request.tool_choice.as_ref(), &tools)?;
    if !tools.chat.is_empty() {
        chat.tool_choice = tool_choice;
        chat.parallel_tool_calls = request.parallel_tool_calls;
        chat.tools = Some(tools.chat);
    }
    let store = request.store != Some(false);
    let asked_sealed = request.include.iter().flatten().any(|i| i == "reasoning.encrypted_content");
    let shape = Shape {
        ids,
        model: request.model.clone(),
        echo: Echo::of(&request),
        namespaced: tools.namespaced,
        custom: tools.custom,
        // A kept record must hand the blocks back too (Anthropic refuses a tool turn
        // whose thinking is missing), and the record is made from the answer.
        sealed_reasoning: asked_sealed || store,
    };
    let turn = store.then_some(input);
    Ok(Translated { chat, surface: ResponsesSurface { shape: Arc::new(shape), turn }, dropped_tools: tools.dropped })
}

/// States one translated request's answer in Responses' shapes.
#[derive(Debug)]
pub struct ResponsesSurface {
    shape: Arc<Shape>,
    /// This request's input items, kept with the answer unless the request said
    /// `store: false` (the conversation before them is kept by the earlier responses).
    turn: Option<Vec<Item>>,
}

impl Surface for ResponsesSurface {
    fn present(&self, completion: &ChatCompletion, usage: Usage) -> Vec<u8> {
        serde_json::to_vec(&response::present(&self.shape, completion, usage)).unwrap_or_default()
    }

    fn stream(&self) -> Box<dyn SurfaceStream> {
        Box::new(stream::Transcoder::new(self.shape.clone()))
    }

    fn keep(&self, answer: &[u8]) -> Option<(String, Vec<u8>)> {
        response::keep(self.turn.as_deref()?, answer)
    }
}

fn read_record(record: &[u8]) -> Result<Vec<Item>, Unsupported> {
    match serde_json::from_slice::<Record>(record) {
        Ok(record) if record.version == Record::VERSION => Ok(record.items),
        _ => Err(Unsupported::new("previous_response_id", "The previous response cannot be continued from.")),
    }
}

/// The chat request's fields other than messages and tools.
fn parameters(request: &ResponsesRequest, chat: &mut ChatRequest) -> Result<(), Unsupported> {
    chat.temperature = request.temperature;
    chat.top_p = request.top_p;
    chat.max_completion_tokens = request.max_output_tokens;
    chat.user = request.user.clone().or_else(|| request.safety_identifier.clone());
    chat.reasoning_effort = request.reasoning.as_ref().and_then(|r| r.effort.clone());
    if request.stream == Some(true) {
        chat.stream = Some(true);
        // The surface states usage in `response.completed`: it needs the usage chunk.
        chat.stream_options = Some(StreamOptions { include_usage: Some(true) });
    }
    let Some(format) = request.text.as_ref().and_then(|t| t.format.as_ref()) else { return Ok(()) };
    chat.response_format = match format.kind.as_str() {
        "text" => None,
        "json_object" => Some(ResponseFormat::JsonObject),
        "json_schema" => {
            let Some(name) = format.name.clone().filter(|n| !n.is_empty()) else {
                return Err(Unsupported::new("text.format.name", "text.format.name: a JSON schema must be named."));
            };
            Some(ResponseFormat::JsonSchema {
                json_schema: JsonSchema {
                    name,
                    description: format.description.clone(),
                    schema: format.schema.clone(),
                    strict: format.strict,
                },
            })
        }
        other => {
            return Err(Unsupported::new(
                "text.format.type",
                format!("text.format.type: '{other}' is not one of 'text', 'json_object', 'json_schema'."),
            ));
        }
    };
    Ok(())
}

/// The longest function name OpenAI and Anthropic accept.
const FUNCTION_NAME_MAX: usize = 64;

/// The chat function name of a function in a namespace: `<namespace>__<name>`, or, past
/// 64 characters, its first 55 and a hash of the whole (the surface maps it back).
fn flat_name(namespace: &str, name: &str) -> String {
    let flat = format!("{namespace}__{name}");
    if flat.len() <= FUNCTION_NAME_MAX {
        return flat;
    }
    // FNV-1a: stable across builds and processes, unlike the std hasher.
    let hash = flat.bytes().fold(0x811c_9dc5_u32, |hash, byte| (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193));
    let mut cut = FUNCTION_NAME_MAX - 9;
    while !flat.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{hash:08x}", &flat[..cut])
}

/// `prefix` followed by a serde path in OpenAI's spelling: `input[2].content`.
fn join_path(prefix: &str, path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut joined = prefix.to_owned();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => joined.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !joined.is_empty() {
                    joined.push('.');
                }
                joined.push_str(key);
            }
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    joined
}
