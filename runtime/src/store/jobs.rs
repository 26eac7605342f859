//! Push jobs, scoped to their tenant like every other row.

use super::TenantStore;
use super::error::{JOB, StoreError, already_exists, not_found};
use super::records::JobRecord;
use super::timestamp::now_rfc3339;

type JobRow = (String, String, String, String, String, String, String);

impl TenantStore {
    /// Records a new job with `status` and `detail_json`; the store stamps the times.
    pub async fn insert_job(&self, r: &JobRecord) -> Result<(), StoreError> {
        let now = now_rfc3339();
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
        .execute(self.db.pool()?)
        .await
        .map_err(|e| already_exists(e, JOB, &r.id))?;
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
