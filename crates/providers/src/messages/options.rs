//! The request's controls in chat's terms: the client's own tools as functions (server
//! tools, which only Anthropic can run, left out by name), the tool choice, the thinking
//! configuration as a `reasoning_effort`, and a JSON output format as `response_format`.

use serde_json::json;
use tokenrouter_core::chat::{
    FunctionDefinition, JsonSchema, NamedFunction, NamedToolChoice, ResponseFormat, Tool, ToolChoice as ChatToolChoice,
};

use super::request::{OutputConfig, OutputFormat, Thinking, ToolSpec};
use crate::adapter::Unsupported;
use crate::anthropic::wire::ToolChoice;

/// The client's tools as functions, and the names of the server tools left out.
pub(super) fn tools(specs: Vec<ToolSpec>) -> Result<(Vec<Tool>, Vec<String>), Unsupported> {
    let mut functions = Vec::new();
    let mut dropped = Vec::new();
    for (i, spec) in specs.into_iter().enumerate() {
        if !spec.is_custom() {
            dropped.push(spec.name.or(spec.kind).unwrap_or_default());
            continue;
        }
        let name = spec
            .name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| Unsupported::new(format!("tools.{i}.name"), format!("tools.{i}.name: Field required")))?;
        functions.push(Tool {
            kind: "function".to_owned(),
            function: FunctionDefinition {
                name,
                description: spec.description,
                parameters: Some(spec.input_schema.unwrap_or_else(|| json!({"type": "object", "properties": {}}))),
                strict: None,
            },
        });
    }
    Ok((functions, dropped))
}

/// The chat tool choice and `parallel_tool_calls` for Anthropic's `tool_choice`. With no
/// function left to call there is nothing to choose (chat refuses a choice without tools).
pub(super) fn tool_choice(
    choice: Option<ToolChoice>,
    functions: &[Tool],
    dropped: &[String],
) -> Result<(Option<ChatToolChoice>, Option<bool>), Unsupported> {
    let Some(choice) = choice.filter(|_| !functions.is_empty()) else {
        return Ok((None, None));
    };
    let mode = |mode: &str| Some(ChatToolChoice::Mode(mode.to_owned()));
    let (chat, disable_parallel) = match choice {
        ToolChoice::Auto { disable_parallel_tool_use } => (mode("auto"), disable_parallel_tool_use),
        ToolChoice::Any { disable_parallel_tool_use } => (mode("required"), disable_parallel_tool_use),
        ToolChoice::None => (mode("none"), None),
        ToolChoice::Tool { name, disable_parallel_tool_use } => {
            if dropped.contains(&name) {
                return Err(Unsupported::new(
                    "tool_choice.name",
                    format!("The tool '{name}' is one of Anthropic's server tools, which this model cannot run."),
                ));
            }
            let named = NamedToolChoice { kind: "function".to_owned(), function: NamedFunction { name } };
            (Some(ChatToolChoice::Named(named)), disable_parallel_tool_use)
        }
    };
    Ok((chat, (disable_parallel == Some(true)).then_some(false)))
}

/// The `reasoning_effort` for a thinking configuration: an explicit budget by the budgets
/// the Anthropic adapter sends for each effort (1024, 4096, 16384), adaptive thinking by
/// `output_config.effort` (medium when unsaid), none when thinking is off.
pub(super) fn reasoning_effort(thinking: Option<&Thinking>, config: Option<&OutputConfig>) -> Option<String> {
    let effort = match thinking? {
        Thinking::Enabled { budget_tokens } => match budget_tokens {
            0..4096 => "low",
            4096..16384 => "medium",
            _ => "high",
        },
        Thinking::Adaptive => match config.and_then(|c| c.effort.as_deref()) {
            Some("low") => "low",
            // Chat's highest effort is `high`.
            Some("high" | "xhigh" | "max") => "high",
            _ => "medium",
        },
        Thinking::Disabled | Thinking::Other => return None,
    };
    Some(effort.to_owned())
}

/// A JSON schema output format as chat's `response_format`.
pub(super) fn response_format(format: Option<OutputFormat>) -> Result<Option<ResponseFormat>, Unsupported> {
    let Some(format) = format else {
        return Ok(None);
    };
    if format.kind != "json_schema" {
        return Err(Unsupported::new(
            "output_config.format.type",
            format!("Output format '{}' is not supported: use 'json_schema'.", format.kind),
        ));
    }
    Ok(Some(ResponseFormat::JsonSchema {
        json_schema: JsonSchema { name: "output".to_owned(), description: None, schema: format.schema, strict: None },
    }))
}
