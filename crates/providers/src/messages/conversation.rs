//! The conversation in chat's shape: the system prompt first, Claude Code's in-conversation
//! system entries where they stand, each tool result as a `tool` message ahead of the rest
//! of its user turn, images and PDFs as parts, and an assistant turn's signed thinking kept
//! as `thinking_blocks` beside its text as `reasoning_content`.

use serde_json::{Value, json};
use tokenrouter_core::chat::{
    AssistantMessage, Content as ChatContent, ContentPart, FunctionCall, ImageUrl, Message, ThinkingBlock, ToolCall,
};

use super::foreign_block;
use super::request::{Block, Content, InputMessage, Role, Source};
use crate::adapter::Unsupported;

/// The chat messages for a system prompt and the turns that follow it.
pub(super) fn convert(system: Option<Content>, turns: Vec<InputMessage>) -> Result<Vec<Message>, Unsupported> {
    let mut out = Vec::with_capacity(turns.len() + 1);
    if let Some(message) = system.and_then(system_message) {
        out.push(message);
    }
    for (i, turn) in turns.into_iter().enumerate() {
        match turn.role {
            Role::System => out.extend(system_message(turn.content)),
            Role::User => user(i, turn.content, &mut out)?,
            Role::Assistant => out.push(Message::Assistant(assistant(turn.content))),
        }
    }
    Ok(out)
}

/// System text as one message (its blocks joined); `None` when there is none.
fn system_message(content: Content) -> Option<Message> {
    let text = match content {
        Content::Text(text) => text,
        Content::Blocks(blocks) => blocks
            .into_iter()
            .filter_map(|block| match block {
                Block::Text { text } if !text.is_empty() => Some(text),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n\n"),
    };
    (!text.is_empty()).then_some(Message::System { content: ChatContent::Text(text), name: None })
}

/// A user turn: its tool results as `tool` messages, then the rest of what it says (with
/// any images the tool results held) as one user message.
fn user(i: usize, content: Content, out: &mut Vec<Message>) -> Result<(), Unsupported> {
    let blocks = match content {
        Content::Text(text) => {
            out.push(Message::User { content: ChatContent::Text(text), name: None });
            return Ok(());
        }
        Content::Blocks(blocks) => blocks,
    };
    let mut parts = Vec::new();
    for (j, block) in blocks.into_iter().enumerate() {
        let at = || format!("messages.{i}.content.{j}");
        match block {
            Block::Text { text } => parts.push(ContentPart::Text { text }),
            Block::Image { source } => parts.push(image(source, &at)?),
            Block::Document { source, title } => parts.extend(document(source, title, &at)?),
            Block::ToolResult { tool_use_id, content, is_error } => {
                let (text, attached) = tool_result(content, &at)?;
                let text = if is_error == Some(true) { format!("Error: {text}") } else { text };
                out.push(Message::Tool { tool_call_id: tool_use_id, content: ChatContent::Text(text) });
                parts.extend(attached);
            }
            // Not the user's to send, or nothing a chat provider can read.
            Block::ToolUse { .. } | Block::Thinking { .. } | Block::RedactedThinking { .. } | Block::Other => {}
        }
    }
    if !parts.is_empty() {
        out.push(Message::User { content: user_content(parts), name: None });
    }
    Ok(())
}

/// One text part is plain text; anything else stays a list of parts.
fn user_content(mut parts: Vec<ContentPart>) -> ChatContent {
    if let [ContentPart::Text { text }] = parts.as_mut_slice() {
        return ChatContent::Text(std::mem::take(text));
    }
    ChatContent::Parts(parts)
}

/// A tool result's text (text blocks joined by lines) and the images and documents it
/// held, which a chat `tool` message cannot carry.
fn tool_result(content: Option<Content>, at: &dyn Fn() -> String) -> Result<(String, Vec<ContentPart>), Unsupported> {
    let blocks = match content {
        None => return Ok((String::new(), Vec::new())),
        Some(Content::Text(text)) => return Ok((text, Vec::new())),
        Some(Content::Blocks(blocks)) => blocks,
    };
    let mut texts = Vec::new();
    let mut attached = Vec::new();
    for (k, block) in blocks.into_iter().enumerate() {
        let at = || format!("{}.content.{k}", at());
        match block {
            Block::Text { text } => texts.push(text),
            Block::Image { source } => attached.push(image(source, &at)?),
            Block::Document { source, title } => attached.extend(document(source, title, &at)?),
            _ => {}
        }
    }
    Ok((texts.join("\n"), attached))
}

fn image(source: Source, at: &dyn Fn() -> String) -> Result<ContentPart, Unsupported> {
    let url = match source {
        Source::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        Source::Url { url } => url,
        Source::Text { .. } | Source::Content { .. } | Source::Other => {
            return Err(Unsupported::new(
                format!("{}.source", at()),
                "Only base64 and URL image sources can be passed on to this model (files uploaded to \
                 Anthropic cannot).",
            ));
        }
    };
    Ok(ContentPart::ImageUrl { image_url: ImageUrl { url, detail: None } })
}

/// A document as chat parts: a base64 PDF as a `file` part, text as text.
fn document(source: Source, title: Option<String>, at: &dyn Fn() -> String) -> Result<Vec<ContentPart>, Unsupported> {
    let refuse = |what: &str| {
        Err(Unsupported::new(
            format!("{}.source", at()),
            format!("{what} cannot be passed on to this model: send PDFs as base64 data, other documents as text."),
        ))
    };
    match source {
        Source::Base64 { media_type, data } if media_type == "application/pdf" => {
            let filename = title.filter(|t| !t.is_empty()).unwrap_or_else(|| "document.pdf".to_owned());
            let file = json!({"filename": filename, "file_data": format!("data:{media_type};base64,{data}")});
            Ok(vec![ContentPart::File { file }])
        }
        Source::Base64 { media_type, .. } => refuse(&format!("A '{media_type}' document")),
        Source::Text { data } => Ok(vec![ContentPart::Text { text: data }]),
        Source::Content { content: Content::Text(text) } => Ok(vec![ContentPart::Text { text }]),
        Source::Content { content: Content::Blocks(blocks) } => {
            let mut parts = Vec::new();
            for (k, block) in blocks.into_iter().enumerate() {
                match block {
                    Block::Text { text } => parts.push(ContentPart::Text { text }),
                    Block::Image { source } => parts.push(image(source, &|| format!("{}.source.content.{k}", at()))?),
                    _ => {}
                }
            }
            Ok(parts)
        }
        Source::Url { .. } => refuse("A document URL"),
        Source::Other => refuse("A document uploaded to Anthropic"),
    }
}

/// An assistant turn: text, tool calls (arguments as JSON text), and its thinking, signed
/// blocks kept whole so that an Anthropic upstream can verify them when handed back.
fn assistant(content: Content) -> AssistantMessage {
    let blocks = match content {
        Content::Text(text) => {
            return AssistantMessage { content: Some(ChatContent::Text(text)), ..Default::default() };
        }
        Content::Blocks(blocks) => blocks,
    };
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut thinking_blocks = Vec::new();
    let mut tool_calls = Vec::new();
    for block in blocks {
        match block {
            Block::Text { text: piece } => text.push_str(&piece),
            Block::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                id,
                kind: "function".to_owned(),
                function: FunctionCall { name, arguments: arguments(&input) },
            }),
            Block::Thinking { thinking, signature } => {
                reasoning.push_str(&thinking);
                thinking_blocks.push(ThinkingBlock {
                    kind: "thinking".to_owned(),
                    thinking: Some(thinking),
                    signature: (!signature.is_empty()).then_some(signature),
                    data: None,
                });
            }
            Block::RedactedThinking { data } => thinking_blocks.push(foreign_block(&data).unwrap_or(ThinkingBlock {
                kind: "redacted_thinking".to_owned(),
                thinking: None,
                signature: None,
                data: Some(data),
            })),
            Block::Image { .. } | Block::Document { .. } | Block::ToolResult { .. } | Block::Other => {}
        }
    }
    let content = match (text.is_empty(), tool_calls.is_empty()) {
        (false, _) => Some(ChatContent::Text(text)),
        // A turn with nothing to say still says it (chat requires content or tool calls).
        (true, true) => Some(ChatContent::Text(String::new())),
        (true, false) => None,
    };
    AssistantMessage {
        content,
        tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
        reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
        thinking_blocks: (!thinking_blocks.is_empty()).then_some(thinking_blocks),
        refusal: None,
        name: None,
    }
}

/// A tool call's `input` as OpenAI's arguments text (`{}` when it has none).
fn arguments(input: &Value) -> String {
    match input {
        Value::Null => "{}".to_owned(),
        input => serde_json::to_string(input).unwrap_or_else(|_| "{}".to_owned()),
    }
}
