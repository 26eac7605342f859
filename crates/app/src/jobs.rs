//! Push jobs: an uploaded image pushed in the background, its status kept
//! in the store so that any server replica can report it and a restart can
//! tell what it interrupted.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::push::PushSource;
use super::{
    AppError, ErrorCode, JobError, JobInfo, JobStatus, PushProgress, PushRequest, PushUpdate,
    TenantApp,
};
use flavorbox_store::{JobRecord, JobStatus as StoredStatus, StoreError};

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

impl Detail {
    /// The detail stored for job `id`; one that does not parse is an
    /// error naming the job.
    fn parse(id: &str, json: &str) -> Result<Detail, AppError> {
        serde_json::from_str(json).map_err(|e| {
            AppError::corrupt_record(
                "job",
                id,
                format!(
                    "its stored detail (progress, digest, warnings, error) is not what this version writes: {e}"
                ),
            )
        })
    }
}

impl From<StoredStatus> for JobStatus {
    fn from(status: StoredStatus) -> JobStatus {
        match status {
            StoredStatus::Queued => JobStatus::Queued,
            StoredStatus::Running => JobStatus::Running,
            StoredStatus::Succeeded => JobStatus::Succeeded,
            StoredStatus::Failed => JobStatus::Failed,
            StoredStatus::Interrupted => JobStatus::Interrupted,
        }
    }
}

/// The detail a server stores beside status `interrupted`: for the jobs
/// it did not finish before it stopped (found at the next start after a
/// kill, or marked at the end of a drain).
pub(crate) fn interrupted_detail() -> String {
    to_json(&Detail {
        error: Some(JobError {
            code: ErrorCode::Interrupted.as_str().to_string(),
            message: "the server stopped before this job finished: push again".into(),
        }),
        ..Detail::default()
    })
}

/// A push's turn at its tag: this process's, and the database's across
/// replicas (nothing on SQLite).
struct PushTurn<'a> {
    _local: super::flavors::Turn<'a>,
    shared: flavorbox_store::PushTurn,
}

/// What a job records of `e`.
fn error_of(e: &AppError) -> JobError {
    JobError {
        code: e.code().as_str().to_string(),
        message: e.to_string(),
    }
}

/// A new job id: 128 random bits, hex.
pub fn new_job_id() -> Result<String, AppError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| AppError::Internal(format!("no randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

fn to_json(detail: &Detail) -> String {
    match serde_json::to_string(detail) {
        Ok(text) => text,
        Err(e) => {
            // Never silently: a detail that cannot be stored loses the digest.
            tracing::error!(error = %e, "cannot serialise a job's detail");
            format!(
                r#"{{"error":{{"code":"{}","message":"cannot record the job's detail: {}"}}}}"#,
                ErrorCode::Internal,
                e.to_string().replace('"', "'")
            )
        }
    }
}

impl TenantApp<'_> {
    /// Records a queued push job, within the tenant's bound on jobs queued
    /// or running at once. That bound is enforced here only, in the
    /// store's transaction that inserts the job: concurrent pushes never
    /// exceed it. A server records the job before it reads the upload, so
    /// a push past the bound is refused before any byte arrives; it
    /// [`discard_job`](Self::discard_job)s the job if the upload fails.
    pub async fn create_job(
        &self,
        id: &str,
        component: &str,
        image: &str,
    ) -> Result<JobInfo, AppError> {
        let inserted = self
            .store
            .insert_job(
                &JobRecord {
                    id: id.to_string(),
                    component: component.to_string(),
                    image: image.to_string(),
                    status: StoredStatus::Queued,
                    detail_json: to_json(&Detail::default()),
                    created_at: String::new(),
                    updated_at: String::new(),
                    attempt: 1,
                    owner: String::new(),
                },
                self.quota.max_jobs,
            )
            .await;
        match inserted {
            Err(StoreError::QuotaExceeded { max, .. }) => {
                return Err(AppError::Quota {
                    what: format!("at most {max} push jobs may be queued or running at once"),
                    retry_after_secs: 5,
                });
            }
            other => other?,
        }
        self.job(id).await
    }

    /// Removes a job [`create_job`](Self::create_job) recorded for a push
    /// that then never started (its upload failed or was refused): no
    /// client learnt its id, and its place in the quota is free again. A
    /// job that started is left as it is.
    pub async fn discard_job(&self, id: &str) -> Result<(), AppError> {
        self.store.delete_queued_job(id).await?;
        Ok(())
    }

    /// A job of this tenant.
    pub async fn job(&self, id: &str) -> Result<JobInfo, AppError> {
        let record = self
            .store
            .get_job(id)
            .await?
            .ok_or_else(|| AppError::UnknownJob(id.to_string()))?;
        let detail = Detail::parse(&record.id, &record.detail_json)?;
        Ok(JobInfo {
            id: record.id,
            registry: record.component,
            image: record.image,
            status: record.status.into(),
            progress: detail.progress,
            digest: detail.digest,
            warnings: detail.warnings,
            error: detail.error,
            created_at: record.created_at,
            updated_at: record.updated_at,
            attempt: record.attempt,
        })
    }

    /// Marks a recorded job `interrupted` without running it: the server is
    /// stopping and starts no new push.
    pub async fn interrupt_job(&self, id: &str) {
        if let Err(e) = self
            .store
            .update_job(id, StoredStatus::Interrupted, &interrupted_detail())
            .await
        {
            tracing::error!(tenant = %self.tenant, job = id, error = %e, "cannot mark a job interrupted");
        }
    }

    /// Marks a job `failed` with `error` after the server stopped it (past
    /// its deadline), keeping the progress and warnings it recorded.
    pub async fn fail_job(&self, id: &str, error: JobError) {
        let mut detail = match self.store.get_job(id).await {
            Ok(Some(record)) => Detail::parse(id, &record.detail_json).unwrap_or_else(|e| {
                // The failure is recorded all the same; what it ran over is lost.
                tracing::warn!(tenant = %self.tenant, error = %e, "marking a job failed without its progress");
                Detail::default()
            }),
            Ok(None) => Detail::default(),
            Err(e) => {
                tracing::warn!(tenant = %self.tenant, job = id, error = %e, "marking a job failed without its progress");
                Detail::default()
            }
        };
        detail.error = Some(error);
        if let Err(e) = self
            .store
            .update_job(id, StoredStatus::Failed, &to_json(&detail))
            .await
        {
            tracing::error!(tenant = %self.tenant, job = id, error = %e, "cannot mark a job failed");
        }
    }

    /// This tenant's operations on a job as its `attempt`-th owner (1 for
    /// a job this server recorded, more for one it took over): every write
    /// of the job is fenced on it.
    pub fn at_attempt(mut self, attempt: u32) -> Self {
        self.store = self.store.with_job_attempt(attempt);
        self
    }

    /// Records that job `id`'s upload is in the shared uploads store at
    /// `upload_key` (with the rest of its request), so that another
    /// replica can take the job over if this one stops.
    pub async fn share_job_upload(
        &self,
        id: &str,
        upload_key: &str,
        dry_run: bool,
    ) -> Result<(), AppError> {
        Ok(self.store.share_job_upload(id, upload_key, dry_run).await?)
    }

    /// Waits for job `id`'s turn at pushing `image`, one push per tag at a
    /// time (in this process, and across replicas on a shared database);
    /// then refuses the push if a newer job for the same tag already
    /// succeeded: pushing this one would move the tag back to an older
    /// image. The turn is held until the push ends.
    async fn turn_at(&self, id: &str, image: &str) -> Result<PushTurn<'_>, JobError> {
        let target = flavorbox_grammar::Reference::parse(image)
            .map(|r| r.with_default_tag().to_string())
            .unwrap_or_else(|_| image.to_string());
        let local = self.app.pushing.turn("", &target).await;
        let shared = self
            .app
            .store
            .push_turn(&target, self.app.config.job_lease())
            .await
            .map_err(|e| error_of(&AppError::from(e)))?;
        match self.store.newer_job_succeeded(id).await {
            Ok(None) => Ok(PushTurn {
                _local: local,
                shared,
            }),
            Ok(Some(newer)) => Err(JobError {
                code: ErrorCode::Superseded.as_str().to_string(),
                message: format!(
                    "a newer push of {target} (job {newer}) finished first, so this older image was not pushed: the tag stays on the newer one; push again to make this image the newest"
                ),
            }),
            Err(e) => Err(error_of(&AppError::from(e))),
        }
    }

    /// Writes a running job's progress; whether this server still owns the
    /// job and its turn at the tag. One that lost the job (another replica
    /// took it over or gave it up) writes nothing more; one whose turn the
    /// database ended marks the job failed.
    async fn still_owned(&self, id: &str, detail: &Detail, turn: Option<&PushTurn<'_>>) -> bool {
        let written = self
            .store
            .update_job(id, StoredStatus::Running, &to_json(detail))
            .await;
        if let Err(e @ StoreError::JobLeaseLost(_)) = written {
            tracing::warn!(tenant = %self.tenant, job = id, error = %e, "stopping a push job this server no longer owns");
            return false;
        }
        if turn.is_some_and(|t| t.shared.is_lost()) {
            tracing::warn!(tenant = %self.tenant, job = id, "stopping a push job whose turn at its tag the database ended");
            let failed = Detail {
                error: Some(JobError {
                    code: ErrorCode::Unavailable.as_str().to_string(),
                    message: "the connection to the database that held this push's turn at its tag was lost: push again".into(),
                }),
                progress: detail.progress.clone(),
                warnings: detail.warnings.clone(),
                digest: None,
            };
            let _ = self
                .store
                .update_job(id, StoredStatus::Failed, &to_json(&failed))
                .await;
            return false;
        }
        true
    }

    /// Runs a recorded job to its end: checks, the flavor's decision, the
    /// push of `archive` straight to the registry (in its turn at the tag,
    /// see [`turn_at`](Self::turn_at)); the outcome is stored. `archive` is
    /// the caller's to remove.
    pub async fn run_job(&self, id: &str, request: PushRequest, archive: PathBuf) {
        let mut detail = Detail::default();
        if let Err(e) = self
            .store
            .update_job(id, StoredStatus::Running, &to_json(&detail))
            .await
        {
            tracing::warn!(tenant = %self.tenant, job = id, error = %e, "not running a push job this server cannot write");
            return;
        }
        let turn = if request.dry_run {
            None
        } else {
            match self.turn_at(id, &request.image).await {
                Ok(turn) => Some(turn),
                Err(error) => {
                    detail.error = Some(error);
                    if let Err(e) = self
                        .store
                        .update_job(id, StoredStatus::Failed, &to_json(&detail))
                        .await
                    {
                        tracing::error!(tenant = %self.tenant, job = id, error = %e, "cannot record a job's outcome");
                    }
                    return;
                }
            }
        };
        let mut updates = self.push_from(request, PushSource::Archive { path: archive });
        let mut outcome = None;
        // Progress is written at least every PROGRESS_EVERY, events or not:
        // each write is also the check that this server still owns the job
        // (and holds its turn at the tag), so a server that lost it stops
        // within that time, before the push moves the tag.
        let mut ticks = tokio::time::interval(PROGRESS_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The push stream is polled all the time, during the progress
        // writes too (what it yields meanwhile waits here): a stream left
        // unpolled in the middle of its own database work would hold what
        // the write waits for.
        let mut arrived = std::collections::VecDeque::new();
        let mut ended = false;
        loop {
            if let Some(update) = arrived.pop_front() {
                match update {
                    PushUpdate::Progress(progress) => {
                        if let PushProgress::Flavor { warnings, .. } = &progress {
                            detail.warnings = warnings.clone();
                        }
                        detail.progress.push(progress);
                        if detail.progress.len() > KEPT_PROGRESS {
                            detail.progress.remove(0);
                        }
                    }
                    PushUpdate::Done(result) => outcome = Some(result),
                }
                continue;
            }
            if ended {
                break;
            }
            tokio::select! {
                update = updates.next() => match update {
                    Some(update) => arrived.push_back(update),
                    None => ended = true,
                },
                _ = ticks.tick() => {
                    let check = self.still_owned(id, &detail, turn.as_ref());
                    tokio::pin!(check);
                    let owned = loop {
                        tokio::select! {
                            owned = &mut check => break owned,
                            update = updates.next(), if !ended => match update {
                                Some(update) => arrived.push_back(update),
                                None => ended = true,
                            },
                        }
                    };
                    if !owned {
                        // Dropping the stream stops the push before its tag.
                        return;
                    }
                }
            }
        }
        drop(updates);
        drop(turn);
        let status = match outcome {
            Some(Ok(report)) => {
                detail.digest = report.digest;
                detail.warnings = report.warnings;
                StoredStatus::Succeeded
            }
            Some(Err(e)) => {
                tracing::info!(tenant = %self.tenant, job = id, error = %e, "push job failed");
                detail.error = Some(error_of(&e));
                StoredStatus::Failed
            }
            None => {
                detail.error = Some(JobError {
                    code: ErrorCode::Internal.as_str().to_string(),
                    message: "the push ended without an outcome".into(),
                });
                StoredStatus::Failed
            }
        };
        if let Err(e) = self.store.update_job(id, status, &to_json(&detail)).await {
            tracing::error!(tenant = %self.tenant, job = id, error = %e, "cannot record a job's outcome");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{App, AppConfig, Quotas, Tenant, TenantQuota};
    use super::*;

    /// An app in a fresh home whose tenants may have `max_jobs` jobs.
    async fn app(dir: &std::path::Path, max_jobs: u64) -> App {
        let config = AppConfig::builder(dir.join("home"))
            .quotas(Quotas {
                default: TenantQuota {
                    max_jobs: Some(max_jobs),
                    ..TenantQuota::unlimited()
                },
                ..Quotas::default()
            })
            .build()
            .expect("config");
        App::open(config).await.expect("app")
    }

    #[tokio::test]
    async fn the_job_quota_refuses_where_the_job_is_recorded_and_a_discarded_job_frees_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path(), 1).await;
        let tenant = app.tenant(&Tenant::verified("acme"));
        let first = tenant
            .create_job("first", "r", "registry.example.com/app:1")
            .await
            .expect("within the quota");
        assert_eq!(first.status, JobStatus::Queued);
        let refused = tenant
            .create_job("second", "r", "registry.example.com/app:2")
            .await
            .expect_err("past the quota");
        assert_eq!(refused.code(), ErrorCode::QuotaExceeded);
        assert_eq!(refused.retry_after_secs(), Some(5));
        assert!(
            refused
                .to_string()
                .contains("at most 1 push jobs may be queued or running at once"),
            "{refused}"
        );
        tenant.discard_job("first").await.unwrap();
        assert!(matches!(
            tenant.job("first").await,
            Err(AppError::UnknownJob(_))
        ));
        tenant
            .create_job("second", "r", "registry.example.com/app:2")
            .await
            .expect("the discarded job's place is free");
        // A job that started is never discarded.
        tenant
            .store
            .update_job("second", StoredStatus::Running, "{}")
            .await
            .unwrap();
        tenant.discard_job("second").await.unwrap();
        assert_eq!(
            tenant.job("second").await.unwrap().status,
            JobStatus::Running
        );
    }

    #[tokio::test]
    async fn a_corrupt_job_detail_is_an_error_naming_the_job_not_an_empty_job() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path(), 4).await;
        let tenant = app.tenant(&Tenant::verified("acme"));
        tenant
            .create_job("damaged", "r", "registry.example.com/app:1")
            .await
            .unwrap();
        tenant
            .store
            .update_job("damaged", StoredStatus::Succeeded, "{\"digest\": 7")
            .await
            .unwrap();
        let err = tenant.job("damaged").await.expect_err("corrupt");
        assert!(
            matches!(&err, AppError::Store(StoreError::CorruptRecord { kind: "job", name, .. }) if name == "damaged"),
            "{err:?}"
        );
        assert_eq!(err.code(), ErrorCode::Internal);
        assert!(err.to_string().contains("stored detail"), "{err}");
    }

    #[tokio::test]
    async fn an_interrupted_job_says_so_with_its_code() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path(), 4).await;
        let tenant = app.tenant(&Tenant::verified("acme"));
        tenant
            .create_job("cut", "r", "registry.example.com/app:1")
            .await
            .unwrap();
        assert_eq!(app.interrupt_unfinished_jobs().await.unwrap(), 1);
        let job = tenant.job("cut").await.unwrap();
        assert_eq!(job.status, JobStatus::Interrupted);
        let error = job.error.expect("an error");
        assert_eq!(error.code, "interrupted");
        assert!(error.message.contains("push again"), "{}", error.message);
    }

    #[tokio::test]
    async fn an_older_job_is_not_pushed_over_a_newer_one_of_the_same_tag_that_succeeded() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path(), 4).await;
        let tenant = app.tenant(&Tenant::verified("acme"));
        let image = "registry.example.com/app:1";
        tenant.create_job("older", "r", image).await.unwrap();
        // Jobs are ordered by the database clock (milliseconds), then by id;
        // two made within one millisecond would be ordered by their names.
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        tenant.create_job("newer", "r", image).await.unwrap();
        tenant
            .store
            .update_job("newer", StoredStatus::Succeeded, "{}")
            .await
            .unwrap();
        // The older job runs only now (say, taken over from a replica that
        // died): it would move the tag back, so it pushes nothing (the
        // archive is never read: there is none).
        let request = PushRequest {
            image: image.into(),
            component: "r".into(),
            dry_run: false,
        };
        tenant
            .run_job("older", request, dir.path().join("no-such-archive"))
            .await;
        let job = tenant.job("older").await.unwrap();
        assert_eq!(job.status, JobStatus::Failed);
        let error = job.error.expect("an error");
        assert_eq!(error.code, "superseded");
        assert!(
            error.message.contains("job newer") && error.message.contains("push again"),
            "{}",
            error.message
        );
    }
}
