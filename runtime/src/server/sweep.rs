//! What pushes leave behind when the process dies, and the periodic sweep.
//!
//! An upload is streamed to `home/uploads/upload-*`, rewritten to
//! `load-upload-*-*` and loaded into the engine under the job's private tag
//! (`flavorbox-job/<job>:loaded`); a job removes all three when it ends, but
//! a kill does not let it. So:
//!
//! - at start, once unfinished jobs are marked `interrupted`, every file in
//!   `home/uploads/` goes, and so does the private tag of every job with an
//!   engine mark (`home/engine-jobs/<job>`, written before a push, removed
//!   after its clean-up), if an engine answers within a few seconds. Only
//!   marked jobs: the engine may be shared with other servers whose jobs
//!   are running, and their tags are not this server's to remove;
//! - every `sweep_interval`, upload files that no live request or job holds
//!   and that are older than a minute go, and so do the state's own
//!   leftovers ([`crate::app::App::sweep`]).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::AppState;
use super::jobs::Jobs;

/// An upload file younger than this is never swept by the periodic sweep:
/// its request may not have registered it yet.
const UPLOAD_GRACE: Duration = Duration::from_secs(60);

/// What a sweep of a directory removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Removed {
    /// Files removed.
    pub(crate) files: u64,
    /// Their bytes.
    pub(crate) bytes: u64,
}

/// Removes the files of `dir` that `keep` does not hold and that were last
/// modified more than `grace` ago (every file, with no grace). A missing
/// directory has nothing to remove.
pub(crate) fn sweep_dir(dir: &Path, grace: Duration, keep: impl Fn(&OsStr) -> bool) -> Removed {
    let mut removed = Removed::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return removed;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if !meta.is_file() || keep(&entry.file_name()) {
            continue;
        }
        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        if !grace.is_zero() && age <= grace {
            continue;
        }
        if std::fs::remove_file(entry.path()).is_ok() {
            removed.files += 1;
            removed.bytes += meta.len();
        }
    }
    removed
}

/// At start (no job runs yet): every upload file goes, and the engine tags
/// of jobs a kill interrupted, if an engine answers within `engine_wait`.
pub(crate) async fn at_start(jobs: &Jobs, engine_wait: Duration) {
    let dir = jobs.uploads_dir().to_path_buf();
    let removed = tokio::task::spawn_blocking(move || sweep_dir(&dir, Duration::ZERO, |_| false))
        .await
        .unwrap_or_default();
    if removed.files > 0 {
        tracing::info!(
            files = removed.files,
            bytes = removed.bytes,
            dir = %jobs.uploads_dir().display(),
            "removed the uploads of interrupted pushes"
        );
    }
    engine_tags(jobs.engine_marks_dir(), engine_wait).await;
}

/// The job ids with an engine mark in `dir`.
fn marked_jobs(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            // The shape of a job id, so a stray file never names an image.
            crate::push::is_job_id(&name).then(|| (name, entry.path()))
        })
        .collect()
}

/// Removes the private engine tag of every job marked in `marks` (called
/// only when no job of this server runs: at start, and after the drain
/// aborted what was left). Waits at most `wait` for the engine and for each
/// removal; a mark stays when its tag could not be removed.
pub(crate) async fn engine_tags(marks: &Path, wait: Duration) {
    use bollard::query_parameters::RemoveImageOptions;
    let marked = marked_jobs(marks);
    if marked.is_empty() {
        return;
    }
    let docker = match tokio::time::timeout(wait, crate::push::connect()).await {
        Ok(Ok(docker)) => docker,
        Ok(Err(e)) => {
            tracing::info!(jobs = marked.len(), error = %e, "no Docker engine answers: the image tags of interrupted push jobs are removed at a later start");
            return;
        }
        Err(_) => {
            tracing::info!(
                jobs = marked.len(),
                timeout = ?wait,
                "the Docker engine did not answer in time: the image tags of interrupted push jobs are removed at a later start"
            );
            return;
        }
    };
    let (mut removed, mut absent) = (0usize, 0usize);
    for (job, mark) in marked {
        let tag = crate::push::job_tag(&job);
        let options = RemoveImageOptions {
            force: false,
            noprune: false,
        };
        match tokio::time::timeout(wait, docker.remove_image(&tag, Some(options), None)).await {
            Ok(Ok(_)) => removed += 1,
            Ok(Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            })) => absent += 1,
            Ok(Err(e)) => {
                tracing::warn!(image = %tag, error = %e, "cannot remove the image tag of an interrupted push job");
                continue;
            }
            Err(_) => {
                tracing::warn!(image = %tag, "the Docker engine did not answer in time; the rest waits for a later start");
                break;
            }
        }
        let _ = std::fs::remove_file(mark);
    }
    if removed > 0 {
        tracing::info!(
            tags = removed,
            already_gone = absent,
            "removed the image tags of interrupted push jobs"
        );
    }
}

/// Every `state.options.sweep_interval` until shutdown: dead uploads, and
/// the state's leftovers.
pub(crate) fn spawn_periodic(state: AppState) {
    let interval = state.options.sweep_interval;
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if state.jobs.is_stopping() {
                return;
            }
            let jobs: Arc<Jobs> = state.jobs.clone();
            let removed = tokio::task::spawn_blocking(move || {
                sweep_dir(jobs.uploads_dir(), UPLOAD_GRACE, |name| jobs.is_live(name))
            })
            .await
            .unwrap_or_default();
            if removed.files > 0 {
                tracing::info!(
                    files = removed.files,
                    bytes = removed.bytes,
                    "removed uploads no request or job holds"
                );
            }
            if let Err(e) = state.app.sweep().await {
                tracing::warn!(error = %e, "sweeping the state's leftovers failed");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age(path: &Path, by: Duration) {
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - by).unwrap();
    }

    #[test]
    fn the_periodic_sweep_keeps_live_and_young_uploads_and_removes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = Arc::new(Jobs::new(1, dir.path()));
        let uploads = jobs.uploads_dir().to_path_buf();
        std::fs::create_dir_all(&uploads).unwrap();
        for name in [
            "upload-live",
            "load-upload-live-abc123",
            "upload-dead",
            "load-upload-dead-abc123",
            "upload-young",
            "load-upload-liver-x",
        ] {
            std::fs::write(uploads.join(name), b"12345").unwrap();
            if name != "upload-young" {
                age(&uploads.join(name), Duration::from_secs(3600));
            }
        }
        let held = super::super::jobs::Upload::new(
            tempfile::TempPath::try_from_path(uploads.join("upload-live")).unwrap(),
            jobs.clone(),
        );
        let removed = sweep_dir(&uploads, UPLOAD_GRACE, |name| jobs.is_live(name));
        assert_eq!(
            removed,
            Removed {
                files: 3,
                bytes: 15
            }
        );
        let mut left: Vec<String> = std::fs::read_dir(&uploads)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["load-upload-live-abc123", "upload-live", "upload-young"],
            "a live upload and its rewrite stay, and so does a young file"
        );
        drop(held);
        let removed = sweep_dir(&uploads, Duration::ZERO, |name| jobs.is_live(name));
        assert_eq!(
            removed.files, 2,
            "at start everything goes (the held file went with its holder)"
        );
    }

    #[test]
    fn engine_marks_name_only_job_ids() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "0123456789abcdef0123456789abcdef",
            "short",
            "UPPERCASE1",
            "has space1",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let marked: Vec<String> = marked_jobs(dir.path())
            .into_iter()
            .map(|(j, _)| j)
            .collect();
        assert_eq!(marked, ["0123456789abcdef0123456789abcdef"]);
    }
}
