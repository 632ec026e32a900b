//! The OpenAI embeddings API (`POST /v1/embeddings`): the request as the gateway reads and
//! checks it, the usage of an OpenAI answer, and OpenAI's answer built from plain vectors
//! for providers that answer in their own shape.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokenrouter_core::Usage;

use crate::adapter::Unsupported;
use crate::openai::estimate_text_tokens;
use crate::passthrough::{JsonKind, RawObject, kind_of};

/// The most inputs OpenAI takes in one request.
pub const MAX_INPUTS: usize = 2048;

/// Fields read into [`EmbeddingsRequest`]'s typed members; all others go to `extra`.
const TYPED: [&str; 5] = ["model", "input", "encoding_format", "dimensions", "user"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsRequest {
    pub model: String,
    pub input: EmbeddingInput,
    /// `float` | `base64` (the OpenAI SDKs ask for `base64` unless told otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Every other field, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What to embed: one text, several, or token ids (one list, or one list per input).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

impl EmbeddingInput {
    /// The texts to embed, in order; `None` for token inputs.
    pub fn texts(&self) -> Option<Vec<&str>> {
        match self {
            EmbeddingInput::Text(text) => Some(vec![text.as_str()]),
            EmbeddingInput::Texts(texts) => Some(texts.iter().map(String::as_str).collect()),
            EmbeddingInput::Tokens(_) | EmbeddingInput::TokenLists(_) => None,
        }
    }

    /// Token ids count exactly, text about four characters a token.
    pub fn estimate_tokens(&self) -> u64 {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        match self {
            EmbeddingInput::Text(text) => estimate_text_tokens(text),
            EmbeddingInput::Texts(texts) => texts.iter().map(|t| estimate_text_tokens(t)).sum(),
            EmbeddingInput::Tokens(tokens) => count(tokens.len()),
            EmbeddingInput::TokenLists(lists) => lists.iter().map(|l| count(l.len())).sum(),
        }
    }
}

/// How the answer states each vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncodingFormat {
    /// A JSON array of numbers.
    #[default]
    Float,
    /// The little-endian `f32` bytes of the vector, base64-encoded.
    Base64,
}

impl EmbeddingsRequest {
    pub fn encoding(&self) -> EncodingFormat {
        match self.encoding_format.as_deref() {
            Some("base64") => EncodingFormat::Base64,
            _ => EncodingFormat::Float,
        }
    }

    /// How many vectors the answer holds: one per input.
    pub fn input_count(&self) -> usize {
        match &self.input {
            EmbeddingInput::Text(_) | EmbeddingInput::Tokens(_) => 1,
            EmbeddingInput::Texts(texts) => texts.len(),
            EmbeddingInput::TokenLists(lists) => lists.len(),
        }
    }
}

/// Reads and checks an embeddings request as OpenAI does: `model` and a non-empty `input`
/// are required, `encoding_format` is `float` or `base64`, `dimensions` at least 1. The
/// error names the parameter. (A body that is not a JSON object is refused with an empty
/// `param`; the server reports bad JSON itself before calling this.)
pub fn parse(body: &[u8]) -> Result<EmbeddingsRequest, Unsupported> {
    let obj = RawObject::parse(body)
        .map_err(|e| Unsupported::new("", format!("The request body is not a JSON object: {e}")))?;
    let present = |key: &str| obj.get(key).filter(|v| kind_of(v) != JsonKind::Null);
    let model = match present("model") {
        None => return Err(Unsupported::new("model", "Missing required parameter: 'model'.")),
        Some(raw) => typed::<String>(raw, "model", "a string")?,
    };
    let input = match present("input") {
        None => return Err(Unsupported::new("input", "Missing required parameter: 'input'.")),
        Some(raw) => input(raw)?,
    };
    let encoding_format = present("encoding_format").map(|raw| typed::<String>(raw, "encoding_format", "a string"));
    let encoding_format = encoding_format.transpose()?;
    if let Some(format) = encoding_format.as_deref()
        && !matches!(format, "float" | "base64")
    {
        return Err(Unsupported::new(
            "encoding_format",
            format!("Invalid value for 'encoding_format': '{format}'. Expected 'float' or 'base64'."),
        ));
    }
    let dimensions = present("dimensions").map(|raw| typed::<u32>(raw, "dimensions", "a positive integer"));
    let dimensions = dimensions.transpose()?;
    if dimensions == Some(0) {
        return Err(Unsupported::new("dimensions", "Invalid value for 'dimensions': expected at least 1."));
    }
    let user = present("user").map(|raw| typed::<String>(raw, "user", "a string")).transpose()?;
    let mut extra = Map::new();
    for key in obj.keys().filter(|k| !TYPED.contains(k)) {
        if let Some(raw) = obj.get(key) {
            extra.insert(key.to_owned(), typed::<Value>(raw, key, "JSON")?);
        }
    }
    Ok(EmbeddingsRequest { model, input, encoding_format, dimensions, user, extra })
}

/// `input`: a string, or an array of strings, of token ids, or of token-id arrays.
fn input(raw: &RawValue) -> Result<EmbeddingInput, Unsupported> {
    const EXPECTED: &str = "a string, an array of strings, an array of tokens or an array of token arrays";
    let input = match kind_of(raw) {
        JsonKind::String => EmbeddingInput::Text(typed(raw, "input", "a string")?),
        JsonKind::Array => {
            let items: Vec<&RawValue> = typed(raw, "input", EXPECTED)?;
            match items.first().map(|first| kind_of(first)) {
                None => {
                    return Err(Unsupported::new(
                        "input",
                        "Invalid 'input': empty array. Expected at least one input.",
                    ));
                }
                Some(JsonKind::String) => EmbeddingInput::Texts(typed(raw, "input", "a string")?),
                Some(JsonKind::Number) => EmbeddingInput::Tokens(typed(raw, "input", "a token id")?),
                Some(JsonKind::Array) => EmbeddingInput::TokenLists(typed(raw, "input", "a token id")?),
                Some(_) => return Err(type_error("input", "[0]", "a string, a token id or an array of token ids")),
            }
        }
        _ => return Err(Unsupported::new("input", format!("Invalid type for 'input': expected {EXPECTED}."))),
    };
    let empty = "must not be empty";
    match &input {
        EmbeddingInput::Text(text) if text.is_empty() => {
            return Err(Unsupported::new("input", format!("Invalid 'input': the text {empty}.")));
        }
        EmbeddingInput::Texts(texts) => {
            if let Some(i) = texts.iter().position(String::is_empty) {
                return Err(Unsupported::new(
                    format!("input[{i}]"),
                    format!("Invalid 'input[{i}]': the text {empty}."),
                ));
            }
        }
        EmbeddingInput::TokenLists(lists) => {
            if let Some(i) = lists.iter().position(Vec::is_empty) {
                return Err(Unsupported::new(
                    format!("input[{i}]"),
                    format!("Invalid 'input[{i}]': the tokens {empty}."),
                ));
            }
        }
        _ => {}
    }
    let count = match &input {
        EmbeddingInput::Texts(texts) => texts.len(),
        EmbeddingInput::TokenLists(lists) => lists.len(),
        _ => 1,
    };
    if count > MAX_INPUTS {
        return Err(Unsupported::new(
            "input",
            format!("Invalid 'input': {count} inputs. Expected at most {MAX_INPUTS} in one request."),
        ));
    }
    Ok(input)
}

/// A raw value as `T`; the error names the innermost place (`input[3]`) that is not `what`.
fn typed<'a, T: Deserialize<'a>>(raw: &'a RawValue, param: &str, what: &str) -> Result<T, Unsupported> {
    let mut deserializer = serde_json::Deserializer::from_str(raw.get());
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| type_error(param, &e.path().to_string(), what))
}

fn type_error(param: &str, path: &str, what: &str) -> Unsupported {
    let param = if path == "." { param.to_owned() } else { format!("{param}{path}") };
    let message = format!("Invalid type for '{param}': expected {what}.");
    Unsupported::new(param, message)
}

/// An estimate of the input tokens, for an upstream that does not report them: token
/// inputs count exactly, text about four characters a token.
pub fn estimate_input_tokens(request: &EmbeddingsRequest) -> u64 {
    request.input.estimate_tokens()
}

#[derive(Deserialize)]
struct WithUsage {
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    total_tokens: Option<u64>,
}

/// The usage of an OpenAI embeddings answer: its `prompt_tokens` (else `total_tokens`,
/// which is the same for embeddings). `None` when the upstream did not report it.
pub fn response_usage(body: &[u8]) -> Option<Usage> {
    let usage = serde_json::from_slice::<WithUsage>(body).ok()?.usage?;
    let prompt_tokens = usage.prompt_tokens.or(usage.total_tokens)?;
    Some(Usage { prompt_tokens, ..Usage::default() })
}

#[derive(Serialize)]
struct Answer<'a> {
    object: &'static str,
    data: Vec<Item<'a>>,
    model: &'a str,
    usage: AnswerUsage,
}

#[derive(Serialize)]
struct Item<'a> {
    object: &'static str,
    index: usize,
    embedding: Vector<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector<'a> {
    Floats(&'a [f32]),
    Base64(String),
}

#[derive(Serialize)]
struct AnswerUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// Builds OpenAI's answer from vectors: `{"object":"list","data":[{"object":"embedding",
/// "index":i,"embedding":[floats] or "base64 of little-endian f32"}],"model","usage":
/// {"prompt_tokens","total_tokens"}}`.
pub fn openai_answer(vectors: &[Vec<f32>], model: &str, encoding: EncodingFormat, prompt_tokens: u64) -> Vec<u8> {
    let data = vectors
        .iter()
        .enumerate()
        .map(|(index, vector)| Item {
            object: "embedding",
            index,
            embedding: match encoding {
                EncodingFormat::Float => Vector::Floats(vector),
                EncodingFormat::Base64 => Vector::Base64(base64_f32(vector)),
            },
        })
        .collect();
    let answer =
        Answer { object: "list", data, model, usage: AnswerUsage { prompt_tokens, total_tokens: prompt_tokens } };
    serde_json::to_vec(&answer).unwrap_or_default()
}

/// The vector's little-endian `f32` bytes in standard base64 (with padding), as OpenAI
/// sends `encoding_format: "base64"` (the SDKs decode it with `numpy.frombuffer(…, float32)`).
pub fn base64_f32(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
    base64(&bytes)
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let byte = |i: usize| u32::from(group.get(i).copied().unwrap_or(0));
        let bits = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for k in 0..4 {
            if k <= group.len() {
                out.push(char::from(ALPHABET[((bits >> (18 - 6 * k)) & 0x3f) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
