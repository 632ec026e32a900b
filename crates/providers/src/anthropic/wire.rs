//! The Anthropic Messages API on the wire: the request body, the `Message` answer, the
//! stream events and the error envelope, as serde types (owned, so that the mock and the
//! inbound Messages surface can read and write them too).

mod events;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

pub use events::{BlockDelta, MessageDeltaBody, StreamEvent};

/// The body of `POST /v1/messages`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessagesRequest {
    pub model: String,
    pub max_tokens: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<TextBlock>,
    pub messages: Vec<InputMessage>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDefinition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<ThinkingConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
}

/// A system prompt block (`{"type": "text", "text": ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextBlock {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
}

impl TextBlock {
    pub fn new(text: impl Into<String>) -> TextBlock {
        TextBlock { kind: "text".to_owned(), text: text.into() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InputMessage {
    /// `user` | `assistant`
    pub role: String,
    pub content: MessageContent,
}

/// A string, or a list of blocks (a message's or a tool result's content).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Blocks(Vec<ContentBlock>),
}

pub type ToolResultContent = MessageContent;

// By hand: an untagged enum would buffer its blocks, which a `RawValue` cannot survive.
impl<'de> Deserialize<'de> for MessageContent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<MessageContent, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = MessageContent;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a list of content blocks")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<MessageContent, E> {
                Ok(MessageContent::Text(v.to_owned()))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<MessageContent, E> {
                Ok(MessageContent::Text(v))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<MessageContent, A::Error> {
                let mut blocks = Vec::with_capacity(seq.size_hint().unwrap_or(1));
                while let Some(block) = seq.next_element()? {
                    blocks.push(block);
                }
                Ok(MessageContent::Blocks(blocks))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A content block, in a request or an answer. Blocks this gateway does not use (server
/// tools, documents, citations' sources…) read as `Other` and are skipped.
// Read through a flat struct: serde cannot buffer a `RawValue` inside a tagged enum.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "FlatBlock")]
pub enum ContentBlock {
    Text {
        text: String,
    },
    Image {
        source: ImageSource,
    },
    ToolUse {
        id: String,
        name: String,
        /// The arguments object, as its JSON text (kept as sent: key order survives).
        input: Box<RawValue>,
    },
    ToolResult {
        tool_use_id: String,
        content: ToolResultContent,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_error: Option<bool>,
    },
    Thinking {
        thinking: String,
        signature: String,
    },
    RedactedThinking {
        data: String,
    },
    /// A PDF, inline (`source` of type `base64`).
    Document {
        source: ImageSource,
    },
    /// A block this gateway does not read (never sent by it).
    Other,
}

/// Every field any content block has, to read one in a single pass.
#[derive(Deserialize)]
struct FlatBlock {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
    // Read only for the block types that have them: other blocks give them other shapes.
    source: Option<Box<RawValue>>,
    id: Option<String>,
    name: Option<String>,
    input: Option<Box<RawValue>>,
    tool_use_id: Option<String>,
    content: Option<Box<RawValue>>,
    is_error: Option<bool>,
    thinking: Option<String>,
    signature: Option<String>,
    data: Option<String>,
}

impl TryFrom<FlatBlock> for ContentBlock {
    type Error = String;

    fn try_from(b: FlatBlock) -> Result<ContentBlock, String> {
        let missing = |field: &str| format!("a {} block without {field}", b.kind);
        Ok(match b.kind.as_str() {
            "text" => ContentBlock::Text { text: b.text.ok_or_else(|| missing("text"))? },
            "image" => {
                ContentBlock::Image { source: read(&b.source.ok_or_else(|| missing("source"))?, "image source")? }
            }
            "tool_use" => ContentBlock::ToolUse {
                id: b.id.ok_or_else(|| missing("id"))?,
                name: b.name.ok_or_else(|| missing("name"))?,
                input: b.input.ok_or_else(|| missing("input"))?,
            },
            "tool_result" => ContentBlock::ToolResult {
                tool_use_id: b.tool_use_id.ok_or_else(|| missing("tool_use_id"))?,
                content: match b.content {
                    Some(raw) => read(&raw, "tool_result content")?,
                    None => empty_result(),
                },
                is_error: b.is_error,
            },
            "thinking" => ContentBlock::Thinking {
                thinking: b.thinking.ok_or_else(|| missing("thinking"))?,
                signature: b.signature.unwrap_or_default(),
            },
            "redacted_thinking" => ContentBlock::RedactedThinking { data: b.data.ok_or_else(|| missing("data"))? },
            // Only ever sent by the gateway; a source it cannot read is skipped like any
            // other unknown block.
            "document" => match b.source.as_deref().map(|raw| read::<ImageSource>(raw, "document source")) {
                Some(Ok(source)) => ContentBlock::Document { source },
                _ => ContentBlock::Other,
            },
            _ => ContentBlock::Other,
        })
    }
}

fn read<T: serde::de::DeserializeOwned>(raw: &RawValue, what: &str) -> Result<T, String> {
    serde_json::from_str(raw.get()).map_err(|e| format!("{what}: {e}"))
}

fn empty_result() -> ToolResultContent {
    ToolResultContent::Text(String::new())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ImageSource {
    Base64 { media_type: String, data: String },
    Url { url: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub input_schema: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolChoice {
    Auto {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    Any {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    Tool {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ThinkingConfig {
    Enabled { budget_tokens: u64 },
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// A whole answer (`"type": "message"`); also the partial one in `message_start`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    #[serde(default)]
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub model: String,
    pub content: Vec<ContentBlock>,
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub stop_sequence: Option<String>,
    #[serde(default)]
    pub usage: Usage,
}

/// Token counts. In `message_delta` every field is optional and cumulative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens_details: Option<OutputTokensDetails>,
    /// Server tools run (web search, web fetch), billed per call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_tool_use: Option<ServerToolUse>,
}

/// `usage.server_tool_use`: calls of Anthropic's server tools, each billed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerToolUse {
    #[serde(default)]
    pub web_search_requests: u64,
    #[serde(default)]
    pub web_fetch_requests: u64,
}

impl Usage {
    /// Takes every count `later` reports (stream usage is cumulative).
    pub fn update(&mut self, later: &Usage) {
        let keep = |old: Option<u64>, new: Option<u64>| new.or(old);
        self.input_tokens = keep(self.input_tokens, later.input_tokens);
        self.output_tokens = keep(self.output_tokens, later.output_tokens);
        self.cache_creation_input_tokens = keep(self.cache_creation_input_tokens, later.cache_creation_input_tokens);
        self.cache_read_input_tokens = keep(self.cache_read_input_tokens, later.cache_read_input_tokens);
        self.output_tokens_details = later.output_tokens_details.or(self.output_tokens_details);
        self.server_tool_use = later.server_tool_use.or(self.server_tool_use);
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputTokensDetails {
    #[serde(default)]
    pub thinking_tokens: u64,
}

/// `{"type": "error", "error": {"type": ..., "message": ...}}`, as an HTTP body or an
/// in-stream event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    #[serde(rename = "type")]
    pub kind: String,
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub message: String,
}
