//! A Responses request's tools in the canonical chat request's terms, and its tool choice.
//! Functions carry over; a `namespace` tool's members are flattened; a `custom` (freeform)
//! tool becomes a function taking its raw input as one string, `{"input": "…"}`, with its
//! grammar told in the description; tools only OpenAI's servers run are dropped or refused.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};
use tokenrouter_core::chat::{FunctionDefinition, NamedFunction, NamedToolChoice, Tool, ToolChoice};

use super::wire::ToolSpec;
use super::{UnsupportedTools, flat_name};
use crate::adapter::Unsupported;

/// The request's tools as chat tools, and what became of the others.
#[derive(Debug, Default)]
pub(super) struct Tools {
    pub chat: Vec<Tool>,
    /// Hosted tool types removed, in order, once each.
    pub dropped: Vec<String>,
    /// A flattened function name → (namespace, name).
    pub namespaced: HashMap<String, (String, String)>,
    /// The chat function names that stand for custom tools.
    pub custom: HashSet<String>,
}

pub(super) fn read(specs: &[ToolSpec], mode: UnsupportedTools) -> Result<Tools, Unsupported> {
    let mut tools = Tools::default();
    for (i, spec) in specs.iter().enumerate() {
        let at = format!("tools[{i}]");
        if spec.kind == "namespace" {
            let namespace = required_name(spec, &at)?;
            for (j, inner) in namespace_members(spec, i)?.iter().enumerate() {
                tools.member(inner, Some(namespace), &format!("{at}.tools[{j}]"), mode)?;
            }
        } else {
            tools.member(spec, None, &at, mode)?;
        }
    }
    Ok(tools)
}

impl Tools {
    /// One tool, at the top level or inside `namespace`.
    fn member(
        &mut self,
        spec: &ToolSpec,
        namespace: Option<&str>,
        at: &str,
        mode: UnsupportedTools,
    ) -> Result<(), Unsupported> {
        let custom = match spec.kind.as_str() {
            "function" => false,
            "custom" => true,
            other => return self.hosted(other, at, mode),
        };
        let name = required_name(spec, at)?;
        let chat_name = match namespace {
            Some(namespace) => {
                let flat = flat_name(namespace, name);
                self.namespaced.insert(flat.clone(), (namespace.to_owned(), name.to_owned()));
                flat
            }
            None => name.to_owned(),
        };
        if custom {
            self.custom.insert(chat_name.clone());
            self.chat.push(custom_tool(chat_name, spec));
        } else {
            self.chat.push(function_tool(chat_name, spec));
        }
        Ok(())
    }

    /// A tool only OpenAI's servers can run: dropped and named, or refused.
    fn hosted(&mut self, kind: &str, at: &str, mode: UnsupportedTools) -> Result<(), Unsupported> {
        match mode {
            UnsupportedTools::Reject => Err(Unsupported::new(
                format!("{at}.type"),
                format!(
                    "Tools of type '{kind}' are not supported: only 'function', 'custom' and 'namespace' tools can be used."
                ),
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

/// A custom tool as a function of one string, its raw input. A grammar the input must
/// follow (Codex's `apply_patch` sends a Lark grammar) is told in the description, since
/// no chat upstream can constrain a string argument by it.
fn custom_tool(name: String, spec: &ToolSpec) -> Tool {
    let mut description = spec.description.clone().unwrap_or_default();
    if let Some(note) = grammar_note(spec.format.as_ref()) {
        if !description.is_empty() {
            description.push_str("\n\n");
        }
        description.push_str(&note);
    }
    let parameters = json!({
        "type": "object",
        "properties": {"input": {"type": "string", "description": "The raw input for the tool"}},
        "required": ["input"],
        "additionalProperties": false,
    });
    Tool {
        kind: "function".to_owned(),
        function: FunctionDefinition {
            name,
            description: (!description.is_empty()).then_some(description),
            parameters: Some(parameters),
            strict: None,
        },
    }
}

/// `format: {"type": "grammar", "syntax", "definition"}` stated for the model.
fn grammar_note(format: Option<&Value>) -> Option<String> {
    let format = format?;
    if format.get("type").and_then(Value::as_str) != Some("grammar") {
        return None;
    }
    let definition = format.get("definition").and_then(Value::as_str).filter(|d| !d.is_empty())?;
    let syntax = format.get("syntax").and_then(Value::as_str).unwrap_or("lark");
    Some(format!("The input must follow this {syntax} grammar:\n{definition}"))
}

/// `tool_choice` for the chat request (`None` when no tool is left to choose).
pub(super) fn choice(choice: Option<&Value>, tools: &Tools) -> Result<Option<ToolChoice>, Unsupported> {
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
        // A custom tool is a chat function too.
        Some(kind @ ("function" | "custom")) => {
            let Some(name) = choice.get("name").and_then(Value::as_str) else {
                return Err(Unsupported::new(
                    "tool_choice.name",
                    format!("tool_choice.name: a {kind} tool must be named."),
                ));
            };
            let name = match choice.get("namespace").and_then(Value::as_str) {
                Some(namespace) => flat_name(namespace, name),
                // A tool inside a namespace may be named alone when the name is unique.
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
        // `allowed_tools` in auto mode, and a hosted or MCP tool (dropped here).
        _ => mode("auto"),
    }
}
