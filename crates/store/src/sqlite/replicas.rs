//! SQLite queries for the processes sharing the database and the leases of their
//! background work.

use super::SqliteDb;
use crate::rows::ReplicaRecord;
use crate::{Replica, ReplicaRow, StoreError};

impl SqliteDb {
    pub(crate) async fn heartbeat(&self, replica: &Replica, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO replicas (id, host, pid, started_at, seen_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
        )
        .bind(&replica.id)
        .bind(&replica.host)
        .bind(i64::from(replica.pid))
        .bind(replica.started_at)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn replicas(&self) -> Result<Vec<ReplicaRow>, StoreError> {
        let rows = sqlx::query_as::<_, ReplicaRecord>(
            "SELECT id, host, pid, started_at, seen_at FROM replicas ORDER BY started_at",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(ReplicaRow::from).collect())
    }

    pub(crate) async fn forget_replica(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM replicas WHERE id = ?").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    pub(crate) async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        ttl_secs: i64,
    ) -> Result<bool, StoreError> {
        let holder_now: Option<String> = sqlx::query_scalar(
            "INSERT INTO leases (name, holder, expires_at) VALUES (?1, ?2, ?3 + ?4) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at <= ?3 \
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(now)
        .bind(ttl_secs)
        .fetch_optional(&self.pool)
        .await?;
        Ok(holder_now.is_some())
    }
}
