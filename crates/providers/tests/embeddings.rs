//! Embeddings: reading and checking OpenAI requests (as the SDKs send them), OpenAI's
//! answer built from vectors (float and base64), Gemini's `embedContent` and
//! `batchEmbedContents` in both directions, and the providers without an embeddings API.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use tokenrouter_core::Usage;
use tokenrouter_providers::adapter::{Adapter, Auth, Target};
use tokenrouter_providers::anthropic::ANTHROPIC;
use tokenrouter_providers::embeddings::{
    self, EmbeddingInput, EmbeddingsRequest, EncodingFormat, base64_f32, estimate_input_tokens, openai_answer,
};
use tokenrouter_providers::gemini::GEMINI;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/gemini/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json_fixture(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

fn parse(body: Value) -> EmbeddingsRequest {
    embeddings::parse(&serde_json::to_vec(&body).unwrap()).unwrap()
}

/// The parameter named by the refusal, and its message.
fn refused(body: &str) -> (String, String) {
    let error = embeddings::parse(body.as_bytes()).unwrap_err();
    (error.param, error.message)
}

fn target(model: &str) -> Target<'_> {
    Target { upstream_model: model, max_output_tokens: 8192 }
}

#[test]
fn reads_the_bodies_the_openai_sdk_sends() {
    // /work/shared/reference/client-requests/embeddings.OpenAI__sdk_{0006,0007,0017}.json
    let batch = parse(json!({"model": "text-embedding-3-small", "input": ["a", "b"], "encoding_format": "base64"}));
    assert_eq!(batch.input, EmbeddingInput::Texts(vec!["a".to_owned(), "b".to_owned()]));
    assert_eq!(batch.encoding(), EncodingFormat::Base64);
    assert_eq!(batch.input_count(), 2);
    let single = parse(json!({"model": "text-embedding-3-small", "input": "a", "encoding_format": "float"}));
    assert_eq!(single.input, EmbeddingInput::Text("a".to_owned()));
    assert_eq!(single.encoding(), EncodingFormat::Float);
    assert_eq!(single.input_count(), 1);
    let default = parse(json!({"model": "m", "input": "a"}));
    assert_eq!(default.encoding(), EncodingFormat::Float, "OpenAI's default when the field is absent");
}

#[test]
fn reads_token_inputs_options_and_keeps_other_fields() {
    let tokens = parse(json!({"model": "m", "input": [1, 2, 3], "dimensions": 256, "user": "u-1"}));
    assert_eq!(tokens.input, EmbeddingInput::Tokens(vec![1, 2, 3]));
    assert_eq!((tokens.dimensions, tokens.user.as_deref()), (Some(256), Some("u-1")));
    assert_eq!(tokens.input_count(), 1);
    assert_eq!(estimate_input_tokens(&tokens), 3);
    let lists = parse(json!({"model": "m", "input": [[1, 2], [3]], "encoding_format": null, "task": {"x": 1}}));
    assert_eq!(lists.input, EmbeddingInput::TokenLists(vec![vec![1, 2], vec![3]]));
    assert_eq!(lists.input_count(), 2);
    assert_eq!(estimate_input_tokens(&lists), 3);
    assert_eq!(lists.encoding_format, None);
    assert_eq!(Value::Object(lists.extra.clone()), json!({"task": {"x": 1}}));
    // The typed request serializes back to the same body (what a pass-through would send).
    let again: Value = serde_json::to_value(&lists).unwrap();
    assert_eq!(again, json!({"model": "m", "input": [[1, 2], [3]], "task": {"x": 1}}));
    let text = parse(json!({"model": "m", "input": ["abcdefgh", "abc"]}));
    assert_eq!(estimate_input_tokens(&text), 3, "about four characters a token, per input");
}

#[test]
fn refusals_name_the_parameter() {
    let cases = [
        (r#"{"input": "a"}"#, "model"),
        (r#"{"model": 5, "input": "a"}"#, "model"),
        (r#"{"model": "m"}"#, "input"),
        (r#"{"model": "m", "input": null}"#, "input"),
        (r#"{"model": "m", "input": ""}"#, "input"),
        (r#"{"model": "m", "input": []}"#, "input"),
        (r#"{"model": "m", "input": 5}"#, "input"),
        (r#"{"model": "m", "input": {"text": "a"}}"#, "input"),
        (r#"{"model": "m", "input": [{"text": "a"}]}"#, "input[0]"),
        (r#"{"model": "m", "input": ["a", ""]}"#, "input[1]"),
        (r#"{"model": "m", "input": ["a", "b", 3]}"#, "input[2]"),
        (r#"{"model": "m", "input": [1, -2]}"#, "input[1]"),
        (r#"{"model": "m", "input": [[1], []]}"#, "input[1]"),
        (r#"{"model": "m", "input": [[1], [2, "x"]]}"#, "input[1][1]"),
        (r#"{"model": "m", "input": "a", "encoding_format": "int8"}"#, "encoding_format"),
        (r#"{"model": "m", "input": "a", "encoding_format": 1}"#, "encoding_format"),
        (r#"{"model": "m", "input": "a", "dimensions": 0}"#, "dimensions"),
        (r#"{"model": "m", "input": "a", "dimensions": -3}"#, "dimensions"),
        (r#"{"model": "m", "input": "a", "dimensions": 1.5}"#, "dimensions"),
        (r#"{"model": "m", "input": "a", "user": 7}"#, "user"),
        (r#"[1, 2]"#, ""),
        (r#"{"model": "m", "#, ""),
    ];
    for (body, param) in cases {
        let (got, message) = refused(body);
        assert_eq!(got, param, "{body}: {message}");
        if !param.is_empty() {
            assert!(message.contains(&format!("'{param}'")), "{body}: {message}");
        }
    }
    let many = serde_json::to_vec(&json!({"model": "m", "input": vec!["a"; 2049]})).unwrap();
    assert_eq!(embeddings::parse(&many).unwrap_err().param, "input");
    let most = serde_json::to_vec(&json!({"model": "m", "input": vec!["a"; 2048]})).unwrap();
    assert_eq!(embeddings::parse(&most).unwrap().input_count(), 2048);
}

#[test]
fn base64_is_the_little_endian_f32_bytes() {
    // 1.0 = 0x3F800000 and -2.5 = 0xC0200000, little-endian: 00 00 80 3F 00 00 20 C0.
    assert_eq!(base64_f32(&[1.0, -2.5]), "AACAPwAAIMA=");
    assert_eq!(base64_f32(&[0.1]), "zczMPQ==");
    assert_eq!(base64_f32(&[0.5, -0.25, 0.125]), "AAAAPwAAgL4AAAA+");
    assert_eq!(base64_f32(&[]), "");
}

#[test]
fn builds_openai_answers_in_both_encodings() {
    let vectors = vec![vec![1.0, -2.5], vec![0.1]];
    let floats: Value =
        serde_json::from_slice(&openai_answer(&vectors, "text-embedding-3-small", EncodingFormat::Float, 5)).unwrap();
    assert_eq!(
        floats,
        json!({
            "object": "list",
            "data": [
                {"object": "embedding", "index": 0, "embedding": [1.0, -2.5]},
                {"object": "embedding", "index": 1, "embedding": [0.1]},
            ],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 5, "total_tokens": 5},
        })
    );
    let text = String::from_utf8(openai_answer(&vectors, "m", EncodingFormat::Float, 5)).unwrap();
    assert!(text.contains("[0.1]"), "f32 printed at its own shortest precision: {text}");
    let base64: Value = serde_json::from_slice(&openai_answer(&vectors, "m", EncodingFormat::Base64, 5)).unwrap();
    assert_eq!(base64["data"][0]["embedding"], "AACAPwAAIMA=");
    assert_eq!(base64["data"][1]["embedding"], "zczMPQ==");
}

#[test]
fn reads_usage_of_an_openai_answer() {
    let answer = br#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1]}],
        "model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}"#;
    assert_eq!(embeddings::response_usage(answer), Some(Usage { prompt_tokens: 8, ..Usage::default() }));
    let total_only = br#"{"data":[],"usage":{"total_tokens":4}}"#;
    assert_eq!(embeddings::response_usage(total_only).map(|u| u.prompt_tokens), Some(4));
    assert_eq!(embeddings::response_usage(br#"{"data":[]}"#), None);
    assert_eq!(embeddings::response_usage(br#"{"data":[],"usage":null}"#), None);
    assert_eq!(embeddings::response_usage(b"not json"), None);
}

#[test]
fn gemini_golden_requests_single_and_batch() {
    assert_eq!(GEMINI.auth(), Auth::Header("x-goog-api-key"));
    for (scenario, method) in [("embed_single", "embedContent"), ("embed_batch", "batchEmbedContents")] {
        let request = embeddings::parse(&fixture(&format!("{scenario}.request.json"))).unwrap();
        let encoded = GEMINI.encode_embeddings(&request, &target("gemini-embedding-001")).unwrap();
        assert_eq!(encoded.path, format!("/models/gemini-embedding-001:{method}"), "{scenario}");
        assert!(encoded.headers.is_empty());
        let body: Value = serde_json::from_slice(&encoded.body).unwrap();
        assert_eq!(body, json_fixture(&format!("{scenario}.gemini.json")), "{scenario}");
    }
}

#[test]
fn gemini_requests_options_and_refusals() {
    let one_of_list = parse(json!({"model": "e", "input": ["only"], "dimensions": 768}));
    let encoded = GEMINI.encode_embeddings(&one_of_list, &target("models/gemini-embedding-001")).unwrap();
    assert_eq!(encoded.path, "/models/gemini-embedding-001:embedContent", "a one-text list is one request");
    let body: Value = serde_json::from_slice(&encoded.body).unwrap();
    assert_eq!(body, json!({"content": {"parts": [{"text": "only"}]}, "outputDimensionality": 768}));

    let two = parse(json!({"model": "e", "input": ["a", "b"]}));
    let encoded = GEMINI.encode_embeddings(&two, &target("models/text-embedding-004")).unwrap();
    assert_eq!(encoded.path, "/models/text-embedding-004:batchEmbedContents");
    let body: Value = serde_json::from_slice(&encoded.body).unwrap();
    let entry = |text| json!({"model": "models/text-embedding-004", "content": {"parts": [{"text": text}]}});
    assert_eq!(body, json!({"requests": [entry("a"), entry("b")]}));

    for input in [json!([1, 2, 3]), json!([[1], [2]])] {
        let error = GEMINI.encode_embeddings(&parse(json!({"model": "e", "input": input})), &target("e")).unwrap_err();
        assert_eq!(error.param, "input");
        assert!(error.message.contains("text only"), "{}", error.message);
    }
}

#[test]
fn gemini_golden_answers_in_float_and_base64() {
    for scenario in ["embed_single", "embed_batch"] {
        let request = embeddings::parse(&fixture(&format!("{scenario}.request.json"))).unwrap();
        let decoded = GEMINI
            .decode_embeddings(&fixture(&format!("{scenario}.response.json")), &request, "gemini-embedding-001")
            .unwrap();
        let body: Value = serde_json::from_slice(&decoded.body).unwrap();
        let expected = json_fixture(&format!("{scenario}.openai.json"));
        assert_eq!(body, expected, "{scenario}");
        let prompt_tokens = expected["usage"]["prompt_tokens"].as_u64().unwrap();
        assert_eq!(decoded.usage, Some(Usage { prompt_tokens, ..Usage::default() }), "{scenario}");
    }
}

#[test]
fn gemini_answers_keep_the_client_model_and_format() {
    let request = parse(json!({"model": "my-alias", "input": "What is the meaning of life?"}));
    let decoded = GEMINI.decode_embeddings(&fixture("embed_single.response.json"), &request, "my-alias").unwrap();
    let body: Value = serde_json::from_slice(&decoded.body).unwrap();
    assert_eq!(body["model"], "my-alias");
    assert!(body["data"][0]["embedding"].is_array());
    // Usage reported by Gemini wins over the estimate.
    let answer = br#"{"embedding":{"values":[0.5]},"usageMetadata":{"promptTokenCount":9}}"#;
    assert_eq!(GEMINI.decode_embeddings(answer, &request, "m").unwrap().usage.unwrap().prompt_tokens, 9);
    let base64 = parse(json!({"model": "m", "input": "x", "encoding_format": "base64"}));
    let answer = br#"{"embedding":{"values":[1.0,-2.5]}}"#;
    let body: Value = serde_json::from_slice(&GEMINI.decode_embeddings(answer, &base64, "m").unwrap().body).unwrap();
    assert_eq!(body["data"][0]["embedding"], "AACAPwAAIMA=");
}

#[test]
fn gemini_failures() {
    let request = parse(json!({"model": "m", "input": ["a", "b"]}));
    let short = GEMINI.decode_embeddings(br#"{"embeddings":[{"values":[0.5]}]}"#, &request, "m").unwrap_err();
    assert!(short.message.contains("1 embeddings for 2 inputs"), "{}", short.message);
    let unreadable = GEMINI.decode_embeddings(b"<html>", &request, "m").unwrap_err();
    assert_eq!((unreadable.status, unreadable.retryable), (0, false));
    let in_body = br#"{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}"#;
    let error = GEMINI.decode_embeddings(in_body, &request, "m").unwrap_err();
    assert_eq!((error.status, error.retryable), (429, true));
    // Non-2xx answers go through the adapter's usual error decoding.
    let error = GEMINI.decode_error(400, &fixture("error_400.json"));
    assert!(error.client_error && !error.retryable);
}

#[test]
fn providers_without_embeddings_refuse() {
    let request = parse(json!({"model": "claude", "input": "a"}));
    let error = ANTHROPIC.encode_embeddings(&request, &target("claude-sonnet-4-5")).unwrap_err();
    assert_eq!(error.param, "model");
    assert!(error.message.contains("no embeddings API"), "{}", error.message);
    let failure = ANTHROPIC.decode_embeddings(b"{}", &request, "claude").unwrap_err();
    assert!(failure.message.contains("no embeddings API"), "{}", failure.message);
    assert!(!failure.retryable);
}
