//! PostgreSQL queries for what an instance owner declares (processing units, software), each
//! reachable only through an instance of the asking account, and an instance's statistics.

use tokenrouter_core::{NanoUsd, clock};

use super::PostgresDb;
use crate::instances::{ProcessingUnitRecord, SoftwareRecord, new_id, processing_unit_columns, provider_name};
use crate::{InstanceStats, NewProcessingUnit, NewSoftware, ProcessingUnit, Software, StoreError};

impl PostgresDb {
    async fn owns_instance(&self, account_id: i64, instance_id: &str) -> Result<bool, StoreError> {
        let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM instances WHERE id = $1 AND account_id = $2")
            .bind(instance_id)
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    pub(crate) async fn processing_units(
        &self,
        account_id: i64,
        instance_id: &str,
    ) -> Result<Option<Vec<ProcessingUnit>>, StoreError> {
        if !self.owns_instance(account_id, instance_id).await? {
            return Ok(None);
        }
        let records = sqlx::query_as::<_, ProcessingUnitRecord>(concat!(
            "SELECT ",
            processing_unit_columns!(),
            " FROM processing_units WHERE instance_id = $1 ORDER BY id"
        ))
        .bind(instance_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(records.into_iter().map(ProcessingUnit::from).collect()))
    }

    pub(crate) async fn add_processing_unit(
        &self,
        account_id: i64,
        instance_id: &str,
        unit: &NewProcessingUnit,
    ) -> Result<Option<ProcessingUnit>, StoreError> {
        let record = sqlx::query_as::<_, ProcessingUnitRecord>(concat!(
            "INSERT INTO processing_units (id, instance_id, kind, vendor, model, memory_mb, count, created_at) \
             SELECT $1, id, $2, $3, $4, $5, $6, $7 FROM instances WHERE id = $8 AND account_id = $9 RETURNING ",
            processing_unit_columns!()
        ))
        .bind(new_id("pu"))
        .bind(&unit.kind)
        .bind(&unit.vendor)
        .bind(&unit.model)
        .bind(unit.memory_mb)
        .bind(unit.count)
        .bind(clock::now_unix())
        .bind(instance_id)
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(record.map(ProcessingUnit::from))
    }

    pub(crate) async fn update_processing_unit(
        &self,
        account_id: i64,
        instance_id: &str,
        id: &str,
        unit: &NewProcessingUnit,
    ) -> Result<Option<ProcessingUnit>, StoreError> {
        let record = sqlx::query_as::<_, ProcessingUnitRecord>(concat!(
            "UPDATE processing_units SET kind = $1, vendor = $2, model = $3, memory_mb = $4, count = $5 \
             WHERE id = $6 AND instance_id = $7 AND instance_id IN (SELECT id FROM instances WHERE account_id = $8) \
             RETURNING ",
            processing_unit_columns!()
        ))
        .bind(&unit.kind)
        .bind(&unit.vendor)
        .bind(&unit.model)
        .bind(unit.memory_mb)
        .bind(unit.count)
        .bind(id)
        .bind(instance_id)
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(record.map(ProcessingUnit::from))
    }

    pub(crate) async fn delete_processing_unit(
        &self,
        account_id: i64,
        instance_id: &str,
        id: &str,
    ) -> Result<bool, StoreError> {
        let deleted = sqlx::query(
            "DELETE FROM processing_units WHERE id = $1 AND instance_id = $2 \
             AND instance_id IN (SELECT id FROM instances WHERE account_id = $3)",
        )
        .bind(id)
        .bind(instance_id)
        .bind(account_id)
        .execute(&self.pool)
        .await?;
        Ok(deleted.rows_affected() > 0)
    }

    pub(crate) async fn software(
        &self,
        account_id: i64,
        instance_id: &str,
    ) -> Result<Option<Vec<Software>>, StoreError> {
        if !self.owns_instance(account_id, instance_id).await? {
            return Ok(None);
        }
        let records = sqlx::query_as::<_, SoftwareRecord>(
            "SELECT id, instance_id, name, version, created_at FROM software WHERE instance_id = $1 ORDER BY id",
        )
        .bind(instance_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(records.into_iter().map(Software::from).collect()))
    }

    pub(crate) async fn add_software(
        &self,
        account_id: i64,
        instance_id: &str,
        software: &NewSoftware,
    ) -> Result<Option<Software>, StoreError> {
        let record = sqlx::query_as::<_, SoftwareRecord>(
            "INSERT INTO software (id, instance_id, name, version, created_at) \
             SELECT $1, id, $2, $3, $4 FROM instances WHERE id = $5 AND account_id = $6 \
             RETURNING id, instance_id, name, version, created_at",
        )
        .bind(new_id("sw"))
        .bind(&software.name)
        .bind(&software.version)
        .bind(clock::now_unix())
        .bind(instance_id)
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(record.map(Software::from))
    }

    pub(crate) async fn update_software(
        &self,
        account_id: i64,
        instance_id: &str,
        id: &str,
        software: &NewSoftware,
    ) -> Result<Option<Software>, StoreError> {
        let record = sqlx::query_as::<_, SoftwareRecord>(
            "UPDATE software SET name = $1, version = $2 \
             WHERE id = $3 AND instance_id = $4 AND instance_id IN (SELECT id FROM instances WHERE account_id = $5) \
             RETURNING id, instance_id, name, version, created_at",
        )
        .bind(&software.name)
        .bind(&software.version)
        .bind(id)
        .bind(instance_id)
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(record.map(Software::from))
    }

    pub(crate) async fn delete_software(
        &self,
        account_id: i64,
        instance_id: &str,
        id: &str,
    ) -> Result<bool, StoreError> {
        let deleted = sqlx::query(
            "DELETE FROM software WHERE id = $1 AND instance_id = $2 \
             AND instance_id IN (SELECT id FROM instances WHERE account_id = $3)",
        )
        .bind(id)
        .bind(instance_id)
        .bind(account_id)
        .execute(&self.pool)
        .await?;
        Ok(deleted.rows_affected() > 0)
    }

    pub(crate) async fn instance_stats(&self, id: &str, since: i64) -> Result<InstanceStats, StoreError> {
        let provider = provider_name(id);
        // `provider LIKE 'instance:%'` repeats the partial index's condition, so it is used.
        let (requests, prompt_tokens, completion_tokens): (i64, i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(prompt_tokens), 0)::BIGINT, COALESCE(SUM(completion_tokens), 0)::BIGINT FROM usage \
             WHERE provider = $1 AND provider LIKE 'instance:%' AND created_at >= $2",
        )
        .bind(&provider)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        let earnings: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(l.amount_nano), 0)::BIGINT FROM usage u \
             JOIN ledger l ON l.request_id = u.request_id AND l.kind = 'earning' \
             WHERE u.provider = $1 AND u.provider LIKE 'instance:%' AND u.created_at >= $2",
        )
        .bind(&provider)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        let (probes, online): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE online) FROM instance_probes WHERE instance_id = $1 AND at >= $2",
        )
        .bind(id)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        Ok(InstanceStats {
            requests,
            prompt_tokens,
            completion_tokens,
            earnings: NanoUsd(earnings),
            uptime_24h: crate::instances::uptime(probes, online),
        })
    }
}
