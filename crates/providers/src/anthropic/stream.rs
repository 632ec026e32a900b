//! Anthropic's stream events transcoded, event by event, into OpenAI
//! `chat.completion.chunk` events: text, reasoning (with its signed blocks at their end),
//! tool calls numbered as OpenAI numbers them, the finish reason, usage and `[DONE]`.

use tokenrouter_core::Usage;
use tokenrouter_core::chat::{ChatCompletionChunk, ChunkChoice, Delta, DeltaFunction, DeltaToolCall, ThinkingBlock};

use super::response::failure;
use super::wire::{self, BlockDelta, ContentBlock, StreamEvent};
use super::{compact_json, finish_reason, is_json_tool, matched_sequence, usage_json, usage_of};
use crate::adapter::{ResponseMeta, StreamDecoder, UpstreamFailure};
use crate::sse::{self, SseBuffer};

/// What an open content block is becoming.
#[derive(Debug)]
enum Block {
    Text,
    /// Reasoning, kept whole to hand back with its signature when the block ends.
    Thinking {
        text: String,
        signature: String,
    },
    Redacted {
        data: String,
    },
    /// A tool call: its OpenAI index, and whether any arguments were sent yet.
    Tool {
        index: u32,
        sent: bool,
    },
    /// The tool a `response_format` became: its input is the content.
    Json {
        sent: bool,
    },
    Other,
}

pub(super) struct Decoder {
    meta: ResponseMeta,
    buffer: SseBuffer,
    /// Open blocks by Anthropic content block index.
    blocks: Vec<(u32, Block)>,
    /// Tool calls announced so far (OpenAI's `index` of the next one).
    tool_calls: u32,
    usage: Option<wire::Usage>,
    stop_reason: Option<String>,
    stop_sequence: Option<String>,
    started: bool,
    done: bool,
    delivered: u64,
}

impl Decoder {
    pub(super) fn new(meta: ResponseMeta) -> Decoder {
        Decoder {
            meta,
            buffer: SseBuffer::default(),
            blocks: Vec::new(),
            tool_calls: 0,
            usage: None,
            stop_reason: None,
            stop_sequence: None,
            started: false,
            done: false,
            delivered: 0,
        }
    }

    fn events(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), UpstreamFailure> {
        for event in sse::events(bytes) {
            if self.done {
                break;
            }
            let Some(data) = sse::data(event) else {
                continue;
            };
            if data.as_ref() == b"[DONE]" {
                continue;
            }
            let event: StreamEvent = serde_json::from_slice(&data)
                .map_err(|e| broken(format!("Anthropic sent a stream event that cannot be read: {e}")))?;
            self.event(event, out)?;
        }
        Ok(())
    }

    fn event(&mut self, event: StreamEvent, out: &mut Vec<u8>) -> Result<(), UpstreamFailure> {
        match event {
            StreamEvent::MessageStart { message } => {
                self.usage = Some(message.usage);
                self.start(out)?;
            }
            StreamEvent::ContentBlockStart { index, content_block } => {
                self.start(out)?;
                let block = self.open(content_block, out)?;
                self.blocks.retain(|(i, _)| *i != index);
                self.blocks.push((index, block));
            }
            StreamEvent::ContentBlockDelta { index, delta } => self.delta(index, delta, out)?,
            StreamEvent::ContentBlockStop { index } => {
                if let Some(at) = self.blocks.iter().position(|(i, _)| *i == index) {
                    let (_, block) = self.blocks.remove(at);
                    self.close(block, out)?;
                }
            }
            StreamEvent::MessageDelta { delta, usage } => {
                if delta.stop_reason.is_some() {
                    self.stop_reason = delta.stop_reason;
                    self.stop_sequence = delta.stop_sequence;
                }
                if let Some(later) = usage {
                    self.usage.get_or_insert_default().update(&later);
                }
            }
            StreamEvent::MessageStop => self.end(out)?,
            StreamEvent::Error { error } => {
                return Err(failure(200, &error.kind, error.message));
            }
            StreamEvent::Ping | StreamEvent::Other => {}
        }
        Ok(())
    }

    /// The first chunk, once: the assistant's role.
    fn start(&mut self, out: &mut Vec<u8>) -> Result<(), UpstreamFailure> {
        if self.started {
            return Ok(());
        }
        self.started = true;
        let delta = Delta { role: Some("assistant".to_owned()), content: Some(String::new()), ..Delta::default() };
        self.emit(delta, out)
    }

    fn open(&mut self, block: ContentBlock, out: &mut Vec<u8>) -> Result<Block, UpstreamFailure> {
        Ok(match block {
            ContentBlock::Text { text } => {
                self.content(text, out)?;
                Block::Text
            }
            ContentBlock::Thinking { thinking, signature } => {
                self.reasoning(thinking.clone(), out)?;
                Block::Thinking { text: thinking, signature }
            }
            ContentBlock::RedactedThinking { data } => Block::Redacted { data },
            ContentBlock::ToolUse { name, input, .. } if is_json_tool(&name) => {
                let input = initial_input(input.get());
                let sent = !input.is_empty();
                self.content(input, out)?;
                Block::Json { sent }
            }
            ContentBlock::ToolUse { id, name, input } => {
                let index = self.tool_calls;
                self.tool_calls += 1;
                let call = DeltaToolCall {
                    index,
                    id: Some(id),
                    kind: Some("function".to_owned()),
                    function: DeltaFunction { name: Some(name), arguments: Some(String::new()) },
                };
                self.emit(tool_delta(call), out)?;
                let input = initial_input(input.get());
                let sent = !input.is_empty();
                self.arguments(index, input, out)?;
                Block::Tool { index, sent }
            }
            ContentBlock::Image { .. }
            | ContentBlock::Document { .. }
            | ContentBlock::ToolResult { .. }
            | ContentBlock::Other => Block::Other,
        })
    }

    fn delta(&mut self, index: u32, delta: BlockDelta, out: &mut Vec<u8>) -> Result<(), UpstreamFailure> {
        let Some(at) = self.blocks.iter().position(|(i, _)| *i == index) else {
            return Ok(());
        };
        match (&mut self.blocks[at].1, delta) {
            (Block::Text, BlockDelta::TextDelta { text }) => self.content(text, out),
            (Block::Thinking { text, .. }, BlockDelta::ThinkingDelta { thinking }) => {
                text.push_str(&thinking);
                self.reasoning(thinking, out)
            }
            (Block::Thinking { signature, .. }, BlockDelta::SignatureDelta { signature: s }) => {
                signature.push_str(&s);
                Ok(())
            }
            (Block::Tool { index, sent }, BlockDelta::InputJsonDelta { partial_json }) => {
                let index = *index;
                *sent |= !partial_json.is_empty();
                self.arguments(index, partial_json, out)
            }
            (Block::Json { sent }, BlockDelta::InputJsonDelta { partial_json }) => {
                *sent |= !partial_json.is_empty();
                self.content(partial_json, out)
            }
            _ => Ok(()),
        }
    }

    fn close(&mut self, block: Block, out: &mut Vec<u8>) -> Result<(), UpstreamFailure> {
        let handed_back = match block {
            Block::Thinking { text, signature } => ThinkingBlock {
                kind: "thinking".to_owned(),
                thinking: Some(text),
                signature: Some(signature),
                data: None,
            },
            Block::Redacted { data } => ThinkingBlock {
                kind: "redacted_thinking".to_owned(),
                thinking: None,
                signature: None,
                data: Some(data),
            },
            // A call without arguments still hands the client a JSON object.
            Block::Tool { index, sent: false } => return self.arguments(index, "{}".into(), out),
            Block::Json { sent: false } => return self.content("{}".into(), out),
            Block::Text | Block::Tool { .. } | Block::Json { .. } | Block::Other => return Ok(()),
        };
        let delta = Delta { thinking_blocks: Some(vec![handed_back]), ..Delta::default() };
        self.emit(delta, out)
    }

    /// `message_stop`: the finish reason, the usage when asked for, and `[DONE]`.
    fn end(&mut self, out: &mut Vec<u8>) -> Result<(), UpstreamFailure> {
        self.start(out)?;
        let reason = finish_reason(self.stop_reason.as_deref(), self.tool_calls > 0);
        let sequence = matched_sequence(self.stop_reason.as_deref(), self.stop_sequence.take());
        let chunk = self.chunk(vec![ChunkChoice {
            index: 0,
            delta: Delta::default(),
            logprobs: None,
            finish_reason: Some(reason.to_owned()),
            stop_reason: sequence,
        }]);
        write_chunk(&chunk, out)?;
        if self.meta.include_usage {
            let mut chunk = self.chunk(Vec::new());
            chunk.usage = Some(Some(usage_json(&self.usage.unwrap_or_default())));
            write_chunk(&chunk, out)?;
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        self.done = true;
        Ok(())
    }

    fn content(&mut self, text: String, out: &mut Vec<u8>) -> Result<(), UpstreamFailure> {
        if text.is_empty() {
            return Ok(());
        }
        let delta = Delta { content: Some(text), ..Delta::default() };
        self.emit(delta, out)
    }

    fn reasoning(&mut self, text: String, out: &mut Vec<u8>) -> Result<(), UpstreamFailure> {
        if text.is_empty() {
            return Ok(());
        }
        let delta = Delta { reasoning_content: Some(text), ..Delta::default() };
        self.emit(delta, out)
    }

    fn arguments(&mut self, index: u32, partial: String, out: &mut Vec<u8>) -> Result<(), UpstreamFailure> {
        if partial.is_empty() {
            return Ok(());
        }
        let call = DeltaToolCall {
            index,
            id: None,
            kind: None,
            function: DeltaFunction { name: None, arguments: Some(partial) },
        };
        self.emit(tool_delta(call), out)
    }

    fn chunk(&self, choices: Vec<ChunkChoice>) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.meta.id.clone(),
            object: "chat.completion.chunk".to_owned(),
            created: self.meta.created,
            model: self.meta.model.clone(),
            choices,
            usage: self.meta.include_usage.then_some(None),
        }
    }

    fn emit(&mut self, delta: Delta, out: &mut Vec<u8>) -> Result<(), UpstreamFailure> {
        let delivers = |s: &Option<String>| s.as_ref().is_some_and(|s| !s.is_empty());
        if delivers(&delta.content)
            || delivers(&delta.reasoning_content)
            || delta.tool_calls.iter().flatten().any(|c| delivers(&c.function.arguments))
        {
            self.delivered += 1;
        }
        let chunk =
            self.chunk(vec![ChunkChoice { index: 0, delta, logprobs: None, finish_reason: None, stop_reason: None }]);
        write_chunk(&chunk, out)
    }
}

impl StreamDecoder for Decoder {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), UpstreamFailure> {
        self.buffer.push(bytes);
        if let Some(complete) = self.buffer.take_complete() {
            self.events(&complete, out)?;
        }
        if self.buffer.overflowed() {
            self.buffer = SseBuffer::default();
            return Err(broken("The Anthropic stream sent an event larger than 4 MiB.".to_owned()));
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), UpstreamFailure> {
        // A last event the upstream did not close with a blank line still counts.
        if !self.done && !self.buffer.is_empty() {
            let mut rest = self.buffer.pending().to_vec();
            self.buffer = SseBuffer::default();
            rest.extend_from_slice(b"\n\n");
            match self.events(&rest, out) {
                // The provider's own error event, unterminated, is still its word.
                Err(failure) if failure.retryable || failure.client_error => return Err(failure),
                // A half-written event is only the cut itself.
                Ok(()) | Err(_) => {}
            }
        }
        if self.done {
            Ok(())
        } else {
            Err(broken("The Anthropic stream ended early, before the message was complete.".to_owned()))
        }
    }

    fn usage(&self) -> Option<Usage> {
        self.usage.as_ref().map(usage_of)
    }

    fn delivered_chunks(&self) -> u64 {
        self.delivered
    }
}

fn tool_delta(call: DeltaToolCall) -> Delta {
    Delta { tool_calls: Some(vec![call]), ..Delta::default() }
}

/// The input a `tool_use` block starts with: nothing when it is the usual `{}` that the
/// deltas then fill in.
fn initial_input(raw: &str) -> String {
    let compact = compact_json(raw);
    if compact == "{}" { String::new() } else { compact }
}

fn write_chunk(chunk: &ChatCompletionChunk, out: &mut Vec<u8>) -> Result<(), UpstreamFailure> {
    out.extend_from_slice(b"data: ");
    serde_json::to_writer(&mut *out, chunk).map_err(|e| broken(format!("Cannot encode a stream chunk: {e}")))?;
    out.extend_from_slice(b"\n\n");
    Ok(())
}

fn broken(message: String) -> UpstreamFailure {
    UpstreamFailure { status: 200, retryable: false, client_error: false, message }
}
