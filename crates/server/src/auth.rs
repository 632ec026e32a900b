//! API keys: minting (`sk-tr-<public id>_<secret>`), hashing, and authenticating a request
//! against the in-memory key snapshot — never the database.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokenrouter_store::{KeyRow, KeyScope};

use crate::error::ApiError;
use crate::state::AppState;

const PREFIX: &str = "sk-tr-";
const PUBLIC_ID_LEN: usize = 16;
/// 43 base62 characters: 256 bits of entropy.
const SECRET_LEN: usize = 43;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A freshly minted key; `full` is shown once and never stored.
pub struct MintedKey {
    pub id: String,
    pub full: String,
    pub hash: [u8; 32],
}

impl std::fmt::Debug for MintedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedKey").field("id", &self.id).field("full", &"<redacted>").finish()
    }
}

pub fn random_base62(len: usize) -> Result<String, getrandom::Error> {
    let mut out = String::with_capacity(len);
    let mut bytes = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut bytes)?;
        // 248 = 4 × 62: rejecting larger bytes keeps every character equally likely.
        for b in bytes.iter().filter(|b| **b < 248) {
            if out.len() == len {
                break;
            }
            out.push(char::from(BASE62[usize::from(*b % 62)]));
        }
    }
    Ok(out)
}

/// A random token of 256 bits (43 base62 characters): sessions and sign-in links.
pub fn random_token() -> Result<String, getrandom::Error> {
    random_base62(SECRET_LEN)
}

/// The most redemption codes minted at once.
pub const MAX_CODES: u32 = 1_000;

/// A redemption code: `trc-` and 24 base62 characters (~143 bits).
pub fn mint_code() -> Result<String, getrandom::Error> {
    Ok(format!("trc-{}", random_base62(24)?))
}

pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

pub fn mint() -> Result<MintedKey, getrandom::Error> {
    let id = random_base62(PUBLIC_ID_LEN)?;
    let secret = random_base62(SECRET_LEN)?;
    let hash = hash_secret(&secret);
    Ok(MintedKey { full: format!("{PREFIX}{id}_{secret}"), id, hash })
}

/// The displayable prefix of a key (never the secret).
pub fn display_prefix(id: &str) -> String {
    format!("{PREFIX}{id}")
}

/// Splits `sk-tr-<id>_<secret>` into its parts.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.strip_prefix(PREFIX)?.split_once('_')?;
    (id.len() == PUBLIC_ID_LEN && !secret.is_empty()).then_some((id, secret))
}

/// The keys that may authenticate, as loaded from the store.
#[derive(Debug, Default)]
pub struct KeySnapshot {
    pub version: i64,
    keys: HashMap<String, Arc<KeyRow>>,
}

impl KeySnapshot {
    pub fn new(version: i64, rows: Vec<KeyRow>) -> KeySnapshot {
        KeySnapshot { version, keys: rows.into_iter().map(|k| (k.id.clone(), Arc::new(k))).collect() }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.keys.contains_key(id)
    }

    /// The key with this public id, if it may authenticate (the gateway's own use: the
    /// dashboard playground spends through a key whose secret nobody keeps).
    pub fn get(&self, id: &str) -> Option<Arc<KeyRow>> {
        self.keys.get(id).cloned()
    }

    /// The key a bearer token names, if the secret matches (compared in constant time).
    pub fn authenticate(&self, token: &str, now: i64) -> Result<Arc<KeyRow>, ApiError> {
        let (id, secret) = parse(token).ok_or(ApiError::Unauthorized("Incorrect API key provided."))?;
        let key = self.keys.get(id).ok_or(ApiError::Unauthorized("Incorrect API key provided."))?;
        if !bool::from(hash_secret(secret).ct_eq(&key.secret_hash)) {
            return Err(ApiError::Unauthorized("Incorrect API key provided."));
        }
        if key.expires_at.is_some_and(|at| at <= now) {
            return Err(ApiError::Unauthorized("This API key has expired."));
        }
        Ok(key.clone())
    }
}

/// The authenticated key of a request: `Authorization: Bearer …` or `x-api-key`.
#[derive(Debug, Clone)]
pub struct Authed(pub Arc<KeyRow>);

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let gemini = crate::routes::speaks_gemini(&parts.method, parts.uri.path(), &parts.headers, parts.uri.query());
        let token = bearer(&parts.headers).or_else(|| gemini.then(|| google_key(parts)).flatten()).ok_or(
            ApiError::Unauthorized(
                "You didn't provide an API key. Send it as 'Authorization: Bearer sk-tr-…' or 'x-api-key' \
                 (on /v1beta also 'x-goog-api-key' or '?key=').",
            ),
        )?;
        let key = authenticate(state, token).await?;
        if key.scope == KeyScope::Management && (parts.uri.path().starts_with("/v1") || gemini) {
            return Err(ApiError::Forbidden(
                "This is a management key: it works on /api/* only. Use an inference key for /v1/*.".to_owned(),
            ));
        }
        Ok(Authed(key))
    }
}

/// The key a bearer token names, from the in-memory snapshot.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Arc<KeyRow>, ApiError> {
    let now = tokenrouter_core::clock::now_unix();
    let arrived_ms = tokenrouter_core::clock::now_unix_ms();
    let result = state.keys.load().authenticate(token, now);
    // A well-formed key the snapshot does not know may have been created a moment ago
    // by another process: wait for a reload that began after this request arrived.
    let unknown = || parse(token).is_some_and(|(id, _)| !state.keys.load().contains(id));
    if result.is_err() && unknown() {
        state.refresh_keys_since(arrived_ms).await;
        return state.keys.load().authenticate(token, now);
    }
    result
}

/// The key as Google's clients send it (the Gemini routes only): `x-goog-api-key`, else
/// the `key` query parameter.
fn google_key(parts: &Parts) -> Option<&str> {
    let header = parts.headers.get("x-goog-api-key").and_then(|v| v.to_str().ok());
    header.or_else(|| crate::routes::gemini_key_param(parts.uri.query())).map(str::trim)
}

/// The bearer token of a request: `Authorization: Bearer …` or `x-api-key`.
pub fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, hash: [u8; 32], expires_at: Option<i64>) -> KeyRow {
        KeyRow { id: id.to_owned(), secret_hash: hash, expires_at, ..KeyRow::default() }
    }

    #[test]
    fn minted_keys_authenticate_and_near_misses_do_not() {
        let k = mint().unwrap();
        assert!(k.full.starts_with("sk-tr-") && k.full.len() == 6 + 16 + 1 + 43);
        let snap = KeySnapshot::new(1, vec![row(&k.id, k.hash, None)]);
        assert_eq!(snap.authenticate(&k.full, 0).unwrap().id, k.id);
        let mut wrong = k.full.clone();
        wrong.pop();
        wrong.push('!');
        assert!(snap.authenticate(&wrong, 0).is_err());
        assert!(snap.authenticate("sk-tr-short_x", 0).is_err());
        assert!(snap.authenticate("", 0).is_err());
        let other = mint().unwrap();
        assert!(snap.authenticate(&other.full, 0).is_err());
        assert_ne!(k.id, other.id);
    }

    #[test]
    fn expired_keys_are_refused() {
        let k = mint().unwrap();
        let snap = KeySnapshot::new(1, vec![row(&k.id, k.hash, Some(100))]);
        assert!(snap.authenticate(&k.full, 99).is_ok());
        assert!(matches!(snap.authenticate(&k.full, 100), Err(ApiError::Unauthorized(m)) if m.contains("expired")));
    }
}
