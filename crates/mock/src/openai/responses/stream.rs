//! A response as the Responses API streams it, each event `event: <type>\ndata: <json>\n\n`
//! with a `sequence_number` counting from 0: `response.created`, `response.in_progress`;
//! per output item `response.output_item.added`, then for a reasoning item
//! `response.reasoning_summary_part.added`, `response.reasoning_summary_text.delta` (one per
//! token), `….done`, `response.reasoning_summary_part.done`; for a message
//! `response.content_part.added`, `response.output_text.delta` (one per token),
//! `response.output_text.done`, `response.content_part.done`; for a function call
//! `response.function_call_arguments.delta` (one per fragment) and `….done`; for a web
//! search nothing between; then `response.output_item.done`; last `response.completed` (or `response.incomplete`).

use std::ops::Range;

use bytes::Bytes;
use serde::Serialize;

use super::wire::{self, OutputItem, Part};
use super::{Item, Response};
use crate::reply::{argument_fragments, next_piece};
use crate::stream::{Event, EventSource};

/// Where the stream is; each step emits one event. `.0` / `item` index the output items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Created,
    InProgress,
    ItemAdded(usize),
    PartAdded(usize),
    /// A delta of `item`: the piece of its text starting at byte `at`, or its arguments'
    /// fragment `at`.
    Delta {
        item: usize,
        at: usize,
    },
    TextDone(usize),
    PartDone(usize),
    ItemDone(usize),
    Finished,
    End,
}

/// The events of one streamed response, produced lazily.
pub(super) struct ResponseStream {
    response: Response,
    /// Per output item, the byte ranges of a function call's argument fragments.
    fragments: Vec<Vec<Range<usize>>>,
    step: Step,
    /// The sequence number of the next event.
    sequence: u64,
}

impl ResponseStream {
    pub(super) fn new(response: Response) -> ResponseStream {
        let fragments = response
            .output
            .iter()
            .map(|item| match item {
                Item::Call { call, .. } => argument_fragments(&call.json),
                Item::Reasoning { .. } | Item::Message { .. } | Item::WebSearch { .. } => Vec::new(),
            })
            .collect();
        ResponseStream { response, fragments, step: Step::Created, sequence: 0 }
    }

    fn after_item(&self, index: usize) -> Step {
        if index + 1 < self.response.output.len() { Step::ItemAdded(index + 1) } else { Step::Finished }
    }

    /// The event of `step` (its type and payload), its tokens, and the step after it.
    fn emit(&self, step: Step) -> Option<(&'static str, Payload<'_>, u64, Step)> {
        let response = &self.response;
        let item_at = |index: usize| response.output.get(index);
        Some(match step {
            Step::End => return None,
            Step::Created => {
                let payload = Payload::Response { response: Box::new(response.to_wire(false)) };
                ("response.created", payload, 0, Step::InProgress)
            }
            Step::InProgress => {
                let payload = Payload::Response { response: Box::new(response.to_wire(false)) };
                let next = if response.output.is_empty() { Step::Finished } else { Step::ItemAdded(0) };
                ("response.in_progress", payload, 0, next)
            }
            Step::ItemAdded(index) => {
                let item = item_at(index)?;
                let next = match item {
                    Item::Call { .. } => Step::Delta { item: index, at: 0 },
                    Item::WebSearch { .. } => Step::ItemDone(index),
                    Item::Reasoning { .. } | Item::Message { .. } => Step::PartAdded(index),
                };
                let payload = Payload::Item { output_index: index, item: response.item_wire(item, false) };
                ("response.output_item.added", payload, 0, next)
            }
            Step::PartAdded(index) => {
                let item = item_at(index)?;
                let next =
                    if item.text().is_empty() { Step::TextDone(index) } else { Step::Delta { item: index, at: 0 } };
                let (name, part) = match item {
                    Item::Reasoning { .. } => ("response.reasoning_summary_part.added", wire::summary("")),
                    _ => ("response.content_part.added", wire::output_text("")),
                };
                (name, Payload::Part { at: Located::new(item, index), part }, 0, next)
            }
            Step::Delta { item: index, at } => {
                let item = item_at(index)?;
                let at_item = Located::new(item, index);
                match item {
                    Item::Call { call, .. } => {
                        let fragments = self.fragments.get(index)?;
                        let delta = call.json.get(fragments.get(at)?.clone())?;
                        let next = if at + 1 < fragments.len() {
                            Step::Delta { item: index, at: at + 1 }
                        } else {
                            Step::TextDone(index)
                        };
                        let payload = Payload::Delta { at: at_item, delta, logprobs: None };
                        ("response.function_call_arguments.delta", payload, 1, next)
                    }
                    Item::WebSearch { .. } => return None,
                    Item::Reasoning { .. } | Item::Message { .. } => {
                        let text = item.text();
                        let (range, tokens) = next_piece(text, at)?;
                        let next = if range.end < text.len() {
                            Step::Delta { item: index, at: range.end }
                        } else {
                            Step::TextDone(index)
                        };
                        let delta = text.get(range)?;
                        let (name, logprobs) = match item {
                            Item::Reasoning { .. } => ("response.reasoning_summary_text.delta", None),
                            _ => ("response.output_text.delta", Some([])),
                        };
                        (name, Payload::Delta { at: at_item, delta, logprobs }, tokens, next)
                    }
                }
            }
            Step::TextDone(index) => {
                let item = item_at(index)?;
                let at_item = Located::new(item, index);
                match item {
                    Item::Call { call, .. } => {
                        let payload = Payload::ArgumentsDone { at: at_item, arguments: &call.json };
                        ("response.function_call_arguments.done", payload, 0, Step::ItemDone(index))
                    }
                    Item::Reasoning { .. } => {
                        let payload = Payload::TextDone { at: at_item, text: item.text(), logprobs: None };
                        ("response.reasoning_summary_text.done", payload, 0, Step::PartDone(index))
                    }
                    Item::Message { .. } => {
                        let payload = Payload::TextDone { at: at_item, text: item.text(), logprobs: Some([]) };
                        ("response.output_text.done", payload, 0, Step::PartDone(index))
                    }
                    Item::WebSearch { .. } => return None,
                }
            }
            Step::PartDone(index) => {
                let item = item_at(index)?;
                let (name, part) = match item {
                    Item::Reasoning { .. } => ("response.reasoning_summary_part.done", wire::summary(item.text())),
                    _ => ("response.content_part.done", wire::output_text(item.text())),
                };
                (name, Payload::Part { at: Located::new(item, index), part }, 0, Step::ItemDone(index))
            }
            Step::ItemDone(index) => {
                let item = item_at(index)?;
                let payload = Payload::Item { output_index: index, item: response.item_wire(item, true) };
                ("response.output_item.done", payload, 0, self.after_item(index))
            }
            Step::Finished => {
                let name = if response.incomplete.is_some() { "response.incomplete" } else { "response.completed" };
                (name, Payload::Response { response: Box::new(response.to_wire(true)) }, 0, Step::End)
            }
        })
    }
}

impl EventSource for ResponseStream {
    fn next_event(&mut self) -> Option<Event> {
        let Some((name, payload, tokens, next)) = self.emit(self.step) else {
            self.step = Step::End;
            return None;
        };
        let data = frame(name, &payload, self.sequence);
        self.step = next;
        self.sequence += 1;
        Some(Event { data, tokens })
    }

    /// An `error` event taking the sequence number of the event it replaces (the stream
    /// has produced one event ahead of what it sent).
    fn error_event(&self) -> Bytes {
        let payload = Payload::Error {
            code: "server_error",
            message: "The server had an error while processing your request. Sorry about that!",
            param: None,
        };
        frame("error", &payload, self.sequence.saturating_sub(1))
    }
}

/// `event: <kind>\ndata: {"type":<kind>, …payload, "sequence_number"}\n\n`.
fn frame(kind: &'static str, payload: &Payload<'_>, sequence_number: u64) -> Bytes {
    #[derive(Serialize)]
    struct Sequenced<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        #[serde(flatten)]
        payload: &'a Payload<'a>,
        sequence_number: u64,
    }
    let mut data = Vec::with_capacity(256);
    data.extend_from_slice(b"event: ");
    data.extend_from_slice(kind.as_bytes());
    data.extend_from_slice(b"\ndata: ");
    if serde_json::to_writer(&mut data, &Sequenced { kind, payload, sequence_number }).is_err() {
        data.extend_from_slice(b"{}");
    }
    data.extend_from_slice(b"\n\n");
    Bytes::from(data)
}

/// Where an event's part or delta belongs: the item's id and index, and the index of the
/// part (`summary_index` for reasoning, `content_index` for messages; none for calls).
#[derive(Serialize)]
struct Located<'a> {
    item_id: &'a str,
    output_index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary_index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_index: Option<usize>,
}

impl<'a> Located<'a> {
    fn new(item: &'a Item, output_index: usize) -> Located<'a> {
        let (summary_index, content_index) = match item {
            Item::Reasoning { .. } => (Some(0), None),
            Item::Message { .. } => (None, Some(0)),
            Item::Call { .. } | Item::WebSearch { .. } => (None, None),
        };
        Located { item_id: item.id(), output_index, summary_index, content_index }
    }
}

/// An event's fields besides `type` and `sequence_number`.
#[derive(Serialize)]
#[serde(untagged)]
enum Payload<'a> {
    Response {
        response: Box<wire::Response<'a>>,
    },
    Item {
        output_index: usize,
        item: OutputItem<'a>,
    },
    Part {
        #[serde(flatten)]
        at: Located<'a>,
        part: Part<'a>,
    },
    /// A piece of text or arguments; messages' pieces carry (empty) `logprobs`.
    Delta {
        #[serde(flatten)]
        at: Located<'a>,
        delta: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        logprobs: Option<[(); 0]>,
    },
    TextDone {
        #[serde(flatten)]
        at: Located<'a>,
        text: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        logprobs: Option<[(); 0]>,
    },
    ArgumentsDone {
        #[serde(flatten)]
        at: Located<'a>,
        arguments: &'a str,
    },
    Error {
        code: &'static str,
        message: &'static str,
        param: Option<()>,
    },
}
