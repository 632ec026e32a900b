//! The request's controls in chat's terms: function declarations as tools (Google's own
//! tools left out by name), `toolConfig` as the tool choice, and `generationConfig` as
//! sampling, limits, response format and reasoning effort.

use serde_json::{Map, Value, json};
use tokenrouter_core::chat::{
    FunctionDefinition, JsonSchema, NamedFunction, NamedToolChoice, ResponseFormat, Tool as ChatTool, ToolChoice,
};

use crate::adapter::Unsupported;
use crate::gemini::wire::{GenerationConfig, ThinkingConfig, Tool, ToolConfig};
use crate::responses::UnsupportedTools;

/// The client's functions as chat tools, and the names of Google's own tools left out.
pub(super) fn tools(
    tools: Vec<Tool>,
    unsupported: UnsupportedTools,
) -> Result<(Vec<ChatTool>, Vec<String>), Unsupported> {
    let mut functions = Vec::new();
    let mut dropped = Vec::new();
    for (i, tool) in tools.into_iter().enumerate() {
        for name in tool.other.keys() {
            if unsupported == UnsupportedTools::Reject {
                return Err(Unsupported::new(
                    format!("tools[{i}].{name}"),
                    format!("The tool '{name}' is one of Google's own tools, which this model cannot run."),
                ));
            }
            if !dropped.contains(name) {
                dropped.push(name.clone());
            }
        }
        for (j, declaration) in tool.function_declarations.into_iter().enumerate() {
            if declaration.name.is_empty() {
                return Err(Unsupported::new(
                    format!("tools[{i}].functionDeclarations[{j}].name"),
                    "A function declaration needs a name.",
                ));
            }
            let parameters = match (declaration.parameters_json_schema, declaration.parameters) {
                (Some(schema), _) => schema,
                (None, Some(schema)) => json_schema(schema),
                (None, None) => json!({"type": "object", "properties": {}}),
            };
            functions.push(ChatTool {
                kind: "function".to_owned(),
                function: FunctionDefinition {
                    name: declaration.name,
                    description: declaration.description,
                    parameters: Some(parameters),
                    strict: None,
                },
            });
        }
    }
    Ok((functions, dropped))
}

/// Chat's tool choice for `functionCallingConfig`. `ANY` with allowed names narrows the
/// tools to those (one name is a named choice). With no function there is nothing to choose.
pub(super) fn tool_choice(
    config: Option<ToolConfig>,
    tools: &mut Vec<ChatTool>,
) -> Result<Option<ToolChoice>, Unsupported> {
    let Some(config) = config.map(|c| c.function_calling_config).filter(|_| !tools.is_empty()) else {
        return Ok(None);
    };
    let mode = |m: &str| Ok(Some(ToolChoice::Mode(m.to_owned())));
    match config.mode.to_ascii_uppercase().as_str() {
        "" | "MODE_UNSPECIFIED" | "VALIDATED" => Ok(None),
        "AUTO" => mode("auto"),
        "NONE" => mode("none"),
        "ANY" => {
            let names = config.allowed_function_names.unwrap_or_default();
            if let Some(unknown) = names.iter().find(|n| !tools.iter().any(|t| &t.function.name == *n)) {
                return Err(Unsupported::new(
                    "toolConfig.functionCallingConfig.allowedFunctionNames",
                    format!("'{unknown}' is not one of the declared functions."),
                ));
            }
            match names.as_slice() {
                [] => mode("required"),
                [name] => Ok(Some(ToolChoice::Named(NamedToolChoice {
                    kind: "function".to_owned(),
                    function: NamedFunction { name: name.clone() },
                }))),
                _ => {
                    tools.retain(|t| names.contains(&t.function.name));
                    mode("required")
                }
            }
        }
        other => Err(Unsupported::new(
            "toolConfig.functionCallingConfig.mode",
            format!("Unknown mode '{other}': use AUTO, ANY or NONE."),
        )),
    }
}

/// `generationConfig` in chat's terms.
#[derive(Debug, Default)]
pub(super) struct Generation {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_tokens: Option<u64>,
    pub stop: Vec<String>,
    pub candidates: Option<u32>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub response_format: Option<ResponseFormat>,
    pub reasoning_effort: Option<String>,
    pub include_thoughts: bool,
}

pub(super) fn generation(config: GenerationConfig) -> Result<Generation, Unsupported> {
    let at = |field: &str| format!("generationConfig.{field}");
    if config.response_logprobs == Some(true) {
        return Err(Unsupported::new(
            at("responseLogprobs"),
            "Log probabilities cannot be passed on to other providers.",
        ));
    }
    if config.speech_config.is_some() {
        return Err(Unsupported::new(at("speechConfig"), "Speech output cannot be passed on to other providers."));
    }
    if let Some(other) = config.response_modalities.iter().flatten().find(|m| !m.eq_ignore_ascii_case("text")) {
        return Err(Unsupported::new(
            at("responseModalities"),
            format!("The modality '{other}' cannot be passed on to other providers: only TEXT."),
        ));
    }
    let response_format = response_format(
        config.response_mime_type.as_deref(),
        config.response_json_schema,
        config.response_schema.map(json_schema),
    )?;
    let (reasoning_effort, include_thoughts) = thinking(config.thinking_config)?;
    Ok(Generation {
        temperature: config.temperature,
        top_p: config.top_p,
        max_tokens: config.max_output_tokens,
        stop: config.stop_sequences,
        candidates: config.candidate_count,
        seed: config.seed,
        presence_penalty: config.presence_penalty,
        frequency_penalty: config.frequency_penalty,
        response_format,
        reasoning_effort,
        include_thoughts,
    })
}

fn response_format(
    mime: Option<&str>,
    json_schema: Option<Value>,
    schema: Option<Value>,
) -> Result<Option<ResponseFormat>, Unsupported> {
    let schema = json_schema.or(schema);
    match mime.map(str::to_ascii_lowercase).as_deref() {
        None | Some("" | "text/plain") if schema.is_none() => Ok(None),
        None | Some("" | "text/plain" | "application/json") => Ok(Some(match schema {
            Some(schema) => ResponseFormat::JsonSchema {
                json_schema: JsonSchema {
                    name: "response".to_owned(),
                    description: None,
                    schema: Some(schema),
                    strict: None,
                },
            },
            None => ResponseFormat::JsonObject,
        })),
        Some(other) => Err(Unsupported::new(
            "generationConfig.responseMimeType",
            format!("responseMimeType '{other}' cannot be passed on: use 'text/plain' or 'application/json'."),
        )),
    }
}

/// The reasoning effort for a thinking configuration, and whether thoughts are shown.
fn thinking(config: Option<ThinkingConfig>) -> Result<(Option<String>, bool), Unsupported> {
    let Some(config) = config else {
        return Ok((None, false));
    };
    let include = config.include_thoughts == Some(true);
    let effort = match (config.thinking_level.as_deref().map(str::to_ascii_lowercase), config.thinking_budget) {
        (Some(level), _) => match level.as_str() {
            "minimal" | "low" | "medium" | "high" => Some(level),
            "thinking_level_unspecified" | "" => None,
            _ => {
                return Err(Unsupported::new(
                    "generationConfig.thinkingConfig.thinkingLevel",
                    format!("Unknown thinkingLevel '{level}': use minimal, low, medium or high."),
                ));
            }
        },
        (None, Some(0)) => Some("none".to_owned()),
        (None, Some(budget)) if budget < 0 => Some("medium".to_owned()),
        (None, Some(1..=1024)) => Some("low".to_owned()),
        (None, Some(1025..=8192)) => Some("medium".to_owned()),
        (None, Some(_)) => Some("high".to_owned()),
        // Thoughts asked for without a budget: the model's own default.
        (None, None) if include => Some("medium".to_owned()),
        (None, None) => None,
    };
    Ok((effort, include))
}

/// Google's OpenAPI-subset schema (`type: "OBJECT"`, `nullable`, `propertyOrdering`) as
/// JSON Schema.
pub(super) fn json_schema(schema: Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(schema_object(map)),
        Value::Array(items) => Value::Array(items.into_iter().map(json_schema).collect()),
        other => other,
    }
}

fn schema_object(map: Map<String, Value>) -> Map<String, Value> {
    let nullable = map.get("nullable").and_then(Value::as_bool) == Some(true);
    let mut out = Map::with_capacity(map.len());
    for (key, value) in map {
        let key = match key.as_str() {
            "nullable" | "propertyOrdering" | "property_ordering" => continue,
            "any_of" => "anyOf".to_owned(),
            "max_items" => "maxItems".to_owned(),
            "min_items" => "minItems".to_owned(),
            _ => key,
        };
        let value = match key.as_str() {
            "type" => match value {
                Value::String(t) => {
                    let t = Value::String(t.to_ascii_lowercase());
                    if nullable { json!([t, "null"]) } else { t }
                }
                other => other,
            },
            "properties" => match value {
                Value::Object(props) => Value::Object(props.into_iter().map(|(k, v)| (k, json_schema(v))).collect()),
                other => other,
            },
            "items" | "anyOf" => json_schema(value),
            _ => value,
        };
        out.insert(key, value);
    }
    out
}
