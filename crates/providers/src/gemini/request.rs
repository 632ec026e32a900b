//! Encoding: a canonical chat request as a Gemini `generateContent` request, or the name of
//! the field Gemini cannot express.

use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokenrouter_core::chat::{AssistantMessage, ChatRequest, Content as ChatContent, ContentPart, Message};

use super::options::{check_extra, generation_config, tool_config, tools};
use super::wire::{Blob, Content, FileData, FunctionCall, FunctionResponse, GenerateContentRequest, Part};
use super::{MODEL_ROLE, SIGNATURE_BLOCK, USER_ROLE};
use crate::adapter::{Encoded, Target, Unsupported};
use crate::passthrough::compact_json;

pub(crate) fn encode(request: &ChatRequest, target: &Target<'_>, stream: bool) -> Result<Encoded, Unsupported> {
    check_extra(&request.extra)?;
    let (system_instruction, contents) = contents(&request.messages)?;
    let tools = tools(request)?;
    // Checked even without tools; sent only with them.
    let tool_config = tool_config(request.tool_choice.as_ref())?.filter(|_| tools.is_some());
    let body = GenerateContentRequest {
        contents,
        system_instruction,
        tools: tools.into_iter().collect(),
        tool_config,
        generation_config: generation_config(request, target.upstream_model)?,
        cached_content: None,
    };
    let body = serde_json::to_vec(&body)
        .map_err(|e| Unsupported::new("messages", format!("Cannot encode the request: {e}")))?;
    let model = target.upstream_model.strip_prefix("models/").unwrap_or(target.upstream_model);
    let path = if stream {
        format!("/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("/models/{model}:generateContent")
    };
    Ok(Encoded { path, headers: Vec::new(), body })
}

fn contents(messages: &[Message]) -> Result<(Option<Content>, Vec<Content>), Unsupported> {
    let mut system = Vec::new();
    let mut contents: Vec<Content> = Vec::new();
    // Consecutive tool results go into one user turn, as Gemini expects for parallel calls.
    let mut in_tool_results = false;
    for (i, message) in messages.iter().enumerate() {
        match message {
            Message::System { content, .. } | Message::Developer { content, .. } => {
                system.extend(text_parts(content, i)?);
                continue;
            }
            Message::User { content, .. } => {
                push(&mut contents, USER_ROLE, user_parts(content, i)?);
            }
            Message::Assistant(assistant) => {
                push(&mut contents, MODEL_ROLE, model_parts(assistant, i)?);
            }
            Message::Tool { tool_call_id, content } => {
                let part = function_response(messages, i, tool_call_id, content)?;
                match contents.last_mut() {
                    Some(last) if in_tool_results => last.parts.push(part),
                    _ => push(&mut contents, USER_ROLE, vec![part]),
                }
                in_tool_results = true;
                continue;
            }
        }
        in_tool_results = false;
    }
    let system = (!system.is_empty()).then_some(Content { role: None, parts: system });
    Ok((system, contents))
}

fn push(contents: &mut Vec<Content>, role: &str, parts: Vec<Part>) {
    if !parts.is_empty() {
        contents.push(Content { role: Some(role.to_owned()), parts });
    }
}

fn part_param(i: usize, j: usize) -> String {
    format!("messages[{i}].content[{j}]")
}

/// System, developer and tool content: text only.
fn text_parts(content: &ChatContent, i: usize) -> Result<Vec<Part>, Unsupported> {
    match content {
        ChatContent::Text(text) => Ok(non_empty(text).map(Part::text).into_iter().collect()),
        ChatContent::Parts(parts) => parts
            .iter()
            .enumerate()
            .filter_map(|(j, part)| match part {
                ContentPart::Text { text } => non_empty(text).map(|t| Ok(Part::text(t))),
                _ => Some(Err(Unsupported::new(
                    part_param(i, j),
                    "Only text content is supported in this message for Gemini models.",
                ))),
            })
            .collect(),
    }
}

fn non_empty(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

fn user_parts(content: &ChatContent, i: usize) -> Result<Vec<Part>, Unsupported> {
    let ChatContent::Parts(parts) = content else {
        return text_parts(content, i);
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        match part {
            ContentPart::Text { text } => out.extend(non_empty(text).map(Part::text)),
            ContentPart::ImageUrl { image_url } => out.push(image_part(&image_url.url, i, j)?),
            ContentPart::InputAudio { .. } | ContentPart::File { .. } => {
                return Err(Unsupported::new(
                    part_param(i, j),
                    "Audio and file content parts are not supported for Gemini models.",
                ));
            }
        }
    }
    Ok(out)
}

fn image_part(url: &str, i: usize, j: usize) -> Result<Part, Unsupported> {
    let param = || format!("messages[{i}].content[{j}].image_url.url");
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| Unsupported::new(param(), "The image data URL has no comma before its data."))?;
        let Some(mime) = meta.strip_suffix(";base64") else {
            return Err(Unsupported::new(param(), "Only base64 image data URLs are supported for Gemini models."));
        };
        let mime = mime.split(';').next().unwrap_or_default();
        return Ok(Part {
            inline_data: Some(Blob {
                mime_type: if mime.is_empty() { "image/jpeg" } else { mime }.to_owned(),
                data: data.to_owned(),
            }),
            ..Part::default()
        });
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(Unsupported::new(param(), "Image URLs must be http(s) or base64 data URLs for Gemini models."));
    }
    Ok(Part {
        file_data: Some(FileData { mime_type: Some(mime_from_extension(url).to_owned()), file_uri: url.to_owned() }),
        ..Part::default()
    })
}

fn mime_from_extension(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = name.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase());
    match ext.as_deref() {
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("heic") => "image/heic",
        Some("heif") => "image/heif",
        Some("pdf") => "application/pdf",
        _ => "image/jpeg",
    }
}

fn model_parts(assistant: &AssistantMessage, i: usize) -> Result<Vec<Part>, Unsupported> {
    let signatures: Vec<Option<&str>> = assistant
        .thinking_blocks
        .iter()
        .flatten()
        .filter(|b| b.kind == SIGNATURE_BLOCK)
        .map(|b| b.signature.as_deref())
        .collect();
    let mut parts = Vec::new();
    if let Some(content) = &assistant.content {
        parts.extend(non_empty(&content.text()).map(Part::text));
    }
    let calls = assistant.tool_calls.as_deref().unwrap_or_default();
    for (j, call) in calls.iter().enumerate() {
        let args = parse_arguments(&call.function.arguments).ok_or_else(|| {
            Unsupported::new(
                format!("messages[{i}].tool_calls[{j}].function.arguments"),
                "Tool call arguments must be a JSON object for Gemini models.",
            )
        })?;
        parts.push(Part {
            function_call: Some(FunctionCall { id: None, name: call.function.name.clone(), args: Some(args) }),
            thought_signature: signatures.get(j).copied().flatten().map(str::to_owned),
            ..Part::default()
        });
    }
    // A text-only answer carries its signature on its (last) text part.
    if calls.is_empty()
        && let Some(last) = parts.last_mut()
    {
        last.thought_signature = signatures.iter().rev().find_map(|s| *s).map(str::to_owned);
    }
    Ok(parts)
}

/// The arguments as a JSON object (`""` counts as `{}`), or `None` if they are not one.
/// The text is passed on as sent (less whitespace), so that no number is re-rounded.
fn parse_arguments(arguments: &str) -> Option<Box<RawValue>> {
    let arguments = if arguments.trim().is_empty() { "{}" } else { arguments };
    let raw = serde_json::from_str::<Box<RawValue>>(arguments).ok()?;
    if !raw.get().starts_with('{') {
        return None;
    }
    RawValue::from_string(compact_json(raw.get())).ok()
}

fn function_response(
    messages: &[Message],
    i: usize,
    tool_call_id: &str,
    content: &ChatContent,
) -> Result<Part, Unsupported> {
    let name = messages[..i]
        .iter()
        .rev()
        .filter_map(|m| match m {
            Message::Assistant(a) => a.tool_calls.as_deref(),
            _ => None,
        })
        .flatten()
        .find(|call| call.id == tool_call_id)
        .map(|call| call.function.name.clone())
        .ok_or_else(|| {
            Unsupported::new(
                format!("messages[{i}].tool_call_id"),
                format!("No earlier assistant tool call has the id '{tool_call_id}'."),
            )
        })?;
    let text: String = text_parts(content, i)?.into_iter().filter_map(|p| p.text).collect();
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Value::Object(map),
        _ => {
            let mut map = Map::new();
            map.insert("result".to_owned(), Value::String(text));
            Value::Object(map)
        }
    };
    Ok(Part { function_response: Some(FunctionResponse { id: None, name, response }), ..Part::default() })
}
