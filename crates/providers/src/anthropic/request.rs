//! The canonical request as a Messages API body: sampling and limits, tools and tool
//! choice, reasoning effort as a thinking budget, JSON modes as a forced tool, and the
//! fields Anthropic cannot express refused by name.

use serde_json::{Value, json};
use tokenrouter_core::chat::{ChatRequest, ResponseFormat, ToolChoice as ChatToolChoice};

use super::messages;
use super::wire::{MessagesRequest, Metadata, ThinkingConfig, ToolChoice, ToolDefinition};
use super::{JSON_TOOL_PREFIX, is_json_tool};
use crate::adapter::{Target, Unsupported};

/// Anthropic's limit on a tool name's length.
const TOOL_NAME_MAX: usize = 64;

pub(super) fn encode(request: &ChatRequest, target: &Target<'_>, stream: bool) -> Result<MessagesRequest, Unsupported> {
    refuse_inexpressible(request)?;
    let conversation = messages::convert(&request.messages)?;
    let mut tools = tool_definitions(request)?;
    let mut choice = tool_choice(request, !tools.is_empty())?;
    if let Some(json_tool) = json_tool(request.response_format.as_ref()) {
        choice = match choice {
            // The model may still call the client's tools, or answer through this one.
            Some(ToolChoice::Auto { disable_parallel_tool_use } | ToolChoice::Any { disable_parallel_tool_use }) => {
                Some(ToolChoice::Any { disable_parallel_tool_use })
            }
            Some(named @ ToolChoice::Tool { .. }) => Some(named),
            Some(ToolChoice::None) | None => {
                Some(ToolChoice::Tool { name: json_tool.name.clone(), disable_parallel_tool_use: None })
            }
        };
        tools.push(json_tool);
    }
    // Anthropic thinks only when the model may choose not to call a tool.
    let forced = matches!(choice, Some(ToolChoice::Any { .. } | ToolChoice::Tool { .. }));
    let budget = thinking_budget(request.reasoning_effort.as_deref())?.filter(|_| !forced);
    let wanted = request.max_output().unwrap_or(target.max_output_tokens);
    let max_tokens = match budget {
        Some(budget) if wanted <= budget => budget.saturating_add(wanted),
        _ => wanted,
    };
    // With thinking on, Anthropic requires the default sampling. Recent models also
    // refuse `temperature` and `top_p` together: `temperature` is kept.
    let (temperature, top_p) = match budget {
        Some(_) => (None, None),
        None => (request.temperature, request.top_p.filter(|_| request.temperature.is_none())),
    };
    Ok(MessagesRequest {
        model: target.upstream_model.to_owned(),
        max_tokens,
        system: conversation.system,
        messages: conversation.messages,
        tools,
        // Anthropic's default needs no saying.
        tool_choice: choice.filter(|c| *c != ToolChoice::Auto { disable_parallel_tool_use: None }),
        thinking: budget.map(|budget_tokens| ThinkingConfig::Enabled { budget_tokens }),
        stop_sequences: request.stop.as_ref().map(|s| s.to_vec()).unwrap_or_default(),
        temperature,
        top_p,
        metadata: request.user.as_ref().map(|user| Metadata { user_id: Some(user.clone()) }),
        stream: stream.then_some(true),
    })
}

/// Refuses what Anthropic has no way to do; harmless extras are simply not sent.
fn refuse_inexpressible(request: &ChatRequest) -> Result<(), Unsupported> {
    if request.n.is_some_and(|n| n > 1) {
        return Err(Unsupported::new("n", "Anthropic models return one choice: 'n' must be 1."));
    }
    let extra = |key: &str| request.extra.get(key).filter(|v| !v.is_null());
    if extra("logprobs").is_some_and(|v| v.as_bool() == Some(true)) {
        return Err(Unsupported::new("logprobs", "Anthropic models do not return log probabilities."));
    }
    for penalty in ["presence_penalty", "frequency_penalty"] {
        if extra(penalty).is_some_and(|v| v.as_f64() != Some(0.0)) {
            return Err(Unsupported::new(penalty, format!("'{penalty}' is not supported by Anthropic models.")));
        }
    }
    if extra("logit_bias").is_some_and(|v| v.as_object().is_none_or(|m| !m.is_empty())) {
        return Err(Unsupported::new("logit_bias", "'logit_bias' is not supported by Anthropic models."));
    }
    if extra("audio").is_some() {
        return Err(Unsupported::new("audio", "Audio output is not supported by Anthropic models."));
    }
    if extra("modalities").and_then(Value::as_array).is_some_and(|m| m.iter().any(|v| v.as_str() == Some("audio"))) {
        return Err(Unsupported::new("modalities", "Audio output is not supported by Anthropic models."));
    }
    if extra("functions").is_some() {
        return Err(Unsupported::new(
            "functions",
            "Use 'tools' instead of the deprecated 'functions' for Anthropic models.",
        ));
    }
    Ok(())
}

fn tool_definitions(request: &ChatRequest) -> Result<Vec<ToolDefinition>, Unsupported> {
    let tools = request.tools.as_deref().unwrap_or_default();
    tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            if tool.kind != "function" {
                return Err(Unsupported::new(
                    format!("tools[{i}].type"),
                    "Only function tools are supported for Anthropic models.",
                ));
            }
            if is_json_tool(&tool.function.name) {
                return Err(Unsupported::new(
                    format!("tools[{i}].function.name"),
                    format!("Tool names starting with '{JSON_TOOL_PREFIX}' are reserved."),
                ));
            }
            Ok(ToolDefinition {
                name: tool.function.name.clone(),
                description: tool.function.description.clone(),
                input_schema: tool
                    .function
                    .parameters
                    .clone()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            })
        })
        .collect()
}

fn tool_choice(request: &ChatRequest, has_tools: bool) -> Result<Option<ToolChoice>, Unsupported> {
    let disable_parallel_tool_use = (request.parallel_tool_calls == Some(false)).then_some(true);
    let choice = match &request.tool_choice {
        None => ToolChoice::Auto { disable_parallel_tool_use },
        Some(ChatToolChoice::Mode(mode)) => match mode.as_str() {
            "auto" => ToolChoice::Auto { disable_parallel_tool_use },
            "required" => ToolChoice::Any { disable_parallel_tool_use },
            "none" => ToolChoice::None,
            _ => {
                return Err(Unsupported::new(
                    "tool_choice",
                    "'tool_choice' must be 'none', 'auto', 'required' or a named function.",
                ));
            }
        },
        Some(ChatToolChoice::Named(named)) => {
            ToolChoice::Tool { name: named.function.name.clone(), disable_parallel_tool_use }
        }
    };
    // Without tools there is nothing to choose.
    Ok(has_tools.then_some(choice))
}

/// The tool a JSON response format becomes: the model answers by calling it.
fn json_tool(format: Option<&ResponseFormat>) -> Option<ToolDefinition> {
    let (name, description, schema) = match format? {
        ResponseFormat::Text => return None,
        ResponseFormat::JsonObject => ("json_object", None, None),
        ResponseFormat::JsonSchema { json_schema } => {
            (json_schema.name.as_str(), json_schema.description.clone(), json_schema.schema.clone())
        }
    };
    let room = TOOL_NAME_MAX - JSON_TOOL_PREFIX.len();
    let name: String = name.chars().take(room).collect();
    Some(ToolDefinition {
        name: format!("{JSON_TOOL_PREFIX}{name}"),
        description: Some(description.unwrap_or_else(|| {
            "Give your final answer by calling this tool: its input is the answer, as JSON.".to_owned()
        })),
        input_schema: schema.unwrap_or_else(|| json!({"type": "object"})),
    })
}

/// The thinking budget for an OpenAI `reasoning_effort`.
fn thinking_budget(effort: Option<&str>) -> Result<Option<u64>, Unsupported> {
    match effort {
        None | Some("none") => Ok(None),
        Some("minimal" | "low") => Ok(Some(1024)),
        Some("medium") => Ok(Some(4096)),
        Some("high") => Ok(Some(16384)),
        Some(_) => Err(Unsupported::new(
            "reasoning_effort",
            "'reasoning_effort' must be one of 'minimal', 'low', 'medium' or 'high'.",
        )),
    }
}
