//! A Responses request's input items in the canonical chat request's terms: messages,
//! and an assistant turn's reasoning, text, function calls and custom tool calls merged
//! into one assistant message; tool outputs as tool messages.

use serde_json::{Value, json};
use tokenrouter_core::chat::{
    AssistantMessage, Content, ContentPart as ChatPart, FunctionCall, ImageUrl, Message, ToolCall,
};

use super::flat_name;
use super::response::unseal;
use super::wire::{ContentPart, Item, TextOr};
use crate::adapter::Unsupported;

/// Where an item came from, to name it in an error.
#[derive(Debug, Clone, Copy)]
pub(super) enum Place {
    Input(usize),
    Previous,
}

impl Place {
    fn param(self, field: &str) -> String {
        match self {
            Place::Input(i) if field.is_empty() => format!("input[{i}]"),
            Place::Input(i) => format!("input[{i}].{field}"),
            Place::Previous => "previous_response_id".to_owned(),
        }
    }
}

/// Input items as chat messages. An assistant turn (reasoning, text, function and custom
/// tool calls, in whatever order they come) becomes one assistant message, as Anthropic
/// and Gemini need parallel calls in one turn.
pub(super) fn messages<'a>(items: impl IntoIterator<Item = (Place, &'a Item)>) -> Result<Vec<Message>, Unsupported> {
    let mut conversation = Conversation::default();
    for (place, item) in items {
        conversation.item(place, item)?;
    }
    conversation.flush();
    Ok(conversation.messages)
}

#[derive(Default)]
struct Conversation {
    messages: Vec<Message>,
    assistant: Option<AssistantMessage>,
}

impl Conversation {
    fn item(&mut self, place: Place, item: &Item) -> Result<(), Unsupported> {
        match item.kind.as_deref() {
            Some("message") => self.message(place, item),
            None if item.role.is_some() => self.message(place, item),
            None => {
                Err(Unsupported::new(place.param("type"), "An input item needs a 'type' (or a 'role', for a message)."))
            }
            Some("function_call") => {
                let arguments = match &item.arguments {
                    None | Some(Value::Null) => "{}".to_owned(),
                    Some(Value::String(arguments)) => arguments.clone(),
                    Some(_) => {
                        return Err(Unsupported::new(place.param("arguments"), "arguments must be a JSON string."));
                    }
                };
                self.call(place, item, arguments)
            }
            // The function a custom tool became takes its input as `{"input": "…"}`.
            Some("custom_tool_call") => {
                let input = match &item.input {
                    None | Some(Value::Null) => "",
                    Some(Value::String(input)) => input.as_str(),
                    Some(_) => return Err(Unsupported::new(place.param("input"), "input must be a string.")),
                };
                self.call(place, item, json!({"input": input}).to_string())
            }
            Some("function_call_output" | "custom_tool_call_output") => {
                let tool_call_id = required(place, "call_id", item.call_id.as_deref())?.to_owned();
                let content = tool_output(place, item.output.as_ref())?;
                self.flush();
                self.messages.push(Message::Tool { tool_call_id, content });
                Ok(())
            }
            Some("reasoning") => {
                self.reasoning(item);
                Ok(())
            }
            // `item_reference`, hosted tools' calls: nothing a chat model can be shown.
            Some(_) => Ok(()),
        }
    }

    fn message(&mut self, place: Place, item: &Item) -> Result<(), Unsupported> {
        let role = item.role.as_deref().unwrap_or_default();
        let empty = TextOr::Text(String::new());
        let content = item.content.as_ref().unwrap_or(&empty);
        if role == "assistant" {
            let (text, refusal) = assistant_text(content);
            let message = self.assistant.get_or_insert_with(AssistantMessage::default);
            if !text.is_empty() {
                append(&mut message.content, text);
            }
            if let Some(refusal) = refusal {
                message.refusal = Some(refusal);
            }
            return Ok(());
        }
        let content = user_content(place, content)?;
        self.flush();
        self.messages.push(match role {
            "user" => Message::User { content, name: None },
            "system" => Message::System { content, name: None },
            "developer" => Message::Developer { content, name: None },
            other => {
                return Err(Unsupported::new(
                    place.param("role"),
                    format!("'{other}' is not one of 'user', 'assistant', 'system', 'developer'."),
                ));
            }
        });
        Ok(())
    }

    /// A function or custom tool call, as a chat tool call of the assistant turn.
    fn call(&mut self, place: Place, item: &Item, arguments: String) -> Result<(), Unsupported> {
        let id = required(place, "call_id", item.call_id.as_deref())?.to_owned();
        let name = required(place, "name", item.name.as_deref())?;
        let name = match item.namespace.as_deref() {
            Some(namespace) if !namespace.is_empty() => flat_name(namespace, name),
            _ => name.to_owned(),
        };
        let call = ToolCall { id, kind: "function".to_owned(), function: FunctionCall { name, arguments } };
        self.assistant.get_or_insert_with(AssistantMessage::default).tool_calls.get_or_insert_with(Vec::new).push(call);
        Ok(())
    }

    /// The summary as the reasoning text; our own sealed blocks back as thinking blocks
    /// (another service's encrypted reasoning means nothing here and is left out).
    fn reasoning(&mut self, item: &Item) {
        let summary: Vec<&str> = item.summary.iter().flatten().filter_map(|p| p.text.as_deref()).collect();
        let text = if summary.is_empty() {
            match &item.content {
                Some(TextOr::List(parts)) => parts.iter().filter_map(|p| p.text.as_deref()).collect::<Vec<_>>(),
                _ => Vec::new(),
            }
        } else {
            summary
        }
        .join("\n\n");
        let blocks = item.encrypted_content.as_deref().and_then(unseal).unwrap_or_default();
        if text.is_empty() && blocks.is_empty() {
            return;
        }
        let message = self.assistant.get_or_insert_with(AssistantMessage::default);
        if !text.is_empty() {
            match &mut message.reasoning_content {
                Some(before) => {
                    before.push_str("\n\n");
                    before.push_str(&text);
                }
                None => message.reasoning_content = Some(text),
            }
        }
        if !blocks.is_empty() {
            message.thinking_blocks.get_or_insert_with(Vec::new).extend(blocks);
        }
    }

    /// Ends the assistant turn. One with nothing but reasoning is left out: a chat
    /// assistant message needs content or tool calls.
    fn flush(&mut self) {
        if let Some(message) = self.assistant.take()
            && (message.content.is_some() || message.tool_calls.is_some() || message.refusal.is_some())
        {
            self.messages.push(Message::Assistant(message));
        }
    }
}

fn required<'a>(place: Place, field: &str, value: Option<&'a str>) -> Result<&'a str, Unsupported> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Unsupported::new(place.param(field), format!("'{field}' is required.")))
}

fn append(content: &mut Option<Content>, text: String) {
    match content {
        Some(before) => *before = Content::Text(format!("{}\n\n{text}", before.text())),
        None => *content = Some(Content::Text(text)),
    }
}

/// An assistant message's text (its text parts joined) and refusal.
fn assistant_text(content: &TextOr<ContentPart>) -> (String, Option<String>) {
    match content {
        TextOr::Text(text) => (text.clone(), None),
        TextOr::List(parts) => {
            let text = parts.iter().filter(|p| p.kind != "refusal").filter_map(|p| p.text.as_deref()).collect();
            let refusal = parts.iter().find_map(|p| p.refusal.clone());
            (text, refusal)
        }
    }
}

/// A user, system or developer message's content: text, images, files, audio.
fn user_content(place: Place, content: &TextOr<ContentPart>) -> Result<Content, Unsupported> {
    let parts = match content {
        TextOr::Text(text) => return Ok(Content::Text(text.clone())),
        TextOr::List(parts) => parts,
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        if let Some(part) = chat_part(part, || place.param(&format!("content[{j}]")))? {
            out.push(part);
        }
    }
    Ok(Content::Parts(out))
}

/// One content part in chat's shape; `None` for parts a chat model cannot be shown.
fn chat_part(part: &ContentPart, at: impl Fn() -> String) -> Result<Option<ChatPart>, Unsupported> {
    Ok(Some(match part.kind.as_str() {
        "input_text" | "output_text" | "text" => ChatPart::Text { text: part.text.clone().unwrap_or_default() },
        "input_image" => match &part.image_url {
            Some(url) => ChatPart::ImageUrl { image_url: ImageUrl { url: url.clone(), detail: part.detail.clone() } },
            None => {
                let param = format!("{}.image_url", at());
                return Err(Unsupported::new(
                    param.clone(),
                    format!("{param}: images must be sent as a URL or a data URL; OpenAI file ids are not available."),
                ));
            }
        },
        "input_file" => {
            let mut file = serde_json::Map::new();
            for key in ["file_data", "filename"] {
                if let Some(value) = part.rest.get(key) {
                    file.insert(key.to_owned(), value.clone());
                }
            }
            if let Some(file_id) = &part.file_id {
                file.insert("file_id".to_owned(), json!(file_id));
            }
            if file.is_empty() {
                let param = format!("{}.file_data", at());
                return Err(Unsupported::new(param.clone(), format!("{param}: files must be sent as data.")));
            }
            ChatPart::File { file: Value::Object(file) }
        }
        "input_audio" => match part.rest.get("input_audio") {
            Some(audio) => ChatPart::InputAudio { input_audio: audio.clone() },
            None => return Ok(None),
        },
        _ => return Ok(None),
    }))
}

/// A `function_call_output`'s or `custom_tool_call_output`'s output: a string, or parts (text alone joined into one).
fn tool_output(place: Place, output: Option<&Value>) -> Result<Content, Unsupported> {
    let invalid = || Unsupported::new(place.param("output"), "output must be a string or a list of content parts.");
    let parts: Vec<ContentPart> = match output {
        Some(Value::String(text)) => return Ok(Content::Text(text.clone())),
        Some(list @ Value::Array(_)) => serde_json::from_value(list.clone()).map_err(|_| invalid())?,
        _ => return Err(invalid()),
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        if let Some(part) = chat_part(part, || place.param(&format!("output[{j}]")))? {
            out.push(part);
        }
    }
    if out.iter().all(|p| matches!(p, ChatPart::Text { .. })) {
        return Ok(Content::Text(Content::Parts(out).text()));
    }
    Ok(Content::Parts(out))
}
