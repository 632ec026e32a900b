//! Pure translation between Token Router and upstream wire formats: the SSE codec, the
//! OpenAI pass-through body and usage readers. No network, no async runtime.

pub mod adapter;
pub mod anthropic;
pub mod completions;
pub mod embeddings;
pub mod gemini;
pub mod generate_content;
pub mod messages;
pub mod openai;
pub mod passthrough;
pub mod responses;
pub mod sse;
pub mod surface;
