//! The Gemini API as an inbound surface (`POST /v1beta/models/{model}:generateContent`,
//! `:streamGenerateContent`, `:countTokens`, `:embedContent`, `:batchEmbedContents`: what
//! the `google-genai` SDKs send): the request as the canonical chat request, the chat
//! answer — whole or streamed, as SSE or as Google's streamed JSON array — as Gemini's
//! `GenerateContentResponse`, and errors in Google's RPC shape. The wire types are the
//! Gemini adapter's own (`crate::gemini::wire`).
//!
//! Mapping choices worth knowing:
//! - `systemInstruction` becomes one system message; `user` turns' `functionResponse` parts
//!   become `tool` messages ahead of the rest of the turn, matched to the call by `id`, else
//!   by name among the previous model turn's calls; calls without an id get `call_<turn>_<k>`;
//! - `inlineData` images become data-URL image parts, PDFs file parts, WAV/MP3 audio parts,
//!   `text/*` text; `fileData` passes only as an http(s) image URL;
//! - `topK` and `safetySettings` are left out (no chat API takes them); `cachedContent`,
//!   `responseLogprobs`, `speechConfig` and non-text `responseModalities` are refused;
//!   Google's own tools (`googleSearch`, `codeExecution`, …) are dropped and named (or
//!   refused under `unsupported_tools = "reject"`);
//! - `thinkingConfig` becomes `reasoning_effort` (budget 0 → `none`, ≤ 1024 → `low`, ≤ 8192
//!   or dynamic → `medium`, more → `high`; `thinkingLevel` as it is); thought summaries come
//!   back as `thought` parts only when `includeThoughts` is set;
//! - thought signatures: a Gemini upstream's pass through untouched; other providers'
//!   reasoning blocks (Anthropic's signed thinking) travel base64-encoded in the
//!   `thoughtSignature` of the answer's first call (else its text) and are read back.

mod conversation;
mod embed;
mod options;
mod response;
mod stream;
#[cfg(test)]
mod tests;

use base64::Engine;
use tokenrouter_core::chat::{ChatCompletion, ChatRequest, Stop, StreamOptions, ThinkingBlock};
use tokenrouter_core::{ErrorEnvelope, Usage};

pub use self::embed::{EmbedKind, embed_answer, embed_request};
pub use self::response::{rpc_status, status_error_body};
use crate::adapter::Unsupported;
use crate::gemini::wire::GenerateContentRequest;
use crate::responses::UnsupportedTools;
use crate::surface::{Surface, SurfaceStream};

/// How a streamed answer is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamForm {
    /// `?alt=sse`: `data: {GenerateContentResponse}` events.
    Sse,
    /// Without `alt=sse`: one JSON array whose elements arrive as they are made.
    Array,
}

/// What the server knows of the request beyond its body.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    /// The model named in the path (`models/` already removed).
    pub model: &'a str,
    /// The answer's `responseId`.
    pub response_id: String,
    /// `Some` on `:streamGenerateContent`.
    pub stream: Option<StreamForm>,
    pub unsupported_tools: UnsupportedTools,
}

/// A generateContent request as the canonical chat request, and how to state its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    pub chat: ChatRequest,
    pub surface: GeminiSurface,
    /// Google's own tools the request offered, which no chat upstream can run (left out).
    pub dropped_tools: Vec<String>,
}

/// Reads and translates a `generateContent` body. A field of the wrong type is refused
/// naming its path (`contents[2].parts[0].inlineData`).
pub fn translate(body: &[u8], call: Call<'_>) -> Result<Translated, Unsupported> {
    let request: GenerateContentRequest = read(body)?;
    from_request(request, call)
}

fn from_request(request: GenerateContentRequest, call: Call<'_>) -> Result<Translated, Unsupported> {
    if request.contents.is_empty() {
        return Err(Unsupported::new("contents", "contents is not specified: send at least one content."));
    }
    if request.cached_content.is_some() {
        return Err(Unsupported::new(
            "cachedContent",
            "cachedContent names a context cached with Google, which this gateway cannot pass on: send the \
             contents themselves.",
        ));
    }
    let messages = conversation::convert(request.system_instruction, request.contents)?;
    let (mut tools, dropped_tools) = options::tools(request.tools, call.unsupported_tools)?;
    let tool_choice = options::tool_choice(request.tool_config, &mut tools)?;
    let generation = options::generation(request.generation_config.unwrap_or_default())?;
    let stream = call.stream.is_some();
    let mut extra = serde_json::Map::new();
    for (key, value) in
        [("presence_penalty", generation.presence_penalty), ("frequency_penalty", generation.frequency_penalty)]
    {
        if let Some(number) = value.and_then(serde_json::Number::from_f64) {
            extra.insert(key.to_owned(), serde_json::Value::Number(number));
        }
    }
    let chat = ChatRequest {
        model: call.model.to_owned(),
        messages,
        stream: stream.then_some(true),
        stream_options: stream.then_some(StreamOptions { include_usage: Some(true) }),
        max_tokens: generation.max_tokens,
        max_completion_tokens: None,
        temperature: generation.temperature,
        top_p: generation.top_p,
        n: generation.candidates.filter(|n| *n > 1),
        stop: (!generation.stop.is_empty()).then_some(Stop::Many(generation.stop)),
        tools: (!tools.is_empty()).then_some(tools),
        tool_choice,
        parallel_tool_calls: None,
        response_format: generation.response_format,
        reasoning_effort: generation.reasoning_effort,
        seed: generation.seed,
        user: None,
        extra,
    };
    let surface = GeminiSurface {
        response_id: call.response_id,
        model: call.model.to_owned(),
        include_thoughts: generation.include_thoughts,
        form: call.stream.unwrap_or(StreamForm::Sse),
    };
    Ok(Translated { chat, surface, dropped_tools })
}

/// `:countTokens`: its body (`{contents}` or `{generateContentRequest: {...}}`) as the
/// canonical request whose prompt the server counts.
pub fn count_tokens_request(body: &[u8], model: &str) -> Result<ChatRequest, Unsupported> {
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct CountTokens {
        #[serde(default, alias = "generate_content_request")]
        generate_content_request: Option<GenerateContentRequest>,
        #[serde(default)]
        contents: Vec<crate::gemini::wire::Content>,
    }
    let count: CountTokens = read(body)?;
    let request = match count.generate_content_request {
        Some(request) => request,
        None => GenerateContentRequest { contents: count.contents, ..GenerateContentRequest::default() },
    };
    let call = Call { model, response_id: String::new(), stream: None, unsupported_tools: UnsupportedTools::Drop };
    from_request(request, call).map(|t| t.chat)
}

/// An OpenAI error envelope restated in Google's shape: `{"error": {"code", "message",
/// "status"}}`, the RPC status chosen by the HTTP status.
pub fn error_body(status: u16, envelope: &ErrorEnvelope) -> Vec<u8> {
    response::error_json(status, &envelope.error.message, envelope.error.param.as_deref())
}

/// States the chat answer as Gemini's `GenerateContentResponse`, whole or streamed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeminiSurface {
    response_id: String,
    /// The model as the client named it (`modelVersion`).
    model: String,
    /// The client asked for thought summaries.
    include_thoughts: bool,
    form: StreamForm,
}

impl Surface for GeminiSurface {
    fn present(&self, completion: &ChatCompletion, usage: Usage) -> Vec<u8> {
        response::present(self, completion, usage)
    }

    fn stream(&self) -> Box<dyn SurfaceStream> {
        Box::new(stream::GeminiStream::new(self.clone()))
    }

    fn error_body(&self, envelope: &ErrorEnvelope) -> Vec<u8> {
        let status = response::status_for_envelope(envelope);
        response::error_json(status, &envelope.error.message, envelope.error.param.as_deref())
    }
}

/// Reads a body; a field of the wrong type is named by its path, as Google names it.
fn read<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Unsupported> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Unsupported::new("", "The request body must be a JSON object."));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let param = path(e.path());
        let message = if param.is_empty() {
            format!("Invalid JSON payload received: {}", e.inner())
        } else {
            format!("Invalid JSON payload received at '{param}': {}", e.inner())
        };
        Unsupported::new(param, message)
    })?;
    deserializer.end().map_err(|e| Unsupported::new("", format!("Invalid JSON payload received: {e}")))?;
    Ok(value)
}

/// A path in Google's spelling: `contents[2].parts[0].text`.
fn path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    out
}

/// How other providers' reasoning blocks travel in a `thoughtSignature`.
const FOREIGN_PREFIX: &str = "tokenrouter.thinking_blocks.v1:";

/// Reasoning blocks of another provider as one `thoughtSignature` (base64, as Google's are).
fn foreign_signature(blocks: &[ThinkingBlock]) -> Option<String> {
    if blocks.is_empty() {
        return None;
    }
    let json = serde_json::to_string(blocks).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(format!("{FOREIGN_PREFIX}{json}")))
}

/// The reasoning blocks a `thoughtSignature` carries, if it is one of ours. Either base64
/// alphabet is read, padded or not (clients re-encode signatures as they like).
fn foreign_blocks(signature: &str) -> Option<Vec<ThinkingBlock>> {
    let normalized: String = signature
        .chars()
        .filter(|c| *c != '=')
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD.decode(normalized).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    serde_json::from_str(text.strip_prefix(FOREIGN_PREFIX)?).ok()
}
