//! Encoding of a request's options: the fields refused, tools and tool choice, and the
//! generation config (sampling, limits, response format, thinking).

use std::borrow::Cow;

use serde_json::{Map, Value};
use tokenrouter_core::chat::{ChatRequest, ResponseFormat, ToolChoice};

use super::wire::{FunctionCallingConfig, FunctionDeclaration, GenerationConfig, ThinkingConfig, Tool, ToolConfig};
use crate::adapter::Unsupported;

/// Refuses the fields Gemini cannot honour; everything else in `extra` is dropped.
pub(crate) fn check_extra(extra: &Map<String, Value>) -> Result<(), Unsupported> {
    for (key, value) in extra {
        let refused = match key.as_str() {
            "logprobs" => value.as_bool() == Some(true),
            "top_logprobs" => value.as_u64().is_some_and(|n| n > 0),
            "logit_bias" => value.as_object().is_some_and(|m| !m.is_empty()),
            "modalities" => value.as_array().is_some_and(|m| m.iter().any(|v| v.as_str() == Some("audio"))),
            "audio" | "web_search_options" | "functions" | "function_call" => !value.is_null(),
            _ => false,
        };
        if refused {
            return Err(Unsupported::new(key.as_str(), format!("'{key}' is not supported by Gemini models.")));
        }
    }
    Ok(())
}

pub(crate) fn tools(request: &ChatRequest) -> Result<Option<Tool>, Unsupported> {
    let Some(tools) = request.tools.as_deref().filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let mut declarations = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        if tool.kind != "function" {
            return Err(Unsupported::new(
                format!("tools[{i}].type"),
                format!("Tool type '{}' is not supported by Gemini models.", tool.kind),
            ));
        }
        declarations.push(FunctionDeclaration {
            name: tool.function.name.clone(),
            description: tool.function.description.clone(),
            parameters_json_schema: tool.function.parameters.clone().map(without_meta_schema),
            parameters: None,
        });
    }
    Ok(Some(Tool { function_declarations: declarations, other: Map::new() }))
}

/// Drops the `$schema` declaration: it says which JSON Schema dialect, which Gemini fixes.
fn without_meta_schema(mut schema: Value) -> Value {
    if let Some(map) = schema.as_object_mut() {
        map.remove("$schema");
    }
    schema
}

pub(crate) fn tool_config(choice: Option<&ToolChoice>) -> Result<Option<ToolConfig>, Unsupported> {
    let config = |mode: &'static str, names| {
        let mode = Cow::Borrowed(mode);
        Some(ToolConfig { function_calling_config: FunctionCallingConfig { mode, allowed_function_names: names } })
    };
    match choice {
        None => Ok(None),
        Some(ToolChoice::Mode(mode)) => match mode.as_str() {
            "auto" => Ok(config("AUTO", None)),
            "none" => Ok(config("NONE", None)),
            "required" => Ok(config("ANY", None)),
            other => Err(Unsupported::new("tool_choice", format!("Unknown tool_choice '{other}'."))),
        },
        Some(ToolChoice::Named(named)) if named.kind == "function" => {
            Ok(config("ANY", Some(vec![named.function.name.clone()])))
        }
        Some(ToolChoice::Named(named)) => Err(Unsupported::new(
            "tool_choice.type",
            format!("tool_choice type '{}' is not supported by Gemini models.", named.kind),
        )),
    }
}

pub(crate) fn generation_config(request: &ChatRequest, model: &str) -> Result<Option<GenerationConfig>, Unsupported> {
    let extra_f64 = |key: &str| request.extra.get(key).and_then(Value::as_f64);
    let mut config = GenerationConfig {
        temperature: request.temperature,
        top_p: request.top_p,
        max_output_tokens: request.max_output(),
        stop_sequences: request.stop.as_ref().map(|s| s.to_vec()).unwrap_or_default(),
        candidate_count: request.n,
        seed: request.seed,
        presence_penalty: extra_f64("presence_penalty"),
        frequency_penalty: extra_f64("frequency_penalty"),
        ..GenerationConfig::default()
    };
    match &request.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => config.response_mime_type = Some(Cow::Borrowed("application/json")),
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            config.response_mime_type = Some(Cow::Borrowed("application/json"));
            config.response_json_schema = json_schema.schema.clone().map(without_meta_schema);
        }
    }
    if let Some(effort) = &request.reasoning_effort {
        let budget = thinking_budget(effort, model).ok_or_else(|| {
            Unsupported::new(
                "reasoning_effort",
                format!("Unknown reasoning_effort '{effort}': expected minimal, low, medium or high."),
            )
        })?;
        config.thinking_config = Some(ThinkingConfig {
            thinking_budget: Some(i64::from(budget)),
            include_thoughts: Some(true),
            thinking_level: None,
        });
    }
    Ok((config != GenerationConfig::default()).then_some(config))
}

/// Thinking tokens for an effort. Pro models cannot turn thinking off: their least is 128.
fn thinking_budget(effort: &str, model: &str) -> Option<u32> {
    match effort {
        "none" | "minimal" if model.contains("pro") => Some(128),
        "none" | "minimal" => Some(0),
        "low" => Some(1024),
        "medium" => Some(8192),
        "high" => Some(24576),
        _ => None,
    }
}
