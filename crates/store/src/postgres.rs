//! The connection half of the PostgreSQL backend: a pool from a connection
//! string, and the migrations, which PostgreSQL's migrator runs under its
//! own advisory lock, so replicas starting at once apply them once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::Pool;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;

use super::backend::{Database, Db, Kind};
use super::error::StoreError;

/// The PostgreSQL schema migrations, embedded at build time: the SQLite
/// ones where the SQL is portable (a test holds them to it).
pub(super) static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections one replica holds at most.
const MAX_CONNECTIONS: u32 = 16;

/// How long a request waits for a connection (or a new one) before failing:
/// a database that does not answer makes requests fail, not hang.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `url` names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Connects to `url` without migrating: a pool of at most
/// [`MAX_CONNECTIONS`]. The URL's password never appears in an error.
pub(super) async fn connect(url: &str) -> Result<Pool<Db>, StoreError> {
    connect_counting(url, Arc::new(AtomicU64::new(0))).await
}

/// [`connect`], counting in `opened` every connection the pool opens (each
/// is a server process on PostgreSQL's side).
async fn connect_counting(url: &str, opened: Arc<AtomicU64>) -> Result<Pool<Db>, StoreError> {
    sqlx::any::install_default_drivers();
    AnyPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .after_connect(move |_conn, _meta| {
            opened.fetch_add(1, Ordering::Relaxed);
            Box::pin(async { Ok(()) })
        })
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect(url)
        .await
        .map_err(|e| StoreError::DatabaseUnreachable {
            url: redact(url),
            reason: e.to_string(),
        })
}

/// Opens the database at `url` and runs pending migrations (or, with
/// `migrate` false, refuses one that is behind: an operator who runs
/// `flavorbox migrate` as its own step).
pub(super) async fn open(url: &str, migrate: bool) -> Result<Database, StoreError> {
    let opened = Arc::new(AtomicU64::new(0));
    let pool = connect_counting(url, opened.clone()).await?;
    if migrate {
        MIGRATOR.run(&pool).await?;
    } else {
        let applied = applied(&pool).await;
        let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        if applied < latest {
            pool.close().await;
            return Err(StoreError::SchemaBehind {
                applied,
                latest,
                url: redact(url),
            });
        }
    }
    let mut db = Database::new(pool, Kind::Postgres, None, Some(url));
    db.connections_opened = opened;
    Ok(db)
}

/// The newest migration applied to the database on `pool`; 0 for a new
/// database (no migrations table yet).
pub(super) async fn applied(pool: &Pool<Db>) -> i64 {
    let row: Result<(Option<i64>,), _> =
        sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_one(pool)
            .await;
    row.ok().and_then(|(v,)| v).unwrap_or(0)
}

/// `url` with any password replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or("");
            if user_info.contains(':') {
                format!("{scheme}://{user}:***@{host}{tail}")
            } else {
                url.to_owned()
            }
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn a_password_in_a_url_is_never_shown() {
        assert_eq!(
            redact("postgres://fb:s3cret@127.0.0.1:5432/flavorbox"),
            "postgres://fb:***@127.0.0.1:5432/flavorbox"
        );
        assert_eq!(
            redact("postgresql://fb:p@ss@db/x?sslmode=disable"),
            "postgresql://fb:***@db/x?sslmode=disable"
        );
        assert_eq!(redact("postgres://fb@db/x"), "postgres://fb@db/x");
        assert_eq!(redact("postgres:///x?host=/run"), "postgres:///x?host=/run");
    }
}
