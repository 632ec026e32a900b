//! The built-in catalog: the seed models, their prices (USD per 1M tokens), limits and
//! capabilities, and the provider families that serve them.

/// A provider family known without configuration: its kind, default base URL and the
/// environment variables that configure it.
pub struct Family {
    pub name: &'static str,
    pub kind: &'static str,
    pub base_url: &'static str,
    pub key_env: &'static str,
    pub base_url_env: &'static str,
}

pub const FAMILIES: &[Family] = &[
    Family {
        name: "openai",
        kind: "openai",
        base_url: "https://api.openai.com/v1",
        key_env: "OPENAI_API_KEY",
        base_url_env: "OPENAI_BASE_URL",
    },
    Family {
        name: "anthropic",
        kind: "anthropic",
        base_url: "https://api.anthropic.com/v1",
        key_env: "ANTHROPIC_API_KEY",
        base_url_env: "ANTHROPIC_BASE_URL",
    },
    Family {
        name: "gemini",
        kind: "gemini",
        base_url: "https://generativelanguage.googleapis.com/v1beta",
        key_env: "GEMINI_API_KEY",
        base_url_env: "GEMINI_BASE_URL",
    },
    Family {
        name: "deepseek",
        kind: "openai",
        base_url: "https://api.deepseek.com/v1",
        key_env: "DEEPSEEK_API_KEY",
        base_url_env: "DEEPSEEK_BASE_URL",
    },
    Family {
        name: "mistral",
        kind: "openai",
        base_url: "https://api.mistral.ai/v1",
        key_env: "MISTRAL_API_KEY",
        base_url_env: "MISTRAL_BASE_URL",
    },
];

pub struct CatalogModel {
    pub id: &'static str,
    pub family: &'static str,
    pub upstream_model: &'static str,
    pub context_window: u64,
    pub max_output_tokens: u64,
    pub input_price: &'static str,
    pub cached_input_price: &'static str,
    /// Anthropic's 5-minute cache writes: 1.25× input; elsewhere the input price.
    pub cache_write_price: &'static str,
    pub output_price: &'static str,
    pub capabilities: &'static [&'static str],
}

const TVJ: &[&str] = &["tools", "vision", "json"];
const TVJR: &[&str] = &["tools", "vision", "json", "reasoning"];
const TJ: &[&str] = &["tools", "json"];
const TJR: &[&str] = &["tools", "json", "reasoning"];
const EMBEDDINGS: &[&str] = &["embeddings"];

#[rustfmt::skip]
pub const MODELS: &[CatalogModel] = &[
    CatalogModel { id: "gpt-4o", family: "openai", upstream_model: "gpt-4o", context_window: 128_000, max_output_tokens: 16_384, input_price: "2.50", cached_input_price: "1.25", cache_write_price: "2.50", output_price: "10.00", capabilities: TVJ },
    CatalogModel { id: "gpt-4o-mini", family: "openai", upstream_model: "gpt-4o-mini", context_window: 128_000, max_output_tokens: 16_384, input_price: "0.15", cached_input_price: "0.075", cache_write_price: "0.15", output_price: "0.60", capabilities: TVJ },
    CatalogModel { id: "claude-opus-4-1", family: "anthropic", upstream_model: "claude-opus-4-1", context_window: 200_000, max_output_tokens: 32_000, input_price: "15.00", cached_input_price: "1.50", cache_write_price: "18.75", output_price: "75.00", capabilities: TVJR },
    CatalogModel { id: "claude-sonnet-4-5", family: "anthropic", upstream_model: "claude-sonnet-4-5", context_window: 200_000, max_output_tokens: 64_000, input_price: "3.00", cached_input_price: "0.30", cache_write_price: "3.75", output_price: "15.00", capabilities: TVJR },
    CatalogModel { id: "claude-haiku-4-5", family: "anthropic", upstream_model: "claude-haiku-4-5", context_window: 200_000, max_output_tokens: 64_000, input_price: "1.00", cached_input_price: "0.10", cache_write_price: "1.25", output_price: "5.00", capabilities: TVJR },
    CatalogModel { id: "gemini-2.5-pro", family: "gemini", upstream_model: "gemini-2.5-pro", context_window: 1_048_576, max_output_tokens: 65_536, input_price: "1.25", cached_input_price: "0.125", cache_write_price: "1.25", output_price: "10.00", capabilities: TVJR },
    CatalogModel { id: "gemini-2.0-flash", family: "gemini", upstream_model: "gemini-2.0-flash", context_window: 1_048_576, max_output_tokens: 8_192, input_price: "0.10", cached_input_price: "0.025", cache_write_price: "0.10", output_price: "0.40", capabilities: TVJ },
    CatalogModel { id: "deepseek-chat", family: "deepseek", upstream_model: "deepseek-chat", context_window: 128_000, max_output_tokens: 8_192, input_price: "0.28", cached_input_price: "0.028", cache_write_price: "0.28", output_price: "0.42", capabilities: TJ },
    CatalogModel { id: "deepseek-reasoner", family: "deepseek", upstream_model: "deepseek-reasoner", context_window: 128_000, max_output_tokens: 64_000, input_price: "0.28", cached_input_price: "0.028", cache_write_price: "0.28", output_price: "0.42", capabilities: TJR },
    CatalogModel { id: "mistral-large", family: "mistral", upstream_model: "mistral-large-latest", context_window: 131_072, max_output_tokens: 131_072, input_price: "2.00", cached_input_price: "2.00", cache_write_price: "2.00", output_price: "6.00", capabilities: TVJ },
    CatalogModel { id: "codestral", family: "mistral", upstream_model: "codestral-latest", context_window: 256_000, max_output_tokens: 256_000, input_price: "0.30", cached_input_price: "0.30", cache_write_price: "0.30", output_price: "0.90", capabilities: TJ },
    CatalogModel { id: "gpt-3.5-turbo-instruct", family: "openai", upstream_model: "gpt-3.5-turbo-instruct", context_window: 4_096, max_output_tokens: 4_096, input_price: "1.50", cached_input_price: "1.50", cache_write_price: "1.50", output_price: "2.00", capabilities: &["completions"] },
    CatalogModel { id: "text-embedding-3-small", family: "openai", upstream_model: "text-embedding-3-small", context_window: 8_191, max_output_tokens: 0, input_price: "0.02", cached_input_price: "0.02", cache_write_price: "0.02", output_price: "0", capabilities: EMBEDDINGS },
    CatalogModel { id: "text-embedding-3-large", family: "openai", upstream_model: "text-embedding-3-large", context_window: 8_191, max_output_tokens: 0, input_price: "0.13", cached_input_price: "0.13", cache_write_price: "0.13", output_price: "0", capabilities: EMBEDDINGS },
    CatalogModel { id: "gemini-embedding-001", family: "gemini", upstream_model: "gemini-embedding-001", context_window: 2_048, max_output_tokens: 0, input_price: "0.15", cached_input_price: "0.15", cache_write_price: "0.15", output_price: "0", capabilities: EMBEDDINGS },
    CatalogModel { id: "mistral-embed", family: "mistral", upstream_model: "mistral-embed", context_window: 8_192, max_output_tokens: 0, input_price: "0.10", cached_input_price: "0.10", cache_write_price: "0.10", output_price: "0", capabilities: EMBEDDINGS },
];

/// The published per-call prices (web search, web fetch; USD per call) of the hosted tools
/// an upstream of provider kind `kind` (`anthropic`, …) runs, if they are the same for every
/// model: Anthropic's web search is $10 per 1,000 searches; its web fetch costs only tokens.
/// OpenAI's and Google's prices depend on the model (and Google's count grounded prompts):
/// set `tool_prices` for them.
pub fn tool_prices(kind: &str) -> Option<(&'static str, &'static str)> {
    match kind {
        "anthropic" => Some(("0.01", "0")),
        _ => None,
    }
}

pub fn model(id: &str) -> Option<&'static CatalogModel> {
    MODELS.iter().find(|m| m.id == id)
}

pub fn family(name: &str) -> Option<&'static Family> {
    FAMILIES.iter().find(|f| f.name == name)
}
