//! `GET /api/whoami`: which key and account a bearer token belongs to.

use axum::Json;
use serde_json::{Value, json};

use crate::auth::display_prefix;
use crate::policy::Permitted;

pub async fn whoami(Permitted(key): Permitted) -> Json<Value> {
    Json(json!({
        "id": key.id,
        "prefix": display_prefix(&key.id),
        "name": key.name,
        "account": key.account_name,
        "account_id": key.account_id,
        "models": key.models,
        "expires_at": key.expires_at,
    }))
}
