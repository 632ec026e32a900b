//! PostgreSQL queries for signing in: admins, sessions, one-time links, redemption codes.

use tokenrouter_core::NanoUsd;

use super::PostgresDb;
use crate::rows::{AccountRecord, account_columns};
use crate::{Account, GithubProfile, Redemption, SecretHash, StoreError};

impl PostgresDb {
    pub(crate) async fn account_by_github_id(&self, github_id: i64) -> Result<Option<Account>, StoreError> {
        let record = sqlx::query_as::<_, AccountRecord>(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE github_id = $1"
        ))
        .bind(github_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(record.map(Account::from))
    }

    pub(crate) async fn update_github_profile(
        &self,
        account_id: i64,
        profile: &GithubProfile,
        admin: bool,
    ) -> Result<Account, StoreError> {
        let record = sqlx::query_as::<_, AccountRecord>(concat!(
            "UPDATE accounts SET login = $1, display_name = $2, avatar_url = $3, email = $4, \
             is_admin = (is_admin OR $5) WHERE id = $6 RETURNING ",
            account_columns!()
        ))
        .bind(&profile.login)
        .bind(profile.name.as_deref())
        .bind(profile.avatar_url.as_deref())
        .bind(profile.email.as_deref())
        .bind(admin)
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await?;
        record.map(Account::from).ok_or_else(|| StoreError::AccountNotFound(account_id.to_string()))
    }

    /// `AccountExists` when the name or the GitHub id is taken.
    pub(crate) async fn insert_github_account(
        &self,
        name: &str,
        profile: &GithubProfile,
        admin: bool,
    ) -> Result<Account, StoreError> {
        let inserted = sqlx::query_as::<_, AccountRecord>(concat!(
            "INSERT INTO accounts (name, balance_nano, created_at, is_admin, github_id, login, display_name, avatar_url, email) \
             VALUES ($1, 0, $2, $3, $4, $5, $6, $7, $8) RETURNING ",
            account_columns!()
        ))
        .bind(name)
        .bind(tokenrouter_core::clock::now_unix())
        .bind(admin)
        .bind(profile.id)
        .bind(&profile.login)
        .bind(profile.name.as_deref())
        .bind(profile.avatar_url.as_deref())
        .bind(profile.email.as_deref())
        .fetch_one(&self.pool)
        .await;
        match inserted {
            Ok(record) => Ok(Account::from(record)),
            Err(err) if StoreError::is_unique_violation(&err) => Err(StoreError::AccountExists(name.to_owned())),
            Err(err) => Err(err.into()),
        }
    }

    pub(crate) async fn set_admin(&self, account: &str, admin: bool) -> Result<Account, StoreError> {
        let record = sqlx::query_as::<_, AccountRecord>(concat!(
            "UPDATE accounts SET is_admin = $1 WHERE name = $2 RETURNING ",
            account_columns!()
        ))
        .bind(admin)
        .bind(account)
        .fetch_optional(&self.pool)
        .await?;
        record.map(Account::from).ok_or_else(|| StoreError::AccountNotFound(account.to_owned()))
    }

    pub(crate) async fn create_session(
        &self,
        token: &SecretHash,
        account_id: i64,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO sessions (token_hash, account_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(&token[..])
            .bind(account_id)
            .bind(now)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn session_account(&self, token: &SecretHash, now: i64) -> Result<Option<Account>, StoreError> {
        let record = sqlx::query_as::<_, AccountRecord>(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE disabled_at IS NULL AND id = \
             (SELECT account_id FROM sessions WHERE token_hash = $1 AND expires_at > $2)"
        ))
        .bind(&token[..])
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(record.map(Account::from))
    }

    pub(crate) async fn end_session(&self, token: &SecretHash) -> Result<bool, StoreError> {
        let ended =
            sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(&token[..]).execute(&self.pool).await?;
        Ok(ended.rows_affected() > 0)
    }

    pub(crate) async fn create_login_link(
        &self,
        token: &SecretHash,
        account_id: i64,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO login_links (token_hash, account_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(&token[..])
            .bind(account_id)
            .bind(now)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn use_login_link(&self, token: &SecretHash, now: i64) -> Result<Option<i64>, StoreError> {
        // One statement: the first to mark it used gets the account; everyone after, nothing.
        let account: Option<i64> = sqlx::query_scalar(
            "UPDATE login_links SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
             AND account_id IN (SELECT id FROM accounts WHERE disabled_at IS NULL) RETURNING account_id",
        )
        .bind(&token[..])
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(account)
    }

    pub(crate) async fn create_codes(
        &self,
        codes: &[SecretHash],
        amount: NanoUsd,
        now: i64,
        expires_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for code in codes {
            sqlx::query(
                "INSERT INTO redemption_codes (code_hash, amount_nano, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&code[..])
            .bind(amount.0)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn redeem_code(
        &self,
        code: &SecretHash,
        account_id: i64,
        now: i64,
    ) -> Result<Redemption, StoreError> {
        let mut tx = self.pool.begin().await?;
        let amount: Option<i64> = sqlx::query_scalar(
            "UPDATE redemption_codes SET redeemed_by = $2, redeemed_at = $3 \
             WHERE code_hash = $1 AND redeemed_at IS NULL AND (expires_at IS NULL OR expires_at > $3) \
             AND $2 IN (SELECT id FROM accounts WHERE disabled_at IS NULL) RETURNING amount_nano",
        )
        .bind(&code[..])
        .bind(account_id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(amount) = amount else {
            return Ok(Redemption::Invalid);
        };
        let balance: i64 = sqlx::query_scalar(
            "UPDATE accounts SET balance_nano = balance_nano + $1 WHERE id = $2 RETURNING balance_nano",
        )
        .bind(amount)
        .bind(account_id)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO ledger (account_id, kind, amount_nano, memo, created_at) VALUES ($1, 'redemption', $2, 'redemption code', $3)",
        )
        .bind(account_id)
        .bind(amount)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Redemption::Credited { amount: NanoUsd(amount), balance: NanoUsd(balance) })
    }
}
