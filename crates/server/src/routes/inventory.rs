//! `/api/instances/{id}/processing-units` and `/software`: the hardware and software an
//! instance's owner declares (CONTRACTS.md §7), validated field by field.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use http::StatusCode;
use serde_json::{Map, Value};
use tokenrouter_store::{self as store, NewProcessingUnit, NewSoftware};

use super::api_body::{Fields, object};
use super::api_types::{
    Deleted, ErrorBody, ProcessingUnitBody, ProcessingUnitEntry, ProcessingUnitList, SoftwareBody, SoftwareEntry,
    SoftwareList,
};
use super::instances::{not_found, optional_text, software_object, store_error, unit_object};
use crate::error::ApiError;
use crate::signin::Caller;
use crate::state::AppState;

const KINDS: [&str; 4] = ["gpu", "cpu", "npu", "tpu"];
const TEXT_LEN: usize = 100;
const VERSION_LEN: usize = 64;
const MAX_COUNT: u64 = 1024;
const MAX_MEMORY_GB: f64 = 100_000.0;
/// The most processing units, and the most software entries, one instance lists.
const MAX_ENTRIES: usize = 64;

fn unit_not_found(id: &str) -> ApiError {
    let id: String = id.chars().take(64).collect();
    ApiError::NotFound(format!("No processing unit '{id}' on this instance."))
}

fn software_not_found(id: &str) -> ApiError {
    let id: String = id.chars().take(64).collect();
    ApiError::NotFound(format!("No software '{id}' on this instance."))
}

fn required(name: &'static str, what: &str) -> ApiError {
    ApiError::invalid_param(format!("'{name}' is required: {what}."), name)
}

/// `memory_gb` as whole megabytes (1 GB = 1000 MB): more than 0, at most 100000 GB, at
/// most 3 decimals.
fn memory_mb(value: &Value) -> Result<i64, ApiError> {
    let bad = || {
        ApiError::invalid_param(
            "'memory_gb' must be a number of GB more than 0 and at most 100000, with at most 3 decimals.",
            "memory_gb",
        )
    };
    let gb = value.as_f64().filter(|gb| gb.is_finite() && *gb > 0.0 && *gb <= MAX_MEMORY_GB).ok_or_else(bad)?;
    let mb = (gb * 1000.0).round();
    if mb < 1.0 || (gb * 1000.0 - mb).abs() > 1e-6 {
        return Err(bad());
    }
    // At most 1e8: exact in an i64.
    Ok(mb as i64)
}

/// A processing unit from `body`, the fields it does not name taken from `current`.
fn unit_from(
    body: &Map<String, Value>,
    current: Option<&store::ProcessingUnit>,
) -> Result<NewProcessingUnit, ApiError> {
    let fields = Fields(body);
    let kind = match fields.text("kind", 8)? {
        Some(kind) => {
            let kind = kind.to_ascii_lowercase();
            if !KINDS.contains(&kind.as_str()) {
                return Err(ApiError::invalid_param("'kind' must be one of gpu, cpu, npu, tpu.", "kind"));
            }
            kind
        }
        None => current.map(|c| c.kind.clone()).ok_or_else(|| required("kind", "gpu, cpu, npu or tpu"))?,
    };
    let vendor = match optional_text(&fields, "vendor", TEXT_LEN)? {
        Some(vendor) => vendor,
        None => current.map(|c| c.vendor.clone()).ok_or_else(|| required("vendor", "1 to 100 characters"))?,
    };
    let model = match optional_text(&fields, "model", TEXT_LEN)? {
        Some(model) => model,
        None => current.map(|c| c.model.clone()).ok_or_else(|| required("model", "1 to 100 characters"))?,
    };
    let memory_mb = match body.get("memory_gb") {
        Some(value) => memory_mb(value)?,
        None => current.map(|c| c.memory_mb).ok_or_else(|| required("memory_gb", "GB per unit, such as 80"))?,
    };
    let count = match body.get("count") {
        Some(value) => match value.as_u64() {
            Some(n @ 1..=MAX_COUNT) => i64::try_from(n).unwrap_or(1),
            _ => return Err(ApiError::invalid_param("'count' must be a whole number from 1 to 1024.", "count")),
        },
        None => current.map_or(1, |c| c.count),
    };
    Ok(NewProcessingUnit { kind, vendor, model, memory_mb, count })
}

/// Software from `body`, the fields it does not name taken from `current`.
fn software_from(body: &Map<String, Value>, current: Option<&store::Software>) -> Result<NewSoftware, ApiError> {
    let fields = Fields(body);
    let name = match optional_text(&fields, "name", TEXT_LEN)? {
        Some(name) => name,
        None => current.map(|c| c.name.clone()).ok_or_else(|| required("name", "1 to 100 characters"))?,
    };
    let version = match optional_text(&fields, "version", VERSION_LEN)? {
        Some(version) => version,
        None => current.map(|c| c.version.clone()).ok_or_else(|| required("version", "1 to 64 characters"))?,
    };
    Ok(NewSoftware { name, version })
}

const UNIT_FIELDS: &[&str] = &["kind", "vendor", "model", "memory_gb", "count"];
const SOFTWARE_FIELDS: &[&str] = &["name", "version"];

/// The processing units of one of the caller's instances, or 404.
async fn units_of(state: &AppState, caller: &Caller, id: &str) -> Result<Vec<store::ProcessingUnit>, ApiError> {
    let units = state.db.processing_units(caller.account.id, id).await.map_err(store_error)?;
    units.ok_or_else(|| not_found(id))
}

/// The software of one of the caller's instances, or 404.
async fn software_of(state: &AppState, caller: &Caller, id: &str) -> Result<Vec<store::Software>, ApiError> {
    let software = state.db.software(caller.account.id, id).await.map_err(store_error)?;
    software.ok_or_else(|| not_found(id))
}

fn too_many(what: &str) -> ApiError {
    ApiError::invalid(format!("An instance lists at most {MAX_ENTRIES} {what}; change or delete one instead."))
}

/// `GET /api/instances/{id}/processing-units`.
#[utoipa::path(get, path = "/api/instances/{id}/processing-units", tag = "instances", params(("id" = String, Path)), responses((status = 200, body = ProcessingUnitList), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key) or csrf_failed", body = ErrorBody), (status = 404, description = "No such object on this account", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn list_units(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ProcessingUnitList>, ApiError> {
    let units = units_of(&state, &caller, &id).await?;
    Ok(Json(ProcessingUnitList { data: units.iter().map(unit_object).collect() }))
}

/// `POST /api/instances/{id}/processing-units` → 201.
#[utoipa::path(post, path = "/api/instances/{id}/processing-units", tag = "instances", params(("id" = String, Path)), request_body = ProcessingUnitBody, responses((status = 201, body = ProcessingUnitEntry), (status = 400, description = "Bad input; `param` names the field", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key) or csrf_failed", body = ErrorBody), (status = 404, description = "No such object on this account", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn add_unit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let body = object(body, UNIT_FIELDS).await?;
    let unit = unit_from(&body, None)?;
    if units_of(&state, &caller, &id).await?.len() >= MAX_ENTRIES {
        return Err(too_many("processing units"));
    }
    let added = state.db.add_processing_unit(caller.account.id, &id, &unit).await.map_err(store_error)?;
    let added = added.ok_or_else(|| not_found(&id))?;
    Ok((StatusCode::CREATED, Json(unit_object(&added))))
}

/// `PATCH /api/instances/{id}/processing-units/{unit}`: any of its fields.
#[utoipa::path(patch, path = "/api/instances/{id}/processing-units/{unit}", tag = "instances", params(("id" = String, Path), ("unit" = String, Path)), request_body = ProcessingUnitBody, responses((status = 200, body = ProcessingUnitEntry), (status = 400, description = "Bad input; `param` names the field", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key) or csrf_failed", body = ErrorBody), (status = 404, description = "No such object on this account", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn update_unit(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, unit_id)): Path<(String, String)>,
    body: Body,
) -> Result<Json<ProcessingUnitEntry>, ApiError> {
    let body = object(body, UNIT_FIELDS).await?;
    let units = units_of(&state, &caller, &id).await?;
    let current = units.iter().find(|u| u.id == unit_id).ok_or_else(|| unit_not_found(&unit_id))?;
    let unit = unit_from(&body, Some(current))?;
    let updated = state.db.update_processing_unit(caller.account.id, &id, &unit_id, &unit).await;
    let updated = updated.map_err(store_error)?.ok_or_else(|| unit_not_found(&unit_id))?;
    Ok(Json(unit_object(&updated)))
}

/// `DELETE /api/instances/{id}/processing-units/{unit}`.
#[utoipa::path(delete, path = "/api/instances/{id}/processing-units/{unit}", tag = "instances", params(("id" = String, Path), ("unit" = String, Path)), responses((status = 200, body = Deleted), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key) or csrf_failed", body = ErrorBody), (status = 404, description = "No such object on this account", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn delete_unit(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, unit_id)): Path<(String, String)>,
) -> Result<Json<Deleted>, ApiError> {
    if !state.db.delete_processing_unit(caller.account.id, &id, &unit_id).await.map_err(store_error)? {
        units_of(&state, &caller, &id).await?;
        return Err(unit_not_found(&unit_id));
    }
    Ok(Json(Deleted { id: unit_id, deleted: true }))
}

/// `GET /api/instances/{id}/software`.
#[utoipa::path(get, path = "/api/instances/{id}/software", tag = "instances", params(("id" = String, Path)), responses((status = 200, body = SoftwareList), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key) or csrf_failed", body = ErrorBody), (status = 404, description = "No such object on this account", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn list_software(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<SoftwareList>, ApiError> {
    let software = software_of(&state, &caller, &id).await?;
    Ok(Json(SoftwareList { data: software.iter().map(software_object).collect() }))
}

/// `POST /api/instances/{id}/software` → 201.
#[utoipa::path(post, path = "/api/instances/{id}/software", tag = "instances", params(("id" = String, Path)), request_body = SoftwareBody, responses((status = 201, body = SoftwareEntry), (status = 400, description = "Bad input; `param` names the field", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key) or csrf_failed", body = ErrorBody), (status = 404, description = "No such object on this account", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn add_software(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let body = object(body, SOFTWARE_FIELDS).await?;
    let software = software_from(&body, None)?;
    if software_of(&state, &caller, &id).await?.len() >= MAX_ENTRIES {
        return Err(too_many("software entries"));
    }
    let added = state.db.add_software(caller.account.id, &id, &software).await.map_err(store_error)?;
    let added = added.ok_or_else(|| not_found(&id))?;
    Ok((StatusCode::CREATED, Json(software_object(&added))))
}

/// `PATCH /api/instances/{id}/software/{software}`: either field.
#[utoipa::path(patch, path = "/api/instances/{id}/software/{software}", tag = "instances", params(("id" = String, Path), ("software" = String, Path)), request_body = SoftwareBody, responses((status = 200, body = SoftwareEntry), (status = 400, description = "Bad input; `param` names the field", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key) or csrf_failed", body = ErrorBody), (status = 404, description = "No such object on this account", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn update_software(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, software_id)): Path<(String, String)>,
    body: Body,
) -> Result<Json<SoftwareEntry>, ApiError> {
    let body = object(body, SOFTWARE_FIELDS).await?;
    let all = software_of(&state, &caller, &id).await?;
    let current = all.iter().find(|s| s.id == software_id).ok_or_else(|| software_not_found(&software_id))?;
    let software = software_from(&body, Some(current))?;
    let updated = state.db.update_software(caller.account.id, &id, &software_id, &software).await;
    let updated = updated.map_err(store_error)?.ok_or_else(|| software_not_found(&software_id))?;
    Ok(Json(software_object(&updated)))
}

/// `DELETE /api/instances/{id}/software/{software}`.
#[utoipa::path(delete, path = "/api/instances/{id}/software/{software}", tag = "instances", params(("id" = String, Path), ("software" = String, Path)), responses((status = 200, body = Deleted), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key) or csrf_failed", body = ErrorBody), (status = 404, description = "No such object on this account", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn delete_software(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, software_id)): Path<(String, String)>,
) -> Result<Json<Deleted>, ApiError> {
    if !state.db.delete_software(caller.account.id, &id, &software_id).await.map_err(store_error)? {
        software_of(&state, &caller, &id).await?;
        return Err(software_not_found(&software_id));
    }
    Ok(Json(Deleted { id: software_id, deleted: true }))
}
