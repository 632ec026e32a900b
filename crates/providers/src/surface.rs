//! Inbound surfaces other than Chat Completions (Responses, Anthropic Messages, legacy
//! completions): each translates its request into the canonical chat request, and the
//! canonical answer — a whole `ChatCompletion`, or a stream of `chat.completion.chunk`s —
//! back into its own shape. The gateway runs the one chat pipeline for all of them.

use tokenrouter_core::chat::{ChatCompletion, ChatCompletionChunk};
use tokenrouter_core::{ErrorEnvelope, Usage};

use crate::sse::{self, SseBuffer};

/// How one translated request's answer is stated on its inbound surface.
pub trait Surface: Send + Sync {
    /// The whole answer in this surface's shape. `usage` is what the request is billed
    /// for (the provider's report, or the gateway's count when it sent none).
    fn present(&self, completion: &ChatCompletion, usage: Usage) -> Vec<u8>;

    /// A transcoder for a streamed answer.
    fn stream(&self) -> Box<dyn SurfaceStream>;

    /// An error in this surface's shape (OpenAI's, unless the surface has its own).
    fn error_body(&self, envelope: &ErrorEnvelope) -> Vec<u8> {
        envelope.to_json()
    }

    /// What to keep of a finished answer (`answer` as [`Surface::present`] or
    /// [`SurfaceStream::completed`] stated it) so that a later request can continue from
    /// it: its id and the record to keep. `None` when nothing is kept.
    fn keep(&self, _answer: &[u8]) -> Option<(String, Vec<u8>)> {
        None
    }
}

/// Transcodes the canonical chunk stream into a surface's SSE events, chunk by chunk.
pub trait SurfaceStream: Send {
    /// One canonical chunk (the usage chunk, with no choices, included); appends whole
    /// SSE events of this surface to `out`.
    fn chunk(&mut self, chunk: &ChatCompletionChunk, out: &mut Vec<u8>);

    /// The canonical stream ended properly; `usage` is what the request is billed for.
    fn finish(&mut self, usage: Usage, out: &mut Vec<u8>);

    /// The stream failed after it began (the provider broke off or sent an error event).
    fn fail(&mut self, message: &str, out: &mut Vec<u8>);

    /// After [`SurfaceStream::finish`]: the whole answer as the surface states it, for
    /// [`Surface::keep`].
    fn completed(&mut self) -> Option<Vec<u8>> {
        None
    }
}

/// Feeds OpenAI chunk SSE bytes (split anywhere) to a [`SurfaceStream`].
pub struct ChunkFeed {
    buffer: SseBuffer,
    inner: Box<dyn SurfaceStream>,
    failed: bool,
}

impl ChunkFeed {
    pub fn new(inner: Box<dyn SurfaceStream>) -> ChunkFeed {
        ChunkFeed { buffer: SseBuffer::default(), inner, failed: false }
    }

    /// Consumes canonical SSE bytes; appends the surface's events. An error event in the
    /// canonical stream fails the surface's stream (and is reported as `Err`).
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        if self.failed {
            return Ok(());
        }
        self.buffer.push(bytes);
        let Some(complete) = self.buffer.take_complete() else {
            return Ok(());
        };
        for event in sse::events(&complete) {
            let Some(data) = sse::data(event) else { continue };
            if data.as_ref() == b"[DONE]" {
                continue;
            }
            if let Ok(chunk) = serde_json::from_slice::<ChatCompletionChunk>(&data) {
                self.inner.chunk(&chunk, out);
            } else if let Some(message) = error_message(&data) {
                self.fail(&message, out);
                return Err(message);
            }
        }
        Ok(())
    }

    /// The surface's stream has already been ended with its failure events.
    pub fn failed(&self) -> bool {
        self.failed
    }

    pub fn finish(&mut self, usage: Usage, out: &mut Vec<u8>) {
        if !self.failed {
            self.inner.finish(usage, out);
        }
    }

    pub fn fail(&mut self, message: &str, out: &mut Vec<u8>) {
        if !self.failed {
            self.failed = true;
            self.inner.fail(message, out);
        }
    }

    pub fn completed(&mut self) -> Option<Vec<u8>> {
        self.inner.completed()
    }
}

/// The message of an error event in an OpenAI-compatible stream, read leniently: servers
/// differ in the shape (`code` as a number, no `type`, a bare string).
fn error_message(data: &[u8]) -> Option<String> {
    if let Ok(envelope) = serde_json::from_slice::<ErrorEnvelope>(data) {
        return Some(envelope.error.message);
    }
    let value: serde_json::Value = serde_json::from_slice(data).ok()?;
    let error = value.get("error")?;
    let message = match error.get("message").and_then(serde_json::Value::as_str) {
        Some(message) => message.to_owned(),
        None => error.as_str().map_or_else(|| error.to_string(), str::to_owned),
    };
    Some(message)
}

/// Appends one SSE event with a name: `event: NAME\ndata: JSON\n\n`.
pub fn write_event(out: &mut Vec<u8>, name: &str, data: &serde_json::Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(&serde_json::to_vec(data).unwrap_or_default());
    out.extend_from_slice(b"\n\n");
}

/// Appends one unnamed SSE event: `data: JSON\n\n`.
pub fn write_data(out: &mut Vec<u8>, data: &serde_json::Value) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(&serde_json::to_vec(data).unwrap_or_default());
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what it was asked to do.
    #[derive(Default)]
    struct Log(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl SurfaceStream for Log {
        fn chunk(&mut self, chunk: &ChatCompletionChunk, _: &mut Vec<u8>) {
            self.0.lock().map(|mut l| l.push(format!("chunk {}", chunk.id))).unwrap_or_default();
        }
        fn finish(&mut self, _: Usage, _: &mut Vec<u8>) {
            self.0.lock().map(|mut l| l.push("finish".to_owned())).unwrap_or_default();
        }
        fn fail(&mut self, message: &str, _: &mut Vec<u8>) {
            self.0.lock().map(|mut l| l.push(format!("fail {message}"))).unwrap_or_default();
        }
    }

    #[test]
    fn error_events_of_any_common_shape_fail_the_surface_once() {
        let chunk = r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[]}"#;
        for error in [
            r#"{"error":{"message":"boom","type":"server_error","code":"x","param":null}}"#,
            r#"{"error":{"message":"boom","code":500}}"#,
            r#"{"error":"boom"}"#,
        ] {
            let log = Log::default();
            let seen = log.0.clone();
            let mut feed = ChunkFeed::new(Box::new(log));
            let mut out = Vec::new();
            let stream = format!("data: {chunk}\n\ndata: {error}\n\ndata: {chunk}\n\n");
            assert_eq!(feed.feed(stream.as_bytes(), &mut out), Err("boom".to_owned()), "{error}");
            assert!(feed.failed());
            feed.finish(Usage::default(), &mut out);
            feed.fail("again", &mut out);
            let seen = seen.lock().map(|l| l.clone()).unwrap_or_default();
            assert_eq!(seen, ["chunk c1", "fail boom"], "{error}");
        }
    }
}
