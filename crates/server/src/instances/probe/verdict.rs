//! The prober's judgements, pure: what each answer of an instance means (online, offline,
//! mismatch) and the readable `status_detail` that says why. No network here; the unit
//! tests drive every case.

use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;
use tokenrouter_store::ProbeStatus;

/// The most model ids a mismatch detail lists.
const LISTED_IN_DETAIL: usize = 8;
/// The most characters of a server's own error message quoted in a detail.
const QUOTED_CHARS: usize = 160;

/// A step's failure: the instance's status and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub status: ProbeStatus,
    pub detail: String,
}

impl Failed {
    pub fn offline(detail: impl Into<String>) -> Failed {
        Failed { status: ProbeStatus::Offline, detail: detail.into() }
    }

    pub fn mismatch(detail: impl Into<String>) -> Failed {
        Failed { status: ProbeStatus::Mismatch, detail: detail.into() }
    }
}

/// An instance's whole answer to one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub location: Option<String>,
    pub body: Bytes,
}

impl Reply {
    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    fn looks_like_html(&self) -> bool {
        self.content_type.as_deref().is_some_and(|t| t.to_ascii_lowercase().contains("html"))
            || self.body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<')
    }
}

/// A failure any request can end in, whatever it asked: a server error or rate limit
/// (offline), a redirect (never followed), a success that is not JSON (HTML: offline).
fn unusable(what: &str, reply: &Reply) -> Option<Failed> {
    let status = reply.status;
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        return Some(Failed::offline(format!("{what} answered {status}{}", quoted_error(reply))));
    }
    if status.is_redirection() {
        let to = reply.location.as_deref().map(|l| format!(" to {}", clip(l))).unwrap_or_default();
        return Some(Failed::mismatch(format!(
            "{what} answered a redirect ({status}){to}; redirects are not followed: set base_url to the API itself"
        )));
    }
    if status.is_success() && reply.json().is_none() {
        return Some(Failed::offline(if reply.looks_like_html() {
            format!(
                "{what} answered an HTML page instead of JSON: is base_url the OpenAI-compatible API root (e.g. http://host:8000/v1)?"
            )
        } else {
            format!("{what} answered something that is not JSON")
        }));
    }
    None
}

/// Step 1, ownership: a request with a wrong key must be refused (401/403).
pub fn wrong_key(reply: &Reply) -> Result<(), Failed> {
    const WHAT: &str = "GET /models with a wrong key";
    if matches!(reply.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        return Ok(());
    }
    if let Some(failed) = unusable(WHAT, reply) {
        return Err(failed);
    }
    if reply.status.is_success() {
        return Err(Failed::mismatch(format!(
            "the server does not check the instance key ({WHAT} answered {}), so ownership cannot be proven: \
             start it with the instance key (e.g. vllm serve … --api-key <instance key>)",
            reply.status
        )));
    }
    Err(Failed::mismatch(format!(
        "{WHAT} answered {} instead of 401 or 403{}{}",
        reply.status,
        not_found_hint(reply.status),
        quoted_error(reply)
    )))
}

/// Step 2: with the instance key, `/models` must list every declared upstream model.
pub fn listing(reply: &Reply, upstream_models: &[&str]) -> Result<(), Failed> {
    const WHAT: &str = "GET /models with the instance key";
    if let Some(failed) = unusable(WHAT, reply) {
        return Err(failed);
    }
    if !reply.status.is_success() {
        return Err(refused_or_other(WHAT, reply));
    }
    let listed = listed_models(&reply.body).map_err(|why| Failed::mismatch(format!("{WHAT}: {why}")))?;
    match missing_model(&listed, upstream_models) {
        None => Ok(()),
        Some(missing) => {
            let shown: Vec<&str> = listed.iter().take(LISTED_IN_DETAIL).map(String::as_str).collect();
            let more = if listed.len() > LISTED_IN_DETAIL { ", …" } else { "" };
            let lists =
                if listed.is_empty() { "no model".to_owned() } else { format!("{}{more}", clip(&shown.join(", "))) };
            Err(Failed::mismatch(format!(
                "the server does not list model {missing:?} in GET /models (it lists {lists})"
            )))
        }
    }
}

/// The ids of an OpenAI model list (`{"data": [{"id": …}, …]}`).
pub fn listed_models(body: &[u8]) -> Result<Vec<String>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|_| "the answer is not JSON".to_owned())?;
    let data = value.get("data").and_then(Value::as_array).ok_or("the answer has no `data` list of models")?;
    Ok(data.iter().filter_map(|m| m.get("id").and_then(Value::as_str)).map(str::to_owned).collect())
}

/// The first of `declared` that `listed` lacks.
pub fn missing_model<'a>(listed: &[String], declared: &[&'a str]) -> Option<&'a str> {
    declared.iter().copied().find(|model| !listed.iter().any(|l| l == model))
}

/// Step 3: the canary completion of `upstream` must answer a chat completion, reporting
/// exactly `expected_prompt_tokens` when the catalog model sets it.
pub fn canary(reply: &Reply, upstream: &str, expected_prompt_tokens: Option<u64>) -> Result<(), Failed> {
    let what = format!("the canary completion of {upstream:?}");
    if let Some(failed) = unusable(&what, reply) {
        return Err(failed);
    }
    if !reply.status.is_success() {
        return Err(refused_or_other(&what, reply));
    }
    let body = reply.json().unwrap_or(Value::Null);
    let object = body.get("object").and_then(Value::as_str);
    let has_choices = body.get("choices").and_then(Value::as_array).is_some_and(|c| !c.is_empty());
    if !has_choices || object.is_some_and(|o| o != "chat.completion") {
        return Err(Failed::mismatch(format!("{what} did not answer a chat completion")));
    }
    let Some(expected) = expected_prompt_tokens else {
        return Ok(());
    };
    match body.pointer("/usage/prompt_tokens").and_then(Value::as_u64) {
        Some(reported) if reported == expected => Ok(()),
        Some(reported) => Err(Failed::mismatch(format!(
            "{what} reported usage.prompt_tokens = {reported}, but the model's tokenizer gives {expected} \
             for the canary prompt: the server runs another model or tokenizer"
        ))),
        None => Err(Failed::mismatch(format!(
            "{what} reported no usage.prompt_tokens (expected {expected} for the canary prompt)"
        ))),
    }
}

/// A non-success answer to a request made with the instance key.
fn refused_or_other(what: &str, reply: &Reply) -> Failed {
    if matches!(reply.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        return Failed::mismatch(format!(
            "the server refused the instance key ({what} answered {}): start it with the instance key \
             (e.g. --api-key <instance key>), or rotate the key and restart it",
            reply.status
        ));
    }
    Failed::mismatch(format!("{what} answered {}{}{}", reply.status, not_found_hint(reply.status), quoted_error(reply)))
}

fn not_found_hint(status: StatusCode) -> &'static str {
    if status == StatusCode::NOT_FOUND {
        " (is base_url the OpenAI-compatible API root, e.g. http://host:8000/v1?)"
    } else {
        ""
    }
}

/// `: "<the server's error message>"` when the answer carries an OpenAI-style one.
fn quoted_error(reply: &Reply) -> String {
    let json = reply.json();
    let message = json.as_ref().and_then(|v| {
        v.pointer("/error/message").or_else(|| v.get("error")).or_else(|| v.get("message")).and_then(Value::as_str)
    });
    message.map(|m| format!(": {:?}", clip(m))).unwrap_or_default()
}

/// At most [`QUOTED_CHARS`] characters, control characters dropped.
fn clip(text: &str) -> String {
    let mut clipped: String = text.chars().filter(|c| !c.is_control()).take(QUOTED_CHARS).collect();
    if text.chars().count() > QUOTED_CHARS {
        clipped.push('…');
    }
    clipped
}
