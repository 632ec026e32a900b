//! The legacy completions API, `POST /v1/completions`: a `prompt` (string, strings, token
//! arrays) answered with `n` choices per prompt, cut by `max_tokens` (default 16) and
//! `stop`; whole as a `text_completion`, or streamed one token per chunk, each choice
//! ending with its finish reason, then an optional usage chunk and `data: [DONE]`.

use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;
use serde_json::Value;

use super::{
    CompletionDetails, MODELS, PromptDetails, SYSTEM_FINGERPRINT, Usage, invalid_request, not_json, sse_data,
    stream_error_event, text_inputs, to_json,
};
use crate::knobs::{Fault, MockConfig};
use crate::reply::{count_tokens, next_piece};
use crate::server::Answer;
use crate::stream::{Event, EventSource};
use crate::turn::{self, Stop};

/// The reply length when the request does not say.
const DEFAULT_MAX_TOKENS: u64 = 16;
/// The most choices a request may ask for per prompt.
const MAX_N: u64 = 128;

/// A completion, whether sent whole or streamed.
struct TextCompletion {
    id: String,
    model: String,
    created: i64,
    choices: Vec<Choice>,
    usage: Usage,
}

struct Choice {
    text: String,
    finish_reason: &'static str,
}

/// `POST /v1/completions`; `model` is the model name without its knobs.
pub(crate) fn completions(body: Option<&Value>, model: Option<&str>, knobs: &MockConfig, seq: u64) -> Answer {
    let Some(body) = body.filter(|b| b.is_object()) else {
        return not_json();
    };
    let Some(prompt) = body.get("prompt") else {
        return invalid_request("Missing required parameter: 'prompt'.");
    };
    let Some(prompts) = text_inputs(prompt) else {
        return invalid_request(
            "Invalid type for 'prompt': expected a string, an array of strings, an array of tokens \
             or an array of token arrays.",
        );
    };
    let n = body.get("n").and_then(Value::as_u64).unwrap_or(1);
    if !(1..=MAX_N).contains(&n) {
        return invalid_request(format!("Invalid 'n': expected an integer between 1 and {MAX_N}."));
    }
    let max_tokens = body.get("max_tokens").and_then(Value::as_u64).unwrap_or(DEFAULT_MAX_TOKENS);
    let stop: Vec<&str> = match body.get("stop") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };

    let mut choices = Vec::new();
    for prompt in &prompts {
        let (text, finish_reason) = if knobs.fault == Some(Fault::Safety) {
            (String::new(), "content_filter")
        } else {
            let (text, stop) = turn::reply(&prompt.text, knobs, Some(max_tokens), &stop);
            (text, if stop == Stop::MaxTokens { "length" } else { "stop" })
        };
        choices.extend((0..n).map(|_| Choice { text: text.clone(), finish_reason }));
    }
    let prompt_tokens: u64 = prompts.iter().map(|p| p.tokens).sum();
    let completion_tokens: u64 = choices.iter().map(|c| count_tokens(&c.text)).sum();
    let completion = TextCompletion {
        id: format!("cmpl-mock-{seq}"),
        model: model.unwrap_or(MODELS[0]).to_owned(),
        created: tokenrouter_core::clock::now_unix(),
        choices,
        usage: Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            prompt_tokens_details: PromptDetails {
                cached_tokens: knobs.cached_tokens.min(prompt_tokens),
                audio_tokens: 0,
            },
            completion_tokens_details: CompletionDetails::default(),
        },
    };

    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        let include_usage = body.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true);
        Answer::Stream(Box::new(CompletionStream { completion, include_usage, step: Step::Start(0) }))
    } else {
        let choices: Vec<WireChoice<'_>> = completion
            .choices
            .iter()
            .enumerate()
            .map(|(index, c)| WireChoice { text: &c.text, index, logprobs: None, finish_reason: Some(c.finish_reason) })
            .collect();
        let body = to_json(&completion.wire(&choices, Some(Some(&completion.usage))));
        Answer::Json { status: StatusCode::OK, body, tokens: completion.usage.completion_tokens }
    }
}

impl TextCompletion {
    /// The `text_completion` object with `choices` and `usage`.
    fn wire<'a>(&'a self, choices: &'a [WireChoice<'a>], usage: Option<Option<&'a Usage>>) -> Wire<'a> {
        Wire {
            id: &self.id,
            object: "text_completion",
            created: self.created,
            model: &self.model,
            system_fingerprint: SYSTEM_FINGERPRINT,
            choices,
            usage,
        }
    }
}

#[derive(Serialize)]
struct Wire<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: &'a [WireChoice<'a>],
    /// Absent from stream chunks without `include_usage`; with it, `null` on every chunk
    /// but the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<&'a Usage>>,
}

#[derive(Serialize)]
struct WireChoice<'a> {
    text: &'a str,
    index: usize,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

/// Where the stream is; each step emits one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Choice `.0` begins: its first piece, or its finish if it is empty.
    Start(usize),
    /// The piece of choice `choice` starting at byte `at`.
    Piece {
        choice: usize,
        at: usize,
    },
    Finish(usize),
    Usage,
    Done,
    End,
}

/// The chunks of one streamed completion, produced lazily: the choices one after another.
struct CompletionStream {
    completion: TextCompletion,
    include_usage: bool,
    step: Step,
}

impl CompletionStream {
    /// A chunk with one choice.
    fn chunk(&self, index: usize, text: &str, finish_reason: Option<&'static str>) -> Bytes {
        let choices = [WireChoice { text, index, logprobs: None, finish_reason }];
        sse_data(&self.completion.wire(&choices, self.include_usage.then_some(None)))
    }
}

impl EventSource for CompletionStream {
    fn next_event(&mut self) -> Option<Event> {
        let choices = &self.completion.choices;
        let (data, tokens, next) = match self.step {
            Step::End => return None,
            Step::Start(choice) if choice >= choices.len() => {
                self.step = if self.include_usage { Step::Usage } else { Step::Done };
                return self.next_event();
            }
            Step::Start(choice) if choices[choice].text.is_empty() => {
                self.step = Step::Finish(choice);
                return self.next_event();
            }
            Step::Start(choice) => {
                self.step = Step::Piece { choice, at: 0 };
                return self.next_event();
            }
            Step::Piece { choice, at } => {
                let text = &choices[choice].text;
                let Some((range, tokens)) = next_piece(text, at) else {
                    self.step = Step::Finish(choice);
                    return self.next_event();
                };
                let next =
                    if range.end < text.len() { Step::Piece { choice, at: range.end } } else { Step::Finish(choice) };
                (self.chunk(choice, text.get(range).unwrap_or(""), None), tokens, next)
            }
            Step::Finish(choice) => {
                (self.chunk(choice, "", Some(choices[choice].finish_reason)), 0, Step::Start(choice + 1))
            }
            Step::Usage => (sse_data(&self.completion.wire(&[], Some(Some(&self.completion.usage)))), 0, Step::Done),
            Step::Done => (Bytes::from_static(b"data: [DONE]\n\n"), 0, Step::End),
        };
        self.step = next;
        Some(Event { data, tokens })
    }

    fn error_event(&self) -> Bytes {
        stream_error_event()
    }
}
