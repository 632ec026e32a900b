//! One turn of the mock model as the Anthropic, Gemini and Responses formats render it:
//! optional thinking, then text, tool calls or nothing, and why it stopped; and the rules
//! every format shares for which tools to call and when to think.

use serde_json::Value;

use crate::knobs::MockConfig;
use crate::reply::{Reply, argument_fragments, count_tokens, tool_arguments};
use crate::stats::Stats;

/// What the model "thinks" when thinking is on.
pub(crate) const THINKING: &str = "Let me think about this.";

/// A turn: what the model says and why it stopped.
pub(crate) struct Turn {
    /// The signature of the thinking that comes first, if the model thought.
    pub(crate) thinking: Option<String>,
    pub(crate) body: Body,
    pub(crate) stop: Stop,
}

/// What follows the thinking.
pub(crate) enum Body {
    /// A reply, possibly empty.
    Text(String),
    /// One or more tool calls.
    Calls(Vec<Call>),
    /// Nothing: a safety filter blocked the answer.
    Blocked,
}

/// Why a turn ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    End,
    MaxTokens,
    Sequence(String),
    ToolUse,
    Blocked,
}

/// A call of the function `name` with the arguments `input` (serialized as `json`).
pub(crate) struct Call {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) input: Value,
    pub(crate) json: String,
}

impl Call {
    /// Completion tokens a call costs: the fragments its arguments stream in.
    pub(crate) fn tokens(&self) -> u64 {
        argument_fragments(&self.json).len() as u64
    }
}

impl Turn {
    /// Tokens of the thinking.
    pub(crate) fn thinking_tokens(&self) -> u64 {
        if self.thinking.is_some() { count_tokens(THINKING) } else { 0 }
    }

    /// Tokens of the body (the text, or the calls' argument fragments).
    pub(crate) fn body_tokens(&self) -> u64 {
        match &self.body {
            Body::Text(text) => count_tokens(text),
            Body::Calls(calls) => calls.iter().map(Call::tokens).sum(),
            Body::Blocked => 0,
        }
    }
}

/// A reply to `prompt`: `reply_tokens` words unless `limit` is smaller (then it stops for
/// max tokens), cut before the earliest of `stop_sequences` it contains.
pub(crate) fn reply(prompt: &str, knobs: &MockConfig, limit: Option<u64>, stop_sequences: &[&str]) -> (String, Stop) {
    let len = limit.map_or(knobs.reply_tokens, |l| l.min(knobs.reply_tokens));
    let mut text = Reply::new(prompt, len).text();
    let mut stop = if len < knobs.reply_tokens { Stop::MaxTokens } else { Stop::End };
    let earliest = stop_sequences
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s).map(|at| (at, *s)))
        .min_by_key(|(at, _)| *at);
    if let Some((at, sequence)) = earliest {
        text.truncate(at);
        stop = Stop::Sequence(sequence.to_owned());
    }
    (text, stop)
}

/// Calls of the `chosen` functions (name, parameters schema), with ids `{prefix}{n}`
/// numbered server-wide.
pub(crate) fn calls(chosen: &[(&str, &Value)], prefix: &str, stats: &Stats) -> Vec<Call> {
    let first = stats.next_tool_call_ids(chosen.len() as u64);
    chosen
        .iter()
        .zip(first..)
        .map(|((name, schema), n)| {
            let input = tool_arguments(schema);
            let json = serde_json::to_string(&input).unwrap_or_else(|_| "{}".to_owned());
            Call { id: format!("{prefix}{n}"), name: (*name).to_owned(), input, json }
        })
        .collect()
}

/// Picks the functions to call from `functions`: the first `max` (the `calls` knob) when a
/// call is `forced` and `parallel` calls are allowed; otherwise the first (if any and `max`
/// is not 0).
pub(crate) fn pick<'a>(
    functions: Vec<(&'a str, &'a Value)>,
    forced: bool,
    parallel: bool,
    max: u64,
) -> Vec<(&'a str, &'a Value)> {
    let take = if forced && parallel { max } else { max.min(1) };
    functions.into_iter().take(usize::try_from(take).unwrap_or(usize::MAX)).collect()
}

/// The call a named tool choice forces: `name` with its schema from `functions` (none if
/// it is not declared), unless `max` (the `calls` knob) is 0.
pub(crate) fn named<'a>(functions: &[(&'a str, &'a Value)], name: &'a str, max: u64) -> Vec<(&'a str, &'a Value)> {
    if max == 0 {
        return Vec::new();
    }
    let schema = functions.iter().find(|(n, _)| *n == name).map_or(&Value::Null, |(_, s)| *s);
    vec![(name, schema)]
}

/// Whether an OpenAI `reasoning_effort` (or Responses `reasoning.effort`) makes the model
/// think: any effort but `none` and `minimal`.
pub(crate) fn reasons(effort: Option<&str>) -> bool {
    effort.is_some_and(|e| !matches!(e, "none" | "minimal"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replies_stop_at_limits_and_sequences() {
        let knobs = MockConfig { reply_tokens: 6, ..MockConfig::default() };
        let (full, stop) = reply("Hi there", &knobs, None, &[]);
        assert_eq!((count_tokens(&full), stop), (6, Stop::End));
        let (short, stop) = reply("Hi there", &knobs, Some(2), &[]);
        assert_eq!((count_tokens(&short), stop), (2, Stop::MaxTokens));
        let third = full.split(' ').nth(2).unwrap();
        let (cut, stop) = reply("Hi there", &knobs, None, &["", third]);
        assert_eq!(stop, Stop::Sequence(third.to_owned()));
        assert_eq!(count_tokens(&cut), 2);
        assert!(full.starts_with(&cut) && !cut.contains(third));
    }

    #[test]
    fn calls_are_numbered_and_built_from_schemas() {
        let stats = Stats::default();
        let schema = json!({"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]});
        let made = calls(&[("a", &schema), ("b", &Value::Null)], "id_", &stats);
        assert_eq!(made[0].id, "id_1");
        assert_eq!(made[1].id, "id_2");
        assert_eq!(made[0].json, r#"{"q":"mock"}"#);
        assert_eq!(made[1].input, json!({}));
        assert!(made[1].tokens() >= 2);
    }

    #[test]
    fn picks_at_most_calls_functions() {
        let schema = Value::Null;
        let functions = || vec![("a", &schema), ("b", &schema), ("c", &schema)];
        fn names<'a>(picked: Vec<(&'a str, &Value)>) -> Vec<&'a str> {
            picked.into_iter().map(|(n, _)| n).collect()
        }
        assert_eq!(names(pick(functions(), true, true, 2)), ["a", "b"]);
        assert_eq!(names(pick(functions(), true, true, 5)), ["a", "b", "c"]);
        assert_eq!(names(pick(functions(), true, true, 1)), ["a"]);
        assert_eq!(names(pick(functions(), false, true, 3)), ["a"]);
        assert_eq!(names(pick(functions(), true, false, 3)), ["a"]);
        assert!(pick(functions(), false, true, 0).is_empty());
        assert_eq!(names(named(&functions(), "b", 1)), ["b"]);
        assert!(named(&functions(), "b", 0).is_empty());
        assert!(reasons(Some("low")) && !reasons(Some("minimal")) && !reasons(Some("none")) && !reasons(None));
    }
}
