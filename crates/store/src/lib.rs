//! Persistent state: registered flavors, registry components and secrets in
//! a SQL database, `.wasm` components in a content-addressed blob store,
//! and the place the sandbox keeps precompiled code.
//!
//! All SQL of the host lives here, behind a narrow API, written once over
//! two databases chosen at run time: an embedded SQLite file (the CLI, a
//! single server) and a PostgreSQL server that several replicas share
//! ([`Store::open_shared`]). Queries use `$n` placeholders, portable types
//! and no database-only functions; what differs is in `backend`. Every row
//! belongs to a tenant, and every query a [`TenantStore`] runs is filtered by
//! its tenant, so one tenant can never read or change another's rows. The
//! store knows nothing of wasm, pushes or the CLI.
//!
//! One file per concern: `records` (the rows callers see), `error`
//! ([`StoreError`]), `tenant` (the queries), `timestamp` (the text they
//! write for times), `backend` (what differs between the databases: write
//! transactions and their locks, the clock), `sqlite` and `postgres` (how
//! each is opened and migrated) and `blob` (the
//! [`BlobStore`] trait and its directory implementation), `accounts` (the
//! server's tenants and blob references across tenants), `jobs` (push jobs)
//! and `audit` (the audit trail).

mod accounts;
mod audit;
mod backend;
mod blob;
mod cache;
mod cpu;
mod egress_paths;
mod error;
mod jobs;
mod postgres;
mod records;
mod sqlite;
mod state;
mod tenant;
/// The store's suite, on SQLite.
#[cfg(test)]
mod tests;
/// The same suite, compiled again, on a PostgreSQL server of its own
/// (`tests.rs` asks its module path which copy it is).
#[cfg(test)]
#[path = "tests.rs"]
#[allow(clippy::duplicate_mod)]
mod tests_postgres;
mod timestamp;
mod turn;

use std::fs::DirBuilder;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use accounts::SealedSecret;
pub use audit::{AuditEntry, AuditFilter, AuditRecord};
pub use backend::Kind as DatabaseKind;
pub use blob::BlobStore;
pub use cache::TTL as CACHE_TTL;
pub use error::StoreError;
pub use jobs::{JOB_HISTORY, JOB_LEASE, JOB_LEASE_RENEW, JobHistory, MAX_JOB_ATTEMPTS};
pub use postgres::{is_postgres_url, redact as redact_database_url};
pub use records::{
    ClaimedJob, ComponentRecord, FlavorOrigin, FlavorRecord, JobRecord, JobStatus, RowQuota,
    SecretRecord, SecretSummary,
};
/// The database driver's error, inside [`StoreError::Database`].
pub use sqlx::Error as SqlxError;
pub use state::{SweepReport, temp_prefix};
pub use tenant::TenantStore;
pub use timestamp::format_rfc3339;
pub use turn::PushTurn;

use blob::BlobDir;
use error::io_error;

/// The database, the blobs and the code cache under one home directory.
#[derive(Debug, Clone)]
pub struct Store {
    db: backend::Database,
    blobs: Arc<dyn BlobStore>,
    home: PathBuf,
    blob_dir: PathBuf,
    code_cache_dir: PathBuf,
    code_cache_key: [u8; 32],
    read_only: bool,
}

/// File name, in the home directory, of the key that authenticates the code cache.
const CODE_CACHE_KEY_FILE: &str = "code-cache.key";

impl Store {
    /// Opens (creating if needed) the state under `home`: `home/flavorbox.db`,
    /// `home/blobs/` and `home/cache/code/`.
    ///
    /// A newly created `home` gets mode 0700 and the database 0600 (its
    /// `-wal` and `-shm` files inherit that mode from SQLite), the code cache
    /// 0700 even if it existed; migrations run before this returns.
    ///
    /// A home this user cannot write to (a read-only file system, a
    /// backup) is opened read-only instead, changing nothing in it: it can
    /// be listed and described, and every write fails with
    /// [`StoreError::ReadOnly`]. A home whose database is gone but whose
    /// marker or blobs remain is refused ([`StoreError::StateMismatch`])
    /// rather than silently started empty. A damaged code-cache key is
    /// replaced, and the code it guarded dropped.
    pub async fn open(home: &Path) -> Result<Store, StoreError> {
        if home.is_dir() && !writable(home) {
            return Store::open_read_only(home).await;
        }
        create_private_dir(home)?;
        check_private_dir(home)?;
        let blob_dir = home.join("blobs").join("sha256");
        create_private_dir(&blob_dir)?;
        let code_cache_dir = home.join("cache").join("code");
        create_private_dir(&code_cache_dir)?;
        for dir in [home.join("blobs"), blob_dir.clone(), home.join("cache")] {
            check_private_dir(&dir)?;
        }
        // The sandbox loads these files as native code, trusting them
        // because no one else can write here: tighten a directory an older
        // flavorbox created with the default mode.
        set_private_dir(&code_cache_dir)?;
        let code_cache_key = host_key(&home.join(CODE_CACHE_KEY_FILE), &code_cache_dir)?;
        if !home.join(sqlite::DB_FILE).exists() {
            state::refuse_orphaned_state(home, &blob_dir)?;
        }
        let db = sqlite::open(home).await?;
        Store::writable(db, home, code_cache_dir, code_cache_key).await
    }

    /// A writable store on `db` whose identity agrees with `home`'s marker.
    async fn writable(
        db: backend::Database,
        home: &Path,
        code_cache_dir: PathBuf,
        code_cache_key: [u8; 32],
    ) -> Result<Store, StoreError> {
        state::check_identity(&db, home).await?;
        let blob_dir = home.join("blobs").join("sha256");
        Ok(Store {
            db,
            blobs: Arc::new(BlobDir::new(blob_dir.clone())),
            home: home.to_path_buf(),
            blob_dir,
            code_cache_dir,
            code_cache_key,
            read_only: false,
        })
    }

    /// Opens the PostgreSQL database at `url`, shared with other replicas,
    /// with this replica's own code cache (and its key) under `home`.
    ///
    /// Pending migrations run first (once, under PostgreSQL's migration
    /// lock, whichever replica gets there first) unless `migrate` is false:
    /// then a schema behind this build is refused
    /// ([`StoreError::SchemaBehind`]) and the operator runs
    /// [`Store::migrate`] as a step of its own. Blobs live in the database.
    /// The home's identity marker names the database it serves, so a home
    /// moved to another database is refused as a SQLite home would be.
    pub async fn open_shared(home: &Path, url: &str, migrate: bool) -> Result<Store, StoreError> {
        create_private_dir(home)?;
        check_private_dir(home)?;
        let code_cache_dir = home.join("cache").join("code");
        create_private_dir(&code_cache_dir)?;
        check_private_dir(&home.join("cache"))?;
        set_private_dir(&code_cache_dir)?;
        let code_cache_key = host_key(&home.join(CODE_CACHE_KEY_FILE), &code_cache_dir)?;
        let db = postgres::open(url, migrate).await?;
        Store::writable(db, home, code_cache_dir, code_cache_key).await
    }

    /// Brings the database at `url` (PostgreSQL) up to this build's schema
    /// and returns the versions it applied; nothing else is opened. For
    /// operators who migrate as a step of its own before upgrading replicas.
    pub async fn migrate(url: &str) -> Result<Vec<i64>, StoreError> {
        let pool = postgres::connect(url).await?;
        let before = postgres::applied(&pool).await;
        let result = postgres::MIGRATOR.run(&pool).await;
        pool.close().await;
        result?;
        Ok(postgres::MIGRATOR
            .iter()
            .map(|m| m.version)
            .filter(|v| *v > before)
            .collect())
    }

    /// Which database this store runs on.
    pub fn database_kind(&self) -> DatabaseKind {
        self.db.kind()
    }

    /// One round trip to the database (and, for SQLite, a check that the
    /// file is still the one opened): for readiness probes of a server
    /// whose database is a server of its own.
    pub async fn ping_database(&self) -> Result<(), StoreError> {
        self.db.ping().await
    }

    /// The `.wasm` content stored under `sha256`, checked against it.
    pub async fn blob(&self, sha256: &str) -> Result<Vec<u8>, StoreError> {
        match self.db.kind() {
            DatabaseKind::Sqlite => self.blobs.get(sha256),
            DatabaseKind::Postgres => blob::get_from_database(&self.db, sha256).await,
        }
    }

    /// Opens a home this user cannot write to, changing nothing in it.
    async fn open_read_only(home: &Path) -> Result<Store, StoreError> {
        check_private_dir(home)?;
        if !home.join(sqlite::DB_FILE).exists() {
            return Err(StoreError::ReadOnly {
                path: Some(home.to_path_buf()),
            });
        }
        let db = sqlite::open_read_only(home).await?;
        let blob_dir = home.join("blobs").join("sha256");
        // Code compiled here is not cached (nothing can be written): an
        // existing cache is used only under its own intact key.
        let code_cache_key = match std::fs::read(home.join(CODE_CACHE_KEY_FILE)) {
            Ok(bytes) if bytes.len() == 32 => <[u8; 32]>::try_from(bytes.as_slice())
                .map_err(|_| StoreError::ReadOnly { path: None })?,
            _ => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key)
                    .map_err(|e| io_error(home, std::io::Error::other(e.to_string())))?;
                key
            }
        };
        Ok(Store {
            db,
            blobs: Arc::new(BlobDir::new(blob_dir.clone())),
            home: home.to_path_buf(),
            blob_dir,
            code_cache_dir: home.join("cache").join("code"),
            code_cache_key,
            read_only: true,
        })
    }

    /// Whether the state was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Whether the database file is still the one opened: an error
    /// ([`StoreError::DatabaseGone`]) once it was removed or replaced. A
    /// `stat`, cheap enough for every readiness probe.
    pub fn check_database(&self) -> Result<(), StoreError> {
        self.db.check()
    }

    /// A handle that reads and writes only `tenant`'s rows.
    pub fn tenant(&self, tenant: &str) -> TenantStore {
        TenantStore::new(self.db.clone(), tenant, self.blobs.clone())
    }

    /// The blob directory of a SQLite store (`.wasm` components, shared by
    /// every tenant); for tests and tools that look at the files. Callers
    /// read blobs with [`Store::blob`], which serves either database.
    pub fn blobs(&self) -> &dyn BlobStore {
        &*self.blobs
    }

    /// The directory for the sandbox's precompiled code, `home/cache/code`, owner-only.
    ///
    /// The store owns where it is and who may write it; the sandbox owns
    /// what is in it (one file per component digest and engine
    /// configuration, checked on load and recompiled on a mismatch). It is
    /// derived, machine-specific data: it may be emptied at any time, and it
    /// is not in the blob store because it is not shared between hosts.
    pub fn code_cache_dir(&self) -> &Path {
        &self.code_cache_dir
    }

    /// The key that authenticates what the code cache holds: 32 random bytes
    /// made on first open, in an owner-only file only this user can read.
    pub fn code_cache_key(&self) -> [u8; 32] {
        self.code_cache_key
    }

    /// Closes every database connection, checkpointing the write-ahead log.
    pub async fn close(&self) {
        self.db.close().await;
    }
}

/// Creates `dir` and missing parents with mode 0700; an existing directory is left as it is.
fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| io_error(dir, e))
}

/// Reads the 32-byte key at `path`, or makes one: written owner-only to a
/// temporary file and moved into place without replacing a key another
/// process made meanwhile (then that one is used).
///
/// A key file of the wrong length (truncated by a full disk or a kill) is
/// replaced, and the compiled code in `code_dir` it guarded is dropped: it
/// would never verify under the new key, and is never trusted without it.
fn host_key(path: &Path, code_dir: &Path) -> Result<[u8; 32], StoreError> {
    let read = |path: &Path| -> Result<Option<Vec<u8>>, StoreError> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(path, e)),
        }
    };
    if let Some(bytes) = read(path)? {
        if let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice()) {
            return Ok(key);
        }
        tracing::warn!(
            path = %path.display(),
            len = bytes.len(),
            "the code-cache key is damaged: replacing it and dropping the compiled code it guarded"
        );
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(path, e)),
        }
        if let Ok(entries) = std::fs::read_dir(code_dir) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| io_error(path, std::io::Error::other(e.to_string())))?;
    match state::synced_temp_beside(path, &key)?.persist_noclobber(path) {
        Ok(_) => Ok(key),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => read(path)?
            .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
            .ok_or_else(|| io_error(path, std::io::Error::other(
                "another process wrote a key file that is not 32 bytes; run the command again",
            ))),
        Err(e) => Err(io_error(path, e.error)),
    }
}

/// Whether this user may create files in `dir` (false on a read-only file
/// system, even for root).
fn writable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `path` is a valid NUL-terminated string for the call.
    unsafe { libc::access(path.as_ptr(), libc::W_OK) == 0 }
}

/// Refuses a state directory that another user owns or that group or
/// others may write to: what the host reads from it (blobs, compiled code,
/// the database) must be what the host wrote.
fn check_private_dir(dir: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::symlink_metadata(dir).map_err(|e| io_error(dir, e))?;
        let unsafe_dir = |reason: String| StoreError::UnsafeDir {
            path: dir.to_path_buf(),
            reason,
        };
        if !meta.is_dir() {
            return Err(unsafe_dir(
                "it is not a directory (a symbolic link?)".into(),
            ));
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return Err(unsafe_dir(format!(
                "it is owned by user {}, not by this user ({me})",
                meta.uid()
            )));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(unsafe_dir(format!(
                "group or others may write to it (mode {:o})",
                meta.mode() & 0o777
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Sets owner-only permissions (0700) on an existing directory.
fn set_private_dir(dir: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io_error(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
