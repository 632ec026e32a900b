//! Responses kept for `previous_response_id`: recorded when an answer ends, read when a
//! later request continues from one, forgotten once the configured retention has passed.
//!
//! Each kept response holds only what its turn added and links to the response it
//! continued; a conversation is read back by walking those links (one query), at most
//! [`MAX_CHAIN`] responses, all of the asking account.
//!
//! A record is in the store before its client sees the answer end (the answer waits for
//! the write), so a client that continues the moment it ends finds it on any replica.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokenrouter_core::clock::now_unix;
use tokenrouter_providers::surface::Surface;
use tokenrouter_store::{Db, KeptChain, KeptResponse};

use crate::error::ApiError;

/// The record of a response an upstream served natively and keeps itself.
pub const SERVED_UPSTREAM: &[u8] = b"served-upstream";

/// The most responses a conversation continued through `previous_response_id` may hold.
pub const MAX_CHAIN: usize = 1000;

/// How often expired responses are deleted.
const FORGET_EVERY: Duration = Duration::from_secs(3600);

/// Reads and deletes kept responses.
#[derive(Default)]
pub struct Retention {}

/// The write of a kept response: the answer's end waits for it.
pub type Writing = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The longest an answer's end waits for its record to be written.
const WRITE_WAIT: Duration = Duration::from_secs(5);

/// Keeps one answer, if its surface asks for it.
pub struct Keeper {
    db: Db,
    account_id: i64,
    keep_for: Duration,
    /// The response this request continues (the kept answer links to it).
    previous: Option<String>,
}

impl Keeper {
    /// `None` when responses are not kept at all (retention 0).
    pub fn new(db: Db, account_id: i64, keep_for: Duration) -> Option<Keeper> {
        (!keep_for.is_zero()).then_some(Keeper { db, account_id, keep_for, previous: None })
    }

    /// The answer continues response `id` of the same account: its record links to it.
    pub fn continuing(mut self, id: &str) -> Keeper {
        self.previous = Some(id.to_owned());
        self
    }

    /// Records `answer` as the surface states it; the answer's end waits for the returned
    /// write.
    pub fn keep(self, surface: &dyn Surface, answer: &[u8]) -> Option<Writing> {
        let (id, record) = surface.keep(answer)?;
        let previous = self.previous.clone();
        Some(self.write(id, previous, record, answer))
    }

    fn write(self, id: String, previous_id: Option<String>, record: Vec<u8>, answer: &[u8]) -> Writing {
        let created_at = now_unix();
        let keep_for = i64::try_from(self.keep_for.as_secs()).unwrap_or(i64::MAX);
        let kept = KeptResponse {
            id: id.clone(),
            account_id: self.account_id,
            created_at,
            expires_at: created_at.saturating_add(keep_for),
            previous_id,
            record,
            answer: answer.to_vec(),
        };
        let db = self.db;
        // Its own task: written even if the client goes away meanwhile.
        let written = tokio::spawn(async move {
            if let Err(e) = db.keep_response(&kept).await {
                tracing::warn!(error = %e, response = %id, "could not keep a response");
            }
        });
        Box::pin(async move {
            if tokio::time::timeout(WRITE_WAIT, written).await.is_err() {
                tracing::warn!("a kept response was still being written when its answer ended");
            }
        })
    }
}

impl Keeper {
    /// Records who owns a response an upstream served natively (it keeps the
    /// conversation itself): a later request may continue from it only through such an
    /// upstream, and only from the same account. It links to nothing: the upstream holds
    /// the conversation.
    pub fn keep_native(self, answer: &[u8]) -> Option<Writing> {
        let id = tokenrouter_providers::responses::native::response_id(answer)?;
        Some(self.write(id, None, SERVED_UPSTREAM.to_vec(), answer))
    }
}

impl Retention {
    /// The conversation a response this account may continue from ends: the records of
    /// it and of the responses it continued, the oldest first. A 400 naming
    /// `previous_response_id` when there is none (never kept, expired, or another's), when
    /// an earlier response of the conversation is no longer stored, or when the
    /// conversation is longer than [`MAX_CHAIN`] responses.
    pub async fn recall(&self, db: &Db, account_id: i64, id: &str) -> Result<Vec<Vec<u8>>, ApiError> {
        let chain = db.kept_chain(id, account_id, now_unix(), MAX_CHAIN).await.map_err(unreadable)?;
        let refusal = |message: String| ApiError::invalid_param(message, "previous_response_id");
        match chain {
            KeptChain::Found(records) => Ok(records),
            KeptChain::Missing => Err(refusal(format!("Previous response with id '{id}' not found."))),
            KeptChain::Broken => Err(refusal(format!(
                "Previous response with id '{id}' cannot be continued: an earlier response in this conversation \
                 is no longer stored."
            ))),
            KeptChain::TooLong => Err(refusal(format!(
                "Previous response with id '{id}' cannot be continued: the conversation has more than {MAX_CHAIN} \
                 responses. Start a new one (send the conversation you need as input)."
            ))),
        }
    }
}

impl Retention {
    /// The Response object of a kept response, as its client received it.
    pub async fn answer(&self, db: &Db, account_id: i64, id: &str) -> Result<Vec<u8>, ApiError> {
        let found = db.kept_answer(id, account_id, now_unix()).await.map_err(unreadable)?;
        found.ok_or_else(|| not_found(id))
    }

    /// Forgets a kept response at once.
    pub async fn forget(&self, db: &Db, account_id: i64, id: &str) -> Result<(), ApiError> {
        let stored = db.forget_response(id, account_id).await.map_err(unreadable)?;
        if stored { Ok(()) } else { Err(not_found(id)) }
    }
}

fn unreadable(e: tokenrouter_store::StoreError) -> ApiError {
    tracing::warn!(error = %e, "could not read or delete a kept response");
    ApiError::UpstreamUnavailable("The stored response could not be read; try again.".to_owned())
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("Response with id '{id}' not found."))
}

/// How long after it expired a response may still be linked to by a turn in progress.
const FORGET_GRACE_SECS: i64 = 3600;

/// Deletes expired responses every hour while the gateway runs (an hour after they
/// expired, see [`FORGET_GRACE_SECS`]).
pub async fn forget_expired(db: Db, state: std::sync::Weak<crate::state::Shared>) {
    let mut tick = tokio::time::interval(FORGET_EVERY);
    loop {
        tick.tick().await;
        if state.upgrade().is_none() {
            return;
        }
        // A turn being answered now links to its previous response only when its answer
        // ends: what expired less than an hour ago stays until then.
        if let Err(e) = db.forget_responses(now_unix() - FORGET_GRACE_SECS).await {
            tracing::warn!(error = %e, "could not forget expired responses");
        }
    }
}
