//! Push jobs: an uploaded image pushed in the background, its status kept
//! in the store so that any server replica can report it and a restart can
//! tell what it interrupted.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::push::PushSource;
use super::{
    AppError, JobError, JobInfo, JobStatus, PushProgress, PushRequest, PushUpdate, TenantApp,
};
use flavorbox_store::JobRecord;

/// Progress items a job keeps (the newest).
const KEPT_PROGRESS: usize = 20;
/// How often a running job writes its progress to the store.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// The detail a job stores beside its status.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Detail {
    #[serde(default)]
    progress: Vec<PushProgress>,
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
    #[serde(default)]
    error: Option<JobError>,
}

/// The detail a server stores beside status `interrupted`: for the jobs
/// it did not finish before it stopped (found at the next start after a
/// kill, or marked at the end of a drain).
pub const JOB_INTERRUPTED: &str = r#"{"error":{"code":"interrupted","message":"the server stopped before this job finished: push again"}}"#;

/// A new job id: 128 random bits, hex.
pub fn new_job_id() -> Result<String, AppError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| AppError::Internal(format!("no randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

/// The refusal of a job past the tenant's `max` jobs at once.
fn jobs_quota(max: u64) -> AppError {
    AppError::Quota {
        what: format!("at most {max} push jobs may be queued or running at once"),
        retry_after_secs: 5,
    }
}

fn to_json(detail: &Detail) -> String {
    match serde_json::to_string(detail) {
        Ok(text) => text,
        Err(e) => {
            // Never silently: a detail that cannot be stored loses the digest.
            tracing::error!(error = %e, "cannot serialise a job's detail");
            format!(
                r#"{{"error":{{"code":"internal","message":"cannot record the job's detail: {}"}}}}"#,
                e.to_string().replace('"', "'")
            )
        }
    }
}

impl TenantApp<'_> {
    /// Records a queued push job, within the tenant's bound on jobs at once.
    pub async fn create_job(
        &self,
        id: &str,
        component: &str,
        image: &str,
    ) -> Result<JobInfo, AppError> {
        // The slot is reserved in the transaction that counts: concurrent
        // pushes never exceed the quota.
        let inserted = self
            .store
            .insert_job(
                &JobRecord {
                    id: id.to_string(),
                    component: component.to_string(),
                    image: image.to_string(),
                    status: JobStatus::Queued.as_str().to_string(),
                    detail_json: to_json(&Detail::default()),
                    created_at: String::new(),
                    updated_at: String::new(),
                },
                self.quota.max_jobs,
            )
            .await;
        match inserted {
            Err(flavorbox_store::StoreError::QuotaExceeded { max, .. }) => {
                return Err(jobs_quota(max));
            }
            other => other?,
        }
        self.job(id).await
    }

    /// Refuses early (before an upload is read) when the tenant already has
    /// as many jobs queued or running as its quota allows;
    /// [`create_job`](Self::create_job) decides again in the transaction
    /// that reserves the slot.
    pub async fn check_job_room(&self) -> Result<(), AppError> {
        if let Some(max) = self.quota.max_jobs
            && self.store.active_jobs().await? >= max
        {
            return Err(jobs_quota(max));
        }
        Ok(())
    }

    /// Refuses a push at once, with no store query, when `active` (the
    /// tenant's jobs this process knows are running or waiting) already
    /// reaches its job quota: a tenant flooding pushes at its bound costs
    /// the store nothing. [`check_job_room`](Self::check_job_room) and the
    /// insert decide otherwise.
    pub fn check_job_room_in(&self, active: usize) -> Result<(), AppError> {
        match self.quota.max_jobs {
            Some(max) if u64::try_from(active).unwrap_or(u64::MAX) >= max => Err(jobs_quota(max)),
            _ => Ok(()),
        }
    }

    /// A job of this tenant.
    pub async fn job(&self, id: &str) -> Result<JobInfo, AppError> {
        let record = self
            .store
            .get_job(id)
            .await?
            .ok_or_else(|| AppError::UnknownJob(id.to_string()))?;
        let detail: Detail = serde_json::from_str(&record.detail_json).unwrap_or_default();
        Ok(JobInfo {
            id: record.id,
            registry: record.component,
            image: record.image,
            status: JobStatus::parse(&record.status).unwrap_or(JobStatus::Failed),
            progress: detail.progress,
            digest: detail.digest,
            warnings: detail.warnings,
            error: detail.error,
            created_at: record.created_at,
            updated_at: record.updated_at,
        })
    }

    /// Marks a recorded job `interrupted` without running it: the server is
    /// stopping and starts no new push.
    pub async fn interrupt_job(&self, id: &str) {
        if let Err(e) = self
            .store
            .update_job(id, JobStatus::Interrupted.as_str(), JOB_INTERRUPTED)
            .await
        {
            tracing::error!(tenant = %self.tenant, job = id, error = %e, "cannot mark a job interrupted");
        }
    }

    /// Marks a job `failed` with `error` after the server stopped it (past
    /// its deadline), keeping the progress and warnings it recorded.
    pub async fn fail_job(&self, id: &str, error: JobError) {
        let mut detail = match self.store.get_job(id).await {
            Ok(Some(record)) => serde_json::from_str(&record.detail_json).unwrap_or_else(|e| {
                tracing::warn!(tenant = %self.tenant, job = id, error = %e, "a job's stored detail does not parse; its progress is not kept");
                Detail::default()
            }),
            _ => Detail::default(),
        };
        detail.error = Some(error);
        if let Err(e) = self
            .store
            .update_job(id, JobStatus::Failed.as_str(), &to_json(&detail))
            .await
        {
            tracing::error!(tenant = %self.tenant, job = id, error = %e, "cannot mark a job failed");
        }
    }

    /// Runs a recorded job to its end: checks, the flavor's decision, the
    /// push of `archive` straight to the registry; the outcome is stored.
    /// `archive` is the caller's to remove.
    pub async fn run_job(&self, id: &str, request: PushRequest, archive: PathBuf) {
        let mut detail = Detail::default();
        let _ = self
            .store
            .update_job(id, JobStatus::Running.as_str(), &to_json(&detail))
            .await;
        let mut updates = self.push_from(request, PushSource::Archive { path: archive });
        let mut written = Instant::now();
        let mut outcome = None;
        while let Some(update) = updates.next().await {
            match update {
                PushUpdate::Progress(progress) => {
                    if let PushProgress::Flavor { warnings, .. } = &progress {
                        detail.warnings = warnings.clone();
                    }
                    detail.progress.push(progress);
                    if detail.progress.len() > KEPT_PROGRESS {
                        detail.progress.remove(0);
                    }
                    if written.elapsed() >= PROGRESS_EVERY {
                        written = Instant::now();
                        let _ = self
                            .store
                            .update_job(id, JobStatus::Running.as_str(), &to_json(&detail))
                            .await;
                    }
                }
                PushUpdate::Done(result) => outcome = Some(result),
            }
        }
        drop(updates);
        let status = match outcome {
            Some(Ok(report)) => {
                detail.digest = report.digest;
                detail.warnings = report.warnings;
                JobStatus::Succeeded
            }
            Some(Err(e)) => {
                tracing::info!(tenant = %self.tenant, job = id, error = %e, "push job failed");
                detail.error = Some(JobError {
                    code: e.code().to_string(),
                    message: e.to_string(),
                });
                JobStatus::Failed
            }
            None => {
                detail.error = Some(JobError {
                    code: "internal".into(),
                    message: "the push ended without an outcome".into(),
                });
                JobStatus::Failed
            }
        };
        if let Err(e) = self
            .store
            .update_job(id, status.as_str(), &to_json(&detail))
            .await
        {
            tracing::error!(tenant = %self.tenant, job = id, error = %e, "cannot record a job's outcome");
        }
    }
}
