//! PostgreSQL queries for community instances: registering and changing them, the routing
//! table's read, probe leases and verdicts, and health from traffic. Every change that may
//! alter routing bumps `instances_version`, which replicas are notified of (`LISTEN`).

use sqlx::{PgConnection, Postgres, Transaction};
use tokenrouter_core::clock;

use super::PostgresDb;
use crate::instances::{
    InstanceRecord, PROBE_HISTORY_SECS, USAGE_FLAG_EVERY_SECS, after_failure, duplicate_model, fresh_status,
    instance_columns, instances_from, new_id, patch, select_instances,
};
use crate::{
    Instance, InstanceChanges, InstanceModel, InstanceStatus, NewInstance, ProbeResult, ProbeStatus, StoreError,
};

/// Bumps `instances_version` and notifies every replica (delivered on commit).
pub(crate) async fn bump_instances_version(tx: &mut Transaction<'_, Postgres>) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE meta SET value = value + 1 WHERE name = 'instances_version'").execute(&mut **tx).await?;
    sqlx::query("SELECT pg_notify($1, 'instances')").bind(super::CHANGES_CHANNEL).execute(&mut **tx).await?;
    Ok(())
}

/// Locks an instance's row for the rest of the transaction (when it is the account's, or
/// any account's with `None`); whether there is one.
async fn lock(tx: &mut Transaction<'_, Postgres>, account_id: Option<i64>, id: &str) -> Result<bool, sqlx::Error> {
    let found: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM instances WHERE id = $1 AND ($2::BIGINT IS NULL OR account_id = $2) FOR UPDATE",
    )
    .bind(id)
    .bind(account_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(found.is_some())
}

/// One instance by id, whoever owns it.
async fn by_id(conn: &mut PgConnection, id: &str) -> Result<Option<Instance>, StoreError> {
    let records =
        sqlx::query_as::<_, InstanceRecord>(select_instances!("WHERE i.id = $1")).bind(id).fetch_all(conn).await?;
    Ok(instances_from(records)?.into_iter().next())
}

/// One of the account's instances.
async fn owned(conn: &mut PgConnection, account_id: i64, id: &str) -> Result<Option<Instance>, StoreError> {
    let records = sqlx::query_as::<_, InstanceRecord>(select_instances!("WHERE i.id = $1 AND i.account_id = $2"))
        .bind(id)
        .bind(account_id)
        .fetch_all(conn)
        .await?;
    Ok(instances_from(records)?.into_iter().next())
}

async fn insert_models(
    tx: &mut Transaction<'_, Postgres>,
    id: &str,
    models: &[InstanceModel],
) -> Result<(), sqlx::Error> {
    for m in models {
        sqlx::query("INSERT INTO instance_models (instance_id, model, upstream_model) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(&m.model)
            .bind(&m.upstream_model)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Makes the instance wait for a new probe in `status` (pending, or disabled).
async fn reset(
    tx: &mut Transaction<'_, Postgres>,
    id: &str,
    (status, detail): (InstanceStatus, &str),
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE instances SET status = $1, status_detail = $2, revision = revision + 1, lease_until = 0, \
         consecutive_failures = 0, updated_at = $3 WHERE id = $4",
    )
    .bind(status.as_str())
    .bind(detail)
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl PostgresDb {
    pub(crate) async fn create_instance(&self, new: &NewInstance) -> Result<Instance, StoreError> {
        if let Some(model) = duplicate_model(&new.models) {
            return Err(StoreError::DuplicateInstanceModel(model.to_owned()));
        }
        let id = new_id("inst");
        let now = clock::now_unix();
        let (status, detail) = fresh_status(true, false);
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO instances (id, account_id, name, base_url, region, api_key, status, status_detail, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&id)
        .bind(new.account_id)
        .bind(&new.name)
        .bind(&new.base_url)
        .bind(new.region.as_deref())
        .bind(&new.api_key)
        .bind(status.as_str())
        .bind(detail)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_models(&mut tx, &id, &new.models).await?;
        bump_instances_version(&mut tx).await?;
        let instance = by_id(&mut tx, &id).await?.ok_or_else(|| StoreError::InstanceNotFound(id.clone()))?;
        tx.commit().await?;
        Ok(instance)
    }

    pub(crate) async fn instances_of(&self, account_id: i64) -> Result<Vec<Instance>, StoreError> {
        let records = sqlx::query_as::<_, InstanceRecord>(select_instances!("WHERE i.account_id = $1"))
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(instances_from(records)?)
    }

    pub(crate) async fn instance(&self, account_id: i64, id: &str) -> Result<Option<Instance>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        owned(&mut conn, account_id, id).await
    }

    pub(crate) async fn instance_by_id(&self, id: &str) -> Result<Option<Instance>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        by_id(&mut conn, id).await
    }

    pub(crate) async fn all_routable_instances(&self) -> Result<Vec<Instance>, StoreError> {
        let records = sqlx::query_as::<_, InstanceRecord>(select_instances!(
            "WHERE i.enabled AND NOT i.admin_disabled AND i.status = 'online' \
             AND i.account_id IN (SELECT id FROM accounts WHERE disabled_at IS NULL)"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(instances_from(records)?)
    }

    pub(crate) async fn update_instance(
        &self,
        account_id: i64,
        id: &str,
        changes: &InstanceChanges,
    ) -> Result<Option<Instance>, StoreError> {
        if let Some(model) = changes.models.as_deref().and_then(duplicate_model) {
            return Err(StoreError::DuplicateInstanceModel(model.to_owned()));
        }
        let mut tx = self.pool.begin().await?;
        if !lock(&mut tx, Some(account_id), id).await? {
            return Ok(None);
        }
        let Some(current) = owned(&mut tx, account_id, id).await? else {
            return Ok(None);
        };
        let next = patch(&current, changes);
        let now = clock::now_unix();
        sqlx::query(
            "UPDATE instances SET name = $1, base_url = $2, region = $3, enabled = $4, updated_at = $5 WHERE id = $6",
        )
        .bind(&next.name)
        .bind(&next.base_url)
        .bind(next.region.as_deref())
        .bind(next.enabled)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if let Some(models) = &changes.models {
            sqlx::query("DELETE FROM instance_models WHERE instance_id = $1").bind(id).execute(&mut *tx).await?;
            insert_models(&mut tx, id, models).await?;
        }
        if let Some(fresh) = next.reprobe {
            reset(&mut tx, id, fresh, now).await?;
        }
        bump_instances_version(&mut tx).await?;
        let instance = by_id(&mut tx, id).await?;
        tx.commit().await?;
        Ok(instance)
    }

    pub(crate) async fn delete_instance(&self, account_id: i64, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query("DELETE FROM instances WHERE id = $1 AND account_id = $2")
            .bind(id)
            .bind(account_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Ok(false);
        }
        bump_instances_version(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(crate) async fn rotate_instance_key(
        &self,
        account_id: i64,
        id: &str,
        api_key: &str,
    ) -> Result<Option<Instance>, StoreError> {
        let mut tx = self.pool.begin().await?;
        if !lock(&mut tx, Some(account_id), id).await? {
            return Ok(None);
        }
        let Some(current) = owned(&mut tx, account_id, id).await? else {
            return Ok(None);
        };
        let now = clock::now_unix();
        sqlx::query("UPDATE instances SET api_key = $1 WHERE id = $2").bind(api_key).bind(id).execute(&mut *tx).await?;
        reset(&mut tx, id, fresh_status(current.enabled, current.admin_disabled), now).await?;
        bump_instances_version(&mut tx).await?;
        let instance = by_id(&mut tx, id).await?;
        tx.commit().await?;
        Ok(instance)
    }

    pub(crate) async fn set_admin_disabled(&self, id: &str, disabled: bool) -> Result<Option<Instance>, StoreError> {
        let mut tx = self.pool.begin().await?;
        if !lock(&mut tx, None, id).await? {
            return Ok(None);
        }
        let Some(current) = by_id(&mut tx, id).await? else {
            return Ok(None);
        };
        if current.admin_disabled == disabled {
            return Ok(Some(current));
        }
        let now = clock::now_unix();
        sqlx::query("UPDATE instances SET admin_disabled = $1 WHERE id = $2")
            .bind(disabled)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        reset(&mut tx, id, fresh_status(current.enabled, disabled), now).await?;
        bump_instances_version(&mut tx).await?;
        let instance = by_id(&mut tx, id).await?;
        tx.commit().await?;
        Ok(instance)
    }

    pub(crate) async fn record_probe(&self, id: &str, result: &ProbeResult) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let current: Option<(String, i64)> = sqlx::query_as(
            "SELECT status, consecutive_failures FROM instances \
             WHERE id = $1 AND revision = $2 AND enabled AND NOT admin_disabled FOR UPDATE",
        )
        .bind(id)
        .bind(result.revision)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((status, failures)) = current else {
            return Ok(false);
        };
        let online = result.status == ProbeStatus::Online;
        let new_status = InstanceStatus::from(result.status);
        sqlx::query(
            "UPDATE instances SET status = $1, status_detail = $2, last_probe_at = $3, \
             latency_ms = COALESCE($4, latency_ms), consecutive_failures = $5 WHERE id = $6",
        )
        .bind(new_status.as_str())
        .bind(&result.detail)
        .bind(result.at)
        .bind(result.latency_ms.map(crate::rows::to_db_count))
        .bind(if online { 0 } else { failures.saturating_add(1) })
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO instance_probes (instance_id, at, online) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(result.at)
            .bind(online)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM instance_probes WHERE instance_id = $1 AND at < $2")
            .bind(id)
            .bind(result.at.saturating_sub(PROBE_HISTORY_SECS))
            .execute(&mut *tx)
            .await?;
        if status != new_status.as_str() {
            bump_instances_version(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    pub(crate) async fn record_request_outcome(&self, id: &str, ok: bool) -> Result<bool, StoreError> {
        if ok {
            sqlx::query("UPDATE instances SET consecutive_failures = 0 WHERE id = $1 AND consecutive_failures <> 0")
                .bind(id)
                .execute(&self.pool)
                .await?;
            return Ok(false);
        }
        let mut tx = self.pool.begin().await?;
        let current: Option<(String, i64)> =
            sqlx::query_as("SELECT status, consecutive_failures FROM instances WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((status, failures)) = current else {
            return Ok(false);
        };
        let status = InstanceStatus::parse(&status).ok_or_else(|| crate::rows::corrupt("status", &status))?;
        let (new_status, failures, detail) = after_failure(status, failures);
        sqlx::query(
            "UPDATE instances SET status = $1, status_detail = COALESCE($2, status_detail), consecutive_failures = $3 \
             WHERE id = $4",
        )
        .bind(new_status.as_str())
        .bind(detail)
        .bind(failures)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let went_offline = new_status != status;
        if went_offline {
            bump_instances_version(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(went_offline)
    }

    pub(crate) async fn take_probe_lease(
        &self,
        replica_id: &str,
        now: i64,
        lease_secs: i64,
        limit: i64,
    ) -> Result<Vec<Instance>, StoreError> {
        // Rows another replica is claiming are skipped, not waited for; a row whose claim
        // committed meanwhile is re-checked (READ COMMITTED) and left out as not due.
        let mut tx = self.pool.begin().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE instances SET lease_owner = $1, lease_until = $2 + $3 WHERE id IN \
             (SELECT id FROM instances WHERE enabled AND NOT admin_disabled AND lease_until <= $2 \
              ORDER BY lease_until, id LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING id",
        )
        .bind(replica_id)
        .bind(now)
        .bind(lease_secs)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let records = sqlx::query_as::<_, InstanceRecord>(select_instances!("WHERE i.id = ANY($1)"))
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(instances_from(records)?)
    }

    pub(crate) async fn instance_counts(&self) -> Result<Vec<(InstanceStatus, u64)>, StoreError> {
        let counts: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM instances GROUP BY status").fetch_all(&self.pool).await?;
        Ok(crate::instances::all_counts(counts)?)
    }

    pub(crate) async fn instances_version(&self) -> Result<i64, StoreError> {
        let version: i64 =
            sqlx::query_scalar("SELECT value FROM meta WHERE name = 'instances_version'").fetch_one(&self.pool).await?;
        Ok(version)
    }

    pub(crate) async fn flag_instance(&self, id: &str, detail: &str, at: i64) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE instances SET usage_flagged_at = $2, usage_flag_detail = $1 \
             WHERE id = $3 AND (usage_flagged_at IS NULL OR usage_flagged_at <= $2 - $4)",
        )
        .bind(detail)
        .bind(at)
        .bind(id)
        .bind(USAGE_FLAG_EVERY_SECS)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed > 0)
    }

    pub(crate) async fn all_instances(&self, limit: i64, before: Option<&str>) -> Result<Vec<Instance>, StoreError> {
        let records = sqlx::query_as::<_, InstanceRecord>(concat!(
            "SELECT ",
            instance_columns!(),
            ", m.model, m.upstream_model FROM instances i \
             LEFT JOIN instance_models m ON m.instance_id = i.id \
             WHERE i.id IN (SELECT id FROM instances WHERE $1::text IS NULL OR id < $1 ORDER BY id DESC LIMIT $2) \
             ORDER BY i.id DESC, m.model"
        ))
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(instances_from(records)?)
    }
}
