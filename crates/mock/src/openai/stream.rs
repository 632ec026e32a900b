//! A chat completion as OpenAI streams it: `chat.completion.chunk` events (role, one per
//! token of `reasoning_content`, then one per token or argument fragment, finish,
//! optional usage), then `data: [DONE]`.

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;
use serde::Serialize;

use super::{Completion, Content, SYSTEM_FINGERPRINT, ToolCall, Usage, sse_data, stream_error_event};
use crate::reply::{argument_fragments, next_piece};
use crate::stream::{Event, EventSource};
use crate::turn::THINKING;

/// Where the stream is; each step emits one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Role,
    /// The piece of [`THINKING`] starting at byte `.0`.
    Reasoning(usize),
    Word(u64),
    ToolHeader(usize),
    ToolFragment {
        call: usize,
        fragment: usize,
    },
    Finish,
    Usage,
    Done,
    End,
}

/// The events of one streamed chat completion, produced lazily.
pub(super) struct ChatStream {
    completion: Completion,
    /// Per tool call, the byte ranges of its argument fragments.
    fragments: Vec<Vec<Range<usize>>>,
    include_usage: bool,
    step: Step,
}

impl ChatStream {
    pub(super) fn new(completion: Completion, include_usage: bool) -> ChatStream {
        let fragments = match &completion.content {
            Content::Text(_) => Vec::new(),
            Content::ToolCalls(calls) => calls.iter().map(|c| argument_fragments(&c.arguments)).collect(),
        };
        ChatStream { completion, fragments, include_usage, step: Step::Role }
    }

    /// The first step of the answer proper, after the role and the reasoning.
    fn body_start(&self) -> Step {
        match &self.completion.content {
            Content::Text(reply) if reply.len() > 0 => Step::Word(0),
            Content::ToolCalls(calls) if !calls.is_empty() => Step::ToolHeader(0),
            Content::Text(_) | Content::ToolCalls(_) => Step::Finish,
        }
    }

    /// The step after fragment `fragment` of call `call`.
    fn after_fragment(&self, call: usize, fragment: usize) -> Step {
        if fragment + 1 < self.fragments[call].len() {
            Step::ToolFragment { call, fragment: fragment + 1 }
        } else if call + 1 < self.fragments.len() {
            Step::ToolHeader(call + 1)
        } else {
            Step::Finish
        }
    }

    fn chunk(&self, delta: Delta<'_>, finish_reason: Option<&'static str>) -> Bytes {
        let choices = [ChunkChoice { index: 0, delta, logprobs: None, finish_reason }];
        self.event(&choices, None)
    }

    fn event(&self, choices: &[ChunkChoice<'_>], usage: Option<&Usage>) -> Bytes {
        let chunk = Chunk {
            id: &self.completion.id,
            object: "chat.completion.chunk",
            created: self.completion.created,
            model: &self.completion.model,
            system_fingerprint: SYSTEM_FINGERPRINT,
            choices,
            usage: self.include_usage.then_some(usage),
        };
        sse_data(&chunk)
    }
}

fn header(index: usize, call: &ToolCall) -> [ToolCallDelta<'_>; 1] {
    [ToolCallDelta {
        index,
        id: Some(&call.id),
        kind: Some("function"),
        function: FunctionDelta { name: Some(&call.name), arguments: "" },
    }]
}

impl EventSource for ChatStream {
    fn next_event(&mut self) -> Option<Event> {
        let step = self.step;
        let (data, tokens) = match (&self.completion.content, step) {
            (_, Step::End) => return None,
            (_, Step::Role) if self.completion.reasoning => {
                self.step = Step::Reasoning(0);
                let delta = Delta { role: Some("assistant"), content: Some(Some("")), ..Delta::default() };
                (self.chunk(delta, None), 0)
            }
            (Content::Text(_), Step::Role) => {
                self.step = self.body_start();
                let delta = Delta { role: Some("assistant"), content: Some(Some("")), ..Delta::default() };
                (self.chunk(delta, None), 0)
            }
            (Content::ToolCalls(calls), Step::Role) => {
                self.step = Step::ToolFragment { call: 0, fragment: 0 };
                let delta = Delta {
                    role: Some("assistant"),
                    content: Some(None),
                    tool_calls: calls.first().map(|c| header(0, c)),
                    ..Delta::default()
                };
                (self.chunk(delta, None), 0)
            }
            (_, Step::Reasoning(at)) => {
                let Some((range, tokens)) = next_piece(THINKING, at) else {
                    self.step = self.body_start();
                    return self.next_event();
                };
                self.step = if range.end < THINKING.len() { Step::Reasoning(range.end) } else { self.body_start() };
                let piece = THINKING.get(range).unwrap_or("");
                let delta = Delta { content: Some(None), reasoning_content: Some(piece), ..Delta::default() };
                (self.chunk(delta, None), tokens)
            }
            (Content::Text(reply), Step::Word(i)) => {
                self.step = if i + 1 < reply.len() { Step::Word(i + 1) } else { Step::Finish };
                let word = reply.word(i);
                let text = if i == 0 { Cow::Borrowed(word) } else { Cow::Owned(format!(" {word}")) };
                let delta = Delta { content: Some(Some(&text)), ..Delta::default() };
                (self.chunk(delta, None), 1)
            }
            (Content::ToolCalls(calls), Step::ToolHeader(call)) => {
                self.step = Step::ToolFragment { call, fragment: 0 };
                let delta = Delta { tool_calls: calls.get(call).map(|c| header(call, c)), ..Delta::default() };
                (self.chunk(delta, None), 0)
            }
            (Content::ToolCalls(calls), Step::ToolFragment { call, fragment }) => {
                self.step = self.after_fragment(call, fragment);
                let range = self.fragments[call][fragment].clone();
                let arguments = calls.get(call).and_then(|c| c.arguments.get(range)).unwrap_or("");
                let fragment = ToolCallDelta {
                    index: call,
                    id: None,
                    kind: None,
                    function: FunctionDelta { name: None, arguments },
                };
                let delta = Delta { tool_calls: Some([fragment]), ..Delta::default() };
                (self.chunk(delta, None), 1)
            }
            (_, Step::Finish) => {
                self.step = if self.include_usage { Step::Usage } else { Step::Done };
                (self.chunk(Delta::default(), Some(self.completion.finish_reason)), 0)
            }
            (_, Step::Usage) => {
                self.step = Step::Done;
                (self.event(&[], Some(&self.completion.usage)), 0)
            }
            (_, Step::Done) => {
                self.step = Step::End;
                (Bytes::from_static(b"data: [DONE]\n\n"), 0)
            }
            (Content::Text(_), Step::ToolHeader(_) | Step::ToolFragment { .. })
            | (Content::ToolCalls(_), Step::Word(_)) => {
                self.step = Step::Finish;
                return self.next_event();
            }
        };
        Some(Event { data, tokens })
    }

    fn error_event(&self) -> Bytes {
        stream_error_event()
    }
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: &'a [ChunkChoice<'a>],
    /// Absent without `include_usage`; with it, `null` on every chunk but the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<&'a Usage>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Default, Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    /// Absent, `null` (`Some(None)`) or text.
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}
