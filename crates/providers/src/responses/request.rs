//! A Responses request's input and tools in the canonical chat request's terms: input
//! items as messages (an assistant turn's reasoning, text and function calls merged into
//! one message), tools with namespaces flattened and hosted tools dropped or refused, and
//! the tool choice.

use std::collections::HashMap;

use serde_json::{Value, json};
use tokenrouter_core::chat::{
    AssistantMessage, Content, ContentPart as ChatPart, FunctionCall, FunctionDefinition, ImageUrl, Message,
    NamedFunction, NamedToolChoice, Tool, ToolCall, ToolChoice,
};

use super::response::unseal;
use super::wire::{ContentPart, Item, TextOr, ToolSpec};
use super::{UnsupportedTools, flat_name};
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

/// The request's tools as chat tools, and what became of the others.
#[derive(Debug, Default)]
pub(super) struct Tools {
    pub chat: Vec<Tool>,
    /// Hosted tool types removed, in order, once each.
    pub dropped: Vec<String>,
    /// A flattened function name → (namespace, name).
    pub namespaced: HashMap<String, (String, String)>,
}

pub(super) fn tools(specs: &[ToolSpec], mode: UnsupportedTools) -> Result<Tools, Unsupported> {
    let mut tools = Tools::default();
    for (i, spec) in specs.iter().enumerate() {
        match spec.kind.as_str() {
            "function" => {
                let name = required_name(spec, &format!("tools[{i}]"))?;
                tools.chat.push(function_tool(name.to_owned(), spec));
            }
            "namespace" => {
                let namespace = required_name(spec, &format!("tools[{i}]"))?;
                for (j, inner) in namespace_members(spec, i)?.iter().enumerate() {
                    let at = format!("tools[{i}].tools[{j}]");
                    if inner.kind != "function" {
                        tools.hosted(&inner.kind, &at, mode)?;
                        continue;
                    }
                    let name = required_name(inner, &at)?;
                    let flat = flat_name(namespace, name);
                    tools.namespaced.insert(flat.clone(), (namespace.to_owned(), name.to_owned()));
                    tools.chat.push(function_tool(flat, inner));
                }
            }
            other => tools.hosted(other, &format!("tools[{i}]"), mode)?,
        }
    }
    Ok(tools)
}

impl Tools {
    /// A tool only OpenAI's servers can run: dropped and named, or refused.
    fn hosted(&mut self, kind: &str, at: &str, mode: UnsupportedTools) -> Result<(), Unsupported> {
        match mode {
            UnsupportedTools::Reject => Err(Unsupported::new(
                format!("{at}.type"),
                format!("Tools of type '{kind}' are not supported: only 'function' and 'namespace' tools can be used."),
            )),
            UnsupportedTools::Drop => {
                if !self.dropped.iter().any(|d| d == kind) {
                    self.dropped.push(kind.to_owned());
                }
                Ok(())
            }
        }
    }
}

fn required_name<'a>(spec: &'a ToolSpec, at: &str) -> Result<&'a str, Unsupported> {
    match spec.name.as_deref() {
        Some(name) if !name.is_empty() => Ok(name),
        _ => Err(Unsupported::new(format!("{at}.name"), format!("{at}.name: a '{}' tool needs a name.", spec.kind))),
    }
}

fn namespace_members(spec: &ToolSpec, i: usize) -> Result<Vec<ToolSpec>, Unsupported> {
    let Some(members) = &spec.tools else { return Ok(Vec::new()) };
    serde_path_to_error::deserialize(members).map_err(|e| {
        let param = super::join_path(&format!("tools[{i}].tools"), e.path());
        Unsupported::new(param.clone(), format!("Invalid value for '{param}': {}", e.inner()))
    })
}

fn function_tool(name: String, spec: &ToolSpec) -> Tool {
    Tool {
        kind: "function".to_owned(),
        function: FunctionDefinition {
            name,
            description: spec.description.clone(),
            parameters: spec.parameters.clone(),
            strict: spec.strict,
        },
    }
}

/// `tool_choice` for the chat request (`None` when no tool is left to choose).
pub(super) fn tool_choice(choice: Option<&Value>, tools: &Tools) -> Result<Option<ToolChoice>, Unsupported> {
    if tools.chat.is_empty() {
        return Ok(None);
    }
    let Some(choice) = choice.filter(|c| !c.is_null()) else { return Ok(None) };
    let mode = |mode: &str| Ok(Some(ToolChoice::Mode(mode.to_owned())));
    if let Some(text) = choice.as_str() {
        return match text {
            "auto" | "none" | "required" => mode(text),
            _ => {
                Err(Unsupported::new("tool_choice", "tool_choice must be 'none', 'auto' or 'required', or an object."))
            }
        };
    }
    match choice.get("type").and_then(Value::as_str) {
        Some("function") => {
            let Some(name) = choice.get("name").and_then(Value::as_str) else {
                return Err(Unsupported::new("tool_choice.name", "tool_choice.name: a function must be named."));
            };
            let name = match choice.get("namespace").and_then(Value::as_str) {
                Some(namespace) => flat_name(namespace, name),
                // A function inside a namespace may be named alone when the name is unique.
                None if !tools.chat.iter().any(|t| t.function.name == name) => {
                    let mut inside = tools.namespaced.iter().filter(|(_, (_, inner))| inner == name);
                    match (inside.next(), inside.next()) {
                        (Some((flat, _)), None) => flat.clone(),
                        _ => name.to_owned(),
                    }
                }
                None => name.to_owned(),
            };
            Ok(Some(ToolChoice::Named(NamedToolChoice {
                kind: "function".to_owned(),
                function: NamedFunction { name },
            })))
        }
        // A subset of the tools cannot be stated in chat; the obligation to call one can.
        Some("allowed_tools") if choice.get("mode").and_then(Value::as_str) == Some("required") => mode("required"),
        // `allowed_tools` in auto mode, and a hosted, custom or MCP tool (dropped here).
        _ => mode("auto"),
    }
}

/// Input items as chat messages. An assistant turn (reasoning, text, function calls, in
/// whatever order they come) becomes one assistant message, as Anthropic and Gemini need
/// parallel calls in one turn.
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
            Some("function_call") => self.function_call(place, item),
            Some("function_call_output") => {
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
            // `item_reference`, hosted tools' calls, custom tools' calls: nothing a chat
            // model can be shown.
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

    fn function_call(&mut self, place: Place, item: &Item) -> Result<(), Unsupported> {
        let id = required(place, "call_id", item.call_id.as_deref())?.to_owned();
        let name = required(place, "name", item.name.as_deref())?;
        let name = match item.namespace.as_deref() {
            Some(namespace) if !namespace.is_empty() => flat_name(namespace, name),
            _ => name.to_owned(),
        };
        let arguments = match &item.arguments {
            None | Some(Value::Null) => "{}".to_owned(),
            Some(Value::String(arguments)) => arguments.clone(),
            Some(_) => return Err(Unsupported::new(place.param("arguments"), "arguments must be a JSON string.")),
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

/// A `function_call_output`'s output: a string, or parts (text alone joined into one).
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
