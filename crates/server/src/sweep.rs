//! What pushes leave behind when the process dies, and the periodic sweep.
//!
//! An upload is streamed to `home/uploads/upload-*` and pushed from there
//! straight to the registry; a job removes it when it ends, but a kill does
//! not let it. So:
//!
//! - at start, once unfinished jobs are marked `interrupted`, every file in
//!   `home/uploads/` goes (and the `home/engine-jobs/` records an older
//!   server kept of the Docker engine it pushed through: this one has none);
//! - every `sweep_interval`, upload files that no live request or job holds
//!   and that are older than a minute go, and so do the state's own
//!   leftovers ([`flavorbox_app::App::sweep`]).

use std::ffi::OsStr;
use std::path::Path;
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

/// Directory of `home` where an older server recorded the jobs whose
/// private image tags it had loaded into a Docker engine.
const LEGACY_ENGINE_MARKS: &str = "engine-jobs";

/// At start (no job runs yet): every upload file goes.
pub(crate) async fn at_start(jobs: &Jobs) {
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
    if let Some(home) = jobs.uploads_dir().parent() {
        let legacy = home.join(LEGACY_ENGINE_MARKS);
        if legacy.is_dir() {
            tracing::info!(dir = %legacy.display(), "an older server pushed through a Docker engine and may have left `flavorbox-job/*` image tags there; this one uses no engine: remove them with `docker image rm` if that engine still runs");
            let _ = std::fs::remove_dir_all(&legacy);
        }
    }
}

/// Every `state.options.sweep_interval` until shutdown: dead uploads, the
/// state's leftovers and audit rows past their retention; every second, the
/// audit trail's batch of allowed checks.
pub(crate) fn spawn_periodic(state: AppState) {
    let audit_state = state.clone();
    let lease_state = state.clone();
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
            super::jobs::sweep_shared_uploads(&state).await;
            if let Err(e) = state.app.sweep().await {
                tracing::warn!(error = %e, "sweeping the state's leftovers failed");
            }
            match state.app.prune_audit(state.options.audit_retention).await {
                Ok(0) => {}
                Ok(rows) => tracing::info!(rows, "removed audit rows past their retention"),
                Err(e) => tracing::warn!(error = %e, "pruning the audit trail failed"),
            }
        }
    });
    // Job leases: this replica's renewed, every replica's that ran out
    // taken over (their upload is shared) or marked interrupted (a dead or
    // paused replica's jobs end, visibly).
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(lease_state.app.config().job_lease() / 3);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let can_take_over = lease_state.jobs.shared().is_some();
            match lease_state.app.tend_jobs(can_take_over).await {
                Ok(0) => {}
                Ok(jobs) => tracing::warn!(
                    jobs,
                    "marked push jobs interrupted whose server stopped renewing their lease"
                ),
                Err(e) => tracing::warn!(error = %e, "renewing push job leases failed"),
            }
            if lease_state.jobs.is_stopping() {
                return;
            }
            super::jobs::take_over_lost_jobs(&lease_state).await;
        }
    });
    // The allowed checks batched in memory are written at least this often,
    // and (on a shared database) CPU usage is exchanged with the other
    // replicas as often.
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(flavorbox_app::audit::BATCH_AGE);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(e) = audit_state.app.flush_audit().await {
                tracing::warn!(error = %e, "writing the audit trail's batch failed");
            }
            if let Err(e) = audit_state.app.exchange_cpu_usage().await {
                tracing::warn!(error = %e, "exchanging CPU usage with the other replicas failed");
            }
            if audit_state.jobs.is_stopping() {
                return;
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
            "upload-dead",
            "upload-dead-2",
            "upload-young",
            "upload-liver",
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
            ["upload-live", "upload-young"],
            "a live upload stays, and so does a young file"
        );
        drop(held);
        let removed = sweep_dir(&uploads, Duration::ZERO, |name| jobs.is_live(name));
        assert_eq!(
            removed.files, 1,
            "at start everything goes (the held file went with its holder)"
        );
    }
}
