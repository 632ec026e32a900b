//! Online instances as deployments: the routing table (every catalog model open to
//! instances, with one deployment per online instance serving it), rebuilt and swapped
//! whole when the store's `instances_version` moves — polled every 250 ms and, on
//! PostgreSQL, at once on a change notification — so requests read it without a lock.
//! Also what a request served by an instance owes its owner, and how far its usage
//! report is believed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokenrouter_core::{NanoUsd, Usage};
use tokenrouter_store::{Db, Earning, Instance, KeyRow, StoreError};

use crate::config::{Config, Deployment, Model, Provider, ProviderKind};
use crate::error::ApiError;
use crate::metering::Measured;
use crate::state::{AppState, Shared};

/// How often each replica asks the store whether the routable instances changed (one
/// single-row read); a change reaches every replica's table within this plus a rebuild.
pub const REFRESH_EVERY: Duration = Duration::from_millis(250);
/// Bytes of generated text per token the gateway's own count assumes: generous (text
/// runs 3–4 bytes a token), so an honest instance's report stays under it.
const BYTES_PER_TOKEN: u64 = 3;
/// The end-of-sequence token an engine counts but never sends.
const END_OF_SEQUENCE: u64 = 1;

/// An instance a deployment calls: who owns it, and whether a request to it failed
/// since the store last heard of a success (so a success costs a statement only then).
#[derive(Debug)]
pub struct Serving {
    pub id: String,
    pub account_id: i64,
    failed: AtomicBool,
}

/// One snapshot of the routable instances, built for one config.
pub struct Table {
    /// The store's `instances_version` it was built from (-1: never loaded).
    pub version: i64,
    config: Arc<Config>,
    /// Models open to instances that some online instance serves, with the instance
    /// deployments after the configured ones.
    models: HashMap<String, Arc<Model>>,
    instances: HashMap<String, Arc<Serving>>,
}

impl Table {
    fn empty(config: Arc<Config>) -> Table {
        Table { version: -1, config, models: HashMap::new(), instances: HashMap::new() }
    }

    /// How many online instances serve `model`.
    pub fn instances_serving(&self, model: &str) -> usize {
        self.models.get(model).map_or(0, |m| m.deployments.iter().filter(|d| d.provider.instance.is_some()).count())
    }

    /// Builds the table from the routable instances; `previous` lends each instance
    /// still there its [`Serving`] (and so its unreported failure).
    fn build(config: Arc<Config>, version: i64, routable: &[Instance], previous: &Table) -> Table {
        let mut models: HashMap<String, Arc<Model>> = HashMap::new();
        let mut instances = HashMap::new();
        for instance in routable {
            let serving = match previous.instances.get(&instance.id) {
                Some(s) if s.account_id == instance.account_id => s.clone(),
                _ => Arc::new(Serving {
                    id: instance.id.clone(),
                    account_id: instance.account_id,
                    failed: AtomicBool::new(instance.consecutive_failures > 0),
                }),
            };
            let Some(provider) = provider(instance, serving.clone()) else { continue };
            instances.insert(instance.id.clone(), serving);
            for served in &instance.models {
                let Some(model) = config.model(&served.model).filter(|m| m.instances) else { continue };
                let entry = models.entry(model.id.clone()).or_insert_with(|| model.clone());
                Arc::make_mut(entry).deployments.push(Deployment {
                    provider: provider.clone(),
                    upstream_model: served.upstream_model.clone(),
                    weight: 1,
                    price: None,
                    // Only what the operator set: an instance publishes no prices.
                    tools: model.price.tools,
                    timeout: config.server.upstream_timeout,
                    idle_timeout: config.server.idle_timeout,
                });
            }
        }
        Table { version, config, models, instances }
    }
}

/// The provider an instance is called as: OpenAI-compatible at its `base_url`, with its
/// instance key as the Bearer (a sensitive header, never logged).
fn provider(instance: &Instance, serving: Arc<Serving>) -> Option<Arc<Provider>> {
    let Ok(mut authorization) = http::HeaderValue::try_from(format!("Bearer {}", instance.api_key)) else {
        tracing::warn!(instance = %instance.id, "instance key cannot be sent in a header; not routed");
        return None;
    };
    authorization.set_sensitive(true);
    Some(Arc::new(Provider {
        name: tokenrouter_store::provider_name(&instance.id),
        kind: ProviderKind::OpenAi,
        base_url: instance.base_url.trim_end_matches('/').to_owned(),
        api_key: None,
        authorization: Some(authorization),
        key_header: None,
        timeout: None,
        dialect: crate::config::Dialect::OpenAi,
        responses_api: false,
        instance: Some(serving),
    }))
}

/// The table behind an `ArcSwap`, and the lock that keeps two rebuilds from racing.
pub struct LiveInstances {
    table: ArcSwap<Table>,
    rebuilding: tokio::sync::Mutex<()>,
}

impl LiveInstances {
    pub fn new(config: Arc<Config>) -> LiveInstances {
        LiveInstances { table: ArcSwap::from_pointee(Table::empty(config)), rebuilding: tokio::sync::Mutex::new(()) }
    }

    pub fn load_full(&self) -> Arc<Table> {
        self.table.load_full()
    }

    /// Rebuilds the table when the store's version (or the config) moved on; whether it did.
    pub async fn refresh(&self, db: &Db, config: Arc<Config>) -> Result<bool, StoreError> {
        let _one = self.rebuilding.lock().await;
        self.rebuild(db, config).await
    }

    /// As [`LiveInstances::refresh`], for the config in force once it is this caller's
    /// turn (a reload may have swapped it meanwhile).
    pub async fn refresh_current(&self, db: &Db, current: &ArcSwap<Config>) -> Result<bool, StoreError> {
        let _one = self.rebuilding.lock().await;
        self.rebuild(db, current.load_full()).await
    }

    /// The rebuild itself; the caller holds `rebuilding`.
    async fn rebuild(&self, db: &Db, config: Arc<Config>) -> Result<bool, StoreError> {
        let version = db.instances_version().await?;
        let current = self.table.load_full();
        if version == current.version && Arc::ptr_eq(&current.config, &config) {
            return Ok(false);
        }
        // Read after the version: the rows are at least that new.
        let routable = db.all_routable_instances().await?;
        self.table.store(Arc::new(Table::build(config, version, &routable, &current)));
        Ok(true)
    }
}

impl LiveInstances {
    /// Puts `config` in force in `current` with the instance table built for it: the
    /// store is read first, then the table and the config are swapped back to back, so no
    /// request waits on the store seeing a config without its instances.
    pub async fn switch_config(
        &self,
        db: &Db,
        config: Arc<Config>,
        current: &ArcSwap<Config>,
    ) -> Result<(), StoreError> {
        let _one = self.rebuilding.lock().await;
        let version = db.instances_version().await?;
        let routable = db.all_routable_instances().await?;
        let table = Arc::new(Table::build(config.clone(), version, &routable, &self.table.load_full()));
        self.table.store(table);
        current.store(config);
        Ok(())
    }
}

/// Keeps the table fresh while the state lives.
pub async fn keep_fresh(weak: Weak<Shared>) {
    let mut tick = tokio::time::interval(REFRESH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = weak.upgrade() else { return };
        refresh(&shared).await;
    }
}

/// Rebuilds the table if the store says it changed (errors are logged: the old table
/// serves until the store answers again).
pub async fn refresh(shared: &Shared) {
    if let Err(e) = shared.instances.refresh_current(&shared.db, &shared.config).await {
        tracing::warn!(error = %e, "could not refresh the instances' routing table");
    }
}

/// The models as one request sees them: the config's, with the instance deployments of
/// the table built for that config.
pub struct Catalog {
    config: Arc<Config>,
    table: Arc<Table>,
}

impl Catalog {
    pub fn new(config: Arc<Config>, table: Arc<Table>) -> Catalog {
        Catalog { config, table }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn table(&self) -> &Table {
        &self.table
    }

    /// Model `id` with the deployments `community` may reach: with instances, or (for a
    /// key that may not reach them) without — and then a model only instances serve is
    /// unknown.
    pub fn model(&self, id: &str, community: bool) -> Option<&Arc<Model>> {
        if community
            && Arc::ptr_eq(&self.table.config, &self.config)
            && let Some(model) = self.table.models.get(id)
        {
            return Some(model);
        }
        let model = self.config.model(id)?;
        (community || !model.deployments.is_empty() || !model.instances).then_some(model)
    }

    /// Models in configured order, as [`Catalog::model`] gives them.
    pub fn models(&self, community: bool) -> impl Iterator<Item = &Arc<Model>> {
        self.config.models().filter_map(move |m| self.model(&m.id, community))
    }

    /// Model `id` as `key` may use it: 404 when unknown to it, 403 outside its allowlist.
    pub fn allowed_model(&self, key: &KeyRow, id: &str) -> Result<&Arc<Model>, ApiError> {
        let model = self.model(id, key.community).ok_or_else(|| ApiError::ModelNotFound(id.to_owned()))?;
        if !crate::policy::model_allowed(key, &model.id) {
            return Err(ApiError::ModelNotAllowed(model.id.clone()));
        }
        Ok(model)
    }
}

/// Health from traffic: an attempt on an instance failed (`false`) or was answered.
/// Reported to the store in the background; a failure that takes the instance offline
/// rebuilds the table at once.
pub fn report(state: &AppState, deployment: &Deployment, ok: bool) {
    let Some(serving) = &deployment.provider.instance else { return };
    if ok && !serving.failed.swap(false, Ordering::AcqRel) {
        return;
    }
    if !ok {
        serving.failed.store(true, Ordering::Release);
    }
    let (state, id) = (state.clone(), serving.id.clone());
    tokio::spawn(async move {
        match state.db.record_request_outcome(&id, ok).await {
            Ok(true) => {
                tracing::info!(instance = %id, "instance taken offline after failed requests");
                refresh(&state).await;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, instance = %id, "could not record an instance's request outcome"),
        }
    });
}

/// What metering needs of a request served by an instance.
#[derive(Debug, Clone)]
pub struct InstanceMeter {
    pub id: String,
    pub earning: Earning,
    /// The most prompt tokens believed: the gateway's estimate (the hold's).
    pub prompt_ceiling: u64,
    /// The most generated tokens believed: the request's output limit.
    pub completion_ceiling: u64,
    /// The most the request is charged: its hold (which covers the estimated prompt and
    /// the output limit, so honest usage stays under it).
    pub charge_ceiling: NanoUsd,
    db: Db,
}

/// How far one request's usage can go, as the gateway bounded it before sending it.
#[derive(Debug, Clone, Copy)]
pub struct Ceilings {
    /// The gateway's estimate of the prompt's tokens (`u64::MAX`: none).
    pub prompt: u64,
    /// The request's output limit (`max_tokens`, else the model's), times its choices.
    pub completion: u64,
    /// The amount held for the request.
    pub charge: NanoUsd,
}

impl InstanceMeter {
    pub fn new(serving: &Serving, share_ppb: u64, ceilings: Ceilings, db: Db) -> InstanceMeter {
        InstanceMeter {
            id: serving.id.clone(),
            earning: Earning { account_id: serving.account_id, share_ppb },
            prompt_ceiling: ceilings.prompt,
            completion_ceiling: ceilings.completion,
            charge_ceiling: ceilings.charge,
            db,
        }
    }

    /// The gateway's own count (`usage` it counted, `own_completion` generated tokens
    /// by [`own_completion`]) within the request's bounds: never flagged, as the
    /// instance claimed none of it.
    pub fn counted(&self, usage: Usage, own_completion: u64) -> Usage {
        super::usage::capped(usage, self.prompt_ceiling, own_completion.min(self.completion_ceiling))
    }

    /// The usage to charge, however it was learned (a report, or a stream that ended
    /// early still carrying the instance's numbers): never more than the gateway's own
    /// count — the prompt at its estimate, the completion at `own_completion` (what it
    /// delivered, by [`own_completion`]) and at the request's output limit. Capped, it
    /// is the gateway's count, and `true` says the instance over-reported.
    pub fn honest(&self, measured: Measured, own_completion: u64) -> (Measured, bool) {
        let (Measured::Reported(reported) | Measured::Counted(reported)) = measured else { return (measured, false) };
        let usage = self.counted(reported, own_completion);
        if usage == reported {
            return (measured, false);
        }
        (Measured::Counted(usage), true)
    }

    /// Flags the instance for reporting more usage than it delivered (kept apart from
    /// its probes' `status_detail`, shown to its owner for a day; written in the
    /// background; routing is unchanged).
    pub fn flag(&self, reported: Usage, charged: Usage) {
        let detail = format!(
            "over-reported usage: it reported {} prompt + {} completion tokens where the gateway counted at most {} + {}; charged at the gateway's count",
            reported.prompt_tokens, reported.completion_tokens, charged.prompt_tokens, charged.completion_tokens
        );
        tracing::warn!(instance = %self.id, "{detail}");
        let (db, id) = (self.db.clone(), self.id.clone());
        let at = tokenrouter_core::clock::now_unix();
        tokio::spawn(async move {
            if let Err(e) = db.flag_instance(&id, &detail, at).await {
                tracing::warn!(error = %e, instance = %id, "could not flag an instance's usage");
            }
        });
    }
}

/// The gateway's own count of generated tokens: the delivered text at 3 bytes a token,
/// or one per delivering chunk (one carrying generated text, which the gateway counted)
/// when that is more, plus the end-of-sequence token. Metering also holds it to the
/// request's output limit ([`InstanceMeter::counted`]).
pub fn own_completion(text_bytes: u64, chunks: u64) -> u64 {
    text_bytes.div_ceil(BYTES_PER_TOKEN).max(chunks).saturating_add(END_OF_SEQUENCE)
}

/// Bytes of generated text in a whole chat or legacy completion answer: each choice's
/// content, reasoning, refusal, tool calls' names and arguments, or text.
pub fn answer_text_bytes(body: &[u8]) -> u64 {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else { return 0 };
    choices_text_bytes(&value, "message")
}

/// Bytes of generated text in one streamed chat (or legacy completion) chunk.
pub fn chunk_text_bytes(data: &[u8]) -> u64 {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return 0 };
    choices_text_bytes(&value, "delta")
}

fn choices_text_bytes(value: &serde_json::Value, part: &str) -> u64 {
    let Some(choices) = value.get("choices").and_then(serde_json::Value::as_array) else { return 0 };
    let text = |v: Option<&serde_json::Value>| v.and_then(serde_json::Value::as_str).map_or(0, str::len);
    let mut bytes = 0usize;
    for choice in choices {
        bytes += text(choice.get("text"));
        let Some(message) = choice.get(part) else { continue };
        for field in ["content", "reasoning_content", "reasoning", "refusal"] {
            bytes += text(message.get(field));
        }
        for call in message.get("tool_calls").and_then(serde_json::Value::as_array).into_iter().flatten() {
            let function = call.get("function");
            bytes += text(function.and_then(|f| f.get("name"))) + text(function.and_then(|f| f.get("arguments")));
        }
    }
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_counts_are_generous_to_honest_text() {
        assert_eq!(own_completion(0, 0), 1);
        assert_eq!(own_completion(11, 0), 5);
        assert_eq!(own_completion(11, 9), 10, "one token per chunk when that is more");
        let body = br#"{"choices":[{"message":{"content":"Hello there","tool_calls":[{"function":{"name":"f","arguments":"{}"}}]}}]}"#;
        assert_eq!(answer_text_bytes(body), 11 + 1 + 2);
        assert_eq!(chunk_text_bytes(br#"{"choices":[{"delta":{"reasoning_content":"abc"}}]}"#), 3);
        assert_eq!(chunk_text_bytes(br#"{"choices":[{"text":"legacy"}]}"#), 6);
        assert_eq!(answer_text_bytes(b"not json"), 0);
    }
}
