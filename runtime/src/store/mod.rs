//! Persistent state: registered flavors, registry components and secrets in
//! SQLite, and `.wasm` files and precompiled code in a content-addressed blob
//! directory.
//!
//! All SQL of the host lives here, behind a narrow API, so that moving to a
//! PostgreSQL database shared by several server replicas is a new connection
//! string and not a rewrite: queries use `$n` placeholders, portable types and
//! no SQLite-only functions. Every row belongs to a tenant, and every query a
//! [`TenantStore`] runs is filtered by its tenant, so one tenant can never read
//! or change another's rows. The store knows nothing of wasm, pushes or the
//! CLI.

mod blob;
#[cfg(test)]
mod tests;

use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

pub use blob::BlobStore;

/// The schema migrations, embedded at build time from `migrations/`.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// File name of the database inside the home directory.
const DB_FILE: &str = "flavorbox.db";

/// How long a statement waits for another process's write lock before failing.
/// Writes are short; this only has to outlast a neighbour's transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How many times opening retries migrations that raced with another process.
const MIGRATE_ATTEMPTS: u32 = 5;

/// Kind names used in errors.
const FLAVOR: &str = "flavor";
const COMPONENT: &str = "registry component";
const SECRET: &str = "secret";

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
    /// A row changed between reading it and writing it back.
    #[error("{kind} `{name}` was changed by another command meanwhile: run the command again")]
    Conflict {
        /// What kind of row.
        kind: &'static str,
        /// Its name.
        name: String,
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
fn io_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A flavor registered from a `.wasm` component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlavorRecord {
    /// Flavor name, unique within the tenant.
    pub name: String,
    /// SHA-256 of the component in the blob store.
    pub sha256: String,
    /// The flavor's `metadata()` as JSON.
    pub metadata_json: String,
    /// When it was registered (RFC 3339 UTC); set by the store on insert.
    pub registered_at: String,
}

/// A registry component: a flavor bound to a registry URI and config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentRecord {
    /// Component name, unique within the tenant.
    pub name: String,
    /// Flavor name (registered or built-in).
    pub flavor: String,
    /// Registry URI.
    pub uri: String,
    /// The validated config as JSON.
    pub config_json: String,
    /// Name of the secret the host pushes with, if any.
    pub secret: Option<String>,
    /// SHA-256 of the registered flavor that validated the config; `None`
    /// for a built-in flavor. The store refuses a digest the tenant's flavor
    /// of that name does not have.
    pub flavor_sha256: Option<String>,
    /// When it was created (RFC 3339 UTC); set by the store.
    pub created_at: String,
    /// When it was last changed (RFC 3339 UTC); set by the store.
    pub updated_at: String,
}

/// Registry credentials, as the host uses them for a push.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretRecord {
    /// Secret name, unique within the tenant.
    pub name: String,
    /// Registry user name.
    pub username: String,
    /// Registry password or token.
    pub password: String,
}

impl fmt::Debug for SecretRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretRecord")
            .field("name", &self.name)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// What may be shown of a secret: everything but the password.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SecretSummary {
    /// Secret name.
    pub name: String,
    /// Registry user name.
    pub username: String,
    /// When it was created (RFC 3339 UTC).
    pub created_at: String,
}

/// The database and blob directory under one home directory.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    blobs: BlobStore,
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

        let db = home.join(DB_FILE);
        create_private_file(&db)?;
        let options = SqliteConnectOptions::new()
            .filename(&db)
            .create_if_missing(true)
            // WAL lets readers run beside a writer; the busy timeout makes a
            // second process wait for the write lock instead of failing with
            // "database is locked".
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(BUSY_TIMEOUT)
            // Few, small writes (registrations, secrets): pay for a sync per
            // commit so that nothing acknowledged is lost on power failure.
            .synchronous(SqliteSynchronous::Full)
            // Enforces components -> secrets per connection (SQLite's default is off).
            .foreign_keys(true);
        let pool = connect(options).await?;
        migrate(&pool).await?;
        // SQLite gives -wal/-shm the database file's mode; tighten anyway in
        // case they were left behind by an older, looser setup.
        for suffix in ["-wal", "-shm"] {
            let side = home.join(format!("{DB_FILE}{suffix}"));
            if side.exists() {
                set_private(&side)?;
            }
        }
        Ok(Store {
            pool,
            blobs: BlobStore::new(blob_dir),
        })
    }

    /// A handle that reads and writes only `tenant`'s rows.
    pub fn tenant(&self, tenant: &str) -> TenantStore {
        TenantStore {
            pool: self.pool.clone(),
            tenant: tenant.to_owned(),
        }
    }

    /// The content-addressed blob directory.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// Closes every database connection, checkpointing the write-ahead log.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Opens the pool. Switching a fresh database to WAL needs a lock that
/// SQLite's busy timeout does not wait for, so two processes opening a new
/// database at once can see "database is locked": the loser retries.
async fn connect(options: SqliteConnectOptions) -> Result<SqlitePool, StoreError> {
    let mut attempt = 1;
    loop {
        match SqlitePoolOptions::new().connect_with(options.clone()).await {
            Ok(pool) => return Ok(pool),
            Err(sqlx::Error::Database(e)) if is_busy(e.as_ref()) && attempt < MIGRATE_ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Whether a database error is SQLITE_BUSY (5), or one of its extended codes.
fn is_busy(e: &dyn sqlx::error::DatabaseError) -> bool {
    e.code()
        .and_then(|code| code.parse::<u32>().ok())
        .is_some_and(|code| code & 0xff == 5)
}

/// Runs pending migrations. SQLite's migrator takes no lock, so two processes
/// opening a fresh database at once can race; the loser retries and then
/// finds the migrations applied.
async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    let mut attempt = 1;
    loop {
        match MIGRATOR.run(pool).await {
            Ok(()) => return Ok(()),
            Err(MigrateError::Execute(_) | MigrateError::ExecuteMigration(..))
                if attempt < MIGRATE_ATTEMPTS =>
            {
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
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

/// Creates `file` with mode 0600 if missing, and sets 0600 on it either way.
fn create_private_file(file: &Path) -> Result<(), StoreError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(file) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_error(file, e)),
    }
    set_private(file)
}

/// Sets owner-only read/write permissions.
fn set_private(file: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(file, fs::Permissions::from_mode(0o600))
            .map_err(|e| io_error(file, e))?;
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

/// One tenant's view of the database; every query is filtered by the tenant.
#[derive(Debug, Clone)]
pub struct TenantStore {
    pool: SqlitePool,
    tenant: String,
}

/// Row shapes, in column order.
type FlavorRow = (String, String, String, String);
type ComponentRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
);

fn flavor_from_row((name, sha256, metadata_json, registered_at): FlavorRow) -> FlavorRecord {
    FlavorRecord {
        name,
        sha256,
        metadata_json,
        registered_at,
    }
}

fn component_from_row(
    (name, flavor, uri, config_json, secret, flavor_sha256, created_at, updated_at): ComponentRow,
) -> ComponentRecord {
    ComponentRecord {
        name,
        flavor,
        uri,
        config_json,
        secret,
        flavor_sha256,
        created_at,
        updated_at,
    }
}

const COMPONENT_COLUMNS: &str =
    "name, flavor, uri, config_json, secret, flavor_sha256, created_at, updated_at";

impl TenantStore {
    /// The tenant this handle is scoped to.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Starts a write transaction that holds the write lock from its first
    /// statement.
    ///
    /// A plain (deferred) SQLite transaction that reads and then writes can
    /// fail with "database is locked" without waiting when another process
    /// wrote in between; `BEGIN IMMEDIATE` waits for the lock up front (under
    /// the busy timeout) instead. This is the one SQLite-specific statement
    /// here: on PostgreSQL it becomes `BEGIN ISOLATION LEVEL SERIALIZABLE`.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    // ----- flavors -----

    /// Registers a flavor; the store sets `registered_at`.
    pub async fn insert_flavor(&self, r: &FlavorRecord) -> Result<(), StoreError> {
        blob::validate_digest(&r.sha256)?;
        sqlx::query(
            "INSERT INTO flavors (tenant, name, sha256, metadata_json, registered_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&self.tenant)
        .bind(&r.name)
        .bind(&r.sha256)
        .bind(&r.metadata_json)
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await
        .map_err(|e| already_exists(e, FLAVOR, &r.name))?;
        Ok(())
    }

    /// The registered flavor called `name`, if any.
    pub async fn get_flavor(&self, name: &str) -> Result<Option<FlavorRecord>, StoreError> {
        let row: Option<FlavorRow> = sqlx::query_as(
            "SELECT name, sha256, metadata_json, registered_at FROM flavors \
             WHERE tenant = $1 AND name = $2",
        )
        .bind(&self.tenant)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(flavor_from_row))
    }

    /// All registered flavors, ordered by name.
    pub async fn list_flavors(&self) -> Result<Vec<FlavorRecord>, StoreError> {
        let rows: Vec<FlavorRow> = sqlx::query_as(
            "SELECT name, sha256, metadata_json, registered_at FROM flavors WHERE tenant = $1",
        )
        .bind(&self.tenant)
        .fetch_all(&self.pool)
        .await?;
        let mut flavors: Vec<_> = rows.into_iter().map(flavor_from_row).collect();
        // Sorted here rather than by ORDER BY: SQLite and PostgreSQL collate
        // text differently, and the order should not depend on the database.
        flavors.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(flavors)
    }

    /// Unregisters a flavor, refusing while a registry component uses it.
    ///
    /// The blob stays: blobs are shared and content-addressed.
    pub async fn delete_flavor(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let deleted = sqlx::query("DELETE FROM flavors WHERE tenant = $1 AND name = $2")
            .bind(&self.tenant)
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(not_found(FLAVOR, name));
        }
        let by = names_where(&mut tx, &self.tenant, "flavor", name).await?;
        if !by.is_empty() {
            // Dropping `tx` rolls the delete back.
            return Err(StoreError::InUse {
                kind: FLAVOR,
                name: name.to_owned(),
                by,
            });
        }
        tx.commit().await?;
        Ok(())
    }

    // ----- registry components -----

    /// Creates a registry component; its secret, if named, must exist. The store sets both timestamps.
    pub async fn insert_component(&self, r: &ComponentRecord) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(secret) = &r.secret {
            require_secret(&mut tx, &self.tenant, secret).await?;
        }
        require_flavor_digest(&mut tx, &self.tenant, r).await?;
        let now = now_rfc3339();
        sqlx::query(
            "INSERT INTO components \
             (tenant, name, flavor, uri, config_json, secret, flavor_sha256, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(&self.tenant)
        .bind(&r.name)
        .bind(&r.flavor)
        .bind(&r.uri)
        .bind(&r.config_json)
        .bind(&r.secret)
        .bind(&r.flavor_sha256)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .map_err(|e| component_write_error(e, r))?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces a registry component's flavor, URI, config and secret; keeps
    /// `created_at` and bumps `updated_at`.
    ///
    /// `r.updated_at` must be the value read before the change: if another
    /// writer changed the component since, the update is refused with
    /// [`StoreError::Conflict`] instead of silently undoing that change.
    pub async fn update_component(&self, r: &ComponentRecord) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let current: Option<(String,)> =
            sqlx::query_as("SELECT updated_at FROM components WHERE tenant = $1 AND name = $2")
                .bind(&self.tenant)
                .bind(&r.name)
                .fetch_optional(&mut *tx)
                .await?;
        match current {
            None => return Err(not_found(COMPONENT, &r.name)),
            Some((updated_at,)) if updated_at != r.updated_at => {
                return Err(StoreError::Conflict {
                    kind: COMPONENT,
                    name: r.name.clone(),
                });
            }
            Some(_) => {}
        }
        if let Some(secret) = &r.secret {
            require_secret(&mut tx, &self.tenant, secret).await?;
        }
        require_flavor_digest(&mut tx, &self.tenant, r).await?;
        sqlx::query(
            "UPDATE components SET flavor = $3, uri = $4, config_json = $5, secret = $6, \
             flavor_sha256 = $7, updated_at = $8 WHERE tenant = $1 AND name = $2",
        )
        .bind(&self.tenant)
        .bind(&r.name)
        .bind(&r.flavor)
        .bind(&r.uri)
        .bind(&r.config_json)
        .bind(&r.secret)
        .bind(&r.flavor_sha256)
        .bind(now_rfc3339())
        .execute(&mut *tx)
        .await
        .map_err(|e| component_write_error(e, r))?;
        tx.commit().await?;
        Ok(())
    }

    /// The registry component called `name`, if any.
    pub async fn get_component(&self, name: &str) -> Result<Option<ComponentRecord>, StoreError> {
        let row: Option<ComponentRow> = sqlx::query_as(&format!(
            "SELECT {COMPONENT_COLUMNS} FROM components WHERE tenant = $1 AND name = $2"
        ))
        .bind(&self.tenant)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(component_from_row))
    }

    /// All registry components, ordered by name.
    pub async fn list_components(&self) -> Result<Vec<ComponentRecord>, StoreError> {
        let rows: Vec<ComponentRow> = sqlx::query_as(&format!(
            "SELECT {COMPONENT_COLUMNS} FROM components WHERE tenant = $1"
        ))
        .bind(&self.tenant)
        .fetch_all(&self.pool)
        .await?;
        let mut components: Vec<_> = rows.into_iter().map(component_from_row).collect();
        components.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(components)
    }

    /// Deletes a registry component.
    pub async fn delete_component(&self, name: &str) -> Result<(), StoreError> {
        let deleted = sqlx::query("DELETE FROM components WHERE tenant = $1 AND name = $2")
            .bind(&self.tenant)
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(not_found(COMPONENT, name));
        }
        Ok(())
    }

    /// Names of the registry components that use `flavor`, sorted.
    pub async fn components_using_flavor(&self, flavor: &str) -> Result<Vec<String>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        names_where(&mut conn, &self.tenant, "flavor", flavor).await
    }

    // ----- secrets -----

    /// Stores registry credentials under `name`.
    pub async fn create_secret(
        &self,
        name: &str,
        username: &str,
        password: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO secrets (tenant, name, username, password, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&self.tenant)
        .bind(name)
        .bind(username)
        .bind(password)
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await
        .map_err(|e| already_exists(e, SECRET, name))?;
        Ok(())
    }

    /// The secret called `name`, password included, if any. For the host's push only.
    pub async fn get_secret(&self, name: &str) -> Result<Option<SecretRecord>, StoreError> {
        let row: Option<(String, String, String)> = sqlx::query_as(
            "SELECT name, username, password FROM secrets WHERE tenant = $1 AND name = $2",
        )
        .bind(&self.tenant)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(name, username, password)| SecretRecord {
            name,
            username,
            password,
        }))
    }

    /// All secrets without their passwords, ordered by name.
    pub async fn list_secrets(&self) -> Result<Vec<SecretSummary>, StoreError> {
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT name, username, created_at FROM secrets WHERE tenant = $1")
                .bind(&self.tenant)
                .fetch_all(&self.pool)
                .await?;
        let mut secrets: Vec<_> = rows
            .into_iter()
            .map(|(name, username, created_at)| SecretSummary {
                name,
                username,
                created_at,
            })
            .collect();
        secrets.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(secrets)
    }

    /// Deletes a secret, refusing while a registry component references it.
    pub async fn delete_secret(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let by = names_where(&mut tx, &self.tenant, "secret", name).await?;
        if !by.is_empty() {
            return Err(StoreError::InUse {
                kind: SECRET,
                name: name.to_owned(),
                by,
            });
        }
        let deleted = sqlx::query("DELETE FROM secrets WHERE tenant = $1 AND name = $2")
            .bind(&self.tenant)
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(not_found(SECRET, name));
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Sorted names of the tenant's components whose `column` (`flavor` or `secret`) equals `value`.
async fn names_where(
    conn: &mut sqlx::SqliteConnection,
    tenant: &str,
    column: &'static str,
    value: &str,
) -> Result<Vec<String>, StoreError> {
    let rows: Vec<(String,)> = sqlx::query_as(&format!(
        "SELECT name FROM components WHERE tenant = $1 AND {column} = $2"
    ))
    .bind(tenant)
    .bind(value)
    .fetch_all(conn)
    .await?;
    let mut names: Vec<String> = rows.into_iter().map(|(n,)| n).collect();
    names.sort();
    Ok(names)
}

/// Fails with [`StoreError::SecretNotFound`] unless the tenant has the secret.
async fn require_secret(
    conn: &mut sqlx::SqliteConnection,
    tenant: &str,
    secret: &str,
) -> Result<(), StoreError> {
    let found: Option<(String,)> =
        sqlx::query_as("SELECT name FROM secrets WHERE tenant = $1 AND name = $2")
            .bind(tenant)
            .bind(secret)
            .fetch_optional(conn)
            .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::SecretNotFound(secret.to_owned())),
    }
}

/// Checks, inside the write transaction, that a component's flavor digest is
/// the one the tenant's registered flavor of that name has now.
async fn require_flavor_digest(
    conn: &mut sqlx::SqliteConnection,
    tenant: &str,
    r: &ComponentRecord,
) -> Result<(), StoreError> {
    let Some(expected) = &r.flavor_sha256 else {
        return Ok(());
    };
    let found: Option<(String,)> =
        sqlx::query_as("SELECT sha256 FROM flavors WHERE tenant = $1 AND name = $2")
            .bind(tenant)
            .bind(&r.flavor)
            .fetch_optional(conn)
            .await?;
    match found {
        Some((sha256,)) if &sha256 == expected => Ok(()),
        _ => Err(StoreError::FlavorReplaced(r.flavor.clone())),
    }
}

fn not_found(kind: &'static str, name: &str) -> StoreError {
    StoreError::NotFound {
        kind,
        name: name.to_owned(),
    }
}

/// Maps a unique-key violation to [`StoreError::AlreadyExists`].
fn already_exists(e: sqlx::Error, kind: &'static str, name: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::AlreadyExists {
            kind,
            name: name.to_owned(),
        },
        _ => e.into(),
    }
}

/// Maps constraint violations on a component write; the foreign key catches a
/// secret deleted concurrently on databases where the check above can race.
fn component_write_error(e: sqlx::Error, r: &ComponentRecord) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::SecretNotFound(r.secret.clone().unwrap_or_default())
        }
        _ => already_exists(e, COMPONENT, &r.name),
    }
}

/// The current time as RFC 3339 UTC with milliseconds, e.g. `2024-05-01T12:00:00.000Z`.
fn now_rfc3339() -> String {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format_rfc3339(since_epoch.as_secs() as i64, since_epoch.subsec_millis())
}

/// Formats seconds since the Unix epoch as RFC 3339 UTC (fixed width, so text order is time order).
fn format_rfc3339(secs: i64, millis: u32) -> String {
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let of_day = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
