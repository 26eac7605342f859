//! What can go wrong in the store, as one typed error callers can match on,
//! and the mapping of database errors onto it.
//!
//! The mapping uses only sqlx's backend-neutral checks (unique and foreign
//! key violations), so it holds for any database the queries run on.

use std::path::{Path, PathBuf};

use sqlx::migrate::MigrateError;

use super::records::ComponentRecord;

/// Kind names used in errors.
pub(super) const FLAVOR: &str = "flavor";
pub(super) const COMPONENT: &str = "registry component";
pub(super) const SECRET: &str = "secret";
pub(super) const TENANT: &str = "tenant";
pub(super) const JOB: &str = "job";

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A row with this name already exists for the tenant.
    #[error(
        "{kind} `{name}` already exists: choose another name, or delete the existing {kind} first"
    )]
    AlreadyExists {
        /// What kind of thing (`flavor`, `registry component`, `secret`).
        kind: &'static str,
        /// The name that is taken.
        name: String,
    },
    /// No row (or blob) with this name exists for the tenant.
    #[error("{kind} `{name}` does not exist: check the name against the list of {kind}s")]
    NotFound {
        /// What kind of thing was looked for.
        kind: &'static str,
        /// The name that was looked for.
        name: String,
    },
    /// The row cannot be deleted while registry components refer to it.
    #[error("{kind} `{name}` is used by registry components {}: delete or update them first", quoted_list(.by))]
    InUse {
        /// What kind of thing is in use.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The registry components that use it, sorted by name.
        by: Vec<String>,
    },
    /// A registry component names a secret the tenant does not have.
    #[error(
        "secret `{0}` does not exist: create it first, or leave the secret out of the registry component"
    )]
    SecretNotFound(String),
    /// A component names a registered flavor whose content is not the one
    /// that validated it (deleted or registered again meanwhile).
    #[error(
        "flavor `{0}` was deleted or replaced while the config was being validated: run the command again"
    )]
    FlavorReplaced(String),
    /// The tenant already has as many rows of this kind as its quota allows.
    #[error(
        "quota reached: at most {max} {kind}s per tenant; delete one first, or ask the operator for a larger quota"
    )]
    QuotaExceeded {
        /// What kind of row.
        kind: &'static str,
        /// The quota.
        max: u64,
    },
    /// The tenant's rows of this kind would hold more bytes than its quota allows.
    #[error(
        "quota reached: a tenant's {kind}s may hold at most {max} bytes in all; delete one first, or ask the operator for a larger quota"
    )]
    BytesQuotaExceeded {
        /// What kind of row.
        kind: &'static str,
        /// The quota, in bytes.
        max: u64,
    },
    /// A registry component's uri overlaps a path another tenant's component
    /// uses on an allow-listed registry (the other tenant is not named).
    #[error(
        "`{uri}` overlaps a path another tenant uses on this allow-listed registry; ask the operator"
    )]
    PathTaken {
        /// The uri that was refused.
        uri: String,
    },
    /// A row changed between reading it and writing it back.
    #[error("{kind} `{name}` was changed by another command meanwhile: run the command again")]
    Conflict {
        /// What kind of row.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A push job this server no longer owns: its lease ran out (the
    /// server was paused or cut off from the database) and another marked
    /// it interrupted.
    #[error(
        "push job `{0}` is no longer this server's: its lease ran out and it was marked interrupted; nothing more is written to it"
    )]
    JobLeaseLost(String),
    /// A state directory others could write to, or owned by another user:
    /// the host would trust what they put there.
    #[error("refusing to use `{}`: {reason}; make it owner-only (`chmod 700 {}`) and owned by this user, or choose another --home", path.display(), path.display())]
    UnsafeDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file or directory of the store could not be read or written.
    #[error("cannot access `{}`: {source}; check that the path exists and is writable by this user", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The disk holding the state is full: nothing was written.
    #[error("no space left on device{}: free space and retry", for_path(.path))]
    NoSpace {
        /// The file or directory the write was for, when the store knows it
        /// (the edges name the state directory otherwise).
        path: Option<PathBuf>,
    },
    /// The state directory is on a read-only file system, or the database
    /// was opened read-only: it can be listed and described, not changed.
    #[error("{} is read-only: the state can be read (list, describe) but not changed; use a writable --home to change it", read_only_what(.path))]
    ReadOnly {
        /// The file or directory, when the store knows it.
        path: Option<PathBuf>,
    },
    /// The database file was removed or replaced under a running process:
    /// writing on would write to a file no later start sees.
    #[error("the database `{}` was removed or replaced while in use: nothing more is written to it; restore it from a backup and restart", path.display())]
    DatabaseGone {
        /// The database file.
        path: PathBuf,
    },
    /// The state directory holds the remains of a database that is gone
    /// (its blobs, its identity marker), or a database that is not its own:
    /// opening on would silently start empty.
    #[error("refusing to create an empty database at `{}`: {reason}; restore the database from a backup, or move `{}` aside to start with empty state", db.display(), home.display())]
    StateMismatch {
        /// The state directory.
        home: PathBuf,
        /// The database file.
        db: PathBuf,
        /// What was found.
        reason: String,
    },
    /// The database server could not be reached or refused the login.
    #[error(
        "cannot connect to the database `{url}`: {reason}; check that it runs, that the URL (host, port, user, password, database name) is right, and that this host may connect"
    )]
    DatabaseUnreachable {
        /// The URL, its password replaced.
        url: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// The shared database's schema is older than this flavorbox and the
    /// operator runs migrations as their own step.
    #[error(
        "the database `{url}` has schema version {applied}, this flavorbox needs {latest}: run `flavorbox migrate --database URL` first (or start without --no-migrate)"
    )]
    SchemaBehind {
        /// The newest migration applied.
        applied: i64,
        /// The newest migration this build has.
        latest: i64,
        /// The URL, its password replaced.
        url: String,
    },
    /// The database refused or failed a query.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// The database schema could not be brought up to date.
    #[error(
        "cannot migrate the database schema: {0}; if the database was written by a newer flavorbox, use that version"
    )]
    Migrate(#[from] MigrateError),
    /// A row holds what this version of flavorbox never writes (a newer
    /// version wrote it, or the database was damaged): it is not guessed at.
    #[error(
        "the stored {kind} `{name}` cannot be read: {reason}; if a newer flavorbox wrote it, use that version, otherwise restore the database from a backup"
    )]
    CorruptRecord {
        /// What kind of row.
        kind: &'static str,
        /// Its name (or id).
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A blob's content no longer matches its digest.
    #[error(
        "blob {sha256} is corrupt (its content does not match its digest): register the flavor again to restore it"
    )]
    CorruptBlob {
        /// The digest the blob is stored under.
        sha256: String,
    },
    /// A blob name that is not a SHA-256 digest.
    #[error("`{0}` is not a sha256 digest: expected 64 lowercase hex characters")]
    InvalidDigest(String),
}

/// " for `PATH`", or nothing.
fn for_path(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!(" for `{}`", p.display()))
        .unwrap_or_default()
}

/// What is read-only: the path, or the state directory.
fn read_only_what(path: &Option<PathBuf>) -> String {
    path.as_ref().map_or_else(
        || "the state directory".to_string(),
        |p| format!("`{}`", p.display()),
    )
}

impl From<sqlx::Error> for StoreError {
    /// A database error, told apart by what the caller can do about it: a
    /// full disk and a read-only file system have errors of their own.
    fn from(e: sqlx::Error) -> StoreError {
        if let sqlx::Error::Database(db) = &e
            && db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some()
        {
            // SQLSTATE classes: disk_full, read_only_sql_transaction.
            match db.code().as_deref() {
                Some("53100") => return StoreError::NoSpace { path: None },
                Some("25006") => return StoreError::ReadOnly { path: None },
                _ => {}
            }
        }
        if let sqlx::Error::Database(db) = &e
            && db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
            && let Some(code) = db.code().and_then(|c| c.parse::<u32>().ok())
        {
            match code {
                c if c & 0xff == SQLITE_FULL => return StoreError::NoSpace { path: None },
                c if c & 0xff == SQLITE_READONLY => return StoreError::ReadOnly { path: None },
                // The I/O errors a full disk causes: a write, a sync, a
                // truncate, growing the WAL index.
                c if c & 0xff == SQLITE_IOERR && DISK_FULL_IOERRS.contains(&(c >> 8)) => {
                    return StoreError::NoSpace { path: None };
                }
                _ => {}
            }
        }
        if let sqlx::Error::Io(io) = &e
            && let Some(mapped) = classify_io(io, None)
        {
            return mapped;
        }
        StoreError::Database(e)
    }
}

/// SQLite's primary result codes the store tells apart.
const SQLITE_READONLY: u32 = 8;
const SQLITE_IOERR: u32 = 10;
const SQLITE_FULL: u32 = 13;
/// Extended SQLITE_IOERR codes (`code >> 8`) a full disk gives: WRITE,
/// FSYNC, TRUNCATE, DIR_FSYNC, SHMSIZE, SHMMAP.
const DISK_FULL_IOERRS: [u32; 6] = [3, 4, 6, 5, 19, 21];

/// A full disk (ENOSPC, EDQUOT) or a read-only file system (EROFS) as the
/// store's own error for `path`; `None` for any other I/O error.
fn classify_io(e: &std::io::Error, path: Option<&Path>) -> Option<StoreError> {
    const ENOSPC: i32 = 28;
    const EROFS: i32 = 30;
    const EDQUOT: i32 = 122;
    let path = path.map(Path::to_path_buf);
    match e.raw_os_error() {
        Some(ENOSPC | EDQUOT) => Some(StoreError::NoSpace { path }),
        Some(EROFS) => Some(StoreError::ReadOnly { path }),
        _ => match e.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                Some(StoreError::NoSpace { path })
            }
            std::io::ErrorKind::ReadOnlyFilesystem => Some(StoreError::ReadOnly { path }),
            _ => None,
        },
    }
}

/// Formats names as "`a`, `b`".
fn quoted_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Wraps an I/O error with the path it concerns.
///
/// A full disk or a read-only file system becomes [`StoreError::NoSpace`]
/// or [`StoreError::ReadOnly`], so callers can say what to do.
pub(super) fn io_error(path: &Path, source: std::io::Error) -> StoreError {
    if let Some(mapped) = classify_io(&source, Some(path)) {
        return mapped;
    }
    StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// [`StoreError::NotFound`] for a `kind` called `name`.
pub(super) fn not_found(kind: &'static str, name: &str) -> StoreError {
    StoreError::NotFound {
        kind,
        name: name.to_owned(),
    }
}

/// [`StoreError::CorruptRecord`] for the `kind` called `name`.
pub(super) fn corrupt(kind: &'static str, name: &str, reason: impl Into<String>) -> StoreError {
    StoreError::CorruptRecord {
        kind,
        name: name.to_owned(),
        reason: reason.into(),
    }
}

/// Maps a unique-key violation to [`StoreError::AlreadyExists`].
pub(super) fn already_exists(e: sqlx::Error, kind: &'static str, name: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::AlreadyExists {
            kind,
            name: name.to_owned(),
        },
        _ => e.into(),
    }
}

/// Maps constraint violations on a component write; the foreign key catches a
/// secret deleted concurrently on databases where the store's own check can race.
pub(super) fn component_write_error(e: sqlx::Error, r: &ComponentRecord) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::SecretNotFound(r.secret.clone().unwrap_or_default())
        }
        _ => already_exists(e, COMPONENT, &r.name),
    }
}
