//! Tests of the OpenAI pass-through helpers.

use super::*;

fn view(body: &str) -> Result<ChatView, FieldError> {
    inspect_chat(&RawObject::parse(body.as_bytes()).unwrap())
}

#[test]
fn inspects_the_fields_the_gateway_relies_on() {
    let v = view(r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true},"max_tokens":5}"#).unwrap();
    assert_eq!(v, ChatView { model: "m".into(), stream: true, include_usage: true, max_tokens: Some(5) });
    let v = view(r#"{"model":"m","messages":[{}],"max_tokens":5,"max_completion_tokens":7,"stream":null}"#).unwrap();
    assert_eq!(v.max_tokens, Some(7));
    assert!(!v.stream);
}

#[test]
fn names_the_field_that_is_wrong() {
    let cases = [
        (r#"{"messages":[{}]}"#, "model"),
        (r#"{"model":5,"messages":[{}]}"#, "model"),
        (r#"{"model":"m"}"#, "messages"),
        (r#"{"model":"m","messages":"hi"}"#, "messages"),
        (r#"{"model":"m","messages":[ ]}"#, "messages"),
        (r#"{"model":"m","messages":[{}],"stream":"yes"}"#, "stream"),
        (r#"{"model":"m","messages":[{}],"max_tokens":-1}"#, "max_tokens"),
        (r#"{"model":"m","messages":[{}],"max_tokens":1.5}"#, "max_tokens"),
        (r#"{"model":"m","messages":[{}],"stream_options":{"include_usage":"x"}}"#, "stream_options"),
        (r#"{"model":"m","messages":[{}],"n":0}"#, "n"),
        (r#"{"model":"m","messages":[{}],"temperature":"hot"}"#, "temperature"),
    ];
    for (body, param) in cases {
        assert_eq!(view(body).unwrap_err().param, param, "{body}");
    }
}

#[test]
fn asks_upstream_for_usage_and_keeps_other_options() {
    let body = r#"{"model":"alias","messages":[{}],"stream":true,"stream_options":{"x":1},"custom":[1]}"#;
    let mut obj = RawObject::parse(body.as_bytes()).unwrap();
    let v = inspect_chat(&obj).unwrap();
    prepare_upstream_chat(&mut obj, &v, "real-model", Dialect::OpenAi);
    let out: serde_json::Value = serde_json::from_slice(&obj.to_vec()).unwrap();
    assert_eq!(out["model"], "real-model");
    assert_eq!(out["stream_options"], serde_json::json!({"x":1,"include_usage":true}));
    assert_eq!(out["custom"], serde_json::json!([1]));
}

#[test]
fn reads_usage_from_answers_and_chunks() {
    let body = br#"{"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":1}}}"#;
    assert_eq!(
        response_usage(body),
        Some(Usage {
            prompt_tokens: 9,
            completion_tokens: 3,
            cached_tokens: 4,
            cache_write_tokens: 0,
            reasoning_tokens: 1,
            hosted: Default::default(),
        })
    );
    assert_eq!(response_usage(br#"{"id":"x","usage":null}"#), None);

    let usage_chunk = classify_chunk(br#"{"id":"x","choices":[],"usage":{"prompt_tokens":2,"completion_tokens":1}}"#);
    assert!(usage_chunk.usage_only);
    assert_eq!(usage_chunk.usage.unwrap().total(), 3);
    assert!(!usage_chunk.delivers_tokens);

    let content = classify_chunk(br#"{"choices":[{"delta":{"content":" hi"}}],"usage":null}"#);
    assert!(content.delivers_tokens && content.usage.is_none());
    let empty = classify_chunk(br#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#);
    assert!(!empty.delivers_tokens);
    let args =
        classify_chunk(br#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a"}}]}}]}"#);
    assert!(args.delivers_tokens);
    assert!(classify_chunk(b"[DONE]").done);
}

#[test]
fn strips_null_usage() {
    assert_eq!(strip_null_usage(br#"{"a":1,"usage":null}"#).unwrap(), br#"{"a":1}"#);
    assert_eq!(strip_null_usage(br#"{"usage":null,"a":1}"#).unwrap(), br#"{"a":1}"#);
    assert!(strip_null_usage(br#"{"a":1}"#).is_none());
}

#[test]
fn estimates_tokens_when_usage_is_missing() {
    assert_eq!(estimate_text_tokens("abcdefgh"), 2);
    assert_eq!(estimate_text_tokens("abcdefghi"), 3);
    let body = br#"{"messages":[{"role":"user","content":"abcdefgh"},{"role":"user","content":[{"type":"text","text":"abcd"}]}]}"#;
    assert_eq!(estimate_prompt_tokens(body), 2 + 4 + 1 + 4);
    // Bodies of other surfaces are estimated from their whole text, never as nothing.
    let responses = br#"{"model":"m","input":"a long enough prompt text"}"#;
    assert_eq!(estimate_prompt_tokens(responses), estimate_text_tokens(std::str::from_utf8(responses).unwrap()));
    assert!(estimate_prompt_tokens(br#"{"prompt":["abc","def"]}"#) > 0);
    let answer = br#"{"choices":[{"message":{"content":"abcdefgh"}}]}"#;
    assert_eq!(estimate_completion_tokens(answer), 2);
}

#[test]
fn classifies_spaced_json_too() {
    let spaced = classify_chunk(br#"{"choices": [ ], "usage": {"prompt_tokens": 2, "completion_tokens": 1}}"#);
    assert!(spaced.usage_only);
    assert!(classify_chunk(br#"{"choices":[{"delta":{"content" : "x"}}]}"#).delivers_tokens);
    assert!(!classify_chunk(br#"{"choices":[{"delta":{"content":null}}]}"#).delivers_tokens);
    assert!(!classify_chunk(br#"{"note":"the \"usage\" word","choices":[{"delta":{}}]}"#).delivers_tokens);
    assert_eq!(strip_null_usage(br#"{"a":1, "usage": null }"#).unwrap(), br#"{"a":1 }"#);
    assert!(strip_null_usage(br#"{"a":1,"usage":{"x":1}}"#).is_none());
}

#[test]
fn mistral_gets_only_fields_it_accepts() {
    let body = r#"{"model":"m","messages":[{"role":"assistant","content":"x","reasoning_content":"r"}],"stream":true,"stream_options":{"include_usage":true},"seed":7,"max_completion_tokens":50,"user":"u","logit_bias":{},"temperature":0.2}"#;
    let mut obj = RawObject::parse(body.as_bytes()).unwrap();
    let v = inspect_chat(&obj).unwrap();
    prepare_upstream_chat(&mut obj, &v, "mistral-large-latest", Dialect::Mistral);
    let out: serde_json::Value = serde_json::from_slice(&obj.to_vec()).unwrap();
    assert_eq!(
        out,
        serde_json::json!({"model":"mistral-large-latest","messages":[{"role":"assistant","content":"x","reasoning_content":"r"}],"stream":true,"random_seed":7,"max_tokens":50,"temperature":0.2})
    );
}

#[test]
fn deepseek_keeps_reasoning_content_both_ways() {
    let body =
        r#"{"model":"m","messages":[{"role":"assistant","content":"","reasoning_content":"because","tool_calls":[]}]}"#;
    let mut obj = RawObject::parse(body.as_bytes()).unwrap();
    let v = inspect_chat(&obj).unwrap();
    prepare_upstream_chat(&mut obj, &v, "deepseek-reasoner", Dialect::DeepSeek);
    let out: serde_json::Value = serde_json::from_slice(&obj.to_vec()).unwrap();
    assert_eq!(out["messages"][0]["reasoning_content"], "because");
    let chunk = br#"{"choices":[{"delta":{"reasoning_content":"thinking"}}]}"#;
    assert!(classify_chunk(chunk).delivers_tokens, "reasoning deltas count as delivered tokens");
}
