//! The stream decoder: Gemini's `streamGenerateContent?alt=sse` events (each a partial
//! `GenerateContentResponse`) transcoded into OpenAI `chat.completion.chunk` events.

use tokenrouter_core::Usage;
use tokenrouter_core::chat::{
    ChatCompletionChunk, ChunkChoice, Delta, DeltaFunction, DeltaToolCall, ThinkingBlock, UsageJson,
};

use super::response::{
    api_failure, arguments, call_id, call_tokens, candidate_index, finish, prompt_blocked, signature_block, unreadable,
    usage, web_searches, without_dropped,
};
use super::wire::{Candidate, GenerateContentResponse, Part};
use crate::adapter::{ResponseMeta, StreamDecoder, UpstreamFailure};
use crate::sse::{self, SseBuffer};

pub(crate) struct GeminiStream {
    meta: ResponseMeta,
    buffer: SseBuffer,
    candidates: Vec<CandidateState>,
    usage: Option<Usage>,
    /// Completion tokens of calls dropped because the client allowed one (not billed).
    dropped: u64,
    /// Estimated tokens of the text and reasoning sent: the floor below which dropping
    /// calls never takes the bill.
    kept: u64,
    /// The most Google searches an event's grounding named (the last events repeat them).
    web_searches: u64,
    delivered: u64,
    prompt_blocked: bool,
    closed: bool,
}

/// What the decoder remembers of one candidate (one OpenAI choice).
#[derive(Default)]
struct CandidateState {
    index: u32,
    calls: u32,
    /// Signature entries emitted so far; entry k belongs to call k.
    signature_entries: u32,
    /// Signatures on non-call parts, handed out with the final chunk of a text answer.
    text_signatures: Vec<String>,
    delivered_text: bool,
    finished: bool,
}

impl GeminiStream {
    pub(crate) fn new(meta: ResponseMeta) -> GeminiStream {
        GeminiStream {
            meta,
            buffer: SseBuffer::default(),
            candidates: Vec::new(),
            usage: None,
            dropped: 0,
            kept: 0,
            web_searches: 0,
            delivered: 0,
            prompt_blocked: false,
            closed: false,
        }
    }

    fn complete(&self) -> bool {
        self.prompt_blocked || (!self.candidates.is_empty() && self.candidates.iter().all(|c| c.finished))
    }

    fn event(&mut self, event: &[u8], out: &mut Vec<u8>) -> Result<(), UpstreamFailure> {
        let Some(data) = sse::data(event) else {
            return Ok(());
        };
        let data = data.trim_ascii();
        if data.is_empty() || data == b"[DONE]" {
            return Ok(());
        }
        let response: GenerateContentResponse =
            serde_json::from_slice(data).map_err(|e| unreadable("stream event", &e))?;
        if let Some(error) = response.error {
            return Err(api_failure(200, error));
        }
        if let Some(meta) = &response.usage_metadata {
            self.usage = Some(usage(meta));
        }
        self.web_searches = self.web_searches.max(web_searches(&response.candidates));
        if response.candidates.is_empty() {
            let reason = response.prompt_feedback.and_then(|f| f.block_reason);
            if let Some(reason) = reason.filter(|_| !self.complete()) {
                self.prompt_blocked = true;
                self.emit(out, 0, role_delta())?;
                let content = Delta { content: Some(prompt_blocked(&reason)), ..Delta::default() };
                self.emit(out, 0, content)?;
                self.emit_finish(out, 0, "content_filter", None)?;
            }
            return Ok(());
        }
        for (position, candidate) in response.candidates.iter().enumerate() {
            self.candidate(candidate, position, out)?;
        }
        Ok(())
    }

    fn state(&mut self, index: u32, out: &mut Vec<u8>) -> Result<usize, UpstreamFailure> {
        if let Some(at) = self.candidates.iter().position(|c| c.index == index) {
            return Ok(at);
        }
        self.candidates.push(CandidateState { index, ..CandidateState::default() });
        self.emit(out, index, role_delta())?;
        Ok(self.candidates.len() - 1)
    }

    fn candidate(&mut self, candidate: &Candidate, position: usize, out: &mut Vec<u8>) -> Result<(), UpstreamFailure> {
        let index = candidate_index(candidate, position);
        let at = self.state(index, out)?;
        if self.candidates[at].finished {
            return Ok(());
        }
        for part in candidate.content.iter().flat_map(|c| c.parts.iter()) {
            self.part(at, part, out)?;
        }
        if let Some(reason) = candidate.finish_reason.as_deref() {
            let state = &mut self.candidates[at];
            state.finished = true;
            let (finish_reason, blocked) = finish(Some(reason), state.calls > 0);
            let signatures = if state.calls == 0 { std::mem::take(&mut state.text_signatures) } else { Vec::new() };
            if let Some(message) = blocked {
                let content = if state.delivered_text { format!("\n\n{message}") } else { message };
                // The gateway's words, not generated tokens: not counted as delivered.
                self.emit(out, index, Delta { content: Some(content), ..Delta::default() })?;
            }
            let blocks: Vec<ThinkingBlock> = signatures.into_iter().map(Some).map(signature_block).collect();
            let blocks = (!blocks.is_empty()).then_some(blocks);
            self.emit_finish(out, index, finish_reason, blocks)?;
        }
        Ok(())
    }

    fn part(&mut self, at: usize, part: &Part, out: &mut Vec<u8>) -> Result<(), UpstreamFailure> {
        let one_tool_call = self.meta.one_tool_call;
        let state = &mut self.candidates[at];
        let index = state.index;
        if let Some(call) = &part.function_call {
            // Gemini has no switch for parallel calls: a client that allows one gets one.
            if one_tool_call && state.calls > 0 {
                self.dropped = self.dropped.saturating_add(call_tokens(call));
                return Ok(());
            }
            let k = state.calls;
            state.calls += 1;
            let mut blocks = None;
            if let Some(signature) = &part.thought_signature {
                // Placeholders for the unsigned calls before this one keep entry k at call k.
                let mut entries: Vec<ThinkingBlock> =
                    (state.signature_entries..k).map(|_| signature_block(None)).collect();
                entries.push(signature_block(Some(signature.clone())));
                state.signature_entries = k + 1;
                blocks = Some(entries);
            }
            let delta = Delta {
                tool_calls: Some(vec![DeltaToolCall {
                    index: k,
                    id: Some(call_id(call.id.as_deref(), index, k as usize)),
                    kind: Some("function".to_owned()),
                    function: DeltaFunction {
                        name: Some(call.name.clone()),
                        arguments: Some(arguments(call.args.as_deref())),
                    },
                }]),
                thinking_blocks: blocks,
                ..Delta::default()
            };
            return self.emit_counted(out, index, delta);
        }
        if let Some(signature) = &part.thought_signature {
            state.text_signatures.push(signature.clone());
        }
        let Some(text) = part.text.as_ref().filter(|t| !t.is_empty()) else {
            return Ok(());
        };
        self.kept = self.kept.saturating_add(crate::openai::estimate_text_tokens(text));
        let delta = if part.is_thought() {
            Delta { reasoning_content: Some(text.clone()), ..Delta::default() }
        } else {
            state.delivered_text = true;
            Delta { content: Some(text.clone()), ..Delta::default() }
        };
        self.emit_counted(out, index, delta)
    }

    fn emit_counted(&mut self, out: &mut Vec<u8>, index: u32, delta: Delta) -> Result<(), UpstreamFailure> {
        self.delivered += 1;
        self.emit(out, index, delta)
    }

    fn emit_finish(
        &self,
        out: &mut Vec<u8>,
        index: u32,
        reason: &str,
        thinking_blocks: Option<Vec<ThinkingBlock>>,
    ) -> Result<(), UpstreamFailure> {
        let choice = ChunkChoice {
            index,
            delta: Delta { thinking_blocks, ..Delta::default() },
            logprobs: None,
            finish_reason: Some(reason.to_owned()),
            stop_reason: None,
        };
        self.write(out, vec![choice], self.meta.include_usage.then_some(None))
    }

    fn emit(&self, out: &mut Vec<u8>, index: u32, delta: Delta) -> Result<(), UpstreamFailure> {
        let choice = ChunkChoice { index, delta, logprobs: None, finish_reason: None, stop_reason: None };
        self.write(out, vec![choice], self.meta.include_usage.then_some(None))
    }

    fn write(
        &self,
        out: &mut Vec<u8>,
        choices: Vec<ChunkChoice>,
        usage: Option<Option<UsageJson>>,
    ) -> Result<(), UpstreamFailure> {
        let chunk = ChatCompletionChunk {
            id: self.meta.id.clone(),
            object: "chat.completion.chunk".to_owned(),
            created: self.meta.created,
            model: self.meta.model.clone(),
            choices,
            usage,
        };
        let json = serde_json::to_vec(&chunk).map_err(|e| unreadable("chunk", &e))?;
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&json);
        out.extend_from_slice(b"\n\n");
        Ok(())
    }
}

fn role_delta() -> Delta {
    Delta { role: Some("assistant".to_owned()), content: Some(String::new()), ..Delta::default() }
}

impl StreamDecoder for GeminiStream {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), UpstreamFailure> {
        self.buffer.push(bytes);
        if let Some(events) = self.buffer.take_complete() {
            for event in sse::events(&events) {
                self.event(event, out)?;
            }
        }
        if self.buffer.overflowed() {
            self.buffer = SseBuffer::default();
            return Err(UpstreamFailure {
                status: 0,
                retryable: false,
                client_error: false,
                message: "The Gemini stream sent an event larger than 4 MiB.".to_owned(),
            });
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), UpstreamFailure> {
        if self.closed {
            return Ok(());
        }
        // A last event without its blank line still counts.
        if !self.buffer.is_empty() {
            self.buffer.push(b"\n\n");
            if let Some(events) = self.buffer.take_complete() {
                for event in sse::events(&events) {
                    self.event(event, out)?;
                }
            }
        }
        if !self.complete() {
            return Err(UpstreamFailure {
                status: 0,
                retryable: true,
                client_error: false,
                message: "The Gemini stream ended before a finish reason.".to_owned(),
            });
        }
        self.closed = true;
        if self.meta.include_usage {
            let usage = UsageJson::from(self.usage().unwrap_or_default());
            self.write(out, Vec::new(), Some(Some(usage)))?;
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        Ok(())
    }

    fn usage(&self) -> Option<Usage> {
        self.usage.map(|u| {
            let mut usage = without_dropped(u, self.dropped, self.kept);
            usage.hosted.web_search = self.web_searches;
            usage
        })
    }

    fn delivered_chunks(&self) -> u64 {
        self.delivered
    }
}
