//! Community instances (CONTRACTS §7) as callers write and read them: an account's model
//! server, the catalog models it serves, its declared hardware and software, its probe
//! state, and the rules both backends apply when it changes. The instance key itself is
//! never stored, only its SHA-256.

use std::fmt;

use sqlx::FromRow;
use tokenrouter_core::NanoUsd;

use crate::rows::corrupt;

/// Requests in a row that fail before an online instance goes offline.
pub const FAILURES_TO_OFFLINE: i64 = 3;
/// How long probe verdicts are kept (enough for `uptime_24h`).
pub(crate) const PROBE_HISTORY_SECS: i64 = 2 * 86_400;
/// How long an over-report of usage stays in what the owner is shown.
pub const USAGE_FLAG_SECS: i64 = 86_400;
/// An over-report caught again this soon after the last is not written again.
pub(crate) const USAGE_FLAG_EVERY_SECS: i64 = 60;

/// Where an instance stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstanceStatus {
    /// Not probed since it was registered or changed.
    Pending,
    Online,
    /// Unreachable, failing its probe, or 3 requests in a row failed.
    Offline,
    /// Reachable, but fails a verification (ownership, model listing, canary).
    Mismatch,
    /// Turned off by its owner (`enabled: false`) or by an admin.
    Disabled,
}

impl InstanceStatus {
    pub const ALL: [InstanceStatus; 5] = [
        InstanceStatus::Pending,
        InstanceStatus::Online,
        InstanceStatus::Offline,
        InstanceStatus::Mismatch,
        InstanceStatus::Disabled,
    ];

    /// The stored (and JSON) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceStatus::Pending => "pending",
            InstanceStatus::Online => "online",
            InstanceStatus::Offline => "offline",
            InstanceStatus::Mismatch => "mismatch",
            InstanceStatus::Disabled => "disabled",
        }
    }

    pub fn parse(text: &str) -> Option<InstanceStatus> {
        match text {
            "pending" => Some(InstanceStatus::Pending),
            "online" => Some(InstanceStatus::Online),
            "offline" => Some(InstanceStatus::Offline),
            "mismatch" => Some(InstanceStatus::Mismatch),
            "disabled" => Some(InstanceStatus::Disabled),
            _ => None,
        }
    }
}

/// What a probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeStatus {
    Online,
    Offline,
    Mismatch,
}

impl From<ProbeStatus> for InstanceStatus {
    fn from(status: ProbeStatus) -> InstanceStatus {
        match status {
            ProbeStatus::Online => InstanceStatus::Online,
            ProbeStatus::Offline => InstanceStatus::Offline,
            ProbeStatus::Mismatch => InstanceStatus::Mismatch,
        }
    }
}

/// A probe's verdict on the instance as it was at `revision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    /// The [`Instance::revision`] that was probed: a verdict on an instance that changed
    /// since (new address, models or key) is not recorded.
    pub revision: i64,
    pub status: ProbeStatus,
    /// Human-readable: why it is offline or a mismatch (shown to the owner).
    pub detail: String,
    pub latency_ms: Option<u64>,
    pub at: i64,
}

/// A catalog model an instance serves, and the name its server knows it by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InstanceModel {
    /// The catalog model id (what clients send).
    pub model: String,
    pub upstream_model: String,
}

/// An instance to register.
#[derive(Clone, PartialEq, Eq)]
pub struct NewInstance {
    pub account_id: i64,
    pub name: String,
    pub base_url: String,
    pub region: Option<String>,
    /// The instance key the gateway presents to it (never shown again, never logged).
    pub api_key: String,
    pub models: Vec<InstanceModel>,
}

/// Changes to an instance: `None` leaves a field as it is; `region: Some(None)` removes it.
/// A new `base_url` or `models`, or turning it on or off, makes it `pending` (or
/// `disabled`) until probed again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceChanges {
    pub name: Option<String>,
    pub base_url: Option<String>,
    pub region: Option<Option<String>>,
    pub models: Option<Vec<InstanceModel>>,
    pub enabled: Option<bool>,
}

/// A registered instance.
#[derive(Clone, PartialEq, Eq)]
pub struct Instance {
    /// `inst_<uuid v7>`.
    pub id: String,
    pub account_id: i64,
    pub name: String,
    pub base_url: String,
    pub region: Option<String>,
    /// The instance key the gateway presents to it (never shown again, never logged).
    pub api_key: String,
    /// Its owner's switch.
    pub enabled: bool,
    pub admin_disabled: bool,
    pub status: InstanceStatus,
    pub status_detail: String,
    pub last_probe_at: Option<i64>,
    pub latency_ms: Option<u64>,
    pub consecutive_failures: i64,
    /// Bumped by every change that calls for a new probe; see [`ProbeResult::revision`].
    pub revision: i64,
    /// When the instance was last caught reporting more usage than the gateway counted
    /// (kept apart from `status_detail`, which every probe rewrites).
    pub usage_flagged_at: Option<i64>,
    /// What it reported against what was charged, that last time.
    pub usage_flag_detail: Option<String>,
    /// In catalog-model order.
    pub models: Vec<InstanceModel>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Instance {
    /// `status_detail` as the owner is shown it at `now`: with the usage flag appended
    /// while it is less than [`USAGE_FLAG_SECS`] old.
    pub fn detail_at(&self, now: i64) -> String {
        let flag = match (self.usage_flagged_at, &self.usage_flag_detail) {
            (Some(at), Some(flag)) if now.saturating_sub(at) < USAGE_FLAG_SECS => flag,
            _ => return self.status_detail.clone(),
        };
        if self.status_detail.is_empty() { flag.clone() } else { format!("{}; {flag}", self.status_detail) }
    }
}

/// Hardware an owner declares (`kind` is one of gpu, cpu, npu, tpu; the database refuses
/// any other, and a `memory_mb` or `count` below 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProcessingUnit {
    pub kind: String,
    pub vendor: String,
    pub model: String,
    /// Megabytes, 1 GB = 1000 MB (a `memory_gb` with up to 3 decimals is exact).
    pub memory_mb: i64,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessingUnit {
    /// `pu_<uuid v7>`.
    pub id: String,
    pub instance_id: String,
    pub kind: String,
    pub vendor: String,
    pub model: String,
    pub memory_mb: i64,
    pub count: i64,
    pub created_at: i64,
}

/// Software an owner declares (engine, driver, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSoftware {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Software {
    /// `sw_<uuid v7>`.
    pub id: String,
    pub instance_id: String,
    pub name: String,
    pub version: String,
    pub created_at: i64,
}

/// What an instance did since a moment: requests it served (usage rows with provider
/// `instance:<id>`), their tokens, what its owner earned for them (`earning` ledger rows
/// of those requests), and the share of its probes that found it online (`None`: no probe
/// in that time).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InstanceStats {
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub earnings: NanoUsd,
    /// 0.0 to 1.0. Named for the window the API asks for (`since` = 24 hours ago).
    pub uptime_24h: Option<f64>,
}

/// The provider name a request served by instance `id` is recorded with.
/// `(status, count)` rows as every status in [`InstanceStatus::ALL`]'s order, zeros
/// included (so that a gauge per status drops to 0).
pub(crate) fn all_counts(counts: Vec<(String, i64)>) -> Result<Vec<(InstanceStatus, u64)>, sqlx::Error> {
    let mut all: Vec<(InstanceStatus, u64)> = InstanceStatus::ALL.iter().map(|&s| (s, 0)).collect();
    for (status, count) in counts {
        let status = InstanceStatus::parse(&status)
            .ok_or_else(|| crate::rows::corrupt("status", format!("unknown status '{status}'")))?;
        if let Some(entry) = all.iter_mut().find(|(s, _)| *s == status) {
            entry.1 = crate::rows::from_db_count(count);
        }
    }
    Ok(all)
}

pub fn provider_name(id: &str) -> String {
    format!("instance:{id}")
}

/// A fresh id: `prefix` and a UUID v7 (time-ordered) without dashes.
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// The share of `probes` that found the instance online; `None` without probes.
pub(crate) fn uptime(probes: i64, online: i64) -> Option<f64> {
    (probes > 0).then(|| online as f64 / probes as f64)
}

/// The first model listed twice, if any.
pub(crate) fn duplicate_model(models: &[InstanceModel]) -> Option<&str> {
    let mut seen = std::collections::HashSet::new();
    models.iter().map(|m| m.model.as_str()).find(|model| !seen.insert(*model))
}

/// An instance's status (and detail) right after it was registered or changed in a way
/// that calls for a new probe.
pub(crate) fn fresh_status(enabled: bool, admin_disabled: bool) -> (InstanceStatus, &'static str) {
    if admin_disabled {
        (InstanceStatus::Disabled, "disabled by an administrator")
    } else if !enabled {
        (InstanceStatus::Disabled, "disabled by its owner")
    } else {
        (InstanceStatus::Pending, "waiting for its first probe")
    }
}

/// The instance's row as it will be after `changes` (models are written separately).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Patched {
    pub name: String,
    pub base_url: String,
    pub region: Option<String>,
    pub enabled: bool,
    /// Set when the instance must be probed again: its new status and detail.
    pub reprobe: Option<(InstanceStatus, &'static str)>,
}

pub(crate) fn patch(current: &Instance, changes: &InstanceChanges) -> Patched {
    let base_url = changes.base_url.clone().unwrap_or_else(|| current.base_url.clone());
    let enabled = changes.enabled.unwrap_or(current.enabled);
    let models_changed = changes.models.as_ref().is_some_and(|models| {
        let mut new: Vec<&InstanceModel> = models.iter().collect();
        new.sort_by(|a, b| a.model.cmp(&b.model));
        new.into_iter().ne(current.models.iter())
    });
    let reprobe = base_url != current.base_url || models_changed || enabled != current.enabled;
    Patched {
        name: changes.name.clone().unwrap_or_else(|| current.name.clone()),
        base_url,
        region: changes.region.clone().unwrap_or_else(|| current.region.clone()),
        enabled,
        reprobe: reprobe.then(|| fresh_status(enabled, current.admin_disabled)),
    }
}

/// The status, failure count and detail after a request served by an instance failed.
pub(crate) fn after_failure(status: InstanceStatus, failures: i64) -> (InstanceStatus, i64, Option<String>) {
    let failures = failures.saturating_add(1);
    if status == InstanceStatus::Online && failures >= FAILURES_TO_OFFLINE {
        let detail = format!("{failures} requests in a row failed; back online after its next good probe");
        return (InstanceStatus::Offline, failures, Some(detail));
    }
    (status, failures, None)
}

/// Instance columns, as both backends select them (alias `i`).
macro_rules! instance_columns {
    () => {
        "i.id, i.account_id, i.name, i.base_url, i.region, i.api_key, i.enabled, i.admin_disabled, \
         i.status, i.status_detail, i.last_probe_at, i.latency_ms, i.consecutive_failures, i.revision, \
         i.usage_flagged_at, i.usage_flag_detail, i.created_at, i.updated_at"
    };
}
pub(crate) use instance_columns;

/// Instances with their models, one row per model (`LEFT JOIN`): `$where` and `$order`
/// complete the query (literals, so it stays a `&'static str`).
macro_rules! select_instances {
    ($where:literal) => {
        concat!(
            "SELECT ",
            $crate::instances::instance_columns!(),
            ", m.model, m.upstream_model FROM instances i \
             LEFT JOIN instance_models m ON m.instance_id = i.id ",
            $where,
            " ORDER BY i.created_at DESC, i.id DESC, m.model"
        )
    };
}
pub(crate) use select_instances;

#[derive(FromRow)]
pub(crate) struct InstanceRecord {
    pub id: String,
    pub account_id: i64,
    pub name: String,
    pub base_url: String,
    pub region: Option<String>,
    pub api_key: String,
    pub enabled: bool,
    pub admin_disabled: bool,
    pub status: String,
    pub status_detail: String,
    pub last_probe_at: Option<i64>,
    pub latency_ms: Option<i64>,
    pub consecutive_failures: i64,
    pub revision: i64,
    pub usage_flagged_at: Option<i64>,
    pub usage_flag_detail: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub model: Option<String>,
    pub upstream_model: Option<String>,
}

/// Folds rows of [`select_instances`] (consecutive per instance) into instances.
pub(crate) fn instances_from(records: Vec<InstanceRecord>) -> Result<Vec<Instance>, sqlx::Error> {
    let mut instances: Vec<Instance> = Vec::new();
    for r in records {
        let model = match (r.model.clone(), r.upstream_model.clone()) {
            (Some(model), Some(upstream_model)) => Some(InstanceModel { model, upstream_model }),
            _ => None,
        };
        match instances.last_mut() {
            Some(last) if last.id == r.id => last.models.extend(model),
            _ => {
                let mut instance = Instance::try_from(r)?;
                instance.models.extend(model);
                instances.push(instance);
            }
        }
    }
    Ok(instances)
}

impl TryFrom<InstanceRecord> for Instance {
    type Error = sqlx::Error;

    fn try_from(r: InstanceRecord) -> Result<Instance, sqlx::Error> {
        let status = InstanceStatus::parse(&r.status).ok_or_else(|| corrupt("status", &r.status))?;
        Ok(Instance {
            id: r.id,
            account_id: r.account_id,
            name: r.name,
            base_url: r.base_url,
            region: r.region,
            api_key: r.api_key,
            enabled: r.enabled,
            admin_disabled: r.admin_disabled,
            status,
            status_detail: r.status_detail,
            last_probe_at: r.last_probe_at,
            latency_ms: r.latency_ms.and_then(|ms| u64::try_from(ms).ok()),
            consecutive_failures: r.consecutive_failures,
            revision: r.revision,
            usage_flagged_at: r.usage_flagged_at,
            usage_flag_detail: r.usage_flag_detail,
            models: Vec::new(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

macro_rules! processing_unit_columns {
    () => {
        "id, instance_id, kind, vendor, model, memory_mb, count, created_at"
    };
}
pub(crate) use processing_unit_columns;

#[derive(FromRow)]
pub(crate) struct ProcessingUnitRecord {
    pub id: String,
    pub instance_id: String,
    pub kind: String,
    pub vendor: String,
    pub model: String,
    pub memory_mb: i64,
    pub count: i64,
    pub created_at: i64,
}

impl From<ProcessingUnitRecord> for ProcessingUnit {
    fn from(r: ProcessingUnitRecord) -> ProcessingUnit {
        ProcessingUnit {
            id: r.id,
            instance_id: r.instance_id,
            kind: r.kind,
            vendor: r.vendor,
            model: r.model,
            memory_mb: r.memory_mb,
            count: r.count,
            created_at: r.created_at,
        }
    }
}

#[derive(FromRow)]
pub(crate) struct SoftwareRecord {
    pub id: String,
    pub instance_id: String,
    pub name: String,
    pub version: String,
    pub created_at: i64,
}

impl From<SoftwareRecord> for Software {
    fn from(r: SoftwareRecord) -> Software {
        Software { id: r.id, instance_id: r.instance_id, name: r.name, version: r.version, created_at: r.created_at }
    }
}

const REDACTED: &str = "<redacted>";

impl fmt::Debug for NewInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewInstance")
            .field("account_id", &self.account_id)
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("region", &self.region)
            .field("api_key", &REDACTED)
            .field("models", &self.models)
            .finish()
    }
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance")
            .field("id", &self.id)
            .field("account_id", &self.account_id)
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("region", &self.region)
            .field("api_key", &REDACTED)
            .field("enabled", &self.enabled)
            .field("admin_disabled", &self.admin_disabled)
            .field("status", &self.status)
            .field("status_detail", &self.status_detail)
            .field("last_probe_at", &self.last_probe_at)
            .field("latency_ms", &self.latency_ms)
            .field("consecutive_failures", &self.consecutive_failures)
            .field("revision", &self.revision)
            .field("usage_flagged_at", &self.usage_flagged_at)
            .field("usage_flag_detail", &self.usage_flag_detail)
            .field("models", &self.models)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(id: &str) -> InstanceModel {
        InstanceModel { model: id.to_owned(), upstream_model: format!("up/{id}") }
    }

    fn instance() -> Instance {
        Instance {
            id: "inst_1".into(),
            account_id: 1,
            name: "box".into(),
            base_url: "http://a/v1".into(),
            region: None,
            api_key: "sk-instance-secret".into(),
            enabled: true,
            admin_disabled: false,
            status: InstanceStatus::Online,
            status_detail: String::new(),
            last_probe_at: None,
            latency_ms: None,
            consecutive_failures: 0,
            revision: 0,
            usage_flagged_at: None,
            usage_flag_detail: None,
            models: vec![model("a"), model("b")],
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn only_address_models_and_switch_call_for_a_probe() {
        let current = instance();
        let rename =
            InstanceChanges { name: Some("new".into()), region: Some(Some("eu".into())), ..Default::default() };
        assert_eq!(patch(&current, &rename).reprobe, None);
        let same_models = InstanceChanges { models: Some(vec![model("b"), model("a")]), ..Default::default() };
        assert_eq!(patch(&current, &same_models).reprobe, None, "the same models in another order");
        let models = InstanceChanges { models: Some(vec![model("a")]), ..Default::default() };
        assert_eq!(patch(&current, &models).reprobe.map(|r| r.0), Some(InstanceStatus::Pending));
        let off = InstanceChanges { enabled: Some(false), ..Default::default() };
        assert_eq!(patch(&current, &off).reprobe.map(|r| r.0), Some(InstanceStatus::Disabled));
        let url = InstanceChanges { base_url: Some("http://b/v1".into()), ..Default::default() };
        assert_eq!(patch(&current, &url).reprobe.map(|r| r.0), Some(InstanceStatus::Pending));
    }

    #[test]
    fn the_third_failure_in_a_row_takes_an_online_instance_offline() {
        assert_eq!(after_failure(InstanceStatus::Online, 0).0, InstanceStatus::Online);
        assert_eq!(after_failure(InstanceStatus::Online, 2).0, InstanceStatus::Offline);
        assert_eq!(after_failure(InstanceStatus::Mismatch, 5).0, InstanceStatus::Mismatch);
    }

    #[test]
    fn debug_hides_the_key() {
        let shown = format!("{:?}", instance());
        assert!(shown.contains("<redacted>") && !shown.contains("sk-instance-secret"));
    }

    #[test]
    fn a_usage_flag_shows_for_a_day() {
        let mut flagged = instance();
        assert_eq!(flagged.detail_at(10), "");
        flagged.usage_flagged_at = Some(1_000);
        flagged.usage_flag_detail = Some("over-reported usage: x".into());
        assert_eq!(flagged.detail_at(1_000 + USAGE_FLAG_SECS - 1), "over-reported usage: x");
        flagged.status_detail = "online".into();
        assert_eq!(flagged.detail_at(1_000), "online; over-reported usage: x");
        assert_eq!(flagged.detail_at(1_000 + USAGE_FLAG_SECS), "online", "gone after a day");
    }

    #[test]
    fn duplicates_are_found() {
        assert_eq!(duplicate_model(&[model("a"), model("b"), model("a")]), Some("a"));
        assert_eq!(duplicate_model(&[model("a"), model("b")]), None);
    }
}
