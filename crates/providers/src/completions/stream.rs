//! A streamed chat answer as legacy `text_completion` chunks: one per content delta, one
//! carrying each choice's `finish_reason`, the usage chunk when the client asked for it,
//! then `[DONE]`.

use serde_json::{Value, json};
use tokenrouter_core::chat::ChatCompletionChunk;
use tokenrouter_core::{ErrorEnvelope, Usage};

use super::{CompletionsSurface, finish_reason, usage_json};
use crate::surface::{SurfaceStream, write_data};

pub(super) struct CompletionsStream {
    surface: CompletionsSurface,
}

impl CompletionsStream {
    pub(super) fn new(surface: CompletionsSurface) -> CompletionsStream {
        CompletionsStream { surface }
    }

    fn event(&self, choices: Value) -> Value {
        json!({
            "id": self.surface.id,
            "object": "text_completion",
            "created": self.surface.created,
            "choices": choices,
            "model": self.surface.model,
        })
    }
}

fn choice(text: &str, index: u32, finish: Option<&str>) -> Value {
    json!([{ "text": text, "index": index, "logprobs": null, "finish_reason": finish }])
}

impl SurfaceStream for CompletionsStream {
    fn chunk(&mut self, chunk: &ChatCompletionChunk, out: &mut Vec<u8>) {
        if !chunk.model.is_empty() && chunk.model != self.surface.model {
            self.surface.model.clone_from(&chunk.model);
        }
        for c in &chunk.choices {
            if let Some(text) = c.delta.content.as_deref().filter(|t| !t.is_empty()) {
                write_data(out, &self.event(choice(text, c.index, None)));
            }
            if let Some(reason) = c.finish_reason.as_deref() {
                write_data(out, &self.event(choice("", c.index, Some(finish_reason(Some(reason))))));
            }
        }
    }

    fn finish(&mut self, usage: Usage, out: &mut Vec<u8>) {
        if self.surface.include_usage {
            let mut event = self.event(json!([]));
            event["usage"] = usage_json(usage);
            write_data(out, &event);
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
    }

    fn fail(&mut self, message: &str, out: &mut Vec<u8>) {
        let envelope = ErrorEnvelope::new("upstream_error", "upstream_unavailable", message, None);
        write_data(out, &serde_json::to_value(&envelope).unwrap_or(Value::Null));
    }
}
