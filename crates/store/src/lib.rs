//! Token Router's state: accounts, their ledger, API keys and usage, behind one `Db` handle.
//!
//! `Db` is an enum over storage backends (SQLite today, PostgreSQL later) whose async
//! methods delegate to the backend, so callers never name a backend.

mod accounts;
pub mod counters;
mod error;
mod holds;
mod keys;
mod sqlite;
mod usage;

pub use accounts::{Account, LedgerRow};
pub use error::StoreError;
pub use holds::{Funds, Hold, Movement};
pub use keys::{KeyRow, NewKey};
pub use sqlite::SqliteDb;
pub use tokenrouter_core::NanoUsd;
pub use usage::{UsageRecord, UsageSource};

/// A response kept for `previous_response_id`, readable by its account until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptResponse {
    pub id: String,
    pub account_id: i64,
    pub created_at: i64,
    pub expires_at: i64,
    /// What a later request continues from (opaque to the store).
    pub record: Vec<u8>,
    /// The Response object as the client received it.
    pub answer: Vec<u8>,
}

/// A handle to the database. Cheap to clone: every backend holds a shared pool.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqliteDb),
}

impl Db {
    /// Opens (creating if missing) the database at `url` and runs pending migrations.
    ///
    /// Accepted: `sqlite://path.db`, `sqlite:path.db`, `sqlite::memory:`.
    pub async fn connect(url: &str) -> Result<Db, StoreError> {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        match scheme {
            "sqlite" => Ok(Db::Sqlite(SqliteDb::connect(url).await?)),
            other => Err(StoreError::UnsupportedUrl(other.to_owned())),
        }
    }

    /// Creates an account; a non-zero `initial_balance` is written as a 'credit' ledger row.
    pub async fn create_account(&self, name: &str, initial_balance: NanoUsd) -> Result<Account, StoreError> {
        match self {
            Db::Sqlite(db) => db.create_account(name, initial_balance).await,
        }
    }

    pub async fn account_by_name(&self, name: &str) -> Result<Option<Account>, StoreError> {
        match self {
            Db::Sqlite(db) => db.account_by_name(name).await,
        }
    }

    pub async fn account_by_id(&self, id: i64) -> Result<Option<Account>, StoreError> {
        match self {
            Db::Sqlite(db) => db.account_by_id(id).await,
        }
    }

    /// Adds `amount` to the named account's balance with a ledger row ('credit' when
    /// non-negative, 'adjustment' when negative); returns the updated account.
    pub async fn credit(&self, account: &str, amount: NanoUsd, memo: &str) -> Result<Account, StoreError> {
        match self {
            Db::Sqlite(db) => db.credit(account, amount, memo).await,
        }
    }

    /// The account's newest `limit` ledger rows, newest first.
    pub async fn ledger(&self, account_id: i64, limit: i64) -> Result<Vec<LedgerRow>, StoreError> {
        match self {
            Db::Sqlite(db) => db.ledger(account_id, limit).await,
        }
    }

    /// The sum of all the account's ledger rows (equal to its balance).
    pub async fn ledger_sum(&self, account_id: i64) -> Result<NanoUsd, StoreError> {
        match self {
            Db::Sqlite(db) => db.ledger_sum(account_id).await,
        }
    }

    /// Stores a new key and bumps `keys_version`.
    pub async fn insert_key(&self, key: &NewKey) -> Result<(), StoreError> {
        match self {
            Db::Sqlite(db) => db.insert_key(key).await,
        }
    }

    /// All of the account's keys, revoked ones included, newest first.
    pub async fn list_keys(&self, account_id: i64) -> Result<Vec<KeyRow>, StoreError> {
        match self {
            Db::Sqlite(db) => db.list_keys(account_id).await,
        }
    }

    /// Marks the key revoked (a no-op if it already is) and bumps `keys_version`.
    pub async fn revoke_key(&self, id: &str) -> Result<(), StoreError> {
        match self {
            Db::Sqlite(db) => db.revoke_key(id).await,
        }
    }

    /// A counter that changes whenever any key is inserted or revoked.
    pub async fn keys_version(&self) -> Result<i64, StoreError> {
        match self {
            Db::Sqlite(db) => db.keys_version().await,
        }
    }

    /// Every key not revoked (expired ones included), with its account's name.
    pub async fn active_keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        match self {
            Db::Sqlite(db) => db.active_keys().await,
        }
    }

    /// Records a batch of usage in one transaction, charging each new request once.
    pub async fn record_usage(&self, batch: &[UsageRecord]) -> Result<(), StoreError> {
        self.write_batch(&[], batch, &[]).await
    }

    /// One transaction: opens `holds`, records `usage` (charging each new request once,
    /// idempotent by request id) and closes the holds of the `closed` request ids.
    pub async fn write_batch(
        &self,
        holds: &[Hold],
        usage: &[UsageRecord],
        closed: &[String],
    ) -> Result<(), StoreError> {
        match self {
            Db::Sqlite(db) => db.record_usage(holds, usage, closed).await,
        }
    }

    /// Holds still open: requests that were in flight when a gateway stopped.
    pub async fn open_holds(&self) -> Result<Vec<Hold>, StoreError> {
        match self {
            Db::Sqlite(db) => db.open_holds().await,
        }
    }

    /// Releases these holds (no money moves: a hold never changed a balance).
    pub async fn release_holds(&self, request_ids: &[String]) -> Result<u64, StoreError> {
        match self {
            Db::Sqlite(db) => db.release_holds(request_ids).await,
        }
    }

    /// The sum of an account's open holds.
    pub async fn held(&self, account_id: i64) -> Result<NanoUsd, StoreError> {
        match self {
            Db::Sqlite(db) => db.held(account_id).await,
        }
    }

    /// An account's balance and the newest ledger row it includes.
    pub async fn funds(&self, account_id: i64) -> Result<Option<Funds>, StoreError> {
        match self {
            Db::Sqlite(db) => db.funds(account_id).await,
        }
    }

    /// Ledger rows after `after_id` that are not charges (credits, refunds, adjustments).
    pub async fn movements_after(&self, after_id: i64) -> Result<Vec<Movement>, StoreError> {
        match self {
            Db::Sqlite(db) => db.movements_after(after_id).await,
        }
    }

    /// The newest ledger row's id (0 for an empty ledger).
    pub async fn ledger_high(&self) -> Result<i64, StoreError> {
        match self {
            Db::Sqlite(db) => db.ledger_high().await,
        }
    }

    pub async fn usage_by_request(&self, request_id: &str) -> Result<Option<UsageRecord>, StoreError> {
        match self {
            Db::Sqlite(db) => db.usage_by_request(request_id).await,
        }
    }

    pub async fn usage_count(&self) -> Result<i64, StoreError> {
        match self {
            Db::Sqlite(db) => db.usage_count().await,
        }
    }

    /// Keeps (or replaces) a response.
    pub async fn keep_response(&self, kept: &KeptResponse) -> Result<(), StoreError> {
        match self {
            Db::Sqlite(db) => db.keep_response(kept).await,
        }
    }

    /// The record of a response of this account that has not expired at `now`.
    pub async fn kept_response(&self, id: &str, account_id: i64, now: i64) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Db::Sqlite(db) => db.kept_response(id, account_id, now).await,
        }
    }

    /// The answer of a response of this account that has not expired at `now`.
    pub async fn kept_answer(&self, id: &str, account_id: i64, now: i64) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Db::Sqlite(db) => db.kept_answer(id, account_id, now).await,
        }
    }

    /// Deletes one response of this account; whether there was one.
    pub async fn forget_response(&self, id: &str, account_id: i64) -> Result<bool, StoreError> {
        match self {
            Db::Sqlite(db) => db.forget_response(id, account_id).await,
        }
    }

    /// Deletes the responses that expired by `now`; returns how many.
    pub async fn forget_responses(&self, now: i64) -> Result<u64, StoreError> {
        match self {
            Db::Sqlite(db) => db.forget_responses(now).await,
        }
    }
}
