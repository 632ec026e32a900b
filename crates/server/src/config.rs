//! The validated configuration: providers, models with their deployments and prices, and
//! server settings. Built from a TOML file (every error reported at once, with its path)
//! or, with no file, from the environment and the built-in catalog.

mod auth;
pub mod catalog;
pub mod env;
#[cfg(test)]
mod example;
mod instances;
mod jobs;
mod position;
pub mod raw;
mod redis;
mod server;
mod telemetry;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokenrouter_core::{NanoUsd, Price, ToolPrices};
pub use tokenrouter_providers::responses::UnsupportedTools;

use crate::routing::Strategy;
pub use tokenrouter_providers::openai::Dialect;

pub use auth::{AuthConfig, GithubConfig};
pub use env::Env;
pub use instances::InstancesConfig;
pub use jobs::JobsConfig;
use raw::{RawDeployment, RawModel, RawProvider, RawRedis, RawServer};
pub use redis::RedisConfig;
use server::build_server;
pub use server::{Billing, ServerConfig};
pub use telemetry::{LogFormat, TelemetryConfig};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// What a model's `capabilities` may name.
const CAPABILITIES: &[&str] = &["tools", "vision", "json", "reasoning", "embeddings", "completions", "audio"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    OpenAi,
    Anthropic,
    Gemini,
}

impl ProviderKind {
    fn parse(text: &str) -> Option<ProviderKind> {
        match text {
            "openai" => Some(ProviderKind::OpenAi),
            "anthropic" => Some(ProviderKind::Anthropic),
            "gemini" => Some(ProviderKind::Gemini),
            _ => None,
        }
    }

    /// The name `kind = "…"` gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
        }
    }
}

pub struct Provider {
    pub name: String,
    pub kind: ProviderKind,
    /// Without a trailing slash, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    pub api_key: Option<String>,
    /// `Bearer <api_key>`, built once and marked sensitive so it is never logged.
    pub authorization: Option<http::HeaderValue>,
    /// The key alone, for providers that take it in a header of their own.
    pub key_header: Option<http::HeaderValue>,
    pub timeout: Option<Duration>,
    /// The quirks of an OpenAI-compatible upstream.
    pub dialect: Dialect,
    /// Serves `/responses` itself: Responses API requests pass through untranslated.
    pub responses_api: bool,
    /// A community instance (never configured: built by the routing table, named
    /// `instance:<id>`), called through the address-checked client only.
    pub instance: Option<Arc<crate::instances::routing::Serving>>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("dialect", &self.dialect)
            .field("responses_api", &self.responses_api)
            .field("instance", &self.instance.as_ref().map(|i| i.id.as_str()))
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct Deployment {
    pub provider: Arc<Provider>,
    pub upstream_model: String,
    pub weight: u32,
    /// What this upstream costs, when it differs from the model's price.
    pub price: Option<Price>,
    /// What the client pays per hosted tool call served here: the model's `tool_prices`,
    /// else the price the provider kind running it publishes (Anthropic's web search), else
    /// 0. Looked up by the provider that runs the model, never by the model's id: a Claude
    /// model behind an OpenAI-compatible upstream is not charged Anthropic's price.
    pub tools: ToolPrices,
    /// How long to wait for the first byte of the answer.
    pub timeout: Duration,
    /// The longest silence between two chunks of a stream.
    pub idle_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Model {
    pub id: String,
    pub context_window: u64,
    pub max_output_tokens: u64,
    pub price: Price,
    pub capabilities: Vec<String>,
    pub deployments: Vec<Deployment>,
    /// This model's routing strategy, when it has its own.
    pub strategy: Option<Strategy>,
    /// Models tried in order after this one's deployments all failed.
    pub fallbacks: Vec<String>,
    /// Community instances may serve this model (§7); it may then have no deployment of
    /// its own.
    pub instances: bool,
    /// The `usage.prompt_tokens` this model's tokenizer gives the probe's canary: an
    /// instance reporting another count runs a different model.
    pub canary_prompt_tokens: Option<u64>,
}

impl Model {
    /// Deployments that can serve requests now.
    pub fn live_deployments(&self) -> impl Iterator<Item = &Deployment> {
        self.deployments.iter()
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    /// `[redis]`: rate limits shared by replicas.
    pub redis: RedisConfig,
    /// `[auth.github]`: signing in.
    pub auth: AuthConfig,
    /// `[instances]`: community model servers.
    pub instances: InstancesConfig,
    /// `[jobs]`: async jobs.
    pub jobs: JobsConfig,
    /// `[telemetry]`: traces, log format, metrics access.
    pub telemetry: TelemetryConfig,
    pub providers: Vec<Arc<Provider>>,
    models: HashMap<String, Arc<Model>>,
    model_order: Vec<String>,
}

/// Every problem found in a config, each prefixed with the path of its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid config:\n  {}", .0.join("\n  "))]
pub struct ConfigErrors(pub Vec<String>);

impl Config {
    pub fn model(&self, id: &str) -> Option<&Arc<Model>> {
        self.models.get(id)
    }

    /// Models in the order they were configured.
    pub fn models(&self) -> impl Iterator<Item = &Arc<Model>> {
        self.model_order.iter().filter_map(|id| self.models.get(id))
    }

    /// Parses and validates the text of the config file `file`: each error starts with
    /// `file:line:column:` (a syntax error's position, or that of the field it names).
    pub fn from_toml_named(text: &str, env: &Env, file: &str) -> Result<Config, ConfigErrors> {
        if let Err(e) = toml::from_str::<toml::Table>(text) {
            return Err(ConfigErrors(vec![position::syntax(&e, text, file)]));
        }
        Config::from_toml(text, env).map_err(|errors| position::place(errors, text, file))
    }

    /// Parses and validates a TOML config file's text.
    pub fn from_toml(text: &str, env: &Env) -> Result<Config, ConfigErrors> {
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|span| position::line_column(text, span.start));
            let message = e.message().trim_end();
            ConfigErrors(vec![match at {
                Some((line, column)) => format!("line {line}, column {column}: {message}"),
                None => message.to_owned(),
            }])
        })?;
        let mut errors = Vec::new();
        let mut server = RawServer::default();
        let mut providers = Vec::new();
        let mut models = Vec::new();
        let mut redis = RawRedis::default();
        let mut auth = auth::RawAuth::default();
        let mut instances = instances::RawInstances::default();
        let mut jobs = jobs::RawJobs::default();
        let mut telemetry = telemetry::RawTelemetry::default();
        for (key, value) in table {
            match key.as_str() {
                "server" => server = section(value, "server", &mut errors).unwrap_or_default(),
                "providers" => providers = list(value, "providers", &mut errors),
                "models" => models = list(value, "models", &mut errors),
                "redis" => redis = section(value, "redis", &mut errors).unwrap_or_default(),
                "auth" => auth = section(value, "auth", &mut errors).unwrap_or_default(),
                "instances" => instances = section(value, "instances", &mut errors).unwrap_or_default(),
                "jobs" => jobs = section(value, "jobs", &mut errors).unwrap_or_default(),
                "telemetry" => telemetry = section(value, "telemetry", &mut errors).unwrap_or_default(),
                other => errors.push(format!(
                    "{other}: unknown section (expected server, redis, auth, instances, jobs, telemetry, providers or models)"
                )),
            }
        }
        let mut config = build(server, providers, models, env, &mut errors);
        config.redis = RedisConfig::build(redis, &mut errors);
        config.auth = AuthConfig::build(auth, env, &mut errors);
        config.instances = InstancesConfig::build(instances, &mut errors);
        config.jobs = JobsConfig::build(jobs, &mut errors);
        config.telemetry = TelemetryConfig::build(telemetry, &mut errors);
        config.apply_default_timeouts();
        config.check_fallbacks(&mut errors);
        if errors.is_empty() { Ok(config) } else { Err(ConfigErrors(errors)) }
    }

    /// With no config file: every provider family whose key (or base URL) is in the
    /// environment, serving the catalog's models of that family.
    pub fn from_env(env: &Env) -> Config {
        let mut providers = Vec::new();
        for family in catalog::FAMILIES {
            if env.get(family.key_env).is_none() && env.get(family.base_url_env).is_none() {
                continue;
            }
            providers.push(RawProvider {
                name: family.name.to_owned(),
                kind: family.kind.to_owned(),
                base_url: env.get(family.base_url_env).map(str::to_owned),
                api_key_env: Some(family.key_env.to_owned()),
                api_key: None,
                timeout_ms: None,
                dialect: None,
                responses_api: None,
            });
        }
        let models = catalog::MODELS
            .iter()
            .filter(|m| providers.iter().any(|p| p.name == m.family))
            .map(|m| RawModel {
                id: m.id.to_owned(),
                context_window: None,
                max_output_tokens: None,
                input_price: None,
                cached_input_price: None,
                cache_write_price: None,
                output_price: None,
                tool_prices: None,
                capabilities: None,
                strategy: None,
                fallbacks: None,
                instances: None,
                canary_prompt_tokens: None,
                deployments: vec![RawDeployment {
                    provider: m.family.to_owned(),
                    upstream_model: Some(m.upstream_model.to_owned()),
                    weight: None,
                    input_price: None,
                    output_price: None,
                    timeout_ms: None,
                    idle_timeout_ms: None,
                }],
            })
            .collect();
        let mut errors = Vec::new();
        // Catalog entries are valid by construction; an error here is a bug the tests catch.
        let mut config = build(RawServer::default(), providers, models, env, &mut errors);
        config.apply_default_timeouts();
        config
    }

    /// Deployments without a timeout of their own (or their provider's) take the server's.
    fn apply_default_timeouts(&mut self) {
        let (first_byte, idle) = (self.server.upstream_timeout, self.server.idle_timeout);
        for model in self.models.values_mut() {
            let model = Arc::make_mut(model);
            for d in &mut model.deployments {
                if d.timeout.is_zero() {
                    d.timeout = first_byte;
                }
                if d.idle_timeout.is_zero() {
                    d.idle_timeout = idle;
                }
            }
        }
    }

    /// Every fallback must name a configured model.
    fn check_fallbacks(&self, errors: &mut Vec<String>) {
        for (i, id) in self.model_order.iter().enumerate() {
            let Some(model) = self.models.get(id) else {
                continue;
            };
            for (j, fallback) in model.fallbacks.iter().enumerate() {
                if !self.models.contains_key(fallback) {
                    errors.push(format!("models[{i}].fallbacks[{j}]: no model named '{fallback}' is configured"));
                }
            }
        }
    }
}

fn section<T: serde::de::DeserializeOwned>(value: toml::Value, path: &str, errors: &mut Vec<String>) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let inner = e.path().to_string();
            let full = if inner == "." { path.to_owned() } else { format!("{path}.{inner}") };
            errors.push(format!("{full}: {}", e.inner().message().trim_end()));
            None
        }
    }
}

fn list<T: serde::de::DeserializeOwned>(value: toml::Value, path: &str, errors: &mut Vec<String>) -> Vec<Option<T>> {
    match value {
        toml::Value::Array(items) => {
            items.into_iter().enumerate().map(|(i, item)| section(item, &format!("{path}[{i}]"), errors)).collect()
        }
        _ => {
            errors.push(format!("{path}: expected an array of tables ([[{path}]])"));
            Vec::new()
        }
    }
}

fn parse_price(text: Option<&str>, path: &str, errors: &mut Vec<String>) -> Option<NanoUsd> {
    let text = text?;
    match NanoUsd::parse_usd(text) {
        Ok(v) if v.0 >= 0 => Some(v),
        Ok(_) => {
            errors.push(format!("{path}: a price cannot be negative"));
            None
        }
        Err(e) => {
            errors.push(format!("{path}: {e}"));
            None
        }
    }
}

fn build<P, M>(server: RawServer, providers: Vec<P>, models: Vec<M>, env: &Env, errors: &mut Vec<String>) -> Config
where
    P: Into<Option<RawProvider>>,
    M: Into<Option<RawModel>>,
{
    let server = build_server(server, errors);
    let mut built_providers: Vec<Arc<Provider>> = Vec::new();
    for (i, raw) in providers.into_iter().enumerate() {
        let Some(raw) = raw.into() else { continue };
        if let Some(p) = build_provider(raw, &format!("providers[{i}]"), env, &built_providers, errors) {
            built_providers.push(Arc::new(p));
        }
    }
    let mut built_models = HashMap::new();
    let mut order = Vec::new();
    for (i, raw) in models.into_iter().enumerate() {
        let Some(raw) = raw.into() else { continue };
        let path = format!("models[{i}]");
        if built_models.contains_key(&raw.id) {
            errors.push(format!("{path}.id: the model '{}' is configured twice", raw.id));
            continue;
        }
        if let Some(model) = build_model(raw, &path, &built_providers, errors) {
            order.push(model.id.clone());
            built_models.insert(model.id.clone(), Arc::new(model));
        }
    }
    Config {
        server,
        redis: RedisConfig::default(),
        auth: AuthConfig { github: None, session_ttl_secs: auth::DEFAULT_SESSION_TTL_SECS },
        instances: InstancesConfig::default(),
        jobs: JobsConfig::default(),
        telemetry: TelemetryConfig::default(),
        providers: built_providers,
        models: built_models,
        model_order: order,
    }
}

fn parse_strategy(text: Option<&str>, path: &str, errors: &mut Vec<String>) -> Option<Strategy> {
    let text = text?;
    match text.parse() {
        Ok(s) => Some(s),
        Err(e) => {
            errors.push(format!("{path}: {e}"));
            None
        }
    }
}

fn timeout(ms: Option<u64>, path: &str, errors: &mut Vec<String>) -> Option<Duration> {
    match ms {
        Some(0) => {
            errors.push(format!("{path}: must be at least 1"));
            None
        }
        other => other.map(Duration::from_millis),
    }
}

fn build_provider(
    raw: RawProvider,
    path: &str,
    env: &Env,
    existing: &[Arc<Provider>],
    errors: &mut Vec<String>,
) -> Option<Provider> {
    let before = errors.len();
    if raw.name.is_empty() {
        errors.push(format!("{path}.name: must not be empty"));
    }
    if raw.name.starts_with("instance:") {
        errors.push(format!("{path}.name: names starting with 'instance:' are reserved for community instances"));
    }
    if existing.iter().any(|p| p.name == raw.name) {
        errors.push(format!("{path}.name: the provider '{}' is configured twice", raw.name));
    }
    let kind = ProviderKind::parse(&raw.kind);
    if kind.is_none() {
        errors.push(format!("{path}.kind: '{}' is not one of openai, anthropic, gemini", raw.kind));
    }
    let family = catalog::family(&raw.name).filter(|f| Some(f.kind) == Some(raw.kind.as_str()));
    let default_base = catalog::FAMILIES.iter().find(|f| f.kind == raw.kind).map(|f| f.base_url);
    let base_url = raw
        .base_url
        .or_else(|| family.map(|f| f.base_url.to_owned()))
        .or_else(|| (raw.kind != "openai").then(|| default_base.map(str::to_owned)).flatten());
    let base_url = match base_url {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => url.trim_end_matches('/').to_owned(),
        Some(url) => {
            errors.push(format!("{path}.base_url: '{url}' must start with http:// or https://"));
            String::new()
        }
        None if kind.is_none() => String::new(),
        None => {
            errors
                .push(format!("{path}.base_url: required for an OpenAI-compatible provider other than OpenAI itself"));
            String::new()
        }
    };
    let api_key = match (raw.api_key, raw.api_key_env) {
        (Some(_), Some(_)) => {
            errors.push(format!("{path}: set api_key or api_key_env, not both"));
            None
        }
        (Some(key), None) => Some(key),
        (None, Some(var)) => env.get(&var).map(str::to_owned),
        (None, None) => None,
    };
    let timeout = timeout(raw.timeout_ms, &format!("{path}.timeout_ms"), errors);
    let authorization = api_key.as_ref().and_then(|key| {
        let value = http::HeaderValue::try_from(format!("Bearer {key}")).ok();
        if value.is_none() {
            errors.push(format!("{path}: the API key contains characters that cannot be sent in a header"));
        }
        value.map(|mut v| {
            v.set_sensitive(true);
            v
        })
    });
    let key_header = api_key.as_ref().and_then(|key| http::HeaderValue::try_from(key.as_str()).ok()).map(|mut v| {
        v.set_sensitive(true);
        v
    });
    let dialect = match raw.dialect.as_deref() {
        Some("openai") => Dialect::OpenAi,
        Some("deepseek") => Dialect::DeepSeek,
        Some("mistral") => Dialect::Mistral,
        Some(other) => {
            errors.push(format!("{path}.dialect: '{other}' is not one of openai, deepseek, mistral"));
            Dialect::OpenAi
        }
        None if raw.name == "deepseek" || base_url.contains("api.deepseek.com") => Dialect::DeepSeek,
        None if raw.name == "mistral" || base_url.contains("api.mistral.ai") => Dialect::Mistral,
        None => Dialect::OpenAi,
    };
    let responses_api = match raw.responses_api {
        Some(true) if raw.kind != "openai" => {
            errors.push(format!(
                "{path}.responses_api: only an OpenAI-compatible provider (kind = \"openai\") can serve it"
            ));
            false
        }
        Some(native) => native,
        None => raw.kind == "openai" && base_url.starts_with("https://api.openai.com/"),
    };
    let kind = kind?;
    (errors.len() == before).then_some(Provider {
        dialect,
        responses_api,
        name: raw.name,
        kind,
        base_url,
        api_key,
        authorization,
        key_header,
        timeout,
        instance: None,
    })
}

fn build_model(raw: RawModel, path: &str, providers: &[Arc<Provider>], errors: &mut Vec<String>) -> Option<Model> {
    let before = errors.len();
    let known = catalog::model(&raw.id);
    if raw.id.is_empty() {
        errors.push(format!("{path}.id: must not be empty"));
    }
    let mut required = |value: Option<u64>, from_catalog: Option<u64>, field: &str| {
        let value = value.or(from_catalog);
        match value {
            Some(0) => errors.push(format!("{path}.{field}: must be at least 1")),
            None => errors.push(format!("{path}.{field}: required for a model that is not in the built-in catalog")),
            Some(_) => {}
        }
        value.unwrap_or(1)
    };
    let context_window = required(raw.context_window, known.map(|k| k.context_window), "context_window");
    let embeds = |caps: &[&str]| caps.contains(&"embeddings");
    let embedding_model = match &raw.capabilities {
        Some(caps) => embeds(&caps.iter().map(String::as_str).collect::<Vec<_>>()),
        None => known.is_some_and(|k| embeds(k.capabilities)),
    };
    // An embedding model generates no tokens: its output limit is 0 unless stated.
    let max_output_tokens = if embedding_model {
        raw.max_output_tokens.or(known.map(|k| k.max_output_tokens)).unwrap_or(0)
    } else {
        required(raw.max_output_tokens, known.map(|k| k.max_output_tokens), "max_output_tokens")
    };
    let mut priced = |text: Option<String>, from_catalog: Option<&str>, field: &str| -> Option<NanoUsd> {
        let text = text.or(from_catalog.map(str::to_owned));
        parse_price(text.as_deref(), &format!("{path}.{field}"), errors)
    };
    let input = priced(raw.input_price.clone(), known.map(|k| k.input_price), "input_price");
    let output = priced(raw.output_price.clone(), known.map(|k| k.output_price), "output_price");
    let cached = priced(raw.cached_input_price, known.map(|k| k.cached_input_price), "cached_input_price");
    let written = priced(raw.cache_write_price, known.map(|k| k.cache_write_price), "cache_write_price");
    let tools = raw.tool_prices.unwrap_or_default();
    // The operator's per-call prices; a price left out is the one the provider kind
    // running each deployment publishes (see `Deployment::tools`).
    let web_search = priced(tools.web_search, None, "tool_prices.web_search");
    let web_fetch = priced(tools.web_fetch, None, "tool_prices.web_fetch");
    for (value, written, field) in
        [(input, &raw.input_price, "input_price"), (output, &raw.output_price, "output_price")]
    {
        if value.is_none() && written.is_none() && known.is_none() {
            errors.push(format!(
                "{path}.{field}: required for a model that is not in the built-in catalog (0 for a free model)"
            ));
        }
    }
    let price = Price {
        input: input.unwrap_or_default(),
        cached_input: cached.or(input).unwrap_or_default(),
        cache_write: written.or(input).unwrap_or_default(),
        output: output.unwrap_or_default(),
        tools: ToolPrices { web_search: web_search.unwrap_or_default(), web_fetch: web_fetch.unwrap_or_default() },
    };
    let tools_on = |kind: ProviderKind| {
        let published = catalog::tool_prices(kind.as_str());
        let price = |set: Option<NanoUsd>, published: Option<&str>| {
            set.or_else(|| published.and_then(|p| NanoUsd::parse_usd(p).ok())).unwrap_or_default()
        };
        ToolPrices {
            web_search: price(web_search, published.map(|p| p.0)),
            web_fetch: price(web_fetch, published.map(|p| p.1)),
        }
    };
    let capabilities = raw
        .capabilities
        .unwrap_or_else(|| known.map(|k| k.capabilities.iter().map(|c| (*c).to_owned()).collect()).unwrap_or_default());
    for (j, cap) in capabilities.iter().enumerate() {
        if !CAPABILITIES.contains(&cap.as_str()) {
            errors.push(format!("{path}.capabilities[{j}]: '{cap}' is not one of {}", CAPABILITIES.join(", ")));
        }
    }
    let instances = raw.instances.unwrap_or(false);
    if raw.deployments.is_empty() && !instances {
        errors.push(format!(
            "{path}.deployments: a model needs at least one deployment (or `instances = true`, to be served by community instances)"
        ));
    }
    if raw.canary_prompt_tokens == Some(0) {
        errors.push(format!("{path}.canary_prompt_tokens: must be at least 1"));
    }
    let mut deployments = Vec::new();
    for (j, d) in raw.deployments.into_iter().enumerate() {
        let dpath = format!("{path}.deployments[{j}]");
        let Some(provider) = providers.iter().find(|p| p.name == d.provider) else {
            errors.push(format!("{dpath}.provider: no provider named '{}' is configured", d.provider));
            continue;
        };
        let d_input = parse_price(d.input_price.as_deref(), &format!("{dpath}.input_price"), errors);
        let d_output = parse_price(d.output_price.as_deref(), &format!("{dpath}.output_price"), errors);
        let own_price = (d_input.is_some() || d_output.is_some()).then(|| Price {
            input: d_input.unwrap_or(price.input),
            cached_input: d_input.unwrap_or(price.cached_input),
            cache_write: d_input.unwrap_or(price.cache_write),
            output: d_output.unwrap_or(price.output),
            tools: price.tools,
        });
        if d.weight == Some(0) {
            errors.push(format!("{dpath}.weight: must be at least 1"));
        }
        let timeout = timeout(d.timeout_ms, &format!("{dpath}.timeout_ms"), errors);
        let idle = self::timeout(d.idle_timeout_ms, &format!("{dpath}.idle_timeout_ms"), errors);
        deployments.push(Deployment {
            provider: provider.clone(),
            upstream_model: d
                .upstream_model
                .unwrap_or_else(|| known.map_or(raw.id.clone(), |k| k.upstream_model.to_owned())),
            weight: d.weight.unwrap_or(1),
            price: own_price,
            tools: tools_on(provider.kind),
            timeout: timeout.or(provider.timeout).unwrap_or(Duration::ZERO),
            idle_timeout: idle.unwrap_or(Duration::ZERO),
        });
    }
    let strategy = parse_strategy(raw.strategy.as_deref(), &format!("{path}.strategy"), errors);
    (errors.len() == before).then_some(Model {
        id: raw.id,
        context_window,
        max_output_tokens,
        price,
        capabilities,
        deployments,
        strategy,
        fallbacks: raw.fallbacks.unwrap_or_default(),
        instances,
        canary_prompt_tokens: raw.canary_prompt_tokens,
    })
}
