//! Prepaid billing: before the upstream call a request holds its cost ceiling against
//! its account's balance and its key's remaining spend limit with one conditional write
//! in the database (so that any number of gateway replicas together never spend more
//! than there is); after the answer its usage record — written by the batching writer,
//! in the transaction that charges it — closes the hold. Nothing in this process's memory
//! decides whether money may be spent.

use tokenrouter_core::{NanoUsd, clock};
use tokenrouter_store::{Db, HoldOutcome, KeyRow, NewHold};

use crate::error::ApiError;
use crate::metering::UsageWriter;

/// What a request holds. Settle it when its usage record is written (that record closes
/// the hold in the store); dropped unsettled, the hold is released with no charge.
#[must_use]
pub struct Reservation {
    request_id: String,
    amount: NanoUsd,
    writer: UsageWriter,
    done: bool,
}

/// The request a hold is for.
pub struct Holding<'a> {
    pub request_id: &'a str,
    pub key: &'a KeyRow,
    pub model: &'a str,
    pub endpoint: &'a str,
    pub stream: bool,
}

/// Holds `amount` for a request. With `enforce`, refuses (402) when the account's
/// available balance or the key's remaining spend limit cannot cover it.
pub async fn reserve(
    db: &Db,
    writer: &UsageWriter,
    replica: &str,
    request: Holding<'_>,
    amount: NanoUsd,
    enforce: bool,
) -> Result<Reservation, ApiError> {
    let hold = NewHold {
        request_id: request.request_id.to_owned(),
        account_id: request.key.account_id,
        key_id: request.key.id.clone(),
        amount,
        enforce,
        replica: replica.to_owned(),
        model: request.model.to_owned(),
        endpoint: request.endpoint.to_owned(),
        stream: request.stream,
        created_at: clock::now_unix(),
    };
    let outcome = db.hold(&hold).await.map_err(|e| {
        tracing::warn!(error = %e, "could not hold funds for a request");
        ApiError::StoreUnavailable
    })?;
    match outcome {
        HoldOutcome::Held => {
            Ok(Reservation { request_id: hold.request_id, amount, writer: writer.clone(), done: false })
        }
        HoldOutcome::Balance { available } => Err(ApiError::InsufficientQuota(format!(
            "The account's balance ({available} USD available) cannot cover this request's maximum cost of {amount} USD. \
             Add credit, or lower max_tokens."
        ))),
        HoldOutcome::SpendLimit { remaining } => Err(ApiError::InsufficientQuota(format!(
            "The key's spend limit ({remaining} USD remaining) cannot cover this request's maximum cost of {amount} USD."
        ))),
    }
}

impl Reservation {
    /// The request's usage record, about to be written, closes the hold and charges
    /// `cost` (which may exceed the hold when usage beat the estimate).
    pub fn settle(mut self, cost: NanoUsd) {
        if cost > self.amount {
            tracing::warn!(
                held = self.amount.0,
                cost = cost.0,
                "a request cost more than its reservation (usage above the estimate)"
            );
        }
        self.done = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.done {
            self.writer.release(std::mem::take(&mut self.request_id));
        }
    }
}
