//! The database the queries run on, chosen at run time: an embedded SQLite
//! file (the CLI, a single server) or a PostgreSQL server that several
//! replicas share.
//!
//! The queries are written once, over sqlx's `Any` driver, with `$n`
//! placeholders and types both accept. What differs between the two is
//! here and only here ([`Kind`]): how a write transaction starts and what
//! it serialises ([`Database::begin_write`]), the database's clock
//! ([`Database::now`]), the migrations, and where `.wasm` blobs live. The
//! file-specific half of SQLite (its path, permissions, WAL) is in
//! `sqlite.rs`, PostgreSQL's connection in `postgres.rs`.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use sqlx::Pool;
use sqlx::pool::PoolConnection;

use super::cache::Cache;
use super::error::StoreError;

/// The sqlx database type the queries run on.
pub(super) type Db = sqlx::Any;

/// One connection of [`Db`], as helpers that run inside a transaction take it.
pub(super) type Connection = sqlx::AnyConnection;

/// Which database a [`Database`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A file under the home directory, one writer at a time.
    Sqlite,
    /// A server shared by replicas; writers serialise per tenant.
    Postgres,
}

impl Kind {
    /// The name operators see (`sqlite`, `postgres`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sqlite => "sqlite",
            Kind::Postgres => "postgres",
        }
    }
}

/// What a write transaction serialises against, beyond the rows it touches.
#[derive(Debug, Clone, Copy)]
pub(super) enum WriteLock<'a> {
    /// Every other write of this tenant: quotas, in-use checks and the job
    /// quota count and then insert, and must see each other's rows.
    Tenant(&'a str),
    /// A tenant's write that also reads other tenants' rows to decide
    /// (overlapping registry paths): every other such write, of any tenant.
    TenantAndPaths(&'a str),
    /// A tenant's push jobs: the tenant's lock, but no cached rows change.
    TenantJobs(&'a str),
    /// Nothing beyond the rows (an append-only log, a cross-tenant
    /// statement whose constraints decide).
    None,
}

/// A pool of connections to the database, migrated to the current schema.
#[derive(Debug, Clone)]
pub(super) struct Database {
    pool: Pool<Db>,
    kind: Kind,
    /// The SQLite file and its identity when opened, checked before each
    /// use; `None` on PostgreSQL.
    file: Option<super::sqlite::FileIdentity>,
    /// What the hot path reads, with its invalidation.
    pub(super) cache: Arc<Cache>,
    /// The task that hears other replicas' writes (PostgreSQL).
    listener: Option<Arc<tokio::task::JoinHandle<()>>>,
    /// Connections the pool opened so far (PostgreSQL; 0 on SQLite).
    pub(super) connections_opened: Arc<std::sync::atomic::AtomicU64>,
    /// Where the pool connects (PostgreSQL), for a connection of its own
    /// outside the pool (a push turn: see `turn.rs`).
    pub(super) url: Option<Arc<str>>,
}

/// The advisory-lock key of the registry-path check, apart from every
/// tenant's (those hash `tenant:NAME`).
const PATHS_LOCK: &str = "flavorbox:egress-paths";

impl Database {
    /// A database on `pool`, of `kind`, already migrated.
    ///
    /// On PostgreSQL (`listen_url` given) a task listens for other
    /// replicas' writes, and the cache serves reads only while it does.
    pub(super) fn new(
        pool: Pool<Db>,
        kind: Kind,
        file: Option<super::sqlite::FileIdentity>,
        listen_url: Option<&str>,
    ) -> Database {
        let cache = Arc::new(Cache::new(listen_url.is_none()));
        let listener = listen_url.map(|url| {
            Arc::new(tokio::spawn(super::cache::listen(
                url.to_owned(),
                cache.clone(),
            )))
        });
        Database {
            pool,
            kind,
            file,
            cache,
            listener,
            connections_opened: Arc::default(),
            url: listen_url.map(Arc::from),
        }
    }

    /// Which database this is.
    pub(super) fn kind(&self) -> Kind {
        self.kind
    }

    /// What ends a `SELECT` that claims rows no other claimer may take at
    /// the same time: `FOR UPDATE SKIP LOCKED` on PostgreSQL; nothing on
    /// SQLite, whose one writer at a time already serialises claims.
    pub(super) fn skip_locked(&self) -> &'static str {
        match self.kind {
            Kind::Sqlite => "",
            Kind::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// The placeholder of the `n`th (1-based) bound value of a statement
    /// whose values are bound in order: `$n` on PostgreSQL, a bare `?` on
    /// SQLite. SQLite looks a named or numbered parameter's name up by a
    /// linear walk, and sqlx asks it for every parameter, so a statement of
    /// many `$n` costs time quadratic in their number there; bare `?`s have
    /// no name to look up.
    pub(super) fn placeholder(&self, n: usize) -> String {
        match self.kind {
            Kind::Sqlite => "?".to_string(),
            Kind::Postgres => format!("${n}"),
        }
    }

    /// The database's clock as the store's timestamp text
    /// (`YYYY-MM-DDThh:mm:ss.mmmZ`, as [`format_rfc3339`](super::timestamp)
    /// writes), for rows stamped by the database (one clock for every replica).
    pub(super) fn now(&self) -> &'static str {
        match self.kind {
            Kind::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            Kind::Postgres => {
                "to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
            }
        }
    }

    /// The database's clock `seconds` from now, as [`Database::now`] writes
    /// it: for leases, which every replica compares on one clock.
    pub(super) fn now_plus(&self, seconds: u32) -> String {
        match self.kind {
            Kind::Sqlite => format!("strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+{seconds} seconds')"),
            Kind::Postgres => format!(
                "to_char((clock_timestamp() + interval '{seconds} seconds') AT TIME ZONE 'UTC', \
                 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
            ),
        }
    }

    /// The database's clock in whole minutes since the Unix epoch.
    pub(super) fn minute_now(&self) -> &'static str {
        match self.kind {
            Kind::Sqlite => "CAST(strftime('%s', 'now') AS INTEGER) / 60",
            Kind::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS BIGINT) / 60",
        }
    }

    /// The connection pool, for single statements outside a transaction;
    /// refused once a SQLite file was removed or replaced.
    pub(super) fn pool(&self) -> Result<&Pool<Db>, StoreError> {
        self.check()?;
        Ok(&self.pool)
    }

    /// Whether the database is there: for SQLite, whether the file at its
    /// path is still the one opened (a process that wrote on after the file
    /// was deleted would acknowledge writes no later start sees); a `stat`.
    /// PostgreSQL is asked with [`Database::ping`].
    pub(super) fn check(&self) -> Result<(), StoreError> {
        match &self.file {
            Some(file) => file.check(),
            None => Ok(()),
        }
    }

    /// One round trip to the database: whether it answers now.
    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        self.check()?;
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Starts a write transaction serialised as `lock` says.
    ///
    /// SQLite: `BEGIN IMMEDIATE` takes the database's one write lock up
    /// front (waiting under the busy timeout), which serialises every
    /// writer, so `lock` asks nothing more. A plain deferred transaction
    /// that reads and then writes could fail without waiting.
    ///
    /// PostgreSQL: `BEGIN` (read committed) and a transaction-scoped
    /// advisory lock per tenant (and one for the registry-path check), so
    /// that a count-then-insert or an in-use check of one tenant sees every
    /// committed write of that tenant, whichever replica made it, while
    /// other tenants write beside it. The locks go with the transaction.
    ///
    /// The transaction is a [`WriteTx`]: one that did not commit never
    /// leaves its connection in the pool inside a transaction.
    pub(super) async fn begin_write(&self, lock: WriteLock<'_>) -> Result<WriteTx, StoreError> {
        self.check()?;
        let conn = self.pool.acquire().await?;
        let changes = match lock {
            WriteLock::Tenant(tenant) | WriteLock::TenantAndPaths(tenant) => {
                vec![tenant.to_owned()]
            }
            WriteLock::TenantJobs(_) | WriteLock::None => Vec::new(),
        };
        // From here on, a failure drops `tx`, which ends the transaction.
        let mut tx = WriteTx {
            conn: Some(conn),
            done: false,
            changes,
            kind: self.kind,
            cache: self.cache.clone(),
        };
        match self.kind {
            Kind::Sqlite => {
                sqlx::query("BEGIN IMMEDIATE").execute(&mut *tx).await?;
            }
            Kind::Postgres => {
                sqlx::query("BEGIN").execute(&mut *tx).await?;
                let keys: &[String] = match lock {
                    WriteLock::Tenant(tenant) | WriteLock::TenantJobs(tenant) => {
                        &[format!("tenant:{tenant}")]
                    }
                    WriteLock::TenantAndPaths(tenant) => {
                        &[format!("tenant:{tenant}"), PATHS_LOCK.to_owned()]
                    }
                    WriteLock::None => &[],
                };
                // Always in this order (tenant, then paths): no two writers
                // wait for each other's second lock.
                for key in keys {
                    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                        .bind(key)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        Ok(tx)
    }

    /// Closes every connection (on SQLite, checkpointing the write-ahead
    /// log), and stops listening for other replicas' writes.
    pub(super) async fn close(&self) {
        if let Some(listener) = &self.listener {
            listener.abort();
        }
        self.cache.set_live(false);
        self.pool.close().await;
    }
}

/// A write transaction on a pooled connection.
///
/// sqlx's own transaction counts its depth beside the database's: when a
/// COMMIT fails (a full disk), SQLite has already rolled back, sqlx's
/// ROLLBACK on drop then fails too, and the connection went back to the
/// pool still counted as inside a transaction, failing every later write on
/// it until the pool retired it. This one keeps no count: on SQLite a
/// transaction that did not commit closes its connection (the database
/// rolls back on close), so whatever went wrong, no later write inherits it.
/// On PostgreSQL a new connection is a new server process, and refused
/// writes (a quota, a conflict) are what a hostile tenant can repeat at
/// will: the connection is rolled back in the background and goes back to
/// the pool only if the ROLLBACK succeeded, else it is closed.
pub(super) struct WriteTx {
    /// Always `Some` until dropped.
    conn: Option<PoolConnection<Db>>,
    done: bool,
    /// Whose cached rows the transaction changes (tenants, or
    /// [`ACCOUNTS`](super::cache::ACCOUNTS)): announced on commit.
    changes: Vec<String>,
    kind: Kind,
    cache: Arc<Cache>,
}

impl WriteTx {
    /// Also announces a change of `key`'s cached rows on commit.
    pub(super) fn changes(&mut self, key: &str) {
        self.changes.push(key.to_owned());
    }

    /// Commits; a failure drops the transaction like any other. What changed is
    /// announced: to other replicas by a notification sent inside the
    /// transaction (delivered only if it commits), to this process's cache
    /// after the commit.
    pub(super) async fn commit(mut self) -> Result<(), StoreError> {
        if self.kind == Kind::Postgres {
            for key in self.changes.clone() {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(super::cache::CHANNEL)
                    .bind(key)
                    .execute(&mut *self)
                    .await?;
            }
        }
        sqlx::query("COMMIT").execute(&mut *self).await?;
        self.done = true;
        for key in &self.changes {
            self.cache.changed(key);
        }
        Ok(())
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        match (self.kind, tokio::runtime::Handle::try_current()) {
            (Kind::Postgres, Ok(runtime)) => {
                runtime.spawn(async move {
                    if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
                        conn.close_on_drop();
                    }
                });
            }
            _ => conn.close_on_drop(),
        }
    }
}

impl Deref for WriteTx {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
            .as_deref()
            .expect("a write transaction's connection until dropped")
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn
            .as_deref_mut()
            .expect("a write transaction's connection until dropped")
    }
}
