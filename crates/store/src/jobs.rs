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

/// How long a job stays its owner's without a renewal. The owner renews
/// every [`JOB_LEASE_RENEW`]; a replica that stops renewing (killed, paused,
/// cut off from the database) loses its jobs this long after its last
/// renewal, and any other replica then marks them interrupted.
pub const JOB_LEASE: std::time::Duration = std::time::Duration::from_secs(30);

/// How often an owner renews its jobs' leases: a third of [`JOB_LEASE`], so
/// two renewals may fail before a job is lost.
pub const JOB_LEASE_RENEW: std::time::Duration = std::time::Duration::from_secs(10);

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
        let mut tx = self
            .db
            .begin_write(WriteLock::TenantJobs(&self.tenant))
            .await?;
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
        sqlx::query(&format!(
            "INSERT INTO jobs (tenant, id, component, image, status, detail_json, created_at, \
             updated_at, owner, lease_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, {})",
            self.db.now_plus(lease_seconds())
        ))
        .bind(&self.tenant)
        .bind(&r.id)
        .bind(&r.component)
        .bind(&r.image)
        .bind(r.status.as_str())
        .bind(&r.detail_json)
        .bind(&now)
        .bind(&self.job_owner)
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

    /// Sets a job's status and detail, if the job is still this handle's
    /// owner's and still queued or running: the fence that keeps a server
    /// that lost the job (its lease ran out while it was paused or cut off,
    /// and another marked it interrupted) from writing to it again. A job
    /// that is not there is [`StoreError::NotFound`]; one that is no longer
    /// this owner's to write, [`StoreError::JobLeaseLost`].
    pub async fn update_job(
        &self,
        id: &str,
        status: JobStatus,
        detail_json: &str,
    ) -> Result<(), StoreError> {
        let updated = sqlx::query(&format!(
            "UPDATE jobs SET status = $3, detail_json = $4, updated_at = $5 \
             WHERE tenant = $1 AND id = $2 AND owner = $6 AND status IN {}",
            active_statuses()
        ))
        .bind(&self.tenant)
        .bind(id)
        .bind(status.as_str())
        .bind(detail_json)
        .bind(now_rfc3339())
        .bind(&self.job_owner)
        .execute(self.db.pool()?)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(match self.get_job(id).await? {
                None => not_found(JOB, id),
                Some(_) => StoreError::JobLeaseLost(id.to_owned()),
            });
        }
        Ok(())
    }

    /// Removes job `id` if it is still queued (it never started): a job
    /// recorded for a push whose upload then failed. Whether it did.
    pub async fn delete_queued_job(&self, id: &str) -> Result<bool, StoreError> {
        let deleted = sqlx::query(
            "DELETE FROM jobs WHERE tenant = $1 AND id = $2 AND status = $3 AND owner = $4",
        )
        .bind(&self.tenant)
        .bind(id)
        .bind(JobStatus::Queued.as_str())
        .bind(&self.job_owner)
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

/// [`JOB_LEASE`] in whole seconds, for SQL.
fn lease_seconds() -> u32 {
    u32::try_from(JOB_LEASE.as_secs()).unwrap_or(u32::MAX)
}

impl super::Store {
    /// Renews the lease of every queued or running job `owner` holds; how
    /// many. The owner calls this every [`JOB_LEASE_RENEW`].
    pub async fn renew_job_leases(&self, owner: &str) -> Result<u64, StoreError> {
        Ok(sqlx::query(&format!(
            "UPDATE jobs SET lease_until = {} WHERE owner = $1 AND status IN {}",
            self.db.now_plus(lease_seconds()),
            active_statuses()
        ))
        .bind(owner)
        .execute(self.db.pool()?)
        .await?
        .rows_affected())
    }

    /// Marks every job still `queued` or `running` as `interrupted` with
    /// `detail_json`: what a single server does at start-up for the jobs its
    /// last run was doing, and at the end of its drain for the jobs it could
    /// not finish. Returns how many it marked.
    pub async fn fail_unfinished_jobs(&self, detail_json: &str) -> Result<u64, StoreError> {
        self.interrupt_active_jobs("$4 IS NULL", None, detail_json)
            .await
    }

    /// Marks `interrupted` (with `detail_json`) every queued or running job
    /// whose lease ran out (its owner died, was paused or lost the
    /// database), of any owner, or, with `owner`, every active job of that
    /// owner whatever its lease (a replica restarting, or ending its
    /// drain, under the same name). How many it marked.
    pub async fn interrupt_lost_jobs(
        &self,
        owner: Option<&str>,
        detail_json: &str,
    ) -> Result<u64, StoreError> {
        let lost = format!(
            "lease_until IS NULL OR lease_until < {} OR owner = $4",
            self.db.now()
        );
        self.interrupt_active_jobs(&lost, owner, detail_json).await
    }

    /// Marks `interrupted` every queued or running job for which `which`
    /// holds (SQL, with `owner` bound as `$4`); how many.
    async fn interrupt_active_jobs(
        &self,
        which: &str,
        owner: Option<&str>,
        detail_json: &str,
    ) -> Result<u64, StoreError> {
        Ok(sqlx::query(&format!(
            "UPDATE jobs SET status = $3, detail_json = $1, updated_at = $2 \
             WHERE status IN {} AND ({which})",
            active_statuses(),
        ))
        .bind(detail_json)
        .bind(now_rfc3339())
        .bind(JobStatus::Interrupted.as_str())
        .bind(owner)
        .execute(self.db.pool()?)
        .await?
        .rows_affected())
    }
}
