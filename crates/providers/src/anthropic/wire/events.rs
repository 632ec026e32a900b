//! The stream events of the Messages API on the wire (`message_start` … `message_stop`),
//! read in one pass.

use serde::{Deserialize, Serialize};

use super::{ContentBlock, ErrorDetail, Message, Usage};

/// One server-sent event's `data`, by its `type`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "FlatEvent")]
pub enum StreamEvent {
    MessageStart {
        message: Message,
    },
    ContentBlockStart {
        index: u32,
        content_block: ContentBlock,
    },
    ContentBlockDelta {
        index: u32,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Option<Usage>,
    },
    MessageStop,
    Ping,
    Error {
        error: ErrorDetail,
    },
    /// An event this gateway does not read.
    Other,
}

/// Every field any stream event has, to read one in a single pass.
#[derive(Deserialize)]
struct FlatEvent {
    #[serde(rename = "type")]
    kind: String,
    message: Option<Message>,
    index: Option<u32>,
    content_block: Option<ContentBlock>,
    delta: Option<FlatDelta>,
    usage: Option<Usage>,
    error: Option<ErrorDetail>,
}

#[derive(Deserialize)]
struct FlatDelta {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
    partial_json: Option<String>,
    thinking: Option<String>,
    signature: Option<String>,
    stop_reason: Option<String>,
    stop_sequence: Option<String>,
}

impl TryFrom<FlatEvent> for StreamEvent {
    type Error = String;

    fn try_from(e: FlatEvent) -> Result<StreamEvent, String> {
        let missing = |field: &str| format!("a {} event without {field}", e.kind);
        Ok(match e.kind.as_str() {
            "message_start" => StreamEvent::MessageStart { message: e.message.ok_or_else(|| missing("message"))? },
            "content_block_start" => StreamEvent::ContentBlockStart {
                index: e.index.ok_or_else(|| missing("index"))?,
                content_block: e.content_block.ok_or_else(|| missing("content_block"))?,
            },
            "content_block_delta" => {
                let d = e.delta.ok_or_else(|| missing("delta"))?;
                let field = |v: Option<String>, name: &str| v.ok_or_else(|| format!("a delta without {name}"));
                let delta = match d.kind.as_deref() {
                    Some("text_delta") => BlockDelta::TextDelta { text: field(d.text, "text")? },
                    Some("input_json_delta") => {
                        BlockDelta::InputJsonDelta { partial_json: field(d.partial_json, "partial_json")? }
                    }
                    Some("thinking_delta") => BlockDelta::ThinkingDelta { thinking: field(d.thinking, "thinking")? },
                    Some("signature_delta") => {
                        BlockDelta::SignatureDelta { signature: field(d.signature, "signature")? }
                    }
                    _ => BlockDelta::Other,
                };
                StreamEvent::ContentBlockDelta { index: e.index.ok_or_else(|| missing("index"))?, delta }
            }
            "content_block_stop" => StreamEvent::ContentBlockStop { index: e.index.ok_or_else(|| missing("index"))? },
            "message_delta" => StreamEvent::MessageDelta {
                delta: e
                    .delta
                    .map(|d| MessageDeltaBody { stop_reason: d.stop_reason, stop_sequence: d.stop_sequence })
                    .unwrap_or_default(),
                usage: e.usage,
            },
            "message_stop" => StreamEvent::MessageStop,
            "ping" => StreamEvent::Ping,
            "error" => StreamEvent::Error { error: e.error.ok_or_else(|| missing("error"))? },
            _ => StreamEvent::Other,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    SignatureDelta {
        signature: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MessageDeltaBody {
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub stop_sequence: Option<String>,
}
