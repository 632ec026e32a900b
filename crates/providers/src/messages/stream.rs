//! The canonical chunk stream as Anthropic's stream events: `message_start` and a `ping`,
//! then one content block at a time — thinking (its signature as a `signature_delta` when
//! the signed block arrives), text, `tool_use` with its arguments as `input_json_delta`s —
//! each opened with `content_block_start` and closed with `content_block_stop`, numbered
//! from 0; on `finish`, `message_delta` with the stop reason and usage, and `message_stop`.

use serde_json::Value;
use tokenrouter_core::Usage;
use tokenrouter_core::chat::{ChatCompletionChunk, DeltaToolCall, ThinkingBlock};

use super::MessagesSurface;
use super::response::{cache_creation, empty_object, stop_reason, thinking_block, wire_usage};
use crate::anthropic::wire::{self, BlockDelta, ContentBlock, ErrorDetail, MessageDeltaBody, StreamEvent};
use crate::surface::{SurfaceStream, write_event};

/// What the open content block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    Tool,
}

pub(super) struct MessagesStream {
    surface: MessagesSurface,
    started: bool,
    /// `finish` or `fail` has been written: nothing follows.
    ended: bool,
    /// Blocks started so far: the next one's index. The open block is always the last.
    blocks: u32,
    open: Option<Open>,
    /// Each tool call's content block, by the call's canonical index.
    calls: Vec<(u32, u32)>,
    stop_reason: Option<&'static str>,
    /// The stop sequence that ended the answer, when the upstream said which.
    stop_sequence: Option<String>,
    cache_creation: u64,
}

impl MessagesStream {
    pub(super) fn new(surface: MessagesSurface) -> MessagesStream {
        MessagesStream {
            surface,
            started: false,
            ended: false,
            blocks: 0,
            open: None,
            calls: Vec::new(),
            stop_reason: None,
            stop_sequence: None,
            cache_creation: 0,
        }
    }

    /// `message_start` (an empty message; usage is only known at the end) and a `ping`, once.
    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let message = wire::Message {
            id: self.surface.message_id.clone(),
            kind: "message".to_owned(),
            role: "assistant".to_owned(),
            model: self.surface.model.clone(),
            content: Vec::new(),
            stop_reason: None,
            stop_sequence: None,
            usage: wire_usage(Usage::default(), 0),
        };
        emit(out, &StreamEvent::MessageStart { message });
        emit(out, &StreamEvent::Ping);
    }

    /// Opens the next block (closing the open one).
    fn begin(&mut self, block: ContentBlock, open: Open, out: &mut Vec<u8>) -> u32 {
        self.close(out);
        let index = self.blocks;
        self.blocks += 1;
        self.open = Some(open);
        emit(out, &StreamEvent::ContentBlockStart { index, content_block: block });
        index
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if self.open.take().is_some() {
            emit(out, &StreamEvent::ContentBlockStop { index: self.blocks - 1 });
        }
    }

    /// Appends to the open text or thinking block, opening one of this kind first if needed.
    fn append(&mut self, open: Open, delta: BlockDelta, out: &mut Vec<u8>) {
        if self.open != Some(open) {
            let block = if open == Open::Thinking {
                ContentBlock::Thinking { thinking: String::new(), signature: String::new() }
            } else {
                ContentBlock::Text { text: String::new() }
            };
            self.begin(block, open, out);
        }
        emit(out, &StreamEvent::ContentBlockDelta { index: self.blocks - 1, delta });
    }

    /// A finished reasoning block: the signature of the thinking streamed so far, or a
    /// block that arrives whole.
    fn thinking_block(&mut self, block: &ThinkingBlock, out: &mut Vec<u8>) {
        if block.kind != "thinking" {
            if let Some(whole) = thinking_block(block) {
                self.begin(whole, Open::Thinking, out);
                self.close(out);
            }
            return;
        }
        if self.open != Some(Open::Thinking) {
            let empty = ContentBlock::Thinking { thinking: String::new(), signature: String::new() };
            self.begin(empty, Open::Thinking, out);
            if let Some(thinking) = block.thinking.clone().filter(|t| !t.is_empty()) {
                self.append(Open::Thinking, BlockDelta::ThinkingDelta { thinking }, out);
            }
        }
        if let Some(signature) = block.signature.clone().filter(|s| !s.is_empty()) {
            self.append(Open::Thinking, BlockDelta::SignatureDelta { signature }, out);
        }
        self.close(out);
    }

    /// A tool call's piece: the first opens its `tool_use` block, arguments follow as
    /// `input_json_delta`s. (Chat streams one call's pieces before the next call's; a
    /// piece arriving after its block closed still goes to that block's index.)
    fn tool_call(&mut self, call: &DeltaToolCall, out: &mut Vec<u8>) {
        let index = match self.calls.iter().find(|(k, _)| *k == call.index) {
            Some(&(_, index)) => index,
            None => {
                let id = call.id.clone().filter(|id| !id.is_empty());
                let block = ContentBlock::ToolUse {
                    id: id.unwrap_or_else(|| self.surface.tool_id(call.index as usize)),
                    name: call.function.name.clone().unwrap_or_default(),
                    input: empty_object(),
                };
                let index = self.begin(block, Open::Tool, out);
                self.calls.push((call.index, index));
                index
            }
        };
        if let Some(partial_json) = call.function.arguments.clone().filter(|a| !a.is_empty()) {
            emit(out, &StreamEvent::ContentBlockDelta { index, delta: BlockDelta::InputJsonDelta { partial_json } });
        }
    }
}

impl SurfaceStream for MessagesStream {
    fn chunk(&mut self, chunk: &ChatCompletionChunk, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(out);
        if let Some(Some(usage)) = &chunk.usage {
            self.cache_creation = cache_creation(Some(usage));
        }
        // One answer: the first choice.
        for choice in chunk.choices.iter().filter(|c| c.index == 0) {
            let delta = &choice.delta;
            if let Some(thinking) = delta.reasoning_content.clone().filter(|t| !t.is_empty()) {
                self.append(Open::Thinking, BlockDelta::ThinkingDelta { thinking }, out);
            }
            for block in delta.thinking_blocks.iter().flatten() {
                self.thinking_block(block, out);
            }
            for text in [&delta.content, &delta.refusal].into_iter().flatten() {
                if !text.is_empty() {
                    self.append(Open::Text, BlockDelta::TextDelta { text: text.clone() }, out);
                }
            }
            for call in delta.tool_calls.iter().flatten() {
                self.tool_call(call, out);
            }
            if let Some(finish) = &choice.finish_reason {
                self.close(out);
                let sequence = choice.stop_reason.as_deref();
                self.stop_reason = Some(stop_reason(Some(finish), !self.calls.is_empty(), sequence));
                self.stop_sequence = sequence.filter(|_| self.stop_reason == Some("stop_sequence")).map(str::to_owned);
            }
        }
    }

    fn finish(&mut self, usage: Usage, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(out);
        self.close(out);
        self.ended = true;
        let stop = self.stop_reason.unwrap_or_else(|| stop_reason(None, !self.calls.is_empty(), None));
        let delta = MessageDeltaBody { stop_reason: Some(stop.to_owned()), stop_sequence: self.stop_sequence.take() };
        emit(out, &StreamEvent::MessageDelta { delta, usage: Some(wire_usage(usage, self.cache_creation)) });
        emit(out, &StreamEvent::MessageStop);
    }

    fn fail(&mut self, message: &str, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.ended = true;
        let error = ErrorDetail { kind: "api_error".to_owned(), message: message.to_owned() };
        emit(out, &StreamEvent::Error { error });
    }
}

/// One event, named by its type: `event: <type>\ndata: {...}\n\n`.
fn emit(out: &mut Vec<u8>, event: &StreamEvent) {
    let name = match event {
        StreamEvent::MessageStart { .. } => "message_start",
        StreamEvent::ContentBlockStart { .. } => "content_block_start",
        StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
        StreamEvent::ContentBlockStop { .. } => "content_block_stop",
        StreamEvent::MessageDelta { .. } => "message_delta",
        StreamEvent::MessageStop => "message_stop",
        StreamEvent::Ping => "ping",
        StreamEvent::Error { .. } => "error",
        StreamEvent::Other => return,
    };
    write_event(out, name, &serde_json::to_value(event).unwrap_or(Value::Null));
}
