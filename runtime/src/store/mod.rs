//! Persistent state: registered flavors, registry components and secrets in
//! a SQL database, `.wasm` components in a content-addressed blob store,
//! and the place the sandbox keeps precompiled code.
//!
//! All SQL of the host lives here, behind a narrow API, so that moving to a
//! PostgreSQL database shared by several server replicas is a new backend
//! module and a connection string, not a rewrite: queries use `$n`
//! placeholders, portable types and no SQLite-only functions. Every row
//! belongs to a tenant, and every query a [`TenantStore`] runs is filtered by
//! its tenant, so one tenant can never read or change another's rows. The
//! store knows nothing of wasm, pushes or the CLI.
//!
//! One file per concern: `records` (the rows callers see), `error`
//! ([`StoreError`]), `tenant` (the queries), `timestamp` (the text they
//! write for times), `sqlite` (everything that knows the database is SQLite,
//! and what a PostgreSQL backend must provide instead) and `blob` (the
//! [`BlobStore`] trait and its directory implementation).

mod blob;
mod error;
mod records;
mod sqlite;
mod tenant;
#[cfg(test)]
mod tests;
mod timestamp;

use std::fs::DirBuilder;
use std::path::Path;
use std::sync::Arc;

use sqlx::migrate::Migrator;

pub use blob::BlobStore;
pub use error::StoreError;
pub use records::{ComponentRecord, FlavorRecord, SecretRecord, SecretSummary};
pub use tenant::TenantStore;

use blob::BlobDir;
use error::io_error;

/// The database backend the queries run on: the only line that names it.
use sqlite as backend;

/// The schema migrations, embedded at build time from `migrations/`; the
/// same files serve every backend.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The database and blob directory under one home directory.
#[derive(Debug, Clone)]
pub struct Store {
    db: backend::Database,
    blobs: Arc<dyn BlobStore>,
}

impl Store {
    /// Opens (creating if needed) the state under `home`: `home/flavorbox.db` and `home/blobs/`.
    ///
    /// A newly created `home` gets mode 0700 and the database 0600 (its
    /// `-wal` and `-shm` files inherit that mode from SQLite); migrations run
    /// before this returns.
    pub async fn open(home: &Path) -> Result<Store, StoreError> {
        create_private_dir(home)?;
        let blob_dir = home.join("blobs").join("sha256");
        create_private_dir(&blob_dir)?;
        let db = backend::Database::open(home).await?;
        Ok(Store {
            db,
            blobs: Arc::new(BlobDir::new(blob_dir)),
        })
    }

    /// A handle that reads and writes only `tenant`'s rows.
    pub fn tenant(&self, tenant: &str) -> TenantStore {
        TenantStore::new(self.db.clone(), tenant)
    }

    /// The content-addressed blobs (`.wasm` components), shared by every tenant.
    pub fn blobs(&self) -> &dyn BlobStore {
        &*self.blobs
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
