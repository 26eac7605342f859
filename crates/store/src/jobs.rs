//! Push jobs, scoped to their tenant like every other row.

use super::TenantStore;
use super::backend::WriteLock;
use super::error::{JOB, StoreError, already_exists, corrupt, not_found};
use super::records::{JobRecord, JobStatus};
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

/// The SQL list of the statuses that hold a place in the job quota,
/// `('queued', 'running')`, written from [`JobStatus`] so the words stored
/// and the words queried are one.
pub(super) fn active_statuses() -> String {
    let words: Vec<String> = JobStatus::ALL
        .into_iter()
        .filter(|s| s.is_active())
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    format!("({})", words.join(", "))
}

/// A row as read, its status checked: a word this version never writes is
/// an error naming the job, not a guess.
fn job_from_row(
    (id, component, image, status, detail_json, created_at, updated_at): JobRow,
) -> Result<JobRecord, StoreError> {
    let Some(status) = JobStatus::from_stored(&status) else {
        return Err(corrupt(
            JOB,
            &id,
            format!("its status `{status}` is none this version knows"),
        ));
    };
    Ok(JobRecord {
        id,
        component,
        image,
        status,
        detail_json,
        created_at,
        updated_at,
    })
}

impl TenantStore {
    /// Records a new job with `status` and `detail_json`; the store stamps
    /// the times. With `max_active`, the tenant's job quota is enforced
    /// here and only here: the slot is reserved in the same transaction
    /// that counts the tenant's queued and running jobs, so concurrent
    /// submissions never exceed it ([`StoreError::QuotaExceeded`]).
    /// The tenant's finished jobs past its history bound ([`JOB_HISTORY`]
    /// unless [`with_job_history`](Self::with_job_history) set another) are
    /// pruned in the same transaction.
    pub async fn insert_job(
        &self,
        r: &JobRecord,
        max_active: Option<u64>,
    ) -> Result<(), StoreError> {
        let now = now_rfc3339();
        let active = active_statuses();
        let mut tx = self.db.begin_write(WriteLock::Tenant(&self.tenant)).await?;
        if let Some(max) = max_active {
            let (count,): (i64,) = sqlx::query_as(&format!(
                "SELECT COUNT(*) FROM jobs WHERE tenant = $1 AND status IN {active}"
            ))
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
        .bind(r.status.as_str())
        .bind(&r.detail_json)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .map_err(|e| already_exists(e, JOB, &r.id))?;
        let history = self.job_history;
        let oldest = format_rfc3339(time::OffsetDateTime::now_utc() - history.max_age);
        sqlx::query(&format!(
            "DELETE FROM jobs WHERE tenant = $1 AND status NOT IN {active} \
             AND (created_at < $2 OR id NOT IN (SELECT id FROM jobs WHERE tenant = $1 \
             AND status NOT IN {active} ORDER BY created_at DESC LIMIT $3))"
        ))
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
        status: JobStatus,
        detail_json: &str,
    ) -> Result<(), StoreError> {
        let updated = sqlx::query(
            "UPDATE jobs SET status = $3, detail_json = $4, updated_at = $5 \
             WHERE tenant = $1 AND id = $2",
        )
        .bind(&self.tenant)
        .bind(id)
        .bind(status.as_str())
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

    /// Removes job `id` if it is still queued (it never started): a job
    /// recorded for a push whose upload then failed. Whether it did.
    pub async fn delete_queued_job(&self, id: &str) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM jobs WHERE tenant = $1 AND id = $2 AND status = $3")
            .bind(&self.tenant)
            .bind(id)
            .bind(JobStatus::Queued.as_str())
            .execute(self.db.pool()?)
            .await?
            .rows_affected();
        Ok(deleted > 0)
    }

    /// The job `id`, if this tenant has it; a row whose status this
    /// version does not know is [`StoreError::CorruptRecord`].
    pub async fn get_job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let row: Option<JobRow> = sqlx::query_as(
            "SELECT id, component, image, status, detail_json, created_at, updated_at \
             FROM jobs WHERE tenant = $1 AND id = $2",
        )
        .bind(&self.tenant)
        .bind(id)
        .fetch_optional(self.db.pool()?)
        .await?;
        row.map(job_from_row).transpose()
    }

    /// How many of this tenant's jobs are queued or running.
    pub async fn active_jobs(&self) -> Result<u64, StoreError> {
        let (count,): (i64,) = sqlx::query_as(&format!(
            "SELECT COUNT(*) FROM jobs WHERE tenant = $1 AND status IN {}",
            active_statuses()
        ))
        .bind(&self.tenant)
        .fetch_one(self.db.pool()?)
        .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
