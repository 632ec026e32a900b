//! The conversation in Anthropic's shape: system and developer messages hoisted into
//! `system`, tool results gathered into user turns, images as image blocks, tool calls as
//! `tool_use` blocks after the assistant's handed-back thinking blocks.

use serde_json::value::RawValue;
use tokenrouter_core::chat::{AssistantMessage, Content, ContentPart, Message, ThinkingBlock};

use super::wire::{ContentBlock, ImageSource, InputMessage, MessageContent, TextBlock};
use crate::adapter::Unsupported;

/// The system prompt and the turns of a request.
#[derive(Debug, Default)]
pub(super) struct Conversation {
    pub system: Vec<TextBlock>,
    pub messages: Vec<InputMessage>,
}

pub(super) fn convert(messages: &[Message]) -> Result<Conversation, Unsupported> {
    let mut out = Conversation::default();
    // Consecutive tool messages become one user turn; this says the last turn is one.
    let mut tool_turn_open = false;
    for (i, message) in messages.iter().enumerate() {
        let is_tool = matches!(message, Message::Tool { .. });
        match message {
            Message::System { content, .. } | Message::Developer { content, .. } => {
                let text = text_only(i, content)?;
                if !text.is_empty() {
                    out.system.push(TextBlock::new(text));
                }
            }
            Message::User { content, .. } => {
                let content = match content {
                    Content::Text(text) => MessageContent::Text(text.clone()),
                    Content::Parts(parts) => MessageContent::Blocks(
                        parts
                            .iter()
                            .enumerate()
                            .filter_map(|(j, part)| user_block(i, j, part).transpose())
                            .collect::<Result<_, _>>()?,
                    ),
                };
                out.messages.push(turn("user", content));
            }
            Message::Assistant(assistant) => {
                if let Some(content) = assistant_content(i, assistant)? {
                    out.messages.push(turn("assistant", content));
                }
            }
            Message::Tool { tool_call_id, content } => {
                let result = ContentBlock::ToolResult {
                    tool_use_id: tool_id(tool_call_id),
                    content: MessageContent::Text(content.text()),
                    is_error: None,
                };
                match out.messages.last_mut() {
                    Some(InputMessage { content: MessageContent::Blocks(blocks), .. }) if tool_turn_open => {
                        blocks.push(result)
                    }
                    _ => out.messages.push(turn("user", MessageContent::Blocks(vec![result]))),
                }
            }
        }
        tool_turn_open = is_tool;
    }
    Ok(out)
}

fn turn(role: &str, content: MessageContent) -> InputMessage {
    InputMessage { role: role.to_owned(), content }
}

/// The text of a message that may only hold text (system, developer, assistant).
fn text_only(i: usize, content: &Content) -> Result<String, Unsupported> {
    if let Content::Parts(parts) = content
        && let Some(j) = parts.iter().position(|p| !matches!(p, ContentPart::Text { .. }))
    {
        return Err(Unsupported::new(
            format!("messages[{i}].content[{j}]"),
            "Only text parts are supported in this message for Anthropic models.",
        ));
    }
    Ok(content.text())
}

/// One part of a user message as a block (`None` for an empty text part, which Anthropic
/// refuses).
fn user_block(i: usize, j: usize, part: &ContentPart) -> Result<Option<ContentBlock>, Unsupported> {
    let param = || format!("messages[{i}].content[{j}]");
    match part {
        ContentPart::Text { text } if text.is_empty() => Ok(None),
        ContentPart::Text { text } => Ok(Some(ContentBlock::Text { text: text.clone() })),
        ContentPart::ImageUrl { image_url } => {
            image_source(&image_url.url).map(|source| Some(ContentBlock::Image { source })).ok_or_else(|| {
                Unsupported::new(param(), "Image URLs must be https://, http:// or data:<media type>;base64, URLs.")
            })
        }
        ContentPart::InputAudio { .. } => {
            Err(Unsupported::new(param(), "Audio input is not supported by Anthropic models."))
        }
        ContentPart::File { file } => {
            pdf_source(file).map(|source| Some(ContentBlock::Document { source })).ok_or_else(|| {
                Unsupported::new(
                    param(),
                    "Anthropic models take files as inline PDFs: 'file.file_data' must be a \
                 data:application/pdf;base64, URL (uploaded file ids cannot be passed on).",
                )
            })
        }
    }
}

/// A chat `file` part holding an inline PDF, as Anthropic's document source.
fn pdf_source(file: &serde_json::Value) -> Option<ImageSource> {
    let data = file.get("file_data")?.as_str()?;
    let data = data.strip_prefix("data:application/pdf;base64,").unwrap_or(data);
    // A bare base64 payload is accepted too (OpenAI documents the data URL form).
    (!data.starts_with("data:"))
        .then(|| ImageSource::Base64 { media_type: "application/pdf".to_owned(), data: data.to_owned() })
}

/// An image URL as Anthropic's source: inline base64 data or a URL it fetches itself.
fn image_source(url: &str) -> Option<ImageSource> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (header, data) = rest.split_once(',')?;
        let media_type = header.strip_suffix(";base64")?;
        return (!media_type.is_empty())
            .then(|| ImageSource::Base64 { media_type: media_type.to_owned(), data: data.to_owned() });
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://")).then(|| ImageSource::Url { url: url.to_owned() })
}

/// An assistant turn: handed-back thinking first, then text, then tool calls. `None` when
/// there is nothing to say (Anthropic refuses an empty turn).
fn assistant_content(i: usize, message: &AssistantMessage) -> Result<Option<MessageContent>, Unsupported> {
    let text = match &message.content {
        Some(content) => text_only(i, content)?,
        None => String::new(),
    };
    let thinking: Vec<ContentBlock> = message.thinking_blocks.iter().flatten().filter_map(thinking_block).collect();
    let calls = message.tool_calls.as_deref().unwrap_or_default();
    if thinking.is_empty() && calls.is_empty() {
        return Ok((!text.is_empty()).then_some(MessageContent::Text(text)));
    }
    let mut blocks = thinking;
    if !text.is_empty() {
        blocks.push(ContentBlock::Text { text });
    }
    for (j, call) in calls.iter().enumerate() {
        if call.kind != "function" {
            return Err(Unsupported::new(
                format!("messages[{i}].tool_calls[{j}].type"),
                "Only function tool calls are supported for Anthropic models.",
            ));
        }
        blocks.push(ContentBlock::ToolUse {
            id: tool_id(&call.id),
            name: call.function.name.clone(),
            input: arguments(&call.function.arguments).ok_or_else(|| {
                Unsupported::new(
                    format!("messages[{i}].tool_calls[{j}].function.arguments"),
                    "Tool call arguments must be a JSON object.",
                )
            })?,
        });
    }
    Ok(Some(MessageContent::Blocks(blocks)))
}

/// A handed-back reasoning block Anthropic can verify (a thinking block needs its
/// signature); others, from elsewhere or incomplete, are left out.
fn thinking_block(block: &ThinkingBlock) -> Option<ContentBlock> {
    match block.kind.as_str() {
        "thinking" => {
            let signature = block.signature.as_ref().filter(|s| !s.is_empty())?;
            Some(ContentBlock::Thinking {
                thinking: block.thinking.clone().unwrap_or_default(),
                signature: signature.clone(),
            })
        }
        "redacted_thinking" => Some(ContentBlock::RedactedThinking { data: block.data.clone()? }),
        _ => None,
    }
}

/// A tool call's arguments as the `input` object, its text kept as sent; an empty string
/// (some clients send it for a call without arguments) is `{}`.
fn arguments(text: &str) -> Option<Box<RawValue>> {
    if text.trim().is_empty() {
        return RawValue::from_string("{}".to_owned()).ok();
    }
    let raw: Box<RawValue> = serde_json::from_str(text).ok()?;
    raw.get().starts_with('{').then_some(raw)
}

/// A tool call id Anthropic accepts (`^[a-zA-Z0-9_-]+$`): other characters become `_`,
/// the same way for the call and its result.
fn tool_id(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
}
