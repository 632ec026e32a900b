//! A response as Gemini streams it: one `GenerateContentResponse` per token (thought
//! words first, then reply words; function calls whole in one chunk), the last with
//! `finishReason` and `usageMetadata`; framed as SSE or as one JSON array.

use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;

use super::wire::{self, Part};
use super::{Framing, Response};
use crate::reply::next_piece;
use crate::stream::{Event, EventSource};
use crate::turn::{Body, THINKING};

/// Where the stream is; each step emits one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The thought piece starting at byte `.0`.
    Thought(usize),
    /// The reply piece starting at byte `.0`.
    Text(usize),
    /// An empty reply: one chunk with an empty text part.
    EmptyText,
    Calls,
    Blocked,
    End,
}

/// The chunks of one streamed response, produced lazily.
pub(super) struct ContentStream {
    response: Response,
    framing: Framing,
    step: Step,
    /// Whether a chunk was sent (the JSON array is open).
    started: bool,
}

impl ContentStream {
    pub(super) fn new(response: Response, framing: Framing) -> ContentStream {
        let mut stream = ContentStream { response, framing, step: Step::End, started: false };
        stream.step = if stream.response.turn.thinking.is_some() { Step::Thought(0) } else { stream.body_start() };
        stream
    }

    fn body_start(&self) -> Step {
        match &self.response.turn.body {
            Body::Text(text) if !text.is_empty() => Step::Text(0),
            Body::Text(_) => Step::EmptyText,
            Body::Calls(_) => Step::Calls,
            Body::Blocked => Step::Blocked,
        }
    }

    /// The parts of `step`, their tokens per candidate, and the step after it.
    fn parts(&self, step: Step) -> Option<(Vec<Part<'_>>, u64, Step)> {
        let response = &self.response;
        Some(match step {
            Step::End => return None,
            Step::Thought(at) => {
                let (range, tokens) = next_piece(THINKING, at)?;
                let next = if range.end < THINKING.len() { Step::Thought(range.end) } else { self.body_start() };
                (vec![wire::text(THINKING.get(range)?, true)], tokens, next)
            }
            Step::Text(at) => {
                let Body::Text(text) = &response.turn.body else {
                    return None;
                };
                let (range, tokens) = next_piece(text, at)?;
                let next = if range.end < text.len() { Step::Text(range.end) } else { Step::End };
                (vec![wire::text(text.get(range)?, false)], tokens, next)
            }
            Step::EmptyText => (vec![wire::text("", false)], 0, Step::End),
            Step::Calls => (wire::calls(response), response.turn.body_tokens(), Step::End),
            Step::Blocked => (Vec::new(), 0, Step::End),
        })
    }

    /// `payload` framed as the next element of the stream.
    fn frame(&self, payload: &impl Serialize, last: bool) -> Bytes {
        let mut data = Vec::with_capacity(320);
        match (self.framing, self.started) {
            (Framing::Sse, _) => data.extend_from_slice(b"data: "),
            (Framing::JsonArray, false) => data.push(b'['),
            (Framing::JsonArray, true) => data.extend_from_slice(b",\r\n"),
        }
        if serde_json::to_writer(&mut data, payload).is_err() {
            data.extend_from_slice(b"{}");
        }
        match (self.framing, last) {
            (Framing::Sse, _) => data.extend_from_slice(b"\n\n"),
            (Framing::JsonArray, true) => data.push(b']'),
            (Framing::JsonArray, false) => {}
        }
        Bytes::from(data)
    }
}

impl EventSource for ContentStream {
    fn next_event(&mut self) -> Option<Event> {
        let Some((parts, tokens, next)) = self.parts(self.step) else {
            self.step = Step::End;
            return None;
        };
        let last = next == Step::End;
        let chunk = wire::chunk(&self.response, parts, last);
        let data = self.frame(&chunk, last);
        self.step = next;
        self.started = true;
        Some(Event { data, tokens: tokens * u64::from(self.response.candidates) })
    }

    fn error_event(&self) -> Bytes {
        let error = serde_json::json!({"error": {
            "code": StatusCode::SERVICE_UNAVAILABLE.as_u16(),
            "message": "The model is overloaded. Please try again later.",
            "status": "UNAVAILABLE",
        }});
        self.frame(&error, true)
    }

    fn content_type(&self) -> &'static str {
        match self.framing {
            Framing::Sse => "text/event-stream",
            Framing::JsonArray => "application/json",
        }
    }
}
