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
    /// A row changed between reading it and writing it back.
    #[error("{kind} `{name}` was changed by another command meanwhile: run the command again")]
    Conflict {
        /// What kind of row.
        kind: &'static str,
        /// Its name.
        name: String,
    },
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
    /// The database refused or failed a query.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The database schema could not be brought up to date.
    #[error(
        "cannot migrate the database schema: {0}; if the database was written by a newer flavorbox, use that version"
    )]
    Migrate(#[from] MigrateError),
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

/// Formats names as "`a`, `b`".
fn quoted_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Wraps an I/O error with the path it concerns.
pub(super) fn io_error(path: &Path, source: std::io::Error) -> StoreError {
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
