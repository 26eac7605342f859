//! `POST /v1/registries/{name}/push` and `GET /v1/jobs/{id}`: the target and
//! the tenant's quotas are checked before any byte of the body is read (the
//! job is recorded first, which is where its quota is enforced, and
//! discarded if the upload fails); the upload is streamed to a private file
//! (size-capped as it arrives, each chunk within the edge's body timeout,
//! counted against the tenant's uploads on disk) and pushed in the
//! background by a bounded number of workers, shared fairly between tenants
//! ([`super::workers`]). The job pushes the tarball straight to the
//! registry over the distribution API ([`TenantApp::run_job`]); its status
//! lives in the store. A job that runs past the server's job deadline is
//! stopped and marked `failed` (`job_timeout`), so no push holds a worker
//! for longer.
//!
//! At shutdown no job starts a push: one still waiting for a worker is
//! marked `interrupted`. Running jobs get the drain; what is left is aborted
//! and marked `interrupted` too. The uploads a live job or request holds are
//! known here, so the periodic sweep ([`super::sweep`]) removes only dead ones.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use utoipa::IntoParams;

use super::AppState;
use super::auth::Authenticated;
use super::error::{ApiError, ErrorBody};
use super::shared_uploads::SharedUploads;
use super::workers::Workers;
use flavorbox_app::{
    App, AppError, ErrorCode, JobError, JobInfo, PushRequest, Tenant, TenantApp, TenantQuota,
};

/// Directory of `home` that uploads are streamed to.
pub(crate) const UPLOADS_DIR: &str = "uploads";

/// Seconds a tenant at its bound of uploads is told to wait: an upload is
/// held until its push job ends.
const UPLOAD_RETRY_SECS: u64 = 10;

/// The background workers, and the uploads live requests and jobs hold.
pub(crate) struct Jobs {
    workers: Arc<Workers>,
    /// How long a job may run once it has a worker.
    timeout: Duration,
    running: AtomicUsize,
    idle: Notify,
    stopping: watch::Sender<bool>,
    tasks: Mutex<JoinSet<()>>,
    live: Mutex<HashSet<OsString>>,
    held: Mutex<HashMap<String, Held>>,
    uploads: PathBuf,
    /// Where uploads are shared with the other replicas, if anywhere.
    shared: Option<Arc<SharedUploads>>,
}

/// One tenant's uploads, from before the first byte arrives until their
/// push jobs end: how many, and their bytes on disk.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Held {
    uploads: usize,
    bytes: u64,
}

impl Jobs {
    /// `workers` at once, the default share of them for a tenant
    /// ([`super::workers::default_share`]) and the default deadline.
    #[cfg(test)]
    pub(crate) fn new(workers: usize, home: &FsPath) -> Jobs {
        let share = super::workers::default_share(workers);
        Jobs::with_limits(workers, share, super::config::DEFAULT_JOB_TIMEOUT, home)
    }

    /// `workers` at once, at most `share` of them for one tenant, each job
    /// stopped `timeout` after it starts.
    pub(crate) fn with_limits(
        workers: usize,
        share: usize,
        timeout: Duration,
        home: &FsPath,
    ) -> Jobs {
        Jobs {
            workers: Arc::new(Workers::new(workers, share)),
            timeout,
            running: AtomicUsize::new(0),
            idle: Notify::new(),
            stopping: watch::Sender::new(false),
            tasks: Mutex::new(JoinSet::new()),
            live: Mutex::new(HashSet::new()),
            held: Mutex::new(HashMap::new()),
            uploads: home.join(UPLOADS_DIR),
            shared: None,
        }
    }

    /// The same pool, sharing uploads through `shared`.
    pub(crate) fn with_shared_uploads(mut self, shared: Option<SharedUploads>) -> Jobs {
        self.shared = shared.map(Arc::new);
        self
    }

    /// Where uploads are shared with the other replicas, if anywhere.
    pub(crate) fn shared(&self) -> Option<&Arc<SharedUploads>> {
        self.shared.as_ref()
    }

    /// Where uploads are streamed to.
    pub(crate) fn uploads_dir(&self) -> &FsPath {
        &self.uploads
    }

    /// Jobs accepted and not finished.
    pub(crate) fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    /// Shutdown began: no job starts a push from now on, and the ones
    /// waiting for a worker are marked `interrupted` at once.
    pub(crate) fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Whether shutdown began.
    pub(crate) fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Waits until no job runs, at most `timeout`; whether they all ended.
    pub(crate) async fn wait_idle(&self, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.idle.notified();
                if self.running() == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }

    /// Aborts every job task still running and waits, at most `within`,
    /// until they are dropped (their uploads removed); how many it aborted.
    pub(crate) async fn abort_all(&self, within: Duration) -> usize {
        let mut tasks = std::mem::take(&mut *lock(&self.tasks));
        tasks.abort_all();
        let mut aborted = 0;
        let _ = tokio::time::timeout(within, async {
            while let Some(joined) = tasks.join_next().await {
                if joined.is_err_and(|e| e.is_cancelled()) {
                    aborted += 1;
                }
            }
        })
        .await;
        aborted
    }

    /// A place for one more upload of `tenant` within its quota (uploads in
    /// flight, bytes on disk), taken before any byte of the body is read;
    /// `declared` is the body's length when the client said it. Past a
    /// bound the answer is 429; a declared body that could never fit the
    /// tenant's disk bound alone is 413.
    pub(crate) fn claim_upload(
        self: &Arc<Self>,
        tenant: &str,
        quota: &TenantQuota,
        declared: Option<u64>,
    ) -> Result<UploadClaim, AppError> {
        let mut held = lock(&self.held);
        let now = held.get(tenant).copied().unwrap_or_default();
        if let Some(max) = quota.max_uploads_in_flight
            && now.uploads >= max
        {
            return Err(AppError::Quota {
                what: format!(
                    "at most {max} uploads may be arriving or waiting for their push jobs at once"
                ),
                retry_after_secs: UPLOAD_RETRY_SECS,
            });
        }
        // A declared length is counted at once, so two uploads that could
        // not both fit are not both half received before one is refused.
        let reserved = declared.unwrap_or(0);
        if let Some(max) = quota.max_upload_disk_bytes {
            let wanted = reserved.max(1);
            if wanted > max {
                return Err(AppError::UploadTooLarge { max });
            }
            if now.bytes.saturating_add(wanted) > max {
                return Err(disk_quota(max));
            }
        }
        let now = held.entry(tenant.to_string()).or_default();
        now.uploads += 1;
        now.bytes = now.bytes.saturating_add(reserved);
        Ok(UploadClaim {
            jobs: self.clone(),
            tenant: tenant.to_string(),
            max_disk: quota.max_upload_disk_bytes,
            written: 0,
            counted: reserved,
        })
    }

    /// Whether the upload file `name` belongs to a live request or job.
    pub(crate) fn is_live(&self, name: &OsStr) -> bool {
        lock(&self.live).contains(name)
    }

    /// Runs recorded job `run` in the background once a worker is free in
    /// its tenant's turn, unless shutdown begins first: then it is marked
    /// `interrupted`, or, when its upload is shared, left to the claim
    /// that follows the drain. A shared upload is removed once its job
    /// ended.
    pub(crate) fn start(
        self: &Arc<Self>,
        app: Arc<App>,
        run: JobRun,
        request: PushRequest,
        upload: Upload,
    ) {
        let push = {
            let (app, run, archive, jobs) = (app.clone(), run.clone(), upload.path(), self.clone());
            async move {
                app.tenant(&run.tenant)
                    .at_attempt(run.attempt)
                    .run_job(&run.id, request, archive)
                    .await;
                jobs.forget_shared_upload(&app, &run).await;
            }
        };
        self.launch(app, run, upload, push);
    }

    /// Removes `run`'s shared upload if its job ended (whoever ended it);
    /// one another replica took over stays.
    async fn forget_shared_upload(&self, app: &App, run: &JobRun) {
        let (Some(shared), Some(key)) = (&self.shared, &run.shared_key) else {
            return;
        };
        match app.tenant(&run.tenant).job(&run.id).await {
            Ok(info) if info.status.is_active() => {}
            Ok(_) | Err(AppError::UnknownJob(_)) => shared.delete(key).await,
            Err(e) => {
                tracing::warn!(tenant = %run.tenant.name(), job = run.id, error = %e, "cannot tell whether a job ended; the sweep removes its shared upload later")
            }
        }
    }

    /// [`start`](Self::start) with the push as a future: it runs once the
    /// job has a worker, and is dropped at the deadline.
    fn launch(
        self: &Arc<Self>,
        app: Arc<App>,
        run: JobRun,
        upload: Upload,
        push: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let jobs = self.clone();
        let (tenant, job) = (run.tenant.clone(), run.id.clone());
        let running = Running::start(jobs.clone());
        self.spawn(async move {
            let _running = running;
            let mut stopping = jobs.stopping.subscribe();
            let worker = tokio::select! {
                worker = jobs.workers.take(tenant.name()) => Some(worker),
                _ = stopping.wait_for(|stop| *stop) => None,
            };
            let tenant_app = app.tenant(&tenant).at_attempt(run.attempt);
            match worker {
                Some(_worker) if !jobs.is_stopping() => {
                    // A push dropped at the deadline stops at its next read
                    // of the upload or within the egress client's stall
                    // timeout, whichever comes first.
                    if tokio::time::timeout(jobs.timeout, push).await.is_err() {
                        tracing::warn!(tenant = %tenant.name(), job, timeout = ?jobs.timeout, "a push job ran past the job deadline and was stopped");
                        tenant_app
                            .fail_job(&job, deadline_error(jobs.timeout))
                            .await;
                        jobs.forget_shared_upload(&app, &run).await;
                    }
                }
                _ if run.shared_key.is_some() => {
                    tracing::info!(tenant = %tenant.name(), job, "shutting down: a queued push job whose upload is shared is left for another replica");
                }
                _ => {
                    tracing::info!(tenant = %tenant.name(), job, "shutting down: a queued push job is marked interrupted");
                    tenant_app.interrupt_job(&job).await;
                }
            }
            drop(upload);
        });
    }

    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = lock(&self.tasks);
        // Reap what ended, so the set holds only live tasks.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }
}

/// A recorded job as a worker runs it: whose, which, as which attempt, and
/// where its upload is shared (if it is).
#[derive(Debug, Clone)]
pub(crate) struct JobRun {
    pub(crate) tenant: Tenant,
    pub(crate) id: String,
    pub(crate) attempt: u32,
    pub(crate) shared_key: Option<String>,
}

impl JobRun {
    /// Job `id` of `tenant` as the server that recorded it runs it.
    pub(crate) fn first(tenant: Tenant, id: String) -> JobRun {
        JobRun {
            tenant,
            id,
            attempt: 1,
            shared_key: None,
        }
    }
}

/// The error of a job stopped at the deadline `timeout`.
fn deadline_error(timeout: Duration) -> JobError {
    JobError {
        code: ErrorCode::JobTimeout.as_str().to_string(),
        message: format!(
            "the push did not finish within the server's job deadline of {} and was stopped: push again when the registry answers faster, or push a smaller image; the operator sets the deadline (`job_timeout_secs`)",
            human(timeout)
        ),
    }
}

/// `90 s`, `15 min`, `1 h 30 min`: a duration as an operator wrote it.
fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    match (secs / 3600, (secs % 3600) / 60, secs % 60) {
        (0, 0, s) => format!("{s} s"),
        (0, m, 0) => format!("{m} min"),
        (h, 0, 0) => format!("{h} h"),
        (h, m, 0) => format!("{h} h {m} min"),
        _ => format!("{secs} s"),
    }
}

/// A std mutex, poisoned or not (the data stays consistent: every critical
/// section is one set or map operation).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Creates `dir` (and parents), private to the server's user.
pub(crate) fn private_dir(dir: &FsPath) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// The refusal of bytes past a tenant's bound of uploads on disk.
fn disk_quota(max: u64) -> AppError {
    AppError::Quota {
        what: format!(
            "the uploads arriving or waiting for their push jobs may hold at most {} MiB on disk together",
            max >> 20
        ),
        retry_after_secs: UPLOAD_RETRY_SECS,
    }
}

/// One upload's place in its tenant's share, and the bytes counted for it
/// (its declared length, or what it wrote when that is more); dropping it
/// gives both back.
pub(crate) struct UploadClaim {
    jobs: Arc<Jobs>,
    tenant: String,
    max_disk: Option<u64>,
    written: u64,
    counted: u64,
}

impl UploadClaim {
    /// Counts `more` bytes about to be written, unless they take the
    /// tenant's uploads past its bound on disk (413 when this upload
    /// alone would, 429 when it is the tenant's uploads together).
    fn grow(&mut self, more: u64) -> Result<(), AppError> {
        let written = self.written.saturating_add(more);
        let extra = written.saturating_sub(self.counted);
        let mut held = lock(&self.jobs.held);
        let held = held.entry(self.tenant.clone()).or_default();
        if let Some(max) = self.max_disk {
            if written > max {
                return Err(AppError::UploadTooLarge { max });
            }
            if held.bytes.saturating_add(extra) > max {
                return Err(disk_quota(max));
            }
        }
        held.bytes = held.bytes.saturating_add(extra);
        self.counted = self.counted.max(written);
        self.written = written;
        Ok(())
    }
}

impl Drop for UploadClaim {
    fn drop(&mut self) {
        let mut held = lock(&self.jobs.held);
        if let Some(now) = held.get_mut(&self.tenant) {
            now.uploads = now.uploads.saturating_sub(1);
            now.bytes = now.bytes.saturating_sub(self.counted);
            if now.uploads == 0 {
                held.remove(&self.tenant);
            }
        }
    }
}

/// An upload on disk, live for the sweep until dropped; dropping removes it
/// (and then gives back its place in its tenant's share).
pub(crate) struct Upload {
    path: Option<tempfile::TempPath>,
    name: OsString,
    jobs: Arc<Jobs>,
    claim: Option<UploadClaim>,
}

impl Upload {
    pub(crate) fn new(path: tempfile::TempPath, jobs: Arc<Jobs>) -> Upload {
        let name = path
            .file_name()
            .map(OsStr::to_os_string)
            .unwrap_or_default();
        lock(&jobs.live).insert(name.clone());
        Upload {
            path: Some(path),
            name,
            jobs,
            claim: None,
        }
    }

    /// This upload, counted in its tenant's share by `claim`.
    fn claimed(mut self, claim: UploadClaim) -> Upload {
        self.claim = Some(claim);
        self
    }

    fn path(&self) -> PathBuf {
        self.path
            .as_ref()
            .map(|p| p.to_path_buf())
            .unwrap_or_default()
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        // The file goes first: the sweep never sees it unheld and present,
        // and its bytes count until they are gone.
        drop(self.path.take());
        lock(&self.jobs.live).remove(&self.name);
        drop(self.claim.take());
    }
}

/// Counts a job as running until dropped (ended or aborted).
struct Running(Arc<Jobs>);

impl Running {
    fn start(jobs: Arc<Jobs>) -> Running {
        jobs.running.fetch_add(1, Ordering::AcqRel);
        Running(jobs)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// The answer to a push while the server stops.
fn stopping() -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        "the server is shutting down and starts no new push: push again once it is back",
    )
    .with_retry_after(5)
}

/// Query of a push.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PushQuery {
    /// The image reference to push, under the registry's uri (e.g. `registry.example.com/team/app:1`).
    pub image: String,
    /// Run every check on the uploaded image, the flavor's decision
    /// included (a flavor that asks to see the image sees this one), and
    /// push nothing: the job succeeds without a digest, or fails with the
    /// denial.
    #[serde(default)]
    pub dry_run: bool,
}

#[utoipa::path(post, path = "/v1/registries/{name}/push", tag = "registries",
    params(("name" = String, Path, description = "Registry component name"), PushQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "A tarball of exactly one image (what `docker save` writes, or an OCI image layout as `skopeo copy ... oci-archive:FILE` writes), streamed and size-capped; a pause longer than the server's body timeout ends it with 408. The server pushes it straight to the registry, no Docker engine involved"),
    security(("tenant" = [])),
    responses(
        (status = 202, description = "Accepted; poll the job", body = JobInfo),
        (status = 400, description = "Bad reference or query", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 408, description = "The upload stalled", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, description = "The image lies outside the registry (answered before the body is read)", body = ErrorBody),
        (status = 429, description = "The tenant's push jobs, uploads in flight or upload bytes on disk are at their bound", body = ErrorBody),
        (status = 503, description = "Overloaded, shutting down, or the state is unavailable", body = ErrorBody),
        (status = 507, description = "The server's disk is full", body = ErrorBody),
    ))]
pub async fn push(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(name): Path<String>,
    query: Result<Query<PushQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::bad_request(format!("{e}; pass the image as `?image=REGISTRY/REPO:TAG`"))
    })?;
    if state.jobs.is_stopping() {
        return Err(stopping());
    }
    let app = state.app.tenant(&tenant);
    // Refusals before any byte of the upload is read: the host's checks of
    // the target (the reference parses, the component exists, the image
    // lies inside its registry); the job quota, enforced only where the
    // job is recorded, so the job is recorded now and discarded if its
    // upload then fails; the tenant's uploads in flight and on disk.
    let target = app.check_push_target(&name, &query.image).await?;
    // Recorded as one spelling (`HOST/PATH:TAG`), so that two pushes of
    // one tag are known as such whatever their spelling.
    let image = format!(
        "{}:{}",
        target.name,
        target.tag.as_deref().unwrap_or("latest")
    );
    let id = flavorbox_app::new_job_id()?;
    let info = app.create_job(&id, &name, &image).await?;
    let recorded = Recorded::new(state.app.clone(), tenant.clone(), id.clone());
    let upload = match receive_upload(&state, &app, &headers, body).await {
        Ok(upload) => upload,
        Err(e) => {
            recorded.discard().await;
            return Err(e);
        }
    };
    let shared_key = match share(&state, &app, &id, query.dry_run, &upload).await {
        Ok(key) => key,
        Err(e) => {
            recorded.discard().await;
            return Err(e);
        }
    };
    let id = recorded.keep();
    let request = PushRequest {
        image,
        component: name,
        dry_run: query.dry_run,
    };
    let run = JobRun {
        shared_key,
        ..JobRun::first(tenant, id.clone())
    };
    state.jobs.start(state.app.clone(), run, request, upload);
    let mut response = (StatusCode::ACCEPTED, Json(info)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/jobs/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// With a shared uploads store, copies job `id`'s `upload` there and
/// records where, before the push is answered: from then on any replica
/// can finish the job. Its key; none without a store.
async fn share(
    state: &AppState,
    app: &TenantApp<'_>,
    id: &str,
    dry_run: bool,
    upload: &Upload,
) -> Result<Option<String>, ApiError> {
    let Some(shared) = state.jobs.shared() else {
        return Ok(None);
    };
    let key = shared.key(app.tenant().name(), id);
    if let Err(e) = shared.put(&key, &upload.path()).await {
        tracing::warn!(tenant = %app.tenant().name(), job = id, error = %e, "cannot share an upload");
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "the server cannot store the upload where the other replicas find it: push again in a moment",
        )
        .with_retry_after(5));
    }
    let key = key.to_string();
    if let Err(e) = app.share_job_upload(id, &key, dry_run).await {
        shared.delete(&key).await;
        return Err(e.into());
    }
    Ok(Some(key))
}

/// The upload of a push whose job is recorded: a place in the tenant's
/// uploads, then the body; refused when a drain began meanwhile.
async fn receive_upload(
    state: &AppState,
    app: &TenantApp<'_>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Upload, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let claim = state
        .jobs
        .claim_upload(app.tenant().name(), app.quota(), declared)?;
    let max = app
        .quota()
        .max_upload_bytes
        .unwrap_or(state.options.max_upload_bytes);
    let upload = receive(state, body, max, claim).await?;
    // A drain that began during the upload starts no job for it.
    if state.jobs.is_stopping() {
        return Err(stopping());
    }
    Ok(upload)
}

/// A job recorded before its upload arrived: discarded unless it is kept
/// for a worker, whether the request fails or is dropped (the client hung
/// up, the drain ended), so it holds no place in the tenant's job quota.
struct Recorded {
    app: Arc<App>,
    tenant: Tenant,
    id: String,
    /// Discarded when dropped.
    armed: bool,
}

impl Recorded {
    fn new(app: Arc<App>, tenant: Tenant, id: String) -> Recorded {
        Recorded {
            app,
            tenant,
            id,
            armed: true,
        }
    }

    /// The job's id: its upload arrived and a worker will run it.
    fn keep(mut self) -> String {
        self.armed = false;
        std::mem::take(&mut self.id)
    }

    /// Discards the job now, before the failure is answered: a client
    /// that pushes again at once finds its place free. Armed until done,
    /// so a request dropped meanwhile (the client hung up) still discards
    /// it from a task.
    async fn discard(mut self) {
        discard(&self.app, &self.tenant, &self.id).await;
        self.armed = false;
    }
}

impl Drop for Recorded {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Dropped mid-request: no await here, so a task does it.
        let (app, tenant, id) = (
            self.app.clone(),
            self.tenant.clone(),
            std::mem::take(&mut self.id),
        );
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { discard(&app, &tenant, &id).await });
        }
    }
}

/// Discards `tenant`'s recorded job `id` that never started.
async fn discard(app: &App, tenant: &Tenant, id: &str) {
    if let Err(e) = app.tenant(tenant).discard_job(id).await {
        tracing::warn!(
            tenant = %tenant.name(),
            job = id,
            error = %e,
            "cannot discard the job of a failed upload: it holds a place in the tenant's job quota until the next start marks it interrupted"
        );
    }
}

/// Streams the body to a private file, refusing it once it passes `max` or
/// its tenant's bound on disk (`claim`); a stalled body is a 408, a full
/// disk a 507, and either way the file goes.
async fn receive(
    state: &AppState,
    body: Body,
    max: u64,
    claim: UploadClaim,
) -> Result<Upload, ApiError> {
    let dir = state.jobs.uploads_dir().to_path_buf();
    let disk = |e: std::io::Error| write_error(&dir, e);
    private_dir(&dir).map_err(disk)?;
    let temp = tempfile::NamedTempFile::with_prefix_in("upload-", &dir).map_err(disk)?;
    let (file, path) = temp.into_parts();
    let mut upload = Upload::new(path, state.jobs.clone()).claimed(claim);
    let mut file = tokio::fs::File::from_std(file);
    let mut received: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            if super::connections::is_body_timeout(&e) {
                ApiError::body_timeout(state.options.edge.body_timeout)
            } else {
                ApiError::bad_request(format!("the upload broke off: {e}"))
            }
        })?;
        received = received.saturating_add(chunk.len() as u64);
        if received > max {
            return Err(AppError::UploadTooLarge { max }.into());
        }
        if let Some(claim) = upload.claim.as_mut() {
            claim.grow(chunk.len() as u64)?;
        }
        file.write_all(&chunk).await.map_err(disk)?;
    }
    file.flush().await.map_err(disk)?;
    if received == 0 {
        return Err(ApiError::bad_request(
            "the body is empty: send a `docker save` tarball or an OCI archive",
        ));
    }
    Ok(upload)
}

/// With a shared uploads store: claims as many jobs whose owner stopped
/// renewing their lease as this server has free workers, fetches each
/// one's upload and runs it as the attempt it claimed.
pub(crate) async fn take_over_lost_jobs(state: &AppState) {
    let Some(shared) = state.jobs.shared().cloned() else {
        return;
    };
    let free = state
        .options
        .max_running_jobs
        .saturating_sub(state.jobs.running());
    let claimed = match state.app.claim_lost_jobs(free).await {
        Ok(claimed) => claimed,
        Err(e) => {
            tracing::warn!(error = %e, "cannot claim the push jobs of stopped replicas");
            return;
        }
    };
    for job in claimed {
        // Each fetch in a task of its own: a large upload never holds up
        // the lease renewals of this loop.
        let (state, shared) = (state.clone(), shared.clone());
        tokio::spawn(async move { take_over(&state, &shared, job).await });
    }
}

/// Fetches claimed `job`'s upload and runs the job as the attempt claimed;
/// one whose upload cannot be fetched fails, saying so.
async fn take_over(state: &AppState, shared: &SharedUploads, job: flavorbox_app::ClaimedJob) {
    let tenant = Tenant::verified(&job.tenant);
    tracing::warn!(tenant = %job.tenant, job = job.id, attempt = job.attempt, "taking over a push job whose replica stopped renewing its lease");
    let upload = match fetch_shared(state, shared, &job.upload_key).await {
        Ok(upload) => upload,
        Err(message) => {
            state
                .app
                .tenant(&tenant)
                .at_attempt(job.attempt)
                .fail_job(
                    &job.id,
                    JobError {
                        code: ErrorCode::Unavailable.as_str().to_string(),
                        message: format!(
                            "the replica that took this job over cannot fetch its upload ({message}): push again"
                        ),
                    },
                )
                .await;
            return;
        }
    };
    let run = JobRun {
        tenant,
        id: job.id,
        attempt: job.attempt,
        shared_key: Some(job.upload_key),
    };
    let request = PushRequest {
        image: job.image,
        component: job.component,
        dry_run: job.dry_run,
    };
    state.jobs.start(state.app.clone(), run, request, upload);
}

/// Fetches the shared upload `key` into a private file of the uploads
/// directory, held as a job's.
async fn fetch_shared(
    state: &AppState,
    shared: &SharedUploads,
    key: &str,
) -> Result<Upload, String> {
    let dir = state.jobs.uploads_dir().to_path_buf();
    private_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let temp = tempfile::NamedTempFile::with_prefix_in("upload-", &dir)
        .map_err(|e| format!("cannot create a file in {}: {e}", dir.display()))?;
    let upload = Upload::new(temp.into_temp_path(), state.jobs.clone());
    shared.get(key, &upload.path()).await?;
    Ok(upload)
}

/// Removes the shared uploads (older than the store's grace period) whose
/// job is no longer queued or running, or gone: what a replica killed
/// between the end of a job and the removal of its upload left.
pub(crate) async fn sweep_shared_uploads(state: &AppState) {
    let Some(shared) = state.jobs.shared() else {
        return;
    };
    let old = match shared.old_uploads().await {
        Ok(old) => old,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the shared uploads to sweep them");
            return;
        }
    };
    for (key, tenant, id) in old {
        match state.app.tenant(&Tenant::verified(&tenant)).job(&id).await {
            Ok(info) if info.status.is_active() => {}
            Ok(_) | Err(AppError::UnknownJob(_)) => {
                tracing::info!(key, "removing a shared upload whose job ended");
                shared.delete(&key).await;
            }
            Err(e) => {
                tracing::warn!(key, error = %e, "cannot tell whether a shared upload's job ended")
            }
        }
    }
}

/// Whether an I/O error means the disk (or the user's quota) is full.
pub(crate) fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
        || matches!(
            e.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        )
}

/// A failed write of an upload into `dir`: 507 when the disk is full.
fn write_error(dir: &FsPath, e: std::io::Error) -> ApiError {
    if is_disk_full(&e) {
        tracing::warn!(dir = %dir.display(), error = %e, "an upload does not fit on the disk");
        ApiError::new(
            ErrorCode::InsufficientStorage,
            format!(
                "the server's uploads directory `{}` is out of space: free space and retry",
                dir.display()
            ),
        )
    } else {
        ApiError::internal(format!("writing an upload to {}: {e}", dir.display()))
    }
}

#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "registries",
    params(("id" = String, Path, description = "Job id")),
    security(("tenant" = [])),
    responses(
        (status = 200, body = JobInfo),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
pub async fn get_job(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<JobInfo>, ApiError> {
    Ok(Json(state.app.tenant(&tenant).job(&id).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_or_quota_is_a_507_naming_the_uploads_directory() {
        let dir = FsPath::new("/srv/flavorbox/uploads");
        for e in [
            std::io::Error::from_raw_os_error(libc::ENOSPC),
            std::io::Error::from_raw_os_error(libc::EDQUOT),
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        ] {
            assert!(is_disk_full(&e), "{e}");
            let api = write_error(dir, e);
            assert_eq!(api.status(), StatusCode::INSUFFICIENT_STORAGE);
            assert_eq!(api.code(), "insufficient_storage");
            assert!(
                api.message().contains("/srv/flavorbox/uploads")
                    && api.message().contains("free space and retry"),
                "{}",
                api.message()
            );
        }
        let other = write_error(dir, std::io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn a_tenants_uploads_are_bounded_in_number_and_bytes_until_they_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = Arc::new(Jobs::new(1, dir.path()));
        let quota = TenantQuota {
            max_uploads_in_flight: Some(2),
            max_upload_disk_bytes: Some(100),
            ..TenantQuota::unlimited()
        };
        let code = |result: Result<UploadClaim, AppError>| match result {
            Ok(_) => "claimed",
            Err(e) => e.code().as_str(),
        };
        let mut first = jobs.claim_upload("t", &quota, None).expect("first");
        first.grow(60).expect("within the bound");
        assert_eq!(
            code(jobs.claim_upload("t", &quota, Some(50))),
            "quota_exceeded",
            "60 held and 50 declared pass 100"
        );
        assert_eq!(
            code(jobs.claim_upload("t", &quota, Some(101))),
            "too_large",
            "alone past the bound: it never fits"
        );
        let mut second = jobs.claim_upload("t", &quota, Some(30)).expect("fits");
        second.grow(30).expect("what it declared");
        second.grow(10).expect("exactly at the bound");
        let err = second.grow(1).expect_err("past the bound together");
        assert_eq!(err.code(), "quota_exceeded");
        assert!(err.retry_after_secs().is_some());
        let err = jobs
            .claim_upload("t", &quota, Some(0))
            .err()
            .expect("two in flight");
        assert!(err.to_string().contains("at most 2 uploads"), "{err}");
        assert_eq!(
            code(jobs.claim_upload("other", &quota, Some(100))),
            "claimed",
            "another tenant has its own share"
        );
        drop(first);
        let third = jobs
            .claim_upload("t", &quota, Some(60))
            .expect("room again");
        assert_eq!(
            lock(&jobs.held).get("t").copied(),
            Some(Held {
                uploads: 2,
                bytes: 100
            }),
            "a declared length counts before its bytes arrive"
        );
        drop((second, third));
        assert!(lock(&jobs.held).is_empty(), "everything given back");
    }

    /// An app in a fresh home, and the job pool beside it.
    async fn app_and_jobs(
        dir: &FsPath,
        workers: usize,
        share: usize,
        timeout: Duration,
    ) -> (Arc<App>, Arc<Jobs>) {
        let home = dir.join("home");
        let config = flavorbox_app::AppConfig::builder(home.clone())
            .build()
            .expect("config");
        let app = Arc::new(App::open(config).await.expect("app"));
        let jobs = Arc::new(Jobs::with_limits(workers, share, timeout, &home));
        private_dir(jobs.uploads_dir()).unwrap();
        (app, jobs)
    }

    /// An upload file named `name`, held as a job's.
    fn upload(jobs: &Arc<Jobs>, name: &str) -> (Upload, PathBuf) {
        let file = jobs.uploads_dir().join(name);
        std::fs::write(&file, b"tarball").unwrap();
        let upload = Upload::new(
            tempfile::TempPath::try_from_path(&file).unwrap(),
            jobs.clone(),
        );
        (upload, file)
    }

    #[tokio::test]
    async fn a_recorded_job_whose_upload_never_arrives_is_discarded_even_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (app, _jobs) = app_and_jobs(dir.path(), 1, 1, Duration::from_secs(60)).await;
        let tenant = Tenant::local();
        let tenant_app = app.tenant(&tenant);
        for id in ["failed", "dropped", "kept"] {
            tenant_app
                .create_job(id, "r", "127.0.0.1:5996/app:1")
                .await
                .expect("job");
        }
        Recorded::new(app.clone(), tenant.clone(), "failed".into())
            .discard()
            .await;
        assert!(tenant_app.job("failed").await.is_err(), "discarded at once");
        drop(Recorded::new(app.clone(), tenant.clone(), "dropped".into()));
        tokio::time::timeout(Duration::from_secs(10), async {
            while tenant_app.job("dropped").await.is_ok() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("a dropped request's job is discarded by a task");
        let id = Recorded::new(app.clone(), tenant.clone(), "kept".into()).keep();
        assert_eq!(id, "kept");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(tenant_app.job("kept").await.is_ok(), "a kept job stays");
    }

    #[test]
    fn durations_are_said_the_way_an_operator_writes_them() {
        for (secs, said) in [
            (1, "1 s"),
            (90, "90 s"),
            (900, "15 min"),
            (3600, "1 h"),
            (5400, "1 h 30 min"),
            (3661, "3661 s"),
        ] {
            assert_eq!(human(Duration::from_secs(secs)), said);
        }
    }

    #[tokio::test]
    async fn a_job_past_its_deadline_is_stopped_marked_failed_saying_so_and_frees_its_worker() {
        let dir = tempfile::tempdir().unwrap();
        let (app, jobs) = app_and_jobs(dir.path(), 1, 1, Duration::from_millis(300)).await;
        let tenant = Tenant::local();
        let id = flavorbox_app::new_job_id().unwrap();
        app.tenant(&tenant)
            .create_job(&id, "r", "127.0.0.1:5996/app:1")
            .await
            .expect("job");
        let (held, file) = upload(&jobs, "upload-hung");
        // A push that never ends, and tells when it is dropped.
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        struct Flag(Arc<std::sync::atomic::AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let flag = Flag(dropped.clone());
        let hung = async move {
            let _flag = flag;
            std::future::pending::<()>().await
        };
        jobs.launch(
            app.clone(),
            JobRun::first(tenant.clone(), id.clone()),
            held,
            hung,
        );
        assert!(
            jobs.wait_idle(Duration::from_secs(30)).await,
            "the job ends at its deadline"
        );
        assert!(dropped.load(Ordering::SeqCst), "the push was stopped");
        let info = app.tenant(&tenant).job(&id).await.unwrap();
        assert_eq!(info.status, flavorbox_app::JobStatus::Failed);
        let error = info.error.expect("an error");
        assert_eq!(error.code, ErrorCode::JobTimeout.as_str());
        assert!(
            error.message.contains("job deadline") && error.message.contains("job_timeout_secs"),
            "{}",
            error.message
        );
        assert!(!file.exists(), "its upload is removed");

        // The worker is free again: the next job runs to its end.
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (held, _) = upload(&jobs, "upload-next");
        let done = ran.clone();
        jobs.launch(
            app.clone(),
            JobRun::first(tenant, "next".into()),
            held,
            async move {
                done.store(true, Ordering::SeqCst);
            },
        );
        assert!(jobs.wait_idle(Duration::from_secs(30)).await);
        assert!(ran.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn another_tenants_job_starts_before_a_busy_tenants_queue() {
        let dir = tempfile::tempdir().unwrap();
        let (app, jobs) = app_and_jobs(dir.path(), 1, 1, Duration::from_secs(60)).await;
        let (started, mut order) = tokio::sync::mpsc::unbounded_channel();
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        for (n, tenant) in ["busy", "busy", "busy", "busy", "other"].iter().enumerate() {
            let (held, _) = upload(&jobs, &format!("upload-{n}"));
            let (started, gate) = (started.clone(), gate.clone());
            let push = async move {
                let _ = started.send(*tenant);
                // Each job runs until the test lets one end.
                let _ = gate.acquire().await.map(|p| p.forget());
            };
            jobs.launch(
                app.clone(),
                JobRun::first(Tenant::verified(*tenant), n.to_string()),
                held,
                push,
            );
            if n == 0 {
                assert_eq!(order.recv().await, Some("busy"), "the first runs at once");
            }
        }
        tokio::time::timeout(Duration::from_secs(10), async {
            while jobs.workers.waiting() < 4 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("four jobs queued");
        gate.add_permits(1);
        assert_eq!(
            order.recv().await,
            Some("other"),
            "one busy job ran before it, not four"
        );
        gate.add_permits(4);
        assert!(jobs.wait_idle(Duration::from_secs(30)).await);
    }

    #[tokio::test]
    async fn a_queued_job_is_marked_interrupted_at_shutdown_and_never_runs() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let config = flavorbox_app::AppConfig::builder(home.clone())
            .build()
            .expect("config");
        let app = Arc::new(App::open(config).await.expect("app"));
        let jobs = Arc::new(Jobs::new(1, &home));
        // The only worker is busy: the job waits in the queue.
        let busy = jobs.workers.take("another").await;
        let tenant = Tenant::local();
        let id = flavorbox_app::new_job_id().unwrap();
        app.tenant(&tenant)
            .create_job(&id, "r", "127.0.0.1:5996/app:1")
            .await
            .expect("job");
        private_dir(jobs.uploads_dir()).unwrap();
        let file = jobs.uploads_dir().join("upload-queued");
        std::fs::write(&file, b"tarball").unwrap();
        let upload = Upload::new(
            tempfile::TempPath::try_from_path(&file).unwrap(),
            jobs.clone(),
        );
        let request = PushRequest {
            image: "127.0.0.1:5996/app:1".into(),
            component: "r".into(),
            dry_run: false,
        };
        jobs.start(
            app.clone(),
            JobRun::first(tenant.clone(), id.clone()),
            request,
            upload,
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(jobs.running(), 1);
        jobs.stop();
        assert!(
            jobs.wait_idle(Duration::from_secs(5)).await,
            "the queued job ends at once"
        );
        drop(busy);
        let info = app.tenant(&tenant).job(&id).await.unwrap();
        assert_eq!(info.status, flavorbox_app::JobStatus::Interrupted);
        assert_eq!(info.error.map(|e| e.code), Some("interrupted".into()));
        assert!(!file.exists(), "its upload is removed");
    }
}
