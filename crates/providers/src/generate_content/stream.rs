//! The canonical chunk stream as Gemini's stream: one partial `GenerateContentResponse`
//! per piece — thoughts and text as they arrive, the latest text piece held back so that
//! the last event carries text (or the calls, which Gemini sends whole), the finish reason
//! and the usage. Framed as SSE (`data: {...}`) or as Google's streamed JSON array.

use tokenrouter_core::Usage;
use tokenrouter_core::chat::{ChatCompletionChunk, ThinkingBlock, ToolCall};

use super::response::{Answer, call_part, error_json, finish_reason, usage_metadata};
use super::{GeminiSurface, StreamForm};
use crate::gemini::wire::{Candidate, Content, GenerateContentResponse, Part};
use crate::surface::SurfaceStream;

pub(super) struct GeminiStream {
    surface: GeminiSurface,
    candidates: Vec<State>,
    /// Events written so far (the array form separates them).
    written: usize,
    ended: bool,
}

/// One candidate (one chat choice) in flight.
#[derive(Default)]
struct State {
    index: u32,
    /// The latest text piece, sent with the next piece or the last event.
    held: Option<String>,
    /// Calls as their pieces arrive, by canonical index.
    calls: Vec<(u32, ToolCall)>,
    blocks: Vec<ThinkingBlock>,
    finish: Option<String>,
}

impl GeminiStream {
    pub(super) fn new(surface: GeminiSurface) -> GeminiStream {
        GeminiStream { surface, candidates: Vec::new(), written: 0, ended: false }
    }

    fn state(&mut self, index: u32) -> &mut State {
        let at = match self.candidates.iter().position(|c| c.index == index) {
            Some(at) => at,
            None => {
                self.candidates.push(State { index, ..State::default() });
                self.candidates.len() - 1
            }
        };
        &mut self.candidates[at]
    }

    fn write(&mut self, response: &GenerateContentResponse, out: &mut Vec<u8>) {
        let json = serde_json::to_vec(response).unwrap_or_default();
        self.frame(&json, out);
    }

    fn frame(&mut self, json: &[u8], out: &mut Vec<u8>) {
        match self.surface.form {
            StreamForm::Sse => {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(json);
                out.extend_from_slice(b"\r\n\r\n");
            }
            StreamForm::Array => {
                out.extend_from_slice(if self.written == 0 { b"[" } else { b"\n,\r\n" });
                out.extend_from_slice(json);
            }
        }
        self.written += 1;
    }

    /// One event with some parts of one candidate.
    fn parts(&mut self, index: u32, parts: Vec<Part>, out: &mut Vec<u8>) {
        let candidate = Candidate {
            content: Some(Content { role: Some("model".to_owned()), parts }),
            finish_reason: None,
            index: Some(index),
            grounding_metadata: None,
        };
        let response = self.response(vec![candidate]);
        self.write(&response, out);
    }

    fn response(&self, candidates: Vec<Candidate>) -> GenerateContentResponse {
        GenerateContentResponse {
            candidates,
            model_version: Some(self.surface.model.clone()),
            response_id: Some(self.surface.response_id.clone()),
            ..GenerateContentResponse::default()
        }
    }

    fn close_array(&mut self, out: &mut Vec<u8>) {
        if self.surface.form == StreamForm::Array {
            out.extend_from_slice(if self.written == 0 { b"[]" } else { b"\n]" });
        }
    }
}

impl SurfaceStream for GeminiStream {
    fn chunk(&mut self, chunk: &ChatCompletionChunk, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        let include_thoughts = self.surface.include_thoughts;
        for choice in &chunk.choices {
            let delta = &choice.delta;
            let index = choice.index;
            let mut send = Vec::new();
            let state = self.state(index);
            if include_thoughts && let Some(thought) = delta.reasoning_content.as_ref().filter(|t| !t.is_empty()) {
                // Thoughts come before the text: what is held goes first.
                send.extend(state.held.take().map(Part::text));
                send.push(Part { text: Some(thought.clone()), thought: Some(true), ..Part::default() });
            }
            state.blocks.extend(delta.thinking_blocks.iter().flatten().cloned());
            let text: String = [&delta.content, &delta.refusal].into_iter().flatten().map(String::as_str).collect();
            if !text.is_empty() {
                send.extend(state.held.replace(text).map(Part::text));
            }
            for piece in delta.tool_calls.iter().flatten() {
                let at = match state.calls.iter().position(|(k, _)| *k == piece.index) {
                    Some(at) => at,
                    None => {
                        let call = ToolCall {
                            id: String::new(),
                            kind: "function".to_owned(),
                            function: tokenrouter_core::chat::FunctionCall {
                                name: String::new(),
                                arguments: String::new(),
                            },
                        };
                        state.calls.push((piece.index, call));
                        state.calls.len() - 1
                    }
                };
                let call = &mut state.calls[at].1;
                if let Some(id) = piece.id.as_ref().filter(|id| !id.is_empty()) {
                    call.id.clone_from(id);
                }
                if let Some(name) = piece.function.name.as_ref().filter(|n| !n.is_empty()) {
                    call.function.name.clone_from(name);
                }
                if let Some(arguments) = &piece.function.arguments {
                    call.function.arguments.push_str(arguments);
                }
            }
            if let Some(finish) = &choice.finish_reason {
                state.finish = Some(finish.clone());
            }
            if !send.is_empty() {
                self.parts(index, send, out);
            }
        }
    }

    fn finish(&mut self, usage: Usage, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.ended = true;
        let candidates = std::mem::take(&mut self.candidates)
            .into_iter()
            .map(|state| {
                let answer = Answer {
                    thoughts: Vec::new(),
                    text: state.held,
                    calls: state.calls.iter().map(|(_, call)| call_part(call)).collect(),
                    blocks: state.blocks,
                };
                let parts = answer.parts();
                Candidate {
                    content: (!parts.is_empty()).then(|| Content { role: Some("model".to_owned()), parts }),
                    finish_reason: Some(finish_reason(state.finish.as_deref()).to_owned()),
                    index: Some(state.index),
                    grounding_metadata: None,
                }
            })
            .collect();
        let mut response = self.response(candidates);
        response.usage_metadata = Some(usage_metadata(usage));
        self.write(&response, out);
        self.close_array(out);
    }

    fn fail(&mut self, message: &str, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.ended = true;
        // What was delivered reaches the client before the error.
        let held: Vec<(u32, String)> =
            self.candidates.iter_mut().filter_map(|c| c.held.take().map(|text| (c.index, text))).collect();
        for (index, text) in held {
            self.parts(index, vec![Part::text(text)], out);
        }
        let json = error_json(500, message, None);
        self.frame(&json, out);
        self.close_array(out);
    }
}
