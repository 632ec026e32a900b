//! SQLite queries for accounts and the ledger: creation, credits, reads.

use sqlx::FromRow;
use tokenrouter_core::{NanoUsd, clock};

use super::SqliteDb;
use crate::{Account, LedgerRow, StoreError};

#[derive(FromRow)]
struct AccountRecord {
    id: i64,
    name: String,
    balance_nano: i64,
    created_at: i64,
}

impl From<AccountRecord> for Account {
    fn from(r: AccountRecord) -> Account {
        Account { id: r.id, name: r.name, balance: NanoUsd(r.balance_nano), created_at: r.created_at }
    }
}

#[derive(FromRow)]
struct LedgerRecord {
    id: i64,
    account_id: i64,
    kind: String,
    amount_nano: i64,
    request_id: Option<String>,
    memo: String,
    created_at: i64,
}

impl From<LedgerRecord> for LedgerRow {
    fn from(r: LedgerRecord) -> LedgerRow {
        LedgerRow {
            id: r.id,
            account_id: r.account_id,
            kind: r.kind,
            amount: NanoUsd(r.amount_nano),
            request_id: r.request_id,
            memo: r.memo,
            created_at: r.created_at,
        }
    }
}

const INSERT_LEDGER: &str = "INSERT INTO ledger (account_id, kind, amount_nano, memo, created_at) \
     VALUES (?, ?, ?, ?, ?)";

impl SqliteDb {
    pub(crate) async fn create_account(&self, name: &str, initial_balance: NanoUsd) -> Result<Account, StoreError> {
        let now = clock::now_unix();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let inserted = sqlx::query_as::<_, AccountRecord>(
            "INSERT INTO accounts (name, balance_nano, created_at) VALUES (?, ?, ?) \
             RETURNING id, name, balance_nano, created_at",
        )
        .bind(name)
        .bind(initial_balance.0)
        .bind(now)
        .fetch_one(&mut *tx)
        .await;
        let account = match inserted {
            Ok(record) => Account::from(record),
            Err(err) if StoreError::is_unique_violation(&err) => {
                return Err(StoreError::AccountExists(name.to_owned()));
            }
            Err(err) => return Err(err.into()),
        };
        if initial_balance != NanoUsd::ZERO {
            let kind = if initial_balance.0 > 0 { "credit" } else { "adjustment" };
            sqlx::query(INSERT_LEDGER)
                .bind(account.id)
                .bind(kind)
                .bind(initial_balance.0)
                .bind("initial balance")
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(account)
    }

    pub(crate) async fn account_by_name(&self, name: &str) -> Result<Option<Account>, StoreError> {
        let record = sqlx::query_as::<_, AccountRecord>(
            "SELECT id, name, balance_nano, created_at FROM accounts WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(record.map(Account::from))
    }

    pub(crate) async fn account_by_id(&self, id: i64) -> Result<Option<Account>, StoreError> {
        let record =
            sqlx::query_as::<_, AccountRecord>("SELECT id, name, balance_nano, created_at FROM accounts WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(record.map(Account::from))
    }

    pub(crate) async fn credit(&self, account: &str, amount: NanoUsd, memo: &str) -> Result<Account, StoreError> {
        // IMMEDIATE takes the write lock up front, so reading the balance and writing
        // it back cannot race another writer. The sum is checked here because SQLite
        // would silently turn an overflowing integer sum into a float.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let current = sqlx::query_as::<_, AccountRecord>(
            "SELECT id, name, balance_nano, created_at FROM accounts WHERE name = ?",
        )
        .bind(account)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(mut updated) = current else {
            return Err(StoreError::AccountNotFound(account.to_owned()));
        };
        updated.balance_nano = NanoUsd(updated.balance_nano).checked_add(amount)?.0;
        sqlx::query("UPDATE accounts SET balance_nano = ? WHERE id = ?")
            .bind(updated.balance_nano)
            .bind(updated.id)
            .execute(&mut *tx)
            .await?;
        let kind = if amount.0 < 0 { "adjustment" } else { "credit" };
        sqlx::query(INSERT_LEDGER)
            .bind(updated.id)
            .bind(kind)
            .bind(amount.0)
            .bind(memo)
            .bind(clock::now_unix())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Account::from(updated))
    }

    pub(crate) async fn ledger(&self, account_id: i64, limit: i64) -> Result<Vec<LedgerRow>, StoreError> {
        let records = sqlx::query_as::<_, LedgerRecord>(
            "SELECT id, account_id, kind, amount_nano, request_id, memo, created_at \
             FROM ledger WHERE account_id = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(account_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(records.into_iter().map(LedgerRow::from).collect())
    }

    pub(crate) async fn ledger_sum(&self, account_id: i64) -> Result<NanoUsd, StoreError> {
        let sum: i64 = sqlx::query_scalar("SELECT COALESCE(SUM(amount_nano), 0) FROM ledger WHERE account_id = ?")
            .bind(account_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(NanoUsd(sum))
    }
}
