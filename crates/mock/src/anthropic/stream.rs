//! A message as Anthropic streams it: `message_start`; per content block
//! `content_block_start`, deltas (`thinking_delta` and `signature_delta`, `text_delta`,
//! `input_json_delta`) and `content_block_stop`, with a `ping` after the first start;
//! then `message_delta` and `message_stop`. Each is `event: <type>\ndata: <json>\n\n`.

use std::ops::Range;

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};

use super::wire::Block;
use super::{Message, Usage, stop_reason};
use crate::reply::{argument_fragments, next_piece};
use crate::stream::{Event, EventSource};
use crate::turn::{Body, Stop, THINKING};

/// What a content block holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Thinking,
    Text,
    Tool(usize),
}

/// Where the stream is; each step emits one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Start,
    BlockStart(usize),
    /// The ping, then block `.0` (if there is one) continues.
    Ping(usize),
    /// A delta of `block` starting at byte `at` (text, thinking) or fragment `at` (tool).
    Delta {
        block: usize,
        at: usize,
    },
    Signature(usize),
    BlockStop(usize),
    MessageDelta,
    MessageStop,
    End,
}

/// The events of one streamed message, produced lazily.
pub(super) struct MessageStream {
    message: Message,
    blocks: Vec<Kind>,
    /// Per tool call, the byte ranges of its input's fragments.
    fragments: Vec<Vec<Range<usize>>>,
    empty_input: Value,
    step: Step,
}

impl MessageStream {
    pub(super) fn new(message: Message) -> MessageStream {
        let mut blocks = Vec::new();
        if message.turn.thinking.is_some() {
            blocks.push(Kind::Thinking);
        }
        let mut fragments = Vec::new();
        match &message.turn.body {
            Body::Text(text) if !text.is_empty() => blocks.push(Kind::Text),
            Body::Calls(calls) => {
                for (i, call) in calls.iter().enumerate() {
                    blocks.push(Kind::Tool(i));
                    fragments.push(argument_fragments(&call.json));
                }
            }
            Body::Text(_) | Body::Blocked => {}
        }
        MessageStream { message, blocks, fragments, empty_input: Value::Object(Map::new()), step: Step::Start }
    }

    /// The text a text or thinking block streams.
    fn text_of(&self, kind: Kind) -> &str {
        match (kind, &self.message.turn.body) {
            (Kind::Thinking, _) => THINKING,
            (Kind::Text, Body::Text(text)) => text,
            _ => "",
        }
    }

    /// The step after block `block` has stopped.
    fn after_block(&self, block: usize) -> Step {
        if block + 1 < self.blocks.len() { Step::BlockStart(block + 1) } else { Step::MessageDelta }
    }

    /// The event of `step`, its tokens, and the step after it.
    fn emit(&self, step: Step) -> Option<(Bytes, u64, Step)> {
        let message = &self.message;
        let calls = match &message.turn.body {
            Body::Calls(calls) => calls.as_slice(),
            _ => &[],
        };
        let (wire, tokens, next) = match step {
            Step::End => return None,
            Step::Start => {
                let usage = Usage { output_tokens: 1, server_tool_use: None, ..message.usage };
                let next = if self.blocks.is_empty() { Step::Ping(0) } else { Step::BlockStart(0) };
                let message = Box::new(message.head(Vec::new(), usage));
                (Wire::MessageStart { message }, 0, next)
            }
            Step::BlockStart(index) => {
                let kind = *self.blocks.get(index)?;
                let content_block = match kind {
                    Kind::Thinking => Block::Thinking { thinking: "", signature: "" },
                    Kind::Text => Block::Text { text: "" },
                    Kind::Tool(call) => {
                        let call = calls.get(call)?;
                        Block::ToolUse { id: &call.id, name: &call.name, input: &self.empty_input }
                    }
                };
                let next = if index == 0 { Step::Ping(0) } else { Step::Delta { block: index, at: 0 } };
                let wire = Wire::ContentBlockStart { index, content_block };
                (wire, 0, next)
            }
            Step::Ping(block) => {
                let next = if block < self.blocks.len() { Step::Delta { block, at: 0 } } else { Step::MessageDelta };
                (Wire::Ping, 0, next)
            }
            Step::Delta { block, at } => {
                let kind = *self.blocks.get(block)?;
                let (delta, tokens, next) = match kind {
                    Kind::Thinking | Kind::Text => {
                        let text = self.text_of(kind);
                        let (range, tokens) = next_piece(text, at)?;
                        let next = if range.end < text.len() {
                            Step::Delta { block, at: range.end }
                        } else if kind == Kind::Thinking {
                            Step::Signature(block)
                        } else {
                            Step::BlockStop(block)
                        };
                        let piece = text.get(range)?;
                        let delta = if kind == Kind::Thinking {
                            Delta::Thinking { thinking: piece }
                        } else {
                            Delta::Text { text: piece }
                        };
                        (delta, tokens, next)
                    }
                    Kind::Tool(call) => {
                        let fragments = self.fragments.get(call)?;
                        let partial_json = calls.get(call)?.json.get(fragments.get(at)?.clone())?;
                        let next = if at + 1 < fragments.len() {
                            Step::Delta { block, at: at + 1 }
                        } else {
                            Step::BlockStop(block)
                        };
                        (Delta::InputJson { partial_json }, 1, next)
                    }
                };
                let wire = Wire::ContentBlockDelta { index: block, delta };
                (wire, tokens, next)
            }
            Step::Signature(block) => {
                let signature = message.turn.thinking.as_deref().unwrap_or("");
                let wire = Wire::ContentBlockDelta { index: block, delta: Delta::Signature { signature } };
                (wire, 0, Step::BlockStop(block))
            }
            Step::BlockStop(index) => (Wire::ContentBlockStop { index }, 0, self.after_block(index)),
            Step::MessageDelta => {
                let delta = MessageDelta {
                    stop_reason: stop_reason(&message.turn.stop),
                    stop_sequence: match &message.turn.stop {
                        Stop::Sequence(s) => Some(s),
                        _ => None,
                    },
                };
                let usage = OutputUsage {
                    output_tokens: message.usage.output_tokens,
                    server_tool_use: message.usage.server_tool_use,
                };
                (Wire::MessageDelta { delta, usage }, 0, Step::MessageStop)
            }
            Step::MessageStop => (Wire::MessageStop, 0, Step::End),
        };
        Some((frame(wire.name(), &wire), tokens, next))
    }
}

impl EventSource for MessageStream {
    fn next_event(&mut self) -> Option<Event> {
        let Some((data, tokens, next)) = self.emit(self.step) else {
            self.step = Step::End;
            return None;
        };
        self.step = next;
        Some(Event { data, tokens })
    }

    fn error_event(&self) -> Bytes {
        #[derive(Serialize)]
        struct Error {
            #[serde(rename = "type")]
            kind: &'static str,
            error: Body,
        }
        #[derive(Serialize)]
        struct Body {
            #[serde(rename = "type")]
            kind: &'static str,
            message: &'static str,
        }
        let error = Error { kind: "error", error: Body { kind: "overloaded_error", message: "Overloaded" } };
        frame("error", &error)
    }
}

/// `event: <name>\ndata: <json>\n\n`.
fn frame(name: &str, payload: &impl Serialize) -> Bytes {
    let mut data = Vec::with_capacity(160);
    data.extend_from_slice(b"event: ");
    data.extend_from_slice(name.as_bytes());
    data.extend_from_slice(b"\ndata: ");
    if serde_json::to_writer(&mut data, payload).is_err() {
        data.extend_from_slice(b"{}");
    }
    data.extend_from_slice(b"\n\n");
    Bytes::from(data)
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Wire<'a> {
    MessageStart { message: Box<super::wire::Message<'a>> },
    ContentBlockStart { index: usize, content_block: Block<'a> },
    Ping,
    ContentBlockDelta { index: usize, delta: Delta<'a> },
    ContentBlockStop { index: usize },
    MessageDelta { delta: MessageDelta<'a>, usage: OutputUsage },
    MessageStop,
}

impl Wire<'_> {
    fn name(&self) -> &'static str {
        match self {
            Wire::MessageStart { .. } => "message_start",
            Wire::ContentBlockStart { .. } => "content_block_start",
            Wire::Ping => "ping",
            Wire::ContentBlockDelta { .. } => "content_block_delta",
            Wire::ContentBlockStop { .. } => "content_block_stop",
            Wire::MessageDelta { .. } => "message_delta",
            Wire::MessageStop => "message_stop",
        }
    }
}

/// A `content_block_delta`'s delta; the wire type is the variant's name + `_delta`.
#[derive(Serialize)]
#[serde(tag = "type")]
enum Delta<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "signature_delta")]
    Signature { signature: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
}

#[derive(Serialize)]
struct MessageDelta<'a> {
    stop_reason: &'static str,
    stop_sequence: Option<&'a str>,
}

#[derive(Serialize)]
struct OutputUsage {
    output_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_tool_use: Option<super::ServerToolUse>,
}
