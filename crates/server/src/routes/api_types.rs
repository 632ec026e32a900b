//! The objects `/api` answers with and the bodies it takes, as types: each answer is
//! serialized from these structs and `GET /api/openapi.json` is generated from the same
//! structs, so the document cannot drift from the answers.

use serde::Serialize;
use utoipa::ToSchema;

/// Every `/api` error: `{"error": {...}}` (CONTRACTS.md §4).
#[derive(Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub code: String,
    /// The field at fault, when there is one.
    pub param: Option<String>,
}

/// `GET /api/me`. Money: a decimal string of USD plus the integer nano-USD.
#[derive(Clone, Serialize, ToSchema)]
pub struct Me {
    pub id: i64,
    /// The current GitHub login, or the account's name for accounts made with the CLI.
    pub login: String,
    pub name: String,
    pub avatar_url: Option<String>,
    pub email: Option<String>,
    /// `user` or `admin`.
    pub role: String,
    pub balance_usd: String,
    pub balance_nano_usd: i64,
    pub held_nano_usd: i64,
    /// RFC 3339, UTC.
    pub created_at: Option<String>,
}

/// An API key (never its secret).
#[derive(Clone, Serialize, ToSchema)]
pub struct Key {
    pub id: String,
    pub name: String,
    /// `sk-tr-<id>`: what the key starts with.
    pub prefix: String,
    /// `inference` (`/v1/*`) or `management` (`/api/*`).
    pub scope: String,
    pub community: bool,
    pub models: Vec<String>,
    pub ips: Vec<String>,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub spend_limit_usd: Option<String>,
    pub spent_usd: String,
    pub expires_at: Option<String>,
    pub created_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// A key just created: the key object plus its secret, shown this once.
#[derive(Clone, Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub object: Key,
    /// The secret: shown once, never again.
    pub key: String,
}

/// A page of Key objects, newest first; `next` is the cursor of the next page
/// (`?before=`), null on the last.
#[derive(Clone, Serialize, ToSchema)]
pub struct KeyList {
    pub data: Vec<Key>,
    pub next: Option<String>,
}

/// A page of RequestEntry objects, newest first; `next` is the cursor of the next page
/// (`?before=`), null on the last.
#[derive(Clone, Serialize, ToSchema)]
pub struct RequestList {
    pub data: Vec<RequestEntry>,
    pub next: Option<String>,
}

/// A page of LedgerEntry objects, newest first; `next` is the cursor of the next page
/// (`?before=`), null on the last.
#[derive(Clone, Serialize, ToSchema)]
pub struct LedgerList {
    pub data: Vec<LedgerEntry>,
    pub next: Option<String>,
}

/// A page of AdminAccount objects, newest first; `next` is the cursor of the next page
/// (`?before=`), null on the last.
#[derive(Clone, Serialize, ToSchema)]
pub struct AccountList {
    pub data: Vec<AdminAccount>,
    pub next: Option<String>,
}

/// What `DELETE /api/keys/{id}` answers.
#[derive(Clone, Serialize, ToSchema)]
pub struct Deleted {
    pub id: String,
    pub deleted: bool,
}

/// One group of `/api/usage`.
#[derive(Clone, Serialize, ToSchema)]
pub struct UsageBucket {
    /// The RFC 3339 start of the hour or day, or the model id, key id or provider name.
    pub bucket: String,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_usd: String,
}

/// `GET /api/usage`: not paginated; `from`/`to` are the period covered (`to` exclusive).
#[derive(Clone, Serialize, ToSchema)]
pub struct UsageReport {
    pub data: Vec<UsageBucket>,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// One request of the log (no prompt or answer text: none is stored).
#[derive(Clone, Serialize, ToSchema)]
pub struct RequestEntry {
    /// The request's `X-Request-Id`.
    pub id: String,
    pub created_at: Option<String>,
    pub key_id: String,
    pub model: String,
    /// Empty for a request refused before any upstream was tried.
    pub provider: String,
    /// `chat.completions`, `responses`, `messages`, `completions` or `embeddings`.
    pub surface: String,
    pub status: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// What the ledger charged for it.
    pub cost_usd: String,
    pub latency_ms: i64,
    /// Until the answer's first byte was ready for the client; null when none came.
    pub ttfb_ms: Option<i64>,
    /// Why it failed or was refused; null when answered.
    pub error_code: Option<String>,
    pub stream: bool,
    /// Web searches the provider ran for it (hosted tool calls billed per call, included
    /// in `cost_usd`).
    pub web_search_calls: i64,
    /// Web fetches the provider ran for it (billed per call, included in `cost_usd`).
    pub web_fetch_calls: i64,
}

/// A ledger row; `amount_usd` is signed (charges negative).
#[derive(Clone, Serialize, ToSchema)]
pub struct LedgerEntry {
    pub id: String,
    pub created_at: Option<String>,
    /// credit, charge, refund, adjustment, grant, redemption or earning.
    pub kind: String,
    pub amount_usd: String,
    pub balance_after_usd: String,
    pub memo: String,
    pub request_id: Option<String>,
}

/// USD per 1M tokens.
#[derive(Clone, Serialize, ToSchema)]
pub struct ModelPricing {
    pub input_usd_per_mtok: String,
    pub cached_input_usd_per_mtok: String,
    pub output_usd_per_mtok: String,
}

/// A model of the catalog, and whether it can serve now.
#[derive(Clone, Serialize, ToSchema)]
pub struct ModelEntry {
    pub id: String,
    pub owned_by: Option<String>,
    pub context_window: u64,
    pub max_output_tokens: u64,
    pub pricing: ModelPricing,
    pub capabilities: Vec<String>,
    /// `online`: a deployment is not cooling down; else `offline`.
    pub status: String,
    /// Deployments not cooling down.
    pub deployments: usize,
}

#[derive(Clone, Serialize, ToSchema)]
pub struct ModelList {
    pub data: Vec<ModelEntry>,
    pub next: Option<String>,
}

/// What `POST /api/redeem` answers.
#[derive(Clone, Serialize, ToSchema)]
pub struct Redeemed {
    pub credited_usd: String,
    pub balance_usd: String,
}

/// An account as admins see it.
#[derive(Clone, Serialize, ToSchema)]
pub struct AdminAccount {
    pub id: i64,
    pub name: String,
    pub login: String,
    pub role: String,
    pub balance_usd: String,
    pub balance_nano_usd: i64,
    pub held_nano_usd: i64,
    pub disabled: bool,
    pub created_at: Option<String>,
}

/// Redemption codes just minted, shown once.
#[derive(Clone, Serialize, ToSchema)]
pub struct Codes {
    pub codes: Vec<String>,
}

/// What `POST /auth/logout` answers.
#[derive(Clone, Serialize, ToSchema)]
pub struct SignedOut {
    pub signed_out: bool,
}

// Request bodies, as documentation: each route reads its body field by field (so that
// every refusal names its field) and refuses fields not listed here.

/// `POST /api/keys`. Limits are per minute; `spend_limit_usd` a decimal string.
#[derive(ToSchema)]
#[allow(dead_code, reason = "documentation of a body read field by field")]
pub struct NewKeyBody {
    name: Option<String>,
    /// `inference` (default) or `management`.
    scope: Option<String>,
    community: Option<bool>,
    models: Option<Vec<String>>,
    ips: Option<Vec<String>>,
    rpm: Option<u32>,
    tpm: Option<u32>,
    spend_limit_usd: Option<String>,
    /// RFC 3339, in the future.
    expires_at: Option<String>,
}

/// `PATCH /api/keys/{id}`: only the fields sent change; `null` removes a limit or expiry.
#[derive(ToSchema)]
#[allow(dead_code, reason = "documentation of a body read field by field")]
pub struct KeyPatchBody {
    name: Option<String>,
    models: Option<Vec<String>>,
    ips: Option<Vec<String>>,
    rpm: Option<u32>,
    tpm: Option<u32>,
    spend_limit_usd: Option<String>,
    expires_at: Option<String>,
}

/// `POST /api/admin/accounts/{id}/credit`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "documentation of a body read field by field")]
pub struct CreditBody {
    amount_usd: String,
    memo: Option<String>,
}

/// `PATCH /api/admin/accounts/{id}`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "documentation of a body read field by field")]
pub struct AccountPatchBody {
    disabled: bool,
}

/// `POST /api/admin/redemption-codes`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "documentation of a body read field by field")]
pub struct CodesBody {
    amount_usd: String,
    count: Option<u32>,
    expires_at: Option<String>,
}

// Instances (CONTRACTS.md §7).

/// A catalog model an instance serves, and the name its server knows it by.
#[derive(Clone, Serialize, ToSchema)]
pub struct InstanceModelEntry {
    /// The catalog model id (what clients ask for).
    pub id: String,
    /// The model name sent to the instance.
    pub upstream_model: String,
}

/// What an instance did over the last 24 hours.
#[derive(Clone, Serialize, ToSchema)]
pub struct InstanceStatsEntry {
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// What its owner earned for them, USD.
    pub earnings_usd: String,
    /// The share of probes that found it online, 0 to 1; null without probes.
    pub uptime_24h: Option<f64>,
}

/// Declared hardware: `memory_gb` per unit (1 GB = 1000 MB), `count` units.
#[derive(Clone, Serialize, ToSchema)]
pub struct ProcessingUnitEntry {
    pub id: String,
    /// `gpu`, `cpu`, `npu` or `tpu`.
    pub kind: String,
    pub vendor: String,
    pub model: String,
    pub memory_gb: f64,
    pub count: i64,
}

/// Declared software (engine, driver, …).
#[derive(Clone, Serialize, ToSchema)]
pub struct SoftwareEntry {
    pub id: String,
    pub name: String,
    pub version: String,
}

/// An instance: a model server the account registered (never its `instance_key`).
#[derive(Clone, Serialize, ToSchema)]
pub struct Instance {
    pub id: String,
    pub name: String,
    pub base_url: String,
    pub models: Vec<InstanceModelEntry>,
    pub region: Option<String>,
    /// `pending`, `online`, `offline`, `mismatch` or `disabled`.
    pub status: String,
    /// Why it has that status, for its owner; it also mentions `usage` for a day after the
    /// instance reported more usage than the gateway counted.
    pub status_detail: String,
    /// Its owner's switch.
    pub enabled: bool,
    pub last_probe_at: Option<String>,
    pub latency_ms: Option<u64>,
    pub processing_units: Vec<ProcessingUnitEntry>,
    pub software: Vec<SoftwareEntry>,
    pub stats: InstanceStatsEntry,
    pub created_at: Option<String>,
}

/// An instance just registered, with its key, shown this once: start the server with it
/// (e.g. vLLM `--api-key`).
#[derive(Clone, Serialize, ToSchema)]
pub struct CreatedInstance {
    #[serde(flatten)]
    pub object: Instance,
    pub instance_key: String,
}

/// A page of Instance objects, newest first; `next` is the cursor of the next page
/// (`?before=`), null on the last.
#[derive(Clone, Serialize, ToSchema)]
pub struct InstanceList {
    pub data: Vec<Instance>,
    pub next: Option<String>,
}

/// What `POST /api/instances/{id}/rotate-key` answers: the new key, shown this once.
#[derive(Clone, Serialize, ToSchema)]
pub struct RotatedInstanceKey {
    pub id: String,
    pub instance_key: String,
}

/// An instance as admins see it: the instance, its owner, and the admin's switch.
#[derive(Clone, Serialize, ToSchema)]
pub struct AdminInstance {
    #[serde(flatten)]
    pub object: Instance,
    pub account_id: i64,
    pub admin_disabled: bool,
}

/// A page of every account's instances (admins), newest first; `next` is the cursor of
/// the next page (`?before=`), null on the last.
#[derive(Clone, Serialize, ToSchema)]
pub struct AdminInstanceList {
    pub data: Vec<AdminInstance>,
    pub next: Option<String>,
}

/// An instance's processing units, in the order added.
#[derive(Clone, Serialize, ToSchema)]
pub struct ProcessingUnitList {
    pub data: Vec<ProcessingUnitEntry>,
}

/// An instance's software, in the order added.
#[derive(Clone, Serialize, ToSchema)]
pub struct SoftwareList {
    pub data: Vec<SoftwareEntry>,
}

/// One model of `POST /api/instances`: `upstream_model` defaults to `id`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "documentation of a body read field by field")]
pub struct InstanceModelBody {
    id: String,
    upstream_model: Option<String>,
}

/// `POST /api/instances`. `models`: catalog models open to instances, each once.
#[derive(ToSchema)]
#[allow(dead_code, reason = "documentation of a body read field by field")]
pub struct NewInstanceBody {
    name: String,
    /// http(s); every address it resolves to must pass the address policy.
    base_url: String,
    models: Vec<InstanceModelBody>,
    region: Option<String>,
}

/// `PATCH /api/instances/{id}`: only the fields sent change; `region: null` removes it. A
/// new `base_url` or `models`, or `enabled`, makes it wait for a new probe.
#[derive(ToSchema)]
#[allow(dead_code, reason = "documentation of a body read field by field")]
pub struct InstancePatchBody {
    name: Option<String>,
    base_url: Option<String>,
    models: Option<Vec<InstanceModelBody>>,
    region: Option<String>,
    enabled: Option<bool>,
}

/// `PATCH /api/admin/instances/{id}`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "documentation of a body read field by field")]
pub struct InstanceAdminPatchBody {
    disabled: bool,
}

/// `POST …/processing-units` (`count` defaults to 1); `PATCH` takes any of them.
#[derive(ToSchema)]
#[allow(dead_code, reason = "documentation of a body read field by field")]
pub struct ProcessingUnitBody {
    /// `gpu`, `cpu`, `npu` or `tpu`.
    kind: String,
    vendor: String,
    model: String,
    /// More than 0, at most 100000, at most 3 decimals.
    memory_gb: f64,
    /// 1 to 1024.
    count: Option<u32>,
}

/// `POST …/software`; `PATCH` takes either.
#[derive(ToSchema)]
#[allow(dead_code, reason = "documentation of a body read field by field")]
pub struct SoftwareBody {
    name: String,
    version: String,
}

/// `POST /api/admin/reload`: the config file was read again and is now serving.
#[derive(Clone, Serialize, ToSchema)]
pub struct ReloadResult {
    /// Always true (a refused reload answers 400 or 409).
    pub reloaded: bool,
    /// Providers configured now.
    pub providers: usize,
    /// Models configured now.
    pub models: usize,
    /// Settings changed in the file that apply only after a restart (their running value
    /// stays), e.g. `server.listen`.
    pub requires_restart: Vec<String>,
}
