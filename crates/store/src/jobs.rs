//! Push jobs, scoped to their tenant like every other row.

use super::TenantStore;
use super::error::{JOB, StoreError, already_exists, not_found};
use super::records::JobRecord;
use super::timestamp::{format_rfc3339, now_rfc3339};

/// How much of a tenant's finished job history is kept: the newest
/// `max_count` jobs, none older than `max_age`. Queued and running jobs are
/// never pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobHistory {
    /// Most finished jobs kept per tenant.
    pub max_count: u64,
    /// Oldest finished job kept.
    pub max_age: std::time::Duration,
}

/// The history kept: a week, at most 1,000 finished jobs per tenant.
pub const JOB_HISTORY: JobHistory = JobHistory {
    max_count: 1000,
    max_age: std::time::Duration::from_secs(7 * 24 * 3600),
};

type JobRow = (String, String, String, String, String, String, String);

impl TenantStore {
    /// Records a new job with `status` and `detail_json`; the store stamps
    /// the times. With `max_active`, the slot is reserved in the same
    /// transaction that counts the tenant's queued and running jobs, so
    /// concurrent submissions never exceed it ([`StoreError::QuotaExceeded`]).
    /// The tenant's finished jobs past its history bound ([`JOB_HISTORY`]
    /// unless [`with_job_history`](Self::with_job_history) set another) are
    /// pruned in the same transaction.
    pub async fn insert_job(
        &self,
        r: &JobRecord,
        max_active: Option<u64>,
    ) -> Result<(), StoreError> {
        let now = now_rfc3339();
        let mut tx = self.db.begin_write().await?;
        if let Some(max) = max_active {
            let (count,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM jobs WHERE tenant = $1 AND status IN ('queued', 'running')",
            )
            .bind(&self.tenant)
            .fetch_one(&mut *tx)
            .await?;
            if u64::try_from(count).unwrap_or(0) >= max {
                return Err(StoreError::QuotaExceeded { kind: JOB, max });
            }
        }
        sqlx::query(
            "INSERT INTO jobs (tenant, id, component, image, status, detail_json, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(&self.tenant)
        .bind(&r.id)
        .bind(&r.component)
        .bind(&r.image)
        .bind(&r.status)
        .bind(&r.detail_json)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .map_err(|e| already_exists(e, JOB, &r.id))?;
        let history = self.job_history;
        let oldest = format_rfc3339(time::OffsetDateTime::now_utc() - history.max_age);
        sqlx::query(
            "DELETE FROM jobs WHERE tenant = $1 AND status NOT IN ('queued', 'running') \
             AND (created_at < $2 OR id NOT IN (SELECT id FROM jobs WHERE tenant = $1 \
             AND status NOT IN ('queued', 'running') ORDER BY created_at DESC LIMIT $3))",
        )
        .bind(&self.tenant)
        .bind(oldest)
        .bind(i64::try_from(history.max_count).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets a job's status and detail.
    pub async fn update_job(
        &self,
        id: &str,
        status: &str,
        detail_json: &str,
    ) -> Result<(), StoreError> {
        let updated = sqlx::query(
            "UPDATE jobs SET status = $3, detail_json = $4, updated_at = $5 \
             WHERE tenant = $1 AND id = $2",
        )
        .bind(&self.tenant)
        .bind(id)
        .bind(status)
        .bind(detail_json)
        .bind(now_rfc3339())
        .execute(self.db.pool()?)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(not_found(JOB, id));
        }
        Ok(())
    }

    /// The job `id`, if this tenant has it.
    pub async fn get_job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let row: Option<JobRow> = sqlx::query_as(
            "SELECT id, component, image, status, detail_json, created_at, updated_at \
             FROM jobs WHERE tenant = $1 AND id = $2",
        )
        .bind(&self.tenant)
        .bind(id)
        .fetch_optional(self.db.pool()?)
        .await?;
        Ok(row.map(
            |(id, component, image, status, detail_json, created_at, updated_at)| JobRecord {
                id,
                component,
                image,
                status,
                detail_json,
                created_at,
                updated_at,
            },
        ))
    }

    /// How many of this tenant's jobs are queued or running.
    pub async fn active_jobs(&self) -> Result<u64, StoreError> {
        let (count,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM jobs WHERE tenant = $1 AND status IN ('queued', 'running')",
        )
        .bind(&self.tenant)
        .fetch_one(self.db.pool()?)
        .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
