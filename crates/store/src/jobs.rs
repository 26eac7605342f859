//! Push jobs, scoped to their tenant like every other row.

use super::TenantStore;
use super::backend::WriteLock;
use super::error::{JOB, StoreError, already_exists, corrupt, not_found};
use super::records::{ClaimedJob, JobRecord, JobStatus};
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

/// How many replicas may own one job in turn: a job lost this many times
/// (each owner died or stalled mid-push) is marked interrupted instead of
/// being taken over again, so an upload that kills its servers stops.
pub const MAX_JOB_ATTEMPTS: u32 = 3;

type JobRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<String>,
);

/// A claimed job as `RETURNING` gives it: tenant, id, component, image,
/// dry run, upload key, attempt.
type ClaimRow = (String, String, String, String, i64, Option<String>, i64);

/// The columns of a [`JobRow`], in order.
const JOB_COLUMNS: &str =
    "id, component, image, status, detail_json, created_at, updated_at, attempt, owner";

/// SQL that holds for a job another replica may take over: its upload is
/// in the shared store and it has attempts left.
fn claimable() -> String {
    format!("(upload_key IS NOT NULL AND attempt < {MAX_JOB_ATTEMPTS})")
}

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
    (id, component, image, status, detail_json, created_at, updated_at, attempt, owner): JobRow,
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
        attempt: u32::try_from(attempt).unwrap_or(0),
        owner: owner.unwrap_or_default(),
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
             updated_at, owner, lease_until) VALUES ($1, $2, $3, $4, $5, $6, {now}, {now}, $7, {})",
            self.db.now_plus(seconds(self.job_lease)),
            now = self.db.now(),
        ))
        .bind(&self.tenant)
        .bind(&r.id)
        .bind(&r.component)
        .bind(&r.image)
        .bind(r.status.as_str())
        .bind(&r.detail_json)
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
    /// owner's at this handle's attempt and still queued or running: the
    /// fence that keeps a server that lost the job (its lease ran out while
    /// it was paused or cut off, and another marked it interrupted or took
    /// it over) from writing to it again. A job
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
             WHERE tenant = $1 AND id = $2 AND owner = $6 AND attempt = $7 AND status IN {}",
            active_statuses()
        ))
        .bind(&self.tenant)
        .bind(id)
        .bind(status.as_str())
        .bind(detail_json)
        .bind(now_rfc3339())
        .bind(&self.job_owner)
        .bind(i64::from(self.job_attempt))
        .execute(self.db.pool()?)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(self.not_written(id).await);
        }
        Ok(())
    }

    /// Why a fenced write of job `id` changed nothing: the job is not
    /// there ([`StoreError::NotFound`]), or no longer this handle's to
    /// write ([`StoreError::JobLeaseLost`]).
    async fn not_written(&self, id: &str) -> StoreError {
        match self.get_job(id).await {
            Ok(None) => not_found(JOB, id),
            Ok(Some(_)) => StoreError::JobLeaseLost(id.to_owned()),
            Err(e) => e,
        }
    }

    /// Removes job `id` if it is still queued (it never started): a job
    /// recorded for a push whose upload then failed. Whether it did.
    pub async fn delete_queued_job(&self, id: &str) -> Result<bool, StoreError> {
        let deleted = sqlx::query(
            "DELETE FROM jobs WHERE tenant = $1 AND id = $2 AND status = $3 AND owner = $4 \
             AND attempt = $5",
        )
        .bind(&self.tenant)
        .bind(id)
        .bind(JobStatus::Queued.as_str())
        .bind(&self.job_owner)
        .bind(i64::from(self.job_attempt))
        .execute(self.db.pool()?)
        .await?
        .rows_affected();
        Ok(deleted > 0)
    }

    /// The job `id`, if this tenant has it; a row whose status this
    /// version does not know is [`StoreError::CorruptRecord`].
    pub async fn get_job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let row: Option<JobRow> = sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE tenant = $1 AND id = $2"
        ))
        .bind(&self.tenant)
        .bind(id)
        .fetch_optional(self.db.pool()?)
        .await?;
        row.map(job_from_row).transpose()
    }

    /// Records where job `id`'s upload is in the shared uploads store, and
    /// the rest of its request, so that another replica can take the job
    /// over; fenced as [`update_job`](Self::update_job) is.
    pub async fn share_job_upload(
        &self,
        id: &str,
        upload_key: &str,
        dry_run: bool,
    ) -> Result<(), StoreError> {
        let updated = sqlx::query(&format!(
            "UPDATE jobs SET upload_key = $3, dry_run = $4 \
             WHERE tenant = $1 AND id = $2 AND owner = $5 AND attempt = $6 AND status IN {}",
            active_statuses()
        ))
        .bind(&self.tenant)
        .bind(id)
        .bind(upload_key)
        .bind(i64::from(dry_run))
        .bind(&self.job_owner)
        .bind(i64::from(self.job_attempt))
        .execute(self.db.pool()?)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(self.not_written(id).await);
        }
        Ok(())
    }

    /// A job of this tenant for the same image as job `id`, submitted
    /// after it (by the database's clock; the id breaks a tie), that
    /// already succeeded: if there is one, pushing `id` now would move the
    /// tag back to an older image.
    pub async fn newer_job_succeeded(&self, id: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT newer.id FROM jobs newer, jobs mine \
             WHERE mine.tenant = $1 AND mine.id = $2 AND newer.tenant = $1 \
             AND newer.image = mine.image AND newer.status = $3 AND newer.id <> mine.id \
             AND (newer.created_at > mine.created_at \
             OR (newer.created_at = mine.created_at AND newer.id > mine.id)) \
             ORDER BY newer.created_at DESC LIMIT 1",
        )
        .bind(&self.tenant)
        .bind(id)
        .bind(JobStatus::Succeeded.as_str())
        .fetch_optional(self.db.pool()?)
        .await?;
        Ok(row.map(|(id,)| id))
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

/// A lease in whole seconds (at least one), for SQL.
fn seconds(lease: std::time::Duration) -> u32 {
    u32::try_from(lease.as_secs()).unwrap_or(u32::MAX).max(1)
}

impl super::Store {
    /// Waits for the one turn at pushing `target` (an image reference):
    /// across every replica on PostgreSQL, nothing on SQLite (the caller
    /// takes a turn in its process). See `turn.rs`.
    pub async fn push_turn(
        &self,
        target: &str,
        lease: std::time::Duration,
    ) -> Result<super::PushTurn, StoreError> {
        self.db.push_turn(target, lease).await
    }

    /// Renews to `lease` the lease of every queued or running job `owner`
    /// holds; how many. The owner calls this every third of its lease
    /// ([`JOB_LEASE_RENEW`] for the default one).
    pub async fn renew_job_leases(
        &self,
        owner: &str,
        lease: std::time::Duration,
    ) -> Result<u64, StoreError> {
        Ok(sqlx::query(&format!(
            "UPDATE jobs SET lease_until = {} WHERE owner = $1 AND status IN {}",
            self.db.now_plus(seconds(lease)),
            active_statuses()
        ))
        .bind(owner)
        .execute(self.db.pool()?)
        .await?
        .rows_affected())
    }

    /// Claims for `owner`, with a lease of `lease`, at most `limit` jobs
    /// whose lease ran out (or was given up) and whose upload is in the
    /// shared store with attempts left: each one's attempt goes up by one
    /// (fencing every write of the owner it had) and it is `queued` again.
    /// Two replicas claiming at once never claim one job twice (rows are
    /// claimed under `FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite has
    /// one writer). Oldest first.
    pub async fn claim_lost_jobs(
        &self,
        owner: &str,
        lease: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows: Vec<ClaimRow> = sqlx::query_as(&format!(
            "UPDATE jobs SET owner = $1, attempt = attempt + 1, status = $2, \
                 lease_until = {lease}, updated_at = {now} \
                 WHERE (tenant, id) IN (SELECT tenant, id FROM jobs WHERE status IN {active} \
                 AND {claimable} AND (lease_until IS NULL OR lease_until < {now}) \
                 ORDER BY created_at LIMIT $3{skip_locked}) \
                 RETURNING tenant, id, component, image, dry_run, upload_key, attempt",
            lease = self.db.now_plus(seconds(lease)),
            now = self.db.now(),
            active = active_statuses(),
            claimable = claimable(),
            skip_locked = self.db.skip_locked(),
        ))
        .bind(owner)
        .bind(JobStatus::Queued.as_str())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.db.pool()?)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(tenant, id, component, image, dry_run, upload_key, attempt)| ClaimedJob {
                    tenant,
                    id,
                    component,
                    image,
                    dry_run: dry_run != 0,
                    upload_key: upload_key.unwrap_or_default(),
                    attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                },
            )
            .collect())
    }

    /// What a single server does at start-up for the jobs its last run was
    /// doing, and at the end of its drain for the jobs it could not finish:
    /// every job still `queued` or `running` whose upload is in the shared
    /// store is given up for the next claim ([`claim_lost_jobs`]); every
    /// other one is marked `interrupted` with `detail_json`. Returns how
    /// many it marked.
    ///
    /// [`claim_lost_jobs`]: Self::claim_lost_jobs
    pub async fn fail_unfinished_jobs(&self, detail_json: &str) -> Result<u64, StoreError> {
        self.give_up_jobs("$1 IS NULL", None).await?;
        self.interrupt_active_jobs("$4 IS NULL", None, detail_json)
            .await
    }

    /// Ends the lease of every active job for which `which` holds (SQL,
    /// with `owner` bound as `$1`) that another replica may take over.
    async fn give_up_jobs(&self, which: &str, owner: Option<&str>) -> Result<u64, StoreError> {
        Ok(sqlx::query(&format!(
            "UPDATE jobs SET lease_until = NULL WHERE status IN {} AND {} AND ({which})",
            active_statuses(),
            claimable()
        ))
        .bind(owner)
        .execute(self.db.pool()?)
        .await?
        .rows_affected())
    }

    /// Marks `interrupted` (with `detail_json`) every queued or running job
    /// whose lease ran out (its owner died, was paused or lost the
    /// database), of any owner, or, with `owner`, every active job of that
    /// owner whatever its lease (a replica restarting, or ending its
    /// drain, under the same name). A job another replica may take over
    /// is left for [`claim_lost_jobs`](Self::claim_lost_jobs) instead (and
    /// `owner`'s own given up). How many it marked.
    pub async fn interrupt_lost_jobs(
        &self,
        owner: Option<&str>,
        detail_json: &str,
    ) -> Result<u64, StoreError> {
        if owner.is_some() {
            self.give_up_jobs("owner = $1", owner).await?;
        }
        let lost = format!(
            "lease_until IS NULL OR lease_until < {} OR owner = $4",
            self.db.now()
        );
        self.interrupt_active_jobs(&lost, owner, detail_json).await
    }

    /// Marks `interrupted` every queued or running job for which `which`
    /// holds (SQL, with `owner` bound as `$4`) and that no other replica
    /// may take over; how many.
    async fn interrupt_active_jobs(
        &self,
        which: &str,
        owner: Option<&str>,
        detail_json: &str,
    ) -> Result<u64, StoreError> {
        let which = format!("NOT {} AND ({which})", claimable());
        self.interrupt_where(&which, owner, detail_json).await
    }

    /// Marks `interrupted` every queued or running job whose lease ran out,
    /// those another replica could take over included: what a server does
    /// that has no shared uploads store (none of its deployment can take a
    /// job over any more). How many.
    pub async fn interrupt_all_lost_jobs(&self, detail_json: &str) -> Result<u64, StoreError> {
        let lost = format!("lease_until IS NULL OR lease_until < {}", self.db.now());
        self.interrupt_where(&lost, None, detail_json).await
    }

    /// Marks `interrupted` every queued or running job for which `which`
    /// holds (SQL, with `owner` bound as `$4`); how many.
    async fn interrupt_where(
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
