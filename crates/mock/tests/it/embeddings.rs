//! Embeddings: OpenAI `POST /v1/embeddings` (inputs of every shape, dimensions, base64)
//! and Gemini `:embedContent` / `:batchEmbedContents`, with knobs and faults.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokenrouter_mock::{MockConfig, MockServer};

use crate::client::{mock, post_to};
use crate::gemini::failure as gemini_failure;

const PATH: &str = "/v1/embeddings";

fn embed(input: Value) -> Value {
    json!({"model": "text-embedding-3-small", "input": input})
}

async fn embeddings(server: &MockServer, body: &Value) -> Value {
    let response = post_to(server, PATH, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

fn floats(embedding: &Value) -> Vec<f32> {
    embedding.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn norm(vector: &[f32]) -> f64 {
    vector.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt()
}

/// Standard base64 with padding, decoded.
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let mut out = Vec::new();
    for quad in text.as_bytes().chunks(4) {
        let digits: Vec<u8> = quad.iter().filter(|c| **c != b'=').map(|c| value(*c)).collect();
        let n = digits.iter().enumerate().fold(0u32, |n, (i, d)| n | u32::from(*d) << (18 - 6 * i));
        out.extend(n.to_be_bytes()[1..digits.len()].iter());
    }
    out
}

#[tokio::test]
async fn one_string_gives_one_unit_vector() {
    let server = mock(MockConfig::default()).await;
    let e = embeddings(&server, &embed(json!("The food was delicious"))).await;
    assert_eq!(e["object"], "list");
    assert_eq!(e["model"], "text-embedding-3-small");
    assert_eq!(e["usage"], json!({"prompt_tokens": 4, "total_tokens": 4}));
    let data = e["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["object"], "embedding");
    assert_eq!(data[0]["index"], 0);
    let vector = floats(&data[0]["embedding"]);
    assert_eq!(vector.len(), 1536);
    assert!((norm(&vector) - 1.0).abs() < 1e-4, "{}", norm(&vector));

    // Deterministic, and different for another text.
    let again = embeddings(&server, &embed(json!("The food was delicious"))).await;
    assert_eq!(again["data"][0]["embedding"], data[0]["embedding"]);
    let other = embeddings(&server, &embed(json!("The food was awful"))).await;
    assert_ne!(other["data"][0]["embedding"], data[0]["embedding"]);
    assert_eq!(server.stats().request_count(), 3);
    assert_eq!(server.stats().last_request().unwrap().path, PATH);
}

#[tokio::test]
async fn arrays_token_arrays_dimensions_and_large_models() {
    let server = mock(MockConfig::default()).await;
    let e = embeddings(&server, &embed(json!(["first text", "second"]))).await;
    let indexes: Vec<u64> = e["data"].as_array().unwrap().iter().map(|d| d["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, [0, 1]);
    assert_eq!(e["usage"]["prompt_tokens"], 3);
    let single = embeddings(&server, &embed(json!("second"))).await;
    assert_eq!(single["data"][0]["embedding"], e["data"][1]["embedding"]);

    let e = embeddings(&server, &embed(json!([1, 2, 3]))).await;
    assert_eq!((e["data"].as_array().unwrap().len(), e["usage"]["prompt_tokens"].as_u64()), (1, Some(3)));
    let e = embeddings(&server, &embed(json!([[1, 2], [3, 4, 5], [6]]))).await;
    assert_eq!((e["data"].as_array().unwrap().len(), e["usage"]["total_tokens"].as_u64()), (3, Some(6)));

    let e = embeddings(&server, &json!({"model": "text-embedding-3-large", "input": "x"})).await;
    assert_eq!(e["data"][0]["embedding"].as_array().unwrap().len(), 3072);
    let e = embeddings(&server, &json!({"model": "text-embedding-3-large", "input": "x", "dimensions": 256})).await;
    let short = floats(&e["data"][0]["embedding"]);
    assert_eq!(short.len(), 256);
    assert!((norm(&short) - 1.0).abs() < 1e-4);
}

#[tokio::test]
async fn base64_decodes_back_to_the_float_vector() {
    let server = mock(MockConfig::default()).await;
    let body = json!({"model": "text-embedding-3-small", "input": ["a b", "c"], "dimensions": 64});
    let as_floats = embeddings(&server, &body).await;
    let as_base64 = embeddings(&server, &crate::client::with(body, json!({"encoding_format": "base64"}))).await;
    for i in 0..2 {
        let bytes = decode_base64(as_base64["data"][i]["embedding"].as_str().unwrap());
        assert_eq!(bytes.len(), 64 * 4);
        let decoded: Vec<f32> = bytes.chunks(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        assert_eq!(decoded, floats(&as_floats["data"][i]["embedding"]));
    }
    assert_eq!(as_base64["usage"], as_floats["usage"]);
}

#[tokio::test]
async fn bad_inputs_get_a_400() {
    let server = mock(MockConfig::default()).await;
    let bad = [
        json!({"model": "m"}),
        embed(json!("")),
        embed(json!([])),
        embed(json!(["ok", ""])),
        embed(json!([[]])),
        embed(json!({"text": "x"})),
        json!({"model": "m", "input": "x", "dimensions": 0}),
        json!({"model": "m", "input": "x", "encoding_format": "int8"}),
    ];
    for body in bad {
        let response = post_to(&server, PATH, &body).await;
        assert_eq!(response.status(), 400, "{body}");
        let e: Value = response.json().await.unwrap();
        assert_eq!(e["error"]["type"], "invalid_request_error", "{body}");
        assert!(e["error"]["message"].is_string());
    }
}

#[tokio::test]
async fn knobs_and_faults_apply_to_embeddings() {
    let server = mock(MockConfig::default()).await;
    let response = post_to(&server, PATH, &json!({"model": "emb@fault=429,retry_after_secs=4", "input": "x"})).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "4");

    let started = Instant::now();
    let e = embeddings(&server, &json!({"model": "emb@latency_ms=60", "input": "x"})).await;
    assert!(started.elapsed() >= Duration::from_millis(55));
    assert_eq!(e["model"], "emb");

    let response = post_to(&server, PATH, &json!({"model": "m", "input": "x", "mock": {"fault": "overloaded"}})).await;
    assert_eq!(response.status(), 503);
    let response = post_to(&server, PATH, &json!({"model": "m", "input": "x", "mock": {"reply_tokenz": 1}})).await;
    assert_eq!(response.status(), 400);
    assert_eq!(server.stats().request_count(), 4);
    assert_eq!(server.stats().tokens_generated(), 0);
}

#[tokio::test]
async fn gemini_embed_content_and_batches() {
    let server = mock(MockConfig::default()).await;
    let path = "/v1beta/models/gemini-embedding-001:embedContent";
    let body = json!({"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "Hello world"}]}});
    let response = post_to(&server, path, &body).await;
    assert_eq!(response.status(), 200);
    let r: Value = response.json().await.unwrap();
    let values = floats(&r["embedding"]["values"]);
    assert_eq!(values.len(), 3072);
    assert!((norm(&values) - 1.0).abs() < 1e-4);
    assert_eq!(r.as_object().unwrap().len(), 1, "{r:.80}");

    let short = json!({"content": {"parts": [{"text": "Hello world"}]}, "outputDimensionality": 8});
    let r: Value = post_to(&server, path, &short).await.json().await.unwrap();
    assert_eq!(r["embedding"]["values"].as_array().unwrap().len(), 8);
    let config = json!({"content": {"parts": [{"text": "Hello"}]}, "embedContentConfig": {"outputDimensionality": 4}});
    let r: Value = post_to(&server, path, &config).await.json().await.unwrap();
    assert_eq!(r["embedding"]["values"].as_array().unwrap().len(), 4);

    // The same text gives the same vector in both formats.
    let openai = embeddings(&server, &json!({"model": "m", "input": "Hello world", "dimensions": 8})).await;
    let gemini: Value = post_to(&server, path, &short).await.json().await.unwrap();
    assert_eq!(floats(&openai["data"][0]["embedding"]), floats(&gemini["embedding"]["values"]));

    let batch = json!({"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "Hello world"}]}, "outputDimensionality": 8},
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "other"}]}},
    ]});
    let response = post_to(&server, "/v1beta/models/gemini-embedding-001:batchEmbedContents", &batch).await;
    assert_eq!(response.status(), 200);
    let r: Value = response.json().await.unwrap();
    let embeddings = r["embeddings"].as_array().unwrap();
    assert_eq!(embeddings.len(), 2);
    assert_eq!(embeddings[0]["values"], gemini["embedding"]["values"]);
    assert_eq!(embeddings[1]["values"].as_array().unwrap().len(), 3072);
}

#[tokio::test]
async fn gemini_embeddings_have_gemini_errors_and_faults() {
    let server = mock(MockConfig::default()).await;
    let path = "/v1beta/models/gemini-embedding-001:embedContent";
    for body in [
        json!({}),
        json!({"content": {"parts": [{"text": " "}]}}),
        json!({"content": {"parts": [{"text": "x"}]}, "outputDimensionality": 0}),
    ] {
        let response = post_to(&server, path, &body).await;
        assert_eq!(gemini_failure(response).await, (400, "INVALID_ARGUMENT".into()), "{body}");
    }
    let batch = "/v1beta/models/gemini-embedding-001:batchEmbedContents";
    for body in [json!({"requests": []}), json!({"requests": [{"content": {"parts": [{"text": "x"}]}}, {}]})] {
        let response = post_to(&server, batch, &body).await;
        assert_eq!(gemini_failure(response).await, (400, "INVALID_ARGUMENT".into()), "{body}");
    }
    let faulty = "/v1beta/models/gemini-embedding-001@fault=500:embedContent";
    let response = post_to(&server, faulty, &json!({"content": {"parts": [{"text": "x"}]}})).await;
    assert_eq!(gemini_failure(response).await, (500, "INTERNAL".into()));
    assert_eq!(server.stats().request_count(), 6);
}
