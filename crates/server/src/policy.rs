//! What a key may do: its model allowlist (exact ids and `prefix*` patterns).

use tokenrouter_store::KeyRow;

/// An empty allowlist allows every model.
pub fn model_allowed(key: &KeyRow, model: &str) -> bool {
    key.models.is_empty()
        || key
            .models
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
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
