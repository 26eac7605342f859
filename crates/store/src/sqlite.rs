//! The SQLite backend: the one file of the store that knows the database is
//! SQLite (the file under the home directory, its permissions, WAL and busy
//! handling, how a write transaction starts, racing migrations).
//!
//! The queries (`tenant.rs`) name the database only through [`Db`],
//! [`Connection`] and [`Database`], and `mod.rs` picks this module with
//! `use sqlite as backend`. A PostgreSQL backend is a sibling module with
//! the same items:
//!
//! - `type Db = sqlx::Postgres` and `type Connection = sqlx::PgConnection`;
//! - `Database` (`Clone`, `Debug`) with `open` (a pool from a connection
//!   string instead of a file under the home directory, then
//!   [`MIGRATOR`](super::MIGRATOR); PostgreSQL's migrator takes an advisory
//!   lock, so replicas starting at once need no retry loop), `pool()`,
//!   `close()`, and `begin_write()` running
//!   `BEGIN ISOLATION LEVEL SERIALIZABLE` where this one runs
//!   `BEGIN IMMEDIATE`. A serializable transaction can fail at any statement
//!   or at commit with SQLSTATE 40001; that backend must turn it into
//!   [`StoreError::Conflict`] or retry, as SQLite's busy timeout retries here;
//! - nothing else: the migrations and the `$n` queries run unchanged (they
//!   keep to types and syntax both accept, sort in Rust rather than by
//!   collation, and take timestamps from the host), and unique and
//!   foreign-key violations are recognised through sqlx's own checks.

use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::Pool;
use sqlx::migrate::MigrateError;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::MIGRATOR;
use super::error::{StoreError, io_error};

/// The sqlx database type the queries run on.
pub(super) type Db = sqlx::Sqlite;

/// One connection of [`Db`], as helpers that run inside a transaction take it.
pub(super) type Connection = sqlx::SqliteConnection;

/// The database's clock as the store's timestamp text
/// (`YYYY-MM-DDThh:mm:ss.mmmZ`, as [`format_rfc3339`](super::timestamp)
/// writes): what rows stamped by the database use. PostgreSQL's is
/// `to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`.
pub(super) const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/// File name of the database inside the home directory.
pub(super) const DB_FILE: &str = "flavorbox.db";

/// How long a statement waits for another process's write lock before failing.
/// Writes are short; this only has to outlast a neighbour's transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How many times opening retries a connection or migration that raced with another process.
const OPEN_ATTEMPTS: u32 = 5;

/// A pool of connections to `home/flavorbox.db`, migrated to the current schema.
#[derive(Debug, Clone)]
pub(super) struct Database {
    pool: Pool<Db>,
    /// The database file.
    path: PathBuf,
    /// Device and inode of the file opened: a file removed or replaced
    /// under the process is told apart from the one it writes to.
    identity: (u64, u64),
}

impl Database {
    /// Opens (creating if needed) `home/flavorbox.db` and runs pending migrations.
    ///
    /// `home` must exist. The database file gets mode 0600 (its `-wal` and
    /// `-shm` files inherit that mode from SQLite).
    pub(super) async fn open(home: &Path) -> Result<Database, StoreError> {
        let db = home.join(DB_FILE);
        create_private_file(&db)?;
        let identity = file_identity(&db)?;
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
        Ok(Database {
            pool,
            path: db,
            identity,
        })
    }

    /// Opens an existing `home/flavorbox.db` for reading only, changing
    /// nothing in `home` (a read-only file system, a backup mounted
    /// read-only): no migration runs, and every write fails with
    /// [`StoreError::ReadOnly`].
    pub(super) async fn open_read_only(home: &Path) -> Result<Database, StoreError> {
        let db = home.join(DB_FILE);
        let identity = file_identity(&db)?;
        // A WAL database whose log is still there (a process was killed)
        // is read through its log; without one (a clean close removes it)
        // SQLite could not create the log's index on a read-only file
        // system, so the file is read as immutable.
        let has_log = home.join(format!("{DB_FILE}-wal")).exists();
        let options = SqliteConnectOptions::new()
            .filename(&db)
            .read_only(true)
            .immutable(!has_log)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = connect(options).await?;
        let (applied,): (Option<i64>,) =
            sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_one(&pool)
                .await?;
        let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        if applied.unwrap_or(0) < latest {
            pool.close().await;
            return Err(StoreError::ReadOnly { path: Some(db) });
        }
        Ok(Database {
            pool,
            path: db,
            identity,
        })
    }

    /// The connection pool, for single statements outside a transaction;
    /// refused once the database file was removed or replaced.
    pub(super) fn pool(&self) -> Result<&Pool<Db>, StoreError> {
        self.check()?;
        Ok(&self.pool)
    }

    /// Whether the file at the database's path is still the one opened: a
    /// process that wrote on after the file was deleted (or replaced by
    /// another) would acknowledge writes no later start sees.
    pub(super) fn check(&self) -> Result<(), StoreError> {
        match file_identity(&self.path) {
            Ok(identity) if identity == self.identity => Ok(()),
            Ok(_) | Err(StoreError::Io { .. }) => Err(StoreError::DatabaseGone {
                path: self.path.clone(),
            }),
            Err(e) => Err(e),
        }
    }

    /// Starts a write transaction that holds the write lock from its first
    /// statement.
    ///
    /// A plain (deferred) SQLite transaction that reads and then writes can
    /// fail with "database is locked" without waiting when another process
    /// wrote in between; `BEGIN IMMEDIATE` waits for the lock up front (under
    /// the busy timeout) instead. On PostgreSQL this is
    /// `BEGIN ISOLATION LEVEL SERIALIZABLE`.
    ///
    /// The transaction is a [`WriteTx`]: a connection whose transaction did
    /// not commit is closed, never returned to the pool.
    pub(super) async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        self.check()?;
        let mut conn = self.pool.acquire().await?;
        if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
            conn.close_on_drop();
            return Err(e.into());
        }
        Ok(WriteTx { conn, done: false })
    }

    /// Closes every connection, checkpointing the write-ahead log.
    pub(super) async fn close(&self) {
        self.pool.close().await;
    }
}

/// A write transaction on a pooled connection.
///
/// sqlx's own transaction counts its depth beside SQLite's: when a COMMIT
/// fails (a full disk), SQLite has already rolled back, sqlx's ROLLBACK on
/// drop then fails too, and the connection went back to the pool still
/// counted as inside a transaction, failing every later write on it until
/// the pool retired it. This one keeps no count: a transaction that did not
/// commit closes its connection (SQLite rolls back on close), so whatever
/// went wrong, no later write inherits it.
pub(super) struct WriteTx {
    conn: PoolConnection<Db>,
    done: bool,
}

impl WriteTx {
    /// Commits; on failure the connection is closed.
    pub(super) async fn commit(mut self) -> Result<(), StoreError> {
        sqlx::query("COMMIT").execute(&mut *self.conn).await?;
        self.done = true;
        Ok(())
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if !self.done {
            self.conn.close_on_drop();
        }
    }
}

impl Deref for WriteTx {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

/// Device and inode of `file`.
fn file_identity(file: &Path) -> Result<(u64, u64), StoreError> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = fs::metadata(file).map_err(|e| io_error(file, e))?;
    Ok((meta.dev(), meta.ino()))
}

/// Opens the pool. Switching a fresh database to WAL needs a lock that
/// SQLite's busy timeout does not wait for, so two processes opening a new
/// database at once can see "database is locked": the loser retries.
async fn connect(options: SqliteConnectOptions) -> Result<Pool<Db>, StoreError> {
    let mut attempt = 1;
    loop {
        // No ping before each acquire (sqlx's default): a connection to a
        // local file does not go stale, and the ping is a second round trip
        // to the connection's worker thread on every query.
        let pool = SqlitePoolOptions::new().test_before_acquire(false);
        match pool.connect_with(options.clone()).await {
            Ok(pool) => return Ok(pool),
            Err(sqlx::Error::Database(e)) if is_busy(e.as_ref()) && attempt < OPEN_ATTEMPTS => {
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
async fn migrate(pool: &Pool<Db>) -> Result<(), StoreError> {
    let mut attempt = 1;
    loop {
        match MIGRATOR.run(pool).await {
            Ok(()) => return Ok(()),
            Err(MigrateError::Execute(_) | MigrateError::ExecuteMigration(..))
                if attempt < OPEN_ATTEMPTS =>
            {
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
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
