//! The conversation in chat's shape: `systemInstruction` first, each user turn's function
//! responses as `tool` messages ahead of the rest of the turn, inline data as image, file,
//! audio or text parts, and each model turn's thoughts, calls and thought signatures as an
//! assistant message (signatures kept as the Gemini adapter reads them back).

use base64::Engine;
use serde_json::json;
use tokenrouter_core::chat::{
    AssistantMessage, Content as ChatContent, ContentPart, FunctionCall, ImageUrl, Message, ThinkingBlock, ToolCall,
};

use super::foreign_blocks;
use crate::adapter::Unsupported;
use crate::gemini::response::signature_block;
use crate::gemini::wire::{Blob, Content, FileData, Part};

/// A call of the latest model turn: its id, its name, and whether a response named it yet.
struct Pending {
    id: String,
    name: String,
    answered: bool,
}

pub(super) fn convert(system: Option<Content>, contents: Vec<Content>) -> Result<Vec<Message>, Unsupported> {
    let mut out = Vec::with_capacity(contents.len() + 1);
    if let Some(system) = system {
        let text = system_text(system)?;
        if !text.is_empty() {
            out.push(Message::System { content: ChatContent::Text(text), name: None });
        }
    }
    let mut pending: Vec<Pending> = Vec::new();
    for (i, content) in contents.into_iter().enumerate() {
        match content.role.as_deref() {
            None | Some("" | "user" | "function" | "tool") => user(i, content.parts, &mut pending, &mut out)?,
            Some("model" | "assistant") => {
                let (message, calls) = model(i, content.parts)?;
                pending = calls;
                out.push(Message::Assistant(message));
            }
            Some(other) => {
                return Err(Unsupported::new(
                    format!("contents[{i}].role"),
                    format!("Unknown role '{other}': use 'user' or 'model'."),
                ));
            }
        }
    }
    Ok(out)
}

fn system_text(system: Content) -> Result<String, Unsupported> {
    let mut texts = Vec::new();
    for (j, part) in system.parts.into_iter().enumerate() {
        match part.text {
            Some(text) => texts.push(text),
            None => {
                return Err(Unsupported::new(
                    format!("systemInstruction.parts[{j}]"),
                    "Only text parts can be passed on in systemInstruction.",
                ));
            }
        }
    }
    Ok(texts.into_iter().filter(|t| !t.is_empty()).collect::<Vec<_>>().join("\n"))
}

/// A user turn: its function responses as `tool` messages, then what else it says as one
/// user message.
fn user(i: usize, parts: Vec<Part>, pending: &mut [Pending], out: &mut Vec<Message>) -> Result<(), Unsupported> {
    let mut chat_parts = Vec::new();
    for (j, part) in parts.into_iter().enumerate() {
        let at = || format!("contents[{i}].parts[{j}]");
        if let Some(response) = part.function_response {
            let id = answered_call(pending, response.id.as_deref(), &response.name).ok_or_else(|| {
                Unsupported::new(
                    format!("{}.functionResponse", at()),
                    format!(
                        "No functionCall named '{}' in the model turn before this one is left to answer.",
                        response.name
                    ),
                )
            })?;
            let text = serde_json::to_string(&response.response).unwrap_or_else(|_| "{}".to_owned());
            out.push(Message::Tool { tool_call_id: id, content: ChatContent::Text(text) });
        } else if part.function_call.is_some() {
            return Err(Unsupported::new(
                format!("{}.functionCall", at()),
                "A functionCall belongs in a 'model' turn, not a 'user' one.",
            ));
        } else if let Some(text) = part.text {
            if !text.is_empty() {
                chat_parts.push(ContentPart::Text { text });
            }
        } else if let Some(blob) = part.inline_data {
            chat_parts.push(inline(blob, &at)?);
        } else if let Some(file) = part.file_data {
            chat_parts.push(file_part(file, &at)?);
        } else if part.thought_signature.is_none() {
            return Err(unknown_part(&at()));
        }
    }
    if !chat_parts.is_empty() {
        let content = match chat_parts.as_mut_slice() {
            [ContentPart::Text { text }] => ChatContent::Text(std::mem::take(text)),
            _ => ChatContent::Parts(chat_parts),
        };
        out.push(Message::User { content, name: None });
    }
    Ok(())
}

/// The id of the call a response answers: its own id when a pending call has it, else the
/// first unanswered call of that name.
fn answered_call(pending: &mut [Pending], id: Option<&str>, name: &str) -> Option<String> {
    let by_id = id.and_then(|id| pending.iter().position(|p| p.id == id));
    let at = by_id.or_else(|| pending.iter().position(|p| !p.answered && p.name == name))?;
    pending[at].answered = true;
    Some(pending[at].id.clone())
}

fn unknown_part(at: &str) -> Unsupported {
    Unsupported::new(
        at,
        "This part cannot be passed on to other providers: send text, inlineData, fileData (an http(s) image), \
         functionCall or functionResponse.",
    )
}

/// Inline data as a chat part: images as data URLs, PDFs as files, WAV and MP3 as audio,
/// text as text.
fn inline(blob: Blob, at: &dyn Fn() -> String) -> Result<ContentPart, Unsupported> {
    let mime = blob.mime_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let data_url = || format!("data:{mime};base64,{}", blob.data);
    Ok(match mime.as_str() {
        m if m.starts_with("image/") => ContentPart::ImageUrl { image_url: ImageUrl { url: data_url(), detail: None } },
        "application/pdf" => ContentPart::File { file: json!({"filename": "document.pdf", "file_data": data_url()}) },
        "audio/wav" | "audio/x-wav" | "audio/wave" => audio(&blob.data, "wav"),
        "audio/mp3" | "audio/mpeg" => audio(&blob.data, "mp3"),
        m if m.starts_with("text/") || m == "application/json" => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(blob.data.trim()).map_err(|_| {
                Unsupported::new(format!("{}.inlineData.data", at()), "The inline data is not valid base64.")
            })?;
            ContentPart::Text { text: String::from_utf8_lossy(&bytes).into_owned() }
        }
        _ => {
            return Err(Unsupported::new(
                format!("{}.inlineData.mimeType", at()),
                format!(
                    "Inline data of type '{}' cannot be passed on: send images, PDFs, WAV or MP3 audio, or text.",
                    blob.mime_type
                ),
            ));
        }
    })
}

fn audio(data: &str, format: &str) -> ContentPart {
    ContentPart::InputAudio { input_audio: json!({"data": data, "format": format}) }
}

/// A file reference: only an http(s) image can be fetched by other providers.
fn file_part(file: FileData, at: &dyn Fn() -> String) -> Result<ContentPart, Unsupported> {
    let lower = file.file_uri.get(..8).unwrap_or(&file.file_uri).to_ascii_lowercase();
    let web = lower.starts_with("http://") || lower.starts_with("https://");
    let image = file.mime_type.as_deref().is_none_or(|m| m.starts_with("image/"));
    let uploaded = file.file_uri.contains("generativelanguage.googleapis.com");
    if !web || !image || uploaded {
        return Err(Unsupported::new(
            format!("{}.fileData", at()),
            "Only http(s) image URLs can be passed on as fileData (files uploaded to Google cannot): send other \
             files as inlineData.",
        ));
    }
    Ok(ContentPart::ImageUrl { image_url: ImageUrl { url: file.file_uri, detail: None } })
}

/// A model turn as an assistant message, and its calls (for the responses that follow).
fn model(i: usize, parts: Vec<Part>) -> Result<(AssistantMessage, Vec<Pending>), Unsupported> {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    let mut call_signatures: Vec<Option<String>> = Vec::new();
    let mut text_signatures = Vec::new();
    let mut foreign: Vec<ThinkingBlock> = Vec::new();
    for (j, part) in parts.into_iter().enumerate() {
        // Ours: another provider's reasoning blocks, not a Gemini signature.
        let mut signature = part.thought_signature;
        if let Some(blocks) = signature.as_deref().and_then(foreign_blocks) {
            foreign.extend(blocks);
            signature = None;
        }
        if let Some(call) = part.function_call {
            let k = calls.len();
            let id = call.id.filter(|id| !id.is_empty()).unwrap_or_else(|| format!("call_{i}_{k}"));
            let arguments = match call.args.as_deref().map(serde_json::value::RawValue::get) {
                None | Some("null") => "{}".to_owned(),
                Some(json) => crate::passthrough::compact_json(json),
            };
            calls.push(ToolCall {
                id,
                kind: "function".to_owned(),
                function: FunctionCall { name: call.name, arguments },
            });
            call_signatures.push(signature);
            continue;
        }
        if part.function_response.is_some() {
            return Err(Unsupported::new(
                format!("contents[{i}].parts[{j}].functionResponse"),
                "A functionResponse belongs in a 'user' turn, not a 'model' one.",
            ));
        }
        if let Some(signature) = signature {
            text_signatures.push(signature);
        }
        match part.text {
            Some(t) if part.thought == Some(true) => reasoning.push_str(&t),
            Some(t) => text.push_str(&t),
            None if part.inline_data.is_some() || part.file_data.is_some() => {
                return Err(Unsupported::new(
                    format!("contents[{i}].parts[{j}]"),
                    "Images and files in a 'model' turn cannot be passed on to other providers.",
                ));
            }
            None => {}
        }
    }
    let mut blocks = foreign;
    if calls.is_empty() {
        blocks.extend(text_signatures.into_iter().map(Some).map(signature_block));
    } else {
        // One entry per call up to the last signed one, so that entry k is call k.
        let signed = call_signatures.iter().rposition(Option::is_some);
        blocks.extend(call_signatures.into_iter().take(signed.map_or(0, |last| last + 1)).map(signature_block));
    }
    let pending =
        calls.iter().map(|c| Pending { id: c.id.clone(), name: c.function.name.clone(), answered: false }).collect();
    let content = match (text.is_empty(), calls.is_empty()) {
        (false, _) => Some(ChatContent::Text(text)),
        (true, true) => Some(ChatContent::Text(String::new())),
        (true, false) => None,
    };
    let message = AssistantMessage {
        content,
        tool_calls: (!calls.is_empty()).then_some(calls),
        reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
        thinking_blocks: (!blocks.is_empty()).then_some(blocks),
        refusal: None,
        name: None,
    };
    Ok((message, pending))
}
