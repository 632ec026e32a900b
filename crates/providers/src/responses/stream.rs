//! The canonical chunk stream transcoded into Responses stream events, chunk by chunk:
//! `response.created` and `response.in_progress` first, then each output item opened,
//! filled and closed (reasoning summary, message text or refusal, function call
//! arguments, custom tool call input), and `response.completed`, `response.incomplete` or
//! `response.failed`. Every event carries a `sequence_number` counting from 0.
//!
//! A custom tool call's input is the `input` string inside the JSON arguments the chat
//! stream sends in pieces: it is stated once the call ends, in one
//! `response.custom_tool_call_input.delta` and the `.done` event.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use tokenrouter_core::Usage;
use tokenrouter_core::chat::{ChatCompletionChunk, DeltaToolCall, ThinkingBlock};

use super::response::{Part, Shape, Status, custom_input, message_item};
use crate::surface::{SurfaceStream, write_event};

/// The output item being streamed (one at a time; it closes when another kind begins).
#[derive(Debug)]
enum Open {
    Reasoning {
        id: String,
        text: String,
        summary_open: bool,
        blocks: Vec<ThinkingBlock>,
    },
    /// `part_open`: the last part still takes deltas.
    Message {
        id: String,
        parts: Vec<Part>,
        part_open: bool,
    },
    /// `custom`: a custom tool's call (decided by the name known when it opens).
    Call {
        id: String,
        index: u32,
        call_id: String,
        name: String,
        arguments: String,
        custom: bool,
    },
}

/// Numbers and writes the events.
#[derive(Debug, Default)]
struct Events {
    next: u64,
}

impl Events {
    fn emit(&mut self, out: &mut Vec<u8>, kind: &str, fields: Value) {
        let mut event = Map::new();
        event.insert("type".to_owned(), json!(kind));
        if let Value::Object(fields) = fields {
            event.extend(fields);
        }
        event.insert("sequence_number".to_owned(), json!(self.next));
        self.next += 1;
        write_event(out, kind, &Value::Object(event));
    }
}

pub(super) struct Transcoder {
    shape: Arc<Shape>,
    events: Events,
    started: bool,
    ended: bool,
    finish_reason: Option<String>,
    /// Items closed so far, in output order (the open one's index is their count).
    done: Vec<Value>,
    open: Option<Open>,
    /// Chat tool call indices whose items are closed.
    closed_calls: Vec<u32>,
    answer: Option<Vec<u8>>,
}

impl Transcoder {
    pub(super) fn new(shape: Arc<Shape>) -> Transcoder {
        Transcoder {
            shape,
            events: Events::default(),
            started: false,
            ended: false,
            finish_reason: None,
            done: Vec::new(),
            open: None,
            closed_calls: Vec::new(),
            answer: None,
        }
    }

    /// `response.created` and `response.in_progress`, once.
    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let response = self.shape.response(&Status::InProgress, Vec::new(), None);
        self.events.emit(out, "response.created", json!({"response": response}));
        self.events.emit(out, "response.in_progress", json!({"response": response}));
    }

    /// Opens a new output item of its own kind unless one is open.
    fn ensure(&mut self, kind: fn(&Open) -> bool, out: &mut Vec<u8>, open: impl FnOnce(&Shape, usize) -> Open) {
        if self.open.as_ref().is_some_and(kind) {
            return;
        }
        self.close("completed", out);
        let index = self.done.len();
        let item = open(&self.shape, index);
        let json = match &item {
            Open::Reasoning { id, .. } => json!({"type": "reasoning", "id": id, "summary": []}),
            Open::Message { id, parts, .. } => message_item(id, "in_progress", parts),
            Open::Call { id, call_id, name, custom, .. } => {
                self.shape.call_item(*custom, id, "in_progress", call_id, name, "")
            }
        };
        self.events.emit(out, "response.output_item.added", json!({"output_index": index, "item": json}));
        self.open = Some(item);
    }

    fn ensure_reasoning(&mut self, out: &mut Vec<u8>) {
        self.ensure(
            |o| matches!(o, Open::Reasoning { .. }),
            out,
            |shape, index| Open::Reasoning {
                id: shape.item_id("rs", index),
                text: String::new(),
                summary_open: false,
                blocks: Vec::new(),
            },
        );
    }

    fn ensure_message(&mut self, out: &mut Vec<u8>) {
        self.ensure(
            |o| matches!(o, Open::Message { .. }),
            out,
            |shape, index| Open::Message { id: shape.item_id("msg", index), parts: Vec::new(), part_open: false },
        );
    }

    fn reasoning(&mut self, delta: &str, out: &mut Vec<u8>) {
        self.ensure_reasoning(out);
        let output_index = self.done.len();
        let Some(Open::Reasoning { id, text, summary_open, .. }) = &mut self.open else { return };
        if !*summary_open {
            *summary_open = true;
            let part = json!({"type": "summary_text", "text": ""});
            let fields = json!({"item_id": id, "output_index": output_index, "summary_index": 0, "part": part});
            self.events.emit(out, "response.reasoning_summary_part.added", fields);
        }
        text.push_str(delta);
        let fields = json!({"item_id": id, "output_index": output_index, "summary_index": 0, "delta": delta});
        self.events.emit(out, "response.reasoning_summary_text.delta", fields);
    }

    fn blocks(&mut self, more: &[ThinkingBlock], out: &mut Vec<u8>) {
        self.ensure_reasoning(out);
        if let Some(Open::Reasoning { blocks, .. }) = &mut self.open {
            blocks.extend_from_slice(more);
        }
    }

    /// Text or refusal for the message: a new content part when the kind changes.
    fn content(&mut self, piece: Part, out: &mut Vec<u8>) {
        self.ensure_message(out);
        let output_index = self.done.len();
        let Some(Open::Message { id, parts, part_open }) = &mut self.open else { return };
        let same_kind = |last: &Part| std::mem::discriminant(last) == std::mem::discriminant(&piece);
        if !(*part_open && parts.last().is_some_and(same_kind)) {
            if *part_open {
                close_part(&mut self.events, out, id, output_index, parts);
            }
            parts.push(match piece {
                Part::Text(_) => Part::Text(String::new()),
                Part::Refusal(_) => Part::Refusal(String::new()),
            });
            *part_open = true;
            let content_index = parts.len() - 1;
            let part = parts[content_index].json();
            let fields =
                json!({"item_id": id, "output_index": output_index, "content_index": content_index, "part": part});
            self.events.emit(out, "response.content_part.added", fields);
        }
        let content_index = parts.len() - 1;
        if matches!(&piece, Part::Text(d) | Part::Refusal(d) if d.is_empty()) {
            return;
        }
        let (event, fields) = match (&mut parts[content_index], &piece) {
            (Part::Text(text), Part::Text(delta)) => {
                text.push_str(delta);
                let fields = json!({
                    "item_id": id, "output_index": output_index, "content_index": content_index,
                    "delta": delta, "logprobs": [],
                });
                ("response.output_text.delta", fields)
            }
            (Part::Refusal(refusal), Part::Refusal(delta)) => {
                refusal.push_str(delta);
                let fields = json!({"item_id": id, "output_index": output_index, "content_index": content_index, "delta": delta});
                ("response.refusal.delta", fields)
            }
            _ => return,
        };
        self.events.emit(out, event, fields);
    }

    fn call(&mut self, call: &DeltaToolCall, out: &mut Vec<u8>) {
        let same = matches!(&self.open, Some(Open::Call { index, .. }) if *index == call.index);
        if !same {
            // Providers stream calls one after the other; a piece for a call already
            // closed cannot be stated any more.
            if self.closed_calls.contains(&call.index) {
                return;
            }
            self.close("completed", out);
            let index = call.index;
            let call_id = call.id.clone();
            let name = call.function.name.clone().unwrap_or_default();
            self.ensure(
                |_| false,
                out,
                |shape, output_index| {
                    let custom = shape.is_custom(&name);
                    Open::Call {
                        id: shape.item_id(Shape::call_prefix(custom), output_index),
                        index,
                        call_id: call_id.unwrap_or_else(|| shape.item_id("call", output_index)),
                        name,
                        arguments: String::new(),
                        custom,
                    }
                },
            );
        }
        let output_index = self.done.len();
        let Some(Open::Call { id, name, arguments, custom, .. }) = &mut self.open else { return };
        if name.is_empty()
            && let Some(late) = &call.function.name
        {
            name.clone_from(late);
        }
        if let Some(delta) = call.function.arguments.as_deref().filter(|d| !d.is_empty()) {
            arguments.push_str(delta);
            if *custom {
                // JSON text, not input yet: stated whole when the call ends.
                return;
            }
            let fields = json!({"item_id": id, "output_index": output_index, "delta": delta});
            self.events.emit(out, "response.function_call_arguments.delta", fields);
        }
    }

    /// Closes the open item: its parts' `done` events, then `response.output_item.done`.
    fn close(&mut self, status: &str, out: &mut Vec<u8>) {
        let Some(open) = self.open.take() else { return };
        let output_index = self.done.len();
        let item = match open {
            Open::Reasoning { id, text, summary_open, blocks } => {
                if summary_open {
                    let fields = json!({"item_id": id, "output_index": output_index, "summary_index": 0, "text": text});
                    self.events.emit(out, "response.reasoning_summary_text.done", fields);
                    let part = json!({"type": "summary_text", "text": text});
                    let fields = json!({"item_id": id, "output_index": output_index, "summary_index": 0, "part": part});
                    self.events.emit(out, "response.reasoning_summary_part.done", fields);
                }
                self.shape.reasoning_item(&id, &text, &blocks)
            }
            Open::Message { id, parts, part_open } => {
                if part_open {
                    close_part(&mut self.events, out, &id, output_index, &parts);
                }
                message_item(&id, status, &parts)
            }
            Open::Call { id, index, call_id, name, arguments, custom } => {
                self.closed_calls.push(index);
                if custom {
                    let input = custom_input(&arguments);
                    if !input.is_empty() {
                        let fields = json!({"item_id": id, "output_index": output_index, "delta": input});
                        self.events.emit(out, "response.custom_tool_call_input.delta", fields);
                    }
                    let fields = json!({"item_id": id, "output_index": output_index, "input": input});
                    self.events.emit(out, "response.custom_tool_call_input.done", fields);
                } else {
                    let (declared, _) = self.shape.declared(&name);
                    let fields =
                        json!({"item_id": id, "output_index": output_index, "name": declared, "arguments": arguments});
                    self.events.emit(out, "response.function_call_arguments.done", fields);
                }
                self.shape.call_item(custom, &id, status, &call_id, &name, &arguments)
            }
        };
        self.events.emit(out, "response.output_item.done", json!({"output_index": output_index, "item": item}));
        self.done.push(item);
    }
}

/// The `done` events of a message's last part.
fn close_part(events: &mut Events, out: &mut Vec<u8>, id: &str, output_index: usize, parts: &[Part]) {
    let Some(part) = parts.last() else { return };
    let content_index = parts.len() - 1;
    let (event, fields) = match part {
        Part::Text(text) => (
            "response.output_text.done",
            json!({
                "item_id": id, "output_index": output_index, "content_index": content_index,
                "text": text, "logprobs": [],
            }),
        ),
        Part::Refusal(refusal) => (
            "response.refusal.done",
            json!({"item_id": id, "output_index": output_index, "content_index": content_index, "refusal": refusal}),
        ),
    };
    events.emit(out, event, fields);
    let fields =
        json!({"item_id": id, "output_index": output_index, "content_index": content_index, "part": part.json()});
    events.emit(out, "response.content_part.done", fields);
}

impl SurfaceStream for Transcoder {
    fn chunk(&mut self, chunk: &ChatCompletionChunk, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(out);
        // One answer is asked for; other choices have nowhere to go.
        for choice in chunk.choices.iter().filter(|c| c.index == 0) {
            let delta = &choice.delta;
            if let Some(text) = delta.reasoning_content.as_deref().filter(|t| !t.is_empty()) {
                self.reasoning(text, out);
            }
            if let Some(blocks) = delta.thinking_blocks.as_deref().filter(|b| !b.is_empty()) {
                self.blocks(blocks, out);
            }
            if let Some(text) = delta.content.as_ref().filter(|t| !t.is_empty()) {
                self.content(Part::Text(text.clone()), out);
            }
            if let Some(refusal) = delta.refusal.as_ref().filter(|r| !r.is_empty()) {
                self.content(Part::Refusal(refusal.clone()), out);
            }
            for call in delta.tool_calls.iter().flatten() {
                self.call(call, out);
            }
            if let Some(reason) = &choice.finish_reason {
                self.finish_reason = Some(reason.clone());
            }
        }
    }

    fn finish(&mut self, usage: Usage, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(out);
        let status = Status::of(self.finish_reason.as_deref());
        if self.open.is_none() && self.done.is_empty() {
            // Nothing was said: an empty message, as a whole answer would state it.
            self.content(Part::Text(String::new()), out);
        }
        self.close(status.last_item(), out);
        let response = self.shape.response(&status, self.done.clone(), Some(usage));
        let event = match status {
            Status::Incomplete(_) => "response.incomplete",
            _ => "response.completed",
        };
        self.events.emit(out, event, json!({"response": response}));
        self.answer = serde_json::to_vec(&response).ok();
        self.ended = true;
    }

    fn fail(&mut self, message: &str, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(out);
        let status = Status::Failed(message.to_owned());
        let response = self.shape.response(&status, self.done.clone(), None);
        self.events.emit(out, "response.failed", json!({"response": response}));
        self.ended = true;
    }

    fn completed(&mut self) -> Option<Vec<u8>> {
        self.answer.clone()
    }
}
