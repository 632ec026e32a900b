//! Test scaffolding: a fresh database file per test, and sample keys and usage records.

use tempfile::TempDir;
use tokenrouter_store::{Db, NanoUsd, NewKey, UsageRecord, UsageSource};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A new database in its own temporary directory (removed when the `TempDir` drops).
pub async fn temp_db() -> Result<(TempDir, Db), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = Db::connect(&file_url(&dir)).await?;
    Ok((dir, db))
}

pub fn file_url(dir: &TempDir) -> String {
    format!("sqlite://{}", dir.path().join("store.db").display())
}

pub fn new_key(id: &str, account_id: i64) -> NewKey {
    NewKey {
        id: id.to_owned(),
        account_id,
        name: format!("key {id}"),
        secret_hash: [7; 32],
        models: Vec::new(),
        ips: Vec::new(),
        rpm: None,
        tpm: None,
        spend_limit: None,
        expires_at: None,
    }
}

pub fn usage_record(request_id: &str, key_id: &str, account_id: i64, cost: i64) -> UsageRecord {
    UsageRecord {
        request_id: request_id.to_owned(),
        key_id: key_id.to_owned(),
        account_id,
        model: "gpt-4o-mini".to_owned(),
        provider: "openai".to_owned(),
        upstream_model: "gpt-4o-mini-2024-07-18".to_owned(),
        endpoint: "/v1/chat/completions".to_owned(),
        stream: false,
        status: 200,
        usage: tokenrouter_core::Usage {
            prompt_tokens: 12,
            completion_tokens: 34,
            cached_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
        },
        cost: NanoUsd(cost),
        usage_source: UsageSource::Upstream,
        client_disconnected: false,
        latency_ms: 250,
        created_at: 1_700_000_000,
    }
}
