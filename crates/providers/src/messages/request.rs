//! The body of `POST /v1/messages` as Anthropic's clients send it, read in one pass: a
//! field of the wrong type is refused with its path (`messages.2.content`); fields and
//! block types this gateway does not use are accepted and left out.

use serde::Deserialize;
use serde_json::Value;

use crate::adapter::Unsupported;
use crate::anthropic::wire::{Metadata, ToolChoice};

/// A Messages API request, as sent. Unknown fields are tolerated, never an error.
#[derive(Debug, Clone, Deserialize)]
pub struct MessagesRequest {
    // Required ones are read as optional so that a missing one is named by `validate`.
    #[serde(default)]
    pub(super) model: Option<String>,
    #[serde(default)]
    pub(super) messages: Option<Vec<InputMessage>>,
    #[serde(default)]
    pub(super) max_tokens: Option<u64>,
    #[serde(default)]
    pub(super) system: Option<Content>,
    #[serde(default)]
    pub(super) tools: Option<Vec<ToolSpec>>,
    #[serde(default)]
    pub(super) tool_choice: Option<ToolChoice>,
    #[serde(default)]
    pub(super) thinking: Option<Thinking>,
    #[serde(default)]
    pub(super) output_config: Option<OutputConfig>,
    /// The structured-outputs beta's spelling of `output_config.format`.
    #[serde(default)]
    pub(super) output_format: Option<OutputFormat>,
    #[serde(default)]
    pub(super) stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    pub(super) temperature: Option<f64>,
    #[serde(default)]
    pub(super) top_p: Option<f64>,
    #[serde(default)]
    pub(super) metadata: Option<Metadata>,
    #[serde(default)]
    pub(super) stream: Option<bool>,
}

impl MessagesRequest {
    /// The model the client named.
    pub fn model(&self) -> &str {
        self.model.as_deref().unwrap_or_default()
    }

    /// The client asked for a stream of events.
    pub fn stream(&self) -> bool {
        self.stream == Some(true)
    }

    /// The client's `max_tokens` (required on `/v1/messages`, not on `count_tokens`).
    pub fn max_tokens(&self) -> Option<u64> {
        self.max_tokens
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Role {
    User,
    Assistant,
    /// Claude Code sends system prompts inside `messages` too.
    System,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct InputMessage {
    pub role: Role,
    pub content: Content,
}

/// A string, or a list of content blocks.
#[derive(Debug, Clone)]
pub(super) enum Content {
    Text(String),
    Blocks(Vec<Block>),
}

// By hand: an untagged enum would lose the path of an error inside a block.
impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Content, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Content;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a list of content blocks")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Content, E> {
                Ok(Content::Text(v.to_owned()))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Content, E> {
                Ok(Content::Text(v))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Content, A::Error> {
                let mut blocks = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(64));
                while let Some(block) = seq.next_element()? {
                    blocks.push(block);
                }
                Ok(Content::Blocks(blocks))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A content block of a request. `cache_control`, `citations` and the like are ignored;
/// block types this gateway cannot pass on (server tool calls and results, container
/// uploads, search results…) read as `Other` and are dropped.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Block {
    Text {
        text: String,
    },
    Image {
        source: Source,
    },
    Document {
        source: Source,
        #[serde(default)]
        title: Option<String>,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: Option<Content>,
        #[serde(default)]
        is_error: Option<bool>,
    },
    Thinking {
        thinking: String,
        #[serde(default)]
        signature: String,
    },
    RedactedThinking {
        data: String,
    },
    #[serde(other)]
    Other,
}

/// Where an image's or a document's bytes are.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Source {
    Base64 {
        media_type: String,
        data: String,
    },
    Url {
        url: String,
    },
    /// A plain-text document.
    Text {
        data: String,
    },
    /// A document given as content blocks.
    Content {
        content: Content,
    },
    /// An upload to Anthropic's Files API, or a source type this gateway does not know.
    #[serde(other)]
    Other,
}

/// A tool the client offers: its own (`type` absent or `custom`) or one of Anthropic's
/// server tools (`web_search_20250305`, `bash_20250124`…), which only Anthropic can run.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct ToolSpec {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub input_schema: Option<Value>,
}

impl ToolSpec {
    pub fn is_custom(&self) -> bool {
        matches!(self.kind.as_deref(), None | Some("custom"))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Thinking {
    Enabled {
        budget_tokens: u64,
    },
    Adaptive,
    Disabled,
    /// A mode added after this was written: treated as no instruction.
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct OutputConfig {
    /// `low` | `medium` | `high` | `xhigh` | `max`
    #[serde(default)]
    pub effort: Option<String>,
    #[serde(default)]
    pub format: Option<OutputFormat>,
}

/// `{"type": "json_schema", "schema": {...}}`: the answer's text is JSON of this schema.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct OutputFormat {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub schema: Option<Value>,
}

/// Reads a body; a field of the wrong type is named by its path, as Anthropic names it
/// (`messages.2.content.0`: within a block, the block). `model` and a non-empty
/// `messages` are required.
pub(super) fn read(body: &[u8]) -> Result<MessagesRequest, Unsupported> {
    // (A list would read as a struct's fields in order.)
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Unsupported::new("", "The request body must be a JSON object."));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let request: MessagesRequest = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let param = path(e.path());
        let message = if param.is_empty() {
            format!("The request body is not a valid JSON object: {}", e.inner())
        } else {
            format!("{param}: {}", e.inner())
        };
        Unsupported::new(param, message)
    })?;
    deserializer
        .end()
        .map_err(|e| Unsupported::new("", format!("The request body is not a valid JSON object: {e}")))?;
    if request.model.as_deref().is_none_or(str::is_empty) {
        return Err(Unsupported::new("model", "model: Field required"));
    }
    match &request.messages {
        None => Err(Unsupported::new("messages", "messages: Field required")),
        Some(messages) if messages.is_empty() => {
            Err(Unsupported::new("messages", "messages: at least one message is required"))
        }
        Some(_) => Ok(request),
    }
}

/// A path in Anthropic's spelling: keys and indices joined by dots.
fn path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { .. } | Segment::Unknown => None,
        })
        .collect::<Vec<_>>()
        .join(".")
}
