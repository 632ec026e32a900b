//! Responses kept for `previous_response_id`: recorded when an answer ends, read when a
//! later request continues from one, forgotten once the configured retention has passed.
//!
//! A record is visible at once: it sits in a small in-process map until the store has it,
//! so a client that continues the moment its answer ends finds it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokenrouter_core::clock::now_unix;
use tokenrouter_providers::surface::Surface;
use tokenrouter_store::{Db, KeptResponse};

use crate::error::ApiError;

/// The record of a response an upstream served natively and keeps itself.
pub const SERVED_UPSTREAM: &[u8] = b"served-upstream";

/// How often expired responses are deleted.
const FORGET_EVERY: Duration = Duration::from_secs(3600);

#[derive(Default)]
pub struct Retention {
    /// Kept records not yet confirmed written by the store, by response id.
    pending: Mutex<HashMap<String, KeptResponse>>,
}

/// Keeps one answer, if its surface asks for it.
pub struct Keeper {
    retention: Arc<Retention>,
    db: Db,
    account_id: i64,
    keep_for: Duration,
}

impl Keeper {
    /// `None` when responses are not kept at all (retention 0).
    pub fn new(retention: Arc<Retention>, db: Db, account_id: i64, keep_for: Duration) -> Option<Keeper> {
        (!keep_for.is_zero()).then_some(Keeper { retention, db, account_id, keep_for })
    }

    /// Records `answer` as the surface states it; visible to `recall` before this returns.
    pub fn keep(self, surface: &dyn Surface, answer: &[u8]) {
        let Some((id, record)) = surface.keep(answer) else { return };
        self.write(id, record, answer);
    }

    fn write(self, id: String, record: Vec<u8>, answer: &[u8]) {
        let created_at = now_unix();
        let keep_for = i64::try_from(self.keep_for.as_secs()).unwrap_or(i64::MAX);
        let kept = KeptResponse {
            id: id.clone(),
            account_id: self.account_id,
            created_at,
            expires_at: created_at.saturating_add(keep_for),
            record,
            answer: answer.to_vec(),
        };
        self.retention.pending().insert(id.clone(), kept.clone());
        let retention = self.retention;
        let db = self.db;
        tokio::spawn(async move {
            if let Err(e) = db.keep_response(&kept).await {
                tracing::warn!(error = %e, response = %id, "could not keep a response");
            }
            // Gone from the map before the write landed: deleted meanwhile, so delete what
            // was just written.
            let forgotten = retention.pending().remove(&id).is_none();
            if forgotten && let Err(e) = db.forget_response(&id, kept.account_id).await {
                tracing::warn!(error = %e, response = %id, "could not delete a response");
            }
        });
    }
}

impl Keeper {
    /// Records who owns a response an upstream served natively (it keeps the
    /// conversation itself): a later request may continue from it only through such an
    /// upstream, and only from the same account.
    pub fn keep_native(self, answer: &[u8]) {
        let Some(id) = tokenrouter_providers::responses::native::response_id(answer) else { return };
        self.write(id, SERVED_UPSTREAM.to_vec(), answer);
    }
}

impl Retention {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, KeptResponse>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The record of a response this account may continue from; a 400 naming
    /// `previous_response_id` when there is none (never kept, expired, or another's).
    pub async fn recall(&self, db: &Db, account_id: i64, id: &str) -> Result<Vec<u8>, ApiError> {
        let now = now_unix();
        let pending = self.pending().get(id).filter(|k| k.account_id == account_id && k.expires_at > now).cloned();
        let found = match pending {
            Some(kept) => Some(kept.record),
            None => db.kept_response(id, account_id, now).await.map_err(unreadable)?,
        };
        found.ok_or_else(|| {
            ApiError::invalid_param(format!("Previous response with id '{id}' not found."), "previous_response_id")
        })
    }
}

impl Retention {
    /// The Response object of a kept response, as its client received it.
    pub async fn answer(&self, db: &Db, account_id: i64, id: &str) -> Result<Vec<u8>, ApiError> {
        let now = now_unix();
        let pending = self.pending().get(id).filter(|k| k.account_id == account_id && k.expires_at > now).cloned();
        let found = match pending {
            Some(kept) => Some(kept.answer),
            None => db.kept_answer(id, account_id, now).await.map_err(unreadable)?,
        };
        found.ok_or_else(|| not_found(id))
    }

    /// Forgets a kept response at once.
    pub async fn forget(&self, db: &Db, account_id: i64, id: &str) -> Result<(), ApiError> {
        let pending = {
            let mut map = self.pending();
            let mine = map.get(id).is_some_and(|k| k.account_id == account_id);
            mine && map.remove(id).is_some()
        };
        // A write still in flight deletes what it wrote once it sees the entry gone.
        let stored = db.forget_response(id, account_id).await.map_err(unreadable)?;
        if stored || pending { Ok(()) } else { Err(not_found(id)) }
    }
}

fn unreadable(e: tokenrouter_store::StoreError) -> ApiError {
    tracing::warn!(error = %e, "could not read or delete a kept response");
    ApiError::UpstreamUnavailable("The stored response could not be read; try again.".to_owned())
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("Response with id '{id}' not found."))
}

/// Deletes expired responses every hour while the gateway runs.
pub async fn forget_expired(db: Db, state: std::sync::Weak<crate::state::Shared>) {
    let mut tick = tokio::time::interval(FORGET_EVERY);
    loop {
        tick.tick().await;
        if state.upgrade().is_none() {
            return;
        }
        if let Err(e) = db.forget_responses(now_unix()).await {
            tracing::warn!(error = %e, "could not forget expired responses");
        }
    }
}
