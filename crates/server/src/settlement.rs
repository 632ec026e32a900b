//! Prepaid billing: before the upstream call a request reserves its cost ceiling against
//! its account's balance and its key's remaining spend limit, atomically, in an in-memory
//! book; after the answer it settles to the actual cost and releases the rest, exactly
//! once (settle, release, or `Drop`). The store keeps each hold as a row until the
//! request's usage row closes it, so holds left by a crash are found and released on the
//! next start. This process is the only writer of charges; credits written elsewhere
//! (the CLI) reach the book through the ledger, polled.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokenrouter_core::NanoUsd;
use tokenrouter_store::{Db, KeyRow, StoreError};

use crate::error::ApiError;

/// How often credits written by other processes are read from the ledger.
pub const MOVEMENTS_EVERY: Duration = Duration::from_millis(250);

#[derive(Default)]
pub struct Book {
    inner: Mutex<Funds>,
    /// The newest ledger row applied from outside.
    last_movement: AtomicI64,
}

#[derive(Default)]
struct Funds {
    accounts: HashMap<i64, AccountFunds>,
    keys: HashMap<String, KeyFunds>,
}

struct AccountFunds {
    balance: i64,
    held: i64,
    /// The newest ledger row included in `balance` when it was loaded.
    ledger_high: i64,
}

#[derive(Default)]
struct KeyFunds {
    spent: i64,
    held: i64,
}

/// Funds held for one request. Settle it with the actual cost; dropped unsettled, it is
/// released in full.
#[must_use]
pub struct Reservation {
    book: Arc<Book>,
    account_id: i64,
    key_id: String,
    amount: i64,
    done: bool,
}

impl Book {
    /// A book that applies only ledger rows newer than the store's newest one now.
    pub async fn open(db: &Db) -> Result<Book, StoreError> {
        let book = Book::default();
        book.last_movement.store(db.ledger_high().await?, Ordering::Relaxed);
        Ok(book)
    }

    fn funds(&self) -> MutexGuard<'_, Funds> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Holds `amount` for a request of `key`. With `enforce`, refuses (402) when the
    /// account's available balance or the key's remaining spend limit cannot cover it.
    pub async fn reserve(
        self: &Arc<Self>,
        db: &Db,
        key: &KeyRow,
        amount: NanoUsd,
        enforce: bool,
    ) -> Result<Reservation, ApiError> {
        let loaded = self.funds().accounts.contains_key(&key.account_id);
        if !loaded {
            let funds = db
                .funds(key.account_id)
                .await
                .map_err(|e| ApiError::Internal(format!("The account's balance could not be read: {e}")))?
                .ok_or_else(|| ApiError::Internal("The key's account does not exist.".to_owned()))?;
            self.funds().accounts.entry(key.account_id).or_insert(AccountFunds {
                balance: funds.balance.0,
                held: 0,
                ledger_high: funds.ledger_high,
            });
        }
        let mut funds = self.funds();
        let Funds { accounts, keys } = &mut *funds;
        let account = accounts
            .get_mut(&key.account_id)
            .ok_or_else(|| ApiError::Internal("The key's account is not loaded.".to_owned()))?;
        let key_funds = keys.entry(key.id.clone()).or_insert_with(|| KeyFunds { spent: key.spent.0, held: 0 });
        if enforce {
            let available = account.balance - account.held;
            if available < amount.0 {
                return Err(ApiError::InsufficientQuota(format!(
                    "The account's balance ({} USD available) cannot cover this request's maximum cost of {} USD. \
                     Add credit, or lower max_tokens.",
                    NanoUsd(available.max(0)),
                    amount
                )));
            }
            if let Some(limit) = key.spend_limit {
                let remaining = limit.0 - key_funds.spent - key_funds.held;
                if remaining < amount.0 {
                    return Err(ApiError::InsufficientQuota(format!(
                        "The key's spend limit ({} USD remaining) cannot cover this request's maximum cost of {} USD.",
                        NanoUsd(remaining.max(0)),
                        amount
                    )));
                }
            }
        }
        account.held += amount.0;
        key_funds.held += amount.0;
        Ok(Reservation {
            book: self.clone(),
            account_id: key.account_id,
            key_id: key.id.clone(),
            amount: amount.0,
            done: false,
        })
    }

    fn end(&self, account_id: i64, key_id: &str, held: i64, cost: i64) {
        let mut funds = self.funds();
        if let Some(account) = funds.accounts.get_mut(&account_id) {
            account.held -= held;
            account.balance -= cost;
        }
        if let Some(key) = funds.keys.get_mut(key_id) {
            key.held -= held;
            key.spent += cost;
        }
    }

    /// Applies credits, refunds and adjustments written by other processes.
    pub async fn apply_movements(&self, db: &Db) -> Result<(), StoreError> {
        let after = self.last_movement.load(Ordering::Relaxed);
        let movements = db.movements_after(after).await?;
        let Some(last) = movements.last().map(|m| m.id) else { return Ok(()) };
        let mut funds = self.funds();
        for m in &movements {
            if let Some(account) = funds.accounts.get_mut(&m.account_id)
                && m.id > account.ledger_high
            {
                account.balance += m.amount.0;
            }
        }
        self.last_movement.store(last, Ordering::Relaxed);
        Ok(())
    }

    /// Funds currently held for an account (0 when it has no requests in flight).
    pub fn held(&self, account_id: i64) -> NanoUsd {
        NanoUsd(self.funds().accounts.get(&account_id).map_or(0, |a| a.held))
    }
}

impl Reservation {
    pub fn amount(&self) -> NanoUsd {
        NanoUsd(self.amount)
    }

    /// Charges `cost` (which may exceed the hold when usage beat the estimate) and
    /// releases the hold.
    pub fn settle(mut self, cost: NanoUsd) {
        if cost.0 > self.amount {
            tracing::warn!(
                held = self.amount,
                cost = cost.0,
                "a request cost more than its reservation (usage above the estimate)"
            );
        }
        self.done = true;
        self.book.end(self.account_id, &self.key_id, self.amount, cost.0);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.done {
            self.book.end(self.account_id, &self.key_id, self.amount, 0);
        }
    }
}
