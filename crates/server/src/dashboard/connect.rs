//! `GET /dashboard/connect[?model=]`: the base URL and copy-ready snippets built from the
//! live catalog — curl, Python, Node, Codex CLI (`config.toml` and one profile file per
//! model), OpenCode (`opencode.json`) and Claude Code. Snippets name the key only as
//! `$TOKENROUTER_API_KEY`; no secret is ever in the page.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::Viewer;
use super::layout::{self, Nav};
use super::models::{catalog, is_chat};
use crate::routes::api_types::ModelEntry;
use crate::state::AppState;

/// The environment variable every snippet reads the key from.
const ENV_KEY: &str = "TOKENROUTER_API_KEY";
/// The provider's id in Codex's and OpenCode's configs.
const PROVIDER: &str = "tokenrouter";

#[derive(Debug, Default, Deserialize)]
pub struct Choice {
    model: Option<String>,
}

/// A string as a TOML literal, quotes included.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// A string as a JSON literal (also valid in Python and JavaScript).
fn js(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// A string inside single quotes for a POSIX shell.
fn shell_single(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A Codex profile name for a model id: letters, digits, `-` and `_` only.
pub fn profile_name(model: &str) -> String {
    let safe: String = model.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' }).collect();
    format!("tr-{safe}")
}

/// The model keys Codex reads; the output limit goes in a comment, since Codex 0.169
/// warns about `model_max_output_tokens` and ignores it (the gateway clamps longer asks).
fn codex_model_keys(model: &ModelEntry) -> String {
    format!(
        "model = {}\nmodel_provider = {}\nmodel_context_window = {}\n# max output: {} tokens\n",
        quoted(&model.id),
        quoted(PROVIDER),
        model.context_window,
        model.max_output_tokens
    )
}

/// `~/.codex/config.toml`: the default model and the gateway as a Responses provider.
pub fn codex_config(base_url: &str, default: &ModelEntry) -> String {
    format!(
        "# ~/.codex/config.toml\n{}\n[model_providers.{PROVIDER}]\nname = \"Token Router\"\nbase_url = {}\nenv_key = {}\nwire_api = \"responses\"\n",
        codex_model_keys(default),
        quoted(base_url),
        quoted(ENV_KEY),
    )
}

/// One Codex profile per model (`codex --profile tr-<model>` layers
/// `~/.codex/tr-<model>.config.toml` over config.toml): (file name, TOML).
pub fn codex_profiles(models: &[&ModelEntry]) -> Vec<(String, String)> {
    models.iter().map(|m| (format!("{}.config.toml", profile_name(&m.id)), codex_model_keys(m))).collect()
}

/// A shell script writing every profile file.
fn codex_profiles_script(models: &[&ModelEntry]) -> String {
    let mut out = String::from("# One profile per model; then run: codex --profile <name>\nmkdir -p ~/.codex\n");
    for (file, body) in codex_profiles(models) {
        out.push_str(&format!("cat > ~/.codex/{file} <<'EOF'\n{body}EOF\n"));
    }
    out
}

/// `opencode.json`: the gateway as an OpenAI-compatible provider with every chat model,
/// its limits and what it can do.
pub fn opencode_config(base_url: &str, models: &[&ModelEntry], default: &ModelEntry) -> String {
    let has = |m: &ModelEntry, cap: &str| m.capabilities.iter().any(|c| c == cap);
    let entries: serde_json::Map<String, serde_json::Value> = models
        .iter()
        .map(|m| {
            let entry = json!({
                "name": m.id,
                "limit": {"context": m.context_window, "output": m.max_output_tokens},
                "tool_call": has(m, "tools"),
                "reasoning": has(m, "reasoning"),
                "attachment": has(m, "vision"),
            });
            (m.id.clone(), entry)
        })
        .collect();
    let config = json!({
        "$schema": "https://opencode.ai/config.json",
        "provider": {
            PROVIDER: {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Token Router",
                "options": {"baseURL": base_url, "apiKey": format!("{{env:{ENV_KEY}}}")},
                "models": entries,
            }
        },
        "model": format!("{PROVIDER}/{}", default.id),
    });
    serde_json::to_string_pretty(&config).unwrap_or_default()
}

fn curl(base_url: &str, model: &str) -> String {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "Hello!"}]}).to_string();
    format!(
        "curl {base_url}/chat/completions \\\n  -H \"Authorization: Bearer ${ENV_KEY}\" \\\n  -H \"Content-Type: application/json\" \\\n  -d {}\n",
        shell_single(&body)
    )
}

fn python(base_url: &str, model: &str) -> String {
    format!(
        "# pip install openai\nimport os\n\nfrom openai import OpenAI\n\nclient = OpenAI(base_url={}, api_key=os.environ[\"{ENV_KEY}\"])\nresponse = client.chat.completions.create(\n    model={},\n    messages=[{{\"role\": \"user\", \"content\": \"Hello!\"}}],\n)\nprint(response.choices[0].message.content)\n",
        js(base_url),
        js(model)
    )
}

fn node(base_url: &str, model: &str) -> String {
    format!(
        "// npm install openai\nimport OpenAI from \"openai\";\n\nconst client = new OpenAI({{ baseURL: {}, apiKey: process.env.{ENV_KEY} }});\nconst response = await client.chat.completions.create({{\n  model: {},\n  messages: [{{ role: \"user\", content: \"Hello!\" }}],\n}});\nconsole.log(response.choices[0].message.content);\n",
        js(base_url),
        js(model)
    )
}

fn claude(origin: &str, model: &str) -> String {
    format!(
        "# Claude Code calls {origin}/v1/messages itself: the base URL has no /v1.\nexport ANTHROPIC_BASE_URL={}\nexport ANTHROPIC_AUTH_TOKEN=\"${ENV_KEY}\"\nunset ANTHROPIC_API_KEY\nexport ANTHROPIC_MODEL={}\nexport ANTHROPIC_DEFAULT_HAIKU_MODEL={}\nclaude\n",
        shell_single(origin),
        shell_single(model),
        shell_single(model)
    )
}

/// A titled snippet with its Copy button.
fn snippet(id: &str, title: &str, intro: Markup, text: &str) -> Markup {
    let heading = format!("{id}-h");
    html! {
        section.panel aria-labelledby=(heading) {
            div.row.snippet-head {
                h2 #(heading) { (title) }
                button.secondary type="button" data-copy=(format!("#{id}")) { "Copy" }
            }
            p.muted { (intro) }
            pre #(id) tabindex="0" { (text) }
        }
    }
}

/// The placeholder entry used when the catalog has no chat model yet.
fn placeholder() -> ModelEntry {
    ModelEntry {
        id: "MODEL_ID".to_owned(),
        owned_by: None,
        context_window: 128_000,
        max_output_tokens: 16_384,
        pricing: crate::routes::api_types::ModelPricing {
            input_usd_per_mtok: "0".to_owned(),
            cached_input_usd_per_mtok: "0".to_owned(),
            output_usd_per_mtok: "0".to_owned(),
        },
        capabilities: Vec::new(),
        status: "offline".to_owned(),
        deployments: 0,
    }
}

pub async fn page(State(state): State<AppState>, viewer: Viewer, Query(choice): Query<Choice>) -> Response {
    let all = catalog(&state, &viewer).await;
    let chat: Vec<&ModelEntry> = all.iter().filter(|m| is_chat(m)).collect();
    let fallback = placeholder();
    let default = choice
        .model
        .as_deref()
        .and_then(|id| chat.iter().find(|m| m.id == id))
        .or_else(|| chat.iter().find(|m| m.status == "online"))
        .or_else(|| chat.first())
        .copied()
        .unwrap_or(&fallback);
    let listed: Vec<&ModelEntry> = if chat.is_empty() { vec![default] } else { chat.clone() };
    let origin = state.config.load().server.public_origin();
    let base_url = format!("{origin}/v1");
    let env = html! { code { "$" (ENV_KEY) } };
    let body = html! {
        h1 { "Connect" }
        section.panel aria-labelledby="base-h" {
            h2 #base-h { "Base URL" }
            div.secret {
                code #base-url { (base_url) }
                button.secondary type="button" data-copy="#base-url" { "Copy" }
            }
            p.muted {
                "OpenAI-compatible: chat completions, responses, completions, embeddings and models. "
                "Anthropic clients use " code { (origin) } " (they add " code { "/v1/messages" } ")."
            }
        }
        p.notice {
            "The snippets read your key from " (env) ": "
            a href="/dashboard/keys" { "create a key" } ", then run "
            code { "export " (ENV_KEY) "=sk-tr-…" } " in your shell. Keys are never shown here."
        }
        @if chat.is_empty() {
            p.notice.warn { "No chat model is configured yet: the snippets use MODEL_ID as a placeholder." }
        } @else {
            form.filters method="get" action="/dashboard/connect" {
                label {
                    "Default model"
                    select name="model" data-autosubmit {
                        @for m in &chat {
                            option value=(m.id) selected[m.id == default.id] {
                                (m.id) @if m.status != "online" { " (offline)" }
                            }
                        }
                    }
                }
                button type="submit" { "Use model" }
            }
        }
        (snippet("snippet-curl", "curl", html! { "One chat completion from a shell." }, &curl(&base_url, &default.id)))
        (snippet("snippet-python", "Python", html! { "With the official " code { "openai" } " package." }, &python(&base_url, &default.id)))
        (snippet("snippet-node", "Node.js", html! { "With the official " code { "openai" } " package (an ES module)." }, &node(&base_url, &default.id)))
        (snippet("snippet-codex", "Codex CLI", html! {
            "Save as " code { "~/.codex/config.toml" } ", export " (env) " and run " code { "codex" } ". "
            "Codex talks to the gateway's Responses API."
        }, &codex_config(&base_url, default)))
        (snippet("snippet-codex-profiles", "Codex CLI profiles", html! {
            "One profile file per model, each with its context window: "
            code { "codex --profile " (profile_name(&default.id)) } " picks that model."
        }, &codex_profiles_script(&listed)))
        (snippet("snippet-opencode", "OpenCode", html! {
            "Save as " code { "opencode.json" } " in your project (or " code { "~/.config/opencode/opencode.json" } "); "
            "every chat model is listed with its limits."
        }, &opencode_config(&base_url, &listed, default)))
        (snippet("snippet-claude", "Claude Code", html! {
            "Claude Code speaks the Anthropic Messages API, which the gateway serves for every chat model."
        }, &claude(&origin, &default.id)))
    };
    layout::shell_with(&viewer, Nav::Connect, &["connect.js"], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::api_types::ModelPricing;

    fn entry(id: &str, window: u64, out: u64, caps: &[&str]) -> ModelEntry {
        ModelEntry {
            id: id.to_owned(),
            owned_by: Some("mock".to_owned()),
            context_window: window,
            max_output_tokens: out,
            pricing: ModelPricing {
                input_usd_per_mtok: "1".to_owned(),
                cached_input_usd_per_mtok: "0.5".to_owned(),
                output_usd_per_mtok: "2".to_owned(),
            },
            capabilities: caps.iter().map(|c| (*c).to_owned()).collect(),
            status: "online".to_owned(),
            deployments: 1,
        }
    }

    #[test]
    fn codex_and_opencode_configs_parse_and_carry_the_catalog() {
        let a = entry("gpt-4o-mini", 128_000, 16_384, &["tools", "vision"]);
        let b = entry("deep/r1:7b \"q\"", 8_000, 8_000, &["reasoning"]);
        let models = [&a, &b];
        let base = "https://gw.example/v1";

        let config: toml::Table = codex_config(base, &a).parse().unwrap();
        assert_eq!(config["model"].as_str(), Some("gpt-4o-mini"));
        assert_eq!(config["model_provider"].as_str(), Some(PROVIDER));
        assert_eq!(config["model_context_window"].as_integer(), Some(128_000));
        assert!(codex_config(base, &a).contains("# max output: 16384 tokens\n"));
        assert!(config.get("profiles").is_none(), "Codex ≥ 0.134 refuses --profile next to [profiles.*]");
        let provider = &config["model_providers"][PROVIDER];
        assert_eq!(provider["base_url"].as_str(), Some(base));
        assert_eq!(provider["env_key"].as_str(), Some(ENV_KEY));
        assert_eq!(provider["wire_api"].as_str(), Some("responses"));

        let profiles = codex_profiles(&models);
        assert_eq!(profiles[0].0, "tr-gpt-4o-mini.config.toml");
        assert_eq!(profiles[1].0, "tr-deep-r1-7b--q-.config.toml");
        for ((_, body), model) in profiles.iter().zip(models) {
            let profile: toml::Table = body.parse().unwrap();
            assert_eq!(profile["model"].as_str(), Some(model.id.as_str()));
            assert_eq!(profile["model_provider"].as_str(), Some(PROVIDER));
            assert_eq!(
                profile["model_context_window"].as_integer(),
                Some(i64::try_from(model.context_window).unwrap())
            );
        }
        assert!(codex_profiles_script(&models).contains("cat > ~/.codex/tr-gpt-4o-mini.config.toml <<'EOF'\n"));

        let opencode: serde_json::Value = serde_json::from_str(&opencode_config(base, &models, &b)).unwrap();
        let provider = &opencode["provider"][PROVIDER];
        assert_eq!(provider["npm"], "@ai-sdk/openai-compatible");
        assert_eq!(provider["options"]["baseURL"], base);
        assert_eq!(provider["options"]["apiKey"], "{env:TOKENROUTER_API_KEY}");
        assert_eq!(provider["models"]["gpt-4o-mini"]["limit"], json!({"context": 128_000, "output": 16_384}));
        assert_eq!(provider["models"]["gpt-4o-mini"]["tool_call"], true);
        assert_eq!(provider["models"]["gpt-4o-mini"]["reasoning"], false);
        assert_eq!(provider["models"][&b.id]["reasoning"], true);
        assert_eq!(opencode["model"], format!("{PROVIDER}/{}", b.id));
    }

    #[test]
    fn shell_snippets_quote_what_they_embed() {
        assert_eq!(shell_single("it's"), r"'it'\''s'");
        let c = curl("http://127.0.0.1:8080/v1", "gpt-4o-mini");
        assert!(c.contains("$TOKENROUTER_API_KEY") && c.contains("\"model\":\"gpt-4o-mini\""), "{c}");
        let cc = claude("http://127.0.0.1:8080", "m");
        assert!(cc.contains("ANTHROPIC_BASE_URL='http://127.0.0.1:8080'\n"), "{cc}");
        assert!(cc.contains("ANTHROPIC_AUTH_TOKEN=\"$TOKENROUTER_API_KEY\""), "{cc}");
    }
}
