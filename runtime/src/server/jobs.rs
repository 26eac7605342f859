//! `POST /v1/registries/{name}/push` and `GET /v1/jobs/{id}`: the upload is
//! streamed to a private file (size-capped as it arrives), recorded as a
//! job, and pushed in the background by a bounded number of workers. The
//! job loads the tarball under a name private to it, pushes, and removes
//! what it loaded; its status lives in the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::{Notify, Semaphore};
use utoipa::IntoParams;

use super::AppState;
use super::auth::Authenticated;
use super::error::{ApiError, ErrorBody};
use crate::app::{AppError, JobInfo, PushRequest};

/// The background workers.
pub(crate) struct Jobs {
    workers: Arc<Semaphore>,
    running: AtomicUsize,
    idle: Notify,
}

impl Jobs {
    pub(crate) fn new(workers: usize) -> Jobs {
        Jobs {
            workers: Arc::new(Semaphore::new(workers.max(1))),
            running: AtomicUsize::new(0),
            idle: Notify::new(),
        }
    }

    /// Jobs accepted and not finished.
    pub(crate) fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
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
}

/// Query of a push.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PushQuery {
    /// The image reference to push, under the registry's uri (e.g. `registry.example.com/team/app:1`).
    pub image: String,
}

#[utoipa::path(post, path = "/v1/registries/{name}/push", tag = "registries",
    params(("name" = String, Path, description = "Registry component name"), PushQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "A `docker save` tarball of exactly one image, streamed and size-capped"),
    security(("tenant" = [])),
    responses(
        (status = 202, description = "Accepted; poll the job", body = JobInfo),
        (status = 400, description = "Bad reference or query", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn push(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(name): Path<String>,
    query: Result<Query<PushQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::bad_request(format!("{e}; pass the image as `?image=REGISTRY/REPO:TAG`"))
    })?;
    let app = state.app.tenant(&tenant);
    // Cheap refusals before the upload: the reference parses, the
    // component exists, the job quota has room.
    crate::app::parse_image(&query.image)?;
    app.describe_component(&name).await?;
    if let Some(max) = app.quota().max_jobs
        && state
            .app
            .store()
            .tenant(tenant.name())
            .active_jobs()
            .await
            .map_err(AppError::from)?
            >= max
    {
        return Err(AppError::Quota {
            what: format!("at most {max} push jobs may be queued or running at once"),
            retry_after_secs: 5,
        }
        .into());
    }
    let max = app
        .quota()
        .max_upload_bytes
        .unwrap_or(state.options.max_upload_bytes);
    let upload = receive(&state, body, max).await?;
    let id = crate::app::new_job_id()?;
    let info = app.create_job(&id, &name, &query.image).await?;
    let request = PushRequest {
        image: query.image,
        component: name,
        dry_run: false,
    };
    state.jobs.running.fetch_add(1, Ordering::AcqRel);
    let worker_state = state.clone();
    let job = id.clone();
    tokio::spawn(async move {
        let jobs = worker_state.jobs.clone();
        if let Ok(_worker) = jobs.workers.clone().acquire_owned().await {
            let path = upload.to_path_buf();
            worker_state
                .app
                .tenant(&tenant)
                .run_job(&job, request, path)
                .await;
        }
        drop(upload);
        if jobs.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            jobs.idle.notify_waiters();
        }
    });
    let mut response = (StatusCode::ACCEPTED, Json(info)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/jobs/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Streams the body to a private file, refusing it once it passes `max`.
async fn receive(state: &AppState, body: Body, max: u64) -> Result<tempfile::TempPath, ApiError> {
    let dir = state.app.config().home().join("uploads");
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&dir).map_err(ApiError::internal)?;
    let temp =
        tempfile::NamedTempFile::with_prefix_in("upload-", &dir).map_err(ApiError::internal)?;
    let (file, path) = temp.into_parts();
    let mut file = tokio::fs::File::from_std(file);
    let mut received: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("the upload broke off: {e}")))?;
        received = received.saturating_add(chunk.len() as u64);
        if received > max {
            return Err(AppError::UploadTooLarge { max }.into());
        }
        file.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    file.flush().await.map_err(ApiError::internal)?;
    if received == 0 {
        return Err(ApiError::bad_request(
            "the body is empty: send a `docker save` tarball",
        ));
    }
    Ok(path)
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
