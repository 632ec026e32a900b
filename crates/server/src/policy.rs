//! What a request may do: the key's model allowlist (exact ids and `prefix*` patterns),
//! the output limit (clamped to the model's), and the context window.

use std::sync::Arc;

use tokenrouter_providers::openai::ChatView;
use tokenrouter_providers::passthrough::{RawObject, raw_from_vec};
use tokenrouter_store::KeyRow;

use crate::config::{Config, Model};
use crate::error::ApiError;
use crate::tokens;

/// The configured model `id`, if this key may use it.
pub fn allowed_model<'c>(config: &'c Config, key: &KeyRow, id: &str) -> Result<&'c Arc<Model>, ApiError> {
    let model = config.model(id).ok_or_else(|| ApiError::ModelNotFound(id.to_owned()))?;
    if !model_allowed(key, &model.id) {
        return Err(ApiError::ModelNotAllowed(model.id.clone()));
    }
    Ok(model)
}

/// The output limit to send: the request's, lowered to the model's when above it.
pub fn clamp_output(requested: Option<u64>, model: &Model) -> Option<u64> {
    requested.map(|n| n.min(model.max_output_tokens))
}

/// Writes a clamped output limit back into whichever field(s) the client used.
pub fn apply_output_limit(request: &mut RawObject<'_>, view: &ChatView, max_out: Option<u64>) {
    let Some(limit) = max_out.filter(|m| Some(*m) != view.max_tokens) else { return };
    for field in ["max_completion_tokens", "max_tokens"] {
        if request.get(field).is_some_and(|v| v.get() != "null") {
            request.set(field, raw_from_vec(limit.to_string().into_bytes()));
        }
    }
}

/// Refuses, without calling any upstream, a prompt that with its output limit cannot fit
/// the model's context window. Exact counting runs only when the cheap bound is too high.
pub fn check_context(body: &[u8], max_out: Option<u64>, model: &Model) -> Result<(), ApiError> {
    let completion = max_out.unwrap_or(0);
    if tokens::prompt_upper_bound(body).saturating_add(completion) <= model.context_window {
        return Ok(());
    }
    let prompt = tokens::count_prompt(body);
    if prompt.saturating_add(completion) > model.context_window {
        return Err(ApiError::ContextLengthExceeded { window: model.context_window, prompt, completion });
    }
    Ok(())
}

/// An empty allowlist allows every model.
pub fn model_allowed(key: &KeyRow, model: &str) -> bool {
    key.models.is_empty()
        || key.models.iter().any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => model.starts_with(prefix),
            None => pattern == model,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_prefix_patterns() {
        let mut key = KeyRow {
            id: "k".into(),
            account_id: 1,
            account_name: "a".into(),
            name: String::new(),
            secret_hash: [0; 32],
            models: vec![],
            ips: vec![],
            rpm: None,
            tpm: None,
            spend_limit: None,
            spent: Default::default(),
            expires_at: None,
            created_at: 0,
            revoked_at: None,
        };
        assert!(model_allowed(&key, "anything"));
        key.models = vec!["gpt-4o".into(), "claude-*".into()];
        assert!(model_allowed(&key, "gpt-4o"));
        assert!(!model_allowed(&key, "gpt-4o-mini"));
        assert!(model_allowed(&key, "claude-haiku-4-5"));
        assert!(!model_allowed(&key, "gemini-2.5-pro"));
    }
}
