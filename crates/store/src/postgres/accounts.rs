//! PostgreSQL queries for accounts and the ledger: creation, credits, reads.

use sqlx::{Postgres, Transaction};
use tokenrouter_core::{NanoUsd, clock};

use super::PostgresDb;
use crate::rows::{AccountRecord, LedgerRecord, account_columns, ledger_columns};
use crate::{Account, LedgerRow, StoreError};

const INSERT_LEDGER: &str = "INSERT INTO ledger (account_id, kind, amount_nano, memo, created_at) \
     VALUES ($1, $2, $3, $4, $5)";

impl PostgresDb {
    pub(crate) async fn create_account(&self, name: &str, initial_balance: NanoUsd) -> Result<Account, StoreError> {
        let now = clock::now_unix();
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query_as::<_, AccountRecord>(concat!(
            "INSERT INTO accounts (name, balance_nano, created_at) VALUES ($1, $2, $3) RETURNING ",
            account_columns!()
        ))
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
        let record = sqlx::query_as::<_, AccountRecord>(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(record.map(Account::from))
    }

    pub(crate) async fn account_by_id(&self, id: i64) -> Result<Option<Account>, StoreError> {
        let record =
            sqlx::query_as::<_, AccountRecord>(concat!("SELECT ", account_columns!(), " FROM accounts WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(record.map(Account::from))
    }

    pub(crate) async fn credit(&self, account: &str, amount: NanoUsd, memo: &str) -> Result<Account, StoreError> {
        let kind = if amount.0 < 0 { "adjustment" } else { "credit" };
        self.move_balance(account, amount, memo, kind).await
    }

    pub(crate) async fn move_balance(
        &self,
        account: &str,
        amount: NanoUsd,
        memo: &str,
        kind: &str,
    ) -> Result<Account, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut updated = Account::from(locked_account(&mut tx, account).await?);
        updated.balance = updated.balance.checked_add(amount)?;
        if updated.held.0 > 0 && updated.balance < updated.held {
            return Err(StoreError::WouldOverdraw(account.to_owned()));
        }
        sqlx::query("UPDATE accounts SET balance_nano = $1 WHERE id = $2")
            .bind(updated.balance.0)
            .bind(updated.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(INSERT_LEDGER)
            .bind(updated.id)
            .bind(kind)
            .bind(amount.0)
            .bind(memo)
            .bind(clock::now_unix())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(updated)
    }

    pub(crate) async fn set_account_disabled(&self, account: &str, disabled: bool) -> Result<Account, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut updated = Account::from(locked_account(&mut tx, account).await?);
        if updated.disabled_at.is_some() != disabled {
            updated.disabled_at = disabled.then(clock::now_unix);
            sqlx::query("UPDATE accounts SET disabled_at = $1 WHERE id = $2")
                .bind(updated.disabled_at)
                .bind(updated.id)
                .execute(&mut *tx)
                .await?;
            super::announce(&mut tx).await?;
            // Its instances leave (or rejoin) every replica's routing table with it.
            super::instances::bump_instances_version(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(updated)
    }

    pub(crate) async fn ledger(&self, account_id: i64, limit: i64) -> Result<Vec<LedgerRow>, StoreError> {
        let records = sqlx::query_as::<_, LedgerRecord>(concat!(
            "SELECT ",
            ledger_columns!(),
            " FROM ledger WHERE account_id = $1 ORDER BY id DESC LIMIT $2"
        ))
        .bind(account_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(records.into_iter().map(LedgerRow::from).collect())
    }

    pub(crate) async fn list_accounts(&self, limit: i64, before: Option<i64>) -> Result<Vec<Account>, StoreError> {
        let records = sqlx::query_as::<_, AccountRecord>(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE id < $1 ORDER BY id DESC LIMIT $2"
        ))
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(records.into_iter().map(Account::from).collect())
    }

    pub(crate) async fn ledger_page(
        &self,
        account_id: i64,
        limit: i64,
        before: Option<i64>,
    ) -> Result<Vec<LedgerRow>, StoreError> {
        let records = sqlx::query_as::<_, LedgerRecord>(concat!(
            "SELECT ",
            ledger_columns!(),
            " FROM ledger WHERE account_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
        ))
        .bind(account_id)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(records.into_iter().map(LedgerRow::from).collect())
    }

    pub(crate) async fn ledger_sum_through(&self, account_id: i64, id: i64) -> Result<NanoUsd, StoreError> {
        // The balance is the sum of every ledger row (both change in one transaction), so
        // the rows through `id` are the balance less the few after it: one statement, one
        // snapshot, and no walk over an account's whole history.
        let sum: Option<i64> = sqlx::query_scalar(
            "SELECT ((SELECT balance_nano FROM accounts WHERE id = $1) \
                  - (SELECT COALESCE(SUM(amount_nano), 0) FROM ledger WHERE account_id = $1 AND id > $2))::BIGINT",
        )
        .bind(account_id)
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        Ok(NanoUsd(sum.unwrap_or(0)))
    }

    pub(crate) async fn ledger_sum(&self, account_id: i64) -> Result<NanoUsd, StoreError> {
        let sum: i64 =
            sqlx::query_scalar("SELECT COALESCE(SUM(amount_nano), 0)::BIGINT FROM ledger WHERE account_id = $1")
                .bind(account_id)
                .fetch_one(&self.pool)
                .await?;
        Ok(NanoUsd(sum))
    }
}

/// The named account, its row locked until the transaction ends.
async fn locked_account(tx: &mut Transaction<'_, Postgres>, name: &str) -> Result<AccountRecord, StoreError> {
    sqlx::query_as::<_, AccountRecord>(concat!(
        "SELECT ",
        account_columns!(),
        " FROM accounts WHERE name = $1 FOR UPDATE"
    ))
    .bind(name)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| StoreError::AccountNotFound(name.to_owned()))
}
