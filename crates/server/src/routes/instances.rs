//! `/api/instances`: an account's model servers (CONTRACTS.md §7) — register (the
//! `instance_key` shown this once), list, read with stats, change, rotate the key, delete —
//! and the admins' switch on any instance. Inventory routes are in `inventory.rs`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use http::StatusCode;
use serde_json::{Map, Value};
use tokenrouter_store::{self as store, InstanceChanges, InstanceModel, NewInstance, StoreError};

use super::account::rfc3339;
use super::api_body::{Fields, object};
use super::api_keys::Page;
use super::api_types::{
    AdminInstance, AdminInstanceList, CreatedInstance, Deleted, ErrorBody, Instance, InstanceAdminPatchBody,
    InstanceList, InstanceModelEntry, InstancePatchBody, InstanceStatsEntry, NewInstanceBody, ProcessingUnitEntry,
    RotatedInstanceKey, SoftwareEntry,
};
use crate::config::Config;
use crate::error::ApiError;
use crate::instances::{address, connector};
use crate::signin::Caller;
use crate::state::AppState;

pub const NAME_LEN: usize = 100;
const URL_LEN: usize = 2048;
const REGION_LEN: usize = 64;
const UPSTREAM_MODEL_LEN: usize = 200;
const MAX_MODELS: usize = 100;
/// `sk-inst-` and 43 base62 characters: 256 bits.
const KEY_PREFIX: &str = "sk-inst-";
const KEY_SECRET_LEN: usize = 43;
const DAY_SECS: i64 = 86_400;

pub fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::DuplicateInstanceModel(model) => {
            ApiError::invalid_param(format!("'models' lists '{model}' twice."), "models")
        }
        e => {
            tracing::warn!(error = %e, "an instance route could not reach the store");
            ApiError::StoreUnavailable
        }
    }
}

pub fn not_found(id: &str) -> ApiError {
    let id: String = id.chars().take(64).collect();
    ApiError::NotFound(format!("No instance '{id}' on this account."))
}

/// A new instance key (never logged; shown to the owner once).
fn mint_key() -> Result<String, ApiError> {
    let secret = crate::auth::random_base62(KEY_SECRET_LEN)
        .map_err(|e| ApiError::Internal(format!("no randomness available: {e}")))?;
    Ok(format!("{KEY_PREFIX}{secret}"))
}

/// A required text field of 1 to `max_len` characters without control characters.
pub fn required_text(fields: &Fields<'_>, name: &'static str, max_len: usize) -> Result<String, ApiError> {
    optional_text(fields, name, max_len)?
        .ok_or_else(|| ApiError::invalid_param(format!("'{name}' is required: 1 to {max_len} characters."), name))
}

/// A text field when present: 1 to `max_len` characters without control characters.
pub fn optional_text(fields: &Fields<'_>, name: &'static str, max_len: usize) -> Result<Option<String>, ApiError> {
    let Some(text) = fields.text(name, max_len)? else { return Ok(None) };
    if text.is_empty() {
        return Err(ApiError::invalid_param(format!("'{name}' must not be empty."), name));
    }
    if text.chars().any(char::is_control) {
        return Err(ApiError::invalid_param(format!("'{name}' must not contain control characters."), name));
    }
    Ok(Some(text))
}

/// `base_url`, checked as §7 says: the URL itself, then every address its host resolves
/// to. The canonical form is what is stored. A refusal is `unsafe_url`; a name that does
/// not resolve is a plain `invalid_request`.
async fn checked_base_url(text: &str, config: &Config) -> Result<String, ApiError> {
    let allow_private = config.instances.allow_private_addresses;
    let url = address::check_url(text, allow_private)
        .map_err(|e| ApiError::UnsafeUrl(format!("'base_url' is refused: {e}.")))?;
    let settings = connector::Settings {
        allow_private,
        connect_timeout: config.server.connect_timeout,
        resolver: connector::Resolver::System,
    };
    match connector::check_resolution(&url, &settings).await {
        Ok(_) => Ok(url.to_string()),
        Err(connector::ResolutionError::Refused(refused)) => {
            Err(ApiError::UnsafeUrl(format!("'base_url' is refused: {refused}.")))
        }
        Err(connector::ResolutionError::Lookup(e)) => Err(ApiError::invalid_param(
            format!("'base_url': its host could not be resolved ({e}); check the name."),
            "base_url",
        )),
    }
}

/// `models`: a non-empty list of `{id, upstream_model?}`, each a catalog model open to
/// instances, each once.
fn parse_models(value: &Value, config: &Config) -> Result<Vec<InstanceModel>, ApiError> {
    let bad = |message: String| ApiError::invalid_param(message, "models");
    let shape = || {
        bad(format!(
            "'models' must be a list of 1 to {MAX_MODELS} objects {{\"id\": \"<catalog model>\", \"upstream_model\": \"<its name on your server>\"}}."
        ))
    };
    let Value::Array(items) = value else { return Err(shape()) };
    if items.is_empty() || items.len() > MAX_MODELS {
        return Err(shape());
    }
    let mut models: Vec<InstanceModel> = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(entry) = item else { return Err(shape()) };
        if let Some(unknown) = entry.keys().find(|k| *k != "id" && *k != "upstream_model") {
            let unknown: String = unknown.chars().take(64).collect();
            return Err(bad(format!("'models': unknown field '{unknown}' (allowed: id, upstream_model).")));
        }
        let Some(Value::String(id)) = entry.get("id") else { return Err(shape()) };
        let id = id.trim();
        let shown: String = id.chars().take(64).collect();
        let model =
            config.model(id).ok_or_else(|| bad(format!("'models': '{shown}' is not a model of the catalog.")))?;
        if !model.instances {
            return Err(bad(format!("'models': '{shown}' is not open to instances.")));
        }
        let upstream_model = match entry.get("upstream_model") {
            None | Some(Value::Null) => id.to_owned(),
            Some(Value::String(name))
                if !name.trim().is_empty()
                    && name.chars().count() <= UPSTREAM_MODEL_LEN
                    && !name.chars().any(char::is_control) =>
            {
                name.trim().to_owned()
            }
            Some(_) => {
                return Err(bad(format!(
                    "'models': the upstream_model of '{shown}' must be 1 to {UPSTREAM_MODEL_LEN} characters."
                )));
            }
        };
        if models.iter().any(|m| m.model == id) {
            return Err(bad(format!("'models' lists '{shown}' twice.")));
        }
        models.push(InstanceModel { model: id.to_owned(), upstream_model });
    }
    Ok(models)
}

/// `region`: absent → `None`; `null` or empty → `Some(None)`; else up to 64 characters.
fn parse_region(body: &Map<String, Value>) -> Result<Option<Option<String>>, ApiError> {
    match body.get("region") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(_) => {
            let region = Fields(body).text("region", REGION_LEN)?.unwrap_or_default();
            if region.chars().any(char::is_control) {
                return Err(ApiError::invalid_param("'region' must not contain control characters.", "region"));
            }
            Ok(Some((!region.is_empty()).then_some(region)))
        }
    }
}

/// The API's view of a stored instance: inventory and the last 24 hours' stats included.
pub async fn instance_object(state: &AppState, instance: &store::Instance) -> Result<Instance, ApiError> {
    let (account, id) = (instance.account_id, instance.id.as_str());
    let units = state.db.processing_units(account, id).await.map_err(store_error)?.unwrap_or_default();
    let software = state.db.software(account, id).await.map_err(store_error)?.unwrap_or_default();
    let now = tokenrouter_core::clock::now_unix();
    let since = now - DAY_SECS;
    let stats = state.db.instance_stats(id, since).await.map_err(store_error)?;
    Ok(Instance {
        id: instance.id.clone(),
        name: instance.name.clone(),
        base_url: instance.base_url.clone(),
        models: instance
            .models
            .iter()
            .map(|m| InstanceModelEntry { id: m.model.clone(), upstream_model: m.upstream_model.clone() })
            .collect(),
        region: instance.region.clone(),
        status: instance.status.as_str().to_owned(),
        status_detail: instance.detail_at(now),
        enabled: instance.enabled,
        last_probe_at: instance.last_probe_at.and_then(rfc3339),
        latency_ms: instance.latency_ms,
        processing_units: units.iter().map(unit_object).collect(),
        software: software.iter().map(software_object).collect(),
        stats: InstanceStatsEntry {
            requests: stats.requests,
            prompt_tokens: stats.prompt_tokens,
            completion_tokens: stats.completion_tokens,
            earnings_usd: stats.earnings.to_decimal_string(),
            uptime_24h: stats.uptime_24h,
        },
        created_at: rfc3339(instance.created_at),
    })
}

pub fn unit_object(unit: &store::ProcessingUnit) -> ProcessingUnitEntry {
    ProcessingUnitEntry {
        id: unit.id.clone(),
        kind: unit.kind.clone(),
        vendor: unit.vendor.clone(),
        model: unit.model.clone(),
        memory_gb: unit.memory_mb as f64 / 1000.0,
        count: unit.count,
    }
}

pub fn software_object(software: &store::Software) -> SoftwareEntry {
    SoftwareEntry { id: software.id.clone(), name: software.name.clone(), version: software.version.clone() }
}

/// `GET /api/instances`.
#[utoipa::path(get, path = "/api/instances", tag = "instances", params(("limit" = Option<u32>, Query, description = "1 to 100, default 20"), ("before" = Option<String>, Query, description = "`next` of the previous page")), responses((status = 200, body = InstanceList), (status = 400, description = "Bad input; `param` names the field", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key) or csrf_failed", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<Page>,
) -> Result<Json<InstanceList>, ApiError> {
    let instances = state.db.instances_of(caller.account.id).await.map_err(store_error)?;
    let (instances, next) = page.of(instances, |i| &i.id)?;
    let mut data = Vec::with_capacity(instances.len());
    for instance in &instances {
        data.push(instance_object(&state, instance).await?);
    }
    Ok(Json(InstanceList { data, next }))
}

/// `POST /api/instances` → 201, the instance (`pending`) plus `instance_key`, this once.
#[utoipa::path(post, path = "/api/instances", tag = "instances", request_body = NewInstanceBody, responses((status = 201, description = "The instance, with its key this once", body = CreatedInstance), (status = 400, description = "Bad input (`param` names the field), or `unsafe_url`", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key) or csrf_failed", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn create(State(state): State<AppState>, caller: Caller, body: Body) -> Result<impl IntoResponse, ApiError> {
    let body = object(body, &["name", "base_url", "models", "region"]).await?;
    let fields = Fields(&body);
    let config = state.config.load_full();
    let name = required_text(&fields, "name", NAME_LEN)?;
    let base_url = fields
        .text("base_url", URL_LEN)?
        .filter(|url| !url.is_empty())
        .ok_or_else(|| ApiError::invalid_param("'base_url' is required: http(s)://host[:port][/path].", "base_url"))?;
    let models = match body.get("models") {
        Some(value) => parse_models(value, &config)?,
        None => {
            return Err(ApiError::invalid_param("'models' is required: [{\"id\": \"<catalog model>\"}].", "models"));
        }
    };
    let region = parse_region(&body)?.flatten();
    let base_url = checked_base_url(&base_url, &config).await?;
    let api_key = mint_key()?;
    let new = NewInstance { account_id: caller.account.id, name, base_url, region, api_key, models };
    let instance = state.db.create_instance(&new).await.map_err(store_error)?;
    tracing::info!(account = caller.account.id, instance = %instance.id, "an instance was registered");
    state.instances_changed();
    let object = instance_object(&state, &instance).await?;
    Ok((StatusCode::CREATED, Json(CreatedInstance { object, instance_key: new.api_key })))
}

/// `GET /api/instances/{id}`.
#[utoipa::path(get, path = "/api/instances/{id}", tag = "instances", params(("id" = String, Path)), responses((status = 200, body = Instance), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key) or csrf_failed", body = ErrorBody), (status = 404, description = "No such object on this account", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Instance>, ApiError> {
    let instance = state.db.instance(caller.account.id, &id).await.map_err(store_error)?;
    let instance = instance.ok_or_else(|| not_found(&id))?;
    Ok(Json(instance_object(&state, &instance).await?))
}

/// `PATCH /api/instances/{id}`: any of name, base_url, models, region, enabled.
#[utoipa::path(patch, path = "/api/instances/{id}", tag = "instances", params(("id" = String, Path)), request_body = InstancePatchBody, responses((status = 200, body = Instance), (status = 400, description = "Bad input (`param` names the field), or `unsafe_url`", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key) or csrf_failed", body = ErrorBody), (status = 404, description = "No such object on this account", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Instance>, ApiError> {
    let body = object(body, &["name", "base_url", "models", "region", "enabled"]).await?;
    let fields = Fields(&body);
    let config = state.config.load_full();
    let name = optional_text(&fields, "name", NAME_LEN)?;
    let base_url = optional_text(&fields, "base_url", URL_LEN)?;
    let models = body.get("models").map(|value| parse_models(value, &config)).transpose()?;
    let region = parse_region(&body)?;
    let enabled = fields.boolean("enabled")?;
    // Another account's instance is 404 before any lookup of the new address.
    if state.db.instance(caller.account.id, &id).await.map_err(store_error)?.is_none() {
        return Err(not_found(&id));
    }
    let base_url = match base_url {
        Some(url) => Some(checked_base_url(&url, &config).await?),
        None => None,
    };
    let changes = InstanceChanges { name, base_url, region, models, enabled };
    let instance = state.db.update_instance(caller.account.id, &id, &changes).await.map_err(store_error)?;
    let instance = instance.ok_or_else(|| not_found(&id))?;
    state.instances_changed();
    Ok(Json(instance_object(&state, &instance).await?))
}

/// `DELETE /api/instances/{id}`: no new request is routed to it.
#[utoipa::path(delete, path = "/api/instances/{id}", tag = "instances", params(("id" = String, Path)), responses((status = 200, body = Deleted), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key) or csrf_failed", body = ErrorBody), (status = 404, description = "No such object on this account", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    if !state.db.delete_instance(caller.account.id, &id).await.map_err(store_error)? {
        return Err(not_found(&id));
    }
    tracing::info!(account = caller.account.id, instance = %id, "an instance was deleted");
    state.instances_changed();
    Ok(Json(Deleted { id, deleted: true }))
}

/// `POST /api/instances/{id}/rotate-key` → a new `instance_key`, this once; the instance
/// waits for a probe with it (`pending`).
#[utoipa::path(post, path = "/api/instances/{id}/rotate-key", tag = "instances", params(("id" = String, Path)), responses((status = 200, description = "The new key, shown this once", body = RotatedInstanceKey), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key) or csrf_failed", body = ErrorBody), (status = 404, description = "No such object on this account", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn rotate_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RotatedInstanceKey>, ApiError> {
    let key = mint_key()?;
    let rotated = state.db.rotate_instance_key(caller.account.id, &id, &key).await.map_err(store_error)?;
    let instance = rotated.ok_or_else(|| not_found(&id))?;
    tracing::info!(account = caller.account.id, instance = %instance.id, "an instance key was rotated");
    state.instances_changed();
    Ok(Json(RotatedInstanceKey { id: instance.id, instance_key: key }))
}

fn admin_only(caller: &Caller) -> Result<(), ApiError> {
    if caller.account.is_admin { Ok(()) } else { Err(ApiError::Forbidden("This route is for admins only.".to_owned())) }
}

fn admin_object(object: Instance, instance: &store::Instance) -> AdminInstance {
    AdminInstance { object, account_id: instance.account_id, admin_disabled: instance.admin_disabled }
}

/// `GET /api/admin/instances`: every account's instances, newest first.
#[utoipa::path(get, path = "/api/admin/instances", tag = "admin", params(("limit" = Option<u32>, Query, description = "1 to 100, default 20"), ("before" = Option<String>, Query, description = "`next` of the previous page")), responses((status = 200, body = AdminInstanceList), (status = 400, description = "Bad input; `param` names the field", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key, or not an admin) or csrf_failed", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn admin_list(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<Page>,
) -> Result<Json<AdminInstanceList>, ApiError> {
    admin_only(&caller)?;
    let limit = super::api_body::page_limit(page.limit.as_deref())?;
    let before = page.before.as_deref();
    if before.is_some_and(|id| !id.starts_with("inst_") || id.len() > 64) {
        return Err(ApiError::invalid_param("'before' is not a cursor from this list.", "before"));
    }
    let fetch = i64::try_from(limit).unwrap_or(100).saturating_add(1);
    let mut instances = state.db.all_instances(fetch, before).await.map_err(store_error)?;
    let next = (instances.len() > limit).then(|| {
        instances.truncate(limit);
        instances.last().map(|i| i.id.clone())
    });
    let mut data = Vec::with_capacity(instances.len());
    for instance in &instances {
        data.push(admin_object(instance_object(&state, instance).await?, instance));
    }
    Ok(Json(AdminInstanceList { data, next: next.flatten() }))
}

/// `PATCH /api/admin/instances/{id}`: `{disabled: true|false}` on any account's instance.
#[utoipa::path(patch, path = "/api/admin/instances/{id}", tag = "admin", params(("id" = String, Path)), request_body = InstanceAdminPatchBody, responses((status = 200, body = AdminInstance), (status = 400, description = "Bad input; `param` names the field", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key, or not an admin) or csrf_failed", body = ErrorBody), (status = 404, description = "No such instance", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn admin_update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<AdminInstance>, ApiError> {
    admin_only(&caller)?;
    let body = object(body, &["disabled"]).await?;
    let disabled = Fields(&body)
        .boolean("disabled")?
        .ok_or_else(|| ApiError::invalid_param("'disabled' is required: true or false.", "disabled"))?;
    let instance = state.db.set_admin_disabled(&id, disabled).await.map_err(store_error)?;
    let instance = instance
        .ok_or_else(|| ApiError::NotFound(format!("No instance '{}'.", id.chars().take(64).collect::<String>())))?;
    tracing::info!(admin = caller.account.id, instance = %instance.id, disabled, "an admin switched an instance");
    state.instances_changed();
    let object = instance_object(&state, &instance).await?;
    Ok(Json(admin_object(object, &instance)))
}
