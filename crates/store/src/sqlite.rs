//! The file half of the SQLite backend: the database file under the home
//! directory, its permissions, WAL and busy handling, a file removed under
//! the process, racing migrations. The queries and the write transaction are
//! in `backend.rs`, the same for every database.

use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::Pool;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{MigrateError, Migrator};

use super::backend::{Database, Db, Kind};
use super::error::{StoreError, io_error};

/// The SQLite schema migrations, embedded at build time.
pub(super) static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// File name of the database inside the home directory.
pub(super) const DB_FILE: &str = "flavorbox.db";

/// Run on every new connection of a writable database. The busy timeout
/// (10 s) is how long a statement waits for another process's write lock
/// before failing: writes are short, and it only has to outlast a
/// neighbour's transaction.
const WRITE_PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                             PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;";

/// Run on every new connection of a database opened read-only.
const READ_PRAGMAS: &str = "PRAGMA busy_timeout = 10000;";

/// How many times opening retries a connection or migration that raced with another process.
const OPEN_ATTEMPTS: u32 = 5;

/// The database file and its device and inode when opened: a file removed
/// or replaced under the process is told apart from the one it writes to.
#[derive(Debug, Clone)]
pub(super) struct FileIdentity {
    path: PathBuf,
    identity: (u64, u64),
}

impl FileIdentity {
    /// Whether the file at the path is still the one opened.
    pub(super) fn check(&self) -> Result<(), StoreError> {
        match file_identity(&self.path) {
            Ok(identity) if identity == self.identity => Ok(()),
            Ok(_) | Err(StoreError::Io { .. }) => Err(StoreError::DatabaseGone {
                path: self.path.clone(),
            }),
            Err(e) => Err(e),
        }
    }
}

/// The `sqlite://` URL of `file` with `params`; the path percent-encoded, so
/// any name the file system allows (`?`, `#`, `%`) is that name.
fn url(file: &Path, params: &str) -> Result<String, StoreError> {
    let Some(text) = file.to_str() else {
        return Err(io_error(
            file,
            std::io::Error::other("the path is not UTF-8; choose a home whose path is"),
        ));
    };
    let mut encoded = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || "/-_.~".contains(c) {
            encoded.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                encoded.push_str(&format!("%{b:02X}"));
            }
        }
    }
    Ok(format!("sqlite://{encoded}?{params}"))
}

/// Opens (creating if needed) `home/flavorbox.db` and runs pending migrations.
///
/// `home` must exist. The database file gets mode 0600 (its `-wal` and
/// `-shm` files inherit that mode from SQLite).
pub(super) async fn open(home: &Path) -> Result<Database, StoreError> {
    let db = home.join(DB_FILE);
    create_private_file(&db)?;
    let identity = file_identity(&db)?;
    // WAL lets readers run beside a writer; the busy timeout makes a second
    // process wait for the write lock instead of failing with "database is
    // locked"; a sync per commit (few, small writes) loses nothing
    // acknowledged on power failure; foreign keys are on per connection
    // (sqlx's default, SQLite's is off).
    let pool = connect(&url(&db, "mode=rwc")?, WRITE_PRAGMAS).await?;
    migrate(&pool).await?;
    // SQLite gives -wal/-shm the database file's mode; tighten anyway in
    // case they were left behind by an older, looser setup.
    for suffix in ["-wal", "-shm"] {
        let side = home.join(format!("{DB_FILE}{suffix}"));
        if side.exists() {
            set_private(&side)?;
        }
    }
    Ok(Database::new(
        pool,
        Kind::Sqlite,
        Some(FileIdentity { path: db, identity }),
        None,
    ))
}

/// Opens an existing `home/flavorbox.db` for reading only, changing
/// nothing in `home` (a read-only file system, a backup mounted
/// read-only): no migration runs, and every write fails with
/// [`StoreError::ReadOnly`].
pub(super) async fn open_read_only(home: &Path) -> Result<Database, StoreError> {
    let db = home.join(DB_FILE);
    let identity = file_identity(&db)?;
    // A WAL database whose log is still there (a process was killed) is
    // read through its log; without one (a clean close removes it) SQLite
    // could not create the log's index on a read-only file system, so the
    // file is read as immutable.
    let has_log = home.join(format!("{DB_FILE}-wal")).exists();
    let params = if has_log {
        "mode=ro"
    } else {
        "mode=ro&immutable=true"
    };
    let pool = connect(&url(&db, params)?, READ_PRAGMAS).await?;
    let (applied,): (Option<i64>,) =
        sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_one(&pool)
            .await?;
    let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    if applied.unwrap_or(0) < latest {
        pool.close().await;
        return Err(StoreError::ReadOnly { path: Some(db) });
    }
    Ok(Database::new(
        pool,
        Kind::Sqlite,
        Some(FileIdentity { path: db, identity }),
        None,
    ))
}

/// Device and inode of `file`.
fn file_identity(file: &Path) -> Result<(u64, u64), StoreError> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = fs::metadata(file).map_err(|e| io_error(file, e))?;
    Ok((meta.dev(), meta.ino()))
}

/// Opens the pool, running `pragmas` on every new connection. Switching a
/// fresh database to WAL needs a lock that SQLite's busy timeout does not
/// wait for, so two processes opening a new database at once can see
/// "database is locked": the loser retries.
async fn connect(url: &str, pragmas: &'static str) -> Result<Pool<Db>, StoreError> {
    sqlx::any::install_default_drivers();
    let mut attempt = 1;
    loop {
        // One connection first, by hand: sqlx's pool retries a connection
        // whose set-up statements fail until its acquire timeout, and then
        // reports the timeout, not why (a full disk, a read-only file).
        let first = async {
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(url).await?;
            let ran = sqlx::Executor::execute(&mut conn, pragmas).await;
            let _ = sqlx::Connection::close(conn).await;
            ran.map(|_| ())
        };
        match first.await {
            Ok(()) => {}
            Err(sqlx::Error::Database(e)) if is_busy(e.as_ref()) && attempt < OPEN_ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                attempt += 1;
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        // No ping before each acquire (sqlx's default): a connection to a
        // local file does not go stale, and the ping is a second round trip
        // to the connection's worker thread on every query.
        let pool = AnyPoolOptions::new()
            .test_before_acquire(false)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    sqlx::Executor::execute(conn, pragmas).await?;
                    Ok(())
                })
            });
        match pool.connect(url).await {
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
