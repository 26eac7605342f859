//! The state directory as a whole: its identity (so a start never silently
//! replaces a lost database with an empty one) and the sweep of what a
//! killed process left behind (temporary files, blobs and compiled code no
//! row keeps).

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::Store;
use super::backend::{Database, Kind, WriteLock};
use super::error::{StoreError, io_error};
use super::sqlite::DB_FILE;
use super::timestamp::now_rfc3339;

/// File name, in the home directory, of the copy of the database's identity.
pub(super) const MARKER_FILE: &str = "state-id";

/// A temporary file whose writer may still be alive is kept this long.
const TEMP_GRACE: Duration = Duration::from_secs(3600);

/// Most files one sweep removes: a sweep is bounded work at start.
const MAX_REMOVED: usize = 10_000;

/// What a sweep removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Temporary files of writes a killed process never finished.
    pub temp_files: u64,
    /// Blobs no flavor of any tenant uses.
    pub orphan_blobs: u64,
    /// Compiled code of components no flavor uses and no built-in is.
    pub orphan_code: u64,
    /// Bytes freed in all.
    pub bytes: u64,
}

impl SweepReport {
    /// Whether anything was removed.
    pub fn is_empty(&self) -> bool {
        self.temp_files + self.orphan_blobs + self.orphan_code == 0
    }
}

/// Refuses to create a database in a home that held one: its marker file
/// is there, or blobs are (a database deleted, or a home restored without
/// it). Called only when the database file does not exist.
pub(super) fn refuse_orphaned_state(home: &Path, blob_dir: &Path) -> Result<(), StoreError> {
    let db = home.join(DB_FILE);
    let mismatch = |reason: String| StoreError::StateMismatch {
        home: home.to_path_buf(),
        db: db.clone(),
        reason,
    };
    if home.join(MARKER_FILE).exists() {
        return Err(mismatch(format!(
            "`{MARKER_FILE}` says this directory had a database, and it is gone"
        )));
    }
    let blobs = fs::read_dir(blob_dir)
        .map_err(|e| io_error(blob_dir, e))?
        .flatten()
        .filter(|e| super::blob::validate_digest(&e.file_name().to_string_lossy()).is_ok())
        .count();
    if blobs > 0 {
        return Err(mismatch(format!(
            "{blobs} stored flavor blob(s) are here from a database that is gone"
        )));
    }
    Ok(())
}

/// Makes sure the database and the home agree on the state's identity: a
/// new database gets one (the row first, then the marker, so a kill in
/// between only leaves a marker to write again); a database with another
/// identity than the marker is refused.
pub(super) async fn check_identity(db: &Database, home: &Path) -> Result<(), StoreError> {
    let read = || async {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT id FROM state_identity WHERE singleton = 1")
                .fetch_optional(db.pool()?)
                .await?;
        Ok::<_, StoreError>(row.map(|(id,)| id))
    };
    // Read first: an open that finds its identity writes nothing.
    let id = match read().await? {
        Some(id) => id,
        None => {
            let mut random = [0u8; 16];
            getrandom::fill(&mut random)
                .map_err(|e| io_error(home, std::io::Error::other(e.to_string())))?;
            // Two processes opening a new home at once: the first insert
            // wins and both read its identity.
            sqlx::query(
                "INSERT INTO state_identity (singleton, id, created_at) VALUES (1, $1, $2) \
                 ON CONFLICT (singleton) DO NOTHING",
            )
            .bind(hex::encode(random))
            .bind(now_rfc3339())
            .execute(db.pool()?)
            .await?;
            read().await?.ok_or_else(|| StoreError::StateMismatch {
                home: home.to_path_buf(),
                db: home.join(DB_FILE),
                reason: "the database recorded no identity".into(),
            })?
        }
    };
    let marker = home.join(MARKER_FILE);
    match fs::read_to_string(&marker) {
        Ok(text) if text.trim() == id => Ok(()),
        Ok(text) if !text.trim().is_empty() => Err(StoreError::StateMismatch {
            home: home.to_path_buf(),
            db: home.join(DB_FILE),
            reason: format!(
                "the database's identity is {id}, but `{MARKER_FILE}` says {}: the database is not this directory's",
                text.trim().chars().take(64).collect::<String>()
            ),
        }),
        // Missing, or left empty by a kill while it was written.
        Ok(_) => write_marker(&marker, &id),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => write_marker(&marker, &id),
        Err(e) => Err(io_error(&marker, e)),
    }
}

/// Writes the marker atomically, owner-only.
fn write_marker(path: &Path, id: &str) -> Result<(), StoreError> {
    synced_temp_beside(path, format!("{id}\n").as_bytes())?
        .persist(path)
        .map_err(|e| io_error(path, e.error))?;
    Ok(())
}

/// `bytes` in an owner-only temporary file next to `path`, synced, named so
/// that a sweep knows a dead writer's leftover: ready to be moved into place.
pub(super) fn synced_temp_beside(
    path: &Path,
    bytes: &[u8],
) -> Result<tempfile::NamedTempFile, StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(&temp_prefix())
        .tempfile_in(dir)
        .map_err(|e| io_error(dir, e))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(|e| io_error(tmp.path(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| io_error(tmp.path(), e))?;
    Ok(tmp)
}

/// The prefix of every temporary file the store and the sandbox write:
/// `.tmp-<pid>-`, so a sweep can tell a dead writer's file from a live one.
pub fn temp_prefix() -> String {
    format!(".tmp-{}-", std::process::id())
}

/// Whether `name` is a temporary file that no live process is writing: its
/// writer (named in it) is gone, or it is older than the grace period.
fn is_dead_temp(name: &str, path: &Path) -> bool {
    let Some(rest) = name.strip_prefix(".tmp") else {
        return false;
    };
    let writer = rest
        .strip_prefix('-')
        .and_then(|r| r.split('-').next())
        .and_then(|pid| pid.parse::<i32>().ok());
    let writer_gone = match writer {
        // SAFETY: kill with signal 0 only checks that the process exists.
        Some(pid) if pid > 0 => {
            let alive = unsafe { libc::kill(pid, 0) } == 0;
            !alive && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
        }
        _ => false,
    };
    writer_gone || age(path).is_some_and(|age| age > TEMP_GRACE)
}

fn age(path: &Path) -> Option<Duration> {
    let modified = fs::symlink_metadata(path).ok()?.modified().ok()?;
    SystemTime::now().duration_since(modified).ok()
}

/// Files of `dir` with their names; a missing directory has none.
fn entries(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(read) = fs::read_dir(dir) else {
        return Vec::new();
    };
    read.flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect()
}

/// Removes `path`, counting it in `report`; best effort (a file another
/// sweep removed first is fine).
fn remove(path: &Path, report: &mut SweepReport, count: impl FnOnce(&mut SweepReport)) {
    let size = fs::symlink_metadata(path).map(|m| m.len()).unwrap_or(0);
    if fs::remove_file(path).is_ok() {
        report.bytes += size;
        count(report);
    }
}

impl Store {
    /// Removes what killed processes left behind: temporary files of
    /// unfinished writes (blobs, compiled code, the key, the marker), blobs
    /// no flavor uses, and compiled code of components that are neither a
    /// stored flavor nor in `keep_code` (the built-ins' digests, asked for
    /// only when some code is not a stored flavor's). Bounded; blobs are
    /// removed under the write lock that registrations hold.
    pub async fn sweep(
        &self,
        keep_code: impl FnOnce() -> HashSet<String>,
    ) -> Result<SweepReport, StoreError> {
        let mut report = SweepReport::default();
        let blob_dir = self.blob_dir.clone();
        if self.db.kind() == Kind::Postgres {
            // Blobs are rows: those no flavor uses go in one statement,
            // which fails (and keeps them) if a flavor takes one up meanwhile.
            report.orphan_blobs +=
                super::accounts::collect_from_database(self.db.pool()?, None).await?;
        }
        let referenced = self.referenced_blobs(None).await?;
        let blob_files = entries(&blob_dir);
        let blob_litter = blob_files.iter().any(|(name, _)| {
            name.starts_with(".tmp")
                || (super::blob::validate_digest(name).is_ok() && !referenced.contains(name))
        });
        if blob_litter {
            // Under the write lock no registration is between its put and its
            // insert, so every temporary blob file is a dead writer's.
            let mut tx = self.db.begin_write(WriteLock::None).await?;
            let referenced = self.referenced_blobs(Some(&mut *tx)).await?;
            for (name, path) in entries(&blob_dir).into_iter().take(MAX_REMOVED) {
                if name.starts_with(".tmp") {
                    remove(&path, &mut report, |r| r.temp_files += 1);
                } else if super::blob::validate_digest(&name).is_ok() && !referenced.contains(&name)
                {
                    remove(&path, &mut report, |r| r.orphan_blobs += 1);
                }
            }
            tx.commit().await?;
        }
        let mut keep: Option<HashSet<String>> = None;
        let mut keep_code = Some(keep_code);
        for (name, path) in entries(&self.code_cache_dir).into_iter().take(MAX_REMOVED) {
            if name.starts_with(".tmp") {
                if is_dead_temp(&name, &path) {
                    remove(&path, &mut report, |r| r.temp_files += 1);
                }
                continue;
            }
            let Some(digest) = name.split('-').next() else {
                continue;
            };
            if super::blob::validate_digest(digest).is_err() || referenced.contains(digest) {
                continue;
            }
            let keep =
                keep.get_or_insert_with(|| keep_code.take().map(|f| f()).unwrap_or_default());
            if !keep.contains(digest) {
                remove(&path, &mut report, |r| r.orphan_code += 1);
            }
        }
        for (name, path) in entries(&self.home) {
            if is_dead_temp(&name, &path) {
                remove(&path, &mut report, |r| r.temp_files += 1);
            }
        }
        Ok(report)
    }
}
